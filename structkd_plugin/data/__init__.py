"""Data: instances, the registered dataset readers, the vocabulary and batching.

Importing this package registers the readers `conll2003`, `universal_ner`,
`universal_dependencies`, `plain_text` and `multilingual` with `DatasetReader`.
"""

from structkd_plugin.data.batching import TokenBudgetBatchSampler, move_to_device, pad_sequences
from structkd_plugin.data.conll2003 import Conll2003DatasetReader
from structkd_plugin.data.dataset_reader import (
    INPUT_LABEL_KEYS,
    LABEL_KEYS,
    DataError,
    DatasetReader,
    Instance,
    without_labels,
)
from structkd_plugin.data.multilingual import MultilingualDatasetReader
from structkd_plugin.data.plain_text import PlainTextDatasetReader
from structkd_plugin.data.universal_dependencies import UniversalDependenciesDatasetReader
from structkd_plugin.data.universal_ner import UniversalNerDatasetReader
from structkd_plugin.data.vocabulary import PADDING_TOKEN, UNKNOWN_TOKEN, Vocabulary

__all__ = [
    "PADDING_TOKEN",
    "UNKNOWN_TOKEN",
    "Conll2003DatasetReader",
    "DataError",
    "DatasetReader",
    "Instance",
    "INPUT_LABEL_KEYS",
    "LABEL_KEYS",
    "MultilingualDatasetReader",
    "PlainTextDatasetReader",
    "TokenBudgetBatchSampler",
    "UniversalDependenciesDatasetReader",
    "UniversalNerDatasetReader",
    "Vocabulary",
    "move_to_device",
    "pad_sequences",
    "without_labels",
]
