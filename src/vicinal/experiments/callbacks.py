"""The trainer's optional extras, as callbacks (in the style of ignite's handlers) it attaches from the config.

:class:`Callback` is the hook set; the trainer calls every hook on every rank, in the order the callbacks were
attached (these built-in ones first, then the caller's). A hook that writes files checks ``trainer.is_main``.

* :class:`TrainEval`: Table 2's training error on un-augmented images against the noisy and the true labels
  (every ``train.train_eval_every`` epochs, and after the last epoch of every classification run);
* :class:`ReliabilityDiagram`: ``reliability.json`` + ``reliability.png`` from the last evaluation;
* :class:`TensorBoard`: every numeric field of each epoch record as a scalar (``train.tensorboard``);
* :class:`Progress`: a tqdm bar on a terminal, otherwise a line every ``train.log_every`` steps, and a line per
  epoch (off with ``quiet``).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from . import runs
from .config import ExperimentConfig
from .data.corrupt import CorruptedLabels, counts_to_errors
from .distributed import all_reduce
from .errors import LabWarning
from .evaluation import TRAIN_EVAL_FIELDS, EvalSums, train_set_counts
from .reliability import reliability_bins, save_reliability_diagram

__all__ = [
    "Callback",
    "Progress",
    "ReliabilityDiagram",
    "TensorBoard",
    "TrainEval",
    "TrainerState",
    "default_callbacks",
    "train_labels",
]


class TrainerState(Protocol):
    """What the built-in callbacks read from the trainer (a :class:`~vicinal.experiments.trainer.Trainer`)."""

    cfg: ExperimentConfig
    run_dir: Path
    model: torch.nn.Module
    data: Any
    device: torch.device
    world_size: int
    is_main: bool
    steps_per_epoch: int
    global_step: int
    records: list[dict[str, Any]]
    last_eval: EvalSums | None

    def autocast(self) -> contextlib.AbstractContextManager[Any]: ...


class Callback:
    """Hooks into the trainer; override any subset. All receive the trainer first."""

    def on_fit_start(self, trainer: Any) -> None:
        """Everything is built (and restored on a resume); no step taken yet in this process."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """Before the first step of ``epoch`` (0-based)."""

    def on_step(self, trainer: Any, step: dict[str, Any]) -> None:
        """After each optimiser step: ``{"epoch", "batch", "global_step", "loss" (tensor), "lr", "batch_size"}``."""

    def on_eval(self, trainer: Any, metrics: dict[str, float]) -> None:
        """After each evaluation on the test split (``trainer.last_eval`` holds its sums)."""

    def on_epoch_record(self, trainer: Any, record: dict[str, Any], final: bool) -> None:
        """Add measured fields to the epoch's ``record`` before it is stored; ``final``: the run's last epoch.
        The time spent here counts as evaluation time."""

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        """After the epoch's record is complete (and checkpointed)."""

    def on_fit_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        """Training reached its end (complete or max_steps) and ``summary.json`` is written; not on interrupts."""

    def on_close(self, trainer: Any) -> None:
        """Always, last, however ``fit`` ends (release files and terminals)."""


# -- Table 2: training error on un-augmented images -------------------------------------------------------------
def train_labels(data: Any) -> CorruptedLabels | None:
    """The `CorruptedLabels` of the training set (a clean one, nothing replaced, when not corrupted); None when the
    training targets are not integer class labels (regression targets, soft labels: nothing to measure)."""
    if data.corruption is not None:
        return data.corruption
    y = data.train_dataset_y
    if y is None:
        return None
    y = torch.as_tensor(y).cpu()  # (N,); ImageFolder loaders may hold a list
    if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        return None
    y = y.to(torch.int64)
    return CorruptedLabels(y, y, torch.zeros_like(y, dtype=torch.bool), 0.0, 0, int(data.num_classes))


class TrainEval(Callback):
    """Errors of the model on the un-augmented training set against the noisy and the true labels.

    Measured after the last epoch of every run with integer training labels, and every ``train.train_eval_every``
    epochs when set (never when it is 0). The measurement changes nothing else (no randomness, no weight update). Epochs without it
    carry the fields as None when the run measures periodically or has corrupted labels (the format such runs'
    records always had).
    """

    def __init__(self) -> None:
        self.labels: CorruptedLabels | None = None

    def on_fit_start(self, trainer: TrainerState) -> None:
        self.labels = train_labels(trainer.data)

    def on_epoch_record(self, trainer: TrainerState, record: dict[str, Any], final: bool) -> None:
        every = trainer.cfg.train.train_eval_every
        if self.labels is None or every == 0:  # 0: never (a probe of the training speed)
            return
        if final or (every is not None and record["epoch"] % every == 0):
            record.update(self.measure(trainer))
        elif every is not None or trainer.data.corruption is not None:
            record.update(dict.fromkeys(TRAIN_EVAL_FIELDS))

    def measure(self, trainer: TrainerState) -> dict[str, Any]:
        """The ``TRAIN_EVAL_FIELDS`` now (summed over ranks: each rank evaluates its own shard)."""
        assert self.labels is not None
        counts = train_set_counts(
            trainer.model,
            trainer.data.train_eval,
            self.labels,
            autocast=trainer.autocast,
            channels_last=trainer.cfg.train.channels_last,
        )
        counts = all_reduce(counts.to(trainer.device), trainer.world_size).cpu()
        return counts_to_errors(counts)


# -- reliability diagram ----------------------------------------------------------------------------------------
class ReliabilityDiagram(Callback):
    """``reliability.json`` + ``reliability.png`` from the last evaluation's confidence bins (rank 0, at the end)."""

    def on_fit_end(self, trainer: TrainerState, summary: dict[str, Any]) -> None:
        if not trainer.is_main or trainer.last_eval is None:
            return
        bins = reliability_bins(trainer.last_eval)
        bins["epoch"] = trainer.records[-1]["epoch"] if trainer.records else None
        bins["name"] = trainer.cfg.name
        runs.write_json(trainer.run_dir / "reliability.json", bins)
        try:
            title = f"{trainer.cfg.name} seed {trainer.cfg.train.seed}"
            save_reliability_diagram(bins, trainer.run_dir / "reliability.png", title=title)
        except ImportError:  # pragma: no cover - matplotlib is in the lab extra
            warnings.warn("matplotlib is not installed; reliability.png skipped", LabWarning, stacklevel=2)


# -- TensorBoard ------------------------------------------------------------------------------------------------
class TensorBoard(Callback):
    """Every numeric field of each epoch record as a scalar in ``run_dir/tensorboard`` (rank 0)."""

    def __init__(self) -> None:
        self.writer: Any = None

    def on_fit_start(self, trainer: TrainerState) -> None:
        if not trainer.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn(
                "train.tensorboard is on but TensorBoard is not installed; skipping it", LabWarning, stacklevel=2
            )
            return
        self.writer = SummaryWriter(log_dir=str(trainer.run_dir / "tensorboard"))

    def on_epoch_end(self, trainer: TrainerState, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, record["epoch"])

    def on_close(self, trainer: TrainerState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# -- progress ---------------------------------------------------------------------------------------------------
def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def epoch_line(r: dict[str, Any]) -> str:
    """The one-line summary of an epoch record printed after each epoch."""
    test = f" test err {r['test_error']:.2f}%" if r.get("test_error") is not None else ""
    if r.get("train_eval_error") is not None:
        real, corrupted = r.get("train_error_real"), r.get("train_error_corrupted")
        if corrupted is None:  # no corrupted labels: one error, on the training labels ("real" said nothing)
            test += f" un-augmented train err {r['train_eval_error'] if real is None else real:.2f}%"
        else:  # Table 2's columns, named as the report names them: the samples that kept their real label, and those
            # whose label was corrupted
            kept = "" if real is None else f"real labels {real:.2f}%, "
            test += f" un-augmented train err {kept}corrupted labels {corrupted:.2f}%"
    ips = f" {r['images_per_s']:.0f} img/s" if r.get("images_per_s") else ""
    return (
        f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} err {r['train_error']:.2f}%{test} "
        f"lr {r['lr']:.4g} {r['epoch_time_s']:.1f}s{ips}"
    )


class Progress(Callback):
    """A tqdm bar per epoch when stderr is a terminal, else a line every ``train.log_every`` steps; a line per epoch.

    Attach it on rank 0 only (the trainer does, unless ``quiet``).
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.epoch = 0
        self.tty = sys.stderr.isatty()

    def on_fit_start(self, trainer: TrainerState) -> None:
        c, t = trainer.cfg, trainer.cfg.train
        resumed = ""
        if trainer.global_step:  # a resume: where it goes on from ("training ..." alone read as a start from scratch)
            end = t.epochs * trainer.steps_per_epoch
            end = end if t.max_steps is None else min(end, t.max_steps)
            left = " (nothing left to train)" if trainer.global_step >= end else ""
            resumed = f", resumed at step {trainer.global_step}{left},"
        _log(
            f"vicinal: training {c.name!r} seed {t.seed} for {t.epochs} epochs x {trainer.steps_per_epoch} steps"
            f"{resumed} on {trainer.device} (world size {trainer.world_size}) into {trainer.run_dir}"
        )

    def on_epoch_start(self, trainer: TrainerState, epoch: int) -> None:
        self.epoch = epoch

    def on_step(self, trainer: TrainerState, step: dict[str, Any]) -> None:
        t = trainer.cfg.train
        batch, loss, lr = step["batch"], step["loss"], step["lr"]
        if self.tty:
            if self.bar is None:  # opened at the epoch's first step here (a resume starts mid-epoch)
                self.bar = tqdm(
                    total=trainer.steps_per_epoch,
                    initial=batch,
                    desc=f"epoch {self.epoch + 1}/{t.epochs}",
                    leave=False,
                    dynamic_ncols=True,
                )
            self.bar.update(1)
            if (batch + 1) % 10 == 0:
                self.bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.3g}")
        elif (batch + 1) % t.log_every == 0:
            _log(
                f"epoch {self.epoch + 1}/{t.epochs} step {batch + 1}/{trainer.steps_per_epoch} "
                f"loss {float(loss):.4f} lr {lr:.4g}"
            )

    def on_epoch_end(self, trainer: TrainerState, record: dict[str, Any]) -> None:
        self._close_bar()
        _log(epoch_line(record))

    def on_close(self, trainer: TrainerState) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def default_callbacks(cfg: ExperimentConfig, *, is_main: bool, quiet: bool) -> list[Callback]:
    """The extras ``cfg`` asks for, in the order the trainer calls them (before the caller's callbacks)."""
    out: list[Callback] = [TrainEval()]
    if cfg.train.reliability_diagram:
        out.append(ReliabilityDiagram())
    if cfg.train.tensorboard:
        out.append(TensorBoard())
    if is_main and not quiet:
        out.append(Progress())
    return out
