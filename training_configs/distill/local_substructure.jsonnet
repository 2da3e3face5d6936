// Lin et al.'s local score matching (MSE on emissions + transitions); needs teacher and student to share labels.
(import "base.libsonnet")({ type: "local_substructure", transitions: true })
