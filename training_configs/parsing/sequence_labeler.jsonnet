// Dependency parsing as sequence labeling (Strzyz, Vilares & Gomez-Rodriguez 2019): a small
// BiLSTM over words and characters tags every word with its encoded head and relation; the tree is
// decoded from the label scores (always well-formed). Data paths are ext vars, e.g. for UD
// English-EWT:
//   TRAIN_PATH=../shared/data/UD_English-EWT/en_ewt-ud-train.conllu \
//   DEV_PATH=../shared/data/UD_English-EWT/en_ewt-ud-dev.conllu \
//   TEST_PATH=../shared/data/UD_English-EWT/en_ewt-ud-test.conllu \
//   structkd train training_configs/parsing/sequence_labeler.jsonnet -s runs/ewt-sequence-labeler
// The encoding (rel_pos, the default, or rel_offset) is set in the reader, which puts the encoded
// trees into the vocabulary, and in the model; override both together, and `crf` for a CRF
// instead of a softmax over the labels:
//   --overrides '{"dataset_reader.tag_label": "rel_offset", "model.encoding": "rel_offset", "model.crf": true}'
// rel_pos reads the gold UPOS of the input files, in training and in prediction.
// EWT's training trees give about 1.35k labels in either encoding. The CRF's forward algorithm
// holds [tokens, L, L] scores (1.8M per token), so with crf: true lower data_loader.max_tokens
// to a few dozen, or expect it to run out of memory; the softmax is cheap at any size.
local encoding = "rel_pos";
local word_dim = 100;
local char_filters = 50;
local hidden = 200;
{
  dataset_reader: { type: "universal_dependencies", tag_label: encoding },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: "dependency_sequence_labeler",
    encoding: encoding,
    crf: false,
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
    validation_metric: "+LAS",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
