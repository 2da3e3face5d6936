"""`distillation`: trains a student model to imitate one or more frozen, archived teachers."""

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tango.common import Lazy
from tango.common.exceptions import ConfigurationError

from structkd_plugin.archival import load_teacher
from structkd_plugin.data import INPUT_LABEL_KEYS, Vocabulary, move_to_device, without_labels
from structkd_plugin.data.sentence_store import instance_lengths
from structkd_plugin.distillation.knowledge import (
    TeacherKnowledge,
    Temperature,
    parser_knowledge,
    parser_to_parser_knowledge,
    tag_marginal_knowledge,
    teacher_knowledge,
)
from structkd_plugin.distillation.objectives import KDObjective
from structkd_plugin.distillation.settings import ConstantLambda, LambdaSchedule, TeacherCacheSettings, flat_settings_problem
from structkd_plugin.distillation.teacher_cache import HEAD_INDEXED, TeacherCache, cache_key, file_digest, instance_key, pad_dim
from structkd_plugin.models.model import Instance, Model
from structkd_plugin.models.scores import LabelerScores, ParserScores, Scores, TaggerScores, TagMarginalScores, describe
from structkd_plugin.structures.label_schemes import marginal_conversion_matrix, same_name_matrix

logger = logging.getLogger(__name__)


PROBE = [{"words": ["probe"], "upos": ["NOUN"]}]
"""A one-word sentence (with the UPOS some models read) that shows what a model's scores are."""


def probe_scores(model: Model) -> Scores:
    """The typed scores `model` gives (`Model.scores`), from a forward pass over `PROBE`: what kind
    of teacher or student it is, with its label sets, known before any data is read."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = model.scores(model(**move_to_device(model.tensorize(PROBE), model.device)))
    model.train(was_training)
    return scores


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
        The teacher's `model.tar.gz`: a tagger or a `span_ner` model for a tagger student; a parser
        for a parser student or for a sequence-labeling parser (Wang et al.'s cases 1b, 2b); or a
        Hugging Face token classifier's directory (`save_pretrained`'s, used as it is: a softmax
        teacher); or a mapping from a value of `teacher_key` (e.g. a language) to a teacher, so
        several monolingual teachers distill into one student.
    objective : `KDObjective`
        The KD objective by name, with its parameters (`{"type": "structural"}`, `{"type":
        "top_k", "k": 5}`, ...).
    teacher_key : `str`
        With several teachers: the instance field (or metadata field) that picks one.
    teacher_overrides : `dict`, optional
        Overrides applied to each teacher's config when loading it.
    teacher_device : `int`
        The teacher's CUDA device, -1 for the CPU.
    lambda_schedule : `LambdaSchedule`
        How the KD weight lambda changes over training: `{type: "constant", value: 0.5}` (the
        default) or `{type: "teacher_annealing"}` (from 1 to 0 linearly, as in Clark et al. 2019
        and Wang et al.'s code).
    temperature : `Temperature`
        `{kind, value}`: student scores are divided by T = `value` and the loss multiplied by T^2;
        `kind` "local" tempers the teacher's per-position marginals, "global" divides its
        whole-structure scores (see `knowledge.py`).
    teacher_cache : `TeacherCacheSettings`, optional
        Precompute the teacher's knowledge once before training, on disk (see
        `settings.TeacherCacheSettings` for its keys); without it the teacher runs at every step.
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
        lambda_schedule: LambdaSchedule | None = None,
        temperature: Temperature | None = None,
        teacher_cache: TeacherCacheSettings | None = None,
    ) -> None:
        super().__init__(vocab)
        self.student = student.construct(vocab=vocab)
        self.objective = objective
        self.temperature = temperature or Temperature()
        self.lambda_schedule = lambda_schedule or ConstantLambda()
        self.teacher_key = teacher_key
        archives = teacher_archive if isinstance(teacher_archive, dict) else {"": teacher_archive}
        self.teacher_archives = archives
        # Teachers are kept out of the module tree: they are neither trained nor saved.
        self.teachers: dict[str, Model] = {}
        # How each teacher's labels read in the student's label space: a 0/1 matrix between two
        # taggers' label sets (None when equal); for a parser teacher, each student label's (or,
        # for a parser student, each student relation's) relation as an index of the teacher's.
        self.label_maps: dict[str, torch.Tensor | None] = {}
        # What the student and each teacher give (their typed scores) decides everything below.
        self.student_scores = probe_scores(self.student)
        self.student_is_parser = isinstance(self.student_scores, ParserScores)
        for name, path in archives.items():
            teacher = load_teacher(path, overrides=teacher_overrides, cuda_device=teacher_device)
            teacher.eval()
            teacher.requires_grad_(False)
            self.teachers[name] = teacher
            teacher_scores = probe_scores(teacher)
            self.objective.check_pair(teacher_scores, self.student_scores)
            self.label_maps[name] = self._label_map(teacher_scores, path)
        self.cache_settings = teacher_cache
        self.caches: list[TeacherCache] = []
        self.progress = 0.0

    @classmethod
    def from_params(cls, params_, constructor_to_call=None, constructor_to_inspect=None, **extras):
        """As every component's, after refusing the flat settings of older configs with what to
        write instead (see `settings.flat_settings_problem`)."""
        problem = flat_settings_problem(params_.as_dict(quiet=True))
        if problem is not None:
            raise ConfigurationError(problem)
        return super().from_params(
            params_, constructor_to_call=constructor_to_call, constructor_to_inspect=constructor_to_inspect, **extras
        )

    def _label_map(self, teacher: Scores, path: str) -> torch.Tensor | None:
        """How the teacher's labels read in the student's label space (see `label_maps`)."""
        student = self.student_scores
        if isinstance(teacher, ParserScores):
            if isinstance(student, ParserScores):
                student_relations = student.relations
            elif isinstance(student, LabelerScores):
                student_relations = [student.relations[r] for r in student.label_relations.tolist()]
            else:
                raise ValueError(
                    f"a {describe(teacher)} teacher distills into a parser or a sequence-labeling parser, not a {describe(student)}"
                )
            relation_index = {relation: i for i, relation in enumerate(teacher.relations)}
            return torch.tensor([relation_index.get(r, -1) for r in student_relations])
        if isinstance(teacher, TagMarginalScores):
            if isinstance(student, (ParserScores, LabelerScores)) or student.label_encoding not in ("BIO", "BIOES"):
                raise ValueError(
                    f"a {describe(teacher)} teacher ({path}) distills into a tagger whose label_encoding is BIO or BIOES, "
                    f"not a {describe(student)} with label_encoding {getattr(student, 'label_encoding', None)}"
                )
            needs = self.objective.needs(student) - {"unary", "pairwise"}
            if needs:
                raise ValueError(
                    f"objective {type(self.objective).__name__} needs {sorted(needs)} of the teacher, which a "
                    f"{describe(teacher)} cannot give (it gives tag marginals): use span_to_tagger, structural or posterior"
                )
            return None
        if isinstance(student, (ParserScores, LabelerScores)):
            raise ValueError(
                f"teacher_archive {path} holds a {describe(teacher)}, but the student is a {describe(student)}, which parses: "
                "it learns from a parser teacher"
            )
        if teacher.labels == student.labels:
            return None
        if teacher.label_encoding is None and student.label_encoding is None:
            # Tags that are not spans (parts of speech): matched by name.
            return same_name_matrix(list(teacher.labels), list(student.labels))
        schemes = {"source_scheme": teacher.label_encoding, "target_scheme": student.label_encoding}
        return marginal_conversion_matrix(list(teacher.labels), list(student.labels), **schemes)

    # ------------------------------------------------------------------ the Model API

    def tensorize(self, instances: list[Instance]) -> dict[str, Any]:
        batch = {"student": self.student.tensorize(instances), "instances": instances}
        knowledge = self._cached_knowledge(instances)
        if knowledge is not None:
            batch["knowledge"] = knowledge
        return batch

    def forward(self, student: dict[str, Any], instances: list[Instance], knowledge: TeacherKnowledge | None = None) -> dict[str, torch.Tensor]:
        output = self.student(**student)
        scores = self.student.scores(output)
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
        return self.lambda_schedule.weight(self.progress)

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
        needs = self.objective.needs(self.student_scores)
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
            scores = teacher.scores(output)
            label_map = self.label_maps[name]
            if self.student_is_parser:
                knowledge = parser_to_parser_knowledge(scores, needs, self.temperature, label_map.to(teacher.device), k)
            elif isinstance(scores, TagMarginalScores):
                student = self.student_scores
                knowledge = tag_marginal_knowledge(scores, needs, self.temperature, student.labels, student.label_encoding)
            elif isinstance(scores, ParserScores):
                label_heads = self.student_scores.label_heads_of(unlabeled).to(teacher.device)
                knowledge = parser_knowledge(scores, needs, self.temperature, label_heads, label_map.to(teacher.device), k)
            else:
                knowledge = teacher_knowledge(scores, needs, self.temperature, label_map, k)
            parts.append((rows, knowledge))
        return parts[0][1] if len(parts) == 1 else _merge(parts, len(instances))

    def _online_knowledge(self, instances: list[Instance], student: TaggerScores) -> TeacherKnowledge:
        return move_to_device(self._teacher_knowledge(instances), student.mask.device)

    def _cached_knowledge(self, instances: list[Instance]) -> TeacherKnowledge | None:
        for cache in self.caches:
            knowledge = cache.lookup(instances)
            if knowledge is not None:
                return knowledge
        return None

    def check_datasets(self, names):
        if self.objective.needs_gold and "unlabeled" in names:
            raise ConfigurationError(
                f"objective {type(self.objective).__name__} builds its teacher from gold tags, so it cannot train on "
                "unlabeled text: remove unlabeled_data_path, and with gold_fraction set gold_fraction_rest: \"dropped\""
            )

    def prepare_for_training(self, datasets: dict[str, list[Instance]]) -> None:
        """With `teacher_cache`, computes (or finds on disk) each dataset's teacher knowledge."""
        settings = self.cache_settings
        if settings is None or not self.objective.distills:
            return
        description = {
            "needs": sorted(self.objective.needs(self.student_scores)),
            "temperature": [self.temperature.kind, self.temperature.value],
            "k": getattr(self.objective, "k", 1),
            "student_labels": list(self.student_scores.relations if self.student_is_parser else self.student_scores.labels),
            "pairwise_top_k": settings.pairwise_top_k,
            "relation_top_k_heads": settings.relation_top_k_heads,
            "dtype": str(settings.dtype),
            "teacher_key": self.teacher_key if len(self.teachers) > 1 else None,
        }
        teacher_digests = [f"{name}={file_digest(path)}" for name, path in self.teacher_archives.items()]
        for split, instances in datasets.items():
            if not instances:
                continue
            sources = sorted({instance.get("metadata", {}).get("source") for instance in instances} - {None})
            key = cache_key(teacher_digests, sources, {**description, "sentences": len(instances)})
            directory = settings.directory / key
            with _building_alone(directory):
                cache = self._cache(split, instances, directory, settings)
            self.caches.append(cache)

    def _cache(self, split: str, instances: list[Instance], directory: Path, settings: TeacherCacheSettings) -> TeacherCache:
        """The cache of `directory`, built first when it does not exist."""
        cache = TeacherCache.load(directory)
        if cache is not None:
            logger.info("reusing the teacher cache %s for %s", directory, split)
            return cache
        logger.info("computing the teacher cache for %s (%d sentences) into %s", split, len(instances), directory)
        return TeacherCache.build(
            directory,
            [instance_key(instance) for instance in instances],
            instance_lengths(instances),
            lambda positions, instances=instances: self._teacher_knowledge([instances[i] for i in positions]),
            storage_dtype=settings.dtype,
            pairwise_top_k=settings.pairwise_top_k,
            relation_top_k_heads=settings.relation_top_k_heads,
            shard_size=settings.shard_size,
        )


@contextmanager
def _building_alone(directory: Path) -> Iterator[None]:
    """Holds an exclusive lock on `directory`'s cache while the block runs, so that two runs
    needing the same cache (cells of one experiment) build it once: the second waits, then reads
    it. Not taken in a distributed run, whose ranks build their shares together."""
    if dist.is_initialized():
        yield
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

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
