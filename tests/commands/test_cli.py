"""The `structkd` command line: train, evaluate, predict, and one-line user errors (exit code 2)."""

import json
import os
import subprocess
import sys

import pytest

from structkd_plugin.commands import main
from tests.toy_model import FIXTURES, REPOSITORY, toy_config, write_config

CONLL = str(FIXTURES / "conll2003_ner.txt")
PLAIN_TEXT = str(FIXTURES / "plain_text.txt")


def run_cli(capsys, *arguments: str) -> tuple[int, str, str]:
    """Runs `structkd ARGUMENTS` in this process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(arguments))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_user_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("Error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A toy model trained with `structkd train`."""
    directory = tmp_path_factory.mktemp("cli")
    config = write_config(directory / "config.json", toy_config(evaluate_on_test=False))
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                str(config),
                "-s",
                str(directory / "run"),
                "--include-package",
                "tests.toy_model",
                "-o",
                '{"trainer.num_epochs": 2}',
            ]
        )
    assert exit_info.value.code == 0
    assert json.loads((directory / "run" / "config.json").read_text())["trainer"]["num_epochs"] == 2
    return directory / "run" / "model.tar.gz"


def test_help_everywhere(capsys):
    for command in ([], ["train"], ["evaluate"], ["predict"]):
        code, out, _ = run_cli(capsys, *command, "--help")
        assert code == 0 and "Usage: structkd" in out
    assert "--serialization-dir" in run_cli(capsys, "train", "--help")[1]
    assert "--output-format" in run_cli(capsys, "predict", "--help")[1]


def test_evaluate_prints_and_writes_metrics(archive, tmp_path, capsys):
    output_file = tmp_path / "metrics.json"
    code, out, err = run_cli(
        capsys,
        "evaluate",
        str(archive),
        CONLL,
        "--output-file",
        str(output_file),
        "--include-package",
        "tests.toy_model",
    )
    assert code == 0, err
    metrics = json.loads(out)
    assert {"loss", "accuracy", "f1-measure-overall"} <= set(metrics)
    assert json.loads(output_file.read_text()) == metrics
    code, out, _ = run_cli(capsys, "evaluate", str(archive), CONLL, "--batch-size", "30")
    assert code == 0 and json.loads(out)["accuracy"] == metrics["accuracy"]


def test_predict_json_lines(archive, capsys):
    code, out, err = run_cli(capsys, "predict", str(archive), CONLL, "--batch-size", "5")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 30
    assert lines[0]["words"] == ["John", "Smith", "lives", "in", "London", "."]
    assert all(len(line["tags"]) == len(line["words"]) for line in lines)


def test_predict_conll_from_plain_text(archive, tmp_path, capsys):
    output_file = tmp_path / "predictions.conll"
    code, _, err = run_cli(
        capsys,
        "predict",
        str(archive),
        PLAIN_TEXT,
        "--use-reader",
        "plain_text",
        "--output-format",
        "conll",
        "--output-file",
        str(output_file),
    )
    assert code == 0, err
    sentences = output_file.read_text(encoding="utf-8").split("\n\n")
    assert sentences[-1] == ""
    first = [line.split("\t") for line in sentences[0].splitlines()]
    assert [columns[0] for columns in first] == ["John", "Smith", "lives", "in", "London", "."]
    assert all(len(columns) == 2 and (columns[1] == "O" or columns[1][:2] in ("B-", "I-")) for columns in first)
    sentence_count = sum(1 for line in open(PLAIN_TEXT, encoding="utf-8") if line.strip())
    assert len(sentences) - 1 == sentence_count


def test_conll_writes_conllu_columns_for_parses():
    from structkd_plugin.commands.predict import write_conll_sentence

    class Output:
        text = ""

        def write(self, text):
            self.text += text

    output = Output()
    write_conll_sentence(
        {"words": ["Dogs", "bark"], "upos": ["NOUN", "VERB"], "heads": [2, 0], "deprels": ["nsubj", "root"]}, output
    )
    assert output.text == "1\tDogs\t_\tNOUN\t_\t_\t2\tnsubj\t_\t_\n2\tbark\t_\tVERB\t_\t_\t0\troot\t_\t_\n\n"


def test_user_errors_exit_2_with_one_line(archive, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TOY_UNSET_VARIABLE", raising=False)
    assert_user_error(
        run_cli(capsys, "train", "--no-such-option"), "No such option: --no-such-option", "structkd train --help"
    )
    assert_user_error(
        run_cli(capsys, "train", str(tmp_path / "missing.jsonnet"), "-s", str(tmp_path / "r")), "does not exist"
    )
    assert_user_error(
        run_cli(capsys, "train", str(write_config(tmp_path / "c.json", toy_config()))), "Missing option '-s'"
    )
    assert_user_error(
        run_cli(capsys, "predict", str(archive), CONLL, "--output-format", "xml"), "'xml' is not one of 'json', 'conll'"
    )

    ext_var = tmp_path / "ext.jsonnet"
    ext_var.write_text('{random_seed: std.extVar("TOY_UNSET_VARIABLE")}')
    assert_user_error(run_cli(capsys, "train", str(ext_var), "-s", str(tmp_path / "r1")), "TOY_UNSET_VARIABLE")

    unknown_model = write_config(tmp_path / "unknown.json", toy_config(model={"type": "toy_tager"}))
    assert_user_error(
        run_cli(
            capsys, "train", str(unknown_model), "-s", str(tmp_path / "r2"), "--include-package", "tests.toy_model"
        ),
        "unknown name 'toy_tager' for model.type; did you mean 'toy_tagger'?",
    )
    misspelled = write_config(tmp_path / "misspelled.json", toy_config(model={"type": "toy_tagger", "embeding_dim": 3}))
    assert_user_error(
        run_cli(capsys, "train", str(misspelled), "-s", str(tmp_path / "r3"), "--include-package", "tests.toy_model"),
        "'embeding_dim'",
        "ToyTagger",
    )
    malformed_data = toy_config(train_data_path=str(FIXTURES / "malformed" / "conll2003_wrong_column_count.txt"))
    assert_user_error(
        run_cli(capsys, "train", str(write_config(tmp_path / "data.json", malformed_data)), "-s", str(tmp_path / "r4")),
        "conll2003_wrong_column_count.txt:",
    )
    (tmp_path / "r5").mkdir()
    (tmp_path / "r5" / "file").write_text("x")
    assert_user_error(run_cli(capsys, "train", str(unknown_model), "-s", str(tmp_path / "r5")), "not empty", "--force")

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"garbage")
    assert_user_error(
        run_cli(capsys, "evaluate", str(garbage), CONLL), "garbage.tar.gz is not a readable model archive"
    )
    assert_user_error(
        run_cli(capsys, "predict", str(archive), CONLL, "--use-reader", "plain_txt"), "did you mean 'plain_text'?"
    )
    assert_user_error(
        run_cli(capsys, "evaluate", str(archive), str(FIXTURES / "malformed" / "conll2003_unknown_tag_prefix.txt")),
        "conll2003_unknown_tag_prefix.txt:",
    )


def test_python_dash_m_reports_a_user_error_without_traceback(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    result = subprocess.run(
        [sys.executable, "-m", "structkd_plugin", "evaluate", str(tmp_path / "missing.tar.gz"), CONLL],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "missing.tar.gz" in result.stderr and "does not exist" in result.stderr
