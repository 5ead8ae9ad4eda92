"""Paper tables as data: a registry of :class:`Table` objects that ``vicinal reproduce TABLE`` expands into runs.

A table is a list of config files per scale (``cpu``: a CPU-sized variant; ``paper``: the paper's exact
hyper-parameters), each run for several seeds through the one trainer. Tasks whose runs are not single trainer
runs (the GAN grid and the UCI tables train many seeds as one vmapped model) give a ``runner`` instead. Other
tasks register theirs with :func:`register_table` in their own module and add the module to ``_TASK_MODULES``.
"""

from __future__ import annotations

import importlib

from ..errors import TaskError
from .registry import SCALES, TABLES, Table, configs_dir, register_table

__all__ = ["SCALES", "TABLES", "Table", "configs_dir", "get_table", "load_tables", "register_table"]

# Modules that register tables when imported (each task adds its own line). Their order is the order of
# :data:`TABLES` after :func:`load_tables`, and with it the order of the tables' sections in a report.
_TASK_MODULES = ("cifar", "datasize", "robustness", "speech", "uci", "imagenet", "ablation", "gan")


def load_tables() -> None:
    """Import every task module, so that :data:`TABLES` holds all tables, in the order of ``_TASK_MODULES`` (each
    module's tables in the order it defines them), whichever module another import loaded first."""
    ordered: dict[str, Table] = {}
    for module in _TASK_MODULES:
        mod = importlib.import_module(f"{__name__}.{module}")
        ordered.update((t.name, t) for t in vars(mod).values() if isinstance(t, Table) and TABLES.get(t.name) is t)
    ordered.update(TABLES)  # tables registered elsewhere keep their place after these
    if list(TABLES) != list(ordered):
        TABLES.clear()
        TABLES.update(ordered)


def get_table(name: str) -> Table:
    """The registered table ``name``; ValueError listing the known tables otherwise."""
    load_tables()
    if name not in TABLES:
        raise TaskError(f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}")
    return TABLES[name]
