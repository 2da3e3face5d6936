"""`structkd export-spacy ARCHIVE OUTPUT_DIR`: an archived model as a component of a spaCy
pipeline, which `spacy.load(OUTPUT_DIR)` loads wherever structkd is installed.

The component follows from the archived model: a tagger with a span `label_encoding` becomes
`structkd_ner`, another tagger `structkd_tagger`, a dependency parser `structkd_parser` (see
`structkd_plugin.spacy_components`). It is added last to a new blank pipeline (`--lang`) or to a
copy of an existing one (`--base-pipeline`), and the pipeline's meta.json lists structkd among its
requirements, so that `spacy package` builds a package that installs it.
"""

from pathlib import Path

import click

import structkd_plugin
from structkd_plugin.archival import load_archive
from structkd_plugin.commands.cli import cli

DISTRIBUTION = "structkd"


@cli.command("export-spacy")
@click.argument("archive_file", metavar="ARCHIVE", type=click.Path(exists=True, dir_okay=False))
@click.argument("output_dir", metavar="OUTPUT_DIR", type=click.Path(file_okay=False))
@click.option("--lang", metavar="CODE", help="Language code of a new blank pipeline (en, de, xx, ...).")
@click.option(
    "--base-pipeline",
    type=click.Path(exists=True, file_okay=False),
    help="Add the component to this pipeline directory (e.g. one with a sentencizer or a tagger) instead.",
)
@click.option("--component-name", metavar="NAME", help="The component's name (default: its factory's, e.g. structkd_ner).")
def export_spacy_command(
    archive_file: str, output_dir: str, lang: str | None, base_pipeline: str | None, component_name: str | None
) -> None:
    """Write a spaCy pipeline to OUTPUT_DIR whose last component runs the model of ARCHIVE."""
    # spaCy is imported by this command only; the components import the CLI's `predictions`.
    from structkd_plugin.spacy_components import factory_for

    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise click.ClickException(f"{output} exists and is not empty")
    if lang is None and base_pipeline is None:
        raise click.UsageError("give --lang for a new blank pipeline, or --base-pipeline")
    archive = load_archive(archive_file)
    factory = factory_for(archive.model)
    if factory is None:
        raise click.ClickException(
            f"{archive_file} holds a {type(archive.model).__name__}; only taggers and dependency parsers "
            "become spaCy components"
        )
    nlp = _pipeline(lang, base_pipeline)
    name = component_name or factory
    if name in nlp.pipe_names:
        raise click.ClickException(f"the pipeline already has a component named {name!r}: choose another with --component-name")
    nlp.add_pipe(factory, name=name).use(archive)
    others = [r for r in nlp.meta.get("requirements", []) if not r.startswith(DISTRIBUTION)]
    nlp.meta["requirements"] = others + [f"{DISTRIBUTION}>={structkd_plugin.__version__}"]
    nlp.to_disk(output)
    click.echo(f"Wrote the spaCy pipeline {output} ({', '.join(nlp.pipe_names)}): spacy.load({str(output)!r})")


def _pipeline(lang: str | None, base_pipeline: str | None):
    import spacy

    if base_pipeline is None:
        try:
            return spacy.blank(lang)
        except ImportError as error:
            raise click.ClickException(f"--lang {lang}: {error}") from None
    try:
        nlp = spacy.load(base_pipeline)
    except (OSError, ValueError, ImportError) as error:
        raise click.ClickException(f"cannot load the base pipeline {base_pipeline}: {error}") from None
    if lang is not None and lang != nlp.lang:
        raise click.ClickException(f"--lang {lang} differs from the language of the base pipeline ({nlp.lang})")
    return nlp
