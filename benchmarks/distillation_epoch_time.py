"""Epoch time of one student trained without KD and with several KD set-ups, in one run.

The question (issue: "cache the teacher"): does structural KD with a cached teacher cost at most
1.2x an epoch of the same student without KD? Beside it: structural KD with the teacher run at
every step (online), and Lin et al.'s local_substructure (no dynamic program), online and cached.

Every variant trains the same student (training_configs/distill/base.libsonnet's CRF or softmax
student; with `--task parsing`, training_configs/distill/parsing/base.libsonnet's labeler or small
biaffine parser) on the same sentences for the same number of epochs, without validation, so an
epoch's duration is training alone; the one-time cost of filling the teacher cache is reported apart.
Variants run one after another, in rounds (every variant once per round), so slow phases of the
shared machine hit them alike; we report the median epoch over all rounds.

    python benchmarks/distillation_epoch_time.py --data-dir ../shared/data \
        --teacher runs/bosque/teacher/model.tar.gz --max-instances 2000 --epochs 2 --rounds 2
    python benchmarks/distillation_epoch_time.py --task parsing --corpus UD_English-EWT/en_ewt-ud-train.conllu \
        --teacher runs/ewt/minilm/model.tar.gz --student biaffine --max-instances 2000 --epochs 1 --rounds 2
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from structkd_plugin.config import import_plugins, load_config
from structkd_plugin.training.train import train_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"ner": "training_configs/distill", "parsing": "training_configs/distill/parsing"}
STUDENTS = {"ner": ["crf", "softmax"], "parsing": ["labeler", "biaffine"]}

VARIANTS = [
    # (name, config, {"cached": whether the teacher is cached}, or None for the student alone)
    ("no KD (student alone)", "none", None),
    ("structural, cached teacher", "structural", {"cached": True}),
    ("structural, online teacher", "structural", {"cached": False}),
    ("local_substructure, online teacher", "local_substructure", {"cached": False}),
    ("local_substructure, cached teacher", "local_substructure", {"cached": True}),
]


def run_variant(objective: str, model_overrides: dict | None, args, directory: Path, cache_dir: Path) -> dict:
    overrides = {
        "validation_data_path": None,
        "test_data_path": None,
        "evaluate_on_test": False,
        "dataset_reader": {"max_instances": args.max_instances},
        "trainer": {"num_epochs": args.epochs, "validation_metric": "-loss", "patience": None},
        "model": {"teacher_cache": {"directory": str(cache_dir)} if (model_overrides or {}).get("cached") else None},
    }
    config = load_config(ROOT / CONFIGS[args.task] / f"{objective}.jsonnet", json.dumps(overrides))
    if model_overrides is None:  # the student alone, as the distillation config describes it
        config["model"] = config["model"]["student"].as_dict()
    started = time.perf_counter()
    train_model(config, directory, force=True)
    total = time.perf_counter() - started
    epochs = [
        json.loads((directory / f"metrics_epoch_{epoch}.json").read_text())["epoch_duration"] for epoch in range(args.epochs)
    ]
    return {"epochs": epochs, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ner", choices=list(CONFIGS))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--corpus", default="UNER_Portuguese-Bosque/pt_bosque-ud-train.iob2")
    parser.add_argument("--teacher", required=True, help="a teacher model.tar.gz")
    parser.add_argument("--student", help="crf (default) or softmax for ner; labeler (default) or biaffine for parsing")
    parser.add_argument("--max-instances", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    args.student = args.student or STUDENTS[args.task][0]
    if args.student not in STUDENTS[args.task]:
        parser.error(f"--student for {args.task} is one of {STUDENTS[args.task]}, not {args.student!r}")
    torch.set_num_threads(args.threads)
    train_path = str(Path(args.data_dir) / args.corpus)
    os.environ.update(TRAIN_PATH=train_path, DEV_PATH=train_path, TEST_PATH=train_path, TEACHER=args.teacher, STUDENT=args.student)
    import_plugins()

    epochs = {name: [] for name, _, _ in VARIANTS}
    one_time = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for round_index in range(args.rounds):
            for index, (name, objective, model_overrides) in enumerate(VARIANTS):
                # A fresh cache directory per run, so the cost of filling it is measured each time.
                result = run_variant(objective, model_overrides, args, scratch / f"run{index}", scratch / f"cache{round_index}-{index}")
                epochs[name] += result["epochs"]
                one_time.setdefault(name, []).append(result["total"] - sum(result["epochs"]))
                print(f"round {round_index}: {name}: epochs {['%.1f' % e for e in result['epochs']]} s", flush=True)

    baseline = statistics.median(epochs[VARIANTS[0][0]])
    lines = [
        f"{args.student.upper()} student, {args.max_instances} sentences of {args.corpus}, {args.epochs} epochs x "
        f"{args.rounds} rounds per variant; teacher {args.teacher}; CPU ({platform.machine()}, {args.threads} "
        f"threads), torch {torch.__version__}; {date.today()}.",
        "",
        "| variant | median epoch (s) | ratio to no KD | one-time set-up (s, median) |",
        "|---|---|---|---|",
    ]
    for name, _, _ in VARIANTS:
        median = statistics.median(epochs[name])
        lines.append(f"| {name} | {median:.1f} | {median / baseline:.2f}x | {statistics.median(one_time[name]):.1f} |")
    print("\n".join(lines))
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
