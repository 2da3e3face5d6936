// Case 1b: a biaffine parser's head marginals times its relation probabilities, in the labels of a
// sequence-labeling parser. TEACHER must be a biaffine_parser archive.
(import "base.libsonnet")({ type: "biaffine_to_sequence_labeler" }, "labeler")
