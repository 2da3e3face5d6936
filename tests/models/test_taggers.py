"""`crf_tagger` and `softmax_tagger`: train on fixtures, archive, load, predict (ModelTestCase style)."""

import json
from pathlib import Path

import pytest
import torch
from tango.common import Params

from structkd_plugin.archival import load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.data import UniversalNerDatasetReader, Vocabulary
from structkd_plugin.models import CrfTagger, Model
from structkd_plugin.structures import LinearChainCRF
from tests.model_test_case import check_train_save_load_predict
from tests.modules.tiny_bert import build_tiny_bert

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ner"


def tagger_config(model_type: str, text_embedder: dict | None = None, scheme: str = "BIO") -> dict:
    return {
        "dataset_reader": {"type": "universal_ner", "label_scheme": scheme},
        "train_data_path": str(FIXTURES / "train.iob2"),
        "validation_data_path": str(FIXTURES / "dev.iob2"),
        "model": {
            "type": model_type,
            "label_encoding": scheme,
            "text_embedder": text_embedder
            or {
                "token_embedders": {
                    "words": {"type": "word", "embedding_dim": 16},
                    "characters": {"type": "character_cnn", "embedding_dim": 8, "num_filters": 8},
                }
            },
            "encoder": {"type": "lstm", "input_size": 24, "hidden_size": 16, "bidirectional": True},
        },
        "data_loader": {"max_tokens": 150},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": 12, "validation_metric": "+f1-measure-overall"},
        "random_seed": 1,
    }


@pytest.fixture(scope="module", params=["crf_tagger", "softmax_tagger"])
def trained(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    check_train_save_load_predict(tagger_config(request.param), directory)
    return directory


def dev_instances():
    return list(UniversalNerDatasetReader().read(FIXTURES / "dev.iob2"))


def test_training_learns_something_and_writes_the_metrics(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["best_validation_f1-measure-overall"] > 0.1  # untrained, it is 0
    assert (trained / "metrics_epoch_11.json").is_file()


def test_evaluation_metrics_match_predictions(trained):
    """The archived model's span F1 on dev equals conlleval's F1 of its predictions."""
    from structkd_plugin.models.metrics import SpanF1

    model = load_archive(trained / "model.tar.gz").model
    instances = dev_instances()
    metric = SpanF1("BIO")
    metric([p["tags"] for p in predictions(model, instances, 8)], [i["tags"] for i in instances])
    with torch.no_grad():
        model.get_metrics(reset=True)
        model(**model.tensorize(instances))
    assert model.get_metrics()["f1-measure-overall"] == pytest.approx(metric.get_metric()["f1-measure-overall"])


def build(model_type: str, scheme: str = "BIO", **extra) -> Model:
    instances = list(UniversalNerDatasetReader(label_scheme=scheme).read(FIXTURES / "train.iob2"))
    vocab = Vocabulary.from_instances(instances)
    config = tagger_config(model_type, scheme=scheme)["model"]
    config.update(extra)
    return Model.from_params(Params(config), vocab=vocab), instances


@pytest.mark.parametrize("scheme", ["BIO", "BIOES", "IOB1"])
def test_crf_decoding_respects_the_scheme_constraints(scheme):
    from structkd_plugin.structures import count_scheme_violations

    torch.manual_seed(0)
    model, instances = build("crf_tagger", scheme)
    with torch.no_grad():
        model.transitions.normal_(0, 5.0)  # make ill-formed transitions attractive
        predicted = model.make_predictions(model(**model.tensorize(instances[:20])), model.tensorize(instances[:20]))
    assert all(count_scheme_violations(p["tags"], scheme) == 0 for p in predicted)


def test_crf_loss_is_the_negative_log_likelihood():
    torch.manual_seed(0)
    model, instances = build("crf_tagger")
    model.eval()
    batch = model.tensorize(instances[:5])
    output = model(**batch)
    crf = model.crf(output["emissions"], batch["mask"])
    expected = (crf.log_partition() - crf.log_score(batch["tags"])).mean()
    assert torch.allclose(output["loss"], expected)
    assert isinstance(crf, LinearChainCRF) and isinstance(model, CrfTagger)


def test_softmax_loss_is_the_token_cross_entropy_per_sentence():
    torch.manual_seed(0)
    model, instances = build("softmax_tagger")
    model.eval()
    batch = model.tensorize(instances[:5])
    output = model(**batch)
    log_probs = output["emissions"].log_softmax(-1).gather(-1, batch["tags"][..., None]).squeeze(-1)
    assert torch.allclose(output["loss"], -(log_probs * batch["mask"]).sum() / 5)


def test_a_transformer_tagger_trains_from_a_local_model_directory(tmp_path):
    bert = build_tiny_bert(tmp_path / "bert")
    config = tagger_config("crf_tagger", {"token_embedders": {"bert": {"type": "transformer", "model_path": bert}}})
    config["model"]["encoder"] = None
    config["trainer"]["num_epochs"] = 1
    archive = check_train_save_load_predict(config, tmp_path / "run", sentences=4)
    assert isinstance(archive.model, CrfTagger)
