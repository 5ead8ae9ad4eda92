"""The ``uci`` table: six UCI tabular datasets, ERM vs mixup (paper Section 3.6, Table 4 right).

The paper fixes the model and the optimiser and nothing else: a fully connected net with two hidden layers of
128 ReLU units, Adam with its default hyper-parameters, 10 epochs of minibatches of 16. It states no split, no
alpha and no number of repeats. This module fixes them, once, in :class:`UCIProtocol` (and
``configs/uci/uci.yaml``):

* **split**: a stratified split per seed from :func:`vicinal.experiments.data.uci.load_uci` (test 20 % of all rows,
  validation 20 % of the rest; Arcene: its official ``valid`` files are the test set), features standardised with
  training statistics. Seed ``s`` of a run uses split ``s``, so the spread over seeds includes split noise.
* **repeats**: 10 seeds by default. ERM and every mixup alpha of a seed share that seed's split, initialisation and
  data order (common random numbers), so ERM vs mixup is a *paired* comparison across seeds.
* **alpha**: chosen per dataset from :data:`DEFAULT_ALPHAS` by the validation error at the last epoch averaged over
  seeds (ties go to the smaller alpha); the test split is never looked at for the choice.
* **metric**: test error at the last (10th) epoch, no early stopping.
* **paired test**: Wilcoxon signed-rank test on the per-seed test errors (mixup - ERM), two-sided, zero differences
  dropped (scipy's default). Why not the paired t-test: on small test splits the errors are coarse and discrete
  (Iris: 30 test rows, steps of 3.3 points) and their differences are far from normal with 10 pairs; the
  signed-rank test assumes only a symmetric distribution of differences. The paired t-test p-value is also written
  to the CSV.

Speed: at batch 16 one training step costs far more Python than arithmetic, so all members of a dataset (seeds x
{ERM, each alpha}) train at once as ONE batched model on the lab's seed-ensemble engine
(:class:`~vicinal.experiments.ensemble.Ensemble`), each with its own initialisation, data order and mixing
``(lam, perm)`` from its own seeded generators; :mod:`.uci_train` holds the members, their randomness and the
trainer, and the plain loop one vmapped member must equal. ``benchmarks/bench_uci.py`` measures the speed-up.

Resuming. The table trains dataset by dataset. As a dataset ends, its folder is written, then
``<dataset>/record.json`` (atomically, last: the dataset is recorded wholly or not at all) holds what the end of the
table needs from it: its summary row and seconds. A rerun into the same folder with the same protocol and seeds
skips the recorded datasets, trains the rest (an unrecorded dataset folder, interrupted part-way, is trained again
in place: the same member folders) and writes the summary from the records, so it writes what an uninterrupted run
writes (training is seeded per member); a finished table is not trained again (its summary is rewritten from the
records, its provenance kept). A dataset folder of another protocol or other seeds is refused, and so is a table
of another protocol or seeds, or one holding datasets this run does not name (``--datasets`` of the module's entry
point: its summary would lose them).

Entry points: :func:`run_uci_table` (writes the run folders and the summary) and ``python -m
vicinal.experiments.tasks.uci --out DIR --seeds 10``. The members and their training live in :mod:`.uci_train`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vicinal.experiments.data.uci import UCI_DATASETS, check_uci_files, load_uci

from .. import runs
from ..config import ExperimentConfig, config_from_dict, config_to_dict
from ..config import seed_list as config_seed_list
from ..distributed import check_explicit_device
from ..errors import TaskError, exit_code
from ..evaluation import summarize
from ..stats import mean_std, paired_wilcoxon
from .registry import Table, configs_dir, register_table, resume_line
from .uci_train import (
    STREAM_INIT,
    STREAM_MIX,
    STREAM_ORDER,
    Member,
    MemberResult,
    UCIProtocol,
    check_chunk_size,
    load_protocol,
    train_vmapped,
)

# moved to stats.py; the old name stays importable
paired_test = paired_wilcoxon

__all__ = [
    "ALL_DATASETS",
    "PAPER_TABLE4",
    "format_markdown",
    "main",
    "member_config",
    "member_records",
    "parse_overrides",
    "reproduce",
    "run_uci_table",
    "select_alpha",
    "shipped_rows",
    "summarize_dataset",
]

ALL_DATASETS: tuple[str, ...] = ("abalone", "arcene", "arrhythmia", "htru2", "iris", "phishing")

# Test error in %, (ERM, mixup): paper Table 4 (right), transcribed in ../shared/paper/EXPERIMENTS.md section 3.6.
PAPER_TABLE4: dict[str, tuple[float, float]] = {
    "abalone": (74.0, 73.6),
    "arcene": (57.6, 48.0),
    "arrhythmia": (56.6, 46.3),
    "htru2": (2.0, 2.0),
    "iris": (21.3, 17.3),
    "phishing": (16.3, 15.2),
}
PAPER_SOURCE = "Zhang et al. (ICLR 2018), Table 4 (right), as transcribed in shared/paper/EXPERIMENTS.md section 3.6"


# -- selection, statistics, summary ---------------------------------------------------------------------------------
def select_alpha(results: Sequence[MemberResult]) -> tuple[float, dict[float, float]]:
    """The alpha with the lowest last-epoch validation error averaged over seeds (ties: the smaller alpha).

    Returns:
        ``(alpha, {alpha: mean validation error})`` over the mixup members of ``results``.
    """
    by_alpha: dict[float, list[float]] = {}
    for r in results:
        if r.alpha > 0:
            by_alpha.setdefault(r.alpha, []).append(r.val_error[-1])
    if not by_alpha:
        raise TaskError("select_alpha needs mixup results (alpha > 0); got ERM results only")
    means = {a: float(np.mean(v)) for a, v in sorted(by_alpha.items())}
    # equal validation errors (the same number of rows) tie, whatever the last bits of their float means say
    best = min(means, key=lambda a: (round(means[a], 12), a))
    return best, means


def summarize_dataset(name: str, results: Sequence[MemberResult], majority_errors: Sequence[float]) -> dict[str, Any]:
    """The summary row of one dataset (errors in %): ERM vs mixup at the selected alpha, test and selection.

    Args:
        name: dataset name (for the paper column).
        results: all members of the dataset: ERM (alpha 0) and mixup at each alpha, the same seeds for each.
        majority_errors: the majority-class test error of each seed's split (fractions).
    """
    erm = sorted((r for r in results if r.alpha == 0.0), key=lambda r: r.seed)
    if not erm:
        raise TaskError(f"{name}: no ERM results (alpha 0) to compare with")
    alpha, val_means = select_alpha(results)
    mix = sorted((r for r in results if r.alpha == alpha), key=lambda r: r.seed)
    if [r.seed for r in erm] != [r.seed for r in mix]:
        raise TaskError(
            f"{name}: ERM seeds {[r.seed for r in erm]} and mixup alpha={alpha:g} seeds {[r.seed for r in mix]} "
            "differ; the paired test needs the same seeds"
        )
    erm_test = [100 * r.test_error[-1] for r in erm]
    mix_test = [100 * r.test_error[-1] for r in mix]
    per_alpha = {}
    for a in sorted({r.alpha for r in results}):
        rs = [r for r in results if r.alpha == a]
        per_alpha[a] = {
            "val": mean_std([100 * r.val_error[-1] for r in rs])[:2],
            "test": mean_std([100 * r.test_error[-1] for r in rs])[:2],
            "train": mean_std([100 * r.train_error for r in rs])[:2],
        }
    paper = PAPER_TABLE4.get(name, (float("nan"), float("nan")))
    return {
        "dataset": name,
        "n": len(erm),
        "seeds": [r.seed for r in erm],
        "majority_error": 100 * float(np.mean(majority_errors)),
        "majority_error_range": [100 * float(np.min(majority_errors)), 100 * float(np.max(majority_errors))],
        "erm": mean_std(erm_test)[:2],
        "mixup": mean_std(mix_test)[:2],
        "alpha": alpha,
        # ERM's validation error averaged as `select_alpha` averages the mixup alphas' (the same rounding)
        "val_by_alpha": {"0": 100 * float(np.mean([r.val_error[-1] for r in erm]))}
        | {f"{a:g}": 100 * v for a, v in val_means.items()},
        "per_alpha": {f"{a:g}": v for a, v in per_alpha.items()},
        "test": paired_wilcoxon(erm_test, mix_test),
        "erm_test_by_seed": erm_test,
        "mixup_test_by_seed": mix_test,
        "paper_erm": paper[0],
        "paper_mixup": paper[1],
    }


def _fmt(mean_std: Sequence[float]) -> str:
    m, s = mean_std
    return f"{m:.1f} ± {s:.1f}" if math.isfinite(s) else f"{m:.1f}"


def format_markdown(rows: Sequence[dict[str, Any]], protocol: UCIProtocol | None = None) -> str:
    """The summary table (and the validation table behind the alpha choice) as markdown."""
    protocol = protocol or UCIProtocol()
    lines = [
        "| dataset | majority-class error | ERM | mixup | alpha | mixup - ERM | W/T/L | Wilcoxon p | paper ERM | paper mixup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['dataset']} | {r['majority_error']:.1f} | {_fmt(r['erm'])} | {_fmt(r['mixup'])} | {r['alpha']:g} "
            f"| {t['diff_mean']:+.2f} | {t['wins']}/{t['ties']}/{t['losses']} | {t['wilcoxon_p']:.3g} "
            f"| {r['paper_erm']:.1f} | {r['paper_mixup']:.1f} |"
        )
    n = sorted({r["n"] for r in rows})
    lines += [
        "",
        f"Test error (%) after the last of {protocol.epochs} epochs, mean ± std (ddof 1) over n = "
        f"{'/'.join(map(str, n))} seeds (one stratified split, initialisation and data order per seed, shared by "
        "ERM and mixup). alpha: chosen per dataset from "
        f"{{{', '.join(f'{a:g}' for a in protocol.alphas)}}} by the mean last-epoch validation error. "
        "W/T/L: seeds where mixup's test error is lower/equal/higher than ERM's. Wilcoxon: two-sided signed-rank "
        "test on the paired per-seed test errors (zero differences dropped). Majority-class error: test error of "
        "always predicting the most frequent training class, mean over the seeds' splits. "
        f"Paper: {PAPER_SOURCE}.",
        "",
        "Validation error (%) by alpha (0 = ERM), mean over seeds:",
        "",
    ]
    alphas = [k for k in rows[0]["val_by_alpha"]] if rows else []
    lines.append("| dataset | " + " | ".join(alphas) + " |")
    lines.append("|---|" + "---|" * len(alphas))
    for r in rows:
        lines.append(f"| {r['dataset']} | " + " | ".join(f"{r['val_by_alpha'][a]:.2f}" for a in alphas) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    cols = [
        "dataset",
        "n",
        "majority_error",
        "erm_mean",
        "erm_std",
        "alpha",
        "mixup_mean",
        "mixup_std",
        "diff_mean",
        "diff_std",
        "wins",
        "ties",
        "losses",
        "wilcoxon_stat",
        "wilcoxon_p",
        "ttest_p",
        "paper_erm",
        "paper_mixup",
    ]

    def cell(value: float, fmt: str) -> str:
        return (
            format(value, fmt) if math.isfinite(value) else ""
        )  # an undefined number is an empty cell, as in report.csv

    lines = []
    for r in rows:
        t = r["test"]
        lines.append(
            [r["dataset"], r["n"], cell(r["majority_error"], ".4f"), cell(r["erm"][0], ".4f")]
            + [cell(r["erm"][1], ".4f"), r["alpha"], cell(r["mixup"][0], ".4f"), cell(r["mixup"][1], ".4f")]
            + [cell(t["diff_mean"], ".4f"), cell(t["diff_std"], ".4f"), t["wins"], t["ties"], t["losses"]]
            + [cell(t["wilcoxon_stat"], ".4g"), cell(t["wilcoxon_p"], ".4g"), cell(t["ttest_p"], ".4g")]
            + [cell(r["paper_erm"], "g"), cell(r["paper_mixup"], "g")]
        )
    runs.write_csv(path, cols, lines)


def _member_tag(alpha: float) -> str:
    """A member's folder (and config name suffix): ``erm`` or ``mixup_a<alpha>``."""
    return "erm" if alpha == 0.0 else f"mixup_a{alpha:g}"


# what a dataset folder holds once written (`_train_dataset`), besides its member folders and record.json
DATASET_FILES = ("protocol.json", "provenance.json", "members.jsonl", "members.csv", "summary.json")


def member_config(
    dataset: str, member: Member, protocol: UCIProtocol, *, selected: bool = False, device: str = "cpu"
) -> ExperimentConfig:
    """The ``config.yaml`` of one member's run folder: the protocol as an :class:`ExperimentConfig`.

    Name ``uci-<dataset>-erm`` or ``uci-<dataset>-mixup_a<alpha>`` (the report groups the seeds by it); row
    ``<dataset>/erm``, ``<dataset>/mixup`` for the alpha the table selected (its headline, paired against ERM by
    the report) and ``<dataset>/mixup_a<alpha>`` for the other alphas of the grid.
    """
    tag = _member_tag(member.alpha)
    return config_from_dict(
        {
            "name": f"uci-{dataset}-{tag}",
            "notes": "a member of the uci table (Table 4 right), trained by the seed-ensemble engine with its own "
            f"random streams (init, order, mix: make_generator(seed, {STREAM_INIT} / {STREAM_ORDER} / "
            f"{STREAM_MIX})); Adam eps {protocol.eps:g}; alpha grid {list(protocol.alphas)}",
            "table": "uci",
            "row": f"{dataset}/{'mixup' if selected else tag}",
            "data": {
                "name": f"uci:{dataset}",
                "batch_size": protocol.batch_size,
                "augment": False,
                "kwargs": {"test_fraction": protocol.test_fraction, "val_fraction": protocol.val_fraction},
            },
            "model": {"name": "mlp", "kwargs": {"hidden": protocol.hidden, "layers": protocol.layers}},
            "optim": {"name": "adam", "lr": protocol.lr, "betas": [protocol.beta1, protocol.beta2], "weight_decay": 0},
            "schedule": {"name": "constant"},
            "mix": {"variant": member.method, "alpha": member.alpha},
            "train": {"epochs": protocol.epochs, "seed": member.seed, "device": device},
        }
    )


def member_records(result: MemberResult) -> list[dict[str, Any]]:
    """The member's ``metrics.jsonl``: one record per epoch, errors in percent, as the Trainer writes them (the
    training error on the unmixed training split, ``train_eval_error``, is measured after the last epoch only)."""
    records = []
    for e, (loss, val, test, seconds) in enumerate(
        zip(result.train_loss, result.val_error, result.test_error, result.epoch_time_s, strict=True), start=1
    ):
        records.append(
            {
                "epoch": e,
                "train_loss": loss,
                "train_error": None,  # the mixed batches' error is not measured
                "val_error": 100 * val,
                "test_error": 100 * test,
                "epoch_time_s": seconds,
            }
        )
    if records:
        records[-1]["train_eval_error"] = 100 * result.train_error
    return records


def _write_member_runs(
    folder: Path,
    dataset: str,
    results: Sequence[MemberResult],
    selected_alpha: float,
    protocol: UCIProtocol,
    prov: dict[str, Any],
    device: torch.device,
) -> None:
    """One standard run folder per member, ``folder/<erm | mixup_a<alpha>>/seed<seed>``, that the report reads."""
    for r in results:
        member = Member(r.seed, r.alpha)
        cfg = member_config(dataset, member, protocol, selected=r.alpha == selected_alpha, device=device.type)
        run_dir = folder / cfg.name.removeprefix(f"uci-{dataset}-") / f"seed{r.seed}"
        records = member_records(r)
        runs.write_config(run_dir, cfg)
        runs.write_provenance(run_dir, {**prov, "seed": r.seed, "alpha": r.alpha, "ensemble_members": len(results)})
        runs.write_metrics(run_dir, records)
        runs.write_summary(run_dir, summarize(records, "complete", {"alpha": r.alpha}))


def _provenance(seeds: Sequence[int], device: torch.device) -> dict[str, Any]:
    """The run's provenance (`runs.provenance`) plus the hash of this module's source, which pins the task itself."""
    return runs.provenance(
        device=device,
        seeds=list(seeds),
        task_source_sha256=hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    )


def _interrupted_start(folder: Path) -> bool:
    """Whether ``folder`` holds nothing a member was trained into: no record, only the protocol.json and
    provenance.json `_train_dataset` writes first and temporary files of writes killed then (a Ctrl-C or kill at
    the start of the folder's write). Such a folder is trained again in place, whatever protocol it names."""
    return not (folder / RECORD).exists() and all(
        p.is_file() and (p.name in ("protocol.json", "provenance.json") or (p.name[0] == "." and p.suffix == ".tmp"))
        for p in folder.iterdir()
    )


def _check_reusable(folder: Path, protocol: UCIProtocol, seeds: list[int]) -> None:
    """Refuse a dataset folder that holds a UCI run of another protocol or other seeds.

    Its member folders are named by alpha and seed only, so writing a different run over them would leave the old
    run's extra alphas and seeds beside the new ones, and ``vicinal report`` would show them as rows of this run
    (a stale ``row: <dataset>/mixup`` becomes a second headline). A folder of the same protocol and seeds is
    continued: skipped if recorded (``record.json``), else trained again in place (the same member folders).
    """
    hint = "choose a new --out (or delete the folder)"
    if not folder.exists():
        return
    if not folder.is_dir():
        raise TaskError(f"'{folder}' is a file, not a UCI dataset folder; delete it (its dataset is then trained)")
    if _interrupted_start(folder):
        return
    delete = f"delete '{folder}' (its dataset is then trained again; the recorded datasets are kept)"
    recorded = runs.read_json(folder / "protocol.json", hint=delete)
    prov = runs.read_provenance(folder, hint=delete)
    if not isinstance(recorded, dict) or not isinstance(prov, dict):
        raise TaskError(
            f"'{folder}' is not empty and holds no complete UCI run (protocol.json, provenance.json); {delete}"
        )
    changed = _changes(recorded.get("protocol"), prov.get("seeds"), _as_json(protocol.to_dict()), seeds)
    if changed:
        raise TaskError(
            f"'{folder}' holds a UCI run of another protocol or seeds ({'; '.join(changed)}); its member folders "
            f"would mix with this run's: {hint}"
        )


def _changes(old: Any, old_seeds: Any, new: dict[str, Any], seeds: list[int]) -> list[str]:
    """What differs between a saved protocol (as JSON) and seeds and this run's, as ``key old (now new)`` items."""
    old = old if isinstance(old, dict) else {}
    changed = [
        f"{k} {old.get(k)!r} (now {new.get(k)!r})" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    ]
    if old_seeds != seeds:
        changed.append(f"seeds {old_seeds!r} (now {seeds!r})")
    return changed


def _check_table(
    out: Path, prov: dict[str, Any] | None, protocol: dict[str, Any], seeds: list[int], names: list[str]
) -> None:
    """Refuse an ``out`` whose table (its ``provenance.json``, as this lab version writes it: with ``resumes``) is
    of another protocol or seeds, or holds datasets this run does not name.

    `_check_reusable` sees only the dataset folders named this time: a table trained with ``--datasets iris``
    and continued with ``--datasets htru2`` and other ``--set`` values would mix two protocols in one folder
    (``vicinal report`` shows them as one table). Naming fewer datasets than the table holds would rewrite its
    summary without the others while their folders stay (the summary and the report would disagree); naming them
    too costs nothing, as a recorded dataset is not trained again.
    """
    if prov is None or not isinstance(prov.get("resumes"), list):
        return  # new, or a table of an earlier lab version: its dataset folders are checked one by one
    # the datasets the folder holds: a run stopped before any dataset got past its start (a wrong --data, an early
    # Ctrl-C) leaves only provenance.json, a table of nothing, which is taken as new
    named = prov.get("datasets")
    if not isinstance(named, list):
        named = []
    held = [d for d in named if (out / str(d)).is_dir() and not _interrupted_start(out / str(d))]
    if not held:
        return
    changed = _changes(prov.get("protocol"), prov.get("seeds"), protocol, seeds)
    if changed:
        raise TaskError(
            f"'{out}' holds a UCI table of another protocol or seeds ({'; '.join(changed)}); its datasets would be "
            "reported beside this run's: choose a new --out"
        )
    left_out = [d for d in held if d not in names]
    if left_out:
        raise TaskError(
            f"'{out}' holds a UCI table of the datasets {', '.join(map(str, held))}; this run would rewrite its "
            f"summary without {', '.join(map(str, left_out))}: name them too (a recorded dataset is not trained "
            "again) or choose a new --out"
        )


RECORD = "record.json"  # out/<dataset>/record.json: the dataset's results, written last (see the module doc)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), to compare with what a file holds."""
    return json.loads(json.dumps(value))


def _read_record(folder: Path, protocol: dict[str, Any], seeds: list[int]) -> dict[str, Any] | None:
    """The record of the dataset trained into ``folder`` (None: not recorded); one that is not a record of this
    dataset, protocol (as JSON) and seeds is a TaskError naming the file."""
    path = folder / RECORD
    hint = "delete it (its dataset is then trained again)"
    record = runs.read_json(path, hint=hint)
    if record is None:
        return None
    keys = ("dataset", "protocol", "seeds", "row", "seconds", "session")
    if (
        not isinstance(record, dict)
        or any(k not in record for k in keys)
        or (record["dataset"], record["protocol"], record["seeds"]) != (folder.name, protocol, seeds)
    ):
        raise TaskError(
            f"'{path}' is not the record of UCI dataset {folder.name!r} with this protocol and seeds; {hint}"
        )
    # the row's undefined numbers (the std of one seed, a test of a constant difference) were written as null
    return {**record, "row": runs.null_as_nan(record["row"])}


def _member_folders(folder: Path, protocol: UCIProtocol, seeds: list[int]) -> list[Path]:
    """The member folders of the dataset ``folder``, as `_write_member_runs` writes them."""
    return [folder / _member_tag(a) / f"seed{s}" for a in (0.0, *protocol.alphas) for s in seeds]


def _recorded_datasets(
    out: Path, names: Sequence[str], protocol: UCIProtocol, seeds: list[int], say: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """The records of the datasets ``names`` that ``out`` holds wholly (dataset -> record); reads only.

    A dataset whose files or member folders are not all there and finished (one deleted since) is left out, with
    a line to ``say``: it is trained again, in place (training is seeded: the same numbers).
    """
    protocol_json = _as_json(protocol.to_dict())
    records = {}
    for name in names:
        record = _read_record(out / name, protocol_json, seeds)
        if record is None:
            continue
        missing = runs.incomplete_outputs(out / name, DATASET_FILES, _member_folders(out / name, protocol, seeds))
        if missing:
            say(f"[uci] '{missing[0]}' is missing or unfinished: {name} is trained again")
        else:
            records[name] = record
    return records


def _train_dataset(
    folder: Path,
    protocol: UCIProtocol,
    seed_list: list[int],
    data_root: str | Path | None,
    dev: torch.device,
    chunk_size: int | None,
    session: int,
) -> dict[str, Any]:
    """Train every member of the dataset ``folder.name``, write ``folder`` and return the dataset's record (not
    yet written: the caller writes it, last)."""
    name = folder.name
    t0 = time.perf_counter()
    prov = _provenance(seed_list, dev)
    splits = {
        s: load_uci(name, data_root, seed=s, test_fraction=protocol.test_fraction, val_fraction=protocol.val_fraction)
        for s in seed_list
    }
    t_load = time.perf_counter() - t0
    members = [Member(s, a) for s in seed_list for a in (0.0, *protocol.alphas)]
    results = train_vmapped(splits, members, protocol, device=dev, chunk_size=chunk_size)
    row = summarize_dataset(name, results, [splits[s].info["majority_class_error"] for s in seed_list])
    prov["wall_s"] = {"load": t_load, "total": time.perf_counter() - t0}
    folder.mkdir(exist_ok=True)
    info = splits[seed_list[0]].info
    # protocol.json and provenance.json first: a folder interrupted after them is recognised as this table's by
    # `_check_reusable` (same protocol and seeds) and trained again in place
    runs.write_json(
        folder / "protocol.json",
        {
            "protocol": protocol.to_dict(),
            "dataset": name,
            "model": f"mlp: {protocol.layers} hidden layers of {protocol.hidden} ReLU units",
            "members": len(members),
            "selection": "alpha with the lowest last-epoch validation error averaged over seeds; ties: smaller",
            "reported": "test error after the last epoch",
            "split": info["split"].replace(f"seed {seed_list[0]}", "seed = member seed"),
            "preprocessing": info["preprocessing"],
            "sizes": {k: len(v) for k, v in info["indices"].items()},
            "num_features": info["num_features"],
            "class_counts_seed0": info["class_counts"],
            "random_streams": {
                "init": f"make_generator(seed, {STREAM_INIT})",
                "order": f"make_generator(seed, {STREAM_ORDER}, epoch)",
                "mix": f"make_generator(seed, {STREAM_MIX}, epoch)",
            },
        },
    )
    runs.write_provenance(folder, prov)
    runs.write_jsonl(folder / "members.jsonl", [r.record() for r in results])
    runs.write_csv(
        folder / "members.csv",
        ["seed", "method", "alpha", "val_error", "test_error", "train_error", "last_train_loss"],
        (
            [r.seed, r.method, r.alpha, r.val_error[-1], r.test_error[-1], r.train_error, r.train_loss[-1]]
            for r in results
        ),
    )
    runs.write_summary(folder, row)
    _write_member_runs(folder, name, results, row["alpha"], protocol, prov, dev)
    return {
        "dataset": name,
        "protocol": _as_json(protocol.to_dict()),
        "seeds": seed_list,
        "members": len(members),
        "seconds": round(prov["wall_s"]["total"], 2),
        "session": session,
        "row": row,
    }


def run_uci_table(
    out_dir: str | Path,
    seeds: int | Sequence[int] = 10,
    datasets: Sequence[str] = ALL_DATASETS,
    alphas: Sequence[float] | None = None,
    data_root: str | Path | None = None,
    *,
    protocol: UCIProtocol | None = None,
    device: str | torch.device = "cpu",
    chunk_size: int | None = None,
    verbose: bool = True,
    dry_run: bool = False,
    announce: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Reproduce Table 4 (right): ERM vs mixup on each dataset, its members trained as batched models (one, or a few
    for wide datasets: ``chunk_size``).

    Writes ``out_dir/<dataset>/`` (``protocol.json``: protocol and dataset description; ``members.jsonl`` and
    ``members.csv``: per-member metrics per epoch / final; ``summary.json``; ``provenance.json``: git commit,
    versions, seeds, device, wall time; one standard run folder per member, ``<erm | mixup_a<alpha>>/seed<s>``
    with ``config.yaml``, ``provenance.json``, ``metrics.jsonl`` and ``summary.json``, which ``vicinal report``
    reads: :func:`member_config`; and, last, ``record.json``, what a rerun resumes from) and
    ``out_dir/summary.{md,csv,json}`` and ``out_dir/provenance.json``. The latter is the first process's, with
    one entry per later process in ``resumes`` (``datasets_recorded``: the datasets it found done),
    ``dataset_seconds`` (each dataset's seconds and ``session``: 0 the first process, k the k-th resume) and
    ``wall_s.total`` (this process's time plus the seconds of the datasets earlier ones recorded).

    Args:
        out_dir: run folder (created). A ``<dataset>/`` folder of an earlier run is refused unless its
            ``protocol.json`` and seeds equal this run's; then a recorded dataset is skipped (see the module doc)
            and an unrecorded one trained again in place.
        seeds: number of seeds (0..n-1) or the seeds themselves; seed s uses split s.
        datasets: names from :data:`ALL_DATASETS`.
        alphas: mixup alpha grid (default: ``protocol.alphas``).
        data_root: folder holding the dataset folders (default ``data_root()/"uci"``, as :func:`load_uci`).
        protocol: training protocol (default :class:`UCIProtocol`).
        device: ``"cpu"`` or e.g. ``"cuda"``.
        chunk_size: members per batched model (default: automatic by parameter count).
        verbose: print one line per dataset to stderr.
        dry_run: check ``out_dir`` as a run would (refusing what it refuses, an ``out_dir`` that cannot be created
            included), print how many datasets it holds recorded to stdout and write nothing; returns
            the recorded rows.

    Returns:
        The summary rows (one dict per dataset, errors in %), as in ``summary.json``'s ``rows``.
    """
    protocol = protocol or UCIProtocol()
    if alphas is not None:
        protocol = UCIProtocol.from_dict(protocol.to_dict() | {"alphas": alphas})  # its guard names a scalar
    seed_list = config_seed_list(seeds)
    if isinstance(datasets, str):
        datasets = [datasets]
    names = [str(d).lower().removeprefix("uci:") for d in datasets]
    for n in names:
        if n not in UCI_DATASETS:
            raise TaskError(f"unknown UCI dataset {n!r}; expected some of {', '.join(ALL_DATASETS)}")
    if not names or len(set(names)) != len(names):
        raise TaskError(f"datasets must be distinct and non-empty, got {list(datasets)}")
    check_explicit_device(str(device), "device")  # torch's "Found no NVIDIA driver" otherwise, mid-table
    if chunk_size is not None:  # before anything is written (train_vmapped checks it after provenance.json)
        check_chunk_size(chunk_size)
    dev = torch.device(device)
    out = Path(out_dir)
    runs.check_out_folder(out)
    # one process writes a table, from its first look at the folder to its end: a second one would interleave its
    # records and sweep the first's temporary files as stale (a dry run only reads)
    with runs.hold_folder(out, dry_run=dry_run):
        for name in names:  # every folder before any training: a refusal must not cost the datasets before it
            _check_reusable(out / name, protocol, seed_list)
        if not dry_run:  # the data too, before the banner and before anything is written (a dry run reads no data)
            for name in names:
                check_uci_files(name, data_root)
        protocol_json = _as_json(protocol.to_dict())
        prov = runs.read_provenance(
            out, hint="delete it (the provenance of the earlier processes is then lost; the recorded datasets are kept)"
        )
        _check_table(out, prov, protocol_json, seed_list, names)
        if announce is not None:  # every check passed: the caller's banner (a refusal stays the only line)
            announce()
        say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if verbose else (lambda _msg: None)
        if dry_run:  # what the rerun would do: the same checks, read only
            recorded = _recorded_datasets(out, names, protocol, seed_list, print)
            print(resume_line(out, len(recorded), len(names), "datasets", dry_run=True))
            return [recorded[n]["row"] for n in names if n in recorded]
        # a write killed mid-way (SIGKILL) leaves its temporary file behind: those of every file this table writes
        runs.clean_stale_writes(out, ("summary.md", "summary.csv", runs.SUMMARY, runs.PROVENANCE))
        for name in names:
            runs.clean_stale_writes(out / name, (*DATASET_FILES, RECORD))
            for member_dir in _member_folders(out / name, protocol, seed_list):
                runs.clean_stale_writes(member_dir, runs.TASK_RUN_FILES)
        # dataset -> its record, as read back from <dataset>/record.json
        records = _recorded_datasets(out, names, protocol, seed_list, say)
        t_all = time.perf_counter()

        # Provenance as the GAN table keeps it: the first process's entry, and one entry per later process in
        # ``resumes``; each dataset's record names its session. One of another protocol or seeds was refused
        # (`_check_table`); one of a lab version that did not resume (no ``resumes``) is replaced.
        entry = _provenance(seed_list, dev)
        continued = (  # the provenance this process continues; None: it starts a new one
            prov
            if prov is not None
            and isinstance(prov.get("resumes"), list)
            and (prov.get("protocol"), prov.get("seeds")) == (protocol_json, seed_list)
            else None
        )
        # the same datasets in another order are the same finished table (its rows are written in the order asked for)
        same_datasets = continued is not None and sorted(continued.get("datasets") or []) == sorted(names)
        finished = continued is not None and "finished" in continued and same_datasets and len(records) == len(names)
        if continued is None:
            prov = {**entry, "datasets": names, "protocol": protocol_json, "resumes": []}
        else:
            prov = continued
            if not finished:
                for key in ("finished", "wall_s", "dataset_seconds"):  # of an earlier end, rewritten at this one
                    prov.pop(key, None)
                prov["resumes"].append(
                    {**entry, "datasets": names, "datasets_recorded": [n for n in names if n in records]}
                )
                prov["datasets"] = names
        session = len(prov["resumes"])  # this process: 0 the first, k the k-th resume (unused when finished)
        if not finished:
            runs.write_provenance(out, prov)
        if records:
            say(f"[uci] {resume_line(out, len(records), len(names), 'datasets')}")

        trained: list[str] = []  # by this process
        for name in names:
            if name in records:
                say(f"[uci] {name}: recorded, skipped")
                continue
            trained.append(name)
            record = _train_dataset(out / name, protocol, seed_list, data_root, dev, chunk_size, session)
            runs.write_json(out / name / RECORD, record)  # the dataset is recorded: written last, atomically
            # read back: an uninterrupted and a resumed run build the summary from the same records
            read_back = _read_record(out / name, protocol_json, seed_list)
            assert read_back is not None  # written just above
            records[name] = read_back
            row = records[name]["row"]
            say(
                f"[uci] {name}: {record['members']} members, ERM {_fmt(row['erm'])} vs mixup(alpha={row['alpha']:g}) "
                f"{_fmt(row['mixup'])}, {record['seconds']:.1f} s"
            )

        rows = [records[name]["row"] for name in names]
        runs.write_text(out / "summary.md", format_markdown(rows, protocol))
        _write_csv(out / "summary.csv", rows)
        # An object, as every summary.json is (`vicinal report` reads them all); the rows are the table.
        runs.write_summary(out, {"table": "uci", "protocol": protocol.to_dict(), "rows": rows})
        if finished:  # nothing trained: the provenance of the processes that trained it stays as it is
            say(f"[uci] rewrote the summary of {out} from its {len(records)} recorded datasets")
            return rows
        # the time spent on this table: this process's, and the datasets earlier processes recorded (the unrecorded
        # dataset an interrupted process was training is lost time, not counted)
        earlier = sum(records[n]["seconds"] for n in names if n not in trained)
        prov["wall_s"] = {"total": time.perf_counter() - t_all + earlier}
        prov["dataset_seconds"] = [{k: records[n][k] for k in ("dataset", "seconds", "session")} for n in names]
        prov["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        runs.write_provenance(out, prov)
        return rows


def parse_overrides(protocol: UCIProtocol, overrides: Sequence[str]) -> UCIProtocol:
    """Apply ``KEY=VALUE`` overrides (values parsed as YAML, e.g. ``alphas=[0.2,1]``) to a protocol."""
    data = protocol.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TaskError(f"override {item!r} is not of the form KEY=VALUE")
        data[key.strip()] = yaml.safe_load(value)
    return UCIProtocol.from_dict(data)


def reproduce(
    out: str | Path,
    seeds: int = 10,
    *,
    scale: str = "cpu",
    overrides: Sequence[str] = (),
    device: str = "cpu",
    quiet: bool = False,
    dry_run: bool = False,
    announce: Callable[[], None] | None = None,
) -> int:
    """``vicinal reproduce uci``: the whole table (the paper's settings are CPU-sized: ``cpu`` = ``paper`` scale).

    Args:
        out: run folder (one holding a table of the same protocol and seeds is continued: see the module doc).
            seeds: seeds per dataset. scale: ``"cpu"`` or ``"paper"`` (identical protocols).
        overrides: ``KEY=VALUE`` changes to :class:`UCIProtocol` (e.g. ``epochs=5``); unknown keys are errors.
        device: torch device. quiet: no per-dataset lines. dry_run: print what would run, train nothing.
        announce: called once the arguments and ``out`` passed every check (see :func:`run_uci_table`).
    """
    if scale not in ("cpu", "paper"):
        raise TaskError(f"unknown scale {scale!r}; known scales: cpu, paper")
    protocol = parse_overrides(UCIProtocol(), overrides)
    if dry_run:  # what would be trained, and the continuation check of the real run (read only)
        members = seeds * (1 + len(protocol.alphas))

        def plan() -> None:
            if announce is not None:
                announce()
            print(f"dry run: {len(ALL_DATASETS)} datasets x {members} members ({protocol.to_dict()}) -> {out}")

        run_uci_table(out, seeds=seeds, protocol=protocol, device=device, dry_run=True, announce=plan)
        return 0
    rows = run_uci_table(out, seeds=seeds, protocol=protocol, device=device, verbose=not quiet, announce=announce)
    print(format_markdown(rows, protocol))
    return 0


def _parse_alphas(text: str) -> list[float]:
    try:
        return [float(a) for a in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vicinal.experiments.tasks.uci --out DIR [--seeds 10] [--datasets iris,htru2] ...``."""
    # a refusal (LabError) is one line and exit 2, a Ctrl-C exit 130, as with the ``vicinal`` command
    return exit_code(lambda: _main(argv), prog="python -m vicinal.experiments.tasks.uci")


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vicinal.experiments.tasks.uci", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", required=True, help="run folder (one holding a table of the same protocol and seeds is continued)"
    )
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    parser.add_argument("--datasets", default=",".join(ALL_DATASETS), help="comma-separated (default: all six)")
    parser.add_argument(
        "--alphas", type=_parse_alphas, default=None, help="comma-separated mixup alphas (default: the protocol's)"
    )
    parser.add_argument("--config", default=None, help="protocol YAML (default: configs/uci/uci.yaml values)")
    parser.add_argument("--data-root", default=None, help="folder with the UCI dataset folders")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-size", type=int, default=None, help="members per batched model")
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="torch.set_num_threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # 1 avoids thread oversubscription on a shared machine
    protocol = load_protocol(args.config) if args.config else UCIProtocol()
    if args.alphas:
        protocol = UCIProtocol.from_dict(protocol.to_dict() | {"alphas": args.alphas})
    rows = run_uci_table(
        args.out,
        seeds=args.seeds,
        datasets=[d for d in args.datasets.split(",") if d],
        data_root=args.data_root,
        protocol=protocol,
        device=args.device,
        chunk_size=args.chunk_size,
    )
    print(format_markdown(rows, protocol))
    return 0


def _reproduce(
    out_dir: Path,
    scale: str,
    seeds: int | None,
    *,
    overrides: Sequence[str] = (),
    dry_run: bool = False,
    quiet: bool = False,
) -> int:
    n = seeds if seeds is not None else UCI_TABLE.default_seeds[scale]
    return reproduce(
        out_dir,
        n,
        scale=scale,
        overrides=overrides,
        dry_run=dry_run,
        quiet=quiet,
        # the title is the paper's protocol: overrides are named beside it (--set epochs=1 trained 1 epoch under
        # a header that said 10)
        announce=lambda: print(
            f"vicinal reproduce uci --scale {scale}: {UCI_TABLE.title}"
            + (f" (changed by --set {' '.join(overrides)})" if overrides else "")
        ),
    )


def shipped_rows() -> dict[str, list[dict[str, Any]]]:
    """``row -> member configs`` of the shipped protocol (``configs/uci/uci.yaml``): what a member of each row
    records when the table is trained as shipped. ``<dataset>/mixup`` has one per alpha of the grid (validation
    picks one); the seed and device vary and the report does not compare them."""
    protocol = load_protocol(configs_dir() / "uci" / "uci.yaml")
    rows: dict[str, list[dict[str, Any]]] = {}
    for dataset in ALL_DATASETS:
        rows[f"{dataset}/erm"] = [config_to_dict(member_config(dataset, Member(0), protocol))]
        rows[f"{dataset}/mixup"] = [
            config_to_dict(member_config(dataset, Member(0, a), protocol, selected=True)) for a in protocol.alphas
        ]
        for a in protocol.alphas:
            rows[f"{dataset}/{_member_tag(a)}"] = [config_to_dict(member_config(dataset, Member(0, a), protocol))]
    return rows


UCI_TABLE = register_table(
    Table(
        name="uci",
        title="Table 4 right (Section 3.6): six UCI tables, ERM vs mixup, MLP 2x128, Adam, 10 epochs, batch 16",
        configs=lambda scale: [configs_dir() / "uci" / "uci.yaml"],
        default_seeds={"cpu": 10, "paper": 10},
        notes="the paper's setting is already CPU-sized: cpu and paper scale are the same protocol",
        runner=_reproduce,
        # the run folders' rows: <dataset>/erm and <dataset>/mixup (the alpha chosen on validation)
        paper={
            f"{d}/{m}": err for d, pair in PAPER_TABLE4.items() for m, err in zip(("erm", "mixup"), pair, strict=True)
        },
        paper_source=PAPER_SOURCE,
        shipped_rows=shipped_rows,
    )
)

if __name__ == "__main__":
    raise SystemExit(main())
