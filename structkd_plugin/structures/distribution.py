"""The one face every structure shows, in the manner of torch-struct's distributions and SuPar's
`supar/structs/dist.py`.

Each structure is a batch of distributions p(y) = exp(S(y) - log Z) whose score S(y) is a sum of
factor scores (tags and tag bigrams, arcs, labeled spans). Each answers:

- `log_partition()` `[B]`;
- `marginals()`: P(factor is in y), in the layout `expected_score` reads;
- `expected_score(marginals)` `[B]`: sum over factors u of marginals(u) * s(u), this
  distribution's (finite) factor scores weighed by any distribution's marginals over the same
  factors;
- `argmax()`: the best structure; `topk(k)`: the k best, where that is tractable;
- `entropy()`, `cross_entropy(other)` = -E_self[log p_other], `kl(other)`, all `[B]`.

The last three follow from the others, exactly: log p(y) = S(y) - log Z, so
-E_p[log q] = log Z_q - E_p[S_q(y)] = log Z_q - sum_u P_p(u) s_q(u). Structured KD (Wang et al.) is
that cross-entropy with the teacher as p and the student as q; with only a teacher's marginals at
hand (a cached teacher), it is `student.log_partition() - student.expected_score(marginals)`.
"""

import torch

__all__ = ["StructuredDistribution", "finite"]


class StructuredDistribution:
    """Base of the structures: subclasses implement `log_partition`, `marginals`,
    `expected_score` and `argmax` (and `topk` where tractable)."""

    def log_partition(self) -> torch.Tensor:
        raise NotImplementedError

    def marginals(self):
        raise NotImplementedError

    def expected_score(self, marginals) -> torch.Tensor:
        raise NotImplementedError

    def argmax(self):
        raise NotImplementedError

    def topk(self, k: int):
        raise NotImplementedError(f"{type(self).__name__} has no tractable top-k")

    def entropy(self) -> torch.Tensor:
        """H(p) = log Z - E_p[S(y)], `[B]` (nats)."""
        return self.log_partition() - self.expected_score(self.marginals())

    def cross_entropy(self, other: "StructuredDistribution") -> torch.Tensor:
        """-E_self[log p_other], `[B]`: `other` is a distribution of the same structure over the
        same sentences (it may be tempered, differently scored, or the student of this teacher)."""
        if type(other) is not type(self):
            raise TypeError(f"cross_entropy needs two {type(self).__name__}s, not a {type(other).__name__}")
        return other.log_partition() - other.expected_score(self.marginals())

    def kl(self, other: "StructuredDistribution") -> torch.Tensor:
        """KL(self || other) = cross_entropy(other) - entropy(), `[B]`."""
        return self.cross_entropy(other) - self.entropy()


def finite(scores: torch.Tensor) -> torch.Tensor:
    """`scores` with -inf (a forbidden factor, of marginal 0) as 0, so that 0 * score is 0, not NaN."""
    return torch.where(torch.isfinite(scores), scores, torch.zeros_like(scores))
