import numpy
import pytest
import torch
from tango.common import Params
from tango.common.exceptions import ConfigurationError

from structkd_plugin.data.vocabulary import Vocabulary
from structkd_plugin.modules import TokenEmbedder, WordEmbedder


def make_vocabulary(words):
    vocabulary = Vocabulary()
    for word in words:
        vocabulary.add_token_to_namespace(word, "tokens")
    return vocabulary


def test_unknown_words_map_to_index_one_and_padding_to_zero():
    embedder = WordEmbedder(make_vocabulary(["the", "cat"]), embedding_dim=4)
    token_ids = embedder.tensorize([["the", "cat", "sat"], ["The"]])["token_ids"]
    assert token_ids.tolist() == [[2, 3, 1], [1, 0, 0]]


def test_lowercase_lowercases_before_the_lookup():
    embedder = WordEmbedder(make_vocabulary(["the"]), embedding_dim=4, lowercase=True)
    assert embedder.tensorize([["The", "THE"]])["token_ids"].tolist() == [[2, 2]]


def test_forward_looks_rows_up_and_padding_is_zero_without_gradient():
    embedder = WordEmbedder(make_vocabulary(["the", "cat"]), embedding_dim=4)
    tensors = embedder.tensorize([["cat", "the"], ["dog"]])
    mask = torch.tensor([[True, True], [True, False]])
    vectors = embedder(tensors, mask)
    assert vectors.shape == (2, 2, 4)
    torch.testing.assert_close(vectors[0], embedder.weight[[3, 2]])
    torch.testing.assert_close(vectors[1, 0], embedder.weight[1])
    assert torch.all(vectors[1, 1] == 0)
    vectors.sum().backward()
    assert torch.all(embedder.weight.grad[0] == 0) and torch.all(embedder.weight.grad[1] == 1)


def test_not_trainable():
    embedder = WordEmbedder(make_vocabulary(["the"]), embedding_dim=3, trainable=False)
    assert not embedder.weight.requires_grad


FILE_VECTORS = {"the": [0.5, -1.0, 2.0], "cat": [1.0, 1.5, -0.25], "unused": [3.0, 3.0, 3.0], "new york": [1, 2, 3]}


def write_embeddings(path, vectors, header=False, extra_lines=()):
    lines = [f"{len(vectors)} 3"] if header else []
    lines += [word + " " + " ".join(str(value) for value in vector) for word, vector in vectors.items()]
    path.write_text("\n".join(lines + list(extra_lines)) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("header", [False, True])
def test_pretrained_rows_come_from_the_file(tmp_path, header):
    path = write_embeddings(tmp_path / "vectors.txt", FILE_VECTORS, header=header)
    vocabulary = make_vocabulary(["cat", "missing", "the", "new york"])
    weight = WordEmbedder(vocabulary, embedding_dim=3, pretrained_file=path).weight.detach()
    assert torch.all(weight[0] == 0)
    for word in ["cat", "the", "new york"]:
        torch.testing.assert_close(weight[vocabulary.get_token_index(word)], torch.tensor(FILE_VECTORS[word]).float())
    assert torch.all(torch.isfinite(weight))


def test_rows_missing_from_the_file_follow_its_mean_and_std(tmp_path):
    generator = numpy.random.default_rng(0)
    vectors = {f"w{i}": generator.normal(3.0, 0.5, size=3).round(4) for i in range(300)}
    path = write_embeddings(tmp_path / "vectors.txt", vectors)
    values = numpy.stack(list(vectors.values()))
    vocabulary = make_vocabulary([f"other{i}" for i in range(3000)])
    torch.manual_seed(0)
    weight = WordEmbedder(vocabulary, embedding_dim=3, pretrained_file=path).weight.detach()[2:]
    assert weight.mean().item() == pytest.approx(values.mean(), abs=0.03)
    assert weight.std().item() == pytest.approx(values.std(), abs=0.03)


def test_file_of_another_dimension_is_an_error(tmp_path):
    path = write_embeddings(tmp_path / "vectors.txt", FILE_VECTORS)
    with pytest.raises(ConfigurationError):
        WordEmbedder(make_vocabulary(["the"]), embedding_dim=2, pretrained_file=path)
    header_path = write_embeddings(tmp_path / "header.txt", FILE_VECTORS, header=True)
    with pytest.raises(ConfigurationError):
        WordEmbedder(make_vocabulary(["the"]), embedding_dim=4, pretrained_file=header_path)


def test_malformed_line_is_an_error_naming_it(tmp_path):
    path = write_embeddings(tmp_path / "vectors.txt", FILE_VECTORS, extra_lines=["dog 1.0 x 2.0"])
    with pytest.raises(ValueError, match="vectors.txt:5"):
        WordEmbedder(make_vocabulary(["the"]), embedding_dim=3, pretrained_file=path)


def test_from_params_receives_the_vocabulary_extra():
    embedder = TokenEmbedder.from_params(
        Params({"type": "word", "embedding_dim": 6, "lowercase": True}), vocab=make_vocabulary(["a", "b"])
    )
    assert isinstance(embedder, WordEmbedder)
    assert embedder.weight.shape == (4, 6) and embedder.get_output_dim() == 6


def test_lowercase_lookup_is_case_insensitive_over_the_vocabulary_as_written():
    from structkd_plugin.data import Vocabulary

    vocab = Vocabulary.from_instances([{"words": ["Lisboa", "Lisboa", "lisboa", "Porto"]}])
    embedder = WordEmbedder(vocab, embedding_dim=4, lowercase=True)
    ids = embedder.tensorize([["LISBOA", "lisboa", "porto", "Faro"]])["token_ids"][0].tolist()
    assert ids[0] == ids[1] == vocab.get_token_index("Lisboa", "tokens")  # the most frequent casing
    assert ids[2] == vocab.get_token_index("Porto", "tokens")  # seen only capitalized, still known
    assert ids[3] == vocab.get_token_index("@@UNKNOWN@@", "tokens")
