"""Head selection: every word picks its head independently (Dozat & Manning's first-order model
before any tree constraint), and reading per-word rows out of head-indexed score tensors.

Tensor conventions are those of the tree distributions: `[B, n+1, n+1, ...]` indexed `[b, h, d]`
(head, dependent), position 0 the root, `mask [B, n+1]` True on the root and the words.
"""

import torch


def gather_heads(scores: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """`scores[b, heads[b, d-1], d, ...]` for the words d = 1..n: `scores [B, n+1, n+1, ...]`
    (head, dependent, ...) and `heads [B, n]` -> `[B, n, ...]`."""
    extra = scores.shape[3:]
    index = heads.reshape(heads.shape[0], 1, heads.shape[1], *([1] * len(extra))).expand(-1, -1, -1, *extra)
    return scores[:, :, 1:].gather(1, index).squeeze(1)


def head_selection_log_probs(arc_scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log of each word's softmax over its possible heads `[B, n+1, n+1]` (`[b, h, d]` = log
    p(head of d = h)): -inf into the root, on the diagonal and on padding (mask `[B, n+1]`)."""
    size = arc_scores.shape[-1]
    position = torch.arange(size, device=arc_scores.device)
    word = mask & (position > 0)
    allowed = mask[:, :, None] & word[:, None, :] & (position[:, None] != position[None, :])
    # Columns without any head (root, padding) get constant scores, so that they stay finite
    # through the softmax, before they are set to -inf.
    scores = arc_scores.masked_fill(~allowed, float("-inf")).masked_fill(~word[:, None, :], 0.0)
    return scores.log_softmax(1).masked_fill(~allowed, float("-inf"))
