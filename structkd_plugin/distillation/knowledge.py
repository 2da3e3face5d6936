"""What passes between teacher and student: scores on one side, marginals on the other.

A tagger exposes its potentials as `TaggerScores`; the teacher's are turned once into
`TeacherKnowledge` (marginals, k-best sequences, tempered token distributions) expressed in the
STUDENT's label space, which is all a KD objective ever sees of the teacher. The same bundle can be
computed online or loaded from the teacher cache, so objectives never know which.

Temperature (see shared/docs/structured-kd.md, section 1): with `local` temperature the teacher's
per-position marginals are tempered, P~(u) proportional to P(u)^(1/T) over the substructures at
a position; with `global` temperature the teacher's whole-structure scores are divided by T before
its marginals are computed. In both the student's scores are divided by T and the loss is scaled by T^2.
"""

from dataclasses import dataclass, field, fields

import torch

from structkd_plugin.structures import IndependentTags, LinearChainCRF
from structkd_plugin.structures.label_schemes import convert_pairwise_marginals, convert_unary_marginals


@dataclass
class Temperature:
    """`kind` is "local" or "global"; `value` is T (1 means no tempering)."""

    kind: str = "local"
    value: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("local", "global"):
            raise ValueError(f"temperature kind must be 'local' or 'global', not {self.kind!r}")
        if self.value <= 0:
            raise ValueError(f"temperature must be positive, not {self.value}")


@dataclass
class TaggerScores:
    """A tagger's potentials for one batch.

    `emissions [B, n, L]` and `mask [B, n]` always; `transitions [L, L]` (from, to), `start [L]`
    and `end [L]` for a CRF, None for a locally normalized (softmax) tagger. Constrained transitions
    are -inf. `label_vectors [L, D]` are the output layer's label vectors (for the similarity teacher).
    """

    emissions: torch.Tensor
    mask: torch.Tensor
    transitions: torch.Tensor | None = None
    start: torch.Tensor | None = None
    end: torch.Tensor | None = None
    label_vectors: torch.Tensor | None = None

    @property
    def is_crf(self) -> bool:
        return self.transitions is not None

    def distribution(self, temperature: float = 1.0) -> LinearChainCRF | IndependentTags:
        """The tagger's distribution over tag sequences with all scores divided by `temperature`."""
        if self.is_crf:
            return LinearChainCRF(self.emissions, self.transitions, self.mask, self.start, self.end, temperature=temperature)
        return IndependentTags(self.emissions, self.mask, temperature=temperature)


@dataclass
class TeacherKnowledge:
    """The teacher's view of a batch in the student's label space; only what the objective needs.

    unary `[B, n, Ls]`: P_t(y_i = b). pairwise `[B, n, Ls, Ls]`: P_t(y_{i-1} = a, y_i = b) (entry 0
    zero). token_probs `[B, n, Ls]`: softmax(teacher emissions / T), for Hinton's token KD.
    kbest_tags `[B, K, n]` (student label ids) and kbest_log_probs `[B, K]`: the teacher's K best
    sequences and their log-probabilities (-inf where fewer than K exist). scores: the teacher's
    raw potentials (only when the label spaces coincide: score matching needs the same labels).
    """

    mask: torch.Tensor
    unary: torch.Tensor | None = None
    pairwise: torch.Tensor | None = None
    token_probs: torch.Tensor | None = None
    kbest_tags: torch.Tensor | None = None
    kbest_log_probs: torch.Tensor | None = None
    scores: TaggerScores | None = field(default=None)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors this bundle holds, by field name (what the teacher cache stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


# Quantities an objective may ask the teacher for.
KNOWLEDGE = ("unary", "pairwise", "token_probs", "kbest", "scores")


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
        tags, scores = teacher.distribution().kbest(k)
        knowledge.kbest_log_probs = scores - teacher.distribution().log_partition()[:, None]
        knowledge.kbest_tags = label_map.argmax(dim=-1)[tags] if label_map is not None else tags
    if "scores" in needs:
        knowledge.scores = teacher if label_map is None else _reordered(teacher, label_map)
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
