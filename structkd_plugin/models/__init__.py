"""Registered models. Importing this package registers them all."""

from structkd_plugin.models.biaffine_parser import BiaffineParser
from structkd_plugin.models.crf_tagger import CrfTagger
from structkd_plugin.models.dependency_parser import DependencyParser
from structkd_plugin.models.dependency_sequence_labeler import DependencySequenceLabeler
from structkd_plugin.models.model import Model
from structkd_plugin.models.second_order_parser import SecondOrderParser
from structkd_plugin.models.softmax_tagger import SoftmaxTagger
from structkd_plugin.models.span_ner import SpanNer
from structkd_plugin.models.tagger import SequenceTagger

__all__ = [
    "BiaffineParser",
    "CrfTagger",
    "DependencyParser",
    "DependencySequenceLabeler",
    "Model",
    "SecondOrderParser",
    "SequenceTagger",
    "SoftmaxTagger",
    "SpanNer",
]
