"""The training loop: epochs of gradient descent, validation, early stopping, checkpoints.

`Trainer` is built from the `trainer` block of a config, AllenNLP style:

    "trainer": {
        "optimizer": {"type": "adam", "lr": 0.001},       // any tango optimizer ("torch::Adam", ...)
        "learning_rate_scheduler": {"type": "torch::StepLR", "step_size": 2},   // optional
        "num_epochs": 10,
        "num_steps": 20000,                                // optional budget in updates
        "patience": 3,                                     // optional early stopping
        "validation_metric": "+f1-measure-overall",        // "+" = higher is better
        "grad_norm": 5.0,                                  // optional
        "cuda_device": -1,
    }

Optimizers and schedulers come from tango's registry; the AllenNLP names "adam", "sgd", "adamw",
"step", ... are accepted for the `torch::` classes of the same name (case does not matter). The
scheduler steps once per epoch, after validation (`torch::ReduceLROnPlateau` gets the validation
metric).

After every epoch the trainer writes into the serialization directory: `metrics_epoch_N.json`
(N counts from 0), a checkpoint (see `checkpoint.py`) and, when the validation metric improved,
`best.safetensors`. At the end the model holds the best epoch's weights and `metrics.json`
summarizes the run with AllenNLP's keys. Without validation data every epoch counts as the best
(the last one wins) and there is no early stopping. A scheduler with `step_every_batch` (e.g.
`linear_with_warmup`) steps after every update instead and is told the run's budget.

The budget is `num_epochs`, or `num_steps` updates if that comes first (the epoch in progress then
ends early and is validated): with much unlabeled text an epoch can be long, and a budget in
updates compares runs on different data at equal compute.

In a `torchrun` launch (an initialized `torch.distributed` process group) the model is wrapped in
`DistributedDataParallel`, each rank gets its share of the batches from its `InstanceLoader`, losses
and metrics are merged across ranks, and only rank 0 writes files.
"""

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tango.common import FromParams, Lazy, Params, Registrable
from tango.common.exceptions import ConfigurationError
from tango.integrations.torch import LRScheduler, Optimizer
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from structkd_plugin.data import TokenBudgetBatchSampler, move_to_device
from structkd_plugin.data.sentence_store import SentenceStore, instance_lengths
from structkd_plugin.file_safety import write_json
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.progress import FINAL_LINE_AFTER, ProgressLog, progress
from structkd_plugin.training.checkpoint import Checkpointer
from structkd_plugin.weights import device_for, load_weights, save_weights

__all__ = ["InstanceLoader", "InterleavedLoader", "Trainer", "evaluate"]

logger = logging.getLogger(__name__)


class InstanceLoader:
    """The batches of a list of instances, as a model takes them: `TokenBudgetBatchSampler` groups
    the instances, the model's `tensorize` turns each group into a batch.

    # Parameters

    instances : `Sequence[Instance]`
        The dataset.
    tensorize : `Callable[[list[Instance]], dict[str, Any]]`
        Usually `model.tensorize`.
    max_tokens, batch_size, shuffle, seed, num_replicas, rank
        Passed to `TokenBudgetBatchSampler` (give `max_tokens` or `batch_size`; `num_replicas` and
        `rank` split the batches between the ranks of a distributed run).
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        tensorize: Callable[[list[Instance]], dict[str, Any]],
        max_tokens: int | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.instances = instances if isinstance(instances, SentenceStore) else list(instances)
        self.tensorize = tensorize
        self.sampler = TokenBudgetBatchSampler(
            instance_lengths(self.instances),
            max_tokens=max_tokens,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
        )

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches the next iteration gives."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.batches_from(0)

    def batches_from(self, first: int) -> Iterator[dict[str, Any]]:
        """The current epoch's batches from the `first`-th on (the skipped ones are not built)."""
        for indices in islice(self.sampler, first, None):
            yield self.tensorize([self.instances[index] for index in indices])


class InterleavedLoader:
    """Gold batches and unlabeled-text batches in one epoch, interleaved in a seeded random order.

    Each batch comes whole from one loader, so a batch is either all gold (trained with the gold
    loss and, in distillation, the KD term) or all unlabeled (the KD term alone).

    # Parameters

    gold, unlabeled : `InstanceLoader`
        The two datasets' loaders.
    unlabeled_ratio : `float`, optional
        Unlabeled batches per gold batch in an epoch. The unlabeled batches are one stream across
        epochs: an epoch takes up where the previous one stopped, so every unlabeled sentence is
        seen once before any is seen twice (each pass through them shuffled anew). By default
        every unlabeled batch, every epoch.
    seed : `int`
        With the epoch, fixes the interleaving, so runs with the same seed repeat exactly.
    """

    def __init__(
        self, gold: InstanceLoader, unlabeled: InstanceLoader, unlabeled_ratio: float | None = None, seed: int = 0
    ) -> None:
        self.gold, self.unlabeled = gold, unlabeled
        self.unlabeled_ratio = unlabeled_ratio
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.gold.set_epoch(epoch)
        self.unlabeled.set_epoch(epoch)

    def _unlabeled_count(self) -> int:
        if self.unlabeled_ratio is None:
            return len(self.unlabeled)
        return min(len(self.unlabeled), round(self.unlabeled_ratio * len(self.gold)))

    def __len__(self) -> int:
        return len(self.gold) + self._unlabeled_count()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = [True] * len(self.gold) + [False] * self._unlabeled_count()
        random.Random(self.seed + self.epoch).shuffle(order)
        gold, unlabeled = iter(self.gold), self._unlabeled_stream()
        for is_gold in order:
            yield next(gold) if is_gold else next(unlabeled)

    def _unlabeled_stream(self) -> Iterator[dict[str, Any]]:
        """The unlabeled batches from this epoch's place in the stream on, pass after pass."""
        per_pass = len(self.unlabeled)
        position = self.epoch * self._unlabeled_count()
        unlabeled_pass, first = divmod(position, per_pass)
        while True:
            self.unlabeled.set_epoch(unlabeled_pass)
            yield from self.unlabeled.batches_from(first)
            unlabeled_pass, first = unlabeled_pass + 1, 0


def evaluate(
    model: Model, batches: InstanceLoader, device: torch.device, description: str = "evaluating"
) -> dict[str, float]:
    """The model's metrics on `batches`, plus the mean batch `loss` when the data has gold labels.

    In a distributed run every rank evaluates its share and the results are merged.
    """
    model.eval()
    model.get_metrics(reset=True)
    loss_sum, loss_count = 0.0, 0
    with torch.no_grad(), progress(batches, description, len(batches)) as bar:
        for batch in bar:
            output = model(**move_to_device(batch, device))
            if "loss" in output:
                loss_sum += output["loss"].item()
                loss_count += 1
        metrics = dict(model.get_metrics(reset=True))
        loss_sum, loss_count = _sum_over_ranks(loss_sum, loss_count)
        if loss_count:
            metrics["loss"] = loss_sum / loss_count
        _show(bar, metrics)
    return metrics


class Trainer(FromParams):
    """Trains a model with mini-batch gradient descent; see the module docstring.

    `model`, `serialization_dir`, `train_loader` and `validation_loader` are not config keys:
    `train_model` passes them.

    # Parameters

    model : `Model`
        The model to train (moved to the training device).
    serialization_dir : `str | PathLike`
        Where metrics, checkpoints and the best weights go.
    train_loader : `InstanceLoader`
        The training batches (shuffled; `set_epoch` is called every epoch).
    validation_loader : `InstanceLoader`, optional
        The validation batches; without them there is no validation and no early stopping.
    optimizer : `Lazy[Optimizer]`
        Built on the model's trainable parameters.
    learning_rate_scheduler : `Lazy[LRScheduler]`, optional
        Built on the optimizer (and, if it takes one, `num_training_steps`); steps once per
        epoch, or after every update if it has `step_every_batch`.
    num_epochs : `int`
        Number of epochs (fewer with early stopping or `num_steps`).
    num_steps : `int`, optional
        Stop after this many updates in all.
    patience : `int`, optional
        Stop after this many epochs without improvement of the validation metric (`None`: never).
    validation_metric : `str`
        A validation metric name prefixed with "+" (higher is better) or "-" (lower is better),
        e.g. "+f1-measure-overall" or "-loss"; it selects the best epoch.
    grad_norm : `float`, optional
        Rescale the gradients so that their total norm is at most this.
    grad_clipping : `float`, optional
        Clip every gradient value to `[-grad_clipping, grad_clipping]` (before `grad_norm`).
    cuda_device : `int`
        GPU index, -1 for the CPU.
    """

    def __init__(
        self,
        model: Model,
        serialization_dir: str | PathLike,
        train_loader: InstanceLoader,
        optimizer: Lazy[Optimizer],
        validation_loader: InstanceLoader | None = None,
        learning_rate_scheduler: Lazy[LRScheduler] | None = None,
        num_epochs: int = 20,
        num_steps: int | None = None,
        patience: int | None = None,
        validation_metric: str = "-loss",
        grad_norm: float | None = None,
        grad_clipping: float | None = None,
        cuda_device: int = -1,
    ) -> None:
        if validation_metric[:1] not in ("+", "-") or len(validation_metric) < 2:
            raise ConfigurationError(
                f"validation_metric must be a metric name prefixed with '+' (higher is better) or '-' "
                f"(lower is better), like '+f1-measure-overall' or '-loss', not '{validation_metric}'"
            )
        if num_epochs < 0:
            raise ConfigurationError(f"num_epochs must be >= 0, not {num_epochs}")
        if num_steps is not None and num_steps < 1:
            raise ConfigurationError(f"num_steps must be >= 1 or null, not {num_steps}")
        if patience is not None and patience < 1:
            raise ConfigurationError(f"patience must be >= 1 or null, not {patience}")
        self.serialization_dir = Path(serialization_dir)
        self.device = device_for(cuda_device)
        self.model = model.to(self.device)
        self.train_loader = train_loader
        self.validation_loader = validation_loader
        self.optimizer = optimizer.construct(params=[p for p in model.parameters() if p.requires_grad])
        self.num_epochs = num_epochs
        self.num_steps = num_steps
        self.scheduler = (
            None
            if learning_rate_scheduler is None
            else learning_rate_scheduler.construct(optimizer=self.optimizer, num_training_steps=self.total_steps)
        )
        self.scheduler_steps_every_batch = getattr(self.scheduler, "step_every_batch", False)
        self.patience = patience
        self.metric_sign = 1.0 if validation_metric[0] == "+" else -1.0
        self.metric_name = validation_metric[1:]
        self.grad_norm = grad_norm
        self.grad_clipping = grad_clipping
        self.distributed = dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        # `forward` goes through DDP (which averages the gradients of all ranks); everything else
        # (evaluation, weights) uses the model itself.
        self.forward_model: torch.nn.Module = self.model
        if self.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=device_ids)
        if self.is_primary:
            self.serialization_dir.mkdir(parents=True, exist_ok=True)
        self.checkpointer = Checkpointer(self.serialization_dir)
        # What the next epoch depends on, besides weights and optimizer; saved in checkpoints.
        self.epoch_records: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.epochs_without_improvement = 0
        self.training_duration = 0.0
        self.steps = 0

    @property
    def total_steps(self) -> int:
        """The updates the run's budget allows: `num_epochs` epochs, or `num_steps` if fewer."""
        by_epochs = self.num_epochs * len(self.train_loader)
        return by_epochs if self.num_steps is None else min(by_epochs, self.num_steps)

    @classmethod
    def from_params(  # type: ignore[override]
        cls,
        params_: Params | dict,
        constructor_to_call: Callable | None = None,
        constructor_to_inspect: Callable | None = None,
        **extras: Any,
    ) -> "Trainer":
        """Tango's `from_params`, after mapping AllenNLP optimizer and scheduler names ("adam")
        to tango's ("torch::Adam")."""
        params = params_ if isinstance(params_, Params) else Params(params_)
        for key, base, suffix in (("optimizer", Optimizer, ""), ("learning_rate_scheduler", LRScheduler, "LR")):
            block = params.get(key)
            if isinstance(block, str):
                params[key] = _registered_name(base, block, suffix)
            elif isinstance(block, Params) and isinstance(block.get("type"), str):
                block["type"] = _registered_name(base, block["type"], suffix)
        return super().from_params(params, constructor_to_call, constructor_to_inspect, **extras)

    @property
    def is_primary(self) -> bool:
        """Whether this process writes the files (rank 0, or the only process)."""
        return self.rank == 0

    def train(self) -> dict[str, Any]:
        """Trains from the current epoch (0, or the one after a restored checkpoint) to the end,
        leaves the best epoch's weights in the model and returns the final metrics (those of
        `metrics.json`)."""
        first_epoch = len(self.epoch_records)
        for epoch in range(first_epoch, self.num_epochs):
            # Checked before the epoch rather than after, so that a run recovered after stopping
            # early stops again.
            if self.patience is not None and self.epochs_without_improvement >= self.patience:
                logger.info("No improvement of %s for %d epochs: stopped early", self.metric_name, self.patience)
                break
            if self.steps >= self.total_steps:
                logger.info("The budget of %d updates is spent", self.total_steps)
                break
            started = time.monotonic()
            training_metrics = self._train_epoch(epoch)
            validation_metrics = {}
            if self.validation_loader is not None:
                validation_metrics = evaluate(self.model, self.validation_loader, self.device, "validation")
            improved = self._track_best(epoch, validation_metrics)
            if improved and self.is_primary:
                save_weights(self.model.state_dict(), self.serialization_dir / "best.safetensors")
            epoch_duration = time.monotonic() - started
            self.training_duration += epoch_duration
            record = {
                "epoch": epoch,
                **{f"training_{name}": value for name, value in training_metrics.items()},
                **{f"validation_{name}": value for name, value in validation_metrics.items()},
                "epoch_duration": epoch_duration,
                "training_duration": self.training_duration,
            }
            self.epoch_records.append(record)
            if self.is_primary:
                write_json(self.serialization_dir / f"metrics_epoch_{epoch}.json", {**record, **self._best_metrics()})
                logger.info("Epoch %d: %s", epoch, json.dumps(record))
                # A batch job's log gets one line per epoch (a terminal has seen the bar); epochs
                # of a few seconds (tests, toy runs) get none, like `progress`'s summary lines.
                if validation_metrics and not sys.stderr.isatty() and epoch_duration >= FINAL_LINE_AFTER:
                    shown = {name: validation_metrics.get(name) for name in dict.fromkeys((self.metric_name, "loss"))}
                    shown_text = ", ".join(f"{name}={value:.4f}" for name, value in shown.items() if value is not None)
                    print(
                        f"epoch {epoch}: validation {shown_text}; best {self.metric_name} {self.best_score:.4f} "
                        f"at epoch {self.best_epoch} ({epoch_duration:.0f}s)",
                        file=sys.stderr,
                        flush=True,
                    )
            if self.scheduler is not None and not self.scheduler_steps_every_batch:
                self._step_scheduler(validation_metrics)
            self._save_checkpoint(epoch)
        best_weights = self.serialization_dir / "best.safetensors"
        if self.is_primary and not best_weights.is_file():  # no epoch was trained
            save_weights(self.model.state_dict(), best_weights)
        if self.distributed:
            dist.barrier()  # the other ranks read what rank 0 wrote
        self.model.load_state_dict(load_weights(best_weights))
        metrics = self.final_metrics()
        if self.is_primary:
            write_json(self.serialization_dir / "metrics.json", metrics)
        return metrics

    def final_metrics(self) -> dict[str, Any]:
        """The run's summary, as AllenNLP writes it in `metrics.json`: `best_epoch` and the best
        epoch's `best_validation_*`; `training_*`, `validation_*` and `epoch` of the last epoch;
        the total `training_duration`."""
        if not self.epoch_records:
            return {}
        last = self.epoch_records[-1]
        metrics = self._best_metrics()
        metrics.update({key: value for key, value in last.items() if key != "epoch_duration"})
        metrics["training_duration"] = self.training_duration
        return metrics

    def restore_checkpoint(self) -> int | None:
        """Loads the newest checkpoint of the serialization directory, if any, so that `train`
        continues after it exactly as the interrupted run would have. Returns its epoch."""
        checkpoint = self.checkpointer.latest()
        if checkpoint is None:
            return None
        model_state, state = self.checkpointer.load(checkpoint)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch_records = state["epoch_records"]
        self.best_epoch = state["best_epoch"]
        self.best_score = state["best_score"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        self.training_duration = state["training_duration"]
        self.steps = state.get("steps", 0)
        _set_rng_states(state["rng"], self.rank)
        logger.info("Restored the checkpoint %s", checkpoint)
        return state["epoch"]

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        self.model.get_metrics(reset=True)
        self.train_loader.set_epoch(epoch)
        loss_sum, batch_count = 0.0, 0
        description = f"epoch {epoch}/{self.num_epochs - 1}"
        total_steps = self.total_steps
        with progress(self.train_loader, description, len(self.train_loader)) as bar:
            for batch in bar:
                if self.steps >= total_steps:
                    break
                self.model.set_training_progress(self.steps / total_steps)
                output = self.forward_model(**move_to_device(batch, self.device))
                if "loss" not in output:
                    raise ValueError(
                        "the model gave no loss for a training batch: do all training instances have gold labels?"
                    )
                loss = output["loss"]
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise ValueError(f"the training loss is {loss_value} in epoch {epoch}, batch {batch_count}")
                # A batch may have nothing to learn from (unlabeled text under the `none` KD
                # objective): no step then, so the optimizer's moments are not moved by it.
                if loss.requires_grad:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    parameters = [p for p in self.model.parameters() if p.grad is not None]
                    if self.grad_clipping is not None:
                        torch.nn.utils.clip_grad_value_(parameters, self.grad_clipping)
                    if self.grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(parameters, self.grad_norm)
                    self.optimizer.step()
                    if self.scheduler_steps_every_batch:
                        self.scheduler.step()
                self.steps += 1
                loss_sum += loss_value
                batch_count += 1
                # Metrics are merged across ranks only at the end of the epoch (a collective
                # operation per batch would cost time); a distributed bar shows the loss alone.
                shown = {"loss": loss_sum / batch_count}
                if not self.distributed:
                    shown.update(self.model.get_metrics())
                _show(bar, shown)
        metrics = dict(self.model.get_metrics(reset=True))
        loss_sum, batch_count = _sum_over_ranks(loss_sum, batch_count)
        metrics["loss"] = loss_sum / max(batch_count, 1)
        return metrics

    def _track_best(self, epoch: int, validation_metrics: dict[str, float]) -> bool:
        """Updates the best epoch and the patience counter; returns whether `epoch` is the best."""
        if not validation_metrics:
            improved, score = True, None
        else:
            if self.metric_name not in validation_metrics:
                raise ConfigurationError(
                    f"validation_metric '{self.metric_name}' is not among the validation metrics "
                    f"({', '.join(sorted(validation_metrics))})"
                )
            score = validation_metrics[self.metric_name]
            improved = self.best_score is None or self.metric_sign * score > self.metric_sign * self.best_score
        if improved:
            self.best_epoch, self.best_score, self.epochs_without_improvement = epoch, score, 0
        else:
            self.epochs_without_improvement += 1
        return improved

    def _best_metrics(self) -> dict[str, Any]:
        if self.best_epoch is None:
            return {}
        best = next(record for record in self.epoch_records if record["epoch"] == self.best_epoch)
        return {
            "best_epoch": self.best_epoch,
            **{f"best_{key}": value for key, value in best.items() if key.startswith("validation_")},
        }

    def _step_scheduler(self, validation_metrics: dict[str, float]) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if self.metric_name not in validation_metrics:
                raise ConfigurationError(
                    "torch::ReduceLROnPlateau needs validation data to watch the validation metric"
                )
            self.scheduler.step(validation_metrics[self.metric_name])
        else:
            self.scheduler.step()

    def _save_checkpoint(self, epoch: int) -> None:
        # Every rank takes part: each has its own generator states.
        rng = _rng_states(self.device)
        if not self.is_primary:
            return
        state = {
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch_records": self.epoch_records,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "epochs_without_improvement": self.epochs_without_improvement,
            "training_duration": self.training_duration,
            "steps": self.steps,
            "rng": rng,
        }
        self.checkpointer.save(epoch, self.model.state_dict(), state)


def _registered_name(base: type[Registrable], name: str, suffix: str) -> str:
    """`name` itself when registered, else the `torch::` name it abbreviates AllenNLP style,
    ignoring case and underscores ("adam" -> "torch::Adam", "cosine_annealing" -> "torch::CosineAnnealingLR"
    with `suffix` "LR"), else `name` unchanged (and building it will report it as unknown)."""
    available = base.list_available()
    if name in available:
        return name
    wanted = name.lower().replace("_", "")
    for candidate in available:
        full = candidate.lower()
        short = full.removeprefix("torch::")
        if wanted in (full, short, short.removesuffix(suffix.lower())):
            return candidate
    return name


def _show(bar: "tqdm | ProgressLog", metrics: dict[str, float]) -> None:
    """Shows `metrics` after the bar (the bar redraws them at its next refresh)."""
    bar.set_postfix({name: f"{value:.4f}" for name, value in metrics.items()}, refresh=False)


def _sum_over_ranks(total: float, count: int) -> tuple[float, int]:
    """`total` and `count` summed over all ranks of a distributed run (unchanged otherwise)."""
    if not dist.is_initialized():
        return total, count
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    summed = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(summed)
    return float(summed[0]), int(summed[1])


def _rng_states(device: torch.device) -> dict[str, Any]:
    """The states of python's, numpy's and torch's random number generators. Torch's differ from
    rank to rank (dropout draws as many numbers as a batch has tokens), so every rank's is kept,
    gathered onto each rank."""
    states: dict[str, Any] = {"python": random.getstate(), "numpy": None}
    if "numpy" in sys.modules:
        name, keys, position, has_gauss, cached_gaussian = sys.modules["numpy"].random.get_state()
        states["numpy"] = [name, keys.tolist(), position, has_gauss, cached_gaussian]
    states["torch"] = _gather_over_ranks(torch.get_rng_state())
    if device.type == "cuda":
        states["cuda"] = _gather_over_ranks(torch.cuda.get_rng_state(device))
    return states


def _set_rng_states(states: dict[str, Any], rank: int) -> None:
    random.setstate(states["python"])
    if states["numpy"] is not None:
        import numpy

        name, keys, position, has_gauss, cached_gaussian = states["numpy"]
        numpy.random.set_state((name, numpy.array(keys, dtype=numpy.uint32), position, has_gauss, cached_gaussian))
    # A run resumed with as many ranks as it had restores each rank's own state.
    torch_states = states["torch"]
    torch.set_rng_state(torch_states[rank if rank < len(torch_states) else 0])
    if "cuda" in states and torch.cuda.is_available():
        cuda_states = states["cuda"]
        torch.cuda.set_rng_state(cuda_states[rank if rank < len(cuda_states) else 0])


def _gather_over_ranks(tensor: torch.Tensor) -> list[torch.Tensor]:
    """`tensor` of every rank, in rank order (a one-element list outside distributed runs)."""
    if not dist.is_initialized():
        return [tensor]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    local = tensor.to(device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [part.cpu() for part in gathered]
