// Issue 13's NER table: the Bosque BiLSTM-CRF teacher -> the `crf_chars` student, gold only
// (`none`, `structural`) and with all the Portuguese raw text (`structural`), three seeds, every
// run until dev F1 has not risen for 5 epochs (training_configs/distill/raw_text.jsonnet).
//   structkd experiment training_configs/experiments/bosque_raw_text.jsonnet -s runs/bosque-raw --jobs 2
// Paths are relative to this file: the shared data sits beside the repository.
local data = "../../../shared/data/";
local bosque = data + "UNER_Portuguese-Bosque/pt_bosque-ud-";
local raw = data + "unlabeled/pt/";
{
  base: "../distill/raw_text.jsonnet",
  env: {
    TRAIN_PATH: bosque + "train.iob2",
    DEV_PATH: bosque + "dev.iob2",
    TEST_PATH: bosque + "test.iob2",
    TEXT_LANG: "pt",
    MAX_UNLABELED: "0",
  },
  teacher: { config: "../ner/bilstm_crf.jsonnet" },
  axes: {
    objective: [{ type: "none" }, { type: "structural" }],
    // News and blogs (GSD), other treebanks' sentences, then 19th-century literature.
    "env.UNLABELED_PATH": { gold: "", "gold+raw": raw + "gsd.txt," + raw + "ud_other_treebanks.txt," + raw + "machado.txt" },
    seed: [1, 2, 3],
  },
  // `none` learns nothing from raw text.
  exclude: [{ objective: "none", "env.UNLABELED_PATH": "gold+raw" }],
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
