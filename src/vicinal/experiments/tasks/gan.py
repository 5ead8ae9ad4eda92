"""The ``gan`` table (Section 3.7, Figure 5): ERM GANs vs mixup GANs over a grid of runs on toy 2-D data.

The runs themselves (the setting, the objectives, the vmapped training on the seed-ensemble engine) are
:mod:`.gan_train`.

The table. :func:`run_gan_table` trains ``datasets x methods x widths x discriminator steps x learning rates x
seeds`` runs and reports, per dataset and method, the final metrics of the default setting (lr 1e-3, five
discriminator steps, the largest width) over seeds, and the share of all grid runs that converge: the paper's
claim is that "the training of mixup GANs seems promisingly robust to hyper-parameter and architectural choices".
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...gan import LAM_DISTRIBUTIONS
from .. import runs as run_folders
from ..data.seeds import STREAM_GAN_FIGURE as STREAM_FIGURE
from ..data.seeds import make_generator
from ..errors import TaskArgumentError, TaskError
from ..runs import append_metrics, provenance, write_json, write_metrics, write_provenance
from .gan_metrics import DATASETS, DEFAULT_MIN_COUNT, DEFAULT_STD, sample_toy
from .gan_summary import outcome_markdown, outcome_rows, plot_gan_figure, report_sections
from .gan_train import EVAL_SEED, FIGURE5_ITERATIONS, METHODS, GANConfig, GANRuns, check_positive_int, train_gan_runs
from .registry import Table, register_table

__all__ = [
    "PROTOCOLS",
    "STREAM_FIGURE",
    "GANProtocol",
    "main",
    "plot_gan_figure",
    "run_gan_table",
    "run_name",
]


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


def _summarise(protocol: GANProtocol, finals: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Summary rows (one per dataset x method) and the markdown page."""
    p = protocol
    rows = outcome_rows(
        finals,
        lambda r: (r["width"], r["d_steps"], r["lr"]) == (p.default_width, p.default_d_steps, p.default_lr),
        p.datasets,
        p.methods,
    )
    setting, grid = outcome_markdown(rows)
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
        *setting,
        "",
        f"## Robustness: runs that converge over the grid (widths {list(p.widths)} x D steps {list(p.d_steps)} x "
        f"lr {list(p.lrs)} x {len(p.seeds)} seeds)",
        "",
        *grid,
    ]
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
        out_dir: The run folder (created; it must not already hold a ``metrics.jsonl``: a grid, finished or
            interrupted, is never continued).
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
        check_positive_int("threads", threads)
    overrides: dict[str, Any] = {}
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int | list | tuple | range):
            raise TaskArgumentError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__}")
        if isinstance(seeds, int):
            overrides["seeds"] = tuple(range(check_positive_int("seeds", seeds)))
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
        # Finished groups are not resumed: the figure's snapshots and the summary's rows live only in memory until
        # the grid ends, so an interrupted grid is refused like a finished one rather than half-rebuilt.
        raise TaskError(
            f"'{out}' already holds a run (metrics.jsonl) of a finished or interrupted GAN grid; a GAN grid cannot "
            "be continued and restarts from scratch: choose a new --out (or delete the folder)"
        )
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
    snapshots = {
        **{f"{d}_{m}_it{it}": pts for (d, m), by_it in fig_samples.items() for it, pts in by_it.items()},
        **{f"{d}_real": pts for d, pts in real.items()},
    }
    run_folders.atomic_write(out / "snapshots.npz", lambda f: np.savez_compressed(f, **snapshots))
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
                # what the report needs to rebuild the table's own summary from the run folders alone
                "scale": p.scale,
                "paper_setting": default,
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
    out_dir: Path,
    scale: str,
    seeds: int | None,
    *,
    overrides: Sequence[str] = (),
    dry_run: bool = False,
    quiet: bool = False,
) -> Path | None:
    """``vicinal reproduce gan``: the whole grid of ``scale`` into ``out_dir`` (``quiet``: no per-group lines)."""
    if overrides:  # checked before the banner, so that the error stays the only line
        raise TaskError("table 'gan' is not made of config files: --set does not apply")
    print(f"vicinal reproduce gan --scale {scale}: {GAN_TABLE.title}")
    if scale == "cpu":
        print(f"  {GAN_TABLE.notes}")
    if dry_run:
        print(f"dry run: the gan table would be trained into {out_dir}")
        return None
    return run_gan_table(
        out_dir, scale, seeds, log=None if quiet else lambda msg: print(msg, file=sys.stderr, flush=True)
    )


GAN_TABLE = register_table(
    Table(
        name="gan",
        title="Figure 5 (Section 3.7): ERM vs mixup GANs on toy 2-D data (ring, grid), convergence over a grid",
        configs=lambda scale: [],
        default_seeds={"cpu": 3, "paper": 3},
        notes=PROTOCOLS["cpu"].notes,
        runner=_reproduce,
        sections=report_sections,
    )
)

if __name__ == "__main__":
    raise SystemExit(main())
