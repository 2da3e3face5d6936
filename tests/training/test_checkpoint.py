"""Checkpoint files: tensor trees without pickle, atomic writes, the newest complete checkpoint."""

import random

import pytest
import torch

from structkd_plugin.file_safety import write_atomically
from structkd_plugin.training.checkpoint import Checkpointer, load_tensor_tree, save_tensor_tree
from structkd_plugin.weights import load_weights, save_weights


def test_tensor_tree_round_trip_keeps_types_keys_and_exact_values(tmp_path):
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3, dtype=torch.float64)}, 1: {}},
        "groups": [{"betas": (0.9, 0.999), "lr": 1e-3, "params": [0, 1], "foreach": None, "name": "a"}],
        "rng": random.getstate(),
        "nan": float("inf"),
        "looks_like_a_marker": {"__tensor__": "0"},
        "bytes": torch.get_rng_state(),
    }
    save_tensor_tree(tree, tmp_path, "tree")
    loaded = load_tensor_tree(tmp_path, "tree")
    assert set(loaded["state"]) == {0, 1}
    assert torch.equal(loaded["state"][0]["exp_avg"], tree["state"][0]["exp_avg"])
    assert loaded["state"][0]["exp_avg"].dtype == torch.float64
    assert loaded["state"][0]["step"].shape == ()
    assert loaded["groups"] == tree["groups"] and isinstance(loaded["groups"][0]["betas"], tuple)
    assert loaded["rng"] == tree["rng"]
    assert loaded["looks_like_a_marker"] == {"__tensor__": "0"}
    assert torch.equal(loaded["bytes"], tree["bytes"])
    assert loaded["nan"] == float("inf")


def test_tensor_tree_refuses_objects_json_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="cannot store a value of type object"):
        save_tensor_tree({"x": object()}, tmp_path, "tree")


def test_optimizer_state_round_trip_continues_identically(tmp_path):
    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(4))

    def step(optimizer):
        optimizer.zero_grad()
        (weights**2).sum().backward()
        optimizer.step()

    optimizer = torch.optim.Adam([weights], lr=0.1)
    step(optimizer)
    save_tensor_tree(optimizer.state_dict(), tmp_path, "optimizer")
    saved_weights = weights.detach().clone()
    step(optimizer)
    expected = weights.detach().clone()

    with torch.no_grad():
        weights.copy_(saved_weights)
    restored = torch.optim.Adam([weights], lr=0.1)
    restored.load_state_dict(load_tensor_tree(tmp_path, "optimizer"))
    step(restored)
    assert torch.equal(weights.detach(), expected)


def test_weights_round_trip_including_tied_tensors(tmp_path):
    shared = torch.randn(3, 2)
    save_weights({"a": shared, "b": shared, "c": torch.arange(4)}, tmp_path / "w.safetensors")
    loaded = load_weights(tmp_path / "w.safetensors")
    assert (
        torch.equal(loaded["a"], shared)
        and torch.equal(loaded["b"], shared)
        and torch.equal(loaded["c"], torch.arange(4))
    )


def test_write_atomically_keeps_the_old_file_and_no_temporary_on_failure(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")

    def failing_write(temporary):
        temporary.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, failing_write)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
    write_atomically(path, lambda temporary: temporary.write_text("new"))
    assert path.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_checkpointer_keeps_the_newest_complete_checkpoint(tmp_path):
    checkpointer = Checkpointer(tmp_path)
    assert checkpointer.latest() is None
    for epoch in range(3):
        checkpointer.save(epoch, {"w": torch.full((2,), float(epoch))}, {"epoch": epoch})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch_2"]
    # A checkpoint being written when the run was killed is a hidden temporary directory.
    (tmp_path / "checkpoints" / ".epoch_3.abc.tmp").mkdir()
    latest = checkpointer.latest()
    assert latest.name == "epoch_2"
    weights, state = Checkpointer.load(latest)
    assert torch.equal(weights["w"], torch.full((2,), 2.0)) and state == {"epoch": 2}


def test_checkpointer_leaves_nothing_when_saving_fails(tmp_path):
    checkpointer = Checkpointer(tmp_path)
    checkpointer.save(0, {"w": torch.zeros(1)}, {"epoch": 0})
    with pytest.raises(TypeError):
        checkpointer.save(1, {"w": torch.ones(1)}, {"epoch": 1, "bad": object()})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch_0"]
