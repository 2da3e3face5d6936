"""`dependency_sequence_labeler`: both encodings, CRF and softmax; train on the UD fixture, archive,
load, predict (ModelTestCase style), well-formed trees, the decoder, CoNLL-U output."""

import json
from pathlib import Path

import conllu
import pytest
import torch
from click.testing import CliRunner
from tango.common import Params

from structkd_plugin.commands.cli import cli
from structkd_plugin.data import DataError, UniversalDependenciesDatasetReader, Vocabulary
from structkd_plugin.models import DependencySequenceLabeler, Model
from structkd_plugin.structures.dependency_encodings import ENCODINGS
from tests.model_test_case import check_train_save_load_predict

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "universal_dependencies.conllu"
VARIANTS = [(encoding, crf) for encoding in ENCODINGS for crf in (False, True)]


def labeler_config(encoding: str, crf: bool, num_epochs: int = 16) -> dict:
    return {
        "dataset_reader": {"type": "universal_dependencies", "tag_label": encoding},
        "train_data_path": str(FIXTURE),
        "validation_data_path": str(FIXTURE),
        "model": {
            "type": "dependency_sequence_labeler",
            "encoding": encoding,
            "crf": crf,
            "text_embedder": {
                "token_embedders": {
                    "words": {"type": "word", "embedding_dim": 16},
                    "characters": {"type": "character_cnn", "embedding_dim": 8, "num_filters": 8},
                }
            },
            "encoder": {"type": "lstm", "input_size": 24, "hidden_size": 24, "bidirectional": True},
        },
        "data_loader": {"batch_size": 16},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.02}, "num_epochs": num_epochs, "validation_metric": "+LAS"},
        "random_seed": 1,
    }


def instances(encoding: str | None = None):
    return list(UniversalDependenciesDatasetReader(tag_label=encoding).read(FIXTURE))


def build(encoding: str, crf: bool) -> DependencySequenceLabeler:
    vocab = Vocabulary.from_instances(instances(encoding))
    return Model.from_params(Params(labeler_config(encoding, crf)["model"]), vocab=vocab)


def is_single_root_tree(heads: list[int]) -> bool:
    if heads.count(0) != 1 or not all(0 <= h <= len(heads) for h in heads):
        return False
    for word in range(1, len(heads) + 1):
        seen, node = set(), word
        while node != 0:
            if node in seen:
                return False
            seen.add(node)
            node = heads[node - 1]
    return True


@pytest.fixture(scope="module", params=VARIANTS, ids=[f"{e}-{'crf' if c else 'softmax'}" for e, c in VARIANTS])
def trained(request, tmp_path_factory):
    encoding, crf = request.param
    directory = tmp_path_factory.mktemp(f"{encoding}_{crf}")
    archive = check_train_save_load_predict(labeler_config(encoding, crf), directory)
    return encoding, crf, directory, archive


def test_training_overfits_the_fixture(trained):
    encoding, crf, directory, archive = trained
    metrics = json.loads((directory / "metrics.json").read_text())
    # Chance is about 1 / (sentence length) ~ 0.2; the fixture's trees are small and regular.
    assert metrics["best_validation_UAS"] > 0.8
    assert metrics["best_validation_LAS"] > 0.7
    assert metrics["best_validation_label_accuracy"] > 0.7
    assert isinstance(archive.model, DependencySequenceLabeler)
    assert archive.model.label_set.encoding == encoding
    assert archive.model.tagger.__class__.__name__ == ("CrfTagger" if crf else "SoftmaxTagger")


def test_predictions_are_single_root_trees_and_match_the_metrics(trained):
    encoding, _, _, archive = trained
    from structkd_plugin.models.predictions import predictions

    model, gold = archive.model, instances(encoding)
    predicted = list(predictions(model, gold, 7))
    correct = total = 0
    for prediction, instance in zip(predicted, gold):
        assert is_single_root_tree(prediction["heads"])
        assert set(prediction) == {"words", "heads", "deprels"}
        correct += sum(p == g for p, g in zip(prediction["heads"], instance["heads"]))
        total += len(instance["heads"])
    with torch.no_grad():
        model.get_metrics(reset=True)
        model(**model.tensorize(gold))
    assert model.get_metrics()["UAS"] == pytest.approx(correct / total)


def test_output_exposes_the_label_scores_and_label_heads_of_gives_the_label_heads(trained):
    encoding, crf, _, archive = trained
    model = archive.model
    gold = instances(encoding)[:5]
    with torch.no_grad():
        batch = model.tensorize(gold)
        output = model(**batch)
    batch_size, length = batch["mask"].shape
    labels = len(model.tagger.labels)
    assert output["emissions"].shape == (batch_size, length, labels)
    label_heads = model.label_heads_of(gold)
    assert label_heads.shape == (batch_size, length, labels)
    assert ("transitions" in output) == crf and ("start" in output) == crf and ("end" in output) == crf
    assert {"mask", "predicted_heads", "predicted_relations", "loss"} <= set(output)
    # The gold labels point to the gold heads and carry the gold relations.
    gold_heads = label_heads.gather(2, batch["tags"][..., None]).squeeze(2)
    assert torch.equal(gold_heads.masked_fill(~batch["mask"], 0), batch["heads"])
    gold_relations = model.label_relations[batch["tags"]].masked_fill(~batch["mask"], 0)
    assert torch.equal(gold_relations, batch["relations"])


@pytest.mark.parametrize(("encoding", "crf"), VARIANTS)
def test_untrained_models_give_single_root_trees(encoding, crf):
    torch.manual_seed(0)
    model = build(encoding, crf)
    model.eval()
    gold = instances(encoding)
    with torch.no_grad():
        output = model(**model.tensorize(gold))
    for row, instance in zip(output["predicted_heads"].tolist(), gold):
        assert is_single_root_tree(row[: len(instance["words"])])


@pytest.mark.parametrize(("encoding", "crf"), VARIANTS)
def test_when_the_tagger_predicts_the_gold_labels_the_tree_is_the_gold_tree(encoding, crf):
    """Strong emissions for the gold labels: the tagger's labels, the tree and its relations are
    the gold ones, and the loss is near 0."""
    model = build(encoding, crf)
    gold = instances(encoding)
    batch = model.tensorize(gold)
    emissions = torch.zeros(*batch["tags"].shape, len(model.tagger.labels)).scatter_(2, batch["tags"][..., None], 30.0)
    model.tagger.emissions = lambda words, mask: emissions
    with torch.no_grad():
        output = model(**batch)
    mask = batch["mask"]
    assert torch.equal(output["predicted_tags"].masked_fill(~mask, 0), batch["tags"].masked_fill(~mask, 0))
    assert torch.equal(output["predicted_heads"], batch["heads"])
    assert torch.equal(output["predicted_relations"], batch["relations"])
    assert model.get_metrics() == {"label_accuracy": 1.0, "UAS": 1.0, "LAS": 1.0, "LAS_full": 1.0, "UEM": 1.0, "LEM": 1.0}
    assert output["loss"] < 1e-6 * mask.sum()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_argmax_tree_is_returned_unchanged(encoding):
    """Softmax tagger: when each word's best label points to a head and these form a tree (the
    gold tree, by a margin of 0.01 over random scores), the decoded tree is exactly that."""
    model = build(encoding, crf=False)
    batch = model.tensorize(instances(encoding))
    generator = torch.Generator().manual_seed(1)
    emissions = torch.randn(*batch["tags"].shape, len(model.tagger.labels), generator=generator)
    emissions.scatter_(2, batch["tags"][..., None], emissions.amax(-1, keepdim=True) + 0.01)
    model.tagger.emissions = lambda words, mask: emissions
    with torch.no_grad():
        output = model(**batch)
    assert torch.equal(output["predicted_heads"], batch["heads"])
    assert torch.equal(output["tree_labels"], output["predicted_tags"])


def test_configuration_errors():
    vocab = Vocabulary.from_instances(instances())  # no tag_label: no labels
    with pytest.raises(ValueError, match="tag_label set to 'rel_pos'"):
        Model.from_params(Params(labeler_config("rel_pos", False)["model"]), vocab=vocab)
    vocab = Vocabulary.from_instances(instances("rel_offset"))
    with pytest.raises(ValueError, match="not a label of the rel_pos encoding"):
        Model.from_params(Params(labeler_config("rel_pos", False)["model"]), vocab=vocab)
    model = build("rel_pos", crf=False)
    with pytest.raises(DataError, match=r"^in.txt:3: .*the sentence has no UPOS"):
        model.tensorize([{"words": ["Hello"], "metadata": {"source": "in.txt", "line": 3}}])


def test_unknown_gold_labels_give_metrics_but_no_loss():
    model = build("rel_offset", crf=True)
    sentence = {"words": ["a"] * 9, "upos": ["X"] * 9, "heads": [9, 1, 2, 3, 4, 5, 6, 7, 0], "deprels": ["det"] * 8 + ["root"]}
    batch = model.tensorize([sentence])
    assert "tags" not in batch and "heads" in batch
    with torch.no_grad():
        output = model(**batch)
    assert "loss" not in output
    assert model.attachment_scores.state()["words"] == 9


def test_predict_writes_conllu(trained, tmp_path):
    encoding, _, directory, _ = trained
    output = tmp_path / "predicted.conllu"
    result = CliRunner().invoke(
        cli,
        ["predict", str(directory / "model.tar.gz"), str(FIXTURE), "--output-format", "conll", "--output-file", str(output)],
    )
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    sentences = conllu.parse(text)
    assert len(sentences) == len(instances())
    for sentence in sentences:
        assert is_single_root_tree([token["head"] for token in sentence if isinstance(token["id"], int)])
    # Every line of the input is kept, and every column but HEAD and DEPREL.
    def without_tree(lines):
        return [line.split("\t")[:6] + line.split("\t")[8:] if "\t" in line else line for line in lines]

    assert without_tree(text.rstrip("\n").splitlines()) == without_tree(FIXTURE.read_text(encoding="utf-8").rstrip("\n").splitlines())


@pytest.mark.parametrize(("encoding", "crf"), VARIANTS)
def test_the_training_config_builds_a_labeler_that_scores_the_fixture(encoding, crf, monkeypatch):
    from structkd_plugin.config import import_structkd_registrations, load_config
    from structkd_plugin.data import DatasetReader

    import_structkd_registrations()
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH"):
        monkeypatch.setenv(variable, str(FIXTURE))
    path = FIXTURE.parents[1] / "training_configs" / "parsing" / "sequence_labeler.jsonnet"
    overrides = json.dumps({"dataset_reader.tag_label": encoding, "model.encoding": encoding, "model.crf": crf})
    config = load_config(path, overrides).as_dict()
    assert config["trainer"]["validation_metric"] == "+LAS"
    reader = DatasetReader.from_params(Params(config["dataset_reader"]))
    data = list(reader.read(config["train_data_path"]))
    vocab = Vocabulary.from_params(Params(config.get("vocabulary", {})), instances=data)
    model = Model.from_params(Params(config["model"]), vocab=vocab)
    assert model.label_set.encoding == encoding and (model.tagger.__class__.__name__ == "CrfTagger") == crf
    model.eval()
    with torch.no_grad():
        output = model(**model.tensorize(data[:3]))
    assert torch.isfinite(output["loss"])
    assert set(model.get_metrics()) == {"label_accuracy", "UAS", "LAS", "LAS_full", "UEM", "LEM"}
