// Hinton KD on the teacher's first-order head softmaxes (and relation distributions).
(import "base.libsonnet")({ type: "token" })
