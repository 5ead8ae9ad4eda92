"""The lab's user errors: one base class, so that ``vicinal`` prints them as one line and a bug as a traceback.

Every error a user can cause (a bad config key or value, a missing or corrupt data file, a run folder that cannot
be used as asked, a bad checkpoint) derives from :class:`LabError`; ``vicinal``'s ``main`` catches exactly these
(plus the report's ``ReportError``) and prints ``vicinal: error: ...`` with exit code 2. Anything else (a
``ValueError`` from a programming error, say) propagates with its traceback.

The concrete classes also derive from the built-in exception that callers of the Python API already expect
(``ValueError``, ``TypeError``, ``FileNotFoundError``), so ``except ValueError`` keeps working.

This module imports nothing heavy (no torch), so that any part of the lab may raise these errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# the one list of the lab extra's modules lives beside the console entry point, outside the package
from vicinal_cli import missing_lab_module

__all__ = [
    "exit_code",
    "LabError",
    "DataError",
    "DataArgumentError",
    "DataNotFoundError",
    "ModelConfigError",
    "ModelArgumentError",
    "LabFileNotFoundError",
    "RunError",
    "ReportError",
    "LabWarning",
    "TaskError",
    "TaskArgumentError",
]


class LabError(Exception):
    """Base of every user error of the lab (shown as one line by the ``vicinal`` command)."""


class DataError(LabError, ValueError):
    """A dataset cannot be built as configured: unknown name, bad option, unreadable or inconsistent files."""


class DataArgumentError(LabError, TypeError):
    """A dataset builder got keyword arguments (``data.kwargs``) it does not take."""


class DataNotFoundError(LabError, FileNotFoundError):
    """A dataset's files are not where they are looked for."""


class ModelConfigError(LabError, ValueError):
    """A model cannot be built as configured: unknown name or a bad value of one of its arguments."""


class ModelArgumentError(LabError, TypeError):
    """A model got keyword arguments it does not take, lacks required ones, or got a value of the wrong type."""


class LabFileNotFoundError(LabError, FileNotFoundError):
    """A file or folder the user named (a run folder, a config file) does not exist or is not what it should be."""


class RunError(LabError, ValueError):
    """A run cannot start as asked (run folder clash, missing CUDA, ...) or its folder holds a corrupt file."""


class TaskError(LabError, ValueError):
    """A table, figure or task cannot run as asked: unknown table or scale, a bad protocol value, missing runs."""


class TaskArgumentError(LabError, TypeError):
    """A table, figure or task got an argument of the wrong type."""


class ReportError(LabError, ValueError):
    """A path given to the report (or a figure) is not a run folder, or holds none."""


class LabWarning(UserWarning):
    """Something the user should know that does not stop the run (``vicinal`` prints ``vicinal: warning: ...``)."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its class name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def exit_code(command: Callable[[], int], prog: str = "vicinal") -> int:
    """Run a command's ``command()`` and return its exit code, as every entry point of the lab reports errors.

    A :class:`LabError` prints ``<prog>: error: <message>`` as one line on stderr and gives 2 (``VICINAL_DEBUG=1``:
    raised with its traceback), and so does a module of the ``lab`` extra that is not installed (imported where it
    is first needed, as scikit-learn and matplotlib are); a Ctrl-C prints ``<prog>: interrupted`` and gives 130; anything else is a bug and
    propagates with its traceback.
    """
    try:
        try:
            return command()
        except LabError as exc:
            if os.environ.get("VICINAL_DEBUG"):
                raise
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        except ModuleNotFoundError as exc:
            message = missing_lab_module(exc)
            if message is None or os.environ.get("VICINAL_DEBUG"):
                raise
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
