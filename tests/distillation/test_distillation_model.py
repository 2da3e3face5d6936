"""The `distillation` model end to end on fixtures: archives, the teacher cache, schemes, unlabeled
text, several teachers."""

import copy
import json
from pathlib import Path

import pytest
import torch
from tango.common import Params
from tango.common.exceptions import ConfigurationError

from structkd_plugin.archival import load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import import_structkd_registrations
from structkd_plugin.data import UniversalNerDatasetReader, Vocabulary, without_labels
from structkd_plugin.distillation import DistillationModel
from structkd_plugin.models import CrfTagger, Model
from structkd_plugin.training.train import train_model
from tests.models.test_taggers import tagger_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ner"


def train_teacher(directory: Path, model_type: str = "crf_tagger", scheme: str = "BIO") -> Path:
    import_structkd_registrations()
    config = tagger_config(model_type, scheme=scheme)
    config["trainer"]["num_epochs"] = 4
    train_model(Params(config), directory)
    return directory / "model.tar.gz"


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {
        "crf": train_teacher(root / "crf"),
        "softmax": train_teacher(root / "softmax", "softmax_tagger"),
        "bioes": train_teacher(root / "bioes", scheme="BIOES"),
    }


def student_block(model_type: str = "crf_tagger") -> dict:
    return {
        "type": model_type,
        "label_encoding": "BIO",
        "text_embedder": {"token_embedders": {"words": {"type": "word", "embedding_dim": 8}}},
    }


def _nested(cache_dir, teacher_cache=False, teacher_cache_dtype=None, pairwise_top_k=None, relation_top_k_heads=None, **model) -> dict:
    """The distillation block's settings: with `teacher_cache`, a cache in `cache_dir` with the given options."""
    if teacher_cache:
        options = {"dtype": teacher_cache_dtype, "pairwise_top_k": pairwise_top_k, "relation_top_k_heads": relation_top_k_heads}
        model["teacher_cache"] = {"directory": str(cache_dir), **{k: v for k, v in options.items() if v is not None}}
    return model


def distillation_config(teacher, objective, cache_dir, student="crf_tagger", **model) -> dict:
    return {
        "dataset_reader": {"type": "universal_ner"},
        "train_data_path": str(FIXTURES / "train.iob2"),
        "validation_data_path": str(FIXTURES / "dev.iob2"),
        "model": {
            "type": "distillation",
            "teacher_archive": teacher if isinstance(teacher, dict) else str(teacher),
            "student": student_block(student),
            "objective": objective,
            **_nested(cache_dir, **model),
        },
        "data_loader": {"max_tokens": 200},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": 2, "validation_metric": "+f1-measure-overall"},
        "random_seed": 2,
    }


def build(config: dict) -> DistillationModel:
    instances = list(UniversalNerDatasetReader().read(FIXTURES / "train.iob2"))
    return Model.from_params(Params(config["model"]), vocab=Vocabulary.from_instances(instances)), instances


@pytest.mark.parametrize("objective", ["structural", "top_k", "posterior", "token", "local_substructure"])
def test_a_distillation_run_writes_a_student_archive_that_evaluates_and_predicts(teachers, tmp_path, objective):
    config = distillation_config(teachers["crf"], {"type": objective}, tmp_path / "cache", teacher_cache=True)
    train_model(Params(config), tmp_path / "run")
    archive = load_archive(tmp_path / "run" / "model.tar.gz")
    assert isinstance(archive.model, CrfTagger)
    assert archive.config["model"]["type"] == "crf_tagger"
    assert not any(name.startswith("student.") for name in archive.model.state_dict())
    dev = list(UniversalNerDatasetReader().read(FIXTURES / "dev.iob2"))
    assert len(list(predictions(archive.model, dev, 8))) == len(dev)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "best_validation_f1-measure-overall" in metrics


@pytest.mark.parametrize("dtype,exact", [("float32", True), ("float16", False)])
@pytest.mark.parametrize("objective", [{"type": "structural"}, {"type": "top_k", "k": 3}, {"type": "token"}, {"type": "local_substructure"}])
def test_cached_and_online_teachers_give_the_same_loss(teachers, tmp_path, dtype, exact, objective):
    online, instances = build(distillation_config(teachers["crf"], dict(objective), tmp_path))
    cached, _ = build(distillation_config(teachers["crf"], dict(objective), tmp_path, teacher_cache=True, teacher_cache_dtype=dtype))
    cached.student.load_state_dict(online.student.state_dict())
    cached.prepare_for_training({"train": instances})
    assert list(tmp_path.glob("*/index.json"))
    online.eval(), cached.eval()
    batch = instances[:12]
    cached_batch = cached.tensorize(batch)
    assert "knowledge" in cached_batch  # served from the cache
    online_loss = online(**online.tensorize(batch))["kd_loss"]
    cached_loss = cached(**cached_batch)["kd_loss"]
    if exact:
        assert torch.equal(online_loss, cached_loss)
    else:
        assert torch.allclose(online_loss, cached_loss, rtol=2e-2, atol=2e-2)


def test_the_cache_is_reused_across_runs_and_pruned_pairwise_marginals_renormalize(teachers, tmp_path):
    config = distillation_config(teachers["crf"], {"type": "structural"}, tmp_path, teacher_cache=True, pairwise_top_k=4)
    first, instances = build(config)
    first.prepare_for_training({"train": instances})
    files = sorted(tmp_path.glob("*/index.json"))
    stamp = files[0].stat().st_mtime_ns
    second, _ = build(distillation_config(teachers["crf"], {"type": "structural"}, tmp_path, teacher_cache=True, pairwise_top_k=4))
    second.prepare_for_training({"train": instances})
    assert sorted(tmp_path.glob("*/index.json")) == files and files[0].stat().st_mtime_ns == stamp
    knowledge = second.tensorize(instances[:5])["knowledge"]
    sums = knowledge.pairwise.sum(dim=(-1, -2))
    assert torch.allclose(sums[:, 1:][knowledge.mask[:, 1:]], torch.ones(()), atol=1e-3)


def test_bioes_teacher_distills_into_a_bio_student(teachers, tmp_path):
    model, instances = build(distillation_config(teachers["bioes"], {"type": "structural"}, tmp_path))
    assert model.label_maps[""] is not None  # BIOES -> BIO conversion
    output = model(**model.tensorize(instances[:6]))
    assert torch.isfinite(output["loss"])
    output["loss"].backward()


def test_score_matching_across_label_sets_fails_clearly(teachers, tmp_path):
    model, instances = build(distillation_config(teachers["bioes"], {"type": "local_substructure"}, tmp_path))
    with pytest.raises(ValueError, match="same label set"):
        model(**model.tensorize(instances[:2]))


def test_scenario_names_check_the_pair_at_construction(teachers, tmp_path):
    with pytest.raises(ValueError, match="crf_to_softmax.*the student a crf"):
        build(distillation_config(teachers["crf"], {"type": "crf_to_softmax"}, tmp_path))
    model, _ = build(distillation_config(teachers["softmax"], {"type": "softmax_to_crf"}, tmp_path))
    assert isinstance(model.student, CrfTagger)


def test_teacher_annealing_moves_lambda_from_one_to_zero_and_unlabeled_batches_use_kd_alone(teachers, tmp_path):
    model, instances = build(distillation_config(teachers["crf"], {"type": "structural"}, tmp_path, lambda_schedule={"type": "teacher_annealing"}))
    model.set_training_progress(0.0)
    assert model.current_lambda() == 1.0
    model.set_training_progress(0.75)
    assert model.current_lambda() == pytest.approx(0.25)
    labeled = model(**model.tensorize(instances[:4]))
    assert torch.allclose(labeled["loss"], 0.25 * labeled["kd_loss"] + 0.75 * labeled["gold_loss"])
    unlabeled = model(**model.tensorize([without_labels(i) for i in instances[:4]]))
    assert torch.equal(unlabeled["loss"], unlabeled["kd_loss"])


@pytest.mark.parametrize("objective", ["structural", "none"])
def test_training_with_unlabeled_text(teachers, tmp_path, objective):
    """`none` learns nothing from unlabeled text: its unlabeled batches make no step."""
    config = distillation_config(teachers["crf"], {"type": objective}, tmp_path / "cache", teacher_cache=True)
    config["unlabeled_data_path"] = str(FIXTURES / "test.iob2")  # its labels are ignored
    config["data_loader"]["unlabeled_ratio"] = 0.5
    train_model(Params(config), tmp_path / "run")
    assert load_archive(tmp_path / "run" / "model.tar.gz").model is not None


def test_several_teachers_are_picked_by_an_instance_field(teachers, tmp_path):
    config = distillation_config({"en": str(teachers["crf"]), "xx": str(teachers["bioes"])}, {"type": "structural"}, tmp_path)
    model, instances = build(config)
    mixed = [dict(instance, language="en" if i % 2 else "xx") for i, instance in enumerate(instances[:6])]
    merged = model._teacher_knowledge(mixed)
    for i, instance in enumerate(mixed):
        alone = model._teacher_knowledge([instance])
        n = len(instance["words"])
        assert torch.allclose(merged.unary[i, :n], alone.unary[0, :n], atol=1e-6)
        assert torch.allclose(merged.pairwise[i, :n], alone.pairwise[0, :n], atol=1e-6)
    with pytest.raises(ValueError, match="no teacher for language='fr'"):
        model._teacher_knowledge([dict(instances[0], language="fr")])


def test_a_config_distills_two_monolingual_teachers_through_the_multilingual_reader(teachers, tmp_path):
    config = distillation_config({"en": str(teachers["crf"]), "xx": str(teachers["bioes"])}, {"type": "structural"}, tmp_path / "cache")
    config["dataset_reader"] = {"type": "multilingual", "reader": {"type": "universal_ner"}}
    config["train_data_path"] = json.dumps({"en": str(FIXTURES / "train.iob2"), "xx": str(FIXTURES / "test.iob2")})
    config["validation_data_path"] = json.dumps({"en": str(FIXTURES / "dev.iob2")})
    config["model"]["teacher_cache"] = {"directory": str(tmp_path / "cache")}
    train_model(Params(config), tmp_path / "run")
    assert isinstance(load_archive(tmp_path / "run" / "model.tar.gz").model, CrfTagger)


def test_the_baseline_learns_from_the_gold_loss_at_full_weight(teachers, tmp_path):
    config = distillation_config(teachers["crf"], {"type": "none"}, tmp_path, lambda_schedule={"type": "teacher_annealing"})
    model, instances = build(config)
    model.set_training_progress(0.0)  # lambda = 1: a KD objective would get all the weight
    model.teachers = {}  # the baseline never runs its teacher
    output = model(**model.tensorize(instances[:4]))
    assert torch.equal(output["loss"], output["gold_loss"])
    model.prepare_for_training({"train": instances})
    assert not model.caches


def test_the_flat_settings_of_older_configs_say_what_to_write_instead(teachers, tmp_path):
    config = distillation_config(teachers["crf"], {"type": "structural"}, tmp_path)
    config["model"].update(teacher_cache=True, temperature=2.0, kd_lambda=0.3, lambda_schedule="constant", relation_top_k_heads=8)
    with pytest.raises(ConfigurationError) as error:
        build(config)
    message = str(error.value)
    for advice in (
        'kd_lambda -> lambda_schedule: {type: "constant", value: ...}',
        "relation_top_k_heads -> teacher_cache: {relation_top_k_heads: ...}",
        "temperature: 2.0 -> temperature: {value: 2.0}",
        "teacher_cache: true -> teacher_cache: {}",
        'lambda_schedule: "constant" -> lambda_schedule: {type: "constant"}',
    ):
        assert advice in message


def test_the_nested_settings_build_their_components(teachers, tmp_path):
    settings = {
        "lambda_schedule": {"type": "constant", "value": 0.25},
        "temperature": {"kind": "global", "value": 2.0},
        "teacher_cache": {"directory": str(tmp_path / "c"), "dtype": "float32", "shard_size": 7},
    }
    model, _ = build({**distillation_config(teachers["crf"], {"type": "structural"}, tmp_path), "model": {
        **distillation_config(teachers["crf"], {"type": "structural"}, tmp_path)["model"], **settings}})
    assert model.current_lambda() == 0.25
    assert (model.temperature.kind, model.temperature.value) == ("global", 2.0)
    assert model.cache_settings.directory == tmp_path / "c" and model.cache_settings.dtype == torch.float32
    assert model.cache_settings.shard_size == 7
    annealed, _ = build(distillation_config(teachers["crf"], {"type": "structural"}, tmp_path, lambda_schedule={"type": "teacher_annealing"}))
    annealed.set_training_progress(0.75)
    assert annealed.current_lambda() == 0.25


def test_each_language_gets_its_own_teachers_knowledge(teachers, tmp_path):
    """In a batch mixing languages, every sentence's knowledge is what its own teacher alone gives."""
    mixed = {"en": str(teachers["crf"]), "xx": str(teachers["softmax"])}
    model, instances = build(distillation_config(mixed, {"type": "structural"}, tmp_path))
    batch = [{**instance, "language": "en" if i % 2 else "xx"} for i, instance in enumerate(instances[:6])]
    knowledge = model._teacher_knowledge(batch)
    # The two teachers disagree, so a sentence given the other language's teacher would show.
    en_alone, _ = build(distillation_config(mixed["en"], {"type": "structural"}, tmp_path))
    xx_alone, _ = build(distillation_config(mixed["xx"], {"type": "structural"}, tmp_path))
    assert not torch.allclose(en_alone._teacher_knowledge(batch[:1]).unary, xx_alone._teacher_knowledge(batch[:1]).unary, atol=1e-3)
    for language, teacher in mixed.items():
        alone, _ = build(distillation_config(teacher, {"type": "structural"}, tmp_path))
        rows = [i for i, instance in enumerate(batch) if instance["language"] == language]
        own = alone._teacher_knowledge([batch[i] for i in rows])
        length = own.unary.size(1)
        assert torch.allclose(knowledge.unary[rows, :length], own.unary, atol=1e-6)
        assert torch.allclose(knowledge.pairwise[rows, :length], own.pairwise, atol=1e-6)


def test_a_synthetic_teacher_with_unlabeled_text_is_refused_before_training(teachers, tmp_path):
    """Tang et al.'s synthetic teachers are built from gold tags: a batch of raw text has none."""
    config = distillation_config(teachers["crf"], {"type": "label_smoothing"}, tmp_path)
    config["gold_fraction"] = 0.5
    with pytest.raises(ConfigurationError, match='LabelSmoothingTeacher builds its teacher from gold tags.*gold_fraction_rest: "dropped"'):
        train_model(Params(copy.deepcopy(config)), tmp_path / "refused")
    assert not (tmp_path / "refused" / "model.tar.gz").exists()
    train_model(Params({**config, "gold_fraction_rest": "dropped", "trainer": {**config["trainer"], "num_epochs": 1}}), tmp_path / "run")
    assert (tmp_path / "run" / "model.tar.gz").is_file()
