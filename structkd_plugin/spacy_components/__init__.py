"""spaCy pipeline components that run structkd models, so that a trained (or distilled) model
ships as a spaCy pipeline: `structkd export-spacy model.tar.gz out/ --lang en`, then
`spacy.load("out/")` in any environment where structkd is installed.

- `structkd_ner`: entities into `doc.ents` (a model whose predicted tags encode spans: its
  `label_encoding`, e.g. a CRF tagger's or `span_ner`'s);
- `structkd_tagger`: tags into `token.tag_` or another attribute (a tagger);
- `structkd_parser`: `token.head` and `token.dep_` (a `DependencyParser`).

spaCy finds the factories through the `spacy_factories` entry points of setup.py; importing this
package registers them too. Each component keeps its model in its own folder of the pipeline.
"""

from structkd_plugin.models import DependencyParser, Model, SequenceTagger
from structkd_plugin.spacy_components.base import StructkdComponent
from structkd_plugin.spacy_components.ner import StructkdNer, make_ner, tags_spans
from structkd_plugin.spacy_components.parser import StructkdParser, make_parser
from structkd_plugin.spacy_components.tagger import StructkdTagger, make_tagger

__all__ = [
    "StructkdComponent",
    "StructkdNer",
    "StructkdParser",
    "StructkdTagger",
    "factory_for",
    "make_ner",
    "make_parser",
    "make_tagger",
]


def factory_for(model: Model) -> str | None:
    """The name of the component factory that runs `model`, or None when there is none."""
    if isinstance(model, DependencyParser):
        return "structkd_parser"
    if tags_spans(model):
        return "structkd_ner"
    if isinstance(model, SequenceTagger):
        return "structkd_tagger"
    return None
