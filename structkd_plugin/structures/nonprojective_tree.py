"""Distribution over non-projective dependency trees (Matrix-Tree theorem, Chu-Liu-Edmonds).

Tensor conventions (shared with :mod:`structkd_plugin.structures.projective_tree`):

- ``arc_scores [B, n+1, n+1]``: entry ``[b, h, d]`` is the score of the arc h -> d; index 0 is
  the root. Self-loops, arcs into the root and arcs touching padding are ignored; -inf forbids an
  arc (at least one tree must stay possible).
- ``mask [B, n+1]`` bool: True on the root (position 0) and on the real words 1..n_b (a prefix),
  False on padding. Every sentence has at least one word.
- A tree gives every real word d exactly one head in 0..n_b, without cycles. With
  ``single_root=True`` exactly one word is attached to the root. Its score is the sum of its arc
  scores and p(tree) = exp(score) / Z.
- Heads tensors are ``[B, n+1]`` long: ``heads[b, d]`` is the head of word d; ``heads[:, 0] = 0``
  and padding positions are 0.

log Z by the Matrix-Tree theorem (Koo et al., 2007). With arc weights A[h, d] = exp(score), the
Laplacian over the words is L[d, d] = sum of the weights into d, L[h, d] = -A[h, d]. Multi-root:
Z = det(L). Single root: the root's arcs are left out of the diagonal, which makes L singular,
and its first row is replaced by the root weights A[0, d]. Every dependent's incoming scores are
shifted by their maximum m_d before exponentiating, which scales column d of L, so
log Z = log det + sum_d m_d; the determinant is then taken in float64.

That is not enough when the arcs nearly close a set of words on itself (e.g. two words that
prefer each other as heads by a wide margin over every arc from outside), or, for a single root,
when several words strongly prefer the root: the determinant then comes out of cancellations in
the LU factorization, or underflows. The precision lost is about -log of the determinant of the
Laplacian rescaled to unit columns (log det minus the log of every column's total weight), so
sentences where that exceeds _MAX_PRECISION_LOSS are recomputed by Gaussian elimination of the
Laplacian in log space (float64): eliminating word k turns the weights into
A'[h, d] = A[h, d] + A[h, k] A[k, d] / D_k, with D_k the total weight into k, and Z is the
product of the D_k. Only sums of positive terms occur (the diagonal is recomputed from the arcs
instead of being updated by a subtraction, as in the GTH algorithm), so it is accurate at any
scale; it loops over words and runs only for those sentences.

Precision: float32 scores give results correct to float32 precision relative to the scores'
magnitude (up to +-1e4); float64 scores lose at most about 1e-8 relatively on log Z (marginals:
about 1e-7 absolute). If no tree is possible, log Z is -inf or a huge negative number.

Marginals P(h -> d) are the gradient of log Z with respect to the arc scores. argmax() returns
the maximum spanning arborescence (:mod:`structkd_plugin.structures.mst`).
"""

import functools
import math

import torch

from structkd_plugin.structures.distribution import StructuredDistribution, finite
from structkd_plugin.structures.masks import check_prefix_mask
from structkd_plugin.structures.mst import maximum_spanning_arborescence

# Sentences whose float64 determinant may lose more than this many nats of relative precision
# (about 1e-16 * exp(18) = 7e-9) are recomputed by log-space elimination.
_MAX_PRECISION_LOSS = 18.0


class _ArcFactoredTree(StructuredDistribution):
    """Shared part of the tree distributions: arguments, caching, marginals by autograd.

    Subclasses implement ``_log_partition(arc_scores) -> [B]`` (differentiable) and
    ``_decode() -> heads [B, n+1]``. One forward pass serves both log Z and the marginals: it is
    always recorded by autograd, on ``arc_scores`` itself when that requires grad (and grad mode
    is on at the first call), otherwise on a detached copy.
    """

    def __init__(self, arc_scores, mask, single_root=True):
        if arc_scores.dim() != 3 or arc_scores.shape[1] != arc_scores.shape[2]:
            raise ValueError(f"arc_scores must be [B, n+1, n+1], got {tuple(arc_scores.shape)}")
        if mask.shape != arc_scores.shape[:2]:
            raise ValueError(f"mask must be {tuple(arc_scores.shape[:2])}, got {tuple(mask.shape)}")
        check_prefix_mask(mask.bool(), first="the root")
        self.arc_scores = arc_scores
        self.mask = mask.bool()
        self.single_root = single_root
        self._leaf = None  # the tensor the recorded log Z is differentiated against
        self._log_z = None
        self._marginals = None
        self._heads = None

    def _recorded_log_partition(self):
        if self._log_z is None:
            differentiable = self.arc_scores.requires_grad and torch.is_grad_enabled()
            self._leaf = self.arc_scores if differentiable else self.arc_scores.detach().requires_grad_()
            with torch.enable_grad():
                self._log_z = self._log_partition(self._leaf)
        return self._leaf, self._log_z

    def log_partition(self):
        """log Z of every sentence, ``[B]``; differentiable w.r.t. ``arc_scores``; cached."""
        leaf, log_z = self._recorded_log_partition()
        return log_z if leaf is self.arc_scores else log_z.detach()

    def marginals(self):
        """Arc marginals P(h -> d), ``[B, n+1, n+1]``; cached.

        Zero on the diagonal, in column 0 (into the root) and on padding. Computed as the gradient
        of log Z, so call it before back-propagating through ``log_partition()``. Differentiable
        (double backward) when ``arc_scores`` requires grad; also available under
        ``torch.no_grad()``.
        """
        if self._marginals is None:
            leaf, log_z = self._recorded_log_partition()
            with torch.enable_grad():
                total = log_z.sum()
            (self._marginals,) = torch.autograd.grad(total, leaf, create_graph=leaf is self.arc_scores)
        return self._marginals

    def expected_score(self, marginals):
        """``sum P(h -> d) s(h, d)`` over arcs, for arc marginals ``[B, n+1, n+1]`` of any tree
        distribution over the same sentences (zero where no arc can be) -> ``[B]``."""
        return (marginals * finite(self.arc_scores)).sum((1, 2))

    def argmax(self):
        """Highest-scoring tree of every sentence, heads ``[B, n+1]`` long (root and padding 0)."""
        if self._heads is None:
            self._heads = self._decode()
        return self._heads


class NonProjectiveTree(_ArcFactoredTree):
    """Distribution over non-projective dependency trees of a padded batch of sentences.

    Args:
        arc_scores: ``[B, n+1, n+1]`` float, ``[b, h, d]`` = score of the arc h -> d, 0 the root.
        mask: ``[B, n+1]`` bool, True on the root and the real words (a prefix).
        single_root: if True (default), exactly one word is attached to the root.

    Methods: ``log_partition() -> [B]``, ``marginals() -> [B, n+1, n+1]``,
    ``argmax() -> heads [B, n+1]`` (see the module docstring for the conventions).
    """

    def _log_partition(self, arc_scores):
        size = arc_scores.shape[-1]
        not_word = ~self.mask
        not_word[:, 0] = True
        eye, fill = _laplacian_constants(size, self.single_root, arc_scores.dtype, arc_scores.device)
        forbidden = ~self.mask[:, :, None] | not_word[:, None, :] | eye  # [B, head, dependent]
        scores = torch.where(forbidden, fill, arc_scores)

        # The shift is a constant per column of the Laplacian, so it needs no gradient.
        shift = scores.detach().amax(1).masked_fill(not_word, 0.0)
        weights = (scores - shift[:, None, :]).exp().double()
        if self.single_root:
            into = weights[:, 1:].sum(1)
            column_total = into.detach() + weights[:, 0].detach() + not_word
        else:
            into = weights.sum(1)
            column_total = into.detach() + not_word
        laplacian = torch.diag_embed(into + not_word) - weights
        sign, log_det = torch.linalg.slogdet(laplacian)

        # log det minus the log of every column's total weight is the log determinant of the
        # Laplacian with unit columns; the LU factorization loses about that many nats of
        # relative precision (through cancellations in its pivots).
        conditioning = log_det - column_total.log().sum(-1)
        reliable = (sign == (-1 if self.single_root else 1)) & (conditioning > -_MAX_PRECISION_LOSS)
        if not reliable.all():
            # Swap in the identity for those sentences (keeping the determinant's gradient
            # finite) and take their log Z from the elimination instead.
            laplacian = torch.where(reliable[:, None, None], laplacian, eye.to(laplacian.dtype))
            log_det = torch.linalg.slogdet(laplacian)[1]
            recompute = (~reliable).nonzero().squeeze(1)
            kept = int(self.mask[recompute].sum(1).max())  # positions up to the longest of them
            recomputed_scores = arc_scores[recompute, :kept, :kept].masked_fill(
                forbidden[recompute, :kept, :kept], -math.inf
            )
            exact = _log_partition_by_elimination(
                recomputed_scores.double(), ~not_word[recompute, :kept], self.single_root
            ).to(scores.dtype)
            return (log_det.to(scores.dtype) + shift.sum(-1)).index_copy(0, recompute, exact)
        return log_det.to(scores.dtype) + shift.sum(-1)

    def _decode(self):
        return maximum_spanning_arborescence(self.arc_scores, self.mask, self.single_root)


@functools.lru_cache(maxsize=64)
def _laplacian_constants(size, single_root, dtype, device):
    """The identity ``[size, size]`` (bool) and the scores given to forbidden arcs.

    The Laplacian is built over all n+1 positions; column 0 (arcs into the root) and the padded
    words get a 1 on the diagonal, so the determinant is that of the words' block. For a single
    root, column 0 also holds a fake arc "word 1 -> root" of score 0 (weight 1): with r the root
    weights and L_w the words-only Laplacian, expanding along column 0 gives
    det = 2 det(L_w - e_1 r^T / 2) = -r^T adj(L_w) e_1 (L_w is singular), minus Koo et al.'s
    determinant (L_w with its first row replaced by r): its sign is -1 and |det| is used.
    """
    eye = torch.eye(size, dtype=torch.bool, device=device)
    fill = torch.full((size, size), -math.inf, dtype=dtype, device=device)
    if single_root:
        fill[1, 0] = 0.0
    return eye, fill


def _log_partition_by_elimination(scores, words, single_root):
    """log Z by Gaussian elimination of the Laplacian in log space (see the module docstring).

    Args:
        scores: ``[B, n+1, n+1]`` arc scores (head, dependent), -inf where forbidden (arcs into
            the root, self-loops and padding included).
        words: ``[B, n+1]`` bool, the real words (False at the root).
        single_root: root arcs count only for the last word left (it is the root's one child).

    Returns:
        ``[B]`` log Z.
    """
    batch_size, size, _ = scores.shape
    # A very negative finite stand-in for -inf, so that no gradient turns into NaN; sums of a few
    # of them stay finite and exp() of them relative to any real score is exactly 0.
    floor = torch.finfo(scores.dtype).min / 8
    log_weights = scores.clamp_min(floor)
    eye = torch.eye(size, dtype=torch.bool, device=scores.device)
    nodes = torch.arange(size, device=scores.device)
    remaining = words
    log_z = scores.new_zeros(batch_size)
    for _ in range(size - 1):
        left = remaining.sum(1)
        counted_heads = remaining.clone()
        counted_heads[:, 0] = (left == 1) | (not single_root)
        incoming = log_weights.masked_fill(~counted_heads[:, :, None], floor).logsumexp(1)
        # Eliminating the word with the largest incoming weight never divides by zero.
        pivot = incoming.masked_fill(~remaining, -math.inf).argmax(1)
        log_pivot = incoming.gather(1, pivot[:, None])
        log_z = log_z + torch.where(left > 0, log_pivot[:, 0], 0.0)
        index = pivot[:, None, None]
        into_pivot = log_weights.gather(2, index.expand(batch_size, size, 1))
        out_of_pivot = log_weights.gather(1, index.expand(batch_size, 1, size))
        through_pivot = (into_pivot + out_of_pivot - log_pivot[:, :, None]).clamp_min(floor)
        # logsumexp rather than logaddexp, whose second derivative is NaN next to the stand-in.
        log_weights = torch.stack([log_weights, through_pivot]).logsumexp(0).masked_fill(eye, floor)
        remaining = remaining & (nodes != pivot[:, None])
    return log_z
