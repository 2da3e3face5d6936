"""ProjectiveTree (Eisner's algorithm): decoding recovers a planted projective tree.

What it shares with NonProjectiveTree, its comparison with enumeration of all projective trees
included, is tested for both in test_tree_common.py.
"""

import pytest
import torch
from tree_enumeration import planted_arc_scores

from structkd_plugin.structures.projective_tree import ProjectiveTree


@pytest.mark.parametrize("single_root", [True, False])
def test_decode_recovers_a_planted_projective_tree(single_root):
    def attach(generator, heads, head, first, last):
        # Words first..last hang below head: pick one of them, attach it, and recurse on both
        # sides, which keeps the tree projective.
        if first > last:
            return
        word = int(torch.randint(first, last + 1, (), generator=generator))
        heads[word] = head
        attach(generator, heads, word, first, word - 1)
        attach(generator, heads, word, word + 1, last)

    def plant(generator, length, heads):
        if single_root:
            attach(generator, heads, 0, 1, length)
        else:
            boundaries = [0, *sorted({int(x) for x in torch.randint(1, length + 1, (2,), generator=generator)}), length]
            for first, last in zip(boundaries, boundaries[1:]):
                attach(generator, heads, 0, first + 1, last)

    scores, mask, planted = planted_arc_scores(18, [30, 7, 1, 22], plant)
    assert torch.equal(ProjectiveTree(scores, mask, single_root).argmax(), planted)
