"""Integration tests of the readers on the real treebanks and NER data of `../shared/data`.

The expected numbers are those of the table in `../shared/data/README.md`. The whole module is
skipped when the data folder is absent (it is not part of the repository).
"""

import logging
from pathlib import Path

import pytest

from structkd_plugin.data import UniversalDependenciesDatasetReader, UniversalNerDatasetReader, Vocabulary

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no shared data at {SHARED_DATA}")

# file: (sentences, tokens, entities per type, BIO violations), from the README.
UNIVERSAL_NER_FILES = {
    "UNER_Chinese-GSDSIMP/zh_gsdsimp-ud-dev.iob2": (500, 12663, {"LOC": 375, "ORG": 133, "PER": 245}, 0),
    "UNER_Croatian-SET/hr_set-ud-dev.iob2": (960, 22292, {"LOC": 395, "ORG": 424, "OTH": 154, "PER": 400}, 1),
    "UNER_Croatian-SET/hr_set-ud-test.iob2": (1136, 24260, {"LOC": 597, "ORG": 414, "OTH": 133, "PER": 392}, 0),
    "UNER_Danish-DDT/da_ddt-ud-dev.iob2": (564, 10332, {"LOC": 107, "ORG": 106, "PER": 166}, 0),
    "UNER_Danish-DDT/da_ddt-ud-test.iob2": (565, 10023, {"LOC": 90, "ORG": 172, "PER": 185}, 1),
    "UNER_Danish-DDT/da_ddt-ud-train.iob2": (4383, 80378, {"LOC": 882, "ORG": 909, "PER": 1237}, 6),
    "UNER_English-EWT/en_ewt-ud-dev.iob2": (2001, 25149, {"LOC": 399, "ORG": 224, "PER": 343}, 0),
    "UNER_English-EWT/en_ewt-ud-test.iob2": (2077, 25097, {"LOC": 317, "ORG": 322, "PER": 449}, 0),
    "UNER_Portuguese-Bosque/pt_bosque-ud-test.iob2": (1167, 27604, {"LOC": 317, "ORG": 456, "PER": 442}, 0),
}

# file: (sentences, words, non-projective trees), from the README. (The training file takes a few
# seconds to parse, so it is left to the benchmarks.)
TREEBANK_FILES = {
    "UD_English-EWT/en_ewt-ud-dev.conllu": (2001, 25147, 31),
    "UD_English-EWT/en_ewt-ud-test.conllu": (2077, 25094, 26),
}


@pytest.mark.parametrize("name", sorted(UNIVERSAL_NER_FILES))
def test_universal_ner_files_match_the_readme(name, caplog):
    sentences, tokens, entities, violations = UNIVERSAL_NER_FILES[name]
    with caplog.at_level(logging.WARNING, logger="structkd_plugin.data"):
        instances = list(UniversalNerDatasetReader().read(SHARED_DATA / name))
    assert len(instances) == sentences
    assert sum(len(instance["words"]) for instance in instances) == tokens
    # Once repaired, every entity starts with exactly one B- tag.
    found = {}
    for instance in instances:
        for tag in instance["tags"]:
            if tag.startswith("B-"):
                found[tag[2:]] = found.get(tag[2:], 0) + 1
    assert found == entities
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    if violations:
        assert len(warnings) == 1 and f" {violations} tag(s) break the BIO scheme" in warnings[0]
    else:
        assert warnings == []


def test_danish_repairs_point_at_i_tags_that_start_an_entity(caplog):
    path = SHARED_DATA / "UNER_Danish-DDT/da_ddt-ud-train.iob2"
    with caplog.at_level(logging.WARNING, logger="structkd_plugin.data"):
        for _ in UniversalNerDatasetReader().read(path):
            pass
    (message,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert " 6 tag(s) break the BIO scheme" in message
    locations = message.split("first repaired tags at ")[1].split(", ")
    line_numbers = [int(location.rsplit(":", 1)[1]) for location in locations]
    assert len(line_numbers) == 5
    lines = path.read_text(encoding="utf-8").split("\n")
    for line_number in line_numbers:
        tag = lines[line_number - 1].split("\t")[2]
        previous = lines[line_number - 2].split("\t")
        previous_tag = previous[2] if len(previous) == 5 else "O"
        assert tag.startswith("I-") and previous_tag[2:] != tag[2:]


@pytest.mark.parametrize("name", sorted(TREEBANK_FILES))
def test_treebanks_match_the_readme(name):
    sentences, words, non_projective = TREEBANK_FILES[name]
    instances = list(UniversalDependenciesDatasetReader().read(SHARED_DATA / name))
    assert len(instances) == sentences
    # Multiword-token ranges and empty nodes are not words.
    assert sum(len(instance["words"]) for instance in instances) == words
    assert sum(has_crossing_arcs(instance["heads"]) for instance in instances) == non_projective
    for instance in instances:
        assert instance["heads"].count(0) == 1
        assert all(len(instance[key]) == len(instance["words"]) for key in ("upos", "xpos", "deprels"))


def test_vocabulary_of_a_real_treebank_round_trips(tmp_path):
    reader = UniversalDependenciesDatasetReader(max_instances=500)
    instances = reader.read(SHARED_DATA / "UD_English-EWT/en_ewt-ud-dev.conllu")
    vocabulary = Vocabulary.from_instances(instances, min_count={"tokens": 2})
    assert vocabulary.get_vocab_size("upos") == 17
    vocabulary.save_to_files(tmp_path)
    loaded = Vocabulary.from_files(tmp_path)
    for namespace in vocabulary.get_namespaces():
        assert loaded.get_index_to_token_vocabulary(namespace) == vocabulary.get_index_to_token_vocabulary(namespace)


def has_crossing_arcs(heads: list[int]) -> bool:
    """Whether two arcs of the tree cross (the root is word 0, left of the sentence)."""
    arcs = [(min(head, dependent), max(head, dependent)) for dependent, head in enumerate(heads, start=1)]
    return any(left < other_left < right < other_right for left, right in arcs for other_left, other_right in arcs)
