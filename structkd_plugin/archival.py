"""Model archives: one `model.tar.gz` file holding everything needed to use a trained model.

An archive has four members:

- `config.json`: the training run's full resolved config (it says how to build the model and the
  dataset readers);
- `weights.safetensors`: the weights of the model's best epoch;
- `vocabulary/`: the vocabulary, as `Vocabulary.save_to_files` writes it;
- `meta.json`: the structkd, torch and transformers versions that wrote it, and the date.

Nothing is pickled: loading an archive executes no code from it. The same members unpacked in a
directory (`save_model_directory`, `load_model_directory`) carry a model inside other formats,
such as a spaCy pipeline's component folder.
"""

import datetime
import importlib.metadata
import io
import json
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from tango.common import Params

import structkd_plugin
from structkd_plugin.config import (
    apply_overrides,
    building,
    explained_configuration_errors,
    import_structkd_registrations,
)
from structkd_plugin.data import DatasetReader, Vocabulary
from structkd_plugin.file_safety import write_atomically, write_json
from structkd_plugin.models.hf_token_classifier import HuggingFaceTokenClassifier, is_token_classifier_directory
from structkd_plugin.models.model import Model
from structkd_plugin.weights import device_for, save_weights

__all__ = [
    "Archive",
    "ArchiveError",
    "archive_model",
    "load_archive",
    "load_model_directory",
    "save_model_directory",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
VOCABULARY_NAME = "vocabulary"
META_NAME = "meta.json"


class ArchiveError(ValueError):
    """A model archive that cannot be written or loaded; the message names the archive and the
    problem."""


@dataclass
class Archive:
    """A loaded model archive.

    # Attributes

    model : `Model`
        The model with the archived weights, in evaluation mode, on the requested device.
    config : `Params`
        The full training config (with the overrides given to `load_archive`).
    vocab : `Vocabulary`
    meta : `dict[str, Any]`
        The versions and date of `meta.json`.
    dataset_reader : `DatasetReader`
        The reader of the training data.
    validation_dataset_reader : `DatasetReader`
        The reader of the validation data (the training reader when the config has no separate one).
    """

    model: Model
    config: Params
    vocab: Vocabulary
    meta: dict[str, Any]
    dataset_reader: DatasetReader
    validation_dataset_reader: DatasetReader


def archive_model(
    serialization_dir: str | PathLike,
    weights: str = "best.safetensors",
    archive_path: str | PathLike | None = None,
    config: str = CONFIG_NAME,
) -> Path:
    """Writes the archive of a training run from its serialization directory (the `config` file,
    `vocabulary/` and the `weights` file in it) to `archive_path` (default:
    `serialization_dir/model.tar.gz`), atomically: a failure leaves no partial archive behind.
    Returns the archive's path."""
    serialization_dir = Path(serialization_dir)
    archive_path = Path(archive_path) if archive_path is not None else serialization_dir / "model.tar.gz"
    members = {
        CONFIG_NAME: serialization_dir / config,
        WEIGHTS_NAME: serialization_dir / weights,
        VOCABULARY_NAME: serialization_dir / VOCABULARY_NAME,
    }
    missing = [str(path) for path in members.values() if not path.exists()]
    if missing:
        raise ArchiveError(f"cannot write the archive {archive_path}: missing {', '.join(missing)}")
    meta = {
        "structkd_version": structkd_plugin.__version__,
        "torch_version": torch.__version__,
        "transformers_version": _installed_version("transformers"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    meta_bytes = (json.dumps(meta, indent=2) + "\n").encode("utf-8")

    def write(temporary: Path) -> None:
        with tarfile.open(temporary, "w:gz") as archive:
            for name, path in members.items():
                archive.add(path, arcname=name)
            info = tarfile.TarInfo(META_NAME)
            info.size = len(meta_bytes)
            info.mtime = int(datetime.datetime.now().timestamp())
            archive.addfile(info, io.BytesIO(meta_bytes))

    write_atomically(archive_path, write)
    return archive_path


def load_archive(archive_file: str | PathLike, overrides: str | None = None, cuda_device: int = -1) -> Archive:
    """Loads a model archive: builds the model from the archived config with the archived
    vocabulary and loads its weights strictly.

    # Parameters

    archive_file : `str | PathLike`
        The `model.tar.gz` file.
    overrides : `str`, optional
        A JSON or Jsonnet snippet applied to the archived config before anything is built (as
        `--overrides` in training).
    cuda_device : `int`
        The GPU to put the model on; -1 for the CPU.

    Raises `ArchiveError` when the file is missing, is not a gzipped tar file, lacks a member, or
    holds weights that do not fit the model its config describes. The model's registered type
    must be importable (see `structkd_plugin.config.import_plugins`).
    """
    path = Path(archive_file)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such model archive")
    with tempfile.TemporaryDirectory() as directory:
        _extract(path, Path(directory))
        return _load(Path(directory), path, "model archive", overrides, cuda_device)


def load_teacher(path: str | PathLike, overrides: str | None = None, cuda_device: int = -1) -> Model:
    """A teacher for distillation: the model of a structkd archive (`load_archive`), or a Hugging
    Face token classifier as it is: a directory `save_pretrained` wrote (see
    `models.hf_token_classifier`), with no structkd archive and no retraining."""
    if Path(path).is_dir() and is_token_classifier_directory(path):
        if overrides:
            raise ArchiveError(f"{path}: teacher_overrides apply to structkd archives, not to a Hugging Face model directory")
        return HuggingFaceTokenClassifier(Vocabulary(), str(path)).to(device_for(cuda_device))
    return load_archive(path, overrides, cuda_device).model


def load_model_directory(directory: str | PathLike, overrides: str | None = None, cuda_device: int = -1) -> Archive:
    """Loads a model from a directory holding an archive's members unpacked (as
    `save_model_directory` writes them), like `load_archive` and with the same errors, which name
    the directory."""
    path = Path(directory)
    if not path.is_dir():
        raise ArchiveError(f"{path}: no such model directory")
    return _load(path, path, "model directory", overrides, cuda_device)


def save_model_directory(archive: Archive, directory: str | PathLike) -> None:
    """Writes the members of a loaded archive (its config, its model's current weights, its
    vocabulary and meta) into `directory`, unpacked, for `load_model_directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / CONFIG_NAME, archive.config.as_dict(quiet=True))
    save_weights(archive.model.state_dict(), directory / WEIGHTS_NAME)
    archive.vocab.save_to_files(directory / VOCABULARY_NAME)
    write_json(directory / META_NAME, archive.meta)


def _load(root: Path, path: Path, kind: str, overrides: str | None, cuda_device: int) -> Archive:
    """Builds the model of the members in `root`; `path` and `kind` name the source in errors."""
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME, VOCABULARY_NAME, META_NAME) if not (root / name).exists()]
    if missing:
        raise ArchiveError(f"{path} is not a complete {kind}: it has no {', '.join(missing)}")
    config_dict = _read_json(path, root / CONFIG_NAME)
    meta = _read_json(path, root / META_NAME)
    try:
        vocab = Vocabulary.from_files(root / VOCABULARY_NAME)
    except (OSError, ValueError) as error:
        raise ArchiveError(f"{path}: cannot read its vocabulary: {error}") from None
    try:
        weights = safetensors.torch.load_file(str(root / WEIGHTS_NAME))
    except (safetensors.SafetensorError, OSError) as error:
        raise ArchiveError(f"{path}: cannot read {WEIGHTS_NAME}: {error}") from None

    config = apply_overrides(Params(config_dict), overrides)
    import_structkd_registrations()
    with explained_configuration_errors():
        with building("model"):
            model = Model.from_params(config.duplicate().pop("model"), vocab=vocab)
        with building("dataset_reader"):
            dataset_reader = DatasetReader.from_params(config.duplicate().pop("dataset_reader"))
        validation_reader_params = config.duplicate().pop("validation_dataset_reader", None)
        validation_dataset_reader = dataset_reader
        if validation_reader_params is not None:
            with building("validation_dataset_reader"):
                validation_dataset_reader = DatasetReader.from_params(validation_reader_params)
    _check_weights_fit(path, model, weights)
    model.load_state_dict(weights, strict=True)
    model.to(device_for(cuda_device)).eval()
    return Archive(model, config, vocab, meta, dataset_reader, validation_dataset_reader)


def _extract(path: Path, directory: Path) -> None:
    try:
        with tarfile.open(path, "r:gz") as archive:
            # The "data" filter refuses absolute paths, links and paths leaving `directory`.
            archive.extractall(directory, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ArchiveError(f"{path} is not a readable model archive (a gzipped tar file): {error}") from None


def _read_json(archive: Path, path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArchiveError(f"{archive}: {path.name} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ArchiveError(f"{archive}: {path.name} does not hold a JSON object")
    return content


def _check_weights_fit(archive: Path, model: Model, weights: dict[str, torch.Tensor]) -> None:
    """Raises `ArchiveError` listing what differs between the model's parameters and `weights`."""
    expected = model.state_dict()
    problems = []
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    mismatched = [
        f"{name} {tuple(weights[name].shape)} instead of {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in weights and weights[name].shape != tensor.shape
    ]
    for description, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            problems.append(f"{description}: {shown}")
    if problems:
        raise ArchiveError(f"{archive}: the weights do not fit the model built from its config ({'; '.join(problems)})")


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
