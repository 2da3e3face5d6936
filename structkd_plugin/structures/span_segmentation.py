"""The distribution over sets of non-overlapping labeled spans (NER as parsing -> tagger).

Distillation case 4: the teacher is a span scorer (Yu et al. 2020, "Named Entity Recognition as
Dependency Parsing") whose scores S(i, j, r) are relative to "no span" (S(i, j, r) - S(i, j, None)
in the paper's terms). A set y of non-overlapping labeled spans gets

    P(y) = exp(sum_{(i, j, r) in y} S(i, j, r)) / Z,

and every token outside the spans contributes score 0.

Tensor conventions (tokens are 0-based, spans inclusive):

    span_scores[b, i, j, r]  score of the span of tokens i..j (i <= j) with label r; entries with
                             i > j, longer than `max_width`, or reaching into padding are ignored
    mask[b, t]               True for the tokens 0..n_b - 1 of sentence b (a prefix), n_b >= 1

The algorithm. Read left to right, a sentence is a sequence of segments, each either one uncovered
token or one labeled span: a semi-Markov model. The labels of a span are alternatives with the
same boundaries, so they are summed out first, seg(i, j) = logsumexp_r S(i, j, r), and an
uncovered token is a width-1 segment of score u = 0, folded into the diagonal:
seg(t, t) = logsumexp(logsumexp_r S(t, t, r), u). The forward algorithm over prefix lengths,

    alpha[0] = 0,   alpha[k] = logsumexp_i alpha[i] + seg(i, k-1),   log Z = alpha[n_b],

with i over the starts that `max_width` allows, loops over end positions only; every step has a
finite candidate (leave the token uncovered), so -inf span scores (forbidden spans) are safe.
Marginals are the gradient of log Z, from one backward pass. The uncovered score u is an explicit
input only so that the same pass also returns the exact probability of each token being uncovered
(the tag "O"). Decoding is the same recursion with max in place of logsumexp.

Large scores. alpha[k] grows like the score of the best segmentation of the first k tokens (n * 1e4
with scores of 1e4), where float32 keeps only about 0.1 in absolute terms, and marginals depend on
differences of such numbers. Every token is covered by exactly one segment, so taking a constant
c_t off every segment covering token t (c_i + ... + c_j off segment i..j) takes the same
c_0 + ... + c_{n_b - 1} off every segmentation: probabilities and argmax do not change, and log Z
gets the sum back. c_t is the best score per token (score / width) among the segments covering t,
rounded to an integer: shifted segments then score at most about 0, alpha stays small unless
high-scoring spans conflict, and the integer prefix sums are exact (up to 2^24 in float32).
"""

import torch
import torch.nn.functional as F

from structkd_plugin.structures.distribution import StructuredDistribution, finite
from structkd_plugin.structures.label_schemes import scheme_tag_set
from structkd_plugin.structures.masks import check_prefix_mask

TAG_SCHEMES = ("BIOES", "BIO")


class SpanSegmentation(StructuredDistribution):
    """Sets of non-overlapping labeled spans with P(set) proportional to exp(sum of span scores).

    Args:
        span_scores: [B, n, n, R], entry [b, i, j, r] the score of span i..j (inclusive) labeled r,
            relative to leaving its tokens uncovered. -inf forbids a span. Ignored entries (i > j,
            too wide, padding) may hold any finite value or -inf (not NaN or +inf).
        mask: [B, n] bool, True for real tokens (a prefix of each row, at least one token).
        max_width: the longest allowed span in tokens; None allows any width.

    Results are computed on first use and cached: ask one object for everything you need.
    `log_partition` records the forward algorithm with autograd (even under torch.no_grad()), and
    `marginals` and `tag_marginals` come from one backward pass through that record. They are
    differentiable when `span_scores` requires grad; then request them before calling backward()
    through `log_partition()` (or call that backward with retain_graph=True).
    """

    def __init__(self, span_scores: torch.Tensor, mask: torch.Tensor, max_width: int | None = None):
        batch, n, n_end, _ = span_scores.shape
        if n_end != n or mask.shape != (batch, n):
            raise ValueError(
                f"span_scores must be [B, n, n, R] and mask [B, n]; "
                f"got {tuple(span_scores.shape)} and {tuple(mask.shape)}"
            )
        if max_width is not None and max_width < 1:
            raise ValueError(f"max_width must be >= 1 or None, got {max_width}")
        check_prefix_mask(mask.bool())
        self.span_scores = span_scores
        self.mask = mask
        self.max_width = n if max_width is None else min(max_width, n)
        self.lengths = mask.sum(dim=-1)
        position = torch.arange(n, device=mask.device)
        width = position[None, :] - position[:, None] + 1  # [start, end]
        # [B, n, n]: spans the model contains (ordered, not too wide, inside the sentence). The
        # loops never read other spans; setting them to -inf as well keeps whatever they hold out
        # of the per-token offsets.
        self._span_allowed = (width >= 1) & (width <= self.max_width) & mask[:, None, :]
        self._width = width.clamp(min=1)  # a divisor wherever the span is allowed
        # Keyed by whether the results are differentiable with respect to `span_scores`.
        self._forward_cache = {}
        self._marginal_cache = {}

    # ------------------------------------------------------------------ sum-product

    def log_partition(self) -> torch.Tensor:
        """log Z, [B]; differentiable when `span_scores` requires grad."""
        forward = self._recorded_forward()
        return forward["log_z"] if forward["differentiable"] else forward["log_z"].detach()

    def marginals(self) -> torch.Tensor:
        """P(span i..j with label r is in the set), [B, n, n, R]; 0 at ignored entries."""
        return self._marginals()["spans"]

    def expected_score(self, marginals: torch.Tensor) -> torch.Tensor:
        """`[B]`: sum over allowed labeled spans of `marginals [B, n, n, R]` (of any span
        distribution over the same sentences) times this one's span scores."""
        weighted = (marginals * finite(self.span_scores)).sum(-1)
        return torch.where(self._span_allowed, weighted, 0.0).sum((1, 2))

    def _differentiable(self) -> bool:
        return torch.is_grad_enabled() and self.span_scores.requires_grad

    def _recorded_forward(self) -> dict:
        """The forward algorithm, recorded by autograd so that the marginals can be read off it.

        When the results need not be differentiable, the record starts from a detached copy of the
        scores, so it also works under torch.no_grad(). Either way `uncovered` is a private leaf
        whose gradient is the probability of each token being uncovered.
        """
        differentiable = self._differentiable()
        if differentiable not in self._forward_cache:
            with torch.enable_grad():
                scores = self.span_scores
                if not differentiable:
                    scores = scores.detach().requires_grad_()
                uncovered = scores.new_zeros(self.mask.shape, requires_grad=True)
                log_z = self._forward(scores, uncovered)
            self._forward_cache[differentiable] = dict(
                log_z=log_z, scores=scores, uncovered=uncovered, differentiable=differentiable
            )
        return self._forward_cache[differentiable]

    def _marginals(self) -> dict:
        """One backward pass through log Z: span marginals and P(token uncovered)."""
        differentiable = self._differentiable()
        if differentiable not in self._marginal_cache:
            forward = self._recorded_forward()
            with torch.enable_grad():
                spans, uncovered = torch.autograd.grad(
                    forward["log_z"].sum(),
                    [forward["scores"], forward["uncovered"]],
                    create_graph=differentiable,
                )
            self._marginal_cache[differentiable] = dict(spans=spans, uncovered=uncovered)
        return self._marginal_cache[differentiable]

    def _forward(self, scores: torch.Tensor, uncovered: torch.Tensor) -> torch.Tensor:
        """The semi-Markov forward algorithm (module docstring); returns log Z, [B]."""
        spans = _LogSumExpOverLabels.apply(scores).masked_fill(~self._span_allowed, float("-inf"))
        # The uncovered token joins the diagonal: seg(t, t) = logsumexp(spans(t, t), u_t).
        # (`torch.logaddexp` would do, but its second derivative is NaN for large differences.)
        single = torch.stack([spans.diagonal(dim1=1, dim2=2), uncovered], dim=-1).logsumexp(dim=-1)
        segments, offset = self._shift(spans.diagonal_scatter(single, dim1=1, dim2=2))
        # Segments ending at each position, [B, start] each. `unbind` (rather than indexing inside
        # the loop) keeps the backward pass from building a full-size gradient per step.
        ending_at = segments.transpose(1, 2).unbind(dim=1)
        alpha = scores.new_zeros(self.mask.shape[0], 1)  # alpha[:, k] for the prefixes seen so far
        for end, segment in enumerate(ending_at):
            first = max(0, end + 1 - self.max_width)
            step = torch.logsumexp(alpha[:, first:] + segment[:, first : end + 1], dim=1)
            alpha = torch.cat([alpha, step[:, None]], dim=1)
        last = self.lengths[:, None]
        return alpha.gather(1, last).squeeze(1) + offset.gather(1, last).squeeze(1)

    def _shift(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Take the per-token offsets of the module docstring off segment scores [B, start, end].

        Returns the shifted segments and the offsets' prefix sums C [B, n+1]: segment i..j loses
        C[j+1] - C[i], a segmentation of the first k tokens C[k]. Sums and differences of integers
        are exact in floating point (below 2^24 in float32).
        """
        with torch.no_grad():
            rate = segments / self._width
            # Best rate over the segments i..j covering t (i <= t <= j): a running maximum over
            # ends from the right, then over starts from the left, read on the diagonal.
            from_start = rate.flip(2).cummax(dim=2).values.flip(2)  # [b, i, t]: max over j >= t
            covering = from_start.cummax(dim=1).values.diagonal(dim1=1, dim2=2)  # max over i <= t
            offset = F.pad(covering.round().cumsum(dim=1), (1, 0))
            taken = offset[:, None, 1:] - offset[:, :-1, None]
        return segments - taken, offset

    # ------------------------------------------------------------------ tags

    def tag_marginals(
        self, scheme: str = "BIOES", labels: list[str] | None = None
    ) -> tuple[torch.Tensor, list[str]]:
        """Exact per-token tag marginals.

        Args:
            scheme: "BIOES" (S-r a single-token span, B-r / E-r the first / last token of a longer
                span, I-r strictly inside one) or "BIO" (B-r the first token of a span, I-r any
                other token of it). "O" is an uncovered token in both.
            labels: the R distinct label names; default "L0".."L{R-1}".

        Returns:
            (P, tags): P [B, n, T] with P[b, t, k] the probability that token t has tag tags[k];
            tags is "O" first, then for each label in order its B, I (, E, S) tags. Rows sum to 1
            at real tokens and are 0 at padding. Differentiable like `marginals`.
        """
        if scheme not in TAG_SCHEMES:
            raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {TAG_SCHEMES}")
        label_count = self.span_scores.shape[-1]
        if labels is None:
            labels = [f"L{r}" for r in range(label_count)]
        if len(labels) != label_count:
            raise ValueError(
                f"got {len(labels)} label names {labels} for {label_count} span labels"
            )

        marginals = self._marginals()
        spans = marginals["spans"]  # [B, start, end, R]; 0 where start > end
        single = spans.diagonal(dim1=1, dim2=2).transpose(1, 2)  # [B, n, R]: single-token spans
        starts = spans.sum(dim=2)  # spans starting at each token
        ends = spans.sum(dim=1)  # spans ending at each token
        begin = starts - single  # first token of a longer span
        end = ends - single  # last token of a longer span
        # Spans started at or before t minus spans ended at or before t are the spans covering t
        # and going on past it: those beginning at t and those with t strictly inside. The running
        # sum stays between 0 and 1, so its rounding error is about eps * sqrt(n) in absolute terms
        # (tag probabilities much smaller than that are not resolved); the clamp keeps that
        # rounding from going negative, and padding must stay exactly 0.
        continuing = (starts - ends).cumsum(dim=1)
        inside = (continuing - begin).clamp(min=0).masked_fill(~self.mask[..., None], 0.0)
        outside = marginals["uncovered"][..., None]

        # Per label in the order of `scheme_tag_set`: B, I (, E, S).
        if scheme == "BIOES":
            per_label = torch.stack([begin, inside, end, single], dim=-1)
        else:
            per_label = torch.stack([begin + single, inside + end], dim=-1)
        probabilities = torch.cat([outside, per_label.flatten(start_dim=2)], dim=-1)
        return probabilities, scheme_tag_set(labels, scheme)

    @torch.no_grad()
    def pairwise_tag_marginals(self, scheme: str = "BIOES", labels: list[str] | None = None) -> tuple[torch.Tensor, list[str]]:
        """Exact tag-bigram marginals: P(tag of token i-1 = a, tag of token i = b) at entry
        `[:, i, a, b]` -> `([B, n, T, T], tags)`, in the tag order of `tag_marginals`; entry 0 and
        padding are 0 (the convention of `LinearChainCRF.pairwise_marginals`). Not differentiable:
        what a span teacher gives a CRF student.

        Tokens i-1 and i are either in one span (read off the span marginals), or on both sides of
        a boundary between two segments (an uncovered token or a span). The probability of a
        boundary at i with left segment class c and right segment class c' (uncovered, a
        one-token span of label r, or a longer one) is exp(left_c(i) + right_c'(i) - log Z), where
        left sums the prefix scores alpha over the left segment's starts and right the suffix
        scores beta over the right segment's ends; both in float64.
        """
        probabilities, tags = self.tag_marginals(scheme, labels)
        batch, n, _, label_count = self.span_scores.shape
        spans = self.span_scores.detach().double().masked_fill(~self._span_allowed[..., None], float("-inf"))
        alpha, beta = self._prefix_and_suffix_log_sums(spans)
        log_z = alpha.gather(1, self.lengths[:, None])  # [B, 1]
        diagonal = spans.diagonal(dim1=1, dim2=2).transpose(1, 2)  # [B, n, R]: one-token spans
        longer = spans.masked_fill(torch.eye(n, dtype=torch.bool, device=spans.device)[None, :, :, None], float("-inf"))
        # Segments ending at token t (left of a boundary at t + 1) and starting at t, per class:
        # uncovered, one-token span of each label, longer span of each label: [B, n, 1 + 2R].
        ending = torch.cat(
            [alpha[:, :n, None], alpha[:, :n, None] + diagonal, (alpha[:, :n, None, None] + longer).logsumexp(dim=1)], dim=-1
        )
        starting = torch.cat(
            [beta[:, 1:, None], diagonal + beta[:, 1:, None], (longer + beta[:, None, 1:, None]).logsumexp(dim=2)], dim=-1
        )
        boundary = (ending[:, :-1, :, None] + starting[:, 1:, None, :] - log_z[:, :, None, None]).exp()  # [B, n-1, C, C]
        left_tag, right_tag = self._class_tags(label_count, scheme, spans.dtype, spans.device)
        pairwise = torch.einsum("zicd,cx,dy->zixy", boundary, left_tag, right_tag)

        # Tokens i-1 and i inside one span (s, e): s <= i-1 and e >= i. Diagonals of cumulative
        # sums of the span marginals give, for each boundary i = 1..n-1, `[B, R, n-1]`:
        inside = self._marginals()["spans"].detach().double()  # [B, s, e, R]
        ends_from = inside.flip(2).cumsum(2).flip(2)  # [b, s, e]: spans (s, e' >= e)
        begins = ends_from.diagonal(offset=1, dim1=1, dim2=2)  # starts at i-1, ends at i or later
        exactly_two = inside.diagonal(offset=1, dim1=1, dim2=2)  # is (i-1, i)
        # Started before i-1: sums over starts s <= i-2, read at e = i (none for i = 1).
        through = F.pad(ends_from.cumsum(1).diagonal(offset=2, dim1=1, dim2=2), (1, 0))  # ends at i or later
        ending = F.pad(inside.cumsum(1).diagonal(offset=2, dim1=1, dim2=2), (1, 0))  # ends at i
        if scheme == "BIO":  # (B, I) and (I, I)
            within = {(0, 1): begins, (1, 1): through}
        else:  # (B, E), (B, I), (I, E), (I, I)
            within = {(0, 2): exactly_two, (0, 1): begins - exactly_two, (1, 2): ending, (1, 1): through - ending}
        per_label = len(tags[1:]) // label_count
        for (first, second), values in within.items():
            rows = 1 + per_label * torch.arange(label_count, device=spans.device)
            pairwise[:, :, rows + first, rows + second] += values.transpose(1, 2).clamp(min=0)
        pairwise = F.pad(pairwise, (0, 0, 0, 0, 1, 0))
        real = self.mask.clone()
        real[:, 0] = False
        return pairwise.masked_fill(~real[:, :, None, None], 0.0).to(probabilities.dtype), tags

    @staticmethod
    def _class_tags(label_count: int, scheme: str, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot `[C, T]` maps from a segment's class (uncovered, one-token span of label r,
        longer span of label r) to the tag of its last token (`left`) and of its first (`right`)."""
        per_label = 2 if scheme == "BIO" else 4
        first = 1 + per_label * torch.arange(label_count, device=device)  # B-r
        single, last = (first, first + 1) if scheme == "BIO" else (first + 3, first + 2)  # B/S-r; I/E-r
        zero = torch.zeros(1, dtype=torch.long, device=device)
        tags = 1 + per_label * label_count
        left = F.one_hot(torch.cat([zero, single, last]), tags).to(dtype)
        right = F.one_hot(torch.cat([zero, single, first]), tags).to(dtype)
        return left, right

    def _prefix_and_suffix_log_sums(self, spans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha [B, n+1] (log-sum over segmentations of tokens 0..k-1) and beta [B, n+1] (of tokens
        k..n_b-1; -inf past n_b) from label-scored spans [B, s, e, R] (-inf where not allowed)."""
        batch, n = self.mask.shape
        segments = spans.logsumexp(-1)
        segments = segments.diagonal_scatter(
            torch.logaddexp(segments.diagonal(dim1=1, dim2=2), torch.zeros_like(segments[:, 0])), dim1=1, dim2=2
        )
        alpha = spans.new_full((batch, n + 1), float("-inf"))
        alpha[:, 0] = 0.0
        for end in range(n):
            alpha[:, end + 1] = (alpha[:, : end + 1] + segments[:, : end + 1, end]).logsumexp(1)
        beta = spans.new_full((batch, n + 1), float("-inf"))
        beta.scatter_(1, self.lengths[:, None], 0.0)
        for start in range(n - 1, -1, -1):
            step = (segments[:, start, start:] + beta[:, start + 1 :]).logsumexp(1)
            beta[:, start] = torch.where(start < self.lengths, step, beta[:, start])
        return alpha, beta

    # ------------------------------------------------------------------ max-product

    @torch.no_grad()
    def argmax(self) -> list[list[tuple[int, int, int]]]:
        """The highest-scoring set of spans of each sentence, by semi-Markov Viterbi.

        Returns:
            For each sentence a list of (start, end, label_index) with `end` inclusive, sorted by
            start; tokens outside every span are left out. Ties are broken towards fewer spans
            where a single-token span scores exactly 0, otherwise arbitrarily.
        """
        batch, n = self.mask.shape
        best, best_label = self.span_scores.max(dim=-1)
        best = best.masked_fill(~self._span_allowed, float("-inf"))
        single = best.diagonal(dim1=1, dim2=2)
        span_beats_uncovered = single > 0
        segments, _ = self._shift(best.diagonal_scatter(single.clamp(min=0.0), dim1=1, dim2=2))
        ending_at = segments.transpose(1, 2)
        score = best.new_zeros(batch, n + 1)  # score[:, k]: best segmentation of the first k tokens
        segment_start = torch.zeros(batch, n, dtype=torch.long, device=best.device)
        for end in range(n):
            first = max(0, end + 1 - self.max_width)
            candidates = score[:, first : end + 1] + ending_at[:, end, first : end + 1]
            # argmax + gather rather than max(dim): see the CPU note in linear_chain_crf.
            start = candidates.argmax(dim=1, keepdim=True)
            score[:, end + 1] = candidates.gather(1, start).squeeze(1)
            segment_start[:, end] = start.squeeze(1) + first

        # The backtrace builds Python lists, so it loops over sentences and segments.
        starts, labels = segment_start.tolist(), best_label.tolist()
        keep_single = span_beats_uncovered.tolist()
        decoded = []
        for sentence, length in enumerate(self.lengths.tolist()):
            spans = []
            end = length - 1
            while end >= 0:
                start = starts[sentence][end]
                if start < end or keep_single[sentence][end]:
                    spans.append((start, end, labels[sentence][start][end]))
                end = start - 1
            decoded.append(spans[::-1])
        return decoded


class _LogSumExpOverLabels(torch.autograd.Function):
    """logsumexp over the last dimension, with gradient 0 (not NaN) where all entries are -inf.

    `torch.logsumexp`'s gradient exp(x - logsumexp(x)) is -inf - -inf = NaN for a span whose
    labels are all -inf (a forbidden span, or an ignored entry filled with -inf), even where the
    incoming gradient is 0. Masking the [B, n, n, R] input beforehand would avoid that too, at the
    price of two extra passes over the largest tensor. The backward is made of differentiable
    operations, so marginals computed with it can be differentiated again.
    """

    @staticmethod
    def forward(ctx, scores):
        total = scores.logsumexp(dim=-1)
        ctx.save_for_backward(scores, total)
        return total

    @staticmethod
    def backward(ctx, grad):
        scores, total = ctx.saved_tensors
        # Subtracting +inf makes every weight of an all -inf entry exp(-inf) = 0.
        shift = total.masked_fill(total == float("-inf"), float("inf"))
        weights = (scores - shift[..., None]).exp_()
        # Multiplying in place saves a copy of the largest tensor; not allowed when this backward
        # is itself being recorded (create_graph), which needs `weights` for the second derivative.
        if torch.is_grad_enabled():
            return weights * grad[..., None]
        return weights.mul_(grad[..., None])
