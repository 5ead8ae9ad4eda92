"""The ``imagenet`` table: Table 1 of the paper (Section 3.1), top-1 / top-5 validation error on ImageNet-2012.

Rows (one row each of the sweep ``configs/imagenet/paper.yaml``, row key ``model/epochs/method``):

* 90 epochs: ResNet-50 and ResNet-101 (ERM, mixup alpha 0.2), ResNeXt-101 32x4d and 64x4d (ERM, mixup 0.4);
* 200 epochs: ResNet-50 and ResNet-101 (ERM, mixup 0.2), ResNeXt-101 32x4d (ERM, mixup 0.4).

The paper's "ERM (Goyal et al.)" rows are our ERM runs on the same schedule; its "ERM (Xie et al.)" 100-epoch
rows cite another recipe (batch 256, lr 0.1) and have no config here: the 64x4d ERM config is the 90-epoch
baseline on the paper's schedule, which the paper itself does not report.

Settings (Goyal et al., 2017, as the paper states): global minibatch 1,024 (``data.batch_size`` is per process:
use :func:`per_rank_batch_size`; the configs' ``data.global_batch_size: 1024`` makes the trainer refuse any other
product), SGD momentum 0.9, weight decay 1e-4, lr 0.1 -> 0.4 linearly per step over the first 5 epochs, divided by
10 at epochs 30/60/80 (90 epochs) or 60/120/180 (200 epochs), zero-initialised last BN of each residual branch,
RandomResizedCrop 224 + horizontal flip, evaluation resize 256 + centre crop 224.

There is no cpu scale: one ResNet-50 epoch on ImageNet is ~1.3 M images (hours on a GPU, weeks on 2 CPU cores).
The configs are tested on CPU with a tiny generated ImageFolder, one process and two gloo processes
(``tests/experiments/tasks/test_imagenet.py``). How to launch a row with ``torchrun``: ``docs/imagenet.md``.
"""

from __future__ import annotations

from pathlib import Path

from .. import distributed
from ..errors import TaskError
from .registry import SCALES, Table, config_files, paper_pairs_source, register_table

__all__ = [
    "GLOBAL_BATCH",
    "IMAGENET",
    "PAPER_IMAGENET",
    "PAPER_IMAGENET_SOURCE",
    "ROWS",
    "imagenet_configs",
    "per_rank_batch_size",
]

# Goyal et al. / the paper: minibatch 1,024 summed over all processes (every config's data.global_batch_size)
GLOBAL_BATCH = 1024
# (model, epochs, method, alpha) of every config.
_SPECS = (
    ("resnet50", 90, 0.2),
    ("resnet101", 90, 0.2),
    ("resnext101_32x4d", 90, 0.4),
    ("resnext101_64x4d", 90, 0.4),
    ("resnet50", 200, 0.2),
    ("resnet101", 200, 0.2),
    ("resnext101_32x4d", 200, 0.4),
)
ROWS = tuple(f"{m}/{e}/{k}" for m, e, _ in _SPECS for k in ("erm", "mixup"))
ALPHAS = {f"{m}/{e}/mixup": a for m, e, a in _SPECS}
# Published (top-1, top-5) validation errors in percent, paper/EXPERIMENTS.md 3.1; None = not reported.
# resnext101_64x4d/90/erm has no entry: the paper's ERM row for it is Xie et al.'s 100-epoch recipe.
PAPER_IMAGENET: dict[str, tuple[float, float | None]] = {
    "resnet50/90/erm": (23.5, None),
    "resnet50/90/mixup": (23.3, 6.6),
    "resnet101/90/erm": (22.1, None),
    "resnet101/90/mixup": (21.5, 5.6),
    "resnext101_32x4d/90/erm": (21.2, 5.6),
    "resnext101_32x4d/90/mixup": (20.7, 5.3),
    "resnext101_64x4d/90/mixup": (19.8, 4.9),
    "resnet50/200/erm": (23.6, 7.0),
    "resnet50/200/mixup": (22.1, 6.1),
    "resnet101/200/erm": (22.0, 6.1),
    "resnet101/200/mixup": (20.8, 5.4),
    "resnext101_32x4d/200/erm": (21.3, 5.9),
    "resnext101_32x4d/200/mixup": (20.1, 5.0),
}
PAPER_IMAGENET_SOURCE = paper_pairs_source(
    "Zhang et al., mixup, ICLR 2018, Table 1 via paper/EXPERIMENTS.md 3.1: ImageNet-2012 validation error",
    "top-1 error",
    ("top-1", "top-5"),
    PAPER_IMAGENET,
)

NO_CPU_SCALE = (
    "the imagenet table has no cpu scale (ImageNet-2012 needs GPUs: one ResNet-50 epoch is 1.28 M images); "
    "use --scale paper on a GPU node (docs/imagenet.md). The configs are smoke-tested on CPU by "
    "tests/experiments/tasks/test_imagenet.py with a tiny generated ImageFolder"
)


def per_rank_batch_size(world_size: int, global_batch: int = GLOBAL_BATCH) -> int:
    """``data.batch_size`` for ``world_size`` processes at the paper's global minibatch of 1,024 (or
    ``global_batch``): :func:`vicinal.experiments.distributed.per_rank_batch_size`, which the trainer's check of
    ``data.global_batch_size`` also uses. Raises its TypeError / ValueError."""
    return distributed.per_rank_batch_size(world_size, global_batch)


def imagenet_configs(scale: str) -> list[Path]:
    """The config files of ``scale``; only "paper" exists.

    Raises:
        ValueError: ``scale`` is "cpu" (no cpu scale: the message says what to do instead) or unknown.
        FileNotFoundError: the folder holds no config (not a source checkout).
    """
    if scale not in SCALES:
        raise TaskError(f"unknown scale {scale!r}; known scales: {', '.join(SCALES)}")
    if scale != "paper":
        raise TaskError(NO_CPU_SCALE)
    return config_files("imagenet", scale)


IMAGENET = register_table(
    Table(
        name="imagenet",
        title="Table 1 (Section 3.1): ImageNet-2012 top-1 / top-5 validation error, ResNe(X)ts, ERM vs mixup",
        configs=imagenet_configs,
        default_seeds={"paper": 1},
        notes=NO_CPU_SCALE,
        paper={row: top1 for row, (top1, _) in PAPER_IMAGENET.items()},
        paper_source=PAPER_IMAGENET_SOURCE,
        paper_top5={row: top5 for row, (_, top5) in PAPER_IMAGENET.items() if top5 is not None},
    )
)
