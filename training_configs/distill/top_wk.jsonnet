// Top-WK: the 5 best taggings weighted by their renormalized teacher probabilities.
(import "base.libsonnet")({ type: "top_k", k: 5, weighted: true })
