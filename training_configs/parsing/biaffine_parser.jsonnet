// Deep biaffine dependency parser (Dozat & Manning 2017) over words and characters, a BiLSTM
// encoder. Data paths are ext vars, e.g. for UD English-EWT:
//   TRAIN_PATH=../shared/data/UD_English-EWT/en_ewt-ud-train.conllu \
//   DEV_PATH=../shared/data/UD_English-EWT/en_ewt-ud-dev.conllu \
//   TEST_PATH=../shared/data/UD_English-EWT/en_ewt-ud-test.conllu \
//   structkd train training_configs/parsing/biaffine_parser.jsonnet -s runs/ewt-biaffine
// The tree model is `local` (head selection, as Dozat & Manning); a tree CRF instead with
//   --overrides '{"model.tree": "nonprojective"}'   (or "projective")
local word_dim = 100;
local char_filters = 50;
local hidden = 400;
{
  dataset_reader: { type: "universal_dependencies" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: "biaffine_parser",
    tree: "local",
    text_embedder: {
      token_embedders: {
        words: { type: "word", embedding_dim: word_dim, lowercase: true },
        characters: { type: "character_cnn", embedding_dim: 50, num_filters: char_filters, ngram_filter_sizes: [3] },
      },
    },
    encoder: { type: "lstm", input_size: word_dim + char_filters, hidden_size: hidden, num_layers: 3, bidirectional: true, dropout: 0.33 },
    arc_mlp_dim: 500,
    relation_mlp_dim: 100,
    mlp_dropout: 0.33,
    dropout: 0.33,
  },
  // Batches of at most 1,000 padded words (about 40 sentences): 500 updates an epoch on
  // English-EWT. A smaller treebank gets smaller batches, so that every epoch makes at least 100
  // updates (a 1,300-sentence treebank: batches of about 200 words, where Dozat & Manning's 5,000
  // gave 7 updates an epoch and the parser stood at 0.6 dev LAS after its first). The learning
  // rate warms up over the first 1% of the budget, then decays linearly; training stops when dev
  // LAS has not risen for 10 epochs.
  data_loader: { max_tokens: 1000, min_batches_per_epoch: 100 },
  trainer: {
    optimizer: { type: "adam", lr: 0.002, betas: [0.9, 0.9] },
    learning_rate_scheduler: { type: "linear_with_warmup", warmup_steps: 0.01 },
    num_epochs: 100,
    patience: 10,
    validation_metric: "+LAS",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
