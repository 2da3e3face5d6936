// Sequence-level KD on the teacher's best tree (a tree-CRF teacher gives only its best, k = 1).
(import "base.libsonnet")({ type: "top_k", k: 1 })
