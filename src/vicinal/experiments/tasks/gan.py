"""The GAN experiment (Section 3.7, Figure 5): ERM GANs vs mixup GANs on toy 2-D mixtures of Gaussians.

Setting (paper and EXPERIMENTS.md 3.7): generator and discriminator are MLPs with three hidden layers of 512
ReLU units (``gan_mlp`` of the models package); the generator maps 2-D Gaussian noise to 2-D points; minibatches
of 128; Adam with default parameters (betas 0.9, 0.999, eps 1e-8; lr 1e-3, PyTorch's default); five discriminator
steps per generator step; 20,000 generator iterations. Datasets ``ring`` and ``grid`` (see :mod:`.gan_metrics`).

Objectives, per discriminator step (one real batch ``x`` and one noise batch ``z`` of 128 each):

- ERM GAN: ``BCE(D(x), 1) + BCE(D(G(z)), 0)`` (the standard GAN discriminator, two means summed);
- mixup GAN: ``BCE(D(lam x + (1 - lam) G(z)), lam)`` with one ``lam`` per sample, Beta(alpha, alpha) by
  default (the paper) or Uniform(0, alpha) (the authors' demo), alpha = 0.2: :func:`vicinal.gan.mixup_discriminator_loss`.

The generator loss is the non-saturating ``BCE(D(G(z)), 1)`` (:func:`vicinal.gan.generator_loss`) for both
methods: the paper writes the min-max (saturating) form, whose generator gradient vanishes while D wins, and
Goodfellow et al. (2014) train the generator with the non-saturating one.

Many small runs. ``S`` runs of one architecture (seeds, and learning rates, which are per run) train together:
the parameters of G and D (``gan_mlp`` of the models package, initialised by ``build_model``) are stacked along
a leading run dimension (:class:`~vicinal.experiments.ensemble.Ensemble`, the lab's seed-ensemble engine), the
losses are written as functions of one run's parameters (:func:`mlp_forward`, equal to ``functional_call`` of
``gan_mlp``) and batched with ``torch.func.vmap(torch.func.grad_and_value(...))``, and ``torch.optim.Adam`` steps
the stacked tensors, one parameter group per learning rate (exactly one Adam per run: see the engine).
Each run draws its data, noise and lam from its own ``make_generator(seed, STREAM_DATA)`` in the same order
whatever ``S`` is, so a batched run equals the same seed trained alone (asserted in the tests).

The table. :func:`run_gan_table` trains ``datasets x methods x widths x discriminator steps x learning rates x
seeds`` runs and reports, per dataset and method, the final metrics of the default setting (lr 1e-3, five
discriminator steps, the largest width) over seeds, and the share of all grid runs that converge: the paper's
claim is that "the training of mixup GANs seems promisingly robust to hyper-parameter and architectural choices".
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad_and_value, vmap

from ...gan import LAM_DISTRIBUTIONS, generator_loss, mixup_discriminator_loss, sample_gan_lam
from .. import runs as run_folders
from ..data.seeds import derive_seed, make_generator
from ..ensemble import Ensemble
from ..errors import TaskArgumentError, TaskError
from ..models import build_model
from ..runs import append_metrics, provenance, write_json, write_metrics, write_provenance
from ..stats import mean_std
from .gan_metrics import (
    DATASETS,
    DEFAULT_MIN_COUNT,
    DEFAULT_STD,
    evaluate_samples,
    is_converged,
    sample_toy,
    toy_modes,
)
from .registry import Table, register_table

__all__ = [
    "FIGURE5_ITERATIONS",
    "METHODS",
    "PROTOCOLS",
    "GANConfig",
    "GANProtocol",
    "GANRuns",
    "draw_block",
    "erm_discriminator_loss",
    "init_gan_params",
    "main",
    "mlp_forward",
    "plot_gan_figure",
    "run_gan_table",
    "run_name",
    "train_gan_runs",
]

METHODS = ("erm", "mixup")
FIGURE5_ITERATIONS = (10, 100, 1000, 10000, 20000)  # the columns of Figure 5, out of 20,000 iterations
EVAL_SEED = 20180225  # a fixed seed for the evaluation's noise and real sample, shared by every run
# Random streams of this task, hashed with a run's seed (or EVAL_SEED) by derive_seed (uci.py uses 601-603).
STREAM_INIT = 701  # initial weights of G (part 0) and D (part 1)
STREAM_DATA = 702  # real points, noise and lam of every step
STREAM_EVAL = 703  # the evaluation's noise and real sample (with EVAL_SEED)
STREAM_FIGURE = 704  # the figure's real points (with EVAL_SEED)


# --------------------------------------------------------------------------------------------------------------
# configuration


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskError(f"{name} must be an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class GANConfig:
    """One architecture and schedule; the runs that share it differ only in seed and learning rate.

    Attributes:
        dataset: ``ring`` or ``grid``.
        method: ``erm`` or ``mixup``.
        iterations: Generator iterations (paper: 20,000).
        batch_size: Real and fake samples per step (paper: 128).
        d_steps: Discriminator steps per generator step (paper: 5).
        width: Hidden units per layer of G and D (paper: 512).
        layers: Hidden layers of G and D (paper: 3).
        noise_dim: Dimension of the generator's Gaussian noise (paper: 2).
        alpha: mixup's alpha (paper: 0.2); ignored by ERM.
        lam_distribution: ``beta`` (paper) or ``uniform`` (Uniform(0, alpha), the authors' demo).
        betas, eps: Adam's (defaults of the paper: PyTorch's).
        std: Standard deviation of the modes (paper: 0.01).
        eval_every: Metrics every this many iterations (and at 0 and the last iteration).
        n_eval: Generated and real points per evaluation (2,500).
        min_count: High-quality samples a mode needs to count as covered.
        snapshot_iters: Iterations whose samples are kept for the figure.
        n_snapshot: Points kept per snapshot.
        block: Iterations of randomness drawn per call to the generators. Part of the random stream's
            definition: another block size interleaves the draws differently (same distribution, other values).
    """

    dataset: str = "ring"
    method: str = "mixup"
    iterations: int = 20_000
    batch_size: int = 128
    d_steps: int = 5
    width: int = 512
    layers: int = 3
    noise_dim: int = 2
    alpha: float = 0.2
    lam_distribution: str = "beta"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    std: float = DEFAULT_STD
    eval_every: int = 1000
    n_eval: int = 2500
    min_count: int = DEFAULT_MIN_COUNT
    snapshot_iters: tuple[int, ...] = FIGURE5_ITERATIONS
    n_snapshot: int = 512
    block: int = 50

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise TaskError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        if self.method not in METHODS:
            raise TaskError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.lam_distribution not in LAM_DISTRIBUTIONS:
            raise TaskError(
                f"unknown lam_distribution {self.lam_distribution!r}; known: {', '.join(LAM_DISTRIBUTIONS)}"
            )
        for name in ("iterations", "batch_size", "d_steps", "width", "layers", "noise_dim", "eval_every"):
            _positive_int(name, getattr(self, name))
        for name in ("n_eval", "min_count", "n_snapshot", "block"):
            _positive_int(name, getattr(self, name))
        for name in ("alpha", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise TaskError(f"{name} must be a number > 0, got {value!r}")
        if self.n_snapshot > self.n_eval:
            raise TaskError(f"n_snapshot ({self.n_snapshot}) must not exceed n_eval ({self.n_eval})")
        bad = [it for it in self.snapshot_iters if not (isinstance(it, int) and 1 <= it <= self.iterations)]
        if bad:
            raise TaskError(f"snapshot_iters must lie in [1, iterations={self.iterations}], got {list(bad)}")


@dataclass
class GANRuns:
    """The result of :func:`train_gan_runs`: S runs of one :class:`GANConfig`.

    Attributes:
        config: The shared configuration.
        seeds, lrs: Per run, in order (run ``s`` is index ``s`` of every stacked tensor).
        history: One record per run and evaluated iteration: ``run`` (index), ``seed``, ``lr``, ``iteration``,
            ``modes_covered``, ``n_modes``, ``high_quality``, ``sliced_w2`` (None if diverged), ``d_loss``,
            ``g_loss`` (of the last step before the evaluation; None at iteration 0).
        snapshots: ``iteration -> (S, n_snapshot, 2)`` generated points.
        g_params, d_params: Final parameters, ``name -> (S, ...)`` (names of ``gan_mlp``'s state dict).
        seconds: Wall time of the training loop.
    """

    config: GANConfig
    seeds: list[int]
    lrs: list[float]
    history: list[dict[str, Any]]
    snapshots: dict[int, Tensor]
    g_params: dict[str, Tensor]
    d_params: dict[str, Tensor]
    seconds: float

    def final(self) -> list[dict[str, Any]]:
        """The last record of each run, with ``converged`` (see :func:`.gan_metrics.is_converged`)."""
        last = {rec["run"]: rec for rec in self.history}  # the history is in iteration order
        out = []
        for s in range(len(self.seeds)):
            rec = dict(last[s])
            rec["converged"] = is_converged(rec["modes_covered"], rec["n_modes"], rec["high_quality"])
            out.append(rec)
        return out


# --------------------------------------------------------------------------------------------------------------
# networks, losses, optimiser


def _mlp(weights: Sequence[Tensor], x: Tensor) -> Tensor:
    """The MLP on a flat sequence ``(w1, b1, ..., w_head, b_head)``: a tuple is the cheapest pytree for vmap."""
    h = x
    for i in range(0, len(weights) - 2, 2):
        h = F.linear(h, weights[i], weights[i + 1]).relu()  # (B, width)
    return F.linear(h, weights[-2], weights[-1])


def mlp_forward(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The ``gan_mlp`` forward pass written with ``F.linear``: ``(B, in) -> (B, out)`` for one run's parameters.

    ``params`` uses the names of ``gan_mlp``'s state dict (``layer{i}.0.weight``, ..., ``head.bias``), so it equals
    ``torch.func.functional_call(build_model("gan_mlp", ...), params, (x,))`` (asserted in the tests). Written out
    because ``vmap`` over it runs faster than over the module's ``functional_call`` on a CPU (no module dispatch,
    no in-place ReLU to re-batch; measured about 20% at width 128).
    """
    n_layers = sum(1 for k in params if k.endswith(".0.weight"))
    order = [f"layer{i}.0.{kind}" for i in range(1, n_layers + 1) for kind in ("weight", "bias")]
    return _mlp([params[k] for k in [*order, "head.weight", "head.bias"]], x)


def init_gan_params(config: GANConfig, seed: int) -> tuple[dict[str, Tensor], dict[str, Tensor], torch.Generator]:
    """Initial parameters of G and D for one run, and the run's generator for its data draws.

    G and D are ``gan_mlp``s built with ``build_model(..., seed=derive_seed(seed, STREAM_INIT, 0 / 1))``
    (PyTorch's default initialisation, global RNG untouched); the data, noise and lam of the run come from
    ``make_generator(seed, STREAM_DATA)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TaskArgumentError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    gen = make_generator(seed, STREAM_DATA)
    g_seed, d_seed = derive_seed(seed, STREAM_INIT, 0), derive_seed(seed, STREAM_INIT, 1)
    common = {"hidden": config.width, "layers": config.layers}
    g = build_model("gan_mlp", in_features=config.noise_dim, out_features=2, seed=g_seed, **common)
    d = build_model("gan_mlp", in_features=2, out_features=1, seed=d_seed, **common)
    g_params = {k: v.detach() for k, v in g.named_parameters()}
    d_params = {k: v.detach() for k, v in d.named_parameters()}
    return g_params, d_params, gen


def draw_block(config: GANConfig, gen: torch.Generator, n_iter: int) -> dict[str, Tensor]:
    """The randomness of ``n_iter`` generator iterations of one run, drawn from ``gen`` in a fixed order.

    Returns:
        ``real`` ``(n_iter, d_steps, B, 2)`` real points; ``z_d`` ``(n_iter, d_steps, B, noise_dim)`` noise of
        the discriminator steps; ``lam`` ``(n_iter, d_steps, B)`` (mixup only; zeros for ERM, no draws);
        ``z_g`` ``(n_iter, B, noise_dim)`` noise of the generator steps.
    """
    c = config
    modes = toy_modes(c.dataset)
    shape = (n_iter, c.d_steps, c.batch_size)
    idx = torch.randint(len(modes), shape, generator=gen)
    real = modes[idx] + c.std * torch.randn(*shape, 2, generator=gen)
    z_d = torch.randn(*shape, c.noise_dim, generator=gen)
    if c.method == "mixup":
        lam = sample_gan_lam(math.prod(shape), c.alpha, distribution=c.lam_distribution, generator=gen).view(shape)
    else:
        lam = torch.zeros(shape)
    z_g = torch.randn(n_iter, c.batch_size, c.noise_dim, generator=gen)
    return {"real": real, "z_d": z_d, "lam": lam, "z_g": z_g}


def erm_discriminator_loss(discriminator: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """The standard GAN discriminator loss ``BCE(D(real), 1) + BCE(D(fake), 0)`` (logits; two means summed).

    One forward pass over ``cat([real, fake])`` ``(2B, 2)``, which gives the same per-sample logits as two.
    """
    if real.shape != fake.shape:
        raise TaskError(f"real batch has shape {tuple(real.shape)} but fake batch has {tuple(fake.shape)}")
    logits = discriminator(torch.cat([real, fake])).reshape(-1)  # (2B,)
    b = real.shape[0]
    return F.binary_cross_entropy_with_logits(
        logits[:b], torch.ones_like(logits[:b])
    ) + F.binary_cross_entropy_with_logits(logits[b:], torch.zeros_like(logits[b:]))


# --------------------------------------------------------------------------------------------------------------
# training


def _none_if_nan(x: float) -> float | None:
    return None if not math.isfinite(x) else x


def train_gan_runs(
    config: GANConfig,
    seeds: Sequence[int],
    lrs: Sequence[float] | float = 1e-3,
    *,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> GANRuns:
    """Train ``len(seeds)`` GANs of one configuration together (vmapped); run ``s`` uses ``seeds[s]``, ``lrs[s]``.

    Args:
        config: Architecture, method, dataset and schedule.
        seeds: One int per run (repeats allowed, e.g. one seed at several learning rates).
        lrs: Adam learning rate per run, or one for all.
        device: Where the networks train (randomness is drawn on the CPU and moved, so results do not depend
            on the device's generator).
        log: Called with a progress line at each evaluation, if given.

    Returns:
        A :class:`GANRuns`.
    """
    seeds = list(seeds)
    if not seeds:
        raise TaskError("seeds is empty; give at least one seed")
    lr_list = [float(lrs)] * len(seeds) if isinstance(lrs, int | float) else [float(x) for x in lrs]
    if len(lr_list) != len(seeds):
        raise TaskError(f"got {len(lr_list)} learning rates for {len(seeds)} seeds; give one per seed or one for all")
    if any(not (math.isfinite(x) and x > 0) for x in lr_list):
        raise TaskError(f"learning rates must be finite and > 0, got {lr_list}")
    c = config
    dev = torch.device(device)
    S = len(seeds)

    inits = [init_gan_params(c, s) for s in seeds]
    gens = [gen for _, _, gen in inits]
    # Stacked parameters in layer order, (w1, b1, ..., w_head, b_head), each (S, ...); the tuples `G.params` and
    # `D.params` are what the vmapped losses take (a tuple is the cheapest pytree for vmap to flatten). Each
    # network has its own torch Adam, one group per learning rate.
    adam = {"device": dev, "per_member": {"lr": lr_list}, "betas": c.betas, "eps": c.eps}
    G = Ensemble([g for g, _, _ in inits], torch.optim.Adam, **adam)
    D = Ensemble([d for _, d, _ in inits], torch.optim.Adam, **adam)

    def d_loss(d_params: tuple[Tensor, ...], g_params: tuple[Tensor, ...], real: Tensor, z: Tensor, lam: Tensor):
        def disc(x: Tensor) -> Tensor:
            return _mlp(d_params, x)  # (B, 2) -> (B, 1) logits

        fake = _mlp(g_params, z)  # (B, 2); not differentiated: grad is taken w.r.t. d_params only
        if c.method == "mixup":
            return mixup_discriminator_loss(disc, real, fake, lam)
        return erm_discriminator_loss(disc, real, fake)

    def g_loss(g_params: tuple[Tensor, ...], d_params: tuple[Tensor, ...], z: Tensor) -> Tensor:
        return generator_loss(lambda x: _mlp(d_params, x), _mlp(g_params, z))

    d_step = vmap(grad_and_value(d_loss))  # per run: (grads of D, loss)
    g_step = vmap(grad_and_value(g_loss))
    gen_eval = vmap(_mlp, in_dims=(0, None))

    eval_gen = make_generator(EVAL_SEED, STREAM_EVAL)
    z_eval = torch.randn(c.n_eval, c.noise_dim, generator=eval_gen).to(dev)  # (N, noise_dim), shared by runs
    real_eval = sample_toy(c.dataset, c.n_eval, generator=eval_gen, std=c.std).to(dev)  # (N, 2)

    history: list[dict[str, Any]] = []
    snapshots: dict[int, Tensor] = {}
    eval_iters = set(range(0, c.iterations + 1, c.eval_every)) | {c.iterations}
    snap_iters = set(c.snapshot_iters)
    last_d = last_g = None

    def evaluate(it: int) -> None:
        with torch.no_grad():
            fake = gen_eval(G.params, z_eval)  # (S, N, 2)
        if it in snap_iters:
            snapshots[it] = fake[:, : c.n_snapshot].cpu().clone()
        if it not in eval_iters:
            return
        m = evaluate_samples(fake.float().cpu(), c.dataset, real_eval.cpu(), std=c.std, min_count=c.min_count)
        for s in range(S):
            history.append(
                {
                    "run": s,
                    "seed": seeds[s],
                    "lr": lr_list[s],
                    "iteration": it,
                    "modes_covered": int(m["modes_covered"][s]),
                    "n_modes": int(m["n_modes"]),
                    "high_quality": float(m["high_quality"][s]),
                    "sliced_w2": _none_if_nan(float(m["sliced_w2"][s])),
                    "d_loss": None if last_d is None else _none_if_nan(float(last_d[s])),
                    "g_loss": None if last_g is None else _none_if_nan(float(last_g[s])),
                }
            )
        if log is not None:
            hq = [r["high_quality"] for r in history[-S:]]
            modes = [r["modes_covered"] for r in history[-S:]]
            log(f"  it {it:>6}: modes {modes}, high quality {[round(h, 2) for h in hq]}")

    start = time.perf_counter()
    evaluate(0)
    block: dict[str, Tensor] = {}
    for it in range(1, c.iterations + 1):
        j = (it - 1) % c.block
        if j == 0:
            n = min(c.block, c.iterations - it + 1)
            draws = [draw_block(c, gen, n) for gen in gens]
            # runs stacked after the step dimensions, so block[key][j, k] is a contiguous (S, B, ...) batch
            block = {
                key: torch.stack([d[key] for d in draws], dim=2 if key != "z_g" else 1).to(dev) for key in draws[0]
            }
        for k in range(c.d_steps):
            gD, last_d = d_step(D.params, G.params, block["real"][j, k], block["z_d"][j, k], block["lam"][j, k])
            D.step(gD)
        gG, last_g = g_step(G.params, D.params, block["z_g"][j])
        G.step(gG)
        if it in eval_iters or it in snap_iters:
            evaluate(it)
    seconds = time.perf_counter() - start
    return GANRuns(
        config=c,
        seeds=seeds,
        lrs=lr_list,
        history=history,
        snapshots=snapshots,
        g_params={k: v.cpu() for k, v in G.as_dict().items()},
        d_params={k: v.cpu() for k, v in D.as_dict().items()},
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------------------------
# the table: a grid of runs, a summary and Figure 5


@dataclass(frozen=True)
class GANProtocol:
    """What :func:`run_gan_table` trains: ``datasets x methods x widths x d_steps`` groups of ``lrs x seeds`` runs.

    Attributes:
        scale: ``cpu`` or ``paper``.
        iterations: Generator iterations of every run.
        widths, d_steps, lrs: The hyper-parameter grid.
        seeds: Seeds of every grid point.
        default_lr, default_d_steps: The paper's setting (the default width is ``max(widths)``): its runs give
            the per-seed metrics and the figure.
        notes: How this scale differs from the paper.
        Other fields: as :class:`GANConfig`.
    """

    scale: str
    iterations: int
    widths: tuple[int, ...]
    d_steps: tuple[int, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    datasets: tuple[str, ...] = DATASETS
    methods: tuple[str, ...] = METHODS
    std: float = DEFAULT_STD
    eval_every: int = 1000
    n_eval: int = 2500
    min_count: int = DEFAULT_MIN_COUNT
    alpha: float = 0.2
    lam_distribution: str = "beta"
    batch_size: int = 128
    layers: int = 3
    default_lr: float = 1e-3
    default_d_steps: int = 5
    notes: str = ""

    def __post_init__(self) -> None:
        for name in ("widths", "d_steps", "lrs", "seeds", "datasets", "methods"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise TaskError(f"{name} must be a non-empty tuple, got {values!r}")
            if len(set(values)) != len(values):
                raise TaskError(f"{name} has repeated values: {values!r}")
        if self.default_lr not in self.lrs:
            raise TaskError(f"default_lr {self.default_lr} is not in lrs {self.lrs}")
        if self.default_d_steps not in self.d_steps:
            raise TaskError(f"default_d_steps {self.default_d_steps} is not in d_steps {self.d_steps}")
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TaskArgumentError(f"seeds must be ints, got {type(seed).__name__} {seed!r}")
        for config in self.configs():  # validates every field shared with GANConfig
            del config

    @property
    def default_width(self) -> int:
        """The width of the paper's setting in this grid: the largest."""
        return max(self.widths)

    @property
    def snapshot_iters(self) -> tuple[int, ...]:
        """Figure 5's iterations (10 ... 20,000 of 20,000) scaled to ``iterations`` (at least 1)."""
        scaled = (max(1, round(it * self.iterations / FIGURE5_ITERATIONS[-1])) for it in FIGURE5_ITERATIONS)
        return tuple(sorted(set(scaled)))

    def configs(self) -> list[GANConfig]:
        """One :class:`GANConfig` per group (dataset, method, width, d_steps), in the order they are trained."""
        return [
            GANConfig(
                dataset=dataset,
                method=method,
                iterations=self.iterations,
                batch_size=self.batch_size,
                d_steps=d,
                width=w,
                layers=self.layers,
                alpha=self.alpha,
                lam_distribution=self.lam_distribution,
                std=self.std,
                eval_every=self.eval_every,
                n_eval=self.n_eval,
                min_count=self.min_count,
                snapshot_iters=self.snapshot_iters,
                n_snapshot=min(512, self.n_eval),
            )
            for dataset, method, w, d in product(self.datasets, self.methods, self.widths, self.d_steps)
        ]


PROTOCOLS: dict[str, GANProtocol] = {
    "paper": GANProtocol(
        scale="paper",
        iterations=20_000,
        widths=(128, 512),
        d_steps=(1, 5),
        lrs=(1e-4, 1e-3),
        seeds=(0, 1, 2),
        eval_every=1000,
        notes="The paper's setting (width 512, 5 D steps, Adam lr 1e-3, 20,000 iterations) inside a grid of "
        "widths {128, 512} x D steps {1, 5} x lr {1e-4, 1e-3}.",
    ),
    "cpu": GANProtocol(
        scale="cpu",
        iterations=2000,
        widths=(32, 128),
        d_steps=(1, 5),
        lrs=(1e-4, 1e-3),
        seeds=(0, 1, 2),
        std=0.05,
        eval_every=250,
        notes="cpu scale: 2,000 generator iterations instead of 20,000 (Figure 5's columns at 1, 10, 100, 1,000, "
        "2,000), widths {32, 128} instead of {128, 512} (so the paper's setting is run at width 128), and modes of "
        "std 0.05 instead of 0.01 (so high quality means within 0.15 of a mode): at 2,000 iterations and std 0.01 "
        "no run of either method put even 20% of its points within 0.03 of the ring's modes (measured: width 128, "
        "5 D steps, 4 runs per method), so the convergence rule would read 0 for everything. Everything else as "
        "the paper scale.",
    ),
}


def _fmt(mean: float, std: float, n: int, digits: int) -> str:
    if n == 0:
        return "n/a (n = 0)"
    spread = "" if math.isnan(std) else f" ± {std:.{digits}f}"
    return f"{mean:.{digits}f}{spread} (n = {n})"


def plot_gan_figure(
    samples: dict[tuple[str, str], dict[int, np.ndarray]],
    real: dict[str, np.ndarray],
    path: str | Path,
    *,
    paper_iterations: Sequence[int] | None = None,
) -> Path:
    """Figure 5: one row per (dataset, method), one column per iteration; real points blue, generated orange.

    Args:
        samples: ``(dataset, method) -> {iteration: (n, 2) generated points}``, all rows with the same iterations.
        real: ``dataset -> (n, 2)`` real points.
        path: The PNG to write.
        paper_iterations: Labels of the paper's matching iterations, one per column (when the run is shorter).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not samples:
        raise TaskError("samples is empty: nothing to plot")
    rows = list(samples)
    iters = sorted(samples[rows[0]])
    for row in rows:
        if sorted(samples[row]) != iters:
            raise TaskError(f"row {row} has iterations {sorted(samples[row])}, expected {iters}")
        if row[0] not in real:
            raise TaskError(f"no real points for dataset {row[0]!r}")
    if paper_iterations is not None and len(paper_iterations) != len(iters):
        raise TaskError(f"{len(paper_iterations)} paper_iterations for {len(iters)} columns")
    fig, axes = plt.subplots(len(rows), len(iters), figsize=(2.2 * len(iters), 2.2 * len(rows)), squeeze=False)
    for r, (dataset, method) in enumerate(rows):
        lim = 1.5 if dataset == "ring" else 2.8
        for col, it in enumerate(iters):
            ax = axes[r][col]
            ax.scatter(*real[dataset].T, s=2, c="tab:blue", alpha=0.5, linewidths=0)
            ax.scatter(*samples[(dataset, method)][it].T, s=2, c="tab:orange", alpha=0.6, linewidths=0)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if r == 0:
                label = f"iteration {it}"
                if paper_iterations is not None and paper_iterations[col] != it:
                    label += f"\n(paper: {paper_iterations[col]})"
                ax.set_title(label, fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{dataset}\n{'ERM GAN' if method == 'erm' else 'mixup GAN'}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _summarise(protocol: GANProtocol, finals: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Summary rows (one per dataset x method) and the markdown page."""
    p = protocol
    rows: list[dict[str, Any]] = []
    for dataset, method in product(p.datasets, p.methods):
        runs = [r for r in finals if r["dataset"] == dataset and r["method"] == method]
        default = [
            r
            for r in runs
            if r["width"] == p.default_width and r["d_steps"] == p.default_d_steps and r["lr"] == p.default_lr
        ]
        row: dict[str, Any] = {"dataset": dataset, "method": method, "n_modes": runs[0]["n_modes"]}
        for key in ("modes_covered", "high_quality", "sliced_w2"):
            mean, std, n = mean_std([r[key] for r in default])
            row.update({f"{key}_mean": mean, f"{key}_std": std, f"{key}_n": n})
        row["converged_default"] = sum(r["converged"] for r in default)
        row["runs_default"] = len(default)
        row["converged_grid"] = sum(r["converged"] for r in runs)
        row["runs_grid"] = len(runs)
        row["converge_share_grid"] = row["converged_grid"] / row["runs_grid"]
        row["diverged_grid"] = sum(r["sliced_w2"] is None for r in runs)
        rows.append(row)

    md = [
        f"# GANs (Section 3.7, Figure 5): ERM GAN vs mixup GAN (alpha = {p.alpha}), {p.scale} scale",
        "",
        f"{p.iterations:,} generator iterations, batch {p.batch_size}, Adam (betas 0.9, 0.999), {p.layers} hidden "
        f"ReLU layers, 2-D Gaussian noise, non-saturating generator loss; mixup lam ~ "
        f"{'Beta(alpha, alpha)' if p.lam_distribution == 'beta' else 'Uniform(0, alpha)'} per sample. "
        f"Data: 'ring' (8 modes on the unit circle) and 'grid' (25 modes at {{-2,-1,0,1,2}}^2), std {p.std}.",
        "",
        f"Metrics on {p.n_eval:,} generated points: a point is high quality within 3 std ({3 * p.std:g}) of its "
        f"nearest mode; a mode is covered by >= {p.min_count} high-quality points; sliced W2 to {p.n_eval:,} real "
        "points (64 directions). A run converges when, at its last iteration, all modes are covered and >= 50% of "
        "its points are high quality.",
        "",
        f"## Paper's setting (lr {p.default_lr:g}, {p.default_d_steps} D steps per G step, width "
        f"{p.default_width}): last iteration, mean ± std over seeds",
        "",
        "| dataset | method | modes covered | high-quality share | sliced W2 | converged |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        md.append(
            f"| {row['dataset']} | {row['method']} | "
            f"{_fmt(row['modes_covered_mean'], row['modes_covered_std'], row['modes_covered_n'], 2)} of "
            f"{row['n_modes']} | {_fmt(row['high_quality_mean'], row['high_quality_std'], row['high_quality_n'], 3)} | "
            f"{_fmt(row['sliced_w2_mean'], row['sliced_w2_std'], row['sliced_w2_n'], 3)} | "
            f"{row['converged_default']}/{row['runs_default']} |"
        )
    md += [
        "",
        f"## Robustness: runs that converge over the grid (widths {list(p.widths)} x D steps {list(p.d_steps)} x "
        f"lr {list(p.lrs)} x {len(p.seeds)} seeds)",
        "",
        "| dataset | method | converged | share | diverged (non-finite) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        md.append(
            f"| {row['dataset']} | {row['method']} | {row['converged_grid']}/{row['runs_grid']} | "
            f"{100 * row['converge_share_grid']:.0f}% | {row['diverged_grid']} |"
        )
    md += [
        "",
        "## Per grid point: converged runs / seeds, and mean modes covered and high-quality share at the end",
        "",
        "| dataset | width | D steps | lr | "
        + " | ".join(f"{m} converged | {m} modes | {m} hq" for m in p.methods)
        + " |",
        "|---|---|---|---|" + "---|---|---|" * len(p.methods),
    ]
    for dataset, w, d, lr in product(p.datasets, p.widths, p.d_steps, p.lrs):
        cells = []
        for method in p.methods:
            runs = [
                r
                for r in finals
                if (r["dataset"], r["method"], r["width"], r["d_steps"], r["lr"]) == (dataset, method, w, d, lr)
            ]
            cells += [
                f"{sum(r['converged'] for r in runs)}/{len(runs)}",
                f"{np.mean([r['modes_covered'] for r in runs]):.1f}",
                f"{np.mean([r['high_quality'] for r in runs]):.2f}",
            ]
        md.append(f"| {dataset} | {w} | {d} | {lr:g} | " + " | ".join(cells) + " |")
    md += ["", "![Figure 5](gan_figure.png)", ""]
    if p.notes:
        md += [p.notes, ""]
    return rows, "\n".join(md)


def run_gan_table(
    out_dir: str | Path,
    scale: str = "cpu",
    seeds: int | Sequence[int] | None = None,
    *,
    iterations: int | None = None,
    widths: Sequence[int] | None = None,
    d_steps: Sequence[int] | None = None,
    lrs: Sequence[float] | None = None,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    lam_distribution: str | None = None,
    eval_every: int | None = None,
    n_eval: int | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = 1,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Train the GAN grid of ``scale`` and write a run folder with metrics, summary and Figure 5.

    Args:
        out_dir: The run folder (created; it must not already hold a ``metrics.jsonl``).
        scale: ``cpu`` or ``paper`` (:data:`PROTOCOLS`).
        seeds: Number of seeds (``0 .. n-1``) or the seeds themselves; default: the protocol's.
        iterations, widths, d_steps, lrs, datasets, methods, lam_distribution, eval_every, n_eval: Overrides of
            the protocol (for small runs and tests); recorded in ``protocol.json``.
        device: Where the networks train.
        threads: torch intra-op threads while training, restored afterwards (default 1: these matrices are
            small, and on a shared CPU a second thread mostly spin-waits, which made steps ~10x slower here).
            None leaves torch's setting.
        log: Progress lines (None: silent).

    Returns:
        ``out_dir``, holding ``protocol.json``, ``provenance.json``, ``metrics.jsonl`` (every evaluation of every
        run), ``runs.csv`` (last iteration of every run), ``summary.csv``, ``summary.md``, ``gan_figure.png``,
        ``snapshots.npz`` (the figure's points) and ``runs/<name>/seed<seed>/``, one standard run folder per run
        (``config.yaml``, ``provenance.json``, ``metrics.jsonl``, ``summary.json``: see :func:`run_name`).
    """
    if scale not in PROTOCOLS:
        raise TaskError(f"unknown scale {scale!r}; known scales: {', '.join(PROTOCOLS)}")
    if threads is not None:
        _positive_int("threads", threads)
    overrides: dict[str, Any] = {}
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int | list | tuple | range):
            raise TaskArgumentError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__}")
        if isinstance(seeds, int):
            overrides["seeds"] = tuple(range(_positive_int("seeds", seeds)))
        else:
            overrides["seeds"] = tuple(seeds)
    for name, value in (("widths", widths), ("d_steps", d_steps), ("lrs", lrs)):
        if value is not None:
            overrides[name] = tuple(value)
    for name, value in (("datasets", datasets), ("methods", methods)):
        if value is not None:
            overrides[name] = tuple(value)
    for name, value in (
        ("iterations", iterations),
        ("lam_distribution", lam_distribution),
        ("eval_every", eval_every),
        ("n_eval", n_eval),
    ):
        if value is not None:
            overrides[name] = value
    base = PROTOCOLS[scale]
    if "lrs" in overrides and base.default_lr not in overrides["lrs"]:
        overrides["default_lr"] = overrides["lrs"][-1]
    if "d_steps" in overrides and base.default_d_steps not in overrides["d_steps"]:
        overrides["default_d_steps"] = overrides["d_steps"][-1]
    protocol = replace(base, **overrides)

    out = Path(out_dir)
    if (out / "metrics.jsonl").exists():
        raise TaskError(f"'{out}' already holds a run (metrics.jsonl); choose a new out_dir")
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _msg: None)
    protocol_json = {
        **asdict(protocol),
        "default_width": protocol.default_width,
        "snapshot_iters": list(protocol.snapshot_iters),
        "paper_snapshot_iters": list(FIGURE5_ITERATIONS),
        "groups": [asdict(c) for c in protocol.configs()],
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
    }
    write_json(out / "protocol.json", protocol_json)
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_table(out, protocol, overrides, device, say)
    finally:
        torch.set_num_threads(saved_threads)


def _run_table(
    out: Path,
    protocol: GANProtocol,
    overrides: dict[str, Any],
    device: str | torch.device,
    say: Callable[[str], None],
) -> Path:
    prov = provenance(device=device, seeds=list(protocol.seeds))
    prov["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    start = time.perf_counter()

    finals: list[dict[str, Any]] = []
    fig_samples: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    group_seconds: list[dict[str, Any]] = []
    configs = protocol.configs()
    # every run of a group: each learning rate with each seed
    member_lrs = [lr for lr in protocol.lrs for _ in protocol.seeds]
    member_seeds = [s for _ in protocol.lrs for s in protocol.seeds]
    write_metrics(out, [])  # metrics.jsonl exists from the start: the folder holds a run
    for g, config in enumerate(configs, 1):
        tag = {"dataset": config.dataset, "method": config.method, "width": config.width, "d_steps": config.d_steps}
        say(f"[{g}/{len(configs)}] {tag}: {len(member_seeds)} runs x {config.iterations} iterations")
        runs = train_gan_runs(config, member_seeds, member_lrs, device=device)
        group_seconds.append({**tag, "seconds": round(runs.seconds, 2), "runs": len(member_seeds)})
        append_metrics(out, *({**tag, **rec} for rec in runs.history))
        for rec in runs.final():
            finals.append({**tag, **rec})
        _write_run_folders(out, protocol, runs, prov)
        if config.width == protocol.default_width and config.d_steps == protocol.default_d_steps:
            s = member_lrs.index(protocol.default_lr)  # the first seed at the paper's lr
            fig_samples[(config.dataset, config.method)] = {
                it: runs.snapshots[it][s].numpy() for it in protocol.snapshot_iters
            }
        done = [r for r in finals if (r["dataset"], r["method"]) == (config.dataset, config.method)]
        say(
            f"    {runs.seconds:.0f} s; converged {sum(r['converged'] for r in done[-len(member_seeds) :])}"
            f"/{len(member_seeds)}; modes {[r['modes_covered'] for r in done[-len(member_seeds) :]]}"
        )

    fields = [
        "dataset",
        "method",
        "width",
        "d_steps",
        "lr",
        "seed",
        "iteration",
        "modes_covered",
        "n_modes",
        "high_quality",
        "sliced_w2",
        "d_loss",
        "g_loss",
        "converged",
    ]
    run_folders.write_csv(out / "runs.csv", fields, finals)
    rows, md = _summarise(protocol, finals)
    run_folders.write_csv(out / "summary.csv", list(rows[0]), rows)
    run_folders.write_text(out / "summary.md", md)

    eval_gen = make_generator(EVAL_SEED, STREAM_FIGURE)  # the figure's real points, apart from the metrics'
    real = {d: sample_toy(d, 1000, generator=eval_gen, std=protocol.std).numpy() for d in protocol.datasets}
    scaled = protocol.snapshot_iters
    paper_its = list(FIGURE5_ITERATIONS) if len(scaled) == len(FIGURE5_ITERATIONS) else None
    plot_gan_figure(fig_samples, real, out / "gan_figure.png", paper_iterations=paper_its)
    np.savez_compressed(
        out / "snapshots.npz",
        **{f"{d}_{m}_it{it}": pts for (d, m), by_it in fig_samples.items() for it, pts in by_it.items()},
        **{f"{d}_real": pts for d, pts in real.items()},
    )
    prov["wall_seconds"] = round(time.perf_counter() - start, 1)
    prov["group_seconds"] = group_seconds
    prov["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_provenance(out, prov)
    say(md)
    say(f"wrote {out} in {prov['wall_seconds']:.0f} s")
    return out


def run_name(config: GANConfig, lr: float) -> str:
    """The config name of the runs of ``config`` at ``lr`` (their seeds differ): ``gan-ring-mixup-w128-d5-lr0.001``."""
    return f"gan-{config.dataset}-{config.method}-w{config.width}-d{config.d_steps}-lr{lr:g}"


def _write_run_folders(out: Path, protocol: GANProtocol, runs: GANRuns, prov: dict[str, Any]) -> None:
    """One standard run folder per run, ``out/runs/<name>/seed<seed>`` (config, provenance, metrics, summary).

    The report groups them by name; ``row`` is ``<dataset>/<method>`` for the paper's setting (lr, D steps and
    width of the protocol's default) and ``<dataset>/w<width>_d<d_steps>_lr<lr>/<method>`` for the rest of the grid.
    """
    c, p = runs.config, protocol
    finals = runs.final()
    for s, (seed, lr) in enumerate(zip(runs.seeds, runs.lrs, strict=True)):
        default = (c.width, c.d_steps, lr) == (p.default_width, p.default_d_steps, p.default_lr)
        row = f"{c.dataset}/{c.method}" if default else f"{c.dataset}/w{c.width}_d{c.d_steps}_lr{lr:g}/{c.method}"
        folder = out / "runs" / run_name(c, lr) / f"seed{seed}"
        run_folders.write_task_config(
            folder,
            {
                "name": run_name(c, lr),
                "table": "gan",
                "row": row,
                "notes": f"one run of the gan table ({p.scale} scale), trained in an ensemble of {len(runs.seeds)}",
                "train": {"seed": seed, "lr": lr},
                "gan": {**asdict(c), "betas": list(c.betas), "snapshot_iters": list(c.snapshot_iters)},
            },
        )
        write_provenance(folder, {**prov, "seed": seed, "lr": lr, "ensemble": {"runs": len(runs.seeds)}})
        write_metrics(folder, [r for r in runs.history if r["run"] == s])
        final = {k: v for k, v in finals[s].items() if k != "run"}
        run_folders.write_summary(
            folder,
            {
                "status": "complete",
                "iterations": c.iterations,
                **final,
                # the wall time of the whole ensemble, which trained these runs together
                "train_time_s": runs.seconds,
            },
        )


def _parse_seeds(text: str) -> int | list[int]:
    try:
        return [int(s) for s in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count or a comma-separated list of ints, got {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vicinal.experiments.tasks.gan --out DIR [--scale cpu|paper] [--seeds N|a,b,c] ...``."""
    parser = argparse.ArgumentParser(prog="python -m vicinal.experiments.tasks.gan", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the run folder to create")
    parser.add_argument("--scale", default="cpu", choices=sorted(PROTOCOLS))
    parser.add_argument("--seeds", type=_parse_seeds, default=None, help="a count (0..n-1) or a list: 0,1,2")
    parser.add_argument("--iterations", type=int, default=None, help="override the protocol's iterations")
    parser.add_argument("--lam-distribution", choices=LAM_DISTRIBUTIONS, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads while training (default 1: small matrices; on a shared CPU a second thread "
        "mostly spin-waits). 0 keeps torch's setting.",
    )
    args = parser.parse_args(argv)
    run_gan_table(
        args.out,
        args.scale,
        args.seeds,
        iterations=args.iterations,
        lam_distribution=args.lam_distribution,
        device=args.device,
        threads=args.threads if args.threads > 0 else None,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    return 0


def _reproduce(
    out_dir: Path, scale: str, seeds: int | None, *, overrides: Sequence[str] = (), dry_run: bool = False
) -> Path | None:
    """``vicinal reproduce gan``: the whole grid of ``scale`` into ``out_dir``."""
    if overrides:  # checked before the banner, so that the error stays the only line
        raise TaskError("table 'gan' is not made of config files: --set does not apply")
    print(f"vicinal reproduce gan --scale {scale}: {GAN_TABLE.title}")
    if scale == "cpu":
        print(f"  {GAN_TABLE.notes}")
    if dry_run:
        print(f"dry run: the gan table would be trained into {out_dir}")
        return None
    return run_gan_table(out_dir, scale, seeds, log=lambda msg: print(msg, file=sys.stderr, flush=True))


GAN_TABLE = register_table(
    Table(
        name="gan",
        title="Figure 5 (Section 3.7): ERM vs mixup GANs on toy 2-D data (ring, grid), convergence over a grid",
        configs=lambda scale: [],
        default_seeds={"cpu": 3, "paper": 3},
        notes=PROTOCOLS["cpu"].notes,
        runner=_reproduce,
    )
)

if __name__ == "__main__":
    raise SystemExit(main())
