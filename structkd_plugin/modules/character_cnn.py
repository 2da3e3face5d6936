"""`character_cnn`: a word's vector from convolutions over its characters, max-pooled.

`tensorize` returns `{"character_ids": [B, n, C]}`: each word's characters looked up in a
vocabulary namespace (unknown characters get index 1, padding is 0), `C` the longest word of the
batch. Words longer than `max_characters` are truncated to their first `max_characters` characters,
which bounds memory on junk tokens (URLs, long numbers) and leaves ordinary words untouched.

`forward`, for each filter width `k`: embeds the characters, runs a width-`k` convolution whose
windows start at every real character of the word (characters past its end count as zero vectors,
so words shorter than `k` still get a window), applies ReLU and takes the maximum over window
positions. Padding characters never enter a result: their embeddings are zeroed and windows starting
on them are excluded, so a word's vector does not depend on how far the batch is padded. The vectors
of all widths are concatenated: `[B, n, num_filters * len(ngram_filter_sizes)]`. Only the real
words of the batch are convolved; padded positions are zero.
"""

import torch

from structkd_plugin.data.vocabulary import Vocabulary
from structkd_plugin.modules.token_embedder import TokenEmbedder


@TokenEmbedder.register("character_cnn")
class CharacterCnnEmbedder(TokenEmbedder):
    """A character CNN word encoder.

    # Parameters

    vocab : `Vocabulary`
        Gives the characters and their indices (a padded namespace: 0 = padding, 1 = unknown).
    embedding_dim : `int`
        The size of each character embedding.
    num_filters : `int`
        The number of filters of each width.
    ngram_filter_sizes : `tuple[int, ...]`
        The filter widths (in characters).
    namespace : `str`
        The vocabulary namespace of the characters.
    max_characters : `int`
        Longer words are truncated to this many characters.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        embedding_dim: int,
        num_filters: int,
        ngram_filter_sizes: tuple[int, ...] = (3,),
        namespace: str = "characters",
        max_characters: int = 50,
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.namespace = namespace
        self.max_characters = max_characters
        self.embedding = torch.nn.Embedding(vocab.get_vocab_size(namespace), embedding_dim, padding_idx=0)
        self.convolutions = torch.nn.ModuleList(
            torch.nn.Conv1d(embedding_dim, num_filters, kernel_size=width) for width in ngram_filter_sizes
        )
        self.output_dim = num_filters * len(ngram_filter_sizes)

    def tensorize(self, words: list[list[str]]) -> dict[str, torch.Tensor]:
        """`{"character_ids": [B, n, C]}`, padded with 0."""
        longest_word = max(len(word) for sentence in words for word in sentence)
        character_ids = torch.zeros(
            len(words),
            max(len(sentence) for sentence in words),
            max(1, min(longest_word, self.max_characters)),
            dtype=torch.long,
        )
        for row, sentence in enumerate(words):
            for column, word in enumerate(sentence):
                characters = word[: self.max_characters]
                if characters:
                    character_ids[row, column, : len(characters)] = torch.tensor(
                        [self.vocab.get_token_index(character, self.namespace) for character in characters]
                    )
        return {"character_ids": character_ids}

    def forward(self, tensors: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        character_ids = tensors["character_ids"][mask]  # [N, C], the N real words
        is_character = character_ids != 0
        embedded = self.embedding(character_ids) * is_character.unsqueeze(-1)
        embedded = embedded.transpose(1, 2)  # [N, E, C], as Conv1d wants
        # A window is kept when it starts on a real character (characters are a prefix).
        starts_on_character = is_character.unsqueeze(1)  # [N, 1, C]
        pooled = []
        for convolution in self.convolutions:
            width = convolution.kernel_size[0]
            features = torch.relu(convolution(torch.nn.functional.pad(embedded, (0, width - 1))))
            # ReLU features are >= 0, so filling excluded windows with 0 leaves the maximum over the
            # kept ones unchanged (and gives 0 for a word without characters).
            pooled.append(features.masked_fill(~starts_on_character, 0.0).amax(dim=-1))
        vectors = torch.cat(pooled, dim=-1)
        output = vectors.new_zeros(*mask.shape, self.output_dim)
        output[mask] = vectors
        return output

    def get_output_dim(self) -> int:
        return self.output_dim
