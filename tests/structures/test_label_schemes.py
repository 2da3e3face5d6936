"""Tag schemes: span reading and writing, well-formedness, and conversion of marginals."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structkd_plugin.structures.label_schemes import (
    allowed_transitions_matrix,
    convert_pairwise_marginals,
    convert_tags,
    convert_unary_marginals,
    count_scheme_violations,
    marginal_conversion_matrix,
    scheme_tag_set,
    spans_from_tags,
    tags_from_spans,
)
from structkd_plugin.structures.linear_chain_crf import LinearChainCRF

SCHEMES = ["BIO", "IOB1", "BIOES"]


# ---------------------------------------------------------------------------------------------
# Well-formed sequences: writing and reading back


def test_example_sentence_in_every_scheme():
    # John lives in New York City , Paris London
    spans = [("PER", 0, 0), ("LOC", 3, 5), ("LOC", 7, 7), ("LOC", 8, 8)]
    expected = {
        "BIO": ["B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-LOC", "B-LOC"],
        "IOB1": ["I-PER", "O", "O", "I-LOC", "I-LOC", "I-LOC", "O", "I-LOC", "B-LOC"],
        "BIOES": ["S-PER", "O", "O", "B-LOC", "I-LOC", "E-LOC", "O", "S-LOC", "S-LOC"],
    }
    for scheme, tags in expected.items():
        assert tags_from_spans(spans, 9, scheme) == tags
        assert spans_from_tags(tags, scheme) == spans
        assert count_scheme_violations(tags, scheme) == 0
        for target, target_tags in expected.items():
            assert convert_tags(tags, scheme, target) == target_tags
    assert tags_from_spans(spans, 9, "IOB2") == expected["BIO"]
    assert tags_from_spans(spans, 9, "iobes") == expected["BIOES"]


@st.composite
def span_sets(draw):
    """Non-overlapping spans over a short sentence, adjacent same-type spans included."""
    spans, position = [], 0
    for gap, width, entity_type in draw(st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 3), st.sampled_from(["PER", "LOC", "WORK-OF-ART"])),
        max_size=4,
    )):
        start = position + gap
        spans.append((entity_type, start, start + width - 1))
        position = start + width
    return spans, position + draw(st.integers(0, 2))


@settings(max_examples=50, deadline=None)
@given(span_sets())
def test_round_trips_on_well_formed_sequences(spans_and_length):
    spans, length = spans_and_length
    tags = {scheme: tags_from_spans(spans, length, scheme) for scheme in SCHEMES}
    for scheme in SCHEMES:
        assert len(tags[scheme]) == length
        assert spans_from_tags(tags[scheme], scheme) == spans
        assert count_scheme_violations(tags[scheme], scheme) == 0
        for target in SCHEMES:
            converted = convert_tags(tags[scheme], scheme, target)
            assert converted == tags[target]
            assert convert_tags(converted, target, scheme) == tags[scheme]


# ---------------------------------------------------------------------------------------------
# Ill-formed input: the conlleval repair rule


@pytest.mark.parametrize(
    "scheme, tags, spans",
    [
        # BIO: I- after O or after another type opens a span; B- always opens one.
        ("BIO", ["O", "I-PER", "I-PER", "B-PER", "I-LOC", "O"], [("PER", 1, 2), ("PER", 3, 3), ("LOC", 4, 4)]),
        ("BIO", ["I-PER"], [("PER", 0, 0)]),
        ("BIO", ["B-PER", "I-LOC", "I-PER"], [("PER", 0, 0), ("LOC", 1, 1), ("PER", 2, 2)]),
        # IOB1 is read with the same rule.
        ("IOB1", ["I-PER", "I-PER", "B-PER", "O", "B-LOC", "I-ORG"],
         [("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 4), ("ORG", 5, 5)]),
        # BIOES: a B- without E- ends where the next tag does not continue it; I-/E- with no open
        # B-/I- of their type open a span; E- and S- close theirs.
        ("BIOES", ["B-PER", "O", "I-LOC", "E-LOC", "E-LOC", "S-ORG", "I-ORG", "B-MISC"],
         [("PER", 0, 0), ("LOC", 2, 3), ("LOC", 4, 4), ("ORG", 5, 5), ("ORG", 6, 6), ("MISC", 7, 7)]),
        ("BIOES", ["B-PER", "I-PER", "B-PER", "E-LOC", "I-LOC", "E-LOC"],
         [("PER", 0, 1), ("PER", 2, 2), ("LOC", 3, 3), ("LOC", 4, 5)]),
        ("BIOES", ["S-PER", "E-PER", "B-LOC", "S-LOC"],
         [("PER", 0, 0), ("PER", 1, 1), ("LOC", 2, 2), ("LOC", 3, 3)]),
        ("BIOES", [], []),
    ],
)
def test_conlleval_rule_on_ill_formed_input(scheme, tags, spans):
    assert spans_from_tags(tags, scheme) == spans


def test_convert_tags_repairs_ill_formed_input():
    assert convert_tags(["O", "I-PER", "I-PER", "I-LOC"], "BIO", "BIO") == ["O", "B-PER", "I-PER", "B-LOC"]
    assert convert_tags(["B-PER", "O", "I-LOC", "E-LOC", "E-LOC"], "BIOES", "BIOES") == [
        "S-PER", "O", "B-LOC", "E-LOC", "S-LOC"]


@pytest.mark.parametrize(
    "scheme, tags, violations",
    [
        ("BIO", ["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-MISC"], 3),
        ("BIO", ["B-PER", "I-PER", "O", "B-LOC"], 0),
        ("IOB1", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-LOC"], 2),
        ("IOB1", ["I-PER", "B-PER", "I-LOC"], 0),
        ("BIOES", ["B-PER", "O", "I-LOC", "E-LOC", "E-LOC", "S-ORG", "B-MISC"], 4),
        ("BIOES", ["B-PER"], 1),
        ("BIOES", ["B-PER", "I-PER", "E-PER", "S-LOC", "O"], 0),
        ("BIOES", ["B-PER", "E-LOC"], 1),
        ("BIOES", [], 0),
    ],
)
def test_count_scheme_violations(scheme, tags, violations):
    assert count_scheme_violations(tags, scheme) == violations


# ---------------------------------------------------------------------------------------------
# Tag sets and allowed transitions


def test_scheme_tag_set():
    assert scheme_tag_set(["PER", "LOC"], "BIO") == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert scheme_tag_set(["PER"], "IOB1") == ["O", "B-PER", "I-PER"]
    assert scheme_tag_set(["PER"], "BIOES") == ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert scheme_tag_set([], "BIO") == ["O"]
    with pytest.raises(ValueError):
        scheme_tag_set(["PER", "PER"], "BIO")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allowed_transitions_accept_exactly_the_well_formed_sequences(scheme):
    """Every sequence up to length 4 over two types: a sequence is well-formed when it is the
    canonical writing of its own spans; the matrix and the violation count must agree."""
    tags = scheme_tag_set(["X", "Y"], scheme)
    transitions, start, end = allowed_transitions_matrix(tags, scheme)
    assert transitions.dtype == start.dtype == end.dtype == torch.bool
    well_formed_count = 0
    for length in range(1, 5):
        for sequence in itertools.product(range(len(tags)), repeat=length):
            strings = [tags[index] for index in sequence]
            well_formed = tags_from_spans(spans_from_tags(strings, scheme), length, scheme) == strings
            accepted = bool(start[sequence[0]] and end[sequence[-1]]
                            and all(transitions[a, b] for a, b in zip(sequence, sequence[1:])))
            assert accepted == well_formed, strings
            assert (count_scheme_violations(strings, scheme) == 0) == well_formed, strings
            well_formed_count += well_formed
    assert well_formed_count > 0


# ---------------------------------------------------------------------------------------------
# Marginal conversion


def enumerated_converted_marginals(instance, source_tags, target_tags, source, target):
    """Enumerate every source sequence of every sentence, convert it with convert_tags and
    accumulate target unary and pairwise marginals (float64)."""
    emissions, transitions = instance["emissions"].double(), instance["transitions"].double()
    start, end, mask = instance["start"].double(), instance["end"].double(), instance["mask"]
    batch_size, length, _ = emissions.shape
    target_index = {tag: index for index, tag in enumerate(target_tags)}
    unary = torch.zeros(batch_size, length, len(target_tags), dtype=torch.float64)
    pairwise = torch.zeros(batch_size, length, len(target_tags), len(target_tags), dtype=torch.float64)
    for b in range(batch_size):
        size = int(mask[b].sum())
        sequences = torch.tensor(list(itertools.product(range(len(source_tags)), repeat=size)))
        scores = start[sequences[:, 0]] + end[sequences[:, -1]]
        scores = scores + emissions[b, torch.arange(size), sequences].sum(1)
        scores = scores + transitions[sequences[:, :-1], sequences[:, 1:]].sum(1)
        probabilities = torch.softmax(scores, 0)
        for sequence, probability in zip(sequences.tolist(), probabilities):
            if probability == 0:  # a forbidden BIOES sequence
                continue
            tags = convert_tags([source_tags[t] for t in sequence], source, target)
            converted = [target_index[tag] for tag in tags]
            for i, tag in enumerate(converted):
                unary[b, i, tag] += probability
                if i > 0:
                    pairwise[b, i, converted[i - 1], tag] += probability
    return unary, pairwise


def test_bioes_to_bio_marginals_match_enumeration():
    source_tags = scheme_tag_set(["X", "Y"], "BIOES")
    target_tags = scheme_tag_set(["Y", "X"], "BIO")[::-1]  # a different order than the source
    allowed, allowed_start, allowed_end = allowed_transitions_matrix(source_tags, "BIOES")
    generator = torch.Generator().manual_seed(0)
    lengths = [4, 3, 1]
    num_tags = len(source_tags)
    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    instance = dict(
        emissions=randn(3, 4, num_tags),
        transitions=randn(num_tags, num_tags).masked_fill(~allowed, float("-inf")),
        start=randn(num_tags).masked_fill(~allowed_start, float("-inf")),
        end=randn(num_tags).masked_fill(~allowed_end, float("-inf")),
        mask=torch.arange(4)[None, :] < torch.tensor(lengths)[:, None],
    )
    instance["emissions"].requires_grad_()
    crf = LinearChainCRF(instance["emissions"], instance["transitions"], instance["mask"],
                         start=instance["start"], end=instance["end"])
    conversion = marginal_conversion_matrix(source_tags, target_tags)
    assert conversion.shape == (num_tags, len(target_tags))
    assert (conversion.sum(1) == 1).all()
    unary = convert_unary_marginals(crf.unary_marginals(), conversion)
    pairwise = convert_pairwise_marginals(crf.pairwise_marginals(), conversion)

    expected_unary, expected_pairwise = enumerated_converted_marginals(
        instance, source_tags, target_tags, "BIOES", "BIO")
    torch.testing.assert_close(unary, expected_unary, atol=1e-10, rtol=0)
    torch.testing.assert_close(pairwise, expected_pairwise, atol=1e-10, rtol=0)
    # The conversion keeps autograd.
    objective = unary[:, :, 0].sum() + pairwise[:, :, 1, 2].sum()
    (gradient,) = torch.autograd.grad(objective, instance["emissions"])
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_conversion_matrix_entries():
    source = scheme_tag_set(["PER"], "BIOES")  # O B I E S
    target = scheme_tag_set(["PER"], "BIO")  # O B I
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0]], dtype=torch.float32)
    torch.testing.assert_close(marginal_conversion_matrix(source, target), expected)
    torch.testing.assert_close(marginal_conversion_matrix(source, source), torch.eye(5))
    torch.testing.assert_close(marginal_conversion_matrix(target, target[::-1]), torch.eye(3).flip(1))
    # Pure-function parts of IOB1 relations: the whole tag set converts when it only holds them.
    torch.testing.assert_close(
        marginal_conversion_matrix(["O", "B-PER"], target, source_scheme="IOB1"),
        torch.tensor([[1.0, 0, 0], [0, 1, 0]]),
    )
    torch.testing.assert_close(
        marginal_conversion_matrix(["O", "I-PER", "E-PER"], ["O", "I-PER"], target_scheme="IOB1"),
        torch.tensor([[1.0, 0], [0, 1], [0, 1]]),
    )


@pytest.mark.parametrize(
    "source_tags, target_tags, schemes, named",
    [
        # The entity type LOC is missing from the target.
        (scheme_tag_set(["PER", "LOC"], "BIOES"), scheme_tag_set(["PER"], "BIO"), {},
         ["B-LOC", "S-LOC", "E-LOC"]),
        # A BIO B- is a BIOES B- or S- depending on the next tag.
        (scheme_tag_set(["PER"], "BIO"), scheme_tag_set(["PER"], "BIOES"), {}, ["B-PER", "I-PER"]),
        # An IOB1 I- opens or continues a span depending on the previous tag.
        (scheme_tag_set(["PER"], "IOB1"), scheme_tag_set(["PER"], "BIO"), {"source_scheme": "IOB1"},
         ["I-PER"]),
        (scheme_tag_set(["PER"], "BIOES"), scheme_tag_set(["PER"], "IOB1"), {"target_scheme": "IOB1"},
         ["B-PER", "S-PER"]),
    ],
)
def test_conversion_matrix_names_unconvertible_tags(source_tags, target_tags, schemes, named):
    with pytest.raises(ValueError) as error:
        marginal_conversion_matrix(source_tags, target_tags, **schemes)
    for tag in named:
        assert tag in str(error.value)


def test_converters_are_differentiable():
    conversion = marginal_conversion_matrix(scheme_tag_set(["A"], "BIOES"), scheme_tag_set(["A"], "BIO"))
    unary = torch.rand(2, 3, 5, dtype=torch.float64, requires_grad=True)
    pairwise = torch.rand(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: convert_unary_marginals(p, conversion), [unary])
    assert torch.autograd.gradcheck(lambda p: convert_pairwise_marginals(p, conversion), [pairwise])
    converted = convert_pairwise_marginals(pairwise, conversion)
    assert converted.shape == (2, 3, 3, 3)
    torch.testing.assert_close(converted.sum((-1, -2)), pairwise.sum((-1, -2)))


# ---------------------------------------------------------------------------------------------
# Input errors


def test_input_errors():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        spans_from_tags(["O"], "BILOU")
    with pytest.raises(ValueError, match="E-PER"):
        spans_from_tags(["B-PER", "E-PER"], "BIO")
    with pytest.raises(ValueError, match="PER"):
        spans_from_tags(["PER"], "BIO")
    with pytest.raises(ValueError, match="B-"):
        count_scheme_violations(["B-"], "BIO")
    with pytest.raises(ValueError, match="overlaps"):
        tags_from_spans([("PER", 0, 2), ("LOC", 2, 3)], 4, "BIO")
    with pytest.raises(ValueError, match="does not fit"):
        tags_from_spans([("PER", 3, 4)], 4, "BIO")


def test_tags_that_are_not_spans_are_matched_by_name():
    from structkd_plugin.structures.label_schemes import same_name_matrix

    matrix = same_name_matrix(["NOUN", "VERB", "DET"], ["DET", "NOUN", "VERB", "ADJ"])
    assert matrix.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    with pytest.raises(ValueError, match="not in the target tag set: PRON"):
        same_name_matrix(["NOUN", "PRON"], ["NOUN"])
