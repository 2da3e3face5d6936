import pytest
import torch
from tango.common import Params
from tango.common.exceptions import ConfigurationError
from transformers import AutoModel

from structkd_plugin.data.vocabulary import Vocabulary
from structkd_plugin.modules import TokenEmbedder, TransformerEmbedder
from tests.modules.tiny_bert import build_tiny_bert, tiny_bert_vocabulary

PIECE_ID = tiny_bert_vocabulary()
CLS, SEP, UNK = PIECE_ID["[CLS]"], PIECE_ID["[SEP]"], PIECE_ID["[UNK]"]


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def bert(bert_path):
    return AutoModel.from_pretrained(bert_path, local_files_only=True).eval()


def embed(embedder, words):
    tensors = embedder.tensorize(words)
    lengths = torch.tensor([len(sentence) for sentence in words])
    mask = torch.arange(int(lengths.max())) < lengths[:, None]
    return embedder(tensors, mask), tensors


def run_alone(bert, piece_ids):
    """The last hidden states of one unpadded [CLS] pieces [SEP] input."""
    with torch.no_grad():
        return bert(input_ids=torch.tensor([[CLS] + piece_ids + [SEP]])).last_hidden_state[0]


def pieces_of(*pieces):
    return [PIECE_ID[piece] for piece in pieces]


def test_first_piece_pooling_picks_each_words_first_piece(bert_path, bert):
    embedder = TransformerEmbedder(bert_path).eval()
    words = [["the", "cats", "playing"], ["xyz", "dog"]]
    with torch.no_grad():
        vectors, _ = embed(embedder, words)
    assert vectors.shape == (2, 3, 32)
    # the | cat ##s | play ##ing: first pieces at 1, 2, 4 counting [CLS] as 0.
    first = run_alone(bert, pieces_of("the", "cat", "##s", "play", "##ing"))
    torch.testing.assert_close(vectors[0], first[[1, 2, 4]])
    # x ##y ##z | dog: first pieces at 1 and 4; the second sentence is padded in the batch.
    second = run_alone(bert, pieces_of("x", "##y", "##z", "dog"))
    torch.testing.assert_close(vectors[1, :2], second[[1, 4]])
    assert torch.all(vectors[1, 2] == 0)


def make_context_free(embedder):
    """Zeroes attention outputs and position embeddings: each hidden state then depends only on
    its own piece, wherever and with whatever neighbours it is."""
    with torch.no_grad():
        embedder.transformer.embeddings.position_embeddings.weight.zero_()
        for layer in embedder.transformer.encoder.layer:
            layer.attention.output.dense.weight.zero_()
            layer.attention.output.dense.bias.zero_()


LONG_SENTENCE = "john smith went to new york and the cats playing with xyz dogs ran to the dog .".split()


def test_windows_give_each_word_its_own_vector(bert_path):
    windowed = TransformerEmbedder(bert_path, max_length=7).eval()
    whole = TransformerEmbedder(bert_path).eval()
    make_context_free(windowed)
    make_context_free(whole)
    words = [LONG_SENTENCE, ["the", "cat"]]
    with torch.no_grad():
        windowed_vectors, tensors = embed(windowed, words)
        whole_vectors, whole_tensors = embed(whole, words)
    assert tensors["input_ids"].shape[0] > 3 and tensors["input_ids"].shape[1] <= 7
    assert whole_tensors["input_ids"].shape[0] == 2
    torch.testing.assert_close(windowed_vectors, whole_vectors)


def window_vectors_by_hand(bert, piece_ids, first_pieces, width):
    """Each word's vector from the window where its first piece is most central, computed
    by trying every window."""
    stride = width // 2
    starts = list(range(0, len(piece_ids) - width, stride)) + [len(piece_ids) - width]
    outputs = {start: run_alone(bert, piece_ids[start : start + width]) for start in starts}
    vectors = []
    for piece in first_pieces:
        candidates = [start for start in starts if start <= piece < start + width]
        best = min(candidates, key=lambda start: abs((piece - start) - (width - 1) / 2))
        vectors.append(outputs[best][1 + piece - best])
    return torch.stack(vectors)


def test_long_sentence_is_windowed_and_matches_the_model_on_each_window(bert_path, bert):
    max_length = 8
    embedder = TransformerEmbedder(bert_path, max_length=max_length).eval()
    sentence = ["the", "cats", "went", "playing", "xyz", "to", "john", "smith", "dogs", "ran", "."]
    with torch.no_grad():
        vectors, tensors = embed(embedder, [["a"], sentence])
    encoding = embedder.tokenizer(sentence, is_split_into_words=True, add_special_tokens=False)
    piece_ids = encoding["input_ids"]
    assert len(piece_ids) > max_length
    first_pieces = [encoding.word_ids().index(word) for word in range(len(sentence))]
    expected = window_vectors_by_hand(bert, piece_ids, first_pieces, width=max_length - 2)
    torch.testing.assert_close(vectors[1, : len(sentence)], expected)
    torch.testing.assert_close(vectors[0, 0], run_alone(bert, pieces_of("a"))[1])
    # The windows do change the vectors of this (contextual) model: windowing really happened.
    with torch.no_grad():
        whole, _ = embed(TransformerEmbedder(bert_path).eval(), [sentence])
    assert not torch.allclose(whole[0], vectors[1, : len(sentence)])


def test_sentence_that_just_fits_is_not_windowed(bert_path, bert):
    sentence = ["the", "cats", "playing"]  # 5 pieces
    embedder = TransformerEmbedder(bert_path, max_length=7).eval()
    with torch.no_grad():
        vectors, tensors = embed(embedder, [sentence])
    assert tensors["input_ids"].shape == (1, 7)
    torch.testing.assert_close(vectors[0], run_alone(bert, pieces_of("the", "cat", "##s", "play", "##ing"))[[1, 2, 4]])


def test_max_length_defaults_to_the_models_limit(tmp_path):
    assert TransformerEmbedder(build_tiny_bert(tmp_path, max_position_embeddings=40)).max_length == 40


def test_word_without_pieces_becomes_the_unknown_token(bert_path):
    embedder = TransformerEmbedder(bert_path).eval()
    tensors = embedder.tensorize([["the", "\u200b", "cat"]])
    assert tensors["input_ids"].tolist() == [[CLS, PIECE_ID["the"], UNK, PIECE_ID["cat"], SEP]]
    assert tensors["piece_index"].tolist() == [[1, 2, 3]]


def test_freezing_leaves_no_trainable_parameters(bert_path):
    embedder = TransformerEmbedder(bert_path, freeze=True)
    assert not any(parameter.requires_grad for parameter in embedder.parameters())
    embedder.train()
    assert not embedder.transformer.training
    with_mix = TransformerEmbedder(bert_path, layers="scalar_mix", freeze=True)
    trainable = [name for name, parameter in with_mix.named_parameters() if parameter.requires_grad]
    assert trainable and all(name.startswith("scalar_mix.") for name in trainable)


def test_scalar_mix_is_a_softmax_weighted_sum_and_gets_gradients(bert_path, bert):
    embedder = TransformerEmbedder(bert_path, layers="scalar_mix").eval()
    weights = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        for parameter, weight in zip(embedder.scalar_mix.scalar_parameters, weights):
            parameter.fill_(weight)
        embedder.scalar_mix.gamma.fill_(1.5)
    vectors, _ = embed(embedder, [["the", "cats"]])
    with torch.no_grad():
        hidden = bert(input_ids=torch.tensor([pieces_of("[CLS]", "the", "cat", "##s", "[SEP]")]), output_hidden_states=True)
    layers = torch.stack([states[0, [1, 2]] for states in hidden.hidden_states])
    expected = 1.5 * (torch.softmax(weights, 0)[:, None, None] * layers).sum(0)
    torch.testing.assert_close(vectors[0], expected)
    vectors.sum().backward()
    assert all(parameter.grad is not None and parameter.grad.abs().item() > 0 for parameter in embedder.scalar_mix.scalar_parameters)
    assert embedder.scalar_mix.gamma.grad is not None


def test_from_params_ignores_the_vocabulary_extra(bert_path):
    embedder = TokenEmbedder.from_params(
        Params({"type": "transformer", "model_path": bert_path, "layers": "scalar_mix"}), vocab=Vocabulary()
    )
    assert isinstance(embedder, TransformerEmbedder)
    assert embedder.get_output_dim() == 32


def count_transformer_windows(embedder):
    """Wraps the transformer's forward to record how many windows each call runs."""
    calls = []
    forward = embedder.transformer.forward

    def counting(*args, input_ids, **kwargs):
        calls.append(input_ids.shape[0])
        return forward(*args, input_ids=input_ids, **kwargs)

    embedder.transformer.forward = counting
    return calls


@pytest.mark.parametrize("layers", ["last", "scalar_mix"])
def test_cached_windows_skip_the_transformer_and_give_the_same_vectors(bert_path, layers):
    plain = TransformerEmbedder(bert_path, layers=layers, freeze=True)
    cached = TransformerEmbedder(bert_path, layers=layers, freeze=True, cache_windows=10)
    cached.load_state_dict(plain.state_dict())
    calls = count_transformer_windows(cached)
    seen, new = [["the", "cats", "playing"], ["xyz", "dog"]], [["dog", "the"]]
    first, _ = embed(cached, seen)
    assert calls == [2]
    # The second batch holds one new sentence and both seen ones, in another order and padding.
    batch = [seen[1], new[0], seen[0]]
    again, _ = embed(cached, batch)
    assert calls == [2, 1]
    torch.testing.assert_close(again, embed(plain, batch)[0])
    torch.testing.assert_close(first, embed(plain, seen)[0])
    embed(cached, batch)
    assert calls == [2, 1]


def test_the_cache_keeps_at_most_cache_windows_windows(bert_path):
    embedder = TransformerEmbedder(bert_path, freeze=True, cache_windows=1)
    calls = count_transformer_windows(embedder)
    words = [["the", "cats"], ["dog"]]
    embed(embedder, words)
    embed(embedder, words)
    assert calls == [2, 1]
    assert len(embedder._window_cache) == 1


def test_loading_weights_empties_the_cache(bert_path):
    embedder = TransformerEmbedder(bert_path, freeze=True, cache_windows=10)
    embed(embedder, [["the", "cats"]])
    state = {name: tensor + 1 for name, tensor in embedder.state_dict().items()}
    embedder.load_state_dict(state)
    assert not embedder._window_cache


def test_a_cache_needs_a_frozen_transformer(bert_path):
    with pytest.raises(ConfigurationError, match="cache_windows needs freeze"):
        TransformerEmbedder(bert_path, cache_windows=10)


def test_the_cache_serves_training_only(bert_path):
    embedder = TransformerEmbedder(bert_path, freeze=True, cache_windows=10).eval()
    calls = count_transformer_windows(embedder)
    embed(embedder, [["the", "cats"]])
    embed(embedder, [["the", "cats"]])
    assert calls == [1, 1] and not embedder._window_cache
