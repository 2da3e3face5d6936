// Shared shape of the distillation configs: a frozen teacher archive, a small student, a KD
// objective. Ext vars (environment variables): TEACHER (the teacher's model.tar.gz), TRAIN_PATH,
// DEV_PATH, TEST_PATH, and STUDENT where a config leaves the student open: "crf" or "softmax" (a
// BiLSTM over lowercased words), or "crf_chars" / "softmax_chars" (the same with a character CNN
// beside the words, for the names and rare words a words-only student cannot see).
// Add unlabeled text with --overrides '{"unlabeled_data_path": "PATH"}'.
local word_dim = 50;
local char_filters = 50;
local hidden = 50;
local taggers = {
  crf: { type: "crf_tagger", label_encoding: "BIO" },
  softmax: { type: "softmax_tagger", label_encoding: "BIO" },
};
local words = { words: { type: "word", embedding_dim: word_dim, lowercase: true } };
local characters = { characters: { type: "character_cnn", embedding_dim: 30, num_filters: char_filters, ngram_filter_sizes: [3] } };
local student(kind) =
  local with_characters = std.endsWith(kind, "_chars");
  local tagger = if with_characters then std.substr(kind, 0, std.length(kind) - std.length("_chars")) else kind;
  taggers[tagger] + {
    dropout: 0.2,
    text_embedder: { token_embedders: words + (if with_characters then characters else {}) },
    encoder: {
      type: "lstm",
      input_size: word_dim + (if with_characters then char_filters else 0),
      hidden_size: hidden,
      bidirectional: true,
    },
  };

function(objective, student_kind=std.extVar("STUDENT")) {
  dataset_reader: { type: "universal_ner", label_scheme: "BIO" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: "distillation",
    teacher_archive: std.extVar("TEACHER"),
    student: student(student_kind),
    objective: objective,
    lambda_schedule: { type: "teacher_annealing" },
    temperature: { kind: "local", value: 1.0 },
    teacher_cache: {},
  },
  data_loader: { max_tokens: 2000, min_batches_per_epoch: 40 },
  trainer: {
    optimizer: { type: "adam", lr: 0.003 },
    num_epochs: 30,
    patience: 5,
    validation_metric: "+f1-measure-overall",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
