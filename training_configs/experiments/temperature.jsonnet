// Structural KD at temperatures 0.5, 1, 2 and 4, applied to the whole structure's scores (global)
// or to each factor's (local), 10% gold + 90% unlabeled on Bosque, one seed each.
//   structkd experiment training_configs/experiments/temperature.jsonnet -s runs/temperature --jobs 2
local corpus = "../../../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-";
{
  base: "../distill/structural.jsonnet",
  env: { TRAIN_PATH: corpus + "train.iob2", DEV_PATH: corpus + "dev.iob2", TEST_PATH: corpus + "test.iob2", STUDENT: "crf" },
  teacher: { config: "../ner/bilstm_crf.jsonnet" },
  overrides: { gold_fraction: 0.1 },
  axes: {
    "model.temperature.kind": ["global", "local"],
    "model.temperature.value": [0.5, 1, 2, 4],
    seed: [1],
  },
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
