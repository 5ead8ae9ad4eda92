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


# A finder that makes the named modules look uninstalled, as after `pip install vicinal` without the lab extra.
_BLOCK = """
import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Missing())
"""


def _run_without(blocked: set[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = _BLOCK.format(blocked=blocked) + code
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VICINAL_DEBUG": ""},
    )


@pytest.mark.parametrize(
    "entry",
    [
        "import vicinal_cli; sys.exit(vicinal_cli.main())",
        "import runpy; runpy.run_module('vicinal', run_name='__main__')",
    ],
)
def test_without_the_lab_extra_the_command_is_one_line_naming_it(entry: str) -> None:
    # the lab's command line imports PyYAML at once: before the fix a 17-line ModuleNotFoundError traceback, exit 1
    done = _run_without({"yaml"}, entry, "configs")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "vicinal: error: the lab needs pyyaml (module 'yaml' not found): pip install 'vicinal[lab]' "
        "(the library, `import vicinal`, needs only torch and numpy)\n"
    )
    assert done.stdout == ""


def test_a_lab_module_first_imported_by_a_command_is_one_line_too() -> None:
    # scikit-learn is imported only where the digits are loaded: exit_code, which every lab entry point runs its
    # command through, says which extra is missing; any other missing module stays a bug with its traceback
    code = """
from vicinal.experiments.errors import exit_code
def command():
    import sklearn.datasets
print(exit_code(command))
def other():
    import not_a_lab_module
try:
    exit_code(other)
except ModuleNotFoundError as exc:
    print("raised", exc.name)
def typo():  # a submodule of an installed lab package: a bug, not a missing extra
    import yaml.not_a_submodule
try:
    exit_code(typo)
except ModuleNotFoundError as exc:
    print("raised", exc.name)
"""
    done = _run_without({"sklearn"}, code)
    assert done.stdout == "2\nraised not_a_lab_module\nraised yaml.not_a_submodule\n", done.stderr
    assert done.stderr == (
        "vicinal: error: the lab needs scikit-learn (module 'sklearn' not found): pip install 'vicinal[lab]' "
        "(the library, `import vicinal`, needs only torch and numpy)\n"
    )


def test_the_library_imports_without_the_lab_extra() -> None:
    done = _run_without(
        set(LAB), "import vicinal; print(sorted(m for m in sys.modules if m.partition('.')[0] in " + repr(LAB) + "))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_on_a_non_posix_system_the_lab_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import vicinal_cli

    monkeypatch.setattr(vicinal_cli, "_posix", lambda: False)
    assert vicinal_cli.main() == 2
    err = capsys.readouterr().err
    assert err == (
        "vicinal: error: the lab runs on POSIX systems (Linux, macOS, WSL) only; the library (`import vicinal`) "
        "works everywhere\n"
    )


LAB = {"torchvision", "yaml", "tqdm", "matplotlib", "scipy", "sklearn"}
