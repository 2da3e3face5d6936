"""SpanSegmentation against brute-force enumeration of all sets of non-overlapping labeled spans."""

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structkd_plugin.structures.span_segmentation import SpanSegmentation


@functools.lru_cache(maxsize=None)
def segmentations(length, labels, max_width):
    """Every set of non-overlapping labeled spans of `length` tokens: tuples of (start, end, r)."""
    if length == 0:
        return [()]
    result = list(segmentations(length - 1, labels, max_width))  # the last token uncovered
    for width in range(1, min(max_width, length) + 1):
        for label in range(labels):
            span = (length - width, length - 1, label)
            result += [rest + (span,) for rest in segmentations(length - width, labels, max_width)]
    return result


def tag_sequence(spans, length, scheme):
    tags = ["O"] * length
    for start, end, label in spans:
        if scheme == "BIOES" and start == end:
            tags[start] = f"S-L{label}"
            continue
        tags[start] = f"B-L{label}"
        for t in range(start + 1, end + 1):
            tags[t] = f"I-L{label}"
        if scheme == "BIOES":
            tags[end] = f"E-L{label}"
    return tags


def tag_names(labels, scheme):
    prefixes = "BIES" if scheme == "BIOES" else "BI"
    return ["O"] + [f"{p}-L{r}" for r in range(labels) for p in prefixes]


def brute_force(scores, length, max_width=None):
    """log Z, span marginals, tag marginals (both schemes), best score and argmax of one sentence.

    Differentiable in `scores` [n, n, R]; padding positions get zero marginals."""
    n, _, labels = scores.shape
    structures = segmentations(length, labels, max_width or n)
    zero = scores.new_zeros(())
    totals = torch.stack([sum((scores[i, j, r] for i, j, r in spans), zero) for spans in structures])
    probabilities = totals.softmax(0)
    span_marginals = scores.new_zeros(scores.shape)
    tag_marginals = {}
    for scheme in ("BIOES", "BIO"):
        names = tag_names(labels, scheme)
        indicator = torch.zeros(len(structures), n, len(names), dtype=scores.dtype)
        for k, spans in enumerate(structures):
            for t, tag in enumerate(tag_sequence(spans, length, scheme)):
                indicator[k, t, names.index(tag)] = 1
        tag_marginals[scheme] = torch.einsum("k,ktg->tg", probabilities, indicator)
    for p, spans in zip(probabilities, structures):
        for i, j, r in spans:
            index = (torch.tensor(i), torch.tensor(j), torch.tensor(r))
            span_marginals = span_marginals.index_put(index, p, accumulate=True)
    best = totals.argmax()
    return {
        "log_z": totals.logsumexp(0),
        "spans": span_marginals,
        "tags": tag_marginals,
        "best_score": totals[best],
        "best": sorted(structures[best]),
        "second_score": totals.topk(2).values[-1] if len(structures) > 1 else None,
    }


def make_batch(lengths, labels, n=None, dtype=torch.float64, scale=2.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n = n or max(lengths)
    scores = torch.randn(len(lengths), n, n, labels, generator=generator, dtype=dtype) * scale
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    return scores, mask


def segmentation_score(scores, spans):
    return sum(scores[i, j, r].item() for i, j, r in spans)


def check_valid(spans, length, labels, max_width=None):
    assert spans == sorted(spans)
    previous_end = -1
    for start, end, label in spans:
        assert previous_end < start <= end < length and 0 <= label < labels
        assert max_width is None or end - start < max_width
        previous_end = end


def check_against_brute_force(scores, mask, max_width):
    lengths = mask.sum(-1).tolist()
    labels = scores.shape[-1]
    model = SpanSegmentation(scores, mask, max_width)
    log_z, spans, decoded = model.log_partition(), model.marginals(), model.argmax()
    for b, length in enumerate(lengths):
        expected = brute_force(scores[b], length, max_width)
        torch.testing.assert_close(log_z[b], expected["log_z"])
        torch.testing.assert_close(spans[b], expected["spans"])
        for scheme in ("BIOES", "BIO"):
            tags, names = model.tag_marginals(scheme)
            assert names == tag_names(labels, scheme)
            torch.testing.assert_close(tags[b], expected["tags"][scheme])
        check_valid(decoded[b], length, labels, max_width)
        best, second = expected["best_score"], expected["second_score"]
        assert segmentation_score(scores[b], decoded[b]) == pytest.approx(best.item(), abs=1e-9)
        if second is not None and best - second > 1e-6:
            assert decoded[b] == expected["best"]


@pytest.mark.parametrize("max_width", [None, 1, 2, 3])
@pytest.mark.parametrize("labels", [1, 2])
def test_everything_matches_brute_force_on_a_padded_batch(labels, max_width):
    scores, mask = make_batch([5, 3, 1, 4], labels, seed=labels * 10 + (max_width or 0))
    check_against_brute_force(scores, mask, max_width)


def test_tag_rows_sum_to_one_at_tokens_and_zero_at_padding():
    scores, mask = make_batch([5, 2, 1], 3, n=6)
    for scheme in ("BIOES", "BIO"):
        tags, _ = SpanSegmentation(scores, mask).tag_marginals(scheme)
        torch.testing.assert_close(tags.sum(-1), mask.to(tags.dtype))
        assert (tags[~mask] == 0).all()


def test_tag_names_use_the_given_labels_in_order():
    scores, mask = make_batch([3], 2)
    _, names = SpanSegmentation(scores, mask).tag_marginals("BIOES", labels=["PER", "LOC"])
    assert names == ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    _, names = SpanSegmentation(scores, mask).tag_marginals("BIO", labels=["PER", "LOC"])
    assert names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_span_marginals_are_the_gradient_of_log_z_and_differentiable():
    scores, mask = make_batch([4, 2, 3], 2, seed=3)
    scores.requires_grad_()
    model = SpanSegmentation(scores, mask, max_width=3)
    (gradient,) = torch.autograd.grad(model.log_partition().sum(), scores, retain_graph=True)
    spans = model.marginals()
    torch.testing.assert_close(spans, gradient)
    # Second order: the gradient of a weighted sum of marginals (and of tag marginals) matches the
    # brute-force one.
    generator = torch.Generator().manual_seed(1)
    weights = torch.randn(spans.shape, generator=generator, dtype=spans.dtype)
    tags, _ = model.tag_marginals()
    tag_weights = torch.randn(tags.shape, generator=generator, dtype=tags.dtype)
    (ours,) = torch.autograd.grad((spans * weights).sum() + (tags * tag_weights).sum(), scores)
    expected_total = 0
    for b, length in enumerate(mask.sum(-1).tolist()):
        expected = brute_force(scores[b], length, 3)
        expected_total = expected_total + (expected["spans"] * weights[b]).sum()
        expected_total = expected_total + (expected["tags"]["BIOES"] * tag_weights[b]).sum()
    (expected,) = torch.autograd.grad(expected_total, scores)
    torch.testing.assert_close(ours, expected)


def test_results_under_no_grad_match_and_are_cached():
    scores, mask = make_batch([4, 1], 2, seed=4)
    with torch.no_grad():
        model = SpanSegmentation(scores, mask)
        spans = model.marginals()
        assert model.marginals() is spans
        log_z = model.log_partition()
    reference = SpanSegmentation(scores.clone().requires_grad_(), mask)
    torch.testing.assert_close(spans, reference.marginals().detach())
    torch.testing.assert_close(log_z, reference.log_partition().detach())


def test_a_sentence_gets_the_same_result_alone_and_padded_in_a_batch():
    lengths = [2, 5, 1, 3]
    scores, mask = make_batch(lengths, 2, seed=5)
    model = SpanSegmentation(scores, mask, max_width=3)
    tags, _ = model.tag_marginals()
    for b, length in enumerate(lengths):
        alone = SpanSegmentation(scores[b : b + 1, :length, :length], mask[b : b + 1, :length], 3)
        torch.testing.assert_close(model.log_partition()[b : b + 1], alone.log_partition())
        spans = model.marginals()[b : b + 1]
        torch.testing.assert_close(spans[:, :length, :length], alone.marginals())
        torch.testing.assert_close(tags[b : b + 1, :length], alone.tag_marginals()[0])
        assert model.argmax()[b] == alone.argmax()[0]
        assert (spans[:, length:] == 0).all() and (spans[:, :, length:] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ignored_entries_do_not_matter(dtype):
    lengths = [2, 5, 1, 3]
    scores, mask = make_batch(lengths, 2, dtype=dtype, seed=5)
    # Ignored entries (start > end, wider than max_width = 3, padding) may hold any finite value
    # or -inf.
    position = torch.arange(5)
    ignored = (position[:, None] > position[None, :]) | (position[None, :] - position[:, None] >= 3)
    ignored = ignored[None, :, :, None] | ~mask[:, None, :, None]
    coin = torch.rand(scores.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    filled = torch.where(ignored, 1e6, scores).masked_fill(ignored & coin, float("-inf"))
    filled[:, 3:, 0] = float("-inf")  # all labels -inf: the usual "start > end" filling
    filled.requires_grad_()
    model = SpanSegmentation(filled, mask, max_width=3)
    clean = SpanSegmentation(scores.masked_fill(ignored, float("-inf")), mask, max_width=3)
    tags, _ = model.tag_marginals()
    (tags.sum() + model.log_partition().sum()).backward()
    assert torch.isfinite(filled.grad).all()
    torch.testing.assert_close(model.log_partition(), clean.log_partition())
    torch.testing.assert_close(model.marginals(), clean.marginals())
    torch.testing.assert_close(tags, clean.tag_marginals()[0])
    assert model.argmax() == clean.argmax()
    assert (model.marginals()[ignored.expand_as(scores)] == 0).all()


def test_length_one_batch():
    scores, mask = make_batch([1, 1], 3, seed=6)
    check_against_brute_force(scores, mask, None)


def test_forbidden_spans_have_zero_probability_and_finite_gradients():
    scores, mask = make_batch([5, 4, 2], 2, seed=7)
    forbidden = torch.rand(scores.shape, generator=torch.Generator().manual_seed(0)) < 0.5
    forbidden[:, 1, 3] = True  # every label of span 1..3 forbidden
    forbidden[2] = True  # sentence 2: only the empty set is allowed
    scores = scores.masked_fill(forbidden, float("-inf")).requires_grad_()
    check_against_brute_force(scores.detach(), mask, None)
    model = SpanSegmentation(scores, mask)
    tags, _ = model.tag_marginals()
    (tags.pow(2).sum() + model.log_partition().sum()).backward()
    assert torch.isfinite(scores.grad).all()
    assert (model.marginals()[forbidden] == 0).all()
    assert model.log_partition()[2] == 0 and model.argmax()[2] == []


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_large_scores_in_float32(scale):
    lengths = [5, 3, 1]
    scores, mask = make_batch(lengths, 2, dtype=torch.float64, scale=abs(scale), seed=8)
    if scale < 0:
        scores = -scores.abs()
    single = scores.float().requires_grad_()
    model = SpanSegmentation(single, mask, max_width=4)
    reference = SpanSegmentation(single.detach().double(), mask, max_width=4)
    log_z, spans = model.log_partition().double(), model.marginals().double()
    torch.testing.assert_close(log_z, reference.log_partition(), rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(spans, reference.marginals(), atol=1e-5, rtol=0)
    tags, _ = model.tag_marginals("BIO")
    torch.testing.assert_close(tags.double(), reference.tag_marginals("BIO")[0], atol=1e-5, rtol=0)
    assert model.argmax() == reference.argmax()
    (tags.sum() + model.log_partition().sum()).backward()
    assert torch.isfinite(single.grad).all()


def test_near_ties_at_large_scale_keep_float32_precision():
    # Every span scores about 1e4 per token, so all segmentations into spans nearly tie while alpha
    # reaches n * 1e4: without the per-token offsets float32 marginals are off by ~3e-2 here.
    n = 40
    width = (torch.arange(n)[None, :] - torch.arange(n)[:, None] + 1).clamp(min=1)
    noise = torch.randn(2, n, n, 2, generator=torch.Generator().manual_seed(9))
    scores = (1e4 * width)[None, :, :, None] + noise
    mask = torch.ones(2, n, dtype=torch.bool)
    model = SpanSegmentation(scores, mask, max_width=3)
    reference = SpanSegmentation(scores.double(), mask, max_width=3)
    log_z, spans = model.log_partition().double(), model.marginals().double()
    tags = model.tag_marginals()[0].double()
    torch.testing.assert_close(log_z, reference.log_partition(), rtol=1e-7, atol=0)
    torch.testing.assert_close(spans, reference.marginals(), atol=2e-3, rtol=0)
    torch.testing.assert_close(tags, reference.tag_marginals()[0], atol=2e-3, rtol=0)
    decoded, expected = model.argmax(), reference.argmax()
    for b in range(2):
        check_valid(decoded[b], n, 2, 3)
        assert segmentation_score(scores[b].double(), decoded[b]) == pytest.approx(
            segmentation_score(scores[b].double(), expected[b]), abs=1e-2
        )


def test_bad_arguments_are_rejected():
    scores, mask = make_batch([3], 2)
    with pytest.raises(ValueError, match="tag scheme"):
        SpanSegmentation(scores, mask).tag_marginals("IOB2")
    with pytest.raises(ValueError, match="label names"):
        SpanSegmentation(scores, mask).tag_marginals("BIO", labels=["PER"])
    with pytest.raises(ValueError, match="max_width"):
        SpanSegmentation(scores, mask, max_width=0)


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=3),
    labels=st.integers(min_value=1, max_value=3),
    max_width=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
    scale=st.sampled_from([0.5, 3.0]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_random_shapes_match_brute_force(lengths, labels, max_width, scale, seed):
    scores, mask = make_batch(lengths, labels, scale=scale, seed=seed)
    check_against_brute_force(scores, mask, max_width)


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("max_width", [None, 2])
def test_pairwise_tag_marginals_match_brute_force(scheme, max_width):
    lengths, labels = [4, 1, 3, 2], 2
    scores, mask = make_batch(lengths, labels, seed=11)
    scores[0, 1, 2, 0] = float("-inf")  # a forbidden span
    pairwise, tags = SpanSegmentation(scores, mask, max_width).pairwise_tag_marginals(scheme)
    assert tags == tag_names(labels, scheme)
    for b, length in enumerate(lengths):
        structures = segmentations(length, labels, max_width or length)
        totals = torch.tensor([sum(scores[b, i, j, r].item() for i, j, r in spans) for spans in structures], dtype=torch.float64)
        expected = torch.zeros(scores.shape[1], len(tags), len(tags), dtype=torch.float64)
        for probability, spans in zip(totals.softmax(0), structures):
            sequence = tag_sequence(spans, length, scheme)
            for i in range(1, length):
                expected[i, tags.index(sequence[i - 1]), tags.index(sequence[i])] += probability
        assert torch.allclose(pairwise[b], expected, atol=1e-9), (b, scheme)
    # Summed over the earlier token, they are the later token's unary marginals.
    unary, _ = SpanSegmentation(scores, mask, max_width).tag_marginals(scheme)
    assert torch.allclose(pairwise.sum(2)[:, 1:], unary[:, 1:] * mask[:, 1:, None], atol=1e-9)
