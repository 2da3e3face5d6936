"""`structkd_parser`: a dependency parser's trees into `token.head` and `token.dep_`."""

from typing import Optional

import numpy
from spacy.attrs import DEP, HEAD
from spacy.language import Language
from spacy.tokens import Doc

from structkd_plugin.models import DependencyParser, Model
from structkd_plugin.spacy_components.base import SegmentPrediction, StructkdComponent


class StructkdParser(StructkdComponent):
    """Runs a dependency parser (any `DependencyParser`) and sets each token's `head` and `dep_`.

    Each segment (a sentence of the doc, or the whole doc when it has no sentence boundaries, cut
    into windows of `max_length` tokens) becomes one well-formed tree whose root is its own head
    and carries the predicted relation (e.g. `root`), so `doc.sents` afterwards are the segments:
    a `sentencizer` upstream keeps its boundaries. A model that reads UPOS (`pos_embedding_dim`,
    `rel_pos` labels) takes it from `token.pos_`, which a component upstream must set.

    Config keys: `batch_size`, `max_length` (see `StructkdComponent`).
    """

    def model_problem(self, model: Model) -> str | None:
        return None if isinstance(model, DependencyParser) else f"it is a {type(model).__name__}, not a dependency parser"

    def annotate(self, doc: Doc, segments: list[SegmentPrediction]) -> None:
        if not segments:  # an empty doc
            return
        # Doc arrays store HEAD as the offset to the head (uint64, negative offsets wrapped).
        array = numpy.zeros((len(doc), 2), dtype="uint64")
        for start, prediction in segments:
            heads = numpy.asarray(prediction["heads"], dtype="int64")  # 0 = root, words from 1
            positions = numpy.arange(len(heads))
            offsets = numpy.where(heads == 0, 0, heads - 1 - positions)
            array[start : start + len(heads), 0] = offsets.astype("uint64")
            array[start : start + len(heads), 1] = [self.vocab.strings.add(relation) for relation in prediction["deprels"]]
        doc.from_array([HEAD, DEP], array)


@Language.factory(
    "structkd_parser",
    assigns=["token.head", "token.dep", "token.is_sent_start", "doc.sents"],
    default_config={"batch_size": 32, "max_length": 256},
)
def make_parser(nlp: Language, name: str, batch_size: int, max_length: Optional[int]) -> StructkdParser:
    return StructkdParser(nlp, name, batch_size, max_length)
