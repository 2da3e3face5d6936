"""The `plain_text` reader on raw text: spaCy tokenization, several files, filters, bad lines,
and `SentenceStore`, which keeps a large unlabeled dataset compactly."""

import inspect
import logging

import pytest
import spacy
from tango.common import Params

from structkd_plugin.data import DataError, DatasetReader, PlainTextDatasetReader
from structkd_plugin.data.sentence_store import SentenceStore, instance_lengths

RAW = [
    "Don't panic: it's only $5.50 (U.S.), isn't it?",
    "She emailed jane@example.com at 3pm -- twice!",
    "Eu não sei se o Dr. Silva chegou às 10h.",
]


def words_of(reader, path):
    return [instance["words"] for instance in reader.read(path)]


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_spacy_tokenization_equals_spacys_own_tokenizer(tmp_path, lang):
    path = tmp_path / "raw.txt"
    path.write_text("\n".join(RAW) + "\n", encoding="utf-8")
    tokenizer = spacy.blank(lang).tokenizer
    expected = [[token.text for token in tokenizer(line)] for line in RAW]
    assert words_of(PlainTextDatasetReader(tokenizer="spacy", lang=lang), path) == expected
    assert expected[0][:3] == ["Do", "n't", "panic"] if lang == "en" else True


def test_spacy_drops_whitespace_tokens_and_whitespace_keeps_the_old_split(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("two  spaces here.\n", encoding="utf-8")
    assert words_of(PlainTextDatasetReader(tokenizer="spacy"), path) == [["two", "spaces", "here", "."]]
    assert words_of(PlainTextDatasetReader(), path) == [["two", "spaces", "here."]]


def test_reads_a_glob_a_comma_list_and_a_list_lazily(tmp_path):
    for name, text in (("a.txt", "one\ntwo\n"), ("b.txt", "three\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
    reader = PlainTextDatasetReader()
    expected = [["one"], ["two"], ["three"]]
    assert words_of(reader, str(tmp_path / "*.txt")) == expected
    assert words_of(reader, f"{tmp_path / 'a.txt'},{tmp_path / 'b.txt'}") == expected
    assert words_of(reader, [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]) == expected
    instances = reader.read(str(tmp_path / "*.txt"))
    assert inspect.isgenerator(instances)
    assert [i["metadata"]["source"] for i in instances] == [str(tmp_path / "a.txt")] * 2 + [str(tmp_path / "b.txt")]


def test_a_path_that_names_no_file_is_an_error_at_once(tmp_path):
    with pytest.raises(DataError, match="no file matches this pattern"):
        PlainTextDatasetReader().read(str(tmp_path / "*.txt"))
    with pytest.raises(DataError, match="missing.txt: no such file"):
        PlainTextDatasetReader().read(str(tmp_path / "missing.txt"))


def test_filters_are_counted_in_one_warning(tmp_path, caplog):
    path = tmp_path / "raw.txt"
    path.write_text("a b\na\n\na b c d e\na b\nc d\nc d\n", encoding="utf-8")
    reader = PlainTextDatasetReader(min_words=2, max_words=3, deduplicate=True)
    with caplog.at_level(logging.WARNING):
        assert words_of(reader, path) == [["a", "b"], ["c", "d"]]
    message = " ".join(record.getMessage() for record in caplog.records)
    assert "1 sentences under 2 words" in message
    assert "1 sentences over 3 words" in message
    assert "2 repeated sentences" in message


def test_max_sentences_counts_over_all_files(tmp_path):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("x\ny\n", encoding="utf-8")
    reader = PlainTextDatasetReader(max_sentences=3)
    assert len(words_of(reader, str(tmp_path / "*.txt"))) == 3
    assert words_of(PlainTextDatasetReader(max_sentences=0), str(tmp_path / "a.txt")) == []


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (b"fine\n\xff\xfe bad\n", 2, "invalid UTF-8"),
        (b"fine\nbinary\x00\x01\x02junk\n", 2, "control characters"),
        (b"fine\n" + b"w " * 10_000 + b"\n", 2, "10000 words on one line"),
    ],
)
def test_bad_lines_are_errors_naming_file_and_line_or_counted_skips(tmp_path, caplog, content, line, problem):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as raised:
        words_of(PlainTextDatasetReader(), path)
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert problem in str(raised.value)
    with caplog.at_level(logging.WARNING):
        assert words_of(PlainTextDatasetReader(skip_bad_lines=True), path) == [["fine"]]
    assert "1 bad lines" in caplog.text


def test_reader_settings_are_checked_and_built_from_params():
    with pytest.raises(ValueError, match="tokenizer must be"):
        PlainTextDatasetReader(tokenizer="nltk")
    with pytest.raises(ValueError, match="no tokenizer for the language"):
        PlainTextDatasetReader(tokenizer="spacy", lang="xx-nonexistent")
    with pytest.raises(ValueError, match="min_words <= max_words"):
        PlainTextDatasetReader(min_words=5, max_words=2)
    reader = DatasetReader.from_params(Params({"type": "plain_text", "tokenizer": "spacy", "lang": "pt", "max_words": 50}))
    assert (reader.tokenizer_name, reader.lang, reader.max_words) == ("spacy", "pt", 50)


def test_sentence_store_gives_back_the_instances_it_was_given():
    instances = [
        {"words": ["Olá", "mundo"], "metadata": {"source": "a.txt", "line": 1}},
        {"words": ["x"], "upos": ["X"], "metadata": {"source": "b.txt", "line": 7, "language": "pt"}},
        {"words": ["no", "metadata"]},
    ]
    store = SentenceStore(iter(instances))
    assert len(store) == 3
    assert list(store) == [*instances[:2], {"words": ["no", "metadata"], "metadata": {}}]
    assert store[1] == instances[1] and store[-1]["words"] == ["no", "metadata"]
    assert store[0:2] == instances[:2]
    assert list(instance_lengths(store)) == [2, 1, 2] == instance_lengths(instances)
