// Biaffine dependency parser over FROZEN MiniLM features: biaffine_minilm.jsonnet with the
// transformer's weights fixed, its hidden states computed once per sentence and kept in memory
// (`cache_windows`, in training only), and a BiLSTM trained on top of their scalar mix, ELMo-style.
// Every training epoch after the first costs what a BiLSTM parser costs, which makes a
// pretrained-encoder teacher trainable on a CPU. MODEL_DIR, TRAIN_PATH, DEV_PATH and TEST_PATH as in biaffine_minilm.jsonnet.
local minilm = import "biaffine_minilm.jsonnet";
local transformer_dim = 384;  // MiniLM-L6's hidden size
local hidden = 200;
minilm {
  model+: {
    text_embedder+: {
      token_embedders+: {
        // More than UD English-EWT's 12,544 training sentences.
        transformer+: { freeze: true, cache_windows: 30000 },
      },
    },
    encoder: { type: "lstm", input_size: transformer_dim, hidden_size: hidden, num_layers: 2, bidirectional: true, dropout: 0.33 },
    dropout: 0.33,
  },
  data_loader: { max_tokens: 1000, min_batches_per_epoch: 50 },
  trainer: {
    optimizer: { type: "adam", lr: 0.002, betas: [0.9, 0.9] },
    num_epochs: 15,
    patience: 5,
    validation_metric: "+LAS",
    grad_norm: 5.0,
  },
}
