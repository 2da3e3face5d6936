// KL between the teacher's and the student's forward-backward token marginals.
(import "base.libsonnet")({ type: "posterior" })
