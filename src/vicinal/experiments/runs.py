"""Run folders: the one module that writes and reads them.

A trainer run folder holds::

    config.yaml        the resolved config (what `vicinal train --resume` reloads)
    provenance.json    command line, git commit, package versions, device, seeds, host (+ one entry per resume)
    metrics.jsonl      one JSON line per epoch (errors in percent)
    summary.json       best / last test error, median of the last 10 epochs, status
    checkpoint.pt      the latest checkpoint (written by `checkpoint.py` through :func:`atomic_write`)

The tasks that are not trainer runs (UCI, GAN: the seed-ensemble engine's) write run folders of the same schema
through the same functions (a UCI member's ``config.yaml`` is an ExperimentConfig, a GAN run's a mapping with the
same ``name``, ``table``, ``row`` and ``train.seed``: :func:`write_task_config`), and the figures their JSON and
images (:func:`write_figure`), so every file of every run folder is written one way.

Writes are atomic: a temporary file in the target's directory, flushed and fsynced, renamed over the target with
``os.replace`` (atomic on POSIX), then the directory fsynced. A reader (or a crash at any moment) sees the old file
or the new one, never half a file. The temporary file is ``.<name>.<host>~<pid>~<random>.tmp``, so a later process
can tell whether its writer still runs (:func:`clean_stale_temp_files`). Appending to a ``.jsonl`` file is the one
write that is not atomic (a crash can leave a torn last line; :func:`read_jsonl` names it).

Provenance (:func:`provenance`) is one function for every writer: time, command line, working directory, git
commit and dirty flag (only from a source checkout: an installed package has no repository of its own), package
versions, device, host; each writer adds its own fields (seeds, world size, ...).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import math
import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import yaml

from .config import ExperimentConfig, config_to_dict, load_config
from .config_yaml import ConfigError, describe, read_yaml_mapping
from .errors import LabWarning, ReportError, RunError, TaskArgumentError
from .paths import source_root

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG",
    "CLAIM",
    "METRICS",
    "PROVENANCE",
    "RUN_FILES",
    "RUN_FOLDERS",
    "SUMMARY",
    "Claim",
    "Run",
    "append_jsonl",
    "append_metrics",
    "as_paths",
    "atomic_write",
    "check_fresh_run_folder",
    "claim",
    "claim_folder",
    "claim_holder",
    "hold_folder",
    "clean_stale_temp_files",
    "clear_run_folder",
    "dump_config",
    "find_runs",
    "git_state",
    "load_run",
    "package_versions",
    "pid_alive",
    "provenance",
    "read_config",
    "null_as_nan",
    "read_json",
    "read_jsonl",
    "read_object",
    "read_metrics",
    "read_provenance",
    "read_summary",
    "record_start",
    "results_in",
    "run_finished",
    "write_config",
    "write_csv",
    "write_figure",
    "write_json",
    "write_jsonl",
    "write_metrics",
    "write_provenance",
    "write_summary",
    "write_task_config",
    "write_text",
]

CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
# Packages whose versions every provenance records.
VERSIONED_PACKAGES = (
    "vicinal",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-learn",
    "pyyaml",
    "tqdm",
    "matplotlib",
)

# Temporary files of a write in progress: ``.<name>.<host>~<pid>~<random>.tmp`` (see `clean_stale_temp_files`).
TMP_SEP = "~"
# A temporary file that names no live process of this host is removed only once it is this old (seconds): a
# writer on another host sharing the folder may still be writing it.
FOREIGN_TMP_AGE_S = 3600.0


# -- atomic writes ----------------------------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: fsync the directory entry (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _process_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any thread of this process writes files
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_process_umask()  # what open() would give a new file: mkstemp's 0600 would hide results


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary binary file, which then replaces ``path``.

    The directory is created if needed, and the file gets the permissions a plain ``open()`` would give it (the
    umask's). On any failure the temporary file is removed and ``path`` is untouched.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder of the path should be
        raise RunError(
            f"cannot write '{path}': '{_file_in_the_way(path)}' is a file, where a folder is needed"
        ) from None
    if path.is_dir():
        raise RunError(f"cannot write '{path}': a folder of that name is in the way")
    owner = f"{socket.gethostname()}{TMP_SEP}{os.getpid()}{TMP_SEP}"
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{owner}", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _raise_if_full(exc, path)
        raise
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # torch.save reports a failed write as a RuntimeError whose context is the OSError
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is not None:
            _raise_if_full(cause, path)
        raise
    _fsync_dir(path.parent)
    return path


# a full disk, a quota, a file-size limit: the user's to fix, so a one-line error rather than a traceback
_NO_ROOM = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name))


def _raise_if_full(exc: OSError, path: Path) -> None:
    if exc.errno in _NO_ROOM:
        raise RunError(
            f"cannot write '{path}': {exc.strerror or exc} (the file as it was before is kept; make room and "
            "rerun or resume)"
        ) from None


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def _json_default(obj: Any) -> Any:
    """JSON for the values results hold besides plain types: tensors, numpy scalars and arrays, paths."""
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _strict(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-Inf) as None, tensors and numpy values as Python values: JSON has
    no NaN, and Python's bare ``NaN`` token is refused by strict parsers (JavaScript, jq, Go)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    if isinstance(obj, torch.Tensor | np.generic | np.ndarray):
        return _strict(obj.tolist())
    return obj


def null_as_nan(obj: Any) -> Any:
    """The inverse of what the writers do to NaN, for values read back where every null stood for a NaN (a number
    that is undefined, e.g. the std of one seed): each None, at any depth, as ``math.nan``."""
    if obj is None:
        return math.nan
    if isinstance(obj, dict):
        return {k: null_as_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [null_as_nan(v) for v in obj]
    return obj


def _dumps(obj: Any, indent: int | None = 2) -> str:
    # NaN and infinities are written as null (_strict), and allow_nan=False makes sure no other path writes them
    return json.dumps(_strict(obj), indent=indent, default=_json_default, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (plus a final newline) atomically; tensors, numpy values and paths too."""
    return write_text(path, _dumps(obj) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Path:
    """Write a CSV file (``csv`` module defaults, ``\\r\\n`` line ends) atomically: ``header``, then one line per row.

    A row is a sequence of values in the order of ``header``, or a mapping whose values are taken by the header's
    names (a missing name is an empty cell, names outside the header are left out).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(k, "") for k in header] if isinstance(row, Mapping) else row)
    return write_text(path, buffer.getvalue())


def write_figure(path: str | Path, fig: Any, *, dpi: int) -> Path:
    """Save the matplotlib figure ``fig`` to ``path`` atomically, in the format its suffix names (``.png``).

    ``fig.savefig`` writes into the temporary file of :func:`atomic_write`, so a crash while a figure is rendered
    leaves the previous figure, never a truncated image. The caller still closes ``fig``.
    """
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))


def write_jsonl(path: str | Path, records: Iterable[Any]) -> Path:
    """Write one JSON line per record atomically (an empty iterable writes an empty file)."""
    return write_text(path, "".join(_dumps(r, indent=None) + "\n" for r in records))


def append_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Append one JSON line per record to ``path`` (created if absent); not atomic, see the module doc."""
    data = memoryview("".join(_dumps(r, indent=None) + "\n" for r in records).encode("utf-8"))
    # unbuffered, so that a failed write leaves nothing for a later flush, and is cut back to the whole records
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)  # no torn last line
            _raise_if_full(exc, Path(path))
            raise
    finally:
        os.close(fd)


def dump_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (readable by :func:`~vicinal.experiments.config.load_config`) to ``path``, atomically."""
    return write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


# -- reads ------------------------------------------------------------------------------------------------------
def _file_in_the_way(path: Path) -> Path:
    """The outermost of ``path``'s folders that exists as a file (where a folder is needed)."""
    return next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), path.parent)


def _read_utf8(path: Path, hint: str) -> str | None:
    """The text of ``path`` (None when absent); bytes that are not UTF-8 are a RunError naming the file (+ ``hint``),
    and so is a folder of that name, or a file in the way of its folder."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise RunError(f"cannot read '{path}': a folder of that name is in the way") from None
    except NotADirectoryError:  # e.g. a file where the run folder should be
        raise RunError(
            f"cannot read '{path}': '{_file_in_the_way(path)}' is a file, where a folder is needed"
        ) from None
    except UnicodeDecodeError as exc:
        raise RunError(
            f"'{path}' is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); {hint}"
        ) from None


def read_json(path: str | Path, *, hint: str = "repair or delete it") -> Any | None:
    """The JSON value in ``path``; None when the file is absent. A corrupt file is a RunError naming it (+ ``hint``)."""
    path = Path(path)
    text = _read_utf8(path, hint)
    return None if text is None else _parse_json(path, text, hint)


def _parse_json(path: Path, text: str, hint: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunError(
            f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {hint}"
        ) from None


# what to do with a corrupt file of a trainer's run folder
RUN_FILE_HINT = "repair or delete it (the run is then resumed from its checkpoint)"


def read_object(path: Path, hint: str | None = None) -> dict[str, Any] | None:
    """The JSON object in ``path`` (None: absent); a corrupt file is a RunError with ``hint`` (default: a trainer's
    run folder's)."""
    text = _read_utf8(path, hint or RUN_FILE_HINT)
    if text is None:  # absent (told apart from a file holding `null`, which is no object either)
        return None
    obj = _parse_json(path, text, hint or RUN_FILE_HINT)
    if not isinstance(obj, dict):
        raise RunError(f"'{path}' does not hold a JSON object; {hint or 'repair or delete it'}")
    return obj


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records (JSON objects) of a ``.jsonl`` file, blank lines skipped; [] when absent.

    A line that is not JSON, or is JSON but not an object, is a RunError naming the file and the line: every
    reader of the records looks fields up by name.
    """
    path = Path(path)
    text = _read_utf8(path, RUN_FILE_HINT)
    if text is None:
        return []
    records = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise RunError(f"'{path}' line {i} is not valid JSON") from None
            if not isinstance(record, dict):
                raise RunError(f"'{path}' line {i} is not a JSON object (got {type(record).__name__})")
            records.append(record)
    return records


# -- the files of a run folder ----------------------------------------------------------------------------------
def write_config(run_dir: str | Path, cfg: ExperimentConfig) -> Path:
    """``run_dir/config.yaml``: the resolved config."""
    return dump_config(cfg, Path(run_dir) / CONFIG)


def write_task_config(run_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """``run_dir/config.yaml`` of a run the Trainer did not train (the GAN grid's): a mapping with the keys the
    report groups by (``name``, ``table``, ``row``, ``train.seed``) and the task's own settings beside them."""
    missing = [k for k in ("name", "table", "row") if k not in config]
    if missing or not isinstance(config.get("train"), Mapping) or "seed" not in config["train"]:
        raise RunError(f"a task config needs name, table, row and train.seed; {missing or ['train.seed']} missing")
    return write_text(Path(run_dir) / CONFIG, yaml.safe_dump(dict(config), sort_keys=False))


def read_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The validated config of ``run_dir`` (``config.yaml``) as its run trained (options it never read at their
    defaults, so that a run of an older lab still resumes), with ``--set`` style ``overrides`` applied."""
    return load_config(Path(run_dir) / CONFIG, overrides, saved=True)


def write_metrics(run_dir: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Replace ``run_dir/metrics.jsonl`` with ``records`` (one JSON line each), atomically."""
    return write_jsonl(Path(run_dir) / METRICS, records)


def append_metrics(run_dir: str | Path, *records: dict[str, Any]) -> None:
    """Append ``records`` to ``run_dir/metrics.jsonl``."""
    append_jsonl(Path(run_dir) / METRICS, records)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` ([] when absent); a line that is not a JSON object is a RunError."""
    return read_jsonl(Path(run_dir) / METRICS)


def write_summary(run_dir: str | Path, summary: Any) -> Path:
    """``run_dir/summary.json``, atomically."""
    return write_json(Path(run_dir) / SUMMARY, summary)


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/summary.json`` as a dict; None when absent. A corrupt file is a RunError naming it, and so is a
    field of the wrong kind (a hand edit: a test error that is not a number would fail inside the report)."""
    path = Path(run_dir) / SUMMARY
    summary = read_object(path)
    for key, value in (summary or {}).items():
        number = key.endswith(("_error", "_nll", "_ece", "_s", "_epoch", "_n", "epochs", "step", "epochs_completed"))
        if number and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise RunError(f"'{path}': '{key}' must be a number or null, got {value!r}; {RUN_FILE_HINT}")
        if key == "status" and not isinstance(value, str):
            raise RunError(f"'{path}': 'status' must be a string, got {value!r}; {RUN_FILE_HINT}")
    return summary


def run_finished(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a finished run: its summary's status is complete (or max_steps)."""
    summary = read_summary(run_dir)
    return summary is not None and summary.get("status") in ("complete", "max_steps")


def incomplete_outputs(folder: str | Path, files: Sequence[str], run_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """What a finished task folder lacks: each of ``folder/files`` that is absent, and each of ``run_dirs`` that
    is not a finished run folder (config, provenance, metrics and a summary of status complete). A table that
    records finished parts (the gan groups, the uci datasets) trusts a record only while this is empty."""
    folder = Path(folder)
    missing = [folder / name for name in files if not (folder / name).is_file()]
    for run_dir in map(Path, run_dirs):
        try:
            finished = run_finished(run_dir)
        except RunError:  # a corrupt summary: the part is written again, this file with it
            finished = False
        if not finished or not all((run_dir / name).is_file() for name in (CONFIG, PROVENANCE, METRICS)):
            missing.append(run_dir)
    return missing


def write_provenance(run_dir: str | Path, prov: dict[str, Any]) -> Path:
    """``run_dir/provenance.json``, atomically."""
    return write_json(Path(run_dir) / PROVENANCE, prov)


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder this process can write in, or a path whose existing part is one and below which
    it can be created: a RunError otherwise, before any work. The check makes and removes a uniquely named folder in
    the deepest existing level, so that it leaves nothing behind and processes checking one new ``--out`` together
    (the ranks of one torchrun) do not disturb each other."""
    for p in (out, *out.parents):
        if p.is_symlink() and not p.exists():  # a link to something missing (an unmounted disk, say)
            where = "is" if p == out else f"lies below '{p}',"
            raise RunError(f"--out '{out}' {where} a link to '{os.readlink(p)}', which does not exist")
        if p.exists():
            if not p.is_dir():
                where = "" if p == out else f" ('{p}' is a file)"
                raise RunError(f"--out '{out}' is not a folder{where}")
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".vicinal-probe-", dir=p))
            except OSError as exc:
                raise RunError(f"--out '{out}' cannot be created or written: {exc.strerror or exc}") from None
            return


def read_provenance(run_dir: str | Path, *, hint: str | None = None) -> dict[str, Any] | None:
    """``run_dir/provenance.json`` as a dict; None when absent. A corrupt file is a RunError naming it, with
    ``hint`` (what to do about it; the default is a trainer's run folder's). The fields read back (``resumes``, a
    list; ``data``, an object or null) of another kind are a RunError too (a hand edit)."""
    path = Path(run_dir) / PROVENANCE
    prov = read_object(path, hint)
    for key, kinds, what in (("resumes", list, "a list"), ("data", dict | None, "an object or null")):
        if prov is not None and key in prov and not isinstance(prov[key], kinds):
            raise RunError(f"'{path}': '{key}' must be {what}, got {prov[key]!r}; {hint or RUN_FILE_HINT}")
    return prov


# -- provenance -------------------------------------------------------------------------------------------------
def record_start(
    run_dir: str | Path,
    cfg: ExperimentConfig,
    entry: dict[str, Any],
    resumed_from: Mapping[str, Any] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create ``run_dir`` and write its config and provenance as a run (re)starts; returns the provenance.

    ``entry`` is this process's `provenance`; a fresh start records it with an empty ``resumes`` list, a resume
    (``resumed_from``: the checkpoint it continues) appends it to ``resumes`` with the epoch and step it continued
    from. ``extra`` fields (e.g. the label corruption's statistics) are added at the top level.
    """
    run_dir = Path(run_dir)
    # Created only now, after data and model were built: a config error leaves no empty run folder behind.
    run_dir.mkdir(parents=True, exist_ok=True)
    prov = read_provenance(run_dir) if resumed_from is not None else None
    write_config(run_dir, cfg)  # a resume may extend train.epochs
    if prov is None:
        prov = {**entry, "resumes": []}
    else:
        assert resumed_from is not None
        resume = {
            **entry,
            "from_epoch": int(resumed_from["epoch"]),
            "from_step_in_epoch": int(resumed_from["step_in_epoch"]),
        }
        prov.setdefault("resumes", []).append(resume)
    prov.update(extra or {})
    write_provenance(run_dir, prov)
    return prov


# -- reading run folders as the report and the figures do ----------------------------------------------------
@dataclass
class Run:
    """One run folder, loaded."""

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def seed(self) -> int | None:
        return (self.config.get("train") or {}).get("seed")  # `train:` left empty reads as None

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown"))


def load_run(path: str | Path) -> Run:
    """Read ``config.yaml``, ``metrics.jsonl`` and ``summary.json`` of a run folder.

    The config is kept as the plain mapping stored in the folder (not re-validated: a report still reads runs
    whose config holds a key that a later version of the lab removed). Only its shape is checked: a mapping, with
    a mapping (or nothing) under ``train``, where :attr:`Run.seed` looks.

    Raises:
        ReportError: no config.yaml, or a config.yaml, metrics.jsonl or summary.json that cannot be read as such
            (one line naming the file).
    """
    path = Path(path)
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise ReportError(f"'{path}' is not a run folder (no config.yaml)")
    try:
        config = read_yaml_mapping(cfg_path)
        records = read_metrics(path)
        summary = read_summary(path) or {}
    except (ConfigError, RunError) as exc:
        raise ReportError(str(exc)) from None
    train = config.get("train")
    if train is not None and not isinstance(train, Mapping):
        raise ReportError(f"config file '{cfg_path}': key 'train' must be a mapping, got {describe(train)}")
    return Run(path, config, records, summary)


def as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], what: str = "paths") -> list[Path]:
    """One path or several, as a list of Paths. A lone str or Path is one path: iterated, a str gives its letters,
    and the '/' of an absolute path had a report search the whole disk for run folders."""
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    if isinstance(paths, Iterable) and not isinstance(paths, bytes | Mapping):
        items = list(paths)  # an iterator is read once, here
        for item in items:
            if not isinstance(item, str | os.PathLike):
                raise TaskArgumentError(f"{what} must be paths (str or Path), got {type(item).__name__} {item!r}")
        return [Path(item) for item in items]
    raise TaskArgumentError(f"{what} must be a path or a list of paths, got {type(paths).__name__}")


def find_runs(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Run folders at or below each path (a run folder holds ``config.yaml``), sorted, without duplicates."""
    found: set[Path] = set()
    for p in as_paths(paths):
        if not p.exists():
            raise ReportError(f"'{p}' does not exist")
        # Absolute but not resolved: a run folder reached through a link keeps the path the user gave, so the
        # report's relative paths follow the user's layout rather than the link's target.
        if (p / "config.yaml").is_file():
            found.add(p.absolute())
            continue
        below = {c.parent.absolute() for c in p.rglob("config.yaml")}
        if not below:
            raise ReportError(f"'{p}' holds no run folders (no config.yaml below it)")
        found |= below
    return sorted(found)


def _git(*args: str) -> str | None:
    """Output of a read-only git command in the project root, or None (no git, not a checkout, no commit)."""
    root = source_root()
    if root is None:  # an installed package: whatever repository holds the environment is not vicinal's
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _read_git_state() -> dict[str, Any]:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": _git("rev-parse", "HEAD") or None, "git_dirty": None if status is None else bool(status)}


# The checkout when this process loaded the lab (read at the end of this module). A long-lived process (a CPU suite
# trains for hours) runs the code it imported then, whatever HEAD becomes: its runs must name that commit.
_GIT_AT_LOAD: dict[str, Any] | None = None


def git_state() -> dict[str, Any]:
    """``git_commit`` of the code this process runs (the checkout when it loaded the lab; None outside a source
    checkout), ``git_dirty`` (tracked files then differed from that commit), and ``git_head_now`` when HEAD has
    moved since (commits made while the process ran)."""
    global _GIT_AT_LOAD
    if _GIT_AT_LOAD is None:
        _GIT_AT_LOAD = _read_git_state()
    state = dict(_GIT_AT_LOAD)
    if state["git_commit"] is not None:
        now = _git("rev-parse", "HEAD") or None
        if now != state["git_commit"]:
            state["git_head_now"] = now
    return state


def package_versions() -> dict[str, str | None]:
    """Python's version and the installed version of each of :data:`VERSIONED_PACKAGES` (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def provenance(
    *, argv: Sequence[str] | None = None, device: str | torch.device = "cpu", **fields: Any
) -> dict[str, Any]:
    """Where, when, with what code and on what machine a run ran: the ``provenance.json`` of every writer.

    Args:
        argv: the command line (default ``sys.argv``).
        device: the device the run computes on.
        fields: the writer's own entries (seeds, world size, ...), placed after the device's.

    Returns:
        ``time, argv, cwd, git_commit, git_dirty, versions, device, device_name, <fields>, hostname, cpu_count,
        torch_threads, platform``.
    """
    device = torch.device(device)
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
        **git_state(),
        "versions": package_versions(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        **fields,
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


# -- starting a run in a folder ---------------------------------------------------------------------------------
CHECKPOINT_NAME = "checkpoint.pt"  # the run folder's checkpoint (written by the trainer, read by load_run_model)
# What a run folder holds besides its checkpoint; `--overwrite` removes these (and nothing else).
RUN_FILES = (
    "config.yaml",
    "provenance.json",
    "metrics.jsonl",
    "summary.json",
    "reliability.json",
    "reliability.png",
    "corrupted_labels.pt",
)
RUN_FOLDERS = ("attacks", "tensorboard")


def results_in(run_dir: str | Path) -> list[str]:
    """The result files ``run_dir`` holds (``summary.json``, a non-empty ``metrics.jsonl``); [] if none."""
    run_dir = Path(run_dir)
    held = []
    if (run_dir / "summary.json").exists():
        held.append("summary.json")
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        held.append("metrics.jsonl")
    return held


def check_fresh_run_folder(run_dir: str | Path, *, restart_unfinished: bool = False) -> bool:
    """Refuse to start a new run in a folder that holds another one (RunError naming what it holds).

    Returns True when the folder holds an unfinished run without a checkpoint that ``restart_unfinished``
    allows to start again (the caller clears it with `clear_run_folder` once its own checks passed).
    """
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_NAME).exists():
        if run_finished(run_dir):
            # "resume it" re-finished that run: with a config of another variant under the same name, the user
            # read "complete" and the other run's numbers (helper-105)
            raise RunError(
                f"run folder '{run_dir}' already holds a finished run; choose another --out or name "
                "(--set name=...), or replace it with --overwrite"
            )
        raise RunError(
            f"run folder '{run_dir}' already holds a checkpoint of an unfinished run; resume it (with the config "
            f"saved in that folder) with --resume {run_dir}, or choose another --out or name (--set name=...), or "
            "replace it with --overwrite"
        )
    held = results_in(run_dir)
    if held and restart_unfinished and not run_finished(run_dir):
        return True
    if held and restart_unfinished:
        raise RunError(
            f"run folder '{run_dir}' holds a finished run of another plan ({', '.join(held)}) and no "
            "checkpoint; it is never overwritten: move it away or use another --out"
        )
    if held:
        raise RunError(
            f"run folder '{run_dir}' already holds results ({', '.join(held)}) and no checkpoint to "
            "resume; choose another --out, or replace them with --overwrite"
        )
    return False


def clear_run_folder(run_dir: str | Path) -> None:
    """Remove a previous run's files (only the lab's own, `RUN_FILES` and `RUN_FOLDERS`, never the folder)."""
    run_dir = Path(run_dir)
    for name in (CHECKPOINT_NAME, *RUN_FILES):
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)


# -- cleaning up ------------------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


# -- claims: one process writes a folder -----------------------------------------------------------------------
# `vicinal reproduce` claims each run folder it trains (see orchestrate's module doc); the gan and uci tables claim
# their --out folder while they write it.
CLAIM = ".claim"


def _lock(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` (created if needed): the open descriptor, or None if another holds it.

    The lock is on the file that ``path`` names *when it is held*: a holder releases by unlinking the path, then
    closing, so a process that opened the old file before the unlink finds, once it has the lock, that the path
    no longer names its file, and tries again on the new one.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            st = os.stat(path)
            same = (st.st_ino, st.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev)
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _unlock(path: Path, fd: int) -> None:
    """Release a lock of `_lock`: unlink the path (if it is still our file), then close."""
    try:
        st = os.stat(path)
        if (st.st_ino, st.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev):
            path.unlink()
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


@dataclass
class Claim:
    """A held claim on a run folder (`claim`); `release` when done (also when training failed)."""

    path: Path
    fd: int
    previous: str | None = None  # the text of a dead owner's claim that was taken over, if any
    created: list[Path] = field(default_factory=list)  # the folders the claim made, deepest first

    def release(self) -> None:
        """Unlock and remove the claim file, then the folders the claim made where nothing else was written to them
        (a run refused at its start, e.g. by missing data, left an empty run folder in the table)."""
        if self.fd >= 0:
            _unlock(self.path, self.fd)
            self.fd = -1
            _remove_empty(self.created)


def _owner_alive(text: str) -> bool:
    """Whether the claim text ``host pid`` names a process that may still train the run."""
    parts = text.split()
    if len(parts) == 2 and parts[1].isdigit():
        host, pid = parts
        if host == socket.gethostname() and int(pid) == os.getpid():
            # this process, whose lock is free: a killed run's pid reused (a container restarted as PID 1)
            return False
        return host != socket.gethostname() or pid_alive(int(pid))
    return False  # garbled (a process killed while writing it): nobody holds the lock, so nobody trains the run


def _write_owner(fd: int) -> None:
    """Replace the content of a locked claim or lock file by ``host pid`` of this process."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}".encode(), 0)


def claim(run_dir: Path) -> Claim | None:
    """Claim ``run_dir`` for this process: a `Claim`, or None when a live process holds it (the rules: the module
    doc of :mod:`vicinal.experiments.orchestrate`)."""
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # deepest first
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CLAIM
    fd = _lock(path)
    if fd is None:
        return None
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        if text and _owner_alive(text):
            os.close(fd)  # keep the file: it is that process's claim
            return None
    except BaseException:
        os.close(fd)
        raise
    try:
        _write_owner(fd)
    except BaseException:
        # the lock is ours and no live process is named in the file: a failed write (disk full) takes the claim file
        # with it, so that the refusal leaves no half-written claim (and hold_folder can remove the folders it made)
        _unlock(path, fd)
        raise
    return Claim(path, fd, previous=text or None, created=created)


# flock errors of a file system that does not lock (NFS mounted nolock, Lustre without -o flock)
_NO_LOCKING = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


WAIT_OR_MOVE = "wait for it to finish or choose another --out"  # what a refused claim tells the user by default


def claim_folder(folder: Path, advice: str = WAIT_OR_MOVE) -> Claim:
    """Claim ``folder`` (`claim`) while this process writes a table into it; `Claim.release` when done. A folder
    that another live process holds, or that cannot be created, is a RunError naming it: two processes writing one
    table would interleave its records and each sweep the other's temporary files as stale."""
    try:
        held = claim(folder)
    except OSError as exc:
        if exc.errno in _NO_LOCKING:
            raise  # hold_folder decides: a table refuses, a single run may go on unclaimed
        raise RunError(f"cannot create or lock the folder '{folder}': {exc.strerror or exc}") from None
    if held is None:
        try:
            owner = (folder / CLAIM).read_text().strip()
        except OSError:
            owner = ""
        raise _held_elsewhere(folder, owner, advice)
    return held


def _held_elsewhere(folder: Path, owner: str, advice: str) -> RunError:
    return RunError(
        f"'{folder}' is being written by another process (host and pid: {owner or 'unknown'}); {advice} (delete "
        f"{folder / CLAIM} if that process is gone on another machine)"
    )


def claim_holder(folder: Path) -> str | None:
    """The ``host pid`` of the live process that holds ``folder``'s claim (`claim`'s rules), or None; for a dry
    run, which creates nothing: only an existing claim file is opened, and its lock probed, not kept. (The probe's
    shared lock lasts microseconds; a claim taken in that instant is refused as if the folder were held.)"""
    path = folder / CLAIM
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a folder or a pipe there: pread fails, open may block
            raise RunError(f"'{path}' is not a file; the claim of '{folder}' belongs there: remove it")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no claim file, or none readable: nothing known to hold the folder
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return text or "unknown"  # locked: a live process holds it
            return None  # no file locks here: the real claim says so
        # unlocked, but a claim written by a lab version that did not lock may still name a live process
        return text if text and _owner_alive(text) else None
    finally:
        os.close(fd)  # drops the probe's lock


@contextlib.contextmanager
def hold_folder(
    folder: Path,
    *,
    dry_run: bool = False,
    advice: str = WAIT_OR_MOVE,
    unlocked_ok: bool = False,
) -> Iterator[None]:
    """Hold ``folder``'s claim (`claim_folder`; ``advice``: what its refusal tells the user) for the block,
    released however it ends; the folders the claim created (``folder`` and any missing parents) are removed again,
    deepest first, where the block leaves them empty (a refusal, of the claim or in the block, then leaves nothing
    behind). On a file system without file locks the claim is refused, or with ``unlocked_ok`` (one run, not a
    table shared by processes) the block runs unclaimed after a warning. A dry run takes no claim and creates
    nothing: it only reads (`check_out_folder` finds a folder that cannot be created, `claim_holder` one that
    another process holds)."""
    if dry_run:
        owner = claim_holder(folder)
        if owner is not None:  # refused as the run would refuse it, before its plan is printed
            raise _held_elsewhere(folder, owner, advice)
        yield
        return
    missing = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    had_claim = (folder / CLAIM).exists()
    held: Claim | None = None
    try:
        held = claim_folder(folder, advice)
    except OSError as exc:  # flock is not supported here (_NO_LOCKING)
        if not had_claim:
            (folder / CLAIM).unlink(missing_ok=True)  # the empty file the attempt created
        if not unlocked_ok:
            _remove_empty(missing)
            raise RunError(f"cannot lock the folder '{folder}': {exc.strerror or exc} (no file locks here)") from None
        warnings.warn(
            f"'{folder}' cannot be locked ({exc.strerror or exc}): a second process writing it at the same time "
            "would not be refused",
            LabWarning,
            stacklevel=3,
        )
    except RunError:
        _remove_empty(missing)
        raise
    try:
        yield
    finally:
        if held is not None:
            held.release()  # removes the claim file
        _remove_empty(missing)


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders of ``created`` (deepest first) while they are empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:  # not empty (something was written there): neither are the folders above it
            break


def clean_stale_temp_files(directory: str | Path, name: str | None = "checkpoint.pt") -> list[Path]:
    """Remove the temporary files that interrupted writes of ``directory/name`` left behind; returns them.

    A write killed by SIGKILL (or a power cut) cannot remove its ``.<name>.*.tmp`` file. A file whose writer
    (host and pid are in its name) is a process of this host that no longer runs is removed; one from another
    host, or in the older name format without a writer, only once it is older than ``FOREIGN_TMP_AGE_S``. Files
    of a live writer are never touched. ``name=None``: those of any file (a folder whose file names vary, such as
    a report's), only the ones in the ``.<name>.<host>~<pid>~<random>.tmp`` format of `atomic_write`.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    host = socket.gethostname()
    for tmp in directory.glob(f".{'*' if name is None else name}.*.tmp"):
        # "<name>.<host>", "<pid>", "<random>": split from the right, where the writer is
        parts = tmp.name[1 : -len(".tmp")].rsplit(TMP_SEP, 2)
        ours = len(parts) == 3 and parts[1].isdigit()
        stale: bool
        if ours and (parts[0] == f"{name}.{host}" or (name is None and parts[0].endswith(f".{host}"))):
            stale = int(parts[1]) != os.getpid() and not pid_alive(int(parts[1]))
        elif name is None and not ours:
            continue  # not written by atomic_write: not ours to remove
        else:
            try:
                stale = time.time() - tmp.stat().st_mtime > FOREIGN_TMP_AGE_S
            except FileNotFoundError:
                continue
        if stale:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def clean_stale_writes(directory: str | Path, names: Iterable[str]) -> list[Path]:
    """:func:`clean_stale_temp_files` for each file of ``names`` in ``directory`` (what a table writes there)."""
    return [tmp for name in names for tmp in clean_stale_temp_files(directory, name)]


TASK_RUN_FILES = (CONFIG, PROVENANCE, METRICS, SUMMARY)  # what a table's standard run folder holds


_GIT_AT_LOAD = _read_git_state()  # see git_state: the code this process loaded
