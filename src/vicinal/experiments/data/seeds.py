"""Seeds of the lab's independent random streams: one user seed, hashed with a stream number (and epoch, rank ...).

Every random choice of the data layer (order, augmentation, subsets, splits, label corruption) and of the trainer
(mixing, dropout) and of the seed-ensemble tasks (UCI, GAN, the toy figure) draws from a generator seeded with
``derive_seed(seed, STREAM, ...)``. This module owns every stream number (`STREAMS`; a test checks that they are
distinct); the users import theirs from here. Changing a number changes every result drawn from that stream. This
module imports only torch, so every module of the data layer can use it without importing another.
"""

from __future__ import annotations

import torch

__all__ = [
    "STREAM_AUGMENT",
    "STREAM_CORRUPT",
    "STREAM_FETCH",
    "STREAM_GAN_DATA",
    "STREAM_GAN_EVAL",
    "STREAM_GAN_FIGURE",
    "STREAM_GAN_INIT",
    "STREAM_GLOBAL",
    "STREAM_MIX",
    "STREAM_ORDER",
    "STREAM_SPLIT",
    "STREAM_SUBSET",
    "STREAM_TOY_INIT",
    "STREAM_TOY_MIX",
    "STREAM_UCI_INIT",
    "STREAM_UCI_MIX",
    "STREAM_UCI_ORDER",
    "STREAMS",
    "derive_seed",
    "make_generator",
]

# -- the stream numbers ------------------------------------------------------------------------------------------
# data layer (data/base.py, data/corrupt.py)
STREAM_ORDER = 1  # per-epoch permutation of the dataset
STREAM_AUGMENT = 2  # per-batch augmentation parameters
STREAM_FETCH = 3  # partner samples drawn by `fetch` without an explicit generator
STREAM_SUBSET = 4  # which samples a `subset_per_class` keeps
STREAM_SPLIT = 5  # train/test splits made by the loaders (digits, UCI)
STREAM_CORRUPT = 6  # the label corruption of Table 2
# trainer
STREAM_MIX = 101  # the mixing generator of each rank (lam, partners, KNN)
STREAM_GLOBAL = 102  # the global RNGs of each rank (dropout, third-party code)
# UCI seed ensemble (tasks/uci_train.py)
STREAM_UCI_INIT = 601  # initial weights
STREAM_UCI_ORDER = 602  # per-epoch order of the training rows
STREAM_UCI_MIX = 603  # per-epoch mixing lam and partners
# GAN seed ensemble (tasks/gan_train.py, tasks/gan.py)
STREAM_GAN_INIT = 701  # initial weights of G (part 0) and D (part 1)
STREAM_GAN_DATA = 702  # real points, noise and lam of every step
STREAM_GAN_EVAL = 703  # the evaluation's noise and real sample (with gan_train.EVAL_SEED)
STREAM_GAN_FIGURE = 704  # the figure's real points (with gan_train.EVAL_SEED)
# Figure 1b's toy MLPs (tasks/figures.py)
STREAM_TOY_INIT = 801  # initial weights
STREAM_TOY_MIX = 802  # mixing lam and partners

STREAMS: dict[str, int] = {k: v for k, v in dict(globals()).items() if k.startswith("STREAM_")}

_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """One round of the SplitMix64 finaliser (Steele et al., 2014): a bijective 64-bit mixer."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_seed(*parts: int) -> int:
    """Hash integers (seed, stream, epoch, rank, ...) into one 63-bit seed for `torch.Generator.manual_seed`.

    Neighbouring inputs (epoch 3 vs 4, rank 0 vs 1) give unrelated seeds, unlike ``seed + epoch``.

    Args:
        *parts: Non-negative or negative Python ints; each is reduced modulo 2**64.

    Returns:
        An int in ``[0, 2**63)``.
    """
    h = 0x243F6A8885A308D3  # arbitrary non-zero start (digits of pi)
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def make_generator(*parts: int) -> torch.Generator:
    """A fresh CPU `torch.Generator` seeded with ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))
