"""`span_ner`: named entities as labeled spans (Yu et al. 2020, "Named Entity Recognition as
Dependency Parsing"), trained with the exact likelihood of the gold set of spans.

Each token's encoding goes through a start and an end feed-forward layer; a biaffine product of
the start vector of token i and the end vector of token j scores the span i..j for every entity
type. A set of non-overlapping spans scores the sum of its spans (tokens outside every span score
0), and `structures.SpanSegmentation` (semi-Markov) normalizes over all such sets: the loss is
log Z - score(gold spans), and the prediction is the best set. Spans are read from, and written
back as, tags in `label_encoding`, so readers, metrics (span F1) and spaCy export are the taggers'.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from allennlp_light import Seq2SeqEncoder
from allennlp_light.modules.seq2seq_encoders import PassThroughEncoder
from tango.common import Lazy

from structkd_plugin.data import Vocabulary, pad_sequences
from structkd_plugin.models.metrics import SpanF1
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.scores import TagMarginalScores
from structkd_plugin.modules import TextEmbedder
from structkd_plugin.modules.biaffine import Biaffine
from structkd_plugin.structures import SpanSegmentation
from structkd_plugin.structures.label_schemes import spans_from_tags, tags_from_spans


@dataclass(kw_only=True)
class SpanScores(TagMarginalScores):
    """A span scorer's scores for one batch (`structures.SpanSegmentation`'s conventions), what
    `span_ner` gives distillation: a teacher whose tag marginals are exact (case 4).

    `span_scores [B, n, n, R]`: `[b, i, j, r]` scores the span of tokens i..j (inclusive) labeled
    `labels[r]`, relative to leaving its tokens outside every span; `max_width` the longest span
    (None: any).
    """

    span_scores: torch.Tensor
    max_width: int | None = None

    description = "span scorer"

    def distribution(self, temperature: float = 1.0) -> SpanSegmentation:
        """The distribution over sets of non-overlapping spans with all scores / T."""
        return SpanSegmentation(self.span_scores / temperature, self.mask, self.max_width)

    def tag_marginals(self, scheme: str, temperature: float = 1.0) -> tuple[torch.Tensor, list[str]]:
        return self.distribution(temperature).tag_marginals(scheme, list(self.labels))

    def pairwise_tag_marginals(self, scheme: str, temperature: float = 1.0) -> tuple[torch.Tensor, list[str]]:
        return self.distribution(temperature).pairwise_tag_marginals(scheme, list(self.labels))


@Model.register("span_ner")
class SpanNer(Model):
    """A biaffine span scorer over a text encoder.

    # Parameters

    vocab : `Vocabulary`
        Its `label_namespace` holds the tags the reader gives (e.g. `B-PER`); the entity types
        are read off them.
    text_embedder : `TextEmbedder`
        Words to vectors (word embeddings, characters, a transformer, ...).
    encoder : `Seq2SeqEncoder`, optional
        Contextualizes the embeddings (e.g. a BiLSTM); none by default.
    label_namespace : `str`
        The vocabulary namespace of the tags.
    label_encoding : `str`
        The tag scheme of the data and of the predictions: "BIO", "IOB1" or "BIOES".
    span_mlp_dim : `int`
        Size of the start and end vectors.
    max_width : `int`, optional
        The longest entity in tokens; longer spans are never predicted. Any width by default.
    dropout : `float`
        Dropout on the embeddings, the encoder's output and the start and end vectors.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        text_embedder: Lazy[TextEmbedder],
        encoder: Seq2SeqEncoder | None = None,
        label_namespace: str = "labels",
        label_encoding: str = "BIO",
        span_mlp_dim: int = 150,
        max_width: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(vocab)
        self.text_embedder = text_embedder.construct(vocab=vocab)
        self.encoder = encoder or PassThroughEncoder(self.text_embedder.get_output_dim())
        if self.encoder.get_input_dim() != self.text_embedder.get_output_dim():
            raise ValueError(
                f"the encoder expects inputs of size {self.encoder.get_input_dim()} but the text "
                f"embedder gives {self.text_embedder.get_output_dim()}"
            )
        tags = [vocab.get_token_from_index(i, label_namespace) for i in range(vocab.get_vocab_size(label_namespace))]
        # Entity types in the order their tags first appear in the vocabulary.
        self.labels = list(dict.fromkeys(tag[2:] for tag in tags if tag != "O"))
        if not self.labels:
            raise ValueError(f"the vocabulary namespace {label_namespace!r} holds no entity tags")
        self._label_index = {label: r for r, label in enumerate(self.labels)}
        self.label_encoding = label_encoding
        self.max_width = max_width
        hidden = self.encoder.get_output_dim()
        self.start_mlp = torch.nn.Sequential(torch.nn.Linear(hidden, span_mlp_dim), torch.nn.ReLU())
        self.end_mlp = torch.nn.Sequential(torch.nn.Linear(hidden, span_mlp_dim), torch.nn.ReLU())
        self.span_scorer = Biaffine(span_mlp_dim, len(self.labels))
        self.dropout = torch.nn.Dropout(dropout)
        self.span_f1 = SpanF1(label_encoding)

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        words = [instance["words"] for instance in instances]
        _, mask = pad_sequences([[1] * len(sentence) for sentence in words], 0)
        batch: dict[str, Any] = {"words": self.text_embedder.tensorize(words), "mask": mask, "instances": instances}
        if all("tags" in instance for instance in instances):
            batch["gold"] = True
        return batch

    def forward(self, words: dict[str, Any], mask: torch.Tensor, instances: list, gold: bool = False) -> dict[str, torch.Tensor]:
        encoded = self.dropout(self.encoder(self.dropout(self.text_embedder(words, mask)), mask))
        starts, ends = self.dropout(self.start_mlp(encoded)), self.dropout(self.end_mlp(encoded))
        span_scores = self.span_scorer(starts, ends)  # [B, n, n, R]
        segmentation = SpanSegmentation(span_scores, mask, self.max_width)
        predicted = segmentation.argmax()
        output = {"span_scores": span_scores, "mask": mask, "predicted_spans": predicted}
        if gold:
            gold_spans = [self._gold_spans(instance) for instance in instances]
            known = torch.tensor([spans is not None for spans in gold_spans], device=mask.device)
            output["loss"] = ((segmentation.log_partition() - self._score_of(span_scores, gold_spans)) * known).sum() / mask.size(0)
            lengths = mask.sum(-1).tolist()
            self.span_f1(self._tags(predicted, lengths), [instance["tags"] for instance in instances])
        return output

    def _gold_spans(self, instance: Instance) -> list[tuple[int, int, int]] | None:
        """The instance's spans as (start, end, label index); None when one has a type the model
        does not know (the sentence is then left out of the loss, and its spans count as missed)."""
        spans = spans_from_tags(instance["tags"], self.label_encoding)
        if any(label not in self._label_index for label, _, _ in spans):
            return None
        return [(first, last, self._label_index[label]) for label, first, last in spans]

    @staticmethod
    def _score_of(span_scores: torch.Tensor, gold_spans: list) -> torch.Tensor:
        """The score of each sentence's gold set of spans `[B]` (0 for None)."""
        index = [(b, first, last, r) for b, spans in enumerate(gold_spans) for first, last, r in spans or ()]
        total = span_scores.new_zeros(span_scores.size(0))
        if index:
            b, first, last, r = torch.tensor(index, device=span_scores.device).unbind(1)
            total = total.index_add(0, b, span_scores[b, first, last, r])
        return total

    def _tags(self, spans: list[list[tuple[int, int, int]]], lengths: list[int]) -> list[list[str]]:
        return [
            tags_from_spans([(self.labels[r], first, last) for first, last, r in sentence], length, self.label_encoding)
            for sentence, length in zip(spans, lengths)
        ]

    def make_predictions(self, output: dict[str, torch.Tensor], batch: dict[str, Any]) -> list[dict]:
        tags = self._tags(output["predicted_spans"], batch["mask"].sum(-1).tolist())
        return [{"words": instance["words"], "tags": sentence} for instance, sentence in zip(batch["instances"], tags)]

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        return self.span_f1.get_metric(reset)

    def scores(self, output: dict[str, Any]) -> SpanScores:
        return SpanScores(span_scores=output["span_scores"], mask=output["mask"], labels=tuple(self.labels), max_width=self.max_width)

    def unseen_gold_labels(self, instances: Iterable[Instance]) -> Counter[str]:
        return Counter(
            label
            for instance in instances
            for label, _, _ in spans_from_tags(instance.get("tags", []), self.label_encoding)
            if label not in self._label_index
        )
