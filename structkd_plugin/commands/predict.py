"""`structkd predict ARCHIVE INPUT`: an archived model's predictions for every sentence of a file.

Two output formats:

- `json` (JSON lines): one line per sentence, the dict the model's `make_predictions` returns;
- `conll`: for a CoNLL-U input (read by `universal_dependencies`), the input itself with the
  predicted columns (HEAD and DEPREL, or the tagged column) filled in: comments, multiword tokens,
  empty nodes and the other columns are kept, so the output round-trips. Otherwise one word per
  line with its predicted columns, tab-separated, and a blank line after each sentence:
  predictions with `heads` give the ten CoNLL-U columns (`_` where nothing is predicted), others
  the word followed by whichever of `upos`, `xpos` and `tags` were predicted.

Sentences come out in the order of the input file. The output file is written under a temporary
name and renamed once complete, and is never one of the command's inputs.
"""

import json
import sys
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any, TextIO

import click
from tango.common import Params

from structkd_plugin.archival import load_archive
from structkd_plugin.commands.cli import cli, include_package_option, overrides_option
from structkd_plugin.config import check_registered_name, explained_configuration_errors, import_plugins
from structkd_plugin.data import INPUT_LABEL_KEYS, DataError, DatasetReader, without_labels
from structkd_plugin.data.universal_dependencies import (
    UniversalDependenciesDatasetReader,
    sentence_blocks,
    with_predicted_columns,
)
from structkd_plugin.file_safety import atomic_text_output, check_not_an_input
from structkd_plugin.models.predictions import predictions

# The per-token columns written after the word for predictions without `heads`.
TAGGING_COLUMNS = ("upos", "xpos", "tags")


@cli.command("predict")
@click.argument("archive_file", metavar="ARCHIVE", type=click.Path(exists=True, dir_okay=False))
@click.argument("input_file", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--output-file", type=click.Path(dir_okay=False), help="Write the predictions here instead of to stdout.")
@click.option(
    "--output-format",
    type=click.Choice(["json", "conll"]),
    default="json",
    show_default=True,
    help="JSON lines or CoNLL columns.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Sentences per batch.")
@click.option("--cuda-device", type=int, default=-1, show_default=True, help="GPU to run on; -1 for the CPU.")
@click.option(
    "--use-reader",
    metavar="NAME",
    help="Read INPUT with this registered reader (default settings), e.g. plain_text, instead of the "
    "archive's validation reader.",
)
@overrides_option
@include_package_option
def predict_command(
    archive_file: str,
    input_file: str,
    output_file: str | None,
    output_format: str,
    batch_size: int,
    cuda_device: int,
    use_reader: str | None,
    overrides: str | None,
    include_packages: tuple[str, ...],
) -> None:
    """Predict the structures of every sentence of INPUT with the model of ARCHIVE."""
    import_plugins(include_packages)
    if output_file is not None:
        check_not_an_input(output_file, [archive_file, input_file], "--output-file")
    archive = load_archive(archive_file, overrides, cuda_device)
    reader = archive.validation_dataset_reader
    if use_reader is not None:
        check_registered_name(DatasetReader, use_reader, "--use-reader")
        with explained_configuration_errors():
            reader = DatasetReader.from_params(Params({"type": use_reader}))
    # Gold annotation in INPUT is ignored (a tag the model never saw is no obstacle), but for
    # what some models read as input.
    instances = (without_labels(instance, keep=INPUT_LABEL_KEYS) for instance in reader.read(input_file))
    with atomic_text_output(output_file) if output_file else nullcontext(sys.stdout) as output:
        count = write_predictions(
            predictions(archive.model, instances, batch_size), output, output_format, reader, input_file
        )
        if count == 0:
            raise DataError(input_file, None, "no sentence to predict (the file is empty or holds only comments)")


def write_predictions(
    predicted: Iterable[dict[str, Any]], output: TextIO, output_format: str, reader: DatasetReader, input_file: str
) -> int:
    """Writes the predictions of the sentences of `input_file` (read by `reader`) in
    `output_format`; returns how many there were. CoNLL output of a CoNLL-U file keeps every line
    and column of the file but the predicted ones."""
    if output_format == "json":
        write = _write_json_line
    elif isinstance(reader, UniversalDependenciesDatasetReader):
        tag_column = reader.tag_label if reader.tag_label in ("upos", "xpos") else None
        blocks = sentence_blocks(input_file)

        def write(prediction: dict[str, Any], output: TextIO) -> None:
            output.write("\n".join(with_predicted_columns(next(blocks), prediction, tag_column)) + "\n\n")

    else:
        write = write_conll_sentence
    count = 0
    for count, prediction in enumerate(predicted, start=1):
        write(prediction, output)
    return count


def _write_json_line(prediction: dict[str, Any], output: TextIO) -> None:
    output.write(json.dumps(prediction, ensure_ascii=False) + "\n")


def write_conll_sentence(prediction: dict[str, Any], output: TextIO) -> None:
    words = prediction["words"]
    for i, word in enumerate(words):
        if "heads" in prediction:
            predicted = {
                key: str(prediction[key][i]) for key in ("upos", "xpos", "heads", "deprels") if key in prediction
            }
            columns = [str(i + 1), word, "_", predicted.get("upos", "_"), predicted.get("xpos", "_"), "_"]
            columns += [predicted["heads"], predicted.get("deprels", "_"), "_", "_"]
        else:
            columns = [word] + [str(prediction[key][i]) for key in TAGGING_COLUMNS if key in prediction]
        output.write("\t".join(columns) + "\n")
    output.write("\n")
