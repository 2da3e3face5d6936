"""`structkd evaluate ARCHIVE DATA`: the metrics of an archived model on a labelled file."""

import json
import logging

import click

from structkd_plugin.archival import load_archive
from structkd_plugin.commands.cli import cli, include_package_option, overrides_option
from structkd_plugin.commands.predict import write_predictions
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import import_plugins
from structkd_plugin.data import DataError
from structkd_plugin.file_safety import atomic_text_output, check_not_an_input
from structkd_plugin.training.trainer import InstanceLoader, evaluate

logger = logging.getLogger(__name__)


@cli.command("evaluate")
@click.argument("archive_file", metavar="ARCHIVE", type=click.Path(exists=True, dir_okay=False))
@click.argument("input_file", metavar="DATA", type=click.Path(exists=True, dir_okay=False))
@click.option("--output-file", type=click.Path(dir_okay=False), help="Also write the metrics (JSON) to this file.")
@click.option(
    "--predictions-output-file",
    type=click.Path(dir_okay=False),
    help="Also write the predictions in CoNLL columns (CoNLL-U for parsers) to this file.",
)
@click.option("--cuda-device", type=int, default=-1, show_default=True, help="GPU to run on; -1 for the CPU.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), help="Sentences per batch (default: the training config's batching)."
)
@overrides_option
@include_package_option
def evaluate_command(
    archive_file: str,
    input_file: str,
    output_file: str | None,
    predictions_output_file: str | None,
    cuda_device: int,
    batch_size: int | None,
    overrides: str | None,
    include_packages: tuple[str, ...],
) -> None:
    """Evaluate the model of ARCHIVE on DATA (read with the archive's validation reader) and print
    its metrics as JSON."""
    import_plugins(include_packages)
    outputs = {"--output-file": output_file, "--predictions-output-file": predictions_output_file}
    for option, path in outputs.items():
        if path is not None:
            check_not_an_input(path, [archive_file, input_file], option)
    if output_file is not None and output_file == predictions_output_file:
        raise click.UsageError("--output-file and --predictions-output-file name the same file")
    archive = load_archive(archive_file, overrides, cuda_device)
    reader = archive.validation_dataset_reader
    instances = list(reader.read(input_file))
    if not instances:
        raise DataError(input_file, None, "no sentence to evaluate on (the file is empty or holds only comments)")
    unseen = archive.model.unseen_gold_labels(instances)
    if unseen:
        listed = ", ".join(f"{label} ({count})" for label, count in unseen.most_common(10))
        logger.warning(
            "%s: %d gold label(s) the model has never seen, scored as errors: %s%s",
            input_file,
            sum(unseen.values()),
            listed,
            ", ..." if len(unseen) > 10 else "",
        )
    if batch_size is not None:
        batching = {"batch_size": batch_size}
    else:
        loader_config = archive.config.get("data_loader") or {}
        batching = {key: loader_config.get(key) for key in ("max_tokens", "batch_size")}
    loader = InstanceLoader(instances, archive.model.tensorize, shuffle=False, **batching)
    metrics = evaluate(archive.model, loader, archive.model.device)
    click.echo(json.dumps(metrics, indent=2))
    if output_file is not None:
        with atomic_text_output(output_file) as output:
            output.write(json.dumps(metrics, indent=2) + "\n")
    if predictions_output_file is not None:
        with atomic_text_output(predictions_output_file) as output:
            predicted = predictions(archive.model, instances, batch_size or 32)
            write_predictions(predicted, output, "conll", reader, input_file)
