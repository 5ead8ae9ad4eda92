"""Eager input checks shared by every transform. Each message names what it received."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import TypeGuard, overload

import numpy as np
import torch
from torch import Tensor


def _forward_ad_level() -> int:
    """The innermost ``torch.autograd.forward_ad.dual_level`` entered (-1 outside any)."""
    return getattr(torch.autograd.forward_ad, "_current_level", -1)


_is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: False)
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


_functorch_level = getattr(torch._C._functorch, "maybe_current_level", lambda: None)


def _functorch_wrapped(t: object) -> bool:
    """Whether ``t`` may be a functorch wrapper (vmap's batched tensor, grad's wrapped one): the kernels that write
    through ``out=`` take the formula for those."""
    if _is_compiling():
        # dynamo cannot trace the wrapper test (a graph break and a UserWarning in a user's compiled step); it
        # traces the transform level, so inside a vmap or grad every tensor counts as wrapped
        return _functorch_level() is not None
    return _is_wrapped(t)


def unless_vmapped(check: Callable[[], object], t: Tensor) -> None:
    """Run ``check``, which reads ``t``'s values; under ``torch.func.vmap`` they cannot be read (torch raises), and the
    check is left to the caller. ``torch.func.grad``'s wrapped tensors can be read, and are checked."""
    try:
        check()
    except RuntimeError:
        if not _functorch_wrapped(t):
            raise


def check_index_range(y: Tensor, num_classes: int) -> None:
    """Class indices in ``[0, num_classes)``: one reduction, then one device sync off the CPU (two cheap reads on
    it), and an error naming the range (torch's index error does not)."""
    mm = torch.aminmax(y)
    lo, hi = (mm.min.item(), mm.max.item()) if y.device.type == "cpu" else torch.stack(mm).tolist()
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels must be in [0, num_classes={num_classes}), got values from {lo} to {hi}")


def check_generator(generator: torch.Generator) -> torch.Generator:
    """All randomness flows through an explicit generator: None would fall back to torch's global stream."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def is_int(value: object) -> TypeGuard[int]:
    """An integer, Python's or numpy's (``labels.max() + 1`` on an array is a numpy one), not a bool.

    To a type checker the value is then an ``int``: numpy's integers compare and convert as the ints they hold."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> TypeGuard[float]:
    """A real number, Python's or numpy's (integers too), not a bool; to a type checker, a ``float``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float after checking it is a finite number >= 0 (numpy scalars too)."""
    if not is_real(alpha):
        raise TypeError(f"{name} must be a number, got {type(alpha).__name__} {alpha!r}")
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {alpha!r}")
    return alpha


def check_probability(p: float, name: str) -> float:
    """Return ``p`` as a float after checking it lies in [0, 1] (any real number type: numpy scalars too)."""
    if not is_real(p):
        raise TypeError(f"{name} must be a number, got {type(p).__name__} {p!r}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p!r}")
    return p


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; known: {', '.join(choices)}")
    return value


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` after checking it is a floating-point ``torch.dtype``: weights below 1 in an integer dtype
    truncate to 0 (and bool has no subtraction)."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{name} must be a floating-point dtype, got {dtype!r}")
    return dtype


def check_flag(value: object, name: str) -> bool:
    """Return ``value`` after checking it is a bool (numpy's too): ``bool("False")`` is True, so a string from a
    config or a command line would otherwise switch the option on."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@overload
def check_num_classes(num_classes: int) -> int: ...
@overload
def check_num_classes(num_classes: None) -> None: ...
@overload
def check_num_classes(num_classes: int | None) -> int | None: ...
def check_num_classes(num_classes: int | None) -> int | None:
    """Return ``num_classes`` as an int after checking it is None or an int >= 1 (numpy ints too)."""
    if num_classes is None:
        return None
    if not is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    return int(num_classes)


# the dtypes the mixing kernels compute in (float8 has no arithmetic on CPU; integers would be truncated)
INPUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)
_INPUT_DTYPE_NAMES = "float16, bfloat16, float32, float64 or uint8"


def check_inputs(x: Tensor, *, min_dim: int = 1, check_finite: bool = False, what: str = "inputs") -> int:
    """Check a batch tensor and return its batch size.

    Batches in INPUT_DTYPES are accepted: other integer dtypes would be silently truncated by mixing, and float8
    has no arithmetic to mix with.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{what} must have at least {min_dim} dimension(s) with the batch first, got shape {tuple(x.shape)}"
        )
    if x.dtype not in INPUT_DTYPES:
        raise TypeError(f"{what} must be a {_INPUT_DTYPE_NAMES} tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (shape {tuple(x.shape)})")
    if check_finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} contain {bad} non-finite value(s) (NaN or Inf)")
    return int(x.shape[0])


def _in_range(lam: Tensor) -> bool:
    """Whether every lam lies in [0, 1]; True under vmap, where no value can be read (an ensemble's lams: the range
    is the caller's), while torch.func.grad and jvp, which can read them, still check."""
    try:
        return bool(((lam >= 0) & (lam <= 1)).all())
    except RuntimeError:
        if not _functorch_wrapped(lam):
            raise
        return True


@overload
def check_lam(lam: float, n: int) -> float: ...
@overload
def check_lam(lam: float | Tensor, n: int) -> float | Tensor: ...
def check_lam(lam: float | Tensor, n: int) -> float | Tensor:
    """lam must lie in [0, 1] (NaN rejected): a float, or a tensor of one value or ``(n,)`` values (one reduction).

    Returns lam as the kernels take it: a tensor holding one value for the whole batch (any shape but ``(n,)``)
    becomes that float, the per-batch lam it means, unless a derivative must reach it (``requires_grad``,
    ``torch.func`` transforms, forward-AD duals): then it is expanded to ``(n,)``.
    """
    if isinstance(lam, Tensor):
        if lam.numel() != 1 and lam.shape != (n,):
            raise ValueError(f"lam has shape {tuple(lam.shape)}; expected a float, one value or ({n},) per-sample")
        if lam.is_complex() or lam.dtype == torch.bool:
            raise TypeError(f"lam must hold real numbers, got dtype {lam.dtype}")
        if not _in_range(lam):  # NaN fails both comparisons
            bad = lam[~((lam >= 0) & (lam <= 1))].flatten()[0].item()
            raise ValueError(f"lam must be in [0, 1] (a convex combination), got {bad!r}")
        if lam.shape == (n,):
            return lam
        if lam.requires_grad or _functorch_wrapped(lam) or _forward_ad_level() >= 0:
            # a learned weight (autograd, torch.func, forward-AD duals): one per sample, so that the derivative
            # reaches it (a float would drop it)
            return lam.reshape(()).expand(n)
        return float(lam.item())
    if not is_real(lam):
        raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__} {lam!r}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1] (a convex combination), got {lam!r}")
    return float(lam)


# sample()'s label errors, which BatchMix.soft_targets (labels of any leading shape) gives too
NUM_CLASSES_REQUIRED = "num_classes is required to turn integer labels into one-hot targets"


# the integer dtypes of class indices (torch's uint16/32/64 lack reductions in older releases)
_LABEL_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
_LABEL_INT_NAMES = "int64, int32, int16, int8 or uint8"


def label_dtype_error(dtype: torch.dtype) -> TypeError:
    """The error for labels that are neither integer class indices nor float probabilities."""
    return TypeError(f"labels must be class indices ({_LABEL_INT_NAMES}) or float probabilities, got dtype {dtype}")


def check_targets(
    y: Tensor, batch_size: int, num_classes: int | None, *, regression: bool = False, multi_label: bool = False
) -> int | None:
    """Check labels against the batch and return the number of classes (None for regression).

    Accepted: integer class indices ``(B,)``; probability or one-hot labels ``(B, C)`` (float);
    with ``regression=True``, float targets ``(B,)`` or ``(B, K)``; with ``multi_label=True``, multi-hot rows
    ``(B, C)`` (float, integer or bool) with every value in [0, 1].
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() == 0 or y.shape[0] != batch_size:
        raise ValueError(
            f"labels have shape {tuple(y.shape)} but the batch has {batch_size} samples; expected the batch size first"
        )
    if regression:
        if not y.is_floating_point() or y.dim() > 2:
            raise ValueError(
                f"regression targets must be float of shape (B,) or (B, K), got dtype {y.dtype} "
                f"and shape {tuple(y.shape)}"
            )
        return None
    if multi_label:
        return _check_multi_hot(y, num_classes)
    if y.is_floating_point():
        if y.dim() != 2:
            raise ValueError(
                f"float labels must be probabilities of shape (B, C), got shape {tuple(y.shape)}; "
                "pass class indices as integers (y.long()), or regression=True for regression targets"
            )
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(f"labels have {y.shape[1]} classes (shape {tuple(y.shape)}) but num_classes={num_classes}")
        if y.shape[1] == 0:
            raise ValueError(f"probability labels need at least one class, got shape {tuple(y.shape)}")
        unless_vmapped(lambda: check_probability_rows(y), y)
        return int(y.shape[1])
    if y.dtype in _LABEL_INT_DTYPES:
        if y.dim() != 1:
            # (B, 1): class indices with a trailing dimension, the common slip; (B, C) with C > 1: torchvision's MixUp
            # takes integer one-hot rows, here probabilities are float (no silent cast of counts)
            how = (
                "y.squeeze(1) for class indices"
                if y.dim() == 2 and y.shape[1] == 1
                else "one-hot or probability labels (B, C) as float (y.float())"
            )
            raise ValueError(
                f"integer labels must be class indices of shape (B,), got shape {tuple(y.shape)}; pass {how}"
            )
        if num_classes is None:
            raise ValueError(NUM_CLASSES_REQUIRED)
        unless_vmapped(lambda: check_index_range(y, num_classes), y)
        return num_classes
    raise label_dtype_error(y.dtype)


def _check_multi_hot(y: Tensor, num_classes: int | None) -> int:
    """Multi-label targets ``(B, C)``: one column per class, each value in [0, 1] (1 where the class is present)."""
    if y.dim() != 2 or y.is_complex():
        raise ValueError(
            f"multi-label targets must be rows (B, C) of one value per class, got dtype {y.dtype} and shape "
            f"{tuple(y.shape)}"
        )
    if num_classes is not None and y.shape[1] != num_classes:
        raise ValueError(f"labels have {y.shape[1]} classes (shape {tuple(y.shape)}) but num_classes={num_classes}")
    if y.shape[1] == 0:
        raise ValueError(f"multi-label targets need at least one class, got shape {tuple(y.shape)}")
    if y.dtype != torch.bool:
        unless_vmapped(lambda: _check_multi_hot_values(y), y)
    return int(y.shape[1])


def _check_multi_hot_values(y: Tensor) -> None:
    if bool(((y >= 0) & (y <= 1)).all()):
        return
    finite = torch.isfinite(y) if y.is_floating_point() else torch.ones_like(y, dtype=torch.bool)
    if not bool(finite.all()):
        raise ValueError(f"multi-label targets contain {int((~finite).sum())} non-finite value(s) (NaN or Inf)")
    raise ValueError(
        f"multi-label targets must lie in [0, 1] (1 where a class is present), got values from "
        f"{float(y.amin()):.6g} to {float(y.amax()):.6g}"
    )


def check_probability_rows(y: Tensor) -> None:
    """Probability labels ``(B, C)``: finite, >= 0 and each row summing to 1.

    The tolerance ``1e-3 + eps(dtype)`` admits float rounding (half-precision labels, rounded soft labels) and
    label smoothing (whose rows still sum to 1). Costs one pass over the labels (a sum and a min, one sync): small
    next to the inputs, and integer labels skip it.
    """
    acc = torch.float64 if y.dtype == torch.float64 else torch.float32
    tol = 1e-3 + torch.finfo(y.dtype).eps
    sums = y.sum(1, dtype=acc)
    low = y.amin()
    if bool(torch.isfinite(sums).all() & (low >= -tol) & ((sums - 1).abs() <= tol).all()):
        return
    finite = torch.isfinite(y)
    if not bool(finite.all()):
        raise ValueError(f"probability labels contain {int((~finite).sum())} non-finite value(s) (NaN or Inf)")
    if float(low) < -tol:
        raise ValueError(f"probability labels must be >= 0, got a minimum of {float(low):.6g}")
    row = int(((sums - 1).abs() > tol).nonzero()[0, 0])
    raise ValueError(
        f"probability labels must sum to 1 in every row (within {tol:.3g}); row {row} sums to {float(sums[row]):.6g}"
        + (" (multi-hot targets: pass multi_label=True)" if y.shape[1] > 1 else "")
    )
