"""The members of the ``uci`` table and how they train: protocol, per-member randomness, the batched trainer.

A member is one MLP (seed, mixup alpha; alpha 0 = ERM). :class:`UCIProtocol` fixes everything else (see
:mod:`.uci`, the table, for why each choice). Every member draws its initialisation (:func:`member_init`), data
order and mixing (:func:`epoch_plan`) from its own generators, ``make_generator(seed, stream, ...)``, so ERM and
every alpha of a seed share split, initialisation and order (common random numbers), and a member trained with
any batch mates sees what the same member trained alone sees (its float rounding may differ: the engine's
module doc; the table is reproduced by its own protocol).

:func:`train_vmapped` trains all members of a dataset at once on the seed-ensemble engine
(:class:`~vicinal.experiments.ensemble.Ensemble`: parameters stacked along a member axis, the MLP under
``torch.func.vmap`` of ``functional_call``, ``torch.optim.Adam`` over the stacked tensors); :func:`train_sequential`
is the plain loop (``nn.Module``, ``torch.optim.Adam``, ``vicinal.functional.mix``, ``vicinal.soft_cross_entropy``)
that one vmapped member must equal.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

import vicinal
from vicinal.experiments.data.base import TensorSplits, make_generator
from vicinal.experiments.data.seeds import STREAM_UCI_INIT as STREAM_INIT
from vicinal.experiments.data.seeds import STREAM_UCI_MIX as STREAM_MIX
from vicinal.experiments.data.seeds import STREAM_UCI_ORDER as STREAM_ORDER
from vicinal.experiments.models import build_model

from ..ensemble import Ensemble
from ..errors import LabFileNotFoundError, TaskArgumentError, TaskError

__all__ = [
    "DEFAULT_ALPHAS",
    "STREAM_INIT",
    "STREAM_MIX",
    "STREAM_ORDER",
    "EpochPlan",
    "Member",
    "MemberResult",
    "UCIProtocol",
    "epoch_plan",
    "load_protocol",
    "member_init",
    "train_sequential",
    "train_vmapped",
]

DEFAULT_ALPHAS: tuple[float, ...] = (0.1, 0.2, 0.4, 1.0)


# Stacked parameters per chunk of members (2**25 floats = 128 MiB per copy; Adam holds 4 copies). Only Arcene's
# 10000-feature first layer (1.3 M parameters per member) needs more than one chunk.
_CHUNK_PARAMS = 2**25
_EVAL_ROWS = 4096  # rows per evaluation block


# -- protocol ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UCIProtocol:
    """Everything that defines a run except the seeds and datasets (defaults = ``configs/uci/uci.yaml``).

    Attributes:
        epochs: training epochs (paper: 10); the reported error is the one after the last epoch.
        batch_size: minibatch size (paper: 16); the last, smaller batch of an epoch is kept.
        hidden, layers: the MLP (paper: two hidden layers of 128 ReLU units).
        lr, beta1, beta2, eps: Adam (paper: "default hyper-parameters", i.e. PyTorch's 1e-3, 0.9, 0.999, 1e-8).
        alphas: the mixup alpha grid searched on validation error.
        test_fraction, val_fraction: passed to :func:`load_uci` (test share of all rows; validation share of the rest).
    """

    epochs: int = 10
    batch_size: int = 16
    hidden: int = 128
    layers: int = 2
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    test_fraction: float = 0.2
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TaskError(f"UCIProtocol.{name} must be a positive int, got {value!r}")
        for name in ("lr", "beta1", "beta2", "eps", "test_fraction", "val_fraction"):
            # before the range checks below: comparing a str or None with a number is a TypeError, not a message
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TaskError(f"UCIProtocol.{name} must be a number, got {value!r}")
        object.__setattr__(self, "alphas", _check_alphas(self.alphas))
        if not self.lr > 0 or not self.eps > 0:
            raise TaskError(f"UCIProtocol.lr and eps must be > 0, got lr={self.lr!r}, eps={self.eps!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise TaskError(f"UCIProtocol.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 < self.test_fraction < 1.0:  # checked here: a dry run and the banner passed 1.5 or inf before
            raise TaskError(f"UCIProtocol.test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise TaskError(
                f"UCIProtocol.val_fraction must be in (0, 1) (alpha is chosen on it), got {self.val_fraction!r}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UCIProtocol:
        """Build from a mapping (e.g. a YAML file); an unknown key is an error, missing keys keep their defaults."""
        if not isinstance(data, Mapping):
            raise TaskArgumentError(f"a UCI protocol must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskError(f"unknown UCI protocol key(s) {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        if "alphas" in kwargs:
            alphas = kwargs["alphas"]
            # a scalar (`--set alphas=0.5`) is refused by name rather than failing in tuple() with a TypeError
            if isinstance(alphas, str | bytes | Mapping) or not isinstance(alphas, Iterable):
                raise TaskError(f"alphas must be a non-empty sequence of positive floats, got {alphas!r}")
            kwargs["alphas"] = tuple(alphas)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly copy."""
        out = asdict(self)
        out["alphas"] = list(self.alphas)
        return out


def check_chunk_size(chunk_size: int) -> None:
    """Members trained together per batched model: a positive int."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise TaskError(f"chunk_size must be a positive int, got {chunk_size!r}")


def _check_alphas(alphas: Sequence[float]) -> tuple[float, ...]:
    if isinstance(alphas, str | bytes) or not isinstance(alphas, Sequence) or len(alphas) == 0:
        raise TaskError(f"alphas must be a non-empty sequence of positive floats, got {alphas!r}")
    for a in alphas:
        if isinstance(a, bool) or not isinstance(a, numbers.Real):
            raise TaskError(f"every mixup alpha must be a finite float > 0 (ERM is always run), got {a!r}")
    out = tuple(float(a) for a in alphas)
    for a in out:
        if not (math.isfinite(a) and a > 0):
            raise TaskError(f"every mixup alpha must be a finite float > 0 (ERM is always run), got {a!r}")
    if len(set(out)) != len(out):
        raise TaskError(f"alphas contain duplicates: {list(out)}")
    return out


def load_protocol(path: str | Path) -> UCIProtocol:
    """Read a protocol YAML file (such as ``configs/uci/uci.yaml``); unknown keys are errors."""
    path = Path(path)
    if not path.is_file():
        raise LabFileNotFoundError(f"UCI protocol file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return UCIProtocol.from_dict(data)


# -- members and their randomness -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """One trained network: split/initialisation/order seed ``seed`` and mixup ``alpha`` (0.0 = ERM)."""

    seed: int
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TaskError(f"Member.seed must be an int >= 0, got {self.seed!r}")
        alpha = float(self.alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise TaskError(f"Member.alpha must be a finite float >= 0 (0 = ERM), got {self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)

    @property
    def method(self) -> str:
        """``"erm"`` or ``"mixup"``."""
        return "erm" if self.alpha == 0.0 else "mixup"


@dataclass(frozen=True)
class EpochPlan:
    """Everything random about one epoch of one member.

    Attributes:
        order: ``(N,)`` permutation of the training rows; step ``t`` trains on ``order[t*B:(t+1)*B]``.
        lam: ``(S,)`` float64 mixing weight of each step (all 1.0 for ERM: the batch is left unchanged).
        perm: ``(S, B)`` partner positions within each step's batch; for a last batch of ``b < B`` rows only
            ``perm[-1, :b]`` is used (a permutation of ``range(b)``).
    """

    order: Tensor
    lam: Tensor
    perm: Tensor


def epoch_plan(member: Member, epoch: int, n_train: int, batch_size: int) -> EpochPlan:
    """Draw the order and the mixing of one epoch from the member's own generators.

    The order depends on ``(seed, epoch)`` only, so ERM and mixup members of a seed see the same batches; lam and
    partners come from a separate ``(seed, epoch)`` stream. One vectorised draw per epoch: ``S`` lams from
    Beta(alpha, alpha) (the library's :func:`vicinal.sample_beta`) and ``S`` uniform permutations as argsorts of
    uniforms.
    """
    if n_train < 1 or batch_size < 1:
        raise TaskError(f"epoch_plan needs n_train >= 1 and batch_size >= 1, got {n_train} and {batch_size}")
    steps = math.ceil(n_train / batch_size)
    last = n_train - (steps - 1) * batch_size  # rows in the last step, 1..B
    order = torch.randperm(n_train, generator=make_generator(member.seed, STREAM_ORDER, epoch))
    if member.alpha == 0.0:
        lam = torch.ones(steps, dtype=torch.float64)
        perm = torch.arange(batch_size).expand(steps, batch_size).clone()
        return EpochPlan(order, lam, perm)
    g = make_generator(member.seed, STREAM_MIX, epoch)
    lam = vicinal.sample_beta(member.alpha, (steps,), generator=g)  # (S,) float64
    u = torch.rand(steps, batch_size, generator=g)  # (S, B)
    perm = u.argsort(dim=1)  # a uniformly random permutation per row
    if last < batch_size:
        perm[-1] = torch.cat([u[-1, :last].argsort(), torch.arange(last, batch_size)])
    return EpochPlan(order, lam, perm)


def member_init(model: nn.Module, seed: int) -> dict[str, Tensor]:
    """Initial parameters of ``model`` (its ``nn.Linear`` layers) for ``seed``, without touching the global RNG.

    Same distribution as PyTorch's default ``nn.Linear`` init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (``kaiming_uniform_(a=sqrt(5))`` reduces to that bound), drawn from ``make_generator(seed, STREAM_INIT)`` layer
    by layer, weight then bias. ERM and mixup members of a seed start from the same weights.
    """
    g = make_generator(seed, STREAM_INIT)
    state: dict[str, Tensor] = {}
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            dot = f"{prefix}." if prefix else ""
            weight = torch.rand(module.out_features, module.in_features, generator=g) * (2 * bound) - bound
            state[f"{dot}weight"] = weight  # (out, in)
            if module.bias is not None:
                state[f"{dot}bias"] = torch.rand(module.out_features, generator=g) * (2 * bound) - bound
    names = [n for n, _ in model.named_parameters()]
    if sorted(names) != sorted(state):
        raise TypeError(f"member_init handles nn.Linear parameters only; the model has {names}")
    return {n: state[n] for n in names}


def _meta_mlp(num_classes: int, num_features: int, protocol: UCIProtocol) -> nn.Module:
    """The paper's MLP with parameters on the meta device (a shape-only template; no RNG is consumed)."""
    with torch.device("meta"):
        return build_model("mlp", num_classes, in_features=num_features, hidden=protocol.hidden, layers=protocol.layers)


# -- results -------------------------------------------------------------------------------------------------------
@dataclass
class MemberResult:
    """What one member's training produced (errors are fractions in [0, 1], one entry per epoch).

    Attributes:
        seed, alpha: the member.
        train_loss: mean minibatch loss of each epoch (on the mixed batches).
        val_error, test_error: error after each epoch; the protocol reports the last entry.
        train_error: error on the unmixed training split after the last epoch.
        epoch_time_s: wall time of each epoch (training and evaluation) of the ensemble that trained the member,
            shared by all its members.
        state: final parameters (only when asked for; never written to disk).
    """

    seed: int
    alpha: float
    train_loss: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    train_error: float = float("nan")
    epoch_time_s: list[float] = field(default_factory=list)
    state: dict[str, Tensor] | None = None

    @property
    def method(self) -> str:
        """``"erm"`` or ``"mixup"``."""
        return "erm" if self.alpha == 0.0 else "mixup"

    def record(self) -> dict[str, Any]:
        """JSON-friendly metrics (without the parameters)."""
        return {
            "seed": self.seed,
            "method": self.method,
            "alpha": self.alpha,
            "final_val_error": self.val_error[-1] if self.val_error else None,
            "final_test_error": self.test_error[-1] if self.test_error else None,
            "final_train_error": self.train_error,
            "train_loss": self.train_loss,
            "val_error": self.val_error,
            "test_error": self.test_error,
        }


# -- training ------------------------------------------------------------------------------------------------------
def _check_splits(splits: Mapping[int, TensorSplits], members: Sequence[Member]) -> tuple[int, int, int]:
    """Validate that all members can share one batched model: returns (n_train, num_features, num_classes)."""
    if not members:
        raise TaskError("no members to train")
    for m in members:
        if not isinstance(m, Member):
            raise TaskArgumentError(f"members must be Member objects, got {type(m).__name__}")
        if m.seed not in splits:
            raise TaskError(f"member seed {m.seed} has no split; splits are given for seeds {sorted(splits)}")
    shapes = {}
    for seed in sorted({m.seed for m in members}):
        s = splits[seed]
        if not isinstance(s, TensorSplits):
            raise TaskArgumentError(f"splits[{seed}] must be a TensorSplits, got {type(s).__name__}")
        if s.val is None:
            raise TaskError(f"splits[{seed}] has no validation split (alpha is chosen on validation error)")
        if s.train[0].dim() != 2 or not s.train[0].is_floating_point():
            raise TaskError(
                f"splits[{seed}].train inputs must be float (N, D) features, got {s.train[0].dtype} "
                f"of shape {tuple(s.train[0].shape)}"
            )
        shapes[seed] = (
            tuple(s.train[0].shape),
            tuple(s.val[0].shape),
            tuple(s.test[0].shape),
            s.num_classes,
        )
    if len(set(shapes.values())) > 1:
        raise TaskError(
            "all seeds' splits must have the same sizes to train as one batched model; got "
            + ", ".join(f"seed {k}: train/val/test {v[0]}/{v[1]}/{v[2]}, {v[3]} classes" for k, v in shapes.items())
        )
    (n_train, num_features), _, _, num_classes = next(iter(shapes.values()))
    return n_train, num_features, num_classes


def train_sequential(
    splits: TensorSplits, member: Member, protocol: UCIProtocol | None = None, *, device: str | torch.device = "cpu"
) -> MemberResult:
    """Train one member with the plain loop: the reference that each vmapped member must equal.

    ``nn.Module`` MLP, ``torch.optim.Adam``, one minibatch at a time, mixing with ``vicinal.functional.mix`` /
    ``mix_targets`` at the plan's ``(lam, perm)``, loss ``vicinal.soft_cross_entropy``.
    """
    protocol = protocol or UCIProtocol()
    n_train, num_features, num_classes = _check_splits({member.seed: splits}, [member])
    dev = torch.device(device)
    model = _meta_mlp(num_classes, num_features, protocol)
    init = member_init(model, member.seed)
    model = model.to_empty(device=dev)
    model.load_state_dict(init)
    opt = torch.optim.Adam(model.parameters(), lr=protocol.lr, betas=(protocol.beta1, protocol.beta2), eps=protocol.eps)
    x_train, y_train = (t.to(dev) for t in splits.train)
    assert splits.val is not None
    result = MemberResult(seed=member.seed, alpha=member.alpha)
    bs = protocol.batch_size
    for epoch in range(protocol.epochs):
        plan = epoch_plan(member, epoch, n_train, bs)
        order = plan.order.to(dev)
        total = 0.0
        steps = plan.lam.numel()
        for t in range(steps):
            idx = order[t * bs : (t + 1) * bs]
            x, y = x_train[idx], y_train[idx]  # (b, D), (b,)
            target = vicinal.functional.one_hot(y, num_classes)  # (b, C)
            if member.alpha > 0:
                lam, perm = float(plan.lam[t]), plan.perm[t, : x.shape[0]].to(dev)
                x = vicinal.functional.mix(x, lam, perm)
                target = vicinal.functional.mix_targets(target, lam, perm)
            loss = vicinal.soft_cross_entropy(model(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        result.train_loss.append(total / steps)
        with torch.no_grad():
            for split, out in ((splits.val, result.val_error), (splits.test, result.test_error)):
                xs, ys = split[0].to(dev), split[1].to(dev)
                out.append(float((model(xs).argmax(-1) != ys).double().mean()))
    with torch.no_grad():
        result.train_error = float((model(x_train).argmax(-1) != y_train).double().mean())
    result.state = {n: p.detach().clone() for n, p in model.named_parameters()}
    return result


def _chunk_size(num_features: int, num_classes: int, protocol: UCIProtocol) -> int:
    """Members per batched model so that one stacked copy of the parameters stays under ``_CHUNK_PARAMS``."""
    h, k = protocol.hidden, protocol.layers
    per_member = (num_features + 1) * h + (k - 1) * (h + 1) * h + (h + 1) * num_classes
    return max(1, _CHUNK_PARAMS // per_member)


def train_vmapped(
    splits: Mapping[int, TensorSplits],
    members: Sequence[Member],
    protocol: UCIProtocol | None = None,
    *,
    device: str | torch.device = "cpu",
    chunk_size: int | None = None,
    return_state: bool = False,
) -> list[MemberResult]:
    """Train many members at once as one batched model (``torch.func.vmap`` over stacked parameters).

    Args:
        splits: ``seed -> TensorSplits``; every member trains on the split of its seed. All splits must have the
            same sizes (stratified splits of one dataset do).
        members: the networks to train, e.g. ``[Member(s, a) for s in seeds for a in (0.0, *alphas)]``.
        protocol: epochs, batch size, model and Adam settings (default :class:`UCIProtocol`).
        device: where the stacked model lives (``"cuda"`` works the same way).
        chunk_size: members per batched model (default: as many as fit ``_CHUNK_PARAMS`` stacked parameters).
            Members are independent, so chunking changes nothing but memory and speed.
        return_state: keep each member's final parameters in :attr:`MemberResult.state`.

    Returns:
        One :class:`MemberResult` per member, in the order of ``members``.
    """
    protocol = protocol or UCIProtocol()
    n_train, num_features, num_classes = _check_splits(splits, members)
    if chunk_size is None:
        chunk_size = _chunk_size(num_features, num_classes, protocol)
    check_chunk_size(chunk_size)
    results: list[MemberResult] = []
    for start in range(0, len(members), chunk_size):
        chunk = list(members[start : start + chunk_size])
        results += _train_chunk(splits, chunk, protocol, n_train, num_classes, torch.device(device), return_state)
    return results


def _train_chunk(
    splits: Mapping[int, TensorSplits],
    members: list[Member],
    protocol: UCIProtocol,
    n_train: int,
    num_classes: int,
    dev: torch.device,
    return_state: bool,
) -> list[MemberResult]:
    seeds = sorted({m.seed for m in members})
    where = {s: i for i, s in enumerate(seeds)}
    sidx = torch.tensor([where[m.seed] for m in members], device=dev)  # (M,) member -> its split

    def stack(part: str) -> tuple[Tensor, Tensor]:
        xs, ys = zip(*(getattr(splits[s], part) for s in seeds), strict=True)
        return torch.stack(xs).to(dev), torch.stack(ys).to(dev)  # (S_seeds, N, D), (S_seeds, N)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = stack("train"), stack("val"), stack("test")
    d = x_train.shape[-1]
    model = _meta_mlp(num_classes, d, protocol)
    ensemble = Ensemble(
        [member_init(model, m.seed) for m in members],
        torch.optim.Adam,
        device=dev,
        lr=protocol.lr,
        betas=(protocol.beta1, protocol.beta2),
        eps=protocol.eps,
    )

    def errors(x: Tensor, y: Tensor) -> Tensor:
        wrong = torch.zeros(len(members), dtype=torch.float64, device=dev)
        with torch.no_grad():
            for lo in range(0, x.shape[1], _EVAL_ROWS):  # row blocks bound the (M, rows, hidden) activations
                logits = ensemble.forward(model, x[sidx, lo : lo + _EVAL_ROWS])  # (M, r, C)
                wrong += (logits.argmax(-1) != y[sidx, lo : lo + _EVAL_ROWS]).sum(-1)
        return wrong / x.shape[1]  # (M,)

    m_count, bs = len(members), protocol.batch_size
    results = [MemberResult(seed=m.seed, alpha=m.alpha) for m in members]
    for epoch in range(protocol.epochs):
        start = time.perf_counter()
        plans = [epoch_plan(m, epoch, n_train, bs) for m in members]
        order = torch.stack([p.order for p in plans]).to(dev)  # (M, N)
        lam = torch.stack([p.lam for p in plans]).to(dev)  # (M, S) float64
        perm = torch.stack([p.perm for p in plans]).to(dev)  # (M, S, B)
        # Weights as the library computes them for a float lam: lam and (1 - lam) rounded from float64 to float32.
        w, w_partner = lam.float(), (1 - lam).float()  # (M, S)
        xe = x_train[sidx[:, None], order]  # (M, N, D): the epoch's rows in each member's order
        ye = nn.functional.one_hot(y_train[sidx[:, None], order], num_classes).float()  # (M, N, C)
        loss_sum = torch.zeros(m_count, dtype=torch.float64, device=dev)
        steps = lam.shape[1]
        for t in range(steps):
            x, y = xe[:, t * bs : (t + 1) * bs], ye[:, t * bs : (t + 1) * bs]  # (M, b, D), (M, b, C)
            b = x.shape[1]
            pt = perm[:, t, :b, None]  # (M, b, 1)
            wt, wp = w[:, t, None, None], w_partner[:, t, None, None]  # (M, 1, 1)
            x = wt * x + wp * x.gather(1, pt.expand(-1, -1, d))  # ERM: 1 * x + 0 * x[perm] == x exactly
            y = wt * y + wp * y.gather(1, pt.expand(-1, -1, num_classes))

            def soft_cross_entropy(params: tuple[Tensor, ...], x: Tensor = x, y: Tensor = y) -> Tensor:
                logits = ensemble.forward(model, x, params)  # (M, b, C)
                return -(y * torch.log_softmax(logits, dim=-1)).sum(-1).mean(-1)  # (M,)

            loss_sum += ensemble.autograd_step(soft_cross_entropy)
        val, test = errors(x_val, y_val).tolist(), errors(x_test, y_test).tolist()
        seconds = time.perf_counter() - start
        for i, r in enumerate(results):
            r.train_loss.append(float(loss_sum[i]) / steps)
            r.val_error.append(val[i])
            r.test_error.append(test[i])
            r.epoch_time_s.append(seconds)
    train_err = errors(x_train, y_train).tolist()
    for i, r in enumerate(results):
        r.train_error = train_err[i]
        if return_state:
            r.state = ensemble.member(i)
    return results
