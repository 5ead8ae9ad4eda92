"""Helpers shared by the lab's trainer/CLI/DDP tests (imported by them; not a test module itself).

* ``register_synthetic()`` adds a tiny deterministic image dataset ``"synthetic_images"`` to the data registry
  (the data package is not edited): uint8 images whose mean brightness per channel depends on the class, so a
  model can learn it, with the crop + flip augmentation of CIFAR. Sizes are keyword arguments.
* ``tiny_config(...)`` is a small, fast ExperimentConfig on it.
* ``one_thread`` (fixture, import it into a test module): torch on one thread for the module's tests.
* ``spy_atomic_writes(monkeypatch)`` records the paths written through ``runs.atomic_write`` (the report's tests).
* ``break_writer(monkeypatch, owner, name, target)`` makes a writer (``torch.save``, ``Figure.savefig``, ...) fail
  half-way: it writes a few bytes into its target, then raises ``OSError("disk full")``.
* ``count_calls(monkeypatch, owner, name, real, stop_at)`` counts the calls of ``owner.name`` (a task's trainer),
  the ``stop_at``-th raising KeyboardInterrupt: a Ctrl-C part-way through a table (the resume tests).
* ``ddp_worker`` is the per-process body of the 2-process gloo tests (spawned by torch.multiprocessing): a straight
  run and the same run interrupted and resumed; ``SignalOnRank`` is its SIGTERM on one rank.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import vicinal.experiments.runs as runs_module
from vicinal.experiments.config import ExperimentConfig, apply_overrides, config_from_dict
from vicinal.experiments.data import DATASETS, TensorSplits, register_dataset
from vicinal.experiments.errors import RunError

SYNTHETIC = "synthetic_images"


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a shared, oversubscribed machine two OpenMP threads spinning
    at each barrier make them up to 20x slower. Import this fixture into a test module to use it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _make_split(n_per_class: int, num_classes: int, channels: int, size: int, gen: torch.Generator):
    y = torch.arange(num_classes).repeat_interleave(n_per_class)  # (N,)
    noise = torch.randint(0, 96, (y.numel(), channels, size, size), generator=gen)
    # class c shifts channel (c % channels) up by 16 * (1 + c // channels): learnable, still uint8
    shift = torch.zeros(y.numel(), channels, 1, 1, dtype=torch.int64)
    shift[torch.arange(y.numel()), y % channels, 0, 0] = 16 * (1 + y // channels)
    x = (noise + shift + 40).clamp(0, 255).to(torch.uint8)  # (N, C, H, W)
    return x, y


def synthetic_splits(
    seed: int = 0,
    *,
    n_per_class: int = 16,
    n_test_per_class: int = 4,
    num_classes: int = 10,
    channels: int = 3,
    size: int = 8,
) -> TensorSplits:
    """The synthetic dataset's splits; independent of the run seed (a fixed dataset, like a real one)."""
    del seed
    gen = torch.Generator().manual_seed(1234)
    train = _make_split(n_per_class, num_classes, channels, size, gen)
    test = _make_split(n_test_per_class, num_classes, channels, size, gen)
    xf = train[0].float() / 255
    return TensorSplits(
        train=train,
        test=test,
        num_classes=num_classes,
        mean=tuple(xf.mean(dim=(0, 2, 3)).tolist()),
        std=tuple(xf.std(dim=(0, 2, 3)).tolist()),
        info={"source": "synthetic (tests)", "augment": "crop_flip", "crop_padding": 2},
    )


def register_synthetic() -> None:
    """Register ``"synthetic_images"`` once per process."""
    if SYNTHETIC in DATASETS:
        return

    @register_dataset(SYNTHETIC)
    def _synthetic(req: Any, **kwargs: Any) -> TensorSplits:
        return synthetic_splits(req.seed, **kwargs)


def tiny_config(*overrides: str) -> ExperimentConfig:
    """PreAct ResNet-18 at width 4 with dropout (exercises the global RNG) on 8x8 synthetic images, mixup."""
    register_synthetic()
    base = config_from_dict(
        {
            "name": "tiny",
            "data": {"name": SYNTHETIC, "batch_size": 32, "eval_batch_size": 64},
            "model": {"name": "preact_resnet18", "kwargs": {"width": 4, "dropout": 0.2}},
            "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
            "schedule": {"name": "cosine", "warmup_epochs": 1, "warmup_start_lr": 0.01},
            "mix": {"variant": "mixup", "alpha": 1.0},
            "train": {"epochs": 4, "seed": 3, "device": "cpu", "log_every": 1000},
        }
    )
    return apply_overrides(base, list(overrides))


class SignalOnRank:
    """A SIGTERM that reaches one rank only, during step (``epoch``, ``batch``): the ranks agree to stop after it."""

    def __init__(self, rank: int, epoch: int, batch: int) -> None:
        self.rank, self.epoch, self.batch = rank, epoch, batch

    def on_step(self, trainer: Any, step: dict[str, Any]) -> None:
        if trainer.rank == self.rank and (step["epoch"], step["batch"]) == (self.epoch, self.batch):
            trainer.stop.signum = signal.SIGTERM


def _rank_result(trainer: Any) -> dict[str, Any]:
    return {
        "params": {k: v.detach().clone() for k, v in trainer.model.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in trainer.model.named_buffers()},
        "records": trainer.records,
        "mix_seed": trainer.mix_seed,
        "mix_state": trainer.mix_generator.get_state(),  # where this rank's mixing stream ended
    }


def ddp_worker(rank: int, world_size: int, ports: list[int], out: str) -> None:
    """One rank of the gloo tests: ``tiny_config("train.epochs=2")`` (3 steps an epoch per rank) trained

    * straight into ``out/run`` (this rank's result in ``out/rank{rank}.pt``);
    * into ``out/resumed``: stopped by a SIGTERM on rank 1 alone in step 2 (mid-epoch 1; the checkpoint is copied
      to ``out/interrupted.pt``), resumed to ``train.max_steps=3`` (the end of epoch 1), resumed to the end (result,
      exit code and the warnings of both resumes in ``out/resumed{rank}.pt``);
    * into ``out/legacy``: the interrupted checkpoint without its per-rank states (as an older vicinal wrote it),
      resumed to ``train.max_steps=3`` (its warnings in ``legacy_warnings``).

    Each fit joins its own process group, on the next of ``ports`` (5).
    """
    torch.set_num_threads(1)
    from vicinal.experiments.trainer import Trainer, TrainingInterrupted

    root, next_port = Path(out), iter(ports)

    def fit(run: str, *overrides: str, resume: bool = False, callbacks: Any = ()) -> tuple[Any, list[str]]:
        os.environ.update(
            {
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world_size),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(next(next_port)),
            }
        )
        # the global batch the config declares: the check runs under DDP and passes
        cfg = tiny_config("train.epochs=2", f"data.global_batch_size={32 * world_size}", *overrides)
        trainer = Trainer(cfg, root / run, resume=resume, quiet=True, callbacks=callbacks)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            trainer.fit()
        return trainer, [str(w.message) for w in said]

    straight, _ = fit("run")
    torch.save(_rank_result(straight), root / f"rank{rank}.pt")
    try:
        fit("resumed", callbacks=[SignalOnRank(1, 0, 1)])
        exit_code = 0
    except TrainingInterrupted as exc:
        exit_code = exc.exit_code
    if rank == 0:  # before the next fit: rank 1 waits for rank 0 to join its process group
        shutil.copyfile(root / "resumed" / "checkpoint.pt", root / "interrupted.pt")
        shutil.copytree(root / "resumed", root / "legacy")
        ck = torch.load(root / "legacy" / "checkpoint.pt", weights_only=True)
        ck.pop("ranks", None)  # (None: a checkpoint of an older vicinal, which had none)
        torch.save(ck, root / "legacy" / "checkpoint.pt")
    _, said_paused = fit("resumed", "train.max_steps=3", resume=True)
    resumed, said_resumed = fit("resumed", resume=True)
    _, said_legacy = fit("legacy", "train.max_steps=3", resume=True)
    result = {"exit_code": exit_code, "warnings": said_paused + said_resumed, "legacy_warnings": said_legacy}
    torch.save({**_rank_result(resumed), **result}, root / f"resumed{rank}.pt")


def break_writer(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, target: int) -> None:
    """Replace ``owner.name`` by a writer that puts a few bytes into its ``target``-th positional argument (a path
    or an open file), then raises ``OSError("disk full")``: a write that dies half-way, as on a full disk."""

    def broken(*args: Any, **kwargs: Any) -> None:
        dest = args[target]
        if hasattr(dest, "write"):
            dest.write(b"partial")
        else:
            Path(dest).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(owner, name, broken)


def count_calls(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, real: Any, stop_at: int | None = None
) -> list[int]:
    """Replace ``owner.name`` by ``real`` counted: the returned list gets 1, 2, ... as it is called, and the
    ``stop_at``-th call raises KeyboardInterrupt (a Ctrl-C) instead. ``real`` is passed, not read from ``owner``, so
    that a second replacement in one test wraps the real function, not the first replacement."""
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        if calls[-1] == stop_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def spy_atomic_writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths written through ``runs.atomic_write`` from now on (the writes still happen)."""
    written: list[Path] = []
    real = runs_module.atomic_write

    def spy(path: str | Path, write: Any) -> Path:
        written.append(Path(path))
        return real(path, write)

    monkeypatch.setattr(runs_module, "atomic_write", spy)
    return written


def plant_killed_writes(root: Path, names: Iterable[str]) -> list[Path]:
    """The temporary files that writes of ``root/<name>`` (relative paths) leave when SIGKILLed: named after this
    host and a process that has ended, as :func:`vicinal.experiments.runs.atomic_write` names them."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    planted = []
    for name in names:
        path = root / name
        tmp = path.parent / f".{path.name}.{socket.gethostname()}~{dead.pid}~k2j4.tmp"
        tmp.write_bytes(b'{"torn')
        planted.append(tmp)
    return planted


def check_one_writer(out: Path, write_table: Callable[[], object]) -> None:
    """``write_table()`` writes a table into ``out``: while another writer holds ``out``'s claim (here a second open
    file of this process: ``flock`` refuses it all the same) it is refused in one error naming that writer, having
    written nothing; once the claim is released it writes the table, and releases its own claim at the end."""
    held = runs_module.claim(out)
    assert held is not None
    try:
        owner = f"{socket.gethostname()} {os.getpid()}"
        with pytest.raises(RunError, match=rf"^'{re.escape(str(out))}' is being written by another process \(host "
                           rf"and pid: {owner}\); wait for it to finish or choose another --out"):  # fmt: skip
            write_table()
        assert sorted(p.name for p in out.iterdir()) == [runs_module.CLAIM]
    finally:
        held.release()
    write_table()
    assert not (out / runs_module.CLAIM).exists()
