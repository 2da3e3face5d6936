"""The raw-text parsing table and learning curve: each run of `benchmarks/raw_text_parsing.sh`,
its archive scored on a test file (UAS, LAS on universal relations as the CoNLL 2018 scorer
computes it, and LAS_full on full labels), with its updates (to its best epoch, and in all) and the
raw sentences it was given; then runs given the same NAME (seeds of one row) as mean ± std.

    python benchmarks/raw_text_table.py --test ../shared/data/UD_English-EWT/en_ewt-ud-test.conllu \
        --run none=runs/raw/none-1 --run structural=runs/raw/structural-1 \
        --run "structural + 50k=runs/raw/structural-50k-1" --run "structural + 50k=runs/raw/structural-50k-2" \
        --plot docs/raw_text_learning_curve.png
"""

import argparse
import json
import platform
import statistics
from datetime import date
from pathlib import Path

import torch

from structkd_plugin.archival import load_archive
from structkd_plugin.training.trainer import InstanceLoader, evaluate


def unlabeled_sentences(config: dict) -> int:
    """How many raw sentences the run's config reads (0 without raw text; the reader's
    `max_sentences`, or the count its log reported when it read them all)."""
    reader = config.get("unlabeled_dataset_reader")
    if not config.get("unlabeled_data_path") or reader is None:
        return 0
    return reader.get("max_sentences") or -1


def row(name: str, run: Path, test: str) -> dict:
    archive = load_archive(run / "model.tar.gz")
    instances = list(archive.validation_dataset_reader.read(test))
    loader = InstanceLoader(instances, archive.model.tensorize, shuffle=False, max_tokens=2000)
    metrics = evaluate(archive.model, loader, archive.model.device)
    summary = json.loads((run / "metrics.json").read_text())
    state = json.loads(next((run / "checkpoints").glob("epoch_*/training_state.json")).read_text())
    epochs = len(state["epoch_records"])
    per_epoch = state["steps"] / epochs
    config = json.loads((run / "config.json").read_text())
    return {
        "name": name,
        "unlabeled": unlabeled_sentences(config),
        "UAS": 100 * metrics["UAS"],
        "LAS": 100 * metrics["LAS"],
        "LAS_full": 100 * metrics["LAS_full"],
        "best_epoch": summary["best_epoch"],
        "epochs": epochs,
        "updates_to_best": round(per_epoch * (summary["best_epoch"] + 1)),
        "updates": state["steps"],
    }


def raw_text(r: dict) -> str:
    return "all" if r["unlabeled"] == -1 else f"{r['unlabeled']:,}"


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", required=True)
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--plot", help="Write the learning curve (LAS against raw sentences) to this PNG.")
    parser.add_argument("--all-sentences", type=int, default=236057, help="What 'all' raw sentences are (for the plot).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row(name, Path(directory), args.test) for name, directory in (item.split("=", 1) for item in args.run)]
    print(f"Test file {args.test}; CPU {platform.machine()}, torch {torch.__version__}, {date.today()}\n")
    print("| run | raw sentences | test UAS | test LAS | test LAS_full | best epoch (of) | updates to best | updates |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {raw_text(r)} | {r['UAS']:.2f} | {r['LAS']:.2f} | {r['LAS_full']:.2f} | "
            f"{r['best_epoch'] + 1} ({r['epochs']}) | {r['updates_to_best']:,} | {r['updates']:,} |"
        )
    # Runs given the same NAME are seeds of one row: mean ± std.
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["name"], []).append(r)
    print("\n| row | seeds | raw sentences | test UAS | test LAS | test LAS_full | updates to best (mean) |")
    print("|---|---|---|---|---|---|---|")
    for name, members in groups.items():
        cells = [mean_std([m[metric] for m in members]) for metric in ("UAS", "LAS", "LAS_full")]
        updates = statistics.mean(m["updates_to_best"] for m in members)
        print(f"| {name} | {len(members)} | {raw_text(members[0])} | {' | '.join(cells)} | {updates:,.0f} |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # Each structural row's seeds: mean with its standard deviation as error bars, seeds as dots.
        sizes = {name: args.all_sentences if m[0]["unlabeled"] == -1 else m[0]["unlabeled"] for name, m in groups.items()}
        curve = sorted((sizes[name], [m["LAS"] for m in members]) for name, members in groups.items() if name.startswith("structural"))
        figure, axis = plt.subplots(figsize=(5, 3.2))
        for x, values in curve:
            axis.scatter([x] * len(values), values, color="lightgray", s=12, zorder=1)
        means = [statistics.mean(values) for _, values in curve]
        spreads = [statistics.stdev(values) if len(values) > 1 else 0.0 for _, values in curve]
        axis.errorbar([x for x, _ in curve], means, yerr=spreads, marker="o", capsize=3, zorder=2)
        for (x, values), y in zip(curve, means):
            axis.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 8), ha="center")
        axis.set_xlabel("teacher-labeled raw sentences")
        axis.set_ylabel("EWT test LAS")
        axis.set_title("Small biaffine student, structural KD from MiniLM")
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
