"""The mask contract every structure algorithm shares, checked where a structure is built.

A mask is `[B, n]` bool and marks a prefix of each row: real positions first, padding after. For a
tree the first position is the root, and a tag sequence has a first word, so it is always marked. A mask that breaks this would give a
log partition of -inf and a meaningless best structure; it is an error instead.
"""

import torch

__all__ = ["check_prefix_mask"]


def check_prefix_mask(mask: torch.Tensor, first: str | None = None) -> None:
    """Raises `ValueError` unless `mask` marks a prefix of every row, and, given `first` (what
    position 0 is: "the root", "the first word"), position 0 of every row."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be [B, n], got shape {tuple(mask.shape)}")
    if mask.size(1) == 0:
        return
    if first is not None and not bool(mask[:, 0].all()):
        rows = torch.nonzero(~mask[:, 0]).flatten().tolist()
        raise ValueError(f"mask must mark position 0 ({first}) of every sentence; it does not in rows {rows}")
    gaps = mask[:, 1:] & ~mask[:, :-1]
    if bool(gaps.any()):
        rows = torch.nonzero(gaps.any(1)).flatten().tolist()
        raise ValueError(f"mask must mark a prefix of each row (real positions, then padding); rows {rows} have gaps")
