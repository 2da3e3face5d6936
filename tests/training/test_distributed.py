"""Training with two CPU processes launched by torchrun (DistributedDataParallel over gloo)."""

import json
import os
import signal
import subprocess
import sys

import torch

from structkd_plugin.archival import load_archive
from structkd_plugin.models.predictions import predictions
from tests.toy_model import REPOSITORY, toy_config, write_config


def test_two_process_training_writes_a_loadable_archive(tmp_path):
    config_file = write_config(tmp_path / "config.json", toy_config(trainer={"optimizer": "adam", "num_epochs": 2}))
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "structkd_plugin",
        "train",
        str(config_file),
        "-s",
        str(run),
        "--include-package",
        "tests.toy_model",
    ]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    # A session of its own, so that a hang kills the workers with the launcher, not only the launcher.
    launcher = subprocess.Popen(
        command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = launcher.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.communicate()
        raise
    assert launcher.returncode == 0, stderr[-3000:]

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and {"training_loss", "validation_accuracy", "test_f1-measure-overall"} <= set(metrics)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("metrics_epoch")) == [
        "metrics_epoch_0.json",
        "metrics_epoch_1.json",
    ]
    # Only rank 0 logged: one "Final metrics" line.
    assert (run / "out.log").read_text().count("Final metrics") == 1

    archive = load_archive(run / "model.tar.gz")
    instances = list(archive.validation_dataset_reader.read(toy_config()["test_data_path"]))
    predicted = list(predictions(archive.model, instances, batch_size=8))
    assert [p["words"] for p in predicted] == [instance["words"] for instance in instances]
    assert all(torch.isfinite(parameter).all() for parameter in archive.model.parameters())
