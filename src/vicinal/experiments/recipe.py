"""Whether run folders ran the same recipe: what the report checks before it pools runs as the seeds of one row, and
before it pairs a method with its ERM baseline seed by seed (the paired table, the data-size curve).

A run's recipe is its ``config.yaml`` outside the keys that do not change what it computes (:data:`NOT_RESULT_KEYS`:
seed, device, logging, ...), outside its labels (:data:`LABEL_KEYS`: name, notes, table, row) and outside the
options neither run's variant and schedule read (:func:`~vicinal.experiments.config.unread_by_both`), plus what its
``provenance.json`` records of how it ran: the number of processes (``world_size``: under DDP the global batch is
``data.batch_size`` times it, and an epoch has that many times fewer steps) and the data it read (``data``:
`DataBundle.record`, compared with `data_changes`, the comparison a resume makes, without the folder and the file
times: a copy of the same data elsewhere, or with new file times, is the same data). An entry that one of two runs lacks
(a run folder of an older lab, a task that records no data) is not compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .config import DATA_PLACE_KEYS, LAUNCH_CHECK_KEYS, flat_config, unread_by_both
from .data.base import data_changes
from .errors import ReportError, RunError
from .runs import Run, read_provenance

__all__ = [
    "LABEL_KEYS",
    "NOT_RESULT_KEYS",
    "RULE_MAX_TRAIN_ERROR",
    "provenance_differences",
    "recipe_differences",
    "result_key_differences",
    "run_provenance",
    "split_by_provenance",
]

# The regime rule the CPU-scale recipes are chosen by: ERM ends at <= 1% error on its own un-augmented training
# images, the regime the paper's claims are about. The data-size curve and the demo's table read it.
RULE_MAX_TRAIN_ERROR = 1.0

# Keys that do not change what a run computes: runs of one config name may differ in them (and in the seed), and
# a run may differ in them from its row's shipped config and still stand beside the paper's number. Where the data
# is read from (data.root; what the data is, provenance records), how big the evaluation batches are, speed options
# that compute the same function (channels_last, compile), logging, checkpoints, launch checks and extra
# measurements that change no other metric (train_eval_every, the reliability diagram; data.kwargs' progress bars,
# decode caches, loader processes and download permission). The device, the thread count and the speed options
# compute the same function but not the same float roundings (another summation order): their runs agree to
# rounding, not bit for bit, and a resume that changes one is not bit-identical (it warns). The evaluation batch
# size changes only the order in which the test NLL's float64 sum adds its float32 terms (in the last bits, if at
# all). Precision (amp), the
# evaluation schedule (eval_every, eval_last: the best-epoch and median-of-last-10 columns) and everything else count.
NOT_RESULT_KEYS = frozenset(
    {
        "notes",
        *DATA_PLACE_KEYS,
        # whether a missing dataset may be fetched: with `source: auto` it may pick another copy, so it is no place
        # key (a resume may not change it); a finished run counts as done with it changed, as provenance records
        # which copy was read and the report keeps the two apart
        "data.kwargs.download",
        "train.seed",
        "train.device",
        "train.threads",
        "train.channels_last",
        "train.compile",
        "train.log_every",
        "train.checkpoint_every",
        "train.tensorboard",
        "train.train_eval_every",
        "train.reliability_diagram",
        *LAUNCH_CHECK_KEYS,
    }
)
# What a config is called, not what it computes: a method and its baseline differ in them by construction.
LABEL_KEYS = frozenset({"name", "notes", "table", "row"})


_PLACE_KEYS = ("root", "fingerprint")  # of a data record (`DataBundle.record`): where and when, not what


def run_provenance(run: Run) -> dict[str, Any]:
    """``run``'s ``provenance.json`` ({} when absent). Raises ReportError naming a file that cannot be read."""
    try:
        return read_provenance(run.path) or {}
    except RunError as exc:
        raise ReportError(str(exc)) from None


def provenance_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """``"world_size 1 -> 2, data: root '/a' -> '/b'"``: how the runs of provenances ``a`` and ``b`` ran differently;
    "" when they ran alike (entries one of them lacks are not compared)."""
    parts = []
    if a.get("world_size") is not None and b.get("world_size") is not None and a["world_size"] != b["world_size"]:
        parts.append(f"world_size {a['world_size']!r} -> {b['world_size']!r}")
    da, db = a.get("data"), b.get("data")
    if isinstance(da, Mapping) and isinstance(db, Mapping):
        # what the data is (dataset, source, split sizes, classes), not where it lay or when its files were
        # written: the same data copied to another machine, or re-extracted (new file times: this project's
        # shared data folder gets them every session), must pool; a resume still warns on any of them
        changes = data_changes(*({k: v for k, v in d.items() if k not in _PLACE_KEYS} for d in (da, db)))
        if changes:
            parts.append(f"data: {changes}")
    return ", ".join(parts)


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _flat(config: Any) -> dict[str, Any]:
    return flat_config(config) if isinstance(config, Mapping) else {}


def _recipe_config(config: Any, ignore: Sequence[str], *, labels: bool = False) -> dict[str, Any]:
    flat = _flat(config)
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if k in NOT_RESULT_KEYS or (k in LABEL_KEYS and not labels) or _under(k, ignore):
            continue
        if isinstance(v, Mapping):  # a kwargs dict (one value in flat_config): its ignored entries left out
            v = {
                kk: vv for kk, vv in v.items() if not _under(f"{k}.{kk}", ignore) and f"{k}.{kk}" not in NOT_RESULT_KEYS
            }
        out[k] = v
    return out


_MISSING_KEY = object()  # a key one config lacks: a difference


def result_key_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Dotted keys at which configs ``a`` and ``b`` (``config.yaml`` dicts) differ outside :data:`NOT_RESULT_KEYS`,
    entries of a kwargs mapping included (``data.kwargs``: one side lacking a key is a difference): where a finished
    run of ``a`` is not the run that ``b`` asks for. Labels count (a run filed under another row is not this one)."""
    ca, cb = _recipe_config(a, (), labels=True), _recipe_config(b, (), labels=True)
    unread = unread_by_both(_flat(a), _flat(b))  # an ERM run's mix.alpha, a cosine run's milestones: no difference
    return sorted(
        k for k in ca.keys() | cb.keys() if k not in unread and ca.get(k, _MISSING_KEY) != cb.get(k, _MISSING_KEY)
    )


def recipe_differences(a: Run, b: Run, *, ignore: Sequence[str] = ()) -> str:
    """``"optim.weight_decay 0.0001 -> 0.0005, data: root ..."``: how run ``b``'s recipe differs from run ``a``'s
    outside the config keys ``ignore`` (dotted keys, each also standing for the keys below it: ``"mix"``,
    ``"model.kwargs.dropout"``); "" when they ran the same recipe. Config keys one of them lacks are not compared.
    """
    ca, cb = _recipe_config(a.config, ignore), _recipe_config(b.config, ignore)
    unread = unread_by_both(_flat(a.config), _flat(b.config))
    differ = sorted(k for k in ca.keys() & cb.keys() if k not in unread and ca[k] != cb[k])
    parts = [f"{k} {ca[k]!r} -> {cb[k]!r}" for k in differ[:3]] + (["..."] if len(differ) > 3 else [])
    ran = provenance_differences(run_provenance(a), run_provenance(b))
    return ", ".join(parts + ([ran] if ran else []))


def split_by_provenance(name: str, runs: Sequence[Run]) -> list[tuple[str, list[Run], str]]:
    """The runs of config ``name`` in parts that each ran alike (same world size, same data), in the order of their
    first run by seed: ``[(part name, runs, how they ran differently from the first part's first run)]``.

    One part ``(name, runs, "")`` when all ran alike. Otherwise pooling them as seeds of one row would mix two
    experiments: the parts are named ``"name [i of k]"``, and the first part's text is "". The runs are taken in
    seed order (then path), whatever order they come in, so that every table names the parts alike.
    """
    runs = sorted(runs, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
    provs = [run_provenance(r) for r in runs]
    parts: list[tuple[list[int], str]] = []
    for i in range(len(runs)):
        for members, _ in parts:
            if all(not provenance_differences(provs[j], provs[i]) for j in members):
                members.append(i)
                break
        else:
            parts.append(([i], provenance_differences(provs[0], provs[i]) if parts else ""))
    k = len(parts)
    return [
        (name if k == 1 else f"{name} [{i} of {k}]", [runs[j] for j in members], text)
        for i, (members, text) in enumerate(parts, start=1)
    ]
