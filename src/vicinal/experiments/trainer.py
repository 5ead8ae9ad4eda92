"""ONE generic training loop for every experiment: mixing by config, AMP, DDP, exact checkpoints, run folders.

A run folder holds::

    config.yaml        the resolved config (what `vicinal train --resume` reloads)
    provenance.json    command line, git commit, package versions, device, seeds, host (+ one entry per resume)
    metrics.jsonl      one JSON line per epoch (errors in percent)
    summary.json       best / last test error, median of the last 10 epochs, status
    checkpoint.pt      the latest checkpoint (atomic; see `checkpoint.py`)
    tensorboard/       optional

Randomness. Model initialisation comes from ``build_model(seed=...)``; the data order and augmentation of epoch
``e`` depend only on ``(seed, e, rank)`` (the data layer); mixing draws from one CPU ``torch.Generator`` per rank,
seeded ``derive_seed(seed, STREAM_MIX, rank)`` (an independent stream: seeding it with the bare ``seed`` would
correlate it with other consumers of the same seed). The global RNGs are seeded too, for dropout. Every one of
these states is in the checkpoint, so a resumed run continues bit-identically on the CPU.

Distributed. Under ``torchrun`` (env ``WORLD_SIZE`` > 1) the trainer joins the process group (NCCL on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel and builds the data for its rank. Each rank mixes its own
minibatch with its own generator: partners come from the rank's own batch, as in the paper's single-loader
implementation, so no samples travel between GPUs. Metrics are summed over ranks; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

import vicinal

from . import runs
from .checkpoint import (
    CheckpointError,
    capture_rng_state,
    clean_stale_temp_files,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .config import (
    ConfigError,
    ExperimentConfig,
    ScheduleConfig,
    config_from_dict,
    config_to_dict,
    diff_configs,
)
from .data import build_data
from .data.corrupt import CorruptedLabels, corruption_counts, counts_to_errors
from .data.seeds import derive_seed
from .errors import LabError, RunError
from .models import MODELS, build_model
from .report.report import reliability_bins, save_reliability_diagram
from .runs import read_summary, run_finished  # noqa: F401  (read_summary: importable from here, as before)

__all__ = [
    "Callback",
    "LRSchedule",
    "build_run_model",
    "RunError",
    "Trainer",
    "TrainingInterrupted",
    "evaluate",
    "eval_metrics",
    "lr_at",
    "summarize",
    "train",
]

CHECKPOINT_NAME = "checkpoint.pt"
STREAM_MIX = 101  # derive_seed stream of the mixing generator (the data layer uses 1..5)
STREAM_GLOBAL = 102  # derive_seed stream of the global RNGs (dropout)
ECE_BINS = 15
# Config keys a resume may change (longer training, logging, another device); everything else must match.
RESUME_MUTABLE = (
    "notes",
    "train.epochs",
    "train.max_steps",
    "train.log_every",
    "train.eval_every",
    "train.eval_last",
    "train.checkpoint_every",
    "train.tensorboard",
    "train.device",
    "train.threads",
    "train.train_eval_every",
    "train.reliability_diagram",
)
# Per-epoch training-error fields measured on un-augmented training images (see `Trainer._train_eval`).
TRAIN_EVAL_FIELDS = (
    "train_eval_error",
    "train_true_error",
    "train_error_real",
    "train_error_corrupted",
    "train_error_corrupted_true",
    "train_error_wrong",
)
# What a run folder holds besides its checkpoint; `--overwrite` removes these (and nothing else).
RUN_FILES = (
    "config.yaml",
    "provenance.json",
    "metrics.jsonl",
    "summary.json",
    "reliability.json",
    "reliability.png",
    "corrupted_labels.pt",
)
RUN_FOLDERS = ("attacks", "tensorboard")
# Metric fields that depend on the machine's speed, not on the computation (ignored when comparing runs).
TIMING_FIELDS = ("epoch_time_s", "eval_time_s", "images_per_s", "wall_time_s")


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the current step finished, a checkpoint was saved.

    Attributes:
        signum: the signal number. exit_code: 128 + signum (130 for SIGINT, 143 for SIGTERM).
        checkpoint: path of the checkpoint written (None on ranks other than 0).
    """

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; checkpoint saved at {checkpoint}")


class Callback:
    """Hooks into :class:`Trainer`; override any subset. All receive the trainer first."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the first step of ``epoch`` (0-based)."""

    def on_step(self, trainer: Trainer, step: dict[str, Any]) -> None:
        """After each optimiser step: ``{"epoch", "batch", "global_step", "loss" (tensor), "lr", "batch_size"}``."""

    def on_eval(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After each evaluation on the test split."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After the epoch's record is complete (and checkpointed)."""


# -- learning-rate schedules ------------------------------------------------------------------------------------
def lr_at(step: int, *, schedule: ScheduleConfig, base_lr: float, epochs: int, steps_per_epoch: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based), from the fractional epoch ``step / steps_per_epoch``.

    Linear warm-up from ``warmup_start_lr`` to ``base_lr`` over ``warmup_epochs`` (per step, Goyal et al.), then
    "multistep" (x gamma for each milestone <= the integer epoch), "step", "cosine" or "constant".
    """
    t = step / steps_per_epoch  # fractional epoch
    epoch = step // steps_per_epoch  # integer epoch, exact
    warm = schedule.warmup_epochs
    if warm > 0 and t < warm:
        return schedule.warmup_start_lr + (base_lr - schedule.warmup_start_lr) * t / warm
    if schedule.name == "multistep":
        return base_lr * schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (epoch // schedule.step_size)
    if schedule.name == "cosine":
        progress = min(max((t - warm) / max(epochs - warm, 1e-12), 0.0), 1.0)
        return schedule.eta_min + (base_lr - schedule.eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule.name == "constant":
        return base_lr
    raise ConfigError(f"unknown schedule {schedule.name!r}")


class LRSchedule:
    """Sets every param group's lr from :func:`lr_at` each step; ``state_dict`` is just the step count."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, schedule: ScheduleConfig, base_lr: float, epochs: int, steps: int
    ) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.base_lr = base_lr
        self.epochs = epochs
        self.steps_per_epoch = steps
        self.step_count = 0
        self._apply()

    def lr(self) -> float:
        """The lr of the next optimiser step."""
        return lr_at(
            self.step_count,
            schedule=self.schedule,
            base_lr=self.base_lr,
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
        )

    def _apply(self) -> None:
        lr = self.lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimiser step."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """The number of steps taken (the lr follows from it)."""
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved step count."""
        self.step_count = int(state["step_count"])
        self._apply()


# -- evaluation -----------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    channels_last: bool = False,
    n_bins: int = ECE_BINS,
) -> Tensor:
    """Sums over a loader, for exact all-reduce across ranks: float64 ``(5 + 3 * n_bins,)``.

    Layout: ``[n, nll_sum, top1_correct, top5_correct, unused, bin_count (n_bins), bin_conf_sum, bin_acc_sum]``.
    Top-5 becomes top-k with ``k = min(5, C)``. ECE bins are ``(i/n_bins, (i+1)/n_bins]`` over the max softmax
    probability (Guo et al., 2017). Convert with :func:`eval_metrics`.
    """
    was_training = model.training
    model.eval()
    sums: Tensor | None = None
    try:
        for x, y, _ in loader:
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x)
            logits = logits.float()  # (B, C)
            if sums is None:
                sums = torch.zeros(5 + 3 * n_bins, dtype=torch.float64, device=logits.device)
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices  # (B, k)
            probs = logits.softmax(dim=1)
            conf, pred = probs.max(dim=1)  # (B,), (B,)
            correct = (pred == y).double()
            bins = (conf.double() * n_bins).ceil().long().clamp_(1, n_bins) - 1  # (B,) in [0, n_bins)
            sums[0] += y.shape[0]
            sums[1] += F.cross_entropy(logits, y, reduction="sum").double()
            sums[2] += correct.sum()
            sums[3] += (topk == y[:, None]).any(dim=1).double().sum()
            sums[5 : 5 + n_bins].index_add_(0, bins, torch.ones_like(correct))
            sums[5 + n_bins : 5 + 2 * n_bins].index_add_(0, bins, conf.double())
            sums[5 + 2 * n_bins :].index_add_(0, bins, correct)
    finally:
        model.train(was_training)
    if sums is None:
        raise RunError("the evaluation loader yielded no batches")
    return sums


def eval_metrics(sums: Tensor, n_bins: int = ECE_BINS) -> dict[str, float]:
    """Percent errors, mean NLL and ECE (percent) from :func:`evaluate`'s sums."""
    s = sums.double().cpu()
    n = float(s[0])
    count, conf, acc = s[5 : 5 + n_bins], s[5 + n_bins : 5 + 2 * n_bins], s[5 + 2 * n_bins :]
    del count  # |acc_b - conf_b| * n_b / N == |acc_sum_b - conf_sum_b| / N
    return {
        "test_error": 100.0 * (1.0 - float(s[2]) / n),
        "test_top5_error": 100.0 * (1.0 - float(s[3]) / n),
        "test_nll": float(s[1]) / n,
        "test_ece": 100.0 * float((acc - conf).abs().sum()) / n,
        "test_n": int(n),
    }


def summarize(records: Sequence[dict[str, Any]], status: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json``: best / last test error, median of the last 10 evaluated epochs, final train stats."""
    evaluated = [r for r in records if r.get("test_error") is not None]
    out: dict[str, Any] = dict(extra or {})
    out.update({"status": status, "epochs_completed": len(records)})
    if evaluated:
        best = min(evaluated, key=lambda r: r["test_error"])
        last10 = [r["test_error"] for r in evaluated[-10:]]
        out.update(
            {
                "best_test_error": best["test_error"],
                "best_epoch": best["epoch"],
                "last_test_error": evaluated[-1]["test_error"],
                "last_test_top5_error": evaluated[-1].get("test_top5_error"),
                "last_test_nll": evaluated[-1].get("test_nll"),
                "last_test_ece": evaluated[-1].get("test_ece"),
                "median_last10_test_error": statistics.median(last10),
                "median_last10_n": len(last10),
            }
        )
    if evaluated and evaluated[-1].get("val_error") is not None:
        out["last_val_error"] = evaluated[-1]["val_error"]
    measured = [r for r in records if r.get("train_eval_error") is not None]
    if measured:  # the last epoch whose training set was evaluated un-augmented (Table 2's columns)
        out.update({f"last_{k}": measured[-1].get(k) for k in TRAIN_EVAL_FIELDS})
        out["train_eval_epoch"] = measured[-1]["epoch"]
    if records:
        out.update(
            {
                "last_train_loss": records[-1]["train_loss"],
                "last_train_error": records[-1]["train_error"],
                "train_time_s": sum(r["epoch_time_s"] for r in records),
            }
        )
    return out


# -- helpers --------------------------------------------------------------------------------------------------
# Run folders are read and written by `runs.py`; `read_summary` and `run_finished` stay importable from here.


def _dist_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def check_device(name: str, what: str = "train.device") -> None:
    """Raise RunError unless device ``name`` (cpu, cuda, cuda:N, mps) exists on this machine."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RunError(f"{what} is {name!r} but CUDA is not available on this machine (use auto or cpu)")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise RunError(f"{what} is {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RunError(f"{what} is 'mps' but MPS (Apple GPU) is not available on this machine (use auto or cpu)")


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    check_device(name)
    if name.startswith("cuda"):
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


def _mixer_kwargs(cfg: ExperimentConfig, num_classes: int, generator: torch.Generator) -> dict[str, Any]:
    """Keyword arguments of ``vicinal.build`` for the configured variant (each variant takes its own set)."""
    m = cfg.mix
    kw: dict[str, Any] = {"num_classes": num_classes, "generator": generator}
    if m.smoothing > 0:
        kw["smoothing"] = m.smoothing
    if m.variant in ("mixup", "cutmix", "mix_inputs_only", "mix_inputs_label_smoothing"):
        kw.update(alpha=m.alpha, pairing=m.pairing)
        if m.variant != "cutmix" or m.lam_mode != "batch":
            kw["lam_mode"] = m.lam_mode
    elif m.variant == "mixup_or_cutmix":
        kw.update(mixup_alpha=m.alpha, cutmix_alpha=m.alpha, pairing=m.pairing)
    elif m.variant == "dirichlet":
        kw.update(alpha=m.alpha, lam_mode=m.lam_mode)
    elif m.variant == "gaussian_noise":
        kw["sigma"] = m.sigma
    kw.update(m.kwargs)
    return kw


def build_run_model(cfg: ExperimentConfig, data: Any) -> nn.Module:
    """The run's network, freshly initialised from ``train.seed``, sized for ``data`` (a DataBundle).

    ``in_channels`` / ``in_features`` are filled from the data's input shape when the model takes them and the
    config does not set them; the data's mean/std become the model's normalisation layer. Used by the trainer and
    by everything that reloads a run's weights (attacks).
    """
    model_kwargs = dict(cfg.model.kwargs)
    if cfg.model.name in MODELS:
        params = inspect.signature(MODELS[cfg.model.name]).parameters
        shape = tuple(data.input_shape)
        if "in_channels" in params and "in_channels" not in model_kwargs and len(shape) >= 2:
            model_kwargs["in_channels"] = int(shape[0])
        if "in_features" in params and "in_features" not in model_kwargs:
            model_kwargs["in_features"] = int(math.prod(shape))
    return build_model(
        cfg.model.name,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        seed=cfg.train.seed,  # identical initial weights on every rank (DDP also broadcasts rank 0's)
        **model_kwargs,
    )


@contextlib.contextmanager
def _mix_config_errors(cfg: ExperimentConfig) -> Iterator[None]:
    """The library checks the mixing arguments the config gave it: its ValueError/TypeError is a config error."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        if isinstance(exc, LabError):
            raise
        raise ConfigError(f"the mix section of config {cfg.name!r} is rejected by vicinal: {exc}") from exc


@dataclass
class _Accum:
    """Training sums of one epoch, on the device (no per-step host sync): float64 [loss_sum, err_sum, n]."""

    sums: Tensor
    time_s: float = 0.0


class Trainer:
    """Train one run described by an :class:`ExperimentConfig` into ``run_dir``.

    Args:
        cfg: the resolved config.
        run_dir: the run folder (created; unless ``resume`` or ``overwrite`` it must hold no checkpoint and no
            results, i.e. no ``summary.json`` and no non-empty ``metrics.jsonl``).
        callbacks: :class:`Callback` objects (any object with some of the ``on_*`` methods works).
        resume: continue from ``run_dir/checkpoint.pt`` (exactly; a missing or bad checkpoint is an error).
        quiet: no progress output (the demo runs many small runs).
        argv: the command line recorded in the provenance (default ``sys.argv``).
        overwrite: replace what ``run_dir`` holds (checkpoint, metrics, summary, attacks ...: `RUN_FILES`,
            `RUN_FOLDERS`) by a new run; the files are removed only once the config, data and model were built.
        restart_unfinished: a run folder holding the results of an unfinished run that cannot be resumed (killed
            before its first checkpoint) is started again from scratch (same numbers: training is deterministic);
            a finished run is still refused (``vicinal reproduce`` uses this).

    Nothing in ``run_dir`` is written before every check passed (a resume's config is checked against the
    checkpoint first), so a refused start leaves the folder as it was.

    After :meth:`fit`, ``trainer.model`` is the trained (unwrapped) model, ``trainer.data`` the DataBundle and
    ``trainer.records`` the per-epoch metrics.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: str | Path,
        *,
        callbacks: Sequence[Any] = (),
        resume: bool = False,
        quiet: bool = False,
        argv: Sequence[str] | None = None,
        overwrite: bool = False,
        restart_unfinished: bool = False,
    ) -> None:
        self.cfg = cfg
        self.overwrite = overwrite
        self.restart_unfinished = restart_unfinished
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.resume = resume
        self.quiet = quiet
        self.argv = list(sys.argv if argv is None else argv)
        self.records: list[dict[str, Any]] = []
        self.last_eval_sums: Tensor | None = None
        self._stop_signal: int | None = None
        self._owns_group = False
        self.global_step = 0
        self.tb: Any = None

    # -- public -------------------------------------------------------------------------------------------------
    @staticmethod
    def is_rank0() -> bool:
        """True in a single process and on rank 0 of a torchrun job (the process that prints and writes)."""
        return _dist_env()[0] == 0

    def fit(self) -> dict[str, Any]:
        """Run (or resume) training to ``train.epochs``; returns the summary. Raises TrainingInterrupted."""
        ckpt_path = self.run_dir / CHECKPOINT_NAME
        if self.resume and not ckpt_path.is_file():
            raise CheckpointError(
                f"checkpoint file '{ckpt_path}' does not exist: nothing to resume in '{self.run_dir}'"
            )
        clear = self.overwrite and not self.resume
        if not self.resume and not self.overwrite:
            if ckpt_path.exists():
                raise RunError(
                    f"run folder '{self.run_dir}' already holds a checkpoint; resume it with --resume {self.run_dir} "
                    "or choose another --out (--overwrite replaces the run)"
                )
            held = self.results_in(self.run_dir)
            if held and self.restart_unfinished and not run_finished(self.run_dir):
                clear = True
            elif held and self.restart_unfinished:
                raise RunError(
                    f"run folder '{self.run_dir}' holds a finished run of another plan ({', '.join(held)}) and no "
                    "checkpoint; it is never overwritten: move it away or use another --out"
                )
            elif held:
                raise RunError(
                    f"run folder '{self.run_dir}' already holds results ({', '.join(held)}) and no checkpoint to "
                    "resume; choose another --out, or replace them with --overwrite"
                )
        if _dist_env()[0] == 0:  # a write killed by SIGKILL left its temporary file: remove it now
            clean_stale_temp_files(self.run_dir, CHECKPOINT_NAME)
        threads_before = torch.get_num_threads()
        if self.cfg.train.threads is not None:
            torch.set_num_threads(self.cfg.train.threads)
        self._setup_distributed()
        handlers = self._install_signal_handlers()
        try:
            self._setup()
            state = load_checkpoint(ckpt_path, map_location=self.device) if self.resume else None
            # Every check first (the checkpoint's config, world size and weights), every write after.
            start_epoch, start_batch, accum = self._restore(state) if state is not None else (0, 0, None)
            if clear and self.is_main:
                self._clear_run_folder()
            self._write_provenance(resumed_from=state)
            if state is not None and self.is_main:  # metrics.jsonl must match the checkpoint
                self._rewrite_metrics()
            return self._loop(start_epoch, start_batch, accum)
        finally:
            self._restore_signal_handlers(handlers)
            torch.set_num_threads(threads_before)
            if self.tb is not None:
                self.tb.close()
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()

    @staticmethod
    def results_in(run_dir: Path) -> list[str]:
        """The result files ``run_dir`` holds (``summary.json``, a non-empty ``metrics.jsonl``); [] if none."""
        held = []
        if (run_dir / "summary.json").exists():
            held.append("summary.json")
        metrics = run_dir / "metrics.jsonl"
        if metrics.is_file() and metrics.stat().st_size > 0:
            held.append("metrics.jsonl")
        return held

    def _clear_run_folder(self) -> None:
        """``--overwrite``: remove the previous run's files (only the lab's own, never the folder itself)."""
        for name in (CHECKPOINT_NAME, *RUN_FILES):
            (self.run_dir / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            if (self.run_dir / name).is_dir():
                shutil.rmtree(self.run_dir / name)

    # -- setup --------------------------------------------------------------------------------------------------
    def _setup_distributed(self) -> None:
        self.rank, self.world_size, self.local_rank = _dist_env()
        self.device = _resolve_device(self.cfg.train.device, self.local_rank)
        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)
            self._owns_group = True
        elif dist.is_initialized():
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0

    def _setup(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        if t.amp == "fp16" and self.device.type != "cuda":
            raise RunError(f"train.amp 'fp16' needs a CUDA device, but the run is on {self.device} (use bf16 or none)")
        # Global RNGs only feed stochastic layers (dropout) and third-party code; seeded per rank.
        global_seed = derive_seed(t.seed, STREAM_GLOBAL, self.rank)
        torch.manual_seed(global_seed)
        np.random.seed(global_seed % 2**32)  # noqa: NPY002 - third-party code may use it
        random.seed(global_seed)

        self.data = build_data(
            cfg.data.name,
            root=cfg.data.root,
            batch_size=cfg.data.batch_size,
            eval_batch_size=cfg.data.eval_batch_size,
            seed=t.seed,
            device=str(self.device),
            rank=self.rank,
            world_size=self.world_size,
            augment=cfg.data.augment,
            subset_per_class=cfg.data.subset_per_class,
            corrupt_fraction=cfg.data.corrupt_fraction,
            corrupt_seed=cfg.data.corrupt_seed,
            **cfg.data.kwargs,
        )
        self.train_labels = self._train_labels()
        self.steps_per_epoch = len(self.data.train)
        if self.steps_per_epoch < 1:
            raise RunError(f"the training loader of {cfg.data.name!r} has no batches (batch size too large?)")

        model = build_run_model(cfg, self.data)
        model = model.to(self.device)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the plain module: checkpoints, evaluation, attacks
        self.train_model: nn.Module = model  # what the training step calls: DDP and/or compiled around `model`
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if t.compile:  # after DDP, as PyTorch recommends (DDP's graph-break optimiser sees the buckets)
            self.train_model = torch.compile(self.train_model)  # type: ignore[assignment]

        o = cfg.optim
        if o.name == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
            )
        else:
            self.optimizer = torch.optim.Adam(
                model.parameters(), lr=o.lr, betas=(o.betas[0], o.betas[1]), weight_decay=o.weight_decay
            )
        self.scheduler = LRSchedule(self.optimizer, cfg.schedule, o.lr, t.epochs, self.steps_per_epoch)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")

        # Mixing: one generator per rank; the mixer, LatentMixup and KNN sampling all draw from it.
        self.mix_seed = derive_seed(t.seed, STREAM_MIX, self.rank)
        self.mix_generator = torch.Generator().manual_seed(self.mix_seed)
        m = cfg.mix
        self.latent: vicinal.LatentMixup | None = None
        self.mixer: vicinal.BatchMix | None = None
        if m.layer is not None:
            if t.compile:
                raise RunError("train.compile cannot be combined with latent mixing (mix.layer): hooks need eager mode")
            kw = _mixer_kwargs(cfg, self.data.num_classes, self.mix_generator)
            kw.pop("alpha")
            with _mix_config_errors(cfg):
                self.latent = vicinal.LatentMixup(self.train_model, m.layer, alpha=m.alpha, **kw)
            self.mixer = self.latent.mixer
        elif m.variant != "erm" or m.smoothing > 0:
            with _mix_config_errors(cfg):
                self.mixer = vicinal.build(m.variant, **_mixer_kwargs(cfg, self.data.num_classes, self.mix_generator))
        self.knn: vicinal.KNNPartners | None = None
        if m.pairing == "knn":
            if self.data.train_dataset_x is None:
                raise RunError(f"mix.pairing 'knn' needs an in-memory dataset; {cfg.data.name!r} is not one")
            feats = self.data.train_dataset_x.float()  # (N, ...) raw inputs; the scale does not change neighbours
            labels = self.data.train_dataset_y if m.knn_same_class else None
            with _mix_config_errors(cfg):
                self.knn = vicinal.KNNPartners.fit(feats, labels, k=m.knn_k, same_class=m.knn_same_class)

        if t.tensorboard and self.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
            except ImportError:
                warnings.warn("train.tensorboard is on but TensorBoard is not installed; skipping it", stacklevel=2)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The AMP context of this run (a no-op when ``train.amp`` is none)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # -- provenance and checkpoints -----------------------------------------------------------------------------
    def _provenance(self) -> dict[str, Any]:
        return runs.provenance(
            argv=self.argv,
            device=self.device,
            world_size=self.world_size,
            seed=self.cfg.train.seed,
            mix_seed_rank0=self.mix_seed if self.rank == 0 else None,
        )

    def _write_provenance(self, resumed_from: dict[str, Any] | None) -> None:
        if not self.is_main:
            return
        # Created only now, after data and model were built: a config error leaves no empty run folder behind.
        self.run_dir.mkdir(parents=True, exist_ok=True)
        prov = runs.read_provenance(self.run_dir) if resumed_from is not None else None
        runs.write_config(self.run_dir, self.cfg)  # a resume may extend train.epochs
        if prov is None:
            prov = self._provenance()
            prov["resumes"] = []
        else:
            entry = self._provenance()
            entry["from_epoch"] = int(resumed_from["epoch"])
            entry["from_step_in_epoch"] = int(resumed_from["step_in_epoch"])
            prov.setdefault("resumes", []).append(entry)
        if self.data.corruption is not None:
            c = self.data.corruption
            prov["corruption"] = c.stats()
            # Per-sample labels, so the Table 2 columns can be recomputed from the run folder alone.
            torch.save(
                {"true": c.true, "noisy": c.noisy, "replaced": c.replaced, **c.stats()},
                self.run_dir / "corrupted_labels.pt",
            )
        runs.write_provenance(self.run_dir, prov)

    def _checkpoint_state(self, epoch: int, step_in_epoch: int, accum: _Accum | None) -> dict[str, Any]:
        state: dict[str, Any] = {
            "config": config_to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "rng": capture_rng_state(),
            "mix_generator": self.mix_generator.get_state(),
            "mixer": self.mixer.state_dict() if self.mixer is not None else None,
            "records": self.records,
            "partial": None if accum is None else {"sums": accum.sums.cpu(), "time_s": accum.time_s},
            "world_size": self.world_size,
        }
        loader_state = getattr(self.data.train, "state_dict", None)
        state["loader"] = loader_state() if callable(loader_state) else None
        return state

    def save(self, epoch: int, step_in_epoch: int, accum: _Accum | None = None) -> Path | None:
        """Write the checkpoint (rank 0 only); returns its path there, None elsewhere."""
        if not self.is_main:
            return None
        return save_checkpoint(self._checkpoint_state(epoch, step_in_epoch, accum), self.run_dir / CHECKPOINT_NAME)

    def _restore(self, state: dict[str, Any]) -> tuple[int, int, _Accum | None]:
        path = self.run_dir / CHECKPOINT_NAME
        try:
            saved_cfg = config_from_dict(state["config"])
        except (ConfigError, KeyError) as exc:
            raise CheckpointError(f"checkpoint file '{path}' holds no valid config: {exc}") from None
        changed = [k for k in diff_configs(saved_cfg, self.cfg) if k not in RESUME_MUTABLE]
        if changed:
            raise CheckpointError(
                f"checkpoint file '{path}' was written by a different config (differs at {', '.join(changed)}); "
                f"only {', '.join(RESUME_MUTABLE)} may change on resume"
            )
        if int(state.get("world_size", 1)) != self.world_size:
            raise CheckpointError(
                f"checkpoint file '{path}' was written by {state.get('world_size')} processes; this run has "
                f"{self.world_size} (exact resume needs the same number)"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(
                f"checkpoint file '{path}' does not fit this run's model/optimiser: {first}"
            ) from None
        restore_rng_state(state["rng"])
        self.mix_generator.set_state(state["mix_generator"])
        if self.mixer is not None and state.get("mixer") is not None:
            self.mixer.load_state_dict(state["mixer"])
        if state.get("loader") is not None and hasattr(self.data.train, "load_state_dict"):
            self.data.train.load_state_dict(state["loader"])
        self.records = list(state["records"])
        self.global_step = int(state["global_step"])
        partial = state.get("partial")
        accum = None
        if partial is not None:
            accum = _Accum(partial["sums"].to(self.device), float(partial["time_s"]))
        return int(state["epoch"]), int(state["step_in_epoch"]), accum

    def _rewrite_metrics(self) -> None:
        runs.write_metrics(self.run_dir, self.records)

    # -- signals ------------------------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self._stop_signal = signum

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    def _should_stop(self) -> bool:
        """True when a signal arrived (on any rank: ranks must stop at the same step, or DDP would hang)."""
        if self.world_size == 1:
            return self._stop_signal is not None
        flag = torch.tensor([self._stop_signal or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if int(flag) and self._stop_signal is None:
            self._stop_signal = int(flag)
        return bool(int(flag))

    # -- the loop -----------------------------------------------------------------------------------------------
    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self, *args)

    def _mixing_active(self, epoch: int) -> bool:
        m = self.cfg.mix
        if self.mixer is None:
            return False
        if epoch < m.warmup_epochs:
            return False
        return not (m.off_epoch is not None and epoch >= m.off_epoch)

    def _train_step(self, x: Tensor, y: Tensor, idx: Tensor, mixing: bool) -> tuple[Tensor, Tensor]:
        """One optimiser step; returns (loss (), number of errors ()) as detached tensors."""
        if self.cfg.train.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        partner = None
        if mixing and self.knn is not None:
            pidx = self.knn.sample(idx.cpu(), generator=self.mix_generator)  # (B,) dataset indices
            partner = self.data.fetch(pidx, generator=self.mix_generator)  # ((B, ...), (B,)) on the device
        with self.autocast():
            if not mixing:
                logits = self.train_model(x)
                target_label = y
                loss = F.cross_entropy(logits.float(), y)
            else:
                assert self.mixer is not None
                params = self.mixer.sample(x, y, partner=partner)
                if self.latent is not None:
                    logits = self.latent.forward(x, params)
                else:
                    logits = self.train_model(self.mixer.apply_inputs(x, params))
                logits = logits.float()  # (B, C): the loss in float32 under AMP
                if self.cfg.mix.two_label:
                    loss = vicinal.mixed_criterion(F.cross_entropy, logits, y, params)
                    with torch.no_grad():
                        target_label = self.mixer.apply_targets(y, params).argmax(dim=1)
                else:
                    y_soft = self.mixer.apply_targets(y, params)  # (B, C)
                    loss = vicinal.soft_cross_entropy(logits, y_soft)
                    target_label = y_soft.argmax(dim=1)  # the label of the larger weight
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        errors = (logits.detach().argmax(dim=1) != target_label).sum()
        return loss.detach(), errors

    def _all_reduce(self, t: Tensor) -> Tensor:
        if self.world_size > 1:
            t = t.clone()
            dist.all_reduce(t)
        return t

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics drift apart by each rank's last forward)."""
        if self.world_size > 1:
            for b in self.model.buffers():
                dist.broadcast(b, src=0)

    def _progress(self, epoch: int, start_batch: int) -> Any:
        if self.quiet or not self.is_main or not sys.stderr.isatty():
            return None
        return tqdm(
            total=self.steps_per_epoch,
            initial=start_batch,
            desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}",
            leave=False,
            dynamic_ncols=True,
        )

    def _log(self, text: str) -> None:
        if self.is_main and not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def _batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        return self.data.train.iter_from(epoch, start_batch)

    def _loop(self, start_epoch: int, start_batch: int, accum: _Accum | None) -> dict[str, Any]:
        cfg, t = self.cfg, self.cfg.train
        if not self.resume:
            self.global_step = 0
            if self.is_main:
                runs.write_metrics(self.run_dir, [])
        status = "complete"
        self.train_model.train()
        self._log(
            f"vicinal: training {cfg.name!r} seed {t.seed} for {t.epochs} epochs x {self.steps_per_epoch} steps "
            f"on {self.device} (world size {self.world_size}) into {self.run_dir}"
        )
        for epoch in range(start_epoch, t.epochs):
            mixing = self._mixing_active(epoch)
            self._emit("on_epoch_start", epoch)
            if accum is None or start_batch == 0:
                accum = _Accum(torch.zeros(3, dtype=torch.float64, device=self.device))
            bar = self._progress(epoch, start_batch)
            t0 = time.perf_counter()
            batch = start_batch
            last_lr = self.scheduler.lr()
            stopped_early = False
            for batch, (x, y, idx) in enumerate(self._batches(epoch, start_batch), start=start_batch):
                last_lr = self.scheduler.lr()
                loss, errors = self._train_step(x, y, idx, mixing)
                bsz = y.shape[0]
                accum.sums += torch.stack([loss.double() * bsz, errors.double(), loss.new_tensor(bsz).double()])
                self.global_step += 1
                step_info = {
                    "epoch": epoch,
                    "batch": batch,
                    "global_step": self.global_step,
                    "loss": loss,
                    "lr": last_lr,
                    "batch_size": bsz,
                }
                self._emit("on_step", step_info)
                if bar is not None:
                    bar.update(1)
                    if (batch + 1) % 10 == 0:
                        bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{last_lr:.3g}")
                elif (batch + 1) % t.log_every == 0:
                    self._log(
                        f"epoch {epoch + 1}/{t.epochs} step {batch + 1}/{self.steps_per_epoch} "
                        f"loss {float(loss):.4f} lr {last_lr:.4g}"
                    )
                if self._should_stop():
                    accum.time_s += time.perf_counter() - t0
                    if bar is not None:
                        bar.close()
                    self._interrupt(epoch, batch + 1, accum)
                if t.max_steps is not None and self.global_step >= t.max_steps:
                    stopped_early = True
                    status = "max_steps"
                    break
            if bar is not None:
                bar.close()
            accum.time_s += time.perf_counter() - t0
            start_batch = 0
            # The lr of the epoch's last step, from the step count (identical after a resume at any step).
            last_lr = lr_at(
                self.global_step - 1,
                schedule=cfg.schedule,
                base_lr=cfg.optim.lr,
                epochs=t.epochs,
                steps_per_epoch=self.steps_per_epoch,
            )
            record = self._end_epoch(epoch, accum, last_lr, mixing, final=stopped_early or epoch == t.epochs - 1)
            accum = None
            # The checkpoint after epoch e says "start at epoch e + 1, batch 0".
            if (epoch + 1) % t.checkpoint_every == 0 or epoch == t.epochs - 1 or stopped_early:
                self.save(epoch + 1, 0, None)
            if self.is_main:
                runs.append_metrics(self.run_dir, record)
                runs.write_summary(self.run_dir, self._summary("running"))
            self._emit("on_epoch_end", record)
            self._log(self._epoch_line(record))
            if stopped_early:
                break
            if self._should_stop():
                self._interrupt(epoch + 1, 0, None)
        summary = self._summary(status)
        if self.is_main:
            runs.write_summary(self.run_dir, summary)
            self._write_reliability()
        return summary

    def _end_epoch(self, epoch: int, accum: _Accum, lr: float, mixing: bool, final: bool) -> dict[str, Any]:
        t = self.cfg.train
        sums = self._all_reduce(accum.sums)
        loss_sum, err_sum, n = (float(v) for v in sums.cpu())
        if not math.isfinite(loss_sum):
            raise RunError(f"training diverged: the loss of epoch {epoch + 1} is {loss_sum / max(n, 1)}")
        self._sync_buffers()
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "global_step": self.global_step,
            "train_loss": loss_sum / n,
            "train_error": 100.0 * err_sum / n,
            "train_n": int(n),
            "mixing": mixing,
            "lr": lr,
        }
        test: dict[str, Any] = dict.fromkeys(("test_error", "test_top5_error", "test_nll", "test_ece", "test_n"))
        eval_time = 0.0
        if (epoch + 1) % t.eval_every == 0 or final or epoch >= t.epochs - t.eval_last:
            e0 = time.perf_counter()
            sums_eval = self._all_reduce(
                evaluate(self.model, self.data.test, autocast=self.autocast, channels_last=t.channels_last)
            )
            test = eval_metrics(sums_eval)
            self.last_eval_sums = sums_eval.cpu()
            if self.data.val is not None:
                # a held-out validation split (speech, UCI): selection happens on it, never on test
                sums_val = self._all_reduce(
                    evaluate(self.model, self.data.val, autocast=self.autocast, channels_last=t.channels_last)
                )
                test.update({"val_" + k.removeprefix("test_"): v for k, v in eval_metrics(sums_val).items()})
            eval_time = time.perf_counter() - e0
            self._emit("on_eval", test)
        record.update(test)
        if self._train_eval_due(epoch, final):
            e0 = time.perf_counter()
            record.update(self._train_eval())
            eval_time += time.perf_counter() - e0
        elif self._train_eval_enabled() and (t.train_eval_every is not None or self.data.corruption is not None):
            # (the records of other runs keep the format they had before the final measurement became default)
            record.update(dict.fromkeys(TRAIN_EVAL_FIELDS))
        wall = sum(r["epoch_time_s"] for r in self.records) + accum.time_s
        record.update(
            {
                "epoch_time_s": accum.time_s,
                "eval_time_s": eval_time,
                "images_per_s": n / accum.time_s if accum.time_s > 0 else None,
                "wall_time_s": wall,
            }
        )
        self.records.append(record)
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.tb.add_scalar(key, value, epoch + 1)
        return record

    # -- training error on un-augmented images, corrupted labels (Table 2) -------------------------------------
    def _train_labels(self) -> Any:
        """The `CorruptedLabels` of the training set (a clean one with nothing replaced when no corruption)."""
        if self.data.corruption is not None:
            return self.data.corruption
        y = self.data.train_dataset_y
        if y is None:
            return None
        y = torch.as_tensor(y).cpu()  # (N,); ImageFolder loaders may hold a list
        if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            return None  # not integer class labels (regression targets, soft labels): nothing to measure
        y = y.to(torch.int64)
        return CorruptedLabels(y, y, torch.zeros_like(y, dtype=torch.bool), 0.0, 0, int(self.data.num_classes))

    def _train_eval_enabled(self) -> bool:
        """Every run with integer training labels measures its un-augmented training error (after the last epoch,
        and every ``train.train_eval_every`` epochs when set)."""
        return self.train_labels is not None

    def _train_eval_due(self, epoch: int, final: bool) -> bool:
        if not self._train_eval_enabled():
            return False
        every = self.cfg.train.train_eval_every
        return final or (every is not None and (epoch + 1) % every == 0)

    @torch.no_grad()
    def _train_eval(self) -> dict[str, Any]:
        """Errors of the model on the un-augmented training set against the noisy and the true labels."""
        was_training = self.model.training
        self.model.eval()
        counts = torch.zeros(10, dtype=torch.float64)
        try:
            for x, _, idx in self.data.train_eval:
                if self.cfg.train.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self.autocast():
                    pred = self.model(x).argmax(dim=1)  # (B,)
                counts += corruption_counts(pred, idx, self.train_labels)
        finally:
            self.model.train(was_training)
        counts = self._all_reduce(counts.to(self.device)).cpu()  # each rank evaluated its own shard
        return counts_to_errors(counts)

    def _write_reliability(self) -> None:
        """reliability.json + reliability.png from the last evaluation's 15 confidence bins (rank 0)."""
        if not (self.is_main and self.cfg.train.reliability_diagram and self.last_eval_sums is not None):
            return
        bins = reliability_bins(self.last_eval_sums, ECE_BINS)
        bins["epoch"] = self.records[-1]["epoch"] if self.records else None
        bins["name"] = self.cfg.name
        runs.write_json(self.run_dir / "reliability.json", bins)
        try:
            save_reliability_diagram(
                bins, self.run_dir / "reliability.png", title=f"{self.cfg.name} seed {self.cfg.train.seed}"
            )
        except ImportError:  # pragma: no cover - matplotlib is in the lab extra
            warnings.warn("matplotlib is not installed; reliability.png skipped", stacklevel=2)

    def _interrupt(self, epoch: int, step_in_epoch: int, accum: _Accum | None) -> None:
        assert self._stop_signal is not None
        path = self.save(epoch, step_in_epoch, accum)
        if self.is_main:
            runs.write_summary(self.run_dir, self._summary("interrupted"))
        self._log(f"vicinal: stopping at epoch {epoch + 1} step {step_in_epoch}; checkpoint {path}")
        raise TrainingInterrupted(self._stop_signal, path)

    def _summary(self, status: str) -> dict[str, Any]:
        c = self.cfg
        extra = {"name": c.name, "table": c.table, "row": c.row, "seed": c.train.seed, "epochs": c.train.epochs}
        return summarize(self.records, status, extra)

    @staticmethod
    def _epoch_line(r: dict[str, Any]) -> str:
        test = f" test err {r['test_error']:.2f}%" if r.get("test_error") is not None else ""
        if r.get("train_eval_error") is not None:
            parts = [
                f"{k[12:] or 'all'} {r[k]:.2f}%"
                for k in ("train_error_real", "train_error_corrupted")
                if r.get(k) is not None
            ]
            test += f" un-augmented train err {', '.join(parts)}"
        ips = f" {r['images_per_s']:.0f} img/s" if r.get("images_per_s") else ""
        return (
            f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} err {r['train_error']:.2f}%{test} "
            f"lr {r['lr']:.4g} {r['epoch_time_s']:.1f}s{ips}"
        )


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convenience wrapper: ``Trainer(cfg, run_dir, ...).fit()``."""
    return Trainer(cfg, run_dir, resume=resume, callbacks=callbacks, quiet=quiet, overwrite=overwrite).fit()
