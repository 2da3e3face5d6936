"""`structkd predict ARCHIVE INPUT`: an archived model's predictions for every sentence of a file.

Two output formats:

- `json` (JSON lines): one line per sentence, the dict the model's `make_predictions` returns;
- `conll`: one word per line with its predicted columns, tab-separated, and a blank line after each
  sentence. Predictions with `heads` (parsers) give the ten CoNLL-U columns (ID, FORM, LEMMA, UPOS,
  XPOS, FEATS, HEAD, DEPREL, DEPS, MISC; `_` where nothing is predicted); others give the word
  followed by whichever of `upos`, `xpos` and `tags` were predicted.

Sentences come out in the order of the input file.
"""

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from itertools import islice
from typing import Any, TextIO

import click
import torch
from tango.common import Params

from structkd_plugin.archival import load_archive
from structkd_plugin.commands.cli import cli, include_package_option, overrides_option
from structkd_plugin.config import check_registered_name, explained_configuration_errors, import_plugins
from structkd_plugin.data import DatasetReader, Instance
from structkd_plugin.models.model import Model
from structkd_plugin.data import move_to_device

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
    archive = load_archive(archive_file, overrides, cuda_device)
    reader = archive.validation_dataset_reader
    if use_reader is not None:
        check_registered_name(DatasetReader, use_reader, "--use-reader")
        with explained_configuration_errors():
            reader = DatasetReader.from_params(Params({"type": use_reader}))
    write = _write_json_line if output_format == "json" else write_conll_sentence
    with open(output_file, "w", encoding="utf-8") if output_file else nullcontext(sys.stdout) as output:
        for prediction in predictions(archive.model, reader.read(input_file), batch_size):
            write(prediction, output)


def predictions(model: Model, instances: Iterable[Instance], batch_size: int) -> Iterator[dict[str, Any]]:
    """The model's prediction for each instance, in order, computed `batch_size` at a time."""
    instances = iter(instances)
    with torch.no_grad():
        while batch_instances := list(islice(instances, batch_size)):
            batch = model.tensorize(batch_instances)
            output = model(**move_to_device(batch, model.device))
            yield from model.make_predictions(output, batch)


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
