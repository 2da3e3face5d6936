"""What every sequence tagger shares: embed -> encode -> per-token label scores, and its metrics.

`CrfTagger` and `SoftmaxTagger` differ only in how label scores become a distribution over tag
sequences (a linear-chain CRF, or an independent softmax per token); this base holds the rest.
"""

from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from allennlp_light import Seq2SeqEncoder
from allennlp_light.modules.seq2seq_encoders import PassThroughEncoder
from tango.common import Lazy

from structkd_plugin.data import Vocabulary, pad_sequences
from structkd_plugin.models.metrics import SpanF1, TokenAccuracy
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.scores import TaggerScores
from structkd_plugin.modules import TextEmbedder


class SequenceTagger(Model):
    """Base of the taggers (not registered itself).

    # Parameters

    vocab : `Vocabulary`
        Sizes the embeddings and the label space (`label_namespace`).
    text_embedder : `TextEmbedder`
        Turns words into vectors (word embeddings, characters, a transformer, ...). Built lazily,
        with the vocabulary, since tango passes `vocab` only to the outermost constructor.
    encoder : `Seq2SeqEncoder`, optional
        Contextualizes the embeddings (any allennlp-light encoder, e.g. `lstm`); none by default.
    label_namespace : `str`
        The vocabulary namespace of the tags.
    label_encoding : `str`, optional
        The tag scheme ("BIO", "IOB1" or "BIOES") when the tags encode spans; enables span F1
        (and, in the CRF, transition constraints). `None` for tags that are not spans (PoS).
    dropout : `float`
        Dropout on the embeddings and on the encoder's output.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        text_embedder: Lazy[TextEmbedder],
        encoder: Seq2SeqEncoder | None = None,
        label_namespace: str = "labels",
        label_encoding: str | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(vocab)
        self.text_embedder = text_embedder.construct(vocab=vocab)
        embedding_dim = self.text_embedder.get_output_dim()
        self.encoder = encoder or PassThroughEncoder(embedding_dim)
        if self.encoder.get_input_dim() != embedding_dim:
            raise ValueError(
                f"the encoder expects inputs of size {self.encoder.get_input_dim()} but the text "
                f"embedder gives {embedding_dim}"
            )
        self.label_namespace = label_namespace
        self.label_encoding = label_encoding
        self.labels = [
            vocab.get_token_from_index(i, label_namespace) for i in range(vocab.get_vocab_size(label_namespace))
        ]
        self._label_index = {label: i for i, label in enumerate(self.labels)}
        self.dropout = torch.nn.Dropout(dropout)
        self.tag_projection = torch.nn.Linear(self.encoder.get_output_dim(), len(self.labels))
        self.accuracy = TokenAccuracy()
        self.span_f1 = SpanF1(label_encoding) if label_encoding else None

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        words = [instance["words"] for instance in instances]
        _, mask = pad_sequences([[1] * len(sentence) for sentence in words], 0)
        batch: dict[str, Any] = {"words": self.text_embedder.tensorize(words), "mask": mask, "instances": instances}
        if all("tags" in instance for instance in instances):
            # A gold tag the model never saw becomes -1: a certain error, left out of the loss.
            batch["tags"], _ = pad_sequences(
                [[self._label_index.get(t, -1) for t in instance["tags"]] for instance in instances], 0
            )
        return batch

    def scores(self, output: dict[str, Any]) -> TaggerScores:
        return TaggerScores(
            emissions=output["emissions"],
            mask=output["mask"],
            transitions=output.get("transitions"),
            start=output.get("start"),
            end=output.get("end"),
            label_vectors=output.get("label_vectors"),
            labels=tuple(self.labels),
            label_encoding=self.label_encoding,
        )

    def unseen_gold_labels(self, instances: Iterable[Instance]) -> Counter[str]:
        return Counter(tag for instance in instances for tag in instance.get("tags", ()) if tag not in self._label_index)

    def emissions(self, words: dict[str, Any], mask: torch.Tensor) -> torch.Tensor:
        """Per-token label scores `[B, n, L]` (the "unary potentials")."""
        embedded = self.dropout(self.text_embedder(words, mask))
        encoded = self.dropout(self.encoder(embedded, mask))
        return self.tag_projection(encoded)

    def update_metrics(self, predicted: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, instances) -> None:
        self.accuracy(predicted, tags, mask)
        if self.span_f1 is not None:
            self.span_f1(self.tag_strings(predicted, mask), [instance["tags"] for instance in instances])

    def tag_strings(self, tag_ids: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
        lengths = mask.sum(-1).tolist()
        return [[self.labels[i] for i in row[:length]] for row, length in zip(tag_ids.tolist(), lengths)]

    def make_predictions(self, output: dict[str, torch.Tensor], batch: dict[str, Any]) -> list[dict]:
        tags = self.tag_strings(output["predicted_tags"], batch["mask"])
        return [{"words": instance["words"], "tags": sentence} for instance, sentence in zip(batch["instances"], tags)]

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        metrics = dict(self.accuracy.get_metric(reset))
        if self.span_f1 is not None:
            metrics.update(self.span_f1.get_metric(reset))
        return metrics
