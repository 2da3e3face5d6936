"""The `universal_ner` reader: UniversalNER `.iob2` files.

Each sentence is a block of `# key = value` comment lines (`sent_id`, `text`, sometimes
`newdoc id` or `url`) followed by one line per token with five tab-separated columns, then a
blank line:

    # sent_id = en_ewt-ud-dev-1
    # text = From the AP comes this story :
    1	From	O	-	-
    2	the	O	-	-
    3	AP	B-ORG	-	-
    ...

The columns are the token's index in the sentence (1, 2, ...), the token (which may contain
spaces), its BIO tag, and two columns this reader ignores (an extra annotation layer or `-`,
and the annotator's name or `-`).
"""

from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from structkd_plugin.data.dataset_reader import DataError, DatasetReader, Instance, sentence_metadata
from structkd_plugin.data.span_tags import SpanTagConverter, check_scheme

COLUMN_COUNT = 5


@DatasetReader.register("universal_ner")
class UniversalNerDatasetReader(DatasetReader):
    """Reads UniversalNER `.iob2` files into instances with `words`, `tags` and `metadata`:
    `source`, `line` (the sentence's first line, its first comment when it has one),
    `sentence_id` (from `# sent_id`), `text`, and every other `# key = value` comment under
    its key.

    # Parameters

    label_scheme : `str`
        The scheme the BIO tags of the file are converted to: "BIO", "BIOES" or "IOB1".
    max_instances : `int`, optional
        See `DatasetReader`.
    """

    def __init__(self, label_scheme: str = "BIO", max_instances: int | None = None) -> None:
        super().__init__(max_instances)
        check_scheme(label_scheme, "label_scheme")
        self.label_scheme = label_scheme

    def _read(self, path: Path) -> Iterator[Instance]:
        with SpanTagConverter(path, "BIO", self.label_scheme) as converter:
            words: list[str] = []
            tags: list[str] = []
            line_numbers: list[int] = []
            comments: dict[str, str] = {}
            first_line = None
            # The blank line added at the end ends the last sentence.
            for line_number, line in chain(self._numbered_lines(path), [(0, "")]):
                if not line.strip():
                    if words:
                        metadata = sentence_metadata(path, first_line, comments)
                        yield {"words": words, "tags": converter(tags, line_numbers), "metadata": metadata}
                    words, tags, line_numbers, comments, first_line = [], [], [], {}, None
                    continue
                first_line = first_line or line_number
                if line.startswith("#"):
                    key, equals, value = line[1:].partition("=")
                    if equals:
                        comments[key.strip()] = value.strip()
                    continue
                fields = line.split("\t")
                if len(fields) != COLUMN_COUNT:
                    expected = f"{COLUMN_COUNT} tab-separated columns (index, token, tag, -, annotator)"
                    raise DataError(path, line_number, f"expected {expected}, found {len(fields)}")
                index, word, tag = fields[:3]
                if index != str(len(words) + 1):
                    problem = f"token index {index!r} where {len(words) + 1} was expected"
                    raise DataError(path, line_number, f"{problem} (is a blank line missing between sentences?)")
                if not word:
                    raise DataError(path, line_number, "empty token")
                words.append(word)
                tags.append(tag)
                line_numbers.append(line_number)
