"""Biaffine and triaffine scoring layers (Dozat & Manning 2017; Wang & Tu 2020), as in SuPar.

`Biaffine` scores every pair of positions of two sequences, `Triaffine` every triple of three.
Each input may be extended by a constant 1 (`bias_*`), which adds the lower-order terms (a score
of one position alone, or of a pair) to the product. Weights start at zero, as in SuPar: the
scores are then uniform and the layers below get gradients as soon as the weights move.
"""

import torch


def _with_bias(x: torch.Tensor, bias: bool) -> torch.Tensor:
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], -1) if bias else x


class Biaffine(torch.nn.Module):
    """`score[b, i, j, o] = [x_bi; 1]^T W_o [y_bj; 1]` (the 1s when `bias_x` / `bias_y`).

    # Parameters

    input_dim : `int`
        The size of the vectors of both inputs.
    output_dim : `int`
        The number of scores per pair (1 for arcs, the number of relations for labels).
    bias_x, bias_y : `bool`
        Append a 1 to the vectors of `x` (`y`): the product then also holds a linear term in `y`
        (`x`) alone.
    """

    def __init__(self, input_dim: int, output_dim: int = 1, bias_x: bool = True, bias_y: bool = True) -> None:
        super().__init__()
        self.bias_x, self.bias_y = bias_x, bias_y
        self.weight = torch.nn.Parameter(torch.zeros(output_dim, input_dim + bias_x, input_dim + bias_y))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`x [B, n, d]`, `y [B, m, d]` -> scores `[B, n, m, output_dim]`."""
        x, y = _with_bias(x, self.bias_x), _with_bias(y, self.bias_y)
        return torch.einsum("bxi,oij,byj->bxyo", x, self.weight, y)


class Triaffine(torch.nn.Module):
    """`score[b, i, j, k] = sum_{p,q,r} [x_bi; 1]_p [y_bj; 1]_q [z_bk; 1]_r W[p, q, r]`.

    `x` and `y` always get their 1 (so pair terms (x, z) and (y, z) are included), `z` gets one
    when `bias_z`.

    # Parameters

    input_dim : `int`
        The size of the vectors of the three inputs.
    bias_z : `bool`
        Append a 1 to the vectors of `z` too (adds the (x, y) pair term).
    """

    def __init__(self, input_dim: int, bias_z: bool = False) -> None:
        super().__init__()
        self.bias_z = bias_z
        self.weight = torch.nn.Parameter(torch.zeros(input_dim + 1, input_dim + 1, input_dim + bias_z))

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """`x`, `y`, `z` `[B, n, d]` -> scores `[B, n, n, n]`, entry `[b, i, j, k]`."""
        x, y, z = _with_bias(x, True), _with_bias(y, True), _with_bias(z, self.bias_z)
        # Contract z first ([B, n, d+1, d+1], cost B n d^3), then x and y (cost B n^3 d): the
        # product never materializes a [B, n, n, n, d] tensor.
        weight_per_k = torch.einsum("bkr,pqr->bkpq", z, self.weight)
        return torch.einsum("bip,bkpq,bjq->bijk", x, weight_per_k, y)
