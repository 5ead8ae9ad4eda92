"""The model registry: ``@register_model("name")`` and ``build_model(name, ...)``.

Builders are plain functions that take every argument by keyword and return an ``nn.Module``. The registry
checks the keyword arguments against the builder's signature before calling it, so a typo in a config
(``widen_factor`` for ``widen``) fails loudly with the list of accepted names instead of being swallowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import torch
from torch import nn

from ..errors import ModelArgumentError, ModelConfigError

__all__ = ["MODELS", "Normalize", "build_model", "check_model_name", "count_parameters", "register_model"]

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)

# name -> builder; filled by the @register_model decorators in cifar.py, imagenet.py and small.py.
MODELS: dict[str, Builder] = {}

_ACCEPTED_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def register_model(name: str) -> Callable[[B], B]:
    """Register a model builder under ``name``.

    Args:
        name: The registry key used by :func:`build_model` and in configs.

    Returns:
        A decorator that records the builder in :data:`MODELS` and returns it unchanged.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: If ``name`` is empty or already registered.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("model name must be a non-empty string")

    def decorator(builder: B) -> B:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered (by {MODELS[name].__qualname__})")
        MODELS[name] = builder
        return builder

    return decorator


def check_model_name(name: str) -> None:
    """Raise ModelConfigError, listing the known names, unless ``name`` is a registered model."""
    if name not in MODELS:
        raise ModelConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")


def build_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    *,
    mean: Sequence[float] | torch.Tensor | float | None = None,
    std: Sequence[float] | torch.Tensor | float | None = None,
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: A key of :data:`MODELS`.
        num_classes: Number of outputs of a classifier. Left out (None) for models that take no
            ``num_classes`` (``gan_mlp``, which takes ``out_features``).
        in_channels: Input channels. None uses the model's own default (3 for the CIFAR and ImageNet
            models, 1 for ``digits_cnn`` and the speech models); the MLPs take ``in_features`` instead.
        mean: Per-channel mean for input normalisation. With ``std``, the returned model gets a
            :class:`Normalize` submodule named ``normalize`` applied to its input by a forward pre-hook,
            so inputs stay in pixel space ([0, 1]) and every other submodule keeps its name
            (``layer3`` stays ``layer3``, which latent mixing needs).
        std: Per-channel standard deviation; given together with ``mean``.
        seed: If given, parameters are initialised from ``torch.manual_seed(seed)`` inside
            ``torch.random.fork_rng``, so the result depends only on ``seed`` and the global CPU RNG is
            left exactly as it was. If None, initialisation draws from the global RNG as PyTorch does.
        **kwargs: Model-specific arguments (``width``, ``dropout``, ``depth`` ...); see each builder.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        ValueError: For an unknown ``name``, a bad value, or only one of ``mean``/``std``.
        TypeError: For keyword arguments the model does not take, or required ones left out.
    """
    check_model_name(name)
    if (mean is None) != (std is None):
        raise ValueError(f"mean and std must be given together, got mean={mean!r} and std={std!r} for model {name!r}")
    builder = MODELS[name]
    call: dict[str, Any] = dict(kwargs)
    # Only forward the generic arguments that were given, so each builder keeps its own defaults and a
    # model without channels (the MLPs) rejects ``in_channels`` instead of silently ignoring it.
    if num_classes is not None:
        call["num_classes"] = check_positive_int("num_classes", num_classes)
    if in_channels is not None:
        call["in_channels"] = check_positive_int("in_channels", in_channels)
    _check_signature(name, builder, call)

    if seed is None:
        model = builder(**call)
    else:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        # devices=[]: only the CPU generator is saved and restored; construction happens on the CPU.
        # default_generator.manual_seed (not torch.manual_seed) leaves the CUDA generators untouched.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            model = builder(**call)

    if mean is not None and std is not None:
        model.add_module("normalize", Normalize(mean, std))
        model.register_forward_pre_hook(_normalize_input_hook)
    return model


def _normalize_input_hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: replace the first positional input by ``module.normalize(input)``.

    A module-level function (not a lambda) so that models pickle and deepcopy.
    """
    if not args:
        return args
    return (cast(Normalize, module.normalize)(args[0]), *args[1:])


def _check_signature(name: str, builder: Builder, call: dict[str, Any]) -> None:
    """Raise TypeError naming unknown or missing keyword arguments of ``builder``."""
    params = inspect.signature(builder).parameters
    accepted = [p for p, spec in params.items() if spec.kind in _ACCEPTED_KINDS]
    unknown = sorted(set(call) - set(accepted))
    if unknown:
        raise ModelArgumentError(
            f"model {name!r} got unexpected keyword argument(s) {', '.join(unknown)}; it accepts: {', '.join(accepted)}"
        )
    missing = [p for p in accepted if params[p].default is inspect.Parameter.empty and p not in call]
    if missing:
        raise ModelArgumentError(f"model {name!r} is missing required argument(s) {', '.join(missing)}")


def check_positive_int(arg: str, value: Any) -> int:
    """Return ``value`` if it is an int >= 1 (bools refused), else raise naming ``arg``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelArgumentError(f"{arg} must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ModelConfigError(f"{arg} must be >= 1, got {value}")
    return value


def check_probability(arg: str, value: Any) -> float:
    """Return ``value`` as a float if it lies in [0, 1], else raise naming ``arg``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelArgumentError(f"{arg} must be a float in [0, 1], got {type(value).__name__} ({value!r})")
    if not 0.0 <= value <= 1.0:
        raise ModelConfigError(f"{arg} must lie in [0, 1], got {value}")
    return float(value)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the first layer of a model fed [0, 1] pixels.

    Keeping normalisation inside the model lets mixing and adversarial attacks act in pixel space (mixing
    commutes with this affine map). Statistics are broadcast along dimension 1, so the module works for
    images ``(B, C, H, W)``, sequences ``(B, C, L)`` and features ``(B, C)``. A single value applies to
    every channel.

    Args:
        mean: Per-channel means, shape ``(C,)``, or one float.
        std: Per-channel standard deviations (all > 0), same length as ``mean``, or one float.

    Raises:
        ValueError: If the shapes differ, are not 0-d/1-d, a std is not positive, or a value is not finite.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, mean: Sequence[float] | torch.Tensor | float, std: Sequence[float] | torch.Tensor | float
    ) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).detach().clone()
        std_t = torch.as_tensor(std, dtype=torch.float32).detach().clone()
        if mean_t.dim() > 1 or std_t.dim() > 1:
            raise ValueError(
                f"mean and std must be scalars or 1-d, got shapes {tuple(mean_t.shape)} and {tuple(std_t.shape)}"
            )
        mean_t, std_t = mean_t.reshape(-1), std_t.reshape(-1)  # (C,)
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(f"mean has {mean_t.numel()} values but std has {std_t.numel()}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ValueError(f"mean and std must be finite, got mean={_short(mean_t)}, std={_short(std_t)}")
        if (std_t <= 0).any():
            raise ValueError(f"std must be > 0 for every channel, got {_short(std_t)}")
        self.register_buffer("mean", mean_t)  # (C,)
        self.register_buffer("std", std_t)  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape ``(B, C, ...)``; returns the same shape."""
        channels = self.mean.numel()
        if channels > 1 and (x.dim() < 2 or x.shape[1] != channels):
            raise ModelConfigError(
                f"Normalize has {channels} channels but got an input of shape {tuple(x.shape)} "
                f"(expected (B, {channels}, ...))"
            )
        # (C,) -> (1, C, 1, ..., 1) to broadcast over the batch and every trailing dimension.
        view = (1, channels) + (1,) * max(x.dim() - 2, 0) if channels > 1 else (1,) * x.dim()
        return (x - self.mean.view(view)) / self.std.view(view)

    def extra_repr(self) -> str:
        return f"mean={_short(self.mean)}, std={_short(self.std)}"


def _short(values: torch.Tensor) -> list[float]:
    """Float32 statistics as readable Python floats (0.1, not 0.10000000149011612)."""
    return [float(f"{v:.6g}") for v in values.tolist()]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (shared parameters counted once; buffers excluded).

    Args:
        model: Any module.
        trainable_only: Count only parameters with ``requires_grad``.

    Returns:
        The total number of elements.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
