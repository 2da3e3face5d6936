"""`SentenceStore`: a large dataset kept compactly in memory, one JSON string per instance.

A list of 237,000 instances (dicts of word lists and metadata) takes about 2 KB each in Python
objects; unlabeled text for distillation is read once and then only ever accessed a batch at a
time, so the store keeps each instance as its compact UTF-8 JSON (about 150 bytes for a sentence)
with the `metadata.source` path interned, plus an array of lengths for batching. Indexing
decodes the instance again, so memory grows with the text's bytes, not its Python objects.
"""

import json
from array import array
from collections.abc import Iterable, Iterator, Sequence

from structkd_plugin.data.dataset_reader import Instance


class SentenceStore(Sequence[Instance]):
    """A read-only sequence of instances, encoded compactly; `lengths[i]` is instance i's
    number of words."""

    def __init__(self, instances: Iterable[Instance]) -> None:
        self._encoded: list[bytes] = []
        self._sources: list[str] = []
        self._source_ids: dict[str, int] = {}
        self._source_of = array("i")
        self.lengths = array("i")
        for instance in instances:
            metadata = dict(instance.get("metadata", {}))
            source = metadata.pop("source", None)
            source_id = -1
            if source is not None:
                source_id = self._source_ids.setdefault(source, len(self._sources))
                if source_id == len(self._sources):
                    self._sources.append(source)
            self._source_of.append(source_id)
            self.lengths.append(len(instance["words"]))
            self._encoded.append(json.dumps({**instance, "metadata": metadata}, ensure_ascii=False, separators=(",", ":")).encode())

    def __len__(self) -> int:
        return len(self._encoded)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        instance = json.loads(self._encoded[index])
        source_id = self._source_of[index]
        if source_id >= 0:
            instance["metadata"]["source"] = self._sources[source_id]
        return instance

    def __iter__(self) -> Iterator[Instance]:
        return (self[i] for i in range(len(self)))


def instance_lengths(instances: Sequence[Instance]) -> Sequence[int]:
    """The number of words of each instance (read from a `SentenceStore` without decoding)."""
    if isinstance(instances, SentenceStore):
        return instances.lengths
    return [len(instance["words"]) for instance in instances]
