"""``vicinal report RUN_DIR... --out DIR``: run folders -> tables (markdown + CSV) and a test-error plot.

Runs are grouped by config name (the seed is not part of the name); each group shows n, mean ± sample standard
deviation over seeds of the last, best and median-of-last-10-epochs test error, and the paper's number for its
row where the paper has one (the run's table owns it: ``Table.paper``, with ``Table.paper_source``; ImageNet's
top-5 too: ``Table.paper_top5``). The number is marked "config differs: KEYS" when the runs' recorded config differs
from the row's shipped config (``Table.row_configs``) in keys that change the result (:func:`config_differences`):
a run trained with ``--set mix.alpha=0.2`` is not the paper's recipe. Incomplete
runs are reported with their status, never silently mixed with complete ones: a group's ``status`` column says
how many of its runs finished. Each table adds its own sections (``Table.sections``: Table 2's layout, the attack
table, the data-size curve); the report reads the tables, never the reverse.

The tables are those of ``tasks.TABLES``; `make_report` registers all of them first (``tasks.load_tables()``).
Run folders are read by `vicinal.experiments.runs` (``load_run``, ``find_runs``), which the figure tasks use too,
so no task imports the report.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import flat_config, unread_by_both
from ..errors import ReportError
from ..recipe import NOT_RESULT_KEYS, recipe_differences, run_provenance, split_by_provenance
from ..reliability import reliability_bins, save_reliability_diagram
from ..runs import Run, as_paths, clean_stale_temp_files, find_runs, load_run, write_csv, write_figure, write_text
from ..stats import fmt_mean_std, mean_std, paired
from ..tasks import TABLES, load_tables

__all__ = [
    "CONFIG_DIFFERS_NOTE",
    "NO_SHIPPED_CONFIG",
    "config_differences",
    "paper_number",
    "paper_sources",
    "paper_top5",
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
    "shipped_differences",
]


def paper_number(table: str, row: str) -> float | None:
    """The published number of ``row`` in ``table`` (the table's ``paper`` column), or None."""
    t = TABLES.get(table)
    return None if t is None else t.paper.get(row)


def paper_top5(table: str, row: str) -> float | None:
    """The published top-5 error of ``row`` in ``table`` (``Table.paper_top5``: ImageNet's), or None."""
    t = TABLES.get(table)
    return None if t is None else t.paper_top5.get(row)


def paper_sources(tables: Iterable[str]) -> dict[str, str]:
    """``table -> source`` of the tables among ``tables`` that publish row numbers, sorted by name."""
    return {t: TABLES[t].paper_source for t in sorted(set(tables)) if t in TABLES and TABLES[t].paper}


@dataclass
class Group:
    """Runs sharing a config name (one table row), one per seed.

    ``apart``: for the parts of a config name whose runs ran on other data or another number of processes (not
    pooled: `split_by_provenance`), how this part differs from the first; "" otherwise.
    """

    name: str
    table: str
    row: str
    runs: list[Run] = field(default_factory=list)
    apart: str = ""


# Keys that do not change what a run computes (owned by `recipe`: seed pooling, pairing and the paper column all
# read this one set).
_NOT_RESULT_KEYS = NOT_RESULT_KEYS
# Keys that name a run rather than its recipe (a `--set name=...` renames it); the run's (table, row) finds the
# shipped config, whose name says the scale ("-cpu"), which the config itself shows.
_IDENTITY_KEYS = frozenset({"name", "table", "row", "scale"})
_MISSING = object()


def config_differences(recorded: Mapping[str, Any], shipped: Mapping[str, Any]) -> list[str]:
    """Dotted keys in which a run's recorded config differs from a shipped config, in a way that changes the result.

    Keys only one side has (a run of another version of the lab) are not compared, nor :data:`_IDENTITY_KEYS` and
    :data:`_NOT_RESULT_KEYS`. Inside a ``kwargs`` mapping a key one side lacks is a difference (``--set
    model.kwargs.width=4`` on a config that leaves the width to the model's default), named ``model.kwargs.width``.
    """
    a, b = flat_config(recorded), flat_config(shipped)
    unread = unread_by_both(a, b)  # an ERM run's mix.alpha: the same result whatever it holds
    keys: list[str] = []
    for key in sorted(a.keys() & b.keys()):
        if key in _IDENTITY_KEYS or key in _NOT_RESULT_KEYS or key in unread:
            continue
        va, vb = a[key], b[key]
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            for sub in sorted(va.keys() | vb.keys(), key=str):
                full = f"{key}.{sub}"
                if full not in _NOT_RESULT_KEYS and va.get(sub, _MISSING) != vb.get(sub, _MISSING):
                    keys.append(full)
        elif va != vb:
            keys.append(key)
    return keys


def shipped_differences(runs: Sequence[Run], shipped: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The keys in which ``runs`` (one row's seeds) differ from the closest of their row's ``shipped`` configs (one
    per scale: a cpu run is compared with the cpu config); ``[]``: trained as shipped; None: no shipped config."""
    best: list[str] | None = None
    for config in shipped:
        keys = sorted({k for r in runs if isinstance(r.config, Mapping) for k in config_differences(r.config, config)})
        if best is None or len(keys) < len(best):
            best = keys
    return best


def _check_same_config(first: Run, run: Run) -> None:
    """Runs pooled as seeds of one row must share their config (keys one of them lacks, from another version of
    the lab, are not compared) and differ in seed: else the row's mean would mix two recipes, silently."""
    a, b = (flat_config(r.config) if isinstance(r.config, Mapping) else {} for r in (first, run))
    unread = unread_by_both(a, b)  # seeds of an ERM row recorded with two alphas trained alike
    differ = sorted(k for k in a.keys() & b.keys() if k not in _NOT_RESULT_KEYS and k not in unread and a[k] != b[k])
    if differ:
        shown = ", ".join(f"{k} ({a[k]!r} vs {b[k]!r})" for k in differ[:3]) + (" ..." if len(differ) > 3 else "")
        raise ReportError(
            f"runs named {run.name!r} differ in {shown}: {first.path} and {run.path}; report them separately"
        )
    if run.seed is not None and run.seed == first.seed:
        raise ReportError(
            f"two runs named {run.name!r} at seed {run.seed}: {first.path} and {run.path}; report one of them"
        )


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Group by config name, in order of first appearance; seeds sorted within a group.

    Runs of one name that ran on other data or with another number of processes (provenance.json) become groups
    of their own, named ``"name [i of k]"``, with :attr:`Group.apart` saying how they differ.

    Raises:
        ReportError: when two runs of one name differ in a config key that changes the result, or share a seed.
    """
    groups: dict[str, Group] = {}
    for run in runs:
        g = groups.setdefault(
            run.name, Group(run.name, str(run.config.get("table", "")), str(run.config.get("row", "")))
        )
        for other in g.runs:
            _check_same_config(other, run)
        g.runs.append(run)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
    return [part for g in groups.values() for part in _split_apart(g)]


def _split_apart(g: Group) -> list[Group]:
    """``g`` in one group per set of runs that ran alike (data, world size): seeds of one config trained on other
    data or with another number of processes are other experiments, shown as rows "name [i of k]", never pooled."""
    parts = split_by_provenance(g.name, g.runs)
    if len(parts) == 1:
        return [g]
    first = parts[0][0]
    return [
        Group(name, g.table, g.row, runs, f"differs from {first} in {text}" if text else "")
        for name, runs, text in parts
    ]


_fmt = fmt_mean_std


_COLUMNS = (
    ("last_test_error", "test error, last epoch (%)"),
    ("median_last10_test_error", "median of last 10 epochs (%)"),
    ("best_test_error", "best epoch, picked on test (%)"),
    ("last_test_nll", "test NLL"),
    ("last_test_ece", "ECE (%)"),
)
# Shown only when some run measured them: the validation error where a table holds out a validation split (speech,
# UCI: the paper reports it beside the test error), the training errors (every run since the regime issue).
_MEASURED_COLUMNS = (
    ("last_val_error", "validation error, last epoch (%)"),
    ("last_train_eval_error", "train error, un-augmented (%)"),
    ("last_train_error_real", "train error, real labels (%)"),
    ("last_train_error_corrupted", "train error, corrupted labels (%)"),
)

# Shown beside the top-1 error for the tables whose paper publishes top-5 errors (``Table.paper_top5``: ImageNet).
_TOP5_COLUMN = ("last_test_top5_error", "top-5 error, last epoch (%)")


def _group_stats(g: Group, shipped: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """The group's row of the report; ``shipped`` (row -> shipped configs of its table) marks a paper number that
    belongs to another recipe than the group's runs (``paper_config_differs``: the differing keys, or
    :data:`NO_SHIPPED_CONFIG`)."""
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
        "paper": paper_number(g.table, g.row),
        "train_time_s": mean_std([r.summary.get("train_time_s") for r in counted])[0],
    }
    for key, _ in (*_COLUMNS, *_MEASURED_COLUMNS):
        m, s, n = mean_std([r.summary.get(key) for r in counted])
        row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = m, s, n
    table = TABLES.get(g.table)
    if table is not None and table.paper_top5:
        # only the rows of a table that publishes top-5 errors carry the keys (the CSV's columns): the other tables'
        # runs measure top-5 as well, and their reports stay as they were
        key = _TOP5_COLUMN[0]
        m, s, n = mean_std([r.summary.get(key) for r in counted])
        row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = m, s, n
        row["paper_top5"] = paper_top5(g.table, g.row)
    if shipped is not None and (row["paper"] is not None or row.get("paper_top5") is not None):
        differs = shipped_differences(g.runs, shipped.get(g.row, ()))
        if differs != []:  # the key only where it says something: the CSV of runs trained as shipped stays as it was
            row["paper_config_differs"] = NO_SHIPPED_CONFIG if differs is None else " ".join(differs)
    return row


NO_SHIPPED_CONFIG = "no shipped config of this row"


def data_line(groups: Sequence[Group]) -> str:
    """``"Data (provenance.json): cifar10 from cifar10-jpeg (c10-erm, c10-mixup)."``: which data each group's runs
    read (the dataset and the source the loader picked, e.g. CIFAR-10's JPEG re-encoded copy or the original
    release); "" when no run recorded it (run folders of older lab versions)."""
    used: dict[str, list[str]] = {}
    for g in groups:
        for run in g.runs:
            record = run_provenance(run).get("data")
            if isinstance(record, Mapping) and record.get("name"):
                what = f"{record['name']}" + (f" from {record['source']}" if record.get("source") else "")
                if g.name not in used.setdefault(what, []):
                    used[what].append(g.name)
    if not used:
        return ""
    return "Data (provenance.json): " + "; ".join(f"{what} ({', '.join(names)})" for what, names in used.items()) + "."


CONFIG_DIFFERS_NOTE = (
    "A paper number marked 'config differs: KEYS' stands beside runs whose recorded config (config.yaml) differs in "
    "KEYS from the shipped config of their row (the closest of its scales): a `--set` override, an edited file, or a "
    "config changed since the runs were trained. The paper's number is for the shipped recipe, not for these runs. "
    "Not compared: the run's name, table, row and seed, and the keys that do not change the result ("
    + ", ".join(sorted(_NOT_RESULT_KEYS - {"train.seed"}))
    + ")."
)
FEWER_SEEDS_NOTE = (
    "A cell marked '(n=k)' averages the k runs of its row that recorded that value, fewer than the row's n (a run "
    "that never measured it)."
)
_SHOWN_KEYS = 4  # a paper cell names this many differing keys, then counts the rest (the CSV has them all)


def _paper_cell(number: float | None, differs: str | None = None) -> str:
    """The paper's number, marked when the row's runs are not its shipped recipe (see ``_group_stats``)."""
    if number is None:
        return "-"
    if differs is None:
        return f"{number:g}"
    if differs == NO_SHIPPED_CONFIG:
        return f"{number:g} ({differs})"
    keys = differs.split()
    more = f", +{len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return f"{number:g} (config differs: {', '.join(keys[:_SHOWN_KEYS])}{more})"


def _table_columns(stats: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (summary key, label) columns the report table shows for these groups."""
    columns = list(_COLUMNS)
    top5 = any(s.get(f"{_TOP5_COLUMN[0]}_n") for s in stats)
    if top5:
        columns.insert(1, _TOP5_COLUMN)
    corrupted = any(s.get("last_train_error_corrupted_n") for s in stats)
    for key, label in _MEASURED_COLUMNS:
        # On clean labels the "real labels" column repeats the un-augmented one; show the split only with noise.
        if key.startswith("last_train_error_") and not corrupted:
            continue
        if any(s.get(f"{key}_n") for s in stats):
            columns.append((key, label))
    return columns


def _fewer_seeds(s: dict[str, Any], key: str) -> bool:
    """A counted run lacks ``key`` (it never measured it): the cell averages fewer seeds than the row's n."""
    return 0 < s.get(f"{key}_n", 0) < s["n"]


def markdown_table(stats: Sequence[dict[str, Any]]) -> str:
    """Markdown table of group statistics (mean ± sample std over seeds)."""
    columns = _table_columns(stats)
    top5 = _TOP5_COLUMN in columns
    head = ["run", "n (seeds)", "done"] + [label for _, label in columns] + ["paper (%)"]
    if top5:
        head.append("paper top-5 (%)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in stats:
        # a run of an older lab (before config names refused '|') would split its cell: escaped, as markdown reads it
        name = str(s["name"]).replace("|", "\\|")
        cells = [name, f"{s['n']} ({s['seeds']})", f"{s['complete']}/{s['runs']}"]
        for key, _ in columns:
            digits = 3 if key == "last_test_nll" else 2
            n = s.get(f"{key}_n", 0)
            # the three keys are written together (`_group_stats`); without them n is 0 and the cell is "-"
            cell = _fmt(s.get(f"{key}_mean", math.nan), s.get(f"{key}_std", math.nan), n, digits)
            # the cell says when it averages fewer seeds than its row, so that no mean passes for one over every seed
            cells.append(f"{cell} (n={n})" if _fewer_seeds(s, key) else cell)
        cells.append(_paper_cell(s.get("paper"), s.get("paper_config_differs")))
        if top5:
            cells.append(_paper_cell(s.get("paper_top5"), s.get("paper_config_differs")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Paired comparisons: each row against its table's baseline row, seed by seed: by default the ERM row of the same
# row prefix ("cifar10/preact_resnet18/mixup" against "cifar10/preact_resnet18/erm"), or what ``Table.baseline``
# names (Table 5 pairs "latent-layer1/wd5e-4" with "erm/wd5e-4"); a row without such a partner is not compared.
_PAIRED_METRICS = (
    ("median_last10_test_error", "median of last 10"),
    ("last_test_error", "last epoch"),
)


def _baseline_key(table: str, row: str) -> tuple[str, str] | None:
    t = TABLES.get(table)
    if t is not None and t.baseline is not None:
        base = t.baseline(row)
    else:
        prefix, _, method = row.rpartition("/")
        base = f"{prefix}/erm" if prefix and method != "erm" else None
    return None if base is None or base == row else (table, base)


def _baseline_of(g: Group, groups: Sequence[Group]) -> tuple[Group | None, str]:
    """The group ``g`` is paired with, or None and why not ("" when no group holds its baseline row at all).

    Of the groups of the baseline row, the one that ran ``g``'s recipe outside the method (`recipe_differences`
    outside ``Table.method_keys``: same training recipe, same data, same number of processes): a config derived
    with ``base:`` keeps its parent's table and row, so the baseline row may hold runs of another data set or
    recipe, which are not a pairing of the same training images and initial weights.
    """
    key = _baseline_key(g.table, g.row)
    if key is None:
        return None, ""
    rows = [b for b in groups if (b.table, b.row) == key]
    if not rows:
        return None, ""
    t = TABLES.get(g.table)
    ignore = t.method_keys if t is not None else ("mix",)
    differs = [(b, recipe_differences(b.runs[0], g.runs[0], ignore=ignore)) for b in rows]
    same = [b for b, text in differs if not text]
    if len(same) == 1:
        return same[0], ""
    if same:
        return None, f"{len(same)} groups of row {key[1]!r} ran its recipe: {', '.join(b.name for b in same)}"
    why = "; ".join(f"{b.name} differs in {text}" for b, text in differs)
    return None, f"no group of row {key[1]!r} ran its recipe ({why})"


_UNPAIRED = (
    "Not paired (a method is paired only with the ERM group of its recipe: same config outside the method's keys, "
    "same data, same number of processes):"
)


def _pairable(run: Run, metric: str) -> bool:
    return run.status == "complete" and run.seed is not None and run.summary.get(metric) is not None


def paired_markdown(groups: Sequence[Group]) -> str:
    """Each method minus its ERM row, paired by seed: mean difference, 95% interval, paired t-test, sign-flip test.

    Negative differences mean the method has the lower test error. Runs that did not finish are left out. A method
    is paired only with the ERM group of its own recipe (`_baseline_of`); one with none, or several, is listed below
    the table, unpaired.
    """
    lines: list[str] = []
    unpaired: list[str] = []
    for g in groups:
        base, why = _baseline_of(g, groups)
        # said only where a pairing would show a number (not for runs without test errors, as the GAN table's)
        if why and any(_pairable(r, metric) for r in g.runs for metric, _ in _PAIRED_METRICS):
            unpaired.append(f"- {g.name}: {why}.")
        if base is None:
            continue
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
    if lines:
        lines += [
            "",
            "Difference = method minus ERM at the same seed (same training images and initial weights), in "
            "percentage points; negative: the method errs less. Interval: Student t on the per-seed differences; "
            "t-test: paired, two-sided; sign-flip: two-sided permutation test of the differences, exact up to 16 "
            "seeds (with n seeds its smallest possible p is 2/2^n), from 100,000 drawn sign assignments beyond.",
        ]
    if unpaired:
        lines += [*([""] if lines else []), _UNPAIRED, *unpaired]
    return "\n".join(lines)


def _plot(groups: Sequence[Group], path: Path) -> None:
    """Test error vs epoch: per group, the mean over seeds (line) and min-max over seeds (band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g in groups:
        # the runs the table counts (`_group_stats`): the finished ones once there are any, so the legend's n and the
        # curve agree with the table, and a run still training is not averaged into the finished ones' last epochs
        counted = [r for r in g.runs if r.status == "complete"] or g.runs
        per_epoch: dict[int, list[float]] = {}
        for run in counted:
            for r in run.records:
                if r.get("test_error") is not None:
                    per_epoch.setdefault(int(r["epoch"]), []).append(float(r["test_error"]))
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        mean = [statistics.mean(per_epoch[e]) for e in epochs]
        (line,) = ax.plot(epochs, mean, label=f"{g.name} (n={len(counted)})")
        if len(counted) > 1:
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
    write_figure(path, fig, dpi=120)
    plt.close(fig)


def _relpath(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (with ``..`` where needed), POSIX separators."""
    return Path(os.path.relpath(Path(path).absolute(), Path(start).absolute())).as_posix()


# The paper's Table 2 reports such a column ("best"); it is selected on the test split, so it is no estimate of the
# error of a recipe fixed in advance: said once under every table that shows it.
BEST_EPOCH_NOTE = (
    "'best epoch, picked on test': the lowest test error over a run's evaluations, chosen by looking at the test "
    "split (an oracle, as the paper's 'best' column of Table 2); the last epoch and the median of the last 10 are "
    "not chosen on test."
)


def _median_note(groups: Sequence[Group]) -> str:
    """A note for runs whose 'median of last 10 epochs' is not that: fewer than 10 evaluations, or the last 10 spread
    over more than 10 epochs (train.eval_every > 1); "" when every run's is."""
    short, spread = 0, 0
    for g in groups:
        for r in g.runs:
            # the evaluations' epochs (the lab writes one with every record; a hand-edited file may not)
            evaluated = (rec.get("epoch") for rec in r.records if rec.get("test_error") is not None)
            epochs = [e for e in evaluated if e is not None][-10:]
            if not epochs:
                continue
            if len(epochs) < 10:
                short += 1
            elif epochs[-1] - epochs[0] != len(epochs) - 1:
                spread += 1
    parts = [f"{short} run(s) evaluated fewer than 10 times (the median of those)"] * bool(short)
    parts += [f"{spread} run(s) evaluated less often than every epoch (the median of the last 10 evaluations)"] * bool(
        spread
    )
    return f"'median of last 10 epochs': {'; '.join(parts)}." if parts else ""


def make_report(
    paths: str | Path | Iterable[str | Path], out: str | Path, *, sections: Collection[str] | None = None
) -> dict[str, Any]:
    """Write ``report.md``, ``report.csv``, ``runs.csv`` and ``test_error.png`` into ``out``.

    The paper column and the tables' own sections come from the tables (all of them: ``tasks.load_tables()``);
    ``sections`` names the tables whose own sections the page gets (default: every table's).

    Returns:
        ``{"markdown": str, "groups": list of per-group statistics, "files": list of written paths}``.
    """
    load_tables()
    paths = as_paths(paths)
    if not paths:  # an empty report was written, where `vicinal report` and make_document refuse
        raise ReportError("make_report needs run folders (or folders holding them), got none")
    if sections is not None:  # a str was matched by substring ("uci gan" took both), an unknown name ignored
        sections = [sections] if isinstance(sections, str) else list(sections)
        unknown = [name for name in sections if name not in TABLES]
        if unknown:
            raise ReportError(f"unknown table {unknown[0]!r} in sections; known: {', '.join(TABLES)}")
    runs = [load_run(p) for p in find_runs(paths)]
    groups = group_runs(runs)
    # each table's shipped configs, loaded once (only for the tables whose runs stand beside a published number)
    shipped = {
        t: TABLES[t].row_configs()
        for t in {g.table for g in groups}
        if t in TABLES and (TABLES[t].paper or TABLES[t].paper_top5)
    }
    stats = [_group_stats(g, shipped.get(g.table)) for g in groups]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # a report killed while it wrote left its temporary file; the tables' sections name files of their own
    clean_stale_temp_files(out, None)

    table = markdown_table(stats)
    sources = paper_sources(g.table for g in groups)
    lines = ["# vicinal report", "", table, ""]
    lines.append("Errors in percent: mean ± sample standard deviation over the finished runs' seeds (n given); 'done'")
    lines.append("counts the runs that finished all their epochs among those found (a row with none finished shows its")
    lines.append("partial runs). 'median of last 10 epochs' follows the first author's repository.")
    if any(s.get("best_test_error_n") for s in stats):
        lines.append(BEST_EPOCH_NOTE)
    median = _median_note(groups)
    if median:
        lines.append(median)
    for table_name, source in sources.items():
        lines.append(f"Paper column ({table_name}): {source}.")
    apart = [f"- {g.name}: {g.apart}." for g in groups if g.apart]
    if apart:
        lines += ["", "Runs of one config that ran on other data or with another number of processes (provenance.json)"]
        lines += ["are separate rows, not pooled as seeds:", *apart]
    if any(_fewer_seeds(s, key) for s in stats for key, _ in _table_columns(stats)):
        lines.append(FEWER_SEEDS_NOTE)
    if any("paper_config_differs" in s for s in stats):
        lines.append(CONFIG_DIFFERS_NOTE)
    data = data_line(groups)
    if data:
        lines.append(data)
    pairs = paired_markdown(groups)
    if pairs:
        lines += ["", "## Paired differences against ERM", "", pairs]
    for t in TABLES.values():
        if t.sections is not None and (sections is None or t.name in sections):
            lines += t.sections(runs, stats, out)
    markdown = "\n".join(lines) + "\n"
    files = [out / "report.md", out / "report.csv", out / "runs.csv", out / "test_error.png"]
    # Written atomically (runs.write_text / write_csv), like every file of a run folder: a reader of the report
    # folder never sees half a file.
    write_text(files[0], markdown)
    # every key of any row (a table's own columns, such as ImageNet's top-5, appear only in its rows' statistics)
    header = list(dict.fromkeys(k for s in stats for k in s)) or ["name"]
    write_csv(
        files[1],
        header,
        ({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()} for s in stats),
    )
    run_fields = ["name", "seed", "status", "path", "epochs_completed"] + [
        k for k, _ in (*_COLUMNS, *_MEASURED_COLUMNS)
    ]
    run_fields.append("train_time_s")
    run_rows = []
    for run in runs:
        # Relative to the report folder, so a committed report says nothing of one machine's layout.
        row = {"name": run.name, "seed": run.seed, "status": run.status, "path": _relpath(run.path, out)}
        row.update({k: run.summary.get(k) for k in run_fields[4:]})
        run_rows.append(row)
    write_csv(files[2], run_fields, run_rows)
    _plot(groups, files[3])
    return {"markdown": markdown, "groups": stats, "files": files}
