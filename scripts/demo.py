"""The end-to-end example behind `make demo`, on the bundled fixtures (fixtures/ner/).

1. Trains a BiLSTM-CRF teacher (training_configs/ner/bilstm_crf.jsonnet).
2. Distills it into a small CRF student with several KD objectives, one config each
   (training_configs/distill/*.jsonnet), changing nothing else.
3. Prints their test scores side by side.
4. Ships the structural-KD student as a spaCy pipeline (`structkd export-spacy`) and runs it
   through spaCy on a few sentences.

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
    cache = {"model": {"teacher_cache_dir": str(output / "teacher-cache")}}
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
    ship_with_spacy(output / "student-structural" / "model.tar.gz", output / "spacy-student")


def ship_with_spacy(archive: Path, pipeline: Path) -> None:
    """Exports a student as a spaCy pipeline and prints the entities it finds in raw text."""
    arguments = ["export-spacy", str(archive), str(pipeline), "--lang", "en"]
    print(f"\n== structkd {' '.join(arguments)}", flush=True)
    cli.main(args=arguments, standalone_mode=False)
    nlp = spacy.load(pipeline)
    for doc in nlp.pipe(SPACY_SENTENCES):
        entities = ", ".join(f"{entity.text} [{entity.label_}]" for entity in doc.ents) or "(none)"
        print(f"{doc.text}\n    -> {entities}")


if __name__ == "__main__":
    main()
