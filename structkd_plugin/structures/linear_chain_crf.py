"""Linear-chain conditional random field over padded batches of tag sequences.

Conventions
-----------
``B`` sentences padded to ``n`` positions, ``L`` tags. ``mask [B, n]`` is True on real tokens,
which form a non-empty prefix of every row (``n_b`` tokens). Tag sequence ``y`` of sentence ``b``
scores

    S(y) = start[y_1] + sum_i e_i(y_i) + sum_{i>1} A_i(y_{i-1}, y_i) + end[y_{n_b}]

and has probability ``p(y) = exp(S(y) / T) / Z`` at temperature ``T``. The constructor divides every
score by ``T`` once; everything the class returns (log Z, scores, marginals, entropy, decodes) is
about that tempered distribution. A ``-inf`` score forbids a tag, a transition, a first or a last
tag (this is how BIO-style constraints are passed).

Algorithms
----------
Every dynamic program loops over positions only; each step is a few batched operations over
``[B, L, L]``. Padded positions leave a sentence's state unchanged.

* ``log_partition``: the forward algorithm on the *edge scores* ``edge_i(a, b) = A_i(a, b) + e_i(b)``
  (one ``[B, n, L, L]`` tensor, entry 0 unused): ``alpha_1 = start + e_1``,
  ``alpha_i(b) = logsumexp_a(alpha_{i-1}(a) + edge_i(a, b))``, ``log Z = logsumexp(alpha_n + end)``.
* Marginals: autograd records the forward algorithm and one ``torch.autograd.grad`` call returns
  ``d log Z / d edge_i(a, b) = P(y_{i-1}=a, y_i=b)`` and ``d log Z / d alpha_1(b) = P(y_1=b)``;
  every later unary marginal is a sum of pairwise ones. On CPU this is faster than an explicit
  forward-backward. When the inputs require grad (and grad mode is on) the call uses
  ``create_graph=True``, so the marginals are themselves differentiable.
* ``entropy``: ``H = log Z - E[S / T]``, the expectation taken with the marginals.
* ``argmax`` (Viterbi): the max-product forward algorithm with back-pointers, then one backtracking loop.
* ``topk``: each (position, tag) keeps its ``k`` best partial sequences, sorted. Those of tag ``b``
  at position ``i`` are the ``k`` best of ``{best_{i-1}(a)[r] + A_i(a, b)} + e_i(b)`` over previous
  tags ``a`` and ranks ``r``: a merge of ``L`` sorted lists, done in ``k`` rounds that each take the
  best remaining head (cheaper on CPU than ``topk`` over all ``L * k`` candidates). Different
  ``(a, r)`` are different partial sequences, so no sequence is returned twice.

Forbidden scores. ``logsumexp``'s gradient is NaN where its result is ``-inf`` (a tag no allowed path
reaches), even when the incoming gradient is 0. The sum-product code therefore replaces ``-inf`` by
the finite ``_FORBIDDEN = -1e30``: far below any real sequence score, far enough from float32's
limit (-3.4e38) that sums of several stay finite, and ``exp(-1e30 - log Z)`` is exactly 0. The
max-product decoders keep the real ``-inf``, so sequences that do not exist score ``-inf``.

Large scores. Before the forward algorithm, each position's emissions, each transition matrix,
``start`` and ``end`` are shifted to a maximum of 0 (the shifts are added back to log Z). No
probability changes, but alpha stays small when large scores lie close together (all near -1e4,
say), where float32 would otherwise lose the differences that marginals and entropy depend on.

CPU note. The decoders take maxima with ``argmax`` + ``gather``: ``Tensor.max(dim)`` starts a
thread-pool job even for tiny tensors, which costs milliseconds per call when the other cores are
busy.
"""

import itertools

import torch
import torch.nn.functional as F

from structkd_plugin.structures.distribution import StructuredDistribution, finite
from structkd_plugin.structures.masks import check_prefix_mask

_FORBIDDEN = -1e30


def _max_and_argmax(scores, dim):
    """``(max, argmax)`` of ``scores`` along ``dim``, which is kept with size 1 (see the CPU note)."""
    index = scores.argmax(dim, keepdim=True)
    return scores.gather(dim, index), index


class LinearChainCRF(StructuredDistribution):
    """A batch of linear-chain CRF distributions over tag sequences.

    Args:
        emissions: ``[B, n, L]`` float scores ``e_i(y)`` of tag ``y`` at position ``i``.
        transitions: ``[L, L]`` scores ``A(from, to)`` shared by all positions, or ``[B, n, L, L]``
            per position, where entry ``i`` scores the move from position ``i-1`` into position
            ``i`` (entry 0 is ignored).
        mask: ``[B, n]`` bool, True on real tokens (a non-empty prefix of each row).
        start: ``[L]`` scores of the first tag, or None for zeros.
        end: ``[L]`` scores of the last real tag, or None for zeros.
        temperature: positive number dividing every score.

    Attributes ``emissions``, ``transitions``, ``start``, ``end`` hold the tempered scores (zeros
    for a missing start or end), ``mask`` the mask and ``lengths [B]`` the sentence lengths.

    Results are computed on first use and cached: ask one object for everything you need. The
    marginals and the entropy reuse the autograd graph that ``log_partition`` records, so when the
    inputs require grad, request them before calling ``backward()`` through ``log_partition()``
    (or call that ``backward`` with ``retain_graph=True``).
    """

    def __init__(self, emissions, transitions, mask, start=None, end=None, temperature=1.0):
        if emissions.dim() != 3:
            raise ValueError(f"emissions must be [B, n, L], got shape {tuple(emissions.shape)}")
        batch_size, length, num_tags = emissions.shape
        if mask.dtype != torch.bool or mask.shape != (batch_size, length):
            raise ValueError(f"mask must be a bool tensor of shape {(batch_size, length)}")
        check_prefix_mask(mask, first="the first word")
        if transitions.shape not in ((num_tags, num_tags), (batch_size, length, num_tags, num_tags)):
            raise ValueError(
                f"transitions must be [L, L] or [B, n, L, L] with (B, n, L) = "
                f"{(batch_size, length, num_tags)}, got shape {tuple(transitions.shape)}"
            )
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        start = emissions.new_zeros(num_tags) if start is None else start
        end = emissions.new_zeros(num_tags) if end is None else end
        for name, scores in (("start", start), ("end", end)):
            if scores.shape != (num_tags,):
                raise ValueError(f"{name} must have shape [{num_tags}], got {tuple(scores.shape)}")

        self._inputs = (emissions, transitions, start, end)
        if temperature != 1.0:
            emissions, transitions = emissions / temperature, transitions / temperature
            start, end = start / temperature, end / temperature
        self.emissions, self.transitions, self.start, self.end = emissions, transitions, start, end
        self.mask = mask
        self.lengths = mask.sum(dim=1)
        # Keyed by whether the results are differentiable w.r.t. the inputs.
        self._forward_cache = {}
        self._marginal_cache = {}

    # ----------------------------------------------------------------------------------------
    # Scores of given sequences

    def log_score(self, tags):
        """Tempered score ``S(y) / T`` of ``tags [B, n]`` (long, padding ignored) -> ``[B]``."""
        batch_size, length = tags.shape
        tags = tags.masked_fill(~self.mask, 0)
        emission = self.emissions.gather(2, tags[:, :, None]).squeeze(2)
        if self.transitions.dim() == 2:
            transition = self.transitions[tags[:, :-1], tags[:, 1:]]
        else:
            batch = torch.arange(batch_size, device=tags.device)[:, None]
            position = torch.arange(1, length, device=tags.device)
            transition = self.transitions[batch, position, tags[:, :-1], tags[:, 1:]]
        last_tag = tags.gather(1, (self.lengths - 1)[:, None]).squeeze(1)
        # torch.where rather than multiplying by the mask: padding may score -inf, and -inf * 0 = NaN.
        return (
            self.start[tags[:, 0]]
            + torch.where(self.mask, emission, 0.0).sum(1)
            + torch.where(self.mask[:, 1:], transition, 0.0).sum(1)
            + self.end[last_tag]
        )

    # ----------------------------------------------------------------------------------------
    # Sum-product: log partition, marginals, entropy

    def log_partition(self):
        """``log Z`` of each sentence's tempered distribution -> ``[B]``."""
        forward = self._forward()
        return forward["log_z"] if forward["differentiable"] else forward["log_z"].detach()

    def unary_marginals(self):
        """``P(y_i = a)`` at entry ``[:, i, a]`` -> ``[B, n, L]``, zero at padding."""
        return self._marginals()["unary"]

    def pairwise_marginals(self):
        """``P(y_{i-1} = a, y_i = b)`` at entry ``[:, i, a, b]`` -> ``[B, n, L, L]``.

        Entry 0 and padded positions are zero.
        """
        return self._marginals()["pairwise"]

    def marginals(self):
        """``(unary [B, n, L], pairwise [B, n, L, L])``: the factors' marginals (see
        ``unary_marginals`` and ``pairwise_marginals``; the first and last tags' are unary ones)."""
        return self.unary_marginals(), self.pairwise_marginals()

    def expected_score(self, marginals):
        """``sum_u P(u) s(u)`` over this CRF's tempered factors (emissions, transitions, start,
        end) for marginals ``(unary, pairwise)`` of any distribution over the same sentences ->
        ``[B]``. Forbidden (-inf) factors count 0: their marginals are 0."""
        unary, pairwise = marginals
        num_tags = unary.shape[-1]
        emission = torch.where(self.mask, (unary * finite(self.emissions)).sum(-1), 0.0).sum(1)
        transition = (pairwise * finite(self.transitions)).sum((-1, -2)).sum(1)
        last = unary.gather(1, (self.lengths - 1)[:, None, None].expand(-1, 1, num_tags)).squeeze(1)
        return emission + transition + (unary[:, 0] * finite(self.start)).sum(1) + (last * finite(self.end)).sum(1)

    def entropy(self):
        """Shannon entropy (nats) of each sentence's tempered distribution -> ``[B]``: the base's
        ``log Z - E[S]``, computed on the forward pass's shifted scores for stability."""
        forward, marginals = self._forward(), self._marginals()
        num_tags = self.emissions.shape[-1]
        last_unary = marginals["unary"].gather(
            1, (self.lengths - 1)[:, None, None].expand(-1, 1, num_tags)
        ).squeeze(1)
        # H = log Z - E[S / T] on the shifted, clamped scores of the forward pass: shifts cancel
        # (the large terms with them), and zero marginals of forbidden entries meet -1e30 rather
        # than -inf (0 * -inf = NaN).
        expected_score = (
            (marginals["pairwise"] * forward["edges"]).sum((1, 2, 3))
            + (marginals["unary"][:, 0] * forward["first"]).sum(1)
            + (last_unary * forward["last"]).sum(1)
        )
        entropy = forward["shifted_log_z"] - expected_score
        return entropy if forward["differentiable"] else entropy.detach()

    def _differentiable(self):
        return torch.is_grad_enabled() and any(t.requires_grad for t in self._inputs)

    def _forward(self):
        """The forward algorithm, recorded by autograd so that the marginals can be read off it.

        Returns a dict: ``log_z [B]``; the graph inputs ``first [B, L]`` (start + first emission)
        and ``edges [B, n, L, L]``; ``last [L]`` (end), all three with -inf clamped to
        ``_FORBIDDEN`` and shifted to a maximum of 0; ``shifted_log_z [B]``, the log partition of
        the shifted scores; and ``differentiable``. When the results need not be differentiable
        w.r.t. the inputs, ``first`` and ``edges`` are private leaves cut off from them.
        """
        differentiable = self._differentiable()
        if differentiable not in self._forward_cache:
            with torch.set_grad_enabled(differentiable):
                # Clamp -inf, then shift each block of scores to a maximum of 0 (module
                # docstring). Adding the shifts back to log Z is exact for any constants, so
                # they need no gradient.
                shifted, shifts = {}, {}
                for name, scores, dims in (
                    ("emissions", self.emissions, (2,)),  # per sentence and position
                    ("transitions", self.transitions, (-2, -1)),  # per matrix
                    ("start", self.start, (0,)),
                    ("end", self.end, (0,)),
                ):
                    scores = scores.clamp(min=_FORBIDDEN)
                    shifts[name] = scores.detach().amax(dims, keepdim=True)
                    shifted[name] = scores - shifts[name]
                emissions, last = shifted["emissions"], shifted["end"]
                first = shifted["start"] + emissions[:, 0]
                edges = shifted["transitions"] + emissions[:, :, None, :]
                step_shift = shifts["transitions"].squeeze(-1).squeeze(-1)  # [] or [B, n]
                if step_shift.dim() == 2:
                    step_shift = step_shift[:, 1:]
                step_shift = shifts["emissions"][:, 1:, 0] + step_shift
                total_shift = (
                    shifts["start"]
                    + shifts["emissions"][:, 0, 0]
                    + torch.where(self.mask[:, 1:], step_shift, 0.0).sum(1)
                    + shifts["end"]
                )
            if not differentiable:
                first.requires_grad_()
                edges.requires_grad_()
            with torch.enable_grad():
                alpha = first
                for edge, real in zip(edges.unbind(1)[1:], self.mask[:, 1:, None].unbind(1)):
                    # A padded position keeps the sentence's alpha; its edges get zero gradient.
                    alpha = torch.where(real, torch.logsumexp(alpha[:, :, None] + edge, dim=1), alpha)
                shifted_log_z = torch.logsumexp(alpha + last, dim=1)
            self._forward_cache[differentiable] = dict(
                shifted_log_z=shifted_log_z,
                log_z=shifted_log_z + total_shift,
                first=first,
                edges=edges,
                last=last,
                differentiable=differentiable,
            )
        return self._forward_cache[differentiable]

    def _marginals(self):
        differentiable = self._differentiable()
        if differentiable not in self._marginal_cache:
            forward = self._forward()
            with torch.enable_grad():
                first_grad, pairwise = torch.autograd.grad(
                    forward["shifted_log_z"].sum(),
                    [forward["first"], forward["edges"]],
                    create_graph=differentiable,
                    materialize_grads=True,  # the edges are unused when n == 1
                )
            unary = torch.cat([first_grad[:, None], pairwise[:, 1:].sum(2)], dim=1)
            self._marginal_cache[differentiable] = dict(unary=unary, pairwise=pairwise)
        return self._marginal_cache[differentiable]

    # ----------------------------------------------------------------------------------------
    # Max-product: Viterbi and k-best

    @torch.no_grad()
    def argmax(self):
        """The highest-scoring sequence -> ``(tags [B, n] long, scores [B])``; padding tags are 0.

        Scores are tempered (``S / T``) and carry no gradient; ``log_score(tags)`` gives one.
        """
        num_tags = self.emissions.shape[-1]
        stay = torch.arange(num_tags, device=self.emissions.device)  # back-pointers of padding
        score = self.start + self.emissions[:, 0]
        backpointers = []
        for transition, emission, real in self._decoding_steps():
            best, previous = _max_and_argmax(transition + score[:, None, :], dim=2)
            score = torch.where(real, best.squeeze(2) + emission, score)
            backpointers.append(torch.where(real, previous.squeeze(2), stay))
        best, last = _max_and_argmax(score + self.end, dim=1)
        tags = self._backtrack(backpointers, last, k=1)[:, 0]
        return tags.masked_fill(~self.mask, 0), best[:, 0]

    @torch.no_grad()
    def topk(self, k):
        """The ``k`` highest-scoring distinct sequences, best first.

        Returns ``(tags [B, k, n] long, scores [B, k])``; padding tags are 0. Scores are tempered
        (``S / T``) and carry no gradient. A sentence with fewer than ``k`` allowed sequences fills
        its remaining rows with score ``-inf`` and all-zero tags.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        batch_size, _, num_tags = self.emissions.shape
        device = self.emissions.device
        # best[:, a, r]: score of the r-th best partial sequence ending in tag a (-inf: none yet).
        # Partial sequences are addressed by their flat index a * k + r into best.flatten(1).
        best = F.pad((self.start + self.emissions[:, 0])[:, :, None], (0, k - 1), value=float("-inf"))
        list_heads = (torch.arange(num_tags, device=device) * k).expand(batch_size, num_tags, -1)
        one = torch.ones(batch_size, num_tags, 1, dtype=torch.long, device=device)
        stay = torch.arange(num_tags * k, device=device)  # back-pointers of padding
        backpointers = []
        for transition, emission, real in self._decoding_steps():
            previous_best = best.flatten(1)[:, None, :].expand(-1, num_tags, -1)
            # next_candidate[:, b, a]: flat index of the best entry of list a not yet taken by b.
            next_candidate = list_heads
            scores, pointers = [], []
            for _ in range(k):
                candidates = transition + previous_best.gather(2, next_candidate)
                score, source = _max_and_argmax(candidates, dim=2)
                scores.append(score)
                pointers.append(next_candidate.gather(2, source))
                next_candidate = next_candidate.scatter_add(2, source, one)
            best = torch.where(real[:, :, None], torch.cat(scores, dim=2) + emission[:, :, None], best)
            backpointers.append(torch.where(real, torch.cat(pointers, dim=2).flatten(1), stay))
        scores, last = (best + self.end[:, None]).flatten(1).topk(k, dim=1)
        tags = self._backtrack(backpointers, last, k)
        missing = torch.isneginf(scores)[:, :, None] | ~self.mask[:, None, :]
        return tags.masked_fill(missing, 0), scores

    def _decoding_steps(self):
        """Per position ``i >= 1``: ``(A_i [.., to, from], e_i [B, L], real_i [B, 1])``.

        The transitions are laid out ``[to, from]`` in memory so that maxima over the previous tag
        run over the contiguous last dimension (several times faster on CPU); ``e_i`` is added
        after the maximum, since it does not depend on the previous tag.
        """
        transitions = self.transitions.transpose(-1, -2).contiguous()
        if transitions.dim() == 4:
            per_position = transitions.unbind(1)[1:]
        else:
            per_position = itertools.repeat(transitions)
        return zip(per_position, self.emissions.unbind(1)[1:], self.mask[:, 1:, None].unbind(1))

    @staticmethod
    def _backtrack(backpointers, last, k):
        """Follow back-pointers from the last position.

        ``last [B, k]`` and each ``backpointers[i - 1] [B, L * k]`` hold flat indices
        ``tag * k + rank``: ``backpointers[i - 1][:, b * k + r]`` is the entry at position ``i - 1``
        that the ``r``-th best partial sequence ending in tag ``b`` at position ``i`` extends.
        Returns the tags ``[B, k, n]``.
        """
        pointer = last
        tags = [pointer // k]
        for previous in reversed(backpointers):
            pointer = previous.gather(1, pointer)
            tags.append(pointer // k)
        return torch.stack(tags[::-1], dim=2)
