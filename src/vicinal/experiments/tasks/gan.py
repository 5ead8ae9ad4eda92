"""The ``gan`` table (Section 3.7, Figure 5): ERM GANs vs mixup GANs over a grid of runs on toy 2-D data.

The runs themselves (the setting, the objectives, the vmapped training on the seed-ensemble engine) are
:mod:`.gan_train`.

The table. :func:`run_gan_table` trains ``datasets x methods x widths x discriminator steps x learning rates x
seeds`` runs and reports, per dataset and method, the final metrics of the default setting (lr 1e-3, five
discriminator steps, the largest width) over seeds, and the share of all grid runs that converge: the paper's
claim is that "the training of mixup GANs seems promisingly robust to hyper-parameter and architectural choices".

Resuming. The grid trains group by group (one :func:`train_gan_runs` call: a dataset, method, width and D steps,
every learning rate and seed). As a group ends, its run folders are written, then ``groups/<NN>-<...>.json``
(atomically, last: the group is recorded wholly or not at all) holds everything the end of the table needs from it:
its final rows, training seconds, metrics records and, for the paper's setting, the figure's points. A rerun into
the same folder with the same protocol skips the recorded groups, trains the rest and writes every output from the
records, so it writes what an uninterrupted run writes (training is seeded per group); a finished grid is not
trained again (its outputs are rewritten from the records, its provenance kept). Another protocol is refused.
"""

from __future__ import annotations

import argparse
import json
import numbers
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...gan import LAM_DISTRIBUTIONS
from .. import runs as run_folders
from ..config import seed_list
from ..data.seeds import STREAM_GAN_FIGURE as STREAM_FIGURE
from ..data.seeds import make_generator
from ..distributed import check_explicit_device
from ..errors import TaskArgumentError, TaskError, exit_code
from ..runs import (
    METRICS,
    PROVENANCE,
    TASK_RUN_FILES,
    clean_stale_temp_files,
    incomplete_outputs,
    provenance,
    read_json,
    read_provenance,
    write_json,
    write_metrics,
    write_provenance,
)
from .gan_metrics import DATASETS, DEFAULT_MIN_COUNT, DEFAULT_STD, sample_toy
from .gan_summary import outcome_markdown, outcome_rows, plot_gan_figure, report_sections
from .gan_train import EVAL_SEED, FIGURE5_ITERATIONS, METHODS, GANConfig, GANRuns, check_positive_int, train_gan_runs
from .registry import Table, register_table, resume_line

__all__ = [
    "PROTOCOLS",
    "STREAM_FIGURE",
    "GANProtocol",
    "main",
    "plot_gan_figure",
    "run_gan_table",
    "run_name",
]


# --------------------------------------------------------------------------------------------------------------
# the table: a grid of runs, a summary and Figure 5


@dataclass(frozen=True)
class GANProtocol:
    """What :func:`run_gan_table` trains: ``datasets x methods x widths x d_steps`` groups of ``lrs x seeds`` runs.

    Attributes:
        scale: ``cpu`` or ``paper``.
        iterations: Generator iterations of every run.
        widths, d_steps, lrs: The hyper-parameter grid.
        seeds: Seeds of every grid point.
        default_lr, default_d_steps: The paper's setting (the default width is ``max(widths)``): its runs give
            the per-seed metrics and the figure.
        notes: How this scale differs from the paper.
        Other fields: as :class:`GANConfig`.
    """

    scale: str
    iterations: int
    widths: tuple[int, ...]
    d_steps: tuple[int, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    datasets: tuple[str, ...] = DATASETS
    methods: tuple[str, ...] = METHODS
    std: float = DEFAULT_STD
    eval_every: int = 1000
    n_eval: int = 2500
    min_count: int = DEFAULT_MIN_COUNT
    alpha: float = 0.2
    lam_distribution: str = "beta"
    batch_size: int = 128
    layers: int = 3
    default_lr: float = 1e-3
    default_d_steps: int = 5
    notes: str = ""

    def __post_init__(self) -> None:
        for name in ("widths", "d_steps", "lrs", "seeds", "datasets", "methods"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise TaskError(f"{name} must be a non-empty tuple, got {values!r}")
            if len(set(values)) != len(values):
                raise TaskError(f"{name} has repeated values: {values!r}")
        if self.default_lr not in self.lrs:
            raise TaskError(f"default_lr {self.default_lr} is not in lrs {self.lrs}")
        if self.default_d_steps not in self.d_steps:
            raise TaskError(f"default_d_steps {self.default_d_steps} is not in d_steps {self.d_steps}")
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TaskArgumentError(f"seeds must be ints, got {type(seed).__name__} {seed!r}")
        for config in self.configs():  # validates every field shared with GANConfig
            del config

    @property
    def default_width(self) -> int:
        """The width of the paper's setting in this grid: the largest."""
        return max(self.widths)

    @property
    def snapshot_iters(self) -> tuple[int, ...]:
        """Figure 5's iterations (10 ... 20,000 of 20,000) scaled to ``iterations`` (at least 1)."""
        scaled = (max(1, round(it * self.iterations / FIGURE5_ITERATIONS[-1])) for it in FIGURE5_ITERATIONS)
        return tuple(sorted(set(scaled)))

    def configs(self) -> list[GANConfig]:
        """One :class:`GANConfig` per group (dataset, method, width, d_steps), in the order they are trained."""
        return [
            GANConfig(
                dataset=dataset,
                method=method,
                iterations=self.iterations,
                batch_size=self.batch_size,
                d_steps=d,
                width=w,
                layers=self.layers,
                alpha=self.alpha,
                lam_distribution=self.lam_distribution,
                std=self.std,
                eval_every=self.eval_every,
                n_eval=self.n_eval,
                min_count=self.min_count,
                snapshot_iters=self.snapshot_iters,
                n_snapshot=min(512, self.n_eval),
            )
            for dataset, method, w, d in product(self.datasets, self.methods, self.widths, self.d_steps)
        ]


PROTOCOLS: dict[str, GANProtocol] = {
    "paper": GANProtocol(
        scale="paper",
        iterations=20_000,
        widths=(128, 512),
        d_steps=(1, 5),
        lrs=(1e-4, 1e-3),
        seeds=(0, 1, 2),
        eval_every=1000,
        notes="The paper's setting (width 512, 5 D steps, Adam lr 1e-3, 20,000 iterations) inside a grid of "
        "widths {128, 512} x D steps {1, 5} x lr {1e-4, 1e-3}.",
    ),
    "cpu": GANProtocol(
        scale="cpu",
        iterations=2000,
        widths=(32, 128),
        d_steps=(1, 5),
        lrs=(1e-4, 1e-3),
        seeds=(0, 1, 2),
        std=0.05,
        eval_every=250,
        notes="cpu scale: 2,000 generator iterations instead of 20,000 (Figure 5's columns at 1, 10, 100, 1,000, "
        "2,000), widths {32, 128} instead of {128, 512} (so the paper's setting is run at width 128), and modes of "
        "std 0.05 instead of 0.01 (so high quality means within 0.15 of a mode): at 2,000 iterations and std 0.01 "
        "no run of either method put even 20% of its points within 0.03 of the ring's modes (measured: width 128, "
        "5 D steps, 4 runs per method), so the convergence rule would read 0 for everything. Everything else as "
        "the paper scale.",
    ),
}


def _summarise(protocol: GANProtocol, finals: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Summary rows (one per dataset x method) and the markdown page."""
    p = protocol
    rows = outcome_rows(
        finals,
        lambda r: (r["width"], r["d_steps"], r["lr"]) == (p.default_width, p.default_d_steps, p.default_lr),
        p.datasets,
        p.methods,
    )
    setting, grid = outcome_markdown(rows)
    md = [
        f"# GANs (Section 3.7, Figure 5): ERM GAN vs mixup GAN (alpha = {p.alpha}), {p.scale} scale",
        "",
        f"{p.iterations:,} generator iterations, batch {p.batch_size}, Adam (betas 0.9, 0.999), {p.layers} hidden "
        f"ReLU layers, 2-D Gaussian noise, non-saturating generator loss; mixup lam ~ "
        f"{'Beta(alpha, alpha)' if p.lam_distribution == 'beta' else 'Uniform(0, alpha)'} per sample. "
        f"Data: 'ring' (8 modes on the unit circle) and 'grid' (25 modes at {{-2,-1,0,1,2}}^2), std {p.std}.",
        "",
        f"Metrics on {p.n_eval:,} generated points: a point is high quality within 3 std ({3 * p.std:g}) of its "
        f"nearest mode; a mode is covered by >= {p.min_count} high-quality points; sliced W2 to {p.n_eval:,} real "
        "points (64 directions). A run converges when, at its last iteration, all modes are covered and >= 50% of "
        "its points are high quality.",
        "",
        f"## Paper's setting (lr {p.default_lr:g}, {p.default_d_steps} D steps per G step, width "
        f"{p.default_width}): last iteration, mean ± std over seeds",
        "",
        *setting,
        "",
        f"## Robustness: runs that converge over the grid (widths {list(p.widths)} x D steps {list(p.d_steps)} x "
        f"lr {list(p.lrs)} x {len(p.seeds)} seeds)",
        "",
        *grid,
    ]
    md += [
        "",
        "## Per grid point: converged runs / seeds, and mean modes covered and high-quality share at the end",
        "",
        "| dataset | width | D steps | lr | "
        + " | ".join(f"{m} converged | {m} modes | {m} hq" for m in p.methods)
        + " |",
        "|---|---|---|---|" + "---|---|---|" * len(p.methods),
    ]
    for dataset, w, d, lr in product(p.datasets, p.widths, p.d_steps, p.lrs):
        cells = []
        for method in p.methods:
            runs = [
                r
                for r in finals
                if (r["dataset"], r["method"], r["width"], r["d_steps"], r["lr"]) == (dataset, method, w, d, lr)
            ]
            cells += [
                f"{sum(r['converged'] for r in runs)}/{len(runs)}",
                f"{np.mean([r['modes_covered'] for r in runs]):.1f}",
                f"{np.mean([r['high_quality'] for r in runs]):.2f}",
            ]
        md.append(f"| {dataset} | {w} | {d} | {lr:g} | " + " | ".join(cells) + " |")
    md += ["", "![Figure 5](gan_figure.png)", ""]
    if p.notes:
        md += [p.notes, ""]
    return rows, "\n".join(md)


def run_gan_table(
    out_dir: str | Path,
    scale: str = "cpu",
    seeds: int | Sequence[int] | None = None,
    *,
    iterations: int | None = None,
    widths: Sequence[int] | None = None,
    d_steps: Sequence[int] | None = None,
    lrs: Sequence[float] | None = None,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    lam_distribution: str | None = None,
    eval_every: int | None = None,
    n_eval: int | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = 1,
    log: Callable[[str], None] | None = print,
    dry_run: bool = False,
    announce: Callable[[], None] | None = None,
) -> Path:
    """Train the GAN grid of ``scale`` and write a run folder with metrics, summary and Figure 5.

    Args:
        out_dir: The run folder (created). One that holds a grid of the same protocol (``protocol.json``) is
            continued: its recorded groups are skipped and the rest trained (a finished grid trains nothing and
            gets its outputs rewritten); one of another protocol is refused.
        scale: ``cpu`` or ``paper`` (:data:`PROTOCOLS`).
        seeds: Number of seeds (``0 .. n-1``) or the seeds themselves; default: the protocol's.
        iterations, widths, d_steps, lrs, datasets, methods, lam_distribution, eval_every, n_eval: Overrides of
            the protocol (for small runs and tests); recorded in ``protocol.json``.
        device: Where the networks train.
        threads: torch intra-op threads while training, restored afterwards (default 1: these matrices are
            small, and on a shared CPU a second thread mostly spin-waits, which made steps much slower).
            None leaves torch's setting.
        log: Progress lines (None: silent).
        dry_run: Check ``out_dir`` as a run would (refusing what it refuses, an ``out_dir`` that cannot be created
            included), log how many groups it holds recorded and write nothing.
        announce: Called once every argument and ``out_dir`` passed their checks, before anything is logged or
            trained (the CLI's banner: a refusal stays the only line).

    Returns:
        ``out_dir``, holding ``protocol.json``, ``provenance.json``, ``metrics.jsonl`` (every evaluation of every
        run), ``runs.csv`` (last iteration of every run), ``summary.csv``, ``summary.md``, ``gan_figure.png``,
        ``snapshots.npz`` (the figure's points), ``groups/`` (one record per trained group, what a rerun resumes
        from) and ``runs/<name>/seed<seed>/``, one standard run folder per run (``config.yaml``,
        ``provenance.json``, ``metrics.jsonl``, ``summary.json``: see :func:`run_name`). ``provenance.json`` is the
        first process's, with one entry per later process in ``resumes`` (``groups_recorded``: the groups it found
        done), ``group_seconds`` (each group's training seconds and ``session``: 0 the first process, k the k-th
        resume) and ``wall_seconds`` (this process's time plus the training seconds of groups earlier ones recorded).
    """
    if scale not in PROTOCOLS:
        raise TaskError(f"unknown scale {scale!r}; known scales: {', '.join(PROTOCOLS)}")
    if threads is not None:
        check_positive_int("threads", threads)
    check_explicit_device(str(device), "device")  # before protocol.json is written: a traceback deep in training
    overrides: dict[str, Any] = {}
    if seeds is not None:
        overrides["seeds"] = tuple(seed_list(seeds, negative=True))  # derive_seed takes negative seeds
    for name, value in (
        ("widths", widths),
        ("d_steps", d_steps),
        ("lrs", lrs),
        ("datasets", datasets),
        ("methods", methods),
    ):
        if value is None:
            continue
        if isinstance(value, str | numbers.Number):  # one value (numpy's too): tuple("ring") would be its letters
            value = (value,)
        if isinstance(value, Iterable) and not isinstance(value, Mapping | set | frozenset):  # ordered: a grid
            # numpy's scalars (an array's items) as the Python numbers the protocol checks and protocol.json holds
            overrides[name] = tuple(v.item() if isinstance(v, np.generic) else v for v in value)
        else:
            raise TaskArgumentError(f"{name} must be a value or a list of them, got {type(value).__name__}")
    for name, setting in (
        ("iterations", iterations),
        ("lam_distribution", lam_distribution),
        ("eval_every", eval_every),
        ("n_eval", n_eval),
    ):
        if setting is not None:
            overrides[name] = setting
    base = PROTOCOLS[scale]
    if "lrs" in overrides and base.default_lr not in overrides["lrs"]:
        overrides["default_lr"] = overrides["lrs"][-1]
    if "d_steps" in overrides and base.default_d_steps not in overrides["d_steps"]:
        overrides["default_d_steps"] = overrides["d_steps"][-1]
    protocol = replace(base, **overrides)

    out = Path(out_dir)
    run_folders.check_out_folder(out)
    protocol_json = {
        **asdict(protocol),
        "default_width": protocol.default_width,
        "snapshot_iters": list(protocol.snapshot_iters),
        "paper_snapshot_iters": list(FIGURE5_ITERATIONS),
        "groups": [asdict(c) for c in protocol.configs()],
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
    }
    # one process writes a grid, from its first look at the folder to its end: a second one would train the same
    # groups and sweep the first's temporary files as stale (a dry run only reads)
    with run_folders.hold_folder(out, dry_run=dry_run):
        resuming = _check_continuable(out, protocol_json)  # before anything is written: a refusal changes nothing
        if announce is not None:
            announce()
        say = log or (lambda _msg: None)
        if dry_run:  # what the rerun would do: the same checks, read only
            configs = protocol.configs()
            recorded = len(_recorded_groups(out, protocol, say)) if resuming else 0
            say(resume_line(out, recorded, len(configs), "groups", dry_run=True))
            return out
        if not resuming:  # a continued grid keeps the protocol.json (and its overrides) it started with
            write_json(out / "protocol.json", protocol_json)
        saved_threads = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return _run_table(out, protocol, overrides, device, say, resuming=resuming)
        finally:
            torch.set_num_threads(saved_threads)


# the table's outputs, rewritten from the records at every end (`_write_outputs`)
OUTPUTS = ("runs.csv", "summary.csv", "summary.md", "gan_figure.png", "snapshots.npz")
# what to do with a corrupt provenance.json of the grid (it holds no results: the groups/ records do)
PROVENANCE_HINT = "delete it (the provenance of the earlier processes is then lost; the recorded groups are kept)"
GROUPS = "groups"  # out/groups/: one record per finished group (see the module doc)
# protocol.json keys that follow from others: named in a refusal only when nothing else differs
_DERIVED_KEYS = ("default_width", "groups", "notes", "paper_snapshot_iters", "snapshot_iters")


def _protocol_changes(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between a saved ``protocol.json`` and this run's, as ``key old (now new)`` items.

    ``overrides`` is not compared: it records how the protocol was asked for (``--seeds 3`` or the scale's three
    seeds), and the same effective protocol trains the same groups whichever way it was spelled.
    """
    new = json.loads(json.dumps(new))  # as saved: tuples become lists
    keys = sorted((set(saved) | set(new)) - {"overrides"})
    changed = [k for k in keys if saved.get(k) != new.get(k)]
    primary = [k for k in changed if k not in _DERIVED_KEYS]
    items = []
    for k in primary or changed:
        old_groups, new_groups = saved.get(k), new.get(k)
        if k == "groups" and isinstance(old_groups, list) and isinstance(new_groups, list):
            fields = sorted(
                {
                    f
                    for a, b in zip(old_groups, new_groups, strict=False)
                    if isinstance(a, dict) and isinstance(b, dict)
                    for f in a
                    if a.get(f) != b.get(f)
                }
            )
            items.append(
                f"groups ({len(old_groups)} now {len(new_groups)}; fields differing: {', '.join(fields) or 'none'})"
            )
        else:
            items.append(f"{k} {saved.get(k)!r} (now {new.get(k)!r})")
    return items


def _check_continuable(out: Path, protocol_json: dict[str, Any]) -> bool:
    """Whether ``out`` holds a GAN grid to continue (True) or is new (False); a grid that cannot be is a TaskError.

    A grid is continued only with the protocol it started with: its recorded groups and run folders belong to it.
    A finished grid of a lab version that recorded no ``groups/`` is refused rather than trained again over its
    results; an interrupted one of that version has nothing to reuse and is trained again in place (the same
    numbers: training is seeded).
    """
    hint = "choose a new --out (or delete the folder)"
    saved = read_json(out / "protocol.json", hint=hint)
    if saved is None:
        held = [name for name in (METRICS, GROUPS) if (out / name).exists()]
        if held:
            raise TaskError(
                f"'{out}' holds {' and '.join(held)} but no protocol.json: not a GAN grid that can be continued; {hint}"
            )
        return False
    if not isinstance(saved, dict):
        raise TaskError(f"'{out / 'protocol.json'}' does not hold a GAN protocol (a JSON object); {hint}")
    changed = _protocol_changes(saved, protocol_json)
    if changed:
        raise TaskError(
            f"'{out}' holds a GAN grid of another protocol ({'; '.join(changed)}); a grid is continued only with the "
            f"protocol it started with: {hint}"
        )
    prov = read_provenance(out, hint=PROVENANCE_HINT)
    if prov is not None and "finished" in prov and not (out / GROUPS).is_dir():
        raise TaskError(
            f"'{out}' holds a GAN grid finished by an earlier version of the lab, without the groups/ records its "
            f"outputs are rewritten from; it is kept as it is: {hint}"
        )
    return True


def _group_path(out: Path, g: int, config: GANConfig) -> Path:
    """The record of group ``g`` (1-based, in training order): ``groups/03-ring-mixup-w128-d5.json``."""
    return out / GROUPS / f"{g:02d}-{config.dataset}-{config.method}-w{config.width}-d{config.d_steps}.json"


def _group_tag(config: GANConfig) -> dict[str, Any]:
    return {"dataset": config.dataset, "method": config.method, "width": config.width, "d_steps": config.d_steps}


def _run_folders(out: Path, protocol: GANProtocol, config: GANConfig) -> list[Path]:
    """The run folders of ``config``'s group, as :func:`_write_run_folders` writes them."""
    return [out / "runs" / run_name(config, lr) / f"seed{seed}" for lr in protocol.lrs for seed in protocol.seeds]


def _recorded_groups(out: Path, protocol: GANProtocol, say: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    """The records of the groups of ``protocol`` that ``out`` holds wholly (group, 1-based -> record); reads only.

    A group whose run folders are not all there and finished (one deleted since) is left out, with a line to
    ``say``: it is trained again, in place (training is seeded: the same numbers).
    """
    configs = protocol.configs()
    records = {}
    for g, config in enumerate(configs, 1):
        path = _group_path(out, g, config)
        if not path.is_file():
            continue
        record = _read_group(path, config)
        missing = incomplete_outputs(out, (), _run_folders(out, protocol, config))
        if missing:
            say(f"[{g}/{len(configs)}] '{missing[0]}' is missing or unfinished: its group is trained again")
        else:
            records[g] = record
    return records


def _read_group(path: Path, config: GANConfig) -> dict[str, Any]:
    """The record of ``config``'s group at ``path``; one that is not that group's is a TaskError naming the file."""
    record = read_json(path, hint="delete it (its group is then trained again)")
    keys = ("tag", "seconds", "runs", "session", "finals", "metrics", "snapshots")
    if not isinstance(record, dict) or any(k not in record for k in keys) or record["tag"] != _group_tag(config):
        raise TaskError(
            f"'{path}' is not the record of group {_group_tag(config)}; delete it (its group is then trained again)"
        )
    return record


def _run_table(
    out: Path,
    protocol: GANProtocol,
    overrides: dict[str, Any],
    device: str | torch.device,
    say: Callable[[str], None],
    *,
    resuming: bool,
) -> Path:
    entry = provenance(device=device, seeds=list(protocol.seeds))  # this process's; the run folders it trains get it
    entry["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    start = time.perf_counter()

    configs = protocol.configs()
    # a write killed mid-way (SIGKILL) leaves its temporary file behind: those of every file this table writes
    run_folders.clean_stale_writes(out, (*OUTPUTS, "protocol.json", PROVENANCE, METRICS))
    for g, config in enumerate(configs, 1):
        path = _group_path(out, g, config)
        clean_stale_temp_files(path.parent, path.name)
        for folder in _run_folders(out, protocol, config):
            run_folders.clean_stale_writes(folder, TASK_RUN_FILES)
    # group (1-based) -> its record, as read back from groups/
    records: dict[int, dict[str, Any]] = _recorded_groups(out, protocol, say) if resuming else {}

    # Provenance as the trainer's runs keep it (runs.record_start): the first process's entry, and one entry per
    # later process in ``resumes`` (with the groups it found recorded); each group's record names its session.
    prov = read_provenance(out, hint=PROVENANCE_HINT) if resuming else None
    finished = prov is not None and "finished" in prov and len(records) == len(configs)
    if prov is None:
        prov = {**entry, "resumes": []}
    elif not finished:
        for key in ("finished", "wall_seconds", "group_seconds"):  # of an earlier end, rewritten at this one
            prov.pop(key, None)
        prov.setdefault("resumes", []).append({**entry, "groups_recorded": len(records)})
    session = len(prov.get("resumes", []))  # this process: 0 the first, k the k-th resume (unused when finished)
    if not finished:
        write_provenance(out, prov)
    if resuming:
        say(resume_line(out, len(records), len(configs), "groups"))

    def recorded_metrics() -> list[dict[str, Any]]:
        return [rec for g in sorted(records) for rec in records[g]["metrics"]]

    # metrics.jsonl is rewritten whole (atomically) from the records, never appended to: it then holds exactly the
    # recorded groups, never the records of a group interrupted before its record was written (a crash between
    # an append and the record would leave those twice once the group is trained again), nor a torn last line.
    write_metrics(out, recorded_metrics())
    # every run of a group: each learning rate with each seed
    member_lrs = [lr for lr in protocol.lrs for _ in protocol.seeds]
    member_seeds = [s for _ in protocol.lrs for s in protocol.seeds]
    s_fig = member_lrs.index(protocol.default_lr)  # the figure's run: the first seed at the paper's lr
    for g, config in enumerate(configs, 1):
        tag = _group_tag(config)
        if g in records:
            say(f"[{g}/{len(configs)}] {tag}: recorded, skipped")
            continue
        say(f"[{g}/{len(configs)}] {tag}: {len(member_seeds)} runs x {config.iterations} iterations")
        runs = train_gan_runs(config, member_seeds, member_lrs, device=device)
        _write_run_folders(out, protocol, runs, entry)
        figure = config.width == protocol.default_width and config.d_steps == protocol.default_d_steps
        record = {
            "tag": tag,
            "seconds": round(runs.seconds, 2),
            "runs": len(member_seeds),
            "session": session,
            "finals": [{**tag, **rec} for rec in runs.final()],
            "metrics": [{**tag, **rec} for rec in runs.history],
            # the figure's points of the paper's setting (JSON floats give float32 values back exactly)
            "snapshots": {
                "dtype": str(runs.snapshots[protocol.snapshot_iters[0]].numpy().dtype),
                "points": {str(it): runs.snapshots[it][s_fig].numpy() for it in protocol.snapshot_iters},
            }
            if figure
            else None,
        }
        path = write_json(_group_path(out, g, config), record)  # the group is recorded: written last, atomically
        # read back: an uninterrupted and a resumed run build the outputs from the same records
        records[g] = _read_group(path, config)
        write_metrics(out, recorded_metrics())
        finals = records[g]["finals"]
        say(
            f"    {runs.seconds:.0f} s; converged {sum(r['converged'] for r in finals)}/{len(finals)}; "
            f"modes {[r['modes_covered'] for r in finals]}"
        )

    md = _write_outputs(out, protocol, [records[g] for g in sorted(records)])
    say(md)
    if finished:  # nothing trained: the provenance of the processes that trained it stays as it is
        say(f"rewrote the outputs of {out} from its {len(records)} recorded groups")
        return out
    elapsed = time.perf_counter() - start
    # the time spent on this grid: this process's, and the training of the groups earlier processes recorded
    # (the unrecorded group an interrupted process was training is lost time, not counted)
    earlier = sum(rec["seconds"] for rec in records.values() if rec["session"] != session)
    prov["wall_seconds"] = round(elapsed + earlier, 1)
    prov["group_seconds"] = [
        {**records[g]["tag"], **{k: records[g][k] for k in ("seconds", "runs", "session")}} for g in sorted(records)
    ]
    prov["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_provenance(out, prov)
    say(f"wrote {out} in {prov['wall_seconds']:.0f} s over {1 + len(prov['resumes'])} process(es)")
    return out


def _write_outputs(out: Path, protocol: GANProtocol, records: list[dict[str, Any]]) -> str:
    """The table's outputs from the groups' records, in training order: ``runs.csv``, ``summary.csv``,
    ``summary.md`` (returned), ``gan_figure.png``, ``snapshots.npz``."""
    finals = [row for record in records for row in record["finals"]]
    fig_samples: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for record in records:
        snaps, tag = record["snapshots"], record["tag"]
        if snaps is not None:
            fig_samples[(tag["dataset"], tag["method"])] = {
                it: np.asarray(snaps["points"][str(it)], dtype=snaps["dtype"]) for it in protocol.snapshot_iters
            }
    fields = [
        "dataset",
        "method",
        "width",
        "d_steps",
        "lr",
        "seed",
        "iteration",
        "modes_covered",
        "n_modes",
        "high_quality",
        "sliced_w2",
        "d_loss",
        "g_loss",
        "converged",
    ]
    run_folders.write_csv(out / "runs.csv", fields, finals)
    rows, md = _summarise(protocol, finals)
    run_folders.write_csv(out / "summary.csv", list(rows[0]), rows)
    run_folders.write_text(out / "summary.md", md)

    eval_gen = make_generator(EVAL_SEED, STREAM_FIGURE)  # the figure's real points, apart from the metrics'
    real = {d: sample_toy(d, 1000, generator=eval_gen, std=protocol.std).numpy() for d in protocol.datasets}
    scaled = protocol.snapshot_iters
    paper_its = list(FIGURE5_ITERATIONS) if len(scaled) == len(FIGURE5_ITERATIONS) else None
    plot_gan_figure(fig_samples, real, out / "gan_figure.png", paper_iterations=paper_its)
    # Any: np.savez_compressed's stub also takes allow_pickle: bool, which a ** of arrays would have to match
    arrays: dict[str, Any] = {
        **{f"{d}_{m}_it{it}": pts for (d, m), by_it in fig_samples.items() for it, pts in by_it.items()},
        **{f"{d}_real": pts for d, pts in real.items()},
    }
    # atomically: a rerun rewrites it over the previous one
    run_folders.atomic_write(out / "snapshots.npz", lambda f: np.savez_compressed(f, **arrays))
    return md


def run_name(config: GANConfig, lr: float) -> str:
    """The config name of the runs of ``config`` at ``lr`` (their seeds differ): ``gan-ring-mixup-w128-d5-lr0.001``."""
    return f"gan-{config.dataset}-{config.method}-w{config.width}-d{config.d_steps}-lr{lr:g}"


def _write_run_folders(out: Path, protocol: GANProtocol, runs: GANRuns, prov: dict[str, Any]) -> None:
    """One standard run folder per run, ``out/runs/<name>/seed<seed>`` (config, provenance, metrics, summary).

    The report groups them by name; ``row`` is ``<dataset>/<method>`` for the paper's setting (lr, D steps and
    width of the protocol's default) and ``<dataset>/w<width>_d<d_steps>_lr<lr>/<method>`` for the rest of the grid.
    """
    c, p = runs.config, protocol
    finals = runs.final()
    for s, (seed, lr) in enumerate(zip(runs.seeds, runs.lrs, strict=True)):
        default = (c.width, c.d_steps, lr) == (p.default_width, p.default_d_steps, p.default_lr)
        row = f"{c.dataset}/{c.method}" if default else f"{c.dataset}/w{c.width}_d{c.d_steps}_lr{lr:g}/{c.method}"
        folder = out / "runs" / run_name(c, lr) / f"seed{seed}"
        run_folders.write_task_config(
            folder,
            {
                "name": run_name(c, lr),
                "table": "gan",
                "row": row,
                "notes": f"one run of the gan table ({p.scale} scale), trained in an ensemble of {len(runs.seeds)}",
                # what the report needs to rebuild the table's own summary from the run folders alone
                "scale": p.scale,
                "paper_setting": default,
                "train": {"seed": seed, "lr": lr},
                "gan": {**asdict(c), "betas": list(c.betas), "snapshot_iters": list(c.snapshot_iters)},
            },
        )
        write_provenance(folder, {**prov, "seed": seed, "lr": lr, "ensemble": {"runs": len(runs.seeds)}})
        write_metrics(folder, [r for r in runs.history if r["run"] == s])
        final = {k: v for k, v in finals[s].items() if k != "run"}
        run_folders.write_summary(
            folder,
            {
                "status": "complete",
                "iterations": c.iterations,
                **final,
                # the wall time of the whole ensemble, which trained these runs together
                "train_time_s": runs.seconds,
            },
        )


def _parse_seeds(text: str) -> int | list[int]:
    try:
        return [int(s) for s in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count or a comma-separated list of ints, got {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vicinal.experiments.tasks.gan --out DIR [--scale cpu|paper] [--seeds N|a,b,c] ...``."""
    # a refusal (LabError) is one line and exit 2, a Ctrl-C exit 130, as with the ``vicinal`` command
    return exit_code(lambda: _main(argv), prog="python -m vicinal.experiments.tasks.gan")


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vicinal.experiments.tasks.gan", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", required=True, help="the run folder (one holding a grid of the same protocol is continued)"
    )
    parser.add_argument("--scale", default="cpu", choices=sorted(PROTOCOLS))
    parser.add_argument("--seeds", type=_parse_seeds, default=None, help="a count (0..n-1) or a list: 0,1,2")
    parser.add_argument("--iterations", type=int, default=None, help="override the protocol's iterations")
    parser.add_argument("--lam-distribution", choices=LAM_DISTRIBUTIONS, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads while training (default 1: small matrices; on a shared CPU a second thread "
        "mostly spin-waits). 0 keeps torch's setting.",
    )
    args = parser.parse_args(argv)
    run_gan_table(
        args.out,
        args.scale,
        args.seeds,
        iterations=args.iterations,
        lam_distribution=args.lam_distribution,
        device=args.device,
        threads=args.threads if args.threads > 0 else None,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    return 0


def _reproduce(
    out_dir: Path,
    scale: str,
    seeds: int | None,
    *,
    overrides: Sequence[str] = (),
    dry_run: bool = False,
    quiet: bool = False,
) -> Path | None:
    """``vicinal reproduce gan``: the whole grid of ``scale`` into ``out_dir`` (``quiet``: no per-group lines)."""
    if overrides:
        raise TaskError("table 'gan' is not made of config files: --set does not apply")

    def banner() -> None:  # after every check, so that a refusal stays the only line
        print(f"vicinal reproduce gan --scale {scale}: {GAN_TABLE.title}")
        if scale == "cpu":
            print(f"  {GAN_TABLE.notes}")

    if dry_run:  # the continuation check of the real run, read only: refuses what it refuses
        run_gan_table(out_dir, scale, seeds, dry_run=True, log=print, announce=banner)
        return None
    return run_gan_table(
        out_dir,
        scale,
        seeds,
        log=None if quiet else lambda msg: print(msg, file=sys.stderr, flush=True),
        announce=banner,
    )


GAN_TABLE = register_table(
    Table(
        name="gan",
        title="Figure 5 (Section 3.7): ERM vs mixup GANs on toy 2-D data (ring, grid), convergence over a grid",
        configs=lambda scale: [],
        default_seeds={"cpu": 3, "paper": 3},
        notes=PROTOCOLS["cpu"].notes,
        runner=_reproduce,
        sections=report_sections,
    )
)

if __name__ == "__main__":
    raise SystemExit(main())
