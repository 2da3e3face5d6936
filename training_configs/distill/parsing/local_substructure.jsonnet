// Lin et al.'s score matching on arc scores: parser students only (STUDENT=biaffine); a sequence
// labeler has no arc scores of its own to match.
local student = std.extVar("STUDENT");
assert student == "biaffine" : "local_substructure matches a parser's arc scores: it needs STUDENT=biaffine, not " + student;
(import "base.libsonnet")({ type: "local_substructure" }, student)
