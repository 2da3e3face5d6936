"""The trainer on its own: gradient clipping, and training without validation data."""

import pytest
import torch
from tango.common import Lazy, Params

from structkd_plugin.data import DatasetReader, Vocabulary
from structkd_plugin.training.trainer import InstanceLoader, Trainer
from tests.toy_model import FIXTURES, ToyTagger

BATCHES = 8  # 30 sentences in batches of 4


@pytest.fixture(scope="module")
def instances():
    reader = DatasetReader.from_params(Params({"type": "conll2003"}))
    return list(reader.read(FIXTURES / "conll2003_ner.txt"))


def one_epoch_of_sgd(instances, tmp_path, **clipping) -> tuple[torch.Tensor, torch.Tensor]:
    """The projection weights before and after an epoch of SGD with learning rate 1."""
    torch.manual_seed(0)
    model = ToyTagger(Vocabulary.from_instances(instances))
    before = model.projection.weight.detach().clone()
    loader = InstanceLoader(instances, model.tensorize, batch_size=4)
    trainer = Trainer(model, tmp_path, loader, Lazy(torch.optim.SGD, lr=1.0), num_epochs=1, **clipping)
    trainer.train()
    return before, model.projection.weight.detach()


def test_grad_norm_bounds_each_step(instances, tmp_path):
    before, after = one_epoch_of_sgd(instances, tmp_path / "a")
    assert (after - before).norm() > 10 * BATCHES * 1e-3  # unclipped steps are much larger
    before, after = one_epoch_of_sgd(instances, tmp_path / "b", grad_norm=1e-3)
    assert (after - before).norm() <= BATCHES * 1e-3 * (1 + 1e-4)


def test_grad_clipping_bounds_each_value(instances, tmp_path):
    before, after = one_epoch_of_sgd(instances, tmp_path / "a")
    assert (after - before).abs().max() > 10 * BATCHES * 1e-4
    before, after = one_epoch_of_sgd(instances, tmp_path / "b", grad_clipping=1e-4)
    assert (after - before).abs().max() <= BATCHES * 1e-4 * (1 + 1e-4)


def test_without_validation_the_last_epoch_is_the_best(instances, tmp_path):
    model = ToyTagger(Vocabulary.from_instances(instances))
    loader = InstanceLoader(instances, model.tensorize, batch_size=4)
    trainer = Trainer(model, tmp_path, loader, Lazy(torch.optim.Adam, lr=0.01), num_epochs=2, patience=1)
    metrics = trainer.train()
    assert metrics["best_epoch"] == 1 and metrics["epoch"] == 1
    assert not any(key.startswith("validation_") or key.startswith("best_validation") for key in metrics)
    assert {"training_loss", "training_accuracy"} <= set(metrics)
