"""The ``vicinal`` command: ``demo``, ``train``, ``reproduce``, ``report``, ``attack``.

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


def _add_overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--set KEY=VALUE ...`` option shared by demo, train and reproduce."""
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help
    )


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
    _add_overrides(p, "config overrides applied to both methods, e.g. train.epochs=5")

    p = sub.add_parser(
        "train",
        help="train one run from a YAML config",
        description="Train one run described by a YAML config into a run folder.",
        epilog=EXAMPLES_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", type=Path, help="the YAML config (optional with --resume)")
    _add_overrides(p, "override config keys, e.g. optim.lr=0.05 model.kwargs.width=16")
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
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="train only every N-th run starting at the I-th (0-based), e.g. 0/2 and 1/2 in two processes or on two "
        "machines sharing the output folder; the last shard to finish runs the step after training (the attacks of "
        "the adversarial table) and writes the report",
    )
    _add_overrides(p, "config overrides applied to every run")
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
    p.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run folders, or folders holding them (with --document also figure folders, PNG/JSON/markdown files)",
    )
    p.add_argument("--out", type=Path, required=True, help="where to write the report")
    p.add_argument(
        "--document",
        action="store_true",
        help="one page gathering every table beside the paper's numbers and every figure: NAME.md and a "
        "self-contained NAME.html",
    )
    p.add_argument("--name", default="report", help="file stem of the --document pages (default: report)")
    p.add_argument("--tag", action="store_true", help="with --document: append the environment tag to --name")

    from .tasks.figures import build_parser as figure_parser

    p = sub.add_parser(
        "figure",
        help="the paper's Figures 1b, 2 and 3b (PNG + JSON with the numbers)",
        description="Figure 1b: decision boundaries on a toy problem. Figure 2: prediction and gradient-norm "
        "behaviour between training pairs, from two trained runs. Figure 3b: test error over epochs.",
    )
    figure_parser(p)

    p = sub.add_parser(
        "attack",
        help="FGSM / I-FGSM error of a trained run (white box, or black box from --source)",
        description=(
            "Attack the model of a run folder on its test split, in [0, 1] pixel space (the model\n"
            "normalises inside), clamped to [0, 1]. White box: the model attacks itself. Black box\n"
            "(--source): examples are crafted on the source run's model and evaluated on RUN_DIR's.\n"
            "Prints top-1 and top-5 error, clean and under attack, and saves them to\n"
            "RUN_DIR/attacks/*.json (read by 'vicinal report'). Deterministic (no random start)."
        ),
        epilog=(
            "examples:\n"
            "  vicinal attack runs/cifar-cpu/cifar10-preact_resnet18-mixup-cpu/seed0 --attack fgsm --eps 4\n"
            "  vicinal attack RUN_DIR --source SOURCE_RUN_DIR --attack ifgsm --eps 4 --steps 10"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, metavar="RUN_DIR", help="the attacked run folder (config.yaml, checkpoint.pt)")
    p.add_argument("--source", type=Path, default=None, metavar="RUN_DIR", help="black box: craft on this run")
    p.add_argument("--attack", choices=("fgsm", "ifgsm"), required=True, help="FGSM or 10-step I-FGSM")
    p.add_argument("--eps", type=float, default=4.0, help="L-inf budget in pixel units out of 255 (default 4)")
    p.add_argument("--steps", type=int, default=10, help="I-FGSM iterations of eps/steps (default 10)")
    p.add_argument("--batch-size", type=int, default=None, help="attack batch size (default: the run's eval batch)")
    p.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="K",
        help="attack every K-th test image only (a deterministic subset spread over the split; default 1 = all)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
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


def _claim(run_dir: Path) -> Path | None:
    """Claim ``run_dir`` for this process: the claim file's path, or None when a live process holds it.

    The claim holds ``hostname pid``; a claim left by a process of this host that no longer runs (killed) is taken
    over. A claim from another host is trusted: delete ``run_dir/.claim`` by hand if that machine died.
    """
    import socket

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".claim"
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                host, pid = path.read_text().split()
                alive = host != socket.gethostname() or _pid_alive(int(pid))
            except FileNotFoundError:
                alive = False  # released meanwhile
            except (OSError, ValueError):
                # empty or unreadable: just being written by another process, or left by one that died at once
                alive = time.time() - path.stat().st_mtime < 60 if path.exists() else False
            if alive:
                return None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return path
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _complete(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run (its summary says so)."""
    path = run_dir / "summary.json"
    return path.is_file() and json.loads(path.read_text()).get("status") == "complete"


def _shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (0 <= I < N)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N with integers 0 <= I < N, e.g. 0/2; got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected 0 <= I < N, got {text!r}")
    return i, n


def _plan(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]], Path]:
    """The runs of ``vicinal reproduce``: config, seed, run folder and state (new / resume / done) of each."""
    from .tasks import get_table

    table = get_table(args.table)
    seeds = args.seeds if args.seeds is not None else table.default_seeds.get(args.scale, 1)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    out = args.out if args.out is not None else Path("runs") / f"{table.name}-{args.scale}"
    plan = []
    # Seeds count up from each file's train.seed (0 for almost every config; the black-box source model of the
    # adversarial table starts at 1000 so that it differs from the ERM target trained at the same seed).
    bases = [(path, load_config(path, args.overrides).train.seed) for path in table.configs(args.scale)]
    # Seed-major order: every row of seed k before any row of seed k + 1, so that a plan stopped part-way leaves
    # complete paired seeds (ERM and mixup on the same images and initial weights) rather than one method only.
    for k in range(seeds):
        for path, base in bases:
            seed = base + k
            cfg = load_config(path, [*args.overrides, f"train.seed={seed}"])
            run_dir = _run_dir(out, cfg)
            state = "new"
            if _complete(run_dir):
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
    from .tasks import get_table
    from .trainer import Trainer

    runner_table = get_table(args.table)
    if runner_table.runner is not None:  # a table trained as one batched job (GAN grid, UCI), not trainer runs
        if getattr(args, "shard", None) is not None:
            raise ConfigError(f"--shard: table {runner_table.name!r} trains as one batched job and cannot be split")
        out = args.out if args.out is not None else Path("runs") / f"{runner_table.name}-{args.scale}"
        runner_table.runner(out, args.scale, args.seeds, overrides=args.overrides, dry_run=args.dry_run)
        return 0
    table, plan, out = _plan(args)
    print(f"vicinal reproduce {table.name} --scale {args.scale}: {table.title}")
    if args.scale == "cpu" and table.notes:
        print(f"  {table.notes}")
    shard = getattr(args, "shard", None)
    mine = plan if shard is None else plan[shard[0] :: shard[1]]
    for item in plan:
        cfg = item["cfg"]
        state = item["state"] if any(item is m for m in mine) else "shard"
        print(
            f"  [{state:>6}] {cfg.name} seed {item['seed']}: {cfg.model.name} on {cfg.data.name}, "
            f"{cfg.train.epochs} epochs, mix {cfg.mix.variant} -> {item['run_dir']}"
        )
    if args.dry_run:
        print(
            f"dry run: {sum(i['state'] != 'done' for i in mine)} of {len(plan)} runs would be trained"
            + (f" by shard {shard[0]}/{shard[1]}" if shard else "")
        )
        return 0
    t0 = time.perf_counter()
    # Several processes may run the same command over one output folder: each claims a run before training it
    # (run_dir/.claim, created atomically) and skips runs claimed by a live process. Under torchrun every rank
    # must train the same runs, so distributed reproductions do not claim.
    claiming = int(os.environ.get("WORLD_SIZE", "1")) == 1
    for item in mine:
        if item["state"] == "done":
            continue
        claim = _claim(item["run_dir"]) if claiming else None
        if claiming and claim is None:
            print(f"  [claimed] {item['run_dir']}: another process is training it; skipped")
            continue
        try:
            if _complete(item["run_dir"]):  # finished by another process since the plan was made
                continue
            resume = (item["run_dir"] / "checkpoint.pt").is_file()
            summary = Trainer(item["cfg"], item["run_dir"], resume=resume, quiet=args.quiet).fit()
        finally:
            if claim is not None:
                claim.unlink(missing_ok=True)
        if Trainer.is_rank0():
            _print_summary(summary, item["run_dir"])
    lock = None
    pending = [i for i in plan if not _complete(i["run_dir"])]
    if pending or shard is not None:
        # Other shards or processes may still be training; only the one that finds every run complete goes on, and
        # of two that finish together only the one that creates the lock file (O_EXCL: atomic on a shared folder).
        who = f"shard {shard[0]}/{shard[1]}" if shard is not None else "this process"
        if pending:
            print(
                f"{who} done; {len(pending)} runs trained elsewhere are not finished yet (the last process to "
                "finish writes the report; or run the command again once all are done)"
            )
            return 0
        lock = out / ".finishing.lock"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            print(f"{who} done; another process is writing the report ({lock})")
            return 0
    try:
        after = _after_training(table.name)
        if after is not None and Trainer.is_rank0():
            after(plan, args)
        if Trainer.is_rank0():
            result = make_report([out], out / "report")
            print(result["markdown"])
            print(f"report written to {out / 'report'} ({time.perf_counter() - t0:.0f} s of training)")
    finally:
        if lock is not None:
            lock.unlink(missing_ok=True)
    return 0


def _after_training(table: str) -> Any:
    """The step a table runs after its trainings (the adversarial table's attacks), or None."""
    from .tasks import robustness

    return robustness.AFTER_TRAINING.get(table)


def cmd_attack(args: argparse.Namespace) -> int:
    """`vicinal attack`: FGSM / I-FGSM error of a trained run, white or black box."""
    from .attacks import attack_run

    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if not 0 <= args.eps <= 255:
        raise ConfigError(f"--eps must be in [0, 255] pixel units, got {args.eps:g}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.every < 1:
        raise ConfigError(f"--every must be >= 1, got {args.every}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device} but CUDA is not available on this machine (use cpu)")
    for label, path in (("RUN_DIR", args.run), ("--source", args.source)):
        if path is not None and not path.is_dir():
            raise ConfigError(f"{label} '{path}' is not a folder")
    res = attack_run(
        args.run,
        attack=args.attack,
        eps=args.eps,
        steps=args.steps,
        source=args.source,
        device=args.device,
        eval_batch_size=args.batch_size,
        every=args.every,
    )
    how = "white box" if args.source is None else f"black box from {args.source}"
    steps = f" {res['steps']} steps" if args.attack == "ifgsm" else ""
    print(
        f"vicinal attack: {args.attack}{steps} eps {args.eps:g}/255, {how}, on {res['n']} test images of {args.run}: "
        f"top-1 error {res['clean_top1_error']:.2f}% -> {res['top1_error']:.2f}%, "
        f"top-5 error {res['clean_top5_error']:.2f}% -> {res['top5_error']:.2f}%; saved {res['file']}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`vicinal report`: tables and a plot from run folders."""
    if args.document:
        from .report.document import environment_tag, make_document

        name = f"{args.name}-{environment_tag()}" if args.tag else args.name
        command = "vicinal report --document " + " ".join(str(r) for r in args.runs) + f" --out {args.out}"
        result = make_document(args.runs, args.out, name=name, command=command)
        print(f"written: {', '.join(str(f) for f in result['files'])}")
        return 0
    from .report import make_report

    result = make_report(args.runs, args.out)
    print(result["markdown"])
    print(f"written: {', '.join(str(f) for f in result['files'])}")
    return 0


def cmd_figure(args: argparse.Namespace) -> int:
    """`vicinal figure fig1b | fig2 | fig3b`: one of the paper's figures, PNG + JSON."""
    from .tasks.figures import run

    result = run(args)
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


COMMANDS = {
    "demo": cmd_demo,
    "train": cmd_train,
    "reproduce": cmd_reproduce,
    "report": cmd_report,
    "figure": cmd_figure,
    "attack": cmd_attack,
}


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
