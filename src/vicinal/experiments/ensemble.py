"""The seed-ensemble engine: S small models of one architecture trained at once as one batched model.

The UCI table (batch 16), the GAN grid (2-D points) and the toy figure (200 points, full batch) train networks so
small that one step costs far more Python than arithmetic. So their S independent members (seeds, mixup alphas,
learning rates) train together: each parameter is stacked along a leading member axis ``(S, ...)``, the forward
pass is one member's function batched with ``torch.func.vmap`` (:meth:`Ensemble.forward`: ``functional_call`` of
a template module), and one ``torch.optim`` optimizer steps the stacked tensors (:meth:`Ensemble.step`).

Why a torch optimizer over stacked tensors is exactly S optimizers. SGD (momentum, dampening, Nesterov, weight
decay) and Adam / AdamW (weight decay, amsgrad) update every element from that element's parameter, gradient and
state alone, plus scalars that all members share (learning rate, betas, the step count: every member steps at
every step). So the update of member ``i`` is the update a separate optimizer would make on member ``i`` alone,
element for element and bit for bit (``tests/experiments/test_ensemble.py`` asserts it). Members whose
hyper-parameters differ (the GAN grid's learning rates) get one parameter group per run of consecutive members
with equal values: the groups hold views ``p[a:b]`` of the stacked tensors, so the optimizer writes into them.

What is not elementwise, hence not offered: an optimizer whose update depends on a whole tensor (LAMB / LARS trust
ratios, Adafactor's factored moments, L-BFGS's line search) would mix the members, and so would gradient-norm
clipping over the stacked tensors (``clip_grad_norm_``): a per-member clip would need the norm over dims 1.. of
each member. None of the ensemble's users clips; :data:`ELEMENTWISE_OPTIMIZERS` lists the optimizers accepted.

Randomness is not the engine's: each user draws every member's initialisation, data order and mixing from that
member's own generators (``data.seeds.make_generator(seed, STREAM, ...)``), so a member trained in an ensemble of
any size sees what the same member trained alone sees. Its arithmetic is the same only up to float rounding: the
optimizer step is exact, but the batched forward and backward passes may round differently from a lone member's
(or another ensemble size's), by ~1e-7 per step (``tests/experiments/test_ensemble.py``: atol 1e-6). Training
can amplify that: a GAN seed of the cpu grid trained in a group of 6 and alone ended 2,000 iterations with
high-quality shares 0.557 and 0.667. A table's members are therefore reproduced by its own protocol (the same
seed, alpha and learning-rate lists), not one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .errors import LabError

__all__ = ["ELEMENTWISE_OPTIMIZERS", "Ensemble", "EnsembleError", "member_groups"]

# Optimizers whose update is elementwise given shared scalars (see the module doc).
ELEMENTWISE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


class EnsembleError(LabError, ValueError):
    """An ensemble was asked for something it cannot do exactly (mismatched members, a non-elementwise optimizer)."""


def member_groups(values: Sequence[Any]) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the runs of consecutive equal ``values`` (one optimizer group each)."""
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            groups.append((start, i))
            start = i
    return groups


class Ensemble:
    """S members of one architecture: stacked parameters and one torch optimizer that steps them independently.

    Args:
        states: one ``{name: tensor}`` per member, the same names and shapes for each (e.g. from
            ``named_parameters``); stacked in the order of the first member's names.
        optimizer: a class of :data:`ELEMENTWISE_OPTIMIZERS` (default Adam).
        device: where the stacked parameters live (default: where the states are).
        per_member: ``{option: one value per member}`` (e.g. ``{"lr": [1e-3, 1e-3, 1e-4]}``); consecutive members
            with equal values share an optimizer group.
        options: the optimizer's options shared by every member (``lr=1e-3``, ``betas=(0.9, 0.999)``, ...).

    Attributes:
        names: parameter names, in stacking order. params: the stacked ``(S, ...)`` tensors, in that order (plain
            tensors; :meth:`trainable` gives leaves that require grad). optimizer: the torch optimizer.
    """

    def __init__(
        self,
        states: Sequence[Mapping[str, Tensor]],
        optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
        *,
        device: str | torch.device | None = None,
        per_member: Mapping[str, Sequence[Any]] | None = None,
        **options: Any,
    ) -> None:
        if not states:
            raise EnsembleError("an ensemble needs at least one member; got no states")
        if not (isinstance(optimizer, type) and issubclass(optimizer, ELEMENTWISE_OPTIMIZERS)):
            allowed = ", ".join(c.__name__ for c in ELEMENTWISE_OPTIMIZERS)
            raise EnsembleError(
                f"optimizer {getattr(optimizer, '__name__', optimizer)!r} is not one whose update is elementwise "
                f"({allowed}): over stacked members it would mix them"
            )
        self.names: tuple[str, ...] = tuple(states[0])
        for i, state in enumerate(states):
            if tuple(state) != self.names:
                raise EnsembleError(f"member {i} has parameters {list(state)}; member 0 has {list(self.names)}")
            for n in self.names:
                if state[n].shape != states[0][n].shape:
                    raise EnsembleError(
                        f"member {i}'s {n!r} has shape {tuple(state[n].shape)}; member 0's {tuple(states[0][n].shape)}"
                    )
        self.params: tuple[Tensor, ...] = tuple(
            torch.stack([s[n].detach() for s in states]).to(device) for n in self.names
        )
        per_member = dict(per_member or {})
        for key, values in per_member.items():
            if len(values) != len(states):
                raise EnsembleError(f"per_member {key!r} has {len(values)} values for {len(states)} members")
            if key in options:
                raise EnsembleError(f"optimizer option {key!r} is given both for all members and per member")
        keys = sorted(per_member)
        self.groups = member_groups([tuple(per_member[k][i] for k in keys) for i in range(len(states))])
        self.optimizer = optimizer(
            [{"params": [p[a:b] for p in self.params], **{k: per_member[k][a] for k in keys}} for a, b in self.groups],
            **options,
        )

    def __len__(self) -> int:
        return self.params[0].shape[0]

    def as_dict(self) -> dict[str, Tensor]:
        """``{name: (S, ...) stacked tensor}`` (the tensors themselves, not copies)."""
        return dict(zip(self.names, self.params, strict=True))

    def member(self, i: int) -> dict[str, Tensor]:
        """A copy of member ``i``'s parameters, ``{name: tensor}``."""
        return {n: p[i].detach().clone() for n, p in zip(self.names, self.params, strict=True)}

    def trainable(self) -> tuple[Tensor, ...]:
        """Leaves that share the stacked parameters' storage and require grad (for ``torch.autograd.grad``)."""
        return tuple(p.detach().requires_grad_(True) for p in self.params)

    def forward(self, module: nn.Module, x: Tensor, params: Sequence[Tensor] | None = None) -> Tensor:
        """Every member's ``module`` on its own inputs: ``x (S, ...) -> (S, ...)``.

        ``module`` is a template of the architecture (its own parameters, e.g. on the meta device, are not used);
        ``params`` defaults to the stacked parameters (pass :meth:`trainable`'s leaves to differentiate).
        """
        p = dict(zip(self.names, self.params if params is None else params, strict=True))
        return vmap(lambda q, xi: functional_call(module, q, (xi,)))(p, x)

    def step(self, grads: Sequence[Tensor]) -> None:
        """One optimizer step with ``grads`` (one ``(S, ...)`` tensor per parameter, in :attr:`names` order)."""
        if len(grads) != len(self.params):
            raise EnsembleError(f"step got {len(grads)} gradients for {len(self.params)} parameters")
        with torch.no_grad():
            for group, (a, b) in zip(self.optimizer.param_groups, self.groups, strict=True):
                for p, g in zip(group["params"], grads, strict=True):
                    p.grad = g[a:b]
            self.optimizer.step()
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None

    def autograd_step(self, losses: Callable[[tuple[Tensor, ...]], Tensor]) -> Tensor:
        """Differentiate ``losses(params) -> (S,)`` (one loss per member) and step; returns the detached losses.

        Members share no parameters, so the gradient of the sum is each member's gradient of its own loss.
        """
        leaves = self.trainable()
        values = losses(leaves)
        if values.shape != (len(self),):
            raise EnsembleError(f"losses must return one value per member, shape ({len(self)},); got {values.shape}")
        self.step(torch.autograd.grad(values.sum(), leaves))
        return values.detach()
