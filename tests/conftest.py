"""Shared fixtures of the library's tests (the lab's own are in ``tests/experiments/conftest.py``)."""

from __future__ import annotations

import pytest

from vicinal import functional as VF


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the chunked kernel on tiny tensors and cut them into many slices (16 columns per slice)."""
    monkeypatch.setattr(VF, "_CHUNK_BYTES", 64)
    monkeypatch.setattr(VF, "_MIN_ROW_BYTES", 0)
    monkeypatch.setattr(VF, "_MIN_CHUNKED_BYTES", 0)
    monkeypatch.setattr(VF, "_SINGLE_PASS_BYTES", 0)  # else batches this small take the one-slice path
