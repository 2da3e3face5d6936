// Tang et al.'s instance-level synthetic teacher (the teacher's gold probability, the rest uniform).
(import "base.libsonnet")({ type: "partial_teacher" })
