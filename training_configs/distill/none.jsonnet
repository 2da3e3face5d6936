// Baseline: the student trained on gold alone, through the same machinery.
(import "base.libsonnet")({ type: "none" })
