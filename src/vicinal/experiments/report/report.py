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
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PAPER",
    "PAPER_SOURCES",
    "Group",
    "ReportError",
    "Run",
    "find_runs",
    "group_runs",
    "load_run",
    "make_report",
    "mean_std",
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


class ReportError(ValueError):
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
        if (p / "config.yaml").is_file():
            found.add(p.resolve())
            continue
        below = {c.parent.resolve() for c in p.rglob("config.yaml")}
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


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation (ddof 1; nan for n < 2), n); (nan, nan, 0) for no values."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return math.nan, math.nan, 0
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else math.nan), len(vals)


def _fmt(m: float, s: float, n: int, digits: int = 2) -> str:
    if n == 0:
        return "-"
    if n == 1 or math.isnan(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


_COLUMNS = (
    ("last_test_error", "test error, last epoch (%)"),
    ("median_last10_test_error", "median of last 10 epochs (%)"),
    ("best_test_error", "best epoch (%)"),
    ("last_test_nll", "test NLL"),
    ("last_test_ece", "ECE (%)"),
)


def _group_stats(g: Group) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": g.name,
        "table": g.table,
        "row": g.row,
        "n": len(g.runs),
        "seeds": " ".join(str(r.seed) for r in g.runs),
        "complete": sum(r.status == "complete" for r in g.runs),
        "epochs": " ".join(sorted({str(r.summary.get("epochs_completed", len(r.records))) for r in g.runs})),
        "paper": PAPER.get(g.table, {}).get(g.row),
        "train_time_s": mean_std([r.summary.get("train_time_s") for r in g.runs])[0],
    }
    for key, _ in _COLUMNS:
        m, s, n = mean_std([r.summary.get(key) for r in g.runs])
        row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = m, s, n
    return row


def markdown_table(stats: Sequence[dict[str, Any]]) -> str:
    """Markdown table of group statistics (mean ± sample std over seeds)."""
    head = ["run", "n (seeds)", "done"] + [label for _, label in _COLUMNS] + ["paper (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in stats:
        cells = [s["name"], f"{s['n']} ({s['seeds']})", f"{s['complete']}/{s['n']}"]
        for key, _ in _COLUMNS:
            digits = 3 if key == "last_test_nll" else 2
            cells.append(_fmt(s[f"{key}_mean"], s[f"{key}_std"], s[f"{key}_n"], digits))
        cells.append("-" if s["paper"] is None else f"{s['paper']:g}")
        lines.append("| " + " | ".join(cells) + " |")
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
    lines.append("Errors in percent: mean ± sample standard deviation over seeds (n given); 'done' counts runs")
    lines.append("that finished all their epochs. 'median of last 10 epochs' follows the first author's repository.")
    for t in sources:
        lines.append(f"Paper column ({t}): {PAPER_SOURCES[t]}.")
    markdown = "\n".join(lines) + "\n"
    files = [out / "report.md", out / "report.csv", out / "runs.csv", out / "test_error.png"]
    files[0].write_text(markdown, encoding="utf-8")

    with files[1].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(stats[0]) if stats else ["name"])
        writer.writeheader()
        for s in stats:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()})
    run_fields = ["name", "seed", "status", "path", "epochs_completed"] + [k for k, _ in _COLUMNS] + ["train_time_s"]
    with files[2].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=run_fields)
        writer.writeheader()
        for run in runs:
            row = {"name": run.name, "seed": run.seed, "status": run.status, "path": str(run.path)}
            row.update({k: run.summary.get(k) for k in run_fields[4:]})
            writer.writerow(row)
    _plot(groups, files[3])
    return {"markdown": markdown, "groups": stats, "files": files}
