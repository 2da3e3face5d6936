"""Tiny models trained on the fixtures (a few epochs: the tests compare the components with the
models' own predictions, not with gold), each exported as a spaCy pipeline with `structkd
export-spacy`."""

from pathlib import Path

import pytest
from tango.common import Params

from structkd_plugin.commands import main
from structkd_plugin.training.train import train_model
from tests.models.test_parsers import FIXTURE as UD_FIXTURE
from tests.models.test_parsers import parser_config
from tests.models.test_taggers import tagger_config


def export(archive: Path, output: Path, *options: str) -> Path:
    """Runs `structkd export-spacy ARCHIVE OUTPUT OPTIONS` (default `--lang en`), which must succeed."""
    with pytest.raises(SystemExit) as exit_info:
        main(["export-spacy", str(archive), str(output), *(options or ("--lang", "en"))])
    assert exit_info.value.code == 0
    return output


def trained(config: dict, directory: Path) -> Path:
    train_model(Params(config), directory)
    return directory / "model.tar.gz"


@pytest.fixture(scope="session")
def ner_archive(tmp_path_factory):
    """A BiLSTM-CRF over words and characters, BIO tags (fixtures/ner)."""
    config = tagger_config("crf_tagger")
    config["trainer"]["num_epochs"] = 8
    return trained(config, tmp_path_factory.mktemp("ner") / "run")


@pytest.fixture(scope="session")
def parser_archive(tmp_path_factory):
    """A non-projective biaffine parser over words and characters (the UD fixture)."""
    config = parser_config("biaffine_parser", "nonprojective", num_epochs=5)
    del config["model"]["pos_embedding_dim"]
    config["model"]["encoder"]["input_size"] = 24
    return trained(config, tmp_path_factory.mktemp("parser") / "run")


@pytest.fixture(scope="session")
def upos_parser_archive(tmp_path_factory):
    """A biaffine parser that also embeds the words' UPOS."""
    return trained(parser_config("biaffine_parser", "local", num_epochs=2), tmp_path_factory.mktemp("upos") / "run")


@pytest.fixture(scope="session")
def upos_tagger_archive(tmp_path_factory):
    """A softmax tagger of UPOS tags (no span label_encoding: it becomes a structkd_tagger)."""
    config = tagger_config("softmax_tagger")
    del config["model"]["label_encoding"]
    config.update(
        dataset_reader={"type": "universal_dependencies", "tag_label": "upos"},
        train_data_path=str(UD_FIXTURE),
        validation_data_path=str(UD_FIXTURE),
    )
    config["trainer"].update(num_epochs=5, validation_metric="+accuracy")
    return trained(config, tmp_path_factory.mktemp("upos-tagger") / "run")


@pytest.fixture(scope="session")
def ner_pipeline(ner_archive, tmp_path_factory):
    return export(ner_archive, tmp_path_factory.mktemp("export") / "ner")


@pytest.fixture(scope="session")
def parser_pipeline(parser_archive, tmp_path_factory):
    return export(parser_archive, tmp_path_factory.mktemp("export") / "parser")
