import torch

from structkd_plugin.data.vocabulary import Vocabulary
from structkd_plugin.modules import CharacterCnnEmbedder


def make_embedder(**kwargs):
    vocabulary = Vocabulary()
    for character in "abcdefghij":
        vocabulary.add_token_to_namespace(character, "characters")
    torch.manual_seed(0)
    return CharacterCnnEmbedder(vocabulary, embedding_dim=5, num_filters=4, **kwargs)


def embed(embedder, words):
    lengths = torch.tensor([len(sentence) for sentence in words])
    mask = torch.arange(int(lengths.max())) < lengths[:, None]
    return embedder(embedder.tensorize(words), mask)


def by_hand(embedder, word):
    """max over windows starting on each character of relu(filter . window), the characters
    after the end counting as zeros, for every filter width, concatenated."""
    ids = [embedder.vocab.get_token_index(character, "characters") for character in word]
    embedded = embedder.embedding.weight[ids]  # [L, E]
    pooled = []
    for convolution in embedder.convolutions:
        width = convolution.kernel_size[0]
        padded = torch.cat([embedded, torch.zeros(width - 1, embedded.shape[1])])
        windows = [
            torch.relu((convolution.weight * padded[start : start + width].T).sum((1, 2)) + convolution.bias)
            for start in range(len(word))
        ]
        pooled.append(torch.stack(windows).amax(0))
    return torch.cat(pooled)


def test_shapes_and_tensors():
    embedder = make_embedder(ngram_filter_sizes=(2, 3))
    tensors = embedder.tensorize([["abc", "de"], ["z"]])
    assert tensors["character_ids"].tolist() == [[[2, 3, 4], [5, 6, 0]], [[1, 0, 0], [0, 0, 0]]]
    vectors = embed(embedder, [["abc", "de"], ["z"]])
    assert vectors.shape == (2, 2, 8) and embedder.get_output_dim() == 8
    assert torch.all(vectors[1, 1] == 0)


def test_vectors_match_a_direct_computation_including_words_shorter_than_the_filter():
    embedder = make_embedder(ngram_filter_sizes=(2, 4))
    words = [["abcdef", "a", "ij"], ["bad"]]
    with torch.no_grad():
        vectors = embed(embedder, words)
        for row, sentence in enumerate(words):
            for column, word in enumerate(sentence):
                torch.testing.assert_close(vectors[row, column], by_hand(embedder, word))


def test_padding_characters_do_not_change_a_words_vector():
    embedder = make_embedder(ngram_filter_sizes=(3,))
    # A nonzero padding row must not leak in either.
    with torch.no_grad():
        embedder.embedding.weight[0] = 10.0
        alone = embed(embedder, [["ab"]])[0, 0]
        padded = embed(embedder, [["ab", "abcdefghij"]])[0, 0]
    torch.testing.assert_close(alone, padded)


def test_long_words_are_truncated_to_max_characters():
    embedder = make_embedder(max_characters=4)
    tensors = embedder.tensorize([["abcdefgh", "ab"]])
    assert tensors["character_ids"].shape == (1, 2, 4)
    with torch.no_grad():
        torch.testing.assert_close(embed(embedder, [["abcdefgh"]])[0, 0], by_hand(embedder, "abcd"))


def test_gradients_reach_the_character_embeddings_and_filters():
    embedder = make_embedder()
    embed(embedder, [["abc", "d"]]).sum().backward()
    assert embedder.embedding.weight.grad[2:6].abs().sum() > 0
    assert all(convolution.weight.grad is not None for convolution in embedder.convolutions)
