// Case 4: a span_ner teacher (training_configs/ner/span_ner.jsonnet) distilled into a tagger
// through the exact tag marginals of its span distribution (tag bigrams for a CRF student).
(import "base.libsonnet")({ type: "span_to_tagger" })
