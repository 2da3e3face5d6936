"""A Hugging Face token classifier as a teacher: word scores from first subwords, labels matched by
name across schemes (with an error naming what cannot be matched), distilled like any softmax
teacher (cached as online)."""

import pytest
import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

from structkd_plugin.archival import load_teacher
from structkd_plugin.models.hf_token_classifier import HuggingFaceTokenClassifier, is_token_classifier_directory
from tests.distillation.test_distillation_model import build, distillation_config
from tests.modules.tiny_bert import build_tiny_bert, tiny_bert_vocabulary

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
BIOES = ["O"] + [f"{prefix}-{label}" for label in ("PER", "LOC", "ORG") for prefix in "BIES"]


def token_classifier(directory, labels, seed=0) -> str:
    """A tiny random BERT token classifier with `labels`, saved like a fine-tuned one."""
    vocabulary = tiny_bert_vocabulary()
    BertTokenizerFast(vocab=vocabulary).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64, id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    BertForTokenClassification(config).save_pretrained(directory)
    return str(directory)


def test_word_scores_are_the_first_subwords_logits(tmp_path):
    path = token_classifier(tmp_path, BIO)
    assert is_token_classifier_directory(path) and not is_token_classifier_directory(build_tiny_bert(tmp_path / "plain"))
    model = HuggingFaceTokenClassifier(None, path)
    assert model.labels == BIO and model.label_encoding == "BIO"
    words = [["john", "smith", "playing"], ["cats"]]
    output = model(**model.tensorize([{"words": sentence} for sentence in words]))
    reference = BertForTokenClassification.from_pretrained(path).eval()
    tokenizer = BertTokenizerFast.from_pretrained(path)
    for b, sentence in enumerate(words):
        encoded = tokenizer(sentence, is_split_into_words=True, return_tensors="pt")
        logits = reference(**encoded).logits[0]
        first = [encoded.word_ids(0).index(i) for i in range(len(sentence))]  # "playing" -> play ##ing: "play"
        assert torch.allclose(output["emissions"][b, : len(sentence)], logits[first], atol=1e-5)
    assert output["mask"].tolist() == [[True, True, True], [True, False, False]]
    scores = model.scores(output)
    assert scores.labels == tuple(BIO) and not scores.is_crf


@pytest.mark.parametrize("labels", [BIO, BIOES], ids=["BIO", "BIOES"])
def test_a_hugging_face_teacher_distills_into_a_crf_tagger(tmp_path, labels):
    teacher = token_classifier(tmp_path / "teacher", labels)
    config = distillation_config(teacher, {"type": "structural"}, tmp_path / "cache")
    online, instances = build(config)
    cached, _ = build(distillation_config(teacher, {"type": "structural"}, tmp_path / "cache", teacher_cache=True, teacher_cache_dtype="float32"))
    cached.student.load_state_dict(online.student.state_dict())
    cached.prepare_for_training({"train": instances})
    online.eval(), cached.eval()
    batch = instances[:5]
    online_loss = online(**online.tensorize(batch))["kd_loss"]
    assert torch.isfinite(online_loss)
    assert torch.allclose(online_loss, cached(**cached.tensorize(batch))["kd_loss"], atol=1e-5)
    token, _ = build(distillation_config(teacher, {"type": "token"}, tmp_path / "cache"))
    assert torch.isfinite(token(**token.tensorize(batch))["kd_loss"])


def test_a_label_the_student_cannot_take_is_named(tmp_path):
    teacher = token_classifier(tmp_path / "teacher", BIO + ["B-WEAPON", "I-WEAPON"])
    with pytest.raises(ValueError, match="B-WEAPON"):
        build(distillation_config(teacher, {"type": "structural"}, tmp_path / "cache"))


def test_load_teacher_reads_archives_and_directories(tmp_path):
    from structkd_plugin.archival import ArchiveError

    assert isinstance(load_teacher(token_classifier(tmp_path / "t", BIO)), HuggingFaceTokenClassifier)
    with pytest.raises(ArchiveError, match="teacher_overrides"):
        load_teacher(str(tmp_path / "t"), overrides='{"a": 1}')
