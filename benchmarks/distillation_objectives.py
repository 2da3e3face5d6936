"""Test scores of one student distilled from one teacher with each KD objective, over several seeds.

Every run is `structkd train training_configs/distill/OBJECTIVE.jsonnet` (NER: F1) or
`training_configs/distill/parsing/OBJECTIVE.jsonnet` (`--task parsing`: LAS and UAS) with the same teacher,
student, data and seed list; only the objective changes. With `--gold-fraction 0.1` the first 10%
of the training sentences keep their labels and the other 90% are given as unlabeled text (read
from the same file, labels ignored), the setting where KD has most to add. There the baseline
(`none`), which learns nothing from unlabeled text, gets `epochs / gold fraction` epochs (and
no early stopping: its first epochs on so few sentences predict no entity at all), so that it
makes as many updates as the KD runs instead of a tenth.

    python benchmarks/distillation_objectives.py --teacher runs/bosque/teacher/model.tar.gz \
        --data-dir ../shared/data --seeds 1 2 3 --epochs 10 --output docs/benchmarks/kd_bosque.md
    python benchmarks/distillation_objectives.py --task parsing --teacher runs/ewt/teacher/model.tar.gz \
        --corpus UD_English-EWT/en_ewt-ud --student labeler --objectives none token top_k structural
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
from datetime import date
from pathlib import Path

import torch

from structkd_plugin.config import import_plugins, load_config
from structkd_plugin.training.train import train_model

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ["none", "token", "posterior", "top_k", "structural", "local_substructure"]
# Per task: the configs, the data files' extension, the validation metric and the metrics reported.
TASKS = {
    "ner": {"configs": "training_configs/distill", "extension": "iob2", "metrics": ["f1-measure-overall"]},
    "parsing": {"configs": "training_configs/distill/parsing", "extension": "conllu", "metrics": ["LAS", "UAS"]},
}


def split_gold(train_path: str, fraction: float, directory: Path) -> tuple[str, str]:
    """Writes the first `fraction` of the sentences of a UniversalNER file, and the rest, to two files."""
    sentences = Path(train_path).read_text(encoding="utf-8").strip("\n").split("\n\n")
    cut = max(1, round(len(sentences) * fraction))
    gold, unlabeled = directory / "gold.iob2", directory / "unlabeled.iob2"
    gold.write_text("\n\n".join(sentences[:cut]) + "\n\n", encoding="utf-8")
    unlabeled.write_text("\n\n".join(sentences[cut:]) + "\n\n", encoding="utf-8")
    return str(gold), str(unlabeled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ner", choices=list(TASKS))
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--corpus", default="UNER_Portuguese-Bosque/pt_bosque-ud")
    parser.add_argument("--student", default="crf", help="crf or softmax (ner); labeler or biaffine (parsing)")
    parser.add_argument("--objectives", nargs="+", default=OBJECTIVES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--gold-fraction", type=float, default=1.0)
    parser.add_argument("--max-instances", type=int, help="read at most this many training sentences")
    parser.add_argument("--output", help="also write the markdown table to this file")
    parser.add_argument("--keep-runs", help="keep each run's serialization directory (OBJECTIVE-SEED) in this folder")
    args = parser.parse_args()
    task = TASKS[args.task]
    prefix, extension = Path(args.data_dir) / args.corpus, task["extension"]
    os.environ.update(
        TRAIN_PATH=f"{prefix}-train.{extension}", DEV_PATH=f"{prefix}-dev.{extension}", TEST_PATH=f"{prefix}-test.{extension}",
        TEACHER=args.teacher, STUDENT=args.student,
    )
    import_plugins()
    results: dict[str, list[dict]] = {objective: [] for objective in args.objectives}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        overrides = {
            "trainer": {"num_epochs": args.epochs},
            "model": {"teacher_cache": {"directory": str(scratch / "cache")}},
            "dataset_reader": {"max_instances": args.max_instances},
        }
        if args.max_instances is not None:
            # Only the training data is cut: the validation and test sets are read whole.
            reader = load_config(ROOT / task["configs"] / f"{args.objectives[0]}.jsonnet").as_dict()["dataset_reader"]
            overrides["validation_dataset_reader"] = reader
        if args.gold_fraction < 1.0:
            gold, unlabeled = split_gold(os.environ["TRAIN_PATH"], args.gold_fraction, scratch)
            overrides.update(train_data_path=gold, unlabeled_data_path=unlabeled)
        for seed in args.seeds:
            for objective in args.objectives:
                run_overrides = {**overrides, "random_seed": seed}
                if objective == "none" and args.gold_fraction < 1.0:
                    run_overrides["trainer"] = {"num_epochs": round(args.epochs / args.gold_fraction), "patience": None}
                config = load_config(ROOT / task["configs"] / f"{objective}.jsonnet", json.dumps(run_overrides))
                run = Path(args.keep_runs or scratch) / f"{objective}-{seed}"
                train_model(config, run, force=True)
                metrics = json.loads((run / "metrics.json").read_text())
                epochs = [json.loads(p.read_text())["epoch_duration"] for p in run.glob("metrics_epoch_*.json")]
                results[objective].append(
                    {
                        **{f"test {name}": metrics[f"test_{name}"] for name in task["metrics"]},
                        "dev": metrics[f"best_validation_{task['metrics'][0]}"],
                        "epoch": statistics.median(epochs),
                    }
                )
                print(f"seed {seed} {objective}: {results[objective][-1]}", flush=True)

    def mean_std(values: list[float]) -> str:
        return f"{statistics.mean(values) * 100:.2f} ± {statistics.stdev(values) * 100:.2f}" if len(values) > 1 else f"{values[0] * 100:.2f}"

    lines = [
        f"{args.student} student, teacher {args.teacher}, {args.corpus} ({'all' if args.max_instances is None else args.max_instances} "
        f"training sentences, {args.gold_fraction:.0%} with gold labels{', the rest as unlabeled text' if args.gold_fraction < 1 else ''}), "
        f"{args.epochs} epochs{' (none: ' + str(round(args.epochs / args.gold_fraction)) + ', no early stopping)' if args.gold_fraction < 1 else ''}, seeds {args.seeds}; CPU ({platform.machine()}, {torch.get_num_threads()} threads); {date.today()}.",
        "",
        "| objective | " + " | ".join(f"test {name}" for name in task["metrics"]) + f" | dev {task['metrics'][0]} (best epoch) | median epoch (s) |",
        "|---|" + "---|" * (len(task["metrics"]) + 2),
    ]
    for objective, runs in results.items():
        tests = " | ".join(mean_std([r[f"test {name}"] for r in runs]) for name in task["metrics"])
        lines.append(
            f"| {objective} | {tests} | {mean_std([r['dev'] for r in runs])} | {statistics.median(r['epoch'] for r in runs):.1f} |"
        )
    print("\n".join(lines))
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
