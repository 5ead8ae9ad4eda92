"""The table registry: :class:`Table`, :data:`TABLES` and :func:`register_table`.

Task modules import this module (never the ``tasks`` package itself) to register their tables; the package imports
the task modules (``load_tables``). So the registry depends on no task, and no task on the package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabFileNotFoundError, TaskError
from ..paths import configs_dir as _package_configs_dir

__all__ = ["SCALES", "TABLES", "Table", "config_files", "configs_dir", "register_table"]

SCALES = ("cpu", "paper")
TABLES: dict[str, Table] = {}


def configs_dir() -> Path:
    """The shipped configs: the package folder ``vicinal/experiments/configs`` (package data, also in a wheel)."""
    return _package_configs_dir()


def config_files(folder: str, scale: str, scales: tuple[str, ...] = SCALES) -> list[Path]:
    """The shipped config files of ``configs/<folder>/<scale>/``, sorted by name (the rows of a table).

    Raises TaskError for a scale outside ``scales`` and LabFileNotFoundError when the folder holds no config.
    """
    if scale not in scales:
        raise TaskError(f"unknown scale {scale!r}; known scales: {', '.join(scales)}")
    path = configs_dir() / folder / scale
    files = sorted(path.glob("*.yaml"))
    if not files:
        raise LabFileNotFoundError(f"no config files in '{path}' (the configs shipped in the package)")
    return files


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
        runner: for tables that are not a set of trainer runs: ``runner(out_dir, scale, seeds, overrides=[...],
            dry_run=False)`` trains and reports the whole table (``seeds`` None: the table's default). It prints
            its own banner; a user error is a ``ValueError`` (one line, exit 2 in the CLI).
    """

    name: str
    title: str
    configs: Callable[[str], list[Path]]
    default_seeds: dict[str, int] = field(default_factory=lambda: {"cpu": 3, "paper": 1})
    notes: str = ""
    runner: Callable[..., Any] | None = None
    row_seeds: Callable[[str, Path], int] | None = None

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
