"""Bad input through the `structkd` command, as a hostile user would give it.

Every case asserts the policy of README's "Bad input" section: a user error exits with code 2 and
one `Error:` line naming the file (with line and sentence id where there is one) or the argument,
never a traceback; warnings-only cases exit 0 and name the file; and every file the command was
given is byte-identical afterwards.
"""

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.bad_input.conftest import run_structkd
from tests.models.test_parsers import FIXTURE as UD_FIXTURE
from tests.models.test_parsers import parser_config
from tests.models.test_taggers import FIXTURES as NER_FIXTURES
from tests.models.test_taggers import tagger_config
from tests.toy_model import FIXTURES, REPOSITORY, toy_config, write_config

NER_TEST = NER_FIXTURES / "test.iob2"
MALFORMED = FIXTURES / "malformed"


@dataclass
class Case:
    """One command and what it must answer: `code`, and `fragments` that the output contains
    (the file or argument at fault, and what is wrong)."""

    arguments: list
    fragments: list[str]
    code: int = 2
    absent: list[str] = field(default_factory=list)  # what the output must not say


def conllu(*sentences: list[int], sent_id: str = "s", deprels: list[str] | None = None) -> str:
    """A CoNLL-U file with one sentence per list of heads (word i's head at i - 1)."""
    blocks = []
    for number, heads in enumerate(sentences, start=1):
        lines = [f"# sent_id = {sent_id}{number}", f"# text = {' '.join(f'w{i}' for i in range(1, len(heads) + 1))}"]
        for word, head in enumerate(heads, start=1):
            relation = (deprels or [])[word - 1] if deprels else ("root" if head == 0 else "dep")
            lines.append(f"{word}\tw{word}\tw{word}\tNOUN\t_\t_\t{head}\t{relation}\t_\t_")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


VALID_TREE = [2, 0, 2]


def uner(*tags: str) -> str:
    lines = ["# sent_id = u1"] + [f"{i}\tword{i}\t{tag}\t-\t-" for i, tag in enumerate(tags, start=1)]
    return "\n".join(lines) + "\n\n"


def write(ctx, name: str, content: str | bytes) -> Path:
    path = ctx.tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def train_config(ctx, name: str, **changes) -> Path:
    config = parser_config("biaffine_parser", "local", num_epochs=1)
    config.update(changes)
    return write_config(ctx.tmp / name, config)


# Each builder gets the context (tmp: a fresh directory; ner, parser, labeler: archives) and
# returns its Case.
CASES: dict[str, Callable[[SimpleNamespace], Case]] = {
    # --- readers: CoNLL-U ---
    "ud-wrong-column-count": lambda c: Case(
        ["evaluate", c.parser, MALFORMED / "universal_dependencies_wrong_column_count.conllu"],
        ["universal_dependencies_wrong_column_count.conllu:", "columns"],
    ),
    "ud-non-integer-head": lambda c: Case(
        ["evaluate", c.parser, MALFORMED / "universal_dependencies_non_integer_head.conllu"],
        ["universal_dependencies_non_integer_head.conllu:", "HEAD"],
    ),
    "ud-head-out-of-range": lambda c: Case(
        ["evaluate", c.parser, MALFORMED / "universal_dependencies_head_out_of_range.conllu"],
        ["universal_dependencies_head_out_of_range.conllu:", "HEAD"],
    ),
    "ud-cycle": lambda c: Case(
        ["evaluate", c.parser, write(c, "cycle.conllu", conllu(VALID_TREE, [0, 3, 2, 1]))],
        ["cycle.conllu:7:", "sentence 's2'", "the words 2 -> 3 -> 2 form a cycle"],
    ),
    "ud-self-loop": lambda c: Case(
        ["evaluate", c.parser, write(c, "loop.conllu", conllu([0, 2, 1]))], ["loop.conllu:1:", "'s1'", "its own head"]
    ),
    "ud-no-root": lambda c: Case(
        ["evaluate", c.parser, write(c, "noroot.conllu", conllu([2, 3, 2]))], ["noroot.conllu:1:", "no word is attached to the root"]
    ),
    "ud-two-roots": lambda c: Case(
        ["evaluate", c.parser, write(c, "roots.conllu", conllu([0, 1, 0]))], ["roots.conllu:1:", "2 words are attached to the root"]
    ),
    "ud-invalid-tree-in-training-data": lambda c: Case(
        ["train", train_config(c, "cfg.json", train_data_path=str(write(c, "t.conllu", conllu([0, 1, 0])))), "-s", c.tmp / "run"],
        ["t.conllu:1:", "2 words are attached to the root"],
    ),
    "ud-invalid-tree-in-predict-input": lambda c: Case(
        ["predict", c.parser, write(c, "p.conllu", conllu([2, 3, 1]))], ["p.conllu:1:", "no word is attached"]
    ),
    "ud-comments-only": lambda c: Case(
        ["evaluate", c.parser, write(c, "comments.conllu", "# newdoc id = d1\n# sent_id = a\n")],
        ["comments.conllu:1:", "comment lines with no token line"],
        absent=["multiword"],
    ),
    "ud-empty-file-evaluate": lambda c: Case(["evaluate", c.parser, write(c, "empty.conllu", "")], ["empty.conllu", "no sentence"]),
    "ud-empty-file-predict": lambda c: Case(["predict", c.parser, write(c, "empty.conllu", "")], ["empty.conllu", "no sentence to predict"]),
    "ud-blank-lines-only-predict": lambda c: Case(["predict", c.parser, write(c, "blank.conllu", "\n\n\n")], ["blank.conllu", "no sentence"]),
    "ud-invalid-utf8": lambda c: Case(
        ["evaluate", c.parser, write(c, "latin1.conllu", conllu(VALID_TREE).replace("w2", "caf\xe9").encode("latin-1"))],
        ["latin1.conllu:", "invalid UTF-8"],
    ),
    "ud-binary-file": lambda c: Case(
        ["predict", c.parser, write(c, "binary.conllu", bytes(range(256)) * 4)], ["binary.conllu:1:"]
    ),
    "ud-word-id-gap": lambda c: Case(
        ["evaluate", c.parser, write(c, "gap.conllu", conllu(VALID_TREE).replace("\n3\t", "\n4\t"))],
        ["gap.conllu:5:", "word ID 4 where 3 was expected"],
    ),
    "ud-head-underscore-among-heads": lambda c: Case(
        ["evaluate", c.parser, write(c, "half.conllu", conllu(VALID_TREE).replace("\t2\tdep", "\t_\tdep", 1))],
        ["half.conllu:3:", "HEAD is _"],
    ),
    "ud-input-is-a-directory": lambda c: Case(["predict", c.parser, c.tmp], ["is a directory"]),
    "ud-missing-input": lambda c: Case(["evaluate", c.parser, c.tmp / "missing.conllu"], ["missing.conllu", "does not exist"]),
    # --- readers: UniversalNER and plain text ---
    "uner-wrong-column-count": lambda c: Case(
        ["evaluate", c.ner, MALFORMED / "universal_ner_wrong_column_count.iob2"], ["universal_ner_wrong_column_count.iob2:"]
    ),
    "uner-unknown-tag-prefix": lambda c: Case(
        ["evaluate", c.ner, MALFORMED / "universal_ner_unknown_tag_prefix.iob2"], ["universal_ner_unknown_tag_prefix.iob2:"]
    ),
    "uner-missing-blank-line": lambda c: Case(
        ["predict", c.ner, MALFORMED / "universal_ner_missing_blank_line.iob2"], ["universal_ner_missing_blank_line.iob2:"]
    ),
    "uner-unseen-tag-evaluate": lambda c: Case(
        ["evaluate", c.ner, write(c, "weapon.iob2", uner("B-WEAPON", "I-WEAPON", "O") + uner("B-PER", "O"))],
        ["weapon.iob2", "2 gold label(s) the model has never seen", "B-WEAPON (1)", '"f1-measure-overall"'],
        code=0,
    ),
    "uner-unseen-tag-predict": lambda c: Case(
        ["predict", c.ner, write(c, "weapon.iob2", uner("B-WEAPON", "O"))], ['"tags"'], code=0, absent=["WEAPON"]
    ),
    "uner-empty-file-predict": lambda c: Case(["predict", c.ner, write(c, "empty.iob2", "")], ["empty.iob2", "no sentence"]),
    "plain-text-invalid-utf8": lambda c: Case(
        ["predict", c.ner, MALFORMED / "plain_text_invalid_utf8.txt", "--use-reader", "plain_text"],
        ["plain_text_invalid_utf8.txt:", "invalid UTF-8"],
    ),
    "plain-text-10000-word-line": lambda c: Case(
        ["predict", c.ner, write(c, "long.txt", "ok line\n" + "word " * 10000 + "\n"), "--use-reader", "plain_text"],
        ["long.txt:2:", "10000 words on one line"],
    ),
    "plain-text-control-characters": lambda c: Case(
        ["predict", c.ner, write(c, "ctrl.txt", "fine\nbad\x00\x01line\n"), "--use-reader", "plain_text"], ["ctrl.txt:2:"]
    ),
    "plain-text-for-a-rel-pos-labeler": lambda c: Case(
        ["predict", c.labeler, FIXTURES / "plain_text.txt", "--use-reader", "plain_text"],
        ["plain_text.txt:1:", "UPOS"],
    ),
    "unknown-reader-name": lambda c: Case(
        ["predict", c.ner, NER_TEST, "--use-reader", "plain_txt"], ["--use-reader", "did you mean 'plain_text'?"]
    ),
    # --- outputs ---
    "predict-output-is-the-input": lambda c: Case(
        ["predict", c.ner, write(c, "in.iob2", NER_TEST.read_text()), "--output-file", c.tmp / "in.iob2"],
        ["--output-file", "in.iob2", "input"],
    ),
    "predict-output-is-the-archive": lambda c: Case(["predict", c.ner, NER_TEST, "--output-file", c.ner], ["--output-file", "model.tar.gz"]),
    "predict-output-is-a-link-to-the-input": lambda c: Case(
        ["predict", c.ner, write(c, "in.iob2", NER_TEST.read_text()), "--output-file", link(c, "in.iob2", "alias.iob2")],
        ["--output-file", "alias.iob2", "input"],
    ),
    "predict-output-in-a-missing-directory": lambda c: Case(
        ["predict", c.ner, NER_TEST, "--output-file", c.tmp / "nowhere" / "out.json"],
        ["nowhere", "does not exist"],
        absent=[".tmp"],
    ),
    "predict-output-is-a-directory": lambda c: Case(["predict", c.ner, NER_TEST, "--output-file", c.tmp], ["--output-file"]),
    "predict-batch-size-zero": lambda c: Case(["predict", c.ner, NER_TEST, "--batch-size", "0"], ["--batch-size"]),
    "predict-unknown-output-format": lambda c: Case(
        ["predict", c.ner, NER_TEST, "--output-format", "xml"], ["'xml' is not one of 'json', 'conll'"]
    ),
    "evaluate-predictions-output-is-the-input": lambda c: Case(
        ["evaluate", c.parser, write(c, "gold.conllu", UD_FIXTURE.read_text()), "--predictions-output-file", c.tmp / "gold.conllu"],
        ["--predictions-output-file", "gold.conllu", "input"],
    ),
    "evaluate-metrics-output-is-the-input": lambda c: Case(
        ["evaluate", c.parser, write(c, "gold.conllu", UD_FIXTURE.read_text()), "--output-file", c.tmp / "gold.conllu"],
        ["--output-file", "gold.conllu"],
    ),
    "evaluate-both-outputs-one-file": lambda c: Case(
        ["evaluate", c.parser, UD_FIXTURE, "--output-file", c.tmp / "o", "--predictions-output-file", c.tmp / "o"],
        ["--output-file and --predictions-output-file"],
    ),
    "export-into-a-non-empty-directory": lambda c: Case(
        ["export-spacy", c.ner, write(c, "x", "keep me").parent, "--lang", "en"], ["not empty"]
    ),
    "export-without-a-language": lambda c: Case(["export-spacy", c.ner, c.tmp / "pipeline"], ["--lang"]),
    "export-unknown-language": lambda c: Case(["export-spacy", c.ner, c.tmp / "pipeline", "--lang", "zz"], ["--lang zz"]),
    # --- configs ---
    "config-missing": lambda c: Case(["train", c.tmp / "missing.jsonnet", "-s", c.tmp / "run"], ["missing.jsonnet", "does not exist"]),
    "config-jsonnet-syntax-error": lambda c: Case(
        ["train", write(c, "broken.jsonnet", "{ model: { type: 'x', }"), "-s", c.tmp / "run"], ["broken.jsonnet"]
    ),
    "config-unknown-top-level-key": lambda c: Case(
        ["train", train_config(c, "c.json", trainr={}), "-s", c.tmp / "run"], ["trainr"]
    ),
    "config-unknown-model-type": lambda c: Case(
        ["train", train_config(c, "c.json", model={"type": "biafine_parser"}), "-s", c.tmp / "run"], ["biafine_parser", "did you mean"]
    ),
    "config-misspelled-parameter": lambda c: Case(
        ["train", write_config(c.tmp / "c.json", toy_config(model={"type": "toy_tagger", "embeding_dim": 3})), "-s", c.tmp / "run",
         "--include-package", "tests.toy_model"],
        ["embeding_dim"],
    ),
    "config-missing-train-data": lambda c: Case(
        ["train", train_config(c, "c.json", train_data_path=str(c.tmp / "nope.conllu")), "-s", c.tmp / "run"], ["nope.conllu", "no such file"]
    ),
    "config-unset-ext-var": lambda c: Case(
        ["train", write(c, "ext.jsonnet", '{random_seed: std.extVar("STRUCTKD_TEST_UNSET")}'), "-s", c.tmp / "run"], ["STRUCTKD_TEST_UNSET"]
    ),
    "config-overrides-not-json": lambda c: Case(
        ["train", train_config(c, "c.json"), "-s", c.tmp / "run", "-o", "{trainer: "], ["overrides"]
    ),
    "serialization-dir-is-a-file": lambda c: Case(["train", train_config(c, "c.json"), "-s", write(c, "afile", "x")], ["afile", "is a file"]),
    "recover-and-force": lambda c: Case(["train", train_config(c, "c.json"), "-s", c.tmp / "run", "-r", "-f"], ["--recover or --force"]),
    "recover-without-a-run": lambda c: Case(["train", train_config(c, "c.json"), "-s", c.tmp / "run", "-r"], ["no config.json"]),
    "existing-directory-without-force": lambda c: Case(
        ["train", train_config(c, "c.json"), "-s", write(c, "run/keep.txt", "x").parent], ["not empty", "--force"]
    ),
    "tagger-teacher-for-a-parser-student": lambda c: Case(
        ["train", write_config(c.tmp / "kd.json", {**parser_config("biaffine_parser", "local", num_epochs=1), "model": {
            "type": "distillation", "teacher_archive": str(c.ner), "objective": {"type": "structural"},
            "student": parser_config("biaffine_parser", "local")["model"]}}), "-s", c.tmp / "run"],
        ["model.tar.gz holds a crf tagger", "the student is a biaffine parser"],
    ),
    "gold-fraction-rest-without-gold-fraction": lambda c: Case(
        ["train", train_config(c, "c.json", gold_fraction_rest="dropped"), "-s", c.tmp / "run"], ["gold_fraction_rest", "gold_fraction is not"]
    ),
    "synthetic-teacher-with-unlabeled-text": lambda c: Case(
        ["train", write_config(c.tmp / "kd.json", {**tagger_config("crf_tagger"), "gold_fraction": 0.5, "model": {
            "type": "distillation", "teacher_archive": str(c.ner), "objective": {"type": "partial_teacher"},
            "student": tagger_config("crf_tagger")["model"]}}), "-s", c.tmp / "run"],
        ["PartialTeacher builds its teacher from gold tags", 'gold_fraction_rest: "dropped"'],
    ),
    # --- archives ---
    "archive-garbage": lambda c: Case(["evaluate", write(c, "garbage.tar.gz", b"garbage"), NER_TEST], ["garbage.tar.gz", "not a readable model archive"]),
    "archive-empty": lambda c: Case(["predict", write(c, "empty.tar.gz", b""), NER_TEST], ["empty.tar.gz"]),
    "archive-truncated": lambda c: Case(
        ["predict", write(c, "cut.tar.gz", c.ner.read_bytes()[: c.ner.stat().st_size // 2]), NER_TEST], ["cut.tar.gz"]
    ),
    "archive-without-config": lambda c: Case(["evaluate", without_member(c, c.ner, "config.json"), NER_TEST], ["partial.tar.gz", "config.json"]),
    "archive-without-weights": lambda c: Case(["evaluate", without_member(c, c.ner, "weights.safetensors"), NER_TEST], ["partial.tar.gz"]),
    "archive-missing": lambda c: Case(["evaluate", c.tmp / "none.tar.gz", NER_TEST], ["none.tar.gz", "does not exist"]),
    "archive-is-a-directory": lambda c: Case(["evaluate", c.tmp, NER_TEST], ["is a directory"]),
    "archive-of-a-tagger-with-parser-data": lambda c: Case(["evaluate", c.ner, UD_FIXTURE], ["universal_dependencies.conllu:"]),
}


def link(ctx, target: str, name: str) -> Path:
    (ctx.tmp / name).symlink_to(ctx.tmp / target)
    return ctx.tmp / name


def without_member(ctx, archive: Path, member: str) -> Path:
    """A copy of `archive` without its member named `member`."""
    partial = ctx.tmp / "partial.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(partial, "w:gz") as target:
        for info in source.getmembers():
            if Path(info.name).name != member:
                target.addfile(info, source.extractfile(info) if info.isfile() else None)
    return partial


def snapshot(paths) -> dict[Path, str]:
    """The SHA-256 of every file under `paths` (files or directories)."""
    digests = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()) if path.is_dir() else []
        for file in files:
            digests[file] = hashlib.sha256(file.read_bytes()).hexdigest()
    return digests


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, capsys, ner_archive, parser_archive, labeler_archive, monkeypatch):
    monkeypatch.delenv("STRUCTKD_TEST_UNSET", raising=False)
    monkeypatch.chdir(tmp_path)
    ctx = SimpleNamespace(tmp=tmp_path / "case", ner=ner_archive, parser=parser_archive, labeler=labeler_archive)
    ctx.tmp.mkdir()
    case = CASES[name](ctx)
    given = [Path(a) for a in case.arguments if isinstance(a, Path) and Path(a).exists()]
    before = snapshot(given)
    code, output = run_structkd(capsys, case.arguments)
    assert "Traceback" not in output, output
    assert code == case.code, output
    if case.code == 2:
        assert output.count("Error: ") == 1, output
    for fragment in case.fragments:
        assert fragment in output, output
    for fragment in case.absent:
        assert fragment not in output, output
    assert snapshot(given) == before, "an input file changed"


# --- faults: live runs, killed runs, killed archiving and cache builds ---


def test_force_refuses_a_directory_a_live_run_holds(tmp_path, capsys):
    config = write_config(tmp_path / "c.json", toy_config())
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(f"{live.pid}\n")
        before = snapshot([run])
        code, output = run_structkd(capsys, ["train", config, "-s", run, "-f", "--include-package", "tests.toy_model"])
        assert code == 2 and "Traceback" not in output
        assert f"in use by a live run (pid {live.pid}" in output and str(run) in output
        assert snapshot([run]) == before
    finally:
        live.kill()
        live.wait()


def test_a_killed_run_resumes_and_its_leftovers_are_removed(tmp_path, capsys):
    """A run killed mid-epoch (its lock and a half-written archive left behind) resumes with
    --recover, says it removed them, and can be extended by a larger num_epochs."""
    config = write_config(tmp_path / "c.json", toy_config(evaluate_on_test=False))
    run = tmp_path / "run"
    environment = {**os.environ, "TOY_TAGGER_EXIT_AFTER_BATCHES": "12", "PYTHONPATH": str(REPOSITORY)}
    command = [sys.executable, "-m", "structkd_plugin", "train", str(config), "-s", str(run), "--include-package", "tests.toy_model"]
    killed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 17, killed.stderr
    assert (run / ".lock").is_file()
    (run / ".model.tar.gz.abc123.tmp").write_bytes(b"")  # as a kill during archiving leaves it
    code, output = run_structkd(capsys, ["train", config, "-s", run, "--recover", "--include-package", "tests.toy_model"])
    assert code == 0, output
    assert "removed the stale lock" in output and "1 temporary file(s)" in output
    assert not list(run.glob("*.tmp")) and not (run / ".lock").exists()
    assert json.loads((run / "metrics.json").read_text())["epoch"] == 2

    extended = ["train", config, "-s", run, "--recover", "--include-package", "tests.toy_model", "-o", '{"trainer.num_epochs": 4}']
    code, output = run_structkd(capsys, extended)
    assert code == 0, output
    assert json.loads((run / "metrics.json").read_text())["epoch"] == 3
    changed = ["train", config, "-s", run, "--recover", "--include-package", "tests.toy_model", "-o", '{"trainer.optimizer.lr": 0.5}']
    code, output = run_structkd(capsys, changed)
    assert code == 2 and "in trainer" in output and "only a larger trainer.num_epochs" in output


def test_archives_and_pipelines_follow_the_umask(tmp_path, capsys, ner_archive):
    session_umask = os.umask(0o027)
    try:
        # The archive was written under the session's umask; the pipeline under 027.
        assert ner_archive.stat().st_mode & 0o777 == 0o666 & ~session_umask
        pipeline = tmp_path / "pipeline"
        code, output = run_structkd(capsys, ["export-spacy", ner_archive, pipeline, "--lang", "en"])
        assert code == 0, output
        modes = {path.relative_to(pipeline): path.stat().st_mode & 0o777 for path in pipeline.rglob("*")}
        assert all(mode == (0o750 if (pipeline / path).is_dir() else 0o640) for path, mode in modes.items()), modes
    finally:
        os.umask(session_umask)


def test_invalid_trees_may_be_skipped_with_a_counted_warning(tmp_path, capsys):
    data = tmp_path / "mixed.conllu"
    data.write_text(UD_FIXTURE.read_text(encoding="utf-8") + conllu([0, 1, 0], [2, 3, 2]), encoding="utf-8")
    config = parser_config("biaffine_parser", "local", num_epochs=1)
    config.update(train_data_path=str(data), dataset_reader={"type": "universal_dependencies", "invalid_trees": "skip"})
    code, output = run_structkd(capsys, ["train", write_config(tmp_path / "c.json", config), "-s", tmp_path / "run"])
    assert code == 0, output
    assert "mixed.conllu: skipped 2 sentence(s) whose gold tree is invalid" in output
