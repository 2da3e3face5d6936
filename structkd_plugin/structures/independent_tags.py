"""A locally normalized tag distribution: every position independent, p(y) = prod_i softmax(e_i)(y_i).

This is what a softmax (MaxEnt) tagger defines. It is the linear-chain CRF with zero transitions,
start and end scores, and offers the same methods as `LinearChainCRF`, so distillation objectives
treat both students and both teachers alike; but everything has a closed form here (no dynamic
program), which keeps a softmax student as cheap as plain cross-entropy:

    log Z = sum_i logsumexp_b e_i(b)
    P(y_i = b) = softmax(e_i)(b)
    P(y_{i-1} = a, y_i = b) = P(y_{i-1} = a) P(y_i = b)   (Wang et al.'s case 3)

Shapes: `emissions [B, n, L]`, `mask [B, n]` bool (real tokens a prefix of each row).
"""

import torch

from structkd_plugin.structures.distribution import StructuredDistribution, finite
from structkd_plugin.structures.linear_chain_crf import LinearChainCRF


class IndependentTags(StructuredDistribution):
    """Independent per-position softmax distributions over L tags, batched and masked.

    # Parameters

    emissions : `torch.Tensor [B, n, L]`
        Label scores; -inf forbids a label at a position.
    mask : `torch.BoolTensor [B, n]`
        True at real tokens.
    temperature : `float`
        Divides all scores.
    """

    def __init__(self, emissions: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> None:
        self.emissions = emissions / temperature
        self.mask = mask
        self.temperature = temperature
        self._log_probs = None

    def log_probs(self) -> torch.Tensor:
        """Per-position log-probabilities `[B, n, L]` (zero at padding)."""
        if self._log_probs is None:
            log_probs = self.emissions.log_softmax(dim=-1)
            self._log_probs = log_probs.masked_fill(~self.mask[..., None], 0.0)
        return self._log_probs

    def log_partition(self) -> torch.Tensor:
        """`[B]`: sum over real positions of logsumexp of the scores."""
        return (self.emissions.logsumexp(dim=-1) * self.mask).sum(dim=-1)

    def log_score(self, tags: torch.Tensor) -> torch.Tensor:
        """`[B]`: the (tempered) score of `tags [B, n]`, padding ignored."""
        picked = self.emissions.gather(-1, tags[..., None]).squeeze(-1)
        return picked.masked_fill(~self.mask, 0.0).sum(dim=-1)

    def unary_marginals(self) -> torch.Tensor:
        """`[B, n, L]`: P(y_i = b), zero at padding."""
        return self.log_probs().exp() * self.mask[..., None]

    def marginals(self) -> torch.Tensor:
        """The factors are single tags: `unary_marginals()`."""
        return self.unary_marginals()

    def expected_score(self, marginals: torch.Tensor) -> torch.Tensor:
        """`[B]`: sum over real positions and labels of `marginals [B, n, L]` times the tempered
        scores (-inf scores, of marginal 0, count 0)."""
        return torch.where(self.mask, (marginals * finite(self.emissions)).sum(-1), 0.0).sum(-1)

    def pairwise_marginals(self) -> torch.Tensor:
        """`[B, n, L, L]`: entry i holds P(y_{i-1} = a, y_i = b); entry 0 and padding are zero."""
        unary = self.unary_marginals()
        pairwise = unary[:, :-1, :, None] * unary[:, 1:, None, :]
        # Built from unary, not pairwise: in a batch of one-word sentences pairwise is empty.
        first = unary.new_zeros(unary.size(0), 1, unary.size(-1), unary.size(-1))
        return torch.cat([first, pairwise], dim=1)

    def argmax(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`(tags [B, n], scores [B])`: each position's best label (padding tags 0)."""
        scores, tags = self.emissions.max(dim=-1)
        return tags.masked_fill(~self.mask, 0), scores.masked_fill(~self.mask, 0.0).sum(dim=-1)

    def topk(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(tags [B, k, n], scores [B, k])`: the k best distinct sequences, best first, as
        `LinearChainCRF.topk` returns them (padding, and the rows of missing sequences, all 0).

        Each position's label in any of the k best sequences is among that position's k best
        labels (any other could be swapped for each of those k, giving k sequences at least as
        good), so the k-best dynamic program runs over those candidates only: `[B, n, k]` scores
        with k x k zero transitions, not L x L, which matters for parsing-as-labeling's ~1,400 labels."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        candidate_scores, candidates = self.emissions.topk(min(k, self.emissions.size(-1)), dim=-1)
        choices, scores = IndependentTags(candidate_scores, self.mask)._as_crf().topk(k)
        tags = candidates[:, None].expand(-1, k, -1, -1).gather(-1, choices[..., None]).squeeze(-1)
        missing = ~self.mask[:, None, :] | torch.isneginf(scores)[:, :, None]
        return tags.masked_fill(missing, 0), scores

    def _as_crf(self) -> LinearChainCRF:
        labels = self.emissions.size(-1)
        return LinearChainCRF(self.emissions, self.emissions.new_zeros(labels, labels), self.mask)
