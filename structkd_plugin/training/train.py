"""`train_model`: everything a training config describes, from reading the data to the archive.

The steps, in order: prepare the serialization directory (write `config.json`), seed the random
number generators with `random_seed`, read the datasets, build the vocabulary (saved in
`vocabulary/`), the model and the trainer, train (resuming from the last checkpoint with
`recover`), write `model.tar.gz`, and evaluate on the test data when `evaluate_on_test`.

Launched by `torchrun` (the `WORLD_SIZE`, `RANK` and `LOCAL_RANK` environment variables), every
process runs these steps together: the process group uses gloo on the CPU and nccl on GPUs, each
rank trains on its share of the batches, and only rank 0 writes files.
"""

import json
import logging
import math
import os
import random
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tango.common import Params
from tango.common.exceptions import ConfigurationError

from structkd_plugin.archival import archive_model
from structkd_plugin.config import building, check_keys, explained_configuration_errors, import_structkd_registrations
from structkd_plugin.data import INPUT_LABEL_KEYS, DataError, DatasetReader, Instance, Vocabulary, without_labels
from structkd_plugin.data.sentence_store import SentenceStore
from structkd_plugin.file_safety import RunLock, write_json
from structkd_plugin.models.model import Model
from structkd_plugin.training.checkpoint import Checkpointer
from structkd_plugin.training.trainer import InstanceLoader, InterleavedLoader, Trainer, evaluate
from structkd_plugin.weights import save_weights

__all__ = ["CONFIG_KEYS", "dataset_names", "train_model"]

logger = logging.getLogger(__name__)

CONFIG_KEYS = (
    "dataset_reader",
    "validation_dataset_reader",
    "train_data_path",
    "gold_fraction",
    "gold_fraction_rest",
    "unlabeled_data_path",
    "unlabeled_dataset_reader",
    "validation_data_path",
    "test_data_path",
    "evaluate_on_test",
    "datasets_for_vocab_creation",
    "vocabulary",
    "model",
    "data_loader",
    "trainer",
    "random_seed",
)
"""The top-level keys of a training config."""

# What `gold_fraction` does with the training sentences whose labels it removes; the first is the default.
GOLD_FRACTION_RESTS = ("unlabeled", "dropped")

# The datasets a config may read, by name, and the keys of their paths ("train" is required).
DATA_PATH_KEYS = {"train": "train_data_path", "unlabeled": "unlabeled_data_path", "validation": "validation_data_path", "test": "test_data_path"}

DATA_LOADER_KEYS = ("max_tokens", "batch_size", "shuffle", "unlabeled_ratio", "min_batches_per_epoch")


def train_model(params: Params, serialization_dir: str | PathLike, recover: bool = False, force: bool = False) -> Model:
    """Trains the model a config describes; returns it with its best epoch's weights.

    # Parameters

    params : `Params`
        The full config (see docs/ARCHITECTURE.md for its keys). It is consumed.
    serialization_dir : `str | PathLike`
        Where everything goes: `config.json`, `vocabulary/`, `metrics_epoch_N.json`,
        `metrics.json`, `checkpoints/`, `best.safetensors`, `model.tar.gz`, `out.log`.
    recover : `bool`
        Resume the run of this (existing) directory from its last checkpoint; the config must be
        the one it was started with.
    force : `bool`
        Delete the directory's content first. Without `recover` or `force`, an existing non-empty
        directory is an error.

    Raises `ConfigurationError` for a faulty config or directory, `DataError` for faulty data.
    """
    import_structkd_registrations()
    check_keys(params, "the top level of the config", CONFIG_KEYS)
    serialization_dir = Path(serialization_dir)
    trainer_params = params.get("trainer")
    cuda_device = int(trainer_params.get("cuda_device", -1)) if isinstance(trainer_params, Params) else -1
    started_distributed = _start_distributed(cuda_device)
    # One run per directory: rank 0 holds the lock for the whole run (see file_safety.RunLock).
    lock = RunLock(serialization_dir) if not dist.is_initialized() or dist.get_rank() == 0 else None
    try:
        with explained_configuration_errors():
            _check_serialization_dir(serialization_dir, params.as_dict(quiet=True), recover, force)
            if lock is not None:
                lock.acquire()
            _prepare_serialization_dir(serialization_dir, params.as_dict(quiet=True), force)
            try:
                with _logging_to(serialization_dir / "out.log"):
                    return _train(params, serialization_dir, recover)
            except (ConfigurationError, DataError):
                if not recover:
                    _remove_if_untrained(serialization_dir)
                raise
    finally:
        if lock is not None:
            lock.release()
        if started_distributed:
            dist.destroy_process_group()


def _train(params: Params, serialization_dir: Path, recover: bool) -> Model:
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    random_seed = params.pop_int("random_seed", 13370)
    _seed_everything(random_seed)

    with building("dataset_reader"):
        reader = DatasetReader.from_params(params.pop("dataset_reader"))
    validation_reader_params = params.pop("validation_dataset_reader", None)
    validation_reader = reader
    if validation_reader_params is not None:
        with building("validation_dataset_reader"):
            validation_reader = DatasetReader.from_params(validation_reader_params)
    unlabeled_reader_params = params.pop("unlabeled_dataset_reader", None)
    unlabeled_reader = reader
    if unlabeled_reader_params is not None:
        with building("unlabeled_dataset_reader"):
            unlabeled_reader = DatasetReader.from_params(unlabeled_reader_params)
    names = dataset_names(params.as_dict(quiet=True))
    datasets = _read_datasets(params, reader, validation_reader, unlabeled_reader)
    evaluate_on_test = params.pop_bool("evaluate_on_test", False)
    if evaluate_on_test and "test" not in datasets:
        raise ConfigurationError("evaluate_on_test is true, but the config has no test_data_path")

    vocabulary_dir = serialization_dir / "vocabulary"
    for_vocabulary = params.pop("datasets_for_vocab_creation", list(datasets))
    unknown = [name for name in for_vocabulary if name not in datasets]
    if unknown:
        raise ConfigurationError(f"datasets_for_vocab_creation names {unknown}, but only {list(datasets)} were read")
    vocabulary_params = params.pop("vocabulary", Params({}))
    if recover and vocabulary_dir.is_dir():
        vocab = Vocabulary.from_files(vocabulary_dir)
    else:
        instances = chain.from_iterable(datasets[name] for name in for_vocabulary)
        with building("vocabulary"):
            vocab = Vocabulary.from_params(vocabulary_params, instances=instances)
        if rank == 0:
            vocab.save_to_files(vocabulary_dir)
    logger.info("Vocabulary: %s", vocab)

    with building("model"):
        model = Model.from_params(params.pop("model"), vocab=vocab)
        model.check_datasets(names)

    loader_params = params.pop("data_loader")
    check_keys(loader_params, "the data_loader block", DATA_LOADER_KEYS)
    batching = {
        "max_tokens": loader_params.pop_int("max_tokens", None),
        "batch_size": loader_params.pop_int("batch_size", None),
    }
    if batching["max_tokens"] is None and batching["batch_size"] is None:
        raise ConfigurationError("the data_loader block needs max_tokens or batch_size")
    sharding = {"num_replicas": world_size, "rank": rank}
    training_batching = dict(batching)
    min_batches = loader_params.pop_int("min_batches_per_epoch", None)
    if min_batches is not None:
        if batching["max_tokens"] is None:
            raise ConfigurationError("data_loader.min_batches_per_epoch needs max_tokens")
        training_batching["max_tokens"] = _budget_for_batches(datasets["train"], batching["max_tokens"], min_batches * world_size)

    def loader(name: str, shuffle: bool) -> InstanceLoader | None:
        if name not in datasets:
            return None
        options = training_batching if name == "train" else batching
        return InstanceLoader(datasets[name], model.tensorize, shuffle=shuffle, seed=random_seed, **options, **sharding)

    shuffle = loader_params.pop_bool("shuffle", True)
    train_loader = loader("train", shuffle)
    unlabeled_ratio = loader_params.pop_float("unlabeled_ratio", None)
    if "unlabeled" in datasets:
        train_loader = InterleavedLoader(train_loader, loader("unlabeled", shuffle), unlabeled_ratio, random_seed)
    elif unlabeled_ratio is not None:
        raise ConfigurationError("data_loader.unlabeled_ratio is set, but the config has no unlabeled_data_path")
    model.prepare_for_training(datasets)
    with building("trainer"):
        trainer = Trainer.from_params(
            params.pop("trainer"),
            model=model,
            serialization_dir=serialization_dir,
            train_loader=train_loader,
            validation_loader=loader("validation", False),
        )
    if recover:
        trainer.restore_checkpoint()
    metrics = trainer.train()

    if rank == 0:
        archive_path = _archive(model, serialization_dir)
        logger.info("Archived the model in %s", archive_path)
    if evaluate_on_test:
        test_metrics = evaluate(model, loader("test", False), trainer.device, "test")
        metrics.update({f"test_{name}": value for name, value in test_metrics.items()})
        if rank == 0:
            write_json(serialization_dir / "metrics.json", metrics)
    logger.info("Final metrics: %s", json.dumps(metrics))
    if dist.is_initialized():
        # The ranks tear the process group down together: a rank that left while rank 0 was still
        # writing the archive was once seen to abort rank 0's gloo teardown at exit.
        dist.barrier()
    return model


def _budget_for_batches(instances: list[Instance], max_tokens: int, min_batches: int) -> int:
    """The token budget of the training batches: `max_tokens`, or less on a corpus too small to
    give `min_batches` batches an epoch with it (a small treebank then still gets enough updates
    per epoch), but never less than its longest sentence."""
    lengths = [len(instance["words"]) for instance in instances]
    budget = min(max_tokens, max(max(lengths), math.ceil(sum(lengths) / min_batches)))
    if budget < max_tokens:
        logger.info(
            "training batches of at most %d words instead of %d: %d sentences give at least %d batches an epoch",
            budget, max_tokens, len(lengths), min_batches,
        )
    return budget


def _archive(model: Model, serialization_dir: Path) -> Path:
    """Writes `model.tar.gz`. A model that wraps the one it trains (distillation) archives that
    one alone: its config block and weights, taken from the best epoch's."""
    config = json.loads((serialization_dir / "config.json").read_text(encoding="utf-8"))
    archived, model_config = model.model_to_archive(config["model"])
    if archived is model:
        return archive_model(serialization_dir)
    save_weights(archived.state_dict(), serialization_dir / "archived.safetensors")
    write_json(serialization_dir / "archived_config.json", {**config, "model": model_config})
    return archive_model(serialization_dir, weights="archived.safetensors", config="archived_config.json")


def _read_datasets(
    params: Params, reader: DatasetReader, validation_reader: DatasetReader, unlabeled_reader: DatasetReader
) -> dict[str, list[Instance]]:
    """The datasets the config names, as lists of instances: "train", and "unlabeled" (labels
    removed), "validation" and "test" when their paths are given."""
    readers = {"train": reader, "unlabeled": unlabeled_reader, "validation": validation_reader, "test": validation_reader}
    paths = {name: (params.pop(key) if name == "train" else params.pop(key, None), readers[name]) for name, key in DATA_PATH_KEYS.items()}
    gold_fraction = params.pop_float("gold_fraction", None)
    rest = params.pop_choice("gold_fraction_rest", GOLD_FRACTION_RESTS, default_to_first_choice=True)
    datasets = {}
    for name, (path, dataset_reader) in paths.items():
        if path is None:
            continue
        logger.info("Reading the %s data from %s", name, path)
        if name == "unlabeled":
            # Unlabeled text can be hundreds of thousands of sentences: kept compactly.
            instances = dataset_reader.read(path)
            datasets[name] = SentenceStore(without_labels(instance, keep=INPUT_LABEL_KEYS) for instance in instances)
        else:
            datasets[name] = list(dataset_reader.read(path))
        if not datasets[name]:
            raise DataError(path, None, f"the {name} data has no sentence")
    if gold_fraction is not None:
        _keep_gold_fraction(datasets, gold_fraction, rest)
    elif rest != GOLD_FRACTION_RESTS[0]:
        raise ConfigurationError("gold_fraction_rest is set, but gold_fraction is not")
    return datasets


def dataset_names(config: dict[str, Any]) -> set[str]:
    """The datasets a training config (a plain dict) reads, by name, as `_read_datasets` names them."""
    names = {name for name, key in DATA_PATH_KEYS.items() if config.get(key) is not None}
    fraction = config.get("gold_fraction")
    if fraction is not None and float(fraction) < 1 and config.get("gold_fraction_rest", GOLD_FRACTION_RESTS[0]) == "unlabeled":
        names.add("unlabeled")
    return names


def _keep_gold_fraction(datasets: dict[str, Any], fraction: float, rest: str) -> None:
    """The low-resource settings: the first `fraction` of the training sentences keep their
    labels; the others join the unlabeled data with their labels removed (`rest` "unlabeled", the
    semi-supervised setting) or are not used at all (`rest` "dropped")."""
    if not 0 < fraction <= 1:
        raise ConfigurationError(f"gold_fraction must be in (0, 1], not {fraction}")
    train = datasets["train"]
    kept = max(1, round(fraction * len(train)))
    if kept == len(train):
        return
    datasets["train"] = train[:kept]
    if rest == "dropped":
        logger.info("gold_fraction %s: %d training sentences keep their labels, %d are dropped", fraction, kept, len(train) - kept)
        return
    unlabeled = (without_labels(instance, keep=INPUT_LABEL_KEYS) for instance in train[kept:])
    datasets["unlabeled"] = SentenceStore(chain(unlabeled, datasets.get("unlabeled", ())))
    logger.info("gold_fraction %s: %d training sentences keep their labels, %d are unlabeled", fraction, kept, len(train) - kept)


def _check_serialization_dir(directory: Path, config: dict[str, Any], recover: bool, force: bool) -> None:
    """Checks that the directory suits the run, on every rank, before anything is changed.

    A recovered run must have the config it was started with, except that `trainer.num_epochs`
    may grow (to extend a run)."""
    if recover and force:
        raise ConfigurationError("use either --recover or --force, not both")
    if directory.exists() and not directory.is_dir():
        raise ConfigurationError(f"the serialization directory {directory} is a file")
    existing = directory.is_dir() and any(path.name != RunLock.NAME for path in directory.iterdir())
    if recover:
        saved_config = directory / "config.json"
        if not saved_config.is_file():
            raise ConfigurationError(f"cannot recover: {directory} holds no training run (no config.json)")
        saved = json.loads(saved_config.read_text(encoding="utf-8"))
        current = json.loads(json.dumps(config))
        saved_epochs = (saved.get("trainer") or {}).get("num_epochs")
        current_epochs = (current.get("trainer") or {}).get("num_epochs")
        if isinstance(saved_epochs, int) and isinstance(current_epochs, int) and current_epochs >= saved_epochs:
            current["trainer"] = {**current["trainer"], "num_epochs": saved_epochs}
        changed = sorted(key for key in {*saved, *current} if saved.get(key) != current.get(key))
        if changed:
            raise ConfigurationError(
                f"cannot recover: the config differs from the one {directory} was trained with, in {', '.join(changed)} "
                "(only a larger trainer.num_epochs may change)"
            )
    elif existing and not force:
        raise ConfigurationError(
            f"the serialization directory {directory} already exists and is not empty; use --recover to resume "
            "its training or -f/--force to overwrite it"
        )


def _prepare_serialization_dir(directory: Path, config: dict[str, Any], force: bool) -> None:
    """On rank 0: empties the directory for `force` (keeping the run's lock) and writes
    `config.json` (for a recovered run, the config that may have extended `num_epochs`)."""
    if dist.is_initialized():
        dist.barrier()
    if not dist.is_initialized() or dist.get_rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
        if force:
            _empty(directory)
        write_json(directory / "config.json", config)
    if dist.is_initialized():
        dist.barrier()


def _empty(directory: Path) -> None:
    """Removes everything in `directory` but the run's lock."""
    for path in directory.iterdir():
        if path.name == RunLock.NAME:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _remove_if_untrained(directory: Path) -> None:
    """Empties the directory of a new run that failed before its first checkpoint (a mistake in
    the config or the data), so that the corrected run can use it without --force."""
    if (dist.is_initialized() and dist.get_rank() != 0) or Checkpointer(directory).latest() is not None:
        return
    _empty(directory)


def _start_distributed(cuda_device: int) -> bool:
    """Joins the process group that `torchrun` describes in the environment, unless there is none
    or it is already joined; returns whether it was joined here."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    if cuda_device >= 0:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda_device >= 0 else "gloo")
    return True


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Copies structkd's INFO (and higher) log records to `path` (on rank 0) while the block runs."""
    if dist.is_initialized() and dist.get_rank() != 0:
        yield
        return
    package_logger = logging.getLogger("structkd_plugin")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous_level = package_logger.level
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()
