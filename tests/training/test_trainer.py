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


def test_num_steps_ends_training_inside_an_epoch(instances, tmp_path):
    model = ToyTagger(Vocabulary.from_instances(instances))
    loader = InstanceLoader(instances, model.tensorize, batch_size=4)
    trainer = Trainer(model, tmp_path, loader, Lazy(torch.optim.SGD, lr=0.1), num_epochs=5, num_steps=BATCHES + 3)
    metrics = trainer.train()
    assert trainer.steps == BATCHES + 3 and trainer.total_steps == BATCHES + 3
    assert metrics["epoch"] == 1  # the second epoch was cut short; no third
    with pytest.raises(Exception, match="num_steps must be >= 1"):
        Trainer(model, tmp_path, loader, Lazy(torch.optim.SGD, lr=0.1), num_steps=0)


def test_linear_with_warmup_steps_every_update_over_the_budget(instances, tmp_path):
    model = ToyTagger(Vocabulary.from_instances(instances))
    loader = InstanceLoader(instances, model.tensorize, batch_size=4)
    params = Params({"optimizer": {"type": "sgd", "lr": 1.0}, "learning_rate_scheduler": {"type": "linear_with_warmup", "warmup_steps": 4}, "num_epochs": 2})
    trainer = Trainer.from_params(params, model=model, serialization_dir=tmp_path, train_loader=loader)
    rates = []
    trainer.optimizer.register_step_pre_hook(lambda optimizer, *_: rates.append(optimizer.param_groups[0]["lr"]))
    trainer.train()
    total = 2 * BATCHES
    expected = [(step + 1) / 5 if step < 4 else (total - step) / (total - 4) for step in range(total)]
    assert rates == pytest.approx(expected)


def test_fractional_warmup_and_resuming_keep_the_schedule(instances, tmp_path):
    def trainer_for(directory, epochs):
        torch.manual_seed(0)
        model = ToyTagger(Vocabulary.from_instances(instances))
        loader = InstanceLoader(instances, model.tensorize, batch_size=4)
        params = {"optimizer": {"type": "sgd", "lr": 0.5}, "learning_rate_scheduler": {"type": "linear_with_warmup", "warmup_steps": 0.25}, "num_epochs": epochs}
        return Trainer.from_params(Params(params), model=model, serialization_dir=directory, train_loader=loader)

    straight = trainer_for(tmp_path / "straight", 3)
    straight.train()
    assert straight.scheduler.warmup == 6  # a quarter of 24 updates
    # Train one epoch (as if killed then), then resume in a new trainer: the same rates and weights.
    first = trainer_for(tmp_path / "resumed", 3)
    first.num_steps = BATCHES
    first.train()
    resumed = trainer_for(tmp_path / "resumed", 3)
    resumed.restore_checkpoint()
    assert resumed.steps == BATCHES
    resumed.train()
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(straight.optimizer.param_groups[0]["lr"])
    assert torch.allclose(resumed.model.projection.weight, straight.model.projection.weight)


def test_unlabeled_batches_are_one_stream_across_epochs(instances):
    from structkd_plugin.data.sentence_store import SentenceStore
    from structkd_plugin.training.trainer import InterleavedLoader

    def words(batch):
        return [tuple(instance["words"]) for instance in batch]

    gold = InstanceLoader(instances[:8], words, batch_size=4)  # 2 gold batches an epoch
    store = SentenceStore(instances[8:])  # 22 unlabeled sentences: 6 batches of 4 (one of 2)
    unlabeled = InstanceLoader(store, words, batch_size=4, seed=3)
    loader = InterleavedLoader(gold, unlabeled, unlabeled_ratio=1.5, seed=3)  # 3 unlabeled batches an epoch
    unlabeled_sentences = {tuple(instance["words"]) for instance in instances[8:]}
    seen = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == len(loader) == 5
        seen.extend(sentence for batch in batches for sentence in batch if sentence in unlabeled_sentences)
    # Epochs 0 and 1 take the first pass's 6 batches; epochs 2 and 3 the second pass's.
    assert sorted(seen[: len(unlabeled_sentences)]) == sorted(unlabeled_sentences)
    assert sorted(seen[len(unlabeled_sentences) :]) == sorted(unlabeled_sentences)
    assert seen[: len(unlabeled_sentences)] != seen[len(unlabeled_sentences) :]  # each pass shuffled anew
