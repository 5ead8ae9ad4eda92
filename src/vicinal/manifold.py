"""Latent ("manifold") mixing: mix the activations entering a named module of any ``nn.Module`` (Table 5, "mix
labels and latent representations at Layer 1-5"), through a forward pre-hook, without editing the model's code.

For a PreAct ResNet, Layer k (k = 1..4) is the input of residual stage ``layer{k}`` and Layer 5 the input of the
pooling + linear head. The batch is mixed only where it enters the named module: everything before it sees the
clean batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._validation import INPUT_DTYPES, check_flag
from .mixup import MixParams, Mixup


def _find(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError:
        inner = getattr(model, "module", None)  # DistributedDataParallel / DataParallel wrap the model
        if isinstance(inner, nn.Module):
            try:
                return inner.get_submodule(layer)
            except AttributeError:
                pass
    names = [name for name, _ in model.named_children()]
    raise ValueError(f"model has no module named {layer!r}; its top-level modules are: {', '.join(names)}")


class LatentMixup:
    """Mixup of the hidden representation entering ``layer`` (an ``nn.Module`` name such as ``"layer3"``).

    The module's input must be batch first (its first positional argument, or its one tensor keyword argument): a
    sequence-first module such as ``nn.LSTM(batch_first=False)`` would have time steps mixed instead of samples.
    Activation checkpointing must not cover the mixed module: its recomputation during ``backward()`` runs without
    the mixing, so the gradients would be those of the unmixed activations. A ``torch.compile``'d model is mixed
    when it is first compiled with the mixing in place (call it through this object from the start).

    Args:
        model: any module; ``layer`` is looked up with ``get_submodule`` at each forward (also through a DDP
            wrapper), so a module replaced after construction (a new head) is the one mixed.
        layer: module whose *input* is mixed; ``""`` or ``"input"`` mixes the model input (plain mixup).
        alpha, pairing, lam_mode, num_classes, smoothing, generator, seed, ...: as for :class:`vicinal.Mixup`.

    Example:
        >>> import torch, vicinal
        >>> model = torch.nn.Sequential()
        >>> model.add_module("layer1", torch.nn.Linear(4, 16))
        >>> model.add_module("layer2", torch.nn.Linear(16, 10))
        >>> x, y = torch.randn(8, 4), torch.randint(0, 10, (8,))
        >>> lm = LatentMixup(model, "layer2", alpha=1.0, num_classes=10, seed=0)
        >>> logits, y_soft = lm(x, y)            # the input of layer2 is mixed
        >>> loss = vicinal.soft_cross_entropy(logits, y_soft)
    """

    def __init__(self, model: nn.Module, layer: str, alpha: float = 1.0, **kwargs: Any) -> None:
        if not isinstance(model, nn.Module):  # its layers are looked up by name: a function has none
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a module name (a str such as 'layer2' or '0'), got {layer!r}")
        self.model = model
        self.layer = layer
        self.module  # noqa: B018 - looks the layer up: a name the model lacks is named before the options
        self.mixer = self.check_options(layer, alpha, **kwargs)

    @staticmethod
    def check_options(layer: str, alpha: float = 1.0, **kwargs: Any) -> Mixup:
        """Check the options as the constructor does, without a model (whether ``layer`` exists is the model's to
        say); returns the :class:`Mixup` they make. The lab checks a config with it before any run starts."""
        if layer not in ("", "input") and check_flag(kwargs.get("inplace", False), "inplace"):
            # autograd keeps the activation a layer receives for its backward pass: overwriting it breaks backward()
            raise ValueError(
                f"LatentMixup mixes the activations at {layer!r} out of place; inplace=True applies to "
                "the input layer only"
            )
        if kwargs.get("pairing") == "knn":
            # k-NN partners are drawn from the dataset and passed with partner=, which LatentMixup does not take (at
            # a latent layer it never computes the partners' activations)
            raise ValueError(
                "LatentMixup mixes partners from the batch; for k-NN partners (from the dataset, in input space) use "
                "Mixup(pairing='knn') with partner= from KNNPartners.sample on the inputs"
            )
        return Mixup(alpha, **kwargs)

    @property
    def module(self) -> nn.Module | None:
        """The module whose input is mixed, as the model holds it now (None for the input layer)."""
        return None if self.layer in ("", "input") else _find(self.model, self.layer)

    def __repr__(self) -> str:
        opts = repr(self.mixer)[len("Mixup(") : -1]
        return f"{type(self).__name__}(layer={self.layer!r}, {opts})"

    @property
    def generator(self) -> torch.Generator:
        return self.mixer.generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Run ``model`` on ``x`` with the input of ``layer`` mixed; returns ``(outputs, mixed targets)``."""
        params = self.sample(x, y)
        return self.forward(x, params), self.mixer.apply_targets(y, params)

    def sample(self, x: Tensor, y: Tensor) -> MixParams:
        """Validate the batch and draw its params, for :meth:`forward` and the two-label loss::

            params = lm.sample(x, y)
            loss = mixed_criterion(F.cross_entropy, lm.forward(x, params), y, params)

        ``x`` is what the model takes (token ids too, when ``layer`` lies past the model's embedding)."""
        return self.mixer.sample(self._checked_as(x), y)

    def _checked_as(self, x: Tensor) -> Tensor:
        """What ``sample()`` validates for the model input ``x``: ``x`` itself, except an input a latent layer's
        model embeds first (token ids and other integer inputs): the tensor mixed is then the activation at
        ``layer`` (checked when the hook mixes it), and of ``x`` only the batch size counts."""
        if self.module is None or not isinstance(x, Tensor) or x.dim() == 0 or x.dtype in INPUT_DTYPES:
            return x
        return torch.empty((x.shape[0], 0), device=x.device)

    def forward(self, x: Tensor, params: MixParams) -> Tensor:
        """Forward pass with the latent mixing of ``params`` (from :meth:`sample`; the two-label loss can reuse
        them)."""
        module = self.module  # looked up now: a module replaced after construction is the one mixed
        if module is None:
            return self.model(self.mixer.apply_inputs(x, params))
        n = x.shape[0]
        calls = 0

        def batch_first(h: Any) -> Any:
            if not isinstance(h, Tensor) or h.dim() == 0 or h.shape[0] != n:
                what = f"shape {tuple(h.shape)}" if isinstance(h, Tensor) else type(h).__name__
                raise RuntimeError(
                    f"module {self.layer!r} received {what} where LatentMixup mixes a batch-first tensor of the "
                    f"batch's {n} samples; mix a module whose input is the batch"
                )
            return self.mixer.apply_inputs(h, params)

        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise RuntimeError(
                    f"module {self.layer!r} ran more than once in one forward pass; mix a module that runs once"
                )
            if args:  # the input is the first positional argument
                return (batch_first(args[0]), *args[1:]), kwargs
            # called with keywords only (module(hidden_states=h)): the one tensor among them is the input
            tensors = [k for k, v in kwargs.items() if isinstance(v, Tensor)]
            if len(tensors) != 1:
                raise RuntimeError(
                    f"module {self.layer!r} was called with keyword arguments only and {len(tensors)} tensors among "
                    f"them ({', '.join(tensors) or 'none'}); LatentMixup mixes its first positional argument, or "
                    "its one tensor keyword argument"
                )
            return args, {**kwargs, tensors[0]: batch_first(kwargs[tensors[0]])}

        handle = module.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            out = self.model(x)
        finally:
            handle.remove()
        if calls == 0:
            compiled = hasattr(self.model, "_orig_mod")  # torch.compile's OptimizedModule
            why = (
                ": the model is torch.compile'd, and a graph compiled before the mixing was in place does not run it; "
                "call the compiled model through this object from its first call"
                if compiled
                else ""
            )
            raise RuntimeError(f"module {self.layer!r} was not called during the forward pass{why}")
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.mixer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mixer.load_state_dict(state)
