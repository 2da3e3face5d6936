// Second-order parser with end-to-end mean-field inference over sibling and grandparent scores
// (Wang & Tu 2020): biaffine_parser.jsonnet's model plus triaffine second-order scores. Decodes the
// maximum spanning tree of the mean-field marginals (`tree: "projective"` for Eisner's algorithm).
// Data paths as in biaffine_parser.jsonnet (TRAIN_PATH, DEV_PATH, TEST_PATH).
local biaffine = import "biaffine_parser.jsonnet";
biaffine {
  model+: {
    type: "second_order_parser",
    tree: "nonprojective",
    second_order_mlp_dim: 100,
    iterations: 3,
  },
  // The second-order scores are [B, n+1, n+1, n+1]: smaller batches.
  data_loader: { max_tokens: 3000, min_batches_per_epoch: 50 },
}
