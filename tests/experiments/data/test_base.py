"""The in-memory data layer (data/base.py): shards, InMemoryLoader order/resume/fetch, TensorSplits, subsets."""

from __future__ import annotations

import math

import pytest
import torch

from tests.experiments.data.data_helpers import assert_same_batches, collect_batches, random_images
from vicinal.experiments.data import (
    InMemoryLoader,
    Loader,
    TensorSplits,
)
from vicinal.experiments.data.augment import RandomCropFlip
from vicinal.experiments.data.base import (
    STREAM_AUGMENT,
    make_generator,
    shard_indices,
    subset_per_class_indices,
)

# ------------------------------------------------------------------------------------------------ seeds, shards


@pytest.mark.parametrize("n", [10, 11, 3])
def test_shards_cover_the_epoch_and_are_disjoint_up_to_padding(n: int) -> None:
    shards = [shard_indices(n, epoch=4, seed=7, shuffle=True, rank=r, world_size=2) for r in range(2)]
    per_rank = math.ceil(n / 2)
    assert [len(s) for s in shards] == [per_rank, per_rank]  # same number of steps on every rank
    union = torch.cat(shards)
    assert set(union.tolist()) == set(range(n))  # every sample visited
    # Only the padding repeats samples: exactly 2 * ceil(n / 2) - n duplicates.
    assert len(union) - len(set(union.tolist())) == 2 * per_rank - n
    # Both ranks use the same permutation: interleaving the shards gives it back.
    full = torch.randperm(n, generator=make_generator(7, 1, 4))
    assert torch.equal(shards[0][: n // 2], full[0::2][: n // 2])
    assert torch.equal(shards[1][: n // 2], full[1::2][: n // 2])


def test_unpadded_shards_partition_the_dataset() -> None:
    shards = [shard_indices(11, epoch=0, seed=0, shuffle=False, rank=r, world_size=2, pad=False) for r in range(2)]
    assert shards[0].tolist() == [0, 2, 4, 6, 8, 10] and shards[1].tolist() == [1, 3, 5, 7, 9]


# ------------------------------------------------------------------------------------------------ InMemoryLoader


def test_loader_yields_each_sample_once_per_epoch_as_exact_floats() -> None:
    x, y = random_images(23)
    loader = InMemoryLoader(x, y, batch_size=5, shuffle=True, seed=3, device="cpu")
    assert isinstance(loader, Loader)
    batches = collect_batches(loader)
    assert len(loader) == len(batches) == 5
    assert [b[0].shape[0] for b in batches] == [5, 5, 5, 5, 3]
    idx = torch.cat([b[2] for b in batches])
    assert sorted(idx.tolist()) == list(range(23))
    for xb, yb, ib in batches:
        assert xb.dtype == torch.float32 and yb.dtype == torch.int64 and ib.dtype == torch.int64
        assert torch.equal(xb, x[ib].to(torch.float32) / 255)  # exact uint8 -> [0, 1]
        assert torch.equal(yb, y[ib])


def test_loader_order_is_a_function_of_seed_and_epoch() -> None:
    x, y = random_images(40)

    def order(seed: int, epoch: int) -> list[int]:
        loader = InMemoryLoader(x, y, batch_size=8, shuffle=True, seed=seed, device="cpu")
        loader.set_epoch(epoch)
        return torch.cat([i for _, _, i in loader]).tolist()

    assert order(0, 2) == order(0, 2)
    assert order(0, 2) != order(0, 3)
    assert order(0, 2) != order(1, 2)
    unshuffled = InMemoryLoader(x, y, batch_size=8, shuffle=False, seed=0, device="cpu")
    assert torch.cat([i for _, _, i in unshuffled]).tolist() == list(range(40))


def test_iter_from_resumes_mid_epoch_exactly_with_augmentation() -> None:
    x, y = random_images(37, size=12)
    kw = {"batch_size": 6, "shuffle": True, "seed": 11, "device": "cpu", "augment": RandomCropFlip(padding=2)}
    full = collect_batches(InMemoryLoader(x, y, **kw).iter_from(5, 0))
    # A fresh loader (as after a restart) started at batch 4 of epoch 5.
    resumed = collect_batches(InMemoryLoader(x, y, **kw).iter_from(5, 4))
    assert_same_batches(full[4:], resumed)
    assert not torch.equal(full[0][0], collect_batches(InMemoryLoader(x, y, **kw).iter_from(6, 0))[0][0])


def test_augmented_batch_uses_the_documented_generator() -> None:
    x, y = random_images(20, size=10)
    aug = RandomCropFlip(padding=3)
    loader = InMemoryLoader(x, y, batch_size=8, shuffle=True, seed=5, device="cpu", augment=aug, rank=1, world_size=2)
    loader.set_epoch(2)
    order = loader.indices(2)
    for b, (xb, _, ib) in enumerate(loader):
        assert torch.equal(ib, order[b * 8 : (b + 1) * 8])
        expected = aug(x[ib], make_generator(5, STREAM_AUGMENT, 2, 1, b)).float() / 255
        assert torch.equal(xb, expected)


def test_loader_shards_for_two_ranks_run_equal_steps_and_cover() -> None:
    x, y = random_images(23)
    loaders = [
        InMemoryLoader(x, y, batch_size=4, shuffle=True, seed=0, device="cpu", rank=r, world_size=2) for r in range(2)
    ]
    seen = [torch.cat([i for _, _, i in ld.iter_from(1)]).tolist() for ld in loaders]
    assert len(loaders[0]) == len(loaders[1]) == 3
    assert len(seen[0]) == len(seen[1]) == 12
    assert set(seen[0]) | set(seen[1]) == set(range(23))
    assert len(set(seen[0]) & set(seen[1])) == 1  # the one padding sample


def test_eval_loader_without_padding_visits_each_sample_once() -> None:
    x, y = random_images(23)
    seen = []
    for r in range(2):
        ld = InMemoryLoader(x, y, batch_size=4, shuffle=False, seed=0, device="cpu", rank=r, world_size=2, pad=False)
        seen += torch.cat([i for _, _, i in ld]).tolist()
    assert sorted(seen) == list(range(23))


def test_unpadded_ranks_of_an_uneven_split_have_uneven_lengths() -> None:
    # 7 samples on 3 ranks: 3, 2 and 2 batches of one sample; every sample once
    x, y = random_images(7)
    seen = []
    for r, n in enumerate((3, 2, 2)):
        ld = InMemoryLoader(x, y, batch_size=1, shuffle=False, seed=0, device="cpu", rank=r, world_size=3, pad=False)
        assert ld.num_samples == len(ld) == n
        seen += torch.cat([i for _, _, i in ld]).tolist()
    assert sorted(seen) == list(range(7))


def test_a_dataset_smaller_than_the_world_is_padded_by_cycling_it() -> None:
    # 2 samples on 5 ranks: each rank still gets ceil(2 / 5) = 1 index, the order repeated 0 1 0 1 0
    shards = [shard_indices(2, epoch=0, seed=0, shuffle=False, rank=r, world_size=5) for r in range(5)]
    assert [s.tolist() for s in shards] == [[0], [1], [0], [1], [0]]


def test_drop_last_and_len() -> None:
    x, y = random_images(23)
    ld = InMemoryLoader(x, y, batch_size=5, shuffle=True, seed=0, device="cpu", drop_last=True)
    batches = collect_batches(ld)
    assert len(ld) == len(batches) == 4 and all(b[0].shape[0] == 5 for b in batches)


def test_float_inputs_pass_through_unscaled() -> None:
    x = torch.randn(9, 4, dtype=torch.float64) * 100
    y = torch.arange(9) % 2
    ld = InMemoryLoader(x, y, batch_size=4, shuffle=False, seed=0, device="cpu")
    xb, yb, ib = next(iter(ld))
    assert xb.dtype == torch.float32 and torch.equal(xb, x[:4].float()) and ib.tolist() == [0, 1, 2, 3]


def test_fetch_is_augmented_with_the_given_or_own_generator() -> None:
    x, y = random_images(10, size=8)
    aug = RandomCropFlip(padding=2)
    ld = InMemoryLoader(x, y, batch_size=4, shuffle=True, seed=9, device="cpu", augment=aug)
    idx = torch.tensor([3, 3, 7, 0])
    xa, ya = ld.fetch(idx, torch.Generator().manual_seed(1))
    assert torch.equal(xa, aug(x[idx], torch.Generator().manual_seed(1)).float() / 255)
    assert torch.equal(ya, y[idx])
    # Own generator: advanced per call, restored by load_state_dict.
    state = ld.state_dict()
    first = ld.fetch(idx)[0]
    second = ld.fetch(idx)[0]
    assert not torch.equal(first, second)
    ld.load_state_dict(state)
    assert torch.equal(ld.fetch(idx)[0], first)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"y": torch.zeros(4, dtype=torch.int64)}, ValueError, r"inputs have shape \(5, 3, 8, 8\) but labels have"),
        ({"y": torch.zeros(5, 2, dtype=torch.int64)}, ValueError, r"labels must have shape \(N,\), got shape"),
        ({"y": torch.zeros(5)}, TypeError, "labels must be an integer tensor, got dtype torch.float32"),
        ({"x": torch.zeros(5, 3, dtype=torch.int32)}, TypeError, "inputs must be uint8 .* got dtype torch.int32"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an int, got float"),
        ({"rank": 2, "world_size": 2}, ValueError, r"rank must be in \[0, world_size=2\), got rank=2"),
        ({"augment": 3}, TypeError, "augment must be callable"),
        ({"x": torch.zeros(0, 3), "y": torch.zeros(0, dtype=torch.int64)}, ValueError, "the dataset is empty"),
    ],
)
def test_loader_rejects_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    x, y = random_images(5)
    args = {"x": x, "y": y, "batch_size": 2, "shuffle": True, "seed": 0, "device": "cpu"} | kwargs
    with pytest.raises(exc, match=match):
        InMemoryLoader(args.pop("x"), args.pop("y"), **args)


def test_loader_rejects_bad_resume_and_fetch() -> None:
    x, y = random_images(10)
    ld = InMemoryLoader(x, y, batch_size=4, shuffle=True, seed=0, device="cpu")
    with pytest.raises(ValueError, match="start_batch=4 is beyond the 3 batches"):
        ld.iter_from(0, 4)
    with pytest.raises(ValueError, match="epoch must be >= 0, got -1"):
        ld.set_epoch(-1)
    with pytest.raises(ValueError, match=r"fetch indices must lie in \[0, 10\), got range \[0, 10\]"):
        ld.fetch(torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="fetch expects a 1-D int64 tensor"):
        ld.fetch(torch.tensor([[0]]))
    assert list(ld.iter_from(0, 3)) == []  # resuming at the end of an epoch is valid and empty


def test_tensor_splits_validate_and_infer_classes() -> None:
    x, y = random_images(6)
    s = TensorSplits(train=(x, y.to(torch.int32)), test=(x, y))
    assert s.num_classes == 3 and s.train[1].dtype == torch.int64
    with pytest.raises(TypeError, match=r"TensorSplits.test must be a pair \(x, y\), got Tensor"):
        TensorSplits(train=(x, y), test=x)
    with pytest.raises(ValueError, match="TensorSplits.train: inputs have shape"):
        TensorSplits(train=(x, y[:3]), test=(x, y))


def test_subset_per_class_keeps_first_n_after_seeded_shuffle() -> None:
    y = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    keep = subset_per_class_indices(y, 4, seed=2)
    assert torch.equal(keep, keep.sort().values)
    assert torch.bincount(y[keep]).tolist() == [4, 3, 4]
    assert torch.equal(keep, subset_per_class_indices(y, 4, seed=2))
    perm = torch.randperm(20, generator=make_generator(2, 4))
    expected = sorted(sum((perm[y[perm] == c][:4].tolist() for c in range(3)), []))
    assert keep.tolist() == expected
    assert not torch.equal(keep, subset_per_class_indices(y, 4, seed=3))
    with pytest.raises(ValueError, match="subset_per_class must be >= 1, got 0"):
        subset_per_class_indices(y, 0, seed=0)
