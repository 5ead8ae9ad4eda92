"""The ablation table (Table 5): its two sweeps of configs, 2-step smoke runs of every row, the findings checker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.experiments.lab_helpers import SYNTHETIC, one_thread, register_synthetic  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments.config import MixConfig, apply_overrides, config_to_dict, diff_configs, load_config
from vicinal.experiments.report import find_runs, load_run, make_report
from vicinal.experiments.runs import write_provenance
from vicinal.experiments.tasks import ablation as ablation_module
from vicinal.experiments.tasks import configs_dir, get_table
from vicinal.experiments.tasks.ablation import (
    CPU_ROWS,
    PAPER_ABLATION,
    ROWS,
    Finding,
    ablation_configs,
    ablation_findings,
    findings_markdown,
    row_errors,
)
from vicinal.experiments.trainer import Trainer, summarize


def test_rows_cover_table5() -> None:
    keys = [r.key for r in ROWS]
    assert len(keys) == len(set(keys)) == 20
    assert {r.family for r in ROWS} == {
        "erm",
        "mixup",
        "mixup_knn",
        "latent",
        "mix_inputs_only",
        "label_smoothing",
        "mix_inputs_label_smoothing",
        "gaussian_noise",
    }
    paper = {load_config(p).row: load_config(p) for p in ablation_configs("paper")}
    layers = [paper[f"{r.key}/wd1e-4"].mix.layer for r in ROWS if r.family == "latent"]
    assert layers == ["layer1", "layer2", "layer3", "layer4", "head"]


def test_headers_count_the_methods_run_and_the_missing_label_smoothing_rows() -> None:
    """The paper's Table 5 has 22 rows, four of them "mix inputs + label smoothing" (eps lost in the text); the
    sweep runs one of those four: neither header may claim every row, and both state the count."""
    sweep = configs_dir() / "ablation" / "paper.yaml"
    header = " ".join(line.lstrip("# ") for line in sweep.read_text().splitlines() if line.startswith("#"))
    for text in (header, ablation_module.__doc__ or ""):
        flat = " ".join(text.split())
        assert "every row of table 5" not in flat.lower()
        assert f"{len(ROWS)} methods" in flat and "22 rows" in flat
        assert 'less three of its four "mix inputs + label smoothing (AC+RP)" rows' in flat
    assert sum(r.family == "mix_inputs_label_smoothing" for r in ROWS) == 1


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_the_sweeps_hold_the_tables_rows(scale: str) -> None:
    """configs/ablation/<scale>.yaml: ROWS (paper) or CPU_ROWS (cpu) x both weight decays, labelled as ROWS says."""
    keys = [r.key for r in ROWS] if scale == "paper" else list(CPU_ROWS)
    files = ablation_configs(scale)
    expected = sorted(f"{k}-{wd}.yaml" for k in keys for wd in ("wd1e-4", "wd5e-4"))
    assert [p.name for p in files] == expected and len(files) == {"paper": 40, "cpu": 18}[scale]
    label = {r.key: r.label for r in ROWS}
    suffix = "-cpu" if scale == "cpu" else ""
    for path in files:
        cfg = load_config(path)
        key, wd = cfg.row.split("/")
        assert path.name == f"{key}-{wd}.yaml" and cfg.name == f"ablation-{key}-{wd}{suffix}"
        assert cfg.notes == f"Table 5 row '{label[key]}' at weight decay {cfg.optim.weight_decay:g}, {scale} scale"


def test_paper_and_cpu_configs() -> None:
    paper = {p.name: load_config(p) for p in ablation_configs("paper")}
    cpu = {p.name: load_config(p) for p in ablation_configs("cpu")}
    assert set(cpu) < set(paper) and {n.rsplit("-wd", 1)[0] for n in cpu} == set(CPU_ROWS)
    recipes = {
        scale: load_config(configs_dir() / "cifar" / scale / "cifar10-preact_resnet18-erm.yaml")
        for scale in ("paper", "cpu")
    }
    for name, cfg in paper.items():
        assert (cfg.train.epochs, cfg.schedule.milestones, cfg.model.kwargs["width"]) == (200, [100, 150], 64)
        assert cfg.data.subset_per_class is None and cfg.optim.lr == 0.1 and cfg.data.batch_size == 128
        assert cfg.optim.weight_decay == (1e-4 if "wd1e-4" in name else 5e-4)
        assert cfg.table == "ablation" and cfg.row.endswith(("/wd1e-4", "/wd5e-4"))
        # Each row is its scale's cifar recipe with only the weight decay and the mixing changed.
        for scale, c in (("paper", cfg), ("cpu", cpu.get(name))):
            if c is None:
                continue
            changed = set(diff_configs(recipes[scale], c)) - {"name", "notes", "table", "row"}
            assert changed <= {"optim.weight_decay"} | {f"mix.{k}" for k in MixConfig.__dataclass_fields__}, name
        c = cpu.get(name)
        if c is None:
            continue
        assert c.name == cfg.name + "-cpu" and c.row == cfg.row
        # The method is the same at both scales; only the neighbour count of KNN rows is scaled.
        assert c.mix.variant == cfg.mix.variant and c.mix.layer == cfg.mix.layer
        if cfg.mix.pairing == "knn":
            assert (cfg.mix.knn_k, c.mix.knn_k) == (200, 8)
    assert paper["erm-wd1e-4.yaml"].mix.variant == "erm"
    assert paper["mix-inputs-only-sc-knn-wd1e-4.yaml"].mix.knn_same_class is True
    assert paper["mix-inputs-only-sc-rp-wd1e-4.yaml"].mix.pairing == "same_class"
    assert paper["latent-layer5-wd5e-4.yaml"].mix.layer == "head"
    assert paper["gaussian-noise-sigma0.2-wd1e-4.yaml"].mix.sigma == 0.2
    assert paper["label-smoothing-eps0.05-wd1e-4.yaml"].mix.smoothing == 0.05
    assert set(PAPER_ABLATION) <= {c.row for c in paper.values()}


def test_table_registered() -> None:
    table = get_table("ablation")
    assert table.configs("cpu") == ablation_configs("cpu")
    with pytest.raises(ValueError, match="unknown scale 'gpu'"):
        ablation_configs("gpu")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        get_table("ablation").configs("huge")


@pytest.mark.parametrize("path", ablation_configs("cpu"), ids=lambda p: p.stem)
def test_every_row_trains_two_steps(path: Path, tmp_path: Path) -> None:
    """Each cpu config, on synthetic 8x8 data with a width-4 network, takes 2 optimiser steps and is evaluated."""
    register_synthetic()
    cfg = load_config(path)
    overrides = [
        f"data.name={SYNTHETIC}",
        "data.subset_per_class=null",
        "data.kwargs={}",
        "data.batch_size=32",
        "data.eval_batch_size=64",
        "model.kwargs.width=4",
        "train.device=cpu",
        "train.epochs=1",
        "train.max_steps=2",
    ]
    if cfg.mix.pairing == "knn":
        overrides.append("mix.knn_k=4")  # the synthetic set has 16 images per class
    cfg = apply_overrides(cfg, overrides)
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    summary = trainer.fit()
    assert summary["status"] == "max_steps" and trainer.global_step == 2
    assert summary["median_last10_test_error"] is not None
    assert (trainer.latent is not None) == (cfg.mix.layer is not None)
    assert (trainer.knn is not None) == (cfg.mix.pairing == "knn")
    assert (trainer.mixer is None) == (cfg.mix.variant == "erm")


# -- findings on synthetic summaries ------------------------------------------------------------------------------
def _errors(**overrides: float) -> dict[str, tuple[float, int]]:
    """A Table 5 where every finding holds (paper-like numbers), with some rows overridden."""
    base = {
        "erm": (5.5, 5.2),
        "mixup-acrp-a1": (4.2, 4.7),
        "mixup-acrp-a0.5": (4.5, 4.8),
        "mixup-acknn": (5.0, 5.3),
        "latent-layer1": (4.4, 4.5),
        "latent-layer2": (4.6, 4.7),
        "latent-layer3": (5.4, 5.3),
        "latent-layer4": (5.9, 5.4),
        "latent-layer5": (5.8, 5.1),
        "mix-inputs-only-sc-knn": (5.9, 6.5),
        "mix-inputs-only-ac-knn": (5.3, 5.5),
        "mix-inputs-only-sc-rp": (5.5, 5.4),
        "mix-inputs-only-ac-rp": (5.1, 5.2),
        "label-smoothing-eps0.05": (5.3, 5.0),
        "label-smoothing-eps0.1": (5.4, 5.0),
        "label-smoothing-eps0.2": (5.5, 5.1),
        "mix-inputs-label-smoothing": (4.9, 4.8),
        "gaussian-noise-sigma0.05": (5.4, 5.0),
        "gaussian-noise-sigma0.1": (5.6, 5.2),
        "gaussian-noise-sigma0.2": (5.9, 5.6),
    }
    out = {}
    for key, (a, b) in base.items():
        out[f"{key}/wd1e-4"] = (overrides.get(f"{key}/wd1e-4", a), 2)
        out[f"{key}/wd5e-4"] = (overrides.get(f"{key}/wd5e-4", b), 2)
    return out


def test_findings_all_hold() -> None:
    findings = ablation_findings(_errors())
    assert [f.holds for f in findings] == [True, True, True, True]
    assert "best mixup: mixup-acrp-a1/wd1e-4 4.20 (n=2); best other: latent-layer1/wd1e-4 4.40 (n=2)" in (
        findings[0].evidence
    )
    # gains per layer: -0.1, -0.1, 0.1, 0.5, 0.7 -> ranks 1.5, 1.5, 3, 4, 5 against 1..5
    assert "Spearman rho 0.97" in findings[3].evidence


def test_findings_fail_each() -> None:
    f = ablation_findings(_errors(**{"latent-layer1/wd5e-4": 4.0}))
    assert [x.holds for x in f][:2] == [False, True]
    f = ablation_findings(_errors(**{"gaussian-noise-sigma0.05/wd5e-4": 4.7}))
    assert f[1].holds is False and "best other: gaussian-noise-sigma0.05/wd5e-4 4.70" in f[1].evidence
    f = ablation_findings(_errors(**{"erm/wd5e-4": 5.6}))
    assert f[2].holds is False and "ERM: erm/wd1e-4 5.50 (n=2) vs erm/wd5e-4 5.60 (n=2) (fails)" in f[2].evidence
    f = ablation_findings(_errors(**{"mixup-acrp-a1/wd5e-4": 4.1}))
    assert f[2].holds is False and f[0].holds is True
    # decreasing advantage of the larger weight decay with the layer: the finding fails
    dec = {f"latent-layer{k}/wd5e-4": 4.0 + 0.3 * k for k in range(1, 6)}  # gain -0.2 k
    dec.update({f"latent-layer{k}/wd1e-4": 4.0 + 0.1 * k for k in range(1, 6)})
    assert ablation_findings(_errors(**dec))[3].holds is False


def test_findings_missing_rows() -> None:
    f = ablation_findings({"erm/wd1e-4": (5.0, 1)})
    assert [x.holds for x in f] == [None, None, None, None]
    assert "needs rows erm/wd1e-4, erm/wd5e-4" in f[2].evidence
    md = findings_markdown([Finding("c", True, "e"), Finding("d", None, "f")])
    assert md == "- **holds**: c. e.\n- **undetermined**: d. f."


def _summary_run(
    root: Path, row: str, seed: int, errors: list[float], status: str = "complete", name: str | None = None
) -> None:
    name = name or row.replace("/", "-")
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    cfg = {"name": name, "table": "ablation", "row": row, "train": {"seed": seed}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    records = [
        {"epoch": i + 1, "test_error": e, "train_loss": 1.0, "train_error": 1.0, "epoch_time_s": 1.0}
        for i, e in enumerate(errors)
    ]
    (run / "summary.json").write_text(json.dumps(summarize(records, status)))


def test_row_errors_from_run_folders(tmp_path: Path) -> None:
    # median of the last 10 of 12 epochs: epochs 3..12
    _summary_run(tmp_path, "erm/wd1e-4", 0, [90, 80] + [6.0] * 5 + [5.0] * 5)  # median 5.5
    _summary_run(tmp_path, "erm/wd1e-4", 1, [4.0] * 12)
    _summary_run(tmp_path, "erm/wd5e-4", 0, [3.0] * 12, status="interrupted")  # ignored: not complete
    runs = [load_run(p) for p in find_runs([tmp_path])]
    errors = row_errors(runs)
    assert errors == {"erm/wd1e-4": (4.75, 2)}
    assert ablation_findings(runs)[2].holds is None
    assert config_to_dict(load_config(ablation_configs("cpu")[0]))["table"] == "ablation"


def _two_seeds(root: Path, rows: dict[str, tuple[float, float]]) -> list:
    """Complete runs at seeds 0 and 1 whose median of the last 10 epochs is the given pair of errors."""
    for row, errs in rows.items():
        for seed, e in enumerate(errs):
            _summary_run(root, row, seed, [e] * 12)
    return [load_run(p) for p in find_runs([root])]


def test_findings_pair_rows_seed_by_seed(tmp_path: Path) -> None:
    runs = _two_seeds(
        tmp_path,
        {
            "mixup-acrp-a1/wd1e-4": (4.0, 4.2),
            "latent-layer1/wd1e-4": (5.0, 5.1),  # mixup - latent: -1.0, -0.9: interval [-1.59, -0.31]
            "mix-inputs-label-smoothing/wd1e-4": (5.5, 5.0),
            "erm/wd1e-4": (5.6, 5.6),  # mix inputs + LS - ERM: -0.1, -0.6: interval [-3.53, +2.83]
        },
    )
    f = ablation_findings(runs)
    assert [x.holds for x in f] == [True, True, None, None]
    (label, first), (label2, second) = f[0].paired[0], f[1].paired[0]
    assert label == "mixup-acrp-a1/wd1e-4 - latent-layer1/wd1e-4" and first.diffs == pytest.approx((-1.0, -0.9))
    assert first.ci_high == pytest.approx(-0.95 + 12.7062 * (0.1 / 2**0.5) / 2**0.5, abs=1e-3)
    assert label2 == "mix-inputs-label-smoothing/wd1e-4 - erm/wd1e-4" and second.diffs == pytest.approx((-0.1, -0.6))
    assert (f[0].beyond_noise, f[1].beyond_noise, f[2].beyond_noise) == (True, False, None)
    assert "; paired mixup-acrp-a1/wd1e-4 - latent-layer1/wd1e-4: -0.95 [-1.59, -0.31] (n=2," in f[0].evidence
    md = findings_markdown(f).splitlines()
    assert md[0].startswith("- **holds**: mixup (AC+RP) is the best method. best mixup: mixup-acrp-a1/wd1e-4 4.10")
    assert md[1].startswith("- **holds in direction only**: mix inputs + label smoothing is second")
    # from means alone (no seeds) nothing is paired and the wording is the plain one
    assert ablation_findings(row_errors(runs))[1].paired == () and "**holds**: mix" in findings_markdown(
        ablation_findings(row_errors(runs))
    )


def test_report_pairs_rows_with_erm_at_their_weight_decay(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _two_seeds(
        runs,
        {
            "erm/wd1e-4": (6.0, 7.0),
            "erm/wd5e-4": (5.0, 6.1),
            "latent-layer1/wd1e-4": (5.0, 5.5),
            "latent-layer1/wd5e-4": (4.0, 4.6),
            "mixup-acrp-a1/wd1e-4": (4.5, 5.0),
            "mixup-acrp-a1/wd5e-4": (5.5, 6.1),
        },
    )
    md = make_report([runs], tmp_path / "out")["markdown"]
    pairs = [line for line in md.splitlines() if "| median of last 10 |" in line]
    assert [line.split(" | ")[:2] for line in pairs] == [
        ["| latent-layer1-wd1e-4", "erm-wd1e-4"],
        ["| latent-layer1-wd5e-4", "erm-wd5e-4"],
        ["| mixup-acrp-a1-wd1e-4", "erm-wd1e-4"],
        ["| mixup-acrp-a1-wd5e-4", "erm-wd5e-4"],
    ]
    assert "| 0: -1.00, 1: -1.50 |" in pairs[0] and "| 0: -1.00, 1: -1.50 |" in pairs[1]
    # the findings section, from these runs: ERM prefers 5e-4 and mixup 1e-4 on both seeds, beyond the noise
    assert "## Table 5: the paper's findings at this scale" in md
    assert "- **holds**: ERM prefers weight decay 5e-4, mixup (AC+RP, alpha 1) prefers 1e-4." in md
    assert (
        "paired erm/wd5e-4 - erm/wd1e-4: -0.95 [-1.59, -0.31]" in md
        and "paired mixup-acrp-a1/wd1e-4 - mixup-acrp-a1/wd5e-4" in md
    )


def test_a_row_claimed_by_runs_of_several_configs_is_left_out_of_the_findings(tmp_path: Path) -> None:
    # a config derived with base: keeps its parent's row: its seeds replaced the row's own in the findings' average
    runs = tmp_path / "runs"
    _two_seeds(runs, {"mixup-acrp-a1/wd1e-4": (4.0, 4.2), "erm/wd1e-4": (5.6, 5.6)})
    for seed in (0, 1):
        _summary_run(runs, "mixup-acrp-a1/wd1e-4", seed, [9.0] * 12, name="my-mixup-variant")
    md = make_report([runs], tmp_path / "out")["markdown"]
    assert (
        "- row mixup-acrp-a1/wd1e-4 is claimed by runs of 2 configs (mixup-acrp-a1-wd1e-4, my-mixup-variant): left "
        "out of the findings; report them separately" in md
    )
    # without the row, the first finding has no mixup runs to judge (with the derived seeds it said 'does not hold')
    assert "needs mixup AC+RP runs and runs of at least one other method" in md


def test_a_row_whose_seeds_ran_apart_is_left_out_of_the_findings(tmp_path: Path) -> None:
    # the table splits a config's seeds that ran with another number of processes; the findings averaged them
    runs = tmp_path / "runs"
    _two_seeds(runs, {"mixup-acrp-a1/wd1e-4": (4.0, 4.2), "erm/wd1e-4": (5.6, 5.6)})
    for seed, world_size in ((0, 1), (1, 2)):
        write_provenance(runs / "mixup-acrp-a1-wd1e-4" / f"seed{seed}", {"world_size": world_size})
    md = make_report([runs], tmp_path / "out")["markdown"]
    assert (
        "- row mixup-acrp-a1/wd1e-4: its seeds ran on other data or with another number of processes (see the "
        "table): left out of the findings" in md
    )
    assert "needs mixup AC+RP runs and runs of at least one other method" in md
