"""Every KD objective against its definition, computed by enumerating all tag sequences."""

import itertools

import pytest
import torch

from structkd_plugin.distillation.knowledge import KNOWLEDGE, Temperature, teacher_knowledge
from structkd_plugin.models.scores import ParserScores, TaggerScores
from structkd_plugin.distillation.objectives import KDObjective
from structkd_plugin.structures.label_schemes import marginal_conversion_matrix

LENGTHS = [4, 2, 1, 3]
LABELS = 3


def random_scores(is_crf: bool, seed: int, labels: int = LABELS, scale: float = 1.0) -> TaggerScores:
    generator = torch.Generator().manual_seed(seed)
    n = max(LENGTHS)
    mask = torch.arange(n)[None, :] < torch.tensor(LENGTHS)[:, None]
    emissions = (torch.randn(len(LENGTHS), n, labels, generator=generator, dtype=torch.float64) * scale).requires_grad_()
    if not is_crf:
        return TaggerScores(emissions, mask, label_vectors=torch.randn(labels, 4, generator=generator, dtype=torch.float64))
    transitions, start, end = (
        (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).requires_grad_()
        for shape in ((labels, labels), (labels,), (labels,))
    )
    return TaggerScores(emissions, mask, transitions, start, end)


def sequence_score(scores: TaggerScores, b: int, tags: tuple[int, ...]) -> torch.Tensor:
    """S(y) written out term by term."""
    total = sum(scores.emissions[b, i, tag] for i, tag in enumerate(tags))
    if scores.is_crf:
        total = total + scores.start[tags[0]] + scores.end[tags[-1]]
        total = total + sum(scores.transitions[a, c] for a, c in zip(tags, tags[1:]))
    return total


def enumerate_log_probs(scores: TaggerScores, b: int, temperature: float = 1.0):
    """All sequences of sentence b with log p(y) of the tempered distribution exp(S(y) / T) / Z."""
    labels = scores.emissions.size(-1)
    sequences = list(itertools.product(range(labels), repeat=LENGTHS[b]))
    totals = torch.stack([sequence_score(scores, b, y) / temperature for y in sequences])
    return sequences, totals - totals.logsumexp(0)


def enumerated_marginals(scores: TaggerScores, b: int, temperature: float = 1.0):
    sequences, log_probs = enumerate_log_probs(scores, b, temperature)
    labels = scores.emissions.size(-1)
    unary = torch.zeros(LENGTHS[b], labels, dtype=torch.float64)
    pairwise = torch.zeros(LENGTHS[b], labels, labels, dtype=torch.float64)
    for y, log_p in zip(sequences, log_probs.detach()):
        for i, tag in enumerate(y):
            unary[i, tag] += log_p.exp()
            if i:
                pairwise[i, y[i - 1], tag] += log_p.exp()
    return unary, pairwise


def temper(marginals: torch.Tensor, temperature: float, dims: int) -> torch.Tensor:
    powered = marginals ** (1 / temperature)
    total = powered.sum(dim=tuple(range(-dims, 0)), keepdim=True)
    return torch.where(total > 0, powered / total, powered)


def objective(name: str, **params) -> KDObjective:
    return KDObjective.by_name(name)(**params)


def knowledge_for(obj, teacher, student, temperature, k=1, label_map=None):
    return teacher_knowledge(teacher, obj.needs(student), temperature, label_map, k)


PAIRS = [(True, True), (True, False), (False, True), (False, False)]


@pytest.mark.parametrize("teacher_crf,student_crf", PAIRS)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_structural_with_global_temperature_is_cross_entropy_over_all_sequences(teacher_crf, student_crf, temperature):
    teacher, student = random_scores(teacher_crf, 1), random_scores(student_crf, 2)
    obj = objective("structural")
    tau = Temperature("global", temperature)
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau)
    for b in range(len(LENGTHS)):
        _, teacher_log_p = enumerate_log_probs(teacher, b, temperature)
        _, student_log_p = enumerate_log_probs(student, b, temperature)
        expected = -(teacher_log_p.exp() * student_log_p).sum() * temperature**2
        assert torch.allclose(loss[b], expected, atol=1e-9), (b, loss[b], expected)


@pytest.mark.parametrize("teacher_crf,student_crf", PAIRS)
def test_structural_with_local_temperature_uses_tempered_marginals(teacher_crf, student_crf):
    teacher, student = random_scores(teacher_crf, 3), random_scores(student_crf, 4)
    obj = objective("structural")
    tau = Temperature("local", 3.0)
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau)
    for b in range(len(LENGTHS)):
        unary, pairwise = enumerated_marginals(teacher, b)
        unary, pairwise = temper(unary, 3.0, 1), temper(pairwise, 3.0, 2)
        pairwise[0] = 0
        _, student_log_p = enumerate_log_probs(student, b, 3.0)
        sequences, _ = enumerate_log_probs(student, b)
        # log Z_s of the tempered student, minus the expected tempered student score under P~_t.
        log_z = torch.stack([sequence_score(student, b, y) / 3.0 for y in sequences]).logsumexp(0)
        n = LENGTHS[b]
        expected_score = (unary * student.emissions[b, :n]).sum()
        if student.is_crf:
            expected_score = expected_score + (pairwise * student.transitions).sum()
            expected_score = expected_score + (unary[0] * student.start).sum() + (unary[n - 1] * student.end).sum()
        expected = (log_z - expected_score / 3.0) * 9.0
        assert torch.allclose(loss[b], expected, atol=1e-9)


@pytest.mark.parametrize("teacher_crf,student_crf", PAIRS)
def test_structural_gradient_is_student_minus_teacher_marginals(teacher_crf, student_crf):
    teacher, student = random_scores(teacher_crf, 5), random_scores(student_crf, 6)
    obj = objective("structural")
    tau = Temperature()
    obj.loss(knowledge_for(obj, teacher, student, tau), student, tau).sum().backward()
    for b in range(len(LENGTHS)):
        n = LENGTHS[b]
        teacher_unary, teacher_pairwise = enumerated_marginals(teacher, b)
        student_unary, student_pairwise = enumerated_marginals(student, b)
        assert torch.allclose(student.emissions.grad[b, :n], student_unary - teacher_unary, atol=1e-9)
        assert torch.all(student.emissions.grad[b, n:] == 0)
    if student.is_crf:
        expected = sum(
            enumerated_marginals(student, b)[1].sum(0) - enumerated_marginals(teacher, b)[1].sum(0)
            for b in range(len(LENGTHS))
        )
        assert torch.allclose(student.transitions.grad, expected, atol=1e-9)


@pytest.mark.parametrize(
    "name,teacher_crf,student_crf",
    [("crf_to_crf", True, True), ("crf_to_softmax", True, False), ("softmax_to_crf", False, True)],
)
def test_scenario_names_accept_their_pair_and_reject_others(name, teacher_crf, student_crf):
    obj = objective(name)
    tagger = lambda is_crf: random_scores(is_crf, 0)  # noqa: E731
    named = lambda is_crf: f"{'crf' if is_crf else 'softmax'} tagger"  # noqa: E731
    obj.check_pair(tagger(teacher_crf), tagger(student_crf))
    with pytest.raises(ValueError, match=f"{name}.*teacher is a {named(not teacher_crf)} and the student a {named(student_crf)}"):
        obj.check_pair(tagger(not teacher_crf), tagger(student_crf))
    parser = ParserScores(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, 1), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="teacher is a biaffine parser"):
        obj.check_pair(parser, tagger(student_crf))
    # The scenario computes exactly the structural objective.
    teacher, student = random_scores(teacher_crf, 7), random_scores(student_crf, 8)
    tau = Temperature()
    knowledge = knowledge_for(obj, teacher, student, tau)
    assert torch.equal(obj.loss(knowledge, student, tau), objective("structural").loss(knowledge, student, tau))


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_token_kd_is_kl_of_tempered_emission_softmaxes(temperature):
    teacher, student = random_scores(True, 9), random_scores(True, 10)
    obj = objective("token")
    tau = Temperature("local", temperature)
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau)
    for b in range(len(LENGTHS)):
        n = LENGTHS[b]
        p = (teacher.emissions[b, :n] / temperature).softmax(-1)
        q = (student.emissions[b, :n] / temperature).softmax(-1)
        expected = (p * (p.log() - q.log())).sum() * temperature**2
        assert torch.allclose(loss[b], expected, atol=1e-9)


@pytest.mark.parametrize("student_crf", [True, False])
def test_posterior_kd_is_kl_of_enumerated_token_marginals(student_crf):
    teacher, student = random_scores(True, 11), random_scores(student_crf, 12)
    obj = objective("posterior")
    tau = Temperature()
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau)
    for b in range(len(LENGTHS)):
        p, _ = enumerated_marginals(teacher, b)
        q, _ = enumerated_marginals(student, b)
        assert torch.allclose(loss[b], (p * (p.log() - q.log())).sum(), atol=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("student_crf", [True, False])
def test_top_k_is_nll_of_the_teachers_k_best_sequences(weighted, student_crf):
    teacher, student = random_scores(True, 13), random_scores(student_crf, 14)
    k = 4
    obj = objective("top_k", k=k, weighted=weighted)
    tau = Temperature()
    loss = obj.loss(knowledge_for(obj, teacher, student, tau, k=k), student, tau)
    for b in range(len(LENGTHS)):
        sequences, teacher_log_p = enumerate_log_probs(teacher, b)
        student_log_p = dict(zip(*enumerate_log_probs(student, b)))
        ranked = sorted(zip(teacher_log_p.tolist(), sequences), reverse=True)[:k]  # fewer when n = 1
        nll = torch.stack([-student_log_p[y] for _, y in ranked])
        if weighted:
            weights = torch.tensor([log_p for log_p, _ in ranked], dtype=torch.float64).softmax(0)
        else:
            weights = torch.full((len(ranked),), 1 / len(ranked), dtype=torch.float64)
        assert torch.allclose(loss[b], (weights * nll).sum(), atol=1e-9), (b, weighted)


@pytest.mark.parametrize("with_transitions", [True, False])
def test_local_substructure_mse_matches_potentials_position_by_position(with_transitions):
    teacher, student = random_scores(True, 15), random_scores(True, 16)
    obj = objective("local_substructure", transitions=with_transitions)
    tau = Temperature()
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau)
    for b in range(len(LENGTHS)):
        expected = 0
        for i in range(LENGTHS[b]):
            if with_transitions:
                t = teacher.emissions[b, i][None, :] + teacher.transitions
                s = student.emissions[b, i][None, :] + student.transitions
            else:
                t, s = teacher.emissions[b, i], student.emissions[b, i]
            expected = expected + ((t - s) ** 2).mean()
        assert torch.allclose(loss[b], expected, atol=1e-9)


def test_local_substructure_kl_variant_and_softmax_teacher():
    teacher, student = random_scores(False, 17), random_scores(True, 18)
    obj = objective("local_substructure", transitions=True, distance="kl")
    tau = Temperature()
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau)
    for b in range(len(LENGTHS)):
        expected = 0
        for i in range(LENGTHS[b]):
            # A softmax teacher has no transitions: its local potentials are e_i(b) for every a.
            t = (teacher.emissions[b, i][None, :].expand(LABELS, LABELS)).flatten().softmax(0)
            s = (student.emissions[b, i][None, :] + student.transitions).flatten().log_softmax(0)
            expected = expected + (t * (t.log() - s)).sum()
        assert torch.allclose(loss[b], expected, atol=1e-9)


@pytest.mark.parametrize("distance", ["mse", "kl"])
def test_local_substructure_between_softmax_taggers_is_the_same_with_or_without_transitions(distance):
    teacher, student = random_scores(False, 19), random_scores(False, 20)
    tau = Temperature()
    losses = []
    for transitions in (True, False):
        obj = objective("local_substructure", transitions=transitions, distance=distance)
        losses.append(obj.loss(knowledge_for(obj, teacher, student, tau), student, tau))
    for b in range(len(LENGTHS)):
        expected = 0
        for i in range(LENGTHS[b]):
            # The pairs (a, b) of two softmax taggers: e_i(b) repeated for every previous label a.
            t = teacher.emissions[b, i][None, :].expand(LABELS, LABELS).flatten()
            s = student.emissions[b, i][None, :].expand(LABELS, LABELS).flatten()
            if distance == "mse":
                expected = expected + ((t - s) ** 2).mean()
            else:
                expected = expected + (t.softmax(0) * (t.log_softmax(0) - s.log_softmax(0))).sum()
        assert torch.allclose(losses[0][b], expected, atol=1e-9) and torch.allclose(losses[1][b], expected, atol=1e-9)


def gold_tags(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, LABELS, (len(LENGTHS), max(LENGTHS)), generator=generator)


@pytest.mark.parametrize("name", ["label_smoothing", "partial_teacher", "similarity_teacher"])
@pytest.mark.parametrize("student_crf", [True, False])
def test_synthetic_teachers_are_cross_entropies_with_their_definitions(name, student_crf):
    # The similarity teacher reads the label vectors of a softmax teacher's output layer.
    teacher, student = random_scores(name != "similarity_teacher", 19), random_scores(student_crf, 20)
    gold = gold_tags(21)
    obj = objective(name)
    tau = Temperature()
    loss = obj.loss(knowledge_for(obj, teacher, student, tau), student, tau, gold)
    teacher_unary = [enumerated_marginals(teacher, b)[0] for b in range(len(LENGTHS))]
    if name == "label_smoothing":
        non_gold = [1 - teacher_unary[b][i, gold[b, i]] for b in range(len(LENGTHS)) for i in range(LENGTHS[b])]
        epsilon = torch.stack(non_gold).mean()
    for b in range(len(LENGTHS)):
        student_unary, _ = enumerated_marginals(student, b)
        expected = 0
        for i in range(LENGTHS[b]):
            g = gold[b, i]
            if name == "label_smoothing":
                q = torch.full((LABELS,), float(epsilon) / LABELS, dtype=torch.float64)
                q[g] += 1 - epsilon
            elif name == "partial_teacher":
                q = torch.full((LABELS,), float(1 - teacher_unary[b][i, g]) / (LABELS - 1), dtype=torch.float64)
                q[g] = teacher_unary[b][i, g]
            else:
                w = teacher.label_vectors
                cos = torch.stack([torch.nn.functional.cosine_similarity(w[g], w[k], dim=0) for k in range(LABELS)])
                q = (cos / 0.1).softmax(0)
            expected = expected - (q * student_unary[i].log()).sum()
        assert torch.allclose(loss[b], expected, atol=1e-8), (name, b)


def test_synthetic_teacher_without_gold_tags_fails_clearly():
    teacher, student = random_scores(True, 22), random_scores(True, 23)
    obj = objective("partial_teacher")
    with pytest.raises(ValueError, match="gold tags"):
        obj.loss(knowledge_for(obj, teacher, student, Temperature()), student, Temperature())


def test_none_objective_is_zero():
    teacher, student = random_scores(True, 24), random_scores(True, 25)
    obj = objective("none")
    assert obj.needs(student) == set()
    assert torch.all(obj.loss(knowledge_for(obj, teacher, student, Temperature()), student, Temperature()) == 0)


def test_bioes_teacher_distills_into_bio_student_through_converted_marginals():
    """A BIOES CRF teacher and a BIO CRF student: the loss is -sum over BIOES sequences of
    p_t(y) log p_s(bio(y)), the cross-entropy with the teacher's distribution mapped tag by tag."""
    teacher_tags = ["O", "B-X", "I-X", "E-X", "S-X"]
    student_tags = ["O", "B-X", "I-X"]
    teacher, student = random_scores(True, 26, labels=5), random_scores(True, 27, labels=3)
    label_map = marginal_conversion_matrix(teacher_tags, student_tags)
    obj = objective("structural")
    tau = Temperature()
    loss = obj.loss(knowledge_for(obj, teacher, student, tau, label_map=label_map), student, tau)
    for b in range(len(LENGTHS)):
        teacher_sequences, teacher_log_p = enumerate_log_probs(teacher, b)
        student_log_p = dict(zip(*enumerate_log_probs(student, b)))
        expected = 0
        for y, log_p in zip(teacher_sequences, teacher_log_p):
            bio = tuple(student_tags.index(teacher_tags[i].replace("E-", "I-").replace("S-", "B-")) for i in y)
            expected = expected - log_p.exp() * student_log_p[bio]
        assert torch.allclose(loss[b], expected, atol=1e-9)


def test_a_label_the_student_cannot_represent_is_named():
    with pytest.raises(ValueError, match="MISC"):
        marginal_conversion_matrix(["O", "B-PER", "I-PER", "B-MISC", "I-MISC"], ["O", "B-PER", "I-PER"])


def test_knowledge_names_are_checked():
    with pytest.raises(ValueError, match="unknown teacher knowledge"):
        teacher_knowledge(random_scores(True, 28), {"marginals"}, Temperature())
    assert set(KNOWLEDGE) >= {"unary", "pairwise"}


def test_score_matching_reorders_a_teacher_whose_labels_come_in_another_order():
    teacher, student = random_scores(True, 29), random_scores(True, 30)
    order = [2, 0, 1]  # the student's label j is the teacher's label order[j]
    label_map = torch.zeros(LABELS, LABELS, dtype=torch.float64)
    label_map[order, range(LABELS)] = 1
    obj = objective("local_substructure")
    loss = obj.loss(knowledge_for(obj, teacher, student, Temperature(), label_map=label_map), student, Temperature())
    reordered = TaggerScores(
        teacher.emissions[..., order], teacher.mask, teacher.transitions[order][:, order], teacher.start[order], teacher.end[order]
    )
    assert torch.allclose(loss, obj.loss(knowledge_for(obj, reordered, student, Temperature()), student, Temperature()))
