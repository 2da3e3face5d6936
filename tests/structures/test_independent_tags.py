"""IndependentTags against enumeration of all tag sequences, and against the zero-transition CRF."""

import itertools

import torch

from structkd_plugin.structures import IndependentTags, LinearChainCRF

LENGTHS = [4, 1, 3]


def make(seed: int, labels: int = 3, scale: float = 1.0):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(len(LENGTHS), max(LENGTHS), labels, generator=generator, dtype=torch.float64) * scale
    mask = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]
    return emissions, mask


def test_against_enumeration():
    emissions, mask = make(0)
    tags_dist = IndependentTags(emissions, mask, temperature=2.0)
    tempered = emissions / 2.0
    unary, pairwise = tags_dist.unary_marginals(), tags_dist.pairwise_marginals()
    best_tags, best_scores = tags_dist.argmax()
    for b, n in enumerate(LENGTHS):
        sequences = list(itertools.product(range(3), repeat=n))
        scores = torch.stack([sum(tempered[b, i, y[i]] for i in range(n)) for y in sequences])
        log_z = scores.logsumexp(0)
        probs = (scores - log_z).exp()
        assert torch.allclose(tags_dist.log_partition()[b], log_z)
        expected_unary = torch.zeros(n, 3, dtype=torch.float64)
        expected_pairwise = torch.zeros(n, 3, 3, dtype=torch.float64)
        for y, p in zip(sequences, probs):
            for i in range(n):
                expected_unary[i, y[i]] += p
                if i:
                    expected_pairwise[i, y[i - 1], y[i]] += p
        assert torch.allclose(unary[b, :n], expected_unary)
        assert torch.allclose(pairwise[b, :n], expected_pairwise)
        assert torch.all(unary[b, n:] == 0) and torch.all(pairwise[b, n:] == 0)
        best = int(scores.argmax())
        assert tuple(best_tags[b, :n].tolist()) == sequences[best]
        assert torch.allclose(best_scores[b], scores[best])
        assert torch.allclose(tags_dist.entropy()[b], -(probs * probs.log()).sum())
        tags = torch.zeros(max(LENGTHS), dtype=torch.long)
        tags[:n] = torch.tensor(sequences[5 % len(sequences)])
        assert torch.allclose(tags_dist.log_score(tags[None].expand(len(LENGTHS), -1))[b], scores[5 % len(sequences)])


def test_a_batch_of_one_word_sentences_has_one_empty_pairwise_entry():
    emissions = torch.randn(2, 1, 3)
    pairwise = IndependentTags(emissions, torch.ones(2, 1, dtype=torch.bool)).pairwise_marginals()
    assert pairwise.shape == (2, 1, 3, 3) and torch.all(pairwise == 0)


def test_equals_the_crf_with_zero_transitions_including_kbest():
    emissions, mask = make(1, labels=4)
    independent = IndependentTags(emissions, mask)
    crf = LinearChainCRF(emissions, emissions.new_zeros(4, 4), mask)
    assert torch.allclose(independent.log_partition(), crf.log_partition())
    assert torch.allclose(independent.unary_marginals(), crf.unary_marginals())
    assert torch.allclose(independent.pairwise_marginals(), crf.pairwise_marginals())
    assert torch.allclose(independent.entropy(), crf.entropy())
    tags, scores = independent.topk(5)
    crf_tags, crf_scores = crf.topk(5)
    assert torch.equal(tags, crf_tags) and torch.allclose(scores, crf_scores)


def test_stable_at_large_scores_in_float32():
    emissions, mask = make(2, scale=1e4)
    dist32 = IndependentTags(emissions.float(), mask)
    dist64 = IndependentTags(emissions, mask)
    assert torch.allclose(dist32.log_partition().double(), dist64.log_partition(), rtol=1e-6)
    assert torch.isfinite(dist32.unary_marginals()).all() and torch.isfinite(dist32.entropy()).all()


def test_kbest_against_enumeration_with_k_below_and_above_the_number_of_labels():
    emissions, mask = make(3, labels=4)
    emissions[0, 2, 1] = float("-inf")  # a forbidden label
    for k in (1, 2, 3, 6, 70):
        tags, scores = IndependentTags(emissions, mask).topk(k)
        assert tags.shape == (len(LENGTHS), k, max(LENGTHS)) and scores.shape == (len(LENGTHS), k)
        for b, n in enumerate(LENGTHS):
            sequences = [y for y in itertools.product(range(4), repeat=n) if not (b == 0 and y[2] == 1)]
            ranked = sorted(sequences, key=lambda y: -float(sum(emissions[b, i, y[i]] for i in range(n))))[:k]
            found = min(k, len(ranked))
            assert [tuple(row[:n].tolist()) for row in tags[b, :found]] == ranked
            expected = torch.stack([sum(emissions[b, i, y[i]] for i in range(n)) for y in ranked])
            assert torch.allclose(scores[b, :found], expected)
            # Missing sequences (k above the number of allowed ones) and padding are all zeros.
            assert torch.all(torch.isneginf(scores[b, found:])) and torch.all(tags[b, found:] == 0)
            assert torch.all(tags[b, :, n:] == 0)
