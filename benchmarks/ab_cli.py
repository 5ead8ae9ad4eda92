"""The command line shared by the interleaved A/B scripts (``bench_fused.py``, ``bench_slices.py``,
``bench_floors.py``, ``bench_collate.py``): ``--calls``, ``--threads``, ``--tag``, and where a tagged run's table is written."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch


def parse_args(
    doc: str | None,
    script: str,
    *,
    calls: int,
    calls_help: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the script's arguments (``extra`` adds its own) and apply ``--threads``."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=calls, help=calls_help)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--tag", default=None, help=f"also write results/{script}-TAG.md")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.calls < 4:
        parser.error(f"--calls must be >= 4 (the first two warm up), got {args.calls}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def usable_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """``--device`` as a torch device that exists here (a CPU, or a CUDA device with its driver), else a one-line
    error: a bad name, or a GPU run on a machine without one, failed deep inside the benchmark."""
    try:
        device = torch.device(name)
        if device.type not in ("cpu", "cuda"):
            raise RuntimeError(f"the benchmarks run on cpu or cuda, not {device.type}")
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # torch: no such device type, no driver, no such index
        parser.error(f"--device {name!r} is not usable here: {str(err).splitlines()[0]}")
    return device


def command(script: str) -> str:
    """How this run was started, for the first line of its table."""
    return " ".join([f"benchmarks/{script}.py", *sys.argv[1:]])


def write_table(script: str, tag: str | None, lines: list[str]) -> None:
    """``results/<script>-<tag>.md`` (nothing without a tag)."""
    if tag:
        path = Path(__file__).resolve().parent / "results" / f"{script}-{tag}.md"
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path}")
