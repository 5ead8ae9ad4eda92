"""The data-size curve: its configs follow the stated epoch rule, and the report pairs ERM and mixup per size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vicinal.experiments.config import load_config
from vicinal.experiments.runs import Run, write_provenance
from vicinal.experiments.tasks import get_table
from vicinal.experiments.tasks.datasize import (
    datasize_configs,
    datasize_markdown,
    datasize_points,
    outside_rule,
    plot_datasize,
)


def test_configs_follow_the_epoch_rule() -> None:
    table = get_table("datasize")
    files = table.configs("cpu")
    assert files == datasize_configs("cpu") and len(files) == 8
    base = load_config(files[0])  # the cifar cpu ERM config: the 2,000-image point
    steps = {}
    for f in files:
        cfg = load_config(f)
        n = 10 * cfg.data.subset_per_class
        steps_per_epoch = -(-n // cfg.data.batch_size)
        steps[n] = steps_per_epoch * cfg.train.epochs
        # only the size, the epochs and what follows from them (milestones, evaluation period) differ from the recipe
        assert (cfg.optim, cfg.model, cfg.data.batch_size, cfg.data.augment) == (
            base.optim, base.model, base.data.batch_size, base.data.augment
        )  # fmt: skip
        assert cfg.schedule.milestones == [cfg.train.epochs // 2, cfg.train.epochs * 3 // 4]
        assert cfg.mix.variant in ("erm", "mixup") and (cfg.mix.variant == "erm" or cfg.mix.alpha == 1.0)
    # 2,400 SGD steps up to 2,000 images, 150 epochs above
    assert steps == {500: 2400, 1000: 2400, 2000: 2400, 5000: 40 * 150}
    with pytest.raises(ValueError, match="datasize table exists at cpu scale only"):
        table.configs("paper")


def _run(
    table: str, size: int, variant: str, seed: int, err: float, status: str = "complete", fit: float | None = None
) -> Run:
    config = {
        "table": table,
        "name": f"n{size}-{variant}",
        "data": {"name": "cifar10", "subset_per_class": size // 10},
        "model": {"name": "preact_resnet18"},
        "mix": {"variant": variant},
        "train": {"seed": seed},
    }
    summary = {"status": status, "median_last10_test_error": err, "last_train_eval_error": fit}
    return Run(Path("."), config, [], summary)


def test_points_pair_by_seed_and_skip_unfinished_runs(tmp_path: Path) -> None:
    runs = [
        _run("cifar", 2000, "erm", 0, 30.0, fit=0.1),
        _run("cifar", 2000, "mixup", 0, 28.0, fit=0.5),
        _run("cifar", 2000, "erm", 1, 31.0, fit=0.3),
        _run("cifar", 2000, "mixup", 1, 28.5, fit=0.5),
        _run("datasize", 500, "erm", 0, 50.0),
        _run("datasize", 500, "mixup", 0, 45.0),
        _run("datasize", 500, "mixup", 1, 1.0, status="interrupted"),  # not finished: left out
        _run("datasize", 5000, "erm", 0, 20.0),  # no mixup partner: no point
        _run("ablation", 2000, "mixup", 2, 1.0),  # another table: left out
    ]
    points = datasize_points(runs)
    assert [(s, p.n, p.mean) for s, p, _ in points] == [(500, 1, -5.0), (2000, 2, -2.25)]
    md = datasize_markdown(runs)
    assert "| 2,000 | 30.50 ± 0.71 (n=2) | 28.25 ± 0.35 (n=2) | -2.25 [" in md
    # the last column is ERM's training error (the regime rule), "-" where the runs did not measure it
    assert md.splitlines()[3].endswith(" | 0.20 ± 0.14 |") and md.splitlines()[2].endswith(" | - |")
    assert plot_datasize(runs, tmp_path / "c.png") and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    # the regime rule per size: 2,000 fits (mean 0.2%), 500 has no measurement; an ERM at 2.5% is outside
    assert outside_rule(runs) == set()
    assert outside_rule(
        [*runs, _run("datasize", 5000, "mixup", 0, 19.0, fit=9.0), _run("datasize", 5000, "erm", 0, 20.0, fit=2.5)]
    ) == {5000}
    assert not plot_datasize(runs[-2:], tmp_path / "empty.png") and datasize_markdown(runs[-2:]) == ""


def _named(
    tmp_path: Path, name: str, variant: str, seed: int, err: float, data: dict[str, Any] | None = None, **cfg: Any
) -> Run:
    """A finished 2,000-image run of config ``name`` in its own folder, with a provenance.json when ``data``."""
    run = _run("cifar", 2000, variant, seed, err)
    path = tmp_path / name / f"seed{seed}"
    path.mkdir(parents=True)
    if data is not None:
        write_provenance(path, {"world_size": 1, "data": data})
    return Run(path, {**run.config, "name": name, "optim": {"weight_decay": 1e-4}, **cfg}, [], run.summary)


def test_mixup_is_paired_with_the_erm_runs_of_its_recipe(tmp_path: Path) -> None:
    """A derived config keeps the cifar table: ERM runs of another weight decay or data were once taken as the
    baseline at their size (the last one found), and a mixup run of another alpha as mixup."""
    wd = {"optim": {"weight_decay": 5e-4}}
    runs = [
        _named(tmp_path, "erm", "erm", 0, 30.0),
        _named(tmp_path, "erm", "erm", 1, 32.0),
        _named(tmp_path, "mixup", "mixup", 0, 28.0),
        _named(tmp_path, "mixup", "mixup", 1, 29.0),
        _named(tmp_path, "erm-wd", "erm", 0, 40.0, **wd),
        _named(tmp_path, "erm-wd", "erm", 1, 44.0, **wd),
        _named(tmp_path, "mixup-a0.2", "mixup", 0, 1.0, mix={"variant": "mixup", "alpha": 0.2}),
    ]
    [(size, p, raw)] = datasize_points(runs)
    assert (size, p.n, p.mean, raw) == (2000, 2, -2.5, {"erm": [30.0, 32.0], "mixup": [28.0, 29.0]})
    assert "Not paired" not in datasize_markdown(runs)

    # a second ERM group of the same recipe: no point, and the section says why
    again = [_named(tmp_path, "erm-again", "erm", s, 31.0) for s in (0, 1)]
    assert datasize_points([*runs, *again]) == []
    assert datasize_markdown([*runs, *again]).endswith(
        "- 2,000 images: several ERM groups ran the recipe of mixup (erm, erm-again), not drawn."
    )

    # mixup on other data (provenance): no ERM group of its recipe
    data = {"name": "cifar10", "root": "/data/cifar10-jpeg", "sizes": {"train": 2000, "test": 10000}}
    other = tmp_path / "other"
    runs = [
        _named(other, "erm", "erm", 0, 30.0, data=data),
        _named(other, "mixup", "mixup", 0, 28.0, data={**data, "sizes": {"train": 2000, "test": 200}}),
    ]
    assert datasize_points(runs) == [] and not plot_datasize(runs, tmp_path / "none.png")
    assert datasize_markdown(runs).splitlines() == [
        "Not paired (mixup is paired only with the ERM runs of its recipe: the same config outside mix, the same "
        "data, the same number of processes):",
        "- 2,000 images: no ERM group ran the recipe of mixup (erm differs in data: sizes {'train': 2000, 'test': "
        "10000} -> {'train': 2000, 'test': 200}), not drawn.",
    ]
