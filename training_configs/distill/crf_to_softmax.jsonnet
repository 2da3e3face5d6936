// Case 2a: a CRF teacher's unary marginals into a softmax student.
(import "base.libsonnet")({ type: "crf_to_softmax" }, student_kind="softmax")
