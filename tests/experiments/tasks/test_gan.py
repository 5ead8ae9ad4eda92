"""The GAN task (Section 3.7, tasks/gan.py): the table, its run folders, summary and figure, protocols, the command.

The toy data and metrics are tested in test_gan_metrics.py, the vmapped trainer in test_gan_train.py."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch
import yaml

import vicinal.experiments.tasks.gan as gan_task
from tests.experiments.lab_helpers import break_writer, one_thread  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments.errors import TaskError
from vicinal.experiments.report import make_report
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
    with pytest.raises(ValueError, match=REFUSED):
        run_gan_table(out, "cpu", seeds=1, iterations=2, log=None)


REFUSED = (
    r"already holds a run \(metrics.jsonl\) of a finished or interrupted GAN grid; a GAN grid cannot be continued "
    r"and restarts from scratch: choose a new --out \(or delete the folder\)$"
)


def test_snapshots_that_fail_half_way_leave_no_torn_file(tmp_path, monkeypatch):
    break_writer(monkeypatch, gan_task.np, "savez_compressed", 0)
    with pytest.raises(OSError, match="^disk full$"):
        _tiny_ring_table(tmp_path, seeds=1, iterations=10, lrs=(1e-3,))
    assert not (tmp_path / "run" / "snapshots.npz").exists()
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_an_interrupted_grid_is_refused_with_a_message_naming_out(tmp_path):
    def stop_at_second_group(msg: str) -> None:
        if msg.startswith("[2/"):
            raise KeyboardInterrupt

    grid = {"seeds": 1, "iterations": 2, "widths": (8, 16), "d_steps": (1,), "lrs": (1e-3,), "datasets": ("ring",)}
    with pytest.raises(KeyboardInterrupt):
        run_gan_table(tmp_path / "g", "cpu", **grid, eval_every=1, n_eval=50, log=stop_at_second_group)
    assert (tmp_path / "g" / "runs").is_dir() and not (tmp_path / "g" / "summary.md").exists()  # one group finished
    with pytest.raises(TaskError, match="^" + re.escape(f"'{tmp_path / 'g'}' ") + REFUSED):
        run_gan_table(tmp_path / "g", "cpu", **grid, eval_every=1, n_eval=50, log=None)


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
