"""The end-to-end example behind `make demo`, on the bundled fixtures (fixtures/ner/).

1. Trains a BiLSTM-CRF teacher (training_configs/ner/bilstm_crf.jsonnet).
2. Distills it into a small CRF student with several KD objectives, one config each
   (training_configs/distill/*.jsonnet), changing nothing else.
3. Prints their test scores side by side.
4. Does the same for dependency parsing on the UD fixture: a biaffine tree-CRF teacher
   (training_configs/parsing/), distilled into a small biaffine student with and without KD
   (training_configs/distill/parsing/).
5. Ships the structural-KD students as spaCy pipelines (`structkd export-spacy`) and runs them
   through spaCy on a few sentences, printing the entities and the parse.

Each run is exactly `structkd train CONFIG -s DIR --overrides ...`; the overrides only shrink the
real configs to fixture size (a 90-sentence training set). Runs go to runs/demo/ (or --output).
"""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import spacy

from structkd_plugin.commands.cli import cli
from structkd_plugin.config import import_plugins, load_config
from structkd_plugin.training.train import train_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_SIZE = {
    "trainer": {"num_epochs": 25, "patience": 8},
    "data_loader": {"max_tokens": 120},
    "vocabulary": {"min_count": {"tokens": 1}},
}
STUDENTS = [
    ("none", "gold only (baseline)"),
    ("token", "token KD (Hinton)"),
    ("posterior", "posterior KD"),
    ("structural", "structural KD (Wang et al.)"),
]
PARSING_STUDENTS = [("none", "gold only (baseline)"), ("structural", "structural KD (arc marginals)")]
SPACY_SENTENCES = [
    "Tomasz Nowak was appointed chief executive of Marlow Bank.",
    "Maria Silva flew from Gdansk to London on Monday.",
    "The Bank of England said prices rose in March.",
]


def train(config: str, directory: Path, extra: dict | None = None) -> dict:
    overrides = json.dumps({**FIXTURE_SIZE, **(extra or {})})
    started = time.perf_counter()
    model = train_model(load_config(ROOT / config, overrides), directory, force=True)
    elapsed = time.perf_counter() - started
    metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    model_config = json.loads((directory / "config.json").read_text(encoding="utf-8"))["model"]
    archived, _ = model.model_to_archive(model_config)  # the student alone, for a distillation run
    parameters = sum(p.numel() for p in archived.parameters())
    return {**metrics, "seconds": elapsed, "parameters": parameters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "runs" / "demo"), help="where the runs go")
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists():
        shutil.rmtree(output)
    fixtures = ROOT / "fixtures" / "ner"
    os.environ.update(
        TRAIN_PATH=str(fixtures / "train.iob2"),
        DEV_PATH=str(fixtures / "dev.iob2"),
        TEST_PATH=str(fixtures / "test.iob2"),
        STUDENT="crf",
    )
    import_plugins()

    print("== training the teacher (BiLSTM-CRF, words + characters)", flush=True)
    results = [("teacher: BiLSTM-CRF", train("training_configs/ner/bilstm_crf.jsonnet", output / "teacher"))]
    os.environ["TEACHER"] = str(output / "teacher" / "model.tar.gz")
    cache = {"model": {"teacher_cache": {"directory": str(output / "teacher-cache")}}}
    for objective, description in STUDENTS:
        print(f"== distilling a small CRF student: {description}", flush=True)
        run = train(f"training_configs/distill/{objective}.jsonnet", output / f"student-{objective}", cache)
        results.append((f"student: {description}", run))

    print()
    print(f"{'model':<40} {'parameters':>10} {'test F1':>8} {'dev F1':>8} {'train s':>8}")
    for name, metrics in results:
        print(
            f"{name:<40} {metrics['parameters']:>10,} {metrics['test_f1-measure-overall']:>8.3f} "
            f"{metrics['best_validation_f1-measure-overall']:>8.3f} {metrics['seconds']:>8.1f}"
        )
    print(f"\nArchives, metrics and logs are in {output}/*/ (the students' archives hold the student alone).")
    parse(output)
    nlp = ship_with_spacy(output / "student-structural" / "model.tar.gz", output / "spacy-student")
    parser = ship_with_spacy(output / "parser-student-structural" / "model.tar.gz", output / "spacy-parser", nlp)
    for doc in parser.pipe(SPACY_SENTENCES):
        entities = ", ".join(f"{entity.text} [{entity.label_}]" for entity in doc.ents) or "(none)"
        print(f"\n{doc.text}\n    entities: {entities}")
        for token in doc:
            head = "ROOT" if token.head.i == token.i else f"{token.head.text} ({token.head.i + 1})"
            print(f"    {token.i + 1:>3} {token.text:<12} <-{token.dep_}- {head}")


def parse(output: Path) -> None:
    """A parser teacher and two parser students on the UD fixture (30 sentences), side by side."""
    treebank = str(ROOT / "fixtures" / "universal_dependencies.conllu")
    os.environ.update(TRAIN_PATH=treebank, DEV_PATH=treebank, TEST_PATH=treebank, STUDENT="biaffine")
    size = {"trainer": {"num_epochs": 20, "patience": 8}, "vocabulary": {"min_count": {"tokens": 1}}}
    print("\n== training a parser teacher (biaffine, non-projective tree CRF)", flush=True)
    teacher = {"model": {"tree": "nonprojective"}}
    results = [("teacher: biaffine tree CRF", train("training_configs/parsing/biaffine_parser.jsonnet", output / "parser-teacher", {**teacher, **size}))]
    os.environ["TEACHER"] = str(output / "parser-teacher" / "model.tar.gz")
    for objective, description in PARSING_STUDENTS:
        print(f"== distilling a small biaffine student: {description}", flush=True)
        run = train(f"training_configs/distill/parsing/{objective}.jsonnet", output / f"parser-student-{objective}", size)
        results.append((f"student: {description}", run))
    print(f"\n{'model (trained and scored on the 30-sentence fixture)':<54} {'parameters':>10} {'UAS':>6} {'LAS':>6}")
    for name, metrics in results:
        print(f"{name:<54} {metrics['parameters']:>10,} {metrics['test_UAS']:>6.3f} {metrics['test_LAS']:>6.3f}")


def ship_with_spacy(archive: Path, pipeline: Path, base: spacy.Language | None = None) -> spacy.Language:
    """Exports a student as a spaCy pipeline (added to `base`'s when given) and loads it."""
    arguments = ["export-spacy", str(archive), str(pipeline)]
    if base is None:
        arguments += ["--lang", "en"]
    else:
        base.to_disk(pipeline.with_name(pipeline.name + "-base"))
        arguments += ["--base-pipeline", str(pipeline.with_name(pipeline.name + "-base"))]
    print(f"\n== structkd {' '.join(arguments)}", flush=True)
    cli.main(args=arguments, standalone_mode=False)
    return spacy.load(pipeline)


if __name__ == "__main__":
    main()
