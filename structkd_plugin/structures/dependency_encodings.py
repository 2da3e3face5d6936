"""Dependency trees as one label per word (Strzyz, Vilares & Gomez-Rodriguez 2019), and back.

Label format
------------
A label is ``"<head>|<relation>"``: the part before the first ``|`` says where the head is, the
rest is the dependency relation (UD relations never contain ``|``). The head part is

* ``ROOT`` for the word attached to the root, in both encodings;
* ``rel_offset``: the signed distance from the word to its head, ``+2`` (two words to the
  right), ``-1`` (the previous word); never 0;
* ``rel_pos``: ``+k@T`` / ``-k@T``, the k-th word to the right / left whose UPOS is ``T`` (the
  head's UPOS). ``"+2@NOUN|nsubj"``: the head is the second NOUN after the word.

Words are numbered from 1, 0 is the root. ``encode_tree`` and ``decode_labels`` work on one
sentence of strings; ``DependencyLabelSet`` turns a whole label list into tensors so that, for
a padded batch, ``label_heads`` gives the head every label points to from every word
(``[B, n, L]``, -1 where it points nowhere). That mapping is what turns label scores into arc
scores (``tree_arc_scores``, ``decode_tree``) and arc marginals into label marginals.

rel_pos reads the UPOS of the sentence's words at decoding time as well: the label alone does
not say which word is meant.
"""

import math
import re
from collections.abc import Sequence

import torch

from structkd_plugin.structures.mst import maximum_spanning_arborescence

ENCODINGS = ("rel_offset", "rel_pos")
ROOT = "ROOT"
_OFFSET = re.compile(r"[+-][1-9][0-9]*")
_RELATIVE_POS = re.compile(r"([+-])([1-9][0-9]*)@(.+)")


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown dependency encoding {encoding!r}; expected one of {ENCODINGS}")


def encode_tree(
    heads: Sequence[int], deprels: Sequence[str], encoding: str, upos: Sequence[str] | None = None
) -> list[str]:
    """The label of every word of one sentence's tree (``heads`` 0 = root, words from 1).

    ``upos`` is needed by ``rel_pos``. The heads need not form a tree: every word's head is
    encoded on its own.
    """
    _check_encoding(encoding)
    if encoding == "rel_pos" and upos is None:
        raise ValueError("the rel_pos encoding needs the words' UPOS")
    labels = []
    for word, (head, relation) in enumerate(zip(heads, deprels), start=1):
        if head == 0:
            where = ROOT
        elif encoding == "rel_offset":
            where = f"{head - word:+d}"
        else:
            tag = upos[head - 1]
            # Words of the head's tag between the word (excluded) and the head (included).
            between = upos[word:head] if head > word else upos[head - 1 : word - 1]
            where = f"{'+' if head > word else '-'}{between.count(tag)}@{tag}"
        labels.append(f"{where}|{relation}")
    return labels


def decode_labels(
    labels: Sequence[str], encoding: str, upos: Sequence[str] | None = None
) -> tuple[list[int], list[str]]:
    """Heads and relations of one sentence's labels: the inverse of ``encode_tree``.

    Each word is decoded on its own, so the heads form a tree only when the labels come from one.
    A label pointing outside the sentence (``+3`` from the last word, ``+1@VERB`` with no VERB
    to the right) gives head -1.
    """
    label_set = DependencyLabelSet(labels, encoding)
    if encoding == "rel_pos" and upos is None:
        raise ValueError("the rel_pos encoding needs the words' UPOS")
    mask = torch.ones(1, len(labels), dtype=torch.bool)
    upos_ids = label_set.upos_ids([upos]) if encoding == "rel_pos" else None
    heads = label_set.label_heads(mask, upos_ids)[0]
    # Label i of the set is the label of word i.
    return heads.diagonal().tolist(), list(label_set.relations)


class DependencyLabelSet:
    """A list of labels of one encoding, as tensors: where each label's head is and its relation.

    # Parameters

    labels : `Sequence[str]`
        The labels; label id ``l`` is ``labels[l]`` (a model's label vocabulary). Raises
        `ValueError` on a label that is not of ``encoding``.
    encoding : `str`
        ``"rel_offset"`` or ``"rel_pos"``.

    Attributes: ``labels``, ``encoding``, ``relations`` (the relation of each label),
    ``tags`` (rel_pos: the UPOS tags that the labels name, in order of first use),
    ``label_descriptions`` (``[L]`` long: the head description of each label, an index into
    ``description_heads``' last dimension; labels that differ only in their relation share one).
    """

    def __init__(self, labels: Sequence[str], encoding: str) -> None:
        _check_encoding(encoding)
        self.labels = list(labels)
        self.encoding = encoding
        self.relations: list[str] = []
        tag_index: dict[str, int] = {}
        is_root, offsets, tag_ids = [], [], []
        for label in self.labels:
            where, separator, relation = label.partition("|")
            offset, tag = 0, 0
            if where != ROOT:
                if encoding == "rel_offset" and _OFFSET.fullmatch(where):
                    offset = int(where)
                elif encoding == "rel_pos" and (match := _RELATIVE_POS.fullmatch(where)):
                    offset = int(match[1] + match[2])
                    tag = tag_index.setdefault(match[3], len(tag_index))
                else:
                    separator = ""
            if not separator:
                raise ValueError(f"{label!r} is not a label of the {encoding} encoding (see dependency_encodings)")
            self.relations.append(relation)
            is_root.append(where == ROOT)
            offsets.append(offset)
            tag_ids.append(tag)
        self.tags = list(tag_index)
        self._tag_index = tag_index
        # Labels differing only in their relation point to the same head: heads are computed once
        # per distinct head description (ROOT, offset, tag), ~10x fewer than labels on a treebank.
        descriptions: dict[tuple[bool, int, int], int] = {}
        self.label_descriptions = torch.tensor(
            [descriptions.setdefault(key, len(descriptions)) for key in zip(is_root, offsets, tag_ids)], dtype=torch.long
        )
        self._is_root = torch.tensor([key[0] for key in descriptions], dtype=torch.bool)
        # rel_offset: head - word; rel_pos: +-k (0 for ROOT).
        self._offsets = torch.tensor([key[1] for key in descriptions], dtype=torch.long)
        self._tag_ids = torch.tensor([key[2] for key in descriptions], dtype=torch.long)
        self._description_labels = _labels_by_description(self.label_descriptions, len(descriptions))

    def __len__(self) -> int:
        return len(self.labels)

    def upos_ids(self, upos: Sequence[Sequence[str]]) -> torch.Tensor:
        """``[B, n]`` long: each word's UPOS as an index in ``tags``, or ``len(tags)`` for a tag
        that no label names (no rel_pos label can then point to that word), as on padding."""
        other = len(self.tags)
        length = max(len(sentence) for sentence in upos)
        ids = torch.full((len(upos), length), other, dtype=torch.long)
        for row, sentence in enumerate(upos):
            ids[row, : len(sentence)] = torch.tensor([self._tag_index.get(t, other) for t in sentence], dtype=torch.long)
        return ids

    def label_heads(self, mask: torch.Tensor, upos_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The head each label points to from each word of a padded batch.

        # Parameters

        mask : `torch.BoolTensor [B, n]`
            True on the real words (a prefix of each row).
        upos_ids : `torch.LongTensor [B, n]`, optional
            The words' UPOS from ``upos_ids``; needed by rel_pos.

        # Returns

        ``[B, n, L]`` long on ``mask``'s device: entry ``[b, i, l]`` is the head (0 = root,
        1..n_b a word) that label ``l`` gives word ``i + 1`` of sentence ``b``; -1 when the
        label points outside the sentence, and everywhere on padding.
        """
        heads = self.description_heads(mask, upos_ids)
        return heads[:, :, self.label_descriptions.to(mask.device)]

    def description_heads(self, mask: torch.Tensor, upos_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``label_heads`` per head description: ``[B, n, D]``, D the number of distinct
        descriptions (``label_descriptions`` maps each label to its own)."""
        device = mask.device
        is_root, offsets, tag_ids = (t.to(device) for t in (self._is_root, self._offsets, self._tag_ids))
        length = mask.shape[1]
        words = torch.arange(1, length + 1, device=device)[None, :, None]  # [1, n, 1]
        lengths = mask.sum(-1)[:, None, None]
        if self.encoding == "rel_offset":
            heads = words + offsets
            valid = (heads >= 1) & (heads <= lengths)
        else:
            if upos_ids is None:
                raise ValueError("the rel_pos encoding needs the words' UPOS (upos_ids)")
            heads, valid = self._relative_pos_heads(mask, upos_ids.to(device), offsets, tag_ids)
        return torch.where(is_root, 0, torch.where(valid, heads, -1)).masked_fill(~mask[:, :, None], -1)

    def _relative_pos_heads(self, mask, upos_ids, offsets, tag_ids):
        """Heads ``[B, n, D]`` of the rel_pos head descriptions (garbage where not ``valid``) and ``valid``.

        The r-th word of tag t (its *rank*, counting from 1) is looked up in a table; from word
        i, ``+k@t`` points to rank (tag-t words up to i, i included) + k, and ``-k@t`` to rank
        (tag-t words before i) + 1 - k.
        """
        batch_size, length = mask.shape
        tag_count = len(self.tags) + 1  # the last one stands for every other tag
        one_hot = torch.nn.functional.one_hot(upos_ids, tag_count) * mask[:, :, None]
        up_to = one_hot.cumsum(1)  # [B, n, T]: tag-t words among 1..i
        before = up_to - one_hot
        totals = up_to[:, -1]  # [B, T]
        # position[b, t * (n + 1) + r] = the word of rank r of tag t; the extra last slot takes
        # the padding's writes.
        slots = tag_count * (length + 1)
        position = torch.zeros(batch_size, slots + 1, dtype=torch.long, device=mask.device)
        own_rank = up_to.gather(2, upos_ids[:, :, None]).squeeze(2)
        target = torch.where(mask, upos_ids * (length + 1) + own_rank, slots)
        words = torch.arange(1, length + 1, device=mask.device).expand(batch_size, length)
        position.scatter_(1, target, words)

        rank = torch.where(
            offsets > 0, up_to[:, :, tag_ids] + offsets, before[:, :, tag_ids] + 1 + offsets
        )  # [B, n, D]
        valid = (rank >= 1) & (rank <= totals[:, None, tag_ids])
        index = tag_ids * (length + 1) + rank.clamp(0, length)
        heads = position.gather(1, index.flatten(1)).view_as(rank)
        return heads, valid


def tree_arc_scores(candidate_scores: torch.Tensor, candidate_heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Arc scores ``[B, n+1, n+1]`` (``[b, h, d]`` = h -> d, 0 the root) from the scores of
    each word's candidate heads: its labels, or its labels' head descriptions.

    The score of h -> d is the best score among the candidates that point from d to h; -inf
    scores and candidates pointing nowhere contribute nothing. An arc no candidate scores gets a
    per-sentence floor so far below the others (lowest - (n_b + 1) * (highest - lowest) - 1)
    that a tree uses such arcs only when it must, and fewer of them is always better: so a
    well-formed tree always exists.

    # Parameters

    candidate_scores : `torch.Tensor [B, n, K]`
        Scores of each word's candidates (label log-probabilities, say).
    candidate_heads : `torch.LongTensor [B, n, K]`
        The head each candidate points to from each word, -1 for none
        (``DependencyLabelSet.label_heads`` or ``description_heads``).
    mask : `torch.BoolTensor [B, n]`
        True on the real words.
    """
    batch_size, length, _ = candidate_scores.shape
    minus_inf = -math.inf
    scored = (candidate_heads >= 0) & (candidate_scores > minus_inf)
    # Unscored candidates go to an extra head slot n+1, dropped afterwards.
    slot = torch.where(scored, candidate_heads, length + 1)
    by_dependent = candidate_scores.new_full((batch_size, length, length + 2), minus_inf)
    by_dependent.scatter_reduce_(2, slot, candidate_scores, "amax")
    arcs = by_dependent[:, :, : length + 1].transpose(1, 2)  # [B, head, dependent]
    arcs = torch.cat([arcs.new_full((batch_size, length + 1, 1), minus_inf), arcs], dim=2)

    tree_mask = torch.cat([mask.new_ones(batch_size, 1), mask], dim=1)
    usable = tree_mask[:, :, None] & tree_mask[:, None, :]
    real = (arcs > minus_inf) & usable
    has_real = real.any(2).any(1)
    lowest = torch.where(has_real, arcs.masked_fill(~real, math.inf).amin((1, 2)), 0.0)
    highest = torch.where(has_real, arcs.masked_fill(~real, minus_inf).amax((1, 2)), 0.0)
    floor = lowest - (mask.sum(-1) + 1) * (highest - lowest) - 1
    return torch.where(real, arcs, floor[:, None, None])


def decode_tree(
    label_scores: torch.Tensor, label_set: DependencyLabelSet, mask: torch.Tensor, upos_ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best single-root tree that label scores describe, and a label for each of its arcs.

    The tree is the maximum spanning arborescence of ``tree_arc_scores`` (Chu-Liu-Edmonds with
    one root child), so it is always well-formed; when every word's best label points to a head
    and those heads form such a tree, it is that tree. Each word's label is the best one
    pointing to its chosen head, or its best label overall when none does (an arc taken at the
    floor score; only its relation is then meaningful).

    Labels that differ only in their relation point to the same head, so the arcs are scored
    from each head description's best label: ``[B, n, D]`` instead of ``[B, n, L]``.

    # Parameters

    label_scores : `torch.Tensor [B, n, L]`, scores of ``label_set``'s labels.
    label_set : `DependencyLabelSet`
    mask : `torch.BoolTensor [B, n]`
    upos_ids : `torch.LongTensor [B, n]`, optional
        ``label_set.upos_ids`` of the words; needed by rel_pos.

    # Returns

    ``heads [B, n]`` (0 = root, words from 1, padding 0) and ``labels [B, n]`` (label ids,
    padding 0).
    """
    description_heads = label_set.description_heads(mask, upos_ids)
    label_descriptions = label_set.label_descriptions.to(label_scores.device)
    description_scores = label_scores.new_full(description_heads.shape, -math.inf).scatter_reduce_(
        2, label_descriptions.expand_as(label_scores), label_scores, "amax"
    )
    arcs = tree_arc_scores(description_scores, description_heads, mask)
    tree_mask = torch.cat([mask.new_ones(mask.size(0), 1), mask], dim=1)
    heads = maximum_spanning_arborescence(arcs, tree_mask, single_root=True)[:, 1:]
    pointing = (description_heads == heads[:, :, None]) & (description_scores > -math.inf)
    chosen = description_scores.masked_fill(~pointing, -math.inf).argmax(-1)
    # The best label of the chosen description, among its own labels only: [B, n, R].
    members = label_set._description_labels.to(label_scores.device)[chosen]
    member_scores = label_scores.gather(2, members.clamp_min(0)).masked_fill(members < 0, -math.inf)
    labels = members.gather(2, member_scores.argmax(-1, keepdim=True)).squeeze(2)
    unpointed = ~pointing.any(-1) & mask
    if unpointed.any():
        labels = torch.where(unpointed, label_scores.argmax(-1), labels)
    return heads, labels.masked_fill(~mask, 0)


def _labels_by_description(label_descriptions: torch.Tensor, descriptions: int) -> torch.Tensor:
    """``[D, R]`` long: row d lists the labels of description d (in id order), padded with -1;
    R is the most labels any description has."""
    order = label_descriptions.argsort(stable=True)
    grouped = label_descriptions[order]
    counts = torch.bincount(label_descriptions, minlength=descriptions)
    rank = torch.arange(len(order), device=order.device) - (counts.cumsum(0) - counts)[grouped]
    members = torch.full((descriptions, int(counts.max())), -1, dtype=torch.long, device=order.device)
    members[grouped, rank] = order
    return members
