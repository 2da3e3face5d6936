// Wang et al.'s factorized KD; the teacher/student pair picks the case (1b, 2b, or parser to parser).
(import "base.libsonnet")({ type: "structural" })
