// Case 2b: a second-order parser's mean-field marginals, in the labels of a sequence-labeling
// parser. TEACHER must be a second_order_parser archive.
(import "base.libsonnet")({ type: "second_order_to_sequence_labeler" }, "labeler")
