"""White-box adversarial attacks of Section 3.5: FGSM and iterative FGSM, in [0, 1] pixel space.

Models in this lab normalise inside their first layer, so the attacks perturb raw pixels and clamp to the valid
range. Both attacks are deterministic (no random start): the same model and batch give the same examples.

FGSM (Goodfellow et al., 2015): ``x_adv = clamp(x + eps * sign(grad_x CE(f(x), y)))``.
I-FGSM (Kurakin et al., 2017), as in the paper "10 iterations, equal step size": ``steps`` updates of size
``eps / steps``, each followed by projection onto the L-inf ball of radius ``eps`` around ``x`` and the clamp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["fgsm", "ifgsm", "error_under_attack"]


def _check(x: Tensor, y: Tensor, eps: float, clamp: tuple[float, float] | None) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"y must have shape ({x.shape[0]},) to match x of shape {tuple(x.shape)}, got {tuple(y.shape)}"
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
        raise ValueError(f"eps must be a float >= 0, got {eps!r}")
    if clamp is not None and not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp}")


def _input_grad_sign(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """sign of d CE(model(x), y) / dx, per sample: ``(B, ...)`` in {-1, 0, 1}."""
    x = x.detach().clone().requires_grad_(True)
    # Summed (not averaged) loss: each sample's gradient is its own, whatever the batch size.
    loss = F.cross_entropy(model(x).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, clamp: tuple[float, float] | None = (0.0, 1.0)) -> Tensor:
    """Fast gradient sign method: one step of size ``eps`` up the loss gradient's sign.

    Args:
        model: maps ``x (B, ...)`` to logits ``(B, C)``; put it in eval mode first (BatchNorm, dropout).
        x: inputs in pixel space ``(B, ...)``; y: labels int64 ``(B,)``.
        eps: L-inf radius (e.g. ``4 / 255`` for the paper's 4 of 255).
        clamp: valid input range, or None for no clamp.

    Returns:
        Adversarial inputs, detached, same shape and dtype as ``x``.
    """
    _check(x, y, eps, clamp)
    x_adv = x.detach() + eps * _input_grad_sign(model, x, y)
    if clamp is not None:
        x_adv = x_adv.clamp(*clamp)
    return x_adv.detach()


def ifgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 10,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Iterative FGSM: ``steps`` sign steps of ``eps / steps``, projected onto ``[x - eps, x + eps]`` and ``clamp``.

    Args: as :func:`fgsm`, plus ``steps`` (the paper: 10).
    """
    _check(x, y, eps, clamp)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    x0 = x.detach()
    step = eps / steps
    x_adv = x0.clone()
    for _ in range(steps):
        x_adv = x_adv + step * _input_grad_sign(model, x_adv, y)
        x_adv = torch.minimum(torch.maximum(x_adv, x0 - eps), x0 + eps)  # L-inf projection
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    return x_adv.detach()


@torch.no_grad()
def _count_errors(model: nn.Module, x: Tensor, y: Tensor) -> int:
    return int((model(x).argmax(dim=1) != y).sum())


def error_under_attack(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, ...]],
    attack: Callable[..., Tensor] = fgsm,
    **kwargs: float | int | tuple[float, float] | None,
) -> float:
    """Top-1 error (percent) of ``model`` on ``attack(model, x, y, **kwargs)`` over the batches of ``loader``.

    The model is switched to eval mode for the duration and restored afterwards.
    """
    was_training = model.training
    model.eval()
    errors, n = 0, 0
    try:
        for batch in loader:
            x, y = batch[0], batch[1]
            x_adv = attack(model, x, y, **kwargs)
            errors += _count_errors(model, x_adv, y)
            n += y.shape[0]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("the loader yielded no batches")
    return 100.0 * errors / n
