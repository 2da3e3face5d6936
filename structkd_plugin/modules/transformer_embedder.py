"""`transformer`: word vectors from a pretrained transformer encoder (BERT, RoBERTa, XLM-R, ...).

The model and its tokenizer are loaded from a local directory (`save_pretrained` output); nothing is
downloaded.

Tensorizing (no model needed). The words of the batch are split into word pieces by the fast
tokenizer (`is_split_into_words=True`, every word tokenized as if preceded by a space), and
`word_ids()` tells which pieces belong to which word. A word that yields no piece at all (a
zero-width space, a control character) is replaced by the tokenizer's unknown token, so that every
word has a vector. Each word is represented by its FIRST piece.

Long sentences. A model sees at most `max_length` pieces, special tokens ([CLS], [SEP], <s>, ...)
included. A sentence with more pieces than fit is never truncated: its pieces are cut into
overlapping windows of `W = max_length - number of special tokens` pieces, each window starting
`W // 2` pieces after the previous one (the last one ends at the sentence's end), each wrapped in
the special tokens. A piece takes its vector from the window in which it is most central, where it
has the most context on both sides.

The tensors:

* `input_ids`, `attention_mask` `[R, L]`: the R windows of the whole batch (one per sentence that
  fits), padded to the longest, L <= max_length;
* `piece_index` `[B, n]`: for each word, the position of its first piece in the chosen window,
  flattened over `[R, L]` (0 for padded words).

`forward` runs the model once on all R windows and gathers one vector per word. The vector is the
last layer's hidden state (`layers="last"`) or a learned softmax-weighted sum of all hidden states
(the embeddings' and each layer's) times a learned scale (`layers="scalar_mix"`, allennlp-light's
`ScalarMix`).

Frozen features computed once. With `freeze` and `cache_windows > 0`, in training mode, the hidden
states of each distinct window (its sequence of piece ids) are kept in memory after its first
forward pass, up to `cache_windows` windows, and later passes over the same window skip the
transformer: a parser or tagger trained on top of a frozen transformer then pays for the
transformer in its first epoch only. A frozen transformer runs in eval mode, so a window's hidden
states are a function of its ids alone and never go stale. In eval mode (validation, prediction, a
deployed spaCy component) the cache is neither read nor filled: text seen once would only grow it.
"""

import contextlib
from typing import Optional

import torch
from allennlp_light.modules.scalar_mix import ScalarMix
from tango.common.exceptions import ConfigurationError

from structkd_plugin.data.batching import pad_sequences
from structkd_plugin.modules.token_embedder import TokenEmbedder


@TokenEmbedder.register("transformer")
class TransformerEmbedder(TokenEmbedder):
    """First-piece word vectors from a local pretrained transformer.

    # Parameters

    model_path : `str`
        A local directory holding the model and its fast tokenizer, as written by `save_pretrained`.
    layers : `str`
        `"last"`: the last hidden layer; `"scalar_mix"`: a learned mix of all hidden layers.
    freeze : `bool`
        Keep the transformer's weights fixed. A frozen transformer runs without gradients and
        always in eval mode (no dropout); a scalar mix on top of it is still trained.
    max_length : `int`, optional
        The most pieces (special tokens included) the model sees at once; longer sentences are
        split into overlapping windows. By default the model's own limit: the smaller of its
        `max_position_embeddings` and the tokenizer's `model_max_length`.
    cache_windows : `int`
        With `freeze`, the most windows whose hidden states are kept in memory for reuse in
        training (see the module docstring); 0, the default, keeps none. Each costs
        `pieces x hidden_size x 4` bytes, times the number of layers + 1 with
        `layers="scalar_mix"` (MiniLM-L6 with a scalar mix: about 10 KB per piece, so about 3 GB
        for UD English-EWT's training set).
    """

    def __init__(
        self,
        model_path: str,
        layers: str = "last",
        freeze: bool = False,
        max_length: Optional[int] = None,
        cache_windows: int = 0,
    ) -> None:
        super().__init__()
        if layers not in ("last", "scalar_mix"):
            raise ConfigurationError(f'layers must be "last" or "scalar_mix", not {layers!r}')
        if cache_windows and not freeze:
            raise ConfigurationError("cache_windows needs freeze: a transformer being trained changes its outputs")
        # Imported here: transformers takes seconds to import, which every CLI start would pay.
        from transformers import AutoModel, AutoTokenizer

        # Words are tokenized separately; byte-level BPE tokenizers (RoBERTa, GPT-2) need
        # add_prefix_space to give them the leading space they have in running text.
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True, add_prefix_space=True)
        if not self.tokenizer.is_fast:
            raise ConfigurationError(f"{model_path} has no fast tokenizer, which word_ids() needs")
        self.transformer = AutoModel.from_pretrained(model_path, local_files_only=True)
        self.freeze = freeze
        if freeze:
            self.transformer.requires_grad_(False)
            self.transformer.eval()
        self.scalar_mix = (
            ScalarMix(self.transformer.config.num_hidden_layers + 1) if layers == "scalar_mix" else None
        )
        self.max_length = max_length or _model_max_length(self.transformer.config, self.tokenizer)
        self.cache_windows = cache_windows
        # A window's piece ids -> its hidden states [layers, pieces, hidden] (one layer without a mix).
        self._window_cache: dict[tuple[int, ...], torch.Tensor] = {}

    def train(self, mode: bool = True) -> "TransformerEmbedder":
        super().train(mode)
        if self.freeze:
            self.transformer.eval()
        return self

    def tensorize(self, words: list[list[str]]) -> dict[str, torch.Tensor]:
        """`{"input_ids", "attention_mask": [R, L], "piece_index": [B, n]}` (see the module
        docstring)."""
        windows: list[list[int]] = []
        # (window number, position in the window) of each word's first piece, per sentence.
        locations: list[list[tuple[int, int]]] = []
        for prefix, pieces, suffix, first_pieces in self._word_pieces(words):
            width = self.max_length - len(prefix) - len(suffix)
            if width < 1:
                raise ConfigurationError(f"max_length {self.max_length} leaves no room beside the special tokens")
            starts = _window_starts(len(pieces), width)
            sentence_locations = []
            for piece in first_pieces:
                window = _most_central_window(starts, width, piece)
                sentence_locations.append((len(windows) + window, len(prefix) + piece - starts[window]))
            locations.append(sentence_locations)
            windows.extend(prefix + pieces[start : start + width] + suffix for start in starts)

        input_ids, attention_mask = pad_sequences(windows, self.tokenizer.pad_token_id or 0)
        length = input_ids.shape[1]
        piece_index, _ = pad_sequences(
            [[window * length + position for window, position in sentence] for sentence in locations]
        )
        return {"input_ids": input_ids, "attention_mask": attention_mask.long(), "piece_index": piece_index}

    def _word_pieces(self, words: list[list[str]]) -> list[tuple[list[int], list[int], list[int], list[int]]]:
        """For each sentence: the ids of the special tokens before it, of its pieces, of the
        special tokens after it, and the position (among its pieces) of each word's first piece."""
        # verbose=False: the warning about sequences longer than the model's limit does not apply.
        encodings = self.tokenizer(words, is_split_into_words=True, verbose=False)
        result = []
        for number, sentence in enumerate(words):
            ids, word_ids = encodings["input_ids"][number], encodings.word_ids(number)
            if len(set(word_ids) - {None}) < len(sentence):
                ids, word_ids = self._with_unknown_words(sentence, set(word_ids))
            piece_positions = [position for position, word in enumerate(word_ids) if word is not None]
            begin, end = piece_positions[0], piece_positions[-1] + 1
            first_pieces: dict[int, int] = {}
            for position in range(begin, end):
                first_pieces.setdefault(word_ids[position], position - begin)
            result.append((ids[:begin], ids[begin:end], ids[end:], [first_pieces[word] for word in range(len(sentence))]))
        return result

    def _with_unknown_words(self, sentence: list[str], covered: set) -> tuple[list[int], list]:
        """Tokenizes `sentence` again with its words that gave no piece replaced by the unknown
        token; returns the ids and the word ids."""
        if self.tokenizer.unk_token is None:
            raise ValueError(f"a word of {sentence!r} has no word piece and the tokenizer has no unknown token")
        sentence = [word if i in covered else self.tokenizer.unk_token for i, word in enumerate(sentence)]
        encoding = self.tokenizer(sentence, is_split_into_words=True, verbose=False)
        return encoding["input_ids"], encoding.word_ids()

    def forward(self, tensors: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        hidden_states = self._hidden_states(tensors["input_ids"], tensors["attention_mask"])
        index = tensors["piece_index"].reshape(-1)

        def word_vectors(hidden: torch.Tensor) -> torch.Tensor:
            return hidden.reshape(-1, hidden.shape[-1]).index_select(0, index).view(*mask.shape, -1)

        if self.scalar_mix is None:
            vectors = word_vectors(hidden_states[-1])
        else:
            # Gathering before mixing mixes B * n vectors instead of R * L.
            vectors = self.scalar_mix([word_vectors(hidden) for hidden in hidden_states], mask)
        return vectors.masked_fill(~mask.unsqueeze(-1), 0.0)

    def _hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """The `[R, L, hidden]` hidden states of the windows: all layers' with a scalar mix, else
        the last layer's alone. Cached windows are taken from the cache, the others computed."""
        if not (self.cache_windows and self.training):
            return self._run_transformer(input_ids, attention_mask)
        lengths = attention_mask.sum(-1).tolist()
        keys = [tuple(row[:length].tolist()) for row, length in zip(input_ids, lengths)]
        missing = [window for window, key in enumerate(keys) if key not in self._window_cache]
        computed: dict[int, torch.Tensor] = {}
        if missing:
            rows = torch.tensor(missing, device=input_ids.device)
            width = max(lengths[window] for window in missing)
            states = torch.stack(self._run_transformer(input_ids[rows, :width], attention_mask[rows, :width]))
            for row, window in enumerate(missing):
                # clone(): a view would keep the whole batch's tensor alive.
                computed[window] = states[:, row, : lengths[window]].clone()
                if len(self._window_cache) < self.cache_windows:
                    self._window_cache[keys[window]] = computed[window]
        first = computed[missing[0]] if missing else self._window_cache[keys[0]]
        output = first.new_zeros(first.shape[0], *input_ids.shape, first.shape[-1])
        for window, (key, length) in enumerate(zip(keys, lengths)):
            output[:, window, :length] = computed[window] if window in computed else self._window_cache[key]
        return list(output.unbind(0))

    def _run_transformer(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad() if self.freeze else contextlib.nullcontext():
            output = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.scalar_mix is not None
            )
        return list(output.hidden_states) if self.scalar_mix is not None else [output.last_hidden_state]

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        # New transformer weights make the cached hidden states stale.
        self._window_cache.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def get_output_dim(self) -> int:
        return self.transformer.config.hidden_size


def _window_starts(num_pieces: int, width: int) -> list[int]:
    """Where the windows of `width` pieces covering `num_pieces` pieces start: every `width // 2`
    pieces, the last one ending at the last piece; a single window when everything fits."""
    if num_pieces <= width:
        return [0]
    stride = max(width // 2, 1)
    return list(range(0, num_pieces - width, stride)) + [num_pieces - width]


def _most_central_window(starts: list[int], width: int, piece: int) -> int:
    """The window (of those starting at `starts`, `width` pieces long) whose centre is nearest to
    `piece`. With a stride of at most `width / 2` that window contains the piece."""
    return min(range(len(starts)), key=lambda window: abs(piece - starts[window] - (width - 1) / 2))


def _model_max_length(config, tokenizer) -> int:
    """The most pieces the model accepts, from its config and its tokenizer."""
    limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length]
    from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

    limits = [limit for limit in limits if limit is not None and limit < VERY_LARGE_INTEGER]
    if not limits:
        raise ConfigurationError("the model states no maximum length; set max_length")
    return min(limits)
