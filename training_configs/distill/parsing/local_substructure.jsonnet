// Lin et al.'s score matching on arc scores: parser students only (STUDENT=biaffine).
(import "base.libsonnet")({ type: "local_substructure" }, "biaffine")
