"""Metrics that models accumulate batch by batch: span F1 (NER, chunking), token accuracy and
attachment scores (dependency parsing).

Every metric keeps plain counts (nested dicts of integers), which makes merging trivial:

* `metric(...)` adds a batch's counts;
* `get_metric(reset=False)` computes the scores from the counts, and resets them if asked;
* `state()` returns a copy of the counts, `merge(states)` adds other counts to them.

In a distributed run (`torch.distributed` initialized) `get_metric` scores the counts summed over
all processes (gathered with `all_gather_object`), so every process gets the same numbers. It is
then a collective call: all processes must make it together.
"""

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import torch
import torch.distributed as dist

from structkd_plugin.structures.label_schemes import spans_from_tags

Counts = dict[str, Any]


class Metric:
    """Base of the metrics: the count bookkeeping described in the module docstring. Subclasses
    define `__call__`, `_empty_counts` and `_scores`."""

    def __init__(self) -> None:
        self._counts = self._empty_counts()

    def _empty_counts(self) -> Counts:
        raise NotImplementedError

    def _scores(self, counts: Counts) -> dict[str, float]:
        raise NotImplementedError

    def get_metric(self, reset: bool = False) -> dict[str, float]:
        """The scores of the counts accumulated since the last reset (over all processes in a
        distributed run); resets the counts afterwards when `reset`."""
        counts = self._counts
        if dist.is_available() and dist.is_initialized():
            states: list[Optional[Counts]] = [None] * dist.get_world_size()
            dist.all_gather_object(states, counts)
            counts = _sum_counts(states)
        scores = self._scores(counts)
        if reset:
            self.reset()
        return scores

    def reset(self) -> None:
        """Forgets all counts."""
        self._counts = self._empty_counts()

    def state(self) -> Counts:
        """A copy of the counts (nested dicts of integers)."""
        return copy.deepcopy(self._counts)

    def merge(self, states: Iterable[Counts]) -> None:
        """Adds the counts of `states` (from `state()` of metrics of the same kind) to these."""
        self._counts = _sum_counts([self._counts, *states])


class SpanF1(Metric):
    """Precision, recall and F1 of labelled spans, overall (micro-averaged) and per label.

    Spans are read from tag sequences as conlleval reads them (`spans_from_tags`); a predicted
    span counts as correct only when a gold span has the same start, end and label.

    # Parameters

    scheme : `str`
        The tag scheme of the sequences: "BIO", "IOB1" or "BIOES".

    `get_metric` returns AllenNLP's keys: "precision-overall", "recall-overall",
    "f1-measure-overall", and "precision-X", "recall-X", "f1-measure-X" for every label X seen
    in a predicted or gold span. A score whose denominator is zero is 0.
    """

    def __init__(self, scheme: str = "BIO") -> None:
        self.scheme = scheme
        super().__init__()

    def _empty_counts(self) -> Counts:
        return {"true_positives": {}, "false_positives": {}, "false_negatives": {}}

    def __call__(self, predictions: list[list[str]], gold: list[list[str]]) -> None:
        """Adds the spans of a batch: `predictions` and `gold` are tag sequences, sentence by
        sentence, of equal lengths."""
        if len(predictions) != len(gold):
            raise ValueError(f"{len(predictions)} predicted sentences but {len(gold)} gold ones")
        for predicted_tags, gold_tags in zip(predictions, gold):
            if len(predicted_tags) != len(gold_tags):
                raise ValueError(f"{len(predicted_tags)} predicted tags for a sentence of {len(gold_tags)} gold tags")
            predicted_spans = set(spans_from_tags(predicted_tags, self.scheme))
            gold_spans = set(spans_from_tags(gold_tags, self.scheme))
            for kind, spans in (
                ("true_positives", predicted_spans & gold_spans),
                ("false_positives", predicted_spans - gold_spans),
                ("false_negatives", gold_spans - predicted_spans),
            ):
                counts = self._counts[kind]
                for label, _, _ in spans:
                    counts[label] = counts.get(label, 0) + 1

    def _scores(self, counts: Counts) -> dict[str, float]:
        true_positives, false_positives, false_negatives = (
            counts["true_positives"],
            counts["false_positives"],
            counts["false_negatives"],
        )
        scores = {}
        for label in sorted({*true_positives, *false_positives, *false_negatives}):
            precision, recall, f1 = _precision_recall_f1(
                true_positives.get(label, 0), false_positives.get(label, 0), false_negatives.get(label, 0)
            )
            scores[f"precision-{label}"] = precision
            scores[f"recall-{label}"] = recall
            scores[f"f1-measure-{label}"] = f1
        precision, recall, f1 = _precision_recall_f1(
            sum(true_positives.values()), sum(false_positives.values()), sum(false_negatives.values())
        )
        scores["precision-overall"] = precision
        scores["recall-overall"] = recall
        scores["f1-measure-overall"] = f1
        return scores


class TokenAccuracy(Metric):
    """The fraction of real tokens whose predicted label equals the gold one.

    `get_metric` returns `{"accuracy": ...}` (0 before any token was counted).
    """

    def _empty_counts(self) -> Counts:
        return {"correct": 0, "total": 0}

    def __call__(self, predictions: torch.Tensor, gold: torch.Tensor, mask: Optional[torch.Tensor] = None) -> None:
        """Adds a batch: `predictions` and `gold` are label indices of the same shape (e.g.
        `[B, n]`), `mask` (same shape, bool) is True on the tokens that count; all by default."""
        if predictions.shape != gold.shape:
            raise ValueError(f"predictions {tuple(predictions.shape)} and gold {tuple(gold.shape)} differ in shape")
        correct = predictions == gold
        if mask is not None:
            correct = correct & mask
        self._counts["correct"] += int(correct.sum())
        self._counts["total"] += int(mask.sum()) if mask is not None else gold.numel()

    def _scores(self, counts: Counts) -> dict[str, float]:
        return {"accuracy": counts["correct"] / counts["total"] if counts["total"] else 0.0}


class AttachmentScores(Metric):
    """Dependency parsing scores, as the CoNLL 2018 shared task computes them.

    UAS and LAS are the fractions of scored words whose head (UAS), or head and relation (LAS),
    are right; UEM and LEM the fractions of sentences where every scored word is right. As in the
    shared task's scorer, a relation is right when its universal part is (`aux` of `aux:pass`,
    given `relation_classes`); `LAS_full` compares the full labels.

    # Parameters

    exclude_punctuation : `bool`
        Leave out the words marked as punctuation (UPOS `PUNCT`, say) from every score. The
        shared task scores punctuation, so it is counted by default.
    relation_classes : `Sequence[int]`, optional
        For each relation index, the index of its universal part (see `universal_relation_classes`).
        Without it, LAS compares full labels, like `LAS_full`.

    `get_metric` returns `{"UAS", "LAS", "LAS_full", "UEM", "LEM"}` (0 before any word was counted).
    """

    def __init__(self, exclude_punctuation: bool = False, relation_classes: Sequence[int] | None = None) -> None:
        self.exclude_punctuation = exclude_punctuation
        # The last entry maps the index -1 (a gold relation the model does not know) to no class.
        self._classes = None if relation_classes is None else torch.tensor([*relation_classes, -1])
        super().__init__()

    def _empty_counts(self) -> Counts:
        return {
            "words": 0,
            "unlabeled": 0,
            "labeled": 0,
            "labeled_full": 0,
            "sentences": 0,
            "unlabeled_exact": 0,
            "labeled_exact": 0,
        }

    def __call__(
        self,
        predicted_heads: torch.Tensor,
        predicted_relations: torch.Tensor,
        gold_heads: torch.Tensor,
        gold_relations: torch.Tensor,
        mask: torch.Tensor,
        punctuation: Optional[torch.Tensor] = None,
    ) -> None:
        """Adds a batch. All tensors are `[B, n]` over the words (the root is not a position):
        heads numbered 0 (root) to n, relation indices, `mask` True on real words, and
        `punctuation` True on punctuation words (needed when `exclude_punctuation`)."""
        shapes = {tuple(t.shape) for t in (predicted_heads, predicted_relations, gold_heads, gold_relations, mask)}
        if len(shapes) != 1:
            raise ValueError(f"heads, relations and mask must have one shape, got {sorted(shapes)}")
        scored = mask.bool()
        if self.exclude_punctuation:
            if punctuation is None:
                raise ValueError("exclude_punctuation needs the punctuation mask")
            scored = scored & ~punctuation.bool()
        unlabeled = (predicted_heads == gold_heads) & scored
        labeled_full = unlabeled & (predicted_relations == gold_relations)
        if self._classes is None:
            labeled = labeled_full
        else:
            classes = self._classes.to(gold_relations.device)
            labeled = unlabeled & (classes[predicted_relations] == classes[gold_relations])
        has_words = scored.any(-1)
        counts = self._counts
        counts["words"] += int(scored.sum())
        counts["unlabeled"] += int(unlabeled.sum())
        counts["labeled"] += int(labeled.sum())
        counts["labeled_full"] += int(labeled_full.sum())
        # A sentence with nothing scored (all punctuation) counts in neither UEM's numerator nor denominator.
        counts["sentences"] += int(has_words.sum())
        counts["unlabeled_exact"] += int(((unlabeled == scored).all(-1) & has_words).sum())
        counts["labeled_exact"] += int(((labeled == scored).all(-1) & has_words).sum())

    def _scores(self, counts: Counts) -> dict[str, float]:
        words, sentences = counts["words"], counts["sentences"]
        return {
            "UAS": counts["unlabeled"] / words if words else 0.0,
            "LAS": counts["labeled"] / words if words else 0.0,
            "LAS_full": counts["labeled_full"] / words if words else 0.0,
            "UEM": counts["unlabeled_exact"] / sentences if sentences else 0.0,
            "LEM": counts["labeled_exact"] / sentences if sentences else 0.0,
        }


def universal_relation_classes(relations: Sequence[str]) -> list[int]:
    """For each relation, the index of its universal part (before any `:` subtype) among the
    relations' distinct universal parts: the classes the CoNLL 2018 scorer's LAS compares."""
    universal: dict[str, int] = {}
    return [universal.setdefault(relation.split(":")[0], len(universal)) for relation in relations]


def _precision_recall_f1(true_positives: int, false_positives: int, false_negatives: int) -> tuple[float, float, float]:
    predicted, gold = true_positives + false_positives, true_positives + false_negatives
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _sum_counts(states: Iterable[Counts]) -> Counts:
    """The key-by-key sum of nested dicts of integers (a key missing from a dict counts as 0)."""
    total: Counts = {}
    for state in states:
        for key, value in state.items():
            if isinstance(value, dict):
                total[key] = _sum_counts([total.get(key, {}), value])
            else:
                total[key] = total.get(key, 0) + value
    return total
