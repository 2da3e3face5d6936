"""The small components of the `distillation` model's config: how the KD weight changes over
training (`LambdaSchedule`) and where and how the teacher's knowledge is cached
(`TeacherCacheSettings`); the temperature is `knowledge.Temperature`.

    model: {
      type: "distillation",
      ...
      lambda_schedule: { type: "teacher_annealing" },       // or { type: "constant", value: 0.5 }
      temperature: { kind: "local", value: 1.0 },
      teacher_cache: { dtype: "float16", relation_top_k_heads: 8 },   // null: run the teacher online
    }
"""

import os
from pathlib import Path

import torch
from tango.common import FromParams, Registrable

__all__ = ["ConstantLambda", "LambdaSchedule", "TeacherAnnealing", "TeacherCacheSettings"]


class LambdaSchedule(Registrable):
    """The weight lambda of the KD term (the gold loss gets 1 - lambda), as training progresses."""

    default_implementation = "constant"

    def weight(self, progress: float) -> float:
        """lambda when a fraction `progress` (0 to 1) of training is done."""
        raise NotImplementedError


@LambdaSchedule.register("constant")
class ConstantLambda(LambdaSchedule):
    """lambda = `value` throughout."""

    def __init__(self, value: float = 0.5) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the constant lambda must be in [0, 1], not {value}")
        self.value = value

    def weight(self, progress: float) -> float:
        return self.value


@LambdaSchedule.register("teacher_annealing")
class TeacherAnnealing(LambdaSchedule):
    """lambda from 1 to 0, linearly over training (Clark et al. 2019; Wang et al.'s code)."""

    def weight(self, progress: float) -> float:
        return 1.0 - progress


class TeacherCacheSettings(FromParams):
    """Compute the teacher's knowledge once before training, on disk, instead of running the
    teacher at every step.

    # Parameters

    directory : `str`, optional
        Where caches live; defaults to `$STRUCTKD_CACHE/teachers` or `~/.cache/structkd/teachers`.
    dtype : `str`
        "float16" (half the memory) or "float32" (exactly what the online teacher computes).
    shard_size : `int`
        Sentences per shard: the unit of a resumed or distributed build.
    pairwise_top_k : `int`, optional
        Keep only the k largest pairwise marginals per token (bounds memory).
    relation_top_k_heads : `int`, optional
        For a parser student: keep each word's teacher relation distributions for its k most
        probable heads only (all of them take (longest sentence + 1) x R numbers per word). The
        other heads' relation terms are left out of the loss.
    """

    def __init__(
        self,
        directory: str | None = None,
        dtype: str = "float16",
        shard_size: int = 4096,
        pairwise_top_k: int | None = None,
        relation_top_k_heads: int | None = None,
    ) -> None:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"teacher_cache.dtype must be 'float16' or 'float32', not {dtype!r}")
        if shard_size < 1:
            raise ValueError(f"teacher_cache.shard_size must be at least 1, not {shard_size}")
        if relation_top_k_heads is not None and relation_top_k_heads < 1:
            raise ValueError(f"teacher_cache.relation_top_k_heads must be at least 1, not {relation_top_k_heads}")
        default = Path(os.environ.get("STRUCTKD_CACHE", Path.home() / ".cache" / "structkd")) / "teachers"
        self.directory = Path(directory) if directory else default
        self.dtype = getattr(torch, dtype)
        self.shard_size = shard_size
        self.pairwise_top_k = pairwise_top_k
        self.relation_top_k_heads = relation_top_k_heads


# The flat keys of older configs, each with what to write instead.
FLAT_KEYS = {
    "kd_lambda": 'lambda_schedule: {type: "constant", value: ...}',
    "temperature_kind": "temperature: {kind: ..., value: ...}",
    "teacher_cache_dir": "teacher_cache: {directory: ...}",
    "teacher_cache_dtype": "teacher_cache: {dtype: ...}",
    "teacher_cache_shard_size": "teacher_cache: {shard_size: ...}",
    "pairwise_top_k": "teacher_cache: {pairwise_top_k: ...}",
    "relation_top_k_heads": "teacher_cache: {relation_top_k_heads: ...}",
}


def flat_settings_problem(config: dict) -> str | None:
    """What to write instead of the flat keys (and scalar values) of an older `distillation`
    config block, or None when it has none."""
    advice = [f"{key} -> {FLAT_KEYS[key]}" for key in FLAT_KEYS if key in config]
    if isinstance(config.get("temperature"), (int, float)):
        advice.append(f"temperature: {config['temperature']} -> temperature: {{value: {config['temperature']}}}")
    if isinstance(config.get("teacher_cache"), bool):
        advice.append(f"teacher_cache: {str(config['teacher_cache']).lower()} -> " + ("teacher_cache: {}" if config["teacher_cache"] else "teacher_cache: null (or leave it out)"))
    if isinstance(config.get("lambda_schedule"), str):
        advice.append(f'lambda_schedule: "{config["lambda_schedule"]}" -> lambda_schedule: {{type: "{config["lambda_schedule"]}"}}')
    if not advice:
        return None
    return "the distillation model's settings are nested components now; write " + "; ".join(advice)
