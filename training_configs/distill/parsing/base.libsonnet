// Shared shape of the parser distillation configs: a frozen parser teacher archive, a small
// student, a KD objective. Ext vars: TEACHER (a biaffine_parser or second_order_parser
// model.tar.gz), TRAIN_PATH, DEV_PATH, TEST_PATH (CoNLL-U), and STUDENT where a config leaves the
// student open:
//   "labeler": a sequence-labeling parser (rel_pos labels, softmax): Wang et al.'s cases 1b/2b;
//   "biaffine": a small first-order biaffine parser (local head softmax).
// The labeler reads the gold UPOS of the files (rel_pos labels name the head's UPOS).
// The teacher is cached: per-word label marginals for the labeler; arc rows for a parser student,
// with relation distributions for each word's 8 likeliest heads only (every head's would take
// 3 GB on English-EWT; the 8 hold 99.8% of the BiLSTM teacher's arc mass on its dev set).
local word_dim = 100;
local char_filters = 50;
local hidden = 100;
local embedder = {
  token_embedders: {
    words: { type: "word", embedding_dim: word_dim, lowercase: true },
    characters: { type: "character_cnn", embedding_dim: 30, num_filters: char_filters, ngram_filter_sizes: [3] },
  },
};
local encoder = { type: "lstm", input_size: word_dim + char_filters, hidden_size: hidden, bidirectional: true };
local students = {
  labeler: { type: "dependency_sequence_labeler", encoding: "rel_pos", crf: false },
  biaffine: { type: "biaffine_parser", tree: "local", arc_mlp_dim: 200, relation_mlp_dim: 50 },
};

function(objective, student_kind=std.extVar("STUDENT")) {
  dataset_reader: { type: "universal_dependencies", tag_label: "rel_pos" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: "distillation",
    teacher_archive: std.extVar("TEACHER"),
    student: students[student_kind] + { dropout: 0.33, text_embedder: embedder, encoder: encoder },
    objective: objective,
    lambda_schedule: { type: "teacher_annealing" },
    temperature: { kind: "local", value: 1.0 },
    teacher_cache: { relation_top_k_heads: if student_kind == "biaffine" then 8 else null },
  },
  data_loader: { max_tokens: 2000, min_batches_per_epoch: 40 },
  trainer: {
    optimizer: { type: "adam", lr: 0.002 },
    num_epochs: 30,
    patience: 5,
    validation_metric: "+LAS",
    grad_norm: 5.0,
  },
  random_seed: 13370,
}
