// Case 3 of Wang et al. (MaxEnt teacher -> CRF student): a softmax tagger teacher over words and
// characters (the BiLSTM-CRF teacher's network with a softmax per token) into the small CRF
// student, `softmax_to_crf` (structural KD: the teacher's per-token distributions as a structured
// target) against `none`, `token` and `posterior`; all gold and 10% gold; three seeds.
//   structkd experiment training_configs/experiments/case3_softmax_to_crf.jsonnet -s runs/case3 --jobs 2
local corpus = "../../../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-";
{
  base: "../distill/structural.jsonnet",
  env: { TRAIN_PATH: corpus + "train.iob2", DEV_PATH: corpus + "dev.iob2", TEST_PATH: corpus + "test.iob2", STUDENT: "crf" },
  teacher: { config: "../ner/bilstm_crf.jsonnet", overrides: { model: { type: "softmax_tagger" } } },
  axes: {
    objective: [{ type: "none" }, { type: "token" }, { type: "posterior" }, { type: "softmax_to_crf" }],
    gold_fraction: [1.0, 0.1],
    seed: [1, 2, 3],
  },
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
