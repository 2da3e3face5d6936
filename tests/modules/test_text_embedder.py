import torch
from tango.common import FromParams, Lazy, Params

from structkd_plugin.data.vocabulary import Vocabulary
from structkd_plugin.modules import BasicTextEmbedder, CharacterCnnEmbedder, TextEmbedder, WordEmbedder



def config():
    """A fresh config each time: building from `Params` consumes it."""
    return {
        "token_embedders": {
            "tokens": {"type": "word", "embedding_dim": 5},
            "characters": {"type": "character_cnn", "embedding_dim": 3, "num_filters": 4, "ngram_filter_sizes": [2, 3]},
        }
    }


def make_vocabulary():
    vocabulary = Vocabulary()
    for word in ["the", "cat"]:
        vocabulary.add_token_to_namespace(word, "tokens")
    for character in "thecat":
        vocabulary.add_token_to_namespace(character, "characters")
    return vocabulary


def test_nested_from_params_passes_the_vocabulary_to_every_token_embedder():
    vocabulary = make_vocabulary()
    embedder = TextEmbedder.from_params(Params(config()), vocab=vocabulary)
    assert isinstance(embedder, BasicTextEmbedder)
    assert isinstance(embedder.token_embedders["tokens"], WordEmbedder)
    assert isinstance(embedder.token_embedders["characters"], CharacterCnnEmbedder)
    assert embedder.token_embedders["tokens"].vocab is vocabulary
    assert embedder.token_embedders["characters"].vocab is vocabulary
    assert embedder.get_output_dim() == 5 + 8


def test_output_concatenates_in_sorted_name_order():
    embedder = TextEmbedder.from_params(Params({"type": "basic", **config()}), vocab=make_vocabulary())
    words = [["the", "cat", "dog"], ["cat"]]
    mask = torch.tensor([[True, True, True], [True, False, False]])
    tensors = embedder.tensorize(words)
    assert set(tensors) == {"tokens", "characters"}
    assert tensors["tokens"]["token_ids"].tolist() == [[2, 3, 1], [3, 0, 0]]
    vectors = embedder(tensors, mask)
    assert vectors.shape == (2, 3, 13)
    characters = embedder.token_embedders["characters"](tensors["characters"], mask)
    tokens = embedder.token_embedders["tokens"](tensors["tokens"], mask)
    torch.testing.assert_close(vectors, torch.cat([characters, tokens], dim=-1))


class Holder(FromParams):
    """How a model receives a text embedder that needs the vocabulary."""

    def __init__(self, vocab: Vocabulary, text_embedder: Lazy[TextEmbedder]) -> None:
        self.text_embedder = text_embedder.construct(vocab=vocab)


def test_lazy_text_embedder_argument_is_built_with_the_vocabulary():
    vocabulary = make_vocabulary()
    holder = Holder.from_params(Params({"text_embedder": config()}), vocab=vocabulary)
    assert holder.text_embedder.token_embedders["tokens"].vocab is vocabulary
