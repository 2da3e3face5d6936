"""The spaCy components on exported models: the same predictions as `structkd predict` in a fresh
process, batching, sentence boundaries and windows, UPOS from an upstream tagger, odd inputs,
missing or corrupt component folders."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc

from structkd_plugin.archival import ArchiveError, load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.data import UniversalDependenciesDatasetReader, UniversalNerDatasetReader
from structkd_plugin.structures.label_schemes import spans_from_tags
from tests.models.test_parsers import FIXTURE as UD_FIXTURE
from tests.models.test_taggers import FIXTURES as NER_FIXTURES
from tests.spacy_components.conftest import export
from tests.spacy_components.fresh_process import annotations

FRESH_PROCESS = Path(__file__).with_name("fresh_process.py")


def ner_sentences() -> list[dict]:
    return list(UniversalNerDatasetReader().read(NER_FIXTURES / "dev.iob2"))


def ud_sentences() -> list[dict]:
    return list(UniversalDependenciesDatasetReader().read(UD_FIXTURE))


def expected_annotations(archive: Path, instances: list[dict]) -> list[dict]:
    """What `structkd predict` gives, in the format of `annotations` (one sentence per doc)."""
    model = load_archive(archive).model
    expected = []
    for prediction in predictions(model, instances, batch_size=8):
        if "heads" in prediction:
            tree = {"heads": prediction["heads"], "deprels": prediction["deprels"]}
            expected.append({"entities": [], "sentences": [tree]})
        else:
            spans = spans_from_tags(prediction["tags"], model.label_encoding)
            expected.append({"entities": [list(span) for span in spans]})
    return expected


def words_docs(nlp, instances) -> list[Doc]:
    return [Doc(nlp.vocab, words=instance["words"]) for instance in instances]


def test_round_trip_in_a_fresh_process(ner_archive, ner_pipeline, parser_archive, parser_pipeline):
    ner_instances, ud_instances = ner_sentences(), ud_sentences()
    jobs = [
        {"pipeline": str(ner_pipeline), "sentences": [i["words"] for i in ner_instances]},
        {"pipeline": str(parser_pipeline), "sentences": [i["words"] for i in ud_instances]},
    ]
    finished = subprocess.run(
        [sys.executable, str(FRESH_PROCESS)], input=json.dumps(jobs), capture_output=True, text=True, cwd="/"
    )
    assert finished.returncode == 0, finished.stderr
    ner_docs, parsed_docs = json.loads(finished.stdout)
    expected_entities = expected_annotations(ner_archive, ner_instances)
    assert ner_docs == expected_entities
    assert sum(len(doc["entities"]) for doc in expected_entities) > 5  # the model does find entities
    assert parsed_docs == expected_annotations(parser_archive, ud_instances)


@pytest.mark.parametrize("kind", ["ner", "parser"])
def test_pipe_batches_give_what_one_doc_at_a_time_gives(kind, ner_pipeline, parser_pipeline):
    pipeline, instances = (ner_pipeline, ner_sentences()) if kind == "ner" else (parser_pipeline, ud_sentences())
    nlp = spacy.load(pipeline)
    one_by_one = [annotations(nlp(doc)) for doc in words_docs(nlp, instances)]
    for batch_size in (1, 3, 7, 1000):
        docs = nlp.pipe(words_docs(nlp, instances), batch_size=batch_size)
        assert [annotations(doc) for doc in docs] == one_by_one, batch_size
    # The component's own batch_size (segments per forward pass) changes nothing either.
    small_batches = spacy.load(pipeline, config={"components": {f"structkd_{kind}": {"batch_size": 2}}})
    assert [annotations(doc) for doc in small_batches.pipe(words_docs(nlp, instances))] == one_by_one


@pytest.mark.parametrize("kind", ["ner", "parser"])
def test_empty_docs_unknown_words_and_a_500_character_token(kind, ner_pipeline, parser_pipeline):
    nlp = spacy.load(ner_pipeline if kind == "ner" else parser_pipeline)
    assert len(nlp(Doc(nlp.vocab, words=[]))) == 0
    # Unknown words, and the whitespace tokens spaCy makes of extra spaces and newlines.
    odd = nlp.make_doc("Qwxzy  blorfed\n\nzzyzx")
    assert [token.text for token in odd] == ["Qwxzy", " ", "blorfed", "\n\n", "zzyzx"]
    docs = [Doc(nlp.vocab, words=[]), odd, Doc(nlp.vocab, words=["x" * 500, "Paris"])]
    assert [len(doc) for doc in nlp.pipe(docs)] == [0, 5, 2]
    if kind == "parser":
        for doc in docs[1:]:
            assert doc.has_annotation("DEP") and len(list(doc.sents)) == 1
            assert sum(token.head.i == token.i for token in doc) == 1


def test_the_parser_keeps_upstream_sentence_boundaries(parser_archive, tmp_path):
    base = spacy.blank("en")
    base.add_pipe("sentencizer")
    base.to_disk(tmp_path / "base")
    pipeline = export(parser_archive, tmp_path / "out", "--base-pipeline", str(tmp_path / "base"))
    nlp = spacy.load(pipeline)
    assert nlp.pipe_names == ["sentencizer", "structkd_parser"]
    text = "The cat sleeps . John likes Mary ! The dog chased the cat ."
    unparsed = spacy.load(tmp_path / "base")(text)
    doc = nlp(text)
    assert doc.has_annotation("DEP")
    assert [s.text for s in doc.sents] == [s.text for s in unparsed.sents] == [
        "The cat sleeps .",
        "John likes Mary !",
        "The dog chased the cat .",
    ]
    for sentence in doc.sents:
        assert sum(token.head.i == token.i for token in sentence) == 1
        assert all(sentence.start <= token.head.i < sentence.end for token in sentence)
    # Each sentence parsed as the model parses it alone.
    expected = expected_annotations(parser_archive, [{"words": [t.text for t in s]} for s in unparsed.sents])
    assert annotations(doc)["sentences"] == [e["sentences"][0] for e in expected]


def test_long_sentences_are_cut_into_windows_each_its_own_tree(parser_pipeline):
    nlp = spacy.load(parser_pipeline, config={"components": {"structkd_parser": {"max_length": 5}}})
    doc = nlp(Doc(nlp.vocab, words=["the", "cat", "sleeps"] * 4))
    assert [(s.start, s.end) for s in doc.sents] == [(0, 5), (5, 10), (10, 12)]
    for sentence in doc.sents:
        assert sum(token.head.i == token.i for token in sentence) == 1
    unlimited = spacy.load(parser_pipeline, config={"components": {"structkd_parser": {"max_length": None}}})
    assert len(list(unlimited(Doc(nlp.vocab, words=["the", "cat", "sleeps"] * 100)).sents)) == 1


def test_a_parser_that_reads_upos_takes_it_from_an_upstream_tagger(upos_parser_archive, upos_tagger_archive, tmp_path):
    parser_only = spacy.load(export(upos_parser_archive, tmp_path / "parser-only"))
    with pytest.raises(ValueError, match="reads each word's UPOS.*token.pos_.*before 'structkd_parser'"):
        parser_only(Doc(parser_only.vocab, words=["The", "cat", "sleeps", "."]))
    tagged = parser_only(Doc(parser_only.vocab, words=["The", "cat", "sleeps", "."], pos=["DET", "NOUN", "VERB", "PUNCT"]))
    assert tagged.has_annotation("DEP")

    # A structkd UPOS tagger writing token.pos_, then the parser, reading it.
    base = spacy.blank("en")
    base.add_pipe("structkd_tagger", config={"attribute": "pos_"}).use(load_archive(upos_tagger_archive))
    base.to_disk(tmp_path / "base")
    nlp = spacy.load(export(upos_parser_archive, tmp_path / "out", "--base-pipeline", str(tmp_path / "base")))
    assert nlp.pipe_names == ["structkd_tagger", "structkd_parser"]
    instances = ud_sentences()
    docs = list(nlp.pipe(words_docs(nlp, instances)))
    tags = [p["tags"] for p in predictions(load_archive(upos_tagger_archive).model, instances, 8)]
    assert [[token.pos_ for token in doc] for doc in docs] == tags
    with_predicted_upos = [{"words": i["words"], "upos": t} for i, t in zip(instances, tags)]
    assert [annotations(doc) for doc in docs] == expected_annotations(upos_parser_archive, with_predicted_upos)


def test_the_tagger_writes_tag_or_an_extension(upos_tagger_archive, tmp_path):
    pipeline = export(upos_tagger_archive, tmp_path / "tagger")
    nlp = spacy.load(pipeline)
    assert nlp.pipe_names == ["structkd_tagger"]
    instances = ud_sentences()
    tags = [p["tags"] for p in predictions(load_archive(upos_tagger_archive).model, instances, 8)]
    assert [[t.tag_ for t in doc] for doc in nlp.pipe(words_docs(nlp, instances))] == tags
    custom = spacy.load(pipeline, config={"components": {"structkd_tagger": {"attribute": "_.structkd_upos"}}})
    assert [[t._.structkd_upos for t in doc] for doc in custom.pipe(words_docs(nlp, instances))] == tags
    with pytest.raises(ValueError, match="attribute must be a string attribute of Token"):
        spacy.load(pipeline, config={"components": {"structkd_tagger": {"attribute": "head"}}})


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: shutil.rmtree(folder), r"structkd_ner: no such model directory"),
        (lambda folder: (folder / "weights.safetensors").unlink(), r"structkd_ner is not a complete model directory: it has no weights.safetensors"),
        (lambda folder: (folder / "weights.safetensors").write_bytes(b"garbage"), r"structkd_ner: cannot read weights.safetensors"),
        (lambda folder: (folder / "config.json").write_text("{"), r"structkd_ner: config.json is not valid JSON"),
    ],
    ids=["missing folder", "missing weights", "corrupt weights", "corrupt config"],
)
def test_a_missing_or_corrupt_component_folder_is_a_clear_error(ner_pipeline, tmp_path, damage, message):
    copy = shutil.copytree(ner_pipeline, tmp_path / "pipeline")
    damage(copy / "structkd_ner")
    with pytest.raises(ArchiveError, match=f"{tmp_path}/pipeline/{message}"):
        spacy.load(copy)


def test_a_component_without_a_model_or_with_the_wrong_one(parser_archive):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("structkd_ner")
    with pytest.raises(ValueError, match="'structkd_ner' has no model: add it with `structkd export-spacy`"):
        nlp("Hello")
    with pytest.raises(ValueError, match="'structkd_ner' cannot run this model: it is a BiaffineParser"):
        ner.use(load_archive(parser_archive))
