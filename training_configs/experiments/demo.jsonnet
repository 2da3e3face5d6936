// The grid behind `make demo`: on a slice of UniversalNER Portuguese-Bosque (fixtures/bosque/:
// 2,000 training sentences), a BiLSTM-CRF teacher trained on all of them, then a small CRF student
// (words and characters)
// that sees the labels of only the first 10% (200 sentences) and the other 90% as unlabeled text,
// without KD (`none`) and with structural KD from the teacher.
//   structkd experiment training_configs/experiments/demo.jsonnet -s runs/demo --jobs 2
local fixtures = "../../fixtures/bosque/";
{
  base: "../distill/structural.jsonnet",
  env: {
    TRAIN_PATH: fixtures + "train.iob2",
    DEV_PATH: fixtures + "dev.iob2",
    TEST_PATH: fixtures + "test.iob2",
    STUDENT: "crf_chars",
  },
  teacher: {
    config: "../ner/bilstm_crf.jsonnet",
    overrides: { trainer: { num_epochs: 12, patience: 3 } },
  },
  overrides: {
    gold_fraction: 0.1,
    trainer: { num_epochs: 30, patience: 5 },
  },
  axes: {
    objective: [{ type: "none" }, { type: "structural" }],
    seed: [1, 2],
  },
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
