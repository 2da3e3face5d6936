// Sequence-level KD (Kim & Rush) on the teacher's 5 best taggings.
(import "base.libsonnet")({ type: "top_k", k: 5 })
