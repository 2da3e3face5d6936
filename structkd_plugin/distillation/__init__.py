"""Distillation: the `distillation` model and the registry of KD objectives."""

from structkd_plugin.distillation.distillation_model import DistillationModel
from structkd_plugin.distillation.knowledge import TeacherKnowledge, Temperature, teacher_knowledge
from structkd_plugin.distillation.objectives import KDObjective

__all__ = ["DistillationModel", "KDObjective", "TeacherKnowledge", "Temperature", "teacher_knowledge"]
