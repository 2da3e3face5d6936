// A small, fast softmax NER tagger (word embeddings + one small BiLSTM): the student.
// Data paths as in bilstm_crf.jsonnet.
local word_dim = 50;
local hidden = 50;
{
  dataset_reader: { type: "universal_ner", label_scheme: "BIO" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: "softmax_tagger",
    label_encoding: "BIO",
    dropout: 0.2,
    text_embedder: { token_embedders: { words: { type: "word", embedding_dim: word_dim, lowercase: true } } },
    encoder: { type: "lstm", input_size: word_dim, hidden_size: hidden, bidirectional: true },
  },
  data_loader: { max_tokens: 2000, min_batches_per_epoch: 50 },
  trainer: {
    optimizer: { type: "adam", lr: 0.003 },
    num_epochs: 30,
    patience: 5,
    validation_metric: "+f1-measure-overall",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
