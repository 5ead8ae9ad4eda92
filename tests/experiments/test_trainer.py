"""The trainer: schedules, metrics, run folders, exact resume, mixing paths and user errors."""

from __future__ import annotations

import json
import math
import re
import signal
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import vicinal
import vicinal.experiments.trainer as trainer_module
from tests.experiments.data.data_helpers import write_image_tree
from tests.experiments.lab_helpers import one_thread, tiny_config  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments import build, callbacks, checkpoint, distributed, evaluation, runs
from vicinal.experiments.checkpoint import CheckpointError, load_checkpoint
from vicinal.experiments.config import apply_overrides, config_from_dict
from vicinal.experiments.data import seeds
from vicinal.experiments.errors import LabWarning
from vicinal.experiments.trainer import (
    TIMING_FIELDS,
    RunError,
    Trainer,
    TrainingInterrupted,
)


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


@pytest.mark.parametrize("limit", [12, 10], ids=["mid-epoch-3", "end-of-epoch-2"])
def test_a_step_limit_pauses_and_a_raised_limit_resumes_bit_identically(
    straight: tuple[Trainer, Path], tmp_path: Path, limit: int
) -> None:
    """A run stopped by train.max_steps inside an epoch once skipped the rest of that epoch on resume and was
    marked complete with a short epoch; resuming at its limit also took one more step."""
    full, _ = straight
    run = tmp_path / "run"
    stopped = Trainer(tiny_config(f"train.max_steps={limit}"), run, quiet=True)
    assert stopped.fit()["status"] == "max_steps" and stopped.global_step == limit
    last = stopped.records[-1]
    assert last.get("partial_epoch", False) == (limit % 5 != 0) and last["train_n"] == 32 * (limit % 5 or 5)
    ck = load_checkpoint(run / "checkpoint.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == ((limit // 5, limit % 5) if limit % 5 else (limit // 5, 0))

    # resumed at the same limit: nothing is trained, and the run's files say what they said (a resume inside an
    # epoch once rewrote metrics.jsonl from the checkpoint, which precedes the partial epoch's record, and lost it:
    # the summary then gave the previous epoch's errors beside the later weights, without a reliability diagram)
    def files() -> tuple[list[dict[str, Any]], dict[str, Any], bytes]:
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        summary = json.loads((run / "summary.json").read_text())
        timed = {k for k in summary if k.endswith("_time_s") or k.startswith("images_per_s")}
        return (
            untimed(lines),
            {k: v for k, v in summary.items() if k not in timed},
            (run / "reliability.json").read_bytes(),
        )

    before = files()
    again = Trainer(tiny_config(f"train.max_steps={limit}"), run, resume=True, quiet=True)
    assert again.fit()["status"] == "max_steps" and again.global_step == limit
    assert files() == before and len(before[0]) == (limit + 4) // 5
    # the limit lifted: the run continues as if it had never stopped
    resumed = Trainer(tiny_config("train.max_steps=null"), run, resume=True, quiet=True)
    with pytest.warns(LabWarning, match=rf"with train.max_steps {limit} -> None$"):
        assert resumed.fit()["status"] == "complete"
    a, b = state_of(full), state_of(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    got, want = untimed(resumed.records), untimed(full.records)
    if limit % 5 == 0:  # the epoch that ended at the limit was evaluated as a last epoch: its extra measurements
        extra = {k: got[1][k] for k in got[1].keys() - want[1].keys()}
        assert "train_eval_error" in extra and {k: got[1][k] for k in want[1]} == want[1]
        got[1] = want[1]
    assert got == want
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [{k: r[k] for k in w} for r, w in zip(untimed(lines), want, strict=True)] == want


@pytest.mark.parametrize("limit", [12, 10, 20], ids=["mid-epoch-3", "end-of-epoch-2", "end-of-run"])
def test_an_interrupt_on_the_step_that_reaches_the_limit_resumes_to_the_same_files(tmp_path: Path, limit: int) -> None:
    # the signal is honoured before the limit: the checkpoint says "epoch e, after batch b" with the epoch's sums,
    # and the resume (nothing left to train) must end the run as the uninterrupted one ended: the partial epoch's
    # record (lost before), its status, and at the run's natural end "complete" rather than "max_steps"
    cfg = f"train.max_steps={limit}"
    straight = Trainer(tiny_config(cfg), tmp_path / "straight", quiet=True)
    want = straight.fit()
    run = tmp_path / "run"
    epoch, batch = divmod(limit - 1, 5)
    with pytest.raises(TrainingInterrupted):
        Trainer(tiny_config(cfg), run, quiet=True, callbacks=[StopAt(epoch, batch)]).fit()
    resumed = Trainer(tiny_config(cfg), run, resume=True, quiet=True)
    got = resumed.fit()
    assert got["status"] == want["status"] == ("complete" if limit == 20 else "max_steps")
    assert untimed(resumed.records) == untimed(straight.records)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert untimed(lines) == untimed(straight.records)
    assert (run / "reliability.json").read_bytes() == (tmp_path / "straight" / "reliability.json").read_bytes()
    if limit == 20:
        return
    # and the limit raised afterwards: the same run as the uninterrupted one resumed the same way (the checkpoint of
    # an epoch that ended at the limit once lacked its record, which the next resume remade without its test error)
    for trainer, folder in ((straight, tmp_path / "straight"), (resumed, run)):
        again = Trainer(tiny_config("train.max_steps=null"), folder, resume=True, quiet=True)
        with pytest.warns(LabWarning, match="train.max_steps"):
            again.fit()
        if trainer is straight:
            want_records = untimed(again.records)
        else:
            assert untimed(again.records) == want_records


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


class StepLosses:
    """Each step's (mean loss, batch size)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int]] = []

    def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
        self.seen.append((float(step["loss"]), step["batch_size"]))


def test_the_epochs_training_loss_is_the_mean_over_its_samples(tmp_path: Path) -> None:
    # batches of 48, 48, 48 and 16: each batch's mean loss counts with its size
    steps = StepLosses()
    cfg = tiny_config("train.epochs=1", "data.batch_size=48", "train.reliability_diagram=false")
    t = Trainer(cfg, tmp_path / "r", quiet=True, callbacks=[steps])
    t.fit()
    assert [b for _, b in steps.seen] == [48, 48, 48, 16] and t.records[0]["train_n"] == 160
    assert t.records[0]["train_loss"] == pytest.approx(sum(loss * b for loss, b in steps.seen) / 160, rel=1e-12)


def test_the_last_epoch_is_checkpointed_whatever_checkpoint_every_says(tmp_path: Path) -> None:
    cfg = tiny_config("train.epochs=1", "train.checkpoint_every=2", "train.reliability_diagram=false")
    Trainer(cfg, tmp_path / "r", quiet=True).fit()
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"], len(state["records"])) == (1, 0, 5, 1)


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


def test_channels_last_trains_the_same_run_in_nhwc(tmp_path: Path) -> None:
    # train.channels_last changes the memory format only: the model's conv weights and each batch go NHWC, and the
    # run follows the contiguous one up to the rounding of another convolution algorithm (without dropout, whose
    # masks are drawn in memory order)
    class Formats:  # the memory format of every batch the first convolution sees, in training and evaluation
        def __init__(self) -> None:
            self.seen: set[bool] = set()

        def on_fit_start(self, trainer: Trainer) -> None:
            conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
            conv.register_forward_pre_hook(
                lambda _, args: self.seen.add(args[0].is_contiguous(memory_format=torch.channels_last))
            )

    runs, formats = {}, {}
    for flag in (False, True):
        cfg = tiny_config("train.epochs=2", "model.kwargs.dropout=0.0", f"train.channels_last={flag}")
        formats[flag] = Formats()
        t = Trainer(cfg, tmp_path / str(flag), callbacks=[formats[flag]], quiet=True)
        t.fit()
        runs[flag] = t
    assert formats[True].seen == {True} and formats[False].seen == {False}
    conv = next(m for m in runs[True].model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.stride()[1] == 1
    for a, b in zip(runs[False].records, runs[True].records, strict=True):
        for key in ("train_loss", "test_nll"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_a_quiet_run_decodes_its_images_without_a_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # vicinal train --quiet promises no progress output; the decoder's bar (data.kwargs.progress, on by default)
    # showed all the same. Each run decodes (its own cache folder), so the quiet one cannot pass by a cache hit.
    write_image_tree(tmp_path / "tree", {"train": 4, "test": 2})
    for quiet in (False, True):
        monkeypatch.setenv("VICINAL_CACHE", str(tmp_path / f"cache-{quiet}"))
        cfg = tiny_config("data.name=imagefolder_memory", f"data.root={tmp_path / 'tree'}", "train.max_steps=1")
        Trainer(cfg, tmp_path / f"run-{quiet}", quiet=quiet).fit()
        assert ("decode" in capfd.readouterr().err) is not quiet, quiet


def test_mixup_warmup_and_off_epoch(tmp_path: Path) -> None:
    t = Trainer(tiny_config("mix.warmup_epochs=1", "mix.off_epoch=3", "train.max_steps=16"), tmp_path / "r", quiet=True)
    s = t.fit()
    assert [r["mixing"] for r in t.records] == [False, True, True, False]
    assert s["status"] == "max_steps" and t.global_step == 16 and t.records[-1]["train_n"] == 32


def test_user_errors(tmp_path: Path, straight: tuple[Trainer, Path]) -> None:
    _, run = straight
    with pytest.raises(RunError, match=r"run folder '.*run' already holds a finished run; choose another --out"):
        Trainer(tiny_config(), run, quiet=True).fit()
    with pytest.raises(
        CheckpointError, match=r"checkpoint file '.*empty/checkpoint.pt' does not exist: nothing to resume"
    ):
        Trainer(tiny_config(), tmp_path / "empty", resume=True, quiet=True).fit()
    (tmp_path / "odd" / "checkpoint.pt").mkdir(parents=True)  # it said "does not exist" (helper-108)
    with pytest.raises(CheckpointError, match=r"checkpoint.pt' is a folder, not a checkpoint: nothing to resume in "):
        Trainer(tiny_config(), tmp_path / "odd", resume=True, quiet=True).fit()
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


def test_a_global_batch_the_config_was_not_written_for_is_refused_before_anything_is_read_or_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 2 of the paper audit: `torchrun --nproc_per_node=8` trained a CIFAR paper config (batch 128 per
    process) at a global batch of 1,024 with the lr of 128. Eight processes are simulated (no process group)."""
    eight = distributed.Placement(0, 8, 0, torch.device("cpu"), owns_group=False)
    monkeypatch.setattr(distributed, "setup", lambda device: eight)

    class Built(Exception):
        """Raised by the stub build_run: the check let the run through to reading its data."""

    def build_run(*args: Any, **kwargs: Any) -> None:
        raise Built

    monkeypatch.setattr(trainer_module, "build_run", build_run)
    with pytest.raises(
        RunError,
        match=r"^data.batch_size 32 x 8 processes is a global batch of 256, but this config was written for a global "
        r"batch of 32 .*: run it in one process \(no torchrun\), or --set data.batch_size=4 for 8 processes, or ",
    ):
        Trainer(tiny_config("data.global_batch_size=32"), tmp_path / "run", quiet=True).fit()
    assert not (tmp_path / "run").exists()  # refused before build_run (which would have raised Built)
    with pytest.raises(Built):  # 4 x 8 = 32: the check passes
        Trainer(tiny_config("data.batch_size=4", "data.global_batch_size=32"), tmp_path / "run", quiet=True).fit()


def test_resume_may_extend_training(straight: tuple[Trainer, Path], tmp_path: Path) -> None:
    import shutil

    _, run = straight
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    t = Trainer(tiny_config("train.epochs=5"), copy, resume=True, quiet=True)
    with pytest.warns(LabWarning, match=r"resuming '.*copy' with train.epochs 4 -> 5$"):
        s = t.fit()
    assert s["epochs_completed"] == 5 and [r["epoch"] for r in t.records] == [1, 2, 3, 4, 5]
    assert yaml.safe_load((copy / "config.yaml").read_text())["train"]["epochs"] == 5


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_a_resume_may_not_end_before_the_checkpoint(straight: tuple[Trainer, Path], tmp_path: Path) -> None:
    """train.epochs below the checkpoint's position once marked the run complete with a summary of fewer epochs
    than its weights had seen (an interrupted epoch's sums dropped); the run folder is left as it was."""
    _, run = straight  # 4 epochs, complete
    with pytest.raises(
        CheckpointError,
        match=r"cannot resume from '.*run/checkpoint.pt' with train.epochs 3: the checkpoint has completed 4 "
        r"epoch\(s\), so train.epochs must be >= 4$",
    ):
        Trainer(tiny_config("train.epochs=3"), run, resume=True, quiet=True).fit()
    paused = tmp_path / "paused"
    assert Trainer(tiny_config("train.max_steps=12"), paused, quiet=True).fit()["status"] == "max_steps"
    before = _files(paused)  # checkpoint: epoch 2 (0-based), 2 of its 5 steps done
    for epochs in (1, 2):
        with pytest.raises(
            CheckpointError,
            match=rf"with train.epochs {epochs}: the checkpoint has completed 2 epoch\(s\) and is part-way through "
            r"the next, so train.epochs must be >= 3$",
        ):
            Trainer(
                tiny_config(f"train.epochs={epochs}", "train.max_steps=null"), paused, resume=True, quiet=True
            ).fit()
    assert _files(paused) == before
    resumed = Trainer(tiny_config("train.epochs=3", "train.max_steps=null"), paused, resume=True, quiet=True)
    with pytest.warns(LabWarning, match=r"train.epochs 4 -> 3"):
        summary = resumed.fit()
    assert summary["status"] == "complete" and summary["epochs_completed"] == 3 and resumed.global_step == 15


def test_interrupt_exit_codes() -> None:
    assert TrainingInterrupted(signal.SIGINT, None).exit_code == 130
    assert TrainingInterrupted(signal.SIGTERM, None).exit_code == 143
    assert "interrupted by SIGINT" in str(TrainingInterrupted(signal.SIGINT, None))


def test_a_signal_during_an_epochs_evaluation_stops_before_the_next_epoch(tmp_path: Path) -> None:
    # the signal comes after the step check of epoch 1's last step: the checkpoint says "start at epoch 2"
    class StopInEval:
        def on_eval(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
            trainer.stop.signum = signal.SIGTERM

    cfg = tiny_config("train.epochs=2", "train.reliability_diagram=false")
    with pytest.raises(TrainingInterrupted) as info:
        Trainer(cfg, tmp_path / "r", quiet=True, callbacks=[StopInEval()]).fit()
    assert info.value.checkpoint == tmp_path / "r" / "checkpoint.pt"
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"], len(state["records"])) == (1, 0, 5, 1)


def test_tensorboard_is_optional(tmp_path: Path) -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.warns(LabWarning, match="train.tensorboard is on but TensorBoard is not installed; skipping it"):
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


def test_names_that_moved_out_stay_importable_from_the_trainer() -> None:
    # code outside the package (and processes started before the split) import these from trainer
    trainer = trainer_module
    assert trainer.lr_at is build.lr_at and trainer.LRSchedule is build.LRSchedule
    assert trainer.build_run_model is build.build_run_model and trainer.CHECKPOINT_NAME == "checkpoint.pt"
    assert trainer.evaluate is evaluation.evaluate and trainer.eval_metrics is evaluation.eval_metrics
    assert trainer.summarize is evaluation.summarize and trainer.TRAIN_EVAL_FIELDS is evaluation.TRAIN_EVAL_FIELDS
    assert trainer.check_device is distributed.check_device and trainer.Callback is callbacks.Callback
    # and the run-folder, resume and seed names that left it later
    assert trainer.RUN_FILES is runs.RUN_FILES and trainer.RUN_FOLDERS is runs.RUN_FOLDERS
    assert trainer.Trainer.results_in is runs.results_in and trainer.RESUME_MUTABLE is checkpoint.RESUME_MUTABLE
    assert (trainer.STREAM_MIX, trainer.STREAM_GLOBAL) == (seeds.STREAM_MIX, seeds.STREAM_GLOBAL) == (101, 102)


@pytest.mark.parametrize(("eval_last", "expected"), [(0, [4, 6]), (2, [4, 5, 6]), (6, [1, 2, 3, 4, 5, 6])])
def test_eval_last_adds_the_final_epochs(tmp_path: Path, eval_last: int, expected: list[int]) -> None:
    # eval_every=4 over 6 epochs tests after epochs 4 and 6 (the last); eval_last=N adds each of the last N.
    cfg = apply_overrides(
        tiny_config("train.epochs=6"),
        ["train.eval_every=4", f"train.eval_last={eval_last}", "train.reliability_diagram=false"],
    )
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    summary = trainer.fit()
    assert [r["epoch"] for r in trainer.records if r["test_error"] is not None] == expected
    assert summary["median_last10_n"] == len(expected)


def _write_iris(data_root: Path, shift: int) -> None:
    """An iris-format file (30 rows, 3 classes) under ``data_root/uci``; ``shift`` rotates every label."""
    folder = data_root / "uci" / "iris"
    folder.mkdir(parents=True)
    names = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    rows = [f"{i % 7}.1,{i % 5}.2,{i % 3}.3,{c}.4,{names[(c + shift) % 3]}" for c in range(3) for i in range(10)]
    (folder / "bezdekIris.data").write_text("\n".join(rows) + "\n")


def test_a_resume_on_other_data_is_recorded_and_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 6 of the data audit: a resume under another VICINAL_DATA continued silently on other data."""
    _write_iris(tmp_path / "a", 0)
    _write_iris(tmp_path / "b", 1)
    cfg = ["data.name=uci:iris", "data.batch_size=8", "model.name=mlp", "model.kwargs={}", "train.epochs=3"]
    run = tmp_path / "run"
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "a"))
    assert Trainer(tiny_config(*cfg, "train.max_steps=2"), run, quiet=True).fit()["status"] == "max_steps"
    first = json.loads((run / "provenance.json").read_text())["data"]
    assert first["name"] == "uci:iris" and first["source"] == "iris" and first["num_classes"] == 3
    assert first["root"] == str((tmp_path / "a" / "uci").resolve()) and first["sizes"]["train"] > 0
    assert len(first["fingerprint"]) == 20
    # the same data again: no warning (a config change would be warned; nothing else is said)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabWarning)
        Trainer(tiny_config(*cfg, "train.max_steps=2"), run, resume=True, quiet=True).fit()
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "b"))
    resumed = Trainer(tiny_config(*cfg, "train.max_steps=4"), run, resume=True, quiet=True)
    changed = (
        rf"^resuming '{run}' on other data: fingerprint '{first['fingerprint']}' -> '[0-9a-f]{{20}}', "
        rf"root '{tmp_path / 'a' / 'uci'}' -> '{tmp_path / 'b' / 'uci'}'$"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed.fit()
    said = [str(w.message) for w in caught if issubclass(w.category, LabWarning)]
    assert len(said) == 2 and said[0] == f"resuming '{run}' with train.max_steps 2 -> 4", said
    assert re.match(changed, said[1]), said[1]
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["data"]["root"] == str((tmp_path / "b" / "uci").resolve())
    assert prov["resumes"][-1]["data_changes"] == resumed.data_changes and "root" in resumed.data_changes
    assert "data_changes" not in prov["resumes"][0]


def test_a_run_without_a_data_record_resumes_without_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provenance written before data records existed has no "data": a resume compares nothing and records one."""
    _write_iris(tmp_path / "a", 0)
    _write_iris(tmp_path / "b", 1)
    cfg = ["data.name=uci:iris", "data.batch_size=8", "model.name=mlp", "model.kwargs={}", "train.epochs=3"]
    run = tmp_path / "run"
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "a"))
    Trainer(tiny_config(*cfg, "train.max_steps=2"), run, quiet=True).fit()
    prov = json.loads((run / "provenance.json").read_text())
    del prov["data"]
    (run / "provenance.json").write_text(json.dumps(prov))
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "b"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Trainer(tiny_config(*cfg), run, resume=True, quiet=True).fit()["status"] == "complete"
    said = [str(w.message) for w in caught]
    assert any("with train.max_steps 2 -> None" in m for m in said) and not any("other data" in m for m in said)
    assert json.loads((run / "provenance.json").read_text())["data"]["root"] == str((tmp_path / "b" / "uci").resolve())


class _PoisonWeights:
    """NaN weights from the first step on: the epoch's loss is NaN."""

    def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.fill_(float("nan"))


def test_a_diverged_run_says_so_in_its_summary(tmp_path: Path) -> None:
    # the run raised "training diverged" but its summary.json stayed "running": the report listed a dead run as live
    run = tmp_path / "run"
    with pytest.raises(trainer_module.RunError, match=r"^training diverged: the loss of epoch 1 is nan$"):
        Trainer(tiny_config("train.epochs=2"), run, quiet=True, callbacks=[_PoisonWeights()]).fit()
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"


def test_a_signal_after_the_last_step_still_stops_the_caller(tmp_path: Path) -> None:
    # a Ctrl-C while the summary or the diagram was written was dropped with the signal handlers: the run returned
    # complete, and `vicinal reproduce` trained the table's next run and exited 0
    class LateSignal:
        def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
            trainer.stop.signum = signal.SIGINT  # what the handler records when the signal arrives

    run = tmp_path / "r"
    with pytest.raises(
        TrainingInterrupted, match=rf"^interrupted by SIGINT after the run in '{re.escape(str(run))}' finished$"
    ) as caught:
        Trainer(tiny_config("train.epochs=1"), run, quiet=True, callbacks=[LateSignal()]).fit()
    assert caught.value.exit_code == 130 and caught.value.checkpoint is None and caught.value.finished == run
    assert runs.read_summary(run)["status"] == "complete"  # nothing to resume: the run is whole


class _SecondCtrlC:
    """A second Ctrl-C (StopSignals raises KeyboardInterrupt) at a given global step."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
        if step["global_step"] == self.at_step:
            raise KeyboardInterrupt


def test_a_second_ctrl_c_marks_the_run_interrupted_and_names_the_last_checkpoint(tmp_path: Path) -> None:
    # helper-108: the run stopped at once with a bare "vicinal: interrupted", summary.json still "running"
    cfg = tiny_config("train.epochs=3")
    whole = Trainer(cfg, tmp_path / "whole", quiet=True).fit()
    steps = whole["global_step"] // 3  # per epoch
    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted, match=r"^stopped at once by a second SIGINT: the work since the last "):
        Trainer(cfg, run, quiet=True, callbacks=[_SecondCtrlC(steps + 1)]).fit()  # in epoch 2
    assert runs.read_summary(run)["status"] == "interrupted"
    resumed = Trainer(cfg, run, resume=True, quiet=True).fit()  # from the checkpoint after epoch 1
    assert resumed["status"] == "complete" and resumed["last_test_error"] == whole["last_test_error"]
    run = tmp_path / "early"
    with pytest.raises(
        TrainingInterrupted, match=r"^stopped at once by a second SIGINT, before the run saved any "
    ) as c:
        Trainer(cfg, run, quiet=True, callbacks=[_SecondCtrlC(1)]).fit()
    assert c.value.forced and c.value.checkpoint is None and c.value.exit_code == 130


def test_a_second_ctrl_c_after_the_last_step_leaves_the_run_complete(tmp_path: Path) -> None:
    # while on_fit_end drew the diagram, a second Ctrl-C rewrote the complete summary as "interrupted" and said the
    # work since the last checkpoint was lost
    class LateCtrlC:
        def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
            raise KeyboardInterrupt

    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted, match=r"^interrupted by SIGINT after the run in .* finished$") as c:
        Trainer(tiny_config("train.epochs=1"), run, quiet=True, callbacks=[LateCtrlC()]).fit()
    assert c.value.finished == run and c.value.checkpoint is None and not c.value.forced
    assert runs.read_summary(run)["status"] == "complete"


def test_a_second_ctrl_c_while_the_run_writes_its_end_leaves_it_complete(tmp_path: Path) -> None:
    # helper-114: pressed while the last epoch's record and the complete summary were written, it marked the
    # finished run "interrupted" and said the work since its (final) checkpoint was lost
    class TwoCtrlCsAtTheEnd:
        def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
            trainer.stop._handler(signal.SIGINT, None)
            trainer.stop._handler(signal.SIGINT, None)

    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted, match=r"^interrupted by SIGINT after the run in .* finished$") as c:
        Trainer(tiny_config("train.epochs=1"), run, quiet=True, callbacks=[TwoCtrlCsAtTheEnd()]).fit()
    assert c.value.finished == run and not c.value.forced
    assert runs.read_summary(run)["status"] == "complete"


def test_torchruns_second_ctrl_c_is_named_as_the_signal_that_came(tmp_path: Path) -> None:
    # torchrun passes a second Ctrl-C on as SIGTERM: the run said "a second SIGINT" and exited 130
    class TorchrunsSecond:
        def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
            trainer.stop.second = signal.SIGTERM  # what StopSignals records before it raises
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match=r"^stopped at once by a second SIGTERM, before the run ") as c:
        Trainer(tiny_config("train.epochs=1"), tmp_path / "r", quiet=True, callbacks=[TorchrunsSecond()]).fit()
    assert c.value.exit_code == 143 and c.value.forced


def test_a_second_ctrl_c_before_an_overwrite_cleared_the_folder_names_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pressed while the run was built, it named the old run's checkpoint: the advised --resume continued the run
    # --overwrite was replacing
    run = tmp_path / "r"
    Trainer(tiny_config("train.epochs=1"), run, quiet=True).fit()

    def interrupted_setup(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "build_run", interrupted_setup)
    with pytest.raises(
        TrainingInterrupted, match=r"^stopped at once by a second SIGINT, before the run saved any "
    ) as c:
        Trainer(tiny_config("train.epochs=2"), run, overwrite=True, quiet=True).fit()
    assert c.value.forced and c.value.checkpoint is None
    assert runs.read_summary(run)["status"] == "complete"  # the old run, untouched: the folder was not cleared yet


def test_a_run_trained_on_drops_the_diagram_of_its_earlier_end(tmp_path: Path) -> None:
    # extended with train.reliability_diagram=false, the folder kept the epoch-1 diagram beside the epoch-2 summary
    run = tmp_path / "r"
    Trainer(tiny_config("train.epochs=1"), run, quiet=True).fit()
    assert (run / "reliability.json").is_file() and (run / "reliability.png").is_file()
    on_again = tiny_config("train.epochs=1", "train.reliability_diagram=false")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabWarning)  # the resume names its changed keys
        Trainer(on_again, run, resume=True, quiet=True).fit()  # resumed at its end: the same model, kept
        assert (run / "reliability.json").is_file()
        extended = tiny_config("train.epochs=2", "train.reliability_diagram=false")
        Trainer(extended, run, resume=True, quiet=True).fit()
    assert not (run / "reliability.json").exists() and not (run / "reliability.png").exists()


def test_a_config_changed_in_python_gets_the_checks_of_a_config_file(tmp_path: Path) -> None:
    # the checks lived in load_config / apply_overrides only: a replaced config trained epochs=0 as "complete",
    # knn pairing under ERM, a path as a run name, and a str epoch count failed deep in build
    from dataclasses import replace

    cfg = tiny_config()
    cases = [
        (replace(cfg, train=replace(cfg.train, epochs=0)), r"^config key 'train.epochs' must be >= 1, got 0$"),
        (replace(cfg, mix=replace(cfg.mix, variant="erm", pairing="knn")), r"^config key 'mix.pairing' is not used"),
        (replace(cfg, name="a/b"), r"^config key 'name' must be a plain folder name"),
        (replace(cfg, train=replace(cfg.train, epochs="1")), r"^config key 'train.epochs' expects int, got str '1'$"),
    ]
    for bad, msg in cases:
        with pytest.raises(ValueError, match=msg):
            Trainer(bad, tmp_path / "run", quiet=True)
    with pytest.raises(TypeError, match=r"^cfg must be an ExperimentConfig \(load_config\), got dict$"):
        Trainer({}, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
