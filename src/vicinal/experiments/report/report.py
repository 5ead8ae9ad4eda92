"""``vicinal report RUN_DIR... --out DIR``: run folders -> tables (markdown + CSV) and a test-error plot.

Runs are grouped by config name (the seed is not part of the name); each group shows n, mean ± sample standard
deviation over seeds of the last, best and median-of-last-10-epochs test error, and the paper's number for its
row where the paper has one (:data:`PAPER`). Incomplete runs are reported with their status, never silently mixed
with complete ones: a group's ``status`` column says how many of its runs finished.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import LabError
from ..reliability import reliability_bins, save_reliability_diagram
from ..stats import fmt_mean_std, mean_std, paired
from ..tasks.datasize import datasize_markdown, plot_datasize

__all__ = [
    "PAPER",
    "PAPER_SOURCES",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "attack_markdown",
    "attack_results",
    "Group",
    "ReportError",
    "Run",
    "find_runs",
    "group_runs",
    "load_run",
    "make_report",
    "mean_std",
    "paired_markdown",
    "reliability_bins",
    "save_reliability_diagram",
]

# Published test errors (percent), transcribed from paper/EXPERIMENTS.md; keyed by table, then row key.
PAPER: dict[str, dict[str, float]] = {
    "cifar": {
        "cifar10/preact_resnet18/erm": 5.6,
        "cifar10/preact_resnet18/mixup": 4.2,
        "cifar10/wrn28_10/erm": 3.8,
        "cifar10/wrn28_10/mixup": 2.7,
        "cifar10/densenet_bc190/erm": 3.7,
        "cifar10/densenet_bc190/mixup": 2.7,
        "cifar100/preact_resnet18/erm": 25.6,
        "cifar100/preact_resnet18/mixup": 21.1,
        "cifar100/wrn28_10/erm": 19.4,
        "cifar100/wrn28_10/mixup": 17.5,
        "cifar100/densenet_bc190/erm": 19.0,
        "cifar100/densenet_bc190/mixup": 16.8,
    },
}
PAPER_SOURCES: dict[str, str] = {
    "cifar": (
        "Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018, Figure 3a (arXiv v1 PDF; PreAct "
        "ResNet-18 CIFAR-10 mixup from v2, v1 said 3.9), via paper/EXPERIMENTS.md 3.2; full-scale training "
        "(200 epochs, 50,000 images)"
    ),
}


class ReportError(LabError, ValueError):
    """A path given to the report is not a run folder or holds none."""


@dataclass
class Run:
    """One run folder, loaded."""

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def seed(self) -> int | None:
        return self.config.get("train", {}).get("seed")

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown"))


@dataclass
class Group:
    """Runs sharing a config name (one table row), one per seed."""

    name: str
    table: str
    row: str
    runs: list[Run] = field(default_factory=list)


def load_run(path: str | Path) -> Run:
    """Read ``config.yaml``, ``metrics.jsonl`` and ``summary.json`` of a run folder."""
    path = Path(path)
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise ReportError(f"'{path}' is not a run folder (no config.yaml)")
    config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    records = []
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        for i, line in enumerate(metrics.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ReportError(f"'{metrics}' line {i} is not valid JSON") from None
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    return Run(path, config, records, summary)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders at or below each path (a run folder holds ``config.yaml``), sorted, without duplicates."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ReportError(f"'{p}' does not exist")
        # Absolute but not resolved: a run folder reached through a link keeps the path the user gave, so the
        # report's relative paths follow the user's layout rather than the link's target.
        if (p / "config.yaml").is_file():
            found.add(p.absolute())
            continue
        below = {c.parent.absolute() for c in p.rglob("config.yaml")}
        if not below:
            raise ReportError(f"'{p}' holds no run folders (no config.yaml below it)")
        found |= below
    return sorted(found)


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Group by config name, in order of first appearance; seeds sorted within a group."""
    groups: dict[str, Group] = {}
    for run in runs:
        g = groups.setdefault(
            run.name, Group(run.name, str(run.config.get("table", "")), str(run.config.get("row", "")))
        )
        g.runs.append(run)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
    return list(groups.values())


_fmt = fmt_mean_std


_COLUMNS = (
    ("last_test_error", "test error, last epoch (%)"),
    ("median_last10_test_error", "median of last 10 epochs (%)"),
    ("best_test_error", "best epoch (%)"),
    ("last_test_nll", "test NLL"),
    ("last_test_ece", "ECE (%)"),
)
# Shown only when some run measured them (every run since the regime issue: after the last epoch by default).
_TRAIN_COLUMNS = (
    ("last_train_eval_error", "train error, un-augmented (%)"),
    ("last_train_error_real", "train error, real labels (%)"),
    ("last_train_error_corrupted", "train error, corrupted labels (%)"),
)
# Table 2 (Section 3.4): best / last test error, training error on real and on corrupted labels (percent).
PAPER_TABLE2: dict[str, tuple[float, float, float, float]] = {
    "20/erm": (12.7, 16.6, 0.05, 0.28),
    "20/erm_dropout_p0.7": (8.8, 10.4, 5.26, 83.55),
    "20/mixup_a8": (5.9, 6.4, 2.27, 86.32),
    "50/erm": (18.8, 44.6, 0.26, 0.64),
    "50/erm_dropout_p0.8": (14.1, 15.5, 12.71, 86.98),
    "50/mixup_a32": (11.3, 12.7, 5.84, 85.71),
    "80/erm": (36.5, 73.9, 0.62, 0.83),
    "80/erm_dropout_p0.8": (30.9, 35.1, 29.84, 86.37),
    "80/mixup_a32": (25.3, 30.9, 18.92, 85.44),
}
PAPER["corrupted-labels"] = {row: v[1] for row, v in PAPER_TABLE2.items()}  # the generic table: last epoch
PAPER_SOURCES["corrupted-labels"] = (
    "Zhang et al., mixup, ICLR 2018, Table 2 (arXiv v1 PDF) via paper/EXPERIMENTS.md 3.4: CIFAR-10, PreAct "
    "ResNet-18, 200 epochs, 50,000 images; columns best / last test error, train error real / corrupted"
)


def _group_stats(g: Group) -> dict[str, Any]:
    # Statistics over the finished runs only, once there are any: a run still training (or stopped) has a "last"
    # error from an earlier epoch, which is not comparable. A group with no finished run shows its partial runs,
    # and the 'done' column says so.
    done = [r for r in g.runs if r.status == "complete"]
    counted = done or g.runs
    row: dict[str, Any] = {
        "name": g.name,
        "table": g.table,
        "row": g.row,
        "n": len(counted),
        "seeds": " ".join(str(r.seed) for r in counted),
        "complete": len(done),
        "runs": len(g.runs),
        "epochs": " ".join(sorted({str(r.summary.get("epochs_completed", len(r.records))) for r in counted})),
        "paper": PAPER.get(g.table, {}).get(g.row),
        "train_time_s": mean_std([r.summary.get("train_time_s") for r in counted])[0],
    }
    for key, _ in (*_COLUMNS, *_TRAIN_COLUMNS):
        m, s, n = mean_std([r.summary.get(key) for r in counted])
        row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = m, s, n
    return row


def markdown_table(stats: Sequence[dict[str, Any]]) -> str:
    """Markdown table of group statistics (mean ± sample std over seeds)."""
    columns = list(_COLUMNS)
    corrupted = any(s.get("last_train_error_corrupted_n") for s in stats)
    for key, label in _TRAIN_COLUMNS:
        # On clean labels the "real labels" column repeats the un-augmented one; show the split only with noise.
        if key != "last_train_eval_error" and not corrupted:
            continue
        if any(s.get(f"{key}_n") for s in stats):
            columns.append((key, label))
    head = ["run", "n (seeds)", "done"] + [label for _, label in columns] + ["paper (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in stats:
        cells = [s["name"], f"{s['n']} ({s['seeds']})", f"{s['complete']}/{s['runs']}"]
        for key, _ in columns:
            digits = 3 if key == "last_test_nll" else 2
            cells.append(_fmt(s[f"{key}_mean"], s[f"{key}_std"], s[f"{key}_n"], digits))
        cells.append("-" if s["paper"] is None else f"{s['paper']:g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Paired comparisons: each row against the ERM row of the same table and row prefix ("cifar10/preact_resnet18/mixup"
# against "cifar10/preact_resnet18/erm"), seed by seed; a row without such a partner is not compared.
_PAIRED_METRICS = (
    ("median_last10_test_error", "median of last 10"),
    ("last_test_error", "last epoch"),
)


def _baseline_key(table: str, row: str) -> tuple[str, str] | None:
    prefix, _, method = row.rpartition("/")
    if not prefix or method == "erm":
        return None
    return table, f"{prefix}/erm"


def paired_markdown(groups: Sequence[Group]) -> str:
    """Each method minus its ERM row, paired by seed: mean difference, 95% interval, paired t-test, sign-flip test.

    Negative differences mean the method has the lower test error. Runs that did not finish are left out.
    """
    by_row = {(g.table, g.row): g for g in groups if g.row}
    lines: list[str] = []
    for g in groups:
        key = _baseline_key(g.table, g.row)
        if key is None or key not in by_row:
            continue
        base = by_row[key]
        for metric, label in _PAIRED_METRICS:
            a = {r.seed: r.summary.get(metric) for r in base.runs if r.status == "complete" and r.seed is not None}
            b = {r.seed: r.summary.get(metric) for r in g.runs if r.status == "complete" and r.seed is not None}
            result = paired(a, b)
            if result.n == 0:
                continue
            if not lines:
                head = ["method", "vs", "test error", "difference (points), 95% interval, tests", "per seed"]
                lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            per_seed = ", ".join(f"{s}: {d:+.2f}" for s, d in zip(result.seeds, result.diffs, strict=True))
            lines.append(f"| {g.name} | {base.name} | {label} | {result.describe()} | {per_seed} |")
    if not lines:
        return ""
    lines += [
        "",
        "Difference = method minus ERM at the same seed (same training images and initial weights), in percentage "
        "points; negative: the method errs less. Interval: Student t on the per-seed differences; t-test: paired, "
        "two-sided; sign-flip: exact two-sided permutation test of the differences (with n seeds its smallest "
        "possible p is 2/2^n).",
    ]
    return "\n".join(lines)


def table2_markdown(stats: Sequence[dict[str, Any]]) -> str:
    """Table 2 layout for the ``corrupted-labels`` groups: ours (mean ± std, n) beside the paper, per column."""
    rows = [s for s in stats if s["table"] == "corrupted-labels"]
    if not rows:
        return ""
    keys = ("best_test_error", "last_test_error", "last_train_error_real", "last_train_error_corrupted")
    head = [
        "corruption",
        "method",
        "n",
        "best test (%)",
        "last test (%)",
        "train real (%)",
        "train corrupted (%)",
        "test NLL",
        "ECE (%)",
        "paper best / last / real / corrupted",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sorted(rows, key=lambda r: (r["row"].split("/")[0].zfill(3), r["row"])):
        level, _, method = s["row"].partition("/")
        cells = [f"{level}%", method, str(s["n"])]
        cells += [_fmt(s[f"{k}_mean"], s[f"{k}_std"], s[f"{k}_n"]) for k in keys]
        cells.append(_fmt(s["last_test_nll_mean"], s["last_test_nll_std"], s["last_test_nll_n"], 3))
        cells.append(_fmt(s["last_test_ece_mean"], s["last_test_ece_std"], s["last_test_ece_n"]))
        paper = PAPER_TABLE2.get(s["row"])
        cells.append(" / ".join(f"{v:g}" for v in paper) if paper else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Table 3 (Section 3.5), ImageNet ResNet-101, eps 4/255: (mode, metric, method) -> (FGSM, I-FGSM) error (%).
PAPER_TABLE3: dict[tuple[str, str, str], tuple[float, float]] = {
    ("white", "top-1", "ERM"): (90.7, 99.9),
    ("white", "top-1", "mixup"): (75.2, 99.6),
    ("white", "top-5", "ERM"): (63.1, 93.4),
    ("white", "top-5", "mixup"): (49.1, 95.8),
    ("black", "top-1", "ERM"): (57.0, 57.3),
    ("black", "top-1", "mixup"): (46.0, 40.9),
    ("black", "top-5", "ERM"): (24.8, 18.1),
    ("black", "top-5", "mixup"): (17.4, 11.8),
}


def attack_results(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Every ``attacks/*.json`` of the runs (written by ``vicinal attack``), with the target's method added."""
    out = []
    for run in runs:
        folder = run.path / "attacks"
        if not folder.is_dir():
            continue
        variant = str(run.config.get("mix", {}).get("variant", "erm"))
        method = "ERM" if variant == "erm" else variant
        for f in sorted(folder.glob("*.json")):
            try:
                res = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise ReportError(f"'{f}' is not valid JSON") from None
            res["method"] = method
            res["group"] = run.name
            out.append(res)
    return out


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def attack_markdown(runs: Sequence[Run]) -> str:
    """Table 3 layout: rows (white/black box, top-1/top-5, method), one column per (eps, attack, I-FGSM steps),
    mean ± std over seeds (n), the paper's ImageNet numbers beside (eps 4 only). Results on different test subsets
    (``vicinal attack --every K``) go to separate tables: they are never averaged together."""
    results = attack_results(runs)
    if not results:
        return ""
    # (every, mode, metric, method, (eps, attack, steps)) -> errors; seeds and black-box sources are the samples
    cells: dict[tuple[int, str, str, str, tuple[float, str, int]], list[float]] = {}
    images: dict[int, set[int]] = {}
    for r in results:
        every = int(r.get("every", 1))
        images.setdefault(every, set()).add(int(r["n"]))
        column = (float(r["eps_pixels"]), r["attack"], int(r.get("steps", 1)) if r["attack"] == "ifgsm" else 1)
        for metric, key in (("top-1", "top1_error"), ("top-5", "top5_error")):
            cells.setdefault((every, r["mode"], metric, r["method"], column), []).append(float(r[key]))
            if r["attack"] == "fgsm":  # the clean error of the same images, once per attacked model and mode
                clean = (0.0, "clean", 0)
                cells.setdefault((every, r["mode"], metric, r["method"], clean), []).append(float(r[f"clean_{key}"]))
    lines: list[str] = []
    for every in sorted(images):
        keys = [k for k in cells if k[0] == every]
        columns = sorted({k[4] for k in keys}, key=lambda c: (c[1] != "clean", c[0], c[1] != "fgsm", c[2]))
        rows = sorted({k[1:4] for k in keys}, key=lambda k: (k[0] != "white", k[1], k[2] != "ERM", k[2]))
        if len(images) > 1 or every > 1:
            which = "every test image" if every == 1 else f"every {_ordinal(every)} test image"
            n_text = ", ".join(f"{n:,}" for n in sorted(images[every]))
            lines += [f"Attacked: {which} (n = {n_text} per model).", ""]
        head = ["attack", "metric", "method"]
        for eps, attack, steps in columns:
            if attack == "clean":
                head.append("clean")
            else:
                head.append(f"FGSM eps {eps:g}" if attack == "fgsm" else f"I-FGSM eps {eps:g} ({steps} steps)")
        head += ["paper FGSM / I-FGSM (ImageNet, eps 4)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for mode, metric, method in rows:
            line = [f"{mode} box", metric, method]
            for column in columns:
                line.append(_fmt(*mean_std(cells.get((every, mode, metric, method, column), []))))
            paper = PAPER_TABLE3.get((mode, metric, method))
            line.append(f"{paper[0]:g} / {paper[1]:g}" if paper else "-")
            lines.append("| " + " | ".join(line) + " |")
        lines.append("")
    lines.append(
        "Error (%) under attack, mean ± sample std over seeds; clean: the same images unattacked. White box: each "
        "model attacks itself; black box: examples crafted on a separately trained ERM source, evaluated on the "
        "method's model."
    )
    return "\n".join(lines)


def _plot(groups: Sequence[Group], path: Path) -> None:
    """Test error vs epoch: per group, the mean over seeds (line) and min-max over seeds (band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g in groups:
        per_epoch: dict[int, list[float]] = {}
        for run in g.runs:
            for r in run.records:
                if r.get("test_error") is not None:
                    per_epoch.setdefault(int(r["epoch"]), []).append(float(r["test_error"]))
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        mean = [statistics.mean(per_epoch[e]) for e in epochs]
        (line,) = ax.plot(epochs, mean, label=f"{g.name} (n={len(g.runs)})")
        if len(g.runs) > 1:
            lo = [min(per_epoch[e]) for e in epochs]
            hi = [max(per_epoch[e]) for e in epochs]
            ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title("test error vs epoch (mean over seeds; band: min-max)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _relpath(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (with ``..`` where needed), POSIX separators."""
    return Path(os.path.relpath(Path(path).absolute(), Path(start).absolute())).as_posix()


def make_report(paths: Iterable[str | Path], out: str | Path) -> dict[str, Any]:
    """Write ``report.md``, ``report.csv``, ``runs.csv`` and ``test_error.png`` into ``out``.

    Returns:
        ``{"markdown": str, "groups": list of per-group statistics, "files": list of written paths}``.
    """
    runs = [load_run(p) for p in find_runs(paths)]
    groups = group_runs(runs)
    stats = [_group_stats(g) for g in groups]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    table = markdown_table(stats)
    sources = sorted({g.table for g in groups if g.table in PAPER_SOURCES})
    lines = ["# vicinal report", "", table, ""]
    lines.append("Errors in percent: mean ± sample standard deviation over the finished runs' seeds (n given); 'done'")
    lines.append("counts the runs that finished all their epochs among those found (a row with none finished shows its")
    lines.append("partial runs). 'median of last 10 epochs' follows the first author's repository.")
    for t in sources:
        lines.append(f"Paper column ({t}): {PAPER_SOURCES[t]}.")
    pairs = paired_markdown(groups)
    if pairs:
        lines += ["", "## Paired differences against ERM", "", pairs]
    sizes = datasize_markdown(runs)
    if sizes:
        lines += ["", "## mixup's gain against the training-set size (beyond the paper)", "", sizes]
        if plot_datasize(runs, out / "datasize.png"):
            lines += ["", "![mixup - ERM against the training-set size](datasize.png)"]
    table2 = table2_markdown(stats)
    if table2:
        lines += ["", "## Table 2: memorization of corrupted labels", "", table2, ""]
        lines.append(
            "train real: error on the un-augmented training images whose label was kept, against it; train "
            "corrupted: error on the images whose label was replaced, against the replaced label (a replacement "
            "equals the true label with probability 1/C, so a model that ignores the noise scores about 90% at "
            "10 classes, one that memorised it about 0%). Measured after the last epoch."
        )
    table3 = attack_markdown(runs)
    if table3:
        lines += ["", "## Table 3: error under adversarial attack", "", table3]
    markdown = "\n".join(lines) + "\n"
    files = [out / "report.md", out / "report.csv", out / "runs.csv", out / "test_error.png"]
    files[0].write_text(markdown, encoding="utf-8")

    with files[1].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(stats[0]) if stats else ["name"])
        writer.writeheader()
        for s in stats:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()})
    run_fields = ["name", "seed", "status", "path", "epochs_completed"] + [k for k, _ in (*_COLUMNS, *_TRAIN_COLUMNS)]
    run_fields.append("train_time_s")
    with files[2].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=run_fields)
        writer.writeheader()
        for run in runs:
            # Relative to the report folder, so a committed report says nothing of one machine's layout.
            row = {"name": run.name, "seed": run.seed, "status": run.status, "path": _relpath(run.path, out)}
            row.update({k: run.summary.get(k) for k in run_fields[4:]})
            writer.writerow(row)
    _plot(groups, files[3])
    return {"markdown": markdown, "groups": stats, "files": files}
