"""LinearChainCRF checked against brute-force enumeration of every tag sequence."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structkd_plugin.structures.linear_chain_crf import LinearChainCRF

INF = float("inf")


# ---------------------------------------------------------------------------------------------
# Brute force


def brute_force(emissions, transitions, mask, start=None, end=None, temperature=1.0):
    """Enumerate every tag sequence of every sentence, in float64.

    Returns a dict with log_z [B], unary [B, n, L], pairwise [B, n, L, L], entropy [B] and
    ranking: per sentence, a list of (score, tag tuple) sorted by decreasing score, scores divided
    by the temperature.
    """
    batch_size, length, num_tags = emissions.shape
    emissions = emissions.detach().double()
    transitions = transitions.detach().double()
    if transitions.dim() == 2:
        transitions = transitions.expand(batch_size, length, num_tags, num_tags)
    start = torch.zeros(num_tags, dtype=torch.float64) if start is None else start.detach().double()
    end = torch.zeros(num_tags, dtype=torch.float64) if end is None else end.detach().double()

    log_z = torch.zeros(batch_size, dtype=torch.float64)
    entropy = torch.zeros(batch_size, dtype=torch.float64)
    unary = torch.zeros(batch_size, length, num_tags, dtype=torch.float64)
    pairwise = torch.zeros(batch_size, length, num_tags, num_tags, dtype=torch.float64)
    ranking = []
    for b in range(batch_size):
        size = int(mask[b].sum())
        sequences = torch.tensor(list(itertools.product(range(num_tags), repeat=size)))
        positions = torch.arange(size)
        score = start[sequences[:, 0]] + end[sequences[:, -1]]
        score = score + emissions[b, positions, sequences].sum(1)
        if size > 1:
            score = score + transitions[b, positions[1:], sequences[:, :-1], sequences[:, 1:]].sum(1)
        score = score / temperature
        log_z[b] = torch.logsumexp(score, 0)
        probability = torch.exp(score - log_z[b])
        allowed = probability > 0
        entropy[b] = -(probability[allowed] * torch.log(probability[allowed])).sum()
        for i in range(size):
            unary[b, i].index_add_(0, sequences[:, i], probability)
        for i in range(1, size):
            pairwise[b, i].view(-1).index_add_(
                0, sequences[:, i - 1] * num_tags + sequences[:, i], probability
            )
        order = torch.argsort(score, descending=True)
        ranking.append([(score[j].item(), tuple(sequences[j].tolist())) for j in order])
    return dict(log_z=log_z, unary=unary, pairwise=pairwise, entropy=entropy, ranking=ranking)


def sequence_score(instance, b, tags, temperature=1.0):
    """Score of one tag tuple of sentence b, written out term by term."""
    emissions, transitions = instance["emissions"].double(), instance["transitions"].double()
    start, end = instance.get("start"), instance.get("end")
    total = 0.0 if start is None else start[tags[0]].item()
    total += 0.0 if end is None else end[tags[-1]].item()
    for i, tag in enumerate(tags):
        total += emissions[b, i, tag].item()
        if i > 0:
            if transitions.dim() == 2:
                total += transitions[tags[i - 1], tag].item()
            else:
                total += transitions[b, i, tags[i - 1], tag].item()
    return total / temperature


def random_instance(lengths, num_tags, per_position=False, with_boundaries=True, scale=1.0,
                    dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batch_size, length = len(lengths), max(lengths)

    def randn(*shape):
        return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).to(dtype)

    instance = dict(
        emissions=randn(batch_size, length, num_tags),
        transitions=(randn(batch_size, length, num_tags, num_tags) if per_position
                     else randn(num_tags, num_tags)),
        mask=torch.arange(length)[None, :] < torch.tensor(lengths)[:, None],
    )
    if with_boundaries:
        instance.update(start=randn(num_tags), end=randn(num_tags))
    return instance


def make_crf(instance, temperature=1.0):
    return LinearChainCRF(
        instance["emissions"], instance["transitions"], instance["mask"],
        start=instance.get("start"), end=instance.get("end"), temperature=temperature,
    )


def run_brute_force(instance, temperature=1.0):
    return brute_force(
        instance["emissions"], instance["transitions"], instance["mask"],
        instance.get("start"), instance.get("end"), temperature,
    )


def check_against_brute_force(crf, expected, mask, atol=1e-9, ks=(1, 3, 40)):
    torch.testing.assert_close(crf.log_partition(), expected["log_z"], atol=atol, rtol=1e-9)
    torch.testing.assert_close(crf.unary_marginals(), expected["unary"], atol=atol, rtol=0)
    torch.testing.assert_close(crf.pairwise_marginals(), expected["pairwise"], atol=atol, rtol=0)
    torch.testing.assert_close(crf.entropy(), expected["entropy"], atol=atol, rtol=1e-9)
    check_decodes(crf, expected, mask, atol, ks)


def check_decodes(crf, expected, mask, atol, ks):
    """Viterbi and k-best against the enumerated ranking (ties broken by score only)."""
    tags, scores = crf.argmax()
    best = torch.tensor([ranking[0][0] for ranking in expected["ranking"]], dtype=torch.float64)
    torch.testing.assert_close(scores, best, atol=atol, rtol=1e-9)
    assert (tags[~mask] == 0).all()
    torch.testing.assert_close(crf.log_score(tags), best, atol=atol, rtol=1e-9)

    for k in ks:
        k_tags, k_scores = crf.topk(k)
        assert k_tags.shape == (mask.shape[0], k, mask.shape[1]) and k_scores.shape == (mask.shape[0], k)
        for b, ranking in enumerate(expected["ranking"]):
            size = int(mask[b].sum())
            expected_scores = [score for score, _ in ranking[:k]]
            expected_scores += [-INF] * (k - len(expected_scores))
            torch.testing.assert_close(
                k_scores[b], torch.tensor(expected_scores, dtype=torch.float64), atol=atol, rtol=1e-9
            )
            found = [tuple(row[:size].tolist()) for row, score in zip(k_tags[b], k_scores[b]) if score > -INF]
            assert len(set(found)) == len(found), "k-best returned a sequence twice"
            scores_by_sequence = dict((sequence, score) for score, sequence in ranking)
            for sequence, score in zip(found, k_scores[b]):
                assert scores_by_sequence[sequence] == pytest.approx(score.item(), abs=atol, rel=1e-9)
            assert (k_tags[b][k_scores[b] == -INF] == 0).all()
            assert (k_tags[b][:, size:] == 0).all()
        if k == 1:
            torch.testing.assert_close(k_scores[:, 0], scores)
            assert torch.equal(k_tags[:, 0], tags)


# ---------------------------------------------------------------------------------------------
# Exact agreement with enumeration


@pytest.mark.parametrize("per_position", [False, True])
@pytest.mark.parametrize("with_boundaries", [False, True])
def test_matches_brute_force(per_position, with_boundaries):
    instance = random_instance([5, 3, 1, 4, 2], num_tags=3, per_position=per_position,
                               with_boundaries=with_boundaries, seed=1)
    crf = make_crf(instance)
    expected = run_brute_force(instance)
    check_against_brute_force(crf, expected, instance["mask"])
    # Padding and entry 0 carry no marginal mass.
    assert (crf.unary_marginals()[~instance["mask"]] == 0).all()
    assert (crf.pairwise_marginals()[:, 0] == 0).all()
    assert (crf.pairwise_marginals()[~instance["mask"]] == 0).all()


def test_log_score_matches_explicit_sum_and_ignores_padding():
    instance = random_instance([4, 2, 1], num_tags=3, per_position=True, seed=2)
    generator = torch.Generator().manual_seed(3)
    tags = torch.randint(0, 3, (3, 4), generator=generator)
    tags_with_garbage = tags.masked_fill(~instance["mask"], -7)
    crf = make_crf(instance, temperature=2.0)
    scores = crf.log_score(tags_with_garbage)
    for b, size in enumerate([4, 2, 1]):
        expected = sequence_score(instance, b, tags[b, :size].tolist(), temperature=2.0)
        assert scores[b].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_temperature_divides_every_score(temperature):
    instance = random_instance([4, 3, 1], num_tags=3, seed=4)
    crf = make_crf(instance, temperature=temperature)
    check_against_brute_force(crf, run_brute_force(instance, temperature), instance["mask"])


def test_length_one_sentences_only():
    instance = random_instance([1, 1, 1], num_tags=3, seed=5)
    crf = make_crf(instance)
    check_against_brute_force(crf, run_brute_force(instance), instance["mask"])
    assert crf.pairwise_marginals().shape == (3, 1, 3, 3)


def test_single_tag():
    instance = random_instance([3, 1], num_tags=1, seed=6)
    crf = make_crf(instance)
    check_against_brute_force(crf, run_brute_force(instance), instance["mask"])


# ---------------------------------------------------------------------------------------------
# Constraints given as -inf


def bio_constraints(dtype=torch.float64):
    """Hand-written BIO constraints over O, B-X, I-X, B-Y, I-Y: I-T only after B-T or I-T."""
    num_tags = 5
    transitions = torch.zeros(num_tags, num_tags, dtype=dtype)
    for previous in range(num_tags):
        for current, allowed_previous in ((2, (1, 2)), (4, (3, 4))):
            if previous not in allowed_previous:
                transitions[previous, current] = -INF
    start = torch.tensor([0.0, 0.0, -INF, 0.0, -INF], dtype=dtype)
    return transitions, start


def allowed(sequence):
    """Is the tag tuple (0=O, 1=B-X, 2=I-X, 3=B-Y, 4=I-Y) well-formed BIO?"""
    previous = 0
    for tag in sequence:
        if tag in (2, 4) and previous not in (tag - 1, tag):
            return False
        previous = tag
    return True


@pytest.mark.parametrize("per_position", [False, True])
def test_bio_constraints(per_position):
    instance = random_instance([5, 4, 2, 1], num_tags=5, seed=7)
    transitions, start = bio_constraints()
    mask = instance["mask"]
    if per_position:
        transitions = transitions.expand(4, 5, 5, 5).clone()
    noise = torch.randn(transitions.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    instance.update(transitions=transitions + 0.5 * noise, start=start)
    crf = make_crf(instance)
    expected = run_brute_force(instance)
    check_against_brute_force(crf, expected, mask, ks=(1, 5, 20))

    pairwise = crf.pairwise_marginals()
    forbidden = torch.isneginf(transitions if per_position else transitions.expand(4, 5, 5, 5))
    assert (pairwise[forbidden] == 0).all()
    assert (crf.unary_marginals()[:, 0, [2, 4]] == 0).all()
    k_tags, k_scores = crf.topk(20)
    viterbi_tags, _ = crf.argmax()
    for b in range(4):
        size = int(mask[b].sum())
        assert allowed(tuple(viterbi_tags[b, :size].tolist()))
        for row in k_tags[b][k_scores[b] > -INF]:
            assert allowed(tuple(row[:size].tolist()))
    # Length-1 sentence: only O, B-X, B-Y are allowed, so rows 4.. of its 5-best are missing.
    _, scores_5 = crf.topk(5)
    assert torch.isfinite(scores_5[3, :3]).all() and torch.isneginf(scores_5[3, 3:]).all()


def test_no_nan_gradients_with_unreachable_tags():
    """-inf emissions make tags unreachable at some positions: values and gradients stay finite."""
    instance = random_instance([5, 3, 1], num_tags=5, seed=8)
    transitions, start = bio_constraints()
    emissions = instance["emissions"].clone()
    emissions[:, 2, [1, 2]] = -INF  # X cannot be tagged at position 2 (so I-X is unreachable there)
    emissions[:, 3, 0] = -INF
    leaves = [emissions.requires_grad_(), transitions.requires_grad_(), start.requires_grad_(),
              instance["end"].requires_grad_()]
    instance.update(emissions=emissions, transitions=transitions, start=start)
    crf = make_crf(instance)
    expected = run_brute_force(instance)
    check_against_brute_force(crf, expected, instance["mask"], ks=(1, 7))

    weights = torch.randn(crf.pairwise_marginals().shape, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)
    objective = (crf.log_partition().sum() + crf.entropy().sum() + (crf.unary_marginals() ** 2).sum()
                 + (weights * crf.pairwise_marginals()).sum())
    gradients = torch.autograd.grad(objective, leaves)
    for gradient in gradients:
        assert torch.isfinite(gradient).all()
    # Forbidden entries get no gradient from log Z.
    crf = make_crf(instance)
    emission_grad, transition_grad = torch.autograd.grad(crf.log_partition().sum(), leaves[:2])
    assert (emission_grad[torch.isneginf(emissions)] == 0).all()
    assert (transition_grad[torch.isneginf(transitions)] == 0).all()


# ---------------------------------------------------------------------------------------------
# Numerics


@pytest.mark.parametrize("offset, scale", [(0.0, 1e4), (1e4, 1.0), (-1e4, 3.0)])
def test_large_scores_float32(offset, scale):
    """Scores of magnitude 1e4 in float32: spread out (near-deterministic distributions) or
    crowded around +-1e4 (near-ties), against float64 enumeration of the same float32 inputs."""
    instance = random_instance([5, 4, 2, 1], num_tags=3, per_position=True, scale=scale,
                               dtype=torch.float32, seed=9)
    for name in ("emissions", "transitions", "start", "end"):
        instance[name] = (instance[name] + offset).requires_grad_()
    crf = make_crf(instance)
    expected = run_brute_force(instance)
    log_z = crf.log_partition()
    torch.testing.assert_close(log_z.double(), expected["log_z"], rtol=1e-6, atol=0)
    torch.testing.assert_close(crf.unary_marginals().double(), expected["unary"], atol=1e-5, rtol=0)
    torch.testing.assert_close(crf.pairwise_marginals().double(), expected["pairwise"], atol=1e-5, rtol=0)
    # H = log Z - E[S] cancels sequence scores of ~5e4, whose float32 spacing is ~4e-3.
    torch.testing.assert_close(crf.entropy().double(), expected["entropy"], atol=1e-2, rtol=0)
    best = torch.tensor([ranking[0][0] for ranking in expected["ranking"]], dtype=torch.float64)
    torch.testing.assert_close(crf.argmax()[1].double(), best, rtol=1e-6, atol=0)
    top3 = torch.tensor([[score for score, _ in ranking[:3]] + [-INF] * (3 - len(ranking[:3]))
                         for ranking in expected["ranking"]], dtype=torch.float64)
    torch.testing.assert_close(crf.topk(3)[1].double(), top3, rtol=1e-6, atol=0)
    objective = log_z.sum() + crf.entropy().sum() + (crf.unary_marginals() ** 2).sum()
    for gradient in torch.autograd.grad(objective, [instance["emissions"], instance["transitions"]]):
        assert torch.isfinite(gradient).all()


def test_large_negative_scores_and_uniform_entropy():
    """All scores equal (-1e4): uniform distribution, entropy n log L, marginals 1/L."""
    lengths = [4, 2, 1]
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    crf = LinearChainCRF(torch.full((3, 4, 3), -1e4), torch.full((3, 3), -1e4), mask)
    expected_entropy = torch.tensor([n * math.log(3) for n in lengths])
    torch.testing.assert_close(crf.entropy(), expected_entropy, atol=1e-5, rtol=0)
    torch.testing.assert_close(crf.unary_marginals(), mask[:, :, None].float().expand(3, 4, 3) / 3)
    expected_log_z = torch.tensor([n * math.log(3) - (2 * n - 1) * 1e4 for n in lengths])
    torch.testing.assert_close(crf.log_partition(), expected_log_z)


# ---------------------------------------------------------------------------------------------
# Autograd


def test_marginals_are_gradients_of_log_partition():
    instance = random_instance([5, 3, 1], num_tags=3, per_position=True, seed=10)
    leaves = [instance[name].requires_grad_() for name in ("emissions", "transitions", "start", "end")]
    crf = make_crf(instance)
    emission_grad, transition_grad, start_grad, end_grad = torch.autograd.grad(
        crf.log_partition().sum(), leaves, retain_graph=True
    )
    unary, pairwise = crf.unary_marginals(), crf.pairwise_marginals()
    torch.testing.assert_close(unary, emission_grad)
    torch.testing.assert_close(pairwise, transition_grad)
    torch.testing.assert_close(unary[:, 0].sum(0), start_grad)
    last = unary[torch.arange(3), torch.tensor([4, 2, 0])]
    torch.testing.assert_close(last.sum(0), end_grad)


def test_marginals_and_entropy_gradcheck():
    instance = random_instance([3, 2], num_tags=2, per_position=True, seed=11)
    mask = instance["mask"]

    def outputs(emissions, transitions, start, end):
        crf = LinearChainCRF(emissions, transitions, mask, start=start, end=end, temperature=1.5)
        return crf.unary_marginals(), crf.pairwise_marginals(), crf.entropy(), crf.log_partition()

    inputs = [instance[name].requires_grad_() for name in ("emissions", "transitions", "start", "end")]
    assert torch.autograd.gradcheck(outputs, inputs)


def test_marginals_gradcheck_with_constraints():
    instance = random_instance([4, 2], num_tags=5, seed=12)
    transitions, start = bio_constraints()
    mask = instance["mask"]

    def outputs(emissions):
        crf = LinearChainCRF(emissions, transitions, mask, start=start)
        return crf.unary_marginals(), crf.pairwise_marginals()

    assert torch.autograd.gradcheck(outputs, [instance["emissions"].requires_grad_()])


def test_no_grad_gives_same_results_without_graph():
    instance = random_instance([4, 2, 1], num_tags=3, seed=13)
    instance["emissions"].requires_grad_()
    crf = make_crf(instance)
    with_graph = [crf.log_partition(), crf.unary_marginals(), crf.pairwise_marginals(), crf.entropy()]
    with torch.no_grad():
        crf = make_crf(instance)
        without_graph = [crf.log_partition(), crf.unary_marginals(), crf.pairwise_marginals(), crf.entropy()]
    for a, b in zip(with_graph, without_graph):
        assert a.requires_grad and not b.requires_grad
        torch.testing.assert_close(a.detach(), b)


def test_rejects_bad_mask():
    emissions = torch.zeros(2, 3, 2)
    with pytest.raises(ValueError):
        LinearChainCRF(emissions, torch.zeros(2, 2), torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError):
        LinearChainCRF(emissions, torch.zeros(2, 2),
                       torch.tensor([[False, False, False], [True, True, True]]))


# ---------------------------------------------------------------------------------------------
# Random shapes


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    num_tags=st.integers(1, 3),
    per_position=st.booleans(),
    temperature=st.sampled_from([1.0, 0.7]),
    seed=st.integers(0, 2**16),
)
def test_random_shapes(lengths, num_tags, per_position, temperature, seed):
    instance = random_instance(lengths, num_tags, per_position=per_position, seed=seed)
    crf = make_crf(instance, temperature)
    check_against_brute_force(crf, run_brute_force(instance, temperature), instance["mask"], ks=(1, 4))
