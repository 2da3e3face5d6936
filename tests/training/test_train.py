"""Whole training runs of the toy tagger on the fixtures: files, determinism, recovery, errors."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tango.common import Params

from structkd_plugin.archival import load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import ConfigurationError
from structkd_plugin.weights import load_weights
from structkd_plugin.training.train import train_model
from tests.toy_model import EXIT_CODE, EXIT_VARIABLE, REPOSITORY, toy_config, write_config

TRAINING_SENTENCES = 30  # in fixtures/conll2003_ner.txt
BATCHES_PER_EPOCH = 8  # batch_size 4


def without_durations(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if not key.endswith("duration")}


def read_json(path):
    return json.loads(path.read_text())


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_training_writes_metrics_checkpoints_and_an_archive_that_predicts(tmp_path):
    run = tmp_path / "run"
    model = train_model(Params(toy_config()), run)
    assert {
        "best_epoch",
        "epoch",
        "training_duration",
        "training_loss",
        "training_accuracy",
        "validation_loss",
        "validation_f1-measure-overall",
        "best_validation_f1-measure-overall",
        "best_validation_loss",
        "test_loss",
        "test_accuracy",
        "test_f1-measure-overall",
    } <= set(read_json(run / "metrics.json"))
    metrics = read_json(run / "metrics.json")
    assert metrics["epoch"] == 2
    for epoch in range(3):
        epoch_metrics = read_json(run / f"metrics_epoch_{epoch}.json")
        assert epoch_metrics["epoch"] == epoch
        assert {"training_loss", "validation_accuracy", "epoch_duration", "best_epoch"} <= set(epoch_metrics)
    best = read_json(run / f"metrics_epoch_{metrics['best_epoch']}.json")
    assert metrics["best_validation_f1-measure-overall"] == best["validation_f1-measure-overall"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch_2"]
    assert read_json(run / "config.json") == toy_config()
    assert (run / "vocabulary" / "labels.txt").is_file() and (run / "out.log").is_file()
    # The returned model holds the best epoch's weights, which the archive holds too.
    assert_same_weights(load_weights(run / "best.safetensors"), {k: v for k, v in model.state_dict().items()})

    archive = load_archive(run / "model.tar.gz")
    assert_same_weights(archive.model.state_dict(), model.state_dict())
    assert archive.meta["structkd_version"] and archive.meta["torch_version"] == torch.__version__
    assert archive.config["model"]["type"] == "toy_tagger"
    assert not archive.model.training
    instances = list(archive.validation_dataset_reader.read(toy_config()["test_data_path"]))
    predicted = list(predictions(archive.model, instances, batch_size=7))
    assert len(predicted) == TRAINING_SENTENCES
    assert [p["words"] for p in predicted] == [instance["words"] for instance in instances]
    assert all(len(p["tags"]) == len(p["words"]) for p in predicted)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path):
    weights = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        trainer = {"optimizer": {"type": "adam", "lr": 0.05}, "num_epochs": 2}
        train_model(Params(toy_config(evaluate_on_test=False, trainer=trainer, random_seed=seed)), tmp_path / name)
        weights.append(load_weights(tmp_path / name / "best.safetensors"))
    assert_same_weights(weights[0], weights[1])
    assert not torch.equal(weights[0]["projection.weight"], weights[2]["projection.weight"])


def test_patience_stops_training_early(tmp_path):
    # "+loss" treats a falling validation loss as getting worse: epoch 0 stays the best.
    trainer = {"optimizer": "adam", "num_epochs": 6, "patience": 2, "validation_metric": "+loss"}
    train_model(Params(toy_config(trainer=trainer, evaluate_on_test=False)), tmp_path / "run")
    metrics = read_json(tmp_path / "run" / "metrics.json")
    assert metrics["best_epoch"] == 0 and metrics["epoch"] == 2
    assert not (tmp_path / "run" / "metrics_epoch_3.json").exists()


def test_recover_after_a_kill_ends_like_an_uninterrupted_run(tmp_path):
    config = toy_config()
    config_file = write_config(tmp_path / "config.json", config)
    killed = tmp_path / "killed"
    environment = {**os.environ, EXIT_VARIABLE: str(2 * BATCHES_PER_EPOCH + 3), "PYTHONPATH": str(REPOSITORY)}
    command = [
        sys.executable,
        "-m",
        "structkd_plugin",
        "train",
        str(config_file),
        "-s",
        str(killed),
        "--include-package",
        "tests.toy_model",
    ]
    result = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_CODE, result.stderr
    # Killed in the middle of epoch 2, after the checkpoint of epoch 1.
    assert [p.name for p in (killed / "checkpoints").iterdir()] == ["epoch_1"]
    assert not (killed / "metrics.json").exists() and not (killed / "metrics_epoch_2.json").exists()

    recovered_model = train_model(Params(toy_config()), killed, recover=True)
    uninterrupted_model = train_model(Params(toy_config()), tmp_path / "uninterrupted")
    assert_same_weights(recovered_model.state_dict(), uninterrupted_model.state_dict())
    for name in ("metrics.json", "metrics_epoch_1.json", "metrics_epoch_2.json"):
        assert without_durations(read_json(killed / name)) == without_durations(
            read_json(tmp_path / "uninterrupted" / name)
        )
    assert_same_weights(
        load_weights(killed / "checkpoints" / "epoch_2" / "model.safetensors"),
        load_weights(tmp_path / "uninterrupted" / "checkpoints" / "epoch_2" / "model.safetensors"),
    )


def test_existing_directory_needs_recover_or_force(tmp_path):
    def config(**changes):
        return Params(toy_config(evaluate_on_test=False, trainer={"optimizer": "adam", "num_epochs": 1}, **changes))

    run = tmp_path / "run"
    run.mkdir()
    (run / "stray.txt").write_text("left over")
    with pytest.raises(ConfigurationError, match=r"already exists and is not empty; use --recover .* or -f/--force"):
        train_model(config(), run)
    with pytest.raises(ConfigurationError, match="either --recover or --force"):
        train_model(config(), run, recover=True, force=True)
    with pytest.raises(ConfigurationError, match="holds no training run"):
        train_model(config(), run, recover=True)
    train_model(config(), run, force=True)
    assert not (run / "stray.txt").exists() and (run / "model.tar.gz").is_file()
    metrics = (run / "metrics.json").read_text()
    # Recovering a finished run trains no further; recovering with another config is refused.
    train_model(config(), run, recover=True)
    assert without_durations(json.loads(metrics)) == without_durations(read_json(run / "metrics.json"))
    with pytest.raises(ConfigurationError, match="config differs .* in random_seed"):
        train_model(config(random_seed=99), run, recover=True)


def test_config_mistakes_are_reported(tmp_path):
    with pytest.raises(
        ConfigurationError, match="unknown key 'trainr' in the top level of the config; did you mean 'trainer'"
    ):
        train_model(Params({**toy_config(), "trainr": {}}), tmp_path / "a")
    with pytest.raises(
        ConfigurationError, match="unknown key 'batchsize' in the data_loader block; did you mean 'batch_size'"
    ):
        train_model(Params(toy_config(data_loader={"batchsize": 4})), tmp_path / "a2")
    with pytest.raises(ConfigurationError, match="the data_loader block needs max_tokens or batch_size"):
        train_model(Params(toy_config(data_loader={"shuffle": True})), tmp_path / "b")
    with pytest.raises(ConfigurationError, match="unknown name 'toy_tager' for model.type; did you mean 'toy_tagger'"):
        train_model(Params(toy_config(model={"type": "toy_tager"})), tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []  # so that the corrected run needs no --force
    with pytest.raises(
        ConfigurationError, match="cannot build the model from the config: Expected embedding_dim"
    ) as error:
        train_model(Params(toy_config(model={"type": "toy_tagger", "embedding_dim": "eight"})), tmp_path / "e")
    assert str(error.value).count("Expected") == 1
    with pytest.raises(ConfigurationError, match="cannot build the trainer from the config: Invalid learning rate"):
        train_model(Params(toy_config(trainer={"optimizer": {"type": "sgd", "lr": -1.0}})), tmp_path / "f")
    with pytest.raises(ConfigurationError, match="validation_metric 'f1' is not among the validation metrics"):
        train_model(Params(toy_config(trainer={"optimizer": "adam", "validation_metric": "+f1"})), tmp_path / "d")


def test_min_batches_per_epoch_shrinks_the_budget_on_a_small_corpus():
    from structkd_plugin.training.train import _budget_for_batches
    from structkd_plugin.training.trainer import InstanceLoader

    sentences = [{"words": ["w"] * length} for length in [10] * 30 + [25]]  # 325 words
    assert _budget_for_batches(sentences, 1000, 100) == 25  # never below the longest sentence
    budget = _budget_for_batches(sentences, 1000, 10)
    assert budget == 33
    assert len(InstanceLoader(sentences, lambda batch: batch, shuffle=False, max_tokens=budget)) >= 10
    assert _budget_for_batches(sentences, 50, 2) == 50  # a large corpus keeps max_tokens


def test_gold_fraction_keeps_the_first_sentences_labels_and_makes_the_rest_unlabeled():
    from structkd_plugin.data import UniversalNerDatasetReader
    from structkd_plugin.training.train import _read_datasets

    reader = UniversalNerDatasetReader()
    train = REPOSITORY / "fixtures" / "ner" / "train.iob2"
    raw = REPOSITORY / "fixtures" / "ner" / "test.iob2"
    sentences = list(reader.read(train))
    params = Params({"train_data_path": str(train), "unlabeled_data_path": str(raw), "gold_fraction": 0.25})
    datasets = _read_datasets(params, reader, reader, reader)
    kept = round(0.25 * len(sentences))
    assert [i["words"] for i in datasets["train"]] == [i["words"] for i in sentences[:kept]]
    assert all("tags" in i for i in datasets["train"])
    unlabeled = list(datasets["unlabeled"])
    held_out = len(sentences) - kept
    assert [i["words"] for i in unlabeled[:held_out]] == [i["words"] for i in sentences[kept:]]
    assert len(unlabeled) == held_out + len(list(reader.read(raw)))
    assert not any("tags" in i for i in unlabeled)
    with pytest.raises(ConfigurationError, match="gold_fraction must be in"):
        _read_datasets(Params({"train_data_path": str(train), "gold_fraction": 1.5}), reader, reader, reader)


def test_gold_fraction_rest_dropped_keeps_the_first_sentences_and_reads_no_unlabeled_data():
    from structkd_plugin.data import UniversalNerDatasetReader
    from structkd_plugin.training.train import _read_datasets, dataset_names

    reader = UniversalNerDatasetReader()
    train = REPOSITORY / "fixtures" / "ner" / "train.iob2"
    sentences = list(reader.read(train))
    config = {"train_data_path": str(train), "gold_fraction": 0.25, "gold_fraction_rest": "dropped"}
    datasets = _read_datasets(Params(dict(config)), reader, reader, None)
    assert [i["words"] for i in datasets["train"]] == [i["words"] for i in sentences[: round(0.25 * len(sentences))]]
    assert set(datasets) == {"train"} == dataset_names(config)
    assert dataset_names({**config, "gold_fraction_rest": "unlabeled"}) == {"train", "unlabeled"}
    assert dataset_names({"train_data_path": "t", "validation_data_path": "v", "gold_fraction": 1.0}) == {"train", "validation"}
    with pytest.raises(ConfigurationError, match="gold_fraction_rest is set, but gold_fraction is not"):
        _read_datasets(Params({"train_data_path": str(train), "gold_fraction_rest": "dropped"}), reader, reader, None)
    with pytest.raises(ConfigurationError, match="gold_fraction_rest"):
        _read_datasets(Params({**config, "gold_fraction_rest": "kept"}), reader, reader, None)
