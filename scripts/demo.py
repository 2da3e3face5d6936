"""The end-to-end example behind `make demo`, on a bundled slice of a real corpus (fixtures/bosque/:
2,000 training sentences of UniversalNER Portuguese-Bosque, CC BY-SA 4.0).

1. `structkd experiment training_configs/experiments/demo.jsonnet`: trains a BiLSTM-CRF teacher on
   all 2,000 training sentences, then a small CRF student that keeps the labels of only 10% of
   them and sees the rest as unlabeled text, without KD (`none`) and with structural KD. It prints
   the table and saves a plot.
2. Ships the better student as a spaCy pipeline (`structkd export-spacy`) and runs it through spaCy
   on a few sentences, printing the entities it finds.

Runs go to runs/demo/ (or --output), which the demo starts afresh.
"""

import argparse
import csv
import json
import shutil
import statistics
import time
from pathlib import Path

import spacy

from structkd_plugin.commands.cli import cli

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "training_configs" / "experiments" / "demo.jsonnet"
METRIC = "test_f1-measure-overall"
# Bosque writes contractions apart ("em o" for "no"), spaCy's tokenizer keeps them: these
# sentences have none.
SPACY_SENTENCES = [
    "O presidente Fernando Henrique Cardoso chegou ontem a Lisboa para uma reunião com António Guterres.",
    "A Petrobras anunciou novos investimentos em São Paulo e Brasília.",
    "O Benfica venceu o FC Porto por dois a zero, disse o treinador José Mourinho.",
]


def structkd(*arguments: str) -> None:
    print(f"\n== structkd {' '.join(arguments)}", flush=True)
    cli.main(args=list(arguments), standalone_mode=False)


def best_student(output: Path) -> tuple[str, Path]:
    """The objective with the highest mean test F1, and its first seed's student archive."""
    with (output / "results.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    by_objective: dict[str, list[dict]] = {}
    for row in rows:
        by_objective.setdefault(row["objective"], []).append(row)
    objective = max(by_objective, key=lambda name: statistics.mean(float(row[METRIC]) for row in by_objective[name]))
    cell = f"objective={objective},seed={by_objective[objective][0]['seed']}"
    return objective, output / "cells" / cell / "model.tar.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "runs" / "demo"), help="where the runs go")
    parser.add_argument("--jobs", type=int, default=2, help="students trained at once")
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists():
        shutil.rmtree(output)
    started = time.perf_counter()
    structkd("experiment", str(GRID), "-s", str(output), "--jobs", str(args.jobs))
    teacher = json.loads((output / "teacher" / "metrics.json").read_text(encoding="utf-8"))
    print(f"The teacher (BiLSTM-CRF, all 2,000 gold sentences): test F1 {100 * teacher[METRIC]:.2f}.")
    print(f"The students saw the labels of 200 of them. Plot: {output / (METRIC + '_by_objective.png')}")

    objective, archive = best_student(output)
    pipeline = output / "spacy-student"
    structkd("export-spacy", str(archive), str(pipeline), "--lang", "pt")
    nlp = spacy.load(pipeline)
    print(f"\nThe `{objective}` student inside spaCy ({', '.join(nlp.pipe_names)}):")
    for doc in nlp.pipe(SPACY_SENTENCES):
        entities = ", ".join(f"{entity.text} [{entity.label_}]" for entity in doc.ents) or "(none)"
        print(f"  {doc.text}\n    entities: {entities}")
    print(f"\nThe demo took {time.perf_counter() - started:.0f} s. Runs, archives and logs are in {output}/.")


if __name__ == "__main__":
    main()
