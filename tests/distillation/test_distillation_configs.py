"""Every tagging distillation config of training_configs/distill/ builds its teacher, student and
objective with each student kind, and gives a finite loss on the UniversalNER fixture (the UPOS
config on the UD fixture, from a Hugging Face token classifier)."""

import json
from pathlib import Path

import pytest
import torch
from tango.common import Params

from structkd_plugin.config import import_structkd_registrations, load_config
from structkd_plugin.data import DatasetReader, UniversalDependenciesDatasetReader, Vocabulary
from structkd_plugin.models import Model
from structkd_plugin.training.train import train_model
from tests.models.test_hf_token_classifier import token_classifier

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "universal_ner.iob2"
CONFIGS = sorted((ROOT / "training_configs" / "distill").glob("*.jsonnet"))


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """A CRF, a softmax and a span_ner teacher archive, trained one epoch on the fixture, and a
    tiny random Hugging Face UPOS token classifier."""
    import_structkd_registrations()
    archives = {}
    for kind, model_type in (("crf", "crf_tagger"), ("softmax", "softmax_tagger"), ("span", "span_ner")):
        config = {
            "dataset_reader": {"type": "universal_ner", "label_scheme": "BIO"},
            "train_data_path": str(FIXTURE),
            "model": {
                "type": model_type,
                "label_encoding": "BIO",
                "text_embedder": {"token_embedders": {"words": {"type": "word", "embedding_dim": 8}}},
            },
            "data_loader": {"max_tokens": 200},
            "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": 1},
        }
        directory = tmp_path_factory.mktemp(f"{kind}_teacher")
        train_model(Params(config), directory)
        archives[kind] = directory / "model.tar.gz"
    treebank = UniversalDependenciesDatasetReader(tag_label="upos").read(ROOT / "fixtures" / "universal_dependencies.conllu")
    upos = sorted({tag for instance in treebank for tag in instance["tags"]})
    archives["upos"] = token_classifier(tmp_path_factory.mktemp("upos_teacher"), upos)
    return archives


def test_there_is_a_config_per_objective():
    expected = {"none", "token", "posterior", "top_k", "structural", "local_substructure"}
    assert {path.stem for path in CONFIGS} >= expected | {"crf_to_crf", "crf_to_softmax", "softmax_to_crf"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
@pytest.mark.parametrize("student", ["crf", "softmax", "crf_chars", "softmax_chars"])
def test_distillation_configs_build_and_score_the_fixture(teachers, path, student, monkeypatch):
    fixed_student = "student_kind=" in path.read_text()
    if fixed_student and student != "crf":
        pytest.skip(f"{path.stem} fixes its student")
    data, teacher = str(FIXTURE), "span" if path.stem.startswith("span_to") else "softmax" if path.stem.startswith("softmax_to") else "crf"
    archive = str(teachers[teacher])
    if path.stem == "multilingual":  # paths and teachers by language
        data, archive = json.dumps({"pt": data}), json.dumps({"pt": archive})
    if path.stem == "upos":  # a Hugging Face UPOS teacher on a treebank
        data, archive = str(ROOT / "fixtures" / "universal_dependencies.conllu"), str(teachers["upos"])
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH"):
        monkeypatch.setenv(variable, data)
    monkeypatch.setenv("TEACHER", archive)
    monkeypatch.setenv("STUDENT", student)
    monkeypatch.setenv("UNLABELED_PATH", str(ROOT / "fixtures" / "plain_text.txt"))
    monkeypatch.setenv("MAX_UNLABELED", "3")
    monkeypatch.setenv("TEXT_LANG", "pt")
    config = load_config(path).as_dict()
    reader = DatasetReader.from_params(Params(config["dataset_reader"]))
    instances = list(reader.read(config["train_data_path"]))
    vocab = Vocabulary.from_params(Params(config.get("vocabulary", {})), instances=instances)
    embedders = config["model"]["student"]["text_embedder"]["token_embedders"]
    if not fixed_student:
        assert ("characters" in embedders) == student.endswith("_chars")
    if "unlabeled_dataset_reader" in config:
        unlabeled = DatasetReader.from_params(Params(config["unlabeled_dataset_reader"]))
        assert len(list(unlabeled.read(config["unlabeled_data_path"]))) == 3
    model = Model.from_params(Params(config["model"]), vocab=vocab)
    output = model(**model.tensorize(instances[:4]))
    assert torch.isfinite(output["loss"]) and torch.isfinite(output["kd_loss"])


@pytest.mark.parametrize("path", [ROOT / "training_configs" / "distill" / "raw_text.jsonnet", ROOT / "training_configs" / "distill" / "parsing" / "raw_text.jsonnet"], ids=["ner", "parsing"])
def test_the_raw_text_recipes_without_raw_text_are_their_gold_only_baselines(path, monkeypatch):
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH", "TEACHER"):
        monkeypatch.setenv(variable, "x")
    monkeypatch.setenv("UNLABELED_PATH", "")
    config = load_config(path).as_dict()
    assert "unlabeled_data_path" not in config and "unlabeled_dataset_reader" not in config
    assert "unlabeled_ratio" not in config["data_loader"] and config["trainer"]["patience"] == 5
