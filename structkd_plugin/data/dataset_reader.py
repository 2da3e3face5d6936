"""The `DatasetReader` base class, the `Instance` it yields and the `DataError` it raises.

A reader turns one file into a stream of `Instance`s: plain dicts with a `words` list and,
when the file has them, label lists (`tags`, `upos`, `xpos`, `heads`, `deprels`) and a
`metadata` dict (`source`, `line`, ...). docs/ARCHITECTURE.md lists the keys.

Readers stream: `read` returns a generator that parses one sentence at a time, so a large
file is never held in memory, and `max_instances` stops the parsing (and closes the file)
as soon as enough sentences have been read. Every problem in a file is reported as a
`DataError` whose message starts with `file:line:`.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from os import PathLike
from pathlib import Path
from typing import Any

from tango.common import Registrable

Instance = dict[str, Any]

LABEL_KEYS = ("tags", "upos", "xpos", "heads", "deprels")
"""The instance keys that hold gold annotation (see docs/ARCHITECTURE.md)."""


INPUT_LABEL_KEYS = ("upos",)
"""Annotation that some models read as input rather than predict (a rel_pos sequence-labeling
parser, a parser with PoS embeddings): kept with unlabeled text when present."""


def without_labels(instance: Instance, keep: tuple[str, ...] = ()) -> Instance:
    """The instance with its gold annotation removed (but the keys in `keep`): unlabeled text,
    words and metadata only."""
    return {key: value for key, value in instance.items() if key not in LABEL_KEYS or key in keep}


def sentence_metadata(path: Path, line: int, comments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `metadata` of an instance: the comments the file gives for the sentence (`sent_id`
    renamed `sentence_id`), then `source` (the file) and `line` (where the sentence starts)."""
    metadata = {"sentence_id" if key == "sent_id" else key: value for key, value in (comments or {}).items()}
    metadata.update(source=str(path), line=line)
    return metadata


class DataError(ValueError):
    """A data file that cannot be read: missing, badly formatted, or with impossible values.

    The message reads `"<path>:<line>: <problem>"` (or `"<path>: <problem>"` when the problem
    concerns the whole file); the parts are also kept as the attributes `path`, `line` (1-based,
    or `None`) and `problem`.
    """

    def __init__(self, path: str | PathLike, line: int | None, problem: str) -> None:
        location = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{location}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


class DatasetReader(Registrable):
    """Base class of the registered readers (`conll2003`, `universal_ner`,
    `universal_dependencies`, `plain_text`).

    Subclasses implement `_read(path)`, a generator of instances; this base checks that the file
    exists and applies `max_instances`.

    # Parameters

    max_instances : `int`, optional
        Read at most this many instances from each file (all of them when `None`). Handy for
        quick experiments and tests; the rest of the file is not even parsed.
    """

    def __init__(self, max_instances: int | None = None) -> None:
        if max_instances is not None and max_instances < 0:
            raise ValueError(f"max_instances must be >= 0 or None, not {max_instances}")
        self.max_instances = max_instances

    def read(self, file_path: str | PathLike) -> Iterator[Instance]:
        """A generator over the instances of `file_path`.

        Raises `DataError` at once when the file does not exist, and while iterating when the
        file turns out to be malformed.
        """
        path = Path(file_path)
        if not path.is_file():
            raise DataError(path, None, "no such file")
        return self._at_most_max_instances(self._read(path))

    def _read(self, path: Path) -> Iterator[Instance]:
        """Yields the instances of the file at `path`, in file order."""
        raise NotImplementedError

    def _at_most_max_instances(self, instances: Iterator[Instance]) -> Iterator[Instance]:
        # `closing` makes the reader's generator finish (closing its file) when we stop early.
        with closing(instances):
            if self.max_instances == 0:
                return
            for count, instance in enumerate(instances, start=1):
                yield instance
                if count == self.max_instances:
                    return

    @staticmethod
    def _numbered_lines(path: Path, bad_line: Callable[[int, str], None] | None = None) -> Iterator[tuple[int, str]]:
        """Yields `(line_number, text)` for each line of the UTF-8 file at `path`: numbers are
        1-based; the text has no line terminator (`\\n` or `\\r\\n`) and no byte-order mark.

        Lines are decoded one at a time so that invalid UTF-8 is reported with its line number: a
        `DataError`, or, given `bad_line`, a call `bad_line(line_number, problem)` and the line
        skipped.
        """
        with open(path, "rb") as file:
            for line_number, raw_line in enumerate(file, start=1):
                try:
                    line = raw_line.decode("utf-8")
                except UnicodeDecodeError as error:
                    problem = f"invalid UTF-8 ({error.reason})"
                    if bad_line is None:
                        raise DataError(path, line_number, problem) from None
                    bad_line(line_number, problem)
                    continue
                if line_number == 1:
                    line = line.removeprefix("\ufeff")
                yield line_number, line.rstrip("\r\n")
