import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing
from hypothesis import given, settings
from hypothesis import strategies as st

from structkd_plugin.models.metrics import AttachmentScores, SpanF1, TokenAccuracy, universal_relation_classes


def scores(predictions, gold, scheme="BIO"):
    metric = SpanF1(scheme)
    metric(predictions, gold)
    return metric.get_metric()


def prf(precision, recall, f1, label="overall"):
    return {f"precision-{label}": precision, f"recall-{label}": recall, f"f1-measure-{label}": f1}


def test_an_i_tag_after_o_starts_a_chunk():
    # predicted: PER(1-1), LOC(3-3); gold: PER(0-1), LOC(3-3)
    result = scores([["O", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]])
    assert result == {**prf(1.0, 1.0, 1.0, "LOC"), **prf(0.0, 0.0, 0.0, "PER"), **prf(0.5, 0.5, 0.5)}


def test_a_type_change_starts_a_chunk():
    # B-PER I-LOC I-LOC reads as PER(0-0) LOC(1-2), which is exactly the gold.
    result = scores([["B-PER", "I-LOC", "I-LOC"]], [["B-PER", "B-LOC", "I-LOC"]])
    assert result == {**prf(1.0, 1.0, 1.0, "LOC"), **prf(1.0, 1.0, 1.0, "PER"), **prf(1.0, 1.0, 1.0)}


def test_iob1():
    # gold PER(0-1) PER(2-2) LOC(4-4); predicted PER(0-2) LOC(4-4)
    result = scores([["I-PER", "I-PER", "I-PER", "O", "I-LOC"]], [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], "IOB1")
    assert result == pytest.approx({**prf(1.0, 1.0, 1.0, "LOC"), **prf(0.0, 0.0, 0.0, "PER"), **prf(1 / 2, 1 / 3, 0.4)})


def test_bioes():
    # gold PER(0-0) ORG(2-4); predicted PER(0-0) ORG(2-3) ORG(4-4)
    result = scores([["S-PER", "O", "B-ORG", "E-ORG", "S-ORG"]], [["S-PER", "O", "B-ORG", "I-ORG", "E-ORG"]], "BIOES")
    assert result == pytest.approx({**prf(0.0, 0.0, 0.0, "ORG"), **prf(1.0, 1.0, 1.0, "PER"), **prf(1 / 3, 1 / 2, 0.4)})


def test_bioes_sequences_that_break_the_scheme_are_read_like_conlleval():
    # O I-PER E-PER: the I- after O starts the chunk, PER(1-2).
    assert scores([["O", "I-PER", "E-PER"]], [["O", "B-PER", "E-PER"]], "BIOES")["f1-measure-overall"] == 1.0
    # B-PER O: the chunk ends at the O, PER(0-0).
    assert scores([["B-PER", "O"]], [["S-PER", "O"]], "BIOES")["f1-measure-overall"] == 1.0


def test_partial_matches_are_wrong():
    result = scores([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "I-PER"]])
    assert result == {**prf(0.0, 0.0, 0.0, "PER"), **prf(0.0, 0.0, 0.0)}
    result = scores([["B-LOC", "I-LOC", "I-LOC"]], [["B-PER", "I-PER", "I-PER"]])
    assert result == {**prf(0.0, 0.0, 0.0, "LOC"), **prf(0.0, 0.0, 0.0, "PER"), **prf(0.0, 0.0, 0.0)}


def test_empty_predictions_and_no_data_score_zero():
    assert scores([["O", "O"]], [["B-PER", "O"]]) == {**prf(0.0, 0.0, 0.0, "PER"), **prf(0.0, 0.0, 0.0)}
    assert scores([["O"]], [["O"]]) == prf(0.0, 0.0, 0.0)
    assert SpanF1().get_metric() == prf(0.0, 0.0, 0.0)


def test_per_type_numbers_accumulate_over_batches_until_reset():
    metric = SpanF1("BIO")
    metric([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]])  # PER right, LOC wrong, ORG missed
    metric([["B-ORG"], ["B-PER", "I-PER"]], [["B-ORG"], ["B-PER", "B-PER"]])  # ORG right, PER wrong
    result = metric.get_metric(reset=True)
    assert result == pytest.approx(
        {
            **prf(0.0, 0.0, 0.0, "LOC"),
            **prf(1.0, 1 / 2, 2 / 3, "ORG"),
            **prf(1 / 2, 1 / 3, 0.4, "PER"),
            **prf(1 / 2, 2 / 5, 4 / 9),
        }
    )
    assert metric.get_metric() == prf(0.0, 0.0, 0.0)


def test_sentences_of_different_lengths_are_an_error():
    with pytest.raises(ValueError):
        SpanF1()([["O", "O"]], [["O"]])
    with pytest.raises(ValueError):
        SpanF1()([["O"]], [["O"], ["O"]])


def conlleval_chunks(tags):
    """The chunks (type, start, end) of conlleval.pl, with the usual S-/E- extension."""
    chunks, start = [], None
    previous_prefix, previous_type = "O", ""
    for position, tag in enumerate(tags + ["O"]):
        prefix, _, type_ = tag.partition("-")
        ends = (
            previous_prefix in ("E", "S")
            or (previous_prefix in ("B", "I") and prefix in ("B", "S", "O"))
            or (previous_prefix != "O" and previous_type != type_)
        )
        starts = (
            prefix in ("B", "S")
            or (previous_prefix in ("E", "S", "O") and prefix in ("I", "E"))
            or (prefix != "O" and previous_type != type_)
        )
        if ends and start is not None:
            chunks.append((previous_type, start, position - 1))
            start = None
        if starts:
            start = position
        previous_prefix, previous_type = prefix, type_
    return chunks


def conlleval_scores(predictions, gold):
    found, correct, right = {}, {}, {}
    for predicted_tags, gold_tags in zip(predictions, gold):
        predicted_chunks, gold_chunks = set(conlleval_chunks(predicted_tags)), set(conlleval_chunks(gold_tags))
        for counts, chunks in ((found, predicted_chunks), (correct, gold_chunks), (right, predicted_chunks & gold_chunks)):
            for type_, _, _ in chunks:
                counts[type_] = counts.get(type_, 0) + 1
    result = {}
    for label in sorted({*found, *correct}) + ["overall"]:
        if label == "overall":
            n_found, n_correct, n_right = sum(found.values()), sum(correct.values()), sum(right.values())
        else:
            n_found, n_correct, n_right = found.get(label, 0), correct.get(label, 0), right.get(label, 0)
        precision = n_right / n_found if n_found else 0.0
        recall = n_right / n_correct if n_correct else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result.update(prf(precision, recall, f1, label))
    return result


def tag_sequences(prefixes):
    tag = st.sampled_from(["O"] + [f"{prefix}-{type_}" for prefix in prefixes for type_ in ("PER", "LOC")])
    return st.lists(st.lists(tag, min_size=1, max_size=7), min_size=1, max_size=4)


@st.composite
def prediction_and_gold(draw, prefixes):
    gold = draw(tag_sequences(prefixes))
    tag = st.sampled_from(["O"] + [f"{prefix}-{type_}" for prefix in prefixes for type_ in ("PER", "LOC")])
    predictions = [draw(st.lists(tag, min_size=len(tags), max_size=len(tags))) for tags in gold]
    return predictions, gold


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_any_bio_or_iob1_sequences_score_as_conlleval(data):
    scheme = data.draw(st.sampled_from(["BIO", "IOB1"]))
    predictions, gold = data.draw(prediction_and_gold(("B", "I")))
    assert scores(predictions, gold, scheme) == pytest.approx(conlleval_scores(predictions, gold))


@st.composite
def bioes_sequence(draw, length):
    """A well-formed BIOES sequence of `length` tags: O tags and random spans."""
    tags = []
    while len(tags) < length:
        span_length = draw(st.integers(0, min(3, length - len(tags))))
        type_ = draw(st.sampled_from(["PER", "LOC"]))
        if span_length == 0:
            tags.append("O")
        elif span_length == 1:
            tags.append(f"S-{type_}")
        else:
            tags += [f"B-{type_}"] + [f"I-{type_}"] * (span_length - 2) + [f"E-{type_}"]
    return tags


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_well_formed_bioes_sequences_score_as_conlleval(data):
    lengths = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    gold = [data.draw(bioes_sequence(length)) for length in lengths]
    predictions = [data.draw(bioes_sequence(length)) for length in lengths]
    assert scores(predictions, gold, "BIOES") == pytest.approx(conlleval_scores(predictions, gold))


def test_state_and_merge_add_counts():
    batches = [
        ([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]]),
        ([["B-ORG"], ["B-PER", "I-PER"]], [["B-ORG"], ["B-PER", "B-PER"]]),
    ]
    whole, first, second = SpanF1(), SpanF1(), SpanF1()
    for predictions, gold in batches:
        whole(predictions, gold)
    first(*batches[0])
    second(*batches[1])
    first.merge([second.state()])
    assert first.get_metric() == whole.get_metric()
    assert second.get_metric() == scores(*batches[1])

    accuracy, other = TokenAccuracy(), TokenAccuracy()
    accuracy(torch.tensor([1, 2]), torch.tensor([1, 3]))
    other(torch.tensor([4]), torch.tensor([4]))
    accuracy.merge([other.state(), other.state()])
    assert accuracy.get_metric() == {"accuracy": 3 / 4}


def test_token_accuracy_counts_masked_tokens_only():
    metric = TokenAccuracy()
    assert metric.get_metric() == {"accuracy": 0.0}
    predictions = torch.tensor([[1, 2, 3], [4, 5, 6]])
    gold = torch.tensor([[1, 0, 3], [4, 5, 6]])  # the masked tokens would be right
    mask = torch.tensor([[True, True, True], [True, False, False]])
    metric(predictions, gold, mask)
    assert metric.get_metric() == {"accuracy": 3 / 4}
    metric(torch.tensor([[7]]), torch.tensor([[8]]))
    assert metric.get_metric(reset=True) == {"accuracy": 3 / 5}
    assert metric.get_metric() == {"accuracy": 0.0}
    with pytest.raises(ValueError):
        metric(torch.tensor([[1, 2]]), torch.tensor([1, 2]))


def distributed_worker(rank, directory):
    dist.init_process_group("gloo", init_method=f"file://{directory}/init", rank=rank, world_size=2)
    try:
        span_f1, accuracy = SpanF1(), TokenAccuracy()
        if rank == 0:
            span_f1([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]])
            accuracy(torch.tensor([1, 2]), torch.tensor([1, 3]))
        else:
            span_f1([["B-ORG"], ["B-PER", "I-PER"]], [["B-ORG"], ["B-PER", "B-PER"]])
            accuracy(torch.tensor([4]), torch.tensor([4]))
        result = {**span_f1.get_metric(reset=True), **accuracy.get_metric(reset=True)}
        (directory / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_distributed_get_metric_scores_the_counts_of_all_processes(tmp_path):
    torch.multiprocessing.start_processes(distributed_worker, args=(tmp_path,), nprocs=2, start_method="fork")
    expected = SpanF1()
    expected([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]])
    expected([["B-ORG"], ["B-PER", "I-PER"]], [["B-ORG"], ["B-PER", "B-PER"]])
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {**expected.get_metric(), "accuracy": 2 / 3}


def test_attachment_scores_hand_computed():
    # Sentence 1 (3 words): heads right for words 1 and 3, relation wrong on word 3.
    # Sentence 2 (2 words, third position padding): all right.
    gold_heads = torch.tensor([[2, 0, 2], [0, 1, 0]])
    gold_relations = torch.tensor([[1, 2, 3], [2, 1, 0]])
    predicted_heads = torch.tensor([[2, 3, 2], [0, 1, 3]])
    predicted_relations = torch.tensor([[1, 2, 1], [2, 1, 5]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    punctuation = torch.tensor([[False, True, False], [False, False, False]])

    metric = AttachmentScores()
    metric(predicted_heads, predicted_relations, gold_heads, gold_relations, mask)
    assert metric.get_metric() == pytest.approx({"UAS": 4 / 5, "LAS": 3 / 5, "LAS_full": 3 / 5, "UEM": 1 / 2, "LEM": 1 / 2})

    without_punctuation = AttachmentScores(exclude_punctuation=True)
    without_punctuation(predicted_heads, predicted_relations, gold_heads, gold_relations, mask, punctuation)
    # Word 2 of sentence 1 (the wrong head) is punctuation: sentence 1 is now unlabeled-exact.
    assert without_punctuation.get_metric(reset=True) == pytest.approx({"UAS": 1.0, "LAS": 3 / 4, "LAS_full": 3 / 4, "UEM": 1.0, "LEM": 1 / 2})
    assert without_punctuation.get_metric() == {"UAS": 0.0, "LAS": 0.0, "LAS_full": 0.0, "UEM": 0.0, "LEM": 0.0}
    with pytest.raises(ValueError, match="punctuation mask"):
        without_punctuation(predicted_heads, predicted_relations, gold_heads, gold_relations, mask)


def test_las_compares_universal_relations_as_the_conll_2018_scorer():
    # A file whose gold says aux:pass and nmod:poss where the parser says aux and nmod: the
    # CoNLL 2018 scorer counts both right (it strips the subtypes); LAS_full does not.
    relations = ["root", "nsubj", "aux", "aux:pass", "nmod", "nmod:poss", "nsubj:pass"]
    assert universal_relation_classes(relations) == [0, 1, 2, 2, 3, 3, 1]
    index = {relation: i for i, relation in enumerate(relations)}
    gold = [["nsubj:pass", "aux:pass", "root", "nmod:poss"]]
    predicted = [["nsubj", "aux", "root", "nmod:poss"]]
    heads = torch.tensor([[3, 3, 0, 3]])
    metric = AttachmentScores(relation_classes=universal_relation_classes(relations))
    metric(heads, torch.tensor([[index[r] for r in predicted[0]]]), heads, torch.tensor([[index[r] for r in gold[0]]]), torch.ones(1, 4, dtype=torch.bool))
    scores = metric.get_metric()
    assert scores["LAS"] == 1.0 and scores["LEM"] == 1.0
    assert scores["LAS_full"] == 2 / 4
    # A gold relation the model does not know (-1) is never right.
    metric(heads, torch.tensor([[0, 0, 0, 0]]), heads, torch.tensor([[-1, 0, 0, 0]]), torch.ones(1, 4, dtype=torch.bool))
    assert metric.get_metric()["LAS"] == (4 + 3) / 8
