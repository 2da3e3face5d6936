// Case 3: a softmax teacher's independent marginals (products) into a CRF student.
(import "base.libsonnet")({ type: "softmax_to_crf" }, student_kind="crf")
