"""Batches of similar-length sentences, and padding of index lists into tensors.

`TokenBudgetBatchSampler` decides which instances go together: it sorts the instances by a
slightly noisy length (so that batches hold sentences of similar length and padding is small,
but are not the same every epoch), cuts the sorted list into batches that respect a token budget
(`max tokens in a sentence x sentences <= max_tokens`, the size of the padded tensors) or a fixed
number of sentences, then shuffles the order of the batches. All randomness comes from one
`random.Random(seed + epoch)`, so a run is reproducible and each epoch differs.

`pad_sequences` then turns the index lists of one batch into a padded `LongTensor` and its mask.
"""

import dataclasses
import math
import random
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import torch


class TokenBudgetBatchSampler:
    """An iterable of batches, each a list of instance indices; every index appears exactly once
    per epoch (on one rank; see `num_replicas`).

    Pass it to `torch.utils.data.DataLoader(..., batch_sampler=sampler)` or iterate over it
    directly. Call `set_epoch(epoch)` before each epoch to get that epoch's batches.

    # Parameters

    lengths : `Sequence[int]`
        The length (number of words, >= 1) of each instance; instance `i` is index `i`.
    max_tokens : `int`, optional
        Token budget of a batch: `(longest sentence in the batch) x (number of sentences)`
        stays <= `max_tokens`. A sentence longer than `max_tokens` forms a batch of its own (it is
        never dropped).
    batch_size : `int`, optional
        At most this many sentences per batch. At least one of `max_tokens` and `batch_size` must
        be given; with both, a batch respects both.
    shuffle : `bool`
        Sort by noisy lengths and shuffle the order of the batches (training). When false, the
        instances are sorted by their exact length (ties keep file order) and the batches come
        shortest first, the same every epoch (evaluation, prediction).
    seed : `int`
        Seed of the shuffling; epoch `e` uses `random.Random(seed + e)`.
    padding_noise : `float`
        When shuffling, each length is multiplied by a factor drawn uniformly from
        `[1 - padding_noise, 1 + padding_noise]` before sorting, so that similar lengths mix
        differently each epoch. The budget is always checked on the true lengths.
    num_replicas : `int`
        Number of distributed ranks sharing the data (1 without distributed training).
    rank : `int`
        This process's rank, `0 <= rank < num_replicas`. The epoch's batch list (identical on
        all ranks, as they share the seed) is extended by repeating its first batches until its
        length is a multiple of `num_replicas`; rank `r` then takes batches `r, r + num_replicas,
        ...`. Ranks thus get disjoint positions of the list and equally many batches, as with
        `torch.utils.data.DistributedSampler`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        padding_noise: float = 0.1,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if max_tokens is None and batch_size is None:
            raise ValueError("give max_tokens or batch_size (or both)")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, not {max_tokens}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if not 0 <= padding_noise < 1:
            raise ValueError(f"padding_noise must be in [0, 1), not {padding_noise}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, not rank={rank} with num_replicas={num_replicas}")
        self.lengths = list(lengths)
        if any(length < 1 for length in self.lengths):
            raise ValueError("every instance must have at least one word")
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.padding_noise = padding_noise
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches the next iteration gives."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        if not batches:
            return iter([])
        # Pad by cycling through the list, so that it also works with fewer batches than ranks.
        padded_count = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
        padded = [batches[i % len(batches)] for i in range(padded_count)]
        return iter(padded[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        """Number of batches this rank gets in the current epoch (noise can change it a little
        from one epoch to the next)."""
        return math.ceil(len(self._all_batches()) / self.num_replicas)

    def _all_batches(self) -> list[list[int]]:
        """The current epoch's batches for all ranks together, in the order they are served."""
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            noise = self.padding_noise
            sort_keys = [length * rng.uniform(1 - noise, 1 + noise) for length in self.lengths]
        else:
            sort_keys = self.lengths
        order = sorted(range(len(self.lengths)), key=sort_keys.__getitem__)
        batches = self._pack(order)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _pack(self, order: list[int]) -> list[list[int]]:
        """Cuts `order` into consecutive batches, each as large as the limits allow."""
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for index in order:
            length = self.lengths[index]
            grown_longest = max(longest, length)
            too_many_tokens = self.max_tokens is not None and grown_longest * (len(batch) + 1) > self.max_tokens
            too_many_sentences = self.batch_size is not None and len(batch) + 1 > self.batch_size
            if batch and (too_many_tokens or too_many_sentences):
                batches.append(batch)
                batch, grown_longest = [], length
            batch.append(index)
            longest = grown_longest
        if batch:
            batches.append(batch)
        return batches


def pad_sequences(sequences: Sequence[Sequence[int]], pad_value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads lists of integers to the length of the longest.

    # Parameters

    sequences : `Sequence[Sequence[int]]`
        `B` lists of integers (e.g. word or label indices), of any lengths.
    pad_value : `int`
        The value placed after the end of each shorter list.

    # Returns

    `(values, mask)`: `values` is a `LongTensor [B, n]` with `n` the longest length (0 when
    there is no sequence or all are empty), `mask` a `BoolTensor [B, n]` that is true on the real
    entries, which form a prefix of each row.
    """
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.long)
    longest = int(lengths.max()) if len(sequences) else 0
    mask = torch.arange(longest) < lengths.unsqueeze(1)
    values = torch.full((len(sequences), longest), pad_value, dtype=torch.long)
    # Boolean indexing walks the mask row by row, i.e. in the order of the concatenated lists.
    values[mask] = torch.tensor(list(chain.from_iterable(sequences)), dtype=torch.long)
    return values, mask


_PLAIN = (str, int, float, bool, type(None))


def move_to_device(batch: Any, device: torch.device) -> Any:
    """`batch` with every tensor inside it (in dicts, lists, tuples, dataclasses) moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, _PLAIN):
        return batch
    if isinstance(batch, dict):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, list | tuple):
        # A batch's instances hold lists of words: returned as they are, not rebuilt word by word.
        if all(isinstance(value, _PLAIN) for value in batch):
            return batch
        return type(batch)(move_to_device(value, device) for value in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        fields = {field.name: move_to_device(getattr(batch, field.name), device) for field in dataclasses.fields(batch)}
        return dataclasses.replace(batch, **fields)
    return batch
