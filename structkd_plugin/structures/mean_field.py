"""Second-order mean-field inference over head selection (sibling and grandparent factors).

The teacher of distillation case 2b is a second-order dependency parser (Wang & Tu 2020,
"Second-Order Neural Dependency Parsing with Message Passing and End-to-End Training"; SuPar's
`MFVIDependency`). Its arc marginals have no exact dynamic program, so they are approximated by a
few rounds of mean-field variational inference, unrolled as ordinary tensor operations so that the
parser can be trained end to end through them.

Tensor conventions (index 0 is the root, words are 1..n_b, the rest of a row is padding):

    arc_scores[b, h, d]     score of the arc h -> d
    sib_scores[b, h, d, s]  score of d and s (two different words) both being dependents of h
    grd_scores[b, g, h, d]  score of the chain g -> h -> d (h is a word: the root has no head)
    mask[b, i]              True for the root (i = 0) and the words 1..n_b

The model. Every word d picks a head h_d in {0..n_b} minus {d} (head selection: no tree
constraint, so cycles are possible), and an assignment scores

    S(heads) = sum_d arc[h_d, d]
             + sum over unordered pairs {d, s} with h_d = h_s of sib[h_d, d, s]
             + sum_{d with h_d != 0} grd[h_{h_d}, h_d, d]

The sibling factor belongs to the unordered pair, as in Wang & Tu, so `sib_scores` is read as
symmetric in its last two indices: sib[b, h, d, s] is the message from s to d. A scorer whose
output is not symmetric should be symmetrized first, `(sib + sib.transpose(-1, -2)) / 2`;
otherwise the update below is still the one SuPar computes, but no longer the mean-field update of
a single joint model. Chains g -> h -> d with g = d (a two-cycle, which head selection allows) are
scored by grd[d, h, d] like any other chain.

Mean field keeps one independent head distribution q_d(h) per word, starts from the first-order
softmax of the arc scores, and then `iterations` times replaces every q_d, all in parallel, by the
softmax over h of the expected score of "h_d = h" under the other words' current distributions:

    logit(h -> d) = arc[h, d]
                  + sum_{s != d} q_s(h) sib[h, d, s]     (s shares the head h with d)
                  + sum_g q_h(g) grd[g, h, d]            (d's grandparent through h; none for h = 0)
                  + sum_c q_c(d) grd[h, d, c]            (c, a dependent of d, has h as grandparent)

With zero second-order scores this is exact: the first-order softmax is the head-selection
model's true marginal. Each message is one batched vector-matrix product per (sentence, word);
the grandparent tensor is copied once (one extra tensor of its size) into a "middle word first"
layout that serves both of its messages as contiguous matrices, which is much cheaper than the
strided copies `torch.einsum` makes on every iteration.
"""

import torch

from structkd_plugin.structures.masks import check_prefix_mask


def second_order_mean_field(
    arc_scores: torch.Tensor,
    sib_scores: torch.Tensor,
    grd_scores: torch.Tensor,
    mask: torch.Tensor,
    iterations: int = 3,
) -> torch.Tensor:
    """Approximate arc marginals of the second-order head-selection model by mean field.

    Args:
        arc_scores: [B, n+1, n+1], entry [b, h, d] the score of the arc h -> d. May hold -inf
            (a forbidden arc) as long as every word keeps at least one allowed head. Entries of the
            root column, the diagonal and padding are ignored.
        sib_scores: [B, n+1, n+1, n+1], entry [b, h, d, s] the sibling score of dependents d and s
            of head h, symmetric in (d, s) (see the module docstring). Entries with d = s are
            ignored.
        grd_scores: [B, n+1, n+1, n+1], entry [b, g, h, d] the score of the chain g -> h -> d.
            All second-order entries, the ignored ones and padding included, must be finite: they
            are multiplied by probabilities that are zero there, and inf * 0 would be NaN.
        mask: [B, n+1] bool, True for the root (position 0) and the words 1..n_b of each sentence
            (a prefix); n_b >= 1.
        iterations: number of mean-field updates after the first-order start; 0 returns the
            first-order softmax over heads.

    Returns:
        [B, n+1, n+1], entry [b, h, d] = q_d(h): each real word's column sums to 1; the root
        column, padding rows and columns and the diagonal are exactly 0. Differentiable with
        respect to all three score tensors.
    """
    check_prefix_mask(mask.bool(), first="the root")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    batch, size, _ = arc_scores.shape
    cube = (batch, size, size, size)
    if sib_scores.shape != cube or grd_scores.shape != cube:
        raise ValueError(
            f"sib_scores {tuple(sib_scores.shape)} and grd_scores {tuple(grd_scores.shape)} must "
            f"both be {cube} to match arc_scores {tuple(arc_scores.shape)}"
        )
    position = torch.arange(size, device=arc_scores.device)
    has_head = mask & (position > 0)  # the words: the root and padding take no head
    allowed = mask[:, :, None] & has_head[:, None, :] & (position[:, None] != position[None, :])
    # Columns with no allowed head (root, padding) get constant logits so the softmax stays finite
    # there; multiplying by `word_column` then zeroes them.
    first_order = arc_scores.masked_fill(~allowed, float("-inf"))
    first_order = first_order.masked_fill(~has_head[:, None, :], 0.0)
    word_column = has_head[:, None, :].to(arc_scores.dtype)
    q = first_order.softmax(dim=1) * word_column
    if iterations == 0:
        return q

    rows = batch * size
    # sib_by_head[(b, h)] is the [d, s] matrix sib[b, h, :, :].
    sib_by_head = sib_scores.reshape(rows, size, size)
    # The matrix product sums over s = d too; that term, q_d(h) sib[h, d, d], is taken out again.
    sib_self = sib_scores.diagonal(dim1=2, dim2=3)
    # grd_by_middle[(b, m)] is the [x, y] matrix grd[b, x, m, :]: the chains through word m.
    grd_by_middle = grd_scores.transpose(1, 2).reshape(rows, size, size)
    for _ in range(iterations):
        # Row (b, h) of `q_rows` holds q_s(h) over s; row (b, h) of `q_cols` holds q_h(g) over g.
        q_rows = q.reshape(rows, 1, size)
        q_cols = q.transpose(1, 2).reshape(rows, 1, size)
        sibling = (q_rows @ sib_by_head.transpose(1, 2)).view(batch, size, size) - q * sib_self
        grandparent = (q_cols @ grd_by_middle).view(batch, size, size)
        # Row (b, d) of `q_rows` holds q_c(d) over c; the product is laid out [b, d, h].
        grandchild = (q_rows @ grd_by_middle.transpose(1, 2)).view(batch, size, size)
        grandchild = grandchild.transpose(1, 2)
        q = (first_order + sibling + grandparent + grandchild).softmax(dim=1) * word_column
    return q
