"""Dependency trees as one label per word: round trips, the batched head mapping, tree decoding."""

import math
import random
from pathlib import Path

import pytest
import torch

from structkd_plugin.data import DataError, UniversalDependenciesDatasetReader, pad_sequences
from structkd_plugin.structures.dependency_encodings import (
    ENCODINGS,
    DependencyLabelSet,
    decode_labels,
    decode_tree,
    encode_tree,
    tree_arc_scores,
)
from tests.structures.tree_enumeration import all_trees, tree_scores

ROOT_DIR = Path(__file__).resolve().parents[2]
TREEBANK = ROOT_DIR / "fixtures" / "universal_dependencies.conllu"
EWT = ROOT_DIR.parent / "shared" / "data" / "UD_English-EWT"


def fixture_trees():
    return list(UniversalDependenciesDatasetReader().read(TREEBANK))


def test_the_label_formats():
    # The cat sleeps . -- and "sleeps" pointing at the second NOUN to its left.
    upos = ["DET", "NOUN", "VERB", "PUNCT"]
    heads, deprels = [2, 3, 0, 3], ["det", "nsubj", "root", "punct"]
    assert encode_tree(heads, deprels, "rel_offset") == ["+1|det", "+1|nsubj", "ROOT|root", "-1|punct"]
    assert encode_tree(heads, deprels, "rel_pos", upos) == ["+1@NOUN|det", "+1@VERB|nsubj", "ROOT|root", "-1@VERB|punct"]
    upos = ["NOUN", "NOUN", "ADP", "NOUN", "VERB", "NOUN"]
    assert encode_tree([5, 0, 2, 6, 2, 5], ["x"] * 6, "rel_pos", upos) == [
        "+1@VERB|x", "ROOT|x", "-1@NOUN|x", "+1@NOUN|x", "-2@NOUN|x", "-1@VERB|x",
    ]  # fmt: skip
    assert decode_labels(["+2@NOUN|x", "ROOT|y", "-1@VERB|z"], "rel_pos", ["ADJ", "VERB", "NOUN"]) == (
        [-1, 0, 2],
        ["x", "y", "z"],
    )
    assert decode_labels(["+1|a", "ROOT|b", "+1|c"], "rel_offset") == ([2, 0, -1], ["a", "b", "c"])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_on_the_fixture_trees(encoding):
    for tree in fixture_trees():
        labels = encode_tree(tree["heads"], tree["deprels"], encoding, tree["upos"])
        assert decode_labels(labels, encoding, tree["upos"]) == (tree["heads"], tree["deprels"])


@pytest.mark.skipif(not EWT.is_dir(), reason=f"no treebank at {EWT}")
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_on_the_english_treebank(encoding):
    trees = list(UniversalDependenciesDatasetReader().read(EWT / "en_ewt-ud-dev.conllu"))
    for tree in trees:
        labels = encode_tree(tree["heads"], tree["deprels"], encoding, tree["upos"])
        assert decode_labels(labels, encoding, tree["upos"]) == (tree["heads"], tree["deprels"])


def test_labels_of_another_encoding_are_refused():
    with pytest.raises(ValueError, match="not a label of the rel_pos encoding"):
        DependencyLabelSet(["+1|det"], "rel_pos")
    with pytest.raises(ValueError, match="not a label of the rel_offset encoding"):
        DependencyLabelSet(["+1@NOUN|det"], "rel_offset")
    with pytest.raises(ValueError, match="not a label"):
        DependencyLabelSet(["0|det"], "rel_offset")
    with pytest.raises(ValueError, match="unknown dependency encoding"):
        DependencyLabelSet([], "absolute")


def reference_head(label, word, upos):
    """Where a label leads from a word, by walking the sentence (-1: nowhere)."""
    where = label.split("|")[0]
    if where == "ROOT":
        return 0
    if "@" not in where:
        head = word + int(where)
        return head if 1 <= head <= len(upos) else -1
    distance, tag = where.split("@")
    step, remaining, position = (1 if distance[0] == "+" else -1), int(distance[1:]), word
    while remaining:
        position += step
        if not 1 <= position <= len(upos):
            return -1
        remaining -= upos[position - 1] == tag
    return position


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_label_heads_of_a_batch_agree_with_decoding_each_word(encoding):
    """Entry [b, i, l] is where label l leads from word i + 1 in sentence b, -1 if nowhere."""
    trees = fixture_trees()
    labels = sorted({label for t in trees for label in encode_tree(t["heads"], t["deprels"], encoding, t["upos"])})
    label_set = DependencyLabelSet(labels, encoding)
    _, mask = pad_sequences([[1] * len(t["words"]) for t in trees], 0)
    upos = label_set.upos_ids([t["upos"] for t in trees])
    heads = label_set.label_heads(mask, upos)
    assert heads.shape == (len(trees), mask.size(1), len(labels))
    for b, tree in enumerate(trees):
        length = len(tree["words"])
        for i in range(length):
            for l, label in enumerate(labels):
                assert heads[b, i, l] == reference_head(label, i + 1, tree["upos"])
        assert (heads[b, length:] == -1).all()
        gold = label_set.labels
        gold_ids = [gold.index(x) for x in encode_tree(tree["heads"], tree["deprels"], encoding, tree["upos"])]
        assert heads[b, torch.arange(length), gold_ids].tolist() == tree["heads"]


def test_rel_pos_heads_of_tags_no_label_names():
    label_set = DependencyLabelSet(["ROOT|root", "+1@NOUN|det", "-1@NOUN|amod"], "rel_pos")
    mask = torch.tensor([[True, True, True]])
    heads = label_set.label_heads(mask, label_set.upos_ids([["X", "NOUN", "INTJ"]]))
    assert heads[0].tolist() == [[0, 2, -1], [0, -1, -1], [0, -1, 2]]


def random_label_problem(seed, encoding, lengths=(1, 2, 5, 7, 9)):
    """Random fixture-like sentences with random UPOS, the label set of their random trees plus
    other labels, and random label scores."""
    rng = random.Random(seed)
    tags = ["NOUN", "VERB", "DET"]
    sentences = []
    for length in lengths:
        upos = [rng.choice(tags) for _ in range(length)]
        order = list(range(1, length + 1))
        rng.shuffle(order)
        heads = [0] * length
        for position, word in enumerate(order[1:], start=1):
            heads[word - 1] = rng.choice(order[:position])
        sentences.append((upos, heads))
    labels = {"ROOT|root", "+1|a" if encoding == "rel_offset" else "+1@NOUN|a"}
    for upos, heads in sentences:
        for relation in "ab":
            labels.update(encode_tree(heads, [relation] * len(heads), encoding, upos))
    labels = sorted(labels)
    label_set = DependencyLabelSet(labels, encoding)
    _, mask = pad_sequences([[1] * len(upos) for upos, _ in sentences], 0)
    label_heads = label_set.label_heads(mask.bool(), label_set.upos_ids([upos for upos, _ in sentences]))
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(len(sentences), mask.size(1), len(labels), generator=generator, dtype=torch.float64)
    return label_set, sentences, mask.bool(), label_heads, scores


def decode(label_set, scores, mask, sentences=None):
    upos_ids = label_set.upos_ids([upos for upos, _ in sentences]) if label_set.encoding == "rel_pos" else None
    return decode_tree(scores, label_set, mask, upos_ids)


def assert_single_root_trees(heads, mask):
    for row, length in zip(heads.tolist(), mask.sum(-1).tolist()):
        row = row[:length]
        assert row.count(0) == 1
        assert all(0 <= h <= length for h in row)
        for word in range(1, length + 1):
            seen, node = set(), word
            while node != 0:  # every word reaches the root without a cycle
                assert node not in seen
                seen.add(node)
                node = row[node - 1]
    assert (heads[~mask] == 0).all()


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("seed", range(6))
def test_decoding_random_scores_gives_single_root_trees(encoding, seed):
    label_set, sentences, mask, label_heads, scores = random_label_problem(seed, encoding)
    # Some labels forbidden too: arcs without any label must still leave a tree.
    scores[torch.rand(scores.shape, generator=torch.Generator().manual_seed(seed)) < 0.5] = -math.inf
    heads, labels = decode(label_set, scores, mask, sentences)
    assert_single_root_trees(heads, mask)
    chosen = label_heads.gather(2, labels[:, :, None]).squeeze(2)
    assert ((chosen == heads) | ~mask).float().mean() > 0.5  # most arcs come from their label


def gold_labels_of(label_set, sentences, mask, encoding):
    gold_heads = torch.zeros_like(mask, dtype=torch.long)
    gold_labels = torch.zeros_like(gold_heads)
    for b, (upos, heads) in enumerate(sentences):
        labels = encode_tree(heads, ["a"] * len(heads), encoding, upos)
        gold_labels[b, : len(heads)] = torch.tensor([label_set.labels.index(x) for x in labels])
        gold_heads[b, : len(heads)] = torch.tensor(heads)
    return gold_heads, gold_labels


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("seed", range(4))
def test_decoding_finds_the_gold_tree_when_the_scores_favour_it(encoding, seed):
    label_set, sentences, mask, label_heads, scores = random_label_problem(seed, encoding)
    gold_heads, gold_labels = gold_labels_of(label_set, sentences, mask, encoding)
    scores.scatter_(2, gold_labels[:, :, None], 10.0)
    heads, labels = decode(label_set, scores.log_softmax(-1), mask, sentences)
    assert torch.equal(heads, gold_heads)
    assert torch.equal(labels, gold_labels)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("seed", range(8))
def test_when_the_best_labels_form_a_tree_decoding_returns_it(encoding, seed):
    """However small the margin: each word's best arc is then in the maximum tree."""
    label_set, sentences, mask, label_heads, scores = random_label_problem(seed, encoding)
    gold_heads, gold_labels = gold_labels_of(label_set, sentences, mask, encoding)
    scores.scatter_(2, gold_labels[:, :, None], scores.amax(-1, keepdim=True) + 1e-3)
    heads, labels = decode(label_set, scores, mask, sentences)
    assert torch.equal(heads, gold_heads)
    assert torch.equal(labels, gold_labels)
    assert torch.equal(labels, scores.argmax(-1).masked_fill(~mask, 0))


def test_arc_scores_are_the_best_label_score_per_head():
    label_set = DependencyLabelSet(["ROOT|root", "+1|a", "+1|b", "-1|a"], "rel_offset")
    mask = torch.tensor([[True, True]])
    label_heads = label_set.label_heads(mask)
    scores = torch.tensor([[[0.5, 2.0, 3.0, 9.0], [1.0, 7.0, 7.0, -math.inf]]])
    arcs = tree_arc_scores(scores, label_heads, mask)
    assert arcs[0, 0, 1] == 0.5 and arcs[0, 2, 1] == 3.0  # +1|b beats +1|a; -1 leads nowhere
    assert arcs[0, 0, 2] == 1.0
    # No label scores 1 -> 2 (-1|a is forbidden there): floor = 0.5 - 3 * (3 - 0.5) - 1.
    assert arcs[0, 1, 2] == 0.5 - 3 * 2.5 - 1
    heads, labels = decode(label_set, scores, mask)
    assert heads.tolist() == [[2, 0]] and labels.tolist() == [[2, 0]]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("seed", range(6))
def test_decoding_finds_the_best_tree_and_labels_by_enumeration(encoding, seed):
    """The tree maximizes the sum, over its arcs, of the best score of a label pointing along
    the arc (arcs from ``tree_arc_scores`` over all labels); each word's label is the best one
    pointing to its head, or its best overall when none does."""
    label_set, sentences, mask, label_heads, scores = random_label_problem(seed, encoding, lengths=(1, 2, 4, 5))
    scores[torch.rand(scores.shape, generator=torch.Generator().manual_seed(seed)) < 0.3] = -math.inf
    heads, labels = decode(label_set, scores, mask, sentences)
    arcs = tree_arc_scores(scores, label_heads, mask)
    for b, length in enumerate(mask.sum(-1).tolist()):
        trees = all_trees(length, single_root=True)
        decoded = torch.cat([torch.zeros(1, dtype=torch.long), heads[b, :length]])
        assert tree_scores(arcs[b], decoded[None]).item() == pytest.approx(tree_scores(arcs[b], trees).max().item())
        for word in range(length):
            pointing = (label_heads[b, word] == heads[b, word]) & (scores[b, word] > -math.inf)
            candidates = scores[b, word].masked_fill(~pointing, -math.inf) if pointing.any() else scores[b, word]
            assert labels[b, word] == candidates.argmax()


def test_the_reader_writes_the_encoded_trees_as_tags(tmp_path):
    for encoding in ENCODINGS:
        for tree in UniversalDependenciesDatasetReader(tag_label=encoding).read(TREEBANK):
            assert tree["tags"] == encode_tree(tree["heads"], tree["deprels"], encoding, tree["upos"])
    no_upos = tmp_path / "no_upos.conllu"
    no_upos.write_text("1\tHi\thi\t_\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    assert list(UniversalDependenciesDatasetReader(tag_label="rel_offset").read(no_upos))[0]["tags"] == ["ROOT|root"]
    with pytest.raises(DataError, match="no_upos.conllu:1: the rel_pos encoding"):
        list(UniversalDependenciesDatasetReader(tag_label="rel_pos").read(no_upos))
