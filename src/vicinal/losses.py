"""Losses for mixed batches.

For cross-entropy the two forms agree (Section 2): ``CE(f(x~), lam*y_i + (1-lam)*y_j) = lam*CE(f(x~), y_i) +
(1-lam)*CE(f(x~), y_j)``, because CE is linear in the target. The two-label form never builds ``(B, C)``
targets, which matters for large C.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_choice, check_lam, is_real
from .functional import _check_many, _check_perm
from .mixup import OPS, TARGET_MODES, MixParams


def soft_cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy against probability targets: ``-(target * log_softmax(logits, -1)).sum(-1)``.

    Classes are on the **last** dimension, any leading dimensions are positions (``(B, C)``, or ``(S, B, C)`` for a
    stack of models), as timm's ``SoftTargetCrossEntropy``; ``F.cross_entropy`` takes them on dim 1 instead, so
    ``(B, C, H, W)`` segmentation logits go in as ``logits.movedim(1, -1)`` with their targets moved alike.

    A class with target 0 adds nothing, also where its logit is ``-inf`` (a masked class) or its log-probability
    underflows (``F.cross_entropy`` gives NaN there: ``0 * -inf``): log-probabilities are clamped at the dtype's
    lowest finite value, which changes no finite one (a nonzero target on a ``-inf`` logit then gives that row a loss
    near the dtype's largest value instead of ``inf``; a mean or sum over several such rows may still overflow).
    Computed in the logits' dtype, at least float32. Targets are not checked to sum to 1 (neither does torch): rows
    that sum to ``s`` give ``s`` times the loss.

    Args:
        logits: ``(..., C)``, floating point.
        target: probabilities of the same shape (mixed or smoothed one-hots; integer or bool one-hots are taken as
            such).
        reduction: ``"mean"`` (over every position), ``"sum"`` or ``"none"`` (shape ``logits.shape[:-1]``).
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        what = f"dtype {logits.dtype}" if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point torch.Tensor, got {what}")
    if not isinstance(target, Tensor) or target.is_complex():
        what = f"dtype {target.dtype}" if isinstance(target, Tensor) else type(target).__name__
        raise TypeError(f"target must be a torch.Tensor of probabilities, got {what}")
    if logits.shape != target.shape or logits.dim() == 0:
        raise ValueError(f"logits have shape {tuple(logits.shape)} but targets have {tuple(target.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; known: mean, sum, none")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logp = F.log_softmax(logits.to(dtype), dim=-1).clamp_min(torch.finfo(dtype).min)
    loss = -(target.to(dtype) * logp).sum(-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _same_eps(a: float, b: float) -> bool:
    """Two label-smoothing eps that smooth alike: equal up to float32 rounding (``np.float32(0.1)`` is 0.1 to a
    float32 loss), not only bit for bit."""
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


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
      silently computing another loss, and so does a criterion whose smoothing, where it can be read
      (``nn.CrossEntropyLoss``'s attribute, a function's or ``functools.partial``'s keyword), differs from the
      transform's (plain ``F.cross_entropy`` beside a smoothing transform, a smoothing criterion beside a plain one).

    Args:
        criterion: e.g. ``torch.nn.functional.cross_entropy`` (any loss taking ``(pred, target)``). Per-sample lam
            and Dirichlet weights need a function accepting ``reduction="none"``; they weight its per-sample losses
            and reduce as its ``reduction`` says (mean by default; for ``F.cross_entropy`` / ``F.nll_loss`` and
            partials of them as torch does, over the class weights of the labels not ignored). Any other criterion
            taking class indices must average over its elements (checked: a wrapper that weighs or ignores labels is
            refused).
        pred: model outputs ``(B, C)``. y: integer labels ``(B,)`` (or whatever ``criterion`` takes).
        params: what :meth:`BatchMix.sample` drew for this batch.
        partner_y: partner labels when partners came from outside the batch (defaults to ``params.partner_y``).
        label_smoothing: the eps that ``criterion`` applies itself; must equal the transform's ``smoothing``.
    """
    n = _check_criterion_batch(pred, y, params)
    applied = _criterion_smoothing(criterion)
    if applied is not None and not _same_eps(applied, params.smoothing):
        # plain F.cross_entropy beside a smoothing transform, or a smoothing criterion beside a plain one: the loss
        # would differ from soft_cross_entropy on the transform's targets
        raise ValueError(
            f"the criterion applies label_smoothing={applied} but the transform smooths its targets with "
            f"smoothing={params.smoothing}: use a criterion with label_smoothing={params.smoothing} (and pass "
            f"label_smoothing={params.smoothing}), or a transform with smoothing={applied}"
        )
    if applied is not None and label_smoothing is not None and not _same_eps(applied, float(label_smoothing)):
        raise ValueError(
            f"label_smoothing={label_smoothing} was passed, but the criterion applies label_smoothing={applied}"
        )
    if label_smoothing is None and params.smoothing:
        raise ValueError(
            f"the transform applies label smoothing (smoothing={params.smoothing}) but mixed_criterion cannot "
            "smooth through an arbitrary criterion: pass a criterion that smooths and say so, e.g. "
            f"mixed_criterion(partial(F.cross_entropy, label_smoothing={params.smoothing}), pred, y, params, "
            f"label_smoothing={params.smoothing}), or use soft_cross_entropy(pred, mixer.apply_targets(y, params))"
        )
    if label_smoothing is not None and not _same_eps(float(label_smoothing), params.smoothing):
        raise ValueError(
            f"label_smoothing={label_smoothing} (what the criterion applies) differs from the mixer's "
            f"smoothing={params.smoothing}: the loss would not match the transform's targets"
        )
    if params.op in ("identity", "noise"):
        return criterion(pred, y)
    if params.op == "dirichlet":
        assert params.weights is not None and params.indices is not None
        weights = params.weights.expand(n, -1)  # (k,) weights shared by the batch, as mix_many takes them
        parts = [
            (weights[:, j], y.index_select(0, params.indices[j].to(y.device))) for j in range(params.indices.shape[0])
        ]
        return _per_sample_mix(criterion, pred, parts)
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
        # the complement formed in the loss's precision (float32 for float32 predictions), as the weights multiply
        dtype = torch.promote_types(pred.dtype, torch.float32) if pred.is_floating_point() else torch.float32
        w = lam.to(pred.device, dtype)
        return _per_sample_mix(criterion, pred, [(w, y), (1 - w, y_partner)])
    return lam * criterion(pred, y) + (1 - lam) * criterion(pred, y_partner)


def _per_sample_mix(criterion: Callable[..., Tensor], pred: Tensor, parts: list[tuple[Tensor, Tensor]]) -> Tensor:
    """``sum_k w_k * L(pred, y_k)`` with per-sample weights ``w_k`` (B,): the criterion's per-sample losses
    (``reduction="none"``, any shape with the batch first), weighted sample by sample and reduced as the criterion
    reduces (its ``reduction``, read from its signature, so a ``functools.partial``'s keyword counts). With every
    ``w_k`` equal this is the float-lam loss ``sum_k w_k * L(pred, y_k)``: a mean is the sum over the elements
    divided by their number, and for ``F.cross_entropy`` / ``F.nll_loss`` with class indices by what torch divides
    by, the summed class weights of the labels that are not ``ignore_index`` (-100 by default)."""
    parameters = _parameters(criterion)
    if isinstance(criterion, torch.nn.Module) or (parameters is not None and not _takes(parameters, "reduction")):
        what = f"the module {type(criterion).__name__}" if isinstance(criterion, torch.nn.Module) else "a criterion"
        raise ValueError(
            "per-sample lam and Dirichlet weights need a loss function taking reduction='none' (its per-sample "
            f"losses), such as F.cross_entropy; got {what} without that keyword"
        )
    reduction = _default(parameters, "reduction", "mean")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"the criterion's reduction={reduction!r} is not one of mean, sum, none")
    indices = not parts[0][1].is_floating_point()  # class indices (every part holds labels of one kind)
    name = getattr(getattr(criterion, "func", criterion), "__name__", "")
    # torch's mean over class indices divides by the summed weights of the labels it does not ignore
    index_mean = reduction == "mean" and indices and name in ("cross_entropy", "nll_loss")
    total: Tensor | None = None
    for w, yk in parts:
        own = None
        if reduction == "mean" and indices and not index_mean:
            # the criterion's own mean, for _check_element_mean, drawn from the torch random state the loss then
            # draws from again (a criterion may be random): torch's global stream advances as by one call (numpy,
            # Python or a generator of the criterion's own are not forked)
            devices = [pred.device.index or 0] if pred.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                own = criterion(pred, yk)
        loss = criterion(pred, yk, reduction="none")
        if own is not None:
            _check_element_mean(own, loss)
        term = w.to(pred.device, torch.promote_types(loss.dtype, torch.float32))
        term = term.reshape(-1, *([1] * (loss.dim() - 1))) * loss
        if index_mean:
            term = term.sum() / _class_index_weight(parameters, yk).to(term.dtype)
        total = term if total is None else total + term
    assert total is not None
    if reduction == "mean" and not index_mean:
        return total.mean()
    if reduction == "sum":
        return total.sum()
    return total


def _class_index_weight(parameters: Mapping[str, inspect.Parameter] | None, labels: Tensor) -> Tensor:
    """What ``F.cross_entropy`` / ``F.nll_loss`` divide a mean by: the class weights (1 without ``weight=``) of
    the labels other than ``ignore_index``, summed (no device sync); ``parameters`` is the criterion's signature."""
    ignore = _default(parameters, "ignore_index", -100)
    if ignore is None:  # a function of the same name that ignores nothing
        keep = torch.ones_like(labels, dtype=torch.bool)
    else:
        keep = labels.long() != int(ignore)  # as torch compares: in int64
    weight = _default(parameters, "weight", None)
    if weight is None:
        return keep.sum()
    index = torch.where(keep, labels, 0).long()  # int64: a uint8 index would be read as a mask
    return (weight.to(labels.device)[index] * keep).sum()


def _check_element_mean(own: Tensor, losses: Tensor) -> None:
    """A criterion other than F.cross_entropy / F.nll_loss (a wrapper of one, say) taking class indices: its own
    mean ``own`` must be the mean of its per-sample ``losses``, or weighting them sample by sample gives another loss
    than one lam per batch. A non-finite loss is left to the caller (a diverging run stays one)."""
    with torch.no_grad():
        mean = losses.mean()
        if not (bool(torch.isfinite(own)) and bool(torch.isfinite(mean))):
            return
        rtol = max(1e-4, 4 * torch.finfo(losses.dtype).eps) if losses.is_floating_point() else 1e-4
        if not torch.allclose(own.double(), mean.double(), rtol=rtol, atol=1e-6):
            raise ValueError(
                f"the criterion's mean is not the mean of its per-sample losses ({float(own):.6g} vs {float(mean):.6g}:"
                " class weights or ignored labels in a wrapper, or random numbers drawn outside torch's global "
                "generator, say), which per-sample lam and Dirichlet weights cannot reproduce for a criterion other "
                "than F.cross_entropy / F.nll_loss or a partial of them; pass one of those, or use one lam per batch"
            )


def _parameters(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    """``fn``'s parameters (a ``functools.partial``'s keywords as their defaults); None where they cannot be read."""
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return None


def _takes(parameters: Mapping[str, inspect.Parameter], name: str) -> bool:
    """Whether a signature's ``parameters`` accept the keyword ``name``."""
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _default(parameters: Mapping[str, inspect.Parameter] | None, name: str, fallback: Any) -> Any:
    """The default of the parameter ``name`` (a ``functools.partial``'s keyword included), else ``fallback``."""
    parameter = None if parameters is None else parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return fallback
    return parameter.default


def _criterion_smoothing(criterion: Callable[..., Tensor]) -> float | None:
    """The label smoothing a criterion applies, where it can be read (``nn.CrossEntropyLoss``'s attribute, a
    function's or ``functools.partial``'s ``label_smoothing`` keyword); None otherwise."""
    if isinstance(criterion, torch.nn.Module):
        value = getattr(criterion, "label_smoothing", None)
    else:
        value = _default(_parameters(criterion), "label_smoothing", None)
    return float(value) if is_real(value) else None


def _check_criterion_batch(pred: Tensor, y: Tensor, params: MixParams) -> int:
    """The batch size shared by predictions, labels and params; a ValueError naming the mismatch otherwise. Params
    made by hand (not drawn by ``sample()``) are checked as ``apply_inputs`` checks them: lam in [0, 1], perm in
    the batch, Dirichlet weights and indices as :func:`~vicinal.functional.mix_many` takes them."""
    if not isinstance(params, MixParams):
        raise TypeError(f"params must be the MixParams drawn by the transform's sample(), got {type(params).__name__}")
    check_choice(params.op, OPS, "op")
    check_choice(params.targets, TARGET_MODES, "targets")
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
    if not params._drawn and params.op in ("mix", "cutmix"):
        check_lam(params.lam, n)
        if params.perm is not None:
            _check_perm(params.perm, n)
    if not params._drawn and params.op == "dirichlet":  # weights summing to 10 gave a loss 10 times too large
        if params.weights is None or params.indices is None:
            raise ValueError("params with op='dirichlet' need weights and indices; draw them with sample()")
        _check_many(n, params.weights, params.indices)
    return n
