// The raw-text recipe: a strong parser teacher (e.g. biaffine_minilm, trained until dev LAS stops
// rising) labels the gold training sentences and raw, untokenized text; a small biaffine student
// (words + characters, BiLSTM) learns from both with structural KD.
// Ext vars, besides base.libsonnet's TEACHER, TRAIN_PATH, DEV_PATH, TEST_PATH:
//   UNLABELED_PATH: raw text, one sentence per line (a glob or comma-separated files, read in
//     that order: put the text closest to the gold data's domain first;
//     "" for none: the same student on the gold sentences alone, the tables' baseline rows);
//   MAX_UNLABELED: how many of its sentences to use ("0" for all).
// The text is tokenized by spaCy's rule-based English tokenizer, the tokenizer the exported spaCy
// pipeline sees at inference. An epoch is one pass over the gold batches with as many unlabeled
// batches interleaved; the unlabeled batches run on across epochs, so every raw sentence is seen
// once before any repeats. Training stops when dev LAS has not risen for `patience` epochs.
local unlabeled_path = std.extVar("UNLABELED_PATH");
local max_unlabeled = std.parseInt(std.extVar("MAX_UNLABELED"));
local raw_text = {
  unlabeled_data_path: unlabeled_path,
  unlabeled_dataset_reader: {
    type: "plain_text",
    tokenizer: "spacy",
    lang: "en",
    max_sentences: if max_unlabeled > 0 then max_unlabeled else null,
    min_words: 2,
    max_words: 100,
    deduplicate: true,
    skip_bad_lines: true,
  },
  data_loader+: { unlabeled_ratio: 1.0 },
};
(import "base.libsonnet")({ type: "structural" }, "biaffine") + (if unlabeled_path == "" then {} else raw_text) + {
  trainer+: { num_epochs: 60, patience: 5 },
}
