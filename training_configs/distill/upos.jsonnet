// Part-of-speech tagging (UD's UPOS column): a tagger teacher, e.g. a Hugging Face token
// classifier directory as it is (benchmarks/hf_upos_teacher.py fine-tunes MiniLM into one), into
// the small tagger of base.libsonnet (STUDENT), with structural KD (= softmax_to_crf for a CRF
// student and a softmax teacher). Tags are not spans: no label_encoding; accuracy picks the epoch.
// TRAIN_PATH, DEV_PATH, TEST_PATH: CoNLL-U files.
local base = (import "base.libsonnet")({ type: "structural" });
base + {
  dataset_reader: { type: "universal_dependencies", tag_label: "upos" },
  model+: { student+: { label_encoding: null } },
  trainer+: { validation_metric: "+accuracy" },
}
