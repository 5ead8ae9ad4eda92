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
    label_smoothing: float | None = None,
) -> Tensor:
    """The official two-label loss ``lam * L(pred, y_i) + (1 - lam) * L(pred, y_j)``, averaged over the batch.

    For cross-entropy it equals ``soft_cross_entropy(pred, mixer.apply_targets(y, params))`` for every variant
    (tested for each of :data:`vicinal.VARIANTS`):

    * ``targets="closer"`` (``mix_inputs_only``): ``L(pred, y_closer)`` with ``y_closer`` the label of the larger
      part of each mixed sample (``y_i`` where lam >= 0.5, else ``y_j``).
    * label smoothing (``Mixup(smoothing=eps)``, ``label_smoothing``, ``mix_inputs_label_smoothing``): the loss
      cannot smooth through an arbitrary ``criterion``, so the criterion must smooth itself and you say so:
      ``mixed_criterion(partial(F.cross_entropy, label_smoothing=eps), pred, y, params, label_smoothing=eps)``
      (cross-entropy is linear in the target, so smoothing each label then mixing equals mixing then smoothing).
      A smoothing mixer without ``label_smoothing=`` (or with a different value) raises ``ValueError`` rather than
      silently computing the unsmoothed loss.

    Args:
        criterion: e.g. ``torch.nn.functional.cross_entropy`` (any loss taking ``(pred, target)``; per-sample lam
            and Dirichlet weights need it to accept ``reduction="none"``).
        pred: model outputs ``(B, C)``. y: integer labels ``(B,)`` (or whatever ``criterion`` takes).
        params: what :meth:`BatchMix.sample` drew for this batch.
        partner_y: partner labels when partners came from outside the batch (defaults to ``params.partner_y``).
        label_smoothing: the eps that ``criterion`` applies itself; must equal the transform's ``smoothing``.
    """
    n = _check_criterion_batch(pred, y, params)
    if label_smoothing is None and params.smoothing:
        raise ValueError(
            f"the transform applies label smoothing (smoothing={params.smoothing}) but mixed_criterion cannot "
            "smooth through an arbitrary criterion: pass a criterion that smooths and say so, e.g. "
            f"mixed_criterion(partial(F.cross_entropy, label_smoothing={params.smoothing}), pred, y, params, "
            f"label_smoothing={params.smoothing}), or use soft_cross_entropy(pred, mixer.apply_targets(y, params))"
        )
    if label_smoothing is not None and abs(float(label_smoothing) - params.smoothing) > 1e-12:
        raise ValueError(
            f"label_smoothing={label_smoothing} (what the criterion applies) differs from the mixer's "
            f"smoothing={params.smoothing}: the loss would not match the transform's targets"
        )
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
        if params.perm is None:
            raise ValueError(f"params of op {params.op!r} carry neither perm nor partner labels; pass partner_y=")
        y_partner = y.index_select(0, params.perm.to(y.device))
    elif y_partner.shape[0] != n:
        raise ValueError(f"partner labels have {y_partner.shape[0]} samples but predictions have {n}")
    lam = params.lam
    if params.targets == "closer":
        if isinstance(lam, Tensor):
            keep = (lam.to(y.device) >= 0.5).reshape(-1, *([1] * (y.dim() - 1)))
            return criterion(pred, torch.where(keep, y, y_partner))
        return criterion(pred, y if lam >= 0.5 else y_partner)
    if isinstance(lam, Tensor):
        lam = lam.to(pred.device, torch.float32)
        return (
            lam * criterion(pred, y, reduction="none") + (1 - lam) * criterion(pred, y_partner, reduction="none")
        ).mean()
    return lam * criterion(pred, y) + (1 - lam) * criterion(pred, y_partner)


def _check_criterion_batch(pred: Tensor, y: Tensor, params: MixParams) -> int:
    """The batch size shared by predictions, labels and params; a ValueError naming the mismatch otherwise."""
    if not isinstance(params, MixParams):
        raise TypeError(f"params must be the MixParams drawn by the transform's sample(), got {type(params).__name__}")
    if not isinstance(pred, Tensor) or pred.dim() == 0:
        raise ValueError("predictions must be a tensor with the batch first")
    if not isinstance(y, Tensor) or y.dim() == 0:
        raise ValueError("labels must be a tensor with the batch first")
    n = int(pred.shape[0])
    if y.shape[0] != n:
        raise ValueError(f"labels have {y.shape[0]} samples but predictions have {n}")
    drawn = None
    if params.perm is not None:
        drawn = params.perm.shape[0]
    elif params.indices is not None:
        drawn = params.indices.shape[1]
    elif isinstance(params.lam, Tensor):
        drawn = params.lam.shape[0]
    if drawn is not None and drawn != n:
        raise ValueError(f"params were drawn for a batch of {drawn} but predictions have {n}")
    return n
