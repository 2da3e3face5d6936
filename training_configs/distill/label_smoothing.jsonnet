// Tang et al.'s universe-level synthetic teacher (label smoothing with the teacher's non-gold mass).
(import "base.libsonnet")({ type: "label_smoothing" })
