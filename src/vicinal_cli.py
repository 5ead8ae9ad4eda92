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


def main() -> int:
    """Import the lab's command line (Ctrl-C deferred until the import ends) and run it."""
    received: list[int] = []

    def defer(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, defer)
    try:
        from vicinal.experiments.cli import main as cli_main
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
