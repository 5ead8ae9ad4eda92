"""The trainer: schedules, metrics, run folders, exact resume, mixing paths and user errors."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from lab_helpers import one_thread, tiny_config  # noqa: F401 (one_thread: autouse fixture)
from torch import nn

import vicinal
from vicinal.experiments.checkpoint import CheckpointError, load_checkpoint
from vicinal.experiments.config import ScheduleConfig, config_from_dict
from vicinal.experiments.trainer import (
    TIMING_FIELDS,
    RunError,
    Trainer,
    TrainingInterrupted,
    eval_metrics,
    evaluate,
    lr_at,
    summarize,
)


# -- schedules ----------------------------------------------------------------------------------------------------
def test_multistep_follows_the_official_code() -> None:
    # official mixup-cifar10: lr = 0.1, /10 once epoch >= 100 and again once epoch >= 150 (0-based epochs)
    s = ScheduleConfig(name="multistep", milestones=[100, 150], gamma=0.1)
    at = {
        e: lr_at(e * 10, schedule=s, base_lr=0.1, epochs=200, steps_per_epoch=10) for e in (0, 99, 100, 149, 150, 199)
    }
    assert at[0] == at[99] == 0.1
    assert at[100] == at[149] == pytest.approx(0.01, rel=1e-12)
    assert at[150] == at[199] == pytest.approx(0.001, rel=1e-12)
    assert lr_at(999, schedule=s, base_lr=0.1, epochs=200, steps_per_epoch=10) == 0.1  # last step of epoch 99


def test_linear_warmup_then_step() -> None:
    # Goyal et al. / paper 3.1: 0.1 -> 0.4 linearly over 5 epochs, then /10 at 30, 60, 80
    s = ScheduleConfig(name="multistep", milestones=[30, 60, 80], warmup_epochs=5, warmup_start_lr=0.1)
    kw = {"schedule": s, "base_lr": 0.4, "epochs": 90, "steps_per_epoch": 4}
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(10, **kw) == pytest.approx(0.1 + 0.3 * 2.5 / 5)  # step 10 = epoch 2.5
    assert lr_at(20, **kw) == pytest.approx(0.4)
    assert lr_at(30 * 4, **kw) == pytest.approx(0.04)


def test_cosine_and_step_and_constant() -> None:
    cos = ScheduleConfig(name="cosine", eta_min=0.001)
    kw: dict[str, Any] = {"base_lr": 0.1, "epochs": 10, "steps_per_epoch": 5}
    assert lr_at(0, schedule=cos, **kw) == pytest.approx(0.1)
    assert lr_at(25, schedule=cos, **kw) == pytest.approx(0.001 + 0.099 * 0.5)  # half way
    assert lr_at(50, schedule=cos, **kw) == pytest.approx(0.001)
    step = ScheduleConfig(name="step", step_size=3, gamma=0.5)
    assert [lr_at(e * 5, schedule=step, **kw) for e in (0, 2, 3, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert lr_at(37, schedule=ScheduleConfig(name="constant"), **kw) == 0.1


# -- evaluation ---------------------------------------------------------------------------------------------------
def test_evaluate_against_direct_formulas() -> None:
    torch.manual_seed(0)
    logits = torch.randn(50, 7) * 3
    y = torch.randint(0, 7, (50,))
    model = nn.Identity()
    loader = [(logits[:20], y[:20], None), (logits[20:], y[20:], None)]
    m = eval_metrics(evaluate(model, loader))
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    top5 = logits.topk(5, 1).indices
    assert m["test_n"] == 50
    assert m["test_error"] == pytest.approx(100 * (pred != y).double().mean().item())
    assert m["test_top5_error"] == pytest.approx(100 * (1 - (top5 == y[:, None]).any(1).double().mean().item()))
    assert m["test_nll"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    ece = 0.0  # Guo et al. 2017: sum over 15 equal-width bins of |acc - conf| * n_bin / N
    for b in range(15):
        inside = (conf > b / 15) & (conf <= (b + 1) / 15)
        if inside.any():
            acc = (pred[inside] == y[inside]).double().mean().item()
            ece += abs(acc - conf[inside].double().mean().item()) * inside.sum().item() / 50
    assert m["test_ece"] == pytest.approx(100 * ece, rel=1e-9)


def test_summarize() -> None:
    records = [
        {"epoch": i + 1, "test_error": e, "train_loss": 1.0 / (i + 1), "train_error": 50.0 - i, "epoch_time_s": 2.0}
        for i, e in enumerate([30.0, 20.0, 25.0, 10.0, 12.0, 11.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0])
    ]
    s = summarize(records, "complete")
    assert s["best_test_error"] == 10.0 and s["best_epoch"] == 4 and s["last_test_error"] == 18.0
    assert s["median_last10_test_error"] == 14.5  # median of epochs 3..12
    assert s["train_time_s"] == 24.0 and s["epochs_completed"] == 12 and s["status"] == "complete"


# -- runs -----------------------------------------------------------------------------------------------------------
def state_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def untimed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


class StopAt:
    """Simulate SIGTERM arriving during a given step (the trainer finishes the step, saves, raises)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
        if (step["epoch"], step["batch"]) == (self.epoch, self.batch):
            trainer.stop.signum = signal.SIGTERM


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, Path]:
    run = tmp_path_factory.mktemp("straight") / "run"
    trainer = Trainer(tiny_config(), run, quiet=True)
    trainer.fit()
    return trainer, run


@pytest.mark.parametrize(("stop_epoch", "stop_batch"), [(1, 4), (2, 1)], ids=["end-of-epoch-2", "mid-epoch-3"])
def test_resume_is_bit_identical(
    straight: tuple[Trainer, Path], tmp_path: Path, stop_epoch: int, stop_batch: int
) -> None:
    # 5 batches per epoch (160 samples / 32): (1, 4) stops after the last step of epoch 2 (0-based 1),
    # (2, 1) in the middle of epoch 3.
    full, _ = straight
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        Trainer(tiny_config(), run, quiet=True, callbacks=[StopAt(stop_epoch, stop_batch)]).fit()
    assert info.value.exit_code == 143 and info.value.checkpoint == run / "checkpoint.pt"
    ck = load_checkpoint(run / "checkpoint.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == (stop_epoch, stop_batch + 1)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    resumed = Trainer(tiny_config(), run, resume=True, quiet=True)
    summary = resumed.fit()
    assert summary["status"] == "complete"
    a, b = state_of(full), state_of(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert untimed(resumed.records) == untimed(full.records)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert untimed(lines) == untimed(full.records)
    prov = json.loads((run / "provenance.json").read_text())
    assert len(prov["resumes"]) == 1 and prov["resumes"][0]["from_step_in_epoch"] == stop_batch + 1


def test_run_folder(straight: tuple[Trainer, Path]) -> None:
    trainer, run = straight
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt",
        "config.yaml",
        "metrics.jsonl",
        "provenance.json",
        "reliability.json",
        "reliability.png",
        "summary.json",
    ]
    assert config_from_dict(yaml.safe_load((run / "config.yaml").read_text())) == tiny_config()
    prov = json.loads((run / "provenance.json").read_text())
    for key in ("argv", "git_commit", "git_dirty", "versions", "device", "seed", "hostname", "cpu_count", "world_size"):
        assert key in prov, key
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert prov["seed"] == 3 and prov["device"] == "cpu" and prov["world_size"] == 1
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    for r in records:
        for key in (
            "train_loss",
            "train_error",
            "test_error",
            "test_top5_error",
            "test_nll",
            "test_ece",
            "lr",
            "epoch_time_s",
            "images_per_s",
        ):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert r["train_n"] == 160 and r["test_n"] == 40 and r["mixing"] is True
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["last_test_error"] == records[-1]["test_error"]
    assert summary["best_test_error"] == min(r["test_error"] for r in records)
    # the lr of the last step of epoch 1 (warm-up 0.01 -> 0.05 over epoch 1, 5 steps): step 4 = epoch 0.8
    assert records[0]["lr"] == pytest.approx(0.01 + 0.04 * 0.8)


@pytest.mark.parametrize("two_label", [False, True])
def test_train_error_is_against_the_larger_weight_label(tmp_path: Path, two_label: bool) -> None:
    # lr 0: the weights never move, so the test can replay the epoch: same batches, same mixer draws (the mixer
    # generator is seeded with trainer.mix_seed), BatchNorm in training mode (batch statistics), no dropout.
    overrides = [
        "optim.lr=0.0",
        "schedule.warmup_epochs=0",
        "model.kwargs={width: 4, dropout: 0.0}",
        "train.epochs=1",
        f"mix.two_label={str(two_label).lower()}",
    ]
    t = Trainer(tiny_config(*overrides), tmp_path / "r", quiet=True)
    t.fit()
    mixer = vicinal.build("mixup", alpha=1.0, num_classes=10, generator=torch.Generator().manual_seed(t.mix_seed))
    t.model.train()
    wrong = wrong_vs_y = n = 0
    with torch.no_grad():
        for x, y, _ in t.data.train.iter_from(0, 0):
            x_mixed, y_soft = mixer(x, y)
            pred = t.model(x_mixed).argmax(1)
            wrong += int((pred != y_soft.argmax(1)).sum())
            wrong_vs_y += int((pred != y).sum())
            n += y.shape[0]
    assert t.records[0]["train_error"] == pytest.approx(100.0 * wrong / n, abs=1e-9)
    assert n == 160


def test_latent_mixing_leaves_the_model_input_clean(tmp_path: Path) -> None:
    # Without augmentation every row the model receives must be a training image, unless the inputs are mixed.
    def rows_seen(*overrides: str) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []

        class Spy:
            def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
                trainer.model.register_forward_pre_hook(
                    lambda m, a: seen.append(a[0].detach().clone()), prepend=True
                )  # before the Normalize pre-hook: pixels

        t = Trainer(
            tiny_config("data.augment=false", "train.max_steps=2", *overrides),
            tmp_path / overrides[0],
            quiet=True,
            callbacks=[Spy()],
        )
        t.fit()
        return torch.cat(seen[:2]).flatten(1), t.data.train_dataset_x.flatten(1).float() / 255

    def all_rows_in_dataset(rows: torch.Tensor, data: torch.Tensor) -> bool:
        return bool(
            (torch.cdist(rows, data, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values < 1e-6).all()
        )

    assert all_rows_in_dataset(*rows_seen("mix.layer=layer3"))
    assert not all_rows_in_dataset(*rows_seen("mix.layer=null"))  # input mixup: the control


@pytest.mark.parametrize(
    "overrides",
    [
        ["mix.two_label=true"],
        ["mix.layer=layer2"],
        ["mix.pairing=knn", "mix.knn_k=5"],
        ["mix.pairing=knn", "mix.knn_k=5", "mix.knn_same_class=true", "mix.two_label=true"],
        ["mix.variant=mix_inputs_label_smoothing", "mix.smoothing=0.1", "mix.lam_mode=sample"],
        ["mix.variant=gaussian_noise", "mix.sigma=0.1", "optim.name=adam", "optim.lr=0.001"],
        ["mix.variant=erm", "schedule.name=step", "schedule.step_size=1", "data.augment=false"],
        ["mix.variant=dirichlet", "mix.two_label=true"],
        ["train.amp=bf16"],
    ],
    ids=[
        "two-label",
        "latent",
        "knn",
        "sc-knn-two-label",
        "inputs+smoothing",
        "noise-adam",
        "erm-step",
        "dirichlet",
        "bf16",
    ],
)
def test_every_mixing_path_trains(tmp_path: Path, overrides: list[str]) -> None:
    t = Trainer(tiny_config("train.epochs=1", *overrides), tmp_path / "r", quiet=True)
    s = t.fit()
    assert s["status"] == "complete" and math.isfinite(s["last_train_loss"])


def test_mixup_warmup_and_off_epoch(tmp_path: Path) -> None:
    t = Trainer(tiny_config("mix.warmup_epochs=1", "mix.off_epoch=3", "train.max_steps=16"), tmp_path / "r", quiet=True)
    s = t.fit()
    assert [r["mixing"] for r in t.records] == [False, True, True, False]
    assert s["status"] == "max_steps" and t.global_step == 16 and t.records[-1]["train_n"] == 32


def test_user_errors(tmp_path: Path, straight: tuple[Trainer, Path]) -> None:
    _, run = straight
    with pytest.raises(RunError, match=r"run folder '.*run' already holds a checkpoint; resume it with --resume"):
        Trainer(tiny_config(), run, quiet=True).fit()
    with pytest.raises(
        CheckpointError, match=r"checkpoint file '.*empty/checkpoint.pt' does not exist: nothing to resume"
    ):
        Trainer(tiny_config(), tmp_path / "empty", resume=True, quiet=True).fit()
    with pytest.raises(CheckpointError, match=r"was written by a different config \(differs at optim.lr\)"):
        Trainer(tiny_config("optim.lr=0.2"), run, resume=True, quiet=True).fit()
    with pytest.raises(RunError, match=r"train.amp 'fp16' needs a CUDA device, but the run is on cpu"):
        Trainer(tiny_config("train.amp=fp16"), tmp_path / "fp16", quiet=True).fit()
    if not torch.cuda.is_available():
        with pytest.raises(RunError, match=r"train.device is 'cuda' but CUDA is not available"):
            Trainer(tiny_config("train.device=cuda"), tmp_path / "cuda", quiet=True).fit()
    with pytest.raises(ValueError, match=r"unknown model 'nope'"):
        Trainer(tiny_config("model.name=nope"), tmp_path / "m", quiet=True).fit()
    with pytest.raises(RunError, match=r"train.compile cannot be combined with latent mixing"):
        Trainer(tiny_config("train.compile=true", "mix.layer=layer2"), tmp_path / "c", quiet=True).fit()


def test_resume_may_extend_training(straight: tuple[Trainer, Path], tmp_path: Path) -> None:
    import shutil

    _, run = straight
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    t = Trainer(tiny_config("train.epochs=5"), copy, resume=True, quiet=True)
    s = t.fit()
    assert s["epochs_completed"] == 5 and [r["epoch"] for r in t.records] == [1, 2, 3, 4, 5]
    assert yaml.safe_load((copy / "config.yaml").read_text())["train"]["epochs"] == 5


def test_interrupt_exit_codes() -> None:
    assert TrainingInterrupted(signal.SIGINT, None).exit_code == 130
    assert TrainingInterrupted(signal.SIGTERM, None).exit_code == 143
    assert "interrupted by SIGINT" in str(TrainingInterrupted(signal.SIGINT, None))


def test_tensorboard_is_optional(tmp_path: Path) -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="train.tensorboard is on but TensorBoard is not installed; skipping it"):
            Trainer(tiny_config("train.tensorboard=true", "train.max_steps=1"), tmp_path / "r", quiet=True).fit()
        assert not (tmp_path / "r" / "tensorboard").exists()
    else:
        Trainer(tiny_config("train.tensorboard=true", "train.max_steps=1"), tmp_path / "r", quiet=True).fit()
        assert any((tmp_path / "r" / "tensorboard").iterdir())


def test_threads_are_set_for_the_run_and_restored(tmp_path: Path) -> None:
    seen: list[int] = []

    class Spy:
        def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    Trainer(tiny_config("train.threads=2", "train.max_steps=1"), tmp_path / "r", quiet=True, callbacks=[Spy()]).fit()
    assert seen == [2] and torch.get_num_threads() == before
    assert json.loads((tmp_path / "r" / "provenance.json").read_text())["torch_threads"] == 2
