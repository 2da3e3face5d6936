"""`TextEmbedder`: the component a model holds to turn words into vectors; `basic` concatenates
the vectors of several named `TokenEmbedder`s.

`tensorize(words)` returns `{name: that embedder's tensors}`; `forward(tensors, mask)` returns
`[B, n, get_output_dim()]`, the embedders' vectors concatenated in sorted name order.

Passing the vocabulary down. tango's `from_params` hands extras such as `vocab` to the class it is
called on, but not to the objects built for its arguments. `BasicTextEmbedder.from_params` therefore
builds its token embedders itself, passing its extras on:
`TextEmbedder.from_params(params, vocab=vocab)` gives `vocab` to every token embedder that takes one.
A class that holds a `TextEmbedder` argument must likewise call `TextEmbedder.from_params(...,
vocab=vocab)` itself (or declare the argument `Lazy[TextEmbedder]` and call
`.construct(vocab=vocab)`).
"""

from typing import Any, Callable, Optional, Union

import torch
from tango.common import Params, Registrable

from structkd_plugin.modules.token_embedder import TokenEmbedder


class TextEmbedder(torch.nn.Module, Registrable):
    """Base of the registered text embedders; `basic` is the default implementation."""

    default_implementation = "basic"

    def tensorize(self, words: list[list[str]]) -> dict[str, dict[str, torch.Tensor]]:
        """Padded tensors for a batch of sentences (each a non-empty list of words)."""
        raise NotImplementedError

    def forward(self, tensors: dict[str, dict[str, torch.Tensor]], mask: torch.Tensor) -> torch.Tensor:
        """One vector per word, `[B, n, get_output_dim()]`, from `tensorize`'s output and the
        word mask `[B, n]`."""
        raise NotImplementedError

    def get_output_dim(self) -> int:
        """The size of each word's vector."""
        raise NotImplementedError


@TextEmbedder.register("basic")
class BasicTextEmbedder(TextEmbedder):
    """The concatenation of named token embedders.

    # Parameters

    token_embedders : `dict[str, TokenEmbedder]`
        The embedders, by name; their vectors are concatenated in sorted name order.
    """

    def __init__(self, token_embedders: dict[str, TokenEmbedder]) -> None:
        super().__init__()
        if not token_embedders:
            raise ValueError("a text embedder needs at least one token embedder")
        self.token_embedders = torch.nn.ModuleDict({name: token_embedders[name] for name in sorted(token_embedders)})

    @classmethod
    def from_params(
        cls,
        params_: Union[Params, dict],
        constructor_to_call: Optional[Callable[..., "BasicTextEmbedder"]] = None,
        constructor_to_inspect: Optional[Callable] = None,
        **extras: Any,
    ) -> "BasicTextEmbedder":
        """Builds each token embedder with this call's extras (`vocab`), which tango's generic
        `from_params` would not pass on."""
        params = params_ if isinstance(params_, Params) else Params(params_)
        embedder_params = params.pop("token_embedders")
        params.assert_empty(cls.__name__)
        token_embedders = {
            name: TokenEmbedder.from_params(embedder_params.pop(name), **extras) for name in list(embedder_params)
        }
        return (constructor_to_call or cls)(token_embedders=token_embedders)

    def tensorize(self, words: list[list[str]]) -> dict[str, dict[str, torch.Tensor]]:
        return {name: embedder.tensorize(words) for name, embedder in self.token_embedders.items()}

    def forward(self, tensors: dict[str, dict[str, torch.Tensor]], mask: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [embedder(tensors[name], mask) for name, embedder in self.token_embedders.items()], dim=-1
        )

    def get_output_dim(self) -> int:
        return sum(embedder.get_output_dim() for embedder in self.token_embedders.values())
