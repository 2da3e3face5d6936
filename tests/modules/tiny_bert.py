"""A tiny randomly initialised BERT and its word-piece tokenizer, written to a local directory, for
tests that need a transformer without downloading one.

Use: `from tests.modules.tiny_bert import build_tiny_bert; path = build_tiny_bert(tmp_path)`.

The vocabulary holds a few whole words ("the", "cat", "play", "john", ...), the suffixes "##s",
"##ing", "##ed", and every lowercase letter both alone and as a continuation ("##a" ... "##z"), so
any lowercase ASCII word tokenizes, e.g. "cats" -> cat ##s, "playing" -> play ##ing,
"xyz" -> x ##y ##z. The tokenizer lowercases its input.
"""

import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WHOLE_WORDS = ["the", "a", "cat", "dog", "play", "run", "john", "smith", "new", "york", "went", "to", ".", ","]
SUFFIXES = ["##s", "##ing", "##ed"]


def tiny_bert_vocabulary() -> dict[str, int]:
    """The tokenizer's `{piece: id}`."""
    pieces = SPECIAL_TOKENS + WHOLE_WORDS + SUFFIXES
    pieces += [letter for letter in string.ascii_lowercase if letter not in pieces]
    pieces += [f"##{letter}" for letter in string.ascii_lowercase if f"##{letter}" not in pieces]
    return {piece: index for index, piece in enumerate(pieces)}


def build_tiny_bert(directory, max_position_embeddings: int = 64, seed: int = 0) -> str:
    """Writes a 2-layer BERT (hidden size 32) and its fast tokenizer into `directory` with
    `save_pretrained`; returns the directory as a string. The weights depend only on `seed`."""
    vocabulary = tiny_bert_vocabulary()
    # In transformers 5 the vocabulary is given as `vocab=` (a `vocab_file=` would be ignored).
    BertTokenizerFast(vocab=vocabulary).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=max_position_embeddings,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(directory)
    return str(Path(directory))
