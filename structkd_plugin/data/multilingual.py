"""`multilingual`: one file per language, each sentence stamped with its language."""

import json
from collections.abc import Iterator
from os import PathLike

from structkd_plugin.data.dataset_reader import DataError, DatasetReader, Instance


@DatasetReader.register("multilingual")
class MultilingualDatasetReader(DatasetReader):
    """Reads several files, one per language, and sets each instance's `language` field (which the
    `distillation` model's `teacher_key` uses to pick a monolingual teacher per sentence).

    The data path is a JSON object from language to file, as for AllenNLP's interleaving reader:
    `train_data_path: std.manifestJsonMinified({pt: "pt-train.iob2", da: "da-train.iob2"})`.

    # Parameters

    reader : `DatasetReader`
        Reads every language's file, unless `readers` names another one for it.
    readers : `dict[str, DatasetReader]`, optional
        A reader per language, where they differ.
    max_instances : `int`, optional
        At most this many instances in all.
    """

    def __init__(
        self, reader: DatasetReader, readers: dict[str, DatasetReader] | None = None, max_instances: int | None = None
    ) -> None:
        super().__init__(max_instances)
        self.reader = reader
        self.readers = readers or {}

    def read(self, file_path: str | PathLike) -> Iterator[Instance]:
        try:
            paths = json.loads(str(file_path))
        except json.JSONDecodeError:
            paths = None
        if not isinstance(paths, dict) or not all(isinstance(path, str) for path in paths.values()):
            raise DataError(
                str(file_path), None, 'the multilingual reader needs a JSON object from language to file, like {"pt": "pt.iob2"}'
            )
        return self._at_most_max_instances(self._read_all(paths))

    def _read_all(self, paths: dict[str, str]) -> Iterator[Instance]:
        for language, path in paths.items():
            for instance in self.readers.get(language, self.reader).read(path):
                instance["language"] = language
                yield instance
