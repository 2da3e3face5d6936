"""What the structkd spaCy components share: a model carried in the component's folder, the
segments of a doc the model reads, batched predictions on spaCy's device."""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch
from thinc.api import CupyOps, get_current_ops

from structkd_plugin.archival import Archive, load_model_directory, save_model_directory
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.predictions import predictions

# A segment's prediction: the offset of its first token in its doc, and `make_predictions`' dict.
SegmentPrediction = tuple[int, dict[str, Any]]


class StructkdComponent:
    """Base of the components (not a factory itself): runs a structkd model on docs.

    Config keys, shared by every component:

    - `batch_size` (int, default 32): segments per forward pass of the model. `nlp.pipe`'s own
      `batch_size` is how many docs are collected before their segments are predicted together.
    - `max_length` (int or null, default 256): the longest segment, in tokens, the model reads at
      once. The model reads each sentence of a doc that has sentence boundaries (from a
      `sentencizer`, `senter` or parser upstream), else the whole doc; a longer one is cut into
      consecutive windows of `max_length` tokens, each predicted on its own (an entity never
      crosses a window's edge, and each window is its own dependency tree). `null`: no limit
      (memory then grows with the longest sentence, quadratically for the parsers).

    The model comes from `use(archive)` (what `structkd export-spacy` calls) or from the
    component's folder (`from_disk`); the folder holds the archive's members unpacked:
    `config.json`, `weights.safetensors`, `vocabulary/` and `meta.json`, no pickle. The model
    follows spaCy's device: on the GPU when `spacy.prefer_gpu()`/`require_gpu()` made spaCy's
    ops `CupyOps`, else on the CPU.
    """

    def __init__(self, nlp: Language, name: str, batch_size: int, max_length: int | None) -> None:
        if batch_size < 1:
            raise ValueError(f"{name}: batch_size must be at least 1, not {batch_size}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"{name}: max_length must be at least 1 (or null for no limit), not {max_length}")
        self.name = name
        self.vocab = nlp.vocab
        self.batch_size = batch_size
        self.max_length = max_length
        self.archive: Archive | None = None

    def model_problem(self, model: Model) -> str | None:
        """Why this component cannot run `model`, or None when it can."""
        raise NotImplementedError

    def annotate(self, doc: Doc, segments: list[SegmentPrediction]) -> None:
        """Writes the predictions of all the segments of `doc` into it."""
        raise NotImplementedError

    def use(self, archive: Archive) -> None:
        """Makes the component run the model of a loaded archive."""
        problem = self.model_problem(archive.model)
        if problem is not None:
            raise ValueError(f"the spaCy component '{self.name}' cannot run this model: {problem}")
        self.archive = archive

    def loaded_archive(self) -> Archive:
        if self.archive is None:
            raise ValueError(
                f"the spaCy component '{self.name}' has no model: add it with `structkd export-spacy`, "
                "or load a pipeline that holds its folder"
            )
        return self.archive

    # Not named `model`: spaCy takes a component's `model` for a thinc model (and probes it with
    # hasattr, which an error other than AttributeError would break).
    @property
    def structkd_model(self) -> Model:
        return self.loaded_archive().model

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def segments(self, doc: Doc) -> list[Span]:
        """The spans of `doc` the model reads (see `max_length` in the class docstring)."""
        units = doc.sents if doc.has_annotation("SENT_START") else [doc[:]]
        size = self.max_length or max(len(doc), 1)
        return [doc[start : min(start + size, unit.end)] for unit in units for start in range(unit.start, unit.end, size)]

    def set_annotations(self, docs: list[Doc], predicted: list[list[SegmentPrediction]]) -> None:
        for doc, segments in zip(docs, predicted):
            self.annotate(doc, segments)

    def predict(self, docs: list[Doc]) -> list[list[SegmentPrediction]]:
        """The model's predictions for the segments of each doc."""
        self._follow_spacy_device()
        segments = [(i, span) for i, doc in enumerate(docs) for span in self.segments(doc)]
        instances = [_instance(span) for _, span in segments]
        # Segments of similar lengths batched together pad less; predictions do not depend on it.
        order = sorted(range(len(instances)), key=lambda k: len(instances[k]["words"]))
        try:
            predicted = list(predictions(self.structkd_model, [instances[k] for k in order], self.batch_size))
        except ValueError as error:
            if all("upos" in instance for instance in instances):
                raise
            raise ValueError(
                f"the spaCy component '{self.name}' runs a model that reads each word's UPOS, and some docs "
                f"have no token.pos_: put a component that sets it (a tagger) before '{self.name}' ({error})"
            ) from error
        per_doc: list[list[SegmentPrediction]] = [[] for _ in docs]
        for k, prediction in zip(order, predicted):
            doc_index, span = segments[k]
            per_doc[doc_index].append((span.start, prediction))
        return per_doc

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        save_model_directory(self.loaded_archive(), path)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "StructkdComponent":
        self.use(load_model_directory(path))
        return self

    def _follow_spacy_device(self) -> None:
        ops = get_current_ops()
        # thinc's require_gpu(gpu_id) also makes that GPU torch's current device.
        device = torch.device("cuda", torch.cuda.current_device()) if isinstance(ops, CupyOps) else torch.device("cpu")
        if self.structkd_model.device != device:
            self.structkd_model.to(device)


def _instance(span: Span) -> Instance:
    instance: Instance = {"words": [token.text for token in span]}
    # Models that read UPOS (a parser embedding it, rel_pos labels) take it from an upstream tagger.
    if span.doc.has_annotation("POS"):
        instance["upos"] = [token.pos_ for token in span]
    return instance
