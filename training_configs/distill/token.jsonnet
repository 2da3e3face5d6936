// Hinton's token-level KD on emissions (ignores the teacher's transitions).
(import "base.libsonnet")({ type: "token" })
