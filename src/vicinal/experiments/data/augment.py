"""Batched image augmentation on tensors (CPU or GPU), one random draw per sample, no per-image loop.

The CIFAR recipe of the paper (section 3.2, after He et al. 2016): pad 4 pixels of zeros on each side,
crop a random 32x32 window back, flip horizontally with probability 1/2. As in torchvision v2, parameters
are drawn in one place (`RandomCropFlip.sample_params`, from an explicit `torch.Generator`) and applied by a
deterministic function (`crop_flip`), so both halves are testable exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CropFlipParams:
    """Per-sample crop offsets into the padded image and flip flags, each ``(B,)``."""

    top: Tensor  # int64 in [0, 2 * padding]
    left: Tensor  # int64 in [0, 2 * padding]
    flip: Tensor  # bool


def crop_flip(x: Tensor, params: CropFlipParams, padding: int) -> Tensor:
    """Zero-pad every image by ``padding``, crop each at its own offset, mirror the flagged ones.

    Output sample ``i`` equals ``pad(x)[i, :, top_i : top_i + H, left_i : left_i + W]``, reversed along the
    width when ``flip_i``. One gather over the whole batch; works for any dtype (uint8 pads with 0 = black).

    Args:
        x: ``(B, C, H, W)`` images.
        params: Offsets and flags, ``(B,)`` each.
        padding: Zero padding on each side.

    Returns:
        ``(B, C, H, W)``, same dtype and device as ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"crop_flip expects images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    for name in ("top", "left", "flip"):
        t = getattr(params, name)
        if t.shape != (b,):
            raise ValueError(f"crop_flip: params.{name} has shape {tuple(t.shape)} but the batch has {b} samples")
    dev = x.device
    top, left, flip = params.top.to(dev), params.left.to(dev), params.flip.to(dev)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x  # (B, C, H+2p, W+2p)
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = top[:, None] + ar_h  # (B, H) source row of each output row
    # A flipped crop reads its window right to left.
    cols = left[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # (B, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]  # (B, 1, 1, 1)
    ci = torch.arange(c, device=dev)[None, :, None, None]  # (1, C, 1, 1)
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)


class RandomCropFlip:
    """Random crop with zero padding plus random horizontal flip, for a batch ``(B, C, H, W)``.

    Args:
        padding: Zeros added on each side before cropping back to the input size (paper: 4).
        flip: Also mirror each sample with probability 1/2.

    Call as ``aug(x, generator)``; offsets and flips are drawn on the generator's device (CPU generators
    give the same augmentation whether ``x`` lives on the CPU or a GPU).
    """

    def __init__(self, padding: int = 4, flip: bool = True) -> None:
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, got {padding!r}")
        self.padding = padding
        self.flip = flip

    def sample_params(self, batch: int, generator: torch.Generator) -> CropFlipParams:
        """Draw ``batch`` offsets uniform in ``{0..2p}^2`` and flips ~ Bernoulli(1/2) from ``generator``."""
        dev = generator.device
        offsets = torch.randint(0, 2 * self.padding + 1, (2, batch), generator=generator, device=dev)
        flips = torch.rand(batch, generator=generator, device=dev) < 0.5
        if not self.flip:
            flips = torch.zeros_like(flips)
        return CropFlipParams(top=offsets[0], left=offsets[1], flip=flips)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"RandomCropFlip needs a torch.Generator, got {type(generator).__name__}")
        if x.ndim != 4:
            raise ValueError(f"RandomCropFlip expects images of shape (B, C, H, W), got shape {tuple(x.shape)}")
        return crop_flip(x, self.sample_params(x.shape[0], generator), self.padding)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"
