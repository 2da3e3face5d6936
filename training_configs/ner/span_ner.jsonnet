// NER as span selection (Yu et al. 2020): a biaffine span scorer over the BiLSTM-CRF teacher's
// encoder (words + characters, 2 x 200 BiLSTM), trained with the exact likelihood of the gold spans
// (semi-Markov normalization over all sets of non-overlapping spans). The teacher of case 4
// (training_configs/distill/span_to_tagger.jsonnet). Data paths are ext vars, as in bilstm_crf.jsonnet.
local word_dim = 100;
local char_filters = 50;
local hidden = 200;
{
  dataset_reader: { type: "universal_ner", label_scheme: "BIO" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: "span_ner",
    label_encoding: "BIO",
    span_mlp_dim: 150,
    dropout: 0.33,
    text_embedder: {
      token_embedders: {
        words: { type: "word", embedding_dim: word_dim, lowercase: true },
        characters: { type: "character_cnn", embedding_dim: 30, num_filters: char_filters, ngram_filter_sizes: [3] },
      },
    },
    encoder: { type: "lstm", input_size: word_dim + char_filters, hidden_size: hidden, num_layers: 2, bidirectional: true, dropout: 0.33 },
  },
  data_loader: { max_tokens: 2000, min_batches_per_epoch: 100 },
  trainer: {
    optimizer: { type: "adam", lr: 0.002 },
    num_epochs: 60,
    patience: 5,
    validation_metric: "+f1-measure-overall",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
