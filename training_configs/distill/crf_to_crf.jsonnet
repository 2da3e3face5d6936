// Case 1a: a CRF teacher's tag-bigram marginals into a CRF student.
(import "base.libsonnet")({ type: "crf_to_crf" }, student_kind="crf")
