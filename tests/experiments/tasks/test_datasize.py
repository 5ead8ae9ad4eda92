"""The data-size curve: its configs follow the stated epoch rule, and the report pairs ERM and mixup per size."""

from __future__ import annotations

from pathlib import Path

import pytest

from vicinal.experiments.config import load_config
from vicinal.experiments.runs import Run
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
