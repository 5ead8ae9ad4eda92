"""The lab's error classes (experiments/errors.py): every user error derives from LabError."""

from __future__ import annotations

from vicinal.experiments.checkpoint import CheckpointError
from vicinal.experiments.cli import UsageError
from vicinal.experiments.config import ConfigError
from vicinal.experiments.errors import DataError, LabError
from vicinal.experiments.trainer import RunError


def test_user_errors_share_one_base_class() -> None:
    for cls in (ConfigError, CheckpointError, RunError, DataError, UsageError):
        assert issubclass(cls, LabError)
    for cls in (ConfigError, CheckpointError, RunError, DataError):
        assert issubclass(cls, ValueError)  # what callers of the Python API catch
