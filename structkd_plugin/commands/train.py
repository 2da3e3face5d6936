"""`structkd train CONFIG -s DIR`: trains the model a config describes."""

import os

import click

from structkd_plugin.commands.cli import cli, include_package_option, overrides_option
from structkd_plugin.config import import_plugins, load_config
from structkd_plugin.training.train import train_model


@cli.command()
@click.argument("config_file", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-s",
    "--serialization-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the run's config, vocabulary, metrics, checkpoints and model.tar.gz.",
)
@overrides_option
@include_package_option
@click.option(
    "-r", "--recover", is_flag=True, help="Resume the run in the serialization directory from its last checkpoint."
)
@click.option("-f", "--force", is_flag=True, help="Delete the serialization directory's content first.")
def train(
    config_file: str,
    serialization_dir: str,
    overrides: str | None,
    include_packages: tuple[str, ...],
    recover: bool,
    force: bool,
) -> None:
    """Train the model described by the Jsonnet config CONFIG (environment variables are its
    std.extVar values)."""
    import_plugins(include_packages)
    params = load_config(config_file, overrides)
    train_model(params, serialization_dir, recover=recover, force=force)
    if os.environ.get("RANK", "0") == "0":  # once, in a torchrun launch
        click.echo(f"Done: {serialization_dir}/model.tar.gz; metrics in {serialization_dir}/metrics.json", err=True)
