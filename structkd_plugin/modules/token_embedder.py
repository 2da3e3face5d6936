"""The `TokenEmbedder` base class: one way of turning words into vectors.

An embedder owns both halves of the job, so a config names a single component for it:

* `tensorize(words)` turns a batch of sentences (`list[list[str]]`) into a dict of padded tensors.
  It runs in the data pipeline (no model, no gradients, CPU tensors) and uses only the embedder's
  own lookup tables (vocabulary, tokenizer).
* `forward(tensors, mask)` turns those tensors, moved to the model's device, into one vector per
  word: `[B, n, get_output_dim()]`, where `mask [B, n]` is True on real words (a prefix of each
  row). Vectors at padded positions are zero.

Embedders that need the `Vocabulary` take it as a constructor argument named `vocab`; tango passes
it as an extra: `TokenEmbedder.from_params(params, vocab=vocab)`.
"""

import torch
from tango.common import Registrable


class TokenEmbedder(torch.nn.Module, Registrable):
    """Base of the registered word-to-vector components (`word`, `character_cnn`,
    `transformer`)."""

    def tensorize(self, words: list[list[str]]) -> dict[str, torch.Tensor]:
        """Padded tensors for a batch of sentences (each a non-empty list of words)."""
        raise NotImplementedError

    def forward(self, tensors: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """One vector per word, `[B, n, get_output_dim()]`, from `tensorize`'s output and the
        word mask `[B, n]`."""
        raise NotImplementedError

    def get_output_dim(self) -> int:
        """The size of each word's vector."""
        raise NotImplementedError
