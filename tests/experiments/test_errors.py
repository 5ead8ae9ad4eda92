"""The lab's error classes (experiments/errors.py): every user error derives from LabError."""

from __future__ import annotations

import pytest

from vicinal.experiments.checkpoint import CheckpointError
from vicinal.experiments.cli import UsageError
from vicinal.experiments.config import ConfigError
from vicinal.experiments.errors import DataError, LabError, exit_code
from vicinal.experiments.trainer import RunError


def test_user_errors_share_one_base_class() -> None:
    for cls in (ConfigError, CheckpointError, RunError, DataError, UsageError):
        assert issubclass(cls, LabError)
    for cls in (ConfigError, CheckpointError, RunError, DataError):
        assert issubclass(cls, ValueError)  # what callers of the Python API catch


def test_exit_code_gives_2_for_a_user_error_and_130_for_a_ctrl_c(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a Ctrl-C outside training (train's own stop is 130 through
    # TrainingInterrupted; a Ctrl-C anywhere else, in a report or a plan, comes here)
    def ctrl_c() -> int:
        raise KeyboardInterrupt

    def refused() -> int:
        raise ConfigError("bad\nvalue")

    monkeypatch.delenv("VICINAL_DEBUG", raising=False)  # (it re-raises instead)
    assert exit_code(ctrl_c, prog="p") == 130
    assert capsys.readouterr().err == "p: interrupted\n"
    assert exit_code(refused) == 2
    assert capsys.readouterr().err == "vicinal: error: bad value\n"
    assert exit_code(lambda: 0) == 0
