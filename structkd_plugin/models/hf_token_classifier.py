"""`hf_token_classifier`: a fine-tuned Hugging Face token classifier, as it is, as a teacher.

Users often have a transformer fine-tuned for NER or tagging (`AutoModelForTokenClassification`,
saved with `save_pretrained`) and want a fast CPU student of it. This model wraps such a local
directory, unchanged and untrained: it is never trained here, only run.

Words are split into subwords by the model's own tokenizer (`is_split_into_words`); each word's
label scores are the logits of its **first subword** (the usual convention of token
classification; the other subwords' logits are ignored). A word whose first subword was cut off by
the model's maximum length gets all-zero scores (a uniform distribution). The labels are the
config's `id2label`; a teacher's labels are matched to a student's by name, across BIO, IOB1 and
BIOES where the tag means the same (see `label_schemes.marginal_conversion_matrix`).
"""

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

from structkd_plugin.data import Vocabulary
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.scores import TaggerScores

__all__ = ["HuggingFaceTokenClassifier", "is_token_classifier_directory"]


def is_token_classifier_directory(path: str | Path) -> bool:
    """Whether `path` is a directory holding a Hugging Face token classifier (its `config.json`
    names a `...ForTokenClassification` architecture)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        return False
    architectures = AutoConfig.from_pretrained(path).architectures or []
    return any(name.endswith("ForTokenClassification") for name in architectures)


@Model.register("hf_token_classifier")
class HuggingFaceTokenClassifier(Model):
    """A local `AutoModelForTokenClassification` directory, run as a (softmax) tagger.

    # Parameters

    vocab : `Vocabulary`
        Unused (the model brings its tokenizer and labels); any vocabulary.
    model_path : `str`
        The directory `save_pretrained` wrote (model and tokenizer).
    label_encoding : `str`, optional
        The span scheme of its labels ("BIO", "IOB1", "BIOES"), when they encode spans; by default
        BIOES if a label starts with E- or S-, BIO if one starts with B- or I-, else none.
    """

    def __init__(self, vocab: Vocabulary, model_path: str, label_encoding: str | None = None) -> None:
        super().__init__(vocab)
        self.model_path = str(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.transformer = AutoModelForTokenClassification.from_pretrained(self.model_path)
        self.transformer.requires_grad_(False)
        id2label = self.transformer.config.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        if label_encoding is None:
            prefixes = {label[:2] for label in self.labels}
            label_encoding = "BIOES" if prefixes & {"E-", "S-"} else "BIO" if prefixes & {"B-", "I-"} else None
        self.label_encoding = label_encoding

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        words = [instance["words"] for instance in instances]
        encoded = self.tokenizer(words, is_split_into_words=True, truncation=True, padding=True, return_tensors="pt")
        longest = max(len(sentence) for sentence in words)
        # first_piece[b, i]: the position of word i's first subword (0 when it was cut off or padding).
        first_piece = torch.zeros(len(words), longest, dtype=torch.long)
        mask = torch.zeros(len(words), longest, dtype=torch.bool)
        for b, sentence in enumerate(words):
            mask[b, : len(sentence)] = True
            seen = set()
            for position, word in enumerate(encoded.word_ids(b)):
                if word is not None and word not in seen:
                    seen.add(word)
                    first_piece[b, word] = position
        kept = first_piece > 0
        pieces = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
        return {"pieces": pieces, "first_piece": first_piece, "kept": kept, "mask": mask, "instances": instances}

    def forward(self, pieces: dict[str, torch.Tensor], first_piece: torch.Tensor, kept: torch.Tensor, mask: torch.Tensor, instances: list) -> dict[str, torch.Tensor]:
        logits = self.transformer(**pieces).logits  # [B, pieces, L]
        emissions = logits.gather(1, first_piece[..., None].expand(-1, -1, logits.size(-1)))
        emissions = emissions.masked_fill(~kept[..., None], 0.0)
        return {"emissions": emissions, "mask": mask, "predicted_tags": emissions.argmax(-1).masked_fill(~mask, 0)}

    def make_predictions(self, output: dict[str, torch.Tensor], batch: dict[str, Any]) -> list[dict]:
        lengths = batch["mask"].sum(-1).tolist()
        return [
            {"words": instance["words"], "tags": [self.labels[i] for i in row[:length]]}
            for instance, row, length in zip(batch["instances"], output["predicted_tags"].tolist(), lengths)
        ]

    def scores(self, output: dict[str, Any]) -> TaggerScores:
        return TaggerScores(output["emissions"], output["mask"], labels=tuple(self.labels), label_encoding=self.label_encoding)
