"""Prediction speed of archived models: sentences and words per second, as `structkd predict` runs them.

Reads DATA once with each archive's own reader, then times `predictions` (tensorize, forward,
decode) over all of it, `--repeats` times, archives interleaved; reports the median.

    python benchmarks/prediction_speed.py DATA ARCHIVE [ARCHIVE ...] --batch-size 64
"""

import argparse
import platform
import statistics
import time
from datetime import date

import torch

from structkd_plugin.archival import load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import import_plugins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("archives", nargs="+")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_plugins()

    loaded = []
    for path in args.archives:
        archive = load_archive(path)
        instances = list(archive.validation_dataset_reader.read(args.data))
        loaded.append((path, archive.model, instances))
    seconds = {path: [] for path in args.archives}
    for _ in range(args.repeats):
        for path, model, instances in loaded:
            started = time.perf_counter()
            for _ in predictions(model, instances, args.batch_size):
                pass
            seconds[path].append(time.perf_counter() - started)

    print(
        f"{args.data}; batch size {args.batch_size}; CPU ({platform.machine()}, {args.threads} threads), "
        f"torch {torch.__version__}; {date.today()}; median of {args.repeats} passes."
    )
    print("\n| archive | parameters | sentences | tokens | seconds | sentences/s | tokens/s |\n|---|---|---|---|---|---|---|")
    for path, model, instances in loaded:
        tokens = sum(len(instance["words"]) for instance in instances)
        median = statistics.median(seconds[path])
        parameters = sum(p.numel() for p in model.parameters())
        print(
            f"| {path} | {parameters:,} | {len(instances):,} | {tokens:,} | {median:.2f} | "
            f"{len(instances) / median:,.1f} | {tokens / median:,.0f} |"
        )


if __name__ == "__main__":
    main()
