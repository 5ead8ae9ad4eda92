"""The seeded crop-and-flip augmentation (data/augment.py): padded crops, given params, offset coverage, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.experiments.data.data_helpers import random_images
from vicinal.experiments.data.augment import CropFlipParams, RandomCropFlip, crop_flip


def test_every_augmented_sample_is_a_padded_crop_possibly_flipped() -> None:
    x, _ = random_images(64, seed=1, size=12)
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
    x, _ = random_images(3, size=6)
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
