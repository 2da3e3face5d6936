"""Bad input below the command line: the structure algorithms' mask contract, and the spaCy
components given what spaCy users feed them (blank tokens, docs without the annotation a model
reads)."""

import pytest
import spacy
import torch

from structkd_plugin.archival import load_archive
from structkd_plugin.structures import (
    LinearChainCRF,
    NonProjectiveTree,
    ProjectiveTree,
    SpanSegmentation,
    maximum_spanning_arborescence,
    second_order_mean_field,
)

NO_ROOT = torch.tensor([[False, True, True], [True, True, False]])
GAP_TREE = torch.tensor([[True, True, False, True]])
GAP = torch.tensor([[True, False, True]])
ARCS3 = torch.zeros(2, 3, 3)

STRUCTURE_CASES = {
    "nonprojective-tree-without-root": (lambda: NonProjectiveTree(ARCS3, NO_ROOT), "position 0 (the root)"),
    "projective-tree-without-root": (lambda: ProjectiveTree(ARCS3, NO_ROOT), "position 0 (the root)"),
    "mst-without-root": (lambda: maximum_spanning_arborescence(ARCS3, NO_ROOT), "position 0 (the root)"),
    "tree-with-a-gap-in-its-mask": (lambda: NonProjectiveTree(torch.zeros(1, 4, 4), GAP_TREE), "rows [0] have gaps"),
    "mean-field-without-root": (
        lambda: second_order_mean_field(ARCS3, torch.zeros(2, 3, 3, 3), torch.zeros(2, 3, 3, 3), NO_ROOT),
        "position 0 (the root)",
    ),
    "crf-with-a-gap-in-its-mask": (lambda: LinearChainCRF(torch.zeros(1, 3, 2), torch.zeros(2, 2), GAP), "rows [0] have gaps"),
    "span-segmentation-with-a-gap": (lambda: SpanSegmentation(torch.zeros(1, 3, 3, 2), GAP), "rows [0] have gaps"),
    "mask-of-the-wrong-rank": (lambda: LinearChainCRF(torch.zeros(1, 3, 2), torch.zeros(2, 2), GAP[0]), "mask must be"),
}


@pytest.mark.parametrize("name", sorted(STRUCTURE_CASES))
def test_structures_refuse_masks_that_break_their_contract(name):
    build, message = STRUCTURE_CASES[name]
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        build()


@pytest.mark.parametrize("blank", [" ", "\u200b", " \u200b", "\t\n"], ids=["space", "zero-width-space", "space+zwsp", "tab-newline"])
def test_the_ner_component_never_makes_a_blank_token_an_entity(blank, ner_archive):
    nlp = spacy.blank("en")
    component = nlp.add_pipe("structkd_ner")
    component.use(load_archive(ner_archive))
    doc = spacy.tokens.Doc(nlp.vocab, words=["Maria", blank, "Silva", "and", blank])
    # Whatever the model says, entities neither start nor end on a blank token, and one of
    # blanks alone is no entity.
    component.annotate(doc, [(0, {"tags": ["B-PER", "I-PER", "I-PER", "O", "B-PER"]})])
    assert [([token.text for token in entity], entity.label_) for entity in doc.ents] == [(["Maria", blank, "Silva"], "PER")]
    component.annotate(doc, [(0, {"tags": ["O", "B-LOC", "I-LOC", "O", "O"]})])
    assert [[token.text for token in entity] for entity in doc.ents] == [["Silva"]]


def test_a_component_that_reads_upos_says_which_component_is_missing(labeler_archive):
    nlp = spacy.blank("en")
    nlp.add_pipe("structkd_parser").use(load_archive(labeler_archive))
    with pytest.raises(ValueError, match="put a component that sets it .a tagger. before 'structkd_parser'"):
        nlp("A sentence without part-of-speech tags .")
