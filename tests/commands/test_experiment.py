"""`structkd experiment`: a tiny grid on the fixtures trains its cells, writes the CSV, the summary
and the plots, skips finished cells when run again (and reruns a broken one), and refuses a grid
with a cell that cannot be built before running anything."""

import csv
import json

import pytest
from tango.common import Params
from tango.common.exceptions import ConfigurationError

from structkd_plugin.commands.experiment import Grid
from structkd_plugin.training.train import train_model
from tests.commands.test_cli import run_cli
from tests.toy_model import FIXTURES, REPOSITORY

NER = FIXTURES / "ner"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    config = {
        "dataset_reader": {"type": "universal_ner", "label_scheme": "BIO"},
        "train_data_path": str(NER / "train.iob2"),
        "model": {"type": "crf_tagger", "label_encoding": "BIO", "text_embedder": {"token_embedders": {"words": {"type": "word", "embedding_dim": 8}}}},
        "data_loader": {"max_tokens": 300},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": 1},
    }
    directory = tmp_path_factory.mktemp("teacher")
    train_model(Params(config), directory / "run")
    return directory / "run" / "model.tar.gz"


def write_grid(path, teacher, objectives):
    grid = {
        "base": str(REPOSITORY / "training_configs" / "distill" / "structural.jsonnet"),
        "env": {"TRAIN_PATH": str(NER / "train.iob2"), "DEV_PATH": str(NER / "dev.iob2"), "TEST_PATH": str(NER / "test.iob2"), "STUDENT": "crf"},
        "teacher": {"archive": str(teacher)},
        "axes": {"objective": objectives, "seed": [1, 2], "trainer.num_epochs": [1]},
        "metrics": ["test_f1-measure-overall"],
    }
    path.write_text(json.dumps(grid))
    return path


def test_a_grid_runs_summarizes_plots_and_resumes(teacher, tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.json", teacher, [{"type": "none"}, {"type": "structural"}])
    out = tmp_path / "experiment"
    code, stdout, stderr = run_cli(capsys, "experiment", str(grid), "-s", str(out), "--jobs", "2")
    assert code == 0, stderr
    with (out / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert sorted((row["objective"], row["seed"]) for row in rows) == [("none", "1"), ("none", "2"), ("structural", "1"), ("structural", "2")]
    assert all(float(row["test_f1-measure-overall"]) >= 0 and row["epochs"] == "1" for row in rows)
    summary = (out / "summary.md").read_text()
    assert "| objective | num_epochs | seeds | test_f1-measure-overall | test_f1-measure-overall vs none (paired by seed) |" in summary
    assert summary in stdout and "**" in summary
    assert (out / "test_f1-measure-overall_by_objective.png").stat().st_size > 1000

    # Run again: the finished cells are skipped, a broken one (no metrics.json) runs again.
    broken = out / "cells" / "objective=structural,seed=2,num_epochs=1"
    kept = (out / "cells" / "objective=none,seed=1,num_epochs=1" / "metrics.json").stat().st_mtime_ns
    (broken / "metrics.json").unlink()
    code, stdout, stderr = run_cli(capsys, "experiment", str(grid), "-s", str(out), "--summary-only")
    assert code == 0, stderr
    assert "summarizing the 3 of 4 cells that have finished" in stderr and "started" not in stderr
    assert stdout.startswith("Partial: 3 of 4 cells finished.") and "| structural | 1 | 1 |" in stdout
    assert (out / "summary.md").read_text() in stdout and not (broken / "metrics.json").exists()
    code, _, stderr = run_cli(capsys, "experiment", str(grid), "-s", str(out))
    assert code == 0, stderr
    assert "3 of 4 cells are done already" in stderr and "started objective=structural,seed=2,num_epochs=1" in stderr
    assert (broken / "metrics.json").is_file()
    assert (out / "cells" / "objective=none,seed=1,num_epochs=1" / "metrics.json").stat().st_mtime_ns == kept


def test_a_grid_with_a_cell_that_cannot_be_built_is_refused_before_anything_runs(teacher, tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.json", teacher, [{"type": "structural"}, {"type": "crf_to_softmax"}])
    code, _, stderr = run_cli(capsys, "experiment", str(grid), "-s", str(tmp_path / "out"))
    assert code == 2 and "Traceback" not in stderr
    assert "grid cell objective=crf_to_softmax,seed=1,num_epochs=1 cannot be built" in stderr
    assert not (tmp_path / "out" / "cells").exists()
    code, _, stderr = run_cli(capsys, "experiment", str(grid), "-s", str(tmp_path / "out"), "--summary-only")
    assert code == 2 and "no cell of" in stderr and "has finished" in stderr and "Traceback" not in stderr


def test_a_cell_that_cannot_train_on_its_datasets_is_refused_before_anything_runs(teacher, tmp_path, capsys):
    """A synthetic teacher needs gold tags on every batch: with gold_fraction's rest as unlabeled
    text the cell is refused; with the rest dropped it builds."""
    path = write_grid(tmp_path / "grid.json", teacher, [{"type": "label_smoothing"}])
    spec = json.loads(path.read_text())
    spec["overrides"] = {"gold_fraction": 0.5}
    spec["axes"]["gold_fraction_rest"] = ["dropped", "unlabeled"]
    path.write_text(json.dumps(spec))
    code, _, stderr = run_cli(capsys, "experiment", str(path), "-s", str(tmp_path / "out"))
    assert code == 2 and "Traceback" not in stderr
    assert "grid cell gold_fraction_rest=unlabeled,objective=label_smoothing,seed=1,num_epochs=1 cannot be built" in stderr
    assert "builds its teacher from gold tags" in stderr
    assert not (tmp_path / "out" / "cells").exists()
    spec["exclude"] = [{"gold_fraction_rest": "unlabeled"}]
    path.write_text(json.dumps(spec))
    grid = Grid(path)
    grid.check_cells(grid.cells(), {**grid.env, "TEACHER": str(teacher)})


def test_excluded_combinations_are_left_out_of_the_grid(tmp_path):
    spec = {
        "base": "base.jsonnet",
        "env": {"UNLABELED_PATH": ""},
        "axes": {"objective": [{"type": "none"}, {"type": "structural"}], "env.UNLABELED_PATH": {"gold": "", "raw": "raw/*.txt,b.txt"}, "seed": [1, 2]},
        "exclude": [{"objective": "none", "env.UNLABELED_PATH": "raw"}],
        "overrides": {"gold_fraction": 0.1, "model": {"dropout": 0.5}},
    }
    (tmp_path / "grid.json").write_text(json.dumps(spec))
    grid = Grid(tmp_path / "grid.json")
    cells = grid.cells()
    assert [(c["objective"]["type"], c["env.UNLABELED_PATH"], c["seed"]) for c in cells] == [
        ("none", "", 1), ("none", "", 2), ("structural", "", 1), ("structural", "", 2), ("structural", "raw/*.txt,b.txt", 1), ("structural", "raw/*.txt,b.txt", 2)
    ]
    assert grid.cell_name(cells[-1]) == "UNLABELED_PATH=raw,objective=structural,seed=2"  # Jsonnet sorts the axes
    assert grid.value_name("objective", {"type": "top_k", "k": 5}) == "top_k-k_5"
    # Relative paths and globs that name files are read from the grid's directory.
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("x\n")
    assert grid.cell_setup(cells[-1], {})[0]["UNLABELED_PATH"] == f"{tmp_path}/raw/*.txt,b.txt"
    # The grid's overrides reach every cell, merged with the cell's own.
    assert grid.cell_setup(cells[-1], {})[1] == {"gold_fraction": 0.1, "model": {"dropout": 0.5, "objective": {"type": "structural"}}, "random_seed": 2}
    assert grid.overrides == {"gold_fraction": 0.1, "model": {"dropout": 0.5}}
    # An empty ext var stays empty (not the grid's directory, which exists).
    assert Grid(tmp_path / "grid.json").env == {"UNLABELED_PATH": ""}
    (tmp_path / "grid.json").write_text(json.dumps({**spec, "exclude": [{"student": "crf"}]}))
    with pytest.raises(ConfigurationError, match="exclude"):
        Grid(tmp_path / "grid.json")


def test_a_bad_override_is_refused_before_the_teacher_trains(tmp_path, capsys):
    grid = {
        "base": str(REPOSITORY / "training_configs" / "distill" / "structural.jsonnet"),
        "env": {"TRAIN_PATH": str(NER / "train.iob2"), "DEV_PATH": str(NER / "dev.iob2"), "TEST_PATH": str(NER / "test.iob2"), "STUDENT": "crf"},
        "teacher": {"config": str(REPOSITORY / "training_configs" / "ner" / "bilstm_crf.jsonnet")},
        "axes": {"gold_fractoin": [0.1], "seed": [1]},
    }
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    code, _, stderr = run_cli(capsys, "experiment", str(tmp_path / "grid.json"), "-s", str(tmp_path / "out"))
    assert code == 2 and "Traceback" not in stderr
    assert "grid cell gold_fractoin=0.1,seed=1 cannot be built" in stderr and "gold_fraction" in stderr
    assert not (tmp_path / "out" / "teacher").exists()


def test_named_teachers_reach_a_multilingual_student_and_each_language_is_scored(teacher, tmp_path, capsys):
    """One teacher trained from its config with its own data, one given as an archive; the cells
    get both by language, and each cell is scored on each language's file."""
    grid = {
        "base": str(REPOSITORY / "training_configs" / "distill" / "multilingual.jsonnet"),
        "env": {
            "TRAIN_PATH": {"en": str(NER / "train.iob2"), "xx": str(NER / "test.iob2")},
            "DEV_PATH": {"en": str(NER / "dev.iob2")},
            "TEST_PATH": {"en": str(NER / "test.iob2")},
            "STUDENT": "crf",
        },
        "teacher": {
            "en": {
                "config": str(REPOSITORY / "training_configs" / "ner" / "bilstm_crf.jsonnet"),
                "env": {"TRAIN_PATH": str(NER / "train.iob2"), "DEV_PATH": str(NER / "dev.iob2"), "TEST_PATH": str(NER / "test.iob2")},
                "overrides": {"trainer": {"num_epochs": 1}},
            },
            "xx": {"archive": str(teacher)},
        },
        "axes": {"objective": [{"type": "structural"}], "seed": [1], "trainer.num_epochs": [1]},
        "evaluate": {"en": {"en": str(NER / "test.iob2")}, "xx": {"xx": str(NER / "dev.iob2")}},
        "metrics": ["en_f1-measure-overall", "xx_f1-measure-overall"],
    }
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "experiment", str(tmp_path / "grid.json"), "-s", str(out))
    assert code == 0, stderr
    assert (out / "teacher-en" / "model.tar.gz").is_file() and not (out / "teacher-xx").exists()
    cell = out / "cells" / "objective=structural,seed=1,num_epochs=1"
    archives = json.loads((cell / "config.json").read_text())["model"]["teacher_archive"]
    assert archives == {"en": str(out / "teacher-en" / "model.tar.gz"), "xx": str(teacher)}
    with (out / "results.csv").open() as file:
        (row,) = list(csv.DictReader(file))
    evaluations = json.loads((cell / "evaluations.json").read_text())
    assert float(row["en_f1-measure-overall"]) == evaluations["en"]["f1-measure-overall"]
    # The English test file scored alone is the run's own test score.
    assert evaluations["en"]["f1-measure-overall"] == pytest.approx(float(row["test_f1-measure-overall"]))
    assert "| objective | num_epochs | seeds | en_f1-measure-overall | xx_f1-measure-overall |" in stdout


def test_cells_are_checked_with_every_label_of_their_training_data(teacher, tmp_path):
    """A label first seen late in the training file (here I-LOC, in the 22nd sentence) is in the
    student's vocabulary when the cell is checked, as in training: the teacher's labels map onto it."""
    sentences = [block for block in (NER / "train.iob2").read_text().split("\n\n") if block.strip()]
    without, with_label = [s for s in sentences if "I-LOC" not in s], [s for s in sentences if "I-LOC" in s]
    train = tmp_path / "train.iob2"
    train.write_text("\n\n".join(without[:21] + with_label[:1]) + "\n\n")
    grid_file = write_grid(tmp_path / "grid.json", teacher, [{"type": "structural"}])
    spec = json.loads(grid_file.read_text())
    spec["env"]["TRAIN_PATH"] = str(train)
    grid_file.write_text(json.dumps(spec))
    grid = Grid(grid_file)
    grid.check_cells(grid.cells(), {**grid.env, "TEACHER": str(teacher)})


def test_plots_keep_a_series_per_value_of_the_other_axes():
    """A plot over one axis must not average the cells of different students or gold fractions."""
    from types import SimpleNamespace

    from structkd_plugin.commands.experiment import _series

    grid = SimpleNamespace(axes={"env.STUDENT": ["crf", "softmax"], "gold_fraction": [1.0, 0.1], "objective": [], "seed": [1, 2]})
    rows = [
        {"env.STUDENT": student, "gold_fraction": fraction, "objective": objective, "seed": seed}
        for student in ("crf", "softmax") for fraction in (1.0, 0.1) for objective in ("none", "structural") for seed in (1, 2)
    ]  # fmt: skip
    by_objective = _series(grid, rows, "objective")
    assert sorted(by_objective) == ["crf, gold_fraction=0.1", "crf, gold_fraction=1.0", "softmax, gold_fraction=0.1", "softmax, gold_fraction=1.0"]
    assert all(len(members) == 4 for members in by_objective.values())
    by_fraction = _series(grid, rows, "gold_fraction")
    assert sorted(by_fraction) == ["crf, none", "crf, structural", "softmax, none", "softmax, structural"]
    assert {row["gold_fraction"] for row in by_fraction["crf, none"]} == {1.0, 0.1}
