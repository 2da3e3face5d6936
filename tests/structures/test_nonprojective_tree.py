"""NonProjectiveTree (Matrix-Tree theorem, Chu-Liu-Edmonds) against enumeration of all trees."""

import math

import pytest
import torch
from allennlp_light.nn.chu_liu_edmonds import decode_mst
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_enumeration import brute_force, check_against_brute_force, is_tree, random_arc_scores, tree_scores

from structkd_plugin.structures import nonprojective_tree
from structkd_plugin.structures.nonprojective_tree import NonProjectiveTree, _log_partition_by_elimination

LENGTHS = [5, 1, 3, 4, 2]


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force(single_root, seed):
    scores, mask = random_arc_scores(seed, LENGTHS, scale=[0.5, 1.0, 3.0, 10.0][seed])
    check_against_brute_force(NonProjectiveTree(scores, mask, single_root), False, atol=1e-9)


@pytest.mark.parametrize("single_root", [True, False])
def test_large_scores_in_float32(single_root):
    scores, mask = random_arc_scores(10, LENGTHS, scale=1e4, dtype=torch.float32)
    scores.requires_grad_()
    check_against_brute_force(NonProjectiveTree(scores, mask, single_root), False, atol=1e-6)
    (gradient,) = torch.autograd.grad(NonProjectiveTree(scores, mask, single_root).log_partition().sum(), scores)
    assert torch.isfinite(gradient).all()


def nearly_closed_cycle(seed, lengths=LENGTHS, margin=40.0):
    # Words 1 and 2 prefer each other by `margin` nats over any other head while the other words
    # are nearly indifferent: the determinant is large, yet the float64 LU loses it to
    # cancellation, so these sentences must go through the log-space elimination.
    scores, mask = random_arc_scores(seed, lengths, scale=0.1)
    scores[:, :, 1:3] = 0.0
    scores[:, 1, 2] = scores[:, 2, 1] = margin
    return scores, mask


@pytest.mark.parametrize("single_root", [True, False])
def test_nearly_closed_cycle_with_flat_neighbours(single_root, monkeypatch):
    recomputed = []

    def spy(scores, words, single_root):
        recomputed.append(scores.shape[0])
        return _log_partition_by_elimination(scores, words, single_root)

    monkeypatch.setattr(nonprojective_tree, "_log_partition_by_elimination", spy)
    scores, mask = nearly_closed_cycle(11)
    check_against_brute_force(NonProjectiveTree(scores.float(), mask, single_root), False, atol=1e-6)
    assert sum(recomputed) >= sum(length >= 2 for length in LENGTHS)


@pytest.mark.parametrize("single_root", [True, False])
def test_elimination_matches_brute_force(single_root):
    scores, mask = random_arc_scores(12, LENGTHS, scale=3.0)
    words = mask.clone()
    words[:, 0] = False
    size = scores.shape[-1]
    forbidden = ~mask[:, :, None] | ~words[:, None, :] | torch.eye(size, dtype=torch.bool)
    log_z = _log_partition_by_elimination(scores.masked_fill(forbidden, -math.inf), words, single_root)
    for b, length in enumerate(LENGTHS):
        assert log_z[b].item() == pytest.approx(brute_force(scores[b], length, False, single_root)[0].item(), rel=1e-12)


@pytest.mark.parametrize("single_root", [True, False])
def test_forbidden_arcs(single_root):
    scores, mask = random_arc_scores(13, LENGTHS)
    generator = torch.Generator().manual_seed(0)
    scores[torch.rand(scores.shape, generator=generator, dtype=torch.float64) < 0.3] = -math.inf
    scores[:, 0, 1] = 0.0  # the chain root -> 1 -> 2 -> ... stays possible
    scores[:, torch.arange(1, 5), torch.arange(2, 6)] = 0.0
    scores.requires_grad_()
    check_against_brute_force(NonProjectiveTree(scores, mask, single_root), False, atol=1e-9)
    tree = NonProjectiveTree(scores, mask, single_root)
    assert torch.all(tree.marginals()[scores.detach() == -math.inf] == 0)
    (gradient,) = torch.autograd.grad(tree.log_partition().sum(), scores)
    assert torch.isfinite(gradient).all()


@pytest.mark.parametrize("single_root", [True, False])
def test_marginals_are_the_gradient_and_sum_to_one(single_root):
    scores, mask = random_arc_scores(14, [30, 1, 17, 25], scale=2.0)
    scores.requires_grad_()
    tree = NonProjectiveTree(scores, mask, single_root)
    marginals = tree.marginals()
    (gradient,) = torch.autograd.grad(NonProjectiveTree(scores, mask, single_root).log_partition().sum(), scores)
    assert torch.allclose(marginals, gradient, atol=1e-12)
    words = mask.clone()
    words[:, 0] = False
    assert torch.allclose(marginals.sum(1)[words], torch.ones(()).double())
    assert torch.all(marginals.sum(1)[~words] == 0)
    assert torch.all(marginals.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(marginals[~mask] == 0)
    if single_root:
        assert torch.allclose(marginals[:, 0].sum(1), torch.ones(()).double())


def test_marginals_under_no_grad_and_caching():
    scores, mask = random_arc_scores(15, LENGTHS)
    scores.requires_grad_()
    with torch.no_grad():
        tree = NonProjectiveTree(scores, mask)
        marginals = tree.marginals()
        log_z = tree.log_partition()
    assert not marginals.requires_grad and not log_z.requires_grad
    assert tree.marginals() is marginals
    differentiable = NonProjectiveTree(scores, mask)
    assert differentiable.log_partition().requires_grad and differentiable.marginals().requires_grad
    assert torch.allclose(differentiable.marginals(), marginals)


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("through_elimination", [False, True])
def test_gradcheck_of_marginals(single_root, through_elimination):
    lengths = [3, 1]
    scores, mask = nearly_closed_cycle(16, lengths, margin=25.0) if through_elimination else random_arc_scores(16, lengths)
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: NonProjectiveTree(s, mask, single_root).marginals(), (scores,))


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    log_scale=st.floats(-1.0, 3.0),
    single_root=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_shapes(lengths, log_scale, single_root, seed):
    scores, mask = random_arc_scores(seed, lengths, scale=10.0**log_scale)
    check_against_brute_force(NonProjectiveTree(scores, mask, single_root), False, atol=1e-8)


@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_decode_against_allennlp_on_longer_sentences(scale):
    scores, mask = random_arc_scores(17, [30, 24, 28, 12, 30, 19], scale=scale)
    multi_root = NonProjectiveTree(scores, mask, single_root=False).decode()
    single_root = NonProjectiveTree(scores, mask, single_root=True).decode()
    for b, length in enumerate((mask.sum(1) - 1).tolist()):
        reference, _ = decode_mst(scores[b].numpy().copy(), length + 1, has_labels=False)
        reference = torch.as_tensor(reference[: length + 1], dtype=torch.long)
        reference_score = tree_scores(scores[b], reference[None])[0]
        assert is_tree(multi_root[b, : length + 1]) and is_tree(single_root[b, : length + 1], single_root=True)
        assert tree_scores(scores[b], multi_root[b, None, : length + 1])[0] == pytest.approx(reference_score.item())
        single_root_score = tree_scores(scores[b], single_root[b, None, : length + 1])[0]
        if (reference[1:] == 0).sum() == 1:
            assert single_root_score == pytest.approx(reference_score.item())
        else:
            assert single_root_score < reference_score


@pytest.mark.parametrize("single_root", [True, False])
def test_decode_recovers_a_planted_tree(single_root):
    generator = torch.Generator().manual_seed(18)
    lengths = [30, 7, 1, 22]
    size = max(lengths) + 1
    scores = torch.randn(len(lengths), size, size, generator=generator)
    mask = torch.arange(size)[None, :] <= torch.tensor(lengths)[:, None]
    planted = torch.zeros(len(lengths), size, dtype=torch.long)
    for b, length in enumerate(lengths):
        # Attach the words in a random order, each to the root or to an already attached word.
        order = (torch.randperm(length, generator=generator) + 1).tolist()
        for position, word in enumerate(order):
            if position == 0 or (not single_root and position % 5 == 0):
                continue
            planted[b, word] = order[int(torch.randint(position, (), generator=generator))]
        scores[b, planted[b, 1 : length + 1], torch.arange(1, length + 1)] += 10.0
    assert torch.equal(NonProjectiveTree(scores, mask, single_root).decode(), planted)
