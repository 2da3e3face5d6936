"""The teacher cache's storage of a parser teacher's head rows, read back batch by batch."""

import pytest
import torch

from structkd_plugin.distillation.knowledge import TeacherKnowledge
from structkd_plugin.distillation.teacher_cache import TeacherCache, _arc_mass_kept

LENGTHS = [4, 1, 3]
RELATIONS = 3


def parser_knowledge_batch(seed: int) -> TeacherKnowledge:
    """Random arc marginals and relation distributions, indexed by word then head, zero on padding."""
    generator = torch.Generator().manual_seed(seed)
    n = max(LENGTHS)
    words = torch.arange(n)[None, :] < torch.tensor(LENGTHS)[:, None]
    heads = torch.arange(n + 1)[None, None, :] <= torch.tensor(LENGTHS)[:, None, None]
    possible = words[..., None] & heads
    arcs = torch.rand(len(LENGTHS), n, n + 1, generator=generator).masked_fill(~possible, 0.0)
    arcs = arcs / arcs.sum(-1, keepdim=True).clamp_min(1e-30)
    relations = torch.rand(len(LENGTHS), n, n + 1, RELATIONS, generator=generator).softmax(-1) * possible[..., None]
    return TeacherKnowledge(mask=words, arcs=arcs, relations=relations)


def instances() -> list[dict]:
    return [{"words": [f"w{i}_{j}" for j in range(length)]} for i, length in enumerate(LENGTHS)]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_relations_are_kept_for_each_words_k_likeliest_heads(tmp_path, k):
    knowledge = parser_knowledge_batch(seed=1)
    cache = TeacherCache.build(
        tmp_path / "cache.safetensors", [" ".join(i["words"]) for i in instances()], [knowledge],
        storage_dtype=torch.float32, relation_top_k_heads=k,
    )  # fmt: skip
    assert "relations" not in cache.tensors  # no dense head rows stored
    for read in (cache, TeacherCache.load(tmp_path / "cache.safetensors")):
        # Read back in another order, so sentences land at other rows and padding widths.
        order = [2, 0, 1]
        looked_up = read.lookup([instances()[i] for i in order])
        assert torch.equal(looked_up.arcs, knowledge.arcs[order])
        for row, b in enumerate(order):
            for word in range(LENGTHS[b]):
                likeliest = knowledge.arcs[b, word].topk(min(k, LENGTHS[b] + 1)).indices.tolist()
                for head in range(LENGTHS[b] + 1):
                    expected = knowledge.relations[b, word, head] if head in likeliest else torch.zeros(RELATIONS)
                    assert torch.equal(looked_up.relations[row, word, head], expected), (b, word, head)
            assert torch.all(looked_up.relations[row, LENGTHS[b] :] == 0)
        # Alone in its batch, the one-word sentence has two heads, fewer than k = 3.
        alone = read.lookup([instances()[1]]).relations
        likeliest = knowledge.arcs[1, 0, :2].topk(min(k, 2)).indices
        assert alone.shape == (1, 1, 2, RELATIONS)
        assert torch.equal(alone[0, 0, likeliest], knowledge.relations[1, 0, likeliest])
    kept = sum(
        float(knowledge.arcs[b, word].topk(min(k, LENGTHS[b] + 1)).values.sum()) for b in range(len(LENGTHS)) for word in range(LENGTHS[b])
    )
    assert cache.info["relation_arc_mass_kept"] == pytest.approx(kept / sum(LENGTHS), rel=1e-6)


def test_the_kept_arc_mass_is_summed_beyond_float16s_range():
    words = 70_000  # their arc mass, one each, is more than float16 can hold
    tensors = {
        "arcs": torch.tensor([[0.75, 0.25]], dtype=torch.float16).expand(words, 2),
        "relation_heads": torch.zeros(words, 1, dtype=torch.int32),
        "relation_values": torch.ones(words, 1, RELATIONS, dtype=torch.float16),
    }
    assert _arc_mass_kept(tensors) == pytest.approx(0.75)


def test_all_heads_kept_read_back_as_the_dense_rows(tmp_path):
    knowledge = parser_knowledge_batch(seed=2)
    keys = [" ".join(i["words"]) for i in instances()]
    pruned = TeacherCache.build(tmp_path / "a.safetensors", keys, [knowledge], torch.float32, relation_top_k_heads=10)
    dense = TeacherCache.build(tmp_path / "b.safetensors", keys, [knowledge], torch.float32)
    assert "relations" in dense.tensors and "relation_values" in pruned.tensors
    assert torch.equal(pruned.lookup(instances()).relations, dense.lookup(instances()).relations)
    assert torch.equal(dense.lookup(instances()).relations, knowledge.relations)


def test_pruning_relations_needs_arc_weights(tmp_path):
    knowledge = parser_knowledge_batch(seed=3)
    knowledge.arcs = None
    with pytest.raises(ValueError, match="arc marginals or local head softmax"):
        TeacherCache.build(tmp_path / "c.safetensors", ["a", "b", "c"], [knowledge], relation_top_k_heads=2)
