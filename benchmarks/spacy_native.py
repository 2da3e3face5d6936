"""spaCy's own NER or parser trained with `spacy train`, against structkd models exported to spaCy:
test accuracy and words per second of the pipelines on the same tokenized sentences.

The corpus is read with structkd's own reader (`universal_ner` for `--task ner`, `universal_dependencies`
for `--task parser`), so every pipeline sees the same sentences and tokens, and written as spaCy
`DocBin`s; spaCy's CPU "efficiency" config (`spacy init config --pipeline ner|parser --optimize
efficiency`) is trained on the training file with the dev file for model selection. Every pipeline
then annotates `Doc(words=...)` of the test sentences (one doc per sentence) with `nlp.pipe`. NER
is scored with spaCy's `Scorer` (exact span match, the conlleval definition); parsing with UAS and
LAS over every word, punctuation included, as structkd's `AttachmentScores` (a word that spaCy's
parser makes the start of a new sentence is a root).

    python benchmarks/spacy_native.py --student runs/bosque/student-structural/model.tar.gz \
        --corpus UNER_Portuguese-Bosque/pt_bosque-ud --lang pt --max-steps 3000
    python benchmarks/spacy_native.py --task parser --student runs/ewt/student/model.tar.gz \
        --student runs/ewt/teacher/model.tar.gz --corpus UD_English-EWT/en_ewt-ud --lang en
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
from structkd_plugin.data import UniversalDependenciesDatasetReader, UniversalNerDatasetReader
from structkd_plugin.structures import spans_from_tags

ROOT = Path(__file__).resolve().parents[1]


def ner_docs(path: Path, vocab) -> list[Doc]:
    docs = []
    for instance in UniversalNerDatasetReader(label_scheme="BIO").read(path):
        doc = Doc(vocab, words=instance["words"])
        doc.ents = [doc.char_span(doc[start].idx, doc[end].idx + len(doc[end]), label=label) for label, start, end in spans_from_tags(instance["tags"], "BIO")]
        docs.append(doc)
    return docs


def parsed_docs(path: Path, vocab) -> list[Doc]:
    docs = []
    for instance in UniversalDependenciesDatasetReader().read(path):
        # Doc wants absolute head positions, a root being its own head.
        heads = [position if head == 0 else head - 1 for position, head in enumerate(instance["heads"])]
        docs.append(Doc(vocab, words=instance["words"], heads=heads, deps=instance["deprels"]))
    return docs


def ner_scores(predicted: list[Doc], gold: list[Doc]) -> dict[str, float]:
    return {"F1": Scorer.score_spans([Example(p, g) for p, g in zip(predicted, gold)], "ents")["ents_f"]}


def attachment_scores(predicted: list[Doc], gold: list[Doc]) -> dict[str, float]:
    """UAS, LAS and LAS_full over all words, as structkd's `AttachmentScores`: LAS compares the
    relations' universal parts (`aux` of `aux:pass`), as the CoNLL 2018 scorer, LAS_full the full
    labels. Labels are compared lowercased, since spaCy's parser calls every root's relation ROOT."""

    def arcs(doc: Doc) -> list[tuple[int, str]]:
        return [(-1, "root") if token.head.i == token.i else (token.head.i, token.dep_.lower()) for token in doc]

    words = heads = labeled = labeled_full = 0
    for p, g in zip(predicted, gold):
        for (head, relation), (gold_head, gold_relation) in zip(arcs(p), arcs(g)):
            words += 1
            heads += head == gold_head
            labeled += head == gold_head and relation.split(":")[0] == gold_relation.split(":")[0]
            labeled_full += head == gold_head and relation == gold_relation
    return {"UAS": heads / words, "LAS": labeled / words, "LAS_full": labeled_full / words}


# Per task: the data files' extension, how to read them into gold docs, how to score predictions
# and the names of the scores.
TASKS = {
    "ner": {"extension": "iob2", "gold_docs": ner_docs, "scores": ner_scores, "metrics": ["F1"]},
    "parser": {"extension": "conllu", "gold_docs": parsed_docs, "scores": attachment_scores, "metrics": ["UAS", "LAS", "LAS_full"]},
}


def run(pipelines: dict, docs: list[Doc], repeats: int) -> dict[str, tuple[list[Doc], float]]:
    """Per pipeline: its predicted docs and the median seconds of `repeats` passes over fresh
    copies of `docs`. The pipelines' passes alternate, so that a busy machine slows them alike."""
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    predicted = {}
    for _ in range(repeats):
        for name, nlp in pipelines.items():
            fresh = [Doc(nlp.vocab, words=[token.text for token in doc]) for doc in docs]
            started = time.perf_counter()
            predicted[name] = list(nlp.pipe(fresh, batch_size=64))
            seconds[name].append(time.perf_counter() - started)
    return {name: (predicted[name], statistics.median(seconds[name])) for name in pipelines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="ner", choices=list(TASKS))
    parser.add_argument("--student", required=True, action="append", help="a structkd model.tar.gz (repeatable)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--corpus", default="UNER_Portuguese-Bosque/pt_bosque-ud")
    parser.add_argument("--lang", default="pt")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_plugins()
    task = TASKS[args.task]
    prefix = Path(args.data_dir) / args.corpus
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        blank = spacy.blank(args.lang)
        splits = {split: task["gold_docs"](Path(f"{prefix}-{split}.{task['extension']}"), blank.vocab) for split in ("train", "dev", "test")}
        for split in ("train", "dev"):
            DocBin(docs=splits[split]).to_disk(scratch / f"{split}.spacy")
        config = scratch / "config.cfg"
        spacy_cli = [sys.executable, "-m", "spacy"]
        subprocess.run(
            [*spacy_cli, "init", "config", str(config), "--lang", args.lang, "--pipeline", args.task, "--optimize", "efficiency"],
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
        pipelines = {f"spaCy {args.task} (spacy train, efficiency config)": spacy.load(scratch / "native" / "model-best")}
        for number, archive in enumerate(args.student):
            exported = scratch / f"structkd-{number}"
            cli.main(args=["export-spacy", archive, str(exported), "--lang", args.lang], standalone_mode=False)
            pipelines[f"structkd ({archive})"] = spacy.load(exported)
        test = splits["test"]
        words = sum(len(doc) for doc in test)
        rows = []
        for name, (predicted, seconds) in run(pipelines, test, args.repeats).items():
            scores = task["scores"](predicted, test)
            rows.append(f"| {name} | " + " | ".join(f"{value * 100:.2f}" for value in scores.values()) + f" | {words / seconds:,.0f} |")
    print(
        f"\n{args.corpus} test ({len(test):,} sentences, {words:,} words); spaCy {spacy.__version__} trained "
        f"with max_steps {args.max_steps} (and spaCy's own early stopping, patience 1,600 steps) in {training_seconds:.0f} s; CPU ({platform.machine()}, {args.threads} thread(s) for "
        f"torch); {date.today()}; words/s: median of {args.repeats} alternating passes of nlp.pipe(batch_size=64)."
    )
    print("\n| pipeline | " + " | ".join(f"test {name}" for name in task["metrics"]) + " | words/s |")
    print("|---|" + "---|" * (len(task["metrics"]) + 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
