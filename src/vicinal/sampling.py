"""Mixing-weight samplers. All randomness flows through an explicit ``torch.Generator``.

Beta and Dirichlet draws go through ``torch._sample_dirichlet`` in float64: it takes a generator (the public
``torch.distributions`` classes do not) and float64 keeps draws for small alpha (e.g. 0.1, where Gamma(0.1)
samples reach 1e-30) from underflowing to 0/0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import check_alpha


def new_generator(generator: torch.Generator | None = None, seed: int | None = None) -> torch.Generator:
    """Return ``generator``, or a new CPU generator seeded with ``seed`` (fresh OS entropy when both are None)."""
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    g = torch.Generator()
    if seed is None:
        g.seed()  # non-deterministic, like an unseeded torchvision transform; never touches the global RNG
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        g.manual_seed(seed)
    return g


def sample_dirichlet(alpha: float, k: int, size: tuple[int, ...] = (), *, generator: torch.Generator) -> Tensor:
    """Weights ~ Dirichlet(alpha, ..., alpha) over ``k`` examples, shape ``size + (k,)``, float64.

    ``alpha == 0`` is the ERM limit: all weight on the first example.
    """
    alpha = check_alpha(alpha)
    if k < 2:
        raise ValueError(f"k must be >= 2 examples to mix, got {k}")
    if alpha == 0.0:
        w = torch.zeros(*size, k, dtype=torch.float64)
        w[..., 0] = 1.0
        return w
    conc = torch.full((*size, k), alpha, dtype=torch.float64)
    return torch._sample_dirichlet(conc, generator=generator)


def sample_beta(alpha: float, size: tuple[int, ...] = (), *, generator: torch.Generator) -> Tensor:
    """lam ~ Beta(alpha, alpha), shape ``size``, float64 (paper, Section 2). ``alpha == 0`` gives lam = 1 (ERM)."""
    return sample_dirichlet(alpha, 2, size, generator=generator)[..., 0]


def sample_lam(alpha: float, batch_size: int, mode: str, *, generator: torch.Generator) -> float | Tensor:
    """One lam per batch (``mode="batch"``, the paper's choice, returned as a float) or one per sample
    (``mode="sample"``, a float64 tensor of shape (B,))."""
    if mode == "batch":
        return float(sample_beta(alpha, generator=generator))
    if mode == "sample":
        return sample_beta(alpha, (batch_size,), generator=generator)
    raise ValueError(f"unknown lam_mode {mode!r}; known: batch, sample")
