"""Tests of `TokenBudgetBatchSampler`, `pad_sequences` and `move_to_device`."""

import dataclasses
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structkd_plugin.data import TokenBudgetBatchSampler, move_to_device, pad_sequences


def random_lengths(count: int, seed: int = 0, longest: int = 60) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, longest) for _ in range(count)]


def flatten(batches: list[list[int]]) -> list[int]:
    return [index for batch in batches for index in batch]


def test_every_index_exactly_once_and_budget_respected():
    lengths = random_lengths(500)
    batches = list(TokenBudgetBatchSampler(lengths, max_tokens=300, seed=3))
    assert sorted(flatten(batches)) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 300


def test_batches_are_filled_greedily_in_length_order_without_shuffling():
    lengths = random_lengths(200, seed=1)
    batches = list(TokenBudgetBatchSampler(lengths, max_tokens=200, shuffle=False))
    # Consecutive batches cover consecutive stretches of the sorted lengths ...
    for earlier, later in zip(batches, batches[1:]):
        assert max(lengths[i] for i in earlier) <= min(lengths[i] for i in later)
        # ... and a batch was closed only because the next sentence did not fit.
        grown = earlier + [later[0]]
        assert max(lengths[i] for i in grown) * len(grown) > 200
    # Ties keep file order, so the order is exactly a stable sort by length.
    assert flatten(batches) == sorted(range(len(lengths)), key=lengths.__getitem__)


def test_sentence_longer_than_the_budget_forms_its_own_batch():
    lengths = [5, 5, 500, 5, 5, 5]
    batches = list(TokenBudgetBatchSampler(lengths, max_tokens=20, shuffle=False))
    assert [2] in batches
    assert sorted(flatten(batches)) == list(range(6))


def test_fixed_batch_size_and_both_limits():
    lengths = random_lengths(103, seed=2)
    batches = list(TokenBudgetBatchSampler(lengths, batch_size=10, seed=0))
    assert sorted(len(batch) for batch in batches) == [3] + [10] * 10
    both = list(TokenBudgetBatchSampler(lengths, max_tokens=150, batch_size=4, seed=0))
    assert all(len(batch) <= 4 and max(lengths[i] for i in batch) * len(batch) <= 150 for batch in both)
    assert sorted(flatten(both)) == list(range(103))


def test_same_seed_and_epoch_give_the_same_batches_and_epochs_differ():
    lengths = random_lengths(300, seed=4)
    first = TokenBudgetBatchSampler(lengths, max_tokens=250, seed=7)
    second = TokenBudgetBatchSampler(lengths, max_tokens=250, seed=7)
    assert list(first) == list(second)
    epoch_zero = list(first)
    first.set_epoch(1)
    second.set_epoch(1)
    assert list(first) == list(second)
    assert list(first) != epoch_zero
    assert list(TokenBudgetBatchSampler(lengths, max_tokens=250, seed=8)) != epoch_zero


def test_without_shuffle_every_epoch_is_the_same():
    lengths = random_lengths(100, seed=5)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=100, shuffle=False)
    epoch_zero = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) == epoch_zero


def test_len_is_the_number_of_batches_of_the_epoch():
    lengths = random_lengths(300, seed=6)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=120, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert len(sampler) == len(list(sampler))


def test_distributed_ranks_get_disjoint_equally_long_parts():
    lengths = random_lengths(250, seed=7)
    whole = list(TokenBudgetBatchSampler(lengths, max_tokens=200, seed=2))
    replicas = 4
    samplers = [
        TokenBudgetBatchSampler(lengths, max_tokens=200, seed=2, num_replicas=replicas, rank=rank)
        for rank in range(replicas)
    ]
    parts = [list(sampler) for sampler in samplers]
    assert len({len(part) for part in parts}) == 1
    assert all(len(sampler) == len(parts[0]) for sampler in samplers)
    # Interleaving the ranks' batches gives back the whole list, then the padding batches,
    # which repeat the first ones.
    interleaved = [part[i] for i in range(len(parts[0])) for part in parts]
    assert interleaved[: len(whole)] == whole
    padding = interleaved[len(whole) :]
    assert 0 < len(padding) < replicas and padding == whole[: len(padding)]


def test_ranks_split_evenly_divisible_batches_without_overlap():
    lengths = [3] * 12
    parts = [list(TokenBudgetBatchSampler(lengths, batch_size=2, num_replicas=2, rank=rank)) for rank in range(2)]
    assert len(parts[0]) == len(parts[1]) == 3
    assert sorted(flatten(parts[0]) + flatten(parts[1])) == list(range(12))


def test_more_ranks_than_batches_repeat_batches():
    parts = [
        list(TokenBudgetBatchSampler([4, 4], batch_size=2, shuffle=False, num_replicas=3, rank=rank))
        for rank in range(3)
    ]
    assert parts == [[[0, 1]]] * 3


def test_empty_dataset_gives_no_batches():
    sampler = TokenBudgetBatchSampler([], max_tokens=10)
    assert list(sampler) == [] and len(sampler) == 0


def test_works_as_a_data_loader_batch_sampler():
    lengths = random_lengths(50, seed=8)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=100, seed=4)
    loader = torch.utils.data.DataLoader(list(range(50)), batch_sampler=sampler, collate_fn=list)
    assert list(loader) == list(sampler)


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"max_tokens": 0},
        {"batch_size": 0},
        {"max_tokens": 10, "padding_noise": 1.0},
        {"max_tokens": 10, "num_replicas": 2, "rank": 2},
    ],
)
def test_bad_arguments_are_rejected(arguments):
    with pytest.raises(ValueError):
        TokenBudgetBatchSampler([1, 2, 3], **arguments)


def test_empty_sentences_are_rejected():
    with pytest.raises(ValueError, match="at least one word"):
        TokenBudgetBatchSampler([3, 0], max_tokens=10)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), max_size=60),
    max_tokens=st.integers(1, 120),
    seed=st.integers(0, 5),
    epoch=st.integers(0, 3),
    replicas=st.integers(1, 4),
)
def test_invariants_on_random_inputs(lengths, max_tokens, seed, epoch, replicas):
    samplers = [
        TokenBudgetBatchSampler(lengths, max_tokens=max_tokens, seed=seed, num_replicas=replicas, rank=rank)
        for rank in range(replicas)
    ]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    parts = [list(sampler) for sampler in samplers]
    assert len({len(part) for part in parts}) == 1
    everything = flatten([batch for part in parts for batch in part])
    assert set(everything) == set(range(len(lengths)))
    for batch in (batch for part in parts for batch in part):
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= max_tokens


def test_pad_sequences_pads_and_masks():
    values, mask = pad_sequences([[1, 2, 3], [4], [5, 6]], pad_value=-1)
    assert values.dtype == torch.long and mask.dtype == torch.bool
    assert values.tolist() == [[1, 2, 3], [4, -1, -1], [5, 6, -1]]
    assert mask.tolist() == [[True, True, True], [True, False, False], [True, True, False]]


def test_pad_sequences_of_nothing():
    values, mask = pad_sequences([], 0)
    assert values.shape == mask.shape == (0, 0)
    values, mask = pad_sequences([[], []], 0)
    assert values.shape == mask.shape == (2, 0)


@dataclasses.dataclass
class Knowledge:
    probs: torch.Tensor
    name: str


def test_move_to_device_moves_every_tensor_and_keeps_the_rest():
    instances = [{"words": ["a", "b"], "heads": [0, 1]}]
    batch = {
        "mask": torch.ones(1, 2, dtype=torch.bool),
        "words": {"tokens": torch.zeros(1, 2, dtype=torch.long)},
        "pair": (torch.zeros(1), [torch.ones(1), None]),
        "knowledge": Knowledge(torch.zeros(2, dtype=torch.float64), "teacher"),
        "instances": instances,
    }
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["mask"].device.type == moved["words"]["tokens"].device.type == "meta"
    assert moved["pair"][0].device.type == moved["pair"][1][0].device.type == "meta"
    assert moved["pair"][1][1] is None and isinstance(moved["pair"], tuple)
    assert moved["knowledge"].probs.device.type == "meta" and moved["knowledge"].name == "teacher"
    assert moved["instances"] == instances and moved["instances"][0]["words"] is instances[0]["words"]
    assert batch["mask"].device.type == "cpu"
