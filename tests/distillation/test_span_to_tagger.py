"""Case 4, `span_to_tagger`: a span scorer distilled into a tagger. The loss equals
-sum_y p_t(y) log p_s(y) enumerated over every set of spans y (read as the student's tags), for
softmax and CRF students and for BIO and BIOES; and the whole path (a span_ner teacher archive, the
distillation model, the cache) agrees with its online self."""

from dataclasses import dataclass

import pytest
import torch
from tango.common import Params

from structkd_plugin.distillation.knowledge import Temperature, tag_marginal_knowledge
from structkd_plugin.distillation.objectives import KDObjective
from structkd_plugin.models.scores import TaggerScores, TagMarginalScores
from structkd_plugin.models.span_ner import SpanScores
from structkd_plugin.structures import IndependentTags, LinearChainCRF
from structkd_plugin.structures.label_schemes import scheme_tag_set
from structkd_plugin.training.train import train_model
from tests.models.test_span_ner import span_ner_config
from tests.structures.test_span_segmentation import segmentations

LENGTHS = [3, 2, 1]


def sentence_tags(spans, length, labels, scheme):
    """The tags of a set of (start, end, label index) spans in `scheme`."""
    tags = ["O"] * length
    for start, end, r in spans:
        name = labels[r]
        if scheme == "BIOES" and start == end:
            tags[start] = f"S-{name}"
            continue
        tags[start] = f"B-{name}"
        for t in range(start + 1, end + 1):
            tags[t] = f"{'E' if scheme == 'BIOES' and t == end else 'I'}-{name}"
    return tags


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("crf", [False, True])
def test_span_to_tagger_is_the_cross_entropy_over_all_span_sets(scheme, crf):
    generator = torch.Generator().manual_seed(3)
    n, teacher_labels = max(LENGTHS), ("PER", "LOC")
    mask = torch.arange(n)[None, :] < torch.tensor(LENGTHS)[:, None]
    span_scores = torch.randn(len(LENGTHS), n, n, 2, generator=generator, dtype=torch.float64) * 2
    teacher = SpanScores(span_scores=span_scores, mask=mask, labels=teacher_labels)
    # The student's labels in another order, with a type the teacher does not have.
    student_labels = tuple(reversed(scheme_tag_set(["LOC", "PER", "MISC"], scheme)))
    size = len(student_labels)
    emissions = torch.randn(len(LENGTHS), n, size, generator=generator, dtype=torch.float64)
    transitions = torch.randn(size, size, generator=generator, dtype=torch.float64) if crf else None
    student = TaggerScores(emissions, mask, transitions, labels=student_labels, label_encoding=scheme)
    objective = KDObjective.by_name("span_to_tagger")()
    knowledge = tag_marginal_knowledge(teacher, objective.needs(student), Temperature(), student_labels, scheme)
    loss = objective.loss(knowledge, student, Temperature())

    log_z = student.distribution().log_partition()
    for b, length in enumerate(LENGTHS):
        structures = segmentations(length, 2, length)
        scores = teacher.span_scores[b]
        totals = torch.stack([sum((scores[i, j, r] for i, j, r in spans), scores.new_zeros(())) for spans in structures])
        expected = scores.new_zeros(())
        for probability, spans in zip(totals.softmax(0), structures):
            tags = torch.tensor([[student_labels.index(t) for t in sentence_tags(spans, length, teacher_labels, scheme)]])
            one = (emissions[b : b + 1, :length], mask[b : b + 1, :length])
            distribution = LinearChainCRF(*one[:1], transitions, one[1]) if crf else IndependentTags(*one)
            expected = expected - probability * (distribution.log_score(tags)[0] - distribution.log_partition()[0])
        assert torch.allclose(loss[b], expected, atol=1e-9), (b, float(loss[b]), float(expected))
        assert torch.allclose(log_z[b], student.distribution().log_partition()[b])


def test_a_span_ner_teacher_distills_into_a_crf_tagger_cached_as_online(tmp_path):
    from tests.distillation.test_distillation_model import build, distillation_config

    train_model(Params(span_ner_config(num_epochs=1)), tmp_path / "teacher")
    teacher = tmp_path / "teacher" / "model.tar.gz"
    online, instances = build(distillation_config(teacher, {"type": "span_to_tagger"}, tmp_path / "cache"))
    cached, _ = build(distillation_config(teacher, {"type": "span_to_tagger"}, tmp_path / "cache", teacher_cache=True, teacher_cache_dtype="float32"))
    cached.student.load_state_dict(online.student.state_dict())
    cached.prepare_for_training({"train": instances})
    online.eval(), cached.eval()
    batch = instances[:6]
    online_loss = online(**online.tensorize(batch))["kd_loss"]
    cached_batch = cached.tensorize(batch)
    assert "knowledge" in cached_batch
    assert torch.allclose(online_loss, cached(**cached_batch)["kd_loss"], atol=1e-5)
    with pytest.raises(ValueError, match="needs \\['token_probs'\\] of the teacher, which a span scorer cannot give"):
        build(distillation_config(teacher, {"type": "token"}, tmp_path / "cache"))
    with pytest.raises(ValueError, match="'crf_to_crf' distills a crf teacher .* the teacher is a span scorer"):
        build(distillation_config(teacher, {"type": "crf_to_crf"}, tmp_path / "cache"))


@dataclass(kw_only=True)
class CertainSpans(TagMarginalScores):
    """A teacher of a new kind, defined here alone: it is certain of one BIO tag sequence per
    sentence (`tags [B, n]`, indices of `scheme_tag_set(labels, "BIO")`)."""

    tags: torch.Tensor
    description = "certain tagger"

    def tag_marginals(self, scheme, temperature=1.0):
        names = scheme_tag_set(list(self.labels), scheme)
        one_hot = torch.nn.functional.one_hot(self.tags, len(names)).double() * self.mask[..., None]
        return one_hot, names

    def pairwise_tag_marginals(self, scheme, temperature=1.0):
        unary, names = self.tag_marginals(scheme)
        pairwise = unary[:, :-1, :, None] * unary[:, 1:, None, :]
        return torch.cat([torch.zeros_like(pairwise[:, :1]), pairwise], dim=1), names


@pytest.mark.parametrize("crf", [False, True])
def test_any_tag_marginal_teacher_distills_with_no_change_outside_its_file(crf):
    """The knowledge builder and the objectives take a `TagMarginalScores` they have never seen:
    a teacher certain of its tags makes structural KD the student's negative log-likelihood of them."""
    generator = torch.Generator().manual_seed(5)
    labels = ("PER", "LOC")
    names = tuple(scheme_tag_set(list(labels), "BIO"))
    mask = torch.arange(3)[None, :] < torch.tensor(LENGTHS)[:, None]
    tags = torch.tensor([[1, 2, 0], [3, 0, 0], [0, 0, 0]])
    teacher = CertainSpans(tags=tags, mask=mask, labels=labels)
    emissions = torch.randn(len(LENGTHS), 3, len(names), generator=generator, dtype=torch.float64)
    transitions = torch.randn(len(names), len(names), generator=generator, dtype=torch.float64) if crf else None
    student = TaggerScores(emissions, mask, transitions, labels=names, label_encoding="BIO")
    objective = KDObjective.by_name("structural")()
    objective.check_pair(teacher, student)
    knowledge = tag_marginal_knowledge(teacher, objective.needs(student), Temperature(), names, "BIO")
    distribution = student.distribution()
    expected = distribution.log_partition() - distribution.log_score(tags)
    assert torch.allclose(objective.loss(knowledge, student, Temperature()), expected, atol=1e-9)
