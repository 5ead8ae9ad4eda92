"""The ``vicinal`` console entry point (src/vicinal_cli.py): how it ends when its reader goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPIPE and shell pipes are POSIX")
@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_closed_pipe_ends_quietly_with_the_sigpipe_status(unbuffered: str) -> None:
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
            # buffered stdout (the default) fails only at the final flush; unbuffered at the first write
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr.decode()
    assert done.returncode == 128 + signal.SIGPIPE


def test_ctrl_c_while_torch_is_imported_exits_130_with_one_line() -> None:
    # The console script's module lives outside the package, so a SIGINT that lands while `import vicinal` (torch)
    # runs is caught too; one that lands later is caught by main. Either way: one line, exit code 130.
    script = Path(sys.executable).parent / "vicinal"
    if not script.is_file():
        pytest.skip("the vicinal console script is not installed beside this interpreter")
    if not Path("/proc/self/maps").is_file():
        pytest.skip("needs /proc to see when the child is importing torch")
    proc = subprocess.Popen([str(script), "configs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until torch's library is mapped: the launcher is then running (its handler installed before the import),
    # whatever the machine's load; a signal during Python's own start-up, before any of our code, is out of reach.
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal arrived")
    assert proc.returncode == 130, err
    assert err == "vicinal: interrupted\n" and "Traceback" not in err
