"""Where the lab finds data and keeps its caches.

The shared, read-only data lives beside the project (``../shared/data`` from the project root) on the machines
this project is developed on; users point ``VICINAL_DATA`` anywhere else. Decoded caches never go into the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

# src/vicinal/experiments/paths.py -> parents[3] is the project root in a source checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def data_root() -> Path:
    """Root of the real data: ``$VICINAL_DATA``, else ``<project root>/../shared/data``."""
    env = os.environ.get("VICINAL_DATA")
    if env:
        return Path(env).expanduser()
    return (PROJECT_ROOT / ".." / "shared" / "data").resolve()


def cache_dir() -> Path:
    """Directory for decoded datasets and other caches: ``$VICINAL_CACHE``, else ``~/.cache/vicinal``."""
    env = os.environ.get("VICINAL_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "vicinal"
    path.mkdir(parents=True, exist_ok=True)
    return path
