"""Mixing-weight samplers. All randomness flows through an explicit ``torch.Generator``.

Beta and Dirichlet draws are normalised Gamma draws, made in log space: ``torch._standard_gamma`` takes a
generator (the public ``torch.distributions`` classes do not), and ``Gamma(a) = Gamma(a + 1) * U ** (1 / a)``
gives ``log Gamma(a) = log Gamma(a + 1) + log(U) / a``, which stays finite for tiny alpha where the draws
themselves underflow (Gamma(0.001) draws are below 1e-300 half of the time, and 0/0 would give lam = 0.5).
For alpha >= 0.05 underflow is out of reach in float64 and the single fused ``torch._sample_dirichlet`` call
is used instead (several times faster for one lam per batch).
"""

from __future__ import annotations

import functools
from typing import Literal, overload

import torch
from torch import Tensor

from ._validation import check_alpha, check_generator, is_int

# Below this alpha, draws are made in log space (see the module docstring).
_LOG_SPACE_BELOW = 0.05
# Above this alpha, draws are made at it: the k Gamma draws lie near alpha, so their sum overflows float64 once
# k * alpha nears 1.8e308 (alpha 1e308 gave lam = 2.2e-308 instead of 0.5), while the weights' std, about
# 1 / (k * sqrt(k * alpha)), is below 1e-150 here, far under float64's resolution at 1/k: the same values.
_DRAW_ALPHA_AT_MOST = 1e300


def new_generator(generator: torch.Generator | None = None, seed: int | None = None) -> torch.Generator:
    """Return ``generator``, or a new CPU generator seeded with ``seed`` (fresh OS entropy when both are None)."""
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if generator is not None:
        return check_generator(generator)
    g = torch.Generator()
    if seed is None:
        g.seed()  # non-deterministic, like an unseeded torchvision transform; never touches the global RNG
    else:
        if not is_int(seed):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        if not -(2**63) <= int(seed) < 2**64:  # torch's own error said "Overflow when unpacking long long"
            raise ValueError(f"seed must be in [-2**63, 2**64) (a 64-bit seed), got {seed!r}")
        g.manual_seed(int(seed))
    return g


def sample_dirichlet(alpha: float, k: int, size: int | tuple[int, ...] = (), *, generator: torch.Generator) -> Tensor:
    """Weights ~ Dirichlet(alpha, ..., alpha) over ``k`` examples, shape ``size + (k,)``, float64.

    ``alpha == 0`` is the ERM limit: all weight on the first example.
    """
    alpha = check_alpha(alpha)
    if not is_int(k) or k < 2:
        raise ValueError(f"k must be an int >= 2 (examples to mix), got {k!r}")
    k = int(k)
    size = _check_size(size)
    check_generator(generator)
    if alpha == 0.0:
        w = torch.zeros(*size, k, dtype=torch.float64)
        w[..., 0] = 1.0
        return w
    if alpha >= _LOG_SPACE_BELOW:
        # one fused call (the fast path); at alpha >= 0.05 a float64 Gamma draw underflows with probability < 1e-15
        conc = torch.full((*size, k), min(alpha, _DRAW_ALPHA_AT_MOST), dtype=torch.float64)
        return torch._sample_dirichlet(conc, generator=generator)
    conc = torch.full((*size, k), alpha + 1.0, dtype=torch.float64)
    log_gamma = torch._standard_gamma(conc, generator=generator).log()
    log_u = torch.rand(conc.shape, generator=generator, dtype=torch.float64).log()
    scaled = log_gamma + log_u / alpha
    # below alpha ~1e-300, log_u / alpha overflows to -inf in every entry of a row, where softmax gives NaN: the same
    # weights from alpha * log(Gamma) + log(U), shifted so that the row's largest entry is 0 before the division
    # (the alpha -> 0 limit: all weight on one example). Other rows keep the values above bit for bit.
    z = alpha * log_gamma + log_u
    stable = (z - z.amax(-1, keepdim=True)) / alpha
    return torch.softmax(torch.where(scaled.amax(-1, keepdim=True) > -torch.inf, scaled, stable), dim=-1)


def _check_size(size: int | tuple[int, ...]) -> tuple[int, ...]:
    """A shape: an int (as torch.rand takes it) or a tuple of ints >= 0."""
    shape = (size,) if is_int(size) else size
    if not isinstance(shape, tuple | list) or not all(is_int(d) and d >= 0 for d in shape):
        raise ValueError(f"size must be an int or a tuple of ints >= 0, got {size!r}")
    return tuple(int(d) for d in shape)


def sample_beta(alpha: float, size: int | tuple[int, ...] = (), *, generator: torch.Generator) -> Tensor:
    """lam ~ Beta(alpha, alpha), shape ``size``, float64 (paper, Section 2). ``alpha == 0`` gives lam = 1 (ERM)."""
    return sample_dirichlet(alpha, 2, size, generator=generator)[..., 0]


@functools.lru_cache(maxsize=8)
def _pair_concentration(alpha: float) -> Tensor:
    """``(alpha, alpha)`` in float64, built once per alpha (read-only: the sampler never writes it)."""
    return torch.full((2,), alpha, dtype=torch.float64, device="cpu")  # not the default device of the first call


@overload
def sample_lam(alpha: float, batch_size: int, mode: Literal["batch"], *, generator: torch.Generator) -> float: ...
@overload
def sample_lam(alpha: float, batch_size: int, mode: Literal["sample"], *, generator: torch.Generator) -> Tensor: ...
@overload
def sample_lam(alpha: float, batch_size: int, mode: str, *, generator: torch.Generator) -> float | Tensor: ...
def sample_lam(alpha: float, batch_size: int, mode: str, *, generator: torch.Generator) -> float | Tensor:
    """One lam per batch (``mode="batch"``, the paper's choice, returned as a float) or one per sample
    (``mode="sample"``, a float64 tensor of shape (B,))."""
    check_generator(generator)
    if mode == "batch":
        alpha = check_alpha(alpha)
        if alpha >= _LOG_SPACE_BELOW:
            # sample_beta's fused draw, on a cached concentration tensor: the same values, a third of the time
            conc = _pair_concentration(min(alpha, _DRAW_ALPHA_AT_MOST))
            return torch._sample_dirichlet(conc, generator=generator).tolist()[0]
        return float(sample_beta(alpha, generator=generator))
    if mode == "sample":
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        return sample_beta(alpha, (int(batch_size),), generator=generator)
    raise ValueError(f"unknown lam_mode {mode!r}; known: batch, sample")
