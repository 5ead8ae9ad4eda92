"""The ``datasize`` table (beyond the paper): mixup's gain over ERM as a function of the training-set size.

CIFAR-10, PreAct ResNet-18 at width 16, the cifar cpu recipe, at 500, 1,000, 2,000 and 5,000 training images, each
trained in the regime where ERM fits its training set (epoch rule in the config files: the 2,400 SGD steps of the
2,000-image recipe for smaller sets, 150 epochs for larger ones). The 2,000-image point is the cifar table itself:
the plan includes its two configs, so pointing ``--out`` at the cifar table's folder reuses its finished runs.

The report pairs ERM and mixup by seed at each size and draws the mean paired difference with its 95% interval
against the size (:func:`datasize_points`, :func:`plot_datasize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..recipe import RULE_MAX_TRAIN_ERROR, recipe_differences, split_by_provenance
from ..runs import write_figure
from ..stats import Paired, fmt_mean_std, mean_std, paired
from .cifar import cifar_configs
from .registry import Table, config_files, register_table

__all__ = ["DATASIZE", "datasize_configs", "datasize_markdown", "datasize_points", "outside_rule", "plot_datasize"]

METRIC = "median_last10_test_error"
TRAIN_METRIC = "last_train_eval_error"


def datasize_configs(scale: str) -> list[Path]:
    """The configs of the curve: the cifar cpu pair (2,000 images) and the other sizes. cpu scale only."""
    if scale != "cpu":
        raise TaskError(f"the datasize table exists at cpu scale only (a curve beyond the paper), got {scale!r}")
    return cifar_configs("cpu") + config_files("datasize", "cpu")


def _size(run: Any) -> int | None:
    """Training images of a run: ``data.subset_per_class`` x 10 classes (CIFAR-10); None without a subset."""
    per_class = run.config.get("data", {}).get("subset_per_class")
    return None if per_class is None else 10 * int(per_class)


def _size_pairs(runs: Sequence[Any]) -> tuple[dict[int, tuple[list[Any], list[Any]]], list[str]]:
    """Per training-set size, the ERM runs and the mixup runs the curve pairs; and a line per size it cannot pair.

    At a size, the finished CIFAR-10 PreAct ResNet-18 runs of variant erm or mixup (alpha 1) are grouped by config
    name, a name split where its runs ran on other data or with another number of processes. The mixup group is
    paired with the ERM group that ran its recipe outside ``mix`` (`recipe_differences`): a config derived with
    ``base:`` from the cifar ones keeps their table, so a size may hold ERM runs of another recipe (weight decay,
    data). A size with several mixup groups, or a mixup group with no such ERM group or several, is not drawn.
    """
    named: dict[int, dict[str, dict[str, list[Any]]]] = {}
    for run in runs:
        cfg = run.config
        if cfg.get("table") not in ("cifar", "datasize") or run.status != "complete":
            continue
        if cfg.get("data", {}).get("name") != "cifar10" or cfg.get("model", {}).get("name") != "preact_resnet18":
            continue
        mix = cfg.get("mix", {})
        variant = mix.get("variant")
        size = _size(run)
        if variant not in ("erm", "mixup") or (variant == "mixup" and mix.get("alpha", 1) != 1) or size is None:
            continue
        named.setdefault(size, {}).setdefault(variant, {}).setdefault(run.name, []).append(run)
    chosen: dict[int, tuple[list[Any], list[Any]]] = {}
    notes: list[str] = []
    for size in sorted(named):
        erm, mix = (
            {part: rs for n, runs_n in named[size].get(v, {}).items() for part, rs, _ in split_by_provenance(n, runs_n)}
            for v in ("erm", "mixup")
        )
        if not erm or not mix:
            continue
        if len(mix) > 1:
            notes.append(f"{size:,} images: several mixup groups ({', '.join(mix)}), not drawn")
            continue
        m, mruns = next(iter(mix.items()))
        differs = {e: recipe_differences(eruns[0], mruns[0], ignore=("mix",)) for e, eruns in erm.items()}
        same = [e for e, text in differs.items() if not text]
        if len(same) == 1:
            chosen[size] = (erm[same[0]], mruns)
        elif same:
            notes.append(f"{size:,} images: several ERM groups ran the recipe of {m} ({', '.join(same)}), not drawn")
        else:
            why = "; ".join(f"{e} differs in {text}" for e, text in differs.items())
            notes.append(f"{size:,} images: no ERM group ran the recipe of {m} ({why}), not drawn")
    return chosen, notes


def datasize_points(runs: Sequence[Any], metric: str = METRIC) -> list[tuple[int, Paired, dict[str, list[float]]]]:
    """Per training-set size: the paired difference mixup - ERM over seeds, and each method's values.

    ``runs`` are loaded run folders (``runs.Run``) of the cifar and datasize tables; only finished CIFAR-10 PreAct
    ResNet-18 runs with variant erm or mixup (alpha 1) count, a mixup group with the ERM group of its recipe
    (`_size_pairs`).
    """
    points = []
    for size, pair in _size_pairs(runs)[0].items():
        by = {
            k: {int(r.seed): float(r.summary[metric]) for r in rs if r.summary.get(metric) is not None}
            for k, rs in zip(("erm", "mixup"), pair, strict=True)
        }
        if by["erm"] and by["mixup"]:
            raw = {k: [v for _, v in sorted(by[k].items())] for k in ("erm", "mixup")}
            points.append((size, paired(by["erm"], by["mixup"]), raw))
    return points


def datasize_markdown(runs: Sequence[Any]) -> str:
    """A table: size, n, ERM and mixup (mean ± std), paired difference with interval and tests; and the sizes it
    could not pair (`_size_pairs`)."""
    points = datasize_points(runs)
    unpaired = _size_pairs(runs)[1]
    lines = []
    if points:
        # the regime rule, per size: ERM's error on its own un-augmented training images
        train = _erm_train_errors(runs)
        lines = [
            "| training images | ERM (%) | mixup (%) | mixup - ERM (points), 95% interval, tests | ERM train error (%) |",
            "|---|---|---|---|---|",
        ]
        for size, p, raw in points:
            erm, mix, fit = mean_std(raw["erm"]), mean_std(raw["mixup"]), mean_std(train.get(size, []))
            lines.append(f"| {size:,} | {fmt_mean_std(*erm)} (n={erm[2]}) | {fmt_mean_std(*mix)} (n={mix[2]}) | "
                         f"{p.describe()} | {fmt_mean_std(*fit)} |")  # fmt: skip
        lines += [
            "",
            "Test error: median of the last 10 epochs, mean ± sample std over seeds; the difference pairs ERM and "
            "mixup runs of the same seed (same training images and initial weights). ERM train error: after the last "
            f"epoch, on the un-augmented training images (the regime rule asks <= {RULE_MAX_TRAIN_ERROR:g}%).",
        ]
    if unpaired:
        lines += [*([""] if lines else []), "Not paired (mixup is paired only with the ERM runs of its recipe: the "
                  "same config outside mix, the same data, the same number of processes):"]  # fmt: skip
        lines += [f"- {u}." for u in unpaired]
    return "\n".join(lines)


def _erm_train_errors(runs: Sequence[Any]) -> dict[int, list[float]]:
    """Per size: ERM's final error on its own un-augmented training images, one value per seed."""
    return {size: raw["erm"] for size, _, raw in datasize_points(runs, TRAIN_METRIC)}


def _above_rule(train: dict[int, list[float]]) -> set[int]:
    return {s for s, errs in train.items() if errs and sum(errs) / len(errs) > RULE_MAX_TRAIN_ERROR}


def outside_rule(runs: Sequence[Any]) -> set[int]:
    """Sizes whose ERM runs end above the regime rule's training error (mean over seeds): points to read apart."""
    return _above_rule(_erm_train_errors(runs))


def plot_datasize(runs: Sequence[Any], path: str | Path) -> bool:
    """Draw the curve into ``path`` (PNG): mean paired difference and its 95% interval per size, a hollow marker
    where ERM does not fit its training set (outside the regime rule). False if there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(s, p) for s, p, _ in datasize_points(runs) if p.n >= 1]
    if not points:
        return False
    sizes = [s for s, _ in points]
    means = [p.mean for _, p in points]
    lo = [p.mean - p.ci_low if p.n > 1 else 0.0 for _, p in points]
    hi = [p.ci_high - p.mean if p.n > 1 else 0.0 for _, p in points]
    train = _erm_train_errors(runs)
    outside = _above_rule(train)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    line = ax.errorbar(sizes, means, yerr=[lo, hi], marker="o", capsize=4)
    colour = line.lines[0].get_color()
    for s, p in points:
        fit = train.get(s)
        label = f"n={p.n}" + ("" if not fit else f", ERM train {sum(fit) / len(fit):.1f}%")
        last = s == sizes[-1]  # its label goes left of the point, inside the axes
        ax.annotate(
            label, (s, p.mean), textcoords="offset points", xytext=(-8 if last else 8, -14), fontsize=7,
            ha="right" if last else "left",
        )  # fmt: skip
        if s in outside:
            ax.plot([s], [p.mean], marker="o", markersize=8, color="white", markeredgecolor=colour, zorder=3)
    if outside:
        ax.plot([], [], "o", color="white", markeredgecolor=colour, label="ERM does not fit its training set")
        ax.legend(fontsize=7, loc="lower right")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.minorticks_off()  # the log axis's minor labels overlap the sizes
    ax.set_xlabel("training images (CIFAR-10, 10 classes)")
    ax.set_ylabel("mixup - ERM test error (points)")
    ax.set_title("mixup's gain vs training-set size (paired by seed; 95% t interval)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_figure(path, fig, dpi=120)
    plt.close(fig)
    return True


def _sections(runs: Sequence[Any], stats: Sequence[dict[str, Any]], out_dir: Path) -> list[str]:
    """The report's data-size section and its plot ``out_dir/datasize.png`` (empty without paired sizes)."""
    sizes = datasize_markdown(runs)
    if not sizes:
        return []
    lines = ["", "## mixup's gain against the training-set size (beyond the paper)", "", sizes]
    if plot_datasize(runs, out_dir / "datasize.png"):
        lines += ["", "![mixup - ERM against the training-set size](datasize.png)"]
    return lines


DATASIZE = register_table(
    Table(
        name="datasize",
        title="Beyond the paper: mixup's gain over ERM against the training-set size (CIFAR-10, PreAct ResNet-18)",
        configs=datasize_configs,
        default_seeds={"cpu": 3},
        sections=_sections,
        draws_on=("cifar",),  # the 2,000-image point is the cifar table's pair of runs
        notes=(
            "cpu scale only: the cifar cpu recipe at 500, 1,000, 2,000 and 5,000 training images, ERM and mixup "
            "(alpha 1), 3 seeds; epochs: 2,400 SGD steps for <= 2,000 images (600, 300, 150 epochs), 150 epochs for "
            "5,000. Point --out at the cifar table's folder to reuse its 2,000-image runs. Cost ~13 CPU-minutes per "
            "run at <= 2,000 images, ~28 at 5,000: ~5.5 CPU-hours for the new runs."
        ),
    )
)
