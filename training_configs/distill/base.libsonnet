// Shared shape of the distillation configs: a frozen teacher archive, a small student, a KD
// objective. Ext vars (environment variables): TEACHER (the teacher's model.tar.gz), TRAIN_PATH,
// DEV_PATH, TEST_PATH, and STUDENT ("crf" or "softmax") where a config leaves the student open.
// Add unlabeled text with --overrides '{"unlabeled_data_path": "PATH"}'.
local word_dim = 50;
local hidden = 50;
local students = {
  crf: { type: "crf_tagger", label_encoding: "BIO" },
  softmax: { type: "softmax_tagger", label_encoding: "BIO" },
};
local student(kind) = students[kind] + {
  dropout: 0.2,
  text_embedder: { token_embedders: { words: { type: "word", embedding_dim: word_dim, lowercase: true } } },
  encoder: { type: "lstm", input_size: word_dim, hidden_size: hidden, bidirectional: true },
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
    lambda_schedule: "teacher_annealing",
    temperature: 1.0,
    temperature_kind: "local",
    teacher_cache: true,
  },
  data_loader: { max_tokens: 2000 },
  trainer: {
    optimizer: { type: "adam", lr: 0.003 },
    num_epochs: 30,
    patience: 5,
    validation_metric: "+f1-measure-overall",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
