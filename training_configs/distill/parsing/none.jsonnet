// The baseline: the student trained on gold trees alone, through the same machinery.
(import "base.libsonnet")({ type: "none" })
