// BiLSTM-CRF NER tagger over words and characters (Lample et al. 2016): the teacher of the NER
// distillation experiments. Data paths are ext vars, e.g.
//   TRAIN_PATH=../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-train.iob2 \
//   DEV_PATH=.../pt_bosque-ud-dev.iob2 TEST_PATH=.../pt_bosque-ud-test.iob2 \
//   structkd train training_configs/ner/bilstm_crf.jsonnet -s runs/bosque-teacher
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
    type: "crf_tagger",
    label_encoding: "BIO",
    dropout: 0.33,
    text_embedder: {
      token_embedders: {
        words: { type: "word", embedding_dim: word_dim, lowercase: true },
        characters: { type: "character_cnn", embedding_dim: 30, num_filters: char_filters, ngram_filter_sizes: [3] },
      },
    },
    encoder: { type: "lstm", input_size: word_dim + char_filters, hidden_size: hidden, num_layers: 2, bidirectional: true, dropout: 0.33 },
  },
  data_loader: { max_tokens: 2000, min_batches_per_epoch: 50 },
  trainer: {
    optimizer: { type: "adam", lr: 0.002 },
    num_epochs: 30,
    patience: 5,
    validation_metric: "+f1-measure-overall",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
