"""spaCy's own NER trained with `spacy train` on a UniversalNER corpus, against a structkd student
exported to spaCy: test F1 and words per second of both pipelines on the same tokenized sentences.

The corpus is read with structkd's `universal_ner` reader (so both see the same sentences and
tokens) and written as spaCy `DocBin`s; spaCy's CPU "efficiency" NER config (`spacy init config
--pipeline ner --optimize efficiency`) is trained on the training file with the dev file for
model selection. Both pipelines then tag `Doc(words=...)` of the test file with `nlp.pipe`, and
are scored with spaCy's `Scorer` (exact span match, the conlleval definition).

    python benchmarks/spacy_native.py --student runs/bosque/student-structural/model.tar.gz \
        --corpus UNER_Portuguese-Bosque/pt_bosque-ud --lang pt --max-steps 3000
"""

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import spacy
import torch
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from structkd_plugin.commands.cli import cli
from structkd_plugin.config import import_plugins
from structkd_plugin.data import UniversalNerDatasetReader
from structkd_plugin.structures import spans_from_tags

ROOT = Path(__file__).resolve().parents[1]


def gold_docs(path: Path, vocab) -> list[Doc]:
    docs = []
    for instance in UniversalNerDatasetReader(label_scheme="BIO").read(path):
        doc = Doc(vocab, words=instance["words"])
        doc.ents = [doc.char_span(doc[start].idx, doc[end].idx + len(doc[end]), label=label) for label, start, end in spans_from_tags(instance["tags"], "BIO")]
        docs.append(doc)
    return docs


def run(nlp, docs: list[Doc], repeats: int) -> tuple[list[Doc], float]:
    """The predicted docs and the median seconds of `repeats` passes over fresh copies."""
    seconds = []
    for _ in range(repeats):
        fresh = [Doc(nlp.vocab, words=[token.text for token in doc]) for doc in docs]
        started = time.perf_counter()
        predicted = list(nlp.pipe(fresh, batch_size=64))
        seconds.append(time.perf_counter() - started)
    return predicted, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True, help="a structkd NER model.tar.gz")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--corpus", default="UNER_Portuguese-Bosque/pt_bosque-ud")
    parser.add_argument("--lang", default="pt")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_plugins()
    prefix = Path(args.data_dir) / args.corpus
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        blank = spacy.blank(args.lang)
        splits = {split: gold_docs(Path(f"{prefix}-{split}.iob2"), blank.vocab) for split in ("train", "dev", "test")}
        for split in ("train", "dev"):
            DocBin(docs=splits[split]).to_disk(scratch / f"{split}.spacy")
        config = scratch / "config.cfg"
        spacy_cli = [sys.executable, "-m", "spacy"]
        subprocess.run(
            [*spacy_cli, "init", "config", str(config), "--lang", args.lang, "--pipeline", "ner", "--optimize", "efficiency"],
            check=True,
        )
        started = time.perf_counter()
        subprocess.run(
            [
                *spacy_cli, "train", str(config), "--output", str(scratch / "native"),
                "--paths.train", str(scratch / "train.spacy"), "--paths.dev", str(scratch / "dev.spacy"),
                "--training.max_steps", str(args.max_steps),
            ],
            check=True,
        )  # fmt: skip
        training_seconds = time.perf_counter() - started
        cli.main(args=["export-spacy", args.student, str(scratch / "student"), "--lang", args.lang], standalone_mode=False)
        pipelines = {
            "spaCy NER (spacy train, efficiency config)": spacy.load(scratch / "native" / "model-best"),
            f"structkd student ({args.student})": spacy.load(scratch / "student"),
        }
        test = splits["test"]
        words = sum(len(doc) for doc in test)
        rows = []
        for name, nlp in pipelines.items():
            predicted, seconds = run(nlp, test, args.repeats)
            scores = Scorer.score_spans([Example(p, g) for p, g in zip(predicted, test)], "ents")
            rows.append(f"| {name} | {scores['ents_f'] * 100:.2f} | {words / seconds:,.0f} |")
    print(
        f"\n{args.corpus} test ({len(test):,} sentences, {words:,} words); spaCy {spacy.__version__} trained "
        f"{args.max_steps} steps in {training_seconds:.0f} s; CPU ({platform.machine()}, {args.threads} thread(s) for "
        f"torch); {date.today()}; words/s: median of {args.repeats} passes of nlp.pipe(batch_size=64)."
    )
    print("\n| pipeline | test F1 | words/s |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
