"""Builds a parser-knowledge teacher cache of 40 sentences in shards of 8 into argv[1]; run by
torchrun, each rank builds its share. Prints the sentences this process labeled, as JSON."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from structkd_plugin.distillation.teacher_cache import TeacherCache

sys.path.insert(0, str(Path(__file__).parent))
from test_teacher_cache import MANY, instances, parser_knowledge_batch, select  # noqa: E402


def build_cache(directory: Path) -> tuple[TeacherCache, int]:
    knowledge = parser_knowledge_batch(seed=6, lengths=MANY)
    labeled = []
    keys = [" ".join(i["words"]) for i in instances(MANY)]
    cache = TeacherCache.build(
        directory, keys, MANY, lambda rows: labeled.extend(rows) or select(knowledge, rows),
        storage_dtype=torch.float32, relation_top_k_heads=2, shard_size=8, batch_size=3,
    )  # fmt: skip
    return cache, len(labeled)


if __name__ == "__main__":
    dist.init_process_group("gloo")
    _, labeled = build_cache(Path(sys.argv[1]))
    print(json.dumps({"rank": dist.get_rank(), "sentences": labeled}), flush=True)
    dist.destroy_process_group()
