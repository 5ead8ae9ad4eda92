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
these states is in the checkpoint, each rank's own under torchrun, so a resumed run continues bit-identically on
the CPU.

Distributed. Under ``torchrun`` (env ``WORLD_SIZE`` > 1) the trainer joins the process group (NCCL on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel and builds the data for its rank. Each rank mixes its own
minibatch with its own generator: partners come from the rank's own batch, as in the paper's single-loader
implementation, so no samples travel between GPUs. Metrics are summed over ranks; only rank 0 writes files.
``data.batch_size`` is per process, so the process count multiplies the global minibatch: a config that declares
the one it was written for (``data.global_batch_size``, the paper configs) refuses to start at another.

Extras. The training error on un-augmented images (Table 2), the reliability diagram, TensorBoard and the progress
output are callbacks (`callbacks.py`) attached from the config; building the run's pieces is `build.py`, evaluation
`evaluation.py`, devices, process group and stop signals `distributed.py`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import vicinal

from . import distributed, runs
from .build import (
    CHECKPOINT_NAME,
    LRSchedule,
    build_run,
    build_run_model,
    lr_at,
)
from .callbacks import Callback, default_callbacks
from .checkpoint import (
    RESUME_MUTABLE,
    CheckpointError,
    capture_rng_state,
    check_resumable,
    load_checkpoint,
    rank_state,
    restore_rng_state,
    save_checkpoint,
)
from .config import ExperimentConfig, config_changes, config_from_dict, config_to_dict, str_list
from .data.base import data_changes
from .data.images import quiet_progress
from .data.seeds import STREAM_GLOBAL, STREAM_MIX
from .distributed import check_device
from .errors import LabWarning, RunError, TaskArgumentError
from .evaluation import TRAIN_EVAL_FIELDS, EvalSums, eval_metrics, evaluate, summarize
from .runs import RUN_FILES, RUN_FOLDERS, read_summary

# Names that lived here before build.py, evaluation.py, distributed.py and callbacks.py: still importable.
__all__ = [
    "CHECKPOINT_NAME",
    "RESUME_MUTABLE",
    "RUN_FILES",
    "RUN_FOLDERS",
    "STREAM_GLOBAL",
    "STREAM_MIX",
    "TIMING_FIELDS",
    "TRAIN_EVAL_FIELDS",
    "Callback",
    "LRSchedule",
    "RunError",
    "Trainer",
    "TrainingInterrupted",
    "build_run_model",
    "check_device",
    "eval_metrics",
    "evaluate",
    "lr_at",
    "read_summary",
    "summarize",
    "train",
]

# Metric fields that depend on the machine's speed, not on the computation (ignored when comparing runs).
TIMING_FIELDS = ("epoch_time_s", "eval_time_s", "images_per_s", "wall_time_s")


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived: the current step finished, a checkpoint was saved.

    Attributes:
        signum: the signal number. exit_code: 128 + signum (130 for SIGINT, 143 for SIGTERM).
        checkpoint: path of the checkpoint written (None on ranks other than 0, and for a finished run); with
            ``forced``, the last checkpoint the run had saved (None if it had saved none).
        world_size: the number of processes that wrote it (a resume needs as many).
        finished: the run folder when the signal came after the run's last step (rank 0): nothing to resume.
        forced: a second Ctrl-C stopped the run at once, without a checkpoint of where it was.
    """

    def __init__(
        self,
        signum: int,
        checkpoint: Path | None,
        world_size: int = 1,
        *,
        finished: Path | None = None,
        forced: bool = False,
    ) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.checkpoint = checkpoint
        self.world_size = world_size
        self.finished = finished  # the run folder of a run that was complete when the signal was seen (rank 0)
        self.forced = forced
        name = signal.Signals(signum).name
        if finished is not None:
            super().__init__(f"interrupted by {name} after the run in '{finished}' finished")
        elif forced and checkpoint is not None:
            super().__init__(
                f"stopped at once by a second {name}: the work since the last checkpoint ({checkpoint}) is lost"
            )
        elif forced:
            super().__init__(f"stopped at once by a second {name}, before the run saved any checkpoint")
        else:
            super().__init__(f"interrupted by {name}; checkpoint saved at {checkpoint}")


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
        callbacks: :class:`~vicinal.experiments.callbacks.Callback` objects (any object with some of the ``on_*``
            methods works); they run after the extras the config asks for (``callbacks.default_callbacks``).
        resume: continue from ``run_dir/checkpoint.pt`` (exactly; a missing or bad checkpoint is an error).
        quiet: no progress output (the demo runs many small runs).
        argv: the command line recorded in the provenance (default ``sys.argv``).
        overwrite: replace what ``run_dir`` holds (checkpoint, metrics, summary, attacks ...:
            `runs.RUN_FILES`, `runs.RUN_FOLDERS`) by a new run; the files are removed only once the config, data
            and model were built.
        restart_unfinished: a run folder holding the results of an unfinished run that cannot be resumed (killed
            before its first checkpoint) is started again from scratch (same numbers: training is deterministic);
            a finished run is still refused (``vicinal reproduce`` uses this).

    Nothing in ``run_dir`` is written before every check passed (a resume's config is checked against the
    checkpoint first), so a refused start leaves the folder as it was.

    After :meth:`fit`, ``trainer.model`` is the trained (unwrapped) model, ``trainer.data`` the DataBundle,
    ``trainer.records`` the per-epoch metrics and ``trainer.last_eval`` the sums of the last test evaluation.
    """

    # Set by _setup. Declared without a value, so no class attribute: run() tells a failed setup by its absence.
    train_model: nn.Module

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
        if not isinstance(cfg, ExperimentConfig):
            raise TaskArgumentError(f"cfg must be an ExperimentConfig (load_config), got {type(cfg).__name__}")
        # a config built or changed in Python (dataclasses.replace, attribute assignment) gets every check a config
        # file gets: types, ranges, options its variant never reads (it had trained epochs=0 or knn pairing on ERM)
        config_from_dict(config_to_dict(cfg))
        self.cfg = cfg
        self.overwrite = overwrite
        self.restart_unfinished = restart_unfinished
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.resume = resume
        self.quiet = quiet
        self.argv = list(sys.argv) if argv is None else str_list(argv, "argv", "words", lone="shlex.split({!r})")
        self.records: list[dict[str, Any]] = []
        self.last_eval: EvalSums | None = None
        self.stop = distributed.StopSignals()
        self._handlers: list[Any] = []
        self.global_step = 0
        self.data_changes = ""  # how a resume's data differ from the recorded ones (set by fit)
        # False when a multi-process resume read a checkpoint without per-rank states (`checkpoint.rank_state`)
        self.exact_rank_state = True

    # -- public -------------------------------------------------------------------------------------------------
    results_in = staticmethod(runs.results_in)  # moved to runs.py; kept for callers of Trainer.results_in

    @staticmethod
    def is_rank0() -> bool:
        """True in a single process and on rank 0 of a torchrun job (the process that prints and writes)."""
        return distributed.dist_env()[0] == 0

    def fit(self) -> dict[str, Any]:
        """Run (or resume) training to ``train.epochs``; returns the summary. Raises TrainingInterrupted."""
        self._handlers = []  # attached once the run is built (a refused start calls no callback)
        ckpt_path = self.run_dir / CHECKPOINT_NAME
        if self.resume and not ckpt_path.is_file():
            what = "is a folder, not a checkpoint" if ckpt_path.is_dir() else "does not exist"
            raise CheckpointError(f"checkpoint file '{ckpt_path}' {what}: nothing to resume in '{self.run_dir}'")
        clear = self.overwrite and not self.resume
        if not self.resume and not self.overwrite:
            clear = runs.check_fresh_run_folder(self.run_dir, restart_unfinished=self.restart_unfinished)
        if self.is_rank0():  # writes killed by SIGKILL left their temporary files: remove them now
            runs.clean_stale_writes(self.run_dir, (CHECKPOINT_NAME, *runs.RUN_FILES))
        threads_before = torch.get_num_threads()
        if self.cfg.train.threads is not None:
            torch.set_num_threads(self.cfg.train.threads)
        self.placement = distributed.setup(self.cfg.train.device)
        self.rank, self.world_size = self.placement.rank, self.placement.world_size
        self.device, self.is_main = self.placement.device, self.placement.is_main
        self.stop.install(announce=self.is_main)
        completed = False
        started = False  # the run folder says "running" from the first record on
        looped = False  # the loop ended: the summary on disk is the run's last word
        # the checkpoint in the folder is this run's only once an --overwrite has cleared the old one
        own_checkpoint = not clear
        try:
            # before any data is read or file written: torchrun's process count multiplies the per-process batch
            d = self.cfg.data
            distributed.check_global_batch(d.batch_size, d.global_batch_size, self.world_size)
            self._setup()
            state = load_checkpoint(ckpt_path, map_location=self.device) if self.resume else None
            # Every check first (the checkpoint's config, world size and weights), every write after.
            start_epoch, start_batch, accum = self._restore(state) if state is not None else (0, 0, None)
            self._first_step = self.global_step
            if state is not None and self.is_main:
                # what a resume may change (epochs, logging, ...) is said: the lr schedule follows the epochs
                changes = config_changes(config_from_dict(state["config"], saved=True), self.cfg)
                if changes:
                    warnings.warn(f"resuming '{self.run_dir}' with {changes}", LabWarning, stacklevel=1)
                # data.root null means "under the data root of now": another --data / VICINAL_DATA, or rewritten
                # files, would continue the run on other data without a word
                prov = runs.read_provenance(self.run_dir)
                self.data_changes = data_changes(prov.get("data") if prov else None, self.data.record())
                if self.data_changes:
                    warnings.warn(
                        f"resuming '{self.run_dir}' on other data: {self.data_changes}", LabWarning, stacklevel=1
                    )
                if not self.exact_rank_state:
                    warnings.warn(
                        f"resuming '{self.run_dir}' from a checkpoint without per-rank states (written by an older "
                        "vicinal): every rank continues from rank 0's mixing and RNG states and partial-epoch sums, "
                        "so the run is not bit-identical to an uninterrupted one",
                        LabWarning,
                        stacklevel=1,
                    )
            if clear and self.is_main:
                runs.clear_run_folder(self.run_dir)
            own_checkpoint = True
            self._write_provenance(resumed_from=state)
            if state is not None and self.is_main:  # metrics.jsonl must match the checkpoint
                runs.write_metrics(self.run_dir, self.records)
            self._handlers = [*default_callbacks(self.cfg, is_main=self.is_main, quiet=self.quiet), *self.callbacks]
            self._emit("on_fit_start")
            started = True
            summary = self._loop(start_epoch, start_batch, accum)
            looped = True
            self.stop.release_second()
            self._drop_stale_diagram()
            if self.last_eval is None and summary.get("status") == "complete" and self.cfg.train.reliability_diagram:
                # resumed at its end (stopped during the final evaluation, or killed while the diagram was drawn):
                # nothing was evaluated in this process, so the diagram's sums are made again from the same model
                # and test split (every rank: the sums are added up over ranks)
                self.last_eval = self._evaluate(self.data.test).cpu()
            self._emit("on_fit_end", summary)
            completed = True
            if self.stop.agreed(self.world_size, self.device):
                # a signal after the loop's last check (the summary, the diagram, a re-evaluation at the end): the
                # run is complete, but its caller must stop too (reproduce trained the table's next run, exit 0)
                assert self.stop.signum is not None
                finished = self.run_dir if self.is_main else None
                raise TrainingInterrupted(self.stop.signum, None, self.world_size, finished=finished)
            return summary
        except KeyboardInterrupt:
            # a second Ctrl-C (StopSignals), or one where no handler could be installed: the run stops where it is.
            # Its folder must not go on saying "running", and the user is told what is kept.
            second = self.stop.second or signal.SIGINT  # torchrun's second Ctrl-C arrives as SIGTERM
            if looped:
                # after the last step (the diagram, a callback's on_fit_end): the summary already says how the run
                # ended, so it stays, as for a first signal there
                finished = self.run_dir if self.is_main else None
                raise TrainingInterrupted(second, None, self.world_size, finished=finished) from None
            if started and self.is_main and (self.run_dir / runs.SUMMARY).is_file():
                runs.write_summary(self.run_dir, self._summary("interrupted"))
            # not the checkpoint of the run an --overwrite was about to clear: --resume would continue that one
            kept = ckpt_path if own_checkpoint and self.is_main and ckpt_path.is_file() else None
            raise TrainingInterrupted(second, kept, self.world_size, forced=True) from None
        finally:
            self._emit("on_close")
            self.stop.restore()
            torch.set_num_threads(threads_before)
            if getattr(self, "train_model", None) is not getattr(self, "model", None):  # None: setup failed
                # free the DDP wrapper (its reducer holds gloo work and the process group) while the interpreter is
                # alive: left to interpreter shutdown, gloo's threads were torn down in an order that aborted the
                # process ("terminate called without an active exception", ~1 torchrun run in 5 on this machine)
                self.train_model = self.model
                gc.collect()
            distributed.teardown(self.placement, completed=completed)

    # -- setup --------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        # quiet, or not rank 0: no decoding bar either (only rank 0's progress shows, as the callbacks do)
        with quiet_progress(self.quiet or not self.is_main):
            p = build_run(self.cfg, self.device, rank=self.rank, world_size=self.world_size)
        self.data, self.steps_per_epoch, self.optimizer, self.scheduler = (
            p.data,
            p.steps_per_epoch,
            p.optimizer,
            p.scheduler,
        )
        self.model = p.model  # the plain module: checkpoints, evaluation, attacks
        self.train_model = p.train_model  # what the training step calls: DDP and/or compiled around `model`
        self.amp_dtype, self.scaler = p.amp_dtype, p.scaler
        self.mix_seed, self.mix_generator = p.mix_seed, p.mix_generator
        self.mixer: vicinal.BatchMix | None = p.mixing.mixer
        self.latent: vicinal.LatentMixup | None = p.mixing.latent
        self.knn: vicinal.KNNPartners | None = p.mixing.knn

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The AMP context of this run (a no-op when ``train.amp`` is none)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # -- provenance and checkpoints -----------------------------------------------------------------------------
    def _write_provenance(self, resumed_from: dict[str, Any] | None) -> None:
        if not self.is_main:
            return
        entry = runs.provenance(
            argv=self.argv,
            device=self.device,
            world_size=self.world_size,
            seed=self.cfg.train.seed,
            mix_seed_rank0=self.mix_seed if self.rank == 0 else None,
        )
        if self.data_changes:  # the resume's entry says on what other data it continued
            entry["data_changes"] = self.data_changes
        if not self.exact_rank_state:  # ... and that its ranks 1.. continued from rank 0's random state
            entry["per_rank_state"] = False
        c = self.data.corruption
        if c is not None:  # per-sample labels, so the Table 2 columns can be recomputed from the run folder alone
            labels = {"true": c.true, "noisy": c.noisy, "replaced": c.replaced, **c.stats()}
            runs.atomic_write(self.run_dir / "corrupted_labels.pt", lambda f: torch.save(labels, f))
        # "data": what this (re)start trained on (DataBundle.record); a resume replaces it with its own
        extra: dict[str, Any] = {"data": self.data.record()}
        if c is not None:
            extra["corruption"] = c.stats()
        runs.record_start(self.run_dir, self.cfg, entry, resumed_from, extra=extra)

    def _rank_state(self, accum: _Accum | None) -> dict[str, Any]:
        """What this rank holds of its own (`checkpoint.RANK_KEYS`): CPU tensors and plain types."""
        loader_state = getattr(self.data.train, "state_dict", None)
        return {
            "rng": capture_rng_state(),
            "mix_generator": self.mix_generator.get_state(),
            "mixer": self.mixer.state_dict() if self.mixer is not None else None,
            "partial": None if accum is None else {"sums": accum.sums.cpu(), "time_s": accum.time_s},
            "loader": loader_state() if callable(loader_state) else None,
        }

    def _checkpoint_state(
        self, epoch: int, step_in_epoch: int, own: dict[str, Any], ranks: list[Any] | None
    ) -> dict[str, Any]:
        """The checkpoint: what the ranks share, rank 0's `own` state at the top level (the single-process format)
        and, with several processes, every rank's in ``ranks``."""
        state: dict[str, Any] = {
            "config": config_to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "records": self.records,
            "world_size": self.world_size,
            **own,
        }
        if self.world_size > 1:
            state["ranks"] = ranks
        return state

    def save(self, epoch: int, step_in_epoch: int, accum: _Accum | None = None) -> Path | None:
        """Write the checkpoint; returns its path on rank 0, None elsewhere.

        Every rank must call it at the same step (it gathers each rank's own state to rank 0, a collective); the
        trainer does: at the agreed stop, at a step limit and at epoch ends, all the same on every rank. Rank 0
        writes the file.
        """
        own = self._rank_state(accum)
        ranks = distributed.gather_to_main(own, self.world_size)
        if not self.is_main:
            return None
        state = self._checkpoint_state(epoch, step_in_epoch, own, ranks)
        return save_checkpoint(state, self.run_dir / CHECKPOINT_NAME)

    def _restore(self, state: dict[str, Any]) -> tuple[int, int, _Accum | None]:
        path = self.run_dir / CHECKPOINT_NAME
        check_resumable(state, self.cfg, self.world_size, path)
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
        own, self.exact_rank_state = rank_state(state, self.rank, self.world_size, path)
        restore_rng_state(own["rng"])
        self.mix_generator.set_state(own["mix_generator"])
        if self.mixer is not None and own["mixer"] is not None:
            self.mixer.load_state_dict(own["mixer"])
        if own["loader"] is not None and hasattr(self.data.train, "load_state_dict"):
            self.data.train.load_state_dict(own["loader"])
        self.records = list(state["records"])
        self.global_step = int(state["global_step"])
        partial = own["partial"]
        accum = None
        if partial is not None:
            accum = _Accum(partial["sums"].to(self.device), float(partial["time_s"]))
        return int(state["epoch"]), int(state["step_in_epoch"]), accum

    def _drop_stale_diagram(self) -> None:
        """Remove the reliability diagram of an earlier end once this process has trained on (a run extended with
        more epochs): it showed the old model beside the new summary. A diagram that is on is drawn again at the
        end; one turned off (train.reliability_diagram=false) stays away."""
        if self.is_main and self.global_step > self._first_step:
            for name in ("reliability.json", "reliability.png"):
                (self.run_dir / name).unlink(missing_ok=True)

    def _interrupt(self, epoch: int, step_in_epoch: int, accum: _Accum | None) -> None:
        assert self.stop.signum is not None
        self._drop_stale_diagram()
        path = self.save(epoch, step_in_epoch, accum)
        if self.is_main:
            runs.write_summary(self.run_dir, self._summary("interrupted"))
            if not self.quiet:
                print(
                    f"vicinal: stopping at epoch {epoch + 1} step {step_in_epoch}; checkpoint {path}",
                    file=sys.stderr,
                    flush=True,
                )
        raise TrainingInterrupted(self.stop.signum, path, self.world_size)

    # -- the loop -----------------------------------------------------------------------------------------------
    def _emit(self, event: str, *args: Any) -> None:
        for cb in self._handlers:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self, *args)

    def _mixing_active(self, epoch: int) -> bool:
        m = self.cfg.mix
        if self.mixer is None or epoch < m.warmup_epochs:
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

    def _batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        return self.data.train.iter_from(epoch, start_batch)

    def _loop(self, start_epoch: int, start_batch: int, accum: _Accum | None) -> dict[str, Any]:
        t = self.cfg.train
        if not self.resume:
            self.global_step = 0
            if self.is_main:
                runs.write_metrics(self.run_dir, [])
        status = "complete"
        self.train_model.train()
        at_limit = t.max_steps is not None and self.global_step >= t.max_steps
        # an interrupt on the run's very last step leaves "epoch E - 1, after its last batch": the loop ends it as
        # an uninterrupted run would (complete, whatever the limit)
        at_end = start_epoch == t.epochs - 1 and start_batch >= self.steps_per_epoch
        if at_limit and start_epoch < t.epochs and not at_end:
            # resumed at (or past) its step limit: nothing to train; without this check one more step was taken
            if start_batch > 0 and accum is not None:
                # stopped inside this epoch (a step limit, or an interrupt on the step that reached it): the
                # checkpoint comes before the epoch's record (a resume with a larger limit trains on and replaces
                # it), so the record is made now, from the same weights and running sums, as the stopped run made
                # it; without it the resume lost the run's last record
                mixing = self._mixing_active(start_epoch)
                partial = start_batch < self.steps_per_epoch
                record = self._record(start_epoch, accum, mixing, True, partial=partial)
                if not partial:
                    # the limit fell on the epoch's end: the checkpoint "after epoch e", with this record, as the
                    # uninterrupted run wrote it (a later resume with a raised limit keeps the record)
                    self.save(start_epoch + 1, 0, None)
                self._publish(record)
            start_epoch, status = t.epochs, "max_steps"
        for epoch in range(start_epoch, t.epochs):
            mixing = self._mixing_active(epoch)
            self._emit("on_epoch_start", epoch)
            if accum is None or start_batch == 0:
                accum = _Accum(torch.zeros(3, dtype=torch.float64, device=self.device))
            t0 = time.perf_counter()
            stopped_early = False
            for batch, (x, y, idx) in enumerate(self._batches(epoch, start_batch), start=start_batch):
                lr = self.scheduler.lr()
                loss, errors = self._train_step(x, y, idx, mixing)
                bsz = y.shape[0]
                accum.sums += torch.stack([loss.double() * bsz, errors.double(), loss.new_tensor(bsz).double()])
                self.global_step += 1
                step = {"epoch": epoch, "batch": batch, "global_step": self.global_step, "loss": loss, "lr": lr}
                self._emit("on_step", {**step, "batch_size": bsz})
                if self.stop.agreed(self.world_size, self.device):
                    accum.time_s += time.perf_counter() - t0
                    self._interrupt(epoch, batch + 1, accum)
                last_step = epoch == t.epochs - 1 and batch + 1 == self.steps_per_epoch
                if t.max_steps is not None and self.global_step >= t.max_steps and not last_step:
                    stopped_early = True  # a limit at the run's natural end is just its end: complete
                    status = "max_steps"
                    break
            accum.time_s += time.perf_counter() - t0
            start_batch = 0
            mid_epoch = stopped_early and batch + 1 < self.steps_per_epoch
            if mid_epoch:
                # A step limit inside an epoch is a pause, not the epoch's end: the checkpoint says "go on with
                # batch b + 1" and holds the epoch's running sums and the records before this one, so a resume with
                # a larger limit continues bit-identically and replaces the partial epoch's record below.
                self.save(epoch, batch + 1, accum)
            record = self._record(epoch, accum, mixing, stopped_early or epoch == t.epochs - 1, partial=mid_epoch)
            accum = None
            # The checkpoint after epoch e says "start at epoch e + 1, batch 0".
            if not mid_epoch and ((epoch + 1) % t.checkpoint_every == 0 or epoch == t.epochs - 1 or stopped_early):
                self.save(epoch + 1, 0, None)
            if stopped_early or epoch == t.epochs - 1:
                self.stop.defer_second()  # released in fit, once the complete summary is written
            self._publish(record)
            if stopped_early:
                break
            # after the last epoch's checkpoint the run is done: a signal now is fit's to report (the run finished)
            if epoch < t.epochs - 1 and self.stop.agreed(self.world_size, self.device):
                self._interrupt(epoch + 1, 0, None)
        summary = self._summary(status)
        if self.is_main:
            runs.write_summary(self.run_dir, summary)
        return summary

    def _record(self, epoch: int, accum: _Accum, mixing: bool, final: bool, *, partial: bool) -> dict[str, Any]:
        """The record of ``epoch`` (`_end_epoch`); ``partial``: a step limit stopped it after train_n samples."""
        # The lr of the epoch's last step, from the step count (identical after a resume at any step).
        last_lr = self.scheduler.lr(self.global_step - 1)
        record = self._end_epoch(epoch, accum, last_lr, mixing, final=final)
        if partial:
            record["partial_epoch"] = True
        return record

    def _publish(self, record: dict[str, Any]) -> None:
        """An epoch's record into metrics.jsonl and the running summary, then to the callbacks."""
        if self.is_main:
            runs.append_metrics(self.run_dir, record)
            runs.write_summary(self.run_dir, self._summary("running"))
        self._emit("on_epoch_end", record)

    def _evaluate(self, loader: Any) -> EvalSums:
        """Sums over ``loader``, added up over ranks."""
        sums = evaluate(
            self.model,
            loader,
            autocast=self.autocast,
            channels_last=self.cfg.train.channels_last,
            allow_empty=self.world_size > 1,  # a rank may hold no sample of a split smaller than the world
        )
        return EvalSums.unpack(distributed.all_reduce(sums.pack(), self.world_size))

    def _end_epoch(self, epoch: int, accum: _Accum, lr: float, mixing: bool, final: bool) -> dict[str, Any]:
        t = self.cfg.train
        loss_sum, err_sum, n = (float(v) for v in distributed.all_reduce(accum.sums, self.world_size).cpu())
        if not math.isfinite(loss_sum):
            if self.is_main:  # not left "running" for ever: the report shows the run as diverged
                runs.write_summary(self.run_dir, self._summary("diverged"))
            raise RunError(f"training diverged: the loss of epoch {epoch + 1} is {loss_sum / max(n, 1)}")
        distributed.sync_buffers(self.model, self.world_size)
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
        e0 = time.perf_counter()
        if (epoch + 1) % t.eval_every == 0 or final or epoch >= t.epochs - t.eval_last:
            self.last_eval = self._evaluate(self.data.test).cpu()
            test = self.last_eval.metrics()
            if self.data.val is not None:
                # a held-out validation split (speech, UCI): selection happens on it, never on test
                val = self._evaluate(self.data.val).metrics()
                test.update({"val_" + k.removeprefix("test_"): v for k, v in val.items()})
            self._emit("on_eval", test)
        record.update(test)
        self._emit("on_epoch_record", record, final)  # extras measured now (Table 2's training error)
        eval_time = time.perf_counter() - e0
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
        return record

    def _summary(self, status: str) -> dict[str, Any]:
        c = self.cfg
        extra = {
            "name": c.name,
            "table": c.table,
            "row": c.row,
            "seed": c.train.seed,
            "epochs": c.train.epochs,
            "global_step": self.global_step,  # how far a max_steps run got (orchestrate.complete reads it)
        }
        return summarize(self.records, status, extra)


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
