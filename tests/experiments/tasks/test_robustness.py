"""Robustness tables (Tables 2 and 3): configs, config inheritance, `vicinal attack`, the adversarial
reproduction's attack step, the report's Table 2 / Table 3 sections and the reliability bins."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from tests.experiments.lab_helpers import one_thread, plant_killed_writes, tiny_config  # noqa: F401 (autouse fixture)
from vicinal.experiments.cli import main
from vicinal.experiments.config import ConfigError, diff_configs, load_config
from vicinal.experiments.report.report import make_report
from vicinal.experiments.tasks import get_table, robustness
from vicinal.experiments.trainer import Trainer


# -- configs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("scale", "n"), [("cpu", 12), ("paper", 36)])
def test_corrupted_label_sweep_holds_the_tables_rows_in_order(scale: str, n: int) -> None:
    """configs/corrupted_labels/<scale>.yaml declares exactly the rows of corrupted_label_rows, in its order."""
    files = robustness.corrupted_label_configs(scale)
    assert len(files) == n == len(robustness.corrupted_label_rows(scale))
    assert [load_config(f).row for f in files] == [r["row"] for r in robustness.corrupted_label_rows(scale)]
    assert all(not f.exists() and f.parent.with_suffix(".yaml").is_file() for f in files)  # rows of one sweep file
    suffix = "-cpu" if scale == "cpu" else ""
    for f in files:
        cfg = load_config(f)
        assert f.name == f"{cfg.name}.yaml" and cfg.name.endswith(f"{suffix}")
        assert cfg.name == f"cifar10-preact_resnet18-c{cfg.row.replace('/', '-').replace('.', '')}{suffix}"


def test_corrupted_label_rows_load_with_the_right_settings() -> None:
    rows = {r["row"]: r for r in robustness.corrupted_label_rows("paper")}
    assert {"20/erm", "20/erm_dropout_p0.7", "20/mixup_a8", "50/mixup_a32", "80/erm_dropout_p0.9"} <= set(rows)
    for f in robustness.corrupted_label_configs("paper"):
        cfg = load_config(f)
        r = rows[cfg.row]
        assert cfg.data.corrupt_fraction == r["level"] / 100 and cfg.table == "corrupted-labels"
        assert cfg.model.kwargs == {"width": 64, "dropout": r["dropout"]}
        assert cfg.mix.variant == r["variant"] and cfg.train.epochs == 200 and cfg.data.augment
        if r["alpha"] is not None:
            assert cfg.mix.alpha == r["alpha"]
    # cpu scale: the cifar cpu recipe (where clean ERM fits its training set) changed only where the row needs it
    recipe = load_config(robustness.configs_dir() / "cifar" / "cpu" / "cifar10-preact_resnet18-erm.yaml")
    for f in robustness.corrupted_label_configs("cpu"):
        changed = set(diff_configs(recipe, load_config(f)))
        assert changed - {"model.kwargs", "mix.variant", "mix.alpha"} == {
            "name", "notes", "row", "table", "data.corrupt_fraction", "train.eval_every"
        }, f  # fmt: skip


def test_adversarial_configs_cpu_and_missing_imagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    erm, source, mixup = robustness.adversarial_configs("cpu")
    a, b = load_config(erm), load_config(source)
    assert diff_configs(a, b) == ["name", "notes", "row", "table", "train.seed"]
    assert b.train.seed == 1000 and load_config(mixup).mix.variant == "mixup"
    monkeypatch.setattr(robustness, "configs_dir", lambda: tmp_path / "configs")
    with pytest.raises(FileNotFoundError, match=r"missing config files: .*imagenet/paper/imagenet-resnet101-90ep-erm"):
        robustness.adversarial_configs("paper")
    with pytest.raises(ValueError, match=r"unknown scale 'gpu'"):
        robustness.adversarial_configs("gpu")


def test_config_base_inheritance_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nmodel: {name: mlp, kwargs: {width: 3, depth: 2}}\ntrain: {epochs: 5}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\nmodel: {kwargs: {width: 7}}\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg.name, cfg.model.name, cfg.model.kwargs, cfg.train.epochs) == ("b", "mlp", {"width": 7, "depth": 2}, 5)
    (tmp_path / "c.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError, match=r"inherits from itself through 'base: c.yaml'"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"nope.yaml' \(the base of '.*d.yaml'\) does not exist"):
        load_config(tmp_path / "d.yaml")
    (tmp_path / "e.yaml").write_text("base: 3\n")
    with pytest.raises(ConfigError, match=r"config key 'base' in '.*e.yaml' must be a path string, got int 3"):
        load_config(tmp_path / "e.yaml")


def test_reproduce_dry_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert get_table("corrupted-labels").name == "corrupted-labels"
    assert main(["reproduce", "corrupted-labels", "--scale", "cpu", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "20 of 20 runs would be trained" in out and "c80-mixup_a32-cpu seed 0" in out
    assert (
        main(["reproduce", "adversarial", "--scale", "cpu", "--dry-run", "--seeds", "2", "--out", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "erm-source-cpu seed 1001" in out and "erm-cpu seed 1:" in out and "6 of 6 runs" in out


# -- attacks on trained runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny trained runs: ERM target (seed 0), ERM source (seed 1000), mixup (seed 0)."""
    out = tmp_path_factory.mktemp("adv")
    specs = {
        "erm": ("name=t-erm", "mix.variant=erm", "train.seed=0"),
        "source": ("name=t-erm-source", "mix.variant=erm", "train.seed=1000"),
        "mixup": ("name=t-mixup", "mix.variant=mixup", "train.seed=0"),
    }
    dirs = {}
    for role, overrides in specs.items():
        cfg = tiny_config("train.epochs=1", "train.reliability_diagram=false", *overrides)
        dirs[role] = out / cfg.name / f"seed{cfg.train.seed}"
        Trainer(cfg, dirs[role], quiet=True).fit()
    return dirs


def test_attack_command_white_and_black_box(capsys: pytest.CaptureFixture[str], runs: dict[str, Path]) -> None:
    code = main(["attack", str(runs["erm"]), "--attack", "fgsm", "--eps", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "white box" in out and "on 40 test images" in out
    white = json.loads((runs["erm"] / "attacks" / "white-fgsm-eps4.json").read_text())
    assert white["eps"] == 4 / 255 and white["n"] == 40 and white["top1_error"] >= white["clean_top1_error"] - 1e-9
    code = main(["attack", str(runs["mixup"]), "--source", str(runs["source"]), "--attack", "ifgsm", "--steps", "3"])
    assert code == 0
    black = json.loads(
        (runs["mixup"] / "attacks" / "black-ifgsm-eps4-steps3-from-t-erm-source-seed1000.json").read_text()
    )
    assert black["source_seed"] == 1000 and black["steps"] == 3
    # Deterministic: the same attack again gives the same numbers.
    # --every K attacks the test images at positions 0, K, 2K, ...: 10 of the 40, under its own file name.
    assert main(["attack", str(runs["erm"]), "--attack", "fgsm", "--every", "4"]) == 0
    assert "on 10 test images" in capsys.readouterr().out
    sub = json.loads((runs["erm"] / "attacks" / "white-fgsm-eps4-every4.json").read_text())
    assert (sub["n"], sub["every"], white["every"]) == (10, 4, 1)
    again = main(["attack", str(runs["erm"]), "--attack", "fgsm", "--eps", "4"])
    assert again == 0
    assert (
        json.loads((runs["erm"] / "attacks" / "white-fgsm-eps4.json").read_text())["top1_error"] == white["top1_error"]
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["attack", "{run}", "--attack", "pgd"], r"argument --attack: invalid choice: 'pgd'"),
        (["attack", "{run}", "--attack", "fgsm", "--eps", "300"], r"--eps must be in \[0, 255\] pixel units, got 300"),
        (["attack", "{run}", "--attack", "ifgsm", "--steps", "0"], r"--steps must be >= 1, got 0"),
        (["attack", "{run}", "--attack", "fgsm", "--every", "0"], r"--every must be >= 1, got 0"),
        (["attack", "/no/such/run", "--attack", "fgsm"], r"RUN_DIR '/no/such/run' is not a folder"),
        (["attack", "{run}", "--source", "/nope", "--attack", "fgsm"], r"--source '/nope' is not a folder"),
        (["attack", "{empty}", "--attack", "fgsm"], r"is not a run folder \(no config.yaml\)"),
    ],
)
def test_attack_command_errors(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path, argv: list[str], match: str
) -> None:
    argv = [a.format(run=runs["erm"], empty=tmp_path) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("vicinal: error: ")
    assert re.search(match, err), err


def test_a_black_box_source_is_another_model_that_fits_the_targets_data(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    assert main(["attack", str(runs["erm"]), "--source", str(runs["erm"]), "--attack", "fgsm"]) == 2
    assert "is the target itself: a black-box source is another trained model" in capsys.readouterr().err
    # a source whose weights do not fit a model built for the target's data is named as such, in one line
    cfg = yaml.safe_load((runs["source"] / "config.yaml").read_text())
    cfg["model"]["kwargs"]["width"] = 8  # the checkpoint holds width 4
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "checkpoint.pt").write_bytes((runs["source"] / "checkpoint.pt").read_bytes())
    assert main(["attack", str(runs["erm"]), "--source", str(tmp_path), "--attack", "fgsm"]) == 2
    err = capsys.readouterr().err
    data = cfg["data"]["name"]
    assert f"source '{tmp_path}' (data '{data}'), built for the inputs and classes of the target" in err
    assert "does not fit its checkpoint" in err and "size mismatch for" in err and err.count("\n") == 1
    # one of another data set is named as such, without torch's list of sizes (helper-118)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**cfg, "data": {**cfg["data"], "name": "cifar10"}}))
    assert main(["attack", str(runs["erm"]), "--source", str(tmp_path), "--attack", "fgsm"]) == 2
    assert capsys.readouterr().err == (
        f"vicinal: error: source '{tmp_path}' was trained on data 'cifar10' and the target '{runs['erm']}' on "
        f"'{data}': a black-box source must be trained on the target's data\n"
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")  # corrupt: its own message, not the black-box one
    assert main(["attack", str(runs["erm"]), "--source", str(tmp_path), "--attack", "fgsm"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "built for the inputs" not in err and err.count("\n") == 1


def test_a_checkpoint_of_another_model_names_the_mismatch(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    cfg = yaml.safe_load((runs["erm"] / "config.yaml").read_text())
    cfg["model"]["kwargs"]["width"] = 8  # the checkpoint holds width 4
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "checkpoint.pt").write_bytes((runs["erm"] / "checkpoint.pt").read_bytes())
    assert main(["attack", str(tmp_path), "--attack", "fgsm"]) == 2
    err = capsys.readouterr().err
    assert "does not fit the model of" in err and "size mismatch for" in err and err.count("\n") == 1


def test_attack_without_checkpoint(capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text((runs["erm"] / "config.yaml").read_text())
    assert main(["attack", str(tmp_path), "--attack", "fgsm"]) == 2
    assert "holds no checkpoint.pt (train it first)" in capsys.readouterr().err


def test_adversarial_attack_step_and_report(runs: dict[str, Path], tmp_path: Path) -> None:
    plan = [
        {
            "config": Path("x/erm.yaml"),
            "cfg": load_config(runs["erm"] / "config.yaml"),
            "seed": 0,
            "run_dir": runs["erm"],
        },
        {
            "config": Path("x/erm-source.yaml"),
            "cfg": load_config(runs["source"] / "config.yaml"),
            "seed": 1000,
            "run_dir": runs["source"],
        },
        {
            "config": Path("x/mixup.yaml"),
            "cfg": load_config(runs["mixup"] / "config.yaml"),
            "seed": 0,
            "run_dir": runs["mixup"],
        },
    ]
    results = robustness.run_adversarial_attacks(plan, SimpleNamespace(quiet=True))
    assert len(results) == 8  # {ERM, mixup} x {FGSM, I-FGSM} x {white, black}
    # A second pass (an interrupted reproduction run again) reads finished attacks instead of redoing them.
    done = runs["mixup"] / "attacks" / "white-ifgsm-eps4-steps10.json"
    original = done.read_text()
    try:
        done.write_text(json.dumps({**json.loads(original), "top1_error": 123.0}))
        again = robustness.run_adversarial_attacks(plan, SimpleNamespace(quiet=True))
        assert [r["top1_error"] for r in again].count(123.0) == 1
    finally:
        done.write_text(original)
    # Each cell averages one protocol only: the every-4 FGSM run of the attack-command test (10 images) and its
    # 3-step I-FGSM are reported apart from the full-split, 10-step results.
    white = json.loads((runs["erm"] / "attacks" / "white-fgsm-eps4.json").read_text())
    sub = json.loads((runs["erm"] / "attacks" / "white-fgsm-eps4-every4.json").read_text())
    report = make_report([runs["erm"], runs["mixup"], runs["source"]], tmp_path / "report")
    md = report["markdown"]
    assert "## Table 3" in md and "90.7 / 99.9" in md
    full, _, quarter = md.partition("Attacked: every 4th test image (n = 10 per model).")
    assert [robustness._ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd"
    ]  # fmt: skip
    assert "Attacked: every test image (n = 40 per model)." in full and quarter
    assert "| clean | FGSM eps 4 | I-FGSM eps 4 (3 steps) | I-FGSM eps 4 (10 steps) |" in full
    row = f"| white box | top-1 | ERM | {white['clean_top1_error']:.2f} | {white['top1_error']:.2f} |"
    assert row in full
    assert f"| white box | top-1 | ERM | {sub['clean_top1_error']:.2f} | {sub['top1_error']:.2f} |" in quarter
    assert "| black box | top-5 | mixup |" in md and "17.4 / 11.8" in md


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("null", "does not hold a JSON object"),
        ("[]", "does not hold a JSON object"),
        ("{}", "is not an attack result: it lacks mode, attack, eps_pixels, n, top1_error, top5_error"),
        ('{"mode": "white"', "is not valid JSON"),
    ],
)
def test_a_foreign_attack_file_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path, text: str, said: str
) -> None:
    # a hand-edited or foreign file in attacks/: the report and a resumed reproduction name it (they had stopped on
    # AttributeError or KeyError tracebacks)
    from vicinal.experiments.attacks import read_attack_result
    from vicinal.experiments.errors import RunError

    bad = runs["erm"] / "attacks" / "white-fgsm-eps2.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(text)
    try:
        assert main(["report", str(runs["erm"]), "--out", str(tmp_path / "report")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"vicinal: error: '{bad}' ") and said in err and err.count("\n") == 1, err
        assert "delete it and measure it again" in err or "not valid JSON" in err
        with pytest.raises(RunError, match=re.escape(said)):
            read_attack_result(bad)  # what the reproduction's attack step reads of a finished attack
    finally:
        bad.unlink()


def test_cpu_scale_attacks_are_found_again(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from vicinal.experiments import attacks

    plan = [
        {"config": Path(f"x/{role}.yaml"), "cfg": load_config(d / "config.yaml"), "seed": s, "run_dir": d}
        for role, d, s in (("erm", runs["erm"], 0), ("erm-source", runs["source"], 1000), ("mixup", runs["mixup"], 0))
    ]
    first = robustness.run_adversarial_attacks(plan, SimpleNamespace(quiet=True, scale="cpu"))
    assert {r["every"] for r in first} == {5} and {r["n"] for r in first} == {8}
    assert (runs["mixup"] / "attacks" / "black-ifgsm-eps4-steps10-every5-from-t-erm-source-seed1000.json").is_file()

    def no_attack(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished attack was run again")

    monkeypatch.setattr(attacks, "attack_run", no_attack)
    again = robustness.run_adversarial_attacks(plan, SimpleNamespace(quiet=True, scale="cpu"))
    assert [(r["mode"], r["attack"], r["top1_error"]) for r in again] == [
        (r["mode"], r["attack"], r["top1_error"]) for r in first
    ]
    for f in (runs["erm"] / "attacks").glob("*-every5*.json"):  # leave the shared fixture as the other tests expect
        f.unlink()
    for f in (runs["mixup"] / "attacks").glob("*-every5*.json"):
        f.unlink()


def test_attack_run_applies_eps_out_of_255_and_records_one_step_for_fgsm(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vicinal.experiments import attacks

    seen: list[dict[str, object]] = []

    def spy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs: object) -> torch.Tensor:
        seen.append(kwargs)
        return attacks.fgsm(model, x, y, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setitem(attacks.ATTACKS, "fgsm", spy)
    res = attacks.attack_run(runs["erm"], attack="fgsm", eps=16, steps=5, write=False)
    assert seen and all(kw == {"eps": 16 / 255} for kw in seen)  # FGSM takes no steps
    assert (res["eps_pixels"], res["eps"], res["steps"], res["every"], res["n"]) == (16.0, 16 / 255, 1, 1, 40)


# -- report: Table 2 and calibration -------------------------------------------------------------------------
def _fake_run(root: Path, name: str, row: str, seed: int, summary: dict, epochs: str = "") -> None:
    d = root / name / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(
        f"name: {name}\ntable: corrupted-labels\nrow: {row}\ntrain: {{seed: {seed}{epochs}}}\nmix: {{variant: erm}}\n"
    )
    (d / "summary.json").write_text(json.dumps({"status": "complete", **summary}))
    (d / "metrics.jsonl").write_text("")


def test_report_table2_section(tmp_path: Path) -> None:
    for seed, (real, corr) in enumerate([(0.5, 1.0), (1.5, 3.0)]):
        _fake_run(
            tmp_path / "runs",
            "c20-erm",
            "20/erm",
            seed,
            {
                "best_test_error": 30.0,
                "last_test_error": 40.0 + seed,
                "last_test_nll": 1.5,
                "last_test_ece": 20.0 + 2 * seed,
                "last_train_error_real": real,
                "last_train_error_corrupted": corr,
            },
        )
    md = make_report([tmp_path / "runs"], tmp_path / "out")["markdown"]
    assert "## Table 2" in md
    line = next(x for x in md.splitlines() if x.startswith("| 20% | erm |"))
    # mean ± sample std over the 2 seeds, and the paper's row beside
    assert (
        "| 2 | 30.00 ± 0.00 | 40.50 ± 0.71 | 1.00 ± 0.71 | 2.00 ± 1.41 | 1.500 ± 0.000 | 21.00 ± 1.41 | 12.7 / 16.6 / 0.05 / 0.28 |"
        in line
    )
    assert "train error, corrupted labels (%)" in md  # the generic table gains the training columns too


def test_table2_marks_the_papers_row_beside_runs_of_another_recipe(tmp_path: Path) -> None:
    _fake_run(tmp_path / "runs", "c20-erm", "20/erm", 0, {"last_test_error": 40.0}, epochs=", epochs: 1")
    md = make_report([tmp_path / "runs"], tmp_path / "out")["markdown"]
    assert "| 16.6 (config differs: train.epochs) |" in md  # the common table
    line = next(x for x in md.splitlines() if x.startswith("| 20% | erm |"))
    assert line.endswith("| 12.7 / 16.6 / 0.05 / 0.28 (config differs) |")


def test_table2_source_says_the_paper_column_is_the_last_epoch_error() -> None:
    """Table 2 publishes four numbers per row; the common table's paper column shows the last-epoch test error,
    and its source sentence (printed under the column) says so."""
    table = get_table("corrupted-labels")
    assert table.paper == {row: last for row, (_, last, _, _) in robustness.PAPER_TABLE2.items()}
    assert table.paper_source.endswith("; the report's paper column is the last-epoch test error")


def test_a_paper_corrupted_config_runs_two_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = next(
        f for f in robustness.corrupted_label_configs("paper") if f.name.endswith("c80-mixup_dropout_a32_p07.yaml")
    )
    argv = ["train", str(path), "--out", str(tmp_path), "--quiet", "--set", "data.name=synthetic_images",
            "data.kwargs={}", "model.kwargs.width=4", "train.max_steps=2", "train.device=cpu",
            "train.reliability_diagram=false"]  # fmt: skip
    tiny_config()  # registers the synthetic dataset
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / path.stem / "seed0" / "summary.json").read_text())
    assert summary["status"] == "max_steps" and summary["row"] == "80/mixup_dropout_a32_p0.7"
    assert summary["last_train_error_corrupted"] is not None and summary["last_train_error_real"] is not None
    labels = torch.load(tmp_path / path.stem / "seed0" / "corrupted_labels.pt", weights_only=True)
    assert labels["n_replaced"] == 128  # round(0.8 * 160)


def test_reproduce_adversarial_trains_attacks_and_reports(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tiny_config()  # registers the synthetic dataset
    argv = ["reproduce", "adversarial", "--scale", "cpu", "--seeds", "1", "--out", str(tmp_path), "--quiet", "--set",
            "data.name=synthetic_images", "data.kwargs={}", "data.subset_per_class=4", "model.kwargs.width=4",
            "train.epochs=1", "train.device=cpu", "train.reliability_diagram=false"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    files = sorted(p.name for p in tmp_path.glob("*/seed*/attacks/*.json"))
    # cpu scale attacks every 5th test image (robustness.ATTACK_EVERY), under file names that say so.
    assert (
        len(files) == 8 and "black-fgsm-eps4-every5-from-cifar10-preact_resnet18-erm-source-cpu-seed1000.json" in files
    )
    assert not (tmp_path / "cifar10-preact_resnet18-erm-source-cpu" / "seed1000" / "attacks").exists()
    assert "## Table 3" in out and "| black box | top-1 | mixup |" in out


def test_corrupted_labels_run_three_seeds_at_50_percent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "corrupted-labels", "--scale", "cpu", "--out", str(tmp_path), "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    seeds = {}
    for line in lines:
        name, _, rest = line.split("] ", 1)[1].partition(" seed ")
        seeds.setdefault(name, []).append(int(rest.split(":")[0]))
    assert len(lines) == 20 and len(seeds) == 12
    assert all(s == ([0, 1, 2] if "-c50-" in n else [0]) for n, s in seeds.items())
    # --seeds overrides the per-row counts
    assert (
        main(["reproduce", "corrupted-labels", "--scale", "cpu", "--out", str(tmp_path), "--dry-run", "--seeds", "2"])
        == 0
    )
    assert "dry run: 24 of 24 runs would be trained" in capsys.readouterr().out


def test_table3_keeps_two_configs_of_one_method_apart(tmp_path: Path) -> None:
    # two mixup models (say 1 and 3 epochs) attacked at seed 0 each are two rows, never two seeds of one
    def run(name: str, variant: str, error: float) -> SimpleNamespace:
        path = tmp_path / name / "seed0"
        (path / "attacks").mkdir(parents=True)
        result = {"every": 1, "n": 40, "eps_pixels": 4.0, "attack": "fgsm", "mode": "white", "top1_error": error,
                  "top5_error": error / 2, "clean_top1_error": 1.0, "clean_top5_error": 0.5}  # fmt: skip
        (path / "attacks" / "white-fgsm-eps4.json").write_text(json.dumps(result))
        return SimpleNamespace(path=path, name=name, seed=0, config={"mix": {"variant": variant}})

    md = robustness.attack_markdown([run("a", "mixup", 10.0), run("b", "mixup", 30.0), run("e", "erm", 50.0)])
    assert "| white box | top-1 | ERM | 1.00 | 50.00 | 90.7 / 99.9 |" in md
    assert "| white box | top-1 | mixup (a) | 1.00 | 10.00 | 75.2 / 99.6 |" in md
    assert "| white box | top-1 | mixup (b) | 1.00 | 30.00 | 75.2 / 99.6 |" in md
    assert "20.00" not in md  # no mean of the two models


def test_table3_counts_each_models_clean_error_once(tmp_path: Path) -> None:
    # a model attacked at two eps entered the clean cell twice: the mean stayed, the std shrank (5.48 for 7.07)
    runs = []
    for seed, clean in ((0, 30.0), (1, 40.0)):
        path = tmp_path / "m" / f"seed{seed}"
        (path / "attacks").mkdir(parents=True)
        for eps in (4.0, 8.0):
            result = {"every": 1, "n": 40, "eps_pixels": eps, "attack": "fgsm", "mode": "white", "top1_error": 60.0,
                      "top5_error": 30.0, "clean_top1_error": clean, "clean_top5_error": clean / 2}  # fmt: skip
            (path / "attacks" / f"white-fgsm-eps{eps:g}.json").write_text(json.dumps(result))
        runs.append(SimpleNamespace(path=path, name="m", seed=seed, config={"mix": {"variant": "mixup"}}))
    md = robustness.attack_markdown(runs)
    assert "| white box | top-1 | mixup | 35.00 ± 7.07 | 60.00 ± 0.00 | 60.00 ± 0.00 |" in md, md


def test_an_attack_belongs_to_the_weights_it_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    # an attack of an interrupted run, or of a run that trained on after it (a resume, raised epochs), stood in the
    # report and in `reproduce adversarial` as the finished model's numbers
    from tests.experiments.test_trainer import StopAt
    from vicinal.experiments.attacks import attack_is_current
    from vicinal.experiments.errors import LabWarning
    from vicinal.experiments.trainer import TrainingInterrupted

    cfg = ("name=t-erm", "mix.variant=erm", "train.seed=0", "train.reliability_diagram=false")
    run = tmp_path / "t-erm" / "seed0"
    with pytest.raises(TrainingInterrupted):
        Trainer(tiny_config("train.epochs=2", *cfg), run, quiet=True, callbacks=[StopAt(1, 1)]).fit()
    assert main(["attack", str(run), "--attack", "fgsm"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"vicinal: error: run '{run}' has not finished training (status: interrupted): an attack measures its final "
        f"model; finish it first (vicinal train --resume {run})\n"
    )
    Trainer(tiny_config("train.epochs=2", *cfg), run, resume=True, quiet=True).fit()
    # killed writes of another attack and of a report's own section file: no later run removed them (helper-108)
    (run / "attacks").mkdir()
    (tmp_path / "r1").mkdir()
    killed = plant_killed_writes(run / "attacks", ["white-fgsm-eps8.json"])
    killed += plant_killed_writes(tmp_path / "r1", ["datasize.png", "report.md"])
    assert main(["attack", str(run), "--attack", "fgsm"]) == 0
    done = run / "attacks" / "white-fgsm-eps4.json"
    first = json.loads(done.read_text())
    assert first["target_step"] == json.loads((run / "summary.json").read_text())["global_step"] == 10
    assert attack_is_current(first, run) and "## Table 3" in make_report([run], tmp_path / "r1")["markdown"]
    assert not any(p.exists() for p in killed)
    # the run trains on: its attack is of other weights, left out of the report with a warning, and measured
    # again by the reproduction's attack step
    Trainer(tiny_config("train.epochs=3", *cfg), run, resume=True, quiet=True).fit()
    assert not attack_is_current(json.loads(done.read_text()), run)
    recwarn.clear()
    md = make_report([run], tmp_path / "r2")["markdown"]
    assert "## Table 3" not in md
    said = [str(w.message) for w in recwarn if issubclass(w.category, LabWarning)]
    assert any(f"'{done}' measured other weights than '{run}'" in m for m in said), said
    plan = [{"config": Path("x/erm.yaml"), "cfg": load_config(run / "config.yaml"), "seed": 0, "run_dir": run}]
    source = tmp_path / "t-erm-source" / "seed1000"
    Trainer(
        tiny_config("train.epochs=1", "name=t-erm-source", "mix.variant=erm", "train.seed=1000"), source, quiet=True
    ).fit()
    plan.append(
        {
            "config": Path("x/erm-source.yaml"),
            "cfg": load_config(source / "config.yaml"),
            "seed": 1000,
            "run_dir": source,
        }
    )
    results = robustness.run_adversarial_attacks(plan, SimpleNamespace(quiet=True))
    white = next(r for r in results if r["mode"] == "white" and r["attack"] == "fgsm")
    assert white["target_step"] == 15 and attack_is_current(json.loads(done.read_text()), run)


def test_an_attack_is_checked_against_the_folder_it_lies_in(runs: dict[str, Path], tmp_path: Path) -> None:
    # the target path a result records is as the user typed it (often relative to another working directory) and
    # folders move: judged by it, a report made elsewhere dropped every result as "trained on"; a black-box source
    # that is gone cannot be checked and does not make the result stale
    from vicinal.experiments.attacks import attack_is_current, trained_step

    step = json.loads((runs["erm"] / "summary.json").read_text())["global_step"]
    result = {"target": "runs/elsewhere/seed0", "target_step": step, "source": None, "source_step": None}
    assert attack_is_current(result, runs["erm"])
    assert not attack_is_current({**result, "target_step": step + 1}, runs["erm"])
    gone = {**result, "source": str(tmp_path / "moved-away"), "source_step": 3}
    assert attack_is_current(gone, runs["erm"])
    there = {**result, "source": str(runs["source"]), "source_step": step + 1}
    assert not attack_is_current(there, runs["erm"])
    # a finished run of an older lab (no step count in its summary) is attacked, with the step count of its
    # checkpoint: its results still go stale when it trains on (with None recorded, they never did)
    old = tmp_path / "old"
    old.mkdir()
    summary = json.loads((runs["erm"] / "summary.json").read_text())
    (old / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "global_step"}))
    (old / "checkpoint.pt").write_bytes((runs["erm"] / "checkpoint.pt").read_bytes())
    assert trained_step(old) == trained_step(runs["erm"]) == step
    assert attack_is_current({**result, "target_step": step}, old)
    assert not attack_is_current({**result, "target_step": step - 1}, old)
    # such a run copied without its checkpoint, or with a broken one, cannot be checked: its result is taken as it
    # is, and the report does not fail on a file it otherwise never reads
    (old / "checkpoint.pt").write_bytes(b"broken")
    assert attack_is_current({**result, "target_step": step - 1}, old)
    (old / "checkpoint.pt").unlink()
    assert attack_is_current({**result, "target_step": step - 1}, old)


def _attacked(path: Path, attack: str, error: float, clean: float, world_size: int | None = None) -> SimpleNamespace:
    (path / "attacks").mkdir(parents=True)
    result = {"every": 1, "n": 40, "eps_pixels": 4.0, "attack": attack, "mode": "white", "top1_error": error,
              "top5_error": error / 2, "clean_top1_error": clean, "clean_top5_error": clean / 2}  # fmt: skip
    if attack == "ifgsm":
        result["steps"] = 10
    (path / "attacks" / f"white-{attack}-eps4.json").write_text(json.dumps(result))
    if world_size is not None:
        (path / "provenance.json").write_text(json.dumps({"world_size": world_size}))
    return SimpleNamespace(
        path=path, name=path.parent.name, seed=int(path.name[4:]), config={"mix": {"variant": "erm"}}
    )


def test_table3_keeps_runs_of_other_world_sizes_apart_as_the_main_table_does(tmp_path: Path) -> None:
    # seed 0 trained on 2 processes, seed 1 on 1: the main table shows "[1 of 2]" and "[2 of 2]"; Table 3 pooled
    # them as two seeds of one ERM row (30.00 ± 14.14)
    runs = [_attacked(tmp_path / "e" / f"seed{s}", "fgsm", 20.0 + 20 * s, 1.0, world_size=2 - s) for s in (0, 1)]
    md = robustness.attack_markdown(runs)
    assert "| white box | top-1 | ERM (e [1 of 2]) | 1.00 | 20.00 | 90.7 / 99.9 |" in md, md
    assert "| white box | top-1 | ERM (e [2 of 2]) | 1.00 | 40.00 | 90.7 / 99.9 |" in md
    assert "30.00" not in md


def test_table3_shows_the_clean_error_of_a_model_attacked_with_ifgsm_only(tmp_path: Path) -> None:
    md = robustness.attack_markdown([_attacked(tmp_path / "e" / "seed0", "ifgsm", 90.0, 12.0)])
    assert "| clean | I-FGSM eps 4 (10 steps) |" in md.replace("| mode | metric | method ", ""), md
    assert "| white box | top-1 | ERM | 12.00 | 90.00 | 90.7 / 99.9 |" in md


def _table2(tmp_path: Path) -> str:
    """The Table 2 section of the report over the fake runs under ``tmp_path / "runs"``."""
    md = make_report([tmp_path / "runs"], tmp_path / "out")["markdown"]
    return md[md.index("## Table 2") :]


def _stopped_early(run_dir: Path) -> None:
    """Mark a fake run as stopped by its step limit (not finished)."""
    summary = run_dir / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "max_steps"}))


def test_table2_names_two_groups_of_one_row_and_marks_unfinished_ones(tmp_path: Path) -> None:
    # a renamed variant of the c20 ERM row (another weight decay) printed a second, identical "| 20% | erm |" line,
    # and a row whose runs all stopped early showed no mark under "Measured after the last epoch"
    _fake_run(tmp_path / "runs", "c20-erm", "20/erm", 0, {"last_test_error": 40.0})
    _fake_run(tmp_path / "runs", "c20-erm-wd", "20/erm", 0, {"last_test_error": 50.0})
    _fake_run(tmp_path / "runs", "c50-erm", "50/erm", 0, {"last_test_error": 60.0})
    _stopped_early(tmp_path / "runs" / "c50-erm" / "seed0")
    table2 = _table2(tmp_path)
    assert "| 20% | erm (c20-erm) | 1 | - | 40.00 |" in table2, table2
    assert "| 20% | erm (c20-erm-wd) | 1 | - | 50.00 |" in table2
    assert "| 50% | erm | 1, 0/1 done | - | 60.00 |" in table2


def test_a_seed_given_to_reproduce_shifts_the_sources_seeds_too(tmp_path: Path) -> None:
    # `--set train.seed=5` replaced every row's first seed, the source's 1000 too: it trained at the ERM target's
    # seed, a bit-identical copy, and Table 3's black-box rows equalled the white-box ones
    from vicinal.experiments.orchestrate import plan_runs

    args = SimpleNamespace(table="adversarial", scale="cpu", seeds=2, out=tmp_path, overrides=["train.seed=5"])
    _, plan, _ = plan_runs(args)
    seeds = {(robustness._role(item), item["seed"]) for item in plan}
    assert seeds == {(role, s) for role in ("erm", "mixup") for s in (5, 6)} | {("source", 1005), ("source", 1006)}
    # and the attacks refuse a source that is its target's model
    same = [
        {**item, "seed": 5} if robustness._role(item) == "source" else item
        for item in plan
        if item["seed"] in (5, 1005)
    ]
    with pytest.raises(robustness.TaskError, match=r"the black-box source '.*' and its ERM target '.*' share seed 5"):
        robustness.run_adversarial_attacks(same, SimpleNamespace(scale="cpu", quiet=True))


def test_table3_numbers_the_parts_of_a_config_as_the_main_table_does(tmp_path: Path) -> None:
    # the main table sorts a config's runs by seed before it splits them by provenance; Table 3 split them in the
    # order they came, so "[1 of 2]" was seed 10's numbers there and seed 2's in the main table
    late = _attacked(tmp_path / "e" / "seed10", "fgsm", 90.0, 30.0, world_size=2)
    early = _attacked(tmp_path / "e" / "seed2", "fgsm", 50.0, 10.0, world_size=1)
    md = robustness.attack_markdown([late, early])
    assert "| white box | top-1 | ERM (e [1 of 2]) | 10.00 | 50.00 | 90.7 / 99.9 |" in md, md
    assert "| white box | top-1 | ERM (e [2 of 2]) | 30.00 | 90.00 | 90.7 / 99.9 |" in md


def test_a_seed_given_as_a_section_shifts_the_sources_seeds_too(tmp_path: Path) -> None:
    from vicinal.experiments.orchestrate import plan_runs

    args = SimpleNamespace(table="adversarial", scale="cpu", seeds=1, out=tmp_path, overrides=["train={seed: 5}"])
    _, plan, _ = plan_runs(args)
    assert sorted(item["seed"] for item in plan) == [5, 5, 1005]


def test_table2_marks_only_a_row_shown_from_unfinished_runs(tmp_path: Path) -> None:
    # one seed finished and one stopped: the row's numbers are the finished run's, "after the last epoch", unmarked
    _fake_run(tmp_path / "runs", "c20-erm", "20/erm", 0, {"last_test_error": 40.0})
    _fake_run(tmp_path / "runs", "c20-erm", "20/erm", 1, {"last_test_error": 70.0})
    _stopped_early(tmp_path / "runs" / "c20-erm" / "seed1")
    table2 = _table2(tmp_path)
    assert "| 20% | erm | 1 | - | 40.00 |" in table2, table2


def test_reproduce_quiet_attacks_decode_without_a_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the attack step builds each target's test data: on a decode-cache miss its bar showed under --quiet
    from vicinal.experiments.data import images

    quiet_inside: list[bool] = []

    def fake_attack(target: Path, **kwargs: object) -> dict:
        quiet_inside.append(images._QUIET.get())
        return {"mode": "white", "target_name": "t", "target_seed": 0, "top1_error": 1.0, "top5_error": 0.0}

    monkeypatch.setattr(robustness, "attack_run", fake_attack)

    def item(role: str, variant: str, seed: int) -> dict:
        cfg = SimpleNamespace(mix=SimpleNamespace(variant=variant), name=role)
        return {"config": Path(f"x/{role}.yaml"), "cfg": cfg, "seed": seed, "run_dir": tmp_path / role}

    plan = [item("erm", "erm", 0), item("erm-source", "erm", 1000), item("mixup", "mixup", 0)]
    for quiet in (True, False):
        quiet_inside.clear()
        robustness.run_adversarial_attacks(plan, SimpleNamespace(quiet=quiet))
        assert quiet_inside == [quiet] * 8
    assert images._QUIET.get() is False


def test_an_eval_batch_size_of_zero_is_refused_not_read_as_the_default(runs: dict[str, Path]) -> None:
    from vicinal.experiments.attacks import attack_run

    with pytest.raises(ValueError, match=r"^eval_batch_size must be >= 1, got 0$"):
        attack_run(runs["erm"], eval_batch_size=0, write=False)
    with pytest.raises(TypeError, match=r"^eval_batch_size must be an int, got bool \(False\)$"):
        attack_run(runs["erm"], eval_batch_size=False, write=False)
