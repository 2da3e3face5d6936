"""Every config of training_configs/parsing/ loads, builds its reader and model, and scores the
UD fixture."""

import json
from pathlib import Path

import pytest
import torch
from tango.common import Params

from structkd_plugin.config import import_structkd_registrations, load_config
from structkd_plugin.data import DatasetReader, Vocabulary
from structkd_plugin.models import BiaffineParser, Model
from tests.modules.tiny_bert import build_tiny_bert

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "universal_dependencies.conllu"
# sequence_labeler.jsonnet has no `tree`; tests/models/test_dependency_sequence_labeler.py checks it.
CONFIGS = sorted(path for path in (ROOT / "training_configs" / "parsing").glob("*.jsonnet") if path.stem != "sequence_labeler")


def test_there_are_parsing_configs():
    assert {path.stem for path in CONFIGS} >= {"biaffine_parser", "biaffine_minilm", "biaffine_minilm_frozen", "second_order_parser"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
@pytest.mark.parametrize("tree", ["local", "nonprojective", "projective"])
def test_parsing_config_builds_a_parser_that_scores_the_fixture(path, tree, tmp_path_factory, monkeypatch):
    if path.stem == "second_order_parser" and tree == "local":
        pytest.skip("the second-order parser has no local tree")
    import_structkd_registrations()
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH"):
        monkeypatch.setenv(variable, str(FIXTURE))
    monkeypatch.setenv("MODEL_DIR", str(build_tiny_bert(tmp_path_factory.mktemp("bert"))))
    overrides = {"model.tree": tree}
    if path.stem == "biaffine_minilm_frozen":
        overrides["model.encoder.input_size"] = 32  # the tiny BERT's hidden size, not MiniLM's
    config = load_config(path, json.dumps(overrides)).as_dict()
    assert config["trainer"]["validation_metric"] == "+LAS"

    reader = DatasetReader.from_params(Params(config["dataset_reader"]))
    instances = list(reader.read(config["train_data_path"]))
    vocab = Vocabulary.from_params(Params(config.get("vocabulary", {})), instances=instances)
    model = Model.from_params(Params(config["model"]), vocab=vocab)
    assert isinstance(model, BiaffineParser) and model.tree_kind == tree
    model.eval()
    with torch.no_grad():
        output = model(**model.tensorize(instances[:3]))
    assert torch.isfinite(output["loss"])
    assert set(model.get_metrics()) >= {"UAS", "LAS"}
