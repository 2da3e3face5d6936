"""Config loading, plugins and the one-line explanations of configuration mistakes."""

import textwrap

import pytest
import torch
from tango.common import Lazy, Params

from structkd_plugin.config import (
    ConfigurationError,
    apply_overrides,
    check_keys,
    check_registered_name,
    explained_configuration_errors,
    import_plugins,
    load_config,
)
from structkd_plugin.data import DatasetReader, Vocabulary
from structkd_plugin.models.model import Model
from structkd_plugin.training.trainer import InstanceLoader, Trainer
from tests.toy_model import FIXTURES, ToyTagger


def toy_vocabulary() -> Vocabulary:
    return Vocabulary.from_instances(
        DatasetReader.from_params(Params({"type": "conll2003"})).read(FIXTURES / "conll2003_ner.txt")
    )


def test_load_config_evaluates_jsonnet_with_environment_variables(tmp_path, monkeypatch):
    path = tmp_path / "config.jsonnet"
    path.write_text('local dim = std.parseInt(std.extVar("TOY_DIM")); {model: {embedding_dim: dim * 2}, other: 1}')
    monkeypatch.setenv("TOY_DIM", "4")
    assert load_config(path).as_dict() == {"model": {"embedding_dim": 8}, "other": 1}


def test_missing_environment_variable_is_named(tmp_path, monkeypatch):
    path = tmp_path / "config.jsonnet"
    path.write_text('{a: std.extVar("TOY_UNSET_VARIABLE")}')
    monkeypatch.delenv("TOY_UNSET_VARIABLE", raising=False)
    with pytest.raises(ConfigurationError) as error:
        load_config(path)
    message = str(error.value)
    assert "TOY_UNSET_VARIABLE" in message and str(path) in message and "\n" not in message


def test_jsonnet_syntax_error_is_one_line_with_its_location(tmp_path):
    path = tmp_path / "config.jsonnet"
    path.write_text("{a: 1,, }")
    with pytest.raises(
        ConfigurationError, match=r"cannot evaluate .*config.jsonnet: syntax error.*\(at .*:1:7\)"
    ) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nowhere.jsonnet")


def test_overrides_merge_blocks_as_allennlp_does_and_dotted_keys_reach_inside_blocks(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"trainer": {"num_epochs": 3, "patience": 2}, "model": {"type": "x", "dropout": 0.1}}')
    config = load_config(path, '{"trainer.num_epochs": 7, "random_seed": 5}')
    assert config.as_dict() == {
        "trainer": {"num_epochs": 7, "patience": 2},
        "model": {"type": "x", "dropout": 0.1},
        "random_seed": 5,
    }
    merged = apply_overrides(config, '{"model": {"type": "y"}, "trainer": {"optimizer": {"lr": 0.1}}}')
    assert merged["model"].as_dict() == {"type": "y", "dropout": 0.1}
    assert merged["trainer"].as_dict() == {"num_epochs": 7, "patience": 2, "optimizer": {"lr": 0.1}}
    assert apply_overrides(config, '{"model": null}')["model"] is None  # a non-block value replaces
    assert apply_overrides(config, None) is config


def test_overrides_that_are_invalid_fail_clearly(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"trainer": {"num_epochs": 3}}')
    # A misspelled key is added, as in AllenNLP; the unknown key is reported when the config is used.
    assert load_config(path, '{"trainr.num_epochs": 7}').as_dict()["trainr"] == {"num_epochs": 7}
    with pytest.raises(ConfigurationError, match="cannot evaluate --overrides: syntax error"):
        load_config(path, '{"trainer.num_epochs": }')
    with pytest.raises(ConfigurationError, match="--overrides uses std.extVar\\('TOY_UNSET_VARIABLE'\\)"):
        load_config(path, '{"a": std.extVar("TOY_UNSET_VARIABLE")}')


def test_unknown_registered_name_lists_the_names_and_suggests_the_closest():
    with pytest.raises(ConfigurationError) as error, explained_configuration_errors():
        Model.from_params(Params({"type": "toy_tager"}, history="model."), vocab=toy_vocabulary())
    message = str(error.value)
    assert message.startswith("unknown name 'toy_tager' for model.type; did you mean 'toy_tagger'?")
    assert "Available names:" in message and "toy_tagger" in message.split("Available names:")[1]
    assert "\n" not in message


def test_unknown_name_without_close_match_still_lists_the_names():
    with pytest.raises(ConfigurationError) as error:
        check_registered_name(DatasetReader, "zzzz", "--use-reader")
    assert "did you mean" not in str(error.value)
    assert "unknown name 'zzzz' for --use-reader. Available names:" in str(error.value)
    assert "plain_text" in str(error.value)


def test_unknown_name_inside_a_nested_component_is_explained():
    """An optimizer's type is resolved lazily, inside the trainer's constructor."""
    model = ToyTagger(toy_vocabulary())
    params = Params({"optimizer": {"type": "torch::Adamm", "lr": 0.1}}, history="trainer.")
    expected = r"unknown name 'torch::Adamm' for trainer\.optimizer\.type; did you mean 'torch::Adam'\?"
    with pytest.raises(ConfigurationError, match=expected), explained_configuration_errors():
        Trainer.from_params(params, model=model, serialization_dir="unused", train_loader=None)


def test_misspelled_key_names_the_key_the_component_and_the_fix():
    with pytest.raises(ConfigurationError) as error, explained_configuration_errors():
        Model.from_params(Params({"type": "toy_tagger", "embeding_dim": 4}), vocab=toy_vocabulary())
    message = str(error.value)
    assert "'embeding_dim'" in message and "ToyTagger" in message
    assert "did you mean 'embedding_dim' instead of 'embeding_dim'?" in message


def test_misspelled_trainer_key_is_explained():
    model = ToyTagger(toy_vocabulary())
    params = Params({"optimizer": "adam", "num_epoch": 2})
    expected = r"unknown key 'num_epoch' in the config of Trainer; did you mean 'num_epochs'"
    with pytest.raises(ConfigurationError, match=expected), explained_configuration_errors():
        Trainer.from_params(params, model=model, serialization_dir="unused", train_loader=None)


def test_check_keys():
    check_keys(Params({"a": 1}), "the block", ["a", "b"])
    with pytest.raises(
        ConfigurationError, match=r"unknown keys 'bb', 'zzz' in the block; did you mean 'b' instead of 'bb'\?"
    ):
        check_keys(Params({"a": 1, "bb": 2, "zzz": 3}), "the block", ["a", "b"])


def test_allennlp_optimizer_and_scheduler_names_map_to_torch_classes():
    model = ToyTagger(toy_vocabulary())
    loader = InstanceLoader([], model.tensorize, batch_size=1)
    for name, expected in (
        ("adam", torch.optim.Adam),
        ("SGD", torch.optim.SGD),
        ("adamw", torch.optim.AdamW),
        ("torch::adam", torch.optim.Adam),
    ):
        params = Params(
            {"optimizer": {"type": name, "lr": 0.1}, "learning_rate_scheduler": {"type": "exponential", "gamma": 0.5}}
        )
        trainer = Trainer.from_params(params, model=model, serialization_dir="unused", train_loader=loader)
        assert type(trainer.optimizer) is expected
        assert type(trainer.scheduler) is torch.optim.lr_scheduler.ExponentialLR
    trainer = Trainer(model, "unused", loader, Lazy(torch.optim.SGD, lr=0.5))
    assert trainer.optimizer.param_groups[0]["lr"] == 0.5


def test_plugins_file_and_include_package_are_imported(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin_one.py").write_text(textwrap.dedent("""
            from structkd_plugin.data import DatasetReader

            @DatasetReader.register("toy_reader_from_plugins_file")
            class Reader(DatasetReader):
                pass
            """))
    (tmp_path / "toy_plugin_two.py").write_text(textwrap.dedent("""
            from structkd_plugin.data import DatasetReader

            @DatasetReader.register("toy_reader_from_include_package")
            class Reader(DatasetReader):
                pass
            """))
    (tmp_path / ".structkd_plugins").write_text("# plugins of this project\ntoy_plugin_one\n\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import_plugins(["toy_plugin_two"])
    assert {"toy_reader_from_plugins_file", "toy_reader_from_include_package", "conll2003"} <= set(
        DatasetReader.list_available()
    )
    assert "toy_tagger" in Model.list_available()


def test_plugin_that_cannot_be_imported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="cannot import plugin module 'toy_no_such_module'"):
        import_plugins(["toy_no_such_module"])


@pytest.mark.parametrize("config", ["bilstm_crf", "softmax_tagger"])
def test_the_ner_configs_read_conll2003_with_the_readme_override(config, monkeypatch):
    """README's CoNLL-2003 recipe: the shipped NER configs with the reader overridden read the
    CoNLL-2003 format into the configs' BIO tags."""
    data = FIXTURES / "conll2003_ner.txt"
    for variable in ("TRAIN_PATH", "DEV_PATH", "TEST_PATH"):
        monkeypatch.setenv(variable, str(data))
    path = FIXTURES.parent / "training_configs" / "ner" / f"{config}.jsonnet"
    params = load_config(path, '{"dataset_reader": {"type": "conll2003", "coding_scheme": "IOB1"}}')
    reader = DatasetReader.from_params(params.pop("dataset_reader"))
    tags = {tag for instance in reader.read(data) for tag in instance["tags"]}
    assert "I-PER" in tags and "B-PER" in tags  # IOB1's sentence-initial I-PER became B-PER
    assert params["model"]["label_encoding"] == "BIO"
