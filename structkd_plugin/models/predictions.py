"""The prediction loop every user of a trained model shares (`structkd predict` and `evaluate`, the
spaCy components, the benchmarks): batches in, one JSON-serializable dict per instance out."""

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import torch

from structkd_plugin.data import move_to_device
from structkd_plugin.models.model import Instance, Model

__all__ = ["predictions"]


def predictions(model: Model, instances: Iterable[Instance], batch_size: int) -> Iterator[dict[str, Any]]:
    """The model's prediction for each instance, in order, computed `batch_size` at a time."""
    instances = iter(instances)
    with torch.no_grad():
        while batch_instances := list(islice(instances, batch_size)):
            batch = model.tensorize(batch_instances)
            output = model(**move_to_device(batch, model.device))
            yield from model.make_predictions(output, batch)
