// KL between the teacher's and the student's per-word head (and relation) marginals.
(import "base.libsonnet")({ type: "posterior" })
