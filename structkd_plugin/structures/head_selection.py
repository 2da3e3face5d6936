"""Head selection: every word picks its head independently (Dozat & Manning's first-order model
before any tree constraint, `HeadSelection`), and reading per-word rows out of head-indexed score
tensors.

Tensor conventions are those of the tree distributions: `[B, n+1, n+1, ...]` indexed `[b, h, d]`
(head, dependent), position 0 the root, `mask [B, n+1]` True on the root and the words.
"""

import torch

from structkd_plugin.structures.distribution import StructuredDistribution, finite
from structkd_plugin.structures.masks import check_prefix_mask


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


class HeadSelection(StructuredDistribution):
    """Every word picks its head independently: p(heads) = prod_d softmax_h(s(h, d)). The
    distribution of a `local` biaffine parser, and of a second-order parser's mean-field result
    (`HeadSelection(log q, mask)` with `q` from `second_order_mean_field` has marginals q).

    `arc_scores [B, n+1, n+1]` (`[b, h, d]`), `mask [B, n+1]` (the root and the words); `argmax`
    is each word's best head, which need not form a tree (decode a tree with
    `maximum_spanning_arborescence` over the log marginals).
    """

    def __init__(self, arc_scores: torch.Tensor, mask: torch.Tensor) -> None:
        check_prefix_mask(mask.bool(), first="the root")
        self.arc_scores, self.mask = arc_scores, mask.bool()
        self._log_probs = head_selection_log_probs(arc_scores, self.mask)

    def _words(self) -> torch.Tensor:
        return self.mask & (torch.arange(self.mask.size(1), device=self.mask.device) > 0)

    def log_partition(self) -> torch.Tensor:
        allowed = torch.isfinite(self._log_probs)
        per_word = self.arc_scores.masked_fill(~allowed, float("-inf")).logsumexp(1)
        return torch.where(self._words(), per_word, 0.0).sum(-1)

    def marginals(self) -> torch.Tensor:
        """P(head of d = h) `[B, n+1, n+1]`: 0 into the root, on the diagonal and on padding."""
        return self._log_probs.exp()

    def expected_score(self, marginals: torch.Tensor) -> torch.Tensor:
        allowed = torch.isfinite(self._log_probs)
        return torch.where(allowed, marginals * finite(self.arc_scores), 0.0).sum((1, 2))

    def argmax(self) -> torch.Tensor:
        """Each word's best head, `heads [B, n+1]` (root and padding 0)."""
        return self._log_probs.argmax(1).masked_fill(~self._words(), 0)
