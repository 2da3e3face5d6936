"""The `structkd` command group, its shared options, and how user errors are reported.

A user error (a faulty config, data file, archive or option, a missing file) ends the command with
exit code 2 and one line on stderr, `Error: ...`, without a traceback. Any other exception is a bug
and keeps its traceback.
"""

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from tango.common.exceptions import ConfigurationError

from structkd_plugin.archival import ArchiveError
from structkd_plugin.data import DataError
from structkd_plugin.file_safety import OutputError

__all__ = ["USER_ERRORS", "cli", "include_package_option", "main", "overrides_option"]

USER_ERRORS = (
    ConfigurationError,
    DataError,
    ArchiveError,
    OutputError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
"""The exceptions that mean the user asked for something impossible, not that structkd is broken."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """structkd: train, evaluate and run structured taggers and parsers."""


def include_package_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The `--include-package` option: modules to import so that their components register."""
    return click.option(
        "--include-package",
        "include_packages",
        multiple=True,
        metavar="MODULE",
        help="Import this module (and its submodules) to register its components; repeatable. "
        "Modules listed in a .structkd_plugins file in the current directory are imported too.",
    )(command)


def overrides_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The `-o/--overrides` option: a JSON or Jsonnet snippet merged into the config."""
    return click.option(
        "-o",
        "--overrides",
        metavar="JSON",
        help="A JSON (or Jsonnet) object applied to the config, e.g. '{\"trainer.num_epochs\": 2}'.",
    )(command)


def main(argv: Sequence[str] | None = None) -> None:
    """The `structkd` console script (and `python -m structkd_plugin`)."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)  # INFO records go to the run's out.log only
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        exit_code = cli.main(args=argv, prog_name="structkd", standalone_mode=False)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "structkd"
        _fail(f"{error.format_message()} (see '{command} --help')")
    except click.ClickException as error:
        _fail(error.format_message())
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except USER_ERRORS as error:
        _fail(str(error))
    finally:
        logging.getLogger().removeHandler(handler)
    sys.exit(exit_code or 0)


def _fail(message: str) -> None:
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"Error: {one_line}", err=True)
    sys.exit(2)
