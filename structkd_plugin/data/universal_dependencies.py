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

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import conllu

from structkd_plugin.data.dataset_reader import DataError, DatasetReader, Instance, sentence_metadata
from structkd_plugin.structures.dependency_encodings import ENCODINGS, encode_tree

_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
COLUMN_COUNT = len(_COLUMNS)
ID_COLUMN, HEAD_COLUMN = 0, 6
# Prediction keys and the columns they fill.
_PREDICTED_COLUMNS = {"upos": 3, "xpos": 4, "heads": 6, "deprels": 7}
WORD_ID = re.compile(r"[1-9][0-9]*")
HEAD = re.compile(r"0|[1-9][0-9]*")
RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
# "0.1" is an empty node before the first word.
EMPTY_NODE_ID = re.compile(r"[0-9]+\.[1-9][0-9]*")
TAG_LABELS = ("upos", "xpos") + ENCODINGS

logger = logging.getLogger(__name__)


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
    invalid_trees : `str`
        What to do with a gold tree that is not a tree as UD requires (a word that is its own head,
        a cycle, no root, or more than one word attached to the root): "error" (the default)
        stops with an error naming the sentence and line; "skip" leaves the sentence out and the
        reader warns, once a file is read, how many it skipped.
    max_instances : `int`, optional
        See `DatasetReader`.
    """

    def __init__(
        self, tag_label: str | None = None, invalid_trees: str = "error", max_instances: int | None = None
    ) -> None:
        super().__init__(max_instances)
        if tag_label is not None and tag_label not in TAG_LABELS:
            raise ValueError(f"tag_label must be one of {TAG_LABELS} or None, not {tag_label!r}")
        if invalid_trees not in ("error", "skip"):
            raise ValueError(f"invalid_trees must be 'error' or 'skip', not {invalid_trees!r}")
        self.tag_label = tag_label
        self.invalid_trees = invalid_trees

    def _read(self, path: Path) -> Iterator[Instance]:
        def check_token_line(columns: list[str], line_number: int) -> None:
            if len(columns) != COLUMN_COUNT:
                problem = f"expected {COLUMN_COUNT} tab-separated columns, found {len(columns)}"
            else:
                problem = _token_line_problem(columns[ID_COLUMN], columns[HEAD_COLUMN])
            if problem:
                raise DataError(path, line_number, problem)

        lines = _TrackedLines(self._numbered_lines(path), check_token_line)
        skipped = 0
        for sentence in conllu.parse_incr(lines):
            # Multiword-token ranges and empty nodes have tuple IDs.
            if not sentence:
                problem = "comment lines with no token line after them (a sentence needs lines for its words)"
                raise DataError(path, lines.sentence_start, problem)
            words = [(token, line) for token, line in zip(sentence, lines.token_lines) if isinstance(token["id"], int)]
            try:
                yield self._instance(words, sentence.metadata, lines.sentence_start, path)
            except InvalidTreeError:
                if self.invalid_trees == "error":
                    raise
                skipped += 1
        if skipped:
            logger.warning("%s: skipped %d sentence(s) whose gold tree is invalid (invalid_trees: skip)", path, skipped)

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
            problem = tree_problem(heads)
            if problem is not None:
                sentence = f"sentence {comments['sent_id']!r}" if "sent_id" in comments else "the sentence"
                raise InvalidTreeError(path, first_line, f"{sentence} has an invalid gold tree: {problem}")
            instance["heads"] = heads
        if self.tag_label in ENCODINGS and "heads" in instance and "deprels" in instance:
            if self.tag_label == "rel_pos" and "upos" not in instance:
                raise DataError(path, first_line, "the rel_pos encoding of the tree needs the words' UPOS")
            instance["tags"] = encode_tree(instance["heads"], instance["deprels"], self.tag_label, instance.get("upos"))
        elif self.tag_label is not None and self.tag_label in instance:
            instance["tags"] = list(instance[self.tag_label])
        instance["metadata"] = sentence_metadata(path, first_line, comments)
        return instance


class InvalidTreeError(DataError):
    """A gold tree that breaks the rules of a dependency tree (see `tree_problem`)."""


def tree_problem(heads: list[int]) -> str | None:
    """What makes `heads` (word i's head at i - 1; 0 for the root) not a UD tree, or None: a word
    that is its own head, a cycle, no word or more than one word attached to the root."""
    roots = [word for word, head in enumerate(heads, start=1) if head == 0]
    if not roots:
        return "no word is attached to the root (HEAD 0)"
    if len(roots) > 1:
        return f"{len(roots)} words are attached to the root (HEAD 0): words {', '.join(map(str, roots))}"
    for word, head in enumerate(heads, start=1):
        if head == word:
            return f"word {word} is its own head"
    # Each word's chain of heads must reach the root; `reaches_root` remembers finished words.
    reaches_root = [False] * (len(heads) + 1)
    reaches_root[0] = True
    for word in range(1, len(heads) + 1):
        chain, in_chain, current = [], set(), word
        while not reaches_root[current]:
            if current in in_chain:
                cycle = chain[chain.index(current) :]
                return f"the words {' -> '.join(map(str, cycle + [current]))} form a cycle"
            chain.append(current)
            in_chain.add(current)
            current = heads[current - 1]
        for visited in chain:
            reaches_root[visited] = True
    return None


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


def sentence_blocks(path: str | PathLike) -> Iterator[list[str]]:
    """The lines of each sentence of a CoNLL-U file, as they are (comments, multiword tokens and
    empty nodes included), one list per sentence in file order: what the reader's instances come
    from, for writing predictions back into the file's own lines."""
    block: list[str] = []
    for _, line in DatasetReader._numbered_lines(Path(path)):
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def with_predicted_columns(block: list[str], prediction: dict[str, Any], tag_column: str | None = None) -> list[str]:
    """The lines of a CoNLL-U sentence with the columns a model predicted written into its words'
    lines (HEAD and DEPREL from `heads` and `deprels`, UPOS and XPOS from `upos` and `xpos`, and
    `tags` into `tag_column`); every other line and column is kept as it was."""
    predicted = {column: prediction[key] for key, column in _PREDICTED_COLUMNS.items() if key in prediction}
    if tag_column is not None and "tags" in prediction:
        predicted[_COLUMNS.index(tag_column)] = prediction["tags"]
    lines, position = [], 0
    for line in block:
        columns = line.split("\t")
        if not line.startswith("#") and WORD_ID.fullmatch(columns[ID_COLUMN]):
            for column, values in predicted.items():
                columns[column] = str(values[position])
            position += 1
            line = "\t".join(columns)
        lines.append(line)
    return lines
