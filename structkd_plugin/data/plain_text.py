"""The `plain_text` reader: unlabeled sentences, one per line, tokens separated by whitespace.

This is the input of prediction and the unlabeled text of distillation. Blank lines are
skipped.
"""

from collections.abc import Iterator
from pathlib import Path

from structkd_plugin.data.dataset_reader import DatasetReader, Instance, sentence_metadata


@DatasetReader.register("plain_text")
class PlainTextDatasetReader(DatasetReader):
    """Reads one sentence per line into instances with `words` and `metadata` (`source`, `line`).

    # Parameters

    max_instances : `int`, optional
        See `DatasetReader`.
    """

    def _read(self, path: Path) -> Iterator[Instance]:
        for line_number, line in self._numbered_lines(path):
            words = line.split()
            if words:
                yield {"words": words, "metadata": sentence_metadata(path, line_number)}
