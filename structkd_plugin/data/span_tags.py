"""Checking, repairing and converting the span tags (NER, chunks) that readers find in a file.

Span tags encode labelled spans in a tag scheme ("IOB1", "BIO" or "BIOES"; see
`structkd_plugin.structures.label_schemes`). Files name the scheme they are in; models want
their own. `SpanTagConverter` sits between the two, for one file at a time:

1. a tag that is not a tag of the file's scheme (`X-PER`, `PER`, `E-PER` in a BIO file) is a
   `DataError` naming the line;
2. a sequence that breaks the scheme (in BIO, `I-PER` after `O` or after `B-LOC`) is read the way
   conlleval reads it, which is the documented rule of `spans_from_tags`: such an `I-` tag starts
   a new span. Real data has a few of these (UniversalNER Danish has 7), so they are repaired,
   not rejected, and the sentence is kept;
3. the spans are written in the model's scheme (`convert_tags`, which applies that same rule).

Repairs are counted with `count_scheme_violations` and reported in one warning per file, with
the first few `file:line` locations, when the converter is closed.
"""

import logging
from pathlib import Path

from structkd_plugin.data.dataset_reader import DataError
from structkd_plugin.structures.label_schemes import convert_tags, count_scheme_violations, scheme_tag_set

logger = logging.getLogger(__name__)

SCHEMES = ("IOB1", "BIO", "BIOES")
# How many repair locations the warning lists.
REPORTED_LOCATIONS = 5


def check_scheme(name: str, option: str) -> None:
    """Raises `ValueError` unless `name` is one of `SCHEMES`; `option` names the argument."""
    if name not in SCHEMES:
        raise ValueError(f"{option} must be one of {SCHEMES}, not {name!r}")


class SpanTagConverter:
    """Converts the span tags of one file from `source_scheme` to `target_scheme`.

    Use it as a context manager around the reading of the file; closing it logs the warning
    about repaired tags, if any.

    # Parameters

    path : `Path`
        The file, for messages.
    source_scheme : `str`
        The scheme the file is written in.
    target_scheme : `str`
        The scheme the instances get.
    """

    def __init__(self, path: Path, source_scheme: str, target_scheme: str) -> None:
        self.path = path
        self.source_scheme = source_scheme
        self.target_scheme = target_scheme
        self.violations = 0
        self.repair_lines: list[int] = []
        self._valid_tags: set[str] = set()

    def __call__(self, tags: list[str], line_numbers: list[int]) -> list[str]:
        """The tags of one sentence in the target scheme. `line_numbers[i]` is the line of
        `tags[i]`, for messages."""
        for tag, line_number in zip(tags, line_numbers):
            if tag not in self._valid_tags:
                self._check_tag(tag, line_number)
        violations = count_scheme_violations(tags, self.source_scheme)
        if violations:
            self.violations += violations
            # The repaired tags in the file's own scheme show which tags the repair changed.
            repaired = convert_tags(tags, self.source_scheme, self.source_scheme)
            self.repair_lines.extend(line for line, tag, fixed in zip(line_numbers, tags, repaired) if tag != fixed)
        return convert_tags(tags, self.source_scheme, self.target_scheme)

    def _check_tag(self, tag: str, line_number: int) -> None:
        label = tag.partition("-")[2]
        if tag != "O" and (not label or tag not in scheme_tag_set([label], self.source_scheme)):
            raise DataError(self.path, line_number, f"{tag!r} is not a tag of the {self.source_scheme} scheme")
        self._valid_tags.add(tag)

    def __enter__(self) -> "SpanTagConverter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.violations:
            locations = ", ".join(f"{self.path}:{line}" for line in self.repair_lines[:REPORTED_LOCATIONS])
            logger.warning(
                "%s: %d tag(s) break the %s scheme; read with the conlleval rule of spans_from_tags "
                "(a tag that cannot continue the open span starts a new one); first repaired tags at %s",
                self.path,
                self.violations,
                self.source_scheme,
                locations,
            )
