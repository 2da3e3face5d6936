"""What the bad-input suite runs on: tiny archives (one or two epochs: the suite checks how faults are
reported, not accuracy) and a runner of the `structkd` command in this process."""

import traceback
from pathlib import Path

import pytest
from tango.common import Params

from structkd_plugin.commands import main
from structkd_plugin.training.train import train_model
from tests.models.test_dependency_sequence_labeler import labeler_config
from tests.models.test_parsers import parser_config
from tests.models.test_taggers import tagger_config


def run_structkd(capsys, arguments: list[str]) -> tuple[int, str]:
    """Runs `structkd ARGUMENTS` here; returns (exit code, stdout + stderr). An exception that
    escapes the command is what a user would see as a traceback: exit code 1 and its text."""
    capsys.readouterr()
    try:
        main([str(argument) for argument in arguments])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception:  # noqa: BLE001 - the suite reports it as the traceback a user would get
        out, err = capsys.readouterr()
        return 1, out + err + traceback.format_exc()
    out, err = capsys.readouterr()
    return code, out + err


def _trained(config: dict, directory: Path) -> Path:
    train_model(Params(config), directory)
    return directory / "model.tar.gz"


@pytest.fixture(scope="session")
def ner_archive(tmp_path_factory) -> Path:
    """A CRF tagger of BIO tags on fixtures/ner (universal_ner reader)."""
    config = tagger_config("crf_tagger")
    config["trainer"]["num_epochs"] = 1
    return _trained(config, tmp_path_factory.mktemp("bad-ner") / "run")


@pytest.fixture(scope="session")
def parser_archive(tmp_path_factory) -> Path:
    """A tree-CRF biaffine parser on the UD fixture."""
    config = parser_config("biaffine_parser", "nonprojective", num_epochs=1)
    return _trained(config, tmp_path_factory.mktemp("bad-parser") / "run")


@pytest.fixture(scope="session")
def labeler_archive(tmp_path_factory) -> Path:
    """A rel_pos sequence-labeling parser: it reads the words' UPOS."""
    return _trained(labeler_config("rel_pos", False, num_epochs=1), tmp_path_factory.mktemp("bad-labeler") / "run")
