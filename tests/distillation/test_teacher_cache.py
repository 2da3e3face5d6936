"""The teacher cache: shards written and read back batch by batch, a parser teacher's head rows,
resumed and distributed builds, and resident memory that does not grow with the corpus."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from structkd_plugin.distillation.knowledge import TeacherKnowledge
from structkd_plugin.distillation.teacher_cache import TeacherCache, _arc_mass

LENGTHS = [4, 1, 3]
RELATIONS = 3
REPOSITORY = Path(__file__).resolve().parents[2]


def parser_knowledge_batch(seed: int, lengths=LENGTHS) -> TeacherKnowledge:
    """Random arc marginals and relation distributions, indexed by word then head, zero on padding."""
    generator = torch.Generator().manual_seed(seed)
    n = max(lengths)
    words = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    heads = torch.arange(n + 1)[None, None, :] <= torch.tensor(lengths)[:, None, None]
    possible = words[..., None] & heads
    arcs = torch.rand(len(lengths), n, n + 1, generator=generator).masked_fill(~possible, 0.0)
    arcs = arcs / arcs.sum(-1, keepdim=True).clamp_min(1e-30)
    relations = torch.rand(len(lengths), n, n + 1, RELATIONS, generator=generator).softmax(-1) * possible[..., None]
    return TeacherKnowledge(mask=words, arcs=arcs, relations=relations)


def select(knowledge: TeacherKnowledge, rows: list[int]) -> TeacherKnowledge:
    """The knowledge of some sentences of a batch, in the order of `rows`."""
    return TeacherKnowledge(**{name: tensor[rows] for name, tensor in knowledge.tensors().items()})


def instances(lengths=LENGTHS) -> list[dict]:
    return [{"words": [f"w{i}_{j}" for j in range(length)]} for i, length in enumerate(lengths)]


def build(directory, knowledge, lengths=LENGTHS, **options) -> TeacherCache:
    keys = [" ".join(i["words"]) for i in instances(lengths)]
    return TeacherCache.build(directory, keys, lengths, lambda rows: select(knowledge, rows), **options)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_relations_are_kept_for_each_words_k_likeliest_heads(tmp_path, k):
    knowledge = parser_knowledge_batch(seed=1)
    cache = build(tmp_path / "cache", knowledge, storage_dtype=torch.float32, relation_top_k_heads=k)
    assert not list((tmp_path / "cache").glob("*/relations.npy"))  # no dense head rows stored
    for read in (cache, TeacherCache.load(tmp_path / "cache")):
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
    kept, total = _arc_mass(tensors)
    assert kept / total == pytest.approx(0.75)


def test_all_heads_kept_read_back_as_the_dense_rows(tmp_path):
    knowledge = parser_knowledge_batch(seed=2)
    pruned = build(tmp_path / "a", knowledge, storage_dtype=torch.float32, relation_top_k_heads=10)
    dense = build(tmp_path / "b", knowledge, storage_dtype=torch.float32)
    assert list((tmp_path / "b").glob("*/relations.npy")) and list((tmp_path / "a").glob("*/relation_values.npy"))
    assert torch.equal(pruned.lookup(instances()).relations, dense.lookup(instances()).relations)
    assert torch.equal(dense.lookup(instances()).relations, knowledge.relations)


def test_pruning_relations_needs_arc_weights(tmp_path):
    knowledge = parser_knowledge_batch(seed=3)
    knowledge.arcs = None
    with pytest.raises(ValueError, match="arc marginals or local head softmax"):
        build(tmp_path / "c", knowledge, relation_top_k_heads=2)


MANY = [(7 * i) % 13 + 1 for i in range(40)]  # 40 sentences of 1 to 13 words


def test_a_cache_in_many_shards_reads_back_as_the_cache_in_one(tmp_path):
    knowledge = parser_knowledge_batch(seed=4, lengths=MANY)
    one = build(tmp_path / "one", knowledge, MANY, storage_dtype=torch.float32, relation_top_k_heads=2, shard_size=1000)
    many = build(tmp_path / "many", knowledge, MANY, storage_dtype=torch.float32, relation_top_k_heads=2, shard_size=6, batch_size=4)
    assert len(one.shards) == 1 and len(many.shards) == 7
    batch = [instances(MANY)[i] for i in (5, 0, 39, 17, 22, 3)]
    a, b = one.lookup(batch), many.lookup(batch)
    for name in ("mask", "arcs", "relations"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.arcs, knowledge.arcs[[5, 0, 39, 17, 22, 3]][:, : a.mask.size(1), : a.mask.size(1) + 1])
    assert one.lookup([{"words": ["never", "cached"]}]) is None


def test_a_killed_build_resumes_from_its_finished_shards(tmp_path):
    knowledge = parser_knowledge_batch(seed=5, lengths=MANY)
    computed = []

    def dies_after_three_batches(rows):
        if len(computed) == 3:
            raise KeyboardInterrupt  # the build is killed in its fourth batch, the second shard
        computed.append(rows)
        return select(knowledge, rows)

    keys = [" ".join(i["words"]) for i in instances(MANY)]
    options = {"storage_dtype": torch.float32, "shard_size": 10, "batch_size": 5}
    with pytest.raises(KeyboardInterrupt):
        TeacherCache.build(tmp_path / "cache", keys, MANY, dies_after_three_batches, **options)
    assert TeacherCache.load(tmp_path / "cache") is None  # no index: not finished
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["shard-00000"]  # no half-written shard left
    # A SIGKILL leaves the shard being written as a temporary directory: the next build removes it.
    (tmp_path / "cache" / ".shard-00001.k1ll3d").mkdir()
    (tmp_path / "cache" / ".shard-00001.k1ll3d" / "arcs.npy").write_bytes(b"half")
    resumed = []
    cache = TeacherCache.build(tmp_path / "cache", keys, MANY, lambda rows: resumed.append(rows) or select(knowledge, rows), **options)
    assert sum(len(rows) for rows in resumed) == 30  # the first shard's 10 sentences were not computed again
    assert not set(sum(computed[:2], [])) & set(sum(resumed, []))
    assert torch.equal(cache.lookup(instances(MANY)).arcs, knowledge.arcs)
    assert not list((tmp_path / "cache").glob(".shard-*"))


def test_a_two_process_build_equals_the_one_process_build(tmp_path):
    worker = REPOSITORY / "tests" / "distillation" / "cache_build_worker.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker), str(tmp_path / "two")]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # The two ranks print concurrently: their lines may run together.
    reports = [json.loads(match) for match in re.findall(r'\{"rank": \d+, "sentences": \d+\}', result.stdout)]
    ranks = {report["rank"]: report["sentences"] for report in reports}
    assert ranks == {0: 24, 1: 16}  # shards 0, 2, 4 and 1, 3 of 8 sentences
    sys.path.insert(0, str(worker.parent))
    from cache_build_worker import build_cache

    single, _ = build_cache(tmp_path / "one")
    two = TeacherCache.load(tmp_path / "two")
    batch = instances(MANY)
    for name in ("mask", "arcs", "relations"):
        assert torch.equal(getattr(single.lookup(batch), name), getattr(two.lookup(batch), name)), name


def test_reading_releases_the_pages_it_mapped(tmp_path):
    """The resident memory of reading every sentence of a cache stays far below its size."""
    lengths = [50] * 2000
    knowledge = TeacherKnowledge(mask=torch.ones(1, 50, dtype=torch.bool), unary=torch.rand(1, 50, 200))
    keys = [str(i) for i in range(len(lengths))]
    TeacherCache.build(tmp_path / "cache", keys, lengths, lambda rows: select(knowledge, [0] * len(rows)), storage_dtype=torch.float32, shard_size=500)
    size = sum(p.stat().st_size for p in (tmp_path / "cache").glob("*/unary.npy"))
    assert size > 75_000_000
    result = subprocess.run([sys.executable, str(REPOSITORY / "tests" / "distillation" / "cache_read_worker.py"), str(tmp_path / "cache")],
                            env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    grown = int(result.stdout.split()[-1])
    assert grown < size / 4, (grown, size)
