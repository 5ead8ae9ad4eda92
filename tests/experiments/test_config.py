"""Config parsing: YAML files, strict --set overrides, and every error by its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from vicinal.experiments.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    diff_configs,
    load_config,
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
        ("optim.lrr=1", r"unknown config key 'optim.lrr'; valid keys in 'optim': name, lr, momentum"),
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
        ("optim.lr=-1", r"config key 'optim.lr' must be >= 0, got -1.0"),
        ("optim.betas=[0.9]", r"config key 'optim.betas' must hold 2 floats, got \[0.9\]"),
        ("schedule.milestones=[5, 2]", r"config key 'schedule.milestones' must be increasing, got \[5, 2\]"),
        ("mix.variant=mixupp", r"config key 'mix.variant' must be one of erm, mixup, cutmix"),
        ("mix.variant=label_smoothing", r"mix.variant 'label_smoothing' needs config key 'mix.smoothing' > 0"),
        ("mix.variant=gaussian_noise", r"mix.variant 'gaussian_noise' needs config key 'mix.sigma' > 0, got 0.0"),
    ],
)
def test_override_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(ExperimentConfig(), [override])


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
        ConfigError, match=r"unknown config key 'train.epoch'; valid keys in 'train': epochs.*\(in '.*c.yaml'\)"
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
    files = sorted((CONFIGS / "cifar" / "paper").glob("*.yaml"))
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
        "data.kwargs",
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
