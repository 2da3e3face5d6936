"""Training: the `Trainer` and its checkpoints (the metrics live with the models that update them,
in `structkd_plugin.models.metrics`).

`train_model`, which runs a whole training config (and writes its model archive), lives in
`structkd_plugin.training.train`.
"""

from structkd_plugin.training import learning_rate_schedulers  # noqa: F401  (registers the schedulers)
from structkd_plugin.training.checkpoint import Checkpointer
from structkd_plugin.training.trainer import InstanceLoader, Trainer, evaluate

__all__ = ["Checkpointer", "InstanceLoader", "Trainer", "evaluate"]
