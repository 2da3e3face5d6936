// Wang et al.'s factorized KD; the teacher/student pair picks the case (1a, 2a or 3).
(import "base.libsonnet")({ type: "structural" })
