// Tang et al.'s decomposition of the teacher's knowledge (../shared/docs/structured-kd.md, section
// 4) on Bosque with 10% of the gold training sentences: synthetic teachers for the universe level
// (`label_smoothing`, eps = the real teacher's average non-gold mass), the domain level
// (`similarity_teacher`) and the instance level (`partial_teacher`), against the real teacher's
// `posterior` and `structural` and against `none`, all on the same 10% ("dropped": the other 90%
// are not used, since a synthetic teacher needs gold tags); the real teacher's objectives also with
// the other 90% as unlabeled text, for reference; three seeds.
//   structkd experiment training_configs/experiments/tang_decomposition.jsonnet -s runs/tang --jobs 2
local corpus = "../../../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-";
{
  base: "../distill/structural.jsonnet",
  env: { TRAIN_PATH: corpus + "train.iob2", DEV_PATH: corpus + "dev.iob2", TEST_PATH: corpus + "test.iob2", STUDENT: "crf" },
  teacher: { config: "../ner/bilstm_crf.jsonnet" },
  overrides: { gold_fraction: 0.1 },
  axes: {
    objective: [
      { type: "none" },
      { type: "label_smoothing" },
      { type: "similarity_teacher" },
      { type: "partial_teacher" },
      { type: "posterior" },
      { type: "structural" },
    ],
    gold_fraction_rest: ["dropped", "unlabeled"],
    seed: [1, 2, 3],
  },
  // Only the real teacher's objectives learn from unlabeled text.
  exclude: [
    { objective: objective, gold_fraction_rest: "unlabeled" }
    for objective in ["none", "label_smoothing", "similarity_teacher", "partial_teacher"]
  ],
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
