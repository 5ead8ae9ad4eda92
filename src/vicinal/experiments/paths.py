"""Where the lab finds its configs and data and keeps its caches.

Configs ship inside the package (``vicinal/experiments/configs/``), so an installed wheel has them; see
:func:`configs_dir`.

Data: ``--data DIR`` (the commands that read data set ``VICINAL_DATA`` from it) or ``$VICINAL_DATA`` name the
data root. Without either, a source checkout uses the shared, read-only copy beside the project
(``../shared/data`` from the project root, where this project is developed); an installed package has no default
and :func:`data_root` raises a one-line error naming both. Decoded caches never go into the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataNotFoundError, LabFileNotFoundError

__all__ = [
    "PROJECT_ROOT",
    "SOURCE_CHECKOUT",
    "cache_dir",
    "configs_dir",
    "data_root",
    "default_data_root",
    "source_root",
]

_HERE = Path(__file__).resolve()
# src/vicinal/experiments/paths.py -> parents[3] is the project root in a source checkout (and nothing meaningful in
# an installed package: use source_root(), which is None there).
PROJECT_ROOT = _HERE.parents[3]
# A source checkout: this very file is PROJECT_ROOT/src/vicinal/experiments/paths.py beside a pyproject.toml.
SOURCE_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (
    PROJECT_ROOT / "src" / "vicinal" / "experiments" / "paths.py"
).resolve() == _HERE
_PACKAGE_CONFIGS = _HERE.parent / "configs"


def source_root() -> Path | None:
    """The project root of a source checkout this module runs from, or None (an installed package)."""
    return PROJECT_ROOT if SOURCE_CHECKOUT else None


def configs_dir() -> Path:
    """The shipped configs: the package folder ``vicinal/experiments/configs`` (package data of the wheel)."""
    return _PACKAGE_CONFIGS


def default_data_root() -> Path | None:
    """The data root without ``VICINAL_DATA``: ``<project root>/../shared/data`` in a source checkout, else None."""
    if not SOURCE_CHECKOUT:
        return None
    return (PROJECT_ROOT / ".." / "shared" / "data").resolve()


def data_root() -> Path:
    """Root of the real data: ``$VICINAL_DATA`` (``--data``), else :func:`default_data_root`.

    Raises:
        DataNotFoundError: neither is set (an installed package run without ``VICINAL_DATA`` or ``--data``).
    """
    env = os.environ.get("VICINAL_DATA")
    if env:
        return Path(env).expanduser()
    default = default_data_root()
    if default is None:
        raise DataNotFoundError(
            "no data folder: set VICINAL_DATA=DIR or pass --data DIR (an installed vicinal has no default data "
            "folder; only a source checkout looks in ../shared/data)"
        )
    return default


def cache_dir() -> Path:
    """Directory for decoded datasets and other caches: ``$VICINAL_CACHE``, else ``~/.cache/vicinal``.

    Raises:
        LabFileNotFoundError: the folder cannot be created (``VICINAL_CACHE`` names a file, a path below a file,
            or a place without write permission); the message names the variable and what to do.
    """
    env = os.environ.get("VICINAL_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "vicinal"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError for a file, NotADirectoryError below one, PermissionError
        what = f"VICINAL_CACHE={env!r}" if env else f"the default cache folder {str(path)!r}"
        reason = f"{type(exc).__name__}: {exc.strerror or exc}"
        raise LabFileNotFoundError(
            f"{what} cannot be used as the cache folder ({reason}); set VICINAL_CACHE to a writable folder"
        ) from None
    return path
