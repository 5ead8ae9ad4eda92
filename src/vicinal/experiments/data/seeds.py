"""Seeds of the lab's independent random streams: one user seed, hashed with a stream number (and epoch, rank ...).

Every random choice of the data layer (order, augmentation, subsets, splits, label corruption) and of the trainer
(mixing, dropout) draws from a generator seeded with ``derive_seed(seed, STREAM, ...)``; the stream numbers live
beside their users (``base.STREAM_*``, ``corrupt.STREAM_CORRUPT``, ``trainer.STREAM_MIX``). This module imports only
torch, so every module of the data layer can use it without importing another.
"""

from __future__ import annotations

import torch

__all__ = ["derive_seed", "make_generator"]

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
