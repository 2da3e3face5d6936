"""`word`: one vector per vocabulary entry, optionally initialised from a pretrained text file.

`tensorize` looks every word up in a vocabulary namespace (unknown words get index 1,
`@@UNKNOWN@@`; padding is index 0, `@@PADDING@@`) and returns `{"token_ids": [B, n]}`.
`forward` is a plain embedding lookup; the padding row is zero and receives no gradient.

Pretrained files are GloVe / word2vec text files, one word per line followed by its values, all
separated by single spaces. A word2vec header line "<count> <dim>" is recognised and skipped. The
vector is the last `embedding_dim` fields of a line, so words containing spaces (present in some
GloVe releases) are read whole. Rows of vocabulary entries found in the file take their pretrained
vector (the first occurrence when a word is repeated); the other rows are drawn from a normal
distribution with the mean and standard deviation of all values in the file, so that they are on
the same scale.
"""

import logging
import math
from typing import Optional

import numpy
import torch
from tango.common.exceptions import ConfigurationError

from structkd_plugin.data.batching import pad_sequences
from structkd_plugin.data.vocabulary import UNKNOWN_TOKEN, Vocabulary
from structkd_plugin.modules.token_embedder import TokenEmbedder

logger = logging.getLogger(__name__)


@TokenEmbedder.register("word")
class WordEmbedder(TokenEmbedder):
    """An embedding matrix over the words of a vocabulary namespace.

    # Parameters

    vocab : `Vocabulary`
        Gives the words and their indices (a padded namespace: 0 = padding, 1 = unknown).
    embedding_dim : `int`
        The size of each word vector.
    namespace : `str`
        The vocabulary namespace of the words.
    pretrained_file : `str`, optional
        A GloVe / word2vec text file whose vectors initialise the rows of the words it contains;
        its dimension must be `embedding_dim`. Without it the matrix is Xavier-initialised.
    trainable : `bool`
        Whether the matrix is updated during training.
    lowercase : `bool`
        Look words up case-insensitively: "Lisboa", "lisboa" and "LISBOA" share the row of the
        vocabulary's most frequent casing (the vocabulary counts words as written, so a word seen
        only capitalized is still known). Other casings' rows go unused.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        embedding_dim: int,
        namespace: str = "tokens",
        pretrained_file: Optional[str] = None,
        trainable: bool = True,
        lowercase: bool = False,
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.namespace = namespace
        self.lowercase = lowercase
        if lowercase:
            # Vocabulary indices go by frequency, so the first casing met is the most frequent.
            self.lowercase_index: dict[str, int] = {}
            for index, token in sorted(vocab.get_index_to_token_vocabulary(namespace).items()):
                self.lowercase_index.setdefault(token.lower(), index)
        vocab_size = vocab.get_vocab_size(namespace)
        if pretrained_file is None:
            weight = torch.nn.init.xavier_uniform_(torch.empty(vocab_size, embedding_dim))
        else:
            weight = _read_pretrained_weight(
                pretrained_file, embedding_dim, vocab.get_index_to_token_vocabulary(namespace)
            )
        weight[0] = 0.0
        self.weight = torch.nn.Parameter(weight, requires_grad=trainable)

    def tensorize(self, words: list[list[str]]) -> dict[str, torch.Tensor]:
        """`{"token_ids": [B, n]}`, padded with 0."""
        if self.lowercase:
            unknown = self.vocab.get_token_index(UNKNOWN_TOKEN, self.namespace)
            ids = [[self.lowercase_index.get(word.lower(), unknown) for word in sentence] for sentence in words]
        else:
            ids = [[self.vocab.get_token_index(word, self.namespace) for word in sentence] for sentence in words]
        token_ids, _ = pad_sequences(ids)
        return {"token_ids": token_ids}

    def forward(self, tensors: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(tensors["token_ids"], self.weight, padding_idx=0)

    def get_output_dim(self) -> int:
        return self.weight.shape[1]


def _read_pretrained_weight(path: str, embedding_dim: int, index_to_token: dict[int, str]) -> torch.Tensor:
    """The `[len(index_to_token), embedding_dim]` matrix described in the module docstring."""
    token_to_index = {token: index for index, token in index_to_token.items()}
    found: dict[int, numpy.ndarray] = {}
    # Running sums over every value of the file, in float64, for its mean and variance.
    value_count, value_sum, square_sum = 0, 0.0, 0.0
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            fields = line.rstrip().split(" ")
            if line_number == 1 and len(fields) == 2 and all(field.isdigit() for field in fields):
                if int(fields[1]) != embedding_dim:
                    raise ConfigurationError(
                        f"{path} holds {fields[1]}-dimensional vectors but embedding_dim is {embedding_dim}"
                    )
                continue
            if value_count == 0 and len(fields) != embedding_dim + 1:
                raise ConfigurationError(
                    f"{path}:{line_number} has {len(fields) - 1} values but embedding_dim is {embedding_dim}"
                )
            if len(fields) <= embedding_dim:
                raise ValueError(f"{path}:{line_number} has fewer than {embedding_dim} values")
            try:
                vector = numpy.asarray(fields[-embedding_dim:], dtype=numpy.float64)
            except ValueError as error:
                raise ValueError(f"{path}:{line_number} has a value that is not a number") from error
            value_count += embedding_dim
            value_sum += vector.sum()
            square_sum += numpy.square(vector).sum()
            index = token_to_index.get(" ".join(fields[:-embedding_dim]))
            if index is not None and index not in found:
                found[index] = vector
    if value_count == 0:
        raise ConfigurationError(f"{path} holds no vectors")
    mean = value_sum / value_count
    std = math.sqrt(max(square_sum / value_count - mean**2, 0.0))
    weight = torch.randn(len(index_to_token), embedding_dim) * std + mean
    if found:
        indices = torch.tensor(list(found))
        weight[indices] = torch.from_numpy(numpy.stack(list(found.values()))).float()
    logger.info("%s: pretrained vectors for %d of %d words", path, len(found), len(index_to_token))
    return weight
