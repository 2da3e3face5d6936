"""Distribution over projective dependency trees (Eisner's algorithm).

Tensor conventions are those of :mod:`structkd_plugin.structures.nonprojective_tree`:
``arc_scores [B, n+1, n+1]`` with ``[b, h, d]`` the score of h -> d and index 0 the root,
``mask [B, n+1]`` True on the root and the real words (a prefix), heads ``[B, n+1]`` long with
``heads[:, 0] = 0`` and padding 0. A tree is projective when no two arcs cross with the words, the
root first, drawn in order on a line.

Eisner's inside algorithm over spans of positions 0..n, for all sentences of the batch at once and
for all spans of one width at once (a loop over widths only). For i < j:

- incomplete span I[i, j] (I[j, i]): the arc i -> j (j -> i) and the subtrees between them;
- complete span C[i, j] (C[j, i]): i (j) heads everything in the span and its far end has no
  dependents beyond it.

With r the split point and (+) logsumexp (log Z) or max (best tree):

    split(i, j) = (+) over i <= r < j of C[i, r] + C[j, r+1]
    I[i, j] = split(i, j) + s(i -> j),   I[j, i] = split(i, j) + s(j -> i)
    C[j, i] = (+) over i <= r < j of C[r, i] + I[j, r]
    C[i, j] = (+) over i < r <= j of I[i, r] + C[r, j]

The charts are ``[B, n+1, n+1]``, right spans above the diagonal and left spans below; the spans of
one width are a diagonal, and the terms they combine are "stripes" of a chart (strided views), as
in SuPar's ``eisner``. Each sentence reads its result at its own length n_b: with several root
children, C[0, n_b]; with one, (+) over r of s(0 -> r) + C[r, 1] + C[r, n_b] (the root's single
child r spans the sentence).

The gradient of the result with respect to the arc scores gives the arc marginals (logsumexp) or
the arcs of one best tree (max). It is computed by reverse-mode differentiation written out width
by width (the outside pass): each (+) sends its output's gradient to its terms in proportion to
their softmax (logsumexp) or all of it to the maximizing term (max). This avoids recording the
loop with autograd, whose views of the whole chart make the backward pass several times slower.
When a differentiable gradient is needed (marginals of scores that require grad), the inside pass
is re-run under autograd and differentiated with ``create_graph``.
"""

import torch

from structkd_plugin.structures.nonprojective_tree import _ArcFactoredTree


class ProjectiveTree(_ArcFactoredTree):
    """Distribution over projective dependency trees of a padded batch of sentences.

    Args:
        arc_scores: ``[B, n+1, n+1]`` float, ``[b, h, d]`` = score of the arc h -> d, 0 the root.
            Self-loops, arcs into the root and arcs touching padding are ignored; -inf forbids an
            arc (at least one tree must stay possible).
        mask: ``[B, n+1]`` bool, True on the root and the real words (a prefix).
        single_root: if True (default), exactly one word is attached to the root.

    Methods: ``log_partition() -> [B]``, ``marginals() -> [B, n+1, n+1]``,
    ``argmax() -> heads [B, n+1]`` (see the module docstring for the conventions).
    """

    def _log_partition(self, arc_scores):
        return _Eisner.apply(self._finite_scores(arc_scores), self.mask, self.single_root)

    def _decode(self):
        scores = self._finite_scores(self.arc_scores.detach())
        best, charts = _inside(scores, self.mask, self.single_root, maximize=True)
        ones = torch.ones_like(best)
        in_best_tree = _outside(scores, self.mask, self.single_root, True, best, charts, ones)
        words = self.mask.clone()
        words[:, 0] = False
        return in_best_tree.argmax(1).masked_fill(~words, 0)

    def _finite_scores(self, arc_scores):
        # -inf becomes a finite stand-in so that no gradient turns into NaN: a span sums at most
        # 2(n+1) terms, so nothing overflows, and exp() of it next to any real score is exactly 0.
        # Arcs touching padding only enter spans that are never read; they are zeroed so that
        # whatever they hold cannot overflow either.
        floor = torch.finfo(arc_scores.dtype).min / (4 * arc_scores.shape[-1])
        real = self.mask[:, :, None] & self.mask[:, None, :]
        return arc_scores.clamp_min(floor).masked_fill(~real, 0.0)


class _Eisner(torch.autograd.Function):
    """log Z ``[B]`` of finite ``scores [B, N, N]``, with the outside pass as its backward."""

    @staticmethod
    def forward(ctx, scores, mask, single_root):
        log_z, charts = _inside(scores, mask, single_root, maximize=False)
        ctx.save_for_backward(scores, mask, log_z, *charts)
        ctx.single_root = single_root
        return log_z

    @staticmethod
    def backward(ctx, grad_log_z):
        scores, mask, log_z, *charts = ctx.saved_tensors
        if torch.is_grad_enabled():
            # A differentiable gradient is wanted (create_graph): differentiate a recorded pass.
            with torch.enable_grad():
                recorded, _ = _inside(scores, mask, ctx.single_root, maximize=False)
            (grad_scores,) = torch.autograd.grad(recorded, scores, grad_log_z, create_graph=True)
        else:
            grad_scores = _outside(scores, mask, ctx.single_root, False, log_z, charts, grad_log_z)
        return grad_scores, None, None


def _stripe(chart, spans, width, offset, along_row):
    """Strided view ``[B, spans, width]`` of a contiguous ``chart [B, N, N]``.

    Entry ``[b, i, k]`` is ``chart[b, offset[0] + i, offset[1] + i + k]`` if ``along_row``, else
    ``chart[b, offset[0] + i + k, offset[1] + i]``.
    """
    size = chart.shape[-1]
    return chart.as_strided(
        (chart.shape[0], spans, width),
        (chart.stride(0), size + 1, 1 if along_row else size),
        chart.storage_offset() + offset[0] * size + offset[1],
    )


def _terms(kind, incomplete, complete, spans, width):
    """The two stripes ``[B, spans, width]`` whose sum goes into the (+) of all spans (i, j) of a
    width, over the split points r (see the module docstring); ``kind`` is "split", "left"
    (C[j, i]) or "right" (C[i, j]). Also used on the gradient charts, which share the layout.
    """
    if kind == "split":  # C[i, r] + C[j, r+1], i <= r < j
        return (
            _stripe(complete, spans, width, (0, 0), True),
            _stripe(complete, spans, width, (width, 1), True),
        )
    if kind == "left":  # C[r, i] + I[j, r], i <= r < j
        return (
            _stripe(complete, spans, width, (0, 0), False),
            _stripe(incomplete, spans, width, (width, 0), True),
        )
    # right: I[i, r] + C[r, j], i < r <= j
    return (
        _stripe(incomplete, spans, width, (0, 1), True),
        _stripe(complete, spans, width, (1, width), False),
    )


def _combine(terms, maximize):
    return terms.max(-1).values if maximize else terms.logsumexp(-1)


def _inside(scores, mask, single_root, maximize):
    """Eisner's inside pass over finite ``scores [B, N, N]`` (also runs under autograd).

    Returns the result ``[B]`` and the charts (incomplete, complete, split) ``[B, N, N]``; the
    split values are kept on the upper diagonals of the third.
    """
    size = scores.shape[-1]
    incomplete, complete, split_chart = (scores.new_zeros(scores.shape) for _ in range(3))
    for width in range(1, size):
        spans = size - width
        first, second = _terms("split", incomplete, complete, spans, width)
        split = _combine(first + second, maximize)
        split_chart.diagonal(width, 1, 2).copy_(split)
        incomplete.diagonal(width, 1, 2).copy_(split + scores.diagonal(width, 1, 2))
        incomplete.diagonal(-width, 1, 2).copy_(split + scores.diagonal(-width, 1, 2))
        first, second = _terms("left", incomplete, complete, spans, width)
        complete.diagonal(-width, 1, 2).copy_(_combine(first + second, maximize))
        first, second = _terms("right", incomplete, complete, spans, width)
        complete.diagonal(width, 1, 2).copy_(_combine(first + second, maximize))

    lengths = mask.sum(1) - 1
    if single_root:
        result = _combine(_root_child_terms(scores, complete, mask, lengths), maximize)
    else:
        result = complete[:, 0].gather(1, lengths[:, None]).squeeze(1)
    return result, (incomplete, complete, split_chart)


def _root_child_terms(scores, complete, mask, lengths):
    """``[B, N]``: s(0 -> r) + C[r, 1] + C[r, n_b] for each word r (a huge negative elsewhere)."""
    size = scores.shape[-1]
    right = complete.gather(2, lengths[:, None, None].expand(-1, size, 1)).squeeze(2)
    terms = scores[:, 0] + complete[:, :, 1] + right
    words = mask.clone()
    words[:, 0] = False
    return terms.masked_fill(~words, torch.finfo(scores.dtype).min)


def _term_weights(terms, result, maximize):
    """d result / d terms, for result = (+) of ``terms`` over their last dimension."""
    if maximize:
        return torch.nn.functional.one_hot(terms.argmax(-1), terms.shape[-1]).to(terms.dtype)
    return (terms - result[..., None]).exp()


def _outside(scores, mask, single_root, maximize, result, charts, grad_result):
    """Gradient ``[B, N, N]`` of the inside ``result`` w.r.t. ``scores``, given ``grad_result [B]``.

    Reverse-mode differentiation of ``_inside``, width by width from the widest: by then the
    gradients of a width's complete spans are final (only wider spans use them), and those of its
    incomplete spans are final once its complete spans are done.
    """
    incomplete, complete, split_chart = charts
    grad_incomplete, grad_complete, grad_scores = (torch.zeros_like(scores) for _ in range(3))
    size = scores.shape[-1]
    batch = torch.arange(scores.shape[0], device=scores.device)
    lengths = mask.sum(1) - 1
    if single_root:
        terms = _root_child_terms(scores, complete, mask, lengths)
        weights = _term_weights(terms, result, maximize) * grad_result[:, None]
        grad_scores[:, 0] = weights
        grad_complete[:, :, 1] += weights
        grad_complete[batch[:, None], torch.arange(size, device=scores.device), lengths[:, None]] += weights
    else:
        grad_complete[batch, 0, lengths] = grad_result

    for width in range(size - 1, 0, -1):
        spans = size - width
        step = (incomplete, complete, grad_incomplete, grad_complete, spans, width, maximize)
        _backpropagate("right", *step, complete.diagonal(width, 1, 2), grad_complete.diagonal(width, 1, 2))
        _backpropagate("left", *step, complete.diagonal(-width, 1, 2), grad_complete.diagonal(-width, 1, 2))
        grad_right_arcs = grad_incomplete.diagonal(width, 1, 2)
        grad_left_arcs = grad_incomplete.diagonal(-width, 1, 2)
        grad_scores.diagonal(width, 1, 2).add_(grad_right_arcs)
        grad_scores.diagonal(-width, 1, 2).add_(grad_left_arcs)
        _backpropagate("split", *step, split_chart.diagonal(width, 1, 2), grad_right_arcs + grad_left_arcs)
    return grad_scores


def _backpropagate(
    kind, incomplete, complete, grad_incomplete, grad_complete, spans, width, maximize, result, grad
):
    """Add the gradient ``grad [B, spans]`` of one width's (+) results to the gradient charts."""
    first, second = _terms(kind, incomplete, complete, spans, width)
    weights = _term_weights(first + second, result, maximize) * grad[..., None]
    for grad_stripe in _terms(kind, grad_incomplete, grad_complete, spans, width):
        grad_stripe += weights
