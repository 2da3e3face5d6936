"""What a model gives a teacher or a student of distillation: its scores for a batch, as a typed
value (`Model.scores(output)`).

- `TaggerScores`: a tagger's potentials (a CRF's or a softmax tagger's);
- `LabelerScores`: a sequence-labeling parser's, which are a tagger's whose labels each stand for
  a head and a relation;
- `ParserScores`: a dependency parser's arc and relation scores, with the distribution over heads
  it defines;
- `TagMarginalScores`: the base of the scores of a model that is no tagger but can say exactly
  what a span-tagging tagger's marginals would be under its own distribution (a span scorer,
  `span_ner`'s `SpanScores`): a new kind of span teacher subclasses it in its own model file.

Distillation dispatches on these types (and on what they hold), never on model classes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from structkd_plugin.structures import (
    HeadSelection,
    IndependentTags,
    LinearChainCRF,
    NonProjectiveTree,
    ProjectiveTree,
    head_selection_log_probs,
    maximum_spanning_arborescence,
    second_order_mean_field,
)

__all__ = ["LabelerScores", "ParserScores", "Scores", "TagMarginalScores", "TaggerScores", "describe"]


@dataclass
class TaggerScores:
    """A tagger's potentials for one batch.

    `emissions [B, n, L]` and `mask [B, n]` always; `transitions [L, L]` (from, to), `start [L]`
    and `end [L]` for a CRF, None for a locally normalized (softmax) tagger. Constrained transitions
    are -inf. `label_vectors [L, D]` are the output layer's label vectors (for the similarity
    teacher); `labels` the label names (label i is `labels[i]`) and `label_encoding` their span
    scheme (BIO, IOB1, BIOES) when they encode spans.
    """

    emissions: torch.Tensor
    mask: torch.Tensor
    transitions: torch.Tensor | None = None
    start: torch.Tensor | None = None
    end: torch.Tensor | None = None
    label_vectors: torch.Tensor | None = None
    labels: tuple[str, ...] = ()
    label_encoding: str | None = None

    is_parser = False

    @property
    def is_crf(self) -> bool:
        return self.transitions is not None

    def distribution(self, temperature: float = 1.0) -> LinearChainCRF | IndependentTags:
        """The tagger's distribution over tag sequences with all scores divided by `temperature`."""
        if self.is_crf:
            return LinearChainCRF(self.emissions, self.transitions, self.mask, self.start, self.end, temperature=temperature)
        return IndependentTags(self.emissions, self.mask, temperature=temperature)


@dataclass
class LabelerScores(TaggerScores):
    """A sequence-labeling parser's scores: a tagger's over labels that each name a head (relative
    to the word) and a relation. `relations` are the relation names; `label_relations [L]` each
    label's relation as an index of `relations`; `label_heads_of(instances) -> [B, n, L]` the
    head each label points to from each word of a batch (-1 where it points nowhere)."""

    relations: tuple[str, ...] = ()
    label_relations: torch.Tensor | None = None
    label_heads_of: Callable[[list[dict[str, Any]]], torch.Tensor] | None = None


@dataclass
class ParserScores:
    """A dependency parser's scores for one batch (the tensor conventions of `structures/`).

    `arc_scores [B, n+1, n+1]`: `[b, h, d]` scores the arc h -> d, position 0 the root.
    `relation_scores [B, n+1, n+1, R]`: log p(relation r | arc h -> d). `mask [B, n+1]`: True on
    the root and the words. `tree` says which distribution over heads the parser defines:
    "local" (an independent softmax over each word's heads), "nonprojective" or "projective"
    (a single-root tree CRF), or "mean_field" (a second-order parser's mean-field approximation,
    independent per word, from `sib_scores` and `grd_scores` in `iterations` rounds).
    `relations` are the relation names (relation r is `relations[r]`).
    """

    arc_scores: torch.Tensor
    relation_scores: torch.Tensor
    mask: torch.Tensor
    tree: str = "local"
    sib_scores: torch.Tensor | None = None
    grd_scores: torch.Tensor | None = None
    iterations: int = 3
    relations: tuple[str, ...] = ()

    is_parser = True
    is_crf = False

    @property
    def is_factorized(self) -> bool:
        """Whether words choose their heads independently (so adjacent words' joint marginals
        are products of their own)."""
        return self.tree in ("local", "mean_field")

    def local_head_probs(self, temperature: float = 1.0) -> torch.Tensor:
        """Each word's softmax over its heads of the first-order scores, `[B, n+1, n+1]` (`[b, h, d]`)."""
        return head_selection_log_probs(self.arc_scores / temperature, self.mask).exp()

    def head_marginals(self, temperature: float = 1.0) -> torch.Tensor:
        """P(head of d = h) `[B, n+1, n+1]` under the parser's distribution with all scores / T."""
        arcs = self.arc_scores / temperature
        if self.tree == "local":
            return head_selection_log_probs(arcs, self.mask).exp()
        if self.tree == "mean_field":
            return second_order_mean_field(
                arcs, self.sib_scores / temperature, self.grd_scores / temperature, self.mask, self.iterations
            )
        return self.distribution(temperature).marginals()

    def distribution(self, temperature: float = 1.0) -> NonProjectiveTree | ProjectiveTree | HeadSelection:
        """The first-order distribution over heads with all scores / T: the tree CRF (`tree`
        "nonprojective" or "projective"), or independent head selection ("local")."""
        if self.tree == "local":
            return HeadSelection(self.arc_scores / temperature, self.mask)
        if self.tree not in ("nonprojective", "projective"):
            raise ValueError(f"a {self.tree} parser's distribution is its mean-field factors: see head_marginals")
        tree_class = ProjectiveTree if self.tree == "projective" else NonProjectiveTree
        return tree_class(self.arc_scores / temperature, self.mask, single_root=True)

    def relation_probs(self, temperature: float = 1.0) -> torch.Tensor:
        """p(r | h -> d) `[B, n+1, n+1, R]` with the relation scores / T."""
        return (self.relation_scores / temperature).softmax(-1)

    def best_tree(self) -> torch.Tensor:
        """The parser's own decoding, `heads [B, n]` over the words: the best tree of a tree CRF,
        else the maximum spanning tree of the log head marginals."""
        if self.tree in ("nonprojective", "projective"):
            return self.distribution().argmax()[:, 1:]
        log_marginals = self.head_marginals().clamp_min(torch.finfo(self.arc_scores.dtype).tiny).log()
        return maximum_spanning_arborescence(log_marginals, self.mask, single_root=True)[:, 1:]


@dataclass(kw_only=True)
class TagMarginalScores:
    """Scores that are not a tagger's, of a model that can nevertheless give a tagger student the
    exact marginals of its tags under the model's own distribution: per-token tag marginals and
    tag-bigram marginals, in a span scheme (BIO or BIOES) over its entity `labels`. Such a model
    is a teacher only (Wang et al.'s case 4). `mask [B, n]` marks the real tokens;
    `description` names the model in messages.
    """

    mask: torch.Tensor
    labels: tuple[str, ...] = ()

    is_parser = False
    is_crf = False
    description = "tag-marginal model"

    def tag_marginals(self, scheme: str, temperature: float = 1.0) -> tuple[torch.Tensor, list[str]]:
        """P(tag of token i = t) `[B, n, T]` with all scores / `temperature`, and the T tag names
        (`label_schemes.scheme_tag_set(labels, scheme)`)."""
        raise NotImplementedError

    def pairwise_tag_marginals(self, scheme: str, temperature: float = 1.0) -> tuple[torch.Tensor, list[str]]:
        """P(tag of token i-1 = a, tag of token i = b) `[B, n, T, T]` (entry 0 zero), and the tag names."""
        raise NotImplementedError


Scores = TaggerScores | ParserScores | TagMarginalScores


def describe(scores: Scores) -> str:
    """What gave `scores`, in words, for messages: "crf tagger", "softmax sequence labeler",
    "biaffine parser", "second-order parser"."""
    if isinstance(scores, ParserScores):
        return "second-order parser" if scores.tree == "mean_field" else "biaffine parser"
    if isinstance(scores, TagMarginalScores):
        return scores.description
    normalization = "crf" if scores.is_crf else "softmax"
    return f"{normalization} {'sequence labeler' if isinstance(scores, LabelerScores) else 'tagger'}"
