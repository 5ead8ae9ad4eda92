"""The README's python blocks and the library's docstring examples run as written: a quick start that does not
run is a defect."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import vicinal

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_readme_has_a_quick_start() -> None:
    assert BLOCKS, "README.md has no python block"
    assert "vicinal.Mixup(" in BLOCKS[0] and "for x, y in loader" in BLOCKS[0]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int) -> None:
    # Each block is self-contained: a fresh namespace, nothing defined by the test.
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})


# the library's modules (the lab's live under vicinal.experiments): their `>>>` examples are doctests
LIBRARY_MODULES = ["vicinal"] + [
    f"vicinal.{m.name}" for m in pkgutil.iter_modules(vicinal.__path__) if m.name not in ("experiments", "__main__")
]


@pytest.mark.parametrize("name", LIBRARY_MODULES)
def test_docstring_examples_run(name: str) -> None:
    # helper-115: the package's, Mixup's and LatentMixup's examples used x, y and model without defining them
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of the {result.attempted} examples in {name} failed"
    if name in ("vicinal", "vicinal.mixup", "vicinal.manifold"):
        assert result.attempted >= 7  # the examples are there and were run
