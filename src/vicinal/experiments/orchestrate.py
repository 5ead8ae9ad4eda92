"""`vicinal reproduce`: plan a table's runs, claim, shard, train, and finish (the step after training, the report).

Several processes (or machines sharing the output folder) may run the same command: each run is trained by one of
them, and the report is written once.

* Plan: one run per row x seed, seed-major (`plan_runs`); a finished run is never trained again, an interrupted
  one is resumed, one killed before its first checkpoint is started again (training is deterministic, so its
  partial numbers are reproduced); a finished run is never overwritten.
* Claim: before training a run a process takes ``run_dir/.claim`` (`claim`): an exclusive ``flock`` held for the
  run's lifetime, and the text ``host pid``. The kernel drops the lock when its process dies, however it dies,
  so taking over a dead process's run is atomic: of two processes only the one that gets the lock takes it. A
  claim whose text names a live process of this host, or any process of another host, is respected even when
  no lock is held (older versions of the lab did not lock; delete ``.claim`` by hand if another machine died).
* Take-over: after its own runs, a process trains every unfinished run it can claim whose owner is dead (with
  ``--shard``: the runs of other shards only when a dead process left its claim on them), until none is left.
* Finish: the process that finds every run complete takes ``OUT/.finishing-TABLE.lock`` (``flock``, with or
  without ``--shard``), runs the table's step after training (the adversarial attacks) and writes the report,
  then notes it in ``OUT/.finished.json``; a process that finds the lock taken, or a note written while it ran,
  leaves the report to that other process. The lock is the table's, not the folder's: tables share a folder
  (adversarial and datasize reuse cifar's), and a process finishing one table must not skip another's step.
  Under torchrun every rank trains the same runs: no claims are taken.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

from .build import check_buildable
from .checkpoint import RESUME_MUTABLE, resume_changes
from .config import (
    VARIANT_OPTIONS,
    ConfigError,
    ExperimentConfig,
    VariantOptions,
    check_seeds,
    config_to_dict,
    load_config,
)
from .distributed import check_global_batch
from .errors import RunError
from .recipe import result_key_differences
from .report import make_report
from .runs import (
    CLAIM,
    Claim,
    _lock,
    _write_owner,
    claim,
    pid_alive,
    read_config,
    read_json,
    read_summary,
    write_json,
)
from .tasks import Table, get_table
from .trainer import Trainer

__all__ = [
    "Claim",
    "claim",
    "complete",
    "finish_lock",
    "parse_shard",
    "pid_alive",
    "plan_runs",
    "reproduce",
    "run_dir_of",
]

FINISHING_LOCK = ".finishing-{table}.lock"
FINISHED = ".finished.json"


def run_dir_of(out: Path, cfg: ExperimentConfig) -> Path:
    """The run folder of ``cfg`` under ``out``: ``out/<name>/seed<seed>``."""
    return out / cfg.name / f"seed{cfg.train.seed}"


def complete(run_dir: Path, max_steps: int | None = None) -> bool:
    """Whether ``run_dir`` holds a finished run: its summary says complete, or that it stopped at a step limit of at
    least ``max_steps`` (the plan's ``train.max_steps``: a smoke run is done at its limit, and resumed when the
    limit is raised). A corrupt summary is an error naming it."""
    summary = read_summary(run_dir)
    if summary is None:
        return False
    if summary.get("status") == "complete":
        return True
    reached = summary.get("global_step")
    return summary.get("status") == "max_steps" and max_steps is not None and (reached or 0) >= max_steps


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (0 <= I < N)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N with integers 0 <= I < N, e.g. 0/2; got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected 0 <= I < N, got {text!r}")
    return i, n


# -- locks and claims -------------------------------------------------------------------------------------------
def finish_lock(out: Path, table: str) -> Claim | None:
    """The finishing lock of ``table`` in ``out`` (see the module doc), or None when another process holds it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FINISHING_LOCK.format(table=table)
    fd = _lock(path)
    if fd is None:
        return None
    _write_owner(fd)
    return Claim(path, fd)


def _finished_since(out: Path, runs: list[Path], since: float) -> bool:
    """Whether another process finished (report written) these runs after ``since`` (a time.time())."""
    try:
        note = read_json(out / FINISHED)
        if note is None:  # absent
            return False
        return float(note["time"]) >= since and {str(r) for r in runs} <= set(note["runs"])
    except (ValueError, KeyError, TypeError):  # corrupt (RunError) or not a note
        return False


def _note_finished(out: Path, runs: list[Path]) -> None:
    note = {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), "runs": [str(r) for r in runs]}
    write_json(out / FINISHED, note)


# -- the plan ---------------------------------------------------------------------------------------------------
def plan_runs(args: argparse.Namespace, table: Table | None = None) -> tuple[Table, list[dict[str, Any]], Path]:
    """The runs of ``vicinal reproduce``: config, seed, run folder and state (new / resume / done) of each.

    ``table``: the table ``args.table`` when the caller already looked it up (default: look it up).
    """
    table = table if table is not None else get_table(args.table)
    check_seeds(args.seeds)
    out = args.out if args.out is not None else Path("runs") / f"{table.name}-{args.scale}"
    plan = []
    # Seeds count up from each file's train.seed (0 for almost every config; the black-box source model of the
    # adversarial table starts at 1000 so that it differs from the ERM target trained at the same seed).
    # --seeds applies to every row; without it each row has the table's count (some tables want more seeds for
    # some rows, e.g. Table 2's 50% level). `--set train.seed=K` shifts every row's seeds by K: it replaced each
    # file's own start, so the source trained at its target's seed, a bit-identical copy (black box = white box).
    overrides = args.overrides  # the user's, as typed: each row takes its share (_row_overrides)
    bases = [
        (path, own, _first_seed(path, own), args.seeds or table.seeds_of(args.scale, path))
        for path in table.configs(args.scale)
        for own in [_row_overrides(path, overrides)]
    ]
    unread = _unread_row_options(overrides, [own for _, own, *_ in bases]) if bases else None
    if unread is not None:
        # dropped from every row, the run would have gone on without it, exit 0 (vicinal train refuses it)
        raise ConfigError(f"--set {unread}: no row of table {table.name!r} has a mix.variant that reads it")
    # Seed-major order: every row of seed k before any row of seed k + 1, so that a plan stopped part-way leaves
    # complete paired seeds (ERM and mixup on the same images and initial weights) rather than one method only.
    rows_of: dict[Path, Any] = {}  # run folder -> the row that trains into it
    for k in range(max((n for *_, n in bases), default=0)):
        for path, own, base, n in bases:
            if k >= n:
                continue
            seed = base + k
            cfg = load_config(path, [*own, f"train.seed={seed}"])
            check_buildable(cfg)
            run_dir = run_dir_of(out, cfg)
            other = rows_of.setdefault(run_dir, path)
            if other != path:  # only the first would train; the next found it "done" and was silently skipped
                given = (
                    " (--set name=... gives every row one name)"
                    if any(o.split("=", 1)[0].strip() == "name" for o in own)
                    else ""
                )
                raise ConfigError(
                    f"rows '{other}' and '{path}' of the plan share the run folder '{run_dir}' (name {cfg.name!r}, "
                    f"seed {seed}){given}; each row needs its own name"
                )
            state = "new"
            if complete(run_dir, cfg.train.max_steps):
                state = "done"
                _check_same_recipe(run_dir, cfg, "a finished run")
            elif (run_dir / "checkpoint.pt").is_file():
                state = "resume"
                # what the resume would refuse (its own comparison), told by the plan (and --dry-run), before any
                # run is trained; config.yaml is the config the run last trained with
                saved = run_dir / "config.yaml"  # (a folder copied without it: the resume itself checks the checkpoint)
                changed = resume_changes(read_config(run_dir), cfg) if saved.is_file() else []
                if changed:
                    raise ConfigError(
                        f"run folder '{run_dir}' holds a stopped run of a different config (differs at "
                        f"{', '.join(changed)}); resume it as it was, or use another --out"
                    )
            plan.append({"config": path, "cfg": cfg, "seed": seed, "run_dir": run_dir, "state": state})
    return table, plan, out


# A seed no config holds: set before the --set overrides, it tells whether they give train.seed, in any form
# (train.seed=K or train={seed: K}).
_NO_SEED = 2**62 + 12_345


# Mix options a table's rows need not share: `--set mix.alpha=A` over a table sets the alpha of the rows that draw
# one and leaves its ERM rows ERM (a row whose variant does not read the key would refuse it: config.validate)
_ROW_MIX_OPTIONS = {"mix.alpha": "alpha", "mix.sigma": "sigma"}
_ROW_KEYS = tuple(_ROW_MIX_OPTIONS.values())  # the same options as keys of a mix={...} mapping


def _row_options(item: str) -> tuple[str, dict[str, Any] | None]:
    """The row options (``alpha``, ``sigma``) that override ``item`` sets: ``("alpha", None)`` for
    ``mix.alpha=A``; ``("", mapping)`` for a ``mix={...}`` mapping holding one; ``("", None)`` otherwise (a mapping
    that is not valid YAML is left for the config loader to refuse)."""
    key, _, raw = item.partition("=")
    key = key.strip()
    if key in _ROW_MIX_OPTIONS:
        return _ROW_MIX_OPTIONS[key], None
    try:
        value = yaml.safe_load(raw) if key == "mix" else None
    except yaml.YAMLError:
        value = None
    if isinstance(value, dict) and any(k in value for k in _ROW_KEYS):
        return "", value
    return "", None


def _yaml_value(value: Any) -> str:
    """``value`` as one line of YAML that ``yaml.safe_load`` reads back as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=float("inf"))
    return text.removesuffix("...\n").strip()  # the end-of-document marker YAML adds after a scalar


def _row_overrides(path: Path, overrides: Sequence[str]) -> list[str]:
    """The ``--set`` overrides row ``path`` takes: all, but ``mix.alpha`` / ``mix.sigma`` (dotted, or keys of a
    ``mix={...}`` mapping) only where its variant reads them.

    In a mapping they once went to every row: ERM rows recorded the alpha, and a mapping with sigma was refused by
    every non-noise row. An override the row takes whole is passed on as the user typed it (errors quote it so).
    """
    parsed = [(o, *_row_options(o)) for o in overrides]
    if not any(name or mapping is not None for _, name, mapping in parsed):
        return list(overrides)
    probe = [  # the row's variant, from the overrides without the row options
        o if mapping is None else f"mix={_yaml_value({k: v for k, v in mapping.items() if k not in _ROW_KEYS})}"
        for o, name, mapping in parsed
        if not name
    ]
    # not validated: without its sigma a gaussian_noise row given as mix={variant: gaussian_noise, sigma: S} is
    # not whole; the row's own overrides are validated where the plan loads them
    variant = load_config(path, probe, validate_values=False).mix.variant
    reads = VARIANT_OPTIONS.get(variant, VariantOptions())
    own = []
    for o, name, mapping in parsed:
        if name:
            if getattr(reads, name):
                own.append(o)
        elif mapping is not None:
            kept = {k: v for k, v in mapping.items() if k not in _ROW_KEYS or getattr(reads, k)}
            if kept == mapping:
                own.append(o)
            elif kept:
                own.append(f"mix={_yaml_value(kept)}")
        else:
            own.append(o)
    return own


def _unread_row_options(overrides: Sequence[str], rows: Sequence[Sequence[str]]) -> str | None:
    """The first of the user's row options that no row took (``"mix.sigma=0.3"``, or ``"mix={sigma: 0.3}"``'s
    ``sigma``), or None."""
    for item in overrides:
        name, mapping = _row_options(item)
        if name and all(item not in own for own in rows):
            return item
        for key in mapping or ():
            if key in _ROW_KEYS and not any(_takes(own, key) for own in rows):
                return f"{item} (its {key})"
    return None


def _takes(own: Sequence[str], key: str) -> bool:
    """Whether a row's overrides ``own`` set row option ``key`` (dotted or in a mapping)."""
    for item in own:
        name, mapping = _row_options(item)
        if name == key or (mapping is not None and key in mapping):
            return True
    return False


def _first_seed(path: Path, overrides: Sequence[str]) -> int:
    """The first seed of row ``path``: its config's ``train.seed``, shifted by the K of ``--set train.seed=K``."""
    own = load_config(path).train.seed
    load_config(path, overrides)  # a bad override is refused naming the user's --set alone, not the probe's seed
    given = load_config(path, [f"train.seed={_NO_SEED}", *overrides]).train.seed
    return own + (0 if given == _NO_SEED else given)


def _check_same_recipe(run_dir: Path, cfg: ExperimentConfig, what: str, may_differ: Collection[str] = ()) -> None:
    """Refuse a run folder whose run (``what``: finished, or being trained by another process) has another recipe
    than the plan's ``cfg``. The same run whatever differs only in where it read its data from, how it was launched
    and logged (recipe.NOT_RESULT_KEYS): a rerun without the first launch's --set data.root=... or
    data.kwargs.num_workers=... must find its finished runs, not refuse them."""
    path = run_dir / "config.yaml"
    if not path.is_file():  # a run that has not started yet writes it first
        return
    changed = [
        k
        for k in result_key_differences(config_to_dict(read_config(run_dir)), config_to_dict(cfg))
        if k not in may_differ
    ]
    if changed:
        raise ConfigError(
            f"run folder '{run_dir}' holds {what} of a different config (differs at {', '.join(changed)}); use "
            "another --out"
        )


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


def reproduce(args: argparse.Namespace) -> int:
    """`vicinal reproduce`: every row x seed of a table, then the report (see the module doc)."""
    started = time.time()
    table = get_table(args.table)
    check_seeds(args.seeds)  # before the runner branch: a dry run of a runner table prints its plan
    if table.runner is not None:  # a table trained as one batched job (GAN grid, UCI), not trainer runs
        if getattr(args, "shard", None) is not None:
            raise ConfigError(f"--shard: table {table.name!r} trains as one batched job and cannot be split")
        out = args.out if args.out is not None else Path("runs") / f"{table.name}-{args.scale}"
        quiet = getattr(args, "quiet", False)
        try:
            table.runner(out, args.scale, args.seeds, overrides=args.overrides, dry_run=args.dry_run, quiet=quiet)
        except KeyboardInterrupt:
            if args.dry_run:
                raise
            # these tables record each finished part: say how to continue, as an interrupted trainer run does
            print(
                f"vicinal: interrupted; what finished is recorded in '{out}': rerun the same command to continue",
                file=sys.stderr,
            )
            return 130
        return 0
    table, plan, out = plan_runs(args, table)
    print(f"vicinal reproduce {table.name} --scale {args.scale}: {table.title}")
    if args.scale == "cpu" and table.notes:
        print(f"  {table.notes}")
    shard = getattr(args, "shard", None)
    mine = plan if shard is None else plan[shard[0] :: shard[1]]
    mine_ids = {id(m) for m in mine}
    for item in plan:
        cfg = item["cfg"]
        state = item["state"] if id(item) in mine_ids else "shard"
        print(
            f"  [{state:>6}] {cfg.name} seed {item['seed']}: {cfg.model.name} on {cfg.data.name}, "
            f"{cfg.train.epochs} epochs, mix {cfg.mix.variant} -> {item['run_dir']}"
        )
    if args.dry_run:
        print(
            f"dry run: {sum(i['state'] != 'done' for i in mine)} of {len(plan)} runs would be trained"
            + (f" by shard {shard[0]}/{shard[1]}" if shard else "")
        )
        # the launch check each run makes at its start (a paper config's global batch), told before the launch
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        refused = []
        for item in mine:
            try:
                check_global_batch(item["cfg"].data.batch_size, item["cfg"].data.global_batch_size, world_size)
            except RunError as exc:
                refused.append(str(exc))
        if refused:
            print(f"  but {len(refused)} of them would be refused at their start here: {refused[0]}")
        return 0
    t0 = time.perf_counter()
    # Under torchrun every rank must train the same runs, so distributed reproductions do not claim.
    claiming = int(os.environ.get("WORLD_SIZE", "1")) == 1

    trained: set[int] = set()  # each run is trained at most once per command (a max_steps run stays unfinished)

    def train(item: dict[str, Any], announce: bool) -> bool:
        """Claim and train one run; False when a live process holds it or it is already complete."""
        run_dir = item["run_dir"]
        try:
            held = claim(run_dir) if claiming else None
        except OSError as exc:  # a file in the way of the run folder (or of a folder above it)
            raise RunError(f"cannot create or lock the run folder '{run_dir}': {exc.strerror or exc}") from None
        if claiming and held is None:
            # another process's plan: its recipe must be this one's, or the folder would hold two recipes
            # (its config.yaml is rewritten when its training starts: until then a resume with a raised
            # train.epochs or max_steps, which this command may be too, still shows the old values)
            _check_same_recipe(run_dir, item["cfg"], "a run that another process is training", RESUME_MUTABLE)
            if announce:
                print(f"  [claimed] {run_dir}: another process is training it; skipped")
            return False
        try:
            if complete(run_dir, item["cfg"].train.max_steps):  # finished by another process since the plan
                _check_same_recipe(run_dir, item["cfg"], "a run that another process finished")
                return False
            trained.add(id(item))
            if held is not None and held.previous is not None:
                print(f"  [takeover] {run_dir}: its claim ({held.previous}) names a process that no longer runs")
            resume = (run_dir / "checkpoint.pt").is_file()
            summary = Trainer(item["cfg"], run_dir, resume=resume, quiet=args.quiet, restart_unfinished=True).fit()
        finally:
            if held is not None:
                held.release()
        if Trainer.is_rank0():
            _print_summary(summary, run_dir)
        return True

    for item in mine:
        if item["state"] != "done":
            train(item, announce=True)
    if claiming:
        # Take over what dead processes left: unfinished runs of this process's share that no live process holds,
        # and runs of other shards whose claim names a dead process. Repeat while that trains something.
        progressed = True
        while progressed:
            progressed = False
            for item in plan:
                if id(item) in trained or complete(item["run_dir"], item["cfg"].train.max_steps):
                    continue
                if id(item) in mine_ids or (item["run_dir"] / CLAIM).exists():
                    progressed = train(item, announce=False) or progressed
    pending = [i for i in plan if not complete(i["run_dir"], i["cfg"].train.max_steps)]
    waiting = {id(i) for i in pending}
    for item in plan:  # what other processes trained, claimed before this one could see their config
        if id(item) not in trained and id(item) not in waiting:
            _check_same_recipe(item["run_dir"], item["cfg"], "a run that another process finished")
    who = f"shard {shard[0]}/{shard[1]}" if shard is not None else "this process"
    if pending:
        # Other shards or processes are still training: the last one to finish goes on.
        print(
            f"{who} done; {len(pending)} runs trained elsewhere are not finished yet (the last process to "
            "finish writes the report; or run the command again once all are done)"
        )
        return 0
    lock = finish_lock(out, table.name) if claiming else None
    if claiming and lock is None:
        print(f"{who} done; another process is writing the report ({out / FINISHING_LOCK.format(table=table.name)})")
        return 0
    try:
        runs = [i["run_dir"] for i in plan]
        if claiming and _finished_since(out, runs, started):
            print(f"{who} done; another process has written the report meanwhile ({out / 'report'})")
            return 0
        if not _finish(table, plan, args, out, t0):
            return 130
        if claiming:
            _note_finished(out, runs)
    finally:
        if lock is not None:
            lock.release()
    return 0


def _finish(table: Table, plan: list[dict[str, Any]], args: argparse.Namespace, out: Path, t0: float) -> bool:
    """The step after training (if the table has one) and the report (rank 0); False when Ctrl-C stopped the step
    after training (said on stderr)."""
    if table.after_training is not None and Trainer.is_rank0():
        try:
            table.after_training(plan, args)
        except KeyboardInterrupt:
            # every run is trained; the step after training (Table 3's attacks) keeps what it finished: say how to
            # continue, as an interrupted run does (the CLI printed a bare "interrupted")
            print(
                f"vicinal: interrupted after training; rerun the same command to finish the {table.name} table "
                "(its finished runs and results are kept)",
                file=sys.stderr,
            )
            return False
    if Trainer.is_rank0():
        result = make_report([out], out / "report")
        print(result["markdown"])
        print(f"report written to {out / 'report'} ({time.perf_counter() - t0:.0f} s of training)")
    return True
