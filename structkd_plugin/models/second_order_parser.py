"""`second_order_parser`: the biaffine parser plus sibling and grandparent scores, mean field."""

from typing import Any

import torch

from structkd_plugin.models.biaffine_parser import BiaffineParser
from structkd_plugin.models.model import Model
from structkd_plugin.models.scores import ParserScores
from structkd_plugin.modules.biaffine import Triaffine
from structkd_plugin.structures import gather_heads, second_order_mean_field


@Model.register("second_order_parser")
class SecondOrderParser(BiaffineParser):
    """Second-order dependency parser with end-to-end mean-field inference (Wang & Tu 2020).

    On top of `BiaffineParser`'s arc and relation scores, triaffine layers (as in SuPar) over
    three MLPs each score siblings (two dependents d, s of one head h, made symmetric in d and s
    by averaging the two orders) and grandparent chains g -> h -> d. A few mean-field iterations
    (`second_order_mean_field`) turn these scores into approximate head marginals q_d(h), which
    are differentiated through: the arc loss is -log q_d(gold head), summed over the words of a
    sentence and averaged over sentences, plus `BiaffineParser`'s relation loss.

    Constructor arguments are those of `BiaffineParser` (its `tree` aside) plus:

    # Parameters

    second_order_mlp_dim : `int`
        Output size of the six second-order MLPs (sibling head, dependent, sibling; grandparent
        grandparent, head, dependent). The triaffine layers cost O(n^3 d) time per sentence and
        hold `[B, n+1, n+1, n+1]` scores.
    iterations : `int`
        Mean-field iterations after the first-order start (0 gives the first-order softmax).
    tree : `str`
        The decoder over the log mean-field marginals: "nonprojective" (maximum spanning tree)
        or "projective" (Eisner); both give single-root trees.

    `forward`'s output holds `BiaffineParser`'s keys (`arc_scores` are the first-order scores)
    plus `sib_scores [B, n+1, n+1, n+1]` (`[b, h, d, s]`, symmetric in d and s),
    `grd_scores [B, n+1, n+1, n+1]` (`[b, g, h, d]`) and `head_marginals [B, n+1, n+1]`, the
    mean-field marginals (`[b, h, d]` = q_d(h)), the conventions of `second_order_mean_field`.
    """

    def __init__(
        self,
        *args: Any,
        second_order_mlp_dim: int = 100,
        iterations: int = 3,
        tree: str = "nonprojective",
        **kwargs: Any,
    ) -> None:
        if tree == "local":
            raise ValueError('the second-order parser decodes trees: tree must be "nonprojective" or "projective"')
        super().__init__(*args, tree=tree, **kwargs)
        self.iterations = iterations
        self.sibling_head_mlp, self.sibling_dependent_mlp, self.sibling_mlp = (
            self.mlp(second_order_mlp_dim) for _ in range(3)
        )
        self.grandparent_mlp, self.grandparent_head_mlp, self.grandparent_dependent_mlp = (
            self.mlp(second_order_mlp_dim) for _ in range(3)
        )
        self.sibling_attention = Triaffine(second_order_mlp_dim)
        self.grandparent_attention = Triaffine(second_order_mlp_dim)

    def second_order_scores(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`sib_scores` `[B, n+1, n+1, n+1]` (`[b, h, d, s]`, symmetric in d and s) and
        `grd_scores` (`[b, g, h, d]`)."""
        sib = self.sibling_attention(
            self.sibling_head_mlp(encoded), self.sibling_dependent_mlp(encoded), self.sibling_mlp(encoded)
        )
        grd = self.grandparent_attention(
            self.grandparent_mlp(encoded), self.grandparent_head_mlp(encoded), self.grandparent_dependent_mlp(encoded)
        )
        return (sib + sib.transpose(2, 3)) / 2, grd

    def head_marginals(self, output: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean-field marginals of `forward`'s output."""
        return output["head_marginals"]

    def scores(self, output: dict[str, Any]) -> ParserScores:
        return ParserScores(
            arc_scores=output["arc_scores"],
            relation_scores=output["relation_scores"],
            mask=output["mask"],
            tree="mean_field",
            sib_scores=output["sib_scores"],
            grd_scores=output["grd_scores"],
            iterations=self.iterations,
            relations=tuple(self.relations),
        )

    def forward(
        self,
        words: dict[str, Any],
        mask: torch.Tensor,
        instances: list,
        upos: torch.Tensor | None = None,
        heads: torch.Tensor | None = None,
        relations: torch.Tensor | None = None,
        punctuation: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        encoded, tree_mask = self.encode(words, mask, upos)
        arc_scores, relation_scores = self.first_order_scores(encoded)
        sib_scores, grd_scores = self.second_order_scores(encoded)
        marginals = second_order_mean_field(arc_scores, sib_scores, grd_scores, tree_mask, self.iterations)
        # Clamped so that an underflowed marginal neither gives an infinite loss nor forbids an arc
        # in decoding (which could leave no tree).
        log_marginals = marginals.clamp_min(torch.finfo(marginals.dtype).tiny).log()
        output = {
            "arc_scores": arc_scores,
            "sib_scores": sib_scores,
            "grd_scores": grd_scores,
            "head_marginals": marginals,
            "relation_scores": relation_scores,
            "mask": tree_mask,
        }
        output.update(self.predict(self.tree(log_marginals, tree_mask).argmax(), relation_scores, mask))
        if heads is not None:
            arc_loss = -gather_heads(log_marginals, heads).masked_fill(~mask, 0.0).sum() / mask.shape[0]
            self.add_loss_and_metrics(output, arc_loss, heads, relations, mask, punctuation)
        return output
