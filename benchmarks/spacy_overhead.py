"""Words per second of an exported spaCy pipeline against `structkd predict` on the same sentences.

The archive is exported with `structkd export-spacy` into a temporary folder and loaded with
`spacy.load`. Both sides read the same tokenized sentences of DATA (the archive's own reader):
`predictions(model, instances, batch)` for structkd, `nlp.pipe(docs, batch_size=batch)` over
`Doc(words=...)` for spaCy, so the difference is the component's own work (building batches from
docs, writing `doc.ents` or heads and labels). Passes alternate; the median is reported.

    python benchmarks/spacy_overhead.py DATA ARCHIVE --batch-size 64 --repeats 5
"""

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import spacy
import torch
from spacy.tokens import Doc

from structkd_plugin.archival import load_archive
from structkd_plugin.commands.cli import cli
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import import_plugins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("archive")
    parser.add_argument("--lang", default="xx", help="the blank spaCy language of the pipeline")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_plugins()
    archive = load_archive(args.archive)
    instances = list(archive.validation_dataset_reader.read(args.data))
    words = sum(len(instance["words"]) for instance in instances)
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = Path(scratch) / "pipeline"
        cli.main(args=["export-spacy", args.archive, str(pipeline), "--lang", args.lang], standalone_mode=False)
        nlp = spacy.load(pipeline)
        # The same sentences per forward pass on both sides (the component's default is 32).
        nlp.get_pipe(nlp.pipe_names[-1]).batch_size = args.batch_size

        def structkd_pass() -> None:
            for _ in predictions(archive.model, instances, args.batch_size):
                pass

        def spacy_pass() -> None:
            docs = (Doc(nlp.vocab, words=instance["words"]) for instance in instances)
            for _ in nlp.pipe(docs, batch_size=args.batch_size):
                pass

        seconds: dict[str, list[float]] = {"structkd predict": [], "spaCy pipeline": []}
        for _ in range(args.repeats):
            for name, run in (("structkd predict", structkd_pass), ("spaCy pipeline", spacy_pass)):
                started = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - started)

    print(
        f"{args.data} ({len(instances):,} sentences, {words:,} words); {args.archive}; batch size {args.batch_size}; "
        f"CPU ({platform.machine()}, {args.threads} threads), torch {torch.__version__}, spaCy {spacy.__version__}; "
        f"{date.today()}; median of {args.repeats} alternating passes."
    )
    print("\n| path | seconds | words/s |\n|---|---|---|")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"| {name} | {median:.2f} | {words / median:,.0f} |")
    print(f"\nspaCy pipeline / structkd predict time: {medians['spaCy pipeline'] / medians['structkd predict']:.3f}")


if __name__ == "__main__":
    main()
