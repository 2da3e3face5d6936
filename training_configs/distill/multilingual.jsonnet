// Several monolingual teachers, one student: the `multilingual` reader stamps each sentence with
// its language, and that language's teacher gives its knowledge. Ext vars, as JSON objects from
// language to path: TEACHER (the teachers' model.tar.gz), TRAIN_PATH, DEV_PATH, TEST_PATH, e.g.
//   TEACHER='{"pt": "runs/pt/model.tar.gz", "da": "runs/da/model.tar.gz"}'
//   TRAIN_PATH='{"pt": "pt-train.iob2", "da": "da-train.iob2"}' (and DEV_PATH, TEST_PATH)
// and STUDENT as in base.libsonnet. training_configs/experiments/multilingual.jsonnet runs it.
local base = (import "base.libsonnet")({ type: "structural" });
base + {
  dataset_reader: { type: "multilingual", reader: base.dataset_reader },
  model+: { teacher_archive: std.parseJson(std.extVar("TEACHER")) },
}
