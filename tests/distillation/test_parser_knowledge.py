"""A parser teacher's knowledge in a sequence labeler's label space (Wang et al.'s cases 1b, 2b),
and the KD objectives over it, against enumeration of every head and relation assignment."""

import itertools

import pytest
import torch

from structkd_plugin.distillation.knowledge import Temperature, parser_knowledge, parser_to_parser_knowledge
from structkd_plugin.distillation.objectives import KDObjective
from structkd_plugin.models.scores import LabelerScores, ParserScores, TaggerScores
from structkd_plugin.structures import LinearChainCRF
from structkd_plugin.structures.dependency_encodings import DependencyLabelSet, encode_tree
from tests.structures.tree_enumeration import all_trees

LENGTHS = [3, 1, 2]
RELATIONS = ["nsubj", "obj"]
# Every rel_offset label of sentences of up to 3 words, with both relations: all trees are representable.
LABELS = [f"{where}|{r}" for where in ["ROOT", "-2", "-1", "+1", "+2"] for r in RELATIONS]
TREES = ("local", "nonprojective", "projective", "mean_field")


def random_teacher(tree: str, seed: int) -> ParserScores:
    generator = torch.Generator().manual_seed(seed)
    size = max(LENGTHS) + 1
    mask = torch.arange(size)[None, :] < torch.tensor(LENGTHS)[:, None] + 1
    shape = (len(LENGTHS), size, size)
    arcs = torch.randn(*shape, generator=generator, dtype=torch.float64) * 2
    relations = torch.randn(*shape, len(RELATIONS), generator=generator, dtype=torch.float64).log_softmax(-1)
    second_order = {}
    if tree == "mean_field":
        sib = torch.randn(*shape, size, generator=generator, dtype=torch.float64)
        second_order = dict(
            sib_scores=(sib + sib.transpose(-1, -2)) / 2,
            grd_scores=torch.randn(*shape, size, generator=generator, dtype=torch.float64),
            iterations=2,
        )
    return ParserScores(arcs, relations, mask, tree, **second_order)


def label_space(labels: list[str] = LABELS):
    label_set = DependencyLabelSet(labels, "rel_offset")
    mask = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]
    label_relations = torch.tensor([RELATIONS.index(r) for r in label_set.relations])
    return label_set.label_heads(mask, None), label_relations, mask


def head_assignments(teacher: ParserScores, b: int, temperature: float):
    """Every head vector of sentence b the teacher gives mass to, with its probability."""
    n = LENGTHS[b]
    if teacher.tree in ("nonprojective", "projective"):
        trees = all_trees(n, projective=teacher.tree == "projective", single_root=True)
        scores = torch.stack([sum(teacher.arc_scores[b, t[d], d] for d in range(1, n + 1)) for t in trees]) / temperature
        return [(t.tolist(), p) for t, p in zip(trees, scores.softmax(0))]
    # Words choose their heads independently: the local softmax, or the mean-field factors.
    marginals = teacher.head_marginals(temperature)[b]
    choices = [[h for h in range(n + 1) if h != d] for d in range(1, n + 1)]
    return [
        ([0, *heads], torch.stack([marginals[h, d] for d, h in enumerate(heads, start=1)]).prod())
        for heads in itertools.product(*choices)
    ]


def enumerate_label_sequences(teacher: ParserScores, b: int, temperature: float = 1.0) -> dict[tuple, torch.Tensor]:
    """p_t of every label sequence (as label ids) of sentence b: trees times relations."""
    n = LENGTHS[b]
    relation_probs = teacher.relation_probs(temperature)[b]
    index = {label: i for i, label in enumerate(LABELS)}
    sequences: dict[tuple, torch.Tensor] = {}
    for heads, p_heads in head_assignments(teacher, b, temperature):
        for relations in itertools.product(range(len(RELATIONS)), repeat=n):
            p = p_heads * torch.stack([relation_probs[heads[d], d, relations[d - 1]] for d in range(1, n + 1)]).prod()
            labels = encode_tree(heads[1:], [RELATIONS[r] for r in relations], "rel_offset")
            key = tuple(index[label] for label in labels)
            sequences[key] = sequences.get(key, 0) + p
    return sequences


def knowledge(teacher, needs, temperature=Temperature(), k=1, labels=LABELS):
    label_heads, label_relations, _ = label_space(labels)
    return parser_knowledge(teacher, needs, temperature, label_heads, label_relations, k)


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_label_marginals_match_enumeration(tree, temperature):
    teacher = random_teacher(tree, seed=1)
    needs = {"unary", "pairwise"} if teacher.is_factorized else {"unary"}
    result = knowledge(teacher, needs, Temperature("global", temperature))
    for b, n in enumerate(LENGTHS):
        unary = torch.zeros(n, len(LABELS), dtype=torch.float64)
        pairwise = torch.zeros(n, len(LABELS), len(LABELS), dtype=torch.float64)
        for sequence, p in enumerate_label_sequences(teacher, b, temperature).items():
            for i, label in enumerate(sequence):
                unary[i, label] += p
                if i:
                    pairwise[i, sequence[i - 1], label] += p
        assert torch.allclose(result.unary[b, :n], unary, atol=1e-9)
        assert torch.all(result.unary[b, n:] == 0)
        if teacher.is_factorized:
            assert torch.allclose(result.pairwise[b, :n], pairwise, atol=1e-9)


def test_labels_the_student_lacks_are_left_out_and_the_rest_renormalized():
    teacher = random_teacher("nonprojective", seed=2)
    kept = [label for label in LABELS if not label.endswith("|obj") or label.startswith("ROOT")]
    full = knowledge(teacher, {"unary"}).unary
    reduced = knowledge(teacher, {"unary"}, labels=kept).unary
    columns = [LABELS.index(label) for label in kept]
    expected = full[:, :, columns] / full[:, :, columns].sum(-1, keepdim=True)
    mask = label_space()[2]
    assert torch.allclose(reduced[mask], expected[mask], atol=1e-12)


def objective(name: str, **params) -> KDObjective:
    return KDObjective.by_name(name)(**params)


def random_student(is_crf: bool, seed: int) -> TaggerScores:
    generator = torch.Generator().manual_seed(seed)
    _, _, mask = label_space()
    emissions = torch.randn(len(LENGTHS), max(LENGTHS), len(LABELS), generator=generator, dtype=torch.float64)
    if not is_crf:
        return TaggerScores(emissions, mask)
    transitions, start, end = (torch.randn(*s, generator=generator, dtype=torch.float64) for s in ((len(LABELS),) * 2, (len(LABELS),), (len(LABELS),)))
    return TaggerScores(emissions, mask, transitions, start, end)


def student_log_prob(student: TaggerScores, b: int, sequence: tuple, temperature: float) -> torch.Tensor:
    distribution = student.distribution(temperature)
    padded = torch.zeros(len(LENGTHS), max(LENGTHS), dtype=torch.long)
    padded[b, : len(sequence)] = torch.tensor(sequence)
    return (distribution.log_score(padded) - distribution.log_partition())[b]


@pytest.mark.parametrize(
    "tree,student_crf",
    [("local", False), ("local", True), ("nonprojective", False), ("projective", False), ("mean_field", False), ("mean_field", True)],
)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_structural_is_the_cross_entropy_over_all_label_sequences(tree, student_crf, temperature):
    teacher, student = random_teacher(tree, seed=3), random_student(student_crf, seed=4)
    tau = Temperature("global", temperature)
    structural = objective("structural")
    loss = structural.loss(knowledge(teacher, structural.needs(student), tau), student, tau)
    for b in range(len(LENGTHS)):
        expected = -sum(
            p * student_log_prob(student, b, sequence, temperature)
            for sequence, p in enumerate_label_sequences(teacher, b, temperature).items()
        ) * temperature**2
        assert torch.allclose(loss[b], expected, atol=1e-9)


def test_a_tree_crf_teacher_cannot_give_a_crf_student_adjacent_marginals():
    with pytest.raises(ValueError, match="nonprojective tree-CRF teacher.*posterior"):
        knowledge(random_teacher("nonprojective", seed=5), {"unary", "pairwise"})


def test_token_probs_are_the_local_softmaxes_in_label_space():
    teacher = random_teacher("nonprojective", seed=6)
    local = ParserScores(teacher.arc_scores, teacher.relation_scores, teacher.mask, "local")
    expected = knowledge(local, {"unary"}, Temperature("global", 2.0)).unary
    assert torch.allclose(knowledge(teacher, {"token_probs"}, Temperature("local", 2.0)).token_probs, expected, atol=1e-12)


@pytest.mark.parametrize("tree", ["local", "mean_field"])
def test_kbest_of_a_factorized_teacher_are_its_most_likely_label_sequences(tree):
    teacher, k = random_teacher(tree, seed=7), 3
    result = knowledge(teacher, {"kbest"}, k=k)
    for b, n in enumerate(LENGTHS):
        ranked = sorted(enumerate_label_sequences(teacher, b).items(), key=lambda item: -item[1])
        exists = min(k, len(ranked))
        assert [tuple(t[:n]) for t in result.kbest_tags[b, :exists].tolist()] == [s for s, _ in ranked[:exists]]
        assert torch.allclose(result.kbest_log_probs[b, :exists].exp(), torch.stack([p for _, p in ranked[:exists]]), atol=1e-9)


def test_kbest_of_a_tree_crf_teacher_is_its_best_tree_written_in_labels():
    teacher = random_teacher("projective", seed=8)
    result = knowledge(teacher, {"kbest"}, k=1)
    heads = teacher.best_tree()
    relations = teacher.relation_scores.argmax(-1)
    index = {label: i for i, label in enumerate(LABELS)}
    for b, n in enumerate(LENGTHS):
        sentence_heads = heads[b, :n].tolist()
        labels = encode_tree(sentence_heads, [RELATIONS[relations[b, h, d]] for d, h in enumerate(sentence_heads, 1)], "rel_offset")
        assert result.kbest_tags[b, 0, :n].tolist() == [index[label] for label in labels]
    assert torch.all(result.kbest_log_probs == 0)
    with pytest.raises(ValueError, match="only its best tree"):
        knowledge(teacher, {"kbest"}, k=2)


def label_head(label: str, word: int, n: int) -> int | None:
    """The head a rel_offset label of word `word` (1-based) names, or None outside the sentence."""
    where = label.split("|")[0]
    if where == "ROOT":
        return 0
    head = word + int(where)  # an offset names a word, never the root
    return head if 1 <= head <= n else None


@pytest.mark.parametrize("tree", ["nonprojective", "local"])
def test_a_parsers_label_potentials_are_its_arc_score_plus_relation_log_prob(tree):
    teacher = random_teacher(tree, seed=18)
    # A relation the teacher lacks: its labels have no potential.
    labels = LABELS + ["-1|iobj"]
    label_set = DependencyLabelSet(labels, "rel_offset")
    label_heads = label_set.label_heads(label_space()[2], None)
    label_relations = torch.tensor([RELATIONS.index(r) if r in RELATIONS else -1 for r in label_set.relations])
    scores = parser_knowledge(teacher, {"scores"}, Temperature(), label_heads, label_relations).scores
    relation_log_probs = teacher.relation_scores.log_softmax(-1)
    assert not scores.is_crf
    for b, n in enumerate(LENGTHS):
        for word in range(1, n + 1):
            for l, label in enumerate(label_set.labels):
                head, relation = label_head(label, word, n), label.split("|")[1]
                got = scores.emissions[b, word - 1, l]
                if head is None or relation not in RELATIONS:
                    assert got == float("-inf"), (b, word, label)
                else:
                    expected = teacher.arc_scores[b, head, word] + relation_log_probs[b, head, word, RELATIONS.index(relation)]
                    assert torch.allclose(got, expected, atol=1e-12), (b, word, label)


@pytest.mark.parametrize("transitions", [False, True])
def test_local_substructure_into_a_labeler_matches_emissions_to_label_potentials(transitions):
    teacher, student = random_teacher("nonprojective", seed=19), random_student(False, seed=20)
    obj = objective("local_substructure", transitions=transitions)
    loss = obj.loss(knowledge(teacher, obj.needs(student)), student, Temperature())
    relation_log_probs = teacher.relation_scores.log_softmax(-1)
    for b, n in enumerate(LENGTHS):
        expected = 0.0
        for word in range(1, n + 1):
            squares = []
            for l, label in enumerate(LABELS):
                head = label_head(label, word, n)
                if head is not None:
                    potential = teacher.arc_scores[b, head, word] + relation_log_probs[b, head, word, RELATIONS.index(label.split("|")[1])]
                    squares.append((student.emissions[b, word - 1, l] - potential) ** 2)
            # A softmax student has zero transitions: with them each square counts once per previous
            # label, which leaves the mean unchanged.
            expected = expected + torch.stack(squares).mean()
        assert torch.allclose(loss[b], expected, atol=1e-9)


def test_local_substructure_kl_into_a_labeler_compares_softmaxes_over_the_teachers_labels():
    teacher, student = random_teacher("projective", seed=21), random_student(False, seed=22)
    obj = objective("local_substructure", transitions=False, distance="kl")
    loss = obj.loss(knowledge(teacher, obj.needs(student)), student, Temperature())
    label_heads, label_relations, mask = label_space()
    potentials = parser_knowledge(teacher, {"scores"}, Temperature(), label_heads, label_relations).scores.emissions
    # Unlike `token`, the student's softmax covers only the labels the teacher can write.
    for b, n in enumerate(LENGTHS):
        expected = 0.0
        for i in range(n):
            labels = torch.isfinite(potentials[b, i])
            target = potentials[b, i, labels].softmax(0)
            expected = expected + (target * (target.log() - student.emissions[b, i, labels].log_softmax(0))).sum()
        assert torch.allclose(loss[b], expected, atol=1e-9)


def test_scenario_names_of_the_parsing_cases():
    mask = torch.ones(1, 2, dtype=torch.bool)
    biaffine = ParserScores(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, 1), mask)
    second_order = ParserScores(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, 1), mask, tree="mean_field")
    softmax_labeler = LabelerScores(torch.zeros(1, 1, 3), mask[:, 1:])
    crf_labeler = LabelerScores(torch.zeros(1, 1, 3), mask[:, 1:], transitions=torch.zeros(3, 3))
    objective("biaffine_to_sequence_labeler").check_pair(biaffine, softmax_labeler)
    objective("second_order_to_sequence_labeler").check_pair(second_order, crf_labeler)
    with pytest.raises(ValueError, match="second_order_to_sequence_labeler.*teacher is a biaffine parser"):
        objective("second_order_to_sequence_labeler").check_pair(biaffine, softmax_labeler)
    with pytest.raises(ValueError, match="student a softmax tagger"):
        objective("biaffine_to_sequence_labeler").check_pair(biaffine, TaggerScores(torch.zeros(1, 1, 3), mask[:, 1:]))


# ---------------------------------------------------------------- parser students

# Teacher -> student tree kinds whose teacher gives mass only to structures the student can have.
PARSER_PAIRS = [
    ("nonprojective", "nonprojective"),
    ("projective", "nonprojective"),
    ("projective", "projective"),
    ("nonprojective", "local"),
    ("local", "local"),
    ("mean_field", "local"),
]


def parser_student(tree: str, seed: int) -> ParserScores:
    teacher = random_teacher("local", seed)
    arcs = teacher.arc_scores.clone().requires_grad_()
    relations = teacher.relation_scores.clone().requires_grad_()
    return ParserScores(arcs, relations, teacher.mask, tree)


def identity_relations() -> torch.Tensor:
    return torch.arange(len(RELATIONS))


def parser_student_knowledge(teacher, student, objective_, temperature=Temperature(), relation_map=None):
    relation_map = identity_relations() if relation_map is None else relation_map
    return parser_to_parser_knowledge(teacher, objective_.needs(student), temperature, relation_map)


def student_tree_log_prob(student: ParserScores, b: int, heads: list[int], relations: tuple, temperature: float) -> torch.Tensor:
    n = LENGTHS[b]
    if student.tree == "local":
        log_heads = student.head_marginals(temperature)[b].clamp_min(1e-300).log()
        log_tree = sum(log_heads[heads[d], d] for d in range(1, n + 1))
    else:
        score = sum(student.arc_scores[b, heads[d], d] for d in range(1, n + 1)) / temperature
        log_tree = score - student.distribution(temperature).log_partition()[b]
    log_relations = (student.relation_scores / temperature).log_softmax(-1)[b]
    return log_tree + sum(log_relations[heads[d], d, relations[d - 1]] for d in range(1, n + 1))


@pytest.mark.parametrize("teacher_tree,student_tree", PARSER_PAIRS)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_structural_between_parsers_is_the_cross_entropy_over_all_labeled_trees(teacher_tree, student_tree, temperature):
    teacher, student = random_teacher(teacher_tree, seed=9), parser_student(student_tree, seed=10)
    tau = Temperature("global", temperature)
    structural = objective("structural")
    loss = structural.loss(parser_student_knowledge(teacher, student, structural, tau), student, tau)
    relation_probs = teacher.relation_probs(temperature)
    for b, n in enumerate(LENGTHS):
        expected = 0
        for heads, p_heads in head_assignments(teacher, b, temperature):
            for relations in itertools.product(range(len(RELATIONS)), repeat=n):
                p = p_heads * torch.stack([relation_probs[b, heads[d], d, relations[d - 1]] for d in range(1, n + 1)]).prod()
                expected = expected - p * student_tree_log_prob(student, b, heads, relations, temperature)
        assert torch.allclose(loss[b], expected * temperature**2, atol=1e-9)


def test_structural_gradient_between_tree_crfs_is_student_minus_teacher_marginals():
    teacher, student = random_teacher("nonprojective", seed=11), parser_student("nonprojective", seed=12)
    structural = objective("structural")
    loss = structural.loss(parser_student_knowledge(teacher, student, structural), student, Temperature())
    loss.sum().backward()
    expected = student.distribution().marginals().detach() - teacher.head_marginals()
    assert torch.allclose(student.arc_scores.grad, expected, atol=1e-9)


def test_relations_are_read_in_the_students_order_and_missing_ones_left_out():
    teacher = random_teacher("local", seed=13)
    # The student has the teacher's relations in reverse order, plus one the teacher lacks.
    relation_map = torch.tensor([1, 0, -1])
    knowledge = parser_to_parser_knowledge(teacher, {"relations"}, Temperature(), relation_map)
    probs = teacher.relation_probs().transpose(1, 2)[:, 1:]
    assert torch.allclose(knowledge.relations[..., 0], probs[..., 1])
    assert torch.allclose(knowledge.relations[..., 1], probs[..., 0])
    assert torch.all(knowledge.relations[..., 2] == 0)


def test_posterior_token_and_local_substructure_between_parsers():
    teacher, student = random_teacher("nonprojective", seed=14), parser_student("nonprojective", seed=15)
    words = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]
    t_arcs, s_arcs = teacher.head_marginals(), student.distribution().marginals()
    t_local, s_local = teacher.local_head_probs(2.0), student.local_head_probs(2.0)
    t_rel, s_rel = teacher.relation_probs(), student.relation_probs()

    def kl(p, q, dim):
        return torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log()), 0.0).sum(dim)

    for name, t, arcs_t, arcs_s, rel_t, rel_s in [
        ("posterior", 1.0, t_arcs, s_arcs, t_rel, s_rel),
        ("token", 2.0, t_local, s_local, teacher.relation_probs(2.0), student.relation_probs(2.0)),
    ]:
        obj, tau = objective(name), Temperature("local", t)
        loss = obj.loss(parser_student_knowledge(teacher, student, obj, tau), student, tau)
        # [B, n+1 (head), n+1 (dependent)] -> per dependent d: sum over heads.
        per_word = kl(arcs_t, arcs_s, 1) + (arcs_t * kl(rel_t, rel_s, -1)).sum(1)
        assert torch.allclose(loss, (per_word[:, 1:] * words).sum(-1) * t**2, atol=1e-9), name
    obj = objective("local_substructure")
    loss = obj.loss(parser_student_knowledge(teacher, student, obj), student, Temperature())
    for b, n in enumerate(LENGTHS):
        squares = [
            torch.stack([(student.arc_scores[b, h, d] - teacher.arc_scores[b, h, d]) ** 2 for h in range(n + 1) if h != d]).mean()
            for d in range(1, n + 1)
        ]
        assert torch.allclose(loss[b], sum(squares), atol=1e-9)


def test_top_k_between_parsers_imitates_the_best_labeled_tree():
    teacher, student = random_teacher("projective", seed=16), parser_student("projective", seed=17)
    obj = objective("top_k", k=1)
    loss = obj.loss(parser_student_knowledge(teacher, student, obj), student, Temperature())
    heads = teacher.best_tree()
    for b, n in enumerate(LENGTHS):
        tree = [0, *heads[b, :n].tolist()]
        relations = tuple(int(teacher.relation_scores[b, tree[d], d].argmax()) for d in range(1, n + 1))
        assert torch.allclose(loss[b], -student_tree_log_prob(student, b, tree, relations, 1.0), atol=1e-9)
    with pytest.raises(ValueError, match="only its best tree"):
        parser_to_parser_knowledge(teacher, {"kbest"}, Temperature(), identity_relations(), k=2)
