"""Tests for vicinal.experiments.tasks.uci: alpha selection and statistics, the run folders, the report's reading of
them, the reproduce hook and the errors (the batched trainer is tested in test_uci_train.py)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vicinal.experiments.errors import TaskError
from vicinal.experiments.report import make_report
from vicinal.experiments.runs import read_config, read_metrics, read_provenance, read_summary
from vicinal.experiments.tasks.uci import (
    PAPER_TABLE4,
    format_markdown,
    main,
    run_uci_table,
    select_alpha,
    summarize_dataset,
)
from vicinal.experiments.tasks.uci_train import (
    MemberResult,
    UCIProtocol,
)

# ---------------------------------------------------------------- selection and statistics


def result(seed: int, alpha: float, val: float, test: float) -> MemberResult:
    return MemberResult(seed=seed, alpha=alpha, val_error=[0.9, val], test_error=[0.9, test], train_error=0.0)


def test_select_alpha_uses_validation_and_breaks_ties_to_the_smaller_alpha() -> None:
    rs = [result(s, a, v, t) for s in (0, 1) for a, v, t in ((0.0, 0.1, 0.1), (0.2, 0.3, 0.0), (1.0, 0.2, 0.5))]
    assert select_alpha(rs) == (1.0, {0.2: 0.3, 1.0: 0.2})  # test error would pick 0.2: not looked at
    tie = [result(0, 0.4, 0.2, 0.0), result(0, 0.1, 0.2, 0.0)]
    assert select_alpha(tie)[0] == 0.1


def test_summarize_dataset_on_synthetic_results() -> None:
    rs = []
    for s, (e, m1, m2) in enumerate([(0.20, 0.10, 0.30), (0.30, 0.20, 0.30), (0.25, 0.25, 0.40)]):
        rs += [result(s, 0.0, 0.5, e), result(s, 0.2, 0.4, m1), result(s, 1.0, 0.45, m2)]
    row = summarize_dataset("iris", rs, [2 / 3, 2 / 3, 0.6])
    assert row["alpha"] == 0.2 and row["n"] == 3 and row["seeds"] == [0, 1, 2]
    assert row["erm"][0] == pytest.approx(25.0) and row["erm"][1] == pytest.approx(5.0)
    assert row["mixup"][0] == pytest.approx(55 / 3) and row["mixup"][1] == pytest.approx(np.std([10, 20, 25], ddof=1))
    assert row["majority_error"] == pytest.approx(100 * (4 / 3 + 0.6) / 3)
    assert (row["paper_erm"], row["paper_mixup"]) == PAPER_TABLE4["iris"] == (21.3, 17.3)
    assert (row["test"]["wins"], row["test"]["ties"], row["test"]["losses"]) == (2, 1, 0)
    assert row["val_by_alpha"] == {"0": pytest.approx(50.0), "0.2": pytest.approx(40.0), "1": pytest.approx(45.0)}
    md = format_markdown([row], UCIProtocol(alphas=(0.2, 1.0)))
    assert "| iris | 64.4 | 25.0 ± 5.0 | 18.3 ± 7.6 | 0.2 | -6.67 | 2/1/0 |" in md
    assert "| 21.3 | 17.3 |" in md


# ---------------------------------------------------------------- the run folder, end to end


def write_tiny_iris(root: Path) -> None:
    """A 60-row file in the bezdekIris.data format (3 classes of 20), so load_uci's real code path runs."""
    g = np.random.default_rng(0)
    lines = []
    for k, name in enumerate(("Iris-setosa", "Iris-versicolor", "Iris-virginica")):
        for row in g.normal(loc=2.0 * k, scale=1.0, size=(20, 4)):
            lines.append(",".join(f"{v:.2f}" for v in row) + f",{name}")
    (root / "iris").mkdir(parents=True)
    (root / "iris" / "bezdekIris.data").write_text("\n".join(lines) + "\n")


def test_run_uci_table_writes_run_folders_and_summary(tmp_path: Path) -> None:
    write_tiny_iris(tmp_path / "data")
    proto = UCIProtocol(epochs=2, hidden=8)
    rows = run_uci_table(
        tmp_path / "run", seeds=3, datasets=["iris"], alphas=[0.2, 1.0], data_root=tmp_path / "data", protocol=proto
    )
    assert len(rows) == 1 and rows[0]["n"] == 3 and rows[0]["alpha"] in (0.2, 1.0)
    assert rows[0]["majority_error"] == pytest.approx(100 * 8 / 12)  # 12 test rows, 4 per class
    run = tmp_path / "run"
    members = [json.loads(line) for line in (run / "iris" / "members.jsonl").read_text().splitlines()]
    assert sorted((m["seed"], m["alpha"]) for m in members) == [(s, a) for s in range(3) for a in (0.0, 0.2, 1.0)]
    assert all(len(m["test_error"]) == 2 for m in members)
    protocol = json.loads((run / "iris" / "protocol.json").read_text())
    assert protocol["protocol"]["alphas"] == [0.2, 1.0] and protocol["sizes"] == {"train": 38, "val": 10, "test": 12}
    prov = json.loads((run / "iris" / "provenance.json").read_text())
    assert (
        prov["seeds"] == [0, 1, 2]
        and "git_commit" in prov
        and len(prov["task_source_sha256"]) == 64
        and prov["versions"]["torch"] == torch.__version__.split("+")[0]
        and prov["argv"]
        and prov["hostname"]  # the one provenance of every run folder (runs.provenance)
    )
    assert prov["wall_s"]["total"] > 0
    with (run / "summary.csv").open() as f:
        table = list(csv.DictReader(f))
    assert table[0]["dataset"] == "iris" and float(table[0]["erm_mean"]) == pytest.approx(rows[0]["erm"][0], abs=1e-4)
    assert (run / "summary.md").read_text().startswith("| dataset | majority-class error | ERM | mixup |")
    # The command line gives the same numbers.
    assert (
        main(
            ["--out", str(tmp_path / "cli"), "--seeds", "3", "--datasets", "iris", "--alphas", "0.2,1"]
            + ["--data-root", str(tmp_path / "data"), "--config", str(write_yaml(tmp_path, proto))]
        )
        == 0
    )
    cli_summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert cli_summary["table"] == "uci" and cli_summary["protocol"]["alphas"] == [0.2, 1.0]
    assert cli_summary["rows"][0]["erm_test_by_seed"] == rows[0]["erm_test_by_seed"]


def test_member_run_folders_are_standard_and_the_report_reads_them(tmp_path: Path) -> None:
    write_tiny_iris(tmp_path / "data")
    proto = UCIProtocol(epochs=2, hidden=8)
    rows = run_uci_table(tmp_path / "run", seeds=3, datasets=["iris"], alphas=[0.2, 1.0], data_root=tmp_path / "data",
                         protocol=proto, verbose=False)  # fmt: skip
    chosen = rows[0]["alpha"]
    other = 1.0 if chosen == 0.2 else 0.2
    members = {
        (m["seed"], m["alpha"]): m
        for m in map(json.loads, (tmp_path / "run" / "iris" / "members.jsonl").read_text().splitlines())
    }
    for tag, alpha in (("erm", 0.0), (f"mixup_a{chosen:g}", chosen), (f"mixup_a{other:g}", other)):
        for seed in range(3):
            folder = tmp_path / "run" / "iris" / tag / f"seed{seed}"
            cfg = read_config(folder)  # a valid ExperimentConfig
            assert (cfg.name, cfg.table, cfg.train.seed, cfg.mix.alpha) == (f"uci-iris-{tag}", "uci", seed, alpha)
            assert cfg.row == {"erm": "iris/erm", f"mixup_a{chosen:g}": "iris/mixup"}.get(tag, f"iris/{tag}")
            assert (cfg.data.name, cfg.data.batch_size, cfg.model.name, cfg.optim.name) == (
                "uci:iris",
                16,
                "mlp",
                "adam",
            )
            member = members[(seed, alpha)]
            records = read_metrics(folder)
            assert [r["epoch"] for r in records] == [1, 2]
            assert [r["test_error"] for r in records] == pytest.approx([100 * e for e in member["test_error"]])
            assert [r["val_error"] for r in records] == pytest.approx([100 * e for e in member["val_error"]])
            summary = read_summary(folder)
            assert summary["status"] == "complete" and summary["epochs_completed"] == 2
            assert summary["last_test_error"] == pytest.approx(100 * member["final_test_error"])
            assert summary["last_train_eval_error"] == pytest.approx(100 * member["final_train_error"])
            assert read_provenance(folder)["seed"] == seed
    # `vicinal report` reads them like any table: one row per config name, and the chosen alpha paired with ERM
    report = make_report([tmp_path / "run"], tmp_path / "report")
    groups = {g["name"]: g for g in report["groups"]}
    assert set(groups) == {"uci-iris-erm", "uci-iris-mixup_a0.2", "uci-iris-mixup_a1"}
    assert groups["uci-iris-erm"]["n"] == 3 and groups["uci-iris-erm"]["complete"] == 3
    assert groups["uci-iris-erm"]["last_test_error_mean"] == pytest.approx(rows[0]["erm"][0])
    assert groups[f"uci-iris-mixup_a{chosen:g}"]["last_test_error_mean"] == pytest.approx(rows[0]["mixup"][0])
    assert f"| uci-iris-mixup_a{chosen:g} | uci-iris-erm | last epoch |" in report["markdown"]
    # the paper column: Table 4's numbers beside the ERM row and the selected alpha's row, none beside the other
    assert groups["uci-iris-erm"]["paper"] == PAPER_TABLE4["iris"][0]
    assert groups[f"uci-iris-mixup_a{chosen:g}"]["paper"] == PAPER_TABLE4["iris"][1]
    assert groups[f"uci-iris-mixup_a{other:g}"]["paper"] is None
    assert "Paper column (uci): Zhang et al. (ICLR 2018), Table 4 (right)" in report["markdown"]


def test_reproduce_hook_overrides_and_dry_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from vicinal.experiments.tasks.uci import parse_overrides, reproduce

    proto = parse_overrides(UCIProtocol(), ["epochs=5", "alphas=[0.2, 1]"])
    assert proto == UCIProtocol(epochs=5, alphas=(0.2, 1.0))
    assert reproduce(tmp_path, seeds=3, overrides=["epochs=1"], dry_run=True) == 0
    assert "dry run: 6 datasets x 15 members" in capsys.readouterr().out
    assert not (tmp_path / "summary.md").exists()
    with pytest.raises(ValueError, match="override 'epochs' is not of the form KEY=VALUE"):
        parse_overrides(UCIProtocol(), ["epochs"])
    with pytest.raises(ValueError, match=r"unknown UCI protocol key\(s\) \['lrr'\]"):
        parse_overrides(UCIProtocol(), ["lrr=0.1"])
    with pytest.raises(ValueError, match="unknown scale 'gpu'; known scales: cpu, paper"):
        reproduce(tmp_path, scale="gpu")


def write_yaml(tmp_path: Path, proto: UCIProtocol) -> Path:
    import yaml

    path = tmp_path / "proto.yaml"
    path.write_text(yaml.safe_dump(proto.to_dict()))
    return path


# ---------------------------------------------------------------- errors


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="select_alpha needs mixup results"):
        select_alpha([result(0, 0.0, 0.1, 0.1)])
    with pytest.raises(ValueError, match="ERM seeds \\[0, 1\\] and mixup alpha=0.2 seeds \\[0\\] differ"):
        summarize_dataset("iris", [result(0, 0.0, 0.1, 0.1), result(1, 0.0, 0.1, 0.1), result(0, 0.2, 0.1, 0.1)], [0.5])
    with pytest.raises(ValueError, match="unknown UCI dataset 'mnist'"):
        run_uci_table(tmp_path, seeds=2, datasets=["mnist"])
    with pytest.raises(ValueError, match="seeds must be >= 1, got 0"):
        run_uci_table(tmp_path, seeds=0, datasets=["iris"])


def test_rerun_into_a_folder_of_another_protocol_or_seeds_is_refused_before_training(tmp_path: Path) -> None:
    # An earlier run's member folders (named by alpha and seed only) would stay beside the new run's, and the
    # report would show a stale alpha's `row: iris/mixup` as a second headline row: such a folder is refused.
    write_tiny_iris(tmp_path / "data")
    proto = UCIProtocol(epochs=1, hidden=8, alphas=(0.2, 1.0))
    out = tmp_path / "run"
    run_uci_table(out, seeds=2, datasets=["iris"], data_root=tmp_path / "data", protocol=proto, verbose=False)
    before = (out / "iris" / "members.jsonl").read_text()
    for other, seeds, diff in (
        (UCIProtocol(epochs=1, hidden=8, alphas=(1.0,)), 2, r"alphas \[0.2, 1.0\] \(now \[1.0\]\)"),
        (UCIProtocol(epochs=2, hidden=8, alphas=(0.2, 1.0)), 2, r"epochs 1 \(now 2\)"),
        (proto, 3, r"seeds \[0, 1\] \(now \[0, 1, 2\]\)"),
        (proto, 1, r"seeds \[0, 1\] \(now \[0\]\)"),  # fewer seeds: the report would pool the old seed1 folders
    ):
        match = rf"^'{re.escape(str(out / 'iris'))}' holds a UCI run of another protocol or seeds \({diff}\); "
        with pytest.raises(
            TaskError, match=match + r"its member folders would mix with this run's: choose a new --out"
        ):
            run_uci_table(out, seeds=seeds, datasets=["iris"], data_root=tmp_path / "data", protocol=other)
    assert (out / "iris" / "members.jsonl").read_text() == before  # refused before anything was trained or written
    assert sorted(p.name for p in (out / "iris").iterdir() if p.is_dir()) == ["erm", "mixup_a0.2", "mixup_a1"]
    assert not (out / "iris" / "erm" / "seed2").exists()
    # The same protocol and seeds write the same member folders: the rerun replaces them
    rows = run_uci_table(out, seeds=2, datasets=["iris"], data_root=tmp_path / "data", protocol=proto, verbose=False)
    assert rows[0]["n"] == 2
    # A non-empty dataset folder that holds no UCI run is refused too; an empty one is used
    (tmp_path / "other" / "iris").mkdir(parents=True)
    (tmp_path / "other" / "iris" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and holds no complete UCI run .*; choose a new --out"):
        run_uci_table(tmp_path / "other", seeds=1, datasets=["iris"], data_root=tmp_path / "data", protocol=proto)
    (tmp_path / "empty" / "iris").mkdir(parents=True)
    run_uci_table(tmp_path / "empty", seeds=1, datasets=["iris"], data_root=tmp_path / "data", protocol=proto,
                  verbose=False)  # fmt: skip
