"""The report on synthetic run folders: grouping, mean ± std with n, the paper column, CSV, PNG, errors."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import vicinal.experiments.report.report as report_module
from tests.experiments.lab_helpers import break_writer, spy_atomic_writes
from vicinal.experiments.config import ExperimentConfig, apply_overrides, config_to_dict, load_config
from vicinal.experiments.paths import configs_dir
from vicinal.experiments.report import ReportError, find_runs, make_report, mean_std, paper_number, paper_sources
from vicinal.experiments.report.report import (
    CONFIG_DIFFERS_NOTE,
    NO_SHIPPED_CONFIG,
    config_differences,
    shipped_differences,
)
from vicinal.experiments.runs import write_config, write_provenance, write_summary
from vicinal.experiments.tasks import TABLES, Table, load_tables
from vicinal.experiments.trainer import summarize


def make_run(
    root: Path,
    name: str,
    row: str,
    seed: int,
    errors: list[float],
    status: str = "complete",
    epochs: int = 0,
    overrides: Sequence[str] = (),
    provenance: dict[str, Any] | None = None,
) -> Path:
    """A run folder as the trainer writes it, with the given per-epoch test errors. A cifar ``row`` that ships a cpu
    config starts from that config (so the paper column is not marked), of ``epochs`` when given; any other run from
    the default config (table cifar when it has a row) of ``epochs`` (default: all the errors). ``overrides`` are
    applied last; ``provenance`` is written when given."""
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    shipped = configs_dir() / "cifar" / "cpu" / f"{row.replace('/', '-')}.yaml"
    if row and shipped.is_file():
        head = [f"name={name}", f"train.seed={seed}"] + ([f"train.epochs={epochs}"] if epochs else [])
        cfg = apply_overrides(load_config(shipped), [*head, *overrides])
    else:
        table = "table=cifar" if row else "table=''"
        head = [f"name={name}", table, f"row='{row}'", f"train.seed={seed}", f"train.epochs={epochs or len(errors)}"]
        cfg = apply_overrides(ExperimentConfig(), [*head, *overrides])
    if provenance is not None:
        write_provenance(run, provenance)
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    records = [
        {
            "epoch": i + 1,
            "test_error": e,
            "test_nll": e / 10,
            "test_ece": 1.0,
            "train_loss": 1.0,
            "train_error": 5.0,
            "epoch_time_s": 1.5,
        }
        for i, e in enumerate(errors)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "summary.json").write_text(json.dumps(summarize(records, status, {"name": name, "seed": seed})))
    return run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, last in enumerate([10.0, 12.0, 14.0]):
        make_run(root, "c10-erm", "cifar10/preact_resnet18/erm", seed, [30.0, 20.0, last])
    for seed, last in enumerate([9.0, 9.5, 10.0]):
        make_run(root, "c10-mixup", "cifar10/preact_resnet18/mixup", seed, [25.0, 8.0, last])
    make_run(root, "other", "", 7, [50.0, 40.0], status="interrupted")
    return root


@pytest.fixture(autouse=True)
def _tables() -> None:
    """Every table registered, as `vicinal report` has them: the paper column and the sections come from them."""
    load_tables()


def test_mean_std() -> None:
    assert mean_std([10.0, 12.0, 14.0]) == (12.0, 2.0, 3)
    m, s, n = mean_std([3.0])
    assert (m, n) == (3.0, 1) and s != s  # nan for n = 1
    m, s, n = mean_std([None, float("nan")])
    assert n == 0


def test_report_tables(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = make_report([runs], out)
    md = (out / "report.md").read_text()
    assert md == result["markdown"]
    main_table = md.split("## Paired differences")[0]
    lines = {
        line.split(" | ")[0].strip("| "): line
        for line in main_table.splitlines()
        if line.startswith("| c10") or line.startswith("| other")
    }
    # last / median-of-last-10 / best, mean ± sample std over 3 seeds, then the paper's number
    assert lines["c10-erm"] == (
        "| c10-erm | 3 (0 1 2) | 3/3 | 12.00 ± 2.00 | 20.00 ± 0.00 | 12.00 ± 2.00 | 1.200 ± 0.200 | 1.00 ± 0.00 | 5.6 |"
    )
    assert lines["c10-mixup"].startswith("| c10-mixup | 3 (0 1 2) | 3/3 | 9.50 ± 0.50 | 9.50 ± 0.50 | 8.00 ± 0.00 |")
    assert lines["c10-mixup"].endswith("| 4.2 |")
    assert lines["other"] == "| other | 1 (7) | 0/1 | 40.00 | 45.00 | 40.00 | 4.000 | 1.00 | - |"
    assert (
        "Paper column (cifar): Zhang et al." in md and "mean ± sample standard deviation over the finished runs" in md
    )
    # the best epoch is selected on the test split: labelled as such in the header and explained once
    assert "| median of last 10 epochs (%) | best epoch, picked on test (%) |" in main_table
    assert md.count("an oracle, as the paper's 'best' column of Table 2") == 1

    with (out / "report.csv").open() as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert float(rows["c10-erm"]["last_test_error_mean"]) == 12.0
    assert float(rows["c10-erm"]["last_test_error_std"]) == 2.0
    assert rows["c10-erm"]["n"] == "3" and rows["c10-erm"]["paper"] == "5.6"
    assert rows["other"]["last_test_error_std"] == "" and rows["other"]["paper"] == ""
    with (out / "runs.csv").open() as f:
        listed = list(csv.DictReader(f))
    assert len(listed) == 7
    # paths relative to the report folder: a committed report names no machine's layout
    assert sorted(r["path"] for r in listed)[0] == "../runs/c10-erm/seed0"
    assert all(not Path(r["path"]).is_absolute() for r in listed)
    # mixup minus ERM, seed by seed (last epoch: 9-10, 9.5-12, 10-14): mean -2.5, sample std 1.5, 95% t interval
    # -2.5 -/+ t(0.975, 2) * 1.5 / sqrt(3) = -2.5 -/+ 3.726; t = -2.887 on 2 df -> p = 0.102; sign-flip 2/8 = 0.25;
    # median of the last 10: -11, -10.5, -10 -> t = -10.5 / (0.5 / sqrt(3)) = -36.4 -> p = 0.000755
    paired_lines = [line for line in md.split("## Paired differences")[1].splitlines() if line.startswith("| c10")]
    assert paired_lines == [
        "| c10-mixup | c10-erm | median of last 10 | -10.50 [-11.74, -9.26] (n=3, t-test p=0.000755, sign-flip "
        "p=0.25, 3/3 seeds lower) | 0: -11.00, 1: -10.50, 2: -10.00 |",
        "| c10-mixup | c10-erm | last epoch | -2.50 [-6.23, +1.23] (n=3, t-test p=0.102, sign-flip p=0.25, 3/3 "
        "seeds lower) | 0: -1.00, 1: -2.50, 2: -4.00 |",
    ]
    png = (out / "test_error.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_runs_may_be_listed_one_by_one(runs: Path, tmp_path: Path) -> None:
    one = sorted((runs / "c10-erm").iterdir())[:2]
    result = make_report(one, tmp_path / "r")
    assert [g["n"] for g in result["groups"]] == [2]
    assert find_runs([runs, one[0]]) == sorted({p.parent.resolve() for p in runs.rglob("config.yaml")})
    # one folder, as a str or a Path, is one path: a str was iterated letter by letter, and the '/' of an absolute
    # one had the report search the whole disk for run folders
    whole = make_report(str(runs), tmp_path / "r2")
    assert make_report(runs, tmp_path / "r3")["markdown"] == whole["markdown"]
    assert sum(g["n"] for g in whole["groups"]) == len(find_runs(runs)) == len(list(runs.rglob("config.yaml")))
    with pytest.raises(TypeError, match=r"^paths must be paths \(str or Path\), got int 3$"):
        find_runs([runs, 3])
    with pytest.raises(TypeError, match=r"^paths must be a path or a list of paths, got NoneType$"):
        make_report(None, tmp_path / "r4")
    # no paths wrote an empty report; sections matched a str by substring and ignored an unknown name
    with pytest.raises(ReportError, match=r"^make_report needs run folders \(or folders holding them\), got none$"):
        make_report([], tmp_path / "r5")
    with pytest.raises(ReportError, match=r"^unknown table 'nonsense' in sections; known: "):
        make_report(runs, tmp_path / "r6", sections=["nonsense"])
    with pytest.raises(ReportError, match=r"^unknown table 'uci gan' in sections; known: "):
        make_report(runs, tmp_path / "r6", sections="uci gan")
    assert not (tmp_path / "r5").exists() and not (tmp_path / "r6").exists()


def test_paper_numbers_match_experiments_md() -> None:
    # The paper column is transcribed from paper/EXPERIMENTS.md 3.2 (Figure 3a); spot-check all twelve.
    assert TABLES["cifar"].paper == {
        "cifar10/preact_resnet18/erm": 5.6, "cifar10/preact_resnet18/mixup": 4.2,
        "cifar10/wrn28_10/erm": 3.8, "cifar10/wrn28_10/mixup": 2.7,
        "cifar10/densenet_bc190/erm": 3.7, "cifar10/densenet_bc190/mixup": 2.7,
        "cifar100/preact_resnet18/erm": 25.6, "cifar100/preact_resnet18/mixup": 21.1,
        "cifar100/wrn28_10/erm": 19.4, "cifar100/wrn28_10/mixup": 17.5,
        "cifar100/densenet_bc190/erm": 19.0, "cifar100/densenet_bc190/mixup": 16.8,
    }  # fmt: skip


def test_every_table_with_published_rows_has_a_paper_column_and_its_source() -> None:
    """The tables own their published numbers: each row number reaches the report, with its source."""
    published = {name for name, t in TABLES.items() if t.paper}
    assert {"cifar", "corrupted-labels", "speech", "imagenet", "ablation"} <= published
    assert paper_number("speech", "vgg11/mixup0.2") == 3.4  # Table 4 left: test error (validation 3.9)
    assert paper_number("imagenet", "resnet101/90/mixup") == 21.5  # Table 1: top-1 (top-5 5.6)
    assert paper_number("corrupted-labels", "50/mixup_a32") == 12.7  # Table 2: last-epoch test error
    assert paper_number("ablation", "erm/wd5e-4") == 5.18 and paper_number("cifar", "no/such/row") is None
    assert paper_number("no-such-table", "x") is None
    sources = paper_sources(["speech", "adversarial", "cifar", "imagenet", "speech"])
    assert list(sources) == ["cifar", "imagenet", "speech"]  # sorted; adversarial publishes no row numbers
    assert all(sources.values()) and "Table 4 (left)" in sources["speech"] and "Table 1" in sources["imagenet"]


def test_a_speech_report_shows_the_papers_test_error(tmp_path: Path) -> None:
    for seed in (0, 1):
        run = tmp_path / "runs" / "speech-vgg11-mixup0.2-cpu" / f"seed{seed}"
        write_config(run, load_config("speech/cpu/speech-vgg11-mixup0.2", [f"train.seed={seed}"]))
        write_summary(run, {"status": "complete", "last_test_error": 4.0 + seed, "epochs_completed": 30})
    md = make_report([tmp_path / "runs"], tmp_path / "report")["markdown"]
    assert re.search(r"\| speech-vgg11-mixup0\.2-cpu \| 2 \(0 1\) \| 2/2 \| 4\.50 ± 0\.71 \| .* \| 3\.4 \|", md)
    assert "Paper column (speech): Zhang et al., mixup, ICLR 2018, Table 4 (left)" in md


def test_errors(tmp_path: Path, runs: Path) -> None:
    with pytest.raises(ReportError, match=r"'.*missing' does not exist"):
        make_report([tmp_path / "missing"], tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"'.*empty' holds no run folders \(no config.yaml below it\)"):
        make_report([tmp_path / "empty"], tmp_path / "o")
    bad = runs / "c10-erm" / "seed0" / "metrics.jsonl"
    bad.write_text('{"epoch": 1}\n{not json\n')
    with pytest.raises(ReportError, match=r"'.*metrics.jsonl' line 2 is not valid JSON"):
        make_report([runs], tmp_path / "o")


def test_the_report_files_are_written_atomically(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = spy_atomic_writes(monkeypatch)
    files = make_report([runs], tmp_path / "rep")["files"]
    assert {"report.md", "report.csv", "runs.csv", "test_error.png"} <= {p.name for p in written}
    with (tmp_path / "rep" / "runs.csv").open(newline="") as f:  # still what csv.DictWriter wrote
        rows = list(csv.DictReader(f))
    assert rows and rows[0]["path"].startswith("../") and {r["seed"] for r in rows} >= {"0", "1"}
    assert (tmp_path / "rep" / "runs.csv").read_bytes().count(b"\r\n") == len(rows) + 1
    assert not list((tmp_path / "rep").glob(".*.tmp")) and all(p.is_file() for p in files)


def test_a_plot_that_fails_half_way_leaves_the_previous_one(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matplotlib_figure = pytest.importorskip("matplotlib.figure")
    out = tmp_path / "rep"
    make_report([runs], out)
    before = (out / "test_error.png").read_bytes()
    break_writer(monkeypatch, matplotlib_figure.Figure, "savefig", 1)
    with pytest.raises(OSError, match="^disk full$"):
        make_report([runs], out)
    assert (out / "test_error.png").read_bytes() == before  # not the torn b"partial"
    assert not list(out.glob(".*.tmp"))


def test_unfinished_runs_are_not_averaged_with_finished_ones(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    make_run(root, "c10-erm", "cifar10/preact_resnet18/erm", 0, [30.0, 10.0])
    make_run(root, "c10-erm", "cifar10/preact_resnet18/erm", 1, [50.0], status="interrupted")  # still training
    md = make_report([root], tmp_path / "report")["markdown"]
    line = next(x for x in md.splitlines() if x.startswith("| c10-erm |"))
    # n counts the finished run only; 'done' says 1 of the 2 runs found finished; the mean is the finished run's
    assert line.startswith("| c10-erm | 1 (0) | 1/2 | 10.00 | 20.00 | 10.00 |"), line


def test_validation_column_appears_only_when_runs_measured_it(runs: Path, tmp_path: Path) -> None:
    assert "validation error" not in make_report([runs], tmp_path / "r1")["markdown"]
    for seed, val in enumerate([3.0, 5.0]):
        run = make_run(runs, "speechlike", "", seed, [20.0, 10.0])
        summary = json.loads((run / "summary.json").read_text())
        write_summary(run, {**summary, "last_val_error": val})
    report = make_report([runs], tmp_path / "r2")
    header = report["markdown"].splitlines()[2]
    assert "| validation error, last epoch (%) |" in header
    row = next(line for line in report["markdown"].splitlines() if line.startswith("| speechlike |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[header.strip("|").split("|").index(" validation error, last epoch (%) ")] == "4.00 ± 1.41"
    assert {g["name"]: g["last_val_error_n"] for g in report["groups"]}["speechlike"] == 2


def test_runs_of_one_name_must_share_their_recipe_and_differ_in_seed(tmp_path: Path) -> None:
    """A 2-epoch and a 3-epoch run named alike were once averaged as two seeds of one row, silently."""
    a = make_run(tmp_path / "a", "c10-erm", "cifar10/preact_resnet18/erm", 0, [30.0, 20.0], epochs=2)
    b = make_run(tmp_path / "b", "c10-erm", "cifar10/preact_resnet18/erm", 1, [30.0, 20.0, 10.0], epochs=3)
    with pytest.raises(
        ReportError,
        match=rf"runs named 'c10-erm' differ in train.epochs \(2 vs 3\): {re.escape(str(a))} and "
        rf"{re.escape(str(b))}; report them separately",
    ):
        make_report([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    c = make_run(tmp_path / "c", "c10-erm", "cifar10/preact_resnet18/erm", 0, [30.0, 25.0], epochs=2)
    with pytest.raises(
        ReportError, match=rf"two runs named 'c10-erm' at seed 0: {re.escape(str(a))} and {re.escape(str(c))}"
    ):
        make_report([tmp_path / "a", tmp_path / "c"], tmp_path / "out")
    # keys that do not change the result may differ, and a key one run lacks (another version of the lab) is skipped
    d = make_run(tmp_path / "d", "c10-erm", "cifar10/preact_resnet18/erm", 2, [30.0, 10.0], epochs=2)
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["train"]["log_every"], cfg["notes"] = 7, "another note"
    del cfg["train"]["eval_every"]
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    stats = make_report([tmp_path / "a", tmp_path / "d"], tmp_path / "out")["groups"]
    assert [(s["name"], s["n"]) for s in stats] == [("c10-erm", 2)]


def test_seeds_that_differ_only_in_an_option_their_variant_never_reads_pool(tmp_path: Path) -> None:
    # an ERM seed recorded with another alpha (--set 'mix={alpha: A}' before it went row by row) trained alike; the
    # rerun counts it done and trains the next seed without it: the report must pool the two
    make_run(tmp_path / "a", "c10-erm", "cifar10/preact_resnet18/erm", 0, [30.0, 20.0], overrides=["mix.alpha=0.5"])
    make_run(tmp_path / "b", "c10-erm", "cifar10/preact_resnet18/erm", 1, [30.0, 10.0])
    report = make_report([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert [(g["name"], g["n"]) for g in report["groups"]] == [("c10-erm", 2)]
    line = next(x for x in report["markdown"].splitlines() if x.startswith("| c10-erm |"))
    assert "config differs" not in line, line  # trained as shipped: the alpha is no difference from it either
    # an alpha the variant reads is another recipe
    make_run(tmp_path / "c", "c10-mix", "cifar10/preact_resnet18/mixup", 0, [30.0], overrides=["mix.alpha=0.5"])
    make_run(tmp_path / "d", "c10-mix", "cifar10/preact_resnet18/mixup", 1, [30.0])
    with pytest.raises(ReportError, match=r"runs named 'c10-mix' differ in mix.alpha \(0.5 vs 1.0\)"):
        make_report([tmp_path / "c", tmp_path / "d"], tmp_path / "out2")


def _paired_rows(md: str) -> list[list[str]]:
    """The rows of the paired-differences table: ``[method, vs, metric, ...]``."""
    section = md.split("## Paired differences")[1].split("\n## ")[0] if "## Paired differences" in md else ""
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| c")]


ERM, MIXUP = "cifar10/preact_resnet18/erm", "cifar10/preact_resnet18/mixup"
DATA = {"name": "cifar10", "source": "cifar10-jpeg", "root": "/data/cifar10-jpeg", "sizes": {"train": 50000}}


def test_a_method_is_paired_only_with_the_erm_group_of_its_recipe(tmp_path: Path) -> None:
    """A config derived with ``base:`` keeps its parent's table and row: the ERM row once was the last group found
    (here the weight-decay variant, listed after the recipe's own ERM), whatever its recipe or data."""
    root = tmp_path / "runs"
    mixup = ["mix.variant=mixup", "notes='the method'"]
    for seed, (erm, wd, mix) in enumerate([(20.0, 40.0, 18.0), (22.0, 44.0, 19.0)]):
        make_run(root, "c10-erm", ERM, seed, [30.0, erm], provenance={"world_size": 1, "data": DATA})
        make_run(root, "c10-erm-wd5e-4", ERM, seed, [30.0, wd], overrides=["optim.weight_decay=5e-4"])
        make_run(root, "c10-mixup", MIXUP, seed, [30.0, mix], overrides=mixup, provenance={"data": DATA})
    md = make_report([root], tmp_path / "r1")["markdown"]
    assert [r[:3] for r in _paired_rows(md)] == [
        ["c10-mixup", "c10-erm", "median of last 10"],
        ["c10-mixup", "c10-erm", "last epoch"],
    ]
    assert _paired_rows(md)[1][4] == "0: -2.00, 1: -3.00" and "Not paired" not in md

    # two ERM groups of the method's recipe: neither is chosen, the report names both
    for seed in (0, 1):
        make_run(root, "c10-erm-again", ERM, seed, [30.0, 21.0])
    md = make_report([root], tmp_path / "r2")["markdown"]
    assert _paired_rows(md) == []
    assert "- c10-mixup: 2 groups of row 'cifar10/preact_resnet18/erm' ran its recipe: c10-erm, c10-erm-again." in md

    # a mixup run on another data set (a 3-class ImageFolder tree) under the same row: no ERM group is its recipe
    other = tmp_path / "other"
    data3 = {**DATA, "name": "imagefolder_memory", "root": "/tmp/imf", "num_classes": 3}
    make_run(other, "imf-mixup", MIXUP, 0, [30.0, 10.0], overrides=mixup, provenance={"data": data3})
    make_run(other, "c10-erm", ERM, 0, [30.0, 20.0], provenance={"world_size": 1, "data": DATA})
    md = make_report([other], tmp_path / "r3")["markdown"]
    assert _paired_rows(md) == []
    assert (
        "- imf-mixup: no group of row 'cifar10/preact_resnet18/erm' ran its recipe (c10-erm differs in data: "
        "name 'cifar10' -> 'imagefolder_memory')." in md
    )


def test_corrupted_label_rows_with_dropout_are_paired_with_erm(tmp_path: Path) -> None:
    """Table 2's dropout rows differ from ERM in the model's dropout too: their table counts it as the method."""
    root = tmp_path / "runs"
    make_run(root, "c20-erm", "20/erm", 0, [30.0, 20.0], overrides=["table=corrupted-labels"])
    drop = ["table=corrupted-labels", "model.kwargs.dropout=0.5", "mix.variant=mixup"]
    make_run(root, "c20-mixup-dropout", "20/mixup_dropout_a8_p0.5", 0, [30.0, 15.0], overrides=drop)
    wd = ["table=corrupted-labels", "optim.weight_decay=5e-4", "mix.variant=mixup"]
    make_run(root, "c20-mixup-wd", "20/mixup_a8", 0, [30.0, 15.0], overrides=wd)
    md = make_report([root], tmp_path / "r")["markdown"]
    assert [r[:2] for r in _paired_rows(md)] == [["c20-mixup-dropout", "c20-erm"]] * 2
    assert "- c20-mixup-wd: no group of row '20/erm' ran its recipe (c20-erm differs in optim.weight_decay" in md


def test_seeds_that_ran_on_other_data_or_processes_are_not_pooled(tmp_path: Path) -> None:
    """Two seeds of one config, one tested on 10,000 images and one on 200 of another tree, were once one row."""
    root = tmp_path / "runs"
    small = {**DATA, "root": "/tmp/data2/cifar10-jpeg", "sizes": {"train": 50000, "test": 200}}
    make_run(root, "c10-erm", ERM, 0, [30.0, 20.0], provenance={"world_size": 1, "data": DATA})
    make_run(root, "c10-erm", ERM, 1, [30.0, 24.0], provenance={"world_size": 1, "data": small})
    make_run(root, "c10-erm", ERM, 2, [30.0, 22.0])  # no provenance (an older run folder): nothing to compare
    make_run(root, "c10-mixup", MIXUP, 0, [30.0, 18.0], overrides=["mix.variant=mixup"], provenance={"data": DATA})
    result = make_report([root], tmp_path / "r")
    assert [(g["name"], g["seeds"]) for g in result["groups"]] == [
        ("c10-erm [1 of 2]", "0 2"),
        ("c10-erm [2 of 2]", "1"),
        ("c10-mixup", "0"),
    ]
    md = result["markdown"]
    assert (
        "- c10-erm [2 of 2]: differs from c10-erm [1 of 2] in data: "
        "sizes {'train': 50000} -> {'train': 50000, 'test': 200}." in md
    )
    # the method is paired with the part of its data
    assert [r[:2] for r in _paired_rows(md)] == [["c10-mixup", "c10-erm [1 of 2]"]] * 2

    # the same data in another folder, or with new file times (this project's shared data folder gets them every
    # session), is the same data: its seeds pool
    moved = tmp_path / "moved"
    elsewhere = {**DATA, "root": "/mnt/copy/cifar10-jpeg", "fingerprint": "b" * 20}
    make_run(moved, "c10-erm", ERM, 0, [30.0, 20.0], provenance={"data": {**DATA, "fingerprint": "a" * 20}})
    make_run(moved, "c10-erm", ERM, 1, [30.0, 24.0], provenance={"data": elsewhere})
    assert [(g["name"], g["n"]) for g in make_report([moved], tmp_path / "rm")["groups"]] == [("c10-erm", 2)]

    # one process against two (DDP: twice the global batch, half the steps)
    ddp = tmp_path / "ddp"
    make_run(ddp, "c10-erm", ERM, 0, [30.0, 20.0], provenance={"world_size": 2})
    make_run(ddp, "c10-erm", ERM, 1, [30.0, 24.0], provenance={"world_size": 1})
    result = make_report([ddp], tmp_path / "r2")
    assert [(g["name"], g["n"]) for g in result["groups"]] == [("c10-erm [1 of 2]", 1), ("c10-erm [2 of 2]", 1)]
    assert "- c10-erm [2 of 2]: differs from c10-erm [1 of 2] in world_size 2 -> 1." in result["markdown"]

    # a provenance.json that cannot be read is named: the report cannot tell what that run ran on
    (ddp / "c10-erm" / "seed1" / "provenance.json").write_text("{")
    with pytest.raises(ReportError, match=r"seed1/provenance.json' is not valid JSON .*; repair or delete it"):
        make_report([ddp], tmp_path / "r3")


def test_the_plot_shows_the_runs_the_table_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run still training was averaged into the curve and counted in the legend (n=2) beside '1 (0) | 1/2'."""
    root = tmp_path / "runs"
    make_run(root, "c10-erm", ERM, 0, [30.0, 10.0, 8.0], epochs=3)
    make_run(root, "c10-erm", ERM, 1, [50.0, 40.0], status="interrupted", epochs=3)  # still training
    make_run(root, "c10-mixup", MIXUP, 0, [50.0], status="interrupted", epochs=3)  # none finished: its partial run
    figures = []
    monkeypatch.setattr(report_module, "write_figure", lambda path, fig, dpi: figures.append(fig))
    md = make_report([root], tmp_path / "r")["markdown"]
    assert "| c10-erm | 1 (0) | 1/2 |" in md
    (ax,) = figures[0].axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["c10-erm (n=1)", "c10-mixup (n=1)"]
    assert list(ax.lines[0].get_ydata()) == [30.0, 10.0, 8.0]  # the finished run's curve alone
    assert list(ax.lines[1].get_ydata()) == [50.0]
    assert not ax.collections  # no min-max band around a single run


# -- the paper column beside runs of another recipe ------------------------------------------------------------------
def test_config_differences_name_the_keys_that_change_the_result() -> None:
    shipped = config_to_dict(load_config("cifar/cpu/cifar10-preact_resnet18-mixup"))
    assert config_differences(shipped, shipped) == []
    # bookkeeping and identity keys are not compared: where the data lives, the device, logging, the name, ...
    bookkeeping = config_to_dict(
        load_config(
            "cifar/cpu/cifar10-preact_resnet18-mixup",
            ["name=renamed", "notes=x", "data.root=/elsewhere", "data.eval_batch_size=7", "data.kwargs.progress=true",
             "data.kwargs.num_workers=10", "data.kwargs.download=true",
             "train.seed=9", "train.device=cpu", "train.threads=2", "train.compile=true", "train.log_every=3",
             "train.checkpoint_every=9", "train.train_eval_every=5", "train.reliability_diagram=false"],
        )
    )  # fmt: skip
    assert config_differences(bookkeeping, shipped) == []
    # the recipe is: sorted dotted keys, a kwargs key one side lacks named by its own dotted key
    changed = config_to_dict(
        load_config(
            "cifar/cpu/cifar10-preact_resnet18-mixup",
            ["mix.alpha=0.2", "train.epochs=1", "model.kwargs.depth=3", "train.amp=bf16", "train.eval_last=0"],
        )
    )
    assert config_differences(changed, shipped) == [
        "mix.alpha",
        "model.kwargs.depth",
        "train.amp",
        "train.epochs",
        "train.eval_last",
    ]
    # a key only one side has (a run of another version of the lab) is not compared
    older = {k: v for k, v in changed.items() if k != "mix"}
    assert config_differences(older, shipped) == ["model.kwargs.depth", "train.amp", "train.epochs", "train.eval_last"]


def _speech_run(root: Path, config: str, seed: int, overrides: list[str], error: float) -> None:
    cfg = load_config(config, [f"train.seed={seed}", *overrides])
    run = root / cfg.name / f"seed{seed}"
    write_config(run, cfg)
    write_summary(run, {"status": "complete", "last_test_error": error, "epochs_completed": cfg.train.epochs})


def test_the_paper_number_beside_runs_of_another_recipe_is_marked(tmp_path: Path) -> None:
    """A run trained with --set mix.alpha=0.3 train.epochs=6 once got the paper's 30-epoch alpha-0.2 number, plain."""
    shipped, changed = tmp_path / "shipped", tmp_path / "changed"
    for seed in (0, 1):
        _speech_run(shipped, "speech/cpu/speech-vgg11-mixup0.2", seed, [], 4.0)
        _speech_run(changed, "speech/cpu/speech-lenet-mixup0.2", seed, ["mix.alpha=0.3", "train.epochs=6"], 5.0)
    _speech_run(changed, "speech/paper/speech-vgg11-erm", 0, [], 6.0)  # paper scale: compared with its own config
    plain = make_report([shipped], tmp_path / "r1")
    assert re.search(r"\| speech-vgg11-mixup0\.2-cpu \| .* \| 3\.4 \|$", plain["markdown"], re.M)
    assert "config differs" not in plain["markdown"] and "paper_config_differs" not in plain["groups"][0]
    assert "paper_config_differs" not in (tmp_path / "r1" / "report.csv").read_text()

    report = make_report([shipped, changed], tmp_path / "r2")
    md = report["markdown"]
    lenet = next(line for line in md.splitlines() if line.startswith("| speech-lenet-mixup0.2-cpu |"))
    assert lenet.endswith(f"| {paper_number('speech', 'lenet/mixup0.2'):g} (config differs: mix.alpha, train.epochs) |")
    assert re.search(r"\| speech-vgg11-mixup0\.2-cpu \| .* \| 3\.4 \|$", md, re.M)
    assert re.search(r"\| speech-vgg11-erm \| .* \| 4\.6 \|$", md, re.M)
    assert CONFIG_DIFFERS_NOTE in md and "data.root" in CONFIG_DIFFERS_NOTE
    with (tmp_path / "r2" / "report.csv").open() as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert rows["speech-lenet-mixup0.2-cpu"]["paper_config_differs"] == "mix.alpha train.epochs"
    assert rows["speech-lenet-mixup0.2-cpu"]["paper"] == "11.3"  # the CSV keeps the number, beside the keys
    assert rows["speech-vgg11-mixup0.2-cpu"]["paper_config_differs"] == ""


def test_many_differing_keys_are_counted_and_a_row_nothing_ships_is_said(tmp_path: Path) -> None:
    overrides = ["train.epochs=6", "optim.lr=0.1", "data.batch_size=7", "schedule.step_size=2"]
    _speech_run(tmp_path / "runs", "speech/cpu/speech-lenet-erm", 0, overrides, 5.0)
    row = make_report([tmp_path / "runs"], tmp_path / "r")["groups"][0]
    assert row["paper_config_differs"] == "data.batch_size optim.lr schedule.step_size train.epochs"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "(config differs: data.batch_size, optim.lr, schedule.step_size, train.epochs) |" in md  # 4 shown
    _speech_run(tmp_path / "more", "speech/cpu/speech-lenet-mixup0.1", 0, [*overrides, "mix.alpha=0.3"], 5.0)
    md = make_report([tmp_path / "more"], tmp_path / "r2")["markdown"]
    assert "(config differs: data.batch_size, mix.alpha, optim.lr, schedule.step_size, +1 more) |" in md
    # a config of the user's own naming a published row that no shipped config has: nothing to compare it with
    cfg = apply_overrides(ExperimentConfig(), ["name=mine", "table=ablation", "row=erm/wd5e-4"])
    assert shipped_differences([], []) is None
    write_config(tmp_path / "own" / "mine" / "seed0", cfg)
    write_summary(tmp_path / "own" / "mine" / "seed0", {"status": "complete", "last_test_error": 5.0})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Table, "row_configs", lambda self: {})
        md = make_report([tmp_path / "own"], tmp_path / "r3")["markdown"]
    assert f"| 5.18 ({NO_SHIPPED_CONFIG}) |" in md and NO_SHIPPED_CONFIG == "no shipped config of this row"


def test_shipped_rows_of_each_table_are_its_configs_at_every_scale() -> None:
    rows = TABLES["speech"].row_configs()
    assert sorted(rows) == sorted(TABLES["speech"].paper) and all(len(c) == 2 for c in rows.values())  # cpu, paper
    assert {c["name"] for c in rows["vgg11/mixup0.2"]} == {"speech-vgg11-mixup0.2", "speech-vgg11-mixup0.2-cpu"}
    assert len(TABLES["imagenet"].row_configs()["resnet50/90/mixup"]) == 1  # no cpu scale
    assert all(c["table"] == "datasize" for cs in TABLES["datasize"].row_configs().values() for c in cs)
    assert TABLES["gan"].row_configs() == {}  # a runner, no published row numbers


# -- ImageNet's top-5 ----------------------------------------------------------------------------------------------
def test_imagenet_rows_get_a_top5_column_beside_the_papers_top5(tmp_path: Path) -> None:
    """Table 1 publishes top-1 and top-5; the top-5 once appeared only in the source sentence."""
    for model, top1, top5 in (("resnet50-90ep-mixup", 24.0, 7.0), ("resnet50-90ep-erm", 25.0, 8.0)):
        for seed in (0, 1):
            cfg = load_config(f"imagenet/paper/imagenet-{model}", [f"train.seed={seed}"])
            run = tmp_path / "runs" / cfg.name / f"seed{seed}"
            write_config(run, cfg)
            write_summary(
                run, {"status": "complete", "last_test_error": top1 + seed, "last_test_top5_error": top5 + seed}
            )
    md = make_report([tmp_path / "runs"], tmp_path / "r")["markdown"]
    header = md.splitlines()[2]
    assert header.startswith("| run | n (seeds) | done | test error, last epoch (%) | top-5 error, last epoch (%) |")
    assert header.endswith("| paper (%) | paper top-5 (%) |")
    assert re.search(r"^\| imagenet-resnet50-90ep-mixup \| 2 \(0 1\) \| 2/2 \| 24\.50 ± 0\.71 \| 7\.50 ± 0\.71 \| .* \| 23\.3 \| 6\.6 \|$", md, re.M)  # fmt: skip
    assert re.search(
        r"^\| imagenet-resnet50-90ep-erm \| .* \| 8\.50 ± 0\.71 \| .* \| 23\.5 \| - \|$", md, re.M
    )  # no top-5
    with (tmp_path / "r" / "report.csv").open() as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    mixup = rows["imagenet-resnet50-90ep-mixup"]
    assert (
        float(mixup["last_test_top5_error_mean"]) == 7.5 and mixup["paper_top5"] == "6.6" and mixup["paper"] == "23.3"
    )
    assert rows["imagenet-resnet50-90ep-erm"]["paper_top5"] == ""


def test_other_tables_measure_top5_but_show_no_top5_column(runs: Path, tmp_path: Path) -> None:
    """Every trainer run records ``last_test_top5_error``; only a table whose paper publishes top-5 shows it."""
    before = make_report([runs], tmp_path / "r1")
    for summary in runs.rglob("summary.json"):
        write_summary(summary.parent, {**json.loads(summary.read_text()), "last_test_top5_error": 1.0})
    after = make_report([runs], tmp_path / "r2")
    assert after["markdown"] == before["markdown"] and "top-5" not in after["markdown"]
    assert (tmp_path / "r2" / "report.csv").read_bytes() == (tmp_path / "r1" / "report.csv").read_bytes()


def test_the_report_says_which_data_the_runs_read(tmp_path: Path) -> None:
    # paper-scale CIFAR-10 reads the original release, the cpu scale the JPEG re-encoded copy: the report says which
    root = tmp_path / "runs"
    original = {**DATA, "source": "torchvision.CIFAR10"}
    make_run(root, "c10-erm", ERM, 0, [30.0, 20.0], provenance={"data": DATA})
    make_run(root, "c10-mixup", MIXUP, 0, [30.0, 18.0], overrides=["mix.variant=mixup"], provenance={"data": DATA})
    make_run(root, "c10-erm-original", ERM, 0, [30.0, 19.0], provenance={"data": original})
    md = make_report([root], tmp_path / "r")["markdown"]
    assert (
        "Data (provenance.json): cifar10 from cifar10-jpeg (c10-erm, c10-mixup); cifar10 from torchvision.CIFAR10 "
        "(c10-erm-original)." in md
    )
    older = tmp_path / "older"  # run folders without a data record (earlier lab versions): no line
    make_run(older, "c10-erm", ERM, 0, [30.0, 20.0])
    assert "Data (provenance.json)" not in make_report([older], tmp_path / "r2")["markdown"]


def test_a_cell_that_averages_fewer_seeds_than_its_row_says_so(tmp_path: Path) -> None:
    # three finished seeds; one never measured the validation error: that cell averages two, and says it
    root = tmp_path / "runs"
    for seed, val in enumerate([3.0, 5.0, None]):
        run = make_run(root, "speechlike", "", seed, [20.0, 10.0 + seed])
        if val is not None:
            write_summary(run, {**json.loads((run / "summary.json").read_text()), "last_val_error": val})
    md = make_report([root], tmp_path / "report")["markdown"]
    lines = md.splitlines()
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    row = [c.strip() for c in next(x for x in lines if x.startswith("| speechlike |")).strip("|").split("|")]
    assert row[header.index("n (seeds)")] == "3 (0 1 2)"
    assert row[header.index("validation error, last epoch (%)")] == "4.00 ± 1.41 (n=2)"
    assert row[header.index("test error, last epoch (%)")] == "11.00 ± 1.00"  # every seed: unmarked
    assert report_module.FEWER_SEEDS_NOTE in md
    # every seed measured it: no mark and no note
    write_summary(
        root / "speechlike" / "seed2",
        {**json.loads((root / "speechlike" / "seed2" / "summary.json").read_text()), "last_val_error": 4.0},
    )
    md = make_report([root], tmp_path / "report2")["markdown"]
    assert "(n=" not in md and report_module.FEWER_SEEDS_NOTE not in md


def test_the_median_of_last_10_says_when_it_is_over_fewer_or_sparser_evaluations(tmp_path: Path) -> None:
    # the column read "median of last 10 epochs" for a run evaluated 3 times, or every 3rd epoch
    make_run(tmp_path / "runs", "full", "", 0, [float(e) for e in range(20)])
    md = make_report([tmp_path / "runs"], tmp_path / "o1")["markdown"]
    assert "'median of last 10 epochs':" not in md
    make_run(tmp_path / "runs", "short", "", 0, [30.0, 20.0, 10.0])
    sparse = make_run(tmp_path / "runs", "sparse", "", 0, [float(e) for e in range(30)])
    records = [json.loads(line) for line in (sparse / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        if r["epoch"] % 3:
            r["test_error"] = None
    (sparse / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    md = make_report([tmp_path / "runs"], tmp_path / "o2")["markdown"]
    assert (
        "'median of last 10 epochs': 1 run(s) evaluated fewer than 10 times (the median of those); 1 run(s) "
        "evaluated less often than every epoch (the median of the last 10 evaluations)." in md
    )


def test_a_baseline_seed_that_did_not_finish_is_not_paired(tmp_path: Path) -> None:
    # ERM's seed 2 stopped after its first epoch (last error 50): pairing it with mixup's finished seed 2 would add a
    # difference of -41 to the two of finished runs
    root = tmp_path / "runs"
    for seed, (erm, mix) in enumerate([(20.0, 18.0), (22.0, 19.0), (None, 9.0)]):
        if erm is None:
            make_run(root, "c10-erm", ERM, seed, [50.0], status="interrupted", epochs=2)
        else:
            make_run(root, "c10-erm", ERM, seed, [30.0, erm], epochs=2)
        make_run(root, "c10-mixup", MIXUP, seed, [30.0, mix], epochs=2, overrides=["mix.variant=mixup"])
    rows = _paired_rows(make_report([root], tmp_path / "report")["markdown"])
    assert [(r[2], r[4]) for r in rows] == [
        ("median of last 10", "0: -1.00, 1: -1.50"),
        ("last epoch", "0: -2.00, 1: -3.00"),
    ]
    assert rows[1][3].startswith("-2.50 [") and "(n=2," in rows[1][3]


def test_the_training_time_averages_the_runs_the_row_counts(tmp_path: Path) -> None:
    # a finished run of 2 epochs (1.5 s each) and one stopped after 1: the row counts the finished run only, and so
    # does its mean training time (3.0 s, not 2.25 s)
    root = tmp_path / "runs"
    make_run(root, "c10-erm", ERM, 0, [30.0, 10.0])
    make_run(root, "c10-erm", ERM, 1, [50.0], status="interrupted")
    (row,) = make_report([root], tmp_path / "report")["groups"]
    assert (row["n"], row["runs"], row["train_time_s"]) == (1, 2, 3.0)


def test_one_skipped_evaluation_among_the_last_10_is_said(tmp_path: Path) -> None:
    # evaluated at epochs 2..9 and 11..12 (none at 10): the last 10 evaluations span 11 epochs, not 10
    run = make_run(tmp_path / "runs", "gap", "", 0, [float(e) for e in range(12)])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    records[9]["test_error"] = None
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    md = make_report([tmp_path / "runs"], tmp_path / "report")["markdown"]
    assert (
        "'median of last 10 epochs': 1 run(s) evaluated less often than every epoch (the median of the last 10 "
        "evaluations)." in md
    )


def test_a_name_with_a_bar_from_an_older_lab_stays_in_its_cell(tmp_path: Path) -> None:
    # config names refuse '|' now; a run folder written before that printed its name raw, one cell too many
    run = make_run(tmp_path, "lrx", "", 0, [30.0, 20.0])
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("name: lrx", "name: lr|x"))
    markdown = make_report([tmp_path], tmp_path / "rep")["markdown"]
    header, _, row = [line for line in markdown.splitlines() if line.startswith("|")][:3]
    assert row.startswith("| lr\\|x |")
    assert len(re.split(r"(?<!\\)\|", row)) == len(header.split("|"))
