"""The README's python blocks run as written: a quick start that does not run is a defect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_readme_has_a_quick_start() -> None:
    assert BLOCKS, "README.md has no python block"
    assert "vicinal.Mixup(" in BLOCKS[0] and "for x, y in loader" in BLOCKS[0]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int) -> None:
    # Each block is self-contained: a fresh namespace, nothing defined by the test.
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
