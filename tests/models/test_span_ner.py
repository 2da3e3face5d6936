"""The `span_ner` model: exact likelihood of the gold spans (against enumeration), training, the
archive round trip, predictions as tags, and export to spaCy as `structkd_ner`."""

import pytest
import spacy
import torch
from tango.common import Params

from structkd_plugin.data import Vocabulary
from structkd_plugin.data.universal_ner import UniversalNerDatasetReader
from structkd_plugin.models import Model, SpanNer
from structkd_plugin.structures.label_schemes import spans_from_tags
from tests.model_test_case import check_train_save_load_predict
from tests.models.test_taggers import FIXTURES, tagger_config
from tests.structures.test_span_segmentation import segmentations


def span_ner_config(scheme: str = "BIO", num_epochs: int = 12) -> dict:
    config = tagger_config("span_ner", scheme=scheme)
    config["model"].update(span_mlp_dim=16, max_width=6)
    config["trainer"]["num_epochs"] = num_epochs
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("span_ner")
    archive = check_train_save_load_predict(span_ner_config(), directory)
    return directory, archive


def test_trains_and_round_trips(trained):
    _, archive = trained
    assert isinstance(archive.model, SpanNer)
    assert archive.model.get_metrics()["f1-measure-overall"] >= 0.0
    metrics = (trained[0] / "metrics.json").read_text()
    assert '"best_validation_f1-measure-overall"' in metrics


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_the_loss_is_minus_the_log_probability_of_the_gold_spans(scheme):
    instances = list(UniversalNerDatasetReader(label_scheme=scheme).read(FIXTURES / "train.iob2"))
    model = Model.from_params(Params(span_ner_config(scheme)["model"]), vocab=Vocabulary.from_instances(instances))
    model.eval()
    # The first 4 words of sentences with entities there (enumeration stays small).
    short = [{"words": i["words"][:4], "tags": i["tags"][:4]} for i in instances if set(i["tags"][:4]) != {"O"}][:3]
    output = model(**model.tensorize(short))
    expected = []
    for b, instance in enumerate(short):
        n = len(instance["words"])
        scores = output["span_scores"][b].detach().double()
        structures = segmentations(n, len(model.labels), model.max_width)
        totals = torch.stack([sum((scores[i, j, r] for i, j, r in spans), scores.new_zeros(())) for spans in structures])
        gold = tuple(sorted((first, last, model.labels.index(label)) for label, first, last in spans_from_tags(instance["tags"], scheme)))
        index = [tuple(sorted(spans)) for spans in structures].index(gold)
        expected.append(totals.logsumexp(0) - totals[index])
    assert torch.allclose(output["loss"].double(), torch.stack(expected).sum() / len(short), atol=1e-4)


def test_exports_to_spacy_as_structkd_ner(trained, tmp_path):
    from tests.spacy_components.conftest import export

    directory, archive = trained
    pipeline = export(directory / "model.tar.gz", tmp_path / "pipeline")
    nlp = spacy.load(pipeline)
    assert nlp.pipe_names == ["structkd_ner"]
    instances = list(UniversalNerDatasetReader().read(FIXTURES / "dev.iob2"))[:8]
    from structkd_plugin.models.predictions import predictions

    for instance, prediction in zip(instances, predictions(archive.model, instances, 4)):
        doc = nlp(spacy.tokens.Doc(nlp.vocab, words=instance["words"]))
        expected = [(label, first, last) for label, first, last in spans_from_tags(prediction["tags"], "BIO")]
        assert [(entity.label_, entity.start, entity.end - 1) for entity in doc.ents] == expected


def test_the_shipped_config_builds_a_span_ner_that_scores_the_fixture(monkeypatch):
    from structkd_plugin.config import import_structkd_registrations, load_config
    from structkd_plugin.data import DatasetReader

    import_structkd_registrations()
    for variable, name in (("TRAIN_PATH", "train"), ("DEV_PATH", "dev"), ("TEST_PATH", "test")):
        monkeypatch.setenv(variable, str(FIXTURES / f"{name}.iob2"))
    config = load_config(FIXTURES.parents[1] / "training_configs" / "ner" / "span_ner.jsonnet").as_dict()
    instances = list(DatasetReader.from_params(Params(config["dataset_reader"])).read(config["train_data_path"]))
    model = Model.from_params(Params(config["model"]), vocab=Vocabulary.from_instances(instances))
    output = model(**model.tensorize(instances[:4]))
    assert torch.isfinite(output["loss"])
