"""Where a run executes: the device, the torchrun process group, the collectives the trainer needs, and the stop
signals every rank must agree on.

Under ``torchrun`` (env ``WORLD_SIZE`` > 1) a run joins the process group (NCCL on CUDA, gloo on CPU, so two CPU
processes test it here); a single process needs none of this and every helper is then a no-op.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import RunError, TaskArgumentError

__all__ = [
    "Placement",
    "StopSignals",
    "all_reduce",
    "check_device",
    "check_global_batch",
    "dist_env",
    "gather_to_main",
    "per_rank_batch_size",
    "resolve_device",
    "setup",
    "sync_buffers",
]


def dist_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def check_device(name: str, what: str = "train.device", *, fallback: str = "auto or cpu") -> None:
    """Raise RunError unless device ``name`` (cpu, cuda, cuda:N, mps) exists on this machine.

    ``fallback``: the values of ``what`` the error suggests instead (those the caller accepts that always work).
    """
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RunError(f"{what} is {name!r} but CUDA is not available on this machine (use {fallback})")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise RunError(f"{what} is {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RunError(f"{what} is 'mps' but MPS (Apple GPU) is not available on this machine (use {fallback})")


_EXPLICIT_DEVICES = ("cpu", "cuda", "cuda:N", "mps")


def check_explicit_device(name: str, what: str = "--device") -> None:
    """Raise RunError unless ``name`` names a device (cpu, cuda, cuda:N, mps; no "auto") that exists here: the
    ``--device`` option of the commands that evaluate trained runs (attack, figure fig2)."""
    if not re.fullmatch(r"cpu|cuda|cuda:\d+|mps", name):
        raise RunError(f"{what} must be one of {', '.join(_EXPLICIT_DEVICES)}, got {name!r}")
    check_device(name, what, fallback="cpu")


def resolve_device(name: str, local_rank: int) -> torch.device:
    """The device of ``train.device`` for this process: "auto" is this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    check_device(name)
    if name.startswith("cuda"):
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


def per_rank_batch_size(world_size: int, global_batch: int) -> int:
    """``data.batch_size`` for ``world_size`` processes so that the global minibatch is ``global_batch``.

    Raises:
        TypeError: a non-integer argument.
        ValueError: ``world_size`` < 1, or ``global_batch`` not divisible by ``world_size`` (the global batch,
            and with it the paper's lr, would change).
    """
    for label, value in (("world_size", world_size), ("global_batch", global_batch)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TaskArgumentError(f"{label} must be an int, got {type(value).__name__} {value!r}")
        if value < 1:
            raise RunError(f"{label} must be >= 1, got {value}")
    if global_batch % world_size:
        raise RunError(
            f"global batch {global_batch} is not divisible by world size {world_size}; use a world size that "
            f"divides it (1, 2, 4, 8, 16, ...) or rescale optim.lr linearly with the global batch (Goyal et al.)"
        )
    return global_batch // world_size


def check_global_batch(batch_size: int, global_batch_size: int | None, world_size: int) -> None:
    """Refuse a run whose global minibatch, ``batch_size`` (per process) x ``world_size``, is not the
    ``global_batch_size`` its config was written for (``data.global_batch_size``; None = no check): the config's
    learning rate and schedule assume that batch, and torchrun's process count would change it without a word.

    Raises:
        RunError: one line naming the per-process batch to set or the number of processes to start.
    """
    if global_batch_size is None or batch_size * world_size == global_batch_size:
        return
    fixes = []
    if global_batch_size % batch_size == 0:  # first: the process count keeps the config's per-process batch
        n = global_batch_size // batch_size
        fixes.append("run it in one process (no torchrun)" if n == 1 else f"start {n} processes")
    try:
        per_rank = per_rank_batch_size(world_size, global_batch_size)
        fixes.append(f"--set data.batch_size={per_rank} for {_processes(world_size)}")
    except RunError:  # no whole per-process batch for this many processes: only the process count can change
        pass
    fixes.append("--set data.global_batch_size=null to train at another global batch on purpose")
    raise RunError(
        f"data.batch_size {batch_size} x {_processes(world_size)} is a global batch of {batch_size * world_size}, "
        f"but this config was written for a global batch of {global_batch_size} (data.global_batch_size: its "
        f"learning rate assumes that batch, the paper's in a paper config): {', or '.join(fixes)}"
    )


def _processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes"


# Whether setup() joined this process's process group. It is kept for the process's next run and destroyed at exit:
# a group destroyed after each run and joined again hung the second run of `torchrun ... reproduce` in DDP's setup
# (torchrun's store keeps the first group's keys).
_JOINED = False


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Placement:
    """This process's place in the run: ``owns_group`` says whether :func:`setup` joined the process group (a
    caller's group is the caller's to end)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes the run folder."""
        return self.rank == 0


def setup(device: str) -> Placement:
    """Resolve ``device`` and join the torchrun process group when there is more than one process."""
    global _JOINED
    rank, world, local = dist_env()
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        if not _JOINED:
            atexit.register(_leave_group)
        _JOINED = True
    elif dist.is_initialized():  # joined by an earlier run of this process, or by a caller (a test, a launcher)
        rank, world = dist.get_rank(), dist.get_world_size()
    return Placement(rank, world, local, dev, _JOINED and dist.is_initialized())


def teardown(placement: Placement, *, completed: bool) -> None:
    """The end of a run in the process group :func:`setup` joined: after a completed fit every rank waits for the
    others, so no rank leaves (the group is destroyed at exit) while a peer may still use it (the trainer frees its
    DDP wrapper before this: see ``Trainer.fit``). No barrier after an error: a peer that failed elsewhere would
    never arrive. The group itself stays for the process's next run (see ``_JOINED``)."""
    if placement.owns_group and dist.is_initialized() and completed:
        dist.barrier()


def all_reduce(t: Tensor, world_size: int) -> Tensor:
    """The sum of ``t`` over ranks, as a new tensor (``t`` itself is left as it was); ``t`` in one process."""
    if world_size > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


def gather_to_main(obj: Any, world_size: int) -> list[Any] | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; None on the other ranks; ``[obj]`` in one process.

    A collective: every rank must call it at the same point of the run, or the ranks wait for each other forever.
    """
    if world_size == 1:
        return [obj]
    gathered: list[Any] | None = [None] * world_size if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def sync_buffers(model: nn.Module, world_size: int) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics drift apart by each rank's last forward)."""
    if world_size > 1:
        for b in model.buffers():
            dist.broadcast(b, src=0)


class StopSignals:
    """SIGINT/SIGTERM ask the run to stop after the current step (the trainer then saves a checkpoint); a second
    Ctrl-C (under torchrun, also a SIGTERM after a SIGINT: torchrun's form of it) stops at once. Handlers can only
    be installed in the main thread; elsewhere nothing is installed."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received: int | None = None  # the first signal this process received (signum: also a peer's)
        self.second: int | None = None  # the signal that stopped the run at once (KeyboardInterrupt raised)
        self._deferred = False
        self._old: dict[int, Any] = {}
        self._announce = False
        # False where the run's checkpoints are not the user's to resume (the demo's lie in a temporary folder):
        # the acknowledgement then promises no checkpoint
        self.saves = True

    def install(self, *, announce: bool = False) -> None:
        """Catch SIGINT and SIGTERM until :meth:`restore`; ``announce``: say on stderr that a first signal was
        received (rank 0), since the step or evaluation under way may take minutes before the run stops."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._announce = announce
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        """Put back the handlers found by :meth:`install`."""
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}
        self._deferred = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            # a second Ctrl-C: stop now. torchrun passes the terminal's first Ctrl-C on as SIGINT and its second as
            # SIGTERM (then SIGKILL 30 s later), so under torchrun a SIGTERM after a SIGINT stops now too. A repeated
            # SIGTERM does not: a scheduler that signals every process of the job (scancel, preemption) reaches each
            # worker twice, once itself and once through torchrun, and that stop must still save its checkpoint
            torchrun_again = (
                "TORCHELASTIC_RUN_ID" in os.environ and self.received == signal.SIGINT and signum == signal.SIGTERM
            )
            if signum == signal.SIGINT or torchrun_again:
                self.second = signum
                if not self._deferred:
                    raise KeyboardInterrupt
            return
        # this process's own first signal: one a peer received (taken over in `agreed`) is not a first Ctrl-C here,
        # or the worker's own copy of the same Ctrl-C, arriving after, would stop it at once
        self.received = signum
        if self.signum is not None:
            return
        self.signum = signum  # first: a failed write below must not lose the request to stop
        if self._announce:
            # without a word, a user waiting out an evaluation pressed Ctrl-C again and lost the epoch. os.write,
            # not print: a handler that interrupts a print to stderr cannot print there itself
            if self.saves:
                what = "saving a checkpoint after the current step or evaluation, then stopping"
                again = "; Ctrl-C again stops at once, losing the work since the last checkpoint"
            else:
                what, again = "stopping after the current step or evaluation", "; Ctrl-C again stops at once"
            line = f"vicinal: {signal.Signals(signum).name}: {what}{again if signum == signal.SIGINT else ''}\n"
            try:
                os.write(2, line.encode())
            except OSError:  # stderr's reader is gone (a closed pipe, a dropped terminal): the stop goes on
                pass

    def defer_second(self) -> None:
        """Hold a second Ctrl-C until :meth:`release_second`: the writes that end a run (its last record and
        summary, milliseconds) are not cut in half, which would mark a finished run interrupted."""
        self._deferred = True

    def release_second(self) -> None:
        """End :meth:`defer_second`; a second Ctrl-C that arrived meanwhile stops now (KeyboardInterrupt)."""
        self._deferred = False
        if self.second is not None:
            raise KeyboardInterrupt

    def agreed(self, world_size: int, device: torch.device) -> bool:
        """True when a signal arrived on any rank (ranks must stop at the same step, or DDP would hang); a rank
        that received none then takes the other's, in :attr:`signum`."""
        if world_size == 1:
            return self.signum is not None
        flag = torch.tensor([self.signum or 0], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if int(flag) and self.signum is None:
            self.signum = int(flag)
        return bool(int(flag))
