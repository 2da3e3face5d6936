// Lin et al.'s score matching: a parser student's arc scores against the teacher's; a sequence
// labeler's emissions against the teacher's arc score plus relation log-probability of each label.
(import "base.libsonnet")({ type: "local_substructure" })
