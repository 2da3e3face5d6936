"""second_order_mean_field against brute-force enumeration and a loop-based update.

The model (see the module docstring): every word d picks a head h_d != d among 0..n, and

    S(heads) = sum_d arc[h_d, d] + sum_{unordered {d, s}, h_d = h_s} sib[h_d, d, s]
             + sum_{d, h_d != 0} grd[h_{h_d}, h_d, d].
"""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structkd_plugin.structures.mean_field import second_order_mean_field


def make_instance(lengths, dtype=torch.float64, scale=1.0, seed=0, symmetric=True):
    """Random scores for a padded batch; padding and ignored entries hold finite garbage."""
    generator = torch.Generator().manual_seed(seed)
    batch, size = len(lengths), max(lengths) + 1
    arc = torch.randn(batch, size, size, generator=generator, dtype=dtype) * scale
    sib = torch.randn(batch, size, size, size, generator=generator, dtype=dtype) * scale
    if symmetric:
        sib = (sib + sib.transpose(-1, -2)) / 2
    grd = torch.randn(batch, size, size, size, generator=generator, dtype=dtype) * scale
    mask = torch.arange(size)[None, :] <= torch.tensor(lengths)[:, None]
    return arc, sib, grd, mask


def crop(b, length, arc, sib, grd):
    """Sentence b's scores without padding."""
    size = length + 1
    return arc[b, :size, :size], sib[b, :size, :size, :size], grd[b, :size, :size, :size]


def head_assignments(length):
    """All head vectors (heads[d - 1] = head of word d) of a sentence of `length` words."""
    choices = [[h for h in range(length + 1) if h != d] for d in range(1, length + 1)]
    return list(itertools.product(*choices))


def joint_score(heads, arc, sib, grd):
    """S(heads) of the second-order head-selection model, straight from its definition."""
    head = {d: h for d, h in enumerate(heads, start=1)}
    score = sum(arc[h, d] for d, h in head.items())
    for d, s in itertools.combinations(head, 2):
        if head[d] == head[s]:
            score = score + sib[head[d], d, s]
    for d, h in head.items():
        if h != 0:
            score = score + grd[head[h], h, d]
    return score


def brute_force_head_marginals(arc, length):
    """Exact marginals of the first-order head-selection model by enumeration: [n+1, n+1]."""
    assignments = head_assignments(length)
    scores = torch.stack([sum(arc[h, d] for d, h in enumerate(heads, start=1)) for heads in assignments])
    probabilities = scores.softmax(0)
    marginals = torch.zeros_like(arc)
    for p, heads in zip(probabilities, assignments):
        for d, h in enumerate(heads, start=1):
            marginals[h, d] += p
    return marginals


def brute_force_coordinate_update(q, arc, sib, grd, length):
    """softmax_h E_{q_-d}[S | h_d = h] for every word d, the expectation taken by enumerating the
    joint model's assignments weighted by the product of the other words' q: [n+1, n+1]."""
    assignments = head_assignments(length)
    scores = torch.stack([joint_score(heads, arc, sib, grd) for heads in assignments])
    updated = torch.zeros_like(arc)
    for d in range(1, length + 1):
        expected = torch.zeros(length + 1, dtype=arc.dtype)
        for heads, score in zip(assignments, scores):
            weight = math.prod(q[h, s].item() for s, h in enumerate(heads, start=1) if s != d)
            expected[heads[d - 1]] += weight * score
        heads_of_d = [h for h in range(length + 1) if h != d]
        updated[heads_of_d, d] = expected[heads_of_d].softmax(0)
    return updated


def loop_mean_field(arc, sib, grd, length, iterations):
    """The update formula, written out with Python loops for one sentence: [n+1, n+1]."""
    words = range(1, length + 1)
    q = torch.zeros_like(arc)

    def normalize(logits):
        for d in words:
            heads = [h for h in range(length + 1) if h != d]
            q[heads, d] = torch.stack([logits[(h, d)] for h in heads]).softmax(0)

    normalize({(h, d): arc[h, d] for d in words for h in range(length + 1) if h != d})
    for _ in range(iterations):
        logits = {}
        for d in words:
            for h in range(length + 1):
                if h == d:
                    continue
                value = arc[h, d]
                value = value + sum(q[h, s] * sib[h, d, s] for s in words if s != d)
                value = value + sum(q[g, h] * grd[g, h, d] for g in range(length + 1))
                value = value + sum(q[d, c] * grd[h, d, c] for c in words)
                logits[(h, d)] = value
        q = q.clone()
        normalize(logits)
    return q


def check_normalized(q, mask):
    lengths = mask.sum(-1) - 1
    for b, length in enumerate(lengths.tolist()):
        columns = q[b].sum(0)
        torch.testing.assert_close(columns[1 : length + 1], torch.ones(length, dtype=q.dtype))
        assert (q[b, :, 0] == 0).all() and (q[b, :, length + 1 :] == 0).all()
        assert (q[b, length + 1 :, :] == 0).all() and (q[b].diagonal() == 0).all()


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_columns_are_distributions_over_real_heads(iterations):
    arc, sib, grd, mask = make_instance([4, 2, 1, 3])
    check_normalized(second_order_mean_field(arc, sib, grd, mask, iterations), mask)


@pytest.mark.parametrize("iterations", [0, 3])
def test_without_second_order_scores_it_is_the_exact_head_selection_marginal(iterations):
    lengths = [4, 3, 1, 2]
    arc, sib, grd, mask = make_instance(lengths, scale=2.0)
    q = second_order_mean_field(arc, torch.zeros_like(sib), torch.zeros_like(grd), mask, iterations)
    for b, length in enumerate(lengths):
        size = length + 1
        expected = brute_force_head_marginals(arc[b, :size, :size], length)
        torch.testing.assert_close(q[b, :size, :size], expected)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("iterations", [1, 2])
def test_updates_match_the_loop_implementation(iterations, symmetric):
    lengths = [4, 2, 1, 3]
    arc, sib, grd, mask = make_instance(lengths, seed=1, symmetric=symmetric)
    q = second_order_mean_field(arc, sib, grd, mask, iterations)
    for b, length in enumerate(lengths):
        size = length + 1
        expected = loop_mean_field(*crop(b, length, arc, sib, grd), length, iterations)
        torch.testing.assert_close(q[b, :size, :size], expected)


def test_one_update_is_the_coordinate_update_of_the_joint_model():
    lengths = [4, 3, 2]
    arc, sib, grd, mask = make_instance(lengths, seed=2)
    start = second_order_mean_field(arc, sib, grd, mask, iterations=0)
    q = second_order_mean_field(arc, sib, grd, mask, iterations=1)
    for b, length in enumerate(lengths):
        size = length + 1
        expected = brute_force_coordinate_update(start[b, :size, :size], *crop(b, length, arc, sib, grd), length)
        torch.testing.assert_close(q[b, :size, :size], expected)


def test_zero_iterations_is_the_first_order_softmax():
    lengths = [3, 1]
    arc, sib, grd, mask = make_instance(lengths, seed=3)
    q = second_order_mean_field(arc, sib, grd, mask, iterations=0)
    for b, length in enumerate(lengths):
        for d in range(1, length + 1):
            heads = [h for h in range(length + 1) if h != d]
            torch.testing.assert_close(q[b, heads, d], arc[b, heads, d].softmax(0))


def test_a_sentence_gets_the_same_result_alone_and_padded_in_a_batch():
    lengths = [2, 5, 1, 3]
    arc, sib, grd, mask = make_instance(lengths, seed=4)
    q = second_order_mean_field(arc, sib, grd, mask)
    for b, length in enumerate(lengths):
        size = length + 1
        alone = second_order_mean_field(
            arc[b : b + 1, :size, :size],
            sib[b : b + 1, :size, :size, :size],
            grd[b : b + 1, :size, :size, :size],
            mask[b : b + 1, :size],
        )
        torch.testing.assert_close(q[b : b + 1, :size, :size], alone)
        assert (q[b, size:] == 0).all() and (q[b, :, size:] == 0).all()


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_large_scores_in_float32_give_finite_results_and_gradients(scale):
    lengths = [5, 3, 1]
    arc, sib, grd, mask = make_instance(lengths, dtype=torch.float32, scale=abs(scale), seed=5)
    arc = arc.abs() * math.copysign(1.0, scale)
    scores = [t.clone().requires_grad_() for t in (arc, sib, grd)]
    q = second_order_mean_field(*scores, mask)
    check_normalized(q, mask)
    reference = second_order_mean_field(arc.double(), sib.double(), grd.double(), mask)
    torch.testing.assert_close(q.double(), reference, atol=1e-4, rtol=0)
    weights = torch.randn(q.shape, generator=torch.Generator().manual_seed(0))
    (q * weights).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in scores)


def test_forbidden_arcs_get_zero_probability_and_finite_gradients():
    lengths = [4, 2]
    arc, sib, grd, mask = make_instance(lengths, seed=6)
    arc[0, 0, 1:] = float("-inf")  # sentence 0: no word may attach to the root
    arc[1, 2, 1] = float("-inf")
    arc = arc.requires_grad_()
    q = second_order_mean_field(arc, sib, grd, mask)
    check_normalized(q, mask)
    assert (q[0, 0] == 0).all() and q[1, 2, 1] == 0
    q.pow(2).sum().backward()
    assert torch.isfinite(arc.grad).all()


def test_gradients_are_correct():
    arc, sib, grd, mask = make_instance([3, 2], seed=7)
    inputs = tuple(t.clone().requires_grad_() for t in (arc, sib, grd))

    def two_updates(arc, sib, grd):
        return second_order_mean_field(arc, sib, grd, mask, iterations=2)

    assert torch.autograd.gradcheck(two_updates, inputs, fast_mode=True)


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3),
    iterations=st.integers(min_value=0, max_value=3),
    scale=st.sampled_from([0.1, 1.0, 5.0]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_random_shapes_match_the_loop_implementation(lengths, iterations, scale, seed):
    arc, sib, grd, mask = make_instance(lengths, scale=scale, seed=seed)
    q = second_order_mean_field(arc, sib, grd, mask, iterations)
    check_normalized(q, mask)
    for b, length in enumerate(lengths):
        size = length + 1
        expected = loop_mean_field(*crop(b, length, arc, sib, grd), length, iterations)
        torch.testing.assert_close(q[b, :size, :size], expected)


def test_bad_arguments_are_rejected():
    arc, sib, grd, mask = make_instance([2])
    with pytest.raises(ValueError, match="iterations"):
        second_order_mean_field(arc, sib, grd, mask, iterations=-1)
    with pytest.raises(ValueError, match="grd_scores"):
        second_order_mean_field(arc, sib, grd[:, :2], mask)
