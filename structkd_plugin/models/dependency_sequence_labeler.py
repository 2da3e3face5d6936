"""`dependency_sequence_labeler`: parsing as sequence labeling (Strzyz, Vilares & Gomez-Rodriguez 2019).

Each word gets one label that encodes its head and relation (`structures.dependency_encodings`);
a tagger (CRF or softmax) predicts the labels, and the tree is decoded from the label scores.
"""

from typing import Any

import torch
from allennlp_light import Seq2SeqEncoder
from tango.common import Lazy

from structkd_plugin.data import DataError, Vocabulary, pad_sequences
from structkd_plugin.models.crf_tagger import CrfTagger
from structkd_plugin.models.dependency_parser import DependencyParser
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.scores import LabelerScores
from structkd_plugin.models.softmax_tagger import SoftmaxTagger
from structkd_plugin.modules import TextEmbedder
from structkd_plugin.structures.dependency_encodings import DependencyLabelSet, decode_tree, encode_tree


@Model.register("dependency_sequence_labeler")
class DependencySequenceLabeler(DependencyParser):
    """A dependency parser that tags every word with its encoded head and relation.

    The labels are those of the vocabulary's `label_namespace`, which the reader fills by
    writing the encoded trees as `tags` (`universal_dependencies` with `tag_label` set to the
    same encoding); the model itself encodes the gold trees of a batch for its loss, so the
    reader's `tags` only serve to build the vocabulary.

    # Parameters

    vocab : `Vocabulary`
        Sizes the embeddings, the label space and the relations.
    text_embedder : `TextEmbedder`
        Turns words into vectors, built lazily with the vocabulary as in `SequenceTagger`.
    encoder : `Seq2SeqEncoder`, optional
        Contextualizes the embeddings (e.g. `lstm`); none by default.
    encoding : `str`
        "rel_pos" (head = the k-th word of a given UPOS to the left or right, Strzyz et al.'s best)
        or "rel_offset" (head = signed distance). rel_pos reads the instances' `upos` at
        prediction time too, so every instance must have it; these are the gold (or, for
        Strzyz et al.'s setting, externally predicted) tags of the input file.
    crf : `bool`
        Tag with a linear-chain CRF over the labels (a `CrfTagger`), else with an independent
        softmax per word (a `SoftmaxTagger`).
    label_namespace : `str`
        The vocabulary namespace of the encoded labels.
    dropout : `float`
        Dropout on the embeddings and on the encoder's output.
    relation_namespace : `str`, exclude_punctuation_from_metrics : `bool`
        See `DependencyParser`.

    The loss is the tagger's on the gold labels. The tree is always well-formed: each word's
    label log-probabilities (the CRF's log unary marginals, or the softmax's) become arc scores,
    the best label pointing from the word to each candidate head, and the single-root maximum
    spanning tree is taken (`decode_tree`); each word's relation is that of its best label
    pointing to its chosen head. When every word's best label points to a head and these form
    a tree, that is the tree returned.

    `forward`'s output, with `n` the longest sentence and `L` the number of labels:

    - the tagger's: `emissions [B, n, L]`, for the CRF `transitions [L, L]`, `start`, `end [L]`,
      `label_vectors`, `mask [B, n]` (the words), `predicted_tags [B, n]` (the tagger's own
      decoding: Viterbi or per-word argmax), and `loss` with gold trees;
    - `predicted_heads`, `predicted_relations` `[B, n]`: the decoded tree, and `tree_labels
      [B, n]` the labels of its arcs.

    `label_heads_of(instances)` gives the head (0 = root, 1..n) each label points to from each
    word, `[B, n, L]`, -1 where it points nowhere; with `label_relations [L]` (each label's
    relation index) it maps head and relation marginals onto the labels and back.

    Metrics: UAS, LAS, UEM, LEM of the decoded trees and `label_accuracy` of `predicted_tags`
    (on batches whose gold labels the vocabulary knows).
    """

    def __init__(
        self,
        vocab: Vocabulary,
        text_embedder: Lazy[TextEmbedder],
        encoder: Seq2SeqEncoder | None = None,
        encoding: str = "rel_pos",
        crf: bool = False,
        label_namespace: str = "labels",
        dropout: float = 0.0,
        relation_namespace: str = "deprels",
        exclude_punctuation_from_metrics: bool = False,
    ) -> None:
        super().__init__(vocab, relation_namespace, exclude_punctuation_from_metrics)
        tagger_class = CrfTagger if crf else SoftmaxTagger
        self.tagger = tagger_class(
            vocab, text_embedder=text_embedder, encoder=encoder, label_namespace=label_namespace, dropout=dropout
        )
        if not self.tagger.labels:
            raise ValueError(
                f"the vocabulary has no labels in {label_namespace!r}: read the data with the "
                f"universal_dependencies reader's tag_label set to {encoding!r}"
            )
        self.label_set = DependencyLabelSet(self.tagger.labels, encoding)
        self._label_index = {label: i for i, label in enumerate(self.tagger.labels)}
        missing = sorted(set(self.label_set.relations) - set(self.relations))
        if missing:
            raise ValueError(f"labels name relations missing from the {relation_namespace!r} namespace: {missing[:5]}")
        relation_index = {relation: i for i, relation in enumerate(self.relations)}
        label_relations = torch.tensor([relation_index[r] for r in self.label_set.relations], dtype=torch.long)
        self.register_buffer("label_relations", label_relations, persistent=False)

    @property
    def labels(self) -> list[str]:
        """The encoded labels, label id i being `labels[i]` (as a tagger's `labels`)."""
        return self.tagger.labels

    def scores(self, output: dict[str, Any]) -> LabelerScores:
        tagger = self.tagger.scores(output)
        return LabelerScores(
            **{name: getattr(tagger, name) for name in ("emissions", "mask", "transitions", "start", "end", "label_vectors", "labels", "label_encoding")},
            relations=tuple(self.relations),
            label_relations=self.label_relations,
            label_heads_of=self.label_heads_of,
        )

    def label_heads_of(self, instances: list[Instance]) -> torch.Tensor:
        """`[B, n, L]`: the head each label points to from each word of `instances`
        (`DependencyLabelSet.label_heads`), from their lengths and UPOS alone."""
        mask, upos = self._mask_and_upos(instances)
        return self.label_set.label_heads(mask, upos)

    def _mask_and_upos(self, instances: list[Instance]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The words' mask `[B, n]` and, for rel_pos, their UPOS ids `[B, n]` (else None)."""
        _, mask = pad_sequences([[1] * len(instance["words"]) for instance in instances], 0)
        if self.label_set.encoding != "rel_pos":
            return mask, None
        without_upos = next((instance for instance in instances if "upos" not in instance), None)
        if without_upos is not None:
            metadata = without_upos.get("metadata", {})
            raise DataError(
                metadata.get("source", "<input>"),
                metadata.get("line"),
                "this parser labels words with rel_pos labels, which name the head's UPOS, but the sentence has no "
                "UPOS: give it text with UPOS (CoNLL-U), or run a UPOS tagger before it in a spaCy pipeline",
            )
        return mask, self.label_set.upos_ids([instance["upos"] for instance in instances])

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        words = [instance["words"] for instance in instances]
        mask, upos = self._mask_and_upos(instances)
        batch: dict[str, Any] = {"words": self.tagger.text_embedder.tensorize(words), "mask": mask, "instances": instances}
        if upos is not None:
            batch["upos"] = upos
        gold = self.gold_trees(instances)
        batch.update(gold)
        if gold:
            labels = [
                encode_tree(instance["heads"], instance["deprels"], self.label_set.encoding, instance.get("upos"))
                for instance in instances
            ]
            label_ids = [[self._label_index.get(label, -1) for label in sentence] for sentence in labels]
            # A label the vocabulary lacks has no score to train; such batches (data not seen
            # when the vocabulary was built) get the attachment scores but no loss.
            if all(i >= 0 for sentence in label_ids for i in sentence):
                batch["tags"], _ = pad_sequences(label_ids, 0)
        return batch

    def forward(
        self,
        words: dict[str, Any],
        mask: torch.Tensor,
        instances: list,
        upos: torch.Tensor | None = None,
        tags: torch.Tensor | None = None,
        heads: torch.Tensor | None = None,
        relations: torch.Tensor | None = None,
        punctuation: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        output = self.tagger(words, mask, instances, tags)
        with torch.no_grad():  # decoding needs no gradient (nor the CRF's differentiable marginals)
            emissions = output["emissions"]
            if isinstance(self.tagger, CrfTagger):
                label_scores = self.tagger.crf(emissions, mask).unary_marginals().log()
            else:
                label_scores = emissions.log_softmax(-1)
            predicted_heads, tree_labels = decode_tree(label_scores, self.label_set, mask, upos)
        predicted_relations = self.label_relations[tree_labels].masked_fill(~mask, 0)
        output.update(
            predicted_heads=predicted_heads,
            predicted_relations=predicted_relations,
            tree_labels=tree_labels,
        )
        if heads is not None:
            self.update_metrics(predicted_heads, predicted_relations, heads, relations, mask, punctuation)
        return output

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        metrics = {"label_accuracy": self.tagger.get_metrics(reset)["accuracy"]}
        metrics.update(super().get_metrics(reset))
        return metrics
