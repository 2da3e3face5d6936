"""The `universal_dependencies` reader: CoNLL-U treebanks, parsed with the `conllu` package.

A CoNLL-U sentence is a block of `# key = value` comments and one line per token with ten
tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), then a blank line.
Besides the syntactic words (integer IDs 1..n) a block may hold

- multiword-token ranges (`3-4  don't  _ ...`): the surface token that words 3 and 4 come from;
- empty nodes (`8.1  reported  ...`): extra nodes of enhanced dependencies.

Neither is a word of the basic tree, so both are skipped: instances hold the words only, and
HEAD refers to word numbers (0 for the root).

`conllu.parse_incr` does the parsing. It reads the file through `_TrackedLines`, which numbers
the lines and checks each token line before `conllu` sees it, so every error names its line.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import conllu

from structkd_plugin.data.dataset_reader import DataError, DatasetReader, Instance, sentence_metadata
from structkd_plugin.structures.dependency_encodings import ENCODINGS, encode_tree

COLUMN_COUNT = 10
ID_COLUMN, HEAD_COLUMN = 0, 6
WORD_ID = re.compile(r"[1-9][0-9]*")
HEAD = re.compile(r"0|[1-9][0-9]*")
RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
# "0.1" is an empty node before the first word.
EMPTY_NODE_ID = re.compile(r"[0-9]+\.[1-9][0-9]*")
TAG_LABELS = ("upos", "xpos") + ENCODINGS


class _TrackedLines:
    """The lines of a CoNLL-U file, for `conllu.parse_incr`, remembering where the current
    sentence is.

    `conllu.parse_incr` yields a sentence as soon as it has read the blank line that ends it (or
    the end of the file), so while the caller handles that sentence, `sentence_start` is the
    line number of its first line and `token_lines` the line numbers of its token lines, in
    the order of `conllu`'s tokens.

    # Parameters

    numbered_lines : `Iterable[tuple[int, str]]`
        `(line_number, text)` pairs, text without line terminator.
    check_token_line : `Callable[[list[str], int], None]`
        Called with the columns and the line number of each token line; raises on bad lines.
    """

    def __init__(
        self, numbered_lines: Iterable[tuple[int, str]], check_token_line: Callable[[list[str], int], None]
    ) -> None:
        self._numbered_lines = numbered_lines
        self._check_token_line = check_token_line
        self.sentence_start = 0
        self.token_lines: list[int] = []

    def __iter__(self) -> Iterator[str]:
        in_sentence = False
        for line_number, line in self._numbered_lines:
            if not line.strip():
                in_sentence = False
            else:
                if not in_sentence:
                    in_sentence = True
                    self.sentence_start = line_number
                    self.token_lines = []
                if not line.startswith("#"):
                    self._check_token_line(line.split("\t"), line_number)
                    self.token_lines.append(line_number)
            yield line + "\n"

    def read(self) -> str:
        """The rest of the file (`conllu.parse_incr` insists on a `read` method, but iterates)."""
        return "".join(self)


@DatasetReader.register("universal_dependencies")
class UniversalDependenciesDatasetReader(DatasetReader):
    """Reads CoNLL-U files into instances with `words`, `upos`, `xpos`, `heads`, `deprels`,
    optionally `tags`, and `metadata`: `source`, `line` (the sentence's first line),
    `sentence_id` (from `# sent_id`), `text`, and the other comments as `conllu` parses them.

    A column that is `_` for every word of a sentence is not annotated there, so its key is
    left out (e.g. `xpos` in treebanks without language-specific tags, or `heads` and
    `deprels` in unparsed text). In a column annotated for some words, `_` stays as the label
    `"_"`, except in HEAD: a tree with words missing their head is an error.

    # Parameters

    tag_label : `str`, optional
        Copies this column ("upos" or "xpos") into `tags` as well, for taggers; or writes there
        the tree encoded as one label per word ("rel_offset" or "rel_pos", see
        `structures.dependency_encodings`), so that the vocabulary learns the labels of a
        `dependency_sequence_labeler`.
    max_instances : `int`, optional
        See `DatasetReader`.
    """

    def __init__(self, tag_label: str | None = None, max_instances: int | None = None) -> None:
        super().__init__(max_instances)
        if tag_label is not None and tag_label not in TAG_LABELS:
            raise ValueError(f"tag_label must be one of {TAG_LABELS} or None, not {tag_label!r}")
        self.tag_label = tag_label

    def _read(self, path: Path) -> Iterator[Instance]:
        def check_token_line(columns: list[str], line_number: int) -> None:
            if len(columns) != COLUMN_COUNT:
                problem = f"expected {COLUMN_COUNT} tab-separated columns, found {len(columns)}"
            else:
                problem = _token_line_problem(columns[ID_COLUMN], columns[HEAD_COLUMN])
            if problem:
                raise DataError(path, line_number, problem)

        lines = _TrackedLines(self._numbered_lines(path), check_token_line)
        for sentence in conllu.parse_incr(lines):
            # Multiword-token ranges and empty nodes have tuple IDs.
            words = [(token, line) for token, line in zip(sentence, lines.token_lines) if isinstance(token["id"], int)]
            yield self._instance(words, sentence.metadata, lines.sentence_start, path)

    def _instance(self, words: list[tuple[conllu.Token, int]], comments: dict, first_line: int, path: Path) -> Instance:
        """The instance of one sentence from its `(word, line_number)` pairs."""
        if not words:
            raise DataError(path, first_line, "sentence without words (only multiword tokens or empty nodes)")
        for position, (word, line_number) in enumerate(words, start=1):
            if word["id"] != position:
                raise DataError(path, line_number, f"word ID {word['id']} where {position} was expected")
        instance: Instance = {"words": [word["form"] for word, _ in words]}
        # `conllu` keeps UPOS and DEPREL "_" as "_" but turns XPOS "_" into None.
        for key in ("upos", "xpos", "deprel"):
            values = ["_" if word[key] is None else word[key] for word, _ in words]
            if any(value != "_" for value in values):
                instance["deprels" if key == "deprel" else key] = values
        heads = [word["head"] for word, _ in words]
        if any(head is not None for head in heads):
            for head, (_, line_number) in zip(heads, words):
                if head is None:
                    raise DataError(path, line_number, "HEAD is _ while other words of the sentence have a head")
                if head > len(words):
                    problem = f"HEAD {head} is not 0 or a word number of this {len(words)}-word sentence"
                    raise DataError(path, line_number, problem)
            instance["heads"] = heads
        if self.tag_label in ENCODINGS and "heads" in instance and "deprels" in instance:
            if self.tag_label == "rel_pos" and "upos" not in instance:
                raise DataError(path, first_line, "the rel_pos encoding of the tree needs the words' UPOS")
            instance["tags"] = encode_tree(instance["heads"], instance["deprels"], self.tag_label, instance.get("upos"))
        elif self.tag_label is not None and self.tag_label in instance:
            instance["tags"] = list(instance[self.tag_label])
        instance["metadata"] = sentence_metadata(path, first_line, comments)
        return instance


def _token_line_problem(token_id: str, head: str) -> str | None:
    """What is wrong with the ID and HEAD columns of a token line, or None."""
    word_range = RANGE_ID.fullmatch(token_id)
    if WORD_ID.fullmatch(token_id):
        if head != "_" and not HEAD.fullmatch(head):
            return f"HEAD {head!r} is not a word number"
    elif word_range:
        if int(word_range[1]) >= int(word_range[2]):
            return f"multiword-token range {token_id!r} does not span two words or more"
    elif not EMPTY_NODE_ID.fullmatch(token_id):
        return f"ID {token_id!r} is neither a word number, a range 'n-m' nor an empty node 'n.m'"
    return None
