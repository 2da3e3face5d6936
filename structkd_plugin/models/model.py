"""The `Model` base class: the one API that training, archives and the CLI rely on."""

from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from tango.common import Registrable

from structkd_plugin.data.vocabulary import Vocabulary
from structkd_plugin.models.scores import Scores

Instance = dict[str, Any]


class Model(torch.nn.Module, Registrable):
    """A registered, trainable model that turns instances into batches, losses and predictions.

    Subclasses are registered by name (`@Model.register("crf_tagger")`) and built from a config
    block; their constructor arguments are exactly their config keys, plus the `vocab` that training
    passes as an extra.

    # Parameters

    vocab : `Vocabulary`
        The vocabulary the model's embeddings and label spaces are sized from.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        super().__init__()
        self.vocab = vocab

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        """Turns instances into one padded batch: tensors for `forward`, plus the instances
        themselves under `"instances"` so predictions can be written next to their words."""
        raise NotImplementedError

    def forward(self, **batch: Any) -> dict[str, torch.Tensor]:
        """Scores a batch. The output holds `"loss"` when the batch has gold labels, in which
        case the model's metrics are updated too."""
        raise NotImplementedError

    def make_predictions(self, output: dict[str, torch.Tensor], batch: dict[str, Any]) -> list[dict]:
        """Decodes `forward`'s output into one JSON-serializable dict per instance."""
        raise NotImplementedError

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        """The metrics accumulated since the last reset."""
        return {}

    def scores(self, output: dict[str, Any]) -> Scores:
        """What this model gives distillation, as a teacher or a student: its scores in `forward`'s
        `output`, as a typed value (`models.scores`)."""
        raise ValueError(f"a {type(self).__name__} gives no scores, so it can be neither teacher nor student of distillation")

    def unseen_gold_labels(self, instances: Iterable[Instance]) -> Counter[str]:
        """The gold labels of `instances` that the model cannot predict (absent from its
        vocabulary), with their counts: they are scored as errors. None by default."""
        return Counter()

    def set_training_progress(self, fraction: float) -> None:
        """Told by the trainer before each training step how far training has come (0 to 1);
        schedules such as teacher annealing read it. Nothing to do by default."""

    def check_datasets(self, names: Iterable[str]) -> None:
        """Raises `ConfigurationError` when the model cannot train on datasets by these names
        ("train", "unlabeled", "validation", "test"), before training starts. Any will do by default."""

    def prepare_for_training(self, datasets: dict[str, list[Instance]]) -> None:
        """Called once before training with the datasets by name ("train", "validation",
        "unlabeled"): a model may precompute what stays fixed (a frozen teacher's marginals)."""

    def model_to_archive(self, model_config: dict[str, Any]) -> tuple["Model", dict[str, Any]]:
        """The model, and its config, that a training run's archive keeps: itself by default; a
        wrapper such as the distillation model keeps only the model it trains."""
        return self, model_config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
