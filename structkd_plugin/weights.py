"""Model weights on disk (safetensors, never pickle) and the device they run on: what archives,
checkpoints and the trainer share."""

import os
from os import PathLike

import safetensors.torch
import torch
import torch.distributed as dist
from tango.common.exceptions import ConfigurationError

from structkd_plugin.file_safety import write_atomically

__all__ = ["device_for", "load_weights", "save_weights"]


def save_weights(state_dict: dict[str, torch.Tensor], path: str | PathLike) -> None:
    """Writes a model's `state_dict` to a safetensors file, atomically."""
    # Copies on the CPU: safetensors refuses tensors that share memory (tied weights).
    tensors = {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in state_dict.items()}
    write_atomically(path, lambda temporary: safetensors.torch.save_file(tensors, str(temporary)))


def load_weights(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Reads a safetensors file written by `save_weights` (onto the CPU)."""
    return safetensors.torch.load_file(str(path))


def device_for(cuda_device: int) -> torch.device:
    """The device of `cuda_device` (-1 = CPU). In a distributed run on GPUs each process uses
    the GPU of its `LOCAL_RANK`, as `torchrun` sets it."""
    if cuda_device < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigurationError(f"cuda_device is {cuda_device}, but this machine has no usable GPU")
    if dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cuda", cuda_device)
