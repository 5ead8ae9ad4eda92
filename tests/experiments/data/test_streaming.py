"""The streaming image-folder loader (data/streaming.py): seeded crops, exact resume, epochs, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.experiments.data.data_helpers import assert_same_batches, collect_batches, write_image_tree
from vicinal.experiments.data import (
    Loader,
    build_data,
    streaming,
)


def test_imagefolder_streaming_bundle(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"train": 5, "val": 2}, size=(40, 30))
    kw = {"root": tmp_path, "batch_size": 3, "eval_batch_size": 4, "num_workers": 0, "image_size": 24, "resize": 28}
    b = build_data("imagefolder", **kw)
    assert b.num_classes == 2 and b.input_shape == (3, 24, 24) and b.val is None and b.train_dataset_x is None
    assert len(b.train) == 4 and isinstance(b.train, Loader)
    full = collect_batches(b.train.iter_from(1))
    assert sorted(torch.cat([i for _, _, i in full]).tolist()) == list(range(10))
    for xb, yb, ib in full:
        assert xb.shape[1:] == (3, 24, 24) and xb.dtype == torch.float32 and 0 <= xb.min() and xb.max() <= 1
        assert torch.equal(yb, b.train_dataset_y[ib])
    # Exact resume from batch 2 with a fresh bundle; another epoch gives other crops and order.
    assert_same_batches(full[2:], collect_batches(build_data("imagefolder", **kw).train.iter_from(1, 2)))
    assert not all(torch.equal(a[0], c[0]) for a, c in zip(full, collect_batches(b.train.iter_from(2)), strict=False))
    test = collect_batches(b.test)
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


def test_streaming_loader_rejects_bad_epoch_and_start(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"train": 2, "val": 1}, size=(20, 20))
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
