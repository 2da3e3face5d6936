"""Tests of the dataset readers on the hand-written files of `fixtures/`."""

import inspect
import logging
from pathlib import Path

import pytest
from tango.common import Params

from structkd_plugin.data import (
    Conll2003DatasetReader,
    DataError,
    DatasetReader,
    PlainTextDatasetReader,
    UniversalDependenciesDatasetReader,
    UniversalNerDatasetReader,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CONLL2003 = FIXTURES / "conll2003_ner.txt"
UNIVERSAL_NER = FIXTURES / "universal_ner.iob2"
TREEBANK = FIXTURES / "universal_dependencies.conllu"
PLAIN_TEXT = FIXTURES / "plain_text.txt"
VIOLATIONS = FIXTURES / "universal_ner_scheme_violations.iob2"
MALFORMED = FIXTURES / "malformed"

ALL_READERS = [
    (Conll2003DatasetReader, CONLL2003),
    (UniversalNerDatasetReader, UNIVERSAL_NER),
    (UniversalDependenciesDatasetReader, TREEBANK),
    (PlainTextDatasetReader, PLAIN_TEXT),
]


def conll2003_columns(path: Path) -> list[list[list[str]]]:
    """The sentences of a CoNLL-2003 file as lists of column lists, read independently of the
    reader under test."""
    sentences, sentence = [], []
    for line in path.read_text(encoding="utf-8").split("\n") + [""]:
        if line.strip() and not line.startswith("-DOCSTART-"):
            sentence.append(line.split())
        elif sentence:
            sentences.append(sentence)
            sentence = []
    return sentences


# --- conll2003 -----------------------------------------------------------------------------


def test_conll2003_reads_every_sentence_and_skips_docstart():
    instances = list(Conll2003DatasetReader().read(CONLL2003))
    sentences = conll2003_columns(CONLL2003)
    assert len(instances) == len(sentences) == 30
    for instance, sentence in zip(instances, sentences):
        assert instance["words"] == [columns[0] for columns in sentence]
        assert len(instance["tags"]) == len(instance["words"])
        assert set(instance) == {"words", "tags", "metadata"}
    assert all("-DOCSTART-" not in instance["words"] for instance in instances)


def test_conll2003_metadata_gives_source_and_first_token_line():
    instances = list(Conll2003DatasetReader().read(CONLL2003))
    lines = CONLL2003.read_text(encoding="utf-8").split("\n")
    assert instances[0]["metadata"] == {"source": str(CONLL2003), "line": 3}
    for instance in instances:
        line = instance["metadata"]["line"]
        assert lines[line - 1].split()[0] == instance["words"][0]
        assert not lines[line - 2].strip()
    # The first sentence of the second document comes after its -DOCSTART- line.
    assert lines[instances[15]["metadata"]["line"] - 3].startswith("-DOCSTART-")


def test_conll2003_converts_iob1_to_bio_and_bioes():
    bio = list(Conll2003DatasetReader().read(CONLL2003))
    bioes = list(Conll2003DatasetReader(label_scheme="BIOES").read(CONLL2003))
    assert bio[0]["tags"] == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert bioes[0]["tags"] == ["B-PER", "E-PER", "O", "O", "S-LOC", "O"]
    # Adjacent spans of one type, which IOB1 separates with B-.
    assert bio[5]["words"][2:6] == ["Ajax", "Amsterdam", "PSV", "Eindhoven"]
    assert bio[5]["tags"][2:6] == ["B-ORG", "I-ORG", "B-ORG", "I-ORG"]
    assert bioes[5]["tags"][2:6] == ["B-ORG", "E-ORG", "B-ORG", "E-ORG"]
    assert bio[26]["tags"][3:7] == ["B-LOC", "B-LOC", "B-LOC", "I-LOC"]
    assert bioes[26]["tags"][3:7] == ["S-LOC", "S-LOC", "B-LOC", "E-LOC"]


def test_conll2003_iob1_output_is_the_file_column():
    instances = Conll2003DatasetReader(label_scheme="IOB1").read(CONLL2003)
    for instance, sentence in zip(instances, conll2003_columns(CONLL2003)):
        assert instance["tags"] == [columns[3] for columns in sentence]


def test_conll2003_pos_and_chunk_columns():
    sentences = conll2003_columns(CONLL2003)
    pos = list(Conll2003DatasetReader(tag_label="pos", label_scheme="BIOES").read(CONLL2003))
    assert [instance["tags"] for instance in pos] == [[columns[1] for columns in sentence] for sentence in sentences]
    chunks = list(Conll2003DatasetReader(tag_label="chunk").read(CONLL2003))
    assert chunks[5]["tags"][2:6] == ["B-NP", "I-NP", "B-NP", "I-NP"]
    assert chunks[0]["tags"] == ["B-NP", "I-NP", "B-VP", "B-PP", "B-NP", "O"]


def test_conll2003_reads_bio_input_and_other_column_layouts(tmp_path):
    path = tmp_path / "german.txt"
    path.write_text(
        "Angela angela NE I-NC B-PER\nMerkel merkel NE I-NC I-PER\nspricht sprechen VVFIN I-VC O\n", encoding="utf-8"
    )
    columns = ["token", "lemma", "pos", "chunk", "ner"]
    reader = Conll2003DatasetReader(coding_scheme="BIO", label_scheme="BIOES", columns=columns)
    (instance,) = reader.read(path)
    assert instance["words"] == ["Angela", "Merkel", "spricht"]
    assert instance["tags"] == ["B-PER", "E-PER", "O"]


def test_conll2003_and_universal_ner_fixtures_hold_the_same_annotation():
    for scheme in ("BIO", "BIOES", "IOB1"):
        from_conll = list(Conll2003DatasetReader(label_scheme=scheme).read(CONLL2003))
        from_uner = list(UniversalNerDatasetReader(label_scheme=scheme).read(UNIVERSAL_NER))
        assert [(i["words"], i["tags"]) for i in from_conll] == [(i["words"], i["tags"]) for i in from_uner]


def test_crlf_line_ends_and_byte_order_mark_are_accepted(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbf" + CONLL2003.read_bytes().replace(b"\n", b"\r\n"))
    expected = [(i["words"], i["tags"]) for i in Conll2003DatasetReader().read(CONLL2003)]
    assert [(i["words"], i["tags"]) for i in Conll2003DatasetReader().read(path)] == expected


# --- universal_ner -------------------------------------------------------------------------


def test_universal_ner_reads_words_tags_and_comments():
    instances = list(UniversalNerDatasetReader().read(UNIVERSAL_NER))
    assert len(instances) == 30
    assert instances[0]["words"] == ["John", "Smith", "lives", "in", "London", "."]
    assert instances[0]["tags"] == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert instances[0]["metadata"] == {
        "newdoc id": "fixture-doc1",
        "sentence_id": "fixture-1",
        "text": "John Smith lives in London .",
        "source": str(UNIVERSAL_NER),
        "line": 1,
    }
    assert instances[1]["metadata"]["line"] == 11
    assert [instance["metadata"]["sentence_id"] for instance in instances] == [f"fixture-{i}" for i in range(1, 31)]
    for instance in instances:
        assert instance["metadata"]["text"] == " ".join(instance["words"])


def test_universal_ner_tokens_may_contain_spaces(tmp_path):
    path = tmp_path / "spaces.iob2"
    path.write_text("1\tSão Paulo\tB-LOC\t-\t-\n2\tcresce\tO\t-\t-\n", encoding="utf-8")
    (instance,) = UniversalNerDatasetReader().read(path)
    assert instance["words"] == ["São Paulo", "cresce"]
    assert instance["metadata"]["line"] == 1


# --- universal_dependencies ----------------------------------------------------------------


def test_universal_dependencies_reads_trees():
    instances = list(UniversalDependenciesDatasetReader().read(TREEBANK))
    assert len(instances) == 30
    first = instances[0]
    assert first["words"] == ["The", "cat", "sleeps", "."]
    assert first["upos"] == ["DET", "NOUN", "VERB", "PUNCT"]
    assert first["xpos"] == ["DT", "NN", "VBZ", "."]
    assert first["heads"] == [2, 3, 0, 3]
    assert first["deprels"] == ["det", "nsubj", "root", "punct"]
    assert "tags" not in first
    for instance in instances:
        n = len(instance["words"])
        assert all(len(instance[key]) == n for key in ("upos", "xpos", "heads", "deprels"))
        assert all(0 <= head <= n for head in instance["heads"])
        assert instance["heads"].count(0) == 1


def test_universal_dependencies_skips_multiword_tokens_and_empty_nodes():
    instances = list(UniversalDependenciesDatasetReader().read(TREEBANK))
    contraction = instances[7]
    assert contraction["metadata"]["text"] == "I cannot swim."
    assert contraction["words"] == ["I", "can", "not", "swim", "."]
    assert contraction["heads"] == [4, 4, 4, 0, 4]
    ellipsis = instances[8]
    assert ellipsis["words"] == ["Mary", "likes", "tea", "and", "John", "coffee", "."]
    assert ellipsis["heads"] == [2, 0, 2, 5, 2, 5, 2]
    assert ellipsis["deprels"][5] == "orphan"


def test_universal_dependencies_metadata():
    instances = list(UniversalDependenciesDatasetReader().read(TREEBANK))
    lines = TREEBANK.read_text(encoding="utf-8").split("\n")
    assert instances[0]["metadata"] == {
        "newdoc id": "fixture-treebank",
        "sentence_id": "fixture-1",
        "text": "The cat sleeps.",
        "source": str(TREEBANK),
        "line": 1,
    }
    for instance in instances[1:]:
        assert lines[instance["metadata"]["line"] - 1] == f"# sent_id = {instance['metadata']['sentence_id']}"


@pytest.mark.parametrize("tag_label", ["upos", "xpos"])
def test_universal_dependencies_tags_copy_a_column(tag_label):
    for instance in UniversalDependenciesDatasetReader(tag_label=tag_label).read(TREEBANK):
        assert instance["tags"] == instance[tag_label]
        assert instance["tags"] is not instance[tag_label]


def test_universal_dependencies_leaves_out_unannotated_columns(tmp_path):
    path = tmp_path / "raw.conllu"
    path.write_text("1\tHello\t_\tINTJ\t_\t_\t_\t_\t_\t_\n2\tthere\t_\tADV\t_\t_\t_\t_\t_\t_\n", encoding="utf-8")
    (instance,) = UniversalDependenciesDatasetReader(tag_label="xpos").read(path)
    assert set(instance) == {"words", "upos", "metadata"}
    assert instance["metadata"] == {"source": str(path), "line": 1}


def test_universal_dependencies_rejects_a_tree_with_missing_heads(tmp_path):
    path = tmp_path / "partial.conllu"
    path.write_text(
        "# sent_id = 1\n1\tHello\t_\tINTJ\t_\t_\t0\troot\t_\t_\n2\tthere\t_\tADV\t_\t_\t_\t_\t_\t_\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"partial.conllu:3: HEAD is _"):
        list(UniversalDependenciesDatasetReader().read(path))


def test_universal_dependencies_rejects_word_ids_out_of_sequence(tmp_path):
    path = tmp_path / "ids.conllu"
    path.write_text(
        "1\tHello\t_\tINTJ\t_\t_\t0\troot\t_\t_\n3\tthere\t_\tADV\t_\t_\t1\tadvmod\t_\t_\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"ids.conllu:2: word ID 3 where 2 was expected"):
        list(UniversalDependenciesDatasetReader().read(path))


# --- plain_text ----------------------------------------------------------------------------


def test_plain_text_splits_on_whitespace_and_skips_blank_lines():
    instances = list(PlainTextDatasetReader().read(PLAIN_TEXT))
    lines = PLAIN_TEXT.read_text(encoding="utf-8").split("\n")
    assert len(instances) == sum(1 for line in lines if line.strip()) == 23
    assert instances[0] == {
        "words": ["John", "Smith", "lives", "in", "London", "."],
        "metadata": {"source": str(PLAIN_TEXT), "line": 1},
    }
    assert [instance["metadata"]["line"] for instance in instances[:4]] == [1, 2, 4, 5]
    assert instances[18]["words"] == ["Tabs", "and", "double", "spaces", "split", "words", "too", "."]


# --- what all readers share ----------------------------------------------------------------


@pytest.mark.parametrize(("reader_class", "path"), ALL_READERS)
def test_read_returns_a_generator(reader_class, path):
    instances = reader_class().read(path)
    assert inspect.isgenerator(instances)
    first = next(instances)
    assert first["metadata"]["source"] == str(path)
    instances.close()


@pytest.mark.parametrize(("reader_class", "path"), ALL_READERS)
def test_max_instances(reader_class, path):
    everything = list(reader_class().read(path))
    assert list(reader_class(max_instances=3).read(path)) == everything[:3]
    assert list(reader_class(max_instances=0).read(path)) == []
    assert list(reader_class(max_instances=1000).read(path)) == everything


def test_max_instances_stops_before_parsing_the_rest():
    # The error of this file is in its second sentence.
    (instance,) = Conll2003DatasetReader(max_instances=1).read(MALFORMED / "conll2003_wrong_column_count.txt")
    assert instance["words"][0] == "John"
    with pytest.raises(ValueError, match="max_instances"):
        Conll2003DatasetReader(max_instances=-1)


@pytest.mark.parametrize(("reader_class", "path"), ALL_READERS)
def test_missing_file_is_a_data_error_at_once(reader_class, path, tmp_path):
    missing = tmp_path / path.name
    with pytest.raises(DataError, match="no such file") as error:
        reader_class().read(missing)
    assert str(missing) in str(error.value)


@pytest.mark.parametrize(
    ("reader_class", "file_name", "line", "problem"),
    [
        (Conll2003DatasetReader, "conll2003_wrong_column_count.txt", 13, "expected 4 whitespace-separated columns"),
        (Conll2003DatasetReader, "conll2003_unknown_tag_prefix.txt", 7, "'X-LOC' is not a tag of the IOB1 scheme"),
        (UniversalNerDatasetReader, "universal_ner_wrong_column_count.iob2", 17, "expected 5 tab-separated columns"),
        (UniversalNerDatasetReader, "universal_ner_unknown_tag_prefix.iob2", 8, "'S-LOC' is not a tag of the BIO"),
        (UniversalNerDatasetReader, "universal_ner_missing_blank_line.iob2", 12, "token index '1' where 7 was"),
        (UniversalDependenciesDatasetReader, "universal_dependencies_wrong_column_count.conllu", 7, "found 9"),
        (UniversalDependenciesDatasetReader, "universal_dependencies_non_integer_head.conllu", 11, "HEAD 'two' is not"),
        (UniversalDependenciesDatasetReader, "universal_dependencies_head_out_of_range.conllu", 13, "HEAD 9 is not 0"),
        (PlainTextDatasetReader, "plain_text_invalid_utf8.txt", 3, "invalid UTF-8"),
    ],
)
def test_malformed_files_raise_data_error_naming_file_and_line(reader_class, file_name, line, problem):
    path = MALFORMED / file_name
    with pytest.raises(DataError) as raised:
        list(reader_class().read(path))
    error = raised.value
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"{path}:{line}: ")
    assert problem in str(error)
    assert (error.path, error.line) == (str(path), line)


def test_scheme_violations_are_repaired_counted_and_reported_once(caplog):
    with caplog.at_level(logging.WARNING, logger="structkd_plugin.data"):
        instances = list(UniversalNerDatasetReader().read(VIOLATIONS))
    assert len(instances) == 4
    assert instances[1]["tags"] == ["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "O"]
    assert instances[2]["tags"] == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "O"]
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert " 2 tag(s) break the BIO scheme" in message
    assert f"{VIOLATIONS}:16, {VIOLATIONS}:26" in message


def test_repaired_tags_are_converted_to_the_wanted_scheme(caplog):
    instances = list(UniversalNerDatasetReader(label_scheme="BIOES").read(VIOLATIONS))
    assert instances[1]["tags"] == ["B-PER", "E-PER", "O", "O", "B-ORG", "E-ORG", "O"]
    assert instances[2]["tags"] == ["B-PER", "E-PER", "O", "S-LOC", "S-ORG", "O"]


def test_clean_files_give_no_warning(caplog):
    with caplog.at_level(logging.WARNING):
        list(UniversalNerDatasetReader().read(UNIVERSAL_NER))
        list(Conll2003DatasetReader().read(CONLL2003))
    assert not caplog.records


def test_readers_are_registered_and_built_from_configs():
    assert {"conll2003", "universal_ner", "universal_dependencies", "plain_text"} <= set(DatasetReader.list_available())
    config = {"type": "conll2003", "tag_label": "chunk", "label_scheme": "BIOES", "max_instances": 2}
    reader = DatasetReader.from_params(Params(config))
    assert isinstance(reader, Conll2003DatasetReader)
    assert (reader.tag_label, reader.label_scheme, reader.max_instances) == ("chunk", "BIOES", 2)
    reader = DatasetReader.from_params(Params({"type": "universal_dependencies", "tag_label": "upos"}))
    assert reader.tag_label == "upos"
    assert isinstance(DatasetReader.from_params(Params({"type": "plain_text"})), PlainTextDatasetReader)


@pytest.mark.parametrize(
    "make_reader",
    [
        lambda: Conll2003DatasetReader(tag_label="lemma"),
        lambda: Conll2003DatasetReader(coding_scheme="BILOU"),
        lambda: Conll2003DatasetReader(label_scheme="IOB2"),
        lambda: Conll2003DatasetReader(columns=["word", "ner"]),
        lambda: UniversalNerDatasetReader(label_scheme="BIOLU"),
        lambda: UniversalDependenciesDatasetReader(tag_label="deprel"),
    ],
)
def test_bad_reader_arguments_are_rejected(make_reader):
    with pytest.raises(ValueError):
        make_reader()


def test_multilingual_reader_stamps_languages_and_rejects_a_plain_path():
    import json as json_module

    from structkd_plugin.data import MultilingualDatasetReader

    reader = MultilingualDatasetReader(UniversalNerDatasetReader(), max_instances=35)
    paths = {"en": str(FIXTURES / "ner" / "dev.iob2"), "xx": str(FIXTURES / "ner" / "test.iob2")}
    instances = list(reader.read(json_module.dumps(paths)))
    assert len(instances) == 35
    assert [i["language"] for i in instances] == ["en"] * 30 + ["xx"] * 5
    with pytest.raises(DataError, match="JSON object from language to file"):
        list(reader.read(str(FIXTURES / "ner" / "dev.iob2")))
