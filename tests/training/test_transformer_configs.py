"""Configs that fine-tune a transformer bound how many sentences a batch holds."""

import json
from pathlib import Path

import pytest

from structkd_plugin.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "training_configs").glob("*/*.jsonnet"))


def fine_tuned_transformers(node) -> list[dict]:
    """The transformer embedders anywhere in a config that are not frozen."""
    if isinstance(node, dict):
        found = [node] if node.get("type") == "transformer" and not node.get("freeze", False) else []
        return found + [embedder for value in node.values() for embedder in fine_tuned_transformers(value)]
    if isinstance(node, list):
        return [embedder for value in node for embedder in fine_tuned_transformers(value)]
    return []


def test_the_scan_finds_the_fine_tuned_configs(monkeypatch):
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH", "MODEL_DIR"):
        monkeypatch.setenv(variable, "unused")
    found = {path.stem for path in CONFIGS if path.parent.name != "distill" and fine_tuned_transformers(load_config(path).as_dict())}
    assert found >= {"biaffine_minilm", "transformer_crf"}


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name != "distill"], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_fine_tuned_transformer_has_a_sentence_cap(path, monkeypatch):
    # Short sentences fill a word budget by the hundreds, and one long piece sequence pads all
    # their windows: the saved activations of such a batch took 16 GB.
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH", "MODEL_DIR"):
        monkeypatch.setenv(variable, "unused")
    config = load_config(path).as_dict()
    if fine_tuned_transformers(config):
        assert config["data_loader"].get("batch_size"), json.dumps(config["data_loader"])
