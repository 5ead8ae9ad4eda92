"""The paper's figures 1b, 2 and 3b, one command each (PNG + a JSON file of the plotted numbers).

::

    vicinal figure fig1b --out figures/
    vicinal figure fig2 --erm RUN_DIR --mixup RUN_DIR --out figures/
    vicinal figure fig3b --erm RUN_DIR... --mixup RUN_DIR... --out figures/

(``python -m vicinal.experiments.tasks.figures`` takes the same arguments, but for fig2's ``--data DIR``: set
``VICINAL_DATA=DIR`` there.)

* Figure 1b: probability contours p(y=1 | x) of an ERM and a mixup MLP on a seeded 2-D toy problem (two
  interleaved half-moons); trains in seconds. The measured number is the share of the plotted square where the
  prediction is uncertain (0.1 < p < 0.9): mixup "transitions linearly from class to class", so its share is larger.
* Figure 2: between random pairs of training points of a trained ERM and a trained mixup run, at
  x = lam*x_i + (1-lam)*x_j: (a) the share of predictions that are neither y_i nor y_j, (b) the mean L2 norm of the
  gradient of the loss lam*CE(f(x), y_i) + (1-lam)*CE(f(x), y_j) with respect to x, in [0, 1] pixel space.
* Figure 3b: test error against epochs, ERM vs mixup (mean over seeds, band min-max), from ``metrics.jsonl``.

Each ``figureX`` function writes ``<out>/<name>.png`` and ``<out>/<name>.json``; the JSON holds the numbers, the
settings and ``command``, the command line that regenerates the figure (the report document shows it).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import shlex
import statistics
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import vicinal

from ..build import load_run_model
from ..config import MixConfig
from ..data.seeds import STREAM_TOY_INIT, STREAM_TOY_MIX, derive_seed, make_generator
from ..distributed import check_explicit_device
from ..ensemble import Ensemble
from ..errors import LabWarning, TaskError, exit_code
from ..recipe import recipe_differences
from ..runs import Run, as_paths, check_out_folder, find_runs, load_run, run_finished, write_figure, write_json

__all__ = [
    "FIGURES",
    "build_parser",
    "figure1b",
    "figure2",
    "figure3b",
    "interpolation_curves",
    "load_trained",
    "main",
    "toy_moons",
    "train_toy_mlp",
    "train_toy_mlps",
]

PROG = "python -m vicinal.experiments.tasks.figures"
# The command each figure's JSON records: the lab's own command, which users run and the docs show (the module
# form worked too, but it read as an internal entry point in a report)
COMMAND = "vicinal figure"
FIGURES = ("fig1b", "fig2", "fig3b")
DEFAULT_LAMS = tuple(i / 10 for i in range(11))


MAX_GRID = 2000  # contour points per axis of fig1b: 4 million points, a few hundred MB at once


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(out: Path, name: str, fig: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Save ``fig`` as ``out/name.png`` and ``payload`` (+ file names) as ``out/name.json``."""
    out.mkdir(parents=True, exist_ok=True)
    png, meta = out / f"{name}.png", out / f"{name}.json"
    write_figure(png, fig, dpi=120)
    _plt().close(fig)
    payload = {"figure": name, **payload, "png": png.name}
    write_json(meta, payload)
    return {**payload, "files": [png, meta]}


def _command(name: str, args: Sequence[str]) -> str:
    return " ".join([COMMAND, name, *(shlex.quote(str(a)) for a in args)])


# -- Figure 1b ------------------------------------------------------------------------------------------------
def toy_moons(n_per_class: int = 100, noise: float = 0.15, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two interleaved half-moons: ``x (2n, 2)`` float32, ``y (2n,)`` int64 in {0, 1}.

    Class 0 lies on the upper unit half-circle, class 1 on the lower one shifted by (1, 0.5); both get isotropic
    Gaussian noise of standard deviation ``noise``.
    """
    if n_per_class < 1:
        raise TaskError(f"n_per_class must be >= 1, got {n_per_class}")
    if not (math.isfinite(noise) and noise >= 0):
        raise TaskError(f"noise must be a finite float >= 0, got {noise}")
    t = torch.rand(2, n_per_class, generator=generator) * math.pi  # (2, n) angles
    upper = torch.stack([t[0].cos(), t[0].sin()], dim=1)  # (n, 2)
    lower = torch.stack([1.0 - t[1].cos(), 0.5 - t[1].sin()], dim=1)  # (n, 2)
    x = torch.cat([upper, lower]) + noise * torch.randn(2 * n_per_class, 2, generator=generator)
    y = torch.arange(2).repeat_interleave(n_per_class)
    return x, y


def _toy_mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def train_toy_mlps(
    x: Tensor,
    y: Tensor,
    *,
    alphas: Sequence[float],
    seed: int,
    steps: int = 1000,
    hidden: int = 64,
    lr: float = 0.01,
) -> list[nn.Module]:
    """One 2-``hidden``-``hidden``-2 ReLU MLP per alpha (``0`` = ERM, else mixup), trained full-batch with Adam at
    once as a seed ensemble (:class:`~vicinal.experiments.ensemble.Ensemble`).

    Every member starts from the same weights (PyTorch's default init under ``derive_seed(seed, STREAM_TOY_INIT)``,
    the global RNG untouched), so the panels differ by the method alone; each mixup member draws one lam per (full)
    batch and a random permutation of partners from its own ``make_generator(seed, STREAM_TOY_MIX)``. The loss is
    the soft cross-entropy, against one-hot targets for ERM (the cross-entropy).
    """
    if not alphas or any(not (math.isfinite(a) and a >= 0) for a in alphas):
        raise TaskError(f"alphas must be a non-empty sequence of finite floats >= 0 (0 = ERM), got {list(alphas)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, STREAM_TOY_INIT))
        init = {n: p.detach() for n, p in _toy_mlp(hidden).named_parameters()}
    ensemble = Ensemble([init] * len(alphas), torch.optim.Adam, lr=lr)
    mixers = [
        vicinal.build("mixup", alpha=a, num_classes=2, generator=make_generator(seed, STREAM_TOY_MIX))
        if a > 0
        else None
        for a in alphas
    ]
    with torch.device("meta"):
        template = _toy_mlp(hidden)  # the architecture for functional_call; its own weights are never used
    one_hot = F.one_hot(y, 2).float()
    for _ in range(steps):
        inputs, targets = [], []
        for mixer in mixers:
            if mixer is None:
                inputs.append(x)
                targets.append(one_hot)
            else:
                params = mixer.sample(x, y)
                inputs.append(mixer.apply_inputs(x, params))
                targets.append(mixer.apply_targets(y, params))
        xs, ts = torch.stack(inputs), torch.stack(targets)  # (S, N, 2) each

        def losses(params: tuple[Tensor, ...], xs: Tensor = xs, ts: Tensor = ts) -> Tensor:
            return vicinal.soft_cross_entropy(ensemble.forward(template, xs, params), ts, reduction="none").mean(-1)

        ensemble.autograd_step(losses)
    models = []
    for i in range(len(alphas)):
        with torch.device("meta"):
            model = _toy_mlp(hidden)
        model = model.to_empty(device=x.device)
        model.load_state_dict(ensemble.member(i))
        models.append(model.eval())
    return models


def train_toy_mlp(
    x: Tensor,
    y: Tensor,
    *,
    alpha: float,
    seed: int,
    steps: int = 1000,
    hidden: int = 64,
    lr: float = 0.01,
) -> nn.Module:
    """One toy MLP (``alpha = 0`` is ERM, else mixup): :func:`train_toy_mlps` with one member."""
    return train_toy_mlps(x, y, alphas=[alpha], seed=seed, steps=steps, hidden=hidden, lr=lr)[0]


def _check_seed(seed: int) -> None:
    """The range ``torch.Generator.manual_seed`` takes without wrapping (a larger int overflowed in C with a
    traceback), and the one ``derive_seed`` returns; a negative seed is refused as the trainer refuses it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise TaskError(f"seed must be an int in [0, 2**63), got {seed!r}")


def figure1b(
    out: str | Path,
    *,
    seed: int = 0,
    alpha: float = 1.0,
    steps: int = 1000,
    n_per_class: int = 100,
    noise: float = 0.15,
    grid: int = 200,
) -> dict[str, Any]:
    """Figure 1b: p(y=1 | x) contours of ERM and mixup on the toy moons.

    Returns:
        The JSON payload plus ``files``; ``uncertain_share`` maps "erm"/"mixup" to the share of grid points with
        0.1 < p < 0.9 (a wider, linear transition gives a larger share).
    """
    _check_seed(seed)
    if alpha <= 0:
        raise TaskError(f"alpha must be > 0 for the mixup panel, got {alpha}")
    if steps < 1:
        raise TaskError(f"steps must be >= 1, got {steps}")
    if not 2 <= grid <= MAX_GRID:
        # the grid holds grid**2 points, evaluated at once: 100,000 asked for 40 GB and printed torch's traceback
        raise TaskError(f"grid must be in [2, {MAX_GRID}] points per axis, got {grid}")
    gen = torch.Generator().manual_seed(seed)
    x, y = toy_moons(n_per_class, noise, generator=gen)
    lo, hi = x.min(dim=0).values - 0.5, x.max(dim=0).values + 0.5  # (2,), (2,)
    gx = torch.linspace(float(lo[0]), float(hi[0]), grid)
    gy = torch.linspace(float(lo[1]), float(hi[1]), grid)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")  # (grid, grid) each
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (grid^2, 2)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    shares: dict[str, float] = {}
    train_error: dict[str, float] = {}
    models = train_toy_mlps(x, y, alphas=(0.0, alpha), seed=seed, steps=steps)
    for ax, method, model in zip(axes, ("erm", "mixup"), models, strict=True):
        with torch.no_grad():
            p = model(points).softmax(dim=1)[:, 1].reshape(grid, grid)  # (grid, grid)
            train_error[method] = 100.0 * float((model(x).argmax(dim=1) != y).double().mean())
        shares[method] = float(((p > 0.1) & (p < 0.9)).double().mean())
        cs = ax.contourf(xx.numpy(), yy.numpy(), p.numpy(), levels=[i / 10 for i in range(11)], cmap="RdBu_r")
        ax.scatter(x[y == 0, 0], x[y == 0, 1], s=8, c="tab:green", edgecolors="k", linewidths=0.2, label="class 0")
        ax.scatter(x[y == 1, 0], x[y == 1, 1], s=8, c="tab:orange", edgecolors="k", linewidths=0.2, label="class 1")
        title = "ERM" if method == "erm" else f"mixup (alpha={alpha:g})"
        ax.set_title(f"{title}\n0.1 < p < 0.9 on {100 * shares[method]:.0f}% of the square", fontsize=10)
        ax.set_xlabel("x1")
    axes[0].set_ylabel("x2")
    axes[0].legend(loc="lower left", fontsize=7)
    fig.colorbar(cs, ax=list(axes), label="p(y=1 | x)")
    fig.suptitle("Figure 1b: decision boundaries on a 2-D toy problem (contours of p(y=1 | x))", y=0.99)
    settings = {
        "seed": seed, "alpha": alpha, "steps": steps, "n_per_class": n_per_class, "noise": noise, "grid": grid,
    }  # fmt: skip
    args = [
        "--seed", seed, "--alpha", alpha, "--steps", steps, "--n-per-class", n_per_class,
        "--noise", noise, "--grid", grid, "--out", out,
    ]  # fmt: skip
    payload = {
        "title": "Figure 1b: ERM vs mixup decision boundaries (2-D toy)",
        "settings": settings,
        "uncertain_share": shares,
        "train_error": train_error,
        "command": _command("fig1b", [str(a) for a in args]),
    }
    return _write(Path(out), "fig1b", fig, payload)


# -- Figure 2 -------------------------------------------------------------------------------------------------
def load_trained(run_dir: str | Path, *, device: str = "cpu") -> tuple[nn.Module, Any, Any]:
    """The trained model of a run folder, with its config and its data (no augmentation).

    Reads ``run_dir/config.yaml`` and the model weights of ``run_dir/checkpoint.pt`` (``weights_only=True``).

    Returns:
        ``(model in eval mode, ExperimentConfig, DataBundle)``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise TaskError(f"'{run_dir}' is not a run folder (no config.yaml)")
    return load_run_model(run_dir, device)


def _as_float(x: Tensor) -> Tensor:
    """Storage form -> model input: uint8 pixels to [0, 1] (as the data layer), floats unchanged."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def interpolation_curves(
    model: nn.Module,
    x_i: Tensor,
    y_i: Tensor,
    x_j: Tensor,
    y_j: Tensor,
    lams: Sequence[float] = DEFAULT_LAMS,
    *,
    batch_size: int = 256,
) -> dict[str, list[float]]:
    """Miss rate and input-gradient norm at ``lam*x_i + (1-lam)*x_j`` for each ``lam``.

    Args:
        model: in eval mode (BatchNorm uses its running statistics, so each sample's gradient is its own).
        x_i, x_j: ``(N, ...)`` float inputs. y_i, y_j: ``(N,)`` labels.
        lams: interpolation weights of ``x_i``.

    Returns:
        ``{"lam": [...], "miss_rate": [% of predictions in neither {y_i, y_j}], "grad_norm": [mean ||dL/dx||_2]}``
        with L = lam*CE(f(x), y_i) + (1-lam)*CE(f(x), y_j) per sample.
    """
    if x_i.shape != x_j.shape or y_i.shape != y_j.shape or x_i.shape[0] != y_i.shape[0]:
        raise TaskError(
            f"pairs must match: x_i {tuple(x_i.shape)}, x_j {tuple(x_j.shape)}, y_i {tuple(y_i.shape)}, "
            f"y_j {tuple(y_j.shape)}"
        )
    n = x_i.shape[0]
    device = next(model.parameters()).device
    miss, norms = [], []
    for lam in lams:
        if not 0.0 <= lam <= 1.0:
            raise TaskError(f"every lam must lie in [0, 1], got {lam}")
        wrong, norm_sum = 0, 0.0
        for s in range(0, n, batch_size):
            xi, xj = x_i[s : s + batch_size].to(device), x_j[s : s + batch_size].to(device)
            yi, yj = y_i[s : s + batch_size].to(device), y_j[s : s + batch_size].to(device)
            x = (lam * xi + (1.0 - lam) * xj).requires_grad_(True)  # (b, ...)
            logits = model(x).float()  # (b, C)
            loss = lam * F.cross_entropy(logits, yi, reduction="sum") + (1 - lam) * F.cross_entropy(
                logits, yj, reduction="sum"
            )
            (grad,) = torch.autograd.grad(loss, x)  # per-sample gradients: the samples do not interact
            pred = logits.detach().argmax(dim=1)
            wrong += int(((pred != yi) & (pred != yj)).sum())
            norm_sum += float(grad.flatten(1).norm(dim=1).sum())
        miss.append(100.0 * wrong / n)
        norms.append(norm_sum / n)
    return {"lam": [float(v) for v in lams], "miss_rate": miss, "grad_norm": norms}


def figure2(
    erm: str | Path,
    mixup: str | Path,
    out: str | Path,
    *,
    n_pairs: int = 1000,
    seed: int = 0,
    lams: Sequence[float] = DEFAULT_LAMS,
    device: str = "cpu",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Figure 2 from two trained run folders (same dataset): miss rate and gradient norm between training pairs.

    Pairs ``(i, j)``, ``i != j``, are drawn from ``seed`` over the ERM run's training set (the mixup run must have
    been trained on the same data: same dataset, subset and seed of the subset).
    """
    _check_seed(seed)
    for name, value in (("n_pairs", n_pairs), ("batch_size", batch_size)):  # numpy's ints too
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise TaskError(f"{name} must be an int >= 1, got {value!r}")
    # checked before any run is loaded: [] drew an empty figure whose recorded command could not run, a lone float
    # or a str failed deep in the curves
    if isinstance(lams, str | bytes) or not isinstance(lams, Iterable):
        raise TaskError(f"lams must be a list of floats in [0, 1], got {type(lams).__name__} {lams!r}")
    lams = tuple(lams)
    if not lams or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 1 for v in lams):
        raise TaskError(f"lams must be a non-empty list of floats in [0, 1], got {list(lams)}")
    check_explicit_device(str(device), "device")
    models: dict[str, nn.Module] = {}
    sets = {}
    for method, run in (("erm", erm), ("mixup", mixup)):
        model, cfg, data = load_trained(run, device=device)
        _check_role(cfg.mix.variant, f"--{method}", run)  # swapped runs would plot each other's curve
        _check_finished(run, f"--{method}")
        if data.train_dataset_x is None or data.train_dataset_y is None:
            raise TaskError(f"run '{run}': dataset {cfg.data.name!r} is not held in memory; Figure 2 needs it")
        models[method] = model
        sets[method] = (cfg.data.name, data.train_dataset_x, data.train_dataset_y)
    (name_e, xe, ye), (name_m, xm, ym) = sets["erm"], sets["mixup"]
    if name_e != name_m or xe.shape != xm.shape:
        raise TaskError(
            f"the two runs were trained on different data ({name_e} {tuple(xe.shape)} vs {name_m} {tuple(xm.shape)}); "
            "Figure 2 compares models at the same points"
        )
    if not torch.equal(ye, ym):  # the same data set and size: another split or subset (a seeded one: another seed)
        raise TaskError(
            f"the two runs were trained on different samples of {name_e} (other labels at the same positions; "
            "another split or subset seed?): Figure 2 compares models at their training points; pass runs of the "
            "same seed"
        )
    if not torch.equal(xe, xm):  # class-sorted subsets of two seeds share their labels, not their images
        raise TaskError(
            f"the two runs were trained on different images of {name_e} (the same labels; another subset seed?): "
            "Figure 2 compares models at their training points; pass runs of the same seed"
        )
    # the same data is not the same recipe: ERM and mixup of another lr or length are no comparison (as in fig3b)
    differs = recipe_differences(load_run(erm), load_run(mixup), ignore=("mix",))
    if differs:
        raise TaskError(
            f"the ERM and mixup runs differ in more than their mixing ({differs}); Figure 2 compares one recipe "
            "with and without mixup"
        )
    n = ye.shape[0]
    if n < 2:
        raise TaskError(f"Figure 2 needs at least 2 training points, got {n}")
    gen = torch.Generator().manual_seed(seed)
    i = torch.randint(0, n, (n_pairs,), generator=gen)
    j = (i + torch.randint(1, n, (n_pairs,), generator=gen)) % n  # j != i
    x_i, x_j = _as_float(xe[i]), _as_float(xe[j])
    curves = {m: interpolation_curves(models[m], x_i, ye[i], x_j, ye[j], lams, batch_size=batch_size) for m in models}
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, style in (("erm", "o-"), ("mixup", "s-")):
        c = curves[method]
        label = "ERM" if method == "erm" else "mixup"
        axes[0].plot(c["lam"], c["miss_rate"], style, label=label)
        axes[1].plot(c["lam"], c["grad_norm"], style, label=label)
    axes[0].set_ylabel("% predictions not in {y_i, y_j}")
    axes[1].set_ylabel("mean ||d loss / d x||_2")
    for ax, title in zip(axes, ("(a) prediction errors in-between", "(b) gradient norm in-between"), strict=True):
        ax.set_xlabel("lam (x = lam x_i + (1 - lam) x_j)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Figure 2: {n_pairs} random training pairs of {name_e}")
    fig.tight_layout()
    args = ["--erm", erm, "--mixup", mixup, "--n-pairs", n_pairs, "--seed", seed, "--device", device, "--out", out]
    if tuple(lams) != DEFAULT_LAMS:
        args += ["--lams", ",".join(repr(float(v)) for v in lams)]  # every digit: the command regenerates the JSON
    data_dir = os.environ.get("VICINAL_DATA")
    if data_dir:  # `--data DIR` (or the shell's variable): run elsewhere, the command must read the same data
        args += ["--data", data_dir]
    payload = {
        "title": "Figure 2: predictions and gradient norms between training pairs, ERM vs mixup",
        "settings": {
            "erm": str(erm),
            "mixup": str(mixup),
            "n_pairs": n_pairs,
            "seed": seed,
            "dataset": name_e,
            "lams": [float(v) for v in lams],
        },
        "curves": curves,
        "command": _command("fig2", [str(a) for a in args]),
    }
    return _write(Path(out), "fig2", fig, payload)


# -- Figure 3b ------------------------------------------------------------------------------------------------
def _variant(run: Run) -> str:
    """The run's ``mix.variant`` as the trainer read it: a config without ``mix`` (or its ``variant``) is ERM."""
    mix = run.config.get("mix")
    return str(mix.get("variant", MixConfig.variant)) if isinstance(mix, Mapping) else MixConfig.variant


def _check_role(variant: str, option: str, path: str | Path) -> None:
    """``--erm`` takes ERM runs, ``--mixup`` the others: runs passed the wrong way round would swap the curves."""
    want_erm = option == "--erm"
    if (variant == "erm") != want_erm:
        kind = "ERM runs" if want_erm else "mixup runs (mix.variant other than erm)"
        raise TaskError(f"{option} takes {kind}, but '{path}' has mix.variant {variant!r}")


def _check_finished(path: str | Path, option: str) -> None:
    """A figure shows trained models: a run that has not finished (interrupted, still training) is refused, as
    ``vicinal attack`` refuses it."""
    if not run_finished(path):
        raise TaskError(f"{option} '{path}' has not finished training; finish it first (vicinal train --resume {path})")


def _seed_runs(paths: Sequence[str | Path], option: str) -> list[Run]:
    """The runs below ``paths``: each of the method its ``option`` (``--erm`` or ``--mixup``) names, each seed once,
    all seeds of one recipe."""
    runs = [load_run(p) for p in find_runs(paths)]
    seen: dict[Any, Path] = {}
    for run in runs:
        _check_role(_variant(run), option, run.path)
        if run.seed in seen:  # a copied run folder would weigh its seed twice under a legend counting it twice
            raise TaskError(
                f"{option}: '{run.path}' and '{seen[run.seed]}' are both seed {run.seed}; pass each seed once"
            )
        seen[run.seed] = run.path
        # the seeds of one recipe: a run of another data set or config would be averaged in as one more seed
        differs = recipe_differences(runs[0], run)
        if differs:
            raise TaskError(
                f"{option}: '{run.path}' is not a seed of the recipe of '{runs[0].path}' ({differs}); one curve "
                "averages the seeds of one recipe"
            )
    return runs


def _curve(runs: Sequence[Run], option: str) -> dict[str, Any]:
    """Per-epoch test error over ``runs`` (`_seed_runs`): mean, min, max over runs and the run count.

    Only the epochs evaluated in every run are plotted: a curve averaged over the runs that happen to have an epoch
    would change its runs along the x axis (an interrupted seed drops out and the band collapses) while the legend's
    n counts them all.
    """
    evaluated = {
        run.path: {int(r["epoch"]): float(r["test_error"]) for r in run.records if r.get("test_error") is not None}
        for run in runs
    }
    common = set.intersection(*(set(e) for e in evaluated.values()))
    if not common:
        empty = [str(p) for p, e in evaluated.items() if not e]
        raise TaskError(
            f"{option}: no epoch is evaluated in every run below {', '.join(str(r.path) for r in runs)}"
            + (f" (none in {', '.join(empty)})" if empty else "")
        )
    epochs = sorted(common)
    shorter = [str(p) for p, e in evaluated.items() if set(e) != common]
    if shorter:
        warnings.warn(
            f"fig3b {option}: plotting only the {len(epochs)} epoch(s) evaluated in all {len(runs)} runs; "
            f"{', '.join(shorter)} evaluated other epochs too",
            LabWarning,
            stacklevel=2,
        )
    per_epoch = {e: [evaluated[run.path][e] for run in runs] for e in epochs}
    mean = [statistics.mean(per_epoch[e]) for e in epochs]
    best = min(mean)
    return {
        "n_runs": len(runs),
        "runs": [str(r.path) for r in runs],
        "epoch": epochs,
        "mean": mean,
        "min": [min(per_epoch[e]) for e in epochs],
        "max": [max(per_epoch[e]) for e in epochs],
        "best": best,
        # convergence speed: the first epoch whose mean error is within 1 point of the curve's best
        "epoch_within_1pt_of_best": next(e for e, m in zip(epochs, mean, strict=True) if m <= best + 1.0),
    }


def figure3b(
    erm: str | Path | Iterable[str | Path], mixup: str | Path | Iterable[str | Path], out: str | Path
) -> dict[str, Any]:
    """Figure 3b: test error against epochs, ERM vs mixup, from run folders (or folders holding them): each of
    ``erm`` and ``mixup`` one path or several."""
    # lists read once (an iterator such as Path.glob is read by the search and would be empty in the command)
    erm, mixup = as_paths(erm, "erm"), as_paths(mixup, "mixup")
    if not erm or not mixup:
        raise TaskError(f"figure 3b needs ERM and mixup run folders, got {len(erm)} and {len(mixup)}")
    runs = {"erm": _seed_runs(erm, "--erm"), "mixup": _seed_runs(mixup, "--mixup")}
    # ERM against mixup of the same recipe but for the mixing: another data set, model or schedule is no comparison
    differs = recipe_differences(runs["erm"][0], runs["mixup"][0], ignore=("mix",))
    if differs:
        raise TaskError(
            f"the ERM and mixup runs differ in more than their mixing ({differs}); Figure 3b compares one recipe "
            "with and without mixup"
        )
    curves = {method: _curve(runs[method], f"--{method}") for method in runs}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, c in curves.items():
        label = f"{'ERM' if method == 'erm' else 'mixup'} (n={c['n_runs']})"
        (line,) = ax.plot(c["epoch"], c["mean"], label=label)
        if c["n_runs"] > 1:
            ax.fill_between(c["epoch"], c["min"], c["max"], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title("Figure 3b: test error over epochs (mean over seeds; band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args = ["--erm", *erm, "--mixup", *mixup, "--out", out]
    payload = {
        "title": "Figure 3b: test error against epochs, ERM vs mixup",
        "curves": curves,
        "command": _command("fig3b", [str(a) for a in args]),
    }
    return _write(Path(out), "fig3b", fig, payload)


# -- command line ---------------------------------------------------------------------------------------------
def _floats(text: str) -> tuple[float, ...]:
    """``"0,0.5,1"`` -> ``(0.0, 0.5, 1.0)``; argparse names the option in front of the error."""
    values = []
    for v in text.split(","):
        try:
            values.append(float(v))
        except ValueError:  # argparse's own message named this function ("invalid _floats value")
            raise argparse.ArgumentTypeError(f"{v.strip()!r} is not a number (comma-separated, e.g. 0,0.5,1)") from None
    return tuple(values)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, except where the help already says it (the CLI's --data)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        return text if "default:" in text else super()._get_help_string(action)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``fig1b | fig2 | fig3b`` sub-commands to ``parser`` (a new one by default) and return it."""
    if parser is None:
        parser = argparse.ArgumentParser(prog=PROG, description="The paper's Figures 1b, 2 and 3b.")
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    def figure(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        # each option's help says its default (the --help pages showed none); every figure writes into --out
        p = sub.add_parser(name, help=summary, description=description, formatter_class=_DefaultsFormatter)
        p.add_argument("--out", type=Path, default=Path("figures"), help="folder of the figure and its JSON")
        return p

    def runs(p: argparse.ArgumentParser, nargs: str | None, what: str) -> None:
        for method in ("erm", "mixup"):
            p.add_argument(
                f"--{method}",
                type=Path,
                nargs=nargs,
                required=True,
                default=argparse.SUPPRESS,  # required: no "(default: None)"
                metavar="RUN_DIR",
                help=what.format("ERM" if method == "erm" else "mixup"),
            )

    p = figure("fig1b", "decision boundaries of ERM vs mixup on a 2-D toy problem (seconds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and both models")
    p.add_argument("--alpha", type=float, default=1.0, help="mixup's alpha")
    p.add_argument("--steps", type=int, default=1000, help="full-batch Adam steps per model")
    p.add_argument("--n-per-class", type=int, default=100, help="two-moons points per class")
    p.add_argument("--noise", type=float, default=0.15, help="std of the noise added to the moons")
    p.add_argument("--grid", type=int, default=200, help=f"contour grid points per axis (at most {MAX_GRID})")
    p = figure(
        "fig2",
        "predictions and gradient norms between training pairs (two trained runs)",
        "Figure 2 from one finished ERM run folder and one mixup run folder of the same recipe.",
    )
    runs(p, None, "a finished {} run folder")
    p.add_argument("--n-pairs", type=int, default=1000, help="random training pairs to interpolate between")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs")
    p.add_argument("--device", default="cpu", help="device of the models")
    p.add_argument(
        "--lams",
        type=_floats,
        default=DEFAULT_LAMS,
        help="comma-separated weights of x_i (default: 0,0.1,...,1)",  # not the tuple's repr
    )
    p = figure(
        "fig3b",
        "test error against epochs, ERM vs mixup, from run folders",
        "Figure 3b from run folders (one per seed) of an ERM and a mixup recipe.",
    )
    runs(p, "+", "{} run folders, one per seed")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make the figure that ``args`` (from :func:`build_parser`) names; returns its payload."""
    try:
        return _run(args)
    except TaskError as exc:
        # the figure functions name their parameters ("n_pairs must be an int >= 1"); here the user typed the option
        text = str(exc)
        name = next((k for k in vars(args) if text.startswith(f"{k} ")), None)
        if name is None:
            raise
        raise TaskError(f"--{name.replace('_', '-')}{text[len(name) :]}") from None


def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.figure == "fig1b":
        return figure1b(
            args.out,
            seed=args.seed,
            alpha=args.alpha,
            steps=args.steps,
            n_per_class=args.n_per_class,
            noise=args.noise,
            grid=args.grid,
        )
    if args.figure == "fig2":
        check_explicit_device(args.device)  # named as the option the user gave, before any run is loaded
        return figure2(
            args.erm, args.mixup, args.out, n_pairs=args.n_pairs, seed=args.seed, device=args.device, lams=args.lams
        )
    if args.figure == "fig3b":
        return figure3b(args.erm, args.mixup, args.out)
    raise TaskError(f"unknown figure {args.figure!r}; known: {', '.join(FIGURES)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m vicinal.experiments.tasks.figures``: make one figure, print where it went. A
    refusal is one line and exit 2, as with ``vicinal figure`` (the command each figure's JSON records)."""
    return exit_code(lambda: _main(argv), prog=PROG)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_out_folder(args.out)  # as `vicinal figure` checks --out, before any work
    result = run(args)
    print(f"{result['title']}: {', '.join(str(f) for f in result['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
