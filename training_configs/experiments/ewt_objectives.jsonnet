// The parsing objectives side by side on UD English-EWT (docs/BENCHMARKS.md section 4): a parser
// teacher into the small biaffine student (STUDENT "labeler" for the sequence-labeling parser),
// three seeds, every run until dev LAS has not risen for 5 epochs. The teacher here is the
// BiLSTM biaffine config; for the MiniLM teacher, replace `teacher` with
// { archive: "runs/minilm-teacher/model.tar.gz" } (training_configs/parsing/biaffine_minilm.jsonnet).
//   structkd experiment training_configs/experiments/ewt_objectives.jsonnet -s runs/ewt-objectives --jobs 2
local corpus = "../../../shared/data/UD_English-EWT/en_ewt-ud-";
{
  base: "../distill/parsing/structural.jsonnet",
  env: { TRAIN_PATH: corpus + "train.conllu", DEV_PATH: corpus + "dev.conllu", TEST_PATH: corpus + "test.conllu", STUDENT: "biaffine" },
  teacher: { config: "../parsing/biaffine_parser.jsonnet" },
  overrides: { trainer: { num_epochs: 60, patience: 5 } },
  axes: {
    objective: [
      { type: "none" },
      { type: "token" },
      { type: "posterior" },
      { type: "top_k", k: 1 },
      { type: "structural" },
      { type: "local_substructure" },
    ],
    seed: [1, 2, 3],
  },
  threads: 1,
  metrics: ["test_LAS", "test_UAS", "best_validation_LAS"],
}
