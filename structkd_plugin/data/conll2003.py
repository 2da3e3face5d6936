"""The `conll2003` reader: CoNLL-2003 style column files.

One token per line with whitespace-separated columns (by default `token POS chunk NER`, as in
the English CoNLL-2003 data), a blank line after each sentence, and `-DOCSTART-` lines between
documents:

    -DOCSTART- -X- -X- O

    EU NNP I-NP I-ORG
    rejects VBZ I-VP O
    ...
"""

from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path

from structkd_plugin.data.dataset_reader import DataError, DatasetReader, Instance, sentence_metadata
from structkd_plugin.data.span_tags import SpanTagConverter, check_scheme

# The columns that hold span tags, and so follow `coding_scheme`.
SPAN_COLUMNS = ("ner", "chunk")
TAG_COLUMNS = ("ner", "pos", "chunk")


@DatasetReader.register("conll2003")
class Conll2003DatasetReader(DatasetReader):
    """Reads CoNLL-2003 column files into instances with `words`, `tags` and `metadata`
    (`source`, `line` of the sentence's first token).

    # Parameters

    tag_label : `str`
        The column that becomes `tags`: "ner", "pos" or "chunk".
    coding_scheme : `str`
        The scheme of the "ner" and "chunk" columns in the file: "IOB1" (that of CoNLL-2003,
        where `B-` only separates two adjacent spans of one type), "BIO" or "BIOES".
    label_scheme : `str`
        The scheme the `tags` are converted to when they are "ner" or "chunk" tags: "BIO",
        "BIOES" or "IOB1". POS tags are kept as they are.
    columns : `Sequence[str]`
        The names of the columns, in file order. It must contain "token" and `tag_label`; other
        names than "token", "pos", "chunk" and "ner" mark columns to ignore (e.g. "lemma" for
        the German data).
    max_instances : `int`, optional
        See `DatasetReader`.
    """

    def __init__(
        self,
        tag_label: str = "ner",
        coding_scheme: str = "IOB1",
        label_scheme: str = "BIO",
        columns: Sequence[str] = ("token", "pos", "chunk", "ner"),
        max_instances: int | None = None,
    ) -> None:
        super().__init__(max_instances)
        if tag_label not in TAG_COLUMNS:
            raise ValueError(f"tag_label must be one of {TAG_COLUMNS}, not {tag_label!r}")
        check_scheme(coding_scheme, "coding_scheme")
        check_scheme(label_scheme, "label_scheme")
        columns = list(columns)
        for needed in ("token", tag_label):
            if needed not in columns:
                raise ValueError(f"columns {columns} lack {needed!r}")
        if len(set(columns)) != len(columns):
            raise ValueError(f"columns {columns} repeat a name")
        self.tag_label = tag_label
        self.coding_scheme = coding_scheme
        self.label_scheme = label_scheme
        self.columns = columns

    def _read(self, path: Path) -> Iterator[Instance]:
        token_column = self.columns.index("token")
        tag_column = self.columns.index(self.tag_label)
        with SpanTagConverter(path, self.coding_scheme, self.label_scheme) as converter:
            words: list[str] = []
            tags: list[str] = []
            line_numbers: list[int] = []
            # The blank line added at the end ends the last sentence.
            for line_number, line in chain(self._numbered_lines(path), [(0, "")]):
                fields = line.split()
                if fields and fields[0] != "-DOCSTART-":
                    if len(fields) != len(self.columns):
                        expected = f"{len(self.columns)} whitespace-separated columns ({' '.join(self.columns)})"
                        raise DataError(path, line_number, f"expected {expected}, found {len(fields)}")
                    words.append(fields[token_column])
                    tags.append(fields[tag_column])
                    line_numbers.append(line_number)
                elif words:
                    # A blank line or a -DOCSTART- line ends the sentence.
                    if self.tag_label in SPAN_COLUMNS:
                        tags = converter(tags, line_numbers)
                    yield {"words": words, "tags": tags, "metadata": sentence_metadata(path, line_numbers[0])}
                    words, tags, line_numbers = [], [], []
