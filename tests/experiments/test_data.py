"""Tests of the image data layer and the dataset registry (src/vicinal/experiments/data/)."""

from __future__ import annotations

import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vicinal.experiments.data import (
    DATASETS,
    DataBundle,
    InMemoryLoader,
    Loader,
    TensorSplits,
    build_data,
    images,
    register_dataset,
    streaming,
)
from vicinal.experiments.data.augment import CropFlipParams, RandomCropFlip, crop_flip
from vicinal.experiments.data.base import (
    STREAM_AUGMENT,
    derive_seed,
    make_generator,
    shard_indices,
    subset_per_class_indices,
)


def _images(n: int = 23, seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 3
    return x, y


def _collect(it) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone(), i.clone()) for x, y, i in it]


def _assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)


# ------------------------------------------------------------------------------------------------ seeds, shards


def test_derive_seed_is_deterministic_and_separates_neighbours() -> None:
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    seeds = {derive_seed(0, STREAM_AUGMENT, e) for e in range(100)}
    assert len(seeds) == 100
    assert derive_seed(1, 2) != derive_seed(2, 1)
    assert all(0 <= s < 2**63 for s in seeds)


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
    x, y = _images(23)
    loader = InMemoryLoader(x, y, batch_size=5, shuffle=True, seed=3, device="cpu")
    assert isinstance(loader, Loader)
    batches = _collect(loader)
    assert len(loader) == len(batches) == 5
    assert [b[0].shape[0] for b in batches] == [5, 5, 5, 5, 3]
    idx = torch.cat([b[2] for b in batches])
    assert sorted(idx.tolist()) == list(range(23))
    for xb, yb, ib in batches:
        assert xb.dtype == torch.float32 and yb.dtype == torch.int64 and ib.dtype == torch.int64
        assert torch.equal(xb, x[ib].to(torch.float32) / 255)  # exact uint8 -> [0, 1]
        assert torch.equal(yb, y[ib])


def test_loader_order_is_a_function_of_seed_and_epoch() -> None:
    x, y = _images(40)

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
    x, y = _images(37, size=12)
    kw = {"batch_size": 6, "shuffle": True, "seed": 11, "device": "cpu", "augment": RandomCropFlip(padding=2)}
    full = _collect(InMemoryLoader(x, y, **kw).iter_from(5, 0))
    # A fresh loader (as after a restart) started at batch 4 of epoch 5.
    resumed = _collect(InMemoryLoader(x, y, **kw).iter_from(5, 4))
    _assert_same_batches(full[4:], resumed)
    assert not torch.equal(full[0][0], _collect(InMemoryLoader(x, y, **kw).iter_from(6, 0))[0][0])


def test_augmented_batch_uses_the_documented_generator() -> None:
    x, y = _images(20, size=10)
    aug = RandomCropFlip(padding=3)
    loader = InMemoryLoader(x, y, batch_size=8, shuffle=True, seed=5, device="cpu", augment=aug, rank=1, world_size=2)
    loader.set_epoch(2)
    order = loader.indices(2)
    for b, (xb, _, ib) in enumerate(loader):
        assert torch.equal(ib, order[b * 8 : (b + 1) * 8])
        expected = aug(x[ib], make_generator(5, STREAM_AUGMENT, 2, 1, b)).float() / 255
        assert torch.equal(xb, expected)


def test_loader_shards_for_two_ranks_run_equal_steps_and_cover() -> None:
    x, y = _images(23)
    loaders = [
        InMemoryLoader(x, y, batch_size=4, shuffle=True, seed=0, device="cpu", rank=r, world_size=2) for r in range(2)
    ]
    seen = [torch.cat([i for _, _, i in ld.iter_from(1)]).tolist() for ld in loaders]
    assert len(loaders[0]) == len(loaders[1]) == 3
    assert len(seen[0]) == len(seen[1]) == 12
    assert set(seen[0]) | set(seen[1]) == set(range(23))
    assert len(set(seen[0]) & set(seen[1])) == 1  # the one padding sample


def test_eval_loader_without_padding_visits_each_sample_once() -> None:
    x, y = _images(23)
    seen = []
    for r in range(2):
        ld = InMemoryLoader(x, y, batch_size=4, shuffle=False, seed=0, device="cpu", rank=r, world_size=2, pad=False)
        seen += torch.cat([i for _, _, i in ld]).tolist()
    assert sorted(seen) == list(range(23))


def test_drop_last_and_len() -> None:
    x, y = _images(23)
    ld = InMemoryLoader(x, y, batch_size=5, shuffle=True, seed=0, device="cpu", drop_last=True)
    batches = _collect(ld)
    assert len(ld) == len(batches) == 4 and all(b[0].shape[0] == 5 for b in batches)


def test_float_inputs_pass_through_unscaled() -> None:
    x = torch.randn(9, 4, dtype=torch.float64) * 100
    y = torch.arange(9) % 2
    ld = InMemoryLoader(x, y, batch_size=4, shuffle=False, seed=0, device="cpu")
    xb, yb, ib = next(iter(ld))
    assert xb.dtype == torch.float32 and torch.equal(xb, x[:4].float()) and ib.tolist() == [0, 1, 2, 3]


def test_fetch_is_augmented_with_the_given_or_own_generator() -> None:
    x, y = _images(10, size=8)
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
    x, y = _images(5)
    args = {"x": x, "y": y, "batch_size": 2, "shuffle": True, "seed": 0, "device": "cpu"} | kwargs
    with pytest.raises(exc, match=match):
        InMemoryLoader(args.pop("x"), args.pop("y"), **args)


def test_loader_rejects_bad_resume_and_fetch() -> None:
    x, y = _images(10)
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
    x, y = _images(6)
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


# ------------------------------------------------------------------------------------------------ augmentation


def test_every_augmented_sample_is_a_padded_crop_possibly_flipped() -> None:
    x, _ = _images(64, seed=1, size=12)
    p = 4
    out = RandomCropFlip(padding=p)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (p, p, p, p))
    for i in range(x.shape[0]):
        candidates = [
            (t, l, f)
            for t in range(2 * p + 1)
            for l in range(2 * p + 1)
            for f in (False, True)
            if torch.equal(
                out[i],
                padded[i, :, t : t + 12, l : l + 12].flip(-1) if f else padded[i, :, t : t + 12, l : l + 12],
            )
        ]
        assert len(candidates) == 1, f"sample {i}: {candidates}"


def test_crop_flip_applies_given_params_exactly() -> None:
    x, _ = _images(3, size=6)
    params = CropFlipParams(
        top=torch.tensor([0, 4, 2]), left=torch.tensor([4, 0, 2]), flip=torch.tensor([True, False, True])
    )
    out = crop_flip(x, params, padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    assert torch.equal(out[0], padded[0, :, 0:6, 4:10].flip(-1))
    assert torch.equal(out[1], padded[1, :, 4:10, 0:6])
    assert torch.equal(out[2], x[2].flip(-1))  # centred crop = the image itself
    # Sample 1 reads rows 4..9 and columns 0..5 of the padded image: last 2 rows, first 2 columns are zeros.
    assert int(out[1, :, -2:, :].sum()) == 0 and int(out[1, :, :, :2].sum()) == 0
    assert torch.equal(out[1, :, :4, 2:], x[1, :, 2:, :4])
    with pytest.raises(ValueError, match=r"params.top has shape \(3,\) but the batch has 2 samples"):
        crop_flip(x[:2], params, padding=2)
    with pytest.raises(ValueError, match=r"crop_flip expects images of shape \(B, C, H, W\), got shape \(3, 6\)"):
        crop_flip(torch.zeros(3, 6), params, padding=2)


def test_crop_offsets_cover_all_81_positions_and_flip_half() -> None:
    params = RandomCropFlip(padding=4).sample_params(20000, torch.Generator().manual_seed(0))
    counts = torch.bincount(params.top * 9 + params.left, minlength=81)
    assert counts.numel() == 81 and bool((counts > 0).all())
    # Uniform: each of the 81 cells expects 247 draws; 5 sigma bounds.
    assert int(counts.min()) > 247 - 5 * 16 and int(counts.max()) < 247 + 5 * 16
    assert abs(params.flip.float().mean().item() - 0.5) < 0.02
    assert not RandomCropFlip(padding=4, flip=False).sample_params(50, torch.Generator()).flip.any()


def test_augment_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="padding must be a non-negative int, got -1"):
        RandomCropFlip(padding=-1)
    with pytest.raises(TypeError, match="RandomCropFlip needs a torch.Generator, got NoneType"):
        RandomCropFlip()(torch.zeros(1, 3, 4, 4), None)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"RandomCropFlip expects images of shape \(B, C, H, W\), got shape \(3, 4, 4\)"
    ):
        RandomCropFlip()(torch.zeros(3, 4, 4), torch.Generator())


# ------------------------------------------------------------------------------------------------ CIFAR JPEG


def test_cifar10_jpeg_subset_decodes_like_pil(require_data) -> None:
    from PIL import Image

    root = require_data("cifar10-jpeg")
    s = images.load_cifar10_jpeg(root, max_per_class=3, progress=False)
    x, y = s.train
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8
    assert y.tolist() == [c for c in range(10) for _ in range(3)]
    assert s.test[0].shape == (30, 3, 32, 32) and s.num_classes == 10
    assert s.info["classes"] == list(images.CIFAR10_CLASSES)
    first_truck = sorted((root / "train" / "truck").iterdir())[0]
    ref = torch.from_numpy(np.asarray(Image.open(first_truck).convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(x[27], ref)
    mean, std = images.channel_stats(x)
    assert mean == pytest.approx((x.double() / 255).mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx((x.double() / 255).std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-9)


def _write_tree(
    root: Path, splits: dict[str, int], size: tuple[int, int] = (32, 32), classes=("b_cls", "a_cls")
) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for cls in classes:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{k:03d}.jpg", quality=95)


def test_image_folder_cache_hit_reuses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tree(tmp_path, {"train": 3})
    first = images.load_image_folder_split(tmp_path / "train", progress=False)
    assert not first.cache_hit and first.cache_path is not None and first.cache_path.is_file()
    assert first.cache_path.parent == Path(os.environ["VICINAL_CACHE"])
    mtime = first.cache_path.stat().st_mtime_ns

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(images, "decode_images", no_decode)
    second = images.load_image_folder_split(tmp_path / "train", progress=False)
    assert second.cache_hit and second.cache_path == first.cache_path
    assert first.cache_path.stat().st_mtime_ns == mtime
    assert torch.equal(second.x, first.x) and torch.equal(second.y, first.y)
    assert second.classes == ("a_cls", "b_cls")  # alphabetical, ImageFolder's rule
    # A changed file list is a different key: a new decode (which the patch forbids).
    (tmp_path / "train" / "a_cls" / "000.jpg").unlink()
    with pytest.raises(AssertionError, match="decoded although"):
        images.load_image_folder_split(tmp_path / "train", progress=False)


def test_imagefolder_memory_bundle(tmp_path: Path) -> None:
    from PIL import Image

    _write_tree(tmp_path, {"train": 4, "test": 2, "val": 1}, size=(16, 16))
    b = build_data("imagefolder_memory", root=tmp_path, batch_size=3, eval_batch_size=5, progress=False)
    assert isinstance(b, DataBundle) and b.num_classes == 2 and b.input_shape == (3, 16, 16)
    assert b.info["sizes"] == {"train": 8, "test": 4, "val": 2}
    assert b.train_dataset_x is not None and b.train_dataset_x.dtype == torch.uint8
    xb, _, ib = next(iter(b.test))
    assert torch.equal(ib, torch.arange(4)) and xb.shape == (4, 3, 16, 16)
    assert b.info["augment"] == "RandomCropFlip(padding=4, flip=True)"
    xf, yf = b.fetch(torch.tensor([0, 5]))
    assert xf.shape == (2, 3, 16, 16) and yf.tolist() == [0, 1]

    # Images of different sizes need image_size.
    other = tmp_path / "mixed"
    _write_tree(other, {"train": 1, "test": 1}, size=(20, 12))
    Image.new("RGB", (12, 20)).save(other / "train" / "a_cls" / "001.jpg")  # PIL size is (width, height)
    with pytest.raises(ValueError, match=r"has shape \(3, 20, 12\) but .* has \(3, 12, 20\); pass image_size"):
        build_data("imagefolder_memory", root=other, batch_size=2, progress=False)


def test_imagefolder_memory_resizes_with_image_size(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"train": 2, "test": 1}, size=(20, 12))
    b = build_data("imagefolder_memory", root=tmp_path, batch_size=2, image_size=8, progress=False)
    assert b.input_shape == (3, 8, 8)


def test_imagefolder_streaming_bundle(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"train": 5, "val": 2}, size=(40, 30))
    kw = {"root": tmp_path, "batch_size": 3, "eval_batch_size": 4, "num_workers": 0, "image_size": 24, "resize": 28}
    b = build_data("imagefolder", **kw)
    assert b.num_classes == 2 and b.input_shape == (3, 24, 24) and b.val is None and b.train_dataset_x is None
    assert len(b.train) == 4 and isinstance(b.train, Loader)
    full = _collect(b.train.iter_from(1))
    assert sorted(torch.cat([i for _, _, i in full]).tolist()) == list(range(10))
    for xb, yb, ib in full:
        assert xb.shape[1:] == (3, 24, 24) and xb.dtype == torch.float32 and 0 <= xb.min() and xb.max() <= 1
        assert torch.equal(yb, b.train_dataset_y[ib])
    # Exact resume from batch 2 with a fresh bundle; another epoch gives other crops and order.
    _assert_same_batches(full[2:], _collect(build_data("imagefolder", **kw).train.iter_from(1, 2)))
    assert not all(torch.equal(a[0], c[0]) for a, c in zip(full, _collect(b.train.iter_from(2)), strict=False))
    test = _collect(b.test)
    assert torch.cat([i for _, _, i in test]).tolist() == [0, 1, 2, 3]
    assert test[0][0].shape == (4, 3, 24, 24)
    xf, yf = b.fetch(torch.tensor([9]), torch.Generator().manual_seed(0))
    assert xf.shape == (1, 3, 24, 24) and yf.tolist() == [1]


def test_seeded_random_resized_crop_params_stay_inside_the_image() -> None:
    t = streaming.SeededRandomResizedCrop(16)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w, _flip = t.params(30, 50, g)
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 50 and h > 0 and w > 0
    assert t.params(30, 50, torch.Generator().manual_seed(5)) == t.params(30, 50, torch.Generator().manual_seed(5))
    # An extreme aspect ratio never fits: the fallback is the central crop clamped to ratio 4/3.
    assert streaming.SeededRandomResizedCrop(16, scale=(0.99, 1.0)).params(10, 1000, g)[:4] == (0, 493, 10, 13)


# ------------------------------------------------------------------------------------------------ digits


def test_digits_split_is_stratified_and_seeded() -> None:
    s = images.load_digits_splits(seed=0)
    (xtr, ytr), (xte, yte) = s.train, s.test
    assert xtr.shape == (1198, 1, 8, 8) and xte.shape == (599, 1, 8, 8)
    assert xtr.dtype == torch.float32 and float(xtr.min()) == 0.0 and float(xtr.max()) == 1.0
    all_y = torch.cat([ytr, yte])
    n_c = torch.bincount(all_y)
    assert torch.bincount(yte).tolist() == [math.floor(n / 3 + 0.5) for n in n_c.tolist()]
    other = images.load_digits_splits(seed=1)
    assert torch.equal(images.load_digits_splits(seed=0).test[0], xte)
    assert not torch.equal(other.test[0], xte)
    b = build_data("digits", batch_size=100, seed=0)
    assert b.info["sizes"] == {"train": 1198, "test": 599} and b.input_shape == (1, 8, 8) and len(b.train) == 12
    assert b.info["augment"] is None  # float non-CIFAR data: no augmentation
    with pytest.raises(ValueError, match="test_fraction must be in"):
        images.load_digits_splits(test_fraction=1.5)


def test_subset_per_class_in_build_data() -> None:
    b = build_data("digits", batch_size=8, subset_per_class=5, test_subset_per_class=2)
    assert b.info["sizes"] == {"train": 50, "test": 20}
    assert torch.bincount(b.train_dataset_y).tolist() == [5] * 10


# ------------------------------------------------------------------------------------------------ registry


def test_registry_lists_the_paper_datasets() -> None:
    expected = {
        "cifar10",
        "cifar100",
        "imagefolder_memory",
        "imagenet",
        "imagefolder",
        "digits",
        "fsdd",
        "speech_commands",
    }
    assert expected | {f"uci:{n}" for n in ("abalone", "arcene", "arrhythmia", "htru2", "iris", "phishing")} <= set(
        DATASETS
    )


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; known datasets: cifar10, cifar100, digits"):
        build_data("mnist")
    with pytest.raises(ValueError, match="dataset 'digits' is already registered"):
        register_dataset("digits")(lambda req: None)
    with pytest.raises(ValueError, match="dataset name must be a non-empty string"):
        register_dataset("")
    with pytest.raises(ValueError, match="eval_batch_size must be >= 1, got 0"):
        build_data("digits", eval_batch_size=0)
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size=2\), got rank=3"):
        build_data("digits", rank=3, world_size=2)
    with pytest.raises(ValueError, match="test_subset_per_class must be >= 1, got -2"):
        build_data("digits", test_subset_per_class=-2)
    with pytest.raises(ValueError, match="cifar10: source must be 'auto', 'jpeg' or 'torchvision', got 'png'"):
        build_data("cifar10", source="png")
    with pytest.raises(ValueError, match="imagefolder_memory needs root="):
        build_data("imagefolder_memory")
    with pytest.raises(ValueError, match="imagefolder needs root="):
        build_data("imagefolder")


def test_registry_rejects_builders_returning_other_things() -> None:
    register_dataset("_bad_for_test")(lambda req: 42)
    try:
        with pytest.raises(TypeError, match="dataset builder '_bad_for_test' returned int"):
            build_data("_bad_for_test")
    finally:
        del DATASETS["_bad_for_test"]


def test_cifar_torchvision_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-100-python not found; pass download=True"):
        build_data("cifar100", root=tmp_path)
    with pytest.raises(ValueError, match="name must be 'cifar10' or 'cifar100', got 'svhn'"):
        images.load_cifar_torchvision("svhn")


def test_missing_jpeg_tree_and_empty_class(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CIFAR-10 JPEG split not found"):
        build_data("cifar10", root=tmp_path)
    (tmp_path / "train" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no image files"):
        images.list_image_folder(tmp_path / "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        images.list_image_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="image folder split not found"):
        images.list_image_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="max_per_class must be a positive int or None, got 0"):
        images.list_image_folder(tmp_path / "train", max_per_class=0)
    with pytest.raises(ValueError, match="decode_images got an empty list"):
        images.decode_images([])


def test_wrapped_loaders_are_imported_lazily_and_pass_floats_through(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_uci(name: str, root=None, *, seed: int = 0) -> TensorSplits:
        calls.append((name, root, seed))
        x = torch.linspace(-3, 3, 24, dtype=torch.float32).reshape(6, 4)
        return TensorSplits(
            train=(x, torch.tensor([0, 1, 2, 0, 1, 2])), test=(x[:2], torch.tensor([0, 1])), num_classes=3
        )

    def load_fsdd(root=None, *, seed: int = 0, val_fraction: float = 0.1, sample_level: str = "spectrogram"):
        calls.append(("fsdd", root, seed, val_fraction))
        x = torch.randn(4, 1, 5, 3, generator=torch.Generator().manual_seed(0))
        return TensorSplits(
            train=(x, torch.tensor([0, 1, 0, 1])), test=(x, torch.tensor([0, 1, 0, 1])), val=(x[:1], torch.tensor([1]))
        )

    monkeypatch.setitem(sys.modules, "vicinal.experiments.data.uci", types.SimpleNamespace(load_uci=load_uci))
    monkeypatch.setitem(sys.modules, "vicinal.experiments.data.audio", types.SimpleNamespace(load_fsdd=load_fsdd))
    b = build_data("uci:htru2", batch_size=4, seed=3)
    assert calls[-1] == ("htru2", None, 3)
    xb, _, ib = next(iter(b.train_eval))
    assert torch.equal(xb, torch.linspace(-3, 3, 24).reshape(6, 4)[ib])  # no /255, no augmentation
    assert b.input_shape == (4,) and b.num_classes == 3 and b.info["augment"] is None
    f = build_data("fsdd", batch_size=2, seed=1, val_fraction=0.2)
    assert calls[-1] == ("fsdd", None, 1, 0.2) and f.val is not None and len(f.val) == 1


def test_image_tree_errors_name_what_they_got(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tree(tmp_path / "wrong", {"train": 1, "test": 1})
    with pytest.raises(ValueError, match=r"has classes \['a_cls', 'b_cls'\], expected \['airplane'"):
        images.load_cifar10_jpeg(tmp_path / "wrong", progress=False)
    _write_tree(tmp_path / "mismatch", {"train": 1})
    _write_tree(tmp_path / "mismatch", {"test": 1}, classes=("a_cls", "z_cls"))
    with pytest.raises(ValueError, match=r"test split has classes \['a_cls', 'z_cls'\] but train has"):
        images.load_image_folder_memory(tmp_path / "mismatch", progress=False)
    with pytest.raises(ValueError, match=r"differ from train's 2"):
        build_data("imagefolder", root=tmp_path / "mismatch", num_workers=0)
    _write_tree(tmp_path / "noeval", {"train": 1})
    with pytest.raises(FileNotFoundError, match="no evaluation split in"):
        build_data("imagefolder_memory", root=tmp_path / "noeval", progress=False)
    with pytest.raises(ValueError, match=r"channel_stats expects \(N, C, H, W\), got shape \(2, 3\)"):
        images.channel_stats(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ImageFolderLoader got no samples"):
        streaming.ImageFolderLoader([], train=True, batch_size=2, seed=0, device="cpu")
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py not found in .*; pass download=True or root="):
        images.load_cifar_torchvision("cifar10")


def test_streaming_loader_rejects_bad_epoch_and_start(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"train": 2, "val": 1}, size=(20, 20))
    b = build_data("imagefolder", root=tmp_path, batch_size=2, num_workers=0, image_size=16, resize=18, augment=False)
    assert b.info["augment"] is None and len(b.train) == 2
    # Without augmentation the training loader uses the deterministic eval transform: epochs differ in order only.
    e0 = {int(i): x for xb, _, ib in b.train.iter_from(0) for x, i in zip(xb, ib, strict=True)}
    e1 = {int(i): x for xb, _, ib in b.train.iter_from(1) for x, i in zip(xb, ib, strict=True)}
    assert all(torch.equal(e0[k], e1[k]) for k in range(4))
    with pytest.raises(ValueError, match=r"start_batch=3 is outside \[0, 2\]"):
        b.train.iter_from(0, 3)
    with pytest.raises(ValueError, match="epoch must be >= 0, got -2"):
        b.train.set_epoch(-2)


def test_augment_false_turns_off_crop_flip(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"train": 2, "test": 1}, size=(8, 8))
    b = build_data("imagefolder_memory", root=tmp_path, batch_size=4, augment=False, progress=False)
    assert b.info["augment"] is None
    xb, _, ib = next(iter(b.train))
    assert torch.equal(xb, b.train_dataset_x[ib].float() / 255)
