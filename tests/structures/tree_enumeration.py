"""Brute-force enumeration of dependency trees, the reference for the tree algorithms' tests.

A tree over n words is a head vector ``heads`` of length n + 1: ``heads[0] = 0`` (position 0 is
the root and has no head) and ``heads[d]`` in 0..n is the head of word d (1..n). It must have no
cycles (every word reaches the root by following heads) and no self-loops. ``single_root``: exactly
one word has head 0. ``projective``: no two arcs cross when the words (root included, at position
0) are drawn in order on a line, i.e. for every arc h -> d every word strictly between h and d
descends from h.

Enumerating all (n + 1)^n head vectors is fine for n <= 5 (7776 candidates).

Also: random padded batches of arc scores (with or without a planted winning tree), and a check
of a tree distribution (log Z, marginals, decode) against enumeration.
"""

import functools
import itertools

import torch

# A padded batch of sentence lengths small enough to enumerate, with a single word and the longest first.
LENGTHS = [5, 1, 3, 4, 2]


def _is_tree(heads):
    for word in range(1, len(heads)):
        seen = set()
        node = word
        while node != 0:
            if node in seen:
                return False
            seen.add(node)
            node = heads[node]
    return True


def _descends_from(heads, word, ancestor):
    while word != 0 and word != ancestor:
        word = heads[word]
    return word == ancestor


def _is_projective(heads):
    for dep in range(1, len(heads)):
        head = heads[dep]
        for between in range(min(head, dep) + 1, max(head, dep)):
            if not _descends_from(heads, between, head):
                return False
    return True


def is_tree(heads, projective=False, single_root=False):
    """Whether a head vector (a sequence with heads[0] = 0, one head per word) is a valid tree."""
    heads = tuple(int(head) for head in heads)
    words = range(1, len(heads))
    if heads[0] != 0 or any(not 0 <= heads[d] < len(heads) or heads[d] == d for d in words):
        return False
    if not _is_tree(heads) or (single_root and heads[1:].count(0) != 1):
        return False
    return not projective or _is_projective(heads)


@functools.lru_cache(maxsize=None)
def all_trees(n, projective=False, single_root=False):
    """Every tree over n >= 1 words, as a long tensor [T, n + 1] of head vectors (column 0 is 0)."""
    candidates = ((0, *word_heads) for word_heads in itertools.product(range(n + 1), repeat=n))
    trees = [heads for heads in candidates if is_tree(heads, projective, single_root)]
    return torch.tensor(trees, dtype=torch.long)


def tree_scores(arc_scores, trees):
    """Scores [T] of trees [T, n + 1] under arc_scores [m, m] (m >= n + 1, entry [h, d] = h -> d)."""
    words = torch.arange(1, trees.shape[1])
    return arc_scores[trees[:, 1:], words].sum(-1)


def tree_indicators(trees, size):
    """One-hot arc indicators [T, size, size] of trees [T, n + 1]: entry [t, h, d] = 1 iff h -> d."""
    indicators = torch.zeros(trees.shape[0], size, size, dtype=torch.float64)
    words = torch.arange(1, trees.shape[1])[None, :]
    tree_index = torch.arange(trees.shape[0])[:, None]
    indicators[tree_index, trees[:, 1:], words] = 1.0
    return indicators


def brute_force(arc_scores, length, projective=False, single_root=False):
    """Exact log Z, arc marginals and best tree of one sentence by enumeration.

    arc_scores: [m, m] with m >= length + 1 (extra rows/columns are padding and ignored), any
    float dtype; computed in float64. Returns (log_z, marginals [m, m], best_score, best_heads
    [m] long with padding 0). -inf scores are allowed (trees using them get probability 0).
    """
    size = arc_scores.shape[-1]
    trees = all_trees(length, projective, single_root)
    scores = tree_scores(arc_scores.double(), trees)
    log_z = torch.logsumexp(scores, 0)
    probabilities = (scores - log_z).exp()
    marginals = torch.einsum("t,thd->hd", probabilities, tree_indicators(trees, size))
    best = int(scores.argmax())
    best_heads = torch.zeros(size, dtype=torch.long)
    best_heads[: length + 1] = trees[best]
    return log_z, marginals, scores[best], best_heads


def random_arc_scores(seed, lengths, scale=1.0, dtype=torch.float64):
    """Normal arc scores ``[B, n+1, n+1]`` times ``scale`` and the mask ``[B, n+1]`` of ``lengths``."""
    generator = torch.Generator().manual_seed(seed)
    size = max(lengths) + 1
    scores = torch.randn(len(lengths), size, size, generator=generator, dtype=torch.float64) * scale
    mask = torch.arange(size)[None, :] <= torch.tensor(lengths)[:, None]
    return scores.to(dtype), mask


def planted_arc_scores(seed, lengths, plant):
    """Float32 normal arc scores ``[B, n+1, n+1]`` in which a planted tree of every sentence wins.

    ``plant(generator, length, heads)`` writes a tree's heads of words 1..length into ``heads``
    (long ``[length + 1]``, zeros), drawing from ``generator``; each planted arc gets 10 more.
    Returns the scores, the mask ``[B, n+1]`` of ``lengths`` and the planted heads ``[B, n+1]``
    (padding 0).
    """
    generator = torch.Generator().manual_seed(seed)
    size = max(lengths) + 1
    scores = torch.randn(len(lengths), size, size, generator=generator)
    mask = torch.arange(size)[None, :] <= torch.tensor(lengths)[:, None]
    planted = torch.zeros(len(lengths), size, dtype=torch.long)
    for b, length in enumerate(lengths):
        plant(generator, length, planted[b, : length + 1])
        scores[b, planted[b, 1 : length + 1], torch.arange(1, length + 1)] += 10.0
    return scores, mask, planted


def check_against_brute_force(tree, projective, atol):
    """Compare a NonProjectiveTree or ProjectiveTree with enumeration, sentence by sentence.

    log Z (relative tolerance ``atol``) and the marginals (absolute) must match; the decoded heads
    must form a valid tree (padding 0) whose score is the best score.
    """
    log_z, marginals, heads = tree.log_partition(), tree.marginals(), tree.argmax()
    scores = tree.arc_scores.detach()
    for b, length in enumerate((tree.mask.sum(1) - 1).tolist()):
        expected_log_z, expected_marginals, best_score, _ = brute_force(scores[b], length, projective, tree.single_root)
        assert abs(log_z[b].item() - expected_log_z.item()) <= atol * max(1.0, abs(expected_log_z.item()))
        assert torch.allclose(marginals[b].double(), expected_marginals, rtol=0.0, atol=atol)
        assert is_tree(heads[b, : length + 1], projective, tree.single_root)
        assert torch.all(heads[b, length + 1 :] == 0)
        score = tree_scores(scores[b].double(), heads[b, None, : length + 1])[0]
        assert abs(score.item() - best_score.item()) <= 1e-9 * max(1.0, abs(best_score.item()))
