"""The mixup GAN objective (Section 3.7): the discriminator sees ``lam * x_real + (1 - lam) * G(z)`` and is trained
to predict ``lam`` with binary cross-entropy, ``min_d E l(d(lam x + (1 - lam) g(z)), lam)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_alpha, check_choice, check_float_dtype, check_lam, is_int
from .sampling import sample_beta

LAM_DISTRIBUTIONS = ("beta", "uniform")


def sample_gan_lam(
    batch_size: int,
    alpha: float = 0.2,
    *,
    distribution: str = "beta",
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One lam per sample, ``(B,)`` of ``dtype``: Beta(alpha, alpha) (paper) or Uniform(0, alpha) (the authors' demo)."""
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    batch_size = int(batch_size)
    alpha = check_alpha(alpha)
    check_choice(distribution, LAM_DISTRIBUTIONS, "distribution")
    check_float_dtype(dtype)
    if distribution == "uniform" and alpha > 1:
        raise ValueError(
            f"distribution='uniform' draws lam from U(0, alpha), a weight in [0, 1] only for alpha <= 1; "
            f"got alpha={alpha!r}"
        )
    if distribution == "beta":
        # drawn in float64; in float32 about 2% of Beta(0.2, 0.2) draws round to exactly 0 or 1
        return sample_beta(alpha, (batch_size,), generator=generator).to(dtype)
    return (torch.rand(batch_size, generator=generator, dtype=torch.float64) * alpha).to(dtype)


def mixup_discriminator_loss(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    lam: Tensor,
) -> Tensor:
    """``BCE(D(lam * real + (1 - lam) * fake), lam)`` with D returning logits ``(B,)`` or ``(B, 1)``.

    Args:
        real, fake: ``(B, ...)`` batches of the same shape (detach ``fake`` for the discriminator step).
        lam: ``(B,)`` weights of the real samples, e.g. from :func:`sample_gan_lam`.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real batch has shape {tuple(real.shape)} but fake batch has {tuple(fake.shape)}")
    if not (real.is_floating_point() and fake.is_floating_point()):
        # an integer batch would round every lam < 1 to 0 (or 1): the discriminator would see one side only
        raise TypeError(
            f"real and fake batches must be float, got real {real.dtype} and fake {fake.dtype}; convert integer "
            "data to float first (e.g. real.float() / 255)"
        )
    if not isinstance(lam, Tensor) or lam.shape != (real.shape[0],):
        shape = tuple(lam.shape) if isinstance(lam, Tensor) else type(lam).__name__
        raise ValueError(f"lam has shape {shape}, expected ({real.shape[0]},)")
    check_lam(lam, real.shape[0])  # in [0, 1], NaN rejected: lam is both a mixing weight and a BCE target
    # in the promoted dtype: a float32 real batch beside an autocast bf16/fp16 fake one mixes in float32
    w = lam.to(real.device, torch.result_type(real, fake)).reshape(-1, *([1] * (real.dim() - 1)))
    logits = _one_logit_each(discriminator(w * real + (1 - w) * fake), real.shape[0])
    return F.binary_cross_entropy_with_logits(logits, lam.to(logits.device, logits.dtype))


def _one_logit_each(out: object, n: int) -> Tensor:
    """The discriminator's ``(n,)`` logits from an output of one value per sample: ``(n,)``, ``(n, 1)`` or a conv
    head's ``(n, 1, 1, 1)``. Several values per sample (a ``(n, 2)`` head) were flattened into ``2n`` logits and
    failed inside torch's BCE naming sizes only, or were scored against the wrong targets."""
    if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != n or out.numel() != n:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the discriminator returned {got}; expected one logit per sample, e.g. ({n},) or ({n}, 1)")
    return out.reshape(-1)


def generator_loss(discriminator: Callable[[Tensor], Tensor], fake: Tensor) -> Tensor:
    """Non-saturating generator loss ``BCE(D(G(z)), 1)``: the generator pushes its samples towards "real"."""
    logits = _one_logit_each(discriminator(fake), fake.shape[0])
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
