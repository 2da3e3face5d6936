"""Checkpoints that let a killed training run resume exactly where it stopped, without pickle.

After every epoch the trainer writes one checkpoint directory, `checkpoints/epoch_N/`
(N = the epoch just finished, counted from 0):

- `model.safetensors`: the model's weights;
- `training_state.json` + `training_state.safetensors`: everything else the next epoch depends on
  (optimizer and scheduler state, the trainer's counters and metric history, random number
  generator states), stored as a tree of JSON values whose tensors live in the safetensors file.

A checkpoint is assembled in a temporary directory and renamed into place, so a run killed at any
moment leaves either a complete checkpoint or none; single files are written the same way (temporary
file + `os.replace`). Only the newest checkpoint is kept.
"""

import json
import os
import re
import shutil
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from structkd_plugin.file_safety import with_umask_permissions, write_atomically
from structkd_plugin.weights import load_weights, save_weights

__all__ = ["Checkpointer", "load_tensor_tree", "save_tensor_tree"]

_CHECKPOINT_NAME = re.compile(r"^epoch_(\d+)$")
# Markers of the values JSON has no type for, in the JSON half of a tensor tree.
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def save_tensor_tree(tree: Any, directory: str | PathLike, name: str) -> None:
    """Writes a tree of dicts, lists, tuples, tensors and JSON scalars as `name.json` (the
    structure) and `name.safetensors` (the tensors), each atomically.

    Dict keys may be strings, ints, floats, bools or None (an optimizer's state is keyed by
    parameter number); tuples and key types come back as they were.
    """
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(tree, tensors)
    write_atomically(
        directory / f"{name}.safetensors", lambda temporary: safetensors.torch.save_file(tensors, str(temporary))
    )
    write_atomically(
        directory / f"{name}.json", lambda temporary: temporary.write_text(json.dumps(structure), encoding="utf-8")
    )


def load_tensor_tree(directory: str | PathLike, name: str) -> Any:
    """Reads a tree written by `save_tensor_tree` (tensors onto the CPU)."""
    directory = Path(directory)
    tensors = safetensors.torch.load_file(str(directory / f"{name}.safetensors"))
    structure = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    return _decode(structure, tensors)


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {_TENSOR: key}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item, tensors) for item in value]}
    if isinstance(value, list):
        return [_encode(item, tensors) for item in value]
    if isinstance(value, dict):
        plain = all(isinstance(key, str) for key in value) and not (
            len(value) == 1 and next(iter(value)) in (_TENSOR, _TUPLE, _ITEMS)
        )
        if plain:
            return {key: _encode(item, tensors) for key, item in value.items()}
        for key in value:
            if key is not None and not isinstance(key, str | int | float | bool):
                raise TypeError(f"cannot store a dict key of type {type(key).__name__} in a checkpoint")
        return {_ITEMS: [[key, _encode(item, tensors)] for key, item in value.items()]}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot store a value of type {type(value).__name__} in a checkpoint")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        marker, content = next(iter(value.items()))
        if marker == _TENSOR:
            return tensors[content]
        if marker == _TUPLE:
            return tuple(_decode(item, tensors) for item in content)
        if marker == _ITEMS:
            return {key: _decode(item, tensors) for key, item in content}
    return {key: _decode(item, tensors) for key, item in value.items()}


class Checkpointer:
    """Writes and finds the per-epoch checkpoints of one serialization directory.

    # Parameters

    serialization_dir : `str | PathLike`
        The run's directory; checkpoints go to its `checkpoints/` subdirectory.
    """

    def __init__(self, serialization_dir: str | PathLike) -> None:
        self.directory = Path(serialization_dir) / "checkpoints"

    def save(self, epoch: int, model_state: dict[str, torch.Tensor], training_state: dict[str, Any]) -> Path:
        """Writes the checkpoint of `epoch` (complete or not at all) and removes older ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch_{epoch}"
        temporary = Path(tempfile.mkdtemp(dir=self.directory, prefix=f".epoch_{epoch}.", suffix=".tmp"))
        try:
            save_weights(model_state, temporary / "model.safetensors")
            save_tensor_tree(training_state, temporary, "training_state")
            with_umask_permissions(temporary)
            os.replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        for older in self._checkpoints():
            if older != final:
                shutil.rmtree(older, ignore_errors=True)
        return final

    def latest(self) -> Path | None:
        """The newest complete checkpoint directory, or `None` if there is none."""
        checkpoints = self._checkpoints()
        return checkpoints[-1] if checkpoints else None

    @staticmethod
    def load(checkpoint: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The model weights and the training state stored in `checkpoint`."""
        return load_weights(checkpoint / "model.safetensors"), load_tensor_tree(checkpoint, "training_state")

    def _checkpoints(self) -> list[Path]:
        """Complete checkpoints (temporary ones start with a dot), oldest first."""
        if not self.directory.is_dir():
            return []
        found = [
            (int(match.group(1)), path)
            for path in self.directory.iterdir()
            if (match := _CHECKPOINT_NAME.match(path.name)) and path.is_dir()
        ]
        return [path for _, path in sorted(found)]
