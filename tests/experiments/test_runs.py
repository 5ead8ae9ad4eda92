"""The run-folder module (runs.py): which folders a new run may use, what --overwrite removes, the provenance a
start and a resume record, and the writers the seed-ensemble tasks use (CSV files, a task's config.yaml)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.experiments.lab_helpers import plant_killed_writes
from vicinal.experiments import runs
from vicinal.experiments.config import ExperimentConfig
from vicinal.experiments.errors import LabWarning, ReportError, RunError
from vicinal.experiments.runs import (
    CHECKPOINT_NAME,
    RUN_FILES,
    check_fresh_run_folder,
    clear_run_folder,
    load_run,
    read_config,
    read_jsonl,
    record_start,
    results_in,
    write_csv,
    write_task_config,
)


def _summary(run: Path, status: str) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(json.dumps({"status": status}))


def test_a_fresh_or_empty_folder_may_start_a_run(tmp_path: Path) -> None:
    assert check_fresh_run_folder(tmp_path / "missing") is False
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")  # an empty metrics file is no result
    assert results_in(tmp_path / "empty") == []
    assert check_fresh_run_folder(tmp_path / "empty") is False


def test_a_folder_with_a_checkpoint_or_results_is_refused_by_name(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / CHECKPOINT_NAME).write_bytes(b"x")
    with pytest.raises(
        RunError, match=rf"^run folder '{run}' already holds a checkpoint of an unfinished run; resume it \(with the "
    ):
        check_fresh_run_folder(run, restart_unfinished=True)
    _summary(run, "complete")  # finished: no advice to resume it
    with pytest.raises(RunError, match=rf"^run folder '{run}' already holds a finished run; choose another --out"):
        check_fresh_run_folder(run)
    (run / "summary.json").unlink()
    (run / CHECKPOINT_NAME).unlink()
    _summary(run, "running")
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunError, match=r"already holds results \(summary.json, metrics.jsonl\) and no checkpoint"):
        check_fresh_run_folder(run)
    # an unfinished run killed before its first checkpoint is restarted (training is deterministic) ...
    assert check_fresh_run_folder(run, restart_unfinished=True) is True
    # ... a finished one never is
    _summary(run, "complete")
    with pytest.raises(RunError, match=r"holds a finished run of another plan \(summary.json, metrics.jsonl\)"):
        check_fresh_run_folder(run, restart_unfinished=True)


def test_clear_run_folder_removes_the_labs_files_only(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "attacks").mkdir(parents=True)
    (run / "attacks" / "fgsm.json").write_text("{}")
    for name in (CHECKPOINT_NAME, *RUN_FILES, "notes.txt"):
        (run / name).write_text("x")
    clear_run_folder(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_record_start_appends_each_resume_to_the_provenance(tmp_path: Path) -> None:
    run = tmp_path / "a" / "run"
    cfg = ExperimentConfig(name="t")
    prov = record_start(run, cfg, {"argv": ["first"]}, extra={"corruption": {"fraction": 0.5}})
    assert prov == {"argv": ["first"], "resumes": [], "corruption": {"fraction": 0.5}}
    assert read_config(run).name == "t"
    prov = record_start(run, cfg, {"argv": ["again"]}, {"epoch": 3, "step_in_epoch": 7})
    assert prov["argv"] == ["first"]
    assert prov["resumes"] == [{"argv": ["again"], "from_epoch": 3, "from_step_in_epoch": 7}]
    assert json.loads((run / "provenance.json").read_text()) == prov


def test_write_csv_equals_the_csv_module_for_sequences_and_mappings(tmp_path: Path) -> None:
    rows = [{"a": 1.5, "b": None, "c": True, "extra": "left out"}, {"a": float("nan"), "b": 'q,"r', "c": False}]
    expected = io.StringIO()
    writer = csv.DictWriter(expected, fieldnames=["a", "b", "c"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_csv(tmp_path / "d.csv", ["a", "b", "c"], rows)
    assert (tmp_path / "d.csv").read_bytes() == expected.getvalue().encode()
    write_csv(tmp_path / "s.csv", ["x", "y"], [[1, "two"], [3.25, None]])
    assert (tmp_path / "s.csv").read_bytes() == b"x,y\r\n1,two\r\n3.25,\r\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary file left behind


def test_write_task_config_needs_the_keys_the_report_groups_by(tmp_path: Path) -> None:
    config = {"name": "gan-ring-erm", "table": "gan", "row": "ring/erm", "train": {"seed": 2}, "gan": {"width": 8}}
    path = write_task_config(tmp_path / "run", config)
    assert path == tmp_path / "run" / "config.yaml" and yaml.safe_load(path.read_text()) == config
    with pytest.raises(RunError, match=r"\['row'\] missing"):
        write_task_config(tmp_path / "bad", {"name": "x", "table": "gan", "train": {"seed": 0}})
    with pytest.raises(RunError, match=r"\['train.seed'\] missing"):
        write_task_config(tmp_path / "bad", {"name": "x", "table": "gan", "row": "r", "train": {}})


def test_json_writers_write_undefined_numbers_as_null(tmp_path: Path) -> None:
    # a 1-seed UCI table wrote bare NaN (its stds and tests) into 13 JSON files: Python reads them, strict parsers
    # (JavaScript, jq, Go) refuse them (helper-105)
    import numpy as np

    value = {
        "std": float("nan"),
        "inf": [float("inf"), -float("inf"), 1.5],
        "tensor": torch.tensor([1.0, float("nan")]),
        "numpy": np.float32("nan"),
        "array": np.array([np.nan, 2.0]),
        "nested": ({"p": float("nan")},),
        "kept": None,
    }

    def strict(text: str) -> object:
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} written"))

    expected = {
        "std": None,
        "inf": [None, None, 1.5],
        "tensor": [1.0, None],
        "numpy": None,
        "array": [None, 2.0],
        "nested": [{"p": None}],
        "kept": None,
    }
    assert strict(runs.write_json(tmp_path / "a.json", value).read_text()) == expected
    runs.write_jsonl(tmp_path / "a.jsonl", [value])
    runs.append_jsonl(tmp_path / "a.jsonl", [value])
    assert [strict(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()] == [expected, expected]
    back = runs.null_as_nan(runs.read_json(tmp_path / "a.json"))
    assert np.isnan(back["std"]) and back["inf"][2] == 1.5 and np.isnan(back["nested"][0]["p"])


def test_read_jsonl_names_a_line_that_is_not_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n')
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]  # the blank line is skipped
    path.write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(RunError, match=rf"^'{re.escape(str(path))}' line 2 is not a JSON object \(got list\)$"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("config", "metrics", "match"),
    [
        ("name: [unclosed\n", "", r"config file '{run}/config.yaml' is not valid YAML at line 2: expected ',' or ']'"),
        ("- a\n- b\n", "", r"config file '{run}/config.yaml' must hold a mapping at the top level, got list \['a'"),
        ("name: x\ntrain: 3\n", "", r"config file '{run}/config.yaml': key 'train' must be a mapping, got int 3$"),
        ("name: x\n", "[1, 2]\n", r"'{run}/metrics.jsonl' line 1 is not a JSON object \(got list\)$"),
        ("name: x\n", '"text"\n', r"'{run}/metrics.jsonl' line 1 is not a JSON object \(got str\)$"),
    ],
)
def test_load_run_names_a_file_of_the_wrong_shape(tmp_path: Path, config: str, metrics: str, match: str) -> None:
    run = tmp_path / "x" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(config)
    (run / "metrics.jsonl").write_text(metrics)
    with pytest.raises(ReportError, match="^" + match.format(run=re.escape(str(run)))):
        load_run(run)


def test_load_run_reads_an_empty_train_section_as_no_seed(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("name: x\ntrain:\n")
    run = load_run(tmp_path)
    assert (run.name, run.seed, run.records, run.status) == ("x", None, [], "unknown")


def test_provenance_names_the_code_the_process_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite process that trains for hours ran the code it imported; its runs once named the later HEAD."""
    monkeypatch.setattr(runs, "_GIT_AT_LOAD", {"git_commit": "a" * 40, "git_dirty": False})
    monkeypatch.setattr(runs, "_git", lambda *args: "b" * 40 if args == ("rev-parse", "HEAD") else "")
    state = runs.git_state()
    assert state == {"git_commit": "a" * 40, "git_dirty": False, "git_head_now": "b" * 40}
    monkeypatch.setattr(runs, "_git", lambda *args: "a" * 40 if args == ("rev-parse", "HEAD") else "")
    assert runs.git_state() == {"git_commit": "a" * 40, "git_dirty": False}
    assert runs.provenance()["git_commit"] == "a" * 40


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EFBIG"])
def test_a_full_disk_is_a_one_line_error_that_keeps_the_old_file(tmp_path: Path, errno_name: str) -> None:
    # it was a traceback (exit 1); the earlier file and no temporary file are left
    import errno

    path = runs.write_text(tmp_path / "summary.json", "old")

    def full(f: io.BufferedWriter) -> None:
        f.write(b"new, half")
        raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))

    with pytest.raises(
        RunError,
        match=rf"cannot write '.*summary.json': {os.strerror(getattr(errno, errno_name))} \(the file as it was before is kept",
    ):
        runs.atomic_write(path, full)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    with pytest.raises(PermissionError):  # other OS errors are not a full disk: they pass unchanged
        runs.atomic_write(path, lambda f: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))


def test_a_full_disk_under_torch_save_or_an_appended_record_is_a_one_line_error(tmp_path: Path) -> None:
    # torch.save reports the failed write as a RuntimeError whose context is the OSError; metrics.jsonl is appended
    # to, not replaced: both gave tracebacks, and the append could leave a torn last line (Python ignores SIGXFSZ,
    # so a file-size limit reaches it as EFBIG)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    checkpoint = tmp_path / "checkpoint.pt"
    metrics = tmp_path / "metrics.jsonl"
    runs.append_jsonl(metrics, [{"epoch": 1}])
    before = metrics.read_bytes()
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 20, hard))
    try:
        with pytest.raises(RunError, match=r"cannot write '.*checkpoint.pt': File too large \(the file as it was"):
            runs.atomic_write(checkpoint, lambda f: torch.save({"w": torch.zeros(10_000)}, f))
        with pytest.raises(RunError, match=r"cannot write '.*metrics.jsonl': File too large"):
            runs.append_jsonl(metrics, [{"epoch": 2, "text": "x" * 100}])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert metrics.read_bytes() == before and not checkpoint.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_atomic_write_gives_the_permissions_open_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mkstemp creates 0600: without the chmod every run file and report would be unreadable to the rest of a team
    runs.write_text(tmp_path / "report.md", "x")
    (tmp_path / "plain.md").write_text("x")
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == stat.S_IMODE((tmp_path / "plain.md").stat().st_mode)
    mask = os.umask(0o027)
    try:
        assert runs._process_umask() == 0o027
        monkeypatch.setattr(runs, "_FILE_MODE", 0o666 & ~runs._process_umask())
        runs.write_text(tmp_path / "shared.md", "x")
        (tmp_path / "shared-plain.md").write_text("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "shared.md").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "shared-plain.md").stat().st_mode) == 0o640


def test_write_figure_saves_in_the_suffix_format_and_atomically(tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    runs.write_figure(tmp_path / "f.png", fig, dpi=50)
    runs.write_figure(tmp_path / "f.pdf", fig, dpi=50)
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"

    class Torn:  # a figure whose rendering dies after the first bytes
        def savefig(self, f: object, **kwargs: object) -> None:
            f.write(b"partial")  # type: ignore[attr-defined]
            raise OSError("disk full")

    with pytest.raises(OSError, match="^disk full$"):
        runs.write_figure(tmp_path / "f.png", Torn(), dpi=50)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_file_or_folder_in_the_way_of_a_write_is_named(tmp_path: Path) -> None:
    # the bare mkdir / os.replace errors were tracebacks (an attack's `attacks` file, a report.md folder)
    (tmp_path / "attacks").write_text("")
    with pytest.raises(RunError, match=r"cannot write '.*attacks/x.json': '.*attacks' is a file, where a folder is"):
        runs.write_text(tmp_path / "attacks" / "x.json", "{}")
    with pytest.raises(RunError, match=r"'.*attacks' is a file, where a folder is needed"):
        runs.write_text(tmp_path / "attacks" / "deeper" / "x.json", "{}")
    (tmp_path / "report.md").mkdir()
    with pytest.raises(RunError, match=r"cannot write '.*report.md': a folder of that name is in the way"):
        runs.write_text(tmp_path / "report.md", "# report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attacks", "report.md"]  # no temporary file left


def test_fields_of_the_wrong_kind_in_summary_and_provenance_are_named(tmp_path: Path) -> None:
    # valid JSON of the wrong shape (a hand edit) failed deep inside the resume or the report with a traceback
    (tmp_path / "provenance.json").write_text('{"resumes": 5}')
    with pytest.raises(RunError, match=r"provenance.json': 'resumes' must be a list, got 5; repair or delete it"):
        runs.read_provenance(tmp_path)
    (tmp_path / "provenance.json").write_text('{"resumes": [], "data": 5}')
    with pytest.raises(RunError, match=r"provenance.json': 'data' must be an object or null, got 5"):
        runs.read_provenance(tmp_path)
    (tmp_path / "provenance.json").write_text('{"resumes": [], "data": null}')
    assert runs.read_provenance(tmp_path) == {"resumes": [], "data": None}
    (tmp_path / "summary.json").write_text('{"status": "complete", "last_test_error": "abc"}')
    with pytest.raises(RunError, match=r"summary.json': 'last_test_error' must be a number or null, got 'abc'"):
        runs.read_summary(tmp_path)
    (tmp_path / "summary.json").write_text('{"status": 1}')
    with pytest.raises(RunError, match=r"summary.json': 'status' must be a string, got 1"):
        runs.read_summary(tmp_path)


def test_a_claim_naming_this_process_is_taken_over(tmp_path: Path) -> None:
    # a killed run's claim whose pid is reused by the resuming process itself (a container restarted as PID 1)
    # refused the resume on every restart, "being written by another process"
    import socket

    (tmp_path / runs.CLAIM).write_text(f"{socket.gethostname()} {os.getpid()}")
    with runs.hold_folder(tmp_path):
        assert (tmp_path / runs.CLAIM).read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert not (tmp_path / runs.CLAIM).exists()


def test_a_dry_run_refuses_a_folder_another_process_writes_and_creates_nothing(tmp_path: Path) -> None:
    # lab.md: a dry run checks --out as the run does; it printed its plan for a folder a live process held (the
    # real command refused it). Another open file description's lock is another process's to flock.
    import socket

    folder = tmp_path / "out"
    held = runs.claim_folder(folder)
    try:
        with pytest.raises(
            RunError,
            match=rf"^'{re.escape(str(folder))}' is being written by another process \(host and pid: "
            rf"{re.escape(socket.gethostname())} {os.getpid()}\); wait for it to finish or choose another --out",
        ):
            with runs.hold_folder(folder, dry_run=True):
                raise AssertionError("the plan ran")
    finally:
        held.release()
    with runs.hold_folder(folder, dry_run=True):  # released: the dry run goes on, and takes no claim
        assert not (folder / runs.CLAIM).exists()
    assert not folder.exists()  # the claim made it, and its release removed it again, empty
    # a claim file left unlocked by a lab version that did not lock, naming a live process on another host
    folder.mkdir()
    (folder / runs.CLAIM).write_text("another-host 12")
    with pytest.raises(RunError, match=r"host and pid: another-host 12\)"):
        with runs.hold_folder(folder, dry_run=True):
            pass
    (folder / runs.CLAIM).write_text(f"{socket.gethostname()} 999999999")  # a dead process here: free
    with runs.hold_folder(folder / "new", dry_run=True):
        pass
    with runs.hold_folder(folder, dry_run=True):
        pass
    assert not (folder / "new").exists()
    # a folder where the claim file goes: pread failed with a traceback (a pipe there made the dry run hang)
    (folder / runs.CLAIM).unlink()
    (folder / runs.CLAIM).mkdir()
    with pytest.raises(RunError, match=rf"^'{re.escape(str(folder / runs.CLAIM))}' is not a file; the claim of "):
        with runs.hold_folder(folder, dry_run=True):
            pass


def test_a_file_system_without_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NFS mounted nolock, Lustre without -o flock: a single run goes on unclaimed after a warning, a table is
    # refused in one line; neither leaves its claim file or the folders it made
    import errno
    import fcntl

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    folder = tmp_path / "out" / "run"
    with pytest.warns(LabWarning, match=r"'.*run' cannot be locked \(Function not implemented\): a second process"):
        with runs.hold_folder(folder, unlocked_ok=True):
            assert folder.is_dir() and not list(folder.iterdir())
    assert not (tmp_path / "out").exists()
    with pytest.raises(RunError, match=r"cannot lock the folder '.*run': Function not implemented \(no file locks"):
        with runs.hold_folder(folder):
            pass
    assert not (tmp_path / "out").exists()


def test_a_claim_that_cannot_be_written_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a full disk while writing the claim text: a one-line refusal, and neither the empty claim file nor the folders
    # the claim made stay behind (before, the claim file kept them, and a retry found a folder it had not asked for)
    import errno

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "_write_owner", disk_full)
    folder = tmp_path / "out" / "run"
    with pytest.raises(RunError, match=r"cannot create or lock the folder '.*run': No space left on device$"):
        with runs.hold_folder(folder):
            pass
    assert not (tmp_path / "out").exists()
    # a stale claim (a dead process) in an existing folder: the failed takeover removes it with the lock held
    folder.mkdir(parents=True)
    (folder / runs.CLAIM).write_text("some-other-host-that-is-gone x")
    with pytest.raises(RunError, match=r"No space left on device$"):
        with runs.hold_folder(folder):
            pass
    assert folder.is_dir() and not list(folder.iterdir())


def test_a_folder_in_the_way_of_a_run_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "summary.json").mkdir()
    with pytest.raises(RunError, match=r"cannot read '.*summary.json': a folder of that name is in the way"):
        runs.read_summary(tmp_path)
    (tmp_path / "metrics.jsonl").mkdir()
    with pytest.raises(RunError, match=r"cannot read '.*metrics.jsonl': a folder of that name is in the way"):
        runs.read_jsonl(tmp_path / "metrics.jsonl")


def test_a_mapping_row_without_a_header_name_gets_an_empty_cell(tmp_path: Path) -> None:
    write_csv(tmp_path / "m.csv", ["a", "b", "c"], [{"c": 3, "a": 1}, {"b": "x", "z": 9}])
    assert (tmp_path / "m.csv").read_bytes() == b"a,b,c\r\n1,,3\r\n,x,\r\n"


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the module's promise (a crash at any moment leaves the old file or the whole new one) needs this order
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    folder_fds: set[int] = set()
    real_open = os.open

    def open_(path: object, flags: int, *args: object) -> int:
        fd = real_open(path, flags, *args)  # type: ignore[arg-type]
        if Path(str(path)) == tmp_path:
            folder_fds.add(fd)
        return fd

    def fsync(fd: int) -> None:
        calls.append("fsync folder" if fd in folder_fds else "fsync file")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        calls.append("replace")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    runs.write_text(tmp_path / "x.txt", "new")
    assert calls == ["fsync file", "replace", "fsync folder"]
    assert (tmp_path / "x.txt").read_text() == "new"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_test_error", "true"),  # a bool is an int to Python, not a number to the report
        ("best_epoch", '"3"'),
        ("epochs_completed", "[1]"),
        ("train_time_s", "{}"),
    ],
)
def test_every_numeric_summary_field_must_hold_a_number(tmp_path: Path, field: str, value: str) -> None:
    (tmp_path / "summary.json").write_text(f'{{"status": "complete", "{field}": {value}}}')
    got = repr(json.loads(value))
    with pytest.raises(RunError, match=re.escape(f"summary.json': '{field}' must be a number or null, got {got};")):
        runs.read_summary(tmp_path)


def test_incomplete_outputs_names_each_missing_file_and_unfinished_run(tmp_path: Path) -> None:
    def run(
        name: str, status: str, files: tuple[str, ...] = ("config.yaml", "provenance.json", "metrics.jsonl")
    ) -> Path:
        _summary(tmp_path / name, status)
        for f in files:
            (tmp_path / name / f).write_text("")
        return tmp_path / name

    (tmp_path / "table.json").write_text("{}")
    done, limit = run("done", "complete"), run("limit", "max_steps")  # a smoke run stopped at its limit is finished
    stopped, no_metrics = (
        run("stopped", "interrupted"),
        run("no_metrics", "complete", ("config.yaml", "provenance.json")),
    )
    corrupt = run("corrupt", "complete")
    (corrupt / "summary.json").write_text("{")
    assert runs.run_finished(limit) and not runs.run_finished(stopped)
    got = runs.incomplete_outputs(tmp_path, ["table.json", "figure.png"], [done, limit, stopped, no_metrics, corrupt])
    assert got == [tmp_path / "figure.png", stopped, no_metrics, corrupt]


def test_find_runs_names_a_path_that_holds_no_run_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    with pytest.raises(ReportError, match=r"^'.*empty' holds no run folders \(no config.yaml below it\)$"):
        runs.find_runs([tmp_path / "empty"])
    with pytest.raises(ReportError, match=r"^'.*gone' does not exist$"):
        runs.find_runs([tmp_path / "gone"])
    (tmp_path / "t" / "b" / "seed0").mkdir(parents=True)
    (tmp_path / "t" / "b" / "seed0" / "config.yaml").write_text("name: b\n")
    (tmp_path / "t" / "a").mkdir()
    (tmp_path / "t" / "a" / "config.yaml").write_text("name: a\n")
    found = runs.find_runs([tmp_path / "t", tmp_path / "t" / "a"])  # sorted, each once
    assert found == [(tmp_path / "t" / "a").absolute(), (tmp_path / "t" / "b" / "seed0").absolute()]


NO_SUCH_PID = 999_999_999  # above any pid_max (2**22 at most on Linux)


def test_a_claim_of_another_host_is_respected_and_a_dead_one_of_this_host_is_taken_over(tmp_path: Path) -> None:
    import socket

    assert not runs.pid_alive(NO_SUCH_PID)
    claim_file = tmp_path / runs.CLAIM
    claim_file.write_text(f"another-host-{socket.gethostname()} {NO_SUCH_PID}")  # its pid means nothing here
    assert runs.claim(tmp_path) is None and claim_file.exists()
    dead = f"{socket.gethostname()} {NO_SUCH_PID}"
    claim_file.write_text(dead)
    held = runs.claim(tmp_path)
    assert held is not None and held.previous == dead  # the take-over names the dead owner
    assert claim_file.read_text() == f"{socket.gethostname()} {os.getpid()}"
    held.release()
    assert not claim_file.exists()


def test_a_lock_is_taken_on_the_file_its_path_names_once_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # between this process's open and flock the holder released (unlinked the file) and a third process locked a new
    # file at the path: the lock on the unlinked file is worth nothing, so the claim is refused
    import fcntl

    path = tmp_path / runs.CLAIM
    third: list[int] = []
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if not third:
            path.unlink()
            third.append(os.open(path, os.O_RDWR | os.O_CREAT))
            real_flock(third[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    try:
        assert runs.claim(tmp_path) is None
    finally:
        os.close(third[0])


def test_releasing_a_claim_leaves_a_newer_claim_file_at_its_path(tmp_path: Path) -> None:
    # `.claim` deleted by hand (as the docs advise when a machine died) and claimed again by another process: the
    # first holder's release must not delete the new holder's file
    first = runs.claim(tmp_path)
    assert first is not None
    (tmp_path / runs.CLAIM).unlink()
    second = runs.claim(tmp_path)
    assert second is not None
    first.release()
    assert (tmp_path / runs.CLAIM).exists()
    second.release()
    assert not (tmp_path / runs.CLAIM).exists()


def test_stale_writes_of_any_file_are_removed_and_nothing_else(tmp_path: Path) -> None:
    import socket

    (killed,) = plant_killed_writes(tmp_path, ["some.figure.png"])  # a dead writer of this host: removed
    live = tmp_path / f".other.csv.{socket.gethostname()}~{os.getpid()}~x1.tmp"  # this process, writing: kept
    foreign = tmp_path / ".other.csv.elsewhere~12~x1.tmp"  # another host's, recent: kept
    notes = tmp_path / ".notes.tmp"  # not written by atomic_write: never removed, whatever its age
    for f in (live, foreign, notes):
        f.write_bytes(b"")
    os.utime(notes, (time.time() - 7200, time.time() - 7200))
    assert runs.clean_stale_temp_files(tmp_path, None) == [killed]
    assert live.exists() and foreign.exists() and notes.exists()
    os.utime(foreign, (time.time() - 7200, time.time() - 7200))
    assert runs.clean_stale_temp_files(tmp_path, None) == [foreign]


def test_releasing_a_claim_removes_the_folders_it_made_while_they_are_empty(tmp_path: Path) -> None:
    held = runs.claim(tmp_path / "table" / "run" / "seed0")
    assert held is not None and held.created == [tmp_path / "table" / "run" / "seed0", tmp_path / "table" / "run",
                                                 tmp_path / "table"]  # fmt: skip
    (tmp_path / "table" / "other").mkdir()  # another run's folder: the table stays
    held.release()
    assert sorted(p.name for p in (tmp_path / "table").iterdir()) == ["other"]
    held = runs.claim(tmp_path / "table" / "run" / "seed0")
    assert held is not None
    (tmp_path / "table" / "run" / "seed0" / "config.yaml").write_text("")  # the run started: nothing removed
    held.release()
    assert sorted(p.name for p in (tmp_path / "table" / "run" / "seed0").iterdir()) == ["config.yaml"]


def test_an_out_folder_behind_a_dangling_link_is_named(tmp_path: Path) -> None:
    (tmp_path / "out").symlink_to(tmp_path / "unmounted")
    with pytest.raises(RunError, match=r"^--out '.*out' is a link to '.*unmounted', which does not exist$"):
        runs.check_out_folder(tmp_path / "out")
    with pytest.raises(
        RunError, match=r"^--out '.*out/sub' lies below '.*out', a link to '.*unmounted', which does not"
    ):
        runs.check_out_folder(tmp_path / "out" / "sub")
    runs.check_out_folder(tmp_path / "new" / "sub")  # a path that can be created passes and leaves nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_process_of_another_user_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def kill(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", kill)
    assert runs.pid_alive(12345)  # its claim is respected: it exists, owned by someone else
