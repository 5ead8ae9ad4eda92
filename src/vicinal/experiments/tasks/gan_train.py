"""The runs of the GAN experiment (Section 3.7, Figure 5): ERM GANs vs mixup GANs on toy 2-D mixtures of Gaussians.

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
whatever ``S`` is, so a batched run sees what the same seed trained alone sees; its float rounding may differ
(the engine's module doc), and GAN training amplifies that over thousands of iterations, so the grid's numbers
are reproduced by the same protocol (its seed and learning-rate lists), not run by run.

The table over a grid of these runs, its summary and Figure 5 are :mod:`.gan`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad_and_value, vmap

from ...gan import LAM_DISTRIBUTIONS, generator_loss, mixup_discriminator_loss, sample_gan_lam
from ..data.seeds import STREAM_GAN_DATA as STREAM_DATA
from ..data.seeds import STREAM_GAN_EVAL as STREAM_EVAL
from ..data.seeds import STREAM_GAN_INIT as STREAM_INIT
from ..data.seeds import derive_seed, make_generator
from ..ensemble import Ensemble
from ..errors import TaskArgumentError, TaskError
from ..models import build_model
from .gan_metrics import DATASETS, DEFAULT_MIN_COUNT, DEFAULT_STD, evaluate_samples, is_converged, sample_toy, toy_modes

__all__ = [
    "EVAL_SEED",
    "FIGURE5_ITERATIONS",
    "METHODS",
    "STREAM_DATA",
    "STREAM_EVAL",
    "STREAM_INIT",
    "GANConfig",
    "GANRuns",
    "check_positive_int",
    "draw_block",
    "erm_discriminator_loss",
    "init_gan_params",
    "mlp_forward",
    "train_gan_runs",
]

METHODS = ("erm", "mixup")
FIGURE5_ITERATIONS = (10, 100, 1000, 10000, 20000)  # the columns of Figure 5, out of 20,000 iterations
EVAL_SEED = 20180225  # a fixed seed for the evaluation's noise and real sample, shared by every run


# --------------------------------------------------------------------------------------------------------------
# configuration


def check_positive_int(name: str, value: Any) -> int:
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
            check_positive_int(name, getattr(self, name))
        for name in ("n_eval", "min_count", "n_snapshot", "block"):
            check_positive_int(name, getattr(self, name))
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
    no in-place ReLU to re-batch).
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


def _none_if_not_finite(x: float) -> float | None:
    # JSON has no NaN or Infinity; a diverged run's metric or loss (either one) is written as null
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
    adam: dict[str, Any] = {"device": dev, "per_member": {"lr": lr_list}, "betas": c.betas, "eps": c.eps}
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
                    "sliced_w2": _none_if_not_finite(float(m["sliced_w2"][s])),
                    "d_loss": None if last_d is None else _none_if_not_finite(float(last_d[s])),
                    "g_loss": None if last_g is None else _none_if_not_finite(float(last_g[s])),
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
