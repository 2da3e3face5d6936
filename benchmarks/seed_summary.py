"""Test and best-dev scores of finished `structkd train` runs, one row each, then their mean ± std.

Each RUN is a serialization directory (its `metrics.json` and `metrics_epoch_*.json`); runs of
one config with different `random_seed`s give its mean and standard deviation over seeds.

    python benchmarks/seed_summary.py runs/ewt/minilm runs/ewt/minilm-seed2 runs/ewt/minilm-seed3 \
        --metrics UAS LAS UEM LEM --dev-metric LAS
"""

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metrics", nargs="+", default=["UAS", "LAS"], help="test metrics to report")
    parser.add_argument("--dev-metric", help="the best-dev metric to report (default: the first of --metrics)")
    args = parser.parse_args()
    dev_metric = args.dev_metric or args.metrics[0]

    rows = []
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        epochs = [json.loads(path.read_text())["epoch_duration"] for path in run.glob("metrics_epoch_*.json")]
        rows.append(
            {
                "run": str(run),
                "seed": config.get("random_seed", "default"),
                **{name: 100 * metrics[f"test_{name}"] for name in args.metrics},
                "dev": 100 * metrics[f"best_validation_{dev_metric}"],
                "best epoch": f"{metrics['best_epoch'] + 1} of {len(epochs)}",
                "median epoch (s)": statistics.median(epochs),
            }
        )

    columns = ["run", "seed", *(f"test {name}" for name in args.metrics), f"best dev {dev_metric}", "best epoch", "median epoch (s)"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        values = [row["run"], row["seed"], *(f"{row[name]:.2f}" for name in args.metrics), f"{row['dev']:.2f}"]
        print("| " + " | ".join(map(str, values)) + f" | {row['best epoch']} | {row['median epoch (s)']:.0f} |")
    if len(rows) > 1:
        summary = [f"{statistics.mean(r[key] for r in rows):.2f} ± {statistics.stdev(r[key] for r in rows):.2f}" for key in [*args.metrics, "dev"]]
        print(f"| mean ± std over {len(rows)} | | " + " | ".join(summary) + " | | |")


if __name__ == "__main__":
    main()
