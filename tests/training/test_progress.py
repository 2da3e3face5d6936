"""Progress in a batch job (stderr not a terminal): periodic lines and one line per epoch."""

from tango.common import Params

import structkd_plugin.progress as progress_module
import structkd_plugin.training.trainer as trainer_module
from structkd_plugin.progress import ProgressLog, progress
from structkd_plugin.training.train import train_model
from tests.toy_model import toy_config


def test_without_a_terminal_progress_writes_lines(capsys, monkeypatch):
    assert isinstance(progress(range(3), "work", 3), ProgressLog)  # pytest's stderr is no terminal
    monkeypatch.setattr(progress_module, "FINAL_LINE_AFTER", 0.0)
    with ProgressLog(None, "cache", 10, unit="sentences", interval=0.0) as log:
        log.update(4)
        log.set_postfix({"loss": "1.5"})
        log.update(6)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("cache: 4/10 (") and "sentences/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("cache: 10/10 (") and lines[-1].endswith("loss=1.5")


def test_a_batch_job_gets_one_line_per_epoch_with_the_validation_metric(tmp_path, capsys, monkeypatch):
    # Epochs of the toy model take milliseconds: count them all as long enough to report.
    monkeypatch.setattr(trainer_module, "FINAL_LINE_AFTER", 0.0)
    train_model(Params(toy_config(evaluate_on_test=False)), tmp_path / "run")
    epoch_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ") and "validation" in line]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 0", "epoch 1", "epoch 2"]
    assert "validation f1-measure-overall=" in epoch_lines[0] and "best f1-measure-overall" in epoch_lines[0]
