"""The table registry: :class:`Table`, :data:`TABLES` and :func:`register_table`.

Task modules import this module (never the ``tasks`` package itself) to register their tables; the package imports
the task modules (``load_tables``). So the registry depends on no task, and no task on the package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import config_to_dict, load_config, sweep_rows
from ..errors import LabFileNotFoundError, TaskError
from ..paths import configs_dir as _package_configs_dir

__all__ = [
    "SCALES",
    "TABLES",
    "Table",
    "config_files",
    "configs_dir",
    "paper_pairs_source",
    "register_table",
    "sweep_files",
]

SCALES = ("cpu", "paper")
TABLES: dict[str, Table] = {}


def configs_dir() -> Path:
    """The shipped configs: the package folder ``vicinal/experiments/configs`` (package data, also in a wheel)."""
    return _package_configs_dir()


def sweep_files(folder: str, scale: str, scales: tuple[str, ...] = SCALES) -> list[Path]:
    """The configs of ``configs/<folder>/<scale>``: the rows of the sweep file ``configs/<folder>/<scale>.yaml`` in
    declared order (their paths ``configs/<folder>/<scale>/<row>.yaml`` name no file: ``load_config`` expands the
    sweep), then the files in the folder ``configs/<folder>/<scale>/``, sorted by name.

    Raises TaskError for a scale outside ``scales`` and LabFileNotFoundError when there is no config.
    """
    if scale not in scales:
        raise TaskError(f"unknown scale {scale!r}; known scales: {', '.join(scales)}")
    path = configs_dir() / folder / scale
    sweep = path.with_suffix(".yaml")
    files = [path / f"{row}.yaml" for row in sweep_rows(sweep)] if sweep.is_file() else []
    files += sorted(path.glob("*.yaml"))
    if not files:
        raise LabFileNotFoundError(f"no configs in '{sweep}' nor in '{path}' (the configs shipped in the package)")
    return files


def config_files(folder: str, scale: str, scales: tuple[str, ...] = SCALES) -> list[Path]:
    """:func:`sweep_files` sorted by name (the rows of a table, in the order of their file names)."""
    return sorted(sweep_files(folder, scale, scales))


def paper_pairs_source(
    source: str, shown: str, names: tuple[str, str], numbers: Mapping[str, tuple[float | None, float | None]]
) -> str:
    """The ``paper_source`` of a table that publishes two numbers per row but shows one in the paper column:
    ``"<source>; the column is the <shown> (<a> / <b>: row a / b, ...)"``, ``-`` for a number the paper omits."""

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    pairs = ", ".join(f"{row} {cell(a)} / {cell(b)}" for row, (a, b) in numbers.items())
    return f"{source}; the column is the {shown} ({names[0]} / {names[1]}: {pairs})"


@dataclass(frozen=True)
class Table:
    """One paper table (or figure) to reproduce.

    Attributes:
        name: the registry key (``vicinal reproduce NAME``).
        title: what it reproduces, with the paper's section.
        configs: ``scale -> list of config files`` (one per row).
        default_seeds: seeds per scale when ``--seeds`` is not given.
        notes: how the cpu scale differs from the paper and why.
        row_seeds: ``(scale, config path) -> seeds`` for tables whose rows want different seed counts; ``None``
            (the default) gives every row ``default_seeds[scale]``. ``--seeds`` overrides both.
        paper: the published number of each row (config ``row`` key -> percent) that the report shows in its
            "paper (%)" column beside the measured test error; rows the paper does not report are absent.
        paper_source: where :attr:`paper` comes from (publication, table, transcription), printed under the table.
        paper_top5: the published top-5 error of each row, for a table whose paper reports it beside the top-1 error
            in :attr:`paper` (ImageNet's Table 1); a table with any gets a measured and a published top-5 column in
            the report. The other tables' runs measure top-5 too, but their paper publishes none: no column.
        sections: the table's own report layout beyond the common table: ``sections(runs, stats, out_dir)`` returns
            markdown lines appended to the report (``[]`` when the runs hold nothing for it). ``runs`` are the loaded
            run folders (``runs.Run``: ``path``, ``config``, ``records``, ``summary``, ``seed``, ``status``),
            ``stats`` the report's per-row statistics; it may write figures into ``out_dir``. Every table's hook
            sees all runs (the data-size curve also uses the cifar table's runs), in the order of ``TABLES``
            (``tasks._TASK_MODULES`` after ``tasks.load_tables()``).
        after_training: the step after every run of the table is trained (the adversarial table's attacks):
            ``after_training(plan, args)`` with the plan of ``vicinal reproduce`` (dicts with ``config``, ``cfg``,
            ``seed``, ``run_dir``) and its arguments; run once, by the process that writes the report.
        shipped_rows: for a table whose :attr:`configs` are no trainer configs (uci: one protocol file): ``() ->
            {row: [config mapping, ...]}``, the configs its runs of each row record when trained as shipped (several
            where the row has several recipes: the alphas a selected mixup row may have). See :meth:`row_configs`.
        baseline: the row each row is compared with seed by seed in the report's paired differences (``row ->
            baseline row``, None for none); ``None`` (the default) pairs ``prefix/method`` with ``prefix/erm``.
        method_keys: the config keys (dotted; each also stands for the keys below it) that make a row's method: a
            row is paired with a run of its baseline row only when their recipes agree outside these (the same data,
            optimizer, schedule, epochs, ...); the default ``("mix",)``, the mixing settings.
        draws_on: the tables whose runs this table's sections read as well (the data-size curve's 2,000-image point
            and Table 3's attacked models are cifar runs): a results page (``vicinal report --document``) builds this
            table's block from its own runs and theirs, and their block leaves this table's sections to it.
        runner: for tables that are not a set of trainer runs: ``runner(out_dir, scale, seeds, overrides=[...],
            dry_run=False, quiet=False)`` trains and reports the whole table (``seeds`` None: the table's default;
            ``quiet``: no progress lines). It prints its own banner; a user error is a ``TaskError`` or another
            ``LabError`` (one line, exit 2 in the CLI; a plain ValueError is taken for a bug and keeps its traceback).
    """

    name: str
    title: str
    configs: Callable[[str], list[Path]]
    default_seeds: dict[str, int] = field(default_factory=lambda: {"cpu": 3, "paper": 1})
    notes: str = ""
    runner: Callable[..., Any] | None = None
    row_seeds: Callable[[str, Path], int] | None = None
    after_training: Callable[[list[dict[str, Any]], Any], Any] | None = None
    paper: Mapping[str, float] = field(default_factory=dict)
    paper_source: str = ""
    paper_top5: Mapping[str, float] = field(default_factory=dict)
    sections: Callable[[Sequence[Any], Sequence[dict[str, Any]], Path], list[str]] | None = None
    baseline: Callable[[str], str | None] | None = None
    method_keys: tuple[str, ...] = ("mix",)
    shipped_rows: Callable[[], Mapping[str, Sequence[Mapping[str, Any]]]] | None = None
    draws_on: tuple[str, ...] = ()

    def row_configs(self) -> dict[str, list[dict[str, Any]]]:
        """``row -> the row's shipped configs`` as plain mappings (one per scale that ships the row), which the report
        compares a run's recorded config with before it puts the paper's number beside the run.

        From :attr:`shipped_rows` when given; else every config of :attr:`configs` at every scale the table has,
        loaded by ``load_config``, that names this table (the datasize table also lists cifar's configs). A table
        with a ``runner`` and no ``shipped_rows`` (gan: no published row numbers) has none.
        """
        if self.shipped_rows is not None:
            return {row: [dict(c) for c in configs] for row, configs in self.shipped_rows().items()}
        rows: dict[str, list[dict[str, Any]]] = {}
        if self.runner is not None:
            return rows
        for scale in SCALES:
            try:
                paths = self.configs(scale)
            except TaskError:  # a scale this table does not have (imagenet: no cpu scale; datasize: no paper scale)
                continue
            for path in paths:
                cfg = load_config(path)
                if cfg.table == self.name:
                    rows.setdefault(cfg.row, []).append(config_to_dict(cfg))
        return rows

    def seeds_of(self, scale: str, path: Path) -> int:
        """Seeds of the row ``path`` at ``scale`` when ``--seeds`` is not given."""
        if self.row_seeds is not None:
            return self.row_seeds(scale, path)
        return self.default_seeds.get(scale, 1)


def register_table(table: Table) -> Table:
    """Add ``table`` to :data:`TABLES`; a second table of the same name is an error."""
    if table.name in TABLES:
        raise ValueError(f"table {table.name!r} is already registered")  # a programming error, not the user's
    TABLES[table.name] = table
    return table


def resume_line(out: Path, recorded: int, total: int, parts: str, *, dry_run: bool = False) -> str:
    """What a rerun of a table that records its finished parts (gan groups, uci datasets) does with ``out``:
    ``'<out>': 2 of 6 datasets recorded; training the rest`` (``dry_run``: ``dry run: ...; would train ...``)."""
    if recorded == total:
        todo = "would train nothing (the outputs would be rewritten)" if dry_run else "nothing to train"
    else:
        todo = f"would train the other {total - recorded}" if dry_run else "training the rest"
    return f"{'dry run: ' if dry_run else ''}'{out}': {recorded} of {total} {parts} recorded; {todo}"
