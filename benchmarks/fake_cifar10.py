"""A CIFAR-10-shaped JPEG tree of random pixels, for speed measurements where the real data cannot go.

The GPU machine this project is sometimes lent (benchmarks/gpu_check.sh) reaches no network and gets only the
repository, not ../shared/data; an epoch's time does not depend on what the pixels show, so the trainer is timed
there on this tree. It has CIFAR-10's layout, class names and sizes (``<root>/cifar10-jpeg/{train,test}/<class>/``,
5,000 and 1,000 32x32 images per class), so ``VICINAL_DATA=<root>`` makes the ``cifar10`` dataset read it as it
reads the shared JPEG copy. Never train for accuracy on it: labels are random.

    python benchmarks/fake_cifar10.py /tmp/fake-data [--per-class 5000 --test-per-class 1000 --workers 8]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from vicinal.experiments.data.images import CIFAR10_CLASSES


def _write_class(job: tuple[Path, int, int]) -> int:
    folder, count, seed = job
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=95)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="data root to create (the tree goes into ROOT/cifar10-jpeg)")
    parser.add_argument("--per-class", type=int, default=5000, help="training images per class (CIFAR-10: 5000)")
    parser.add_argument("--test-per-class", type=int, default=1000, help="test images per class (CIFAR-10: 1000)")
    parser.add_argument("--workers", type=int, default=4, help="processes writing classes in parallel")
    args = parser.parse_args(argv)
    for name in ("per_class", "test_per_class", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    tree = args.root / "cifar10-jpeg"
    if tree.exists() and any(tree.iterdir()):
        # an existing tree may be the real data: never write random images into it
        parser.error(f"{tree} exists and is not empty; give a new root")
    jobs = [
        (tree / split / cls, count, 1000 * s + c)
        for s, (split, count) in enumerate((("train", args.per_class), ("test", args.test_per_class)))
        for c, cls in enumerate(CIFAR10_CLASSES)
    ]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        total = sum(pool.map(_write_class, jobs))
    print(f"wrote {total} random 32x32 JPEG images under {tree} (speed measurements only: random labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
