// Case 4: the `span_ner` teacher (seed 1 of bosque_span_ner.jsonnet: run that grid into
// runs/span-ner first) into a CRF
// and a softmax tagger over words and characters, `span_to_tagger` (the span distribution's exact
// tag-bigram marginals for the CRF, its per-token marginals for the softmax) against `none` and
// `posterior` (per-token marginals for both; a span scorer has no per-token scores, so `token` does
// not apply), 10% gold + 90% unlabeled and all gold, three seeds. Cells run in the order of the
// axes' names (Jsonnet sorts them), seeds varying fastest.
//   structkd experiment training_configs/experiments/bosque_span_to_tagger.jsonnet -s runs/span-to-tagger --jobs 2
local corpus = "../../../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-";
{
  base: "../distill/structural.jsonnet",
  env: { TRAIN_PATH: corpus + "train.iob2", DEV_PATH: corpus + "dev.iob2", TEST_PATH: corpus + "test.iob2" },
  teacher: { archive: "../../runs/span-ner/cells/seed=1/model.tar.gz" },
  axes: {
    "env.STUDENT": ["crf_chars", "softmax_chars"],
    objective: [{ type: "none" }, { type: "posterior" }, { type: "span_to_tagger" }],
    gold_fraction: [0.1, 1.0],  // 10% gold first: where KD matters most
    seed: [1, 2, 3],
  },
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
