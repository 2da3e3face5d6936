"""`structkd_ner`: the entities of a model that tags spans into `doc.ents`."""

import unicodedata
from typing import Optional

from spacy.language import Language
from spacy.tokens import Doc, Span

from structkd_plugin.models import DependencyParser, Model
from structkd_plugin.spacy_components.base import SegmentPrediction, StructkdComponent
from structkd_plugin.structures.label_schemes import spans_from_tags


def tags_spans(model: Model) -> bool:
    """Whether `model` predicts tags that encode spans (it has a `label_encoding`: BIO, IOB1 or
    BIOES), as a CRF or softmax NER tagger and `span_ner` do; a parser's labels are no spans."""
    return bool(getattr(model, "label_encoding", None)) and not isinstance(model, DependencyParser)


class StructkdNer(StructkdComponent):
    """Runs a model whose predicted tags encode spans (`tags_spans`), and sets `doc.ents` to the
    spans its tags decode to (conlleval's chunk rule, `spans_from_tags`), replacing the entities
    already there. Config keys: `batch_size`, `max_length` (see `StructkdComponent`)."""

    def model_problem(self, model: Model) -> str | None:
        if tags_spans(model):
            return None
        return f"it is a {type(model).__name__}, not a model whose tags encode spans (a label_encoding: BIO, IOB1 or BIOES)"

    def annotate(self, doc: Doc, segments: list[SegmentPrediction]) -> None:
        scheme = self.structkd_model.label_encoding
        entities = []
        for start, prediction in segments:
            for label, first, last in spans_from_tags(prediction["tags"], scheme):
                # Blank tokens are never part of an entity (spaCy's rule for whitespace): trimmed
                # from the edges, and an entity of blanks alone is dropped.
                first, last = start + first, start + last
                while first <= last and _is_blank(doc[first].text):
                    first += 1
                while last >= first and _is_blank(doc[last].text):
                    last -= 1
                if first <= last:
                    entities.append(Span(doc, first, last + 1, label=label))
        doc.set_ents(entities, default="outside")


def _is_blank(text: str) -> bool:
    """Whether a token shows nothing: whitespace and invisible format characters (a zero-width
    space, U+200B, is not whitespace to Python or spaCy, but no entity either)."""
    return all(character.isspace() or unicodedata.category(character) == "Cf" for character in text)


@Language.factory(
    "structkd_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={"batch_size": 32, "max_length": 256},
)
def make_ner(nlp: Language, name: str, batch_size: int, max_length: Optional[int]) -> StructkdNer:
    return StructkdNer(nlp, name, batch_size, max_length)
