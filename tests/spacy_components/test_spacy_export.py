"""`structkd export-spacy`: the component it picks, the pipeline and meta it writes, one-line user
errors (exit code 2), and `spacy package` building a wheel that requires structkd."""

import json
import subprocess
import sys
import zipfile

import spacy
from tango.common import Params

import structkd_plugin
from structkd_plugin.training.train import train_model
from tests.commands.test_cli import assert_user_error, run_cli
from tests.spacy_components.conftest import export
from tests.toy_model import toy_config


def test_the_exported_pipeline_and_its_meta(ner_pipeline, parser_pipeline):
    for pipeline, component in ((ner_pipeline, "structkd_ner"), (parser_pipeline, "structkd_parser")):
        meta = json.loads((pipeline / "meta.json").read_text())
        assert meta["lang"] == "en" and meta["pipeline"] == [component]
        assert meta["requirements"] == [f"structkd>={structkd_plugin.__version__}"]
        folder = pipeline / component
        assert {path.name for path in folder.iterdir()} == {"config.json", "weights.safetensors", "vocabulary", "meta.json"}


def test_component_name_and_base_pipeline(ner_archive, ner_pipeline, tmp_path, capsys):
    named = spacy.load(export(ner_archive, tmp_path / "named", "--lang", "de", "--component-name", "entities"))
    assert named.lang == "de" and named.pipe_names == ["entities"]
    # The base's own components and requirements stay; structkd's requirement is not repeated.
    base = spacy.load(ner_pipeline)
    base.meta["requirements"] = ["structkd>=0.0.1", "numpy"]
    base.to_disk(tmp_path / "base")
    both = spacy.load(export(ner_archive, tmp_path / "both", "--base-pipeline", str(tmp_path / "base"), "--component-name", "again"))
    assert both.pipe_names == ["structkd_ner", "again"]
    assert both.meta["requirements"] == ["numpy", f"structkd>={structkd_plugin.__version__}"]


def test_user_errors(ner_archive, ner_pipeline, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "export-spacy", "--help")
    assert code == 0 and "Usage: structkd export-spacy [OPTIONS] ARCHIVE OUTPUT_DIR" in out
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").touch()
    out = str(tmp_path / "out")
    assert_user_error(run_cli(capsys, "export-spacy", str(ner_archive), str(tmp_path / "full"), "--lang", "en"), "full exists and is not empty")
    assert_user_error(run_cli(capsys, "export-spacy", str(ner_archive), out), "give --lang for a new blank pipeline, or --base-pipeline")
    assert_user_error(run_cli(capsys, "export-spacy", str(ner_archive), out, "--lang", "zz"), "--lang zz:", "zz")
    assert_user_error(
        run_cli(capsys, "export-spacy", str(ner_archive), out, "--base-pipeline", str(ner_pipeline)),
        "already has a component named 'structkd_ner': choose another with --component-name",
    )
    assert_user_error(
        run_cli(capsys, "export-spacy", str(ner_archive), out, "--base-pipeline", str(ner_pipeline), "--lang", "de"),
        "--lang de differs from the language of the base pipeline (en)",
    )
    assert_user_error(
        run_cli(capsys, "export-spacy", str(ner_archive), out, "--base-pipeline", str(tmp_path / "full")),
        f"cannot load the base pipeline {tmp_path / 'full'}",
    )
    assert_user_error(run_cli(capsys, "export-spacy", str(tmp_path / "full" / "file"), out, "--lang", "en"), "file")
    assert not (tmp_path / "out").exists()


def test_a_model_that_is_no_tagger_or_parser(tmp_path, capsys):
    train_model(Params(toy_config(evaluate_on_test=False, trainer={"optimizer": "adam", "num_epochs": 1})), tmp_path / "toy")
    assert_user_error(
        run_cli(capsys, "export-spacy", str(tmp_path / "toy" / "model.tar.gz"), str(tmp_path / "out"), "--lang", "en"),
        "holds a ToyTagger; only taggers and dependency parsers become spaCy components",
    )


def test_spacy_package_builds_a_wheel_that_requires_structkd(ner_pipeline, tmp_path):
    """`spacy package --build wheel` needs the `build` or `wheel` package; this runs the same
    `setup.py bdist_wheel` (setuptools alone) on the package directory `spacy package` writes."""
    spacy_package = [sys.executable, "-m", "spacy", "package", str(ner_pipeline), str(tmp_path), "--build", "none"]
    subprocess.run([*spacy_package, "--name", "structkd_demo", "--version", "1.0.0"], check=True, capture_output=True)
    package = tmp_path / "en_structkd_demo-1.0.0"
    subprocess.run([sys.executable, "setup.py", "-q", "bdist_wheel"], cwd=package, check=True, capture_output=True)
    (wheel,) = (package / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        requirements = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
        assert any(name.endswith("structkd_ner/weights.safetensors") for name in archive.namelist())
    assert f"Requires-Dist: structkd>={structkd_plugin.__version__}" in requirements
