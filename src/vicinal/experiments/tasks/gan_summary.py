"""The GAN table's results: Figure 5's panels, and the outcome tables (the paper's setting; convergence over the
grid) that both the table's own summary.md and ``vicinal report`` print from the runs' last records."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TaskError
from ..runs import Run, write_figure
from ..stats import mean_std
from .gan_metrics import DATASETS
from .gan_train import METHODS

__all__ = ["outcome_markdown", "outcome_rows", "plot_gan_figure", "report_sections"]


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
    write_figure(path, fig, dpi=110)
    plt.close(fig)
    return path


def outcome_rows(
    finals: Sequence[dict[str, Any]],
    is_default: Callable[[dict[str, Any]], bool],
    datasets: Sequence[str] = DATASETS,
    methods: Sequence[str] = METHODS,
) -> list[dict[str, Any]]:
    """One row per dataset x method present in ``finals`` (the last record of each run, with ``dataset``,
    ``method``, ``width``, ``d_steps``, ``lr`` and the metrics): mean ± std of the metrics over the runs of the
    paper's setting (``is_default``), and converged / diverged counts over every run of the grid."""
    rows: list[dict[str, Any]] = []
    for dataset, method in product(datasets, methods):
        runs = [r for r in finals if r["dataset"] == dataset and r["method"] == method]
        if not runs:
            continue
        default = [r for r in runs if is_default(r)]
        row: dict[str, Any] = {"dataset": dataset, "method": method, "n_modes": runs[0]["n_modes"]}
        for key in ("modes_covered", "high_quality", "sliced_w2"):
            mean, std, n = mean_std([r[key] for r in default])
            row.update({f"{key}_mean": mean, f"{key}_std": std, f"{key}_n": n})
        row["converged_default"] = sum(bool(r["converged"]) for r in default)
        row["runs_default"] = len(default)
        row["converged_grid"] = sum(bool(r["converged"]) for r in runs)
        row["runs_grid"] = len(runs)
        row["converge_share_grid"] = row["converged_grid"] / row["runs_grid"]
        row["diverged_grid"] = sum(r["sliced_w2"] is None for r in runs)
        rows.append(row)
    return rows


def outcome_markdown(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The two tables of `outcome_rows`: the paper's setting (mean ± std), and convergence over the grid."""
    setting = [
        "| dataset | method | modes covered | high-quality share | sliced W2 | converged |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        setting.append(
            f"| {row['dataset']} | {row['method']} | "
            f"{_fmt(row['modes_covered_mean'], row['modes_covered_std'], row['modes_covered_n'], 2)} of "
            f"{row['n_modes']} | {_fmt(row['high_quality_mean'], row['high_quality_std'], row['high_quality_n'], 3)} | "
            f"{_fmt(row['sliced_w2_mean'], row['sliced_w2_std'], row['sliced_w2_n'], 3)} | "
            f"{row['converged_default']}/{row['runs_default']} |"
        )
    grid = ["| dataset | method | converged | share | diverged (non-finite) |", "|---|---|---|---|---|"]
    for row in rows:
        grid.append(
            f"| {row['dataset']} | {row['method']} | {row['converged_grid']}/{row['runs_grid']} | "
            f"{100 * row['converge_share_grid']:.0f}% | {row['diverged_grid']} |"
        )
    return setting, grid


def report_sections(runs: Sequence[Run], stats: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """The report's GAN section from the run folders of ``vicinal reproduce gan``: the table's outcome tables, one
    pair per scale (runs of several scales are never pooled); empty without finished GAN runs."""
    by_scale: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run.config.get("table") != "gan" or run.status != "complete":
            continue
        g = run.config.get("gan", {})
        row = str(run.config.get("row", ""))
        by_scale.setdefault(str(run.config.get("scale", "?")), []).append(
            {
                **run.summary,
                "dataset": g.get("dataset"),
                "method": g.get("method"),
                # run folders written before the flag: the row of the paper's setting is <dataset>/<method>
                "paper_setting": bool(run.config.get("paper_setting", row.count("/") == 1)),
            }
        )
    lines: list[str] = []
    for scale, finals in sorted(by_scale.items()):
        setting, grid = outcome_markdown(outcome_rows(finals, lambda r: r["paper_setting"]))
        lines += [
            "",
            f"## GANs (Figure 5), {scale} scale: the paper's setting, last iteration, mean ± std over seeds",
            "",
            *setting,
            "",
            f"## GANs, {scale} scale: runs that converge over the whole grid (every width, D steps and lr)",
            "",
            *grid,
        ]
    return lines
