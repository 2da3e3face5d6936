"""`Vocabulary`: the string <-> index maps of words, characters and labels, one per namespace.

A namespace is a named map such as "tokens" (words), "characters", "labels" (the `tags` of
the instances), "upos", "xpos" or "deprels". Two kinds exist:

- padded namespaces (words, characters) reserve index 0 for `@@PADDING@@` and index 1 for
  `@@UNKNOWN@@`; a string never seen maps to the unknown index;
- non-padded namespaces (labels) hold only real values, so index i is the i-th label a model
  predicts; a string never seen is an error (`KeyError`).

On disk (`save_to_files` / `from_files`) a vocabulary is a directory with one UTF-8 file per
namespace, `<namespace>.txt`, holding one token per line in index order (the reserved tokens
included), and `non_padded_namespaces.txt` listing the non-padded namespace patterns.

In a config, the `vocabulary` block is the keyword arguments of `Vocabulary.from_instances`,
e.g. `{"min_count": {"tokens": 2}}`; `{"type": "from_files", "directory": ...}` loads a saved
one instead.
"""

import re
from collections import Counter
from collections.abc import Iterable
from itertools import chain
from os import PathLike
from pathlib import Path

from tango.common import Registrable

from structkd_plugin.data.dataset_reader import Instance

PADDING_TOKEN = "@@PADDING@@"
UNKNOWN_TOKEN = "@@UNKNOWN@@"
DEFAULT_NON_PADDED_NAMESPACES = ("*labels", "*tags", "upos", "xpos", "deprels")
NON_PADDED_NAMESPACES_FILE = "non_padded_namespaces.txt"

# The namespace `from_instances` fills from each instance key ("characters" comes from "words").
NAMESPACE_OF_KEY = {"words": "tokens", "tags": "labels", "upos": "upos", "xpos": "xpos", "deprels": "deprels"}
COUNTED_NAMESPACES = ("tokens", "characters", "labels", "upos", "xpos", "deprels")

# Namespaces become file names, so they are restricted to characters safe in any file system.
_NAMESPACE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class Vocabulary(Registrable):
    """Maps between strings and indices, separately in each namespace.

    # Parameters

    non_padded_namespaces : `Iterable[str]`
        The namespaces without padding and unknown tokens. An entry `"*suffix"` matches every
        namespace ending in `suffix`; any other entry matches the namespace of that exact name.
        Defaults to `("*labels", "*tags", "upos", "xpos", "deprels")`.

    The vocabulary starts empty; fill it with `add_token_to_namespace`, or build it with
    `from_instances` or `from_files`.
    """

    default_implementation = "from_instances"

    def __init__(self, non_padded_namespaces: Iterable[str] = DEFAULT_NON_PADDED_NAMESPACES) -> None:
        self.non_padded_namespaces = tuple(non_padded_namespaces)
        self._index_to_token: dict[str, list[str]] = {}
        self._token_to_index: dict[str, dict[str, int]] = {}

    @classmethod
    def from_instances(
        cls,
        instances: Iterable[Instance],
        min_count: dict[str, int] | None = None,
        non_padded_namespaces: Iterable[str] = DEFAULT_NON_PADDED_NAMESPACES,
        pretrained_files: dict[str, str] | None = None,
    ) -> "Vocabulary":
        """Counts the strings of `instances` and keeps the frequent ones.

        Counted: `words` into "tokens", their characters into "characters", `tags` into
        "labels", and `upos`, `xpos`, `deprels` into namespaces of those names. Within a
        namespace, indices follow decreasing frequency (ties in string order), after the
        reserved tokens of a padded namespace.

        # Parameters

        instances : `Iterable[Instance]`
            Read once (a reader's generator will do).
        min_count : `dict[str, int]`, optional
            `{namespace: n}`: in that (padded) namespace, strings seen fewer than `n` times are
            left out (they will map to `@@UNKNOWN@@`).
        non_padded_namespaces : `Iterable[str]`
            As in the constructor.
        pretrained_files : `dict[str, str]`, optional
            `{namespace: path}` of an embedding file in GloVe / word2vec text format. This only
            *extends* what `min_count` keeps: a string seen in the instances is kept when the
            file has a vector for it, however rare it is. Strings of the file that the
            instances never use are not added.
        """
        min_count = dict(min_count or {})
        pretrained_files = dict(pretrained_files or {})
        vocabulary = cls(non_padded_namespaces)
        for option, namespaces in (("min_count", min_count), ("pretrained_files", pretrained_files)):
            for namespace in namespaces:
                if namespace not in COUNTED_NAMESPACES:
                    raise ValueError(f"{option} names {namespace!r}; from_instances does not fill it")
                if not vocabulary.is_padded(namespace):
                    raise ValueError(f"{option} cannot apply to the non-padded namespace {namespace!r} (labels)")

        counts = {namespace: Counter() for namespace in COUNTED_NAMESPACES}
        for instance in instances:
            for key, namespace in NAMESPACE_OF_KEY.items():
                if key in instance:
                    counts[namespace].update(instance[key])
            counts["characters"].update(chain.from_iterable(instance["words"]))

        for namespace, counter in counts.items():
            if not counter:
                continue
            pretrained_words = set()
            if namespace in pretrained_files:
                pretrained_words = _embedding_file_words(pretrained_files[namespace])
            threshold = min_count.get(namespace, 1)
            for token, count in sorted(counter.items(), key=lambda item: (-item[1], item[0])):
                if count >= threshold or token in pretrained_words:
                    vocabulary.add_token_to_namespace(token, namespace)
        return vocabulary

    @classmethod
    def from_files(cls, directory: str | PathLike) -> "Vocabulary":
        """Loads a vocabulary written by `save_to_files`."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no vocabulary directory there")
        patterns = _read_lines(directory / NON_PADDED_NAMESPACES_FILE)
        vocabulary = cls(patterns)
        for path in sorted(directory.glob("*.txt")):
            if path.name == NON_PADDED_NAMESPACES_FILE:
                continue
            namespace = path.stem
            tokens = _read_lines(path)
            if vocabulary.is_padded(namespace) and tokens[:2] != [PADDING_TOKEN, UNKNOWN_TOKEN]:
                raise ValueError(f"{path}: a padded namespace must start with {PADDING_TOKEN} and {UNKNOWN_TOKEN}")
            repeated = [token for token, count in Counter(tokens).items() if count > 1]
            if repeated:
                raise ValueError(f"{path}: tokens listed more than once: {repeated[:5]}")
            vocabulary._new_namespace(namespace)
            for token in tokens:
                vocabulary.add_token_to_namespace(token, namespace)
        return vocabulary

    def save_to_files(self, directory: str | PathLike) -> None:
        """Writes the vocabulary into `directory` (created if needed), as `from_files` reads it."""
        for namespace in self._index_to_token:
            if not _NAMESPACE_NAME.fullmatch(namespace) or namespace == Path(NON_PADDED_NAMESPACES_FILE).stem:
                raise ValueError(f"namespace {namespace!r} cannot be saved: a file name needs [A-Za-z0-9_-]+")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _write_lines(directory / NON_PADDED_NAMESPACES_FILE, self.non_padded_namespaces)
        for namespace, tokens in self._index_to_token.items():
            _write_lines(directory / f"{namespace}.txt", tokens)

    def is_padded(self, namespace: str) -> bool:
        """Whether `namespace` reserves index 0 for padding and 1 for unknown strings."""
        for pattern in self.non_padded_namespaces:
            if namespace.endswith(pattern[1:]) if pattern.startswith("*") else namespace == pattern:
                return False
        return True

    def add_token_to_namespace(self, token: str, namespace: str = "tokens") -> int:
        """Adds `token` to `namespace` (creating the namespace if needed) unless it is already
        there, and returns its index."""
        if not isinstance(token, str) or "\n" in token:
            raise ValueError(f"vocabulary entries are strings without newlines, not {token!r}")
        if namespace not in self._token_to_index:
            self._new_namespace(namespace)
        token_to_index = self._token_to_index[namespace]
        if token not in token_to_index:
            token_to_index[token] = len(token_to_index)
            self._index_to_token[namespace].append(token)
        return token_to_index[token]

    def get_token_index(self, token: str, namespace: str = "tokens") -> int:
        """The index of `token`; in a padded namespace, an unseen token gets the index of
        `@@UNKNOWN@@` (1). Raises `KeyError` for an unseen token of a non-padded namespace."""
        index = self._token_to_index.get(namespace, {}).get(token)
        if index is not None:
            return index
        if self.is_padded(namespace):
            return 1
        raise KeyError(f"{token!r} is not in the non-padded namespace {namespace!r} (which has no unknown token)")

    def get_token_from_index(self, index: int, namespace: str = "tokens") -> str:
        """The token at `index`; raises `KeyError` when there is none."""
        tokens = self._tokens(namespace)
        if not 0 <= index < len(tokens):
            raise KeyError(f"no index {index} in namespace {namespace!r}, which has {len(tokens)} entries")
        return tokens[index]

    def get_vocab_size(self, namespace: str = "tokens") -> int:
        """The number of indices of `namespace`, reserved ones included."""
        return len(self._tokens(namespace))

    def get_index_to_token_vocabulary(self, namespace: str = "tokens") -> dict[int, str]:
        """A new `{index: token}` dict of `namespace`, reserved tokens included."""
        return dict(enumerate(self._tokens(namespace)))

    def get_namespaces(self) -> list[str]:
        """The namespaces that hold entries, in creation order."""
        return list(self._index_to_token)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{namespace}: {len(tokens)}" for namespace, tokens in self._index_to_token.items())
        return f"Vocabulary({sizes})"

    def _tokens(self, namespace: str) -> list[str]:
        """The tokens of `namespace` in index order; a namespace never filled reads as holding
        only its reserved tokens (without being created)."""
        if namespace in self._index_to_token:
            return self._index_to_token[namespace]
        return [PADDING_TOKEN, UNKNOWN_TOKEN] if self.is_padded(namespace) else []

    def _new_namespace(self, namespace: str) -> None:
        reserved = [PADDING_TOKEN, UNKNOWN_TOKEN] if self.is_padded(namespace) else []
        self._index_to_token[namespace] = list(reserved)
        self._token_to_index[namespace] = {token: index for index, token in enumerate(reserved)}


Vocabulary.register("from_instances", constructor="from_instances")(Vocabulary)
Vocabulary.register("from_files", constructor="from_files")(Vocabulary)
Vocabulary.register("empty")(Vocabulary)


def _embedding_file_words(path: str | PathLike) -> set[str]:
    """The words of a GloVe / word2vec text file: each line is a word and its vector, separated
    by spaces; a word2vec header line (`<count> <dimension>`) is skipped."""
    words = set()
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            fields = line.split(" ", 2)
            if line_number == 1 and len(fields) == 2 and all(field.strip().isdigit() for field in fields):
                continue
            words.add(fields[0])
    return words


def _write_lines(path: Path, tokens: Iterable[str]) -> None:
    path.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8", newline="\n")


def _read_lines(path: Path) -> list[str]:
    # Split on "\n" only: str.splitlines would also cut tokens at "\x85" or "\u2028".
    return path.read_bytes().decode("utf-8").split("\n")[:-1]
