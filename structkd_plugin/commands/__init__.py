"""The `structkd` command line: `structkd train`, `structkd evaluate`, `structkd predict`,
`structkd export-spacy`, `structkd experiment`.

`main` is the console script's entry point (`structkd=structkd_plugin.commands:main`); `python -m
structkd_plugin` runs it too.
"""

# Importing the command modules adds their commands to the `cli` group.
from structkd_plugin.commands import evaluate, experiment, export_spacy, predict, train  # noqa: F401
from structkd_plugin.commands.cli import cli, main

__all__ = ["cli", "main"]
