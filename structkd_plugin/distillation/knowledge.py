"""What passes between teacher and student: scores on one side, marginals on the other.

A tagger exposes its potentials as `TaggerScores` (`models.scores`, through `Model.scores`); the teacher's are turned once into
`TeacherKnowledge` (marginals, k-best sequences, tempered token distributions) expressed in the
STUDENT's label space, which is all a KD objective ever sees of the teacher. The same bundle can be
computed online or loaded from the teacher cache, so objectives never know which.

Temperature (see shared/docs/structured-kd.md, section 1): with `local` temperature the teacher's
per-position marginals are tempered, P~(u) proportional to P(u)^(1/T) over the substructures at
a position; with `global` temperature the teacher's whole-structure scores are divided by T before
its marginals are computed. In both the student's scores are divided by T and the loss is scaled by T^2.

A dependency parser teacher exposes `ParserScores`. Distilled into a sequence-labeling parser
(Wang et al.'s cases 1b and 2b) its knowledge is expressed in the labeler's label space: each
label of a word stands for one head and one relation, so P_t(label) = P_t(head) P_t(relation |
head), and `parser_knowledge` turns that label distribution into the same `TeacherKnowledge` a
tagger teacher gives.
"""

from dataclasses import dataclass, field, fields

import torch
from tango.common import FromParams

from structkd_plugin.models.scores import ParserScores, TaggerScores, TagMarginalScores
from structkd_plugin.structures import gather_heads
from structkd_plugin.structures.label_schemes import (
    convert_pairwise_marginals,
    convert_unary_marginals,
    marginal_conversion_matrix,
    scheme_tag_set,
)


@dataclass
class Temperature(FromParams):
    """`kind` is "local" or "global"; `value` is T (1 means no tempering). In a config:
    `temperature: {kind: "local", value: 2.0}`."""

    kind: str = "local"
    value: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("local", "global"):
            raise ValueError(f"temperature kind must be 'local' or 'global', not {self.kind!r}")
        if self.value <= 0:
            raise ValueError(f"temperature must be positive, not {self.value}")


@dataclass
class TeacherKnowledge:
    """The teacher's view of a batch in the student's label space; only what the objective needs.

    unary `[B, n, Ls]`: P_t(y_i = b). pairwise `[B, n, Ls, Ls]`: P_t(y_{i-1} = a, y_i = b) (entry 0
    zero). token_probs `[B, n, Ls]`: softmax(teacher emissions / T), for Hinton's token KD.
    kbest_tags `[B, K, n]` (student label ids) and kbest_log_probs `[B, K]`: the teacher's K best
    sequences and their log-probabilities (-inf where fewer than K exist). scores: the teacher's
    raw potentials (only when the label spaces coincide: score matching needs the same labels).

    For a parser student, indexed by dependent (word i + 1) then head h (0 the root, as in
    `structures/`; R the student's relations): arcs `[B, n, n+1]`: P_t(head = h);
    local_arcs `[B, n, n+1]`: the teacher's first-order softmax over heads (its "emissions");
    relations `[B, n, n+1, R]`: p_t(r | h -> word); arc_scores `[B, n, n+1]`: its raw arc scores;
    kbest_tags then hold heads `[B, K, n]`, with kbest_relations `[B, K, n]` (-1: a relation
    the student lacks).
    """

    mask: torch.Tensor
    unary: torch.Tensor | None = None
    pairwise: torch.Tensor | None = None
    token_probs: torch.Tensor | None = None
    kbest_tags: torch.Tensor | None = None
    kbest_log_probs: torch.Tensor | None = None
    scores: TaggerScores | None = field(default=None)
    arcs: torch.Tensor | None = None
    local_arcs: torch.Tensor | None = None
    relations: torch.Tensor | None = None
    arc_scores: torch.Tensor | None = None
    kbest_relations: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors this bundle holds, by field name (what the teacher cache stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


# Quantities an objective may ask the teacher for (the last four for parser students).
KNOWLEDGE = ("unary", "pairwise", "token_probs", "kbest", "scores", "arcs", "local_arcs", "relations", "arc_scores")


def temper_marginals(marginals: torch.Tensor, temperature: float, dims: int) -> torch.Tensor:
    """P^(1/T) renormalized over the last `dims` dimensions (one position's substructures).

    Positions whose marginals are all zero (padding, the empty pairwise entry 0) stay zero."""
    if temperature == 1.0:
        return marginals
    powered = marginals.clamp_min(0).pow(1.0 / temperature)
    total = powered.sum(dim=tuple(range(-dims, 0)), keepdim=True)
    return torch.where(total > 0, powered / total.clamp_min(torch.finfo(powered.dtype).tiny), powered)


@torch.no_grad()
def teacher_knowledge(
    teacher: TaggerScores,
    needs: set[str],
    temperature: Temperature,
    label_map: torch.Tensor | None = None,
    k: int = 1,
) -> TeacherKnowledge:
    """Computes what an objective `needs` (a subset of `KNOWLEDGE`) from the teacher's scores.

    `label_map [Lt, Ls]` is the 0/1 matrix sending each teacher label to the student label it
    counts as (`label_schemes.marginal_conversion_matrix`); None when both use the same labels.
    """
    unknown = set(needs) - set(KNOWLEDGE)
    if unknown:
        raise ValueError(f"unknown teacher knowledge {sorted(unknown)}; known: {list(KNOWLEDGE)}")
    global_t = temperature.value if temperature.kind == "global" else 1.0
    local_t = temperature.value if temperature.kind == "local" else 1.0
    distribution = teacher.distribution(global_t)
    knowledge = TeacherKnowledge(mask=teacher.mask)
    if "unary" in needs:
        unary = distribution.unary_marginals()
        unary = convert_unary_marginals(unary, label_map) if label_map is not None else unary
        knowledge.unary = temper_marginals(unary, local_t, dims=1)
    if "pairwise" in needs:
        pairwise = distribution.pairwise_marginals()
        pairwise = convert_pairwise_marginals(pairwise, label_map) if label_map is not None else pairwise
        knowledge.pairwise = temper_marginals(pairwise, local_t, dims=2)
    if "token_probs" in needs:
        probs = (teacher.emissions / temperature.value).softmax(dim=-1) * teacher.mask[..., None]
        knowledge.token_probs = convert_unary_marginals(probs, label_map) if label_map is not None else probs
    if "kbest" in needs:
        tags, scores = teacher.distribution().topk(k)
        knowledge.kbest_log_probs = scores - teacher.distribution().log_partition()[:, None]
        knowledge.kbest_tags = label_map.argmax(dim=-1)[tags] if label_map is not None else tags
    if "scores" in needs:
        knowledge.scores = teacher if label_map is None else _reordered(teacher, label_map)
    return knowledge


@torch.no_grad()
def tag_marginal_knowledge(
    teacher: TagMarginalScores, needs: set[str], temperature: Temperature, student_labels: tuple[str, ...], scheme: str
) -> TeacherKnowledge:
    """The knowledge of a teacher that gives tag marginals (a span scorer: Wang et al.'s case 4)
    in a tagger student's label space: its exact per-token tag marginals in the student's tag
    scheme (`scheme`, BIO or BIOES), and for a CRF student its exact tag-bigram marginals.
    Student labels the teacher has no entity label for get 0."""
    unknown = set(needs) - {"unary", "pairwise"}
    if unknown:
        raise ValueError(f"a {teacher.description} teacher gives tag marginals (unary, pairwise), not {sorted(unknown)}")
    global_t = temperature.value if temperature.kind == "global" else 1.0
    local_t = temperature.value if temperature.kind == "local" else 1.0
    tags = scheme_tag_set(list(teacher.labels), scheme)
    conversion = marginal_conversion_matrix(tags, list(student_labels), source_scheme=scheme, target_scheme=scheme)
    knowledge = TeacherKnowledge(mask=teacher.mask)
    if "unary" in needs:
        unary, _ = teacher.tag_marginals(scheme, global_t)
        knowledge.unary = temper_marginals(convert_unary_marginals(unary.detach(), conversion), local_t, dims=1)
    if "pairwise" in needs:
        pairwise, _ = teacher.pairwise_tag_marginals(scheme, global_t)
        knowledge.pairwise = temper_marginals(convert_pairwise_marginals(pairwise, conversion), local_t, dims=2)
    return knowledge


def _reordered(scores: TaggerScores, label_map: torch.Tensor) -> TaggerScores:
    """The teacher's scores in the student's label order, when both have the same labels in another
    order (a permutation); objectives that match scores label by label need nothing less."""
    is_permutation = label_map.size(0) == label_map.size(1) and bool((label_map.sum(0) == 1).all())
    if not is_permutation:
        raise ValueError(
            "this objective matches the teacher's and the student's scores label by label, so both "
            "must use the same label set; the teacher's labels map onto different student labels"
        )
    order = label_map.argmax(dim=0)  # for each student label, the teacher label it is
    pick = lambda tensor: None if tensor is None else tensor[..., order]  # noqa: E731
    transitions = None if scores.transitions is None else scores.transitions[order][:, order]
    vectors = None if scores.label_vectors is None else scores.label_vectors[order]
    return TaggerScores(pick(scores.emissions), scores.mask, transitions, pick(scores.start), pick(scores.end), vectors)


def _label_entries(
    by_head: torch.Tensor, relation_by_head: torch.Tensor, label_heads: torch.Tensor, label_relations: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reads a parser's per-arc and per-(arc, relation) quantities at each label of a labeler.

    `by_head [B, n+1, n+1]` and `relation_by_head [B, n+1, n+1, R]` are indexed `[b, h, d]` as
    in `structures/`; `label_heads [B, n, L]` is the head each label points to from each word (-1:
    nowhere; see `DependencyLabelSet.label_heads`) and `label_relations [L]` each label's relation as
    an index of the parser's relations (-1: the parser has no such relation). Returns the arc part
    and the relation part `[B, n, L]`, and where a label stands for no (head, relation) pair of the
    parser `[B, n, L]`.
    """
    heads = label_heads.clamp_min(0)
    relations = relation_by_head.transpose(1, 2)[:, 1:]  # [B, n, n+1, R]: word i+1's rows of heads
    count = relations.size(-1)
    relation = relations.flatten(2).gather(2, heads * count + label_relations.clamp_min(0))
    arc = by_head.transpose(1, 2)[:, 1:].gather(2, heads)
    return arc, relation, (label_heads < 0) | (label_relations < 0)


def label_probs(
    head_probs: torch.Tensor, relation_probs: torch.Tensor, label_heads: torch.Tensor, label_relations: torch.Tensor
) -> torch.Tensor:
    """P(label l of word i) = P(head of i = h_l) p(r_l | h_l -> i), in a labeler's label space `[B, n, L]`.

    `head_probs [B, n+1, n+1]` and `relation_probs [B, n+1, n+1, R]` are a parser's, the labels'
    heads and relations as in `_label_entries`. A (head, relation) pair that no label of the
    student represents has no place in its label space: each word's distribution is renormalized
    over the labels it has.
    """
    arc, relation, nowhere = _label_entries(head_probs, relation_probs, label_heads, label_relations)
    probs = (arc * relation).masked_fill(nowhere, 0.0)
    total = probs.sum(-1, keepdim=True)
    return torch.where(total > 0, probs / total.clamp_min(torch.finfo(probs.dtype).tiny), probs)


def label_scores(teacher: ParserScores, label_heads: torch.Tensor, label_relations: torch.Tensor) -> torch.Tensor:
    """A parser's first-order local potential of each label of a labeler `[B, n, L]`: the arc score
    s(h_l -> i) plus log p(r_l | h_l -> i); -inf where the label stands for no arc of the parser.

    Each word's softmax over these potentials is its first-order label distribution (the `token`
    target); Lin et al.'s score matching asks a labeler's emissions to equal them.
    """
    relation_log_probs = teacher.relation_scores.log_softmax(-1)
    arc, relation, nowhere = _label_entries(teacher.arc_scores, relation_log_probs, label_heads, label_relations)
    return (arc + relation).masked_fill(nowhere, float("-inf"))


@torch.no_grad()
def parser_knowledge(
    teacher: ParserScores,
    needs: set[str],
    temperature: Temperature,
    label_heads: torch.Tensor,
    label_relations: torch.Tensor,
    k: int = 1,
) -> TeacherKnowledge:
    """A parser teacher's knowledge in a sequence-labeling parser's label space (cases 1b, 2b).

    The teacher's label marginals `label_probs` play the part of a tagger's unary marginals. Its
    pairwise marginals exist only when its words pick heads independently (`is_factorized`: a
    local or mean-field parser), as products of the unary ones (as for a softmax tagger, case 3);
    a tree CRF's adjacent words are dependent, so asking a tree-CRF teacher for them is an error.
    `token_probs` come from the first-order local softmax over heads (the parser's "emissions").
    The K best label sequences are exact for a factorized teacher; for a tree CRF only its best
    tree (k = 1) is known. Its `scores` are the labels' first-order potentials (`label_scores`),
    with no transitions.
    """
    unknown = set(needs) - set(KNOWLEDGE)
    if unknown:
        raise ValueError(f"unknown teacher knowledge {sorted(unknown)}; known: {list(KNOWLEDGE)}")
    if "pairwise" in needs and not teacher.is_factorized:
        raise ValueError(
            f"a {teacher.tree} tree-CRF teacher has no tractable marginals of adjacent words' labels, which "
            "a CRF student's structural KD needs; use a softmax sequence labeler, the posterior objective, "
            "or a local or second-order teacher"
        )
    global_t = temperature.value if temperature.kind == "global" else 1.0
    words = teacher.mask[:, 1:]
    marginals = label_probs(teacher.head_marginals(global_t), teacher.relation_probs(global_t), label_heads, label_relations)
    as_tagger = TaggerScores(emissions=marginals.clamp_min(1e-30).log(), mask=words)
    tagger_needs = needs & {"unary", "pairwise"}
    local = Temperature("local", temperature.value if temperature.kind == "local" else 1.0)
    knowledge = teacher_knowledge(as_tagger, tagger_needs, local)
    if "token_probs" in needs:
        t = temperature.value
        knowledge.token_probs = label_probs(teacher.local_head_probs(t), teacher.relation_probs(t), label_heads, label_relations)
    if "scores" in needs:
        knowledge.scores = TaggerScores(emissions=label_scores(teacher, label_heads, label_relations), mask=words)
    if "kbest" in needs:
        if teacher.is_factorized:
            tags, scores = as_tagger.distribution().topk(k)
            knowledge.kbest_log_probs = scores - as_tagger.distribution().log_partition()[:, None]
            knowledge.kbest_tags = tags
        elif k == 1:
            heads = teacher.best_tree()
            relations = gather_heads(teacher.relation_scores, heads).argmax(-1)
            matches = (label_heads == heads[:, :, None]) & (label_relations == relations[:, :, None])
            representable = (matches.any(-1) | ~words).all(-1)
            knowledge.kbest_tags = matches.to(torch.long).argmax(-1)[:, None, :]
            # The best tree counts with probability one where the student can write it, else not at all.
            knowledge.kbest_log_probs = torch.where(representable, 0.0, float("-inf"))[:, None].to(teacher.arc_scores.dtype)
        else:
            raise ValueError(f"a tree-CRF teacher gives only its best tree to top_k (k = 1), not k = {k}")
    return knowledge


def by_dependent(tensor: torch.Tensor) -> torch.Tensor:
    """`[B, n+1 (head), n+1 (dependent), ...]` -> `[B, n (word), n+1 (head), ...]`: each word's row of heads."""
    return tensor.transpose(1, 2)[:, 1:]


def by_head(tensor: torch.Tensor) -> torch.Tensor:
    """The inverse of `by_dependent`: `[B, n (word), n+1 (head), ...]` -> `[B, n+1 (head), n+1
    (dependent), ...]`, zero in the root's column (nothing heads the root)."""
    return torch.cat([torch.zeros_like(tensor[:, :1]), tensor], dim=1).transpose(1, 2)


@torch.no_grad()
def parser_to_parser_knowledge(
    teacher: ParserScores, needs: set[str], temperature: Temperature, relation_map: torch.Tensor, k: int = 1
) -> TeacherKnowledge:
    """A parser teacher's knowledge for a parser student, indexed by dependent (see `TeacherKnowledge`).

    `relation_map [R_s]` gives each student relation's index among the teacher's (-1 when the
    teacher has none); the teacher's relation distributions are renormalized over the relations
    the student has. Only the teacher's best tree is known as a K-best list (k = 1).
    """
    unknown = set(needs) - {"arcs", "local_arcs", "relations", "arc_scores", "kbest"}
    if unknown:
        raise ValueError(f"a parser student takes arcs, relations, arc scores or the best tree from its teacher, not {sorted(unknown)}")
    global_t = temperature.value if temperature.kind == "global" else 1.0
    local_t = temperature.value if temperature.kind == "local" else 1.0
    words = teacher.mask[:, 1:]
    knowledge = TeacherKnowledge(mask=words)
    if "arcs" in needs:
        knowledge.arcs = temper_marginals(by_dependent(teacher.head_marginals(global_t)), local_t, dims=1)
    if "local_arcs" in needs:
        knowledge.local_arcs = by_dependent(teacher.local_head_probs(temperature.value))
    if "relations" in needs:
        probs = by_dependent(teacher.relation_probs(temperature.value))[..., relation_map.clamp_min(0)]
        probs = probs.masked_fill(relation_map < 0, 0.0)
        total = probs.sum(-1, keepdim=True)
        knowledge.relations = torch.where(total > 0, probs / total.clamp_min(torch.finfo(probs.dtype).tiny), probs)
    if "arc_scores" in needs:
        knowledge.arc_scores = by_dependent(teacher.arc_scores)
    if "kbest" in needs:
        if k != 1:
            raise ValueError(f"a parser teacher gives a parser student only its best tree (k = 1), not k = {k}")
        heads = teacher.best_tree()
        teacher_relations = gather_heads(teacher.relation_scores, heads).argmax(-1)
        # The student's index of each teacher relation (-1 where it has none).
        student_index = torch.full((teacher.relation_scores.size(-1),), -1, dtype=torch.long, device=heads.device)
        known = relation_map >= 0
        student_index[relation_map[known]] = torch.arange(len(relation_map), device=heads.device)[known]
        knowledge.kbest_tags = heads[:, None]
        knowledge.kbest_relations = student_index[teacher_relations].masked_fill(~words, 0)[:, None]
        knowledge.kbest_log_probs = heads.new_zeros(heads.size(0), 1, dtype=teacher.arc_scores.dtype)
    return knowledge
