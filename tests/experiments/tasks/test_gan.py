"""The GAN task (Section 3.7, tasks/gan.py): the table, its run folders, summary and figure, protocols, the command.

The toy data and metrics are tested in test_gan_metrics.py, the vmapped trainer in test_gan_train.py."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

import vicinal.experiments.tasks.gan as gan_task
from tests.experiments.lab_helpers import break_writer, check_one_writer, count_calls, one_thread, plant_killed_writes  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments.cli import main as cli_main
from vicinal.experiments.errors import RunError, TaskError
from vicinal.experiments.report import make_report
from vicinal.experiments.report.document import make_document
from vicinal.experiments.runs import read_metrics, read_provenance, read_summary
from vicinal.experiments.tasks.gan import PROTOCOLS, GANProtocol, plot_gan_figure, run_gan_table

# ---------------------------------------------------------------------------------------------------- table


def _tiny_ring_table(tmp_path, *, seeds, iterations, lrs):
    """The cpu table on the ring only, width 8, 1 D step, evaluated every 10 iterations on 100 points."""
    return run_gan_table(
        tmp_path / "run",
        "cpu",
        seeds=seeds,
        iterations=iterations,
        widths=(8,),
        d_steps=(1,),
        lrs=lrs,
        eval_every=10,
        n_eval=100,
        datasets=("ring",),
        log=None,
    )


def test_run_gan_table_writes_summary_figure_and_provenance(tmp_path):
    out = _tiny_ring_table(tmp_path, seeds=2, iterations=20, lrs=(1e-3,))
    names = {p.name for p in out.iterdir()}
    expected = {"protocol.json", "provenance.json", "metrics.jsonl", "runs.csv", "summary.csv", "summary.md"}
    assert expected | {"gan_figure.png", "snapshots.npz"} <= names
    assert (out / "gan_figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 3  # methods x seeds x evaluations (0, 10, 20)
    assert {(r["method"], r["seed"], r["iteration"]) for r in records} == {
        (m, s, it) for m in ("erm", "mixup") for s in (0, 1) for it in (0, 10, 20)
    }
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["dataset"], r["method"]) for r in rows] == [("ring", "erm"), ("ring", "mixup")]
    for row in rows:
        assert row["runs_grid"] == "2" and row["modes_covered_n"] == "2" and row["n_modes"] == "8"
    finals = list(csv.DictReader(open(out / "runs.csv")))
    assert len(finals) == 4 and {r["iteration"] for r in finals} == {"20"}
    # the summary's means are the means of the final records
    erm_hq = [float(r["high_quality"]) for r in finals if r["method"] == "erm"]
    assert float(rows[0]["high_quality_mean"]) == pytest.approx(sum(erm_hq) / 2)
    md = (out / "summary.md").read_text()
    assert "| ring | mixup |" in md and "converge" in md and "gan_figure.png" in md
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["iterations"] == 20 and protocol["snapshot_iters"] == [1, 10, 20]
    assert protocol["default_width"] == 8 and protocol["default_d_steps"] == 1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seeds"] == [0, 1] and prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert "git_commit" in prov and prov["argv"] and prov["group_seconds"] and prov["wall_seconds"] >= 0
    # one standard run folder per run, which the report groups by name (seeds pooled)
    for method, seed in ((m, s) for m in ("erm", "mixup") for s in (0, 1)):
        folder = out / "runs" / f"gan-ring-{method}-w8-d1-lr0.001" / f"seed{seed}"
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert (config["name"], config["table"], config["row"]) == (
            f"gan-ring-{method}-w8-d1-lr0.001",
            "gan",
            f"ring/{method}",
        )
        assert config["train"] == {"seed": seed, "lr": 1e-3} and config["gan"]["width"] == 8
        assert (config["scale"], config["paper_setting"]) == ("cpu", True)
        summary = read_summary(folder)
        final = [r for r in finals if (r["method"], r["seed"]) == (method, str(seed))][0]
        assert summary["status"] == "complete" and summary["iteration"] == 20
        assert summary["high_quality"] == pytest.approx(float(final["high_quality"]))
        assert summary["converged"] == (final["converged"] == "True")
        assert [r["iteration"] for r in read_metrics(folder)] == [0, 10, 20]
        assert read_provenance(folder)["seed"] == seed
    report = make_report([out], tmp_path / "report")
    assert {g["name"]: g["n"] for g in report["groups"]} == {
        "gan-ring-erm-w8-d1-lr0.001": 2,
        "gan-ring-mixup-w8-d1-lr0.001": 2,
    }
    # and prints the GAN outcome tables from the run folders, equal to the table's own summary
    md = (out / "summary.md").read_text()
    for row in ("| ring | erm |", "| ring | mixup |"):
        table_lines = [line for line in md.splitlines() if line.startswith(row)]
        report_lines = [line for line in report["markdown"].splitlines() if line.startswith(row)]
        assert len(table_lines) == 2 and report_lines == table_lines
    assert "## GANs (Figure 5), cpu scale: the paper's setting" in report["markdown"]
    # every group recorded by the first (and only) process
    assert prov["resumes"] == [] and [g["session"] for g in prov["group_seconds"]] == [0, 0]
    assert sorted(p.name for p in (out / "groups").iterdir()) == ["01-ring-erm-w8-d1.json", "02-ring-mixup-w8-d1.json"]
    # the cpu scale's own grid, with 1 seed and 2 iterations: refused, naming each key that differs
    refused = re.escape("holds a GAN grid of another protocol (d_steps [1] (now [1, 5]); ") + ".*"
    refused += re.escape("; iterations 20 (now 2); ") + ".*" + re.escape("; seeds [0, 1] (now [0]); widths [8] (now")
    with pytest.raises(ValueError, match=refused):
        run_gan_table(out, "cpu", seeds=1, iterations=2, log=None)


def test_one_name_or_width_is_a_grid_of_one(tmp_path):
    # a lone str was split into its letters ("unknown dataset 'r'"), a lone int was a TypeError traceback
    lines: list[str] = []
    kwargs = {"seeds": 1, "widths": 8, "d_steps": 1, "datasets": "ring", "methods": "mixup", "lrs": 1e-3}
    run_gan_table(tmp_path / "g", "cpu", **kwargs, dry_run=True, log=lines.append)
    # numpy's scalars and arrays, and any ordered iterable, as their Python numbers
    numpy_kwargs = {**kwargs, "widths": np.int64(8), "d_steps": (d for d in [1]), "lrs": np.array([1e-3, 1e-4])}
    run_gan_table(tmp_path / "g", "cpu", **numpy_kwargs, dry_run=True, log=lines.append)
    assert lines == [f"dry run: '{tmp_path / 'g'}': 0 of 1 groups recorded; would train the other 1"] * 2
    with pytest.raises(TypeError, match=r"^widths must be a value or a list of them, got set$"):
        run_gan_table(tmp_path / "g", "cpu", widths={8}, dry_run=True, log=None)


def test_snapshots_that_fail_half_way_leave_no_torn_file(tmp_path, monkeypatch):
    break_writer(monkeypatch, gan_task.np, "savez_compressed", 0)
    with pytest.raises(OSError, match="^disk full$"):
        _tiny_ring_table(tmp_path, seeds=1, iterations=10, lrs=(1e-3,))
    assert not (tmp_path / "run" / "snapshots.npz").exists()
    assert not list((tmp_path / "run").glob(".*.tmp"))


# -------------------------------------------------------------------------------------------- resuming a grid

# ring only, widths 8 and 16 (the paper's setting is the largest: groups 2 and 4 give the figure), one seed:
# four groups, erm-w8, erm-w16, mixup-w8, mixup-w16, trained in that order
GRID = {
    "seeds": 1,
    "iterations": 3,
    "widths": (8, 16),
    "d_steps": (1,),
    "lrs": (1e-3,),
    "datasets": ("ring",),
    "eval_every": 1,
    "n_eval": 50,
    "log": None,
}
TRAIN_GAN_RUNS = gan_task.train_gan_runs  # the real one, which _count_training wraps however often it is called
OUTPUTS = ("runs.csv", "summary.csv", "summary.md", "metrics.jsonl", "gan_figure.png")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The grid trained in one go: what an interrupted and resumed run must write."""
    return run_gan_table(tmp_path_factory.mktemp("gan") / "whole", "cpu", **GRID)


def test_the_document_regenerates_a_cpu_grid_at_cpu_scale(tmp_path, uninterrupted):
    """GAN run names carry no scale ("gan-ring-mixup-w8-d1-lr0.001"): the page takes it from the runs' configs."""
    assert all(not p.name.endswith("-cpu") for p in (uninterrupted / "runs").iterdir())
    md = make_document([uninterrupted / "runs"], tmp_path / "doc")["markdown"]
    assert "Regenerate the whole table: `vicinal reproduce gan --scale cpu`" in md
    assert "--scale paper" not in md


def _count_training(monkeypatch, stop_at: int | None = None) -> list[int]:
    """Count calls of train_gan_runs (the groups trained); the ``stop_at``-th raises KeyboardInterrupt (a Ctrl-C)."""
    return count_calls(monkeypatch, gan_task, "train_gan_runs", TRAIN_GAN_RUNS, stop_at)


def _assert_same_outputs(out, expected):
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (expected / name).read_bytes(), name
    with np.load(out / "snapshots.npz") as got, np.load(expected / "snapshots.npz") as want:
        assert sorted(got) == sorted(want)
        for key in want:
            assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    run_metrics = sorted(p.relative_to(expected) for p in expected.glob("runs/*/seed*/metrics.jsonl"))
    assert len(run_metrics) == 4
    assert sorted(p.relative_to(out) for p in out.glob("runs/*/seed*/metrics.jsonl")) == run_metrics
    for rel in run_metrics:
        assert (out / rel).read_bytes() == (expected / rel).read_bytes(), rel


def test_an_interrupted_grid_resumes_and_writes_what_an_uninterrupted_run_writes(tmp_path, monkeypatch, uninterrupted):
    calls = _count_training(monkeypatch, stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_gan_table(tmp_path / "g", "cpu", **GRID)
    out = tmp_path / "g"
    # two groups recorded (one of them the figure's), their metrics only, no outputs of the end yet
    assert sorted(p.name for p in (out / "groups").iterdir()) == ["01-ring-erm-w8-d1.json", "02-ring-erm-w16-d1.json"]
    assert {(r["method"], r["width"]) for r in read_metrics(out)} == {("erm", 8), ("erm", 16)}
    assert not (out / "summary.md").exists() and "finished" not in read_provenance(out)
    first = read_provenance(out)

    calls = _count_training(monkeypatch)
    run_gan_table(out, "cpu", **GRID)
    assert calls == [1, 2]  # only the two groups not recorded were trained
    _assert_same_outputs(out, uninterrupted)
    prov = read_provenance(out)
    assert {k: prov[k] for k in ("time", "argv", "seeds")} == {k: first[k] for k in ("time", "argv", "seeds")}
    assert [r["groups_recorded"] for r in prov["resumes"]] == [2] and prov["resumes"][0]["seeds"] == [0]
    assert [(g["method"], g["width"], g["session"]) for g in prov["group_seconds"]] == [
        ("erm", 8, 0),
        ("erm", 16, 0),
        ("mixup", 8, 1),
        ("mixup", 16, 1),
    ]
    assert prov["wall_seconds"] >= sum(g["seconds"] for g in prov["group_seconds"] if g["session"] == 0)
    assert "finished" in prov


def test_a_finished_grid_rerun_trains_nothing_and_rewrites_the_same_outputs(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "done"
    shutil.copytree(uninterrupted, out)
    prov = (out / "provenance.json").read_bytes()
    (out / "summary.md").unlink()  # an output lost since: rewritten from the records
    calls = _count_training(monkeypatch)
    # seeds given as the list [0] rather than the count 1: the same protocol, spelled otherwise
    run_gan_table(out, "cpu", **{**GRID, "seeds": [0]})
    assert calls == []
    _assert_same_outputs(out, uninterrupted)
    assert (out / "provenance.json").read_bytes() == prov  # nothing trained: the provenance stays as it was


def test_a_recorded_group_whose_run_folder_was_lost_is_trained_again(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "lost"
    shutil.copytree(uninterrupted, out)
    prov = read_provenance(out)
    shutil.rmtree(out / "runs" / "gan-ring-mixup-w8-d1-lr0.001" / "seed0")  # group 3's only run folder
    (out / "runs" / "gan-ring-erm-w16-d1-lr0.001" / "seed0" / "summary.json").unlink()  # group 2: unfinished
    lines = []
    calls = _count_training(monkeypatch)
    run_gan_table(out, "cpu", **{**GRID, "log": lines.append})
    assert calls == [1, 2]  # groups 2 and 3, not the two whose run folders are complete
    assert lines[:3] == [
        f"[2/4] '{out / 'runs' / 'gan-ring-erm-w16-d1-lr0.001' / 'seed0'}' is missing or unfinished: its group is "
        "trained again",
        f"[3/4] '{out / 'runs' / 'gan-ring-mixup-w8-d1-lr0.001' / 'seed0'}' is missing or unfinished: its group is "
        "trained again",
        f"'{out}': 2 of 4 groups recorded; training the rest",
    ]
    _assert_same_outputs(out, uninterrupted)
    assert (out / "runs" / "gan-ring-erm-w16-d1-lr0.001" / "seed0" / "summary.json").is_file()
    assert read_provenance(out)["resumes"][-1]["groups_recorded"] == 2 and "finished" in prov


def test_a_grid_killed_while_writing_its_outputs_says_nothing_is_left_to_train(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "g"
    shutil.copytree(uninterrupted, out)
    prov = read_provenance(out)
    del prov["finished"]  # as a kill between the last record and the end leaves it
    (out / "provenance.json").write_text(json.dumps(prov))
    (out / "summary.md").unlink()
    lines = []
    calls = _count_training(monkeypatch)
    run_gan_table(out, "cpu", **{**GRID, "log": lines.append})
    assert calls == [] and lines[0] == f"'{out}': 4 of 4 groups recorded; nothing to train"
    _assert_same_outputs(out, uninterrupted)


def test_a_rerun_removes_the_temporary_files_of_writes_killed_in_the_grid(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "g"
    shutil.copytree(uninterrupted, out)
    run = "runs/gan-ring-erm-w8-d1-lr0.001/seed0"
    names = [*gan_task.OUTPUTS, "protocol.json", "provenance.json", "metrics.jsonl", "groups/02-ring-erm-w16-d1.json"]
    planted = plant_killed_writes(out, [*names, *(f"{run}/{f}" for f in ("config.yaml", "summary.json"))])
    run_gan_table(out, "cpu", **GRID)
    assert [p for p in planted if p.exists()] == []
    _assert_same_outputs(out, uninterrupted)


def test_a_corrupt_provenance_or_run_summary_of_a_grid(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "g"
    shutil.copytree(uninterrupted, out)
    # a run folder's summary: its group is trained again, which writes it again
    summary = out / "runs" / "gan-ring-mixup-w16-d1-lr0.001" / "seed0" / "summary.json"
    summary.write_text('{"status": "compl')
    calls = _count_training(monkeypatch)
    run_gan_table(out, "cpu", **GRID)
    assert calls == [1]
    _assert_same_outputs(out, uninterrupted)
    assert read_summary(summary.parent)["status"] == "complete"
    # the grid's provenance: named, with what deleting it costs (these tables have no checkpoint to resume from)
    (out / "provenance.json").write_text('{"time')
    with pytest.raises(
        RunError,
        match="^"
        + re.escape(
            f"'{out / 'provenance.json'}' is not valid JSON (Unterminated string starting at at line 1 column 2); "
            "delete it (the provenance of the earlier processes is then lost; the recorded groups are kept)"
        )
        + "$",
    ):
        run_gan_table(out, "cpu", **GRID)


def test_a_rerun_with_another_protocol_is_refused_and_changes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "g"
    _count_training(monkeypatch, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_gan_table(out, "cpu", **GRID)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tail = "; a grid is continued only with the protocol it started with: choose a new --out (or delete the folder)"
    for change, differs in (
        ({"iterations": 4}, "iterations 3 (now 4)"),
        ({"widths": (8,)}, "widths [8, 16] (now [8])"),
        ({"seeds": 2}, "seeds [0] (now [0, 1])"),
        ({"lam_distribution": "uniform"}, "lam_distribution 'beta' (now 'uniform')"),
    ):
        with pytest.raises(
            TaskError, match="^" + re.escape(f"'{out}' holds a GAN grid of another protocol ({differs})" + tail) + "$"
        ):
            run_gan_table(out, "cpu", **{**GRID, **change})
    with pytest.raises(TaskError, match=re.escape("(scale 'cpu' (now 'paper'); ")):
        run_gan_table(out, "paper", **GRID)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_crash_between_a_groups_record_and_metrics_leaves_no_duplicate_metrics(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "g"
    written = []
    write_metrics = gan_task.write_metrics

    def crash_after_the_second_record(folder, records):
        if folder == out:  # the table's metrics.jsonl, not a run folder's
            written.append(1)
        if written == [1, 1, 1]:  # the rewrite after group 2's record (the first empties it, the second: group 1)
            raise KeyboardInterrupt
        return write_metrics(folder, records)

    monkeypatch.setattr(gan_task, "write_metrics", crash_after_the_second_record)
    with pytest.raises(KeyboardInterrupt):
        run_gan_table(out, "cpu", **GRID)
    monkeypatch.setattr(gan_task, "write_metrics", write_metrics)
    assert (out / "groups" / "02-ring-erm-w16-d1.json").is_file()
    assert {r["width"] for r in read_metrics(out)} == {8}  # group 2 recorded, its metrics not yet written
    # and what an interrupted append would leave (as older versions of the lab appended): records of a group
    # twice, and a torn last line
    stray = [line for line in (uninterrupted / "metrics.jsonl").read_text().splitlines() if '"width": 16' in line]
    with (out / "metrics.jsonl").open("a") as f:
        f.write("\n".join(stray + stray) + '\n{"dataset": "ri')
    calls = _count_training(monkeypatch)
    run_gan_table(out, "cpu", **GRID)
    assert calls == [1, 2]
    records = read_metrics(out)
    keys = [(r["method"], r["width"], r["seed"], r["lr"], r["iteration"]) for r in records]
    assert len(keys) == len(set(keys)) == 4 * 4  # groups x evaluations (0, 1, 2, 3), each once
    _assert_same_outputs(out, uninterrupted)


def test_a_grid_of_an_earlier_lab_version(tmp_path, monkeypatch, uninterrupted):
    # interrupted (protocol.json and metrics.jsonl, no groups/ nor provenance): nothing to reuse, trained again
    out = tmp_path / "interrupted"
    _count_training(monkeypatch, stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_gan_table(out, "cpu", **GRID)
    shutil.rmtree(out / "groups")
    (out / "provenance.json").unlink()
    calls = _count_training(monkeypatch)
    run_gan_table(out, "cpu", **GRID)
    assert calls == [1, 2, 3, 4] and read_provenance(out)["resumes"] == []
    _assert_same_outputs(out, uninterrupted)
    # finished: its results are kept, not trained over
    shutil.rmtree(out / "groups")
    with pytest.raises(TaskError, match="finished by an earlier version of the lab, without the groups/ records"):
        run_gan_table(out, "cpu", **GRID)
    # no protocol.json: not a GAN grid
    (out / "protocol.json").unlink()
    with pytest.raises(TaskError, match=re.escape(f"'{out}' holds metrics.jsonl but no protocol.json")):
        run_gan_table(out, "cpu", **GRID)


def test_a_corrupt_group_record_is_named(tmp_path, monkeypatch):
    out = tmp_path / "g"
    _count_training(monkeypatch, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_gan_table(out, "cpu", **GRID)
    record = out / "groups" / "01-ring-erm-w8-d1.json"
    record.write_text(record.read_text().replace('"erm"', '"mixup"', 1))
    with pytest.raises(TaskError, match=re.escape(f"'{record}' is not the record of group ")):
        run_gan_table(out, "cpu", **GRID)


def test_reproduce_gan_continues_an_interrupted_grid(tmp_path, monkeypatch, capsys, uninterrupted):
    # the cpu scale made the tiny grid, so that the command trains it in seconds
    tiny = replace(
        PROTOCOLS["cpu"], **{k: v for k, v in GRID.items() if k not in ("seeds", "log")}, seeds=(0,), default_d_steps=1
    )
    monkeypatch.setitem(gan_task.PROTOCOLS, "cpu", tiny)
    calls = _count_training(monkeypatch, stop_at=2)
    out = tmp_path / "cli"
    assert cli_main(["reproduce", "gan", "--scale", "cpu", "--out", str(out)]) == 130  # a Ctrl-C in group 2
    assert capsys.readouterr().err.endswith(
        f"vicinal: interrupted; what finished is recorded in '{out}': rerun the same command to continue\n"
    )
    calls = _count_training(monkeypatch)
    assert cli_main(["reproduce", "gan", "--scale", "cpu", "--out", str(out)]) == 0
    assert calls == [1, 2, 3]
    said = capsys.readouterr()
    assert said.out.startswith("vicinal reproduce gan --scale cpu: ")
    assert "1 of 4 groups recorded; training the rest" in said.err
    _assert_same_outputs(out, uninterrupted)
    assert cli_main(["reproduce", "gan", "--scale", "cpu", "--out", str(out), "--seeds", "2"]) == 2
    said = capsys.readouterr()  # the refusal is the only line: no banner before it
    assert said.out == "" and "holds a GAN grid of another protocol (seeds [0] (now [0, 1]))" in said.err


def test_reproduce_gan_dry_run_checks_the_folder_as_the_run_does_and_writes_nothing(
    tmp_path, monkeypatch, capsys, uninterrupted
):
    tiny = replace(
        PROTOCOLS["cpu"], **{k: v for k, v in GRID.items() if k not in ("seeds", "log")}, seeds=(0,), default_d_steps=1
    )
    monkeypatch.setitem(gan_task.PROTOCOLS, "cpu", tiny)
    calls = _count_training(monkeypatch)
    out = tmp_path / "g"
    argv = ["reproduce", "gan", "--scale", "cpu", "--out", str(out), "--dry-run"]
    assert cli_main(argv) == 0
    assert f"dry run: '{out}': 0 of 4 groups recorded; would train the other 4\n" in capsys.readouterr().out
    assert not out.exists()
    shutil.copytree(uninterrupted, out)
    shutil.rmtree(out / "runs" / "gan-ring-mixup-w8-d1-lr0.001")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.endswith(
        f"[3/4] '{out / 'runs' / 'gan-ring-mixup-w8-d1-lr0.001' / 'seed0'}' is missing or unfinished: its group is "
        f"trained again\ndry run: '{out}': 3 of 4 groups recorded; would train the other 1\n"
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "groups" / "03-ring-mixup-w8-d1.json").unlink()
    shutil.rmtree(out / "runs")
    shutil.copytree(uninterrupted / "runs", out / "runs")
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.endswith(f"dry run: '{out}': 3 of 4 groups recorded; would train the other 1\n")
    shutil.copy(uninterrupted / "groups" / "03-ring-mixup-w8-d1.json", out / "groups")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.endswith(
        f"dry run: '{out}': 4 of 4 groups recorded; would train nothing (the outputs would be rewritten)\n"
    )
    # refused as the run would refuse it
    assert cli_main([*argv, "--seeds", "2"]) == 2
    assert "holds a GAN grid of another protocol (seeds [0] (now [0, 1]))" in capsys.readouterr().err
    assert calls == [] and {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_report_separates_the_papers_setting_from_the_grid_as_the_summary_does(tmp_path):
    # two learning rates: only the protocol's default (1e-3) is the paper's setting; the other is grid only
    out = _tiny_ring_table(tmp_path, seeds=1, iterations=10, lrs=(1e-4, 1e-3))
    md = (out / "summary.md").read_text().splitlines()
    report = make_report([out], tmp_path / "report")["markdown"].splitlines()
    for row in ("| ring | erm |", "| ring | mixup |"):
        table_lines = [line for line in md if line.startswith(row)]
        assert [line for line in report if line.startswith(row)] == table_lines
        setting, grid = table_lines
        assert setting.endswith("| 0/1 |") or setting.endswith("| 1/1 |")  # one run in the paper's setting
        assert "/2 |" in grid  # both learning rates in the grid


def test_protocols_and_table_errors(tmp_path):
    paper = PROTOCOLS["paper"]
    assert (paper.iterations, paper.default_width, paper.default_d_steps, paper.default_lr) == (20000, 512, 5, 1e-3)
    assert paper.snapshot_iters == (10, 100, 1000, 10000, 20000)
    assert PROTOCOLS["cpu"].snapshot_iters == tuple(
        max(1, round(it * PROTOCOLS["cpu"].iterations / 20000)) for it in (10, 100, 1000, 10000, 20000)
    )
    with pytest.raises(ValueError, match="unknown scale 'gpu'; known scales: paper, cpu"):
        run_gan_table(tmp_path / "x", "gpu")
    with pytest.raises(ValueError, match="threads must be an int >= 1, got 0"):
        run_gan_table(tmp_path / "x", "cpu", threads=0)
    with pytest.raises(TypeError, match="seeds must be an int or a sequence of ints, got str"):
        run_gan_table(tmp_path / "x", "cpu", seeds="3")
    with pytest.raises(ValueError, match=r"default_lr 0.1 is not in lrs \(0.001,\)"):
        GANProtocol(scale="cpu", iterations=2, widths=(8,), d_steps=(1,), lrs=(1e-3,), seeds=(0,), default_lr=0.1)
    with pytest.raises(ValueError, match=r"widths has repeated values: \(8, 8\)"):
        GANProtocol(scale="cpu", iterations=2, widths=(8, 8), d_steps=(5,), lrs=(1e-3,), seeds=(0,))
    with pytest.raises(ValueError, match="samples is empty"):
        plot_gan_figure({}, {}, tmp_path / "f.png")


def test_main_parses_arguments(monkeypatch, tmp_path):
    seen = {}

    def fake_table(out, scale, seeds, **kwargs):
        seen.update(out=out, scale=scale, seeds=seeds, **kwargs)
        return out

    monkeypatch.setattr(gan_task, "run_gan_table", fake_table)
    assert gan_task.main(["--out", str(tmp_path), "--scale", "paper", "--seeds", "0,4", "--threads", "0"]) == 0
    assert (seen["scale"], seen["seeds"], seen["iterations"], seen["threads"]) == ("paper", [0, 4], None, None)
    gan_task.main(["--out", str(tmp_path), "--seeds", "3"])
    assert (seen["scale"], seen["seeds"], seen["threads"]) == ("cpu", 3, 1)
    with pytest.raises(SystemExit):
        gan_task.main(["--out", str(tmp_path), "--seeds", "a,b"])


def test_main_reports_a_refusal_in_one_line_with_exit_2_and_a_ctrl_c_with_130(monkeypatch, tmp_path, capsys):
    (tmp_path / "protocol.json").write_text('{"scale": "cp')  # refused before anything is trained
    assert gan_task.main(["--out", str(tmp_path), "--iterations", "2"]) == 2
    assert capsys.readouterr().err == (
        f"python -m vicinal.experiments.tasks.gan: error: '{tmp_path / 'protocol.json'}' is not valid JSON "
        "(Unterminated string starting at at line 1 column 11); choose a new --out (or delete the folder)\n"
    )

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gan_task, "run_gan_table", ctrl_c)
    assert gan_task.main(["--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "python -m vicinal.experiments.tasks.gan: interrupted\n"
    monkeypatch.undo()
    afile = tmp_path / "afile"
    afile.write_text("")
    assert gan_task.main(["--out", str(afile)]) == 2
    assert (
        capsys.readouterr().err == f"python -m vicinal.experiments.tasks.gan: error: --out '{afile}' is not a folder\n"
    )


def test_one_process_writes_a_grid(tmp_path):
    # a second writer would train the same groups and sweep the first's temporary files as stale
    check_one_writer(tmp_path / "g", lambda: run_gan_table(tmp_path / "g", "cpu", **GRID))
