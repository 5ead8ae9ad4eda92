"""Entry point of the ``vicinal`` command, kept outside the ``vicinal`` package on purpose.

Importing the package imports torch, numpy and scipy, which takes about a second. A Ctrl-C in that second must end
the command like a Ctrl-C at any later moment (one line, exit code 130), and only code that runs before the import
can arrange that: any module inside the package would run ``vicinal/__init__`` first. The signal is *deferred*
while the import runs, not caught as a ``KeyboardInterrupt`` inside it: an exception raised in the middle of
torch's or numpy's own imports can be swallowed there and leave a half-imported module behind, which then fails
with an unrelated error.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["main"]

# The modules of the `lab` extra (pyproject.toml), by the distribution that provides them: `pip install vicinal`
# alone installs this command but not them, and the library (`import vicinal`) needs none of them.
LAB_MODULES = {
    "torchvision": "torchvision",
    "yaml": "pyyaml",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
}


def missing_lab_module(exc: BaseException) -> str | None:
    """What to say when an import failed because the `lab` extra is not installed (one line), else None."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if top not in LAB_MODULES or exc.name != top:
        # a submodule that is not found (a typo, a broken install) is a bug to show, not a missing extra
        return None
    return (
        f"the lab needs {LAB_MODULES[top]} (module {top!r} not found): pip install 'vicinal[lab]' "
        "(the library, `import vicinal`, needs only torch and numpy)"
    )


def _posix() -> bool:
    return os.name == "posix"


def main() -> int:
    """Import the lab's command line (Ctrl-C deferred until the import ends) and run it."""
    if not _posix():
        # run folders are claimed with flock and their owners probed with os.kill(pid, 0), which on Windows would
        # terminate that process: POSIX only (Linux, macOS, WSL)
        print(
            "vicinal: error: the lab runs on POSIX systems (Linux, macOS, WSL) only; the library "
            "(`import vicinal`) works everywhere",
            file=sys.stderr,
        )
        return 2
    received: list[int] = []

    def defer(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, defer)
    try:
        from vicinal.experiments.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if received or missing_lab_module(exc) is None:
            raise
        print(f"vicinal: error: {missing_lab_module(exc)}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        print("vicinal: interrupted", file=sys.stderr)
        return 130
    try:
        code = cli_main()
        sys.stdout.flush()  # buffered output (the usual case) first fails here, inside the try, not at exit
        return code
    except BrokenPipeError:
        # the reader of our output went away (`vicinal configs | head`): not an error of ours, so no traceback.
        # Point stdout at /dev/null first, or the interpreter's final flush of the buffered rest fails again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # what a shell reports for a writer ended by SIGPIPE (as `yes | head` does)


if __name__ == "__main__":
    sys.exit(main())
