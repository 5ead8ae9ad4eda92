"""The ``vicinal`` command: ``demo``, ``train``, ``reproduce``, ``report``.

Every user error (unknown config key, wrong type, missing file, bad checkpoint, unknown table ...) prints one line
``vicinal: error: ...`` on stderr and exits with code 2, without a traceback (set ``VICINAL_DEBUG=1`` to get one).
A run stopped by SIGINT/SIGTERM saves a checkpoint and exits with 130/143; ``vicinal train --resume RUN_DIR``
continues it exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .checkpoint import CheckpointError
from .config import ConfigError, ExperimentConfig, apply_overrides, diff_configs, load_config

__all__ = ["main", "build_parser"]

EXAMPLES_TRAIN = """examples:
  vicinal train configs/cifar/cpu/cifar10-preact_resnet18-mixup.yaml --set train.seed=1 optim.lr=0.05
  vicinal train configs/demo/digits.yaml --set mix.variant=mixup mix.alpha=1.0 --out runs/
  vicinal train --resume runs/demo-digits/seed0                 # continue an interrupted run exactly
  torchrun --nproc_per_node=2 -m vicinal train CONFIG.yaml      # DistributedDataParallel, one process per GPU

The run folder is OUT/<config name>/seed<seed> and holds config.yaml, provenance.json, metrics.jsonl,
summary.json and checkpoint.pt. --set values are YAML (3 is an int, 0.1 a float, [1, 2] a list, null None);
keys are checked against the config schema. Put CONFIG before --set (--set takes several values)."""


class UsageError(Exception):
    """argparse errors, turned into the one-line error format."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vicinal`` (sub-commands demo, train, reproduce, report)."""
    from .demo import DEMO_ALPHA, DEMO_EPS, DEMO_SEEDS

    parser = _Parser(
        prog="vicinal",
        description="mixup and its family for PyTorch: train, reproduce the paper's tables, report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'vicinal COMMAND --help' for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "demo",
        help="ERM vs mixup on sklearn digits: test error and FGSM error over seeds (about a minute on 2 cores)",
        description=(
            "Train the small digits_cnn with ERM and with mixup on scikit-learn's bundled handwritten digits "
            "(real data, no download) for several seeds, through the same trainer as every experiment, then "
            "attack each model with FGSM in [0, 1] pixel space. Prints mean ± std over seeds."
        ),
    )
    p.add_argument("--seeds", type=int, default=DEMO_SEEDS, help=f"seeds per method (default {DEMO_SEEDS})")
    p.add_argument("--alpha", type=float, default=DEMO_ALPHA, help=f"mixup alpha (default {DEMO_ALPHA:g})")
    p.add_argument(
        "--eps", type=float, default=DEMO_EPS, help=f"FGSM L-inf radius in [0,1] pixels (default {DEMO_EPS:g})"
    )
    p.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temporary folder)")
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides applied to both methods, e.g. train.epochs=5",
    )

    p = sub.add_parser(
        "train",
        help="train one run from a YAML config",
        description="Train one run described by a YAML config into a run folder.",
        epilog=EXAMPLES_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", type=Path, help="the YAML config (optional with --resume)")
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. optim.lr=0.05 model.kwargs.width=16",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoint (bit-identical on the CPU)",
    )
    p.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of the run folder (default runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    from .tasks import SCALES, TABLES, load_tables

    load_tables()
    tables = "\n".join(f"  {name}: {t.title}" for name, t in sorted(TABLES.items()))
    p = sub.add_parser(
        "reproduce",
        help="run every row of a paper table for several seeds, then report",
        description=(
            "Expand a paper table into its runs (one config per row, several seeds), train them one after the "
            "other (finished runs are skipped, interrupted ones resumed), then write the report."
        ),
        epilog=f"tables:\n{tables}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("table", help="the table to reproduce, e.g. cifar")
    p.add_argument(
        "--scale",
        choices=SCALES,
        required=True,
        help="cpu: a CPU-sized variant (about an hour on 2 cores); paper: the paper's exact settings",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per row, 0..N-1 (default: the table's)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<table>-<scale>)")
    p.add_argument("--dry-run", action="store_true", help="print the runs that would be trained, train nothing")
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides applied to every run",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser(
        "report",
        help="tables (markdown, CSV) and a test-error plot from run folders",
        description=(
            "Group run folders by config name (one row per config, seeds pooled), and write report.md, "
            "report.csv, runs.csv and test_error.png: mean ± sample std over seeds with n, the paper's number "
            "beside each row where there is one."
        ),
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, or folders holding them")
    p.add_argument("--out", type=Path, required=True, help="where to write the report")
    return parser


# -- commands ---------------------------------------------------------------------------------------------------
def _run_dir(out: Path, cfg: ExperimentConfig) -> Path:
    return out / cfg.name / f"seed{cfg.train.seed}"


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    if summary.get("last_test_error") is None:
        print(f"vicinal: {summary['status']}; run folder {run_dir}")
        return
    print(
        f"vicinal: {summary['status']}: test error {summary['last_test_error']:.2f}% (last), "
        f"{summary['best_test_error']:.2f}% (best, epoch {summary['best_epoch']}), "
        f"{summary['median_last10_test_error']:.2f}% (median of the last {summary['median_last10_n']}); "
        f"run folder {run_dir}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    """`vicinal train`: one run (or its resumption) into a run folder."""
    from .trainer import Trainer

    if args.resume is not None:
        run_dir = args.resume
        if not run_dir.is_dir():
            raise ConfigError(f"run folder '{run_dir}' does not exist")
        saved = load_config(run_dir / "config.yaml")
        if args.config is not None:
            cfg = load_config(args.config, args.overrides)
        else:
            cfg = apply_overrides(saved, args.overrides)
    else:
        if args.config is None:
            raise UsageError("train needs a CONFIG.yaml (or --resume RUN_DIR) (see 'vicinal train --help')")
        cfg = load_config(args.config, args.overrides)
        run_dir = _run_dir(args.out, cfg)
    summary = Trainer(cfg, run_dir, resume=args.resume is not None, quiet=args.quiet).fit()
    if Trainer.is_rank0():
        _print_summary(summary, run_dir)
    return 0


def _plan(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]], Path]:
    """The runs of ``vicinal reproduce``: config, seed, run folder and state (new / resume / done) of each."""
    from .tasks import get_table

    table = get_table(args.table)
    seeds = args.seeds if args.seeds is not None else table.default_seeds.get(args.scale, 1)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    out = args.out if args.out is not None else Path("runs") / f"{table.name}-{args.scale}"
    plan = []
    for path in table.configs(args.scale):
        for seed in range(seeds):
            cfg = load_config(path, [*args.overrides, f"train.seed={seed}"])
            run_dir = _run_dir(out, cfg)
            state = "new"
            summary_path = run_dir / "summary.json"
            if summary_path.is_file() and json.loads(summary_path.read_text()).get("status") == "complete":
                state = "done"
                changed = diff_configs(load_config(run_dir / "config.yaml"), cfg)
                if changed:
                    raise ConfigError(
                        f"run folder '{run_dir}' holds a finished run of a different config "
                        f"(differs at {', '.join(changed)}); use another --out"
                    )
            elif (run_dir / "checkpoint.pt").is_file():
                state = "resume"
            plan.append({"config": path, "cfg": cfg, "seed": seed, "run_dir": run_dir, "state": state})
    return table, plan, out


def cmd_reproduce(args: argparse.Namespace) -> int:
    """`vicinal reproduce`: every row x seed of a table, then the report."""
    from .report import make_report
    from .trainer import Trainer

    table, plan, out = _plan(args)
    print(f"vicinal reproduce {table.name} --scale {args.scale}: {table.title}")
    if args.scale == "cpu" and table.notes:
        print(f"  {table.notes}")
    for item in plan:
        cfg = item["cfg"]
        print(
            f"  [{item['state']:>6}] {cfg.name} seed {item['seed']}: {cfg.model.name} on {cfg.data.name}, "
            f"{cfg.train.epochs} epochs, mix {cfg.mix.variant} -> {item['run_dir']}"
        )
    if args.dry_run:
        print(f"dry run: {sum(i['state'] != 'done' for i in plan)} of {len(plan)} runs would be trained")
        return 0
    t0 = time.perf_counter()
    for item in plan:
        if item["state"] == "done":
            continue
        summary = Trainer(item["cfg"], item["run_dir"], resume=item["state"] == "resume", quiet=args.quiet).fit()
        if Trainer.is_rank0():
            _print_summary(summary, item["run_dir"])
    if Trainer.is_rank0():
        result = make_report([out], out / "report")
        print(result["markdown"])
        print(f"report written to {out / 'report'} ({time.perf_counter() - t0:.0f} s of training)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`vicinal report`: tables and a plot from run folders."""
    from .report import make_report

    result = make_report(args.runs, args.out)
    print(result["markdown"])
    print(f"written: {', '.join(str(f) for f in result['files'])}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`vicinal demo`: ERM vs mixup on digits, test and FGSM error."""
    from .demo import run_demo

    if args.seeds < 1:  # checked before the banner, so that the error stays the only line
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    print(
        f"vicinal demo: digits_cnn on sklearn digits, ERM vs mixup (alpha={args.alpha:g}), {args.seeds} seeds, "
        f"FGSM eps={args.eps:g} in [0,1] pixels",
        file=sys.stderr,
    )
    _, table = run_demo(
        seeds=args.seeds, alpha=args.alpha, eps=args.eps, out=args.out, overrides=args.overrides, stream=sys.stderr
    )
    print(table)
    return 0


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "reproduce": cmd_reproduce, "report": cmd_report}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vicinal`` / ``python -m vicinal``; returns the exit code."""
    from .report import ReportError
    from .trainer import RunError, TrainingInterrupted

    debug = bool(os.environ.get("VICINAL_DEBUG"))
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except TrainingInterrupted as exc:
        if exc.checkpoint is not None:
            print(f"vicinal: {exc}; resume with: vicinal train --resume {exc.checkpoint.parent}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vicinal: interrupted", file=sys.stderr)
        return 130
    except (
        UsageError,
        ConfigError,
        CheckpointError,
        RunError,
        ReportError,
        FileNotFoundError,
        ValueError,
        TypeError,
    ) as exc:
        # User errors: one line, exit 2. ValueError/TypeError cover bad values caught by the library, the
        # models (unknown keyword argument) and the data layer (unknown dataset).
        if debug:
            raise
        print(f"vicinal: error: {_one_line(exc)}", file=sys.stderr)
        return 2
