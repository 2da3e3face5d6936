"""`distillation`: trains a student model to imitate one or more frozen, archived teachers."""

import logging
import os
from pathlib import Path
from typing import Any

import torch
from tango.common import Lazy

from structkd_plugin.archival import load_archive
from structkd_plugin.data import INPUT_LABEL_KEYS, Vocabulary, move_to_device, without_labels
from structkd_plugin.data.sentence_store import instance_lengths
from structkd_plugin.distillation.knowledge import (
    ParserScores,
    TaggerScores,
    TeacherKnowledge,
    Temperature,
    parser_knowledge,
    parser_to_parser_knowledge,
    teacher_knowledge,
)
from structkd_plugin.distillation.objectives import CRF_TAGGERS, PARSERS, SEQUENCE_LABELERS, KDObjective
from structkd_plugin.distillation.teacher_cache import HEAD_INDEXED, TeacherCache, cache_key, file_digest, instance_key, pad_dim
from structkd_plugin.models.biaffine_parser import BiaffineParser
from structkd_plugin.models.crf_tagger import CrfTagger
from structkd_plugin.models.dependency_sequence_labeler import DependencySequenceLabeler
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.second_order_parser import SecondOrderParser
from structkd_plugin.models.tagger import SequenceTagger
from structkd_plugin.structures.label_schemes import marginal_conversion_matrix

logger = logging.getLogger(__name__)


def model_kind(model: Model) -> str:
    """What a teacher or student is, in the terms of `objectives.MODEL_KINDS`."""
    if isinstance(model, SecondOrderParser):
        return "second-order parser"
    if isinstance(model, BiaffineParser):
        return "biaffine parser"
    if isinstance(model, DependencySequenceLabeler):
        return f"{'crf' if isinstance(model.tagger, CrfTagger) else 'softmax'} sequence labeler"
    if isinstance(model, SequenceTagger):
        return f"{'crf' if isinstance(model, CrfTagger) else 'softmax'} tagger"
    raise ValueError(
        f"distillation works with taggers, sequence-labeling parsers and dependency parsers, not {type(model).__name__}"
    )


def parser_scores(parser: BiaffineParser, output: dict[str, torch.Tensor]) -> ParserScores:
    """The scores a parser's forward output exposes (second-order parsers add theirs)."""
    second_order = isinstance(parser, SecondOrderParser)
    return ParserScores(
        arc_scores=output["arc_scores"],
        relation_scores=output["relation_scores"],
        mask=output["mask"],
        tree="mean_field" if second_order else parser.tree_kind,
        sib_scores=output.get("sib_scores"),
        grd_scores=output.get("grd_scores"),
        iterations=parser.iterations if second_order else 0,
    )


def tagger_scores(output: dict[str, torch.Tensor]) -> TaggerScores:
    """The potentials a tagger's forward output exposes (CRF taggers add transitions)."""
    return TaggerScores(
        emissions=output["emissions"],
        mask=output["mask"],
        transitions=output.get("transitions"),
        start=output.get("start"),
        end=output.get("end"),
        label_vectors=output.get("label_vectors"),
    )


@Model.register("distillation")
class DistillationModel(Model):
    """Wraps a student and frozen teachers: loss = lambda * KD + (1 - lambda) * gold loss.

    Sentences without gold labels (unlabeled text) are trained with the KD term alone. The archive
    a training run writes holds the student alone, usable like any other model archive.

    # Parameters

    vocab : `Vocabulary`
        The student's vocabulary (built from the training data as for any model).
    student : `Model`
        The student, any registered tagger or parser config.
    teacher_archive : `str` or `dict[str, str]`
        The teacher's `model.tar.gz`: a tagger for a tagger student; a parser for a parser
        student or for a sequence-labeling parser (Wang et al.'s cases 1b, 2b); or a mapping from a value of `teacher_key` (e.g. a
        language) to a teacher archive, so several monolingual teachers distill into one student.
    objective : `KDObjective`
        The KD objective by name, with its parameters (`{"type": "structural"}`, `{"type":
        "top_k", "k": 5}`, ...).
    teacher_key : `str`
        With several teachers: the instance field (or metadata field) that picks one.
    teacher_overrides : `dict`, optional
        Overrides applied to each teacher's config when loading it.
    teacher_device : `int`
        The teacher's CUDA device, -1 for the CPU.
    lambda_schedule : `str`
        "constant" (the KD weight is `kd_lambda` throughout) or "teacher_annealing" (from 1 to 0
        linearly over training, as in Clark et al. 2019 and Wang et al.'s code).
    kd_lambda : `float`
        The KD weight of the constant schedule.
    temperature : `float`
        T: student scores are divided by T and the loss multiplied by T^2.
    temperature_kind : `str`
        "local" (temper the teacher's per-position marginals) or "global" (divide the teacher's
        whole-structure scores by T); see `knowledge.py`.
    teacher_cache : `bool`
        Precompute the teacher's knowledge once before training, on disk, instead of running the
        teacher at every step ("online").
    teacher_cache_dir : `str`, optional
        Where cache files live; defaults to `$STRUCTKD_CACHE` or `~/.cache/structkd/teachers`.
    pairwise_top_k : `int`, optional
        Keep only the k largest pairwise marginals per token in the cache (bounds memory).
    relation_top_k_heads : `int`, optional
        For a parser student: keep each word's teacher relation distributions in the cache for its
        k most probable heads only (bounds memory: all of them take (longest sentence + 1) x R
        numbers per word). The other heads' relation terms are left out of the loss.
    teacher_cache_dtype : `str`
        How the cache stores marginals: "float16" (half the memory) or "float32" (exactly what
        the online teacher computes).
    teacher_cache_shard_size : `int`
        Sentences per shard of the cache: the unit of a resumed or distributed build.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        student: Lazy[Model],
        teacher_archive: str | dict[str, str],
        objective: KDObjective,
        teacher_key: str = "language",
        teacher_overrides: dict[str, Any] | None = None,
        teacher_device: int = -1,
        lambda_schedule: str = "constant",
        kd_lambda: float = 0.5,
        temperature: float = 1.0,
        temperature_kind: str = "local",
        teacher_cache: bool = False,
        teacher_cache_dir: str | None = None,
        pairwise_top_k: int | None = None,
        relation_top_k_heads: int | None = None,
        teacher_cache_dtype: str = "float16",
        teacher_cache_shard_size: int = 4096,
    ) -> None:
        super().__init__(vocab)
        if lambda_schedule not in ("constant", "teacher_annealing"):
            raise ValueError(f"lambda_schedule must be 'constant' or 'teacher_annealing', not {lambda_schedule!r}")
        self.student = student.construct(vocab=vocab)
        self.objective = objective
        self.temperature = Temperature(temperature_kind, temperature)
        self.lambda_schedule = lambda_schedule
        self.kd_lambda = kd_lambda
        self.teacher_key = teacher_key
        archives = teacher_archive if isinstance(teacher_archive, dict) else {"": teacher_archive}
        self.teacher_archives = archives
        # Teachers are kept out of the module tree: they are neither trained nor saved.
        self.teachers: dict[str, Model] = {}
        # How each teacher's labels read in the student's label space: a 0/1 matrix between two
        # taggers' label sets (None when equal); for a parser teacher, each student label's (or,
        # for a parser student, each student relation's) relation as an index of the teacher's.
        self.label_maps: dict[str, torch.Tensor | None] = {}
        student_kind = model_kind(self.student)
        self.student_is_crf = student_kind in CRF_TAGGERS
        self.student_is_parser = student_kind in PARSERS
        for name, path in archives.items():
            teacher = load_archive(path, overrides=teacher_overrides, cuda_device=teacher_device).model
            teacher.eval()
            teacher.requires_grad_(False)
            self.teachers[name] = teacher
            teacher_kind = model_kind(teacher)
            self.objective.check_pair(teacher_kind, student_kind)
            if teacher_kind in PARSERS:
                if student_kind not in SEQUENCE_LABELERS + PARSERS:
                    raise ValueError(f"a {teacher_kind} teacher distills into a parser or a sequence-labeling parser, not a {student_kind}")
                relation_index = {relation: i for i, relation in enumerate(teacher.relations)}
                student_relations = (
                    self.student.relations
                    if self.student_is_parser
                    else [self.student.relations[r] for r in self.student.label_relations.tolist()]
                )
                self.label_maps[name] = torch.tensor([relation_index.get(r, -1) for r in student_relations])
            elif self.student_is_parser or student_kind in SEQUENCE_LABELERS:
                raise ValueError(
                    f"teacher_archive {path} holds a {teacher_kind}, but the student is a {student_kind}, which parses: "
                    "it learns from a parser teacher"
                )
            else:
                same = list(teacher.labels) == list(self.student.labels)
                self.label_maps[name] = None if same else marginal_conversion_matrix(teacher.labels, self.student.labels)
        self.use_cache = teacher_cache
        default_dir = Path(os.environ.get("STRUCTKD_CACHE", Path.home() / ".cache" / "structkd")) / "teachers"
        self.cache_dir = Path(teacher_cache_dir) if teacher_cache_dir else default_dir
        self.pairwise_top_k = pairwise_top_k
        if relation_top_k_heads is not None and relation_top_k_heads < 1:
            raise ValueError(f"relation_top_k_heads must be at least 1, not {relation_top_k_heads}")
        self.relation_top_k_heads = relation_top_k_heads
        if teacher_cache_dtype not in ("float16", "float32"):
            raise ValueError(f"teacher_cache_dtype must be 'float16' or 'float32', not {teacher_cache_dtype!r}")
        self.cache_dtype = getattr(torch, teacher_cache_dtype)
        if teacher_cache_shard_size < 1:
            raise ValueError(f"teacher_cache_shard_size must be at least 1, not {teacher_cache_shard_size}")
        self.cache_shard_size = teacher_cache_shard_size
        self.caches: list[TeacherCache] = []
        self.progress = 0.0

    # ------------------------------------------------------------------ the Model API

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        batch = {"student": self.student.tensorize(instances), "instances": instances}
        knowledge = self._cached_knowledge(instances)
        if knowledge is not None:
            batch["knowledge"] = knowledge
        return batch

    def forward(self, student: dict[str, Any], instances: list[Instance], knowledge: TeacherKnowledge | None = None) -> dict[str, torch.Tensor]:
        output = self.student(**student)
        scores = parser_scores(self.student, output) if self.student_is_parser else tagger_scores(output)
        if knowledge is None:
            # The baseline needs nothing of the teacher: it is not run.
            knowledge = self._online_knowledge(instances, scores) if self.objective.distills else TeacherKnowledge(scores.mask)
        kd_loss = self.objective.loss(knowledge, scores, self.temperature, student.get("tags")).mean()
        if not self.objective.distills:
            weight = 0.0 if "loss" in output else 1.0
        else:
            weight = self.current_lambda() if "loss" in output else 1.0
        gold_loss = output.get("loss", kd_loss.new_zeros(()))
        output["kd_loss"] = kd_loss
        output["gold_loss"] = gold_loss
        output["loss"] = weight * kd_loss + (1 - weight) * gold_loss
        return output

    def make_predictions(self, output, batch):
        return self.student.make_predictions(output, batch["student"])

    def get_metrics(self, reset: bool = False) -> dict[str, float]:
        return self.student.get_metrics(reset)

    def set_training_progress(self, fraction: float) -> None:
        self.progress = fraction

    def current_lambda(self) -> float:
        return 1.0 - self.progress if self.lambda_schedule == "teacher_annealing" else self.kd_lambda

    def model_to_archive(self, model_config):
        return self.student, model_config["student"]

    # ------------------------------------------------------------------ teachers

    def _teacher_name(self, instance: Instance) -> str:
        if list(self.teachers) == [""]:
            return ""
        value = instance.get(self.teacher_key, instance.get("metadata", {}).get(self.teacher_key))
        if value not in self.teachers:
            raise ValueError(
                f"no teacher for {self.teacher_key}={value!r} (sentence {instance_key(instance)}); "
                f"teachers exist for {sorted(self.teachers)}"
            )
        return value

    def _teacher_knowledge(self, instances: list[Instance]) -> TeacherKnowledge:
        """Runs the teachers (each on its own sentences) and merges their knowledge."""
        needs = self.objective.needs(_KindOnly(self.student_is_crf, self.student_is_parser))
        groups: dict[str, list[int]] = {}
        for i, instance in enumerate(instances):
            groups.setdefault(self._teacher_name(instance), []).append(i)
        parts = []
        for name, rows in groups.items():
            teacher = self.teachers[name]
            # The teacher sees no gold annotation, only what its input may include (UPOS).
            unlabeled = [without_labels(instances[i], keep=INPUT_LABEL_KEYS) for i in rows]
            with torch.no_grad():
                output = teacher(**move_to_device(teacher.tensorize(unlabeled), teacher.device))
            k = getattr(self.objective, "k", 1)
            if self.student_is_parser:
                knowledge = parser_to_parser_knowledge(
                    parser_scores(teacher, output), needs, self.temperature, self.label_maps[name].to(teacher.device), k
                )
            elif isinstance(teacher, BiaffineParser):
                knowledge = parser_knowledge(
                    parser_scores(teacher, output), needs, self.temperature, *self._label_heads(unlabeled, name, teacher.device), k
                )
            else:
                knowledge = teacher_knowledge(tagger_scores(output), needs, self.temperature, self.label_maps[name], k)
            parts.append((rows, knowledge))
        return parts[0][1] if len(parts) == 1 else _merge(parts, len(instances))

    def _label_heads(self, instances: list[Instance], teacher_name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """For a parser teacher: the head each student label points to from each word `[B, n, L]`,
        and each label's relation among the teacher's `[L]`."""
        return self.student.label_heads_of(instances).to(device), self.label_maps[teacher_name].to(device)

    def _online_knowledge(self, instances: list[Instance], student: TaggerScores) -> TeacherKnowledge:
        return move_to_device(self._teacher_knowledge(instances), student.mask.device)

    def _cached_knowledge(self, instances: list[Instance]) -> TeacherKnowledge | None:
        for cache in self.caches:
            knowledge = cache.lookup(instances)
            if knowledge is not None:
                return knowledge
        return None

    def prepare_for_training(self, datasets: dict[str, list[Instance]]) -> None:
        """With `teacher_cache`, computes (or finds on disk) each dataset's teacher knowledge."""
        if not self.use_cache or not self.objective.distills:
            return
        description = {
            "needs": sorted(self.objective.needs(_KindOnly(self.student_is_crf, self.student_is_parser))),
            "temperature": [self.temperature.kind, self.temperature.value],
            "k": getattr(self.objective, "k", 1),
            "student_labels": list(self.student.relations if self.student_is_parser else self.student.labels),
            "pairwise_top_k": self.pairwise_top_k,
            "relation_top_k_heads": self.relation_top_k_heads,
            "dtype": str(self.cache_dtype),
            "teacher_key": self.teacher_key if len(self.teachers) > 1 else None,
        }
        teacher_digests = [f"{name}={file_digest(path)}" for name, path in self.teacher_archives.items()]
        for split, instances in datasets.items():
            if not instances:
                continue
            sources = sorted({instance.get("metadata", {}).get("source") for instance in instances} - {None})
            key = cache_key(teacher_digests, sources, {**description, "sentences": len(instances)})
            directory = self.cache_dir / key
            cache = TeacherCache.load(directory)
            if cache is None:
                logger.info("computing the teacher cache for %s (%d sentences) into %s", split, len(instances), directory)
                cache = TeacherCache.build(
                    directory,
                    [instance_key(instance) for instance in instances],
                    instance_lengths(instances),
                    lambda positions, instances=instances: self._teacher_knowledge([instances[i] for i in positions]),
                    storage_dtype=self.cache_dtype,
                    pairwise_top_k=self.pairwise_top_k,
                    relation_top_k_heads=self.relation_top_k_heads,
                    shard_size=self.cache_shard_size,
                )
            else:
                logger.info("reusing the teacher cache %s for %s", directory, split)
            self.caches.append(cache)


class _KindOnly:
    """Stands in for the student's scores where an objective only asks what kind of tagger it is."""

    def __init__(self, is_crf: bool, is_parser: bool = False) -> None:
        self.is_crf = is_crf
        self.is_parser = is_parser


def _merge(parts: list[tuple[list[int], TeacherKnowledge]], batch_size: int) -> TeacherKnowledge:
    """Scatters several teachers' knowledge (each on a subset of the batch) into one padded batch."""
    if any(knowledge.scores is not None for _, knowledge in parts):
        raise ValueError("objectives that match raw scores cannot mix several teachers in one batch")
    length = max(knowledge.mask.size(1) for _, knowledge in parts)
    merged: dict[str, torch.Tensor] = {}
    for rows, knowledge in parts:
        index = torch.tensor(rows)
        for name, tensor in knowledge.tensors().items():
            # The sentence-length dimension is 1, except for k-best lists [B, K, n].
            if name in ("kbest_tags", "kbest_relations"):
                tensor = pad_dim(tensor, 2, length)
            elif name != "kbest_log_probs":
                tensor = pad_dim(tensor, 1, length)
            if name in HEAD_INDEXED:
                tensor = pad_dim(tensor, 2, length + 1)
            if name not in merged:
                merged[name] = tensor.new_zeros(batch_size, *tensor.shape[1:])
            merged[name][index] = tensor
    return TeacherKnowledge(**merged)
