"""Model archives: atomic writing, and clear errors for missing, corrupt or incompatible ones."""

import io
import json
import tarfile

import pytest
import safetensors.torch
import torch
from tango.common import Params

import structkd_plugin
from structkd_plugin.archival import ArchiveError, archive_model, load_archive
from structkd_plugin.config import ConfigurationError
from structkd_plugin.training.train import train_model
from tests.toy_model import toy_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained toy run (one epoch)."""
    directory = tmp_path_factory.mktemp("archival") / "run"
    config = toy_config(evaluate_on_test=False, trainer={"optimizer": "adam", "num_epochs": 1})
    train_model(Params(config), directory)
    return directory


def rewrite_archive(source, target, drop=(), replace=None):
    """Copies the archive `source` to `target` without the members in `drop` and with the
    members of `replace` ({name: bytes}) substituted."""
    replace = replace or {}
    with tarfile.open(source, "r:gz") as original, tarfile.open(target, "w:gz") as copy:
        for member in original.getmembers():
            if member.name in drop or member.name.split("/")[0] in drop:
                continue
            if member.name in replace:
                member.size = len(replace[member.name])
                copy.addfile(member, io.BytesIO(replace[member.name]))
            else:
                copy.addfile(member, original.extractfile(member) if member.isfile() else None)
    return target


def test_archive_members_and_meta(run):
    with tarfile.open(run / "model.tar.gz", "r:gz") as archive:
        names = set(archive.getnames())
        meta = json.load(archive.extractfile("meta.json"))
        config = json.load(archive.extractfile("config.json"))
    assert {
        "config.json",
        "weights.safetensors",
        "meta.json",
        "vocabulary",
        "vocabulary/labels.txt",
        "vocabulary/tokens.txt",
    } <= names
    assert meta["structkd_version"] == structkd_plugin.__version__
    assert meta["torch_version"] == torch.__version__ and "transformers_version" in meta and "date" in meta
    assert config["model"]["type"] == "toy_tagger"


def test_archive_writing_failure_leaves_no_partial_file(run, tmp_path, monkeypatch):
    target = tmp_path / "model.tar.gz"
    archive_model(run, archive_path=target)
    before = target.read_bytes()
    original_add = tarfile.TarFile.add

    def add_then_fail(self, name, *args, **kwargs):
        original_add(self, name, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(tarfile.TarFile, "add", add_then_fail)
    with pytest.raises(OSError, match="disk full"):
        archive_model(run, archive_path=target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar.gz"]
    with pytest.raises(OSError, match="disk full"):
        archive_model(run, archive_path=tmp_path / "new.tar.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar.gz"]


def test_archiving_an_incomplete_run_is_refused(tmp_path):
    with pytest.raises(ArchiveError, match="missing .*config.json"):
        archive_model(tmp_path)


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match=r"nowhere.tar.gz: no such model archive"):
        load_archive(tmp_path / "nowhere.tar.gz")


def test_corrupt_archives(run, tmp_path):
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a tarball")
    with pytest.raises(ArchiveError, match="garbage.tar.gz is not a readable model archive"):
        load_archive(garbage)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes((run / "model.tar.gz").read_bytes()[:-200])
    with pytest.raises(ArchiveError, match="truncated.tar.gz is not a readable model archive"):
        load_archive(truncated)
    bad_weights = rewrite_archive(
        run / "model.tar.gz", tmp_path / "bad_weights.tar.gz", replace={"weights.safetensors": b"\x00" * 64}
    )
    with pytest.raises(ArchiveError, match="bad_weights.tar.gz: cannot read weights.safetensors"):
        load_archive(bad_weights)
    bad_config = rewrite_archive(
        run / "model.tar.gz", tmp_path / "bad_config.tar.gz", replace={"config.json": b"{not json"}
    )
    with pytest.raises(ArchiveError, match="bad_config.tar.gz: config.json is not valid JSON"):
        load_archive(bad_config)


def test_archive_with_missing_members(run, tmp_path):
    incomplete = rewrite_archive(
        run / "model.tar.gz", tmp_path / "incomplete.tar.gz", drop=("weights.safetensors", "vocabulary")
    )
    with pytest.raises(
        ArchiveError,
        match="incomplete.tar.gz is not a complete model archive: it has no weights.safetensors, vocabulary",
    ):
        load_archive(incomplete)


def test_weights_that_do_not_fit_the_model(run, tmp_path):
    with pytest.raises(
        ArchiveError, match=r"the weights do not fit .*wrong shape: embedding.weight \(\d+, 8\) instead of \(\d+, 16\)"
    ):
        load_archive(run / "model.tar.gz", overrides='{"model.embedding_dim": 16}')
    with tarfile.open(run / "model.tar.gz", "r:gz") as archive:
        weights = safetensors.torch.load(archive.extractfile("weights.safetensors").read())
    extra = safetensors.torch.save(
        {**{k: v for k, v in weights.items() if k != "projection.bias"}, "surplus": torch.zeros(1)}
    )
    mismatched = rewrite_archive(
        run / "model.tar.gz", tmp_path / "mismatched.tar.gz", replace={"weights.safetensors": extra}
    )
    with pytest.raises(
        ArchiveError, match=r"mismatched.tar.gz: the weights do not fit .*missing: projection.bias; unexpected: surplus"
    ):
        load_archive(mismatched)


def test_overrides_with_a_misspelled_key_are_explained(run):
    with pytest.raises(ConfigurationError, match="unknown key 'embeding_dim' in the config of ToyTagger"):
        load_archive(run / "model.tar.gz", overrides='{"model.embeding_dim": 16}')
