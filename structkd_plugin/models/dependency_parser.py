"""What every dependency parser shares: gold trees as tensors, attachment scores, predictions.

`DependencyParser` (not registered) is the base of the parsers (`biaffine_parser`,
`second_order_parser`) and of any model that predicts trees another way (e.g. a sequence labeler
over encoded heads). It holds no layers, only

- `gold_trees(instances)`: the gold trees of a batch as tensors over the words, `[B, n]`:
  `heads` (long, 0 = root, words numbered from 1, padding 0), `relations` (long, index in the
  relation namespace; -1 for a relation the vocabulary does not have, which then never counts as
  right; padding 0) and `punctuation` (bool, UPOS `PUNCT`); `{}` unless every instance has `heads`
  and `deprels`;
- `update_metrics(...)`: UAS, LAS (on universal relations, as the CoNLL 2018 scorer), LAS_full,
  UEM and LEM (`AttachmentScores`);
- `make_predictions(output, batch)`: `{"words", "heads", "deprels"}` per sentence from the
  output's `predicted_heads` and `predicted_relations` (`[B, n]` over the words, the batch's
  `mask [B, n]` giving the lengths), the format `structkd predict --output-format conll` writes
  as CoNLL-U.
"""

from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch

from structkd_plugin.data import Vocabulary, pad_sequences
from structkd_plugin.models.metrics import AttachmentScores, universal_relation_classes
from structkd_plugin.models.model import Instance, Model

PUNCTUATION_UPOS = "PUNCT"


class DependencyParser(Model):
    """Base of the dependency parsers (not registered itself).

    # Parameters

    vocab : `Vocabulary`
        Sizes the relation label space (`relation_namespace`).
    relation_namespace : `str`
        The vocabulary namespace of the dependency relations (the instances' `deprels`).
    exclude_punctuation_from_metrics : `bool`
        Leave out punctuation words (UPOS `PUNCT`) from UAS, LAS, UEM and LEM. The CoNLL shared
        tasks score them, so they are counted by default.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        relation_namespace: str = "deprels",
        exclude_punctuation_from_metrics: bool = False,
    ) -> None:
        super().__init__(vocab)
        self.relation_namespace = relation_namespace
        self.relations = [
            vocab.get_token_from_index(i, relation_namespace) for i in range(vocab.get_vocab_size(relation_namespace))
        ]
        self._relation_index = {relation: i for i, relation in enumerate(self.relations)}
        self.attachment_scores = AttachmentScores(
            exclude_punctuation_from_metrics, relation_classes=universal_relation_classes(self.relations)
        )

    def unseen_gold_labels(self, instances: Iterable[Instance]) -> Counter[str]:
        return Counter(
            relation for instance in instances for relation in instance.get("deprels", ()) if relation not in self._relation_index
        )

    def gold_trees(self, instances: list[Instance]) -> dict[str, torch.Tensor]:
        """`{"heads", "relations", "punctuation"}`, each `[B, n]`, or `{}` when some instance
        has no gold tree (see the module docstring)."""
        if not all("heads" in instance and "deprels" in instance for instance in instances):
            return {}
        heads, _ = pad_sequences([instance["heads"] for instance in instances], 0)
        relations, _ = pad_sequences(
            [[self._relation_index.get(r, -1) for r in instance["deprels"]] for instance in instances], 0
        )
        # Without UPOS no word is known to be punctuation.
        upos = [instance.get("upos") or ["_"] * len(instance["words"]) for instance in instances]
        punctuation, _ = pad_sequences([[int(u == PUNCTUATION_UPOS) for u in tags] for tags in upos], 0)
        return {"heads": heads, "relations": relations, "punctuation": punctuation.bool()}

    def update_metrics(
        self,
        predicted_heads: torch.Tensor,
        predicted_relations: torch.Tensor,
        heads: torch.Tensor,
        relations: torch.Tensor,
        mask: torch.Tensor,
        punctuation: torch.Tensor,
    ) -> None:
        """Adds a batch to the attachment scores; all tensors `[B, n]` over the words."""
        self.attachment_scores(predicted_heads, predicted_relations, heads, relations, mask, punctuation)

    def make_predictions(self, output: dict[str, torch.Tensor], batch: dict[str, Any]) -> list[dict]:
        lengths = batch["mask"].sum(-1).tolist()
        heads = output["predicted_heads"].tolist()
        relations = output["predicted_relations"].tolist()
        return [
            {
                "words": instance["words"],
                "heads": sentence_heads[:length],
                "deprels": [self.relations[r] for r in sentence_relations[:length]],
            }
            for instance, sentence_heads, sentence_relations, length in zip(
                batch["instances"], heads, relations, lengths
            )
        ]

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        return self.attachment_scores.get_metric(reset)
