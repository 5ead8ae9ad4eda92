"""Tests for vicinal.experiments.tasks.uci: alpha selection and statistics, the run folders, the report's reading of
them, the reproduce hook and the errors (the batched trainer is tested in test_uci_train.py)."""

from __future__ import annotations

import csv
import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import vicinal.experiments.tasks.uci as uci_task
from tests.experiments.lab_helpers import check_one_writer, count_calls, plant_killed_writes
from vicinal.experiments import runs
from vicinal.experiments.cli import main as cli_main
from vicinal.experiments.errors import RunError, TaskError
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
    # the same number of validation errors averaged over seeds can differ in the last bit (43 of 144 rows on two
    # seeds, summed in another order): still a tie, for the smaller alpha
    a, b = 0.1 + 0.2, 0.3  # 0.30000000000000004 and 0.3
    tie = [result(0, 0.2, a, 0.0), result(0, 0.4, b, 0.0)]
    assert a > b and select_alpha(tie)[0] == 0.2


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
    # ... marked: this protocol (2 epochs, 8 hidden units) is not the shipped one the paper's numbers belong to; the
    # selected alpha is one of the shipped grid's, so the mixup row differs in the same two keys only
    for name in ("uci-iris-erm", f"uci-iris-mixup_a{chosen:g}"):
        assert groups[name]["paper_config_differs"] == "model.kwargs.hidden train.epochs"
    mixup = PAPER_TABLE4["iris"][1]
    assert f"| {mixup:g} (config differs: model.kwargs.hidden, train.epochs) |" in report["markdown"]


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
    with pytest.raises(ValueError, match=r"seeds must be in \[1, 10000\], got 0"):
        run_uci_table(tmp_path, seeds=0, datasets=["iris"])


def test_main_reports_a_refusal_in_one_line_with_exit_2_and_a_ctrl_c_with_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--datasets", "iris,mnist"]) == 2
    assert capsys.readouterr().err == (
        "python -m vicinal.experiments.tasks.uci: error: unknown UCI dataset 'mnist'; expected some of abalone, "
        "arcene, arrhythmia, htru2, iris, phishing\n"
    )

    def ctrl_c(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(uci_task, "run_uci_table", ctrl_c)
    assert main(["--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "python -m vicinal.experiments.tasks.uci: interrupted\n"

    # bad values are one line too: argparse's usage error (exit 2), and an --out that is a file
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.undo()
    assert main(["--out", str(afile)]) == 2
    assert (
        capsys.readouterr().err == f"python -m vicinal.experiments.tasks.uci: error: --out '{afile}' is not a folder\n"
    )
    for bad, said in (
        (["--alphas", "x"], "expected comma-separated numbers, got 'x'"),
        (["--threads", "0"], "an int >= 1"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["--out", str(tmp_path), *bad])
        assert exc.value.code == 2 and said in capsys.readouterr().err


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
    # The same protocol and seeds: the table is continued (here finished: its summary rewritten from the records)
    rows = run_uci_table(out, seeds=2, datasets=["iris"], data_root=tmp_path / "data", protocol=proto, verbose=False)
    assert rows[0]["n"] == 2
    # A non-empty dataset folder that holds no UCI run is refused too; an empty one is used
    (tmp_path / "other" / "iris").mkdir(parents=True)
    (tmp_path / "other" / "iris" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and holds no complete UCI run .*; delete '"):
        run_uci_table(tmp_path / "other", seeds=1, datasets=["iris"], data_root=tmp_path / "data", protocol=proto)
    (tmp_path / "empty" / "iris").mkdir(parents=True)
    run_uci_table(tmp_path / "empty", seeds=1, datasets=["iris"], data_root=tmp_path / "data", protocol=proto,
                  verbose=False)  # fmt: skip


# ---------------------------------------------------------------- resuming


def test_one_process_writes_a_table(tmp_path: Path, uci_data: Path) -> None:
    # a second writer would interleave provenance and records, and sweep the first's temporary files as stale
    check_one_writer(tmp_path / "run", lambda: tiny_table(tmp_path / "run", uci_data, datasets=["iris"]))


def test_a_refused_table_leaves_no_folder_and_an_uncreatable_one_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the folder's claim is taken before the folder is read: a refusal after it removes the folder it created
    for out in (tmp_path / "new", tmp_path / "a" / "b" / "new"):  # missing parents are made and removed too
        with pytest.raises(FileNotFoundError, match="UCI dataset 'iris' not found"):
            tiny_table(out, tmp_path / "no-data", datasets=["iris"])
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()  # an existing folder stays, empty as it was
    with pytest.raises(FileNotFoundError, match="UCI dataset 'iris' not found"):
        tiny_table(tmp_path / "kept" / "new", tmp_path / "no-data", datasets=["iris"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and not any((tmp_path / "kept").iterdir())
    if Path("/proc").is_dir():  # Linux: no folder can be made there
        code = cli_main(["reproduce", "uci", "--scale", "cpu", "--out", "/proc/vicinal-test", "--seeds", "1"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert "--out '/proc/vicinal-test' cannot be created or written: No such file or directory" in err


def write_tiny_htru2(root: Path) -> None:
    """A 60-row HTRU_2.csv (8 features and a 0/1 class), a second dataset the table trains after iris."""
    g = np.random.default_rng(1)
    x = g.normal(size=(60, 8))
    y = (x[:, 0] + 0.5 * g.normal(size=60) > 0).astype(int)
    (root / "htru2").mkdir(parents=True)
    (root / "htru2" / "HTRU_2.csv").write_text(
        "".join(",".join(f"{v:.3f}" for v in r) + f",{c}\n" for r, c in zip(x, y, strict=True))
    )


TINY = UCIProtocol(epochs=2, hidden=8, alphas=(0.2, 1.0))
NAMES = ["iris", "htru2"]
TRAIN_VMAPPED = uci_task.train_vmapped  # the real one, which count_training wraps however often it is called


@pytest.fixture(scope="module")
def uci_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("uci-data")
    write_tiny_iris(root)
    write_tiny_htru2(root)
    return root


def tiny_table(out: Path, data: Path, **changes: Any) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"seeds": 2, "datasets": NAMES, "protocol": TINY, "verbose": False} | changes
    return run_uci_table(out, data_root=data, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, uci_data: Path) -> Path:
    """The table trained in one go: what an interrupted and resumed run must write."""
    out = tmp_path_factory.mktemp("uci") / "whole"
    tiny_table(out, uci_data)
    return out


def reproduce_tiny_table(monkeypatch: pytest.MonkeyPatch, out: Path, data: Path, *options: str) -> list[str]:
    """The argv of `vicinal reproduce uci` for the tiny table into ``out``, ``options`` added (the command trains
    all six datasets from the data folder: here made the two tiny ones)."""
    monkeypatch.setattr(uci_task, "run_uci_table", functools.partial(run_uci_table, datasets=NAMES, data_root=data))
    argv = ["reproduce", "uci", "--scale", "cpu", "--out", str(out), "--seeds", "2", *options]
    return [*argv, "--set", "epochs=2", "hidden=8", "alphas=[0.2, 1]"]


def count_training(monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> list[int]:
    """Count the datasets trained (calls of train_vmapped); the ``stop_at``-th raises KeyboardInterrupt (a Ctrl-C)."""
    return count_calls(monkeypatch, uci_task, "train_vmapped", TRAIN_VMAPPED, stop_at)


# files whose bytes hold training times (every other file of the table is deterministic on the CPU)
TIMED_KEYS = {"metrics.jsonl": "epoch_time_s", "summary.json": "train_time_s", "record.json": "seconds"}


def assert_same_outputs(out: Path, expected: Path) -> None:
    """``out`` holds the files ``expected`` holds, equal byte for byte but for the training times (and the
    provenance, which is the process's)."""
    files = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
    # summary.{md,csv,json} and provenance.json; per dataset 6 files and 3 alphas x 2 seeds member folders of 4 files
    assert len(files) == 4 + 2 * (6 + 3 * 2 * 4)
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files
    for rel in files:
        got, want = out / rel, expected / rel
        # the times are in the member folders' files (<dataset>/<tag>/seed<s>/...) and the records
        key = TIMED_KEYS.get(rel.name) if len(rel.parts) > 2 or rel.name == "record.json" else None
        if rel.name == "provenance.json":
            continue
        if key is None:
            assert got.read_bytes() == want.read_bytes(), rel
        elif rel.suffix == ".jsonl":
            strip = [{k: v for k, v in r.items() if k != key} for r in read_metrics(want.parent)]
            assert [{k: v for k, v in r.items() if k != key} for r in read_metrics(got.parent)] == strip, rel
        else:
            drop = {key, "session"}
            g, w = json.loads(got.read_text()), json.loads(want.read_text())
            assert {k: v for k, v in g.items() if k not in drop} == {k: v for k, v in w.items() if k not in drop}, rel


@pytest.mark.parametrize("recorded", [0, 1])
@pytest.mark.parametrize("where", ["training", "writing"])
def test_an_interrupted_table_resumes_and_writes_what_an_uninterrupted_run_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path, recorded: int, where: str
) -> None:
    out = tmp_path / "t"
    if where == "training":  # a Ctrl-C while dataset recorded + 1 trains: its folder is not written
        count_training(monkeypatch, stop_at=recorded + 1)
    else:  # while its member folders are written: its folder holds a part of them, and no record
        write_member_runs = uci_task._write_member_runs
        written: list[str] = []

        def interrupted(folder: Path, *args: Any, **kwargs: Any) -> None:
            written.append(folder.name)
            write_member_runs(folder, *args, **kwargs)
            if len(written) == recorded + 1:
                shutil.rmtree(folder / "mixup_a1")
                raise KeyboardInterrupt

        monkeypatch.setattr(uci_task, "_write_member_runs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny_table(out, uci_data)
    assert [(out / n / "record.json").is_file() for n in NAMES] == [i < recorded for i in range(2)]
    assert not (out / "summary.md").exists() and "finished" not in read_provenance(out)
    first = read_provenance(out)
    kept = {p: p.read_bytes() for p in out.glob(f"{NAMES[0]}/**/*") if p.is_file()} if recorded else {}

    monkeypatch.undo()
    calls = count_training(monkeypatch)
    rows = tiny_table(out, uci_data)
    assert calls == list(range(1, 3 - recorded))  # only the datasets not recorded were trained
    assert_same_outputs(out, uninterrupted)
    assert rows == json.loads((uninterrupted / "summary.json").read_text())["rows"]
    assert {p: p.read_bytes() for p in kept} == kept  # a recorded dataset's folder is not written again
    prov = read_provenance(out)
    assert {k: prov[k] for k in ("time", "argv", "seeds")} == {k: first[k] for k in ("time", "argv", "seeds")}
    assert [r["datasets_recorded"] for r in prov["resumes"]] == [NAMES[:recorded]]
    assert [(d["dataset"], d["session"]) for d in prov["dataset_seconds"]] == [
        (n, 0 if i < recorded else 1) for i, n in enumerate(NAMES)
    ]
    assert prov["wall_s"]["total"] >= sum(d["seconds"] for d in prov["dataset_seconds"] if d["session"] == 0)
    assert "finished" in prov and prov["datasets"] == NAMES


def test_a_finished_table_rerun_trains_nothing_and_rewrites_the_same_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path
) -> None:
    out = tmp_path / "done"
    shutil.copytree(uninterrupted, out)
    prov = (out / "provenance.json").read_bytes()
    (out / "summary.md").unlink()  # outputs lost or changed since: rewritten from the records
    (out / "summary.csv").write_text("edited")
    calls = count_training(monkeypatch)
    rows = tiny_table(out, uci_data, seeds=[0, 1])  # the seeds as a list: the same seeds, spelled otherwise
    assert calls == []
    assert_same_outputs(out, uninterrupted)
    assert rows == json.loads((uninterrupted / "summary.json").read_text())["rows"]
    assert (out / "provenance.json").read_bytes() == prov  # nothing trained: the provenance stays as it was
    for name in NAMES:  # the datasets' own provenance too: still the first process's
        assert (out / name / "provenance.json").read_bytes() == (uninterrupted / name / "provenance.json").read_bytes()
    # the same datasets named in another order: still finished (no resume recorded), rows in the order asked for
    rows = tiny_table(out, uci_data, datasets=NAMES[::-1])
    assert calls == [] and (out / "provenance.json").read_bytes() == prov
    assert [r["dataset"] for r in rows] == NAMES[::-1]


@pytest.mark.parametrize("lost", ["mixup_a1/seed1", "members.csv", "summary.json", "erm/seed0/summary.json"])
def test_a_recorded_dataset_whose_files_were_lost_is_trained_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uci_data: Path,
    uninterrupted: Path,
    lost: str,
) -> None:
    out = tmp_path / "lost"
    shutil.copytree(uninterrupted, out)
    gone = out / "iris" / lost
    shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    calls = count_training(monkeypatch)
    tiny_table(out, uci_data, verbose=True)
    assert calls == [1]  # iris only: htru2's folder is complete
    what = gone.parent if lost.endswith("seed0/summary.json") else gone  # a member folder without its summary
    assert capsys.readouterr().err.splitlines()[:2] == [
        f"[uci] '{what}' is missing or unfinished: iris is trained again",
        f"[uci] '{out}': 1 of 2 datasets recorded; training the rest",
    ]
    assert_same_outputs(out, uninterrupted)


def test_a_dataset_folder_interrupted_at_its_start_is_trained_again_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path
) -> None:
    out = tmp_path / "t"
    write_provenance = runs.write_provenance

    def ctrl_c_at_iris(folder: Path, prov: dict[str, Any]) -> Path:
        if folder == out / "iris":  # just after iris/protocol.json: the folder holds it and nothing else
            raise KeyboardInterrupt
        return write_provenance(folder, prov)

    monkeypatch.setattr(runs, "write_provenance", ctrl_c_at_iris)
    with pytest.raises(KeyboardInterrupt):
        tiny_table(out, uci_data)
    monkeypatch.setattr(runs, "write_provenance", write_provenance)
    assert sorted(p.name for p in (out / "iris").iterdir()) == ["protocol.json"]
    calls = count_training(monkeypatch)
    tiny_table(out, uci_data)
    assert calls == [1, 2]
    assert_same_outputs(out, uninterrupted)
    # the temporary files of writes killed there (and a protocol.json of another protocol: nothing was trained
    # by it) do not make it a folder to refuse either
    folder = tmp_path / "killed" / "iris"
    folder.mkdir(parents=True)
    (folder / "protocol.json").write_text('{"protocol": {"epochs": 9}}')
    (folder / ".provenance.json.host~1~abc.tmp").write_text('{"se')
    uci_task._check_reusable(folder, TINY, [0, 1])
    # anything else there is refused, naming the folder to delete (the other datasets' records are kept)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(
        TaskError,
        match=re.escape(
            f"'{folder}' is not empty and holds no complete UCI run (protocol.json, provenance.json); delete "
            f"'{folder}' (its dataset is then trained again; the recorded datasets are kept)"
        ),
    ):
        uci_task._check_reusable(folder, TINY, [0, 1])


def test_reproduce_uci_dry_run_checks_the_folder_as_the_run_does_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uci_data: Path,
    uninterrupted: Path,
) -> None:
    out = tmp_path / "cli"
    argv = reproduce_tiny_table(monkeypatch, out, uci_data, "--dry-run")
    calls = count_training(monkeypatch)
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.endswith(f"dry run: '{out}': 0 of 2 datasets recorded; would train the other 2\n")
    assert not out.exists()
    shutil.copytree(uninterrupted, out)
    (out / "iris" / "members.csv").unlink()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.endswith(
        f"[uci] '{out / 'iris' / 'members.csv'}' is missing or unfinished: iris is trained again\n"
        f"dry run: '{out}': 1 of 2 datasets recorded; would train the other 1\n"
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    shutil.copy(uninterrupted / "iris" / "members.csv", out / "iris")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.endswith(
        f"dry run: '{out}': 2 of 2 datasets recorded; would train nothing (the outputs would be rewritten)\n"
    )
    # refused as the run would refuse it, the refusal the only line (no banner on stdout before it)
    assert cli_main([*argv, "epochs=3"]) == 2
    said = capsys.readouterr()
    assert said.out == "" and "holds a UCI run of another protocol or seeds (epochs 2 (now 3))" in said.err
    assert calls == [] and {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_table_killed_while_writing_its_summary_says_nothing_is_left_to_train(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uci_data: Path,
    uninterrupted: Path,
) -> None:
    out = tmp_path / "t"
    shutil.copytree(uninterrupted, out)
    prov = read_provenance(out)
    del prov["finished"]  # as a kill between the records and the end leaves it
    runs.write_provenance(out, prov)
    (out / "summary.md").unlink()
    calls = count_training(monkeypatch)
    tiny_table(out, uci_data, verbose=True)
    assert calls == []
    assert capsys.readouterr().err.splitlines()[0] == f"[uci] '{out}': 2 of 2 datasets recorded; nothing to train"
    assert_same_outputs(out, uninterrupted)


def test_a_rerun_removes_the_temporary_files_of_writes_killed_in_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path
) -> None:
    out = tmp_path / "t"
    shutil.copytree(uninterrupted, out)
    names = ["summary.md", "summary.csv", "summary.json", "provenance.json"]
    names += [f"iris/{f}" for f in (*uci_task.DATASET_FILES, "record.json")]
    names += [f"htru2/mixup_a0.2/seed1/{f}" for f in ("config.yaml", "provenance.json", "metrics.jsonl")]
    planted = plant_killed_writes(out, names)
    calls = count_training(monkeypatch)
    tiny_table(out, uci_data)
    assert calls == [] and [p for p in planted if p.exists()] == []
    assert_same_outputs(out, uninterrupted)


def test_a_corrupt_provenance_of_the_table_or_a_dataset_is_named_with_what_to_delete(
    tmp_path: Path, uci_data: Path, uninterrupted: Path
) -> None:
    out = tmp_path / "t"
    shutil.copytree(uninterrupted, out)
    (out / "provenance.json").write_text('{"time')
    error = "is not valid JSON (Unterminated string starting at at line 1 column 2); delete "
    with pytest.raises(
        RunError,
        match="^"
        + re.escape(
            f"'{out / 'provenance.json'}' {error}it (the provenance of the earlier processes is then lost; the "
            "recorded datasets are kept)"
        )
        + "$",
    ):
        tiny_table(out, uci_data)
    shutil.copy(uninterrupted / "provenance.json", out)
    (out / "iris" / "provenance.json").write_text('{"time')
    with pytest.raises(
        RunError,
        match="^"
        + re.escape(
            f"'{out / 'iris' / 'provenance.json'}' {error}'{out / 'iris'}' (its dataset is then trained again; the "
            "recorded datasets are kept)"
        )
        + "$",
    ):
        tiny_table(out, uci_data)


def test_datasets_named_apart_join_one_table_only_with_its_protocol_and_all_its_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path
) -> None:
    out = tmp_path / "t"
    tiny_table(out, uci_data, datasets=["iris"])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = count_training(monkeypatch)
    other = UCIProtocol(epochs=3, hidden=8, alphas=(0.2, 1.0))
    for dry_run in (True, False):
        with pytest.raises(
            TaskError,
            match="^"
            + re.escape(
                f"'{out}' holds a UCI table of another protocol or seeds (epochs 2 (now 3)); its datasets would be "
                "reported beside this run's: choose a new --out"
            )
            + "$",
        ):
            tiny_table(out, uci_data, datasets=["htru2"], protocol=other, dry_run=dry_run)
        with pytest.raises(TaskError, match=re.escape(f"'{out}' holds a UCI table of another protocol or seeds (")):
            tiny_table(out, uci_data, datasets=["htru2"], seeds=3, dry_run=dry_run)
        # the same protocol: the summary would lose iris, whose folder stays
        with pytest.raises(
            TaskError,
            match="^"
            + re.escape(
                f"'{out}' holds a UCI table of the datasets iris; this run would rewrite its summary without iris: "
                "name them too (a recorded dataset is not trained again) or choose a new --out"
            )
            + "$",
        ):
            tiny_table(out, uci_data, datasets=["htru2"], dry_run=dry_run)
    assert calls == [] and {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    tiny_table(out, uci_data)  # iris and htru2: htru2 is trained, the table is the whole one
    assert calls == [1]
    assert_same_outputs(out, uninterrupted)
    assert read_provenance(out)["datasets"] == NAMES


def test_a_rerun_of_an_interrupted_table_with_another_protocol_is_refused_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path
) -> None:
    out = tmp_path / "t"
    count_training(monkeypatch, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        tiny_table(out, uci_data)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert out / "iris" / "record.json" in before
    tail = "; its member folders would mix with this run's: choose a new --out (or delete the folder)"
    for change, differs in (
        ({"protocol": UCIProtocol(epochs=3, hidden=8, alphas=(0.2, 1.0))}, "epochs 2 (now 3)"),
        ({"alphas": [1.0]}, "alphas [0.2, 1.0] (now [1.0])"),
        ({"seeds": 3}, "seeds [0, 1] (now [0, 1, 2])"),
    ):
        with pytest.raises(
            TaskError,
            match="^"
            + re.escape(f"'{out / 'iris'}' holds a UCI run of another protocol or seeds ({differs})" + tail)
            + "$",
        ):
            tiny_table(out, uci_data, **change)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # a record that is not this dataset's (here: of other seeds, hand-edited) is named, not trusted
    record = out / "iris" / "record.json"
    record.write_text(record.read_text().replace('"seeds": [\n    0,', '"seeds": [\n    5,', 1))
    with pytest.raises(
        TaskError, match=re.escape(f"'{record}' is not the record of UCI dataset 'iris' with this protocol and seeds")
    ):
        tiny_table(out, uci_data)
    record.write_bytes(before[record])
    calls = count_training(monkeypatch)
    tiny_table(out, uci_data)  # the protocol it started with: continued
    assert calls == [1]
    assert_same_outputs(out, uninterrupted)


def test_a_table_of_an_earlier_lab_version_is_trained_again_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path, uninterrupted: Path
) -> None:
    # as earlier versions wrote it: no record.json, a provenance.json without resumes
    out = tmp_path / "old"
    shutil.copytree(uninterrupted, out)
    for name in NAMES:
        (out / name / "record.json").unlink()
    prov = read_provenance(out)
    for key in ("resumes", "dataset_seconds", "finished"):
        del prov[key]
    (out / "provenance.json").write_text(json.dumps(prov))
    calls = count_training(monkeypatch)
    tiny_table(out, uci_data)
    assert calls == [1, 2]  # nothing recorded to reuse: trained again (the same numbers: training is seeded)
    assert_same_outputs(out, uninterrupted)
    assert read_provenance(out)["resumes"] == []


def test_reproduce_uci_continues_an_interrupted_table(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uci_data: Path,
    uninterrupted: Path,
) -> None:
    argv = reproduce_tiny_table(monkeypatch, tmp_path / "cli", uci_data)
    calls = count_training(monkeypatch, stop_at=2)
    assert cli_main(argv) == 130  # a Ctrl-C in the second dataset
    assert capsys.readouterr().err.endswith(
        f"vicinal: interrupted; what finished is recorded in '{tmp_path / 'cli'}': rerun the same command to continue\n"
    )
    calls = count_training(monkeypatch)
    assert cli_main(argv) == 0
    assert calls == [1]
    assert "1 of 2 datasets recorded; training the rest" in capsys.readouterr().err
    assert_same_outputs(tmp_path / "cli", uninterrupted)
    assert cli_main([*argv, "epochs=3"]) == 2
    said = capsys.readouterr()
    assert said.out == "" and "holds a UCI run of another protocol or seeds (epochs 2 (now 3))" in said.err


def test_a_table_stopped_before_any_dataset_got_past_its_start_is_taken_as_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uci_data: Path
) -> None:
    # a Ctrl-C in the first dataset's training (or a wrong --data) leaves provenance.json and a started folder:
    # a table of nothing, so a rerun with other settings or fewer datasets is not refused
    out = tmp_path / "t"
    count_training(monkeypatch, stop_at=1)
    with pytest.raises(KeyboardInterrupt):
        tiny_table(out, uci_data)
    assert read_provenance(out)["datasets"] == NAMES and not list(out.rglob("record.json"))
    calls = count_training(monkeypatch)
    other = UCIProtocol(epochs=3, hidden=8, alphas=(0.2, 1.0))
    tiny_table(out, uci_data, datasets=[NAMES[0]], protocol=other)
    assert calls == [1]
    prov = read_provenance(out)
    assert prov["datasets"] == [NAMES[0]] and prov["protocol"]["epochs"] == 3 and prov["resumes"] == []


def test_missing_data_is_refused_before_the_banner_and_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a wrong --data once printed the banner, then the error, and left provenance.json in --out
    out, empty = tmp_path / "cli", tmp_path / "empty"
    empty.mkdir()
    assert cli_main(reproduce_tiny_table(monkeypatch, out, empty)) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert said.err == f"vicinal: error: UCI dataset 'iris' not found: folder {empty / 'iris'} does not exist " \
        "(pass root= or set VICINAL_DATA)\n"  # fmt: skip
    assert not out.exists()


def test_seeds_and_alphas_of_a_python_call_are_read_as_written(tmp_path: Path) -> None:
    # seeds="10" was read digit by digit (a table of seeds 1 and 0), a numpy count or a lone alpha a bare TypeError
    out = tmp_path / "t"
    bad = [
        ({"seeds": "10"}, TypeError, r"^seeds must be an int or a sequence of ints, got str '10'$"),
        ({"seeds": 3.0}, TypeError, r"^seeds must be an int or a sequence of ints, got float 3.0$"),
        ({"seeds": [0, "1"]}, TypeError, r"^seeds must be ints, got str '1'$"),
        ({"seeds": [1, 1]}, TaskError, r"^seeds must be distinct ints in \[0, 2\*\*64\), got \[1, 1\]$"),
        ({"seeds": [-1, 0]}, TaskError, r"^seeds must be distinct ints in \[0, 2\*\*64\), got \[-1, 0\]$"),
        ({"seeds": range(10_001)}, TaskError, r"^seeds must hold 1 to 10000 seeds, got 10001$"),
        ({"seeds": 0}, TaskError, r"^seeds must be in \[1, 10000\], got 0$"),
        ({"alphas": 0.5}, TaskError, r"^alphas must be a non-empty sequence of positive floats, got 0.5$"),
        ({"alphas": "0.5"}, TaskError, r"^alphas must be a non-empty sequence of positive floats, got '0.5'$"),
    ]
    for kwargs, error, msg in bad:
        with pytest.raises(error, match=msg):
            run_uci_table(out, datasets=["iris"], dry_run=True, **kwargs)
    assert not out.exists()
    run_uci_table(out, datasets="iris", seeds=np.int64(2), alphas=np.array([0.5]), dry_run=True)
    run_uci_table(out, datasets="iris", seeds=np.array(2), dry_run=True)  # a 0-d array: its one value
    assert not out.exists()
    # the GAN table keeps the negative seeds its seed derivation takes
    from vicinal.experiments.tasks.gan import run_gan_table

    run_gan_table(tmp_path / "g", "cpu", seeds=[-1, 0], dry_run=True, log=None)


def test_a_device_this_machine_lacks_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    # the module command printed torch's traceback ("Expected one of cpu, cuda, ..."), from Python too
    from vicinal.experiments.attacks import attack_run
    from vicinal.experiments.tasks.gan import run_gan_table

    for device, msg in (("gpu", r"^device must be one of cpu, cuda, cuda:N, mps, got 'gpu'$"), ("cuda:99", "cuda:99")):
        for call in (
            lambda d=device: run_uci_table(tmp_path / "u", datasets=["iris"], device=d),
            lambda d=device: run_gan_table(tmp_path / "g", "cpu", seeds=1, device=d, log=None),
            lambda d=device: attack_run(tmp_path / "run", device=d),
        ):
            with pytest.raises(RunError, match=msg):
                call()
    assert not list(tmp_path.iterdir())


def test_a_bad_chunk_size_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"^chunk_size must be a positive int, got 0$"):
        run_uci_table(tmp_path / "t", datasets=["iris"], seeds=1, chunk_size=0)
    assert not (tmp_path / "t").exists()  # provenance.json had been written first
