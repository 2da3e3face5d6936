"""The registry of knowledge-distillation objectives, chosen in a config by name.

Each objective turns the teacher's knowledge (`TeacherKnowledge`, in the student's label space)
and the student's scores (`TaggerScores`, `LabelerScores` or `ParserScores`, from
`Model.scores`) into one loss per sentence `[B]`. Objectives see only
scores and marginals, never models. The math and its sources are in shared/docs/structured-kd.md;
the names follow the issue tracker:

| name | what it matches |
|---|---|
| `none` | nothing: gold loss only, through the same machinery |
| `token` | Hinton KD on emissions, per token (a CRF teacher's transitions are ignored) |
| `posterior` | the forward-backward token marginals, KL(P_t || P_s) per token |
| `top_k` | the teacher's K best sequences (`weighted: true` gives top-WK) |
| `structural` | the factorized objective -sum_y p_t(y) log p_s(y), any tagger pair |
| `crf_to_crf`, `crf_to_softmax`, `softmax_to_crf` | `structural`, stating Wang et al.'s case 1a, 2a, 3 |
| `biaffine_to_sequence_labeler`, `second_order_to_sequence_labeler` | `structural` from a parser into a sequence-labeling parser: case 1b, 2b |
| `span_to_tagger` | `structural` from a span scorer (`span_ner`) into a tagger: case 4 |
| `local_substructure` | Lin et al.'s score matching (MSE or KL on local potentials) |
| `label_smoothing`, `partial_teacher`, `similarity_teacher` | Tang et al.'s synthetic teachers |
"""

from collections.abc import Callable

import torch
from tango.common import Registrable

from structkd_plugin.distillation.knowledge import TeacherKnowledge, Temperature, by_dependent, by_head
from structkd_plugin.models.scores import LabelerScores, ParserScores, Scores, TaggerScores, TagMarginalScores, describe
from structkd_plugin.structures import gather_heads, head_selection_log_probs


class KDObjective(Registrable):
    """A distillation loss between a teacher's knowledge and a student's scores."""

    default_implementation = "structural"
    # False for the baseline, whose student then learns from the gold loss at full weight.
    distills = True
    # True when the loss is built from gold tags, so a batch of unlabeled text cannot be trained on.
    needs_gold = False

    def needs(self, student: TaggerScores) -> set[str]:
        """What this objective asks of the teacher (a subset of `knowledge.KNOWLEDGE`)."""
        raise NotImplementedError

    def check_pair(self, teacher: Scores, student: Scores) -> None:
        """Raises when this objective cannot distill a teacher that gives scores like `teacher`
        into a student that gives scores like `student` (their types and what they hold)."""

    def loss(
        self,
        teacher: TeacherKnowledge,
        student: TaggerScores,
        temperature: Temperature,
        gold_tags: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One loss per sentence, `[B]`."""
        raise NotImplementedError


# What the scenario objectives accept, by the scores a model gives (a sequence labeler's are a tagger's).
def _crf(scores: Scores) -> bool:
    return isinstance(scores, TaggerScores) and scores.is_crf


def _softmax(scores: Scores) -> bool:
    return isinstance(scores, TaggerScores) and not scores.is_crf


def _sequence_labeler(scores: Scores) -> bool:
    return isinstance(scores, LabelerScores)


def _first_order_parser(scores: Scores) -> bool:
    return isinstance(scores, ParserScores) and scores.tree != "mean_field"


def _second_order_parser(scores: Scores) -> bool:
    return isinstance(scores, ParserScores) and scores.tree == "mean_field"


def _tag_marginal_model(scores: Scores) -> bool:
    return isinstance(scores, TagMarginalScores)


def _tagger(scores: Scores) -> bool:
    return isinstance(scores, TaggerScores) and not isinstance(scores, LabelerScores)


def _masked_sum(per_position: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sums `[B, n]` values over real positions: `[B]`."""
    return per_position.masked_fill(~mask, 0.0).sum(dim=-1)


def _cross_entropy(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """-sum target * log_probs over the last dimension, with 0 * log 0 = 0 (and 0 * -inf = 0)."""
    return -torch.where(target > 0, target * log_probs, torch.zeros_like(log_probs)).sum(dim=-1)


def _kl(target: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """KL(target || exp(log_probs)) over the last dimension."""
    return _cross_entropy(target, log_probs) + (target * target.clamp_min(1e-30).log()).sum(dim=-1)


def _student_log_marginals(student: TaggerScores, temperature: float) -> torch.Tensor:
    """log P_s(y_i = b) `[B, n, L]`, differentiable (forward-backward for a CRF student)."""
    if student.is_crf:
        return student.distribution(temperature).unary_marginals().clamp_min(1e-30).log()
    return (student.emissions / temperature).log_softmax(dim=-1)


# ---------------------------------------------------------------- parser students
# A parser student defines p_s(tree, relations) = p_s(tree) prod_d p_s(r_d | h_d -> d), with p_s(tree)
# an independent softmax over each word's heads ("local"), a tree CRF, or, approximately, a
# second-order parser's mean-field factors. Teacher tensors are indexed by dependent, then head.


def _words(student: ParserScores) -> torch.Tensor:
    return student.mask[:, 1:]


def _student_head_log_probs(student: ParserScores, temperature: float) -> torch.Tensor:
    """log P_s(head of each word = h) `[B, n, n+1]`: the local softmax, the tree marginals or the
    mean-field factors, with the student's scores / T; differentiable."""
    if student.tree == "local":
        return by_dependent(head_selection_log_probs(student.arc_scores / temperature, student.mask))
    return by_dependent(student.head_marginals(temperature)).clamp_min(1e-30).log()


def _relation_term(arcs: torch.Tensor, relations: torch.Tensor, student: ParserScores, temperature: float, divergence) -> torch.Tensor:
    """sum over words d and heads h of P_t(h -> d) D(p_t(. | h -> d), p_s(. | h -> d)) `[B]`, with
    D `_cross_entropy` or `_kl`."""
    log_student = by_dependent((student.relation_scores / temperature).log_softmax(-1))
    per_arc = divergence(relations, log_student)
    return _masked_sum(torch.where(arcs > 0, arcs * per_arc, torch.zeros_like(per_arc)).sum(-1), _words(student))


def _possible_heads(mask: torch.Tensor) -> torch.Tensor:
    """`[B, n, n+1]` bool: h can be the head of word i (h is the root or another word of the sentence)."""
    position = torch.arange(mask.size(1), device=mask.device)
    return mask[:, None, :] & mask[:, 1:, None] & (position[None, None, :] != position[1:, None])


def _zeros(student: TaggerScores | ParserScores) -> torch.Tensor:
    return student.mask.new_zeros(student.mask.size(0), dtype=torch.get_default_dtype())


@KDObjective.register("none")
class NoDistillation(KDObjective):
    """The baseline: no KD term; the gold loss alone trains the student, at full weight whatever
    the lambda schedule (which would otherwise scale it down), so the baseline is the student
    trained as usual."""

    distills = False

    def needs(self, student: TaggerScores) -> set[str]:
        return set()

    def loss(self, teacher, student, temperature, gold_tags=None):
        return _zeros(student)


@KDObjective.register("token")
class TokenDistillation(KDObjective):
    """Hinton et al.: per token KL(softmax(e_t / T) || softmax(e_s / T)) * T^2.

    Uses emissions only, so a CRF teacher's transitions are ignored. The temperature kind does
    not matter here: token distributions are tempered by T on both sides. For a parser student
    the "tokens" are each word's first-order softmax over heads, and its relation distributions
    weighted by the teacher's."""

    def needs(self, student):
        return {"local_arcs", "relations"} if student.is_parser else {"token_probs"}

    def loss(self, teacher, student, temperature, gold_tags=None):
        t = temperature.value
        if student.is_parser:
            log_student = by_dependent(head_selection_log_probs(student.arc_scores / t, student.mask))
            arc_term = _masked_sum(_kl(teacher.local_arcs, log_student), _words(student))
            return (arc_term + _relation_term(teacher.local_arcs, teacher.relations, student, t, _kl)) * t**2
        target = teacher.token_probs
        log_student = (student.emissions / t).log_softmax(dim=-1)
        return _masked_sum(_kl(target, log_student), student.mask) * t**2


@KDObjective.register("posterior")
class PosteriorDistillation(KDObjective):
    """KL(P_t(y_i) || P_s(y_i)) between the forward-backward token marginals, per token, times T^2.

    For a parser student: per word, the KL between the teacher's and the student's head marginals,
    plus the KL between their relation distributions weighted by the teacher's arc marginals."""

    def needs(self, student):
        return {"arcs", "relations"} if student.is_parser else {"unary"}

    def loss(self, teacher, student, temperature, gold_tags=None):
        if student.is_parser:
            t = temperature.value
            arc_term = _masked_sum(_kl(teacher.arcs, _student_head_log_probs(student, t)), _words(student))
            return (arc_term + _relation_term(teacher.arcs, teacher.relations, student, t, _kl)) * t**2
        target = teacher.unary
        log_student = _student_log_marginals(student, temperature.value)
        return _masked_sum(_kl(target, log_student), student.mask) * temperature.value**2


@KDObjective.register("top_k")
class TopKDistillation(KDObjective):
    """Kim & Rush's sequence-level KD: the student's NLL of the teacher's K best sequences.

    # Parameters

    k : `int`
        How many of the teacher's best sequences to imitate.
    weighted : `bool`
        Top-WK: weight each sequence by its teacher probability renormalized over the K; otherwise
        the K sequences count equally. Sequences that do not exist (a sentence with fewer than K
        possible taggings) get weight zero. Temperature does not apply (the K best do not change).

    A parser student imitates its parser teacher's best tree and relations (k = 1).
    """

    def __init__(self, k: int = 5, weighted: bool = False) -> None:
        if k < 1:
            raise ValueError(f"top_k needs k >= 1, not {k}")
        self.k = k
        self.weighted = weighted

    def needs(self, student):
        return {"kbest"}

    def loss(self, teacher, student, temperature, gold_tags=None):
        if student.is_parser:
            return self._parser_loss(teacher, student)
        distribution = student.distribution()
        batch, k, n = teacher.kbest_tags.shape
        flat_tags = teacher.kbest_tags.reshape(batch * k, n)
        # Score all K sequences at once by repeating the student's scores K times.
        repeated = TaggerScores(
            emissions=student.emissions.repeat_interleave(k, dim=0),
            mask=student.mask.repeat_interleave(k, dim=0),
            transitions=student.transitions,
            start=student.start,
            end=student.end,
        ).distribution()
        log_probs = (repeated.log_score(flat_tags).reshape(batch, k) - distribution.log_partition()[:, None])
        exists = torch.isfinite(teacher.kbest_log_probs)
        # A sentence may have no sequence to imitate (a parser teacher's best tree that the
        # student's labels cannot write): it gets no loss.
        if self.weighted:
            weights = teacher.kbest_log_probs.masked_fill(~exists, float("-inf")).softmax(dim=-1).nan_to_num(0.0)
        else:
            weights = exists.to(log_probs.dtype) / exists.sum(dim=-1, keepdim=True).clamp_min(1)
        return -(weights * log_probs.masked_fill(~exists, 0.0)).sum(dim=-1)

    @staticmethod
    def _parser_loss(teacher: TeacherKnowledge, student: ParserScores) -> torch.Tensor:
        """-log p_s(the teacher's best tree and relations); relations the student lacks are left out."""
        heads, relations = teacher.kbest_tags[:, 0], teacher.kbest_relations[:, 0]
        words = _words(student)
        if student.tree in ("nonprojective", "projective"):
            tree_score = _masked_sum(gather_heads(student.arc_scores, heads), words)
            log_tree = tree_score - student.distribution().log_partition()
        else:
            log_tree = _masked_sum(_student_head_log_probs(student, 1.0).gather(2, heads[..., None]).squeeze(2), words)
        relation_log_probs = gather_heads(student.relation_scores, heads).gather(2, relations.clamp_min(0)[..., None]).squeeze(2)
        log_p = log_tree + _masked_sum(relation_log_probs, words & (relations >= 0))
        exists = torch.isfinite(teacher.kbest_log_probs[:, 0])
        return -torch.where(exists, log_p, torch.zeros_like(log_p))


@KDObjective.register("structural")
class StructuralDistillation(KDObjective):
    """Wang et al.'s factorized KD: -sum_y p_t(y) log p_s(y), computed over the student's substructures.

        L = log Z_s - sum_u P_t(u) s_s(u)

    For a CRF student the substructures are tag bigrams plus the first and last tags, so the
    teacher's pairwise and unary marginals are needed (a softmax teacher's pairwise marginals are
    products of its independent unary ones: case 3); for a softmax student they are single tags and
    the loss is a sum of per-token cross-entropies (case 2a). With temperature T the student's
    scores are divided by T and the loss is multiplied by T^2.

    A student constrained by its tag scheme (-inf transitions) cannot represent structures the
    teacher may give mass to (a softmax teacher's independent tags can form O -> I-PER); that
    mass has no student score to pull on and is left out of the sum rather than making it infinite.

    A parser student's substructures are arcs and their relations: -E_t[log p_s(tree, relations)]
    = log Z_s - sum P_t(h -> d) s_s(h, d) - sum P_t(h -> d) p_t(r | h -> d) log p_s(r | h -> d)
    for a tree-CRF student (the Matrix-Tree or Eisner normalizer), with the per-word cross-entropy
    of the head distributions in place of the first two terms for a local student (for a
    second-order student, of its mean-field factors: an approximation, as its inference is).
    """

    def needs(self, student):
        if student.is_parser:
            return {"arcs", "relations"}
        return {"unary", "pairwise"} if student.is_crf else {"unary"}

    def loss(self, teacher, student, temperature, gold_tags=None):
        t = temperature.value
        if student.is_parser:
            return self._parser_loss(teacher, student, t)
        # -E_t[log p_s(y)] = log Z_s - sum_u P_t(u) s_s(u): the structures' own cross-entropy, from
        # the teacher's marginals over the student's factors.
        distribution = student.distribution(t)
        marginals = (teacher.unary, teacher.pairwise) if student.is_crf else teacher.unary
        return (distribution.log_partition() - distribution.expected_score(marginals)) * t**2

    @staticmethod
    def _parser_loss(teacher: TeacherKnowledge, student: ParserScores, t: float) -> torch.Tensor:
        words = _words(student)
        if student.tree != "mean_field":  # the structures' cross-entropy, as for taggers
            heads = student.distribution(t)
            arc_term = heads.log_partition() - heads.expected_score(by_head(teacher.arcs))
        else:
            arc_term = _masked_sum(_cross_entropy(teacher.arcs, _student_head_log_probs(student, t)), words)
        return (arc_term + _relation_term(teacher.arcs, teacher.relations, student, t, _cross_entropy)) * t**2


class _ScenarioStructural(StructuralDistillation):
    """`structural`, restricted to the teacher/student pair a config says it means."""

    # The objective's name, and for each side a test of its scores with its description.
    name: str
    teacher: tuple[Callable[[Scores], bool], str]
    student: tuple[Callable[[Scores], bool], str]

    def check_pair(self, teacher, student):
        (accepts_teacher, teacher_is), (accepts_student, student_is) = self.teacher, self.student
        if not (accepts_teacher(teacher) and accepts_student(student)):
            raise ValueError(
                f"objective {self.name!r} distills {teacher_is} teacher into {student_is} student, but the "
                f"teacher is a {describe(teacher)} and the student a {describe(student)}"
            )


@KDObjective.register("crf_to_crf")
class CrfToCrf(_ScenarioStructural):
    """Case 1a: tag-bigram marginals of a CRF teacher into a CRF student."""

    name, teacher, student = "crf_to_crf", (_crf, "a crf"), (_crf, "a crf")


@KDObjective.register("crf_to_softmax")
class CrfToSoftmax(_ScenarioStructural):
    """Case 2a: unary marginals of a CRF teacher into a softmax student."""

    name, teacher, student = "crf_to_softmax", (_crf, "a crf"), (_softmax, "a softmax")


@KDObjective.register("softmax_to_crf")
class SoftmaxToCrf(_ScenarioStructural):
    """Case 3: products of a softmax teacher's independent marginals into a CRF student."""

    name, teacher, student = "softmax_to_crf", (_softmax, "a softmax"), (_crf, "a crf")


@KDObjective.register("biaffine_to_sequence_labeler")
class BiaffineToSequenceLabeler(_ScenarioStructural):
    """Case 1b: a biaffine parser's head marginals times its relation probabilities, in a
    sequence-labeling parser's label space."""

    name, teacher = "biaffine_to_sequence_labeler", (_first_order_parser, "a biaffine parser")
    student = (_sequence_labeler, "a sequence-labeling parser")


@KDObjective.register("second_order_to_sequence_labeler")
class SecondOrderToSequenceLabeler(_ScenarioStructural):
    """Case 2b: a second-order parser's mean-field head marginals times its relation
    probabilities, in a sequence-labeling parser's label space."""

    name, teacher = "second_order_to_sequence_labeler", (_second_order_parser, "a second-order parser")
    student = (_sequence_labeler, "a sequence-labeling parser")


@KDObjective.register("span_to_tagger")
class SpanToTagger(_ScenarioStructural):
    """Case 4: a span scorer's exact tag marginals (per token for a softmax student, tag bigrams
    for a CRF student) in the student's BIO or BIOES tags."""

    name, teacher = "span_to_tagger", (_tag_marginal_model, "a span scorer (a model giving tag marginals)")
    student = (_tagger, "a tagger (crf or softmax)")


@KDObjective.register("local_substructure")
class LocalSubstructure(KDObjective):
    """Lin et al. (2022): match local potentials without any dynamic program.

    # Parameters

    transitions : `bool`
        Match e_i(b) + A(a, b) for all a, b ("with transitions"), or the emissions e_i(b) only.
    distance : `str`
        "mse": mean squared error over the positions' potentials, averaged per position;
        "kl": per position KL between the softmaxes of the teacher's and the student's local
        potentials. Both sum over the sentence's real positions. Entries that either side
        forbids (-inf) are left out.

    Between parsers the local potentials are each word's arc scores from its possible heads
    (`transitions` does not apply). From a parser into a sequence-labeling parser they are the
    labeler's emissions against the parser's score of each label's arc plus the log-probability of
    its relation (`knowledge.label_scores`; the parser has no transitions, so with `transitions` a
    CRF labeler's transitions are matched to zero).
    """

    def __init__(self, transitions: bool = True, distance: str = "mse") -> None:
        if distance not in ("mse", "kl"):
            raise ValueError(f"local_substructure distance must be 'mse' or 'kl', not {distance!r}")
        self.transitions = transitions
        self.distance = distance

    def needs(self, student):
        return {"arc_scores"} if student.is_parser else {"scores"}

    @staticmethod
    def _potentials(scores: TaggerScores, with_transitions: bool) -> torch.Tensor:
        """`[B, n, K]`: each position's local potentials, flattened."""
        if not with_transitions:
            return scores.emissions
        labels = scores.emissions.size(-1)
        transitions = scores.transitions if scores.is_crf else scores.emissions.new_zeros(labels, labels)
        return (scores.emissions[:, :, None, :] + transitions).flatten(start_dim=2)

    def loss(self, teacher, student, temperature, gold_tags=None):
        if student.is_parser:
            # -inf marks the impossible heads (the word itself, padding), as the taggers' forbidden entries.
            possible = _possible_heads(student.mask)
            student_potentials = by_dependent(student.arc_scores).masked_fill(~possible, float("-inf"))
            teacher_potentials = teacher.arc_scores.masked_fill(~possible, float("-inf"))
            words = _words(student)
        else:
            # When neither side has transitions, the pairs (a, b) only repeat each emission e(b) once
            # per previous label a, which changes neither distance: they are not built ([B, n, L, L]
            # is 16 GB for a 1,415-label dependency labeler).
            with_transitions = self.transitions and (teacher.scores.is_crf or student.is_crf)
            teacher_potentials = self._potentials(teacher.scores, with_transitions)
            student_potentials = self._potentials(student, with_transitions)
            words = student.mask
        finite = torch.isfinite(teacher_potentials) & torch.isfinite(student_potentials)
        if self.distance == "mse":
            squared = torch.where(finite, student_potentials - teacher_potentials, torch.zeros_like(student_potentials)) ** 2
            per_position = squared.sum(dim=-1) / finite.sum(dim=-1).clamp_min(1)
        else:
            minus_inf = torch.full_like(student_potentials, float("-inf"))
            target = torch.where(finite, teacher_potentials, minus_inf).softmax(dim=-1)
            log_student = torch.where(finite, student_potentials, minus_inf).log_softmax(dim=-1)
            per_position = _kl(target, log_student)
        return _masked_sum(per_position, words)


class _SyntheticTeacher(KDObjective):
    """Tang et al.'s diagnostic teachers: a synthetic per-position distribution q_i, then
    sum_i CE(q_i, P_s(y_i)) against the student's token marginals. They need gold tags, and a
    student with per-position labels (a tagger or a sequence-labeling parser)."""

    needs_gold = True

    def check_pair(self, teacher, student):
        if isinstance(student, ParserScores):
            raise ValueError(
                f"{type(self).__name__} builds per-position label distributions, which a {describe(student)} student "
                "does not have; distill into a sequence-labeling parser"
            )

    def needs(self, student):
        return {"unary"}

    def synthetic(self, teacher: TeacherKnowledge, student: TaggerScores, gold_tags: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, teacher, student, temperature, gold_tags=None):
        if gold_tags is None:
            raise ValueError(f"objective {type(self).__name__} builds its teacher from gold tags; this batch has none")
        target = self.synthetic(teacher, student, gold_tags)
        return _masked_sum(_cross_entropy(target, _student_log_marginals(student, 1.0)), student.mask)


@KDObjective.register("label_smoothing")
class LabelSmoothingTeacher(_SyntheticTeacher):
    """The "universe" level: q = (1 - eps) one-hot(gold) + eps uniform.

    # Parameters

    epsilon : `float`, optional
        The smoothing mass. By default the real teacher's average non-gold mass on the batch's
        real tokens, which isolates what label smoothing alone explains of the teacher's effect.
    """

    def __init__(self, epsilon: float | None = None) -> None:
        self.epsilon = epsilon

    def synthetic(self, teacher, student, gold_tags):
        labels = teacher.unary.size(-1)
        gold = torch.nn.functional.one_hot(gold_tags, labels).to(teacher.unary.dtype)
        if self.epsilon is None:
            gold_mass = (teacher.unary * gold).sum(dim=-1)
            epsilon = (1 - gold_mass)[student.mask].mean()
        else:
            epsilon = torch.tensor(self.epsilon, dtype=gold.dtype)
        return (1 - epsilon) * gold + epsilon / labels


@KDObjective.register("partial_teacher")
class PartialTeacher(_SyntheticTeacher):
    """The "instance-specific" level: keep the teacher's probability of the gold label, spread the
    rest uniformly over the other labels (gradient rescaling by the teacher's confidence)."""

    def synthetic(self, teacher, student, gold_tags):
        labels = teacher.unary.size(-1)
        gold = torch.nn.functional.one_hot(gold_tags, labels).to(teacher.unary.dtype)
        gold_mass = (teacher.unary * gold).sum(dim=-1, keepdim=True)
        return gold * gold_mass + (1 - gold) * (1 - gold_mass) / max(labels - 1, 1)


@KDObjective.register("similarity_teacher")
class SimilarityTeacher(_SyntheticTeacher):
    """The "domain" level: only the similarity between labels, q = softmax_k(cos(w_gold, w_k) / alpha)
    from the teacher's output-layer label vectors w.

    # Parameters

    alpha : `float`
        The softmax temperature of the cosine similarities.
    """

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha

    def needs(self, student):
        return {"scores"}

    def synthetic(self, teacher, student, gold_tags):
        vectors = teacher.scores.label_vectors
        if vectors is None:
            raise ValueError("similarity_teacher needs the teacher's label vectors; this teacher does not expose them")
        normalized = torch.nn.functional.normalize(vectors, dim=-1)
        similarity = ((normalized @ normalized.T) / self.alpha).softmax(dim=-1)
        return similarity[gold_tags]
