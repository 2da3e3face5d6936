"""The `plain_text` reader: raw sentences, one per line, for prediction and for distillation on
unlabeled text.

Lines are tokenized either by whitespace (`tokenizer: "whitespace"`, for pre-tokenized text) or by
spaCy's rule-based tokenizer for a language (`tokenizer: "spacy"`, `lang: "en"`): the same tokens
an exported spaCy pipeline sees at inference. spaCy's whitespace tokens (runs of spaces) are not
words and are dropped.

The reader streams: one file after another, in batches of lines, never holding a file's
instances at once. A path may be a glob (`data/unlabeled/*.txt`), a comma-separated list or, in a
config, a list of paths.

What it does with lines it cannot use (the documented policy):

- blank lines are skipped silently: they separate nothing in this format;
- lines outside `min_words`..`max_words`, and repeats with `deduplicate`, are filters the user
  asked for: skipped, and counted in one warning per read;
- a bad line (invalid UTF-8, control characters as in a binary file, or more than
  `line_word_limit` words, which no sentence has) is an error naming the file and line, unless
  `skip_bad_lines` is set: then it is skipped and counted in the warning.
"""

import glob
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from itertools import islice
from os import PathLike
from pathlib import Path

from structkd_plugin.data.dataset_reader import DataError, DatasetReader, Instance, sentence_metadata

logger = logging.getLogger(__name__)

# C0 control characters other than tab (and DEL): a text line has none, a binary file many.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACY_BATCH = 1000


@DatasetReader.register("plain_text")
class PlainTextDatasetReader(DatasetReader):
    """Reads one sentence per line into instances with `words` and `metadata` (`source`, `line`).

    # Parameters

    tokenizer : `str`
        `"whitespace"` (split on whitespace: pre-tokenized text) or `"spacy"` (spaCy's rule-based
        tokenizer for `lang`).
    lang : `str`
        The spaCy language code for `tokenizer: "spacy"` (`"en"`, `"pt"`, ...).
    max_sentences : `int`, optional
        Stop after this many sentences in all (over all files, after the filters).
    min_words, max_words : `int`
        Keep sentences of this many words (`max_words` `None`: no upper bound); the others are
        skipped and counted.
    deduplicate : `bool`
        Skip a sentence whose words repeat an earlier sentence of the same read (counted).
    skip_bad_lines : `bool`
        Skip bad lines (see the module docstring) with a counted warning instead of failing.
    line_word_limit : `int`
        A line with more words than this is bad, not a long sentence (a file without line breaks).
    max_instances : `int`, optional
        See `DatasetReader` (per file).
    """

    def __init__(
        self,
        tokenizer: str = "whitespace",
        lang: str = "en",
        max_sentences: int | None = None,
        min_words: int = 1,
        max_words: int | None = None,
        deduplicate: bool = False,
        skip_bad_lines: bool = False,
        line_word_limit: int = 1000,
        max_instances: int | None = None,
    ) -> None:
        super().__init__(max_instances)
        if tokenizer not in ("whitespace", "spacy"):
            raise ValueError(f"tokenizer must be 'whitespace' or 'spacy', not {tokenizer!r}")
        if min_words < 1 or (max_words is not None and max_words < min_words):
            raise ValueError(f"need 1 <= min_words <= max_words, not min_words={min_words}, max_words={max_words}")
        if max_sentences is not None and max_sentences < 0:
            raise ValueError(f"max_sentences must be >= 0 or None, not {max_sentences}")
        self.tokenizer_name = tokenizer
        self.lang = lang
        self.max_sentences = max_sentences
        self.min_words, self.max_words = min_words, max_words
        self.deduplicate = deduplicate
        self.skip_bad_lines = skip_bad_lines
        self.line_word_limit = line_word_limit
        self._spacy_tokenizer = None
        if tokenizer == "spacy":
            self._spacy_tokenizer = _spacy_tokenizer(lang)

    def read(self, file_path: str | PathLike | list) -> Iterator[Instance]:
        """A generator over the sentences of one file, a glob, a comma-separated list of files, or
        a list of any of these; errors at once for a path that names no file."""
        paths = expand_paths(file_path)
        return self._read_all(paths)

    def _read_all(self, paths: list[Path]) -> Iterator[Instance]:
        skipped: Counter[str] = Counter()
        count = 0
        # `closing` ends the file generators (closing the file) when max_sentences stops early.
        with closing(self._unique(self._all_files(paths, skipped), skipped)) as instances:
            for count, instance in enumerate(islice(instances, self.max_sentences), start=1):
                yield instance
        if skipped:
            logger.warning(
                "plain_text read %d sentences from %s and skipped %s",
                count, ", ".join(map(str, paths)), ", ".join(f"{n} {what}" for what, n in sorted(skipped.items())),
            )  # fmt: skip

    def _all_files(self, paths: list[Path], skipped: Counter) -> Iterator[Instance]:
        for path in paths:
            with closing(self._at_most_max_instances(self._read(path, skipped))) as instances:
                yield from instances

    def _unique(self, instances: Iterator[Instance], skipped: Counter) -> Iterator[Instance]:
        """The instances, without repeats of an earlier sentence's words with `deduplicate`."""
        seen: set[bytes] = set()
        with closing(instances):
            for instance in instances:
                if self.deduplicate:
                    digest = hashlib.blake2b("\x1f".join(instance["words"]).encode(), digest_size=12).digest()
                    if digest in seen:
                        skipped["repeated sentences"] += 1
                        continue
                    seen.add(digest)
                yield instance

    def _read(self, path: Path, skipped: Counter | None = None) -> Iterator[Instance]:
        skipped = Counter() if skipped is None else skipped
        lines = ((number, text) for number, text in self._decoded_lines(path, skipped) if text.strip())
        while batch := list(islice(lines, _SPACY_BATCH)):
            for (line_number, text), words in zip(batch, self._tokenize([text for _, text in batch])):
                if len(words) > self.line_word_limit:
                    self._bad_line(path, line_number, f"{len(words)} words on one line (line_word_limit is {self.line_word_limit})", skipped)
                elif len(words) < self.min_words:
                    skipped[f"sentences under {self.min_words} words"] += 1
                elif self.max_words is not None and len(words) > self.max_words:
                    skipped[f"sentences over {self.max_words} words"] += 1
                else:
                    yield {"words": words, "metadata": sentence_metadata(path, line_number)}

    def _decoded_lines(self, path: Path, skipped: Counter) -> Iterator[tuple[int, str]]:
        def bad_line(line_number: int, problem: str) -> None:
            self._bad_line(path, line_number, problem, skipped)

        for line_number, line in self._numbered_lines(path, bad_line):
            if _CONTROL_CHARACTERS.search(line):
                bad_line(line_number, "control characters (is this a binary file?)")
            else:
                yield line_number, line

    def _bad_line(self, path: Path, line_number: int, problem: str, skipped: Counter) -> None:
        if not self.skip_bad_lines:
            raise DataError(path, line_number, f"{problem}; skip_bad_lines: true skips such lines")
        skipped["bad lines"] += 1

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        if self._spacy_tokenizer is None:
            return [text.split() for text in texts]
        return [[token.text for token in doc if not token.is_space] for doc in self._spacy_tokenizer.pipe(texts)]


def _spacy_tokenizer(lang: str):
    import spacy

    try:
        return spacy.blank(lang).tokenizer
    except ImportError as error:  # spaCy's message for an unknown language code
        raise ValueError(f"spaCy has no tokenizer for the language {lang!r} ({error})") from None


def expand_paths(file_path: str | PathLike | list) -> list[Path]:
    """The files a path argument names: a list of paths, a comma-separated string, and globs
    (sorted), each of which must name at least one file."""
    parts = list(file_path) if isinstance(file_path, (list, tuple)) else [file_path]
    paths: list[Path] = []
    for part in parts:
        for item in str(part).split(",") if isinstance(part, str) else [part]:
            item = str(item).strip()
            if glob.has_magic(item):
                matches = sorted(Path(match) for match in glob.glob(item) if Path(match).is_file())
                if not matches:
                    raise DataError(item, None, "no file matches this pattern")
                paths.extend(matches)
            elif not Path(item).is_file():
                raise DataError(item, None, "no such file")
            else:
                paths.append(Path(item))
    return paths
