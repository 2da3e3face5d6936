"""Text embedders: components that both tensorize words and embed them.

A model holds one `TextEmbedder` (registered `basic`, the default), a concatenation of named
`TokenEmbedder`s: `word` (a word embedding matrix, optionally pretrained), `character_cnn`
(a character CNN) and `transformer` (first-piece vectors of a local pretrained transformer).
Importing this package registers them all.
"""

from structkd_plugin.modules.character_cnn import CharacterCnnEmbedder
from structkd_plugin.modules.text_embedder import BasicTextEmbedder, TextEmbedder
from structkd_plugin.modules.token_embedder import TokenEmbedder
from structkd_plugin.modules.transformer_embedder import TransformerEmbedder
from structkd_plugin.modules.word_embedder import WordEmbedder

__all__ = [
    "BasicTextEmbedder",
    "CharacterCnnEmbedder",
    "TextEmbedder",
    "TokenEmbedder",
    "TransformerEmbedder",
    "WordEmbedder",
]
