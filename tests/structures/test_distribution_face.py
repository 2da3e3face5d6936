"""Every structure answers the same names (`log_partition`, `marginals`, `argmax`, `topk` where
tractable, `entropy`, `cross_entropy`, `kl`), checked against brute-force enumeration: for each
sentence, the distributions p and q over all its structures are enumerated, and entropy,
-E_p[log q] and KL(p || q) computed from them directly."""

import itertools

import pytest
import torch

from structkd_plugin.structures import (
    HeadSelection,
    IndependentTags,
    LinearChainCRF,
    NonProjectiveTree,
    ProjectiveTree,
    SpanSegmentation,
    second_order_mean_field,
)
from tests.structures.test_span_segmentation import make_batch, segmentations
from tests.structures.tree_enumeration import all_trees, random_arc_scores, tree_scores

LENGTHS = [3, 1, 2]


def enumerated(log_scores: torch.Tensor, other_log_scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """Entropy of p, -E_p[log q] and KL(p || q) from both distributions' unnormalized log scores."""
    log_p, log_q = log_scores.log_softmax(0), other_log_scores.log_softmax(0)
    p = log_p.exp()
    return {
        "entropy": -(p * log_p).sum(),
        "cross_entropy": -(p * log_q).sum(),
        "kl": (p * (log_p - log_q)).sum(),
    }


def check(p, q, per_sentence):
    for name in ("entropy", "cross_entropy", "kl"):
        value = getattr(p, name)() if name == "entropy" else getattr(p, name)(q)
        expected = torch.stack([sentence[name] for sentence in per_sentence])
        assert torch.allclose(value, expected, atol=1e-8), name


def tag_batch(seed):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(3, 3, 3, generator=generator, dtype=torch.float64) * 2
    mask = torch.arange(3)[None, :] < torch.tensor(LENGTHS)[:, None]
    return emissions, torch.randn(3, 3, generator=generator, dtype=torch.float64), mask


def sequences(length, tags=3):
    return torch.tensor(list(itertools.product(range(tags), repeat=length)), dtype=torch.long)


def sequence_scores(emissions, length, transitions=None, start=None, end=None, temperature=1.0):
    """Scores `[T]` of every tag sequence of one sentence (`emissions [n, L]`), written out."""
    tags = sequences(length)
    positions = torch.arange(length)
    scores = emissions[positions, tags].sum(-1)
    if transitions is not None:
        scores = scores + transitions[tags[:, :-1], tags[:, 1:]].sum(-1) + start[tags[:, 0]] + end[tags[:, -1]]
    return scores / temperature


@pytest.mark.parametrize("structure", ["crf", "independent"])
def test_tag_distributions_against_enumeration(structure):
    (emissions_p, transitions_p, mask), (emissions_q, transitions_q, _) = tag_batch(1), tag_batch(2)
    start, end = torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, -0.5], dtype=torch.float64)
    per_sentence = []
    if structure == "crf":
        p = LinearChainCRF(emissions_p, transitions_p, mask, start, end)
        q = LinearChainCRF(emissions_q, transitions_q, mask, end, start, temperature=2.0)
        for b, n in enumerate(LENGTHS):
            scores_p = sequence_scores(emissions_p[b], n, transitions_p, start, end)
            scores_q = sequence_scores(emissions_q[b], n, transitions_q, end, start, temperature=2.0)
            per_sentence.append(enumerated(scores_p, scores_q))
    else:
        p, q = IndependentTags(emissions_p, mask), IndependentTags(emissions_q, mask, temperature=2.0)
        for b, n in enumerate(LENGTHS):
            per_sentence.append(enumerated(sequence_scores(emissions_p[b], n), sequence_scores(emissions_q[b], n, temperature=2.0)))
    check(p, q, per_sentence)
    best, _ = p.argmax()
    for b, n in enumerate(LENGTHS):
        transitions = (transitions_p, start, end) if structure == "crf" else ()
        expected = sequences(n)[sequence_scores(emissions_p[b], n, *transitions).argmax()]
        assert torch.equal(best[b, :n], expected)
    tags, _ = p.topk(2)
    assert torch.equal(tags[:, 0], best)


def test_trees_against_enumeration():
    for tree_class, projective in ((NonProjectiveTree, False), (ProjectiveTree, True)):
        scores_p, mask = random_arc_scores(3, LENGTHS, scale=2.0)
        scores_q, _ = random_arc_scores(4, LENGTHS, scale=2.0)
        p, q = tree_class(scores_p, mask), tree_class(scores_q, mask)
        per_sentence = []
        for b, length in enumerate(LENGTHS):
            trees = all_trees(length, projective, single_root=True)
            per_sentence.append(enumerated(tree_scores(scores_p[b], trees), tree_scores(scores_q[b], trees)))
        check(p, q, per_sentence)
        with pytest.raises(NotImplementedError, match="no tractable top-k"):
            p.topk(2)


def test_span_segmentations_against_enumeration():
    scores_p, mask = make_batch(LENGTHS, labels=2, seed=5)
    scores_q, _ = make_batch(LENGTHS, labels=2, seed=6)
    p, q = SpanSegmentation(scores_p, mask), SpanSegmentation(scores_q, mask)
    per_sentence = []
    for b, length in enumerate(LENGTHS):
        structures = segmentations(length, 2, length)
        zero = scores_p.new_zeros(())
        total = lambda scores: torch.stack([sum((scores[b, i, j, r] for i, j, r in spans), zero) for spans in structures])  # noqa: E731
        per_sentence.append(enumerated(total(scores_p), total(scores_q)))
    check(p, q, per_sentence)


def test_cross_entropy_needs_the_same_structure():
    emissions, transitions, mask = tag_batch(1)
    with pytest.raises(TypeError, match="two LinearChainCRFs"):
        LinearChainCRF(emissions, transitions, mask).cross_entropy(IndependentTags(emissions, mask))


def test_a_distribution_is_its_own_closest():
    emissions, transitions, mask = tag_batch(7)
    crf = LinearChainCRF(emissions, transitions, mask)
    assert torch.allclose(crf.kl(LinearChainCRF(emissions, transitions, mask)), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(crf.cross_entropy(LinearChainCRF(emissions, transitions, mask)), crf.entropy())


def test_head_selection_against_enumeration_and_as_the_mean_field_result():
    scores_p, mask = random_arc_scores(8, LENGTHS, scale=2.0)
    scores_q, _ = random_arc_scores(9, LENGTHS, scale=2.0)
    p, q = HeadSelection(scores_p, mask), HeadSelection(scores_q, mask)
    per_sentence = []
    for b, length in enumerate(LENGTHS):
        # Every head vector (each word any other position, the root included), trees or not.
        heads = torch.tensor([(0, *h) for h in itertools.product(range(length + 1), repeat=length) if all(h[d] != d + 1 for d in range(length))])
        per_sentence.append(enumerated(tree_scores(scores_p[b], heads), tree_scores(scores_q[b], heads)))
    check(p, q, per_sentence)
    for b, length in enumerate(LENGTHS):
        for d in range(1, length + 1):
            best = max((h for h in range(length + 1) if h != d), key=lambda h: scores_p[b, h, d])
            assert p.argmax()[b, d] == best
    # A second-order parser's mean-field marginals are a HeadSelection's.
    q_mean_field = second_order_mean_field(scores_p, torch.randn(3, 4, 4, 4, dtype=torch.float64), torch.randn(3, 4, 4, 4, dtype=torch.float64), mask)
    assert torch.allclose(HeadSelection(q_mean_field.clamp_min(1e-300).log(), mask).marginals(), q_mean_field, atol=1e-10)
