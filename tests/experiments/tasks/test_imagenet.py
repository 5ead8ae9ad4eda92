"""The ``imagenet`` table (Table 1): every config holds the paper's (Goyal et al.) settings, there is no cpu scale,
and a paper config trains one epoch on a tiny generated ImageFolder, in one process and in two gloo processes
launched by torchrun exactly as docs/imagenet.md says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.experiments.lab_helpers import one_thread  # noqa: F401 - autouse fixture: torch on one thread for this module
from vicinal.experiments.cli import main
from vicinal.experiments.config import load_config
from vicinal.experiments.models import count_parameters
from vicinal.experiments.paths import PROJECT_ROOT
from vicinal.experiments.tasks import TABLES
from vicinal.experiments.tasks.imagenet import (
    ALPHAS,
    GLOBAL_BATCH,
    IMAGENET,
    PAPER_IMAGENET,
    ROWS,
    imagenet_configs,
    per_rank_batch_size,
)
from vicinal.experiments.trainer import Trainer, lr_at

CLASSES = ("n01", "n02", "n03")
# Tiny sizes: 32 x 32 crops (ResNet-50's layer4 is then 1 x 1), no DataLoader workers, batches of 4 / 3.
TINY = ["data.kwargs={image_size: 32, resize: 36, num_workers: 0}", "data.eval_batch_size=3", "train.device=cpu"]


def _config(name: str) -> Path:
    (path,) = [p for p in imagenet_configs("paper") if p.stem == name]
    return path


def test_table_rows_and_paper_numbers() -> None:
    assert TABLES["imagenet"] is IMAGENET and IMAGENET.default_seeds == {"paper": 1}
    assert len(ROWS) == 14 and set(PAPER_IMAGENET) == set(ROWS) - {"resnext101_64x4d/90/erm"}
    rows = [load_config(p).row for p in imagenet_configs("paper")]
    assert sorted(rows) == sorted(ROWS)
    with pytest.raises(ValueError, match="the imagenet table has no cpu scale"):
        imagenet_configs("cpu")
    with pytest.raises(ValueError, match="unknown scale 'tiny'"):
        imagenet_configs("tiny")


def test_configs_hold_the_goyal_schedule() -> None:
    steps = 1251  # ceil(1,281,167 / 1,024) steps per epoch at the global batch
    for path in imagenet_configs("paper"):
        cfg = load_config(path)
        model, epochs, method = cfg.row.split("/")
        assert cfg.name == f"imagenet-{model}-{epochs}ep-{method}" and cfg.table == "imagenet"
        assert (cfg.data.name, cfg.data.batch_size, cfg.data.augment) == ("imagenet", 128, True)
        assert cfg.data.kwargs == {"image_size": 224, "resize": 256}
        assert (cfg.model.name, cfg.model.kwargs) == (model, {"zero_init_residual": True})
        o, s = cfg.optim, cfg.schedule
        assert (o.name, o.lr, o.momentum, o.nesterov, o.weight_decay) == ("sgd", 0.4, 0.9, False, 1e-4)
        assert (s.name, s.gamma, s.warmup_epochs, s.warmup_start_lr) == ("multistep", 0.1, 5, 0.1)
        assert s.milestones == {"90": [30, 60, 80], "200": [60, 120, 180]}[epochs] and cfg.train.epochs == int(epochs)
        if method == "erm":
            assert cfg.mix.variant == "erm"
        else:
            assert (cfg.mix.variant, cfg.mix.alpha) == ("mixup", ALPHAS[cfg.row])
            assert cfg.mix.alpha == (0.2 if model.startswith("resnet") else 0.4)
        ms = s.milestones
        at = [0, steps * 5 // 2, steps * 5, steps * ms[0] - 1, steps * ms[0], steps * ms[1], steps * ms[2]]
        lrs = [lr_at(t, schedule=s, base_lr=o.lr, epochs=cfg.train.epochs, steps_per_epoch=steps) for t in at]
        assert lrs == pytest.approx([0.1, 0.1 + 0.3 * (steps * 5 // 2) / (steps * 5), 0.4, 0.4, 0.04, 0.004, 4e-4])


def test_per_rank_batch_size() -> None:
    assert [per_rank_batch_size(w) for w in (1, 2, 8, 16, 64)] == [1024, 512, 128, 64, 16]
    assert per_rank_batch_size(4, global_batch=256) == 64
    with pytest.raises(ValueError, match="global batch 1024 is not divisible by world size 3"):
        per_rank_batch_size(3)
    with pytest.raises(ValueError, match="world_size must be >= 1, got 0"):
        per_rank_batch_size(0)
    with pytest.raises(TypeError, match="world_size must be an int, got bool True"):
        per_rank_batch_size(True)


def test_every_config_declares_the_global_batch_the_trainer_checks(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """Finding 2 of the paper audit: the configs assume 8 processes, and one process trained at a global batch of
    128 with the lr of 1,024 without a word. Refused in one line before any data is read (there is none here)."""
    for path in imagenet_configs("paper"):
        cfg = load_config(path)
        assert cfg.data.global_batch_size == GLOBAL_BATCH == cfg.data.batch_size * 8
        assert per_rank_batch_size(8) == cfg.data.batch_size
    assert load_config("adversarial/paper/resnet101-erm-90-source").data.global_batch_size == GLOBAL_BATCH  # Table 3
    path = _config("imagenet-resnet50-90ep-erm")
    assert main(["train", str(path), "--set", "train.device=cpu", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "vicinal: error: data.batch_size 128 x 1 process is a global batch of 128, but this config was written for a "
        "global batch of 1024 (data.global_batch_size: its learning rate assumes that batch, the paper's in a paper "
        "config): start 8 processes, or --set data.batch_size=1024 for 1 process, or --set "
        "data.global_batch_size=null to train at another global batch on purpose"
    )
    assert not (tmp_path / path.stem).exists()


def test_cli_refuses_the_cpu_scale_and_plans_the_paper_scale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["reproduce", "imagenet", "--scale", "cpu"]) == 2
    assert "vicinal: error: the imagenet table has no cpu scale" in capsys.readouterr().err
    assert main(["reproduce", "imagenet", "--scale", "paper", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dry run: 14 of 14 runs would be trained" in out
    # the launch check every run makes at its start, told before the launch (one process here, written for 8)
    assert (
        "  but 14 of them would be refused at their start here: data.batch_size 128 x 1 process is a global batch of "
        "128, but this config was written for a global batch of 1024" in out
    )
    assert "imagenet-resnext101_64x4d-90ep-mixup seed 0: resnext101_64x4d on imagenet, 90 epochs, mix mixup" in out


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder with train/ (3 classes x 4 JPEGs) and val/ (3 x 2), sizes 40..52 x 36..44, class-coloured."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny_imagenet")
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 4), ("val", 2)):
        for c, cls in enumerate(CLASSES):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                h, w = 36 + 4 * (i % 3), 40 + 6 * (i % 3)
                pixels = torch.randint(0, 120, (h, w, 3), generator=gen, dtype=torch.uint8)
                pixels[..., c] += 120  # class c is brighter in channel c
                Image.fromarray(pixels.numpy()).save(root / split / cls / f"img{i}.JPEG", quality=90)
    return root


def test_one_epoch_of_a_paper_config_on_a_tiny_image_folder(tiny_imagenet: Path, tmp_path: Path) -> None:
    cfg = load_config(
        _config("imagenet-resnet50-90ep-mixup"),
        [f"data.root={tiny_imagenet}", "data.batch_size=4", "data.global_batch_size=4", "train.epochs=1", *TINY],
    )
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    summary = trainer.fit()
    # torchvision ResNet-50 with a 3-class head: 25,557,032 - 997 * 2048 - 997 parameters
    assert count_parameters(trainer.model) == 23_514_179
    assert trainer.data.info["classes"] == list(CLASSES) and trainer.steps_per_epoch == 3
    assert summary["status"] == "complete"
    (record,) = trainer.records
    assert (record["train_n"], record["test_n"], record["mixing"]) == (12, 6, True)
    assert record["test_top5_error"] == 0.0  # top-5 becomes top-3 with 3 classes: always right
    # the lr of the epoch's last step (step 2 of the 5-epoch warm-up, 3 steps per epoch): 0.1 + 0.3 * (2/3) / 5
    assert record["lr"] == pytest.approx(0.14)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_with_torchrun(tiny_imagenet: Path, tmp_path: Path) -> None:
    # The launch line of docs/imagenet.md, shrunk: 2 processes x batch 2 (global 4, which the trainer checks against
    # data.global_batch_size), 6 images per rank, 3 steps.
    # The one-process test above trains the real ResNet-50; here a width-4 PreAct ResNet-18 keeps the gloo
    # all-reduce and the checkpoint small (ResNet-50's 94 MB of gradients per step dominate on 2 CPU cores).
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "vicinal", "train", str(_config("imagenet-resnet50-90ep-mixup")),
        "--set", f"data.root={tiny_imagenet}", "data.batch_size=2", "data.global_batch_size=4", "train.epochs=1", *TINY,
        "model.name=preact_resnet18", "model.kwargs={width: 4}", "--out", str(tmp_path), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    # 300 s as the other multi-process tests: 7 s when quiet, 110 s on 2 cores shared with two trainings
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "imagenet-resnet50-90ep-mixup" / "seed0"
    (record,) = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert (record["train_n"], record["test_n"], record["global_step"]) == (12, 6, 3)  # summed over both ranks
    assert record["mixing"] is True and record["lr"] == pytest.approx(0.14)
    assert json.loads((run / "provenance.json").read_text())["world_size"] == 2
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["world_size"] == 2
    assert proc.stdout.count("vicinal: complete") == 1  # only rank 0 prints the summary
