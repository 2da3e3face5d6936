// Tang et al.'s domain-level synthetic teacher (label similarities of the teacher's output layer).
(import "base.libsonnet")({ type: "similarity_teacher" })
