"""`structkd_tagger`: a tagger's tags into a token attribute (`tag_` by default)."""

from typing import Optional

from spacy.language import Language
from spacy.tokens import Doc, Token

from structkd_plugin.models import Model, SequenceTagger
from structkd_plugin.spacy_components.base import SegmentPrediction, StructkdComponent

EXTENSION_PREFIX = "_."


class StructkdTagger(StructkdComponent):
    """Runs a tagger and writes each token's tag into `attribute`.

    Config keys: `batch_size`, `max_length` (see `StructkdComponent`) and `attribute` (str,
    default `"tag_"`): a writable string attribute of `Token` (`tag_`, `pos_` for UPOS tags,
    `lemma_`, ...) or `"_.NAME"`, a custom extension `Token._.NAME` (registered, default None,
    when it does not exist yet).
    """

    def __init__(self, nlp: Language, name: str, batch_size: int, max_length: int | None, attribute: str) -> None:
        super().__init__(nlp, name, batch_size, max_length)
        self.extension = attribute.removeprefix(EXTENSION_PREFIX) if attribute.startswith(EXTENSION_PREFIX) else None
        if self.extension is not None and not Token.has_extension(self.extension):
            Token.set_extension(self.extension, default=None)
        # Token's string attributes are the names ending in "_".
        if self.extension is None and not (attribute.endswith("_") and hasattr(Token, attribute)):
            raise ValueError(f"{name}: attribute must be a string attribute of Token (tag_, pos_, ...) or '_.NAME', not {attribute!r}")
        self.attribute = attribute

    def model_problem(self, model: Model) -> str | None:
        return None if isinstance(model, SequenceTagger) else f"it is a {type(model).__name__}, not a tagger"

    def annotate(self, doc: Doc, segments: list[SegmentPrediction]) -> None:
        for start, prediction in segments:
            for token, tag in zip(doc[start : start + len(prediction["tags"])], prediction["tags"]):
                if self.extension is None:
                    setattr(token, self.attribute, tag)
                else:
                    token._.set(self.extension, tag)


@Language.factory(
    "structkd_tagger",
    default_config={"batch_size": 32, "max_length": 256, "attribute": "tag_"},
)
def make_tagger(nlp: Language, name: str, batch_size: int, max_length: Optional[int], attribute: str) -> StructkdTagger:
    return StructkdTagger(nlp, name, batch_size, max_length, attribute)
