// A Hugging Face token classifier as a teacher, as it is: MiniLM fine-tuned for EWT's UPOS with
// transformers' Trainer (benchmarks/hf_upos_teacher.py --output runs/minilm-upos, run first), into
// the small CRF tagger, over words alone (`crf`) and over words and characters (`crf_chars`),
// `none` against `structural` (= softmax_to_crf), with all of EWT train's gold tags and with 10% of
// them (the other 90% of its sentences as unlabeled text), three seeds, every run until dev
// accuracy has not risen for 5 epochs.
//   structkd experiment training_configs/experiments/ewt_upos_hf_teacher.jsonnet -s runs/upos-hf --jobs 2
local corpus = "../../../shared/data/UD_English-EWT/en_ewt-ud-";
{
  base: "../distill/upos.jsonnet",
  env: { TRAIN_PATH: corpus + "train.conllu", DEV_PATH: corpus + "dev.conllu", TEST_PATH: corpus + "test.conllu" },
  teacher: { archive: "../../runs/minilm-upos" },
  axes: {
    "env.STUDENT": ["crf", "crf_chars"],
    gold_fraction: [1.0, 0.1],
    objective: [{ type: "none" }, { type: "structural" }],
    seed: [1, 2, 3],
  },
  threads: 1,
  metrics: ["test_accuracy", "best_validation_accuracy"],
}
