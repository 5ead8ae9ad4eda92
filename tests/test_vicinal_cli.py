"""The ``vicinal`` console entry point (src/vicinal_cli.py): how it ends when its reader goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPIPE and shell pipes are POSIX")
def test_closed_pipe_ends_quietly_with_the_sigpipe_status() -> None:
    # `vicinal configs | head -n 1`: once the reader has gone, every write fails with EPIPE. Closing the read end
    # before the command starts makes that certain (with a live reader the outcome would race the pipe buffer).
    # Before the fix this printed a BrokenPipeError traceback and exited 1.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import sys, vicinal_cli; sys.exit(vicinal_cli.main())", "configs"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr.decode()
    assert done.returncode == 128 + signal.SIGPIPE
