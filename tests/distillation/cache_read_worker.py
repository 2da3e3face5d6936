"""Reads every sentence of the cache in the directory argv[1] (keys "0", "1", ...), in shuffled
batches, and prints by how much the resident memory grew at most meanwhile (bytes)."""

import random
import sys
from pathlib import Path

from structkd_plugin.distillation.teacher_cache import TeacherCache


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


cache = TeacherCache.load(Path(sys.argv[1]))
order = list(range(len(cache)))
random.Random(0).shuffle(order)
before = most = resident_bytes()
for start in range(0, len(order), 20):
    knowledge = cache.lookup([{"words": [str(i)]} for i in order[start : start + 20]])
    assert knowledge is not None
    most = max(most, resident_bytes())
print(most - before)
