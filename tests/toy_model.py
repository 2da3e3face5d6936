"""A tiny registered model for the tests of training, archives and the CLI: "toy_tagger".

Word embeddings, dropout and a linear layer give per-token scores over the "labels" namespace; the
loss is the cross-entropy of an independent softmax per token. It has the metrics of a real
tagger (token accuracy, span F1) and predicts `words` and `tags`.

Load it in a config run with `--include-package tests.toy_model` (from the repository root).

To test recovery from a killed run, the environment variable `TOY_TAGGER_EXIT_AFTER_BATCHES=N`
makes the process exit abruptly (`os._exit`, no cleanup) when the model is about to train on its
(N+1)-th batch.
"""

import json
import os
from pathlib import Path
from typing import Any

import torch

from structkd_plugin.data import Vocabulary, pad_sequences
from structkd_plugin.models.metrics import SpanF1, TokenAccuracy
from structkd_plugin.models.model import Instance, Model

REPOSITORY = Path(__file__).resolve().parents[1]
FIXTURES = REPOSITORY / "fixtures"
EXIT_VARIABLE = "TOY_TAGGER_EXIT_AFTER_BATCHES"
EXIT_CODE = 17


@Model.register("toy_tagger")
class ToyTagger(Model):
    """Embedding -> dropout -> linear -> softmax per token.

    # Parameters

    vocab : `Vocabulary`
    embedding_dim : `int`
        Size of the word embeddings.
    dropout : `float`
        Dropout on the embeddings (so that training draws random numbers).
    label_encoding : `str`, optional
        Tag scheme for span F1 ("BIO", ...); `None` leaves span F1 out.
    """

    def __init__(
        self, vocab: Vocabulary, embedding_dim: int = 8, dropout: float = 0.0, label_encoding: str | None = "BIO"
    ) -> None:
        super().__init__(vocab)
        self.embedding = torch.nn.Embedding(vocab.get_vocab_size("tokens"), embedding_dim, padding_idx=0)
        self.dropout = torch.nn.Dropout(dropout)
        self.projection = torch.nn.Linear(embedding_dim, vocab.get_vocab_size("labels"))
        self.accuracy = TokenAccuracy()
        self.span_f1 = SpanF1(label_encoding) if label_encoding else None
        self.exit_after_batches = int(os.environ.get(EXIT_VARIABLE, "-1"))
        self.training_batches = 0

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        words, mask = pad_sequences(
            [[self.vocab.get_token_index(word, "tokens") for word in instance["words"]] for instance in instances]
        )
        batch = {"words": words, "mask": mask, "instances": instances}
        if all("tags" in instance for instance in instances):
            batch["tags"], _ = pad_sequences(
                [[self.vocab.get_token_index(tag, "labels") for tag in instance["tags"]] for instance in instances]
            )
        return batch

    def forward(
        self, words: torch.Tensor, mask: torch.Tensor, instances: list[Instance], tags: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        if self.training:
            if self.training_batches == self.exit_after_batches:
                os._exit(EXIT_CODE)
            self.training_batches += 1
        logits = self.projection(self.dropout(self.embedding(words)))
        output = {"logits": logits, "mask": mask}
        if tags is not None:
            output["loss"] = torch.nn.functional.cross_entropy(logits[mask], tags[mask])
            predicted = logits.argmax(-1)
            self.accuracy(predicted, tags, mask)
            if self.span_f1 is not None:
                self.span_f1(self._tag_strings(predicted, mask), self._tag_strings(tags, mask))
        return output

    def make_predictions(self, output: dict[str, torch.Tensor], batch: dict[str, Any]) -> list[dict]:
        tags = self._tag_strings(output["logits"].argmax(-1), output["mask"])
        return [
            {"words": instance["words"], "tags": sentence_tags}
            for instance, sentence_tags in zip(batch["instances"], tags)
        ]

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        metrics = self.accuracy.get_metric(reset)
        if self.span_f1 is not None:
            span_metrics = self.span_f1.get_metric(reset)
            metrics.update({name: value for name, value in span_metrics.items() if name.endswith("-overall")})
        return metrics

    def _tag_strings(self, indices: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
        return [
            [self.vocab.get_token_from_index(int(index), "labels") for index in row[: int(length)]]
            for row, length in zip(indices.cpu(), mask.sum(-1).cpu())
        ]


def toy_config(**changes: Any) -> dict[str, Any]:
    """A training config for "toy_tagger" on the CoNLL-2003 fixture (also its validation and test
    data): a few epochs of 8 batches, with dropout so that training uses random numbers.
    Top-level keys in `changes` replace the defaults."""
    data = str(FIXTURES / "conll2003_ner.txt")
    config = {
        "dataset_reader": {"type": "conll2003"},
        "train_data_path": data,
        "validation_data_path": data,
        "test_data_path": data,
        "evaluate_on_test": True,
        "model": {"type": "toy_tagger", "embedding_dim": 8, "dropout": 0.3},
        "data_loader": {"batch_size": 4},
        "trainer": {
            "optimizer": {"type": "adam", "lr": 0.05},
            "learning_rate_scheduler": {"type": "step", "step_size": 1, "gamma": 0.9},
            "num_epochs": 3,
            "validation_metric": "+f1-measure-overall",
        },
        "random_seed": 1,
    }
    config.update(changes)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Writes `config` as a JSON (hence Jsonnet) file at `path`; returns `path`."""
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path
