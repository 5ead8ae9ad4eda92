"""Deterministic mixing kernels. Randomness (lam, perm, boxes) is drawn elsewhere and passed in, so every kernel
can be checked exactly against the paper's formula ``lam * x_i + (1 - lam) * x_j`` (Section 2).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _expand(lam: float | Tensor, x: Tensor, dtype: torch.dtype) -> float | Tensor:
    """A per-sample lam (B,) broadcast over the trailing dimensions of x: (B, 1, 1, ...)."""
    if isinstance(lam, Tensor):
        return lam.to(device=x.device, dtype=dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return float(lam)


def _partner(x: Tensor, perm: Tensor | None, partner: Tensor | None) -> Tensor:
    if partner is not None:
        if perm is not None:
            raise ValueError("pass either perm or partner, not both")
        if partner.shape != x.shape:
            raise ValueError(f"partner batch has shape {tuple(partner.shape)} but inputs have {tuple(x.shape)}")
        return partner
    if perm is None:
        raise ValueError("mix needs perm (partner indices into the batch) or partner (the partner batch)")
    if perm.shape != (x.shape[0],):
        raise ValueError(f"perm has shape {tuple(perm.shape)} but the batch has {x.shape[0]} samples")
    return x.index_select(0, perm.to(x.device))


def mix(
    x: Tensor,
    lam: float | Tensor,
    perm: Tensor | None = None,
    *,
    partner: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> Tensor:
    """``lam * x + (1 - lam) * x[perm]`` (or ``* partner``), the paper's vicinal sample.

    Args:
        x: batch ``(B, ...)`` of any modality, float or uint8.
        lam: weight of ``x`` itself: a float (one per batch) or a tensor ``(B,)`` (one per sample).
        perm: ``(B,)`` partner indices into the batch.
        partner: the partner batch itself (e.g. k-NN partners drawn from the dataset), instead of ``perm``.
        out_dtype: for uint8 inputs, a float dtype returns the exact mix without rounding; by default uint8 inputs
            are mixed in float32 and rounded to the nearest integer (never truncated).

    Returns:
        The mixed batch, same shape as ``x``.
    """
    xp = _partner(x, perm, partner)
    if x.is_floating_point():
        w = _expand(lam, x, x.dtype)
        return w * x + (1 - w) * xp
    compute = out_dtype if out_dtype is not None else torch.float32
    w = _expand(lam, x, compute)
    mixed = w * x.to(compute) + (1 - w) * xp.to(compute)
    if out_dtype is not None:
        return mixed
    # round half to even, then clamp guards against float error just outside [0, 255]
    return mixed.round_().clamp_(0, 255).to(x.dtype)


def mix_many(x: Tensor, weights: Tensor, indices: Tensor) -> Tensor:
    """Convex combination of k examples: ``sum_j weights[:, j] * x[indices[j]]`` (Section 2, Dirichlet mixing).

    Args:
        x: batch ``(B, ...)``, float.
        weights: ``(B, k)`` per-sample weights (or ``(k,)`` shared by the batch), rows summing to 1.
        indices: ``(k, B)`` partner indices; row 0 is usually the identity.
    """
    if weights.dim() == 1:
        weights = weights.expand(x.shape[0], -1)
    k = indices.shape[0]
    if weights.shape != (x.shape[0], k):
        raise ValueError(f"weights have shape {tuple(weights.shape)}, expected ({x.shape[0]}, {k})")
    out = None
    for j in range(k):
        term = _expand(weights[:, j], x, x.dtype) * x.index_select(0, indices[j].to(x.device))
        out = term if out is None else out + term
    assert out is not None
    return out


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Integer labels ``(B,)`` to one-hot ``(B, C)``; float labels ``(B, C)`` pass through (cast to dtype)."""
    if y.is_floating_point():
        return y.to(dtype)
    return torch.nn.functional.one_hot(y.long(), num_classes).to(dtype)


def smooth(y_soft: Tensor, eps: float) -> Tensor:
    """Label smoothing: ``(1 - eps) * y + eps / C`` (1 - eps + eps/C on the true class, eps/C elsewhere)."""
    if eps == 0.0:
        return y_soft
    return y_soft * (1.0 - eps) + eps / y_soft.shape[-1]


def mix_targets(y: Tensor, lam: float | Tensor, perm: Tensor | None = None, *, partner: Tensor | None = None) -> Tensor:
    """``lam * y + (1 - lam) * y[perm]`` for soft labels ``(B, C)`` or regression targets ``(B,)`` / ``(B, K)``."""
    yp = _partner(y, perm, partner)
    w = _expand(lam, y, y.dtype)
    return w * y + (1 - w) * yp


def closer_targets(
    y: Tensor, lam: float | Tensor, perm: Tensor | None = None, *, partner: Tensor | None = None
) -> Tensor:
    """ "Mix inputs only" (Table 5): the target of the closer sample, ``y_i`` where ``lam >= 0.5`` else ``y_j``."""
    yp = _partner(y, perm, partner)
    if isinstance(lam, Tensor):
        keep = (lam.to(y.device) >= 0.5).reshape(-1, *([1] * (y.dim() - 1)))
        return torch.where(keep, y, yp)
    return y if lam >= 0.5 else yp


def cutmix(
    x: Tensor, box: tuple[int, int, int, int], perm: Tensor | None = None, *, partner: Tensor | None = None
) -> Tensor:
    """Paste ``partner[..., y0:y1, x0:x1]`` (or ``x[perm][...]``) into a copy of ``x`` (Yun et al., 2019).

    ``box = (y0, y1, x0, x1)`` on the last two dimensions; shared by the batch.
    """
    y0, y1, x0, x1 = box
    out = x.clone()
    if y1 > y0 and x1 > x0:
        if partner is not None:
            out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        else:
            if perm is None:
                raise ValueError("cutmix needs perm or partner")
            out[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1].index_select(0, perm.to(x.device))
    return out


def cutmix_box(lam: float, height: int, width: int, u: Tensor) -> tuple[tuple[int, int, int, int], float]:
    """Box of area ``(1 - lam) * H * W`` centred at ``u`` (two uniforms in [0,1)), clipped to the image.

    Returns the box and lam corrected to the area actually kept, ``1 - box_area / (H * W)``.
    """
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(round(height * ratio)), int(round(width * ratio))
    cy, cx = int(float(u[0]) * height), int(float(u[1]) * width)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    area = max(y1 - y0, 0) * max(x1 - x0, 0)
    return (y0, y1, x0, x1), 1.0 - area / float(height * width)
