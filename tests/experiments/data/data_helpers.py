"""Helpers shared by the data tests: small random uint8 image batches, JPEG image trees, batch comparison."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from tests.experiments.lab_helpers import SYNTHETIC, one_thread, register_synthetic, tiny_config  # noqa: F401 (one_thread: autouse)


def random_images(n: int = 23, seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 3
    return x, y


def collect_batches(it) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone(), i.clone()) for x, y, i in it]


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)


def write_image_tree(
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


def small_jpeg(seed: int) -> bytes:
    from PIL import Image

    arr = (np.random.default_rng(seed).random((8, 8, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def write_two_class_tree(root: Path) -> None:
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                (root / split / cls / f"{i}.jpg").write_bytes(small_jpeg(10 * c + i))
