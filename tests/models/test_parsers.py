"""`biaffine_parser` (local, non-projective and projective trees) and `second_order_parser`: train
on the UD fixture, archive, load, predict (ModelTestCase style), well-formed trees, exact losses,
CoNLL-U output and `structkd evaluate`."""

import json
from pathlib import Path

import conllu
import pytest
import torch
from click.testing import CliRunner
from tango.common import Params

from structkd_plugin.commands.cli import cli
from structkd_plugin.data import UniversalDependenciesDatasetReader, Vocabulary
from structkd_plugin.models import BiaffineParser, Model, SecondOrderParser
from structkd_plugin.structures import NonProjectiveTree
from tests.model_test_case import check_train_save_load_predict
from tests.structures.tree_enumeration import all_trees, is_tree, tree_scores

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "universal_dependencies.conllu"
KINDS = [("biaffine_parser", "local"), ("biaffine_parser", "nonprojective"), ("biaffine_parser", "projective"),
         ("second_order_parser", "nonprojective")]


def parser_config(model_type: str, tree: str, num_epochs: int = 30) -> dict:
    model = {
        "type": model_type,
        "tree": tree,
        "text_embedder": {
            "token_embedders": {
                "words": {"type": "word", "embedding_dim": 16},
                "characters": {"type": "character_cnn", "embedding_dim": 8, "num_filters": 8},
            }
        },
        "pos_embedding_dim": 8,
        "encoder": {"type": "lstm", "input_size": 32, "hidden_size": 24, "bidirectional": True},
        "arc_mlp_dim": 24,
        "relation_mlp_dim": 12,
        "dropout": 0.0,
        "mlp_dropout": 0.0,
    }
    if model_type == "second_order_parser":
        model["second_order_mlp_dim"] = 8
    return {
        "dataset_reader": {"type": "universal_dependencies"},
        "train_data_path": str(FIXTURE),
        "validation_data_path": str(FIXTURE),
        "model": model,
        "data_loader": {"batch_size": 8},
        "trainer": {"optimizer": {"type": "adam", "lr": 0.01}, "num_epochs": num_epochs, "validation_metric": "+LAS"},
        "random_seed": 1,
    }


def instances():
    return list(UniversalDependenciesDatasetReader().read(FIXTURE))


def build(model_type: str, tree: str) -> Model:
    vocab = Vocabulary.from_instances(instances())
    return Model.from_params(Params(parser_config(model_type, tree)["model"]), vocab=vocab)


@pytest.fixture(scope="module", params=KINDS, ids=lambda kind: "-".join(kind))
def trained(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("-".join(request.param))
    archive = check_train_save_load_predict(parser_config(*request.param), directory)
    assert isinstance(archive.model, SecondOrderParser if request.param[0] == "second_order_parser" else BiaffineParser)
    return directory


def test_training_overfits_the_fixture_and_reports_attachment_scores(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"best_validation_UAS", "best_validation_LAS", "best_validation_UEM", "best_validation_LEM"} <= set(metrics)
    # Chance (a uniform head among the ~5 other positions) is about 0.2.
    assert metrics["best_validation_UAS"] > 0.8
    assert metrics["best_validation_LAS"] > 0.6


def test_predict_writes_valid_conllu_and_evaluate_reports_the_scores(trained, tmp_path):
    runner = CliRunner()
    archive = str(trained / "model.tar.gz")
    command = ["predict", archive, str(FIXTURE), "--output-format", "conll"]
    predicted = runner.invoke(cli, command, catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    # The input's lines come back (multiword tokens, comments and all) with the words' trees.
    sentences = conllu.parse(predicted.output)
    assert [sentence.metadata for sentence in sentences] == [s.metadata for s in conllu.parse(FIXTURE.read_text(encoding="utf-8"))]
    sentences = [sentence.filter(id=lambda i: isinstance(i, int)) for sentence in sentences]
    gold = instances()
    assert [[token["form"] for token in sentence] for sentence in sentences] == [i["words"] for i in gold]
    for sentence in sentences:
        heads = [0] + [token["head"] for token in sentence]
        assert is_tree(heads, single_root=True)
        assert all(token["deprel"] not in (None, "_") for token in sentence)

    written = tmp_path / "predicted.conllu"
    evaluated = runner.invoke(
        cli, ["evaluate", archive, str(FIXTURE), "--predictions-output-file", str(written)], catch_exceptions=False
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert written.read_text(encoding="utf-8") == predicted.output
    scores = json.loads(evaluated.output)
    # UAS as the predicted file shows it.
    correct = sum(p["head"] == h for s, i in zip(sentences, gold) for p, h in zip(s, i["heads"]))
    assert scores["UAS"] == pytest.approx(correct / sum(len(i["words"]) for i in gold))
    assert {"LAS", "UEM", "LEM", "loss"} <= set(scores)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: "-".join(kind))
def test_untrained_parsers_decode_well_formed_single_root_trees(kind):
    torch.manual_seed(0)
    model = build(*kind)
    model.eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 2.0)
        batch = model.tensorize(instances())
        predictions = model.make_predictions(model(**batch), batch)
    for prediction in predictions:
        assert is_tree([0] + prediction["heads"], projective=kind[1] == "projective", single_root=True)


def tiny_batch(model: Model, length: int = 4):
    """A batch of the fixture's first sentences cut to `length` words (heads re-attached to the
    root where they pointed past the cut), the longest first, so that trees can be enumerated."""
    cut = []
    for instance in instances()[:3]:
        n = min(length, len(instance["words"]))
        heads = [h if h <= n else 0 for h in instance["heads"][:n]]
        cut.append({key: instance[key][:n] for key in ("words", "upos", "deprels")} | {"heads": heads})
    return model.tensorize(sorted(cut, key=lambda i: -len(i["words"])))


@pytest.mark.parametrize("projective", [False, True])
def test_tree_crf_arc_loss_is_minus_log_p_of_the_gold_tree_by_enumeration(projective):
    torch.manual_seed(0)
    model = build("biaffine_parser", "projective" if projective else "nonprojective").double()
    model.eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 1.0)
    batch = tiny_batch(model)
    with torch.no_grad():
        output = model(**batch)
        relation_loss = model.relation_loss(
            output["relation_scores"], batch["heads"], batch["relations"], batch["mask"]
        )

    expected = []
    for b, length in enumerate(batch["mask"].sum(-1).tolist()):
        gold = torch.cat([torch.zeros(1, dtype=torch.long), batch["heads"][b, :length]])
        if not is_tree(gold, projective, single_root=True):
            expected.append(0.0)  # outside the CRF's support: no arc loss
            continue
        scores = output["arc_scores"][b, : length + 1, : length + 1]
        log_z = tree_scores(scores, all_trees(length, projective, single_root=True)).logsumexp(0)
        expected.append(float(log_z - tree_scores(scores, gold[None])[0]))
    assert sum(expected) != 0.0
    arc_loss = output["loss"] - relation_loss
    assert float(arc_loss) == pytest.approx(sum(expected) / len(expected), rel=1e-9)


def test_local_loss_is_the_head_cross_entropy_and_marginals_are_the_softmax():
    torch.manual_seed(0)
    model = build("biaffine_parser", "local")
    model.eval()
    batch = tiny_batch(model)
    with torch.no_grad():
        output = model(**batch)
        relation_loss = model.relation_loss(
            output["relation_scores"], batch["heads"], batch["relations"], batch["mask"]
        )
        marginals = model.head_marginals(output)
    expected = 0.0
    for b, length in enumerate(batch["mask"].sum(-1).tolist()):
        for d in range(1, length + 1):
            candidates = [h for h in range(length + 1) if h != d]
            probabilities = output["arc_scores"][b, candidates, d].softmax(0)
            gold = candidates.index(int(batch["heads"][b, d - 1]))
            expected -= float(probabilities[gold].log())
            assert torch.allclose(marginals[b, candidates, d], probabilities)
    assert float(output["loss"] - relation_loss) == pytest.approx(expected / 3, rel=1e-5)
    assert marginals[:, :, 0].eq(0).all() and marginals.diagonal(dim1=1, dim2=2).eq(0).all()


def test_tree_marginals_and_relation_scores_are_distributions():
    torch.manual_seed(0)
    model = build("biaffine_parser", "nonprojective")
    model.eval()
    batch = tiny_batch(model)
    with torch.no_grad():
        output = model(**batch)
    marginals = model.head_marginals(output)
    expected = NonProjectiveTree(output["arc_scores"], output["mask"]).marginals()
    assert torch.allclose(marginals, expected)
    word_columns = marginals.sum(1)[:, 1:][batch["mask"]]
    assert torch.allclose(word_columns, torch.ones_like(word_columns))
    assert output["relation_scores"].shape[-1] == len(model.relations)
    assert torch.allclose(output["relation_scores"].exp().sum(-1), torch.ones(()))


def test_second_order_parser_exposes_its_scores_and_trains_through_mean_field():
    torch.manual_seed(0)
    model = build("second_order_parser", "nonprojective")
    batch = tiny_batch(model)
    output = model(**batch)
    size = batch["mask"].shape[1] + 1
    assert output["sib_scores"].shape == output["grd_scores"].shape == (3, size, size, size)
    assert torch.equal(output["sib_scores"], output["sib_scores"].transpose(2, 3))
    marginals = model.head_marginals(output)
    columns = marginals.sum(1)[:, 1:][batch["mask"]]
    assert torch.allclose(columns, torch.ones_like(columns))
    output["loss"].backward()
    assert model.sibling_attention.weight.grad.abs().sum() > 0
    assert model.grandparent_attention.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="tree must be"):
        build("second_order_parser", "local")


def test_gold_tree_support_matches_enumeration():
    """Over every tree of 4 words (any number of root children): in the single-root CRFs'
    support exactly when the enumeration says so."""
    from structkd_plugin.models.biaffine_parser import gold_tree_in_support

    trees = all_trees(4)
    heads, mask = trees[:, 1:], torch.ones(len(trees), 4, dtype=torch.bool)
    for projective in (False, True):
        expected = torch.tensor([is_tree(tree, projective, single_root=True) for tree in trees])
        assert torch.equal(gold_tree_in_support(heads, mask, projective), expected)
    # Padding does not count: the same trees padded to 6 positions.
    padded = torch.cat([heads, torch.zeros(len(trees), 2, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(len(trees), 2, dtype=torch.bool)], 1)
    assert torch.equal(gold_tree_in_support(padded, padded_mask, True), gold_tree_in_support(heads, mask, True))


def test_a_relation_missing_from_the_vocabulary_is_scored_wrong_and_left_out_of_the_loss():
    model = build("biaffine_parser", "local")
    model.eval()
    instance = dict(instances()[0])
    instance["deprels"] = ["never-seen"] + instance["deprels"][1:]
    batch = model.tensorize([instance])
    assert int(batch["relations"][0, 0]) == -1
    with torch.no_grad():
        assert torch.isfinite(model(**batch)["loss"])
    model.get_metrics(reset=True)
    # Perfect predictions, except that no prediction can be the missing relation.
    heads, relations = batch["heads"], batch["relations"]
    model.update_metrics(heads, relations.clamp_min(0), heads, relations, batch["mask"], batch["punctuation"])
    words = len(instance["words"])
    assert model.get_metrics() == pytest.approx({"UAS": 1.0, "LAS": (words - 1) / words, "LAS_full": (words - 1) / words, "UEM": 1.0, "LEM": 0.0})
