"""Config parsing: YAML files, strict --set overrides, and every error by its message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.experiments.lab_helpers import tiny_config
from vicinal.experiments.build import mixer_options
from vicinal.experiments.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    check_seeds,
    config_changes,
    config_exists,
    config_from_dict,
    config_to_dict,
    diff_configs,
    load_config,
    shipped_configs,
    sweep_rows,
    unread_by_both,
    unread_keys,
)
from vicinal.experiments.demo import DEMO_CONFIG
from vicinal.experiments.paths import configs_dir
from vicinal.experiments.runs import dump_config

CONFIGS = configs_dir()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\noptim: {lr: 0.05, betas: [0.8, 0.9]}\ntrain: {epochs: 3}\nmix:\n")
    cfg = load_config(path)
    assert cfg.name == "x" and cfg.optim.lr == 0.05 and cfg.optim.betas == [0.8, 0.9] and cfg.train.epochs == 3
    assert cfg.optim.momentum == 0.9  # untouched default
    assert cfg.mix == ExperimentConfig().mix  # an empty section keeps its defaults


def test_overrides_parse_yaml_values() -> None:
    cfg = apply_overrides(
        ExperimentConfig(),
        [
            "optim.lr=1e-3",  # YAML 1.1 reads this as a string; float fields accept it
            "optim.weight_decay=5",  # int widened to float
            "schedule.milestones=[100, 150]",
            "train.max_steps=null",
            "mix.variant=mixup",
            "mix.layer=layer3",
            "model.kwargs.width=16",
            "model.kwargs.nested.deep=true",
            "data.kwargs={download: true}",
            "notes=a=b",  # only the first '=' splits
        ],
    )
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.weight_decay == 5.0 and isinstance(cfg.optim.weight_decay, float)
    assert cfg.schedule.milestones == [100, 150]
    assert cfg.train.max_steps is None
    assert cfg.mix.layer == "layer3"
    assert cfg.model.kwargs == {"width": 16, "nested": {"deep": True}}
    assert cfg.data.kwargs == {"download": True}
    assert cfg.notes == "a=b"


def test_overrides_do_not_mutate_the_input() -> None:
    base = ExperimentConfig()
    apply_overrides(base, ["optim.lr=0.5", "model.kwargs.width=3"])
    assert base.optim.lr == 0.1 and base.model.kwargs == {}


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (
            "optim.lrr=1",
            r"unknown config key 'optim.lrr' \(did you mean 'optim.lr'\?\); valid keys in 'optim': name, lr",
        ),
        ("foo=1", r"unknown config key 'foo'; valid keys in the top level: name, notes"),
        ("optim.lr=abc", r"config key 'optim.lr' expects float, got str 'abc'"),
        ("train.epochs=true", r"config key 'train.epochs' expects int, got bool True"),
        ("train.epochs=2.5", r"config key 'train.epochs' expects int, got float 2.5"),
        ("train.max_steps=x", r"config key 'train.max_steps' expects int \| None, got str 'x'"),
        ("schedule.milestones=[1, a]", r"config key 'schedule.milestones\[1\]' expects int, got str 'a'"),
        ("schedule.milestones=5", r"config key 'schedule.milestones' expects list\[int\], got int 5"),
        ("model.kwargs=3", r"config key 'model.kwargs' expects dict\[str, any\], got int 3"),
        ("train.compile=yes please", r"config key 'train.compile' expects bool, got str 'yes please'"),
        ("optim.lr=.nan", r"config key 'optim.lr' expects a finite float, got float nan"),
        ("optim=3", r"config section 'optim' must be a mapping, got int 3"),
        ("optim.lr.x=1", r"override key 'optim.lr.x': 'optim.lr' is a float, not a section"),
        ("optim.lr", r"override 'optim.lr' must look like key=value"),
        ("optim..lr=1", r"override key 'optim..lr' is malformed"),
        ("optim.lr=[1", r"override 'optim.lr=\[1': the value '\[1' is not valid YAML"),
        ("optim.name=rmsprop", r"config key 'optim.name' must be one of sgd, adam, got 'rmsprop'"),
        ("schedule.name=poly", r"config key 'schedule.name' must be one of multistep, cosine, constant, step"),
        ("train.amp=fp8", r"config key 'train.amp' must be one of none, bf16, fp16, got 'fp8'"),
        ("train.device=tpu", r"config key 'train.device' must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        ("train.epochs=0", r"config key 'train.epochs' must be >= 1, got 0"),
        ("train.eval_last=-1", r"config key 'train.eval_last' must be >= 0, got -1"),
        ("train.max_steps=0", r"config key 'train.max_steps' must be >= 1 or null, got 0"),
        ("train.threads=0", r"config key 'train.threads' must be >= 1 or null, got 0"),
        # a torch.set_num_threads(100000) traceback from whichever library next started a thread
        ("train.threads=100000", r"config key 'train.threads' must be <= 1024 or null, got 100000"),
        # YAML 1.1 reads 1e999 as a string, which float() turned into inf (trained a diverging epoch)
        ("optim.lr=1e999", r"config key 'optim.lr' expects a finite float, got str '1e999'"),
        ("mix=null", r"override 'mix=null' would reset the section 'mix' to its defaults; set its keys instead"),
        ("mix.pairing=bogus", r"config key 'mix.pairing' must be one of random, same_class, roll, flip, knn, matching"),
        ("optim.lr=-1", r"config key 'optim.lr' must be >= 0, got -1.0"),
        ("train.seed=-1", r"config key 'train.seed' must be >= 0, got -1$"),
        ("optim.betas=[0.9]", r"config key 'optim.betas' must hold 2 floats, got \[0.9\]"),
        ("schedule.milestones=[5, 2]", r"config key 'schedule.milestones' must be increasing, got \[5, 2\]"),
        # options the default multistep schedule never reads: accepted, recorded in config.yaml, ignored
        (
            "schedule.eta_min=0.001",
            r"'schedule.eta_min' \(0.001\) is not used by schedule.name 'multistep' \(only by cosine\)$",
        ),
        (
            "schedule.step_size=10",
            r"'schedule.step_size' \(10\) is not used by schedule.name 'multistep' \(only by step\)$",
        ),
        ("schedule.milestones=[-1, 5]", r"config key 'schedule.milestones' must be epochs >= 0, got \[-1, 5\]$"),
        ("mix.variant=mixupp", r"config key 'mix.variant' must be one of erm, mixup, cutmix"),
        ("mix.variant=label_smoothing", r"mix.variant 'label_smoothing' needs config key 'mix.smoothing' > 0"),
        ("mix.variant=gaussian_noise", r"mix.variant 'gaussian_noise' needs config key 'mix.sigma' > 0, got 0.0"),
    ],
)
def test_override_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(ExperimentConfig(), [override])


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        (
            {"name": "cosine", "milestones": [100, 150]},
            r"'schedule.milestones' \(\[100, 150\]\) is not used by schedule.name 'cosine' \(only by multistep\)$",
        ),
        (
            {"name": "constant", "gamma": 0.5},
            r"'schedule.gamma' \(0.5\) is not used by schedule.name 'constant' \(only by multistep, step\)$",
        ),
        ({"name": "step", "milestones": [3]}, r"'schedule.milestones' \(\[3\]\) is not used by schedule.name 'step'"),
        (
            {"name": "multistep", "gamma": 0.5},
            r"'schedule.gamma' \(0.5\) is not used by schedule.name 'multistep' without schedule.milestones$",
        ),
        ({"name": "cosine", "step_size": 5}, r"'schedule.step_size' \(5\) is not used by schedule.name 'cosine'"),
    ],
)
def test_schedule_options_the_schedule_ignores_are_refused(schedule: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"schedule": schedule})


def test_schedule_options_the_schedule_reads_are_accepted() -> None:
    for schedule in (
        {"name": "multistep", "milestones": [2, 4], "gamma": 0.2},
        {"name": "step", "step_size": 3, "gamma": 0.5},
        {"name": "cosine", "eta_min": 1e-4, "warmup_epochs": 1, "warmup_start_lr": 0.01},
        {"name": "constant", "warmup_epochs": 2},
    ):
        cfg = config_from_dict({"schedule": schedule})
        assert {k: getattr(cfg.schedule, k) for k in schedule} == schedule


def test_cross_field_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"'mix.two_label' needs mix.variant in erm, mixup.*got variant 'mix_inputs_only'"
    ):
        config_from_dict({"mix": {"variant": "mix_inputs_only", "two_label": True}})
    with pytest.raises(
        ConfigError, match=r"'mix.two_label' needs .*and mix.smoothing 0, got variant 'mixup' with smoothing 0.1"
    ):
        config_from_dict({"mix": {"variant": "mixup", "two_label": True, "smoothing": 0.1}})
    with pytest.raises(ConfigError, match=r"'mix.layer' \(latent mixing\) needs mix.variant 'mixup', got 'cutmix'"):
        config_from_dict({"mix": {"variant": "cutmix", "layer": "layer2"}})
    assert issubclass(ConfigError, ValueError)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file '.*nope.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"config file '.*c.yaml' is not valid YAML at line 3: expected ','"):
        load_config(write(tmp_path, "name: x\noptim: {lr: [1\n"))
    with pytest.raises(ConfigError, match=r"config file '.*c.yaml' must hold a mapping at the top level, got list"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'train.epoch' \(did you mean 'train.epochs'\?\); valid keys in 'train': epochs.*\(in '.*c.yaml'\)",
    ):
        load_config(write(tmp_path, "train: {epoch: 3}\n"))
    path = write(tmp_path, "train: {epochs: 3}\n")
    with pytest.raises(
        ConfigError, match=r"'train.epochs' must be >= 1, got 0 \(in '.*c.yaml' with --set train.epochs=0\)"
    ):
        load_config(path, ["train.epochs=0"])


def test_roundtrip_and_diff(tmp_path: Path) -> None:
    cfg = apply_overrides(
        ExperimentConfig(), ["model.kwargs.width=8", "schedule.milestones=[2, 4]", "mix.variant=mixup"]
    )
    dump_config(cfg, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg
    other = apply_overrides(cfg, ["optim.lr=0.3", "model.kwargs.width=9"])
    assert diff_configs(cfg, other) == ["model.kwargs", "optim.lr"]
    assert diff_configs(cfg, cfg) == []


def test_paper_configs_hold_the_papers_settings() -> None:
    files = [CONFIGS / "cifar" / "paper" / f"{row}.yaml" for row in sweep_rows(CONFIGS / "cifar" / "paper.yaml")]
    assert len(files) == 12
    rows = set()
    for f in files:
        cfg = load_config(f)
        rows.add(cfg.row)
        assert cfg.table == "cifar" and cfg.name == f.stem
        assert (cfg.train.epochs, cfg.data.batch_size, cfg.optim.name) == (200, 128, "sgd")
        assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-4)
        assert cfg.schedule.name == "multistep" and cfg.schedule.gamma == 0.1
        wrn = cfg.model.name == "wrn"
        assert cfg.schedule.milestones == ([60, 120, 180] if wrn else [100, 150])
        assert cfg.data.augment and cfg.data.subset_per_class is None
        # the paper's batch of one process; the original CIFAR release, never the JPEG re-encoded copy
        assert cfg.data.global_batch_size == 128
        source = {"cifar10": {"source": "torchvision", "download": True}, "cifar100": {"download": True}}
        assert cfg.data.kwargs == source[cfg.data.name]
        assert cfg.model.kwargs.get("dropout", 0.0) == 0.0
        if cfg.mix.variant == "mixup":
            assert cfg.mix.alpha == 1.0 and f.stem.endswith("-mixup")
        else:
            assert cfg.mix.variant == "erm" and f.stem.endswith("-erm")
    assert len(rows) == 12


def test_cpu_configs_differ_only_in_the_documented_ways() -> None:
    erm = load_config(CONFIGS / "cifar" / "cpu" / "cifar10-preact_resnet18-erm.yaml")
    mix = load_config(CONFIGS / "cifar" / "cpu" / "cifar10-preact_resnet18-mixup.yaml")
    assert diff_configs(erm, mix) == ["mix.variant", "name", "notes", "row"]
    assert mix.mix.variant == "mixup" and mix.mix.alpha == 1.0 and erm.mix.variant == "erm"
    paper = load_config(CONFIGS / "cifar" / "paper" / "cifar10-preact_resnet18-erm.yaml")
    changed = set(diff_configs(paper, erm))
    assert changed == {
        "name",
        "notes",
        "data.eval_batch_size",
        "data.subset_per_class",
        "data.kwargs",  # the paper row trains on the original CIFAR-10, the cpu one on the shared JPEG copy
        "data.global_batch_size",  # the paper's batch is checked against the number of processes
        "model.kwargs",
        "schedule.milestones",
        "train.epochs",
        # the regime recipe's evaluation plan: test every 25 epochs and each of the last 10 (their median is the
        # metric), un-augmented training error every 25, one thread, checkpoints every 5 epochs
        "train.eval_every",
        "train.eval_last",
        "train.train_eval_every",
        "train.threads",
        "train.checkpoint_every",
    }
    # the rule of the regime: 2,000 training images, 150 epochs, lr /10 at 50% and 75%
    assert (erm.data.subset_per_class, erm.train.epochs, erm.schedule.milestones) == (200, 150, [75, 112])


def test_demo_yaml_mirrors_the_embedded_default() -> None:
    assert load_config(CONFIGS / "demo" / "digits.yaml") == config_from_dict(DEMO_CONFIG)


def test_config_to_dict_is_plain() -> None:
    d = config_to_dict(ExperimentConfig())
    assert d["optim"]["betas"] == [0.9, 0.999] and d["train"]["max_steps"] is None
    assert config_from_dict(d) == ExperimentConfig()


# -- sweeps ------------------------------------------------------------------------------------------------------------
SWEEP = """\
base: recipe.yaml
name: "exp-{method}-{wd}"
notes: "{label} at weight decay {wd}"
row: "{method}/{wd}"
sweep:
  config: "{method}-{wd}"
  rows:
    - method:
        erm: {vars: {label: ERM}, mix: {variant: erm}}
        mixup: {vars: {label: mixup}, mix.variant: mixup, mix.alpha: 0.5}
      wd:
        wd1e-4: {optim: {weight_decay: 1.0e-4}}
        wd5e-4: {optim.weight_decay: 5.0e-4}
    - method:
        cutmix: {vars: {label: CutMix}, mix: {variant: cutmix}}
      wd: {wd0: {optim: {weight_decay: 0.0}}}
"""


def _sweep_folder(tmp_path: Path, text: str = SWEEP) -> Path:
    (tmp_path / "recipe.yaml").write_text("name: recipe\ntrain: {epochs: 3}\nmix: {alpha: 2.0}\n")
    (tmp_path / "grid.yaml").write_text(text)
    return tmp_path / "grid.yaml"


def test_a_sweep_expands_in_memory_into_named_rows(tmp_path: Path) -> None:
    sweep = _sweep_folder(tmp_path)
    # the union of the two products, first axis outermost, in declared order
    assert sweep_rows(sweep) == ["erm-wd1e-4", "erm-wd5e-4", "mixup-wd1e-4", "mixup-wd5e-4", "cutmix-wd0"]
    row = tmp_path / "grid" / "mixup-wd5e-4.yaml"
    assert not row.exists() and config_exists(row) and not config_exists(tmp_path / "grid" / "nope.yaml")
    cfg = load_config(row)
    # templates filled from the axis ids and vars; dotted keys; the base underneath; the row over the common keys
    assert (cfg.name, cfg.notes, cfg.row) == ("exp-mixup-wd5e-4", "mixup at weight decay wd5e-4", "mixup/wd5e-4")
    assert (cfg.mix.variant, cfg.mix.alpha, cfg.optim.weight_decay, cfg.train.epochs) == ("mixup", 0.5, 5e-4, 3)
    erm = load_config(tmp_path / "grid" / "erm-wd1e-4")  # with or without .yaml
    assert (erm.mix.variant, erm.mix.alpha, erm.optim.weight_decay) == ("erm", 2.0, 1e-4)  # alpha from the base
    assert diff_configs(erm, load_config(tmp_path / "grid" / "erm-wd5e-4.yaml")) == [
        "name", "notes", "optim.weight_decay", "row"
    ]  # fmt: skip
    # a config may start from a sweep row (base: grid/ROW.yaml), as the ablation starts from the cifar sweep
    (tmp_path / "child.yaml").write_text("base: grid/cutmix-wd0.yaml\nname: child\n")
    child = load_config(tmp_path / "child.yaml")
    assert (child.name, child.mix.variant, child.row) == ("child", "cutmix", "cutmix/wd0")


def test_a_sweep_axis_may_list_the_values_of_a_config_key(tmp_path: Path) -> None:
    (tmp_path / "wd.yaml").write_text("sweep:\n  rows:\n    optim.weight_decay: [1.0e-4, 5.0e-4]\n")
    assert sweep_rows(tmp_path / "wd.yaml") == ["0.0001", "0.0005"]
    assert load_config(tmp_path / "wd" / "0.0005.yaml").optim.weight_decay == 5e-4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            ("{label} at", "{nope} at"),
            r"template '\{nope\} at weight decay \{wd\}' names 'nope', which is no axis or var",
        ),
        (('config: "{method}-{wd}"', 'config: "same"'), r"row name 'same' names two rows"),
        (('config: "{method}-{wd}"', 'config: "a/{wd}"'), r"row name 'a/wd1e-4' holds a '/'"),
        (("  rows:", "  row:"), r"config key 'sweep' in '.*grid.yaml' must be a mapping with 'rows'"),
        (("wd: {wd0:", "wd: [] #"), r"sweep axis 'wd' in '.*grid.yaml' must map ids to overrides"),
        (
            ("{vars: {label: CutMix}", "{vars: [CutMix]"),
            r"'vars' of sweep row 'method: cutmix' in '.*' must be a mapping",
        ),
        (("mix.alpha: 0.5}", "mix.alpha: 0.5, mix.nope: 1}"), r"unknown config key 'mix.nope'"),
    ],
)
def test_sweep_errors_name_the_file_and_the_problem(tmp_path: Path, change: tuple[str, str], match: str) -> None:
    sweep = _sweep_folder(tmp_path, SWEEP.replace(*change))
    with pytest.raises(ConfigError, match=match):
        load_config(sweep.parent / "grid" / "mixup-wd1e-4.yaml")


def test_a_sweep_file_or_a_missing_row_is_not_a_config(tmp_path: Path) -> None:
    sweep = _sweep_folder(tmp_path)
    with pytest.raises(
        ConfigError, match=r"'.*grid.yaml' is a sweep of 5 configs; name one of them, e.g. '.*grid/erm-wd1e-4'"
    ):
        load_config(sweep)
    with pytest.raises(ConfigError, match=r"the sweep '.*grid.yaml' has no row 'nope' \(its rows: erm-wd1e-4, "):
        load_config(tmp_path / "grid" / "nope.yaml")


def test_every_shipped_run_config_passes_validation() -> None:
    # a check added to validate must not refuse a config the lab ships
    names = shipped_configs()
    assert len(names) == 155
    for name in names:
        load_config(name)  # validates: a refused config raises ConfigError naming it


def test_shipped_sweeps_list_their_rows_by_name() -> None:
    names = shipped_configs()
    assert "ablation/cpu/mixup-acrp-a1-wd1e-4" in names and "cifar/paper/cifar10-preact_resnet18-erm" in names
    assert not any(n in names for n in ("ablation/cpu", "cifar/paper", "speech/cpu"))  # the sweep files themselves
    assert len(names) == len(set(names)) == 155
    assert load_config("ablation/cpu/mixup-acrp-a1-wd1e-4").name == "ablation-mixup-acrp-a1-wd1e-4-cpu"
    assert load_config("configs/ablation/cpu/mixup-acrp-a1-wd1e-4.yaml").row == "mixup-acrp-a1/wd1e-4"
    # the paper-scale ablation inherits the paper CIFAR recipe (base:), so a fix to the recipe reaches it
    recipe = load_config("cifar/paper/cifar10-preact_resnet18-erm")
    row = load_config("ablation/paper/erm-wd5e-4")
    assert diff_configs(recipe, row) == ["name", "notes", "optim.weight_decay", "row", "table"]


def test_config_key_range() -> None:
    with pytest.raises(ConfigError, match=r"'data.corrupt_fraction' must be in \[0, 1\], got 1.5"):
        tiny_config("data.corrupt_fraction=1.5")
    with pytest.raises(ConfigError, match=r"'train.train_eval_every' must be >= 0 \(0: never\) or null, got -1"):
        tiny_config("train.train_eval_every=-1")


# -- audit "train" (2026-12-01): keys written twice, combinations a variant ignores, values with no use ----------------
def test_a_key_written_twice_is_an_error_naming_it_the_file_and_both_lines(tmp_path: Path) -> None:
    """yaml.safe_load kept the last value: a ``mix:`` section written twice trained ERM, without a word."""
    path = write(tmp_path, "name: dup\nmix:\n  variant: mixup\n  alpha: 1.0\ntrain: {epochs: 1}\nmix:\n  alpha: 0.2\n")
    with pytest.raises(ConfigError, match=r"^config file '.*c.yaml' repeats key 'mix' \(lines 2 and 6\)$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"config file '.*c.yaml' repeats key 'lr' \(lines 2 and 3\)$"):
        load_config(write(tmp_path, "optim:\n  lr: 0.1\n  lr: 0.2\n"))
    with pytest.raises(ConfigError, match=r"config file '.*c.yaml' repeats key 'lr' \(lines 1 and 1\)$"):
        load_config(write(tmp_path, "optim: {lr: 0.1, lr: 0.2}\n"))
    # in a base: file, and in a sweep file (its rows and the file itself)
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 2\n  epochs: 3\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nname: child\n")
    with pytest.raises(ConfigError, match=r"config file '.*base.yaml' repeats key 'epochs' \(lines 2 and 3\)$"):
        load_config(tmp_path / "child.yaml")
    sweep = _sweep_folder(tmp_path, SWEEP.replace("wd: {wd0:", "wd: {wd0: {optim: {}}, wd0:"))
    with pytest.raises(ConfigError, match=r"config file '.*grid.yaml' repeats key 'wd0' \(lines 16 and 16\)$"):
        load_config(sweep.parent / "grid" / "cutmix-wd0.yaml")
    with pytest.raises(ConfigError, match=r"config file '.*grid.yaml' repeats key 'wd0'"):
        sweep_rows(sweep)
    # a YAML merge key's keys may be overridden (that is what it is for, not a repeat)
    merged = load_config(write(tmp_path, "optim:\n  <<: {lr: 0.2, momentum: 0.5}\n  lr: 0.3\n"))
    assert (merged.optim.lr, merged.optim.momentum) == (0.3, 0.5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        # finding 3: accepted by validate, then a traceback at the first step
        (
            ["mix.variant=mixup", "mix.pairing=knn", "mix.layer=layer2"],
            r"mix.pairing 'knn' cannot be combined with mix.layer",
        ),
        (
            ["mix.variant=dirichlet", "mix.pairing=knn"],
            r"'mix.pairing' is not used by mix.variant 'dirichlet'.*got 'knn'",
        ),
        (["optim.nesterov=true", "optim.momentum=0"], r"'optim.nesterov' needs optim.momentum > 0, got 0"),
        (["optim.name=adam", "optim.betas=[0.9, 1.5]"], r"'optim.betas' must lie in \[0, 1\), got \[0.9, 1.5\]"),
        (["optim.name=adam", "optim.betas=[-0.1, 0.9]"], r"'optim.betas' must lie in \[0, 1\)"),
        # audit "researcher" finding 4: a mix.kwargs key of a typed setting or of the trainer
        (
            ["mix.variant=mixup", "mix.kwargs.alpha=0.3"],
            r"'mix.kwargs.alpha' is not an extra option: set it as mix.alpha",
        ),
        (["mix.variant=mixup", "mix.kwargs.pairing=knn"], r"'mix.kwargs.pairing' is not .*: set it as mix.pairing"),
        (
            ["mix.variant=mixup", "mix.two_label=true", "mix.kwargs.smoothing=0.1"],
            r"'mix.kwargs.smoothing' is not an extra option: set it as mix.smoothing",
        ),
        (
            ["mix.variant=mixup", "mix.kwargs={num_classes: 5, prob: 0.5}"],
            r"'mix.kwargs.num_classes' is not an extra option: the trainer sets it \(from the data and train.seed\)",
        ),
        (["mix.variant=mixup", "mix.kwargs.seed=3"], r"'mix.kwargs.seed' is not an extra option: the trainer sets it"),
        (
            ["mix.variant=mixup_or_cutmix", "mix.kwargs.mixup_alpha=0.2"],
            r"'mix.kwargs.mixup_alpha' is not an extra option: set it as mix.alpha",
        ),
        # finding 4: options the variant never reads
        (
            ["mix.variant=mixup", "mix.knn_same_class=true"],
            r"'mix.knn_same_class' needs mix.pairing 'knn', got 'random'",
        ),
        (["mix.variant=mixup", "mix.knn_k=5"], r"'mix.knn_k' \(5\) needs mix.pairing 'knn', got 'random'"),
        (
            ["mix.variant=cutmix", "mix.pairing=same_class", "mix.knn_k=300"],
            r"'mix.knn_k' \(300\) needs mix.pairing 'knn', got 'same_class'",
        ),
        (
            ["mix.variant=dirichlet", "mix.lam_mode=pair"],
            r"'mix.lam_mode' 'pair' is not used by mix.variant 'dirichlet' \(only by mixup, cutmix, mix_inputs_only, "
            r"mix_inputs_label_smoothing, mixup_or_cutmix\)$",
        ),
        (["mix.variant=dirichlet", "mix.pairing=flip"], r"'mix.pairing' is not used by mix.variant 'dirichlet'"),
        (["mix.variant=erm", "mix.pairing=knn"], r"'mix.pairing' is not used by mix.variant 'erm'"),
        # a mixup run "with sigma 0.3" added no noise, and was accepted
        (
            ["mix.variant=mixup", "mix.sigma=0.3"],
            r"'mix.sigma' \(0.3\) is not used by mix.variant 'mixup' \(only by gaussian_noise\)",
        ),
        (["mix.variant=erm", "mix.sigma=0.1"], r"'mix.sigma' \(0.1\) is not used by mix.variant 'erm'"),
        (["optim.name=adam", "optim.nesterov=true"], r"'optim.nesterov' is used by optim.name 'sgd' only, got 'adam'"),
        (
            ["mix.variant=label_smoothing", "mix.smoothing=0.1", "mix.pairing=knn"],
            r"'mix.pairing' is not used by mix.variant 'label_smoothing'",
        ),
        (
            ["mix.variant=gaussian_noise", "mix.sigma=0.1", "mix.pairing=knn"],
            r"'mix.pairing' is not used by mix.variant 'gaussian_noise' \(only by mixup, cutmix",
        ),
        # finding 5: values with no sensible use
        (["schedule.gamma=0"], r"'schedule.gamma' must be > 0, got 0.0"),
        (["schedule.gamma=-1"], r"'schedule.gamma' must be > 0, got -1.0"),
        (["schedule.eta_min=-1"], r"'schedule.eta_min' must be >= 0, got -1.0"),
        (["mix.off_epoch=-1"], r"'mix.off_epoch' must be null or > mix.warmup_epochs \(0\), got -1"),
        (
            ["mix.warmup_epochs=3", "mix.off_epoch=3"],
            r"'mix.off_epoch' must be null or > mix.warmup_epochs \(3\), got 3",
        ),
        # a warm-up that never ends: mixing never starts (tiny_config trains 4 epochs)
        (
            ["mix.warmup_epochs=4"],
            r"'mix.warmup_epochs' must be < train.epochs \(4\): mixing would never start, got 4",
        ),
        (
            ["mix.warmup_epochs=5", "train.epochs=2"],
            r"'mix.warmup_epochs' must be < train.epochs \(2\): mixing would never start, got 5",
        ),
        # a run name must stay inside --out
        (["name=../../escape"], r"config key 'name' must be a plain folder name \(not empty, without a path separator"),
        (["name=''"], r"config key 'name' must be a plain folder name .*got ''"),
        (["name=a/b"], r"config key 'name' must be a plain folder name .*got 'a/b'"),
        (["name=a|b"], r"config key 'name' must not contain '\|' \(it splits the report's table cells\), got 'a\|b'"),
        (["name=.hidden"], r"config key 'name' must be a plain folder name .*got '.hidden'"),
    ],
)
def test_combinations_and_values_a_run_cannot_use_are_refused(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        tiny_config(*overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        ["mix.pairing=knn", "mix.knn_same_class=true", "mix.knn_k=5"],
        ["mix.variant=cutmix", "mix.pairing=knn"],
        ["mix.variant=mixup_or_cutmix", "mix.pairing=same_class"],
        ["mix.variant=dirichlet", "mix.lam_mode=sample"],
        ["mix.variant=mix_inputs_only", "mix.lam_mode=sample", "mix.pairing=flip"],
        ["mix.layer=layer2", "mix.pairing=same_class", "mix.lam_mode=sample"],
        ["mix.warmup_epochs=1", "mix.off_epoch=2"],
        ["mix.warmup_epochs=3"],  # the last of tiny_config's 4 epochs mixes
        ["mix.knn_k=200"],  # the default value cannot be told from an unset knn_k
        ["mix.variant=cutmix", "mix.pairing=knn", "mix.knn_k=7"],
        ["optim.nesterov=true"],
        ["optim.name=adam", "optim.betas=[0.0, 0.999]"],
        ["schedule.name=step", "schedule.eta_min=0", "schedule.gamma=2"],  # eta_min 0: the default, unset
        ["name=cifar10-preact_resnet18-mixup"],
    ],
)
def test_combinations_that_a_variant_uses_are_accepted(overrides: list[str]) -> None:
    tiny_config(*overrides)


def test_extra_mix_kwargs_reach_the_mixer_beside_the_typed_settings() -> None:
    # what mix.kwargs are for: library options without a typed setting; mixup_or_cutmix's second alpha may differ
    cfg = apply_overrides(ExperimentConfig(), ["mix.variant=mixup", "mix.alpha=0.4", "mix.kwargs={prob: 0.5}"])
    assert mixer_options(cfg.mix) == {"alpha": 0.4, "pairing": "random", "lam_mode": "batch", "prob": 0.5}
    cfg = apply_overrides(ExperimentConfig(), ["mix.variant=mixup_or_cutmix", "mix.kwargs.cutmix_alpha=0.5"])
    assert mixer_options(cfg.mix)["mixup_alpha"] == 1.0 and mixer_options(cfg.mix)["cutmix_alpha"] == 0.5


def test_kwargs_the_trainer_passes_itself_are_refused() -> None:
    # data.kwargs.root / model.kwargs.num_classes were a second value for one argument: a TypeError traceback at
    # the start of every run
    for override, match in (
        ("data.kwargs.root=/x", "config key 'data.kwargs.root' is not an extra option: set it as data.root"),
        ("data.kwargs.seed=1", "config key 'data.kwargs.seed' is not an extra option: set it as train.seed"),
        ("data.kwargs.world_size=2", "config key 'data.kwargs.world_size' is not an extra option: the trainer sets"),
        ("model.kwargs.num_classes=3", "config key 'model.kwargs.num_classes' is not an extra option: the trainer"),
        ("model.kwargs.seed=3", "config key 'model.kwargs.seed' is not an extra option: set it as train.seed"),
    ):
        with pytest.raises(ConfigError, match=re.escape(match)):
            apply_overrides(ExperimentConfig(), [override])


def test_a_mapping_for_a_section_merges_into_it_and_null_over_a_section_is_refused(tmp_path: Path) -> None:
    # `--set 'mix={alpha: 0.5}'` replaced the whole section (the mixup row trained ERM) and `data={...}` switched
    # a CIFAR config to the default dataset, digits; an empty `mix:` under `base:` did the same in a file
    mixup = "cifar/cpu/cifar10-preact_resnet18-mixup"
    cfg = load_config(mixup, ["mix={alpha: 0.5}", "data={subset_per_class: 100}"])
    shipped = load_config(mixup)
    assert (cfg.mix.variant, cfg.mix.alpha, cfg.data.name) == ("mixup", 0.5, shipped.data.name)
    assert cfg.data.subset_per_class == 100 and cfg.data.batch_size == shipped.data.batch_size
    child = write(tmp_path, f"base: {CONFIGS / (mixup + '.yaml')}\nname: child\nmix:\n")
    with pytest.raises(
        ConfigError,
        match=r"config key 'mix' in '.*c.yaml' is empty \(null\) over the section it inherits, which would reset it",
    ):
        load_config(child)
    assert load_config(write(tmp_path, "name: alone\nmix:\n")).mix.variant == "erm"  # no base: the defaults


def test_a_sweep_row_may_not_empty_a_section_of_its_file(tmp_path: Path) -> None:
    # a row `mix: null` over the sweep file's own mix section trained ERM under a mixup row's name
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "mix: {variant: mixup, alpha: 1.0}\nsweep:\n  config: r-{m}\n  rows:\n    m: {a: {mix.alpha: 0.5}, b: {mix: null}}\n"
    )
    with pytest.raises(ConfigError, match=r"config key 'mix' in sweep row 'm: b' of '.*s.yaml' is empty \(null\)"):
        load_config(tmp_path / "s" / "r-b")
    sweep.write_text(sweep.read_text().replace("{mix: null}", "{mix.alpha: 2.0}"))
    assert load_config(tmp_path / "s" / "r-b").mix.variant == "mixup"


def test_a_saved_config_is_read_as_its_run_trained() -> None:
    # a run of an older lab: the options it never read are reset, not refused (its run resumes and reruns)
    old = {"mix": {"variant": "mixup", "alpha": 0.4, "sigma": 0.3}, "schedule": {"name": "cosine", "gamma": 0.5}}
    with pytest.raises(ConfigError, match=r"'mix.sigma' \(0.3\) is not used by mix.variant 'mixup'"):
        config_from_dict(old)
    cfg = config_from_dict(old, saved=True)
    assert (cfg.mix.alpha, cfg.mix.sigma, cfg.schedule.gamma) == (0.4, 0.0, 0.1)
    # what the run read is kept, and refused where it has no use
    with pytest.raises(ConfigError, match=r"'schedule.milestones' must be epochs >= 0, got \[-1\]"):
        config_from_dict({"schedule": {"milestones": [-1]}}, saved=True)


# -- boundaries and the tables of reserved keys ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override",
    [
        "train.threads=1024",  # MAX_THREADS itself is allowed
        "data.corrupt_fraction=1.0",  # every label replaced: [0, 1] is closed
        f"train.seed={2**63 - 1}",  # the largest seed torch's manual_seed takes
        f"data.corrupt_seed={2**63 - 1}",
    ],
)
def test_a_value_on_the_edge_of_its_range_is_accepted(override: str) -> None:
    apply_overrides(ExperimentConfig(), [override])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.threads=1025", r"config key 'train.threads' must be <= 1024 or null, got 1025$"),
        (f"train.seed={2**63}", rf"config key 'train.seed' must be < 2\*\*63, got {2**63}$"),
        (f"data.corrupt_seed={2**63}", rf"config key 'data.corrupt_seed' must be < 2\*\*63, got {2**63}$"),
        ("optim.betas=[0.9, 1.0]", r"config key 'optim.betas' must lie in \[0, 1\), got \[0.9, 1.0\]$"),
        # a string float is read only when the whole string is a number: float('1e-4x') raised a ValueError
        ("optim.lr=1e-4x", r"config key 'optim.lr' expects float, got str '1e-4x'$"),
    ],
)
def test_a_value_just_outside_its_range_is_refused(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(ExperimentConfig(), [override])


@pytest.mark.parametrize(
    ("override", "owner"),
    [
        ("data.kwargs.name=x", "set it as data.name"),
        ("data.kwargs.root=x", "set it as data.root"),
        ("data.kwargs.batch_size=1", "set it as data.batch_size"),
        ("data.kwargs.eval_batch_size=1", "set it as data.eval_batch_size"),
        ("data.kwargs.augment=false", "set it as data.augment"),
        ("data.kwargs.subset_per_class=1", "set it as data.subset_per_class"),
        ("data.kwargs.corrupt_fraction=0.5", "set it as data.corrupt_fraction"),
        ("data.kwargs.corrupt_seed=1", "set it as data.corrupt_seed"),
        ("data.kwargs.seed=1", "set it as train.seed"),
        ("data.kwargs.device=cpu", "set it as train.device"),
        ("data.kwargs.rank=0", "the trainer sets it (from the data and the launch)"),
        ("data.kwargs.world_size=1", "the trainer sets it (from the data and the launch)"),
        ("model.kwargs.name=x", "set it as model.name"),
        ("model.kwargs.seed=1", "set it as train.seed"),
        ("model.kwargs.num_classes=3", "the trainer sets it (from the data and the launch)"),
        ("model.kwargs.mean=[0.5]", "the trainer sets it (from the data and the launch)"),
        ("model.kwargs.std=[0.5]", "the trainer sets it (from the data and the launch)"),
    ],
)
def test_every_argument_the_trainer_passes_itself_is_refused_as_an_extra_option(override: str, owner: str) -> None:
    # the trainer passes these to build_data / build_model itself: a second value was a TypeError at the run's start
    key = override.split("=", 1)[0]
    with pytest.raises(ConfigError, match=re.escape(f"config key '{key}' is not an extra option: {owner}") + "$"):
        apply_overrides(ExperimentConfig(), [override])


def test_an_override_key_may_have_spaces_around_it() -> None:
    # `--set "optim.lr = 0.05"` (one shell word): the key is stripped, the value is YAML (which ignores the space)
    cfg = apply_overrides(ExperimentConfig(), [" optim.lr = 0.05", "train.epochs =3"])
    assert (cfg.optim.lr, cfg.train.epochs) == (0.05, 3)


def test_a_key_below_a_free_form_value_that_is_no_mapping_is_refused() -> None:
    # model.kwargs.width is 16, not a mapping: setting width.x was a TypeError traceback
    with pytest.raises(
        ConfigError, match=r"^override key 'model.kwargs.width.x': 'model.kwargs.width' is not a mapping$"
    ):
        apply_overrides(ExperimentConfig(), ["model.kwargs.width=16", "model.kwargs.width.x=1"])


def test_config_changes_lists_the_differing_keys_in_order_leaving_out_the_ignored_ones() -> None:
    old = ExperimentConfig()
    new = apply_overrides(old, ["train.epochs=5", "data.global_batch_size=256", "optim.lr=0.05"])
    assert config_changes(old, new) == "data.global_batch_size None -> 256, optim.lr 0.1 -> 0.05, train.epochs 10 -> 5"
    assert config_changes(old, new, "{k}={b}", ignore=["data.global_batch_size"]) == "optim.lr=0.05, train.epochs=5"
    assert config_changes(old, old) == ""


@pytest.mark.parametrize("seeds", [None, 1, 10_000])
def test_seed_counts_from_1_to_max_seeds_are_accepted(seeds: int | None) -> None:
    check_seeds(seeds)


@pytest.mark.parametrize("seeds", [0, -1, 10_001])
def test_seed_counts_outside_1_to_max_seeds_are_refused(seeds: int) -> None:
    with pytest.raises(ConfigError, match=rf"^--seeds must be in \[1, 10000\], got {seeds}$"):
        check_seeds(seeds)


def test_a_sweep_without_a_name_template_joins_its_ids_and_reads_dotted_keys_of_any_depth(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(
        "sweep:\n  rows:\n    variant: {erm: {mix.variant: erm}, mixup: {mix.variant: mixup}}\n"
        "    model.kwargs.width: [8, 16]\n    mix.alpha: [0.2, 1.0]\n"
    )
    # no sweep.config: the ids joined by '-'; a float id is written with :g (1.0 -> "1")
    assert sweep_rows(tmp_path / "w.yaml")[:4] == ["erm-8-0.2", "erm-8-1", "erm-16-0.2", "erm-16-1"]
    cfg = load_config(tmp_path / "w" / "mixup-16-1.yaml")
    assert (cfg.mix.variant, cfg.model.kwargs, cfg.mix.alpha) == ("mixup", {"width": 16}, 1.0)


def test_a_missing_base_is_named_with_the_file_that_inherits_from_it(tmp_path: Path) -> None:
    child = write(tmp_path, "base: gone.yaml\nname: child\n")
    folder = tmp_path.resolve()
    with pytest.raises(
        ConfigError,
        match=re.escape(f"config file '{folder / 'gone.yaml'}' (the base of '{folder / 'c.yaml'}') does not exist"),
    ):
        load_config(child)


def test_a_long_value_in_an_error_is_cut_to_60_characters() -> None:
    with pytest.raises(ConfigError, match=r"^config key 'optim.lr' expects float, got str '" + "a" * 56 + r"\.\.\.$"):
        apply_overrides(ExperimentConfig(), ["optim.lr=" + "a" * 100])
    with pytest.raises(ConfigError, match=r"^config key 'optim.lr' expects float, got str '" + "a" * 58 + "'$"):
        apply_overrides(ExperimentConfig(), ["optim.lr=" + "a" * 58])  # 60 characters with the quotes: kept whole


def test_a_base_chain_that_comes_back_to_its_start_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(f"config file '{tmp_path.resolve() / 'b.yaml'}' inherits from itself through 'base: a.yaml'"),
    ):
        load_config(tmp_path / "a.yaml")  # a RecursionError without the check of the chain
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^config file 'self.yaml' inherits from itself through 'base: self.yaml'$"):
        load_config("self.yaml")  # named as the user gave it


def test_a_sweep_section_with_a_key_besides_config_and_rows_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("sweep:\n  confg: '{m}'\n  rows:\n    m: {a: {}}\n")
    with pytest.raises(
        ConfigError,
        match=r"^config key 'sweep' in '.*s.yaml' must be a mapping with 'rows' and optionally 'config', got dict",
    ):
        sweep_rows(tmp_path / "s.yaml")


def test_a_null_key_over_an_inherited_mapping_inside_a_section_is_refused(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text("name: p\nmodel: {kwargs: {width: 16}}\n")
    child = write(tmp_path, "base: parent.yaml\nmodel: {kwargs: null}\n")
    with pytest.raises(
        ConfigError, match=r"^config key 'model.kwargs' in '.*c.yaml' is empty \(null\) over the section"
    ):
        load_config(child)


def test_shipped_configs_take_a_table_name_spelled_with_dashes() -> None:
    # the table corrupted-labels keeps its configs in corrupted_labels/
    names = shipped_configs("corrupted-labels")
    assert names and names == shipped_configs("corrupted_labels")
    assert all(n.startswith("corrupted_labels/") for n in names)


def test_unread_keys_follow_the_variant_and_the_schedule() -> None:
    assert unread_keys({"mix.variant": "erm", "schedule.name": "constant"}) >= {"mix.alpha", "mix.sigma"}
    assert "mix.alpha" not in unread_keys({"mix.variant": "mixup"})
    assert "mix.sigma" in unread_keys({"mix.variant": "mixup"})
    assert "mix.sigma" not in unread_keys({"mix.variant": "gaussian_noise"})
    assert unread_keys({"schedule.name": "cosine"}) == {
        "schedule.milestones",
        "schedule.gamma",
        "schedule.step_size",
    }
    assert "schedule.gamma" in unread_keys({"schedule.name": "multistep", "schedule.milestones": []})
    assert "schedule.gamma" not in unread_keys({"schedule.name": "multistep", "schedule.milestones": [3]})
    # an unknown variant or schedule (a run of another lab version): nothing is known to be unread
    assert unread_keys({"mix.variant": "future", "schedule.name": "future"}) == set()
    erm, mixup = {"mix.variant": "erm"}, {"mix.variant": "mixup"}
    assert "mix.alpha" in unread_by_both(erm, erm) and "mix.alpha" not in unread_by_both(erm, mixup)


def test_overrides_are_a_list_of_strings_not_one_str(tmp_path: Path) -> None:
    # a lone str was iterated: "override 't' must look like key=value"; None and a dict gave bare TypeErrors
    from vicinal.experiments.demo import run_demo
    from vicinal.experiments.trainer import Trainer

    cfg = load_config("demo/digits")
    one = r"^overrides must be a list of 'key=value' strings, got str 'train.epochs=1' \(pass \['train.epochs=1'\]\)$"
    for call in (
        lambda: load_config("demo/digits", "train.epochs=1"),
        lambda: apply_overrides(cfg, "train.epochs=1"),
        lambda: run_demo(out=tmp_path / "demo", overrides="train.epochs=1"),
    ):
        with pytest.raises(TypeError, match=one):
            call()
    with pytest.raises(TypeError, match=r"^overrides must be a list of 'key=value' strings, got NoneType$"):
        load_config("demo/digits", None)
    with pytest.raises(TypeError, match=r"^overrides must be a list of 'key=value' strings, got int 3 in it$"):
        load_config("demo/digits", ["train.epochs=1", 3])
    assert load_config("demo/digits", ("train.epochs=1" for _ in range(1))).train.epochs == 1
    argv = r"^argv must be a list of words, got str 'vicinal train x' \(pass shlex.split\('vicinal train x'\)\)$"
    with pytest.raises(TypeError, match=argv):
        Trainer(cfg, tmp_path / "run", argv="vicinal train x")
    with pytest.raises(ValueError, match=r"^--seeds must be in \[1, 10000\], got 1.0$"):
        run_demo(out=tmp_path / "demo", seeds=1.0)  # range()'s TypeError before
    assert not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()
