"""ProjectiveTree (Eisner's algorithm) against enumeration of all projective trees."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_enumeration import check_against_brute_force, random_arc_scores

from structkd_plugin.structures.projective_tree import ProjectiveTree

LENGTHS = [5, 1, 3, 4, 2]


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("differentiable", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force(single_root, differentiable, seed):
    # Scores that require grad take the recorded (create_graph) path for the marginals.
    scores, mask = random_arc_scores(seed, LENGTHS, scale=[0.5, 2.0, 10.0][seed])
    check_against_brute_force(ProjectiveTree(scores.requires_grad_(differentiable), mask, single_root), True, atol=1e-10)


@pytest.mark.parametrize("single_root", [True, False])
def test_large_scores_in_float32(single_root):
    scores, mask = random_arc_scores(10, LENGTHS, scale=1e4, dtype=torch.float32)
    scores.requires_grad_()
    check_against_brute_force(ProjectiveTree(scores, mask, single_root), True, atol=1e-6)
    (gradient,) = torch.autograd.grad(ProjectiveTree(scores, mask, single_root).log_partition().sum(), scores)
    assert torch.isfinite(gradient).all()


@pytest.mark.parametrize("single_root", [True, False])
def test_forbidden_arcs(single_root):
    scores, mask = random_arc_scores(13, LENGTHS)
    generator = torch.Generator().manual_seed(0)
    scores[torch.rand(scores.shape, generator=generator, dtype=torch.float64) < 0.3] = -math.inf
    scores[:, 0, 1] = 0.0  # the chain root -> 1 -> 2 -> ... stays possible
    scores[:, torch.arange(1, 5), torch.arange(2, 6)] = 0.0
    scores.requires_grad_()
    check_against_brute_force(ProjectiveTree(scores, mask, single_root), True, atol=1e-10)
    tree = ProjectiveTree(scores, mask, single_root)
    assert torch.all(tree.marginals()[scores.detach() == -math.inf] == 0)
    (gradient,) = torch.autograd.grad(tree.log_partition().sum(), scores)
    assert torch.isfinite(gradient).all()


@pytest.mark.parametrize("single_root", [True, False])
def test_marginals_are_the_gradient_and_sum_to_one(single_root):
    scores, mask = random_arc_scores(14, [30, 1, 17, 25], scale=2.0)
    marginals = ProjectiveTree(scores, mask, single_root).marginals()
    scores.requires_grad_()
    (gradient,) = torch.autograd.grad(ProjectiveTree(scores, mask, single_root).log_partition().sum(), scores)
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
        tree = ProjectiveTree(scores, mask)
        marginals = tree.marginals()
        log_z = tree.log_partition()
    assert not marginals.requires_grad and not log_z.requires_grad
    assert tree.marginals() is marginals
    differentiable = ProjectiveTree(scores, mask)
    assert differentiable.log_partition().requires_grad and differentiable.marginals().requires_grad
    assert torch.allclose(differentiable.marginals(), marginals)


@pytest.mark.parametrize("single_root", [True, False])
def test_gradcheck_of_marginals(single_root):
    scores, mask = random_arc_scores(16, [3, 1])
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: ProjectiveTree(s, mask, single_root).marginals(), (scores,))


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    log_scale=st.floats(-1.0, 3.0),
    single_root=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_shapes(lengths, log_scale, single_root, seed):
    scores, mask = random_arc_scores(seed, lengths, scale=10.0**log_scale)
    check_against_brute_force(ProjectiveTree(scores, mask, single_root), True, atol=1e-9)


@pytest.mark.parametrize("single_root", [True, False])
def test_decode_recovers_a_planted_projective_tree(single_root):
    generator = torch.Generator().manual_seed(18)
    lengths = [30, 7, 1, 22]
    size = max(lengths) + 1
    scores = torch.randn(len(lengths), size, size, generator=generator)
    mask = torch.arange(size)[None, :] <= torch.tensor(lengths)[:, None]
    planted = torch.zeros(len(lengths), size, dtype=torch.long)

    def attach(b, head, first, last):
        # Words first..last hang below head: pick one of them, attach it, and recurse on both
        # sides, which keeps the tree projective.
        if first > last:
            return
        word = int(torch.randint(first, last + 1, (), generator=generator))
        planted[b, word] = head
        attach(b, word, first, word - 1)
        attach(b, word, word + 1, last)

    for b, length in enumerate(lengths):
        if single_root:
            attach(b, 0, 1, length)
        else:
            boundaries = [0, *sorted({int(x) for x in torch.randint(1, length + 1, (2,), generator=generator)}), length]
            for first, last in zip(boundaries, boundaries[1:]):
                attach(b, 0, first + 1, last)
        scores[b, planted[b, 1 : length + 1], torch.arange(1, length + 1)] += 10.0
    assert torch.equal(ProjectiveTree(scores, mask, single_root).decode(), planted)
