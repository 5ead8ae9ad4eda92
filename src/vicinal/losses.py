"""Losses for mixed batches.

For cross-entropy the two forms agree (Section 2): ``CE(f(x~), lam*y_i + (1-lam)*y_j) = lam*CE(f(x~), y_i) +
(1-lam)*CE(f(x~), y_j)``, because CE is linear in the target. The two-label form never builds ``(B, C)``
targets, which matters for large C.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .mixup import MixParams


def soft_cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy against probability targets: ``-(target * log_softmax(logits)).sum(-1)``.

    Args:
        logits: ``(B, C)``. target: ``(B, C)`` rows of probabilities (mixed or smoothed one-hots).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits have shape {tuple(logits.shape)} but targets have {tuple(target.shape)}")
    loss = -(target.to(torch.float32) * F.log_softmax(logits.float(), dim=-1)).sum(-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}; known: mean, sum, none")


def mixed_criterion(
    criterion: Callable[..., Tensor],
    pred: Tensor,
    y: Tensor,
    params: MixParams,
    *,
    partner_y: Tensor | None = None,
) -> Tensor:
    """The official two-label loss ``lam * L(pred, y_i) + (1 - lam) * L(pred, y_j)``, averaged over the batch.

    Args:
        criterion: e.g. ``torch.nn.functional.cross_entropy`` (any loss taking ``(pred, target)``; per-sample lam
            and Dirichlet weights need it to accept ``reduction="none"``).
        pred: model outputs ``(B, C)``. y: integer labels ``(B,)`` (or whatever ``criterion`` takes).
        params: what :meth:`BatchMix.sample` drew for this batch.
        partner_y: partner labels when partners came from outside the batch (defaults to ``params.partner_y``).
    """
    if params.op in ("identity", "noise"):
        return criterion(pred, y)
    if params.op == "dirichlet":
        assert params.weights is not None and params.indices is not None
        total = None
        for j in range(params.indices.shape[0]):
            yj = y.index_select(0, params.indices[j].to(y.device))
            term = params.weights[:, j].to(pred.device, torch.float32) * criterion(pred, yj, reduction="none")
            total = term if total is None else total + term
        assert total is not None
        return total.mean()
    y_partner = partner_y if partner_y is not None else params.partner_y
    if y_partner is None:
        assert params.perm is not None
        y_partner = y.index_select(0, params.perm.to(y.device))
    lam = params.lam
    if isinstance(lam, Tensor):
        lam = lam.to(pred.device, torch.float32)
        return (
            lam * criterion(pred, y, reduction="none") + (1 - lam) * criterion(pred, y_partner, reduction="none")
        ).mean()
    return lam * criterion(pred, y) + (1 - lam) * criterion(pred, y_partner)
