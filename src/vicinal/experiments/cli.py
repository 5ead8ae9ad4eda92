"""The ``vicinal`` command: ``demo``, ``train``, ``reproduce``, ``report``, ``figure``, ``attack``, ``configs``.

A config is a YAML file or the name of a shipped one (``vicinal configs`` lists them). The data root is ``--data DIR``
or ``$VICINAL_DATA`` (a source checkout falls back to ``../shared/data``; see :mod:`vicinal.experiments.paths`).

Every user error (unknown config key, wrong type, missing file, bad checkpoint, unknown table ...) prints one line
``vicinal: error: ...`` on stderr and exits with code 2, without a traceback (set ``VICINAL_DEBUG=1`` to get one).
User errors are the :class:`~vicinal.experiments.errors.LabError` family (and the report's ``ReportError``); any
other exception is a bug and prints its traceback. A run stopped by SIGINT/SIGTERM saves a checkpoint and exits
with 130/143; ``vicinal train --resume RUN_DIR`` continues it exactly. Warnings meant for the user (a class with
fewer images than ``data.subset_per_class``) print as ``vicinal: warning: ...``.

``vicinal reproduce`` (planning, claims, shards, the report) lives in :mod:`vicinal.experiments.orchestrate`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn

import vicinal

from .attacks import attack_run
from .build import check_buildable
from .config import LAUNCH_CHECK_KEYS, ConfigError, apply_overrides, config_changes, load_config, shipped_configs
from .config_yaml import PROTOCOLS
from .demo import DEMO_ALPHA, DEMO_EPS, DEMO_SEEDS, run_demo
from .distributed import check_explicit_device, dist_env
from .errors import LabError, LabWarning, exit_code
from .orchestrate import _print_summary, parse_shard, reproduce, run_dir_of
from .paths import configs_dir
from .report import make_report
from .report.document import check_page_name, environment_tag, make_document
from .runs import CONFIG, PROVENANCE, WAIT_OR_MOVE, check_out_folder, hold_folder, read_config, read_summary
from .tasks import SCALES, TABLES, load_tables
from .tasks.figures import build_parser as figure_parser
from .tasks.figures import run as run_figure
from .trainer import Trainer, TrainingInterrupted

__all__ = ["main", "build_parser"]

EXAMPLES_TRAIN = """examples:
  vicinal train cifar/cpu/cifar10-preact_resnet18-mixup --set train.seed=1 optim.lr=0.05
  vicinal train demo/digits --set mix.variant=mixup mix.alpha=1.0 --out runs/
  vicinal train my-config.yaml --data ~/datasets               # any YAML file; data root ~/datasets
  vicinal train --resume runs/demo-digits/seed0                 # continue an interrupted run exactly
  torchrun --nproc_per_node=2 -m vicinal train CONFIG.yaml      # DistributedDataParallel, one process per GPU

CONFIG is a YAML file or the name of a shipped config ('vicinal configs' lists them, e.g. cifar/cpu/...).
The run folder is OUT/<config name>/seed<seed> and holds config.yaml, provenance.json, metrics.jsonl,
summary.json and checkpoint.pt. --set values are YAML (3 is an int, 0.1 a float, [1, 2] a list, null None);
keys are checked against the config schema. Put CONFIG before --set (--set takes several values)."""


class UsageError(LabError):
    """argparse errors, turned into the one-line error format."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


_TABLES_EPILOG = "tables: (listed when the help is shown)"


class _TablesFormatter(argparse.RawDescriptionHelpFormatter):
    """The help of ``vicinal reproduce``: its epilog lists the registered tables. Listing them imports every task
    module, which only this help needs, so the list is made when the help is formatted, not for every command."""

    def add_text(self, text: str | None) -> None:
        if text == _TABLES_EPILOG:
            load_tables()
            text = "tables:\n" + "\n".join(f"  {name}: {t.title}" for name, t in sorted(TABLES.items()))
        super().add_text(text)


def _add_overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--set KEY=VALUE ...`` option shared by demo, train and reproduce."""
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help
    )


def _add_data(parser: argparse.ArgumentParser) -> None:
    """The ``--data DIR`` option of the commands that read data (it sets ``VICINAL_DATA`` for the command)."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="root folder of the datasets (default: $VICINAL_DATA; in a source checkout ../shared/data beside it)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vicinal`` (sub-commands demo, train, reproduce, report, figure, attack, configs)."""
    parser = _Parser(
        prog="vicinal",
        description="mixup and its family for PyTorch: train, reproduce the paper's tables, report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'vicinal COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"vicinal {vicinal.__version__}")
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
    _add_overrides(
        p,
        "config overrides applied to both methods, e.g. train.epochs=5 (not name, mix.variant, mix.alpha, train.seed)",
    )
    _add_data(p)

    p = sub.add_parser(
        "train",
        help="train one run from a YAML config",
        description="Train one run described by a YAML config into a run folder.",
        epilog=EXAMPLES_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config",
        nargs="?",
        type=Path,
        help="a YAML config file, or the name of a shipped config (see 'vicinal configs'); optional with --resume",
    )
    _add_overrides(p, "override config keys, e.g. optim.lr=0.05 model.kwargs.width=16")
    _add_data(p)
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoint (bit-identical on the CPU)",
    )
    p.add_argument("--out", type=Path, default=None, help="parent folder of the run folder (default runs/)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run folder's previous run (checkpoint, metrics, summary, attacks); without it a folder "
        "holding a checkpoint or results is refused",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser(
        "reproduce",
        help="run every row of a paper table for several seeds, then report",
        description=(
            "Expand a paper table into its runs (one config per row, several seeds), train them one after the "
            "other (finished runs are skipped, interrupted ones resumed; the uci table and the gan grid each train "
            "in one process, and a rerun into the same --out trains only the datasets (uci) or groups (gan) it "
            "had not finished), then write the report."
        ),
        epilog=_TABLES_EPILOG,
        formatter_class=_TablesFormatter,
    )
    p.add_argument("table", help="the table to reproduce, e.g. cifar")
    p.add_argument(
        "--scale",
        choices=SCALES,
        required=True,
        help="cpu: a CPU-sized variant (minutes to ~8 CPU-hours per table on 2 cores; --dry-run lists its runs); "
        "paper: the paper's exact settings",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per row, N of them counting up from the row's train.seed (0 for most rows; --set train.seed=K "
        "shifts every row's start by K) (default: the table's)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<table>-<scale>)")
    p.add_argument("--dry-run", action="store_true", help="print the runs that would be trained, train nothing")
    p.add_argument(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="train only every N-th run starting at the I-th (0-based), e.g. 0/2 and 1/2 in two processes or on two "
        "machines sharing the output folder; the last shard to finish runs the step after training (the attacks of "
        "the adversarial table) and writes the report",
    )
    _add_overrides(
        p,
        "config overrides applied to every run, except mix.alpha=A and mix.sigma=S (dotted or in a mix={...} "
        "mapping), applied to the rows whose variant reads them",
    )
    _add_data(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser(
        "report",
        help="tables (markdown, CSV) and a test-error plot from run folders",
        description=(
            "Group run folders by config name (one row per config, seeds pooled; runs of one config on other data or "
            "another number of processes are rows of their own, NAME [i of k]), and write report.md, "
            "report.csv, runs.csv and test_error.png: mean ± sample std over seeds with n, the paper's number "
            "beside each row where there is one, marked 'config differs: KEYS' where the runs' config.yaml is not "
            "the row's shipped config (a --set override)."
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
    p.add_argument("--name", default=None, help="with --document: file stem of the pages (default: report)")
    p.add_argument("--tag", action="store_true", help="with --document: append the environment tag to --name")

    p = sub.add_parser(
        "figure",
        help="the paper's Figures 1b, 2 and 3b (PNG + JSON with the numbers)",
        description="Figure 1b: decision boundaries on a toy problem. Figure 2: prediction and gradient-norm "
        "behaviour between training pairs, from two trained runs. Figure 3b: test error over epochs.",
    )
    figure_parser(p)
    for action in p._actions:  # fig2 reads the test images of its runs' dataset
        if isinstance(action, argparse._SubParsersAction) and "fig2" in action.choices:
            _add_data(action.choices["fig2"])

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
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    _add_data(p)

    p = sub.add_parser(
        "configs",
        help="list the shipped configs (names for 'vicinal train NAME')",
        description="List the names of the configs shipped with vicinal, one a line; 'vicinal train NAME' runs one.",
    )
    p.add_argument(
        "prefix", nargs="?", default="", metavar="PREFIX", help="only names starting with it, e.g. cifar/cpu"
    )
    return parser


# -- commands ---------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    """`vicinal train`: one run (or its resumption) into a run folder."""

    if args.resume is not None:
        run_dir = args.resume
        if not run_dir.is_dir():
            what = "is not a folder" if run_dir.exists() else "does not exist"
            raise ConfigError(f"run folder '{run_dir}' {what}")
        if args.overwrite:
            raise UsageError("--overwrite starts a new run; it cannot be combined with --resume")
        if args.out is not None:
            raise UsageError(f"--out places a new run; a resumed run continues in its own folder ('{run_dir}')")
        if not (run_dir / "config.yaml").is_file():  # else read_config looked among the shipped configs
            inside = sorted(p.parent.name for p in run_dir.glob("*/config.yaml"))
            hint = f"; it holds the run folders {', '.join(inside)}: resume one of them" if inside else ""
            raise ConfigError(f"'{run_dir}' is not a run folder (no config.yaml){hint}")
        saved = read_config(run_dir)
        # The run's own config, with --set on top: re-reading CONFIG instead once put back values a --set had
        # changed when the run started (its epochs, hence its lr schedule), silently.
        cfg = apply_overrides(saved, args.overrides)
        if args.config is not None:
            differ = config_changes(
                load_config(args.config, args.overrides),
                cfg,
                "{k} ({b!r} in the run, {a!r} in it)",
                ignore=LAUNCH_CHECK_KEYS,  # a run started before the config declared its global batch is the same run
            )
            if differ:
                raise ConfigError(
                    f"{args.config} differs from the config of the run in '{run_dir}' at {differ}; resume with "
                    f"'vicinal train --resume {run_dir}' (--set KEY=VALUE changes what a resume may change)"
                )
    else:
        if args.config is None:
            raise UsageError("train needs a CONFIG.yaml (or --resume RUN_DIR) (see 'vicinal train --help')")
        cfg = load_config(args.config, args.overrides)
        run_dir = run_dir_of(args.out if args.out is not None else Path("runs"), cfg)
    check_buildable(cfg)  # before the run folder is made
    # One process trains a folder at a time, as `reproduce` claims its runs: a second `train` or `--resume` of a
    # folder being trained would interleave its metrics and overwrite its results. Under torchrun every rank trains
    # the same folder (as a distributed `reproduce`, no claim).
    advice = "wait for it to finish" if args.resume is not None else WAIT_OR_MOVE  # a resume takes no --out
    held = hold_folder(run_dir, advice=advice, unlocked_ok=True) if dist_env()[1] == 1 else nullcontext()
    with held:
        trainer = Trainer(cfg, run_dir, resume=args.resume is not None, quiet=args.quiet, overwrite=args.overwrite)
        summary = trainer.fit()
    if Trainer.is_rank0():
        _print_summary(summary, run_dir)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """`vicinal reproduce`: every row x seed of a table, then the report (see `orchestrate`)."""
    return reproduce(args)


def cmd_attack(args: argparse.Namespace) -> int:
    """`vicinal attack`: FGSM / I-FGSM error of a trained run, white or black box."""
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if not 0 <= args.eps <= 255:
        raise ConfigError(f"--eps must be in [0, 255] pixel units, got {args.eps:g}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.every < 1:
        raise ConfigError(f"--every must be >= 1, got {args.every}")
    check_explicit_device(args.device)  # attack has no "auto"
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
    given = [opt for opt, used in (("--name", args.name is not None), ("--tag", args.tag)) if used]
    if given and not args.document:  # they name the --document pages; the plain report's files have fixed names
        raise UsageError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to --document only")
    if args.document:
        args.name = "report" if args.name is None else args.name
        check_page_name(args.name, "--name")
        _check_summaries(args.runs)
        name = f"{args.name}-{environment_tag()}" if args.tag else args.name
        # The command that regenerates this page, with the options that name its files.
        words = ["vicinal", "report", "--document", *map(str, args.runs), "--out", str(args.out)]
        words += ["--name", args.name] if args.name != "report" else []
        words += ["--tag"] if args.tag else []
        command = " ".join(shlex.quote(w) for w in words)
        result = make_document(args.runs, args.out, name=name, command=command)
        print(f"written: {', '.join(str(f) for f in result['files'])}")
        return 0
    _check_summaries(args.runs)
    result = make_report(args.runs, args.out)
    print(result["markdown"])
    print(f"written: {', '.join(str(f) for f in result['files'])}")
    return 0


def _check_summaries(paths: Sequence[Path]) -> None:
    """Name a corrupt ``summary.json`` under ``paths`` (the report would fail on it without naming the file)."""
    for path in paths:
        if path.is_dir():
            for summary in sorted(path.rglob("summary.json")):
                read_summary(summary.parent)


def cmd_figure(args: argparse.Namespace) -> int:
    """`vicinal figure fig1b | fig2 | fig3b`: one of the paper's figures, PNG + JSON."""
    result = run_figure(args)
    print(f"written: {', '.join(str(f) for f in result['files'])}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`vicinal demo`: ERM vs mixup on digits, test and FGSM error."""
    if dist_env()[1] > 1:
        # each rank would attack its own share of the test split and print its own table of FGSM errors
        raise UsageError("vicinal demo runs in one process, not under torchrun (use vicinal train there)")
    # The banner comes once the first run is built, so that an error (an option, the data, the model, the run
    # folder) stays the only line.
    banner = (
        f"vicinal demo: digits_cnn on sklearn digits, ERM vs mixup (alpha={args.alpha:g}), {args.seeds} seed{'s' if args.seeds != 1 else ''}, "
        f"FGSM eps={args.eps:g} in [0,1] pixels"
    )
    _, table = run_demo(
        seeds=args.seeds,
        alpha=args.alpha,
        eps=args.eps,
        out=args.out,
        overrides=args.overrides,
        stream=sys.stderr,
        banner=banner,
    )
    print(table)
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    """`vicinal configs [PREFIX]`: the names of the shipped configs."""
    names = shipped_configs(args.prefix)
    if not names:
        protocols = [f"; '{name}' is {what}" for name, what in PROTOCOLS.items() if name.startswith(args.prefix)]
        raise ConfigError(
            f"no shipped config name starts with '{args.prefix}' (under '{configs_dir()}'){''.join(protocols)}"
        )
    print("\n".join(names))
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "train": cmd_train,
    "reproduce": cmd_reproduce,
    "report": cmd_report,
    "figure": cmd_figure,
    "attack": cmd_attack,
    "configs": cmd_configs,
}


def _format_warning(message: Any, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    if issubclass(category, LabWarning):
        return f"vicinal: warning: {' '.join(str(message).split())}\n"
    return _FORMATWARNING(message, category, filename, lineno, line)


_FORMATWARNING = warnings.formatwarning


def _check_out(args: argparse.Namespace) -> None:
    """``--out`` must be a folder, or a path whose existing part is one (it is created)."""
    out = getattr(args, "out", None)
    if isinstance(out, Path) and getattr(args, "resume", None) is None:  # a resume writes into its run folder
        check_out_folder(out)
        if args.command in ("train", "reproduce", "demo") and (out / CONFIG).is_file() and (out / PROVENANCE).is_file():
            # a run folder given for the folder of runs: the new runs were nested in it (RUN/NAME/seed0)
            more = f"; to continue that run: vicinal train --resume {out}" if args.command == "train" else ""
            raise UsageError(
                f"--out '{out}' is a run folder (it holds {CONFIG}); --out names the folder that holds runs{more}"
            )


@contextmanager
def _data_option(data: Path | None) -> Iterator[None]:
    """``--data DIR``: ``VICINAL_DATA`` is ``DIR`` while the command runs (restored afterwards)."""
    if data is None:
        yield
        return
    if not data.is_dir():
        what = "does not exist" if not data.exists() else "is not a folder"
        raise UsageError(f"--data '{data}' {what}")
    old = os.environ.get("VICINAL_DATA")
    os.environ["VICINAL_DATA"] = str(data.resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("VICINAL_DATA", None)
        else:
            os.environ["VICINAL_DATA"] = old


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vicinal`` / ``python -m vicinal``; returns the exit code."""
    warnings.formatwarning = _format_warning
    try:
        # User errors (LabError, ReportError among them): one line, exit 2; Ctrl-C: 130 (errors.exit_code).
        return exit_code(lambda: _run(argv))
    finally:
        warnings.formatwarning = _FORMATWARNING


def _run(argv: Sequence[str] | None) -> int:
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # argparse's top-level error pointed at `vicinal --help`, not at the command's option list
            where = " ".join(str(w) for w in ("vicinal", args.command, getattr(args, "figure", None)) if w)
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{where} --help')")
        if args.command is None:
            build_parser().print_help()
            return 2
        _check_out(args)
        with _data_option(getattr(args, "data", None)):
            return COMMANDS[args.command](args)
    except TrainingInterrupted as exc:
        if getattr(args, "command", None) == "demo":
            # the demo's runs lie in a temporary folder it has removed (or in --out, which a new demo refuses):
            # resuming one of them would not finish the demo
            name = signal.Signals(exc.signum).name
            again = "run it again with another --out" if getattr(args, "out", None) else "run it again"
            print(f"vicinal: demo interrupted by {name}; {again} to see its table", file=sys.stderr)
        elif exc.finished is not None:
            rest = (
                "; rerun the same command to train the rest of the table"
                if getattr(args, "command", None) == "reproduce"
                else " (nothing to resume)"
            )
            print(f"vicinal: {exc}{rest}", file=sys.stderr)
        elif exc.forced and exc.checkpoint is None:
            # stopped before its first checkpoint (rank 0), or a rank that holds none: rank 0 says it, once
            if Trainer.is_rank0():
                print(f"vicinal: {exc}; run the same command again to start it anew", file=sys.stderr)
        elif exc.checkpoint is not None and getattr(args, "command", None) == "reproduce":
            # resuming the one stopped run would leave the table's other runs and its report undone
            how = "torchrun command" if exc.world_size > 1 else "command"
            print(
                f"vicinal: {exc}; the finished runs are kept and this one resumes from its checkpoint: rerun the "
                f"same {how} to continue",
                file=sys.stderr,
            )
        elif exc.checkpoint is not None:
            command = f"vicinal train --resume {exc.checkpoint.parent}"
            if exc.world_size > 1:  # the checkpoint refuses another number of processes
                command = (
                    f"torchrun with the same {exc.world_size} processes, e.g. torchrun --nproc_per_node="
                    f"{exc.world_size} -m {command}"
                )
            print(f"vicinal: {exc}; resume with: {command}", file=sys.stderr)
        return exc.exit_code
