"""Toy 2-D data of the GAN experiment (Section 3.7) and the numbers that replace eyeballing Figure 5.

Datasets (both with isotropic Gaussian modes of standard deviation ``std``, 0.01 as in the authors' demo):

- ``ring``: 8 modes on the unit circle, at angles ``2 pi k / 8`` (k = 0..7); neighbouring modes are
  ``2 sin(pi / 8) = 0.765`` apart.
- ``grid``: 25 modes on the 5 x 5 grid ``{-2, -1, 0, 1, 2}^2`` (spacing 1, no rescaling).

Metrics of a set of generated points (the rule of the mode-collapse literature: VEEGAN, PacGAN):

- a sample is *high quality* when it lies within ``3 * std`` (0.03) of its nearest mode;
- a mode is *covered* when at least ``min_count`` high-quality samples have it as their nearest mode
  (default 20 out of ``n = 2,500`` samples, i.e. 20% of the 100 a uniform generator puts on each grid mode);
- the distance to the real distribution is the sliced 2-Wasserstein distance between the generated points and
  an equally large real sample, over ``n_proj`` evenly spaced directions (deterministic: no random projections);
- a run *converges* when, at its last iteration, every mode is covered and at least half its samples are high
  quality (:func:`is_converged`).

Every function here is vectorised over leading "run" dimensions, so that the metrics of S batched runs cost one
call: samples ``(..., N, 2)`` give metrics of shape ``(...)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import TaskArgumentError, TaskError

__all__ = [
    "DATASETS",
    "DEFAULT_MIN_COUNT",
    "DEFAULT_STD",
    "QUALITY_STDS",
    "evaluate_samples",
    "high_quality_mask",
    "is_converged",
    "mode_counts",
    "sample_toy",
    "sliced_wasserstein",
    "toy_modes",
]

DATASETS = ("ring", "grid")
DEFAULT_STD = 0.01
QUALITY_STDS = 3.0  # a sample is high quality within QUALITY_STDS * std of its nearest mode
DEFAULT_MIN_COUNT = 20  # high-quality samples a mode needs to count as covered (out of 2,500)
CONVERGED_QUALITY = 0.5  # share of high-quality samples a converged run needs at its end


def _check_dataset(name: str) -> str:
    if name not in DATASETS:
        raise TaskError(f"unknown toy dataset {name!r}; known: {', '.join(DATASETS)}")
    return name


def toy_modes(name: str) -> Tensor:
    """The mode centres of a toy dataset, ``(K, 2)`` float32: K = 8 for ``ring``, 25 for ``grid``."""
    _check_dataset(name)
    if name == "ring":
        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)  # (8,)
        return torch.stack([angle.cos(), angle.sin()], dim=1).float()  # (8, 2)
    axis = torch.arange(-2.0, 3.0, dtype=torch.float64)  # (5,) = -2, -1, 0, 1, 2
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float()  # (25, 2)


def sample_toy(name: str, n: int, *, generator: torch.Generator, std: float = DEFAULT_STD) -> Tensor:
    """``n`` points ``(n, 2)`` float32 of a toy dataset: a uniformly chosen mode plus ``N(0, std^2 I)`` noise.

    Draws, in this order, the mode indices ``(n,)`` and the noise ``(n, 2)`` from ``generator``.
    """
    modes = toy_modes(name)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TaskError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(std, int | float) or isinstance(std, bool) or not std > 0:
        raise TaskError(f"std must be a number > 0, got {std!r}")
    idx = torch.randint(len(modes), (n,), generator=generator)  # (n,)
    noise = torch.randn(n, 2, generator=generator)  # (n, 2)
    return modes[idx] + std * noise


def _check_samples(samples: Tensor, what: str = "samples") -> None:
    if not isinstance(samples, Tensor):
        raise TaskArgumentError(f"{what} must be a torch.Tensor, got {type(samples).__name__}")
    if samples.dim() < 2 or samples.shape[-1] != 2 or samples.shape[-2] == 0:
        raise TaskError(f"{what} must have shape (..., N, 2) with N >= 1, got {tuple(samples.shape)}")


def high_quality_mask(samples: Tensor, modes: Tensor, std: float = DEFAULT_STD) -> tuple[Tensor, Tensor]:
    """Which samples lie within ``3 std`` of their nearest mode, and which mode that is.

    Args:
        samples: ``(..., N, 2)`` points. Non-finite points are never high quality.
        modes: ``(K, 2)`` mode centres.
        std: Standard deviation of the modes.

    Returns:
        ``(mask, nearest)``: bool ``(..., N)`` and int64 ``(..., N)``.
    """
    _check_samples(samples)
    modes = modes.to(samples.device, samples.dtype)
    # (..., N, K) squared distances; nan_to_num keeps argmin defined for diverged (NaN/Inf) generators.
    d2 = (samples.unsqueeze(-2) - modes).pow(2).sum(-1)
    d2 = torch.nan_to_num(d2, nan=math.inf)
    best, nearest = d2.min(dim=-1)  # (..., N)
    return best <= (QUALITY_STDS * std) ** 2, nearest


def mode_counts(samples: Tensor, modes: Tensor, std: float = DEFAULT_STD) -> Tensor:
    """High-quality samples per mode, int64 ``(..., K)``."""
    mask, nearest = high_quality_mask(samples, modes, std)
    one_hot = torch.nn.functional.one_hot(nearest, len(modes))  # (..., N, K)
    return (one_hot * mask.unsqueeze(-1)).sum(-2)


def sliced_wasserstein(a: Tensor, b: Tensor, n_proj: int = 64) -> Tensor:
    """Sliced 2-Wasserstein distance between equally large 2-D point sets, over ``n_proj`` evenly spaced directions.

    ``SW2(a, b)^2 = mean_theta W2(<a, u_theta>, <b, u_theta>)^2`` with ``theta = pi k / n_proj``; each 1-D W2 is
    the mean squared difference of the sorted projections. For ``b = a + c`` it equals ``|c| / sqrt(2)``.

    Args:
        a: ``(..., N, 2)`` points (e.g. generated, one set per run).
        b: ``(N, 2)`` or ``(..., N, 2)`` points (e.g. real), broadcast against ``a``.
        n_proj: Number of directions (>= 2).

    Returns:
        ``(...)`` distances; NaN where ``a`` has non-finite points.
    """
    _check_samples(a, "a")
    _check_samples(b, "b")
    if a.shape[-2] != b.shape[-2]:
        raise TaskError(f"a has {a.shape[-2]} points but b has {b.shape[-2]}; sliced_wasserstein needs equal sizes")
    if isinstance(n_proj, bool) or not isinstance(n_proj, int) or n_proj < 2:
        raise TaskError(f"n_proj must be an int >= 2, got {n_proj!r}")
    theta = torch.arange(n_proj, dtype=torch.float64) * (math.pi / n_proj)
    u = torch.stack([theta.cos(), theta.sin()]).to(a.device, a.dtype)  # (2, P)
    pa = (a @ u).sort(dim=-2).values  # (..., N, P)
    pb = (b.to(a.device, a.dtype) @ u).sort(dim=-2).values
    w2 = (pa - pb).pow(2).mean(dim=(-2, -1))  # (...): mean over points and directions
    if not a.isfinite().all():
        # sort moves NaN to the end and would compare it with real points; mark those runs explicitly
        w2 = torch.where(a.isfinite().all(-1).all(-1), w2, torch.full_like(w2, math.nan))
    return w2.sqrt()


def evaluate_samples(
    samples: Tensor,
    name: str,
    real: Tensor,
    *,
    std: float = DEFAULT_STD,
    min_count: int = DEFAULT_MIN_COUNT,
) -> dict[str, Tensor]:
    """All metrics of generated ``samples (..., N, 2)`` against dataset ``name`` and a real sample ``real (N, 2)``.

    Returns:
        ``modes_covered`` (int64), ``high_quality`` (share in [0, 1]), ``sliced_w2`` (float; NaN if diverged),
        each of shape ``(...)``; and ``n_modes`` (0-d int64).
    """
    modes = toy_modes(name)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise TaskError(f"min_count must be an int >= 1, got {min_count!r}")
    mask, nearest = high_quality_mask(samples, modes, std)
    counts = (torch.nn.functional.one_hot(nearest, len(modes)) * mask.unsqueeze(-1)).sum(-2)  # (..., K)
    return {
        "modes_covered": (counts >= min_count).sum(-1),
        "high_quality": mask.float().mean(-1),
        "sliced_w2": sliced_wasserstein(samples, real),
        "n_modes": torch.tensor(len(modes)),
    }


def is_converged(modes_covered: int, n_modes: int, high_quality: float) -> bool:
    """The convergence rule: every mode covered and at least half of the samples high quality (NaN: False)."""
    return bool(modes_covered == n_modes and high_quality >= CONVERGED_QUALITY)
