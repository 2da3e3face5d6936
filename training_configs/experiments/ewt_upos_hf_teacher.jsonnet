// A Hugging Face token classifier as a teacher, as it is: MiniLM fine-tuned for EWT's UPOS with
// transformers' Trainer (benchmarks/hf_upos_teacher.py --output runs/minilm-upos, run first), into
// the small CRF tagger, `none` against `structural` (= softmax_to_crf), three seeds, until dev
// accuracy has not risen for 5 epochs.
//   structkd experiment training_configs/experiments/ewt_upos_hf_teacher.jsonnet -s runs/upos-hf --jobs 2
local corpus = "../../../shared/data/UD_English-EWT/en_ewt-ud-";
{
  base: "../distill/upos.jsonnet",
  env: { TRAIN_PATH: corpus + "train.conllu", DEV_PATH: corpus + "dev.conllu", TEST_PATH: corpus + "test.conllu", STUDENT: "crf" },
  teacher: { archive: "../../runs/minilm-upos" },
  axes: {
    objective: [{ type: "none" }, { type: "structural" }],
    seed: [1, 2, 3],
  },
  threads: 1,
  metrics: ["test_accuracy", "best_validation_accuracy"],
}
