"""Training: the metrics models accumulate, the `Trainer` and its checkpoints.

`train_model`, which runs a whole training config, lives in `structkd_plugin.training.train` and is
not imported here: it writes model archives, and `structkd_plugin.archival` itself uses this
package.
"""

# The metrics come first: models import them, and the trainer imports models.
from structkd_plugin.training.metrics import SpanF1, TokenAccuracy
from structkd_plugin.training.checkpoint import Checkpointer
from structkd_plugin.training.trainer import InstanceLoader, Trainer, evaluate
from structkd_plugin.training import learning_rate_schedulers  # noqa: F401  (registers the schedulers)

__all__ = ["Checkpointer", "InstanceLoader", "SpanF1", "TokenAccuracy", "Trainer", "evaluate"]
