"""Parsers distilled into sequence-labeling parsers (Wang et al.'s cases 1b and 2b), end to end on
the UD fixture: student-only archives, cached and online teachers, unsupported pairs."""

from pathlib import Path

import pytest
import torch
from tango.common import Params

from structkd_plugin.archival import load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import import_structkd_registrations, load_config
from structkd_plugin.data import DatasetReader, UniversalDependenciesDatasetReader, Vocabulary, without_labels
from structkd_plugin.distillation.objectives import KDObjective
from structkd_plugin.models import BiaffineParser, DependencySequenceLabeler, Model
from structkd_plugin.training.train import train_model
from tests.models.test_dependency_sequence_labeler import labeler_config
from tests.models.test_parsers import parser_config

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "universal_dependencies.conllu"


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    import_structkd_registrations()
    root = tmp_path_factory.mktemp("parsers")
    archives = {}
    for name, model_type, tree in [
        ("local", "biaffine_parser", "local"),
        ("nonprojective", "biaffine_parser", "nonprojective"),
        ("second_order", "second_order_parser", "nonprojective"),
    ]:
        train_model(Params(parser_config(model_type, tree, num_epochs=4)), root / name)
        archives[name] = root / name / "model.tar.gz"
    return archives


def _nested(cache_dir, teacher_cache=False, teacher_cache_dtype=None, pairwise_top_k=None, relation_top_k_heads=None, **model) -> dict:
    """The distillation block's settings: with `teacher_cache`, a cache in `cache_dir` with the given options."""
    if teacher_cache:
        options = {"dtype": teacher_cache_dtype, "pairwise_top_k": pairwise_top_k, "relation_top_k_heads": relation_top_k_heads}
        model["teacher_cache"] = {"directory": str(cache_dir), **{k: v for k, v in options.items() if v is not None}}
    return model


def distilling(config: dict, teacher: Path, objective: dict, cache_dir: Path, **model) -> dict:
    """A student's training config made into a distillation config."""
    config["model"] = {
        "type": "distillation",
        "teacher_archive": str(teacher),
        "student": config["model"],
        "objective": objective,
        **_nested(cache_dir, **model),
    }
    return config


def distillation_config(teacher: Path, objective: dict, cache_dir: Path, encoding="rel_pos", crf=False, **model) -> dict:
    return distilling(labeler_config(encoding, crf, num_epochs=2), teacher, objective, cache_dir, **model)


def build(config: dict):
    instances = list(UniversalDependenciesDatasetReader(tag_label=config["dataset_reader"].get("tag_label")).read(FIXTURE))
    return Model.from_params(Params(config["model"]), vocab=Vocabulary.from_instances(instances)), instances


@pytest.mark.parametrize(
    "teacher,objective,encoding,crf",
    [
        ("local", {"type": "biaffine_to_sequence_labeler"}, "rel_pos", False),
        ("local", {"type": "structural"}, "rel_offset", True),
        ("nonprojective", {"type": "biaffine_to_sequence_labeler"}, "rel_offset", False),
        ("nonprojective", {"type": "posterior"}, "rel_pos", True),
        ("nonprojective", {"type": "top_k", "k": 1}, "rel_pos", False),
        ("second_order", {"type": "second_order_to_sequence_labeler"}, "rel_pos", True),
        ("second_order", {"type": "token"}, "rel_offset", False),
        ("local", {"type": "partial_teacher"}, "rel_pos", False),
        ("nonprojective", {"type": "local_substructure"}, "rel_pos", True),
    ],
)
def test_a_parser_distills_into_a_sequence_labeler_archive(teachers, tmp_path, teacher, objective, encoding, crf):
    config = distillation_config(teachers[teacher], objective, tmp_path / "cache", encoding, crf, teacher_cache=True)
    train_model(Params(config), tmp_path / "run")
    archive = load_archive(tmp_path / "run" / "model.tar.gz")
    assert isinstance(archive.model, DependencySequenceLabeler)
    assert archive.config["model"]["type"] == "dependency_sequence_labeler"
    data = list(archive.validation_dataset_reader.read(FIXTURE))
    for prediction in predictions(archive.model, data, 8):
        assert sum(head == 0 for head in prediction["heads"]) == 1


@pytest.mark.parametrize(
    "teacher,crf,objective",
    [("nonprojective", False, "structural"), ("second_order", True, "structural"), ("local", True, "local_substructure")],
)
def test_cached_and_online_parser_teachers_give_the_same_loss(teachers, tmp_path, teacher, crf, objective):
    online, instances = build(distillation_config(teachers[teacher], {"type": objective}, tmp_path, crf=crf))
    cached, _ = build(distillation_config(teachers[teacher], {"type": objective}, tmp_path, crf=crf, teacher_cache=True, teacher_cache_dtype="float32"))
    assert online.objective.__class__ is cached.objective.__class__ is KDObjective.by_name(objective)
    cached.student.load_state_dict(online.student.state_dict())
    cached.prepare_for_training({"train": instances})
    online.eval(), cached.eval()
    batch = instances[:12]
    cached_batch = cached.tensorize(batch)
    assert "knowledge" in cached_batch
    assert torch.allclose(online(**online.tensorize(batch))["kd_loss"], cached(**cached_batch)["kd_loss"], atol=1e-5)


def test_the_teacher_reads_upos_but_no_gold_tree(teachers, tmp_path):
    """The PoS-embedding teacher needs the words' UPOS, also on unlabeled text; gold heads would be cheating."""
    model, instances = build(distillation_config(teachers["local"], {"type": "structural"}, tmp_path))
    model.eval()
    unlabeled = [without_labels(instance, keep=("upos",)) for instance in instances[:6]]
    with_gold = model(**model.tensorize(instances[:6]))
    without_gold = model(**model.tensorize(unlabeled))
    assert torch.allclose(with_gold["kd_loss"], without_gold["kd_loss"])
    assert "gold_loss" in with_gold and without_gold["gold_loss"] == 0


def test_unsupported_pairs_fail_naming_them(teachers, tmp_path):
    with pytest.raises(ValueError, match="nonprojective tree-CRF teacher.*posterior"):
        model, instances = build(distillation_config(teachers["nonprojective"], {"type": "structural"}, tmp_path, crf=True))
        model(**model.tensorize(instances[:4]))
    with pytest.raises(ValueError, match="biaffine_to_sequence_labeler.*the teacher is a second-order parser"):
        build(distillation_config(teachers["second_order"], {"type": "biaffine_to_sequence_labeler"}, tmp_path))
    tagger = distillation_config(teachers["local"], {"type": "structural"}, tmp_path)
    tagger["dataset_reader"]["tag_label"] = "upos"
    tagger["model"]["student"] = {
        "type": "crf_tagger",
        "text_embedder": {"token_embedders": {"words": {"type": "word", "embedding_dim": 8}}},
    }
    with pytest.raises(ValueError, match="biaffine parser teacher distills into a parser or a sequence-labeling parser, not a crf tagger"):
        build(tagger)
    with pytest.raises(ValueError, match="LabelSmoothingTeacher builds per-position label distributions.*biaffine parser student"):
        build(parser_distillation_config(teachers["local"], {"type": "label_smoothing"}, tmp_path))


def parser_distillation_config(teacher: Path, objective: dict, cache_dir: Path, student_tree="nonprojective", **model) -> dict:
    return distilling(parser_config("biaffine_parser", student_tree, num_epochs=2), teacher, objective, cache_dir, **model)


@pytest.mark.parametrize(
    "teacher,objective,student_tree",
    [
        ("nonprojective", {"type": "structural"}, "nonprojective"),
        ("local", {"type": "structural"}, "local"),
        ("second_order", {"type": "posterior"}, "local"),
        ("nonprojective", {"type": "token"}, "projective"),
        ("nonprojective", {"type": "top_k", "k": 1}, "nonprojective"),
        ("local", {"type": "local_substructure"}, "local"),
    ],
)
def test_a_parser_distills_into_a_parser_archive(teachers, tmp_path, teacher, objective, student_tree):
    config = parser_distillation_config(teachers[teacher], objective, tmp_path / "cache", student_tree, teacher_cache=True)
    train_model(Params(config), tmp_path / "run")
    archive = load_archive(tmp_path / "run" / "model.tar.gz")
    assert isinstance(archive.model, BiaffineParser)
    assert archive.config["model"]["type"] == "biaffine_parser"
    data = list(archive.validation_dataset_reader.read(FIXTURE))
    for prediction in predictions(archive.model, data, 8):
        assert sum(head == 0 for head in prediction["heads"]) == 1


@pytest.mark.parametrize("objective", [{"type": "structural"}, {"type": "token"}, {"type": "top_k", "k": 1}, {"type": "local_substructure"}])
@pytest.mark.parametrize("relation_top_k_heads", [None, 100])  # 100: more heads than any fixture sentence has
def test_cached_and_online_teachers_of_a_parser_student_give_the_same_loss(teachers, tmp_path, objective, relation_top_k_heads):
    online, instances = build(parser_distillation_config(teachers["second_order"], dict(objective), tmp_path))
    cached, _ = build(
        parser_distillation_config(
            teachers["second_order"], dict(objective), tmp_path,
            teacher_cache=True, teacher_cache_dtype="float32", relation_top_k_heads=relation_top_k_heads,
        )  # fmt: skip
    )
    cached.student.load_state_dict(online.student.state_dict())
    cached.prepare_for_training({"train": instances})
    online.eval(), cached.eval()
    # Batches of different longest sentences read the padded head rows of the cache.
    for batch in (instances[:12], instances[12:14]):
        cached_batch = cached.tensorize(batch)
        assert "knowledge" in cached_batch
        assert torch.allclose(online(**online.tensorize(batch))["kd_loss"], cached(**cached_batch)["kd_loss"], atol=1e-5)


def test_a_tagger_teacher_cannot_teach_a_parser(teachers, tmp_path):
    tagger = labeler_config("rel_offset", False, num_epochs=1)
    train_model(Params(tagger), tmp_path / "labeler")
    with pytest.raises(ValueError, match="holds a softmax sequence labeler, but the student is a biaffine parser"):
        build(parser_distillation_config(tmp_path / "labeler" / "model.tar.gz", {"type": "structural"}, tmp_path))


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "training_configs" / "distill" / "parsing").glob("*.jsonnet"))


def test_there_is_a_config_per_scenario_and_baseline():
    expected = {"none", "token", "posterior", "top_k", "structural", "local_substructure"}
    assert {path.stem for path in CONFIGS} >= expected | {"biaffine_to_sequence_labeler", "second_order_to_sequence_labeler"}


# The raw-text recipe trains a biaffine student only: raw text has no UPOS for rel_pos labels.
CONFIGS_AND_STUDENTS = [
    (path, student) for path in CONFIGS for student in ("labeler", "biaffine") if path.stem != "raw_text" or student == "biaffine"
]


@pytest.mark.parametrize(("path", "student"), CONFIGS_AND_STUDENTS, ids=lambda value: getattr(value, "stem", value))
def test_parsing_distillation_configs_build_and_score_the_fixture(teachers, path, student, monkeypatch):
    teacher = "second_order" if path.stem.startswith("second_order") else "local"
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH"):
        monkeypatch.setenv(variable, str(FIXTURE))
    monkeypatch.setenv("TEACHER", str(teachers[teacher]))
    monkeypatch.setenv("STUDENT", student)
    monkeypatch.setenv("UNLABELED_PATH", str(FIXTURE.parent / "plain_text.txt"))
    monkeypatch.setenv("MAX_UNLABELED", "3")
    config = load_config(path).as_dict()
    assert config["trainer"]["validation_metric"] == "+LAS"
    if "unlabeled_dataset_reader" in config:
        reader = DatasetReader.from_params(Params(config["unlabeled_dataset_reader"]))
        assert len(list(reader.read(config["unlabeled_data_path"]))) == 3
    model, instances = build(config)
    output = model(**model.tensorize(instances[:4]))
    assert torch.isfinite(output["loss"]) and torch.isfinite(output["kd_loss"])
