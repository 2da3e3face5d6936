"""Tests of `Vocabulary`: counting, min_count, pretrained files, padding, files, configs."""

from collections import Counter
from pathlib import Path

import pytest
from tango.common import Params

from structkd_plugin.data import PADDING_TOKEN, UNKNOWN_TOKEN, Vocabulary

INSTANCES = [
    {"words": ["the", "cat", "sat"], "tags": ["O", "B-ANI", "O"], "upos": ["DET", "NOUN", "VERB"]},
    {"words": ["the", "dog", "sat", "down"], "tags": ["O", "B-ANI", "O", "O"], "upos": ["DET", "NOUN", "VERB", "ADP"]},
    {"words": ["a", "cat"], "heads": [2, 0], "deprels": ["det", "root"], "xpos": ["DT", "NN"]},
]


def all_namespaces(vocabulary: Vocabulary) -> dict[str, dict[int, str]]:
    return {namespace: vocabulary.get_index_to_token_vocabulary(namespace) for namespace in vocabulary.get_namespaces()}


def test_from_instances_counts_every_namespace_most_frequent_first():
    vocabulary = Vocabulary.from_instances(INSTANCES)
    assert sorted(vocabulary.get_namespaces()) == ["characters", "deprels", "labels", "tokens", "upos", "xpos"]
    words = Counter(word for instance in INSTANCES for word in instance["words"])
    expected_words = sorted(words, key=lambda word: (-words[word], word))
    expected_tokens = [PADDING_TOKEN, UNKNOWN_TOKEN] + expected_words
    assert vocabulary.get_index_to_token_vocabulary("tokens") == dict(enumerate(expected_tokens))
    assert vocabulary.get_index_to_token_vocabulary("labels") == {0: "O", 1: "B-ANI"}
    assert vocabulary.get_index_to_token_vocabulary("upos") == {0: "DET", 1: "NOUN", 2: "VERB", 3: "ADP"}
    assert vocabulary.get_index_to_token_vocabulary("deprels") == {0: "det", 1: "root"}
    characters = set("".join(word for instance in INSTANCES for word in instance["words"]))
    assert vocabulary.get_vocab_size("characters") == 2 + len(characters)


def test_padded_namespaces_reserve_padding_and_unknown():
    vocabulary = Vocabulary.from_instances(INSTANCES)
    for namespace in ("tokens", "characters"):
        assert vocabulary.is_padded(namespace)
        assert vocabulary.get_token_from_index(0, namespace) == PADDING_TOKEN
        assert vocabulary.get_token_from_index(1, namespace) == UNKNOWN_TOKEN
    assert vocabulary.get_token_index("zebra") == 1
    assert vocabulary.get_token_index(PADDING_TOKEN) == 0


def test_non_padded_namespaces_reject_unknown_strings():
    vocabulary = Vocabulary.from_instances(INSTANCES)
    for namespace in ("labels", "upos", "xpos", "deprels", "ner_tags", "chunk_labels"):
        assert not vocabulary.is_padded(namespace)
    with pytest.raises(KeyError, match="'B-PLANT'.*'labels'"):
        vocabulary.get_token_index("B-PLANT", "labels")


def test_non_padded_namespaces_are_configurable():
    vocabulary = Vocabulary.from_instances(INSTANCES, non_padded_namespaces=["labels", "*_ids"])
    assert vocabulary.is_padded("upos") and vocabulary.is_padded("tags")
    assert not vocabulary.is_padded("labels") and not vocabulary.is_padded("word_ids")
    assert vocabulary.get_token_from_index(0, "upos") == PADDING_TOKEN


def test_min_count_leaves_rare_words_unknown():
    vocabulary = Vocabulary.from_instances(INSTANCES, min_count={"tokens": 2})
    expected = {0: PADDING_TOKEN, 1: UNKNOWN_TOKEN, 2: "cat", 3: "sat", 4: "the"}
    assert vocabulary.get_index_to_token_vocabulary("tokens") == expected
    assert vocabulary.get_token_index("dog") == 1
    # Other namespaces are not affected.
    assert vocabulary.get_vocab_size("upos") == 4


@pytest.mark.parametrize("option", ["min_count", "pretrained_files"])
def test_counting_options_need_a_padded_namespace_that_is_filled(option, tmp_path):
    value = 2 if option == "min_count" else str(tmp_path / "vectors.txt")
    with pytest.raises(ValueError, match="non-padded"):
        Vocabulary.from_instances(INSTANCES, **{option: {"labels": value}})
    with pytest.raises(ValueError, match="does not fill"):
        Vocabulary.from_instances(INSTANCES, **{option: {"token": value}})


@pytest.mark.parametrize("header", ["", "3 2\n"])
def test_pretrained_words_survive_min_count_but_are_not_added(tmp_path, header):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(header + "dog 0.1 0.2\ncat 0.3 0.4\nunseen 0.5 0.6\n", encoding="utf-8")
    vocabulary = Vocabulary.from_instances(
        INSTANCES, min_count={"tokens": 2}, pretrained_files={"tokens": str(vectors)}
    )
    tokens = set(vocabulary.get_index_to_token_vocabulary("tokens").values())
    assert tokens == {PADDING_TOKEN, UNKNOWN_TOKEN, "cat", "sat", "the", "dog"}


def test_add_token_to_namespace():
    vocabulary = Vocabulary()
    assert vocabulary.add_token_to_namespace("hello") == 2
    assert vocabulary.add_token_to_namespace("hello") == 2
    assert vocabulary.add_token_to_namespace("B-PER", "labels") == 0
    assert vocabulary.get_vocab_size("tokens") == 3 and vocabulary.get_vocab_size("labels") == 1
    with pytest.raises(ValueError, match="newline"):
        vocabulary.add_token_to_namespace("two\nlines")


def test_reading_an_unseen_namespace_does_not_create_it():
    vocabulary = Vocabulary()
    assert vocabulary.get_vocab_size("tokens") == 2
    assert vocabulary.get_vocab_size("labels") == 0
    assert vocabulary.get_token_index("anything") == 1
    assert vocabulary.get_namespaces() == []


def test_get_token_from_index_out_of_range():
    vocabulary = Vocabulary.from_instances(INSTANCES)
    with pytest.raises(KeyError, match="no index 2 in namespace 'labels'"):
        vocabulary.get_token_from_index(2, "labels")
    with pytest.raises(KeyError):
        vocabulary.get_token_from_index(-1, "tokens")


def test_round_trip_through_files(tmp_path):
    instances = INSTANCES + [{"words": ["São Paulo", "line\u2028separator", "tab\there", "x\r"]}]
    vocabulary = Vocabulary.from_instances(instances, non_padded_namespaces=["*labels", "upos", "xpos", "deprels"])
    vocabulary.add_token_to_namespace("only", "empty_labels")
    vocabulary.save_to_files(tmp_path / "vocabulary")
    loaded = Vocabulary.from_files(tmp_path / "vocabulary")
    assert all_namespaces(loaded) == all_namespaces(vocabulary)
    for namespace in vocabulary.get_namespaces():
        assert loaded.is_padded(namespace) == vocabulary.is_padded(namespace)
    assert loaded.non_padded_namespaces == ("*labels", "upos", "xpos", "deprels")
    # The files themselves: one token per line in index order, reserved tokens included.
    lines = (tmp_path / "vocabulary" / "labels.txt").read_text(encoding="utf-8").split("\n")
    assert lines == ["O", "B-ANI", ""]
    lines = (tmp_path / "vocabulary" / "tokens.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:2] == [PADDING_TOKEN, UNKNOWN_TOKEN]
    non_padded = (tmp_path / "vocabulary" / "non_padded_namespaces.txt").read_text(encoding="utf-8")
    assert non_padded == "*labels\nupos\nxpos\ndeprels\n"


def test_an_empty_namespace_survives_the_round_trip(tmp_path):
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "non_padded_namespaces.txt").write_text("*labels\n", encoding="utf-8")
    (tmp_path / "saved" / "labels.txt").write_text("", encoding="utf-8")
    Vocabulary.from_files(tmp_path / "saved").save_to_files(tmp_path / "again")
    loaded = Vocabulary.from_files(tmp_path / "again")
    assert loaded.get_namespaces() == ["labels"] and loaded.get_vocab_size("labels") == 0


def test_from_files_rejects_damaged_files(tmp_path):
    Vocabulary.from_instances(INSTANCES).save_to_files(tmp_path)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("the\ncat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary.from_files(tmp_path)
    tokens.write_text(f"{PADDING_TOKEN}\n{UNKNOWN_TOKEN}\ncat\ncat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="more than once"):
        Vocabulary.from_files(tmp_path)
    with pytest.raises(FileNotFoundError):
        Vocabulary.from_files(tmp_path / "absent")


def test_namespaces_that_cannot_be_file_names_are_refused(tmp_path):
    vocabulary = Vocabulary()
    vocabulary.add_token_to_namespace("x", "a/b")
    with pytest.raises(ValueError, match="cannot be saved"):
        vocabulary.save_to_files(tmp_path)


def test_built_from_a_config_block(tmp_path):
    from_config = Vocabulary.from_params(Params({"min_count": {"tokens": 2}}), instances=INSTANCES)
    assert all_namespaces(from_config) == all_namespaces(Vocabulary.from_instances(INSTANCES, min_count={"tokens": 2}))
    from_config.save_to_files(tmp_path)
    loaded = Vocabulary.from_params(Params({"type": "from_files", "directory": str(tmp_path)}))
    assert all_namespaces(loaded) == all_namespaces(from_config)
    custom = Vocabulary.from_params(Params({"non_padded_namespaces": ["labels"]}), instances=INSTANCES)
    assert custom.is_padded("upos")


def test_repr_lists_the_namespace_sizes():
    text = repr(Vocabulary.from_instances(INSTANCES[:1]))
    assert text.startswith("Vocabulary(tokens: 5, ") and "labels: 2" in text


def test_vocabulary_from_the_fixture_treebank():
    from structkd_plugin.data import UniversalDependenciesDatasetReader

    path = Path(__file__).resolve().parents[2] / "fixtures" / "universal_dependencies.conllu"
    vocabulary = Vocabulary.from_instances(UniversalDependenciesDatasetReader().read(path))
    assert "PROPN" in vocabulary.get_index_to_token_vocabulary("upos").values()
    assert vocabulary.get_token_index("root", "deprels") >= 0
