"""NonProjectiveTree (Matrix-Tree theorem, Chu-Liu-Edmonds) against enumeration of all trees.

What it shares with ProjectiveTree is tested for both in test_tree_common.py; here: the log-space
elimination fallback of the Matrix-Tree theorem and the maximum spanning tree decoding.
"""

import math

import pytest
import torch
from allennlp_light.nn.chu_liu_edmonds import decode_mst
from tree_enumeration import (
    LENGTHS,
    brute_force,
    check_against_brute_force,
    is_tree,
    planted_arc_scores,
    random_arc_scores,
    tree_scores,
)

from structkd_plugin.structures import nonprojective_tree
from structkd_plugin.structures.nonprojective_tree import NonProjectiveTree, _log_partition_by_elimination


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
def test_gradcheck_of_marginals_through_elimination(single_root):
    # The gradcheck on ordinary scores is in test_tree_common.py.
    scores, mask = nearly_closed_cycle(16, [3, 1], margin=25.0)
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: NonProjectiveTree(s, mask, single_root).marginals(), (scores,))


@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_decode_against_allennlp_on_longer_sentences(scale):
    scores, mask = random_arc_scores(17, [30, 24, 28, 12, 30, 19], scale=scale)
    multi_root = NonProjectiveTree(scores, mask, single_root=False).argmax()
    single_root = NonProjectiveTree(scores, mask, single_root=True).argmax()
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
    def plant(generator, length, heads):
        # Attach the words in a random order, each to the root or to an already attached word.
        order = (torch.randperm(length, generator=generator) + 1).tolist()
        for position, word in enumerate(order):
            if position == 0 or (not single_root and position % 5 == 0):
                continue
            heads[word] = order[int(torch.randint(position, (), generator=generator))]

    scores, mask, planted = planted_arc_scores(18, [30, 7, 1, 22], plant)
    assert torch.equal(NonProjectiveTree(scores, mask, single_root).argmax(), planted)
