"""Shared fixtures of the lab's tests.

* ``require_data`` (fixture): returns a function ``require_data(subpath) -> Path`` that skips the calling test
  when ``data_root()/subpath`` is absent (e.g. on a machine without the shared data).
* ``vicinal_cache`` (session, autouse): points ``VICINAL_CACHE`` at a temporary directory, so tests never
  read or write the user's decoded-data cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vicinal.experiments.paths import data_root


def require_data_path(subpath: str) -> Path:
    """``data_root()/subpath`` if it exists, else skip the current test with the reason."""
    path = data_root() / subpath
    if not path.exists():
        pytest.skip(f"shared data not found at {path}; set VICINAL_DATA")
    return path


@pytest.fixture(name="require_data")
def require_data_fixture() -> Callable[[str], Path]:
    """Use as ``def test_x(require_data): root = require_data("cifar10-jpeg")``."""
    return require_data_path


@pytest.fixture(scope="session", autouse=True)
def vicinal_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A per-session ``VICINAL_CACHE`` directory (restored afterwards)."""
    path = tmp_path_factory.mktemp("vicinal-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VICINAL_CACHE", str(path))
    yield path
    mp.undo()
