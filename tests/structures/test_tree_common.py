"""What NonProjectiveTree and ProjectiveTree share, each against enumeration of its own trees.

Each test runs for both classes; what only one of them has (the Matrix-Tree elimination fallback,
Chu-Liu-Edmonds decoding, projectivity of the decoded trees) is tested in its own module.
"""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tree_enumeration import LENGTHS, check_against_brute_force, random_arc_scores

from structkd_plugin.structures.nonprojective_tree import NonProjectiveTree
from structkd_plugin.structures.projective_tree import ProjectiveTree

# Whether a class's trees are projective, i.e. which trees to enumerate as its reference.
PROJECTIVE = {NonProjectiveTree: False, ProjectiveTree: True}
# Tolerances of the comparisons with enumeration in float64: on fixed batches and on random shapes.
ATOL = {NonProjectiveTree: 1e-9, ProjectiveTree: 1e-10}
# The determinant route of the Matrix-Tree theorem loses up to about 1e-8 relatively on log Z in
# float64 (see nonprojective_tree.py), a little more on its gradient, the marginals.
RANDOM_SHAPES_ATOL = {NonProjectiveTree: 1e-7, ProjectiveTree: 1e-9}


# Module scope: hypothesis refuses function-scoped fixtures in @given tests.
@pytest.fixture(params=[NonProjectiveTree, ProjectiveTree], ids=lambda tree_class: tree_class.__name__, scope="module")
def tree_class(request):
    return request.param


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("differentiable", [True, False])
@pytest.mark.parametrize(("seed", "scale"), [(0, 0.5), (1, 1.0), (1, 2.0), (2, 3.0), (2, 10.0), (3, 10.0)])
def test_matches_brute_force(tree_class, single_root, differentiable, seed, scale):
    # Scores that require grad take the recorded (create_graph) path for the marginals.
    scores, mask = random_arc_scores(seed, LENGTHS, scale=scale)
    tree = tree_class(scores.requires_grad_(differentiable), mask, single_root)
    check_against_brute_force(tree, PROJECTIVE[tree_class], atol=ATOL[tree_class])


@pytest.mark.parametrize("single_root", [True, False])
def test_large_scores_in_float32(tree_class, single_root):
    scores, mask = random_arc_scores(10, LENGTHS, scale=1e4, dtype=torch.float32)
    scores.requires_grad_()
    check_against_brute_force(tree_class(scores, mask, single_root), PROJECTIVE[tree_class], atol=1e-6)
    (gradient,) = torch.autograd.grad(tree_class(scores, mask, single_root).log_partition().sum(), scores)
    assert torch.isfinite(gradient).all()


@pytest.mark.parametrize("single_root", [True, False])
def test_forbidden_arcs(tree_class, single_root):
    scores, mask = random_arc_scores(13, LENGTHS)
    generator = torch.Generator().manual_seed(0)
    scores[torch.rand(scores.shape, generator=generator, dtype=torch.float64) < 0.3] = -math.inf
    scores[:, 0, 1] = 0.0  # the chain root -> 1 -> 2 -> ... stays possible
    scores[:, torch.arange(1, 5), torch.arange(2, 6)] = 0.0
    scores.requires_grad_()
    check_against_brute_force(tree_class(scores, mask, single_root), PROJECTIVE[tree_class], atol=ATOL[tree_class])
    tree = tree_class(scores, mask, single_root)
    assert torch.all(tree.marginals()[scores.detach() == -math.inf] == 0)
    (gradient,) = torch.autograd.grad(tree.log_partition().sum(), scores)
    assert torch.isfinite(gradient).all()


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("differentiable", [True, False])
def test_marginals_are_the_gradient_and_sum_to_one(tree_class, single_root, differentiable):
    # The marginals come from scores that require grad (recorded path) or not (detached copy).
    scores, mask = random_arc_scores(14, [30, 1, 17, 25], scale=2.0)
    marginals = tree_class(scores.requires_grad_(differentiable), mask, single_root).marginals()
    scores.requires_grad_()
    (gradient,) = torch.autograd.grad(tree_class(scores, mask, single_root).log_partition().sum(), scores)
    assert torch.allclose(marginals, gradient, atol=1e-12)
    words = mask.clone()
    words[:, 0] = False
    assert torch.allclose(marginals.sum(1)[words], torch.ones(()).double())
    assert torch.all(marginals.sum(1)[~words] == 0)
    assert torch.all(marginals.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(marginals[~mask] == 0)
    if single_root:
        assert torch.allclose(marginals[:, 0].sum(1), torch.ones(()).double())


def test_marginals_under_no_grad_and_caching(tree_class):
    scores, mask = random_arc_scores(15, LENGTHS)
    scores.requires_grad_()
    with torch.no_grad():
        tree = tree_class(scores, mask)
        marginals = tree.marginals()
        log_z = tree.log_partition()
    assert not marginals.requires_grad and not log_z.requires_grad
    assert tree.marginals() is marginals
    differentiable = tree_class(scores, mask)
    assert differentiable.log_partition().requires_grad and differentiable.marginals().requires_grad
    assert torch.allclose(differentiable.marginals(), marginals)


@pytest.mark.parametrize("single_root", [True, False])
def test_gradcheck_of_marginals(tree_class, single_root):
    scores, mask = random_arc_scores(16, [3, 1])
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: tree_class(s, mask, single_root).marginals(), (scores,))


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    log_scale=st.floats(-1.0, 3.0),
    single_root=st.booleans(),
    seed=st.integers(0, 2**16),
)
@example(lengths=[4], log_scale=1.2109375, single_root=True, seed=1442)  # marginals off by 1.06e-8
def test_random_shapes(tree_class, lengths, log_scale, single_root, seed):
    scores, mask = random_arc_scores(seed, lengths, scale=10.0**log_scale)
    tree = tree_class(scores, mask, single_root)
    check_against_brute_force(tree, PROJECTIVE[tree_class], atol=RANDOM_SHAPES_ATOL[tree_class])
