// The objectives side by side on UniversalNER Portuguese-Bosque (docs/BENCHMARKS.md section 3):
// the BiLSTM-CRF teacher into the small CRF student (STUDENT "softmax" for the softmax student),
// all gold and 10% gold + 90% as unlabeled text, three seeds, every run until dev F1 has not risen
// for 5 epochs, with at least 40 batches an epoch (base.libsonnet: the 10%-gold baseline gets enough updates).
//   structkd experiment training_configs/experiments/bosque_objectives.jsonnet -s runs/bosque-objectives --jobs 2
// Another corpus: change the three paths (e.g. UNER_Danish-DDT/da_ddt-ud-).
local corpus = "../../../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-";
{
  base: "../distill/structural.jsonnet",
  env: { TRAIN_PATH: corpus + "train.iob2", DEV_PATH: corpus + "dev.iob2", TEST_PATH: corpus + "test.iob2", STUDENT: "crf" },
  teacher: { config: "../ner/bilstm_crf.jsonnet" },
  axes: {
    objective: [
      { type: "none" },
      { type: "token" },
      { type: "posterior" },
      { type: "top_k", k: 5 },
      { type: "structural" },
      { type: "local_substructure", transitions: true },
    ],
    gold_fraction: [1.0, 0.1],
    seed: [1, 2, 3],
  },
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
