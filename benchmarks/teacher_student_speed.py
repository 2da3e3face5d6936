"""A teacher and its distilled tagger student, side by side: test accuracy and words per second.

The teacher is anything `distillation.teacher_archive` takes (a structkd archive, or a Hugging Face
token classifier directory as it is), run by structkd's prediction loop: a transformer is not a
structkd spaCy component. The student archive is exported with `structkd export-spacy` and run as
users deploy it, by `nlp.pipe` over `Doc(words=...)`, reading its tags from `--attribute`. Both
read the same tokenized sentences of DATA (the student's reader). Passes alternate; the median
time is reported. Accuracy is the share of words whose predicted tag is the gold tag.

    python benchmarks/teacher_student_speed.py ../shared/data/UD_English-EWT/en_ewt-ud-test.conllu \
        --teacher runs/minilm-upos --student runs/upos-hf/objective=structural,seed=1/model.tar.gz --lang en
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

from structkd_plugin.archival import load_archive, load_teacher
from structkd_plugin.commands.cli import cli
from structkd_plugin.config import import_plugins
from structkd_plugin.models.predictions import predictions


def accuracy(predicted: list[list[str]], gold: list[list[str]]) -> float:
    pairs = [(p, g) for p_sentence, g_sentence in zip(predicted, gold) for p, g in zip(p_sentence, g_sentence, strict=True)]
    return sum(p == g for p, g in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--teacher", required=True, help="a structkd archive or a Hugging Face token classifier directory")
    parser.add_argument("--student", required=True, help="a tagger's structkd archive")
    parser.add_argument("--lang", default="xx", help="the blank spaCy language of the student's pipeline")
    parser.add_argument("--attribute", default="tag_", help="the token attribute the student's component writes")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_plugins()
    student = load_archive(args.student)
    teacher = load_teacher(args.teacher)
    teacher.eval()
    instances = list(student.validation_dataset_reader.read(args.data))
    gold = [instance["tags"] for instance in instances]
    words = sum(len(tags) for tags in gold)
    tagged: dict[str, list[list[str]]] = {}
    seconds: dict[str, list[float]] = {"teacher (structkd predict)": [], "student (spaCy pipeline)": []}
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = Path(scratch) / "pipeline"
        cli.main(args=["export-spacy", args.student, str(pipeline), "--lang", args.lang], standalone_mode=False)
        nlp = spacy.load(pipeline)
        component = nlp.get_pipe(nlp.pipe_names[-1])
        component.batch_size = args.batch_size

        def teacher_pass() -> list[list[str]]:
            return [prediction["tags"] for prediction in predictions(teacher, instances, args.batch_size)]

        def student_pass() -> list[list[str]]:
            docs = (Doc(nlp.vocab, words=instance["words"]) for instance in instances)
            return [[token._.get(component.extension) if component.extension else getattr(token, component.attribute) for token in doc] for doc in nlp.pipe(docs, batch_size=args.batch_size)]

        for _ in range(args.repeats):
            for name, run in zip(seconds, (teacher_pass, student_pass)):
                started = time.perf_counter()
                tagged[name] = run()
                seconds[name].append(time.perf_counter() - started)

    print(
        f"{args.data} ({len(instances):,} sentences, {words:,} words); teacher {args.teacher}; student {args.student}; "
        f"batch size {args.batch_size}; CPU ({platform.machine()}, {args.threads} threads), torch {torch.__version__}, "
        f"spaCy {spacy.__version__}; {date.today()}; median of {args.repeats} alternating passes."
    )
    print("\n| model | accuracy | seconds | words/s |\n|---|---|---|---|")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"| {name} | {100 * accuracy(tagged[name], gold):.2f} | {median:.2f} | {words / median:,.0f} |")
    teacher_time, student_time = medians.values()
    print(f"\nstudent words/s / teacher words/s: {teacher_time / student_time:.1f}")


if __name__ == "__main__":
    main()
