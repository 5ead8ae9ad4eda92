"""Device and process-group helpers (experiments/distributed.py); two real processes: test_ddp.py."""

from __future__ import annotations

import os
import re
import signal

import pytest
import torch
from torch import nn

from vicinal.experiments import distributed
from vicinal.experiments.errors import RunError


def test_dist_env_reads_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.dist_env() == (0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert distributed.dist_env() == (3, 4, 3)  # LOCAL_RANK defaults to RANK
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.dist_env() == (3, 4, 1)


def test_devices() -> None:
    assert distributed.resolve_device("cpu", 0) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert distributed.resolve_device("auto", 1) == torch.device("cpu")
        with pytest.raises(RunError, match=r"--device is 'cuda:1' but CUDA is not available on this machine"):
            distributed.check_device("cuda:1", "--device")
        # the hint names what the caller accepts: train.device takes auto, attack's --device does not
        with pytest.raises(RunError, match=r"^train.device is 'cuda' but CUDA .* \(use auto or cpu\)$"):
            distributed.check_device("cuda")
        with pytest.raises(RunError, match=r"^--device is 'cuda' but CUDA .* \(use cpu\)$"):
            distributed.check_device("cuda", "--device", fallback="cpu")
    else:
        assert distributed.resolve_device("cuda", 0) == torch.device("cuda:0")


def test_single_process_setup_and_collectives_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    p = distributed.setup("cpu")
    assert (p.rank, p.world_size, p.is_main, p.owns_group, p.device) == (0, 1, True, False, torch.device("cpu"))
    t = torch.arange(3.0)
    assert distributed.all_reduce(t, 1) is t
    assert distributed.gather_to_main(t, 1)[0] is t  # type: ignore[index]
    distributed.sync_buffers(nn.BatchNorm1d(2), 1)


def test_global_batch_rule_names_the_process_count_or_the_per_process_batch() -> None:
    """Finding 2 of the paper audit: torchrun's 8 processes trained a CIFAR paper config at 8 x 128."""
    for batch, world in ((128, 8), (128, 1), (1, 3)):
        distributed.check_global_batch(batch, None, world)  # no declared global batch: nothing to check
    distributed.check_global_batch(128, 1024, 8)
    distributed.check_global_batch(16, 128, 8)
    distributed.check_global_batch(128, 128, 1)
    why = "(data.global_batch_size: its learning rate assumes that batch, the paper's in a paper config)"
    cases = {
        (128, 128, 8): "data.batch_size 128 x 8 processes is a global batch of 1024, but this config was written for "
        f"a global batch of 128 {why}: run it in one process (no torchrun), or --set data.batch_size=16 for 8 "
        "processes, or --set data.global_batch_size=null to train at another global batch on purpose",
        (128, 1024, 1): "data.batch_size 128 x 1 process is a global batch of 128, but this config was written for a "
        f"global batch of 1024 {why}: start 8 processes, or --set data.batch_size=1024 for 1 process, or --set "
        "data.global_batch_size=null to train at another global batch on purpose",
        # 1024 / 3 is no whole batch: only the process count (or the opt-out) is offered
        (128, 1024, 3): "data.batch_size 128 x 3 processes is a global batch of 384, but this config was written for "
        f"a global batch of 1024 {why}: start 8 processes, or --set data.global_batch_size=null",
        (48, 128, 2): "data.batch_size 48 x 2 processes is a global batch of 96, but this config was written for a "
        f"global batch of 128 {why}: --set data.batch_size=64 for 2 processes, or --set data.global_batch_size=null",
    }
    for (batch, declared, world), message in cases.items():
        with pytest.raises(RunError, match="^" + re.escape(message)):
            distributed.check_global_batch(batch, declared, world)


def test_per_rank_batch_size() -> None:
    assert [distributed.per_rank_batch_size(w, 128) for w in (1, 2, 8)] == [128, 64, 16]
    with pytest.raises(RunError, match="global batch 100 is not divisible by world size 8"):
        distributed.per_rank_batch_size(8, 100)
    with pytest.raises(RunError, match="global_batch must be >= 1, got 0"):
        distributed.per_rank_batch_size(1, 0)
    with pytest.raises(TypeError, match="global_batch must be an int, got float 128.0"):
        distributed.per_rank_batch_size(1, 128.0)  # type: ignore[arg-type]


def test_stop_signals_record_the_first_signal_and_restore_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = distributed.StopSignals()
    stop.install()
    try:
        assert not stop.agreed(1, torch.device("cpu"))
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM and stop.agreed(1, torch.device("cpu"))
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("completed", [True, False])
def test_teardown_waits_for_the_peers_only_after_a_completed_fit(
    monkeypatch: pytest.MonkeyPatch, completed: bool
) -> None:
    # A completed fit: a barrier (a rank tearing gloo down under its peer was aborted at exit). After an error: none,
    # since a peer that failed elsewhere would never reach it. The group itself stays for the next run (destroyed at
    # exit): destroyed and joined again, the second run of a torchrun reproduce hung.
    calls: list[str] = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    owner = distributed.Placement(0, 2, 0, torch.device("cpu"), owns_group=True)
    distributed.teardown(owner, completed=completed)
    assert calls == (["barrier"] if completed else [])
    calls.clear()
    guest = distributed.Placement(0, 2, 0, torch.device("cpu"), owns_group=False)  # a caller's group: not ours
    distributed.teardown(guest, completed=completed)
    assert calls == []


def test_only_a_second_ctrl_c_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    stop = distributed.StopSignals()
    stop._handler(signal.SIGTERM, None)
    try:
        stop._handler(signal.SIGTERM, None)  # torchrun passing SIGTERM on again: still a stop after the step
    except KeyboardInterrupt:
        pytest.fail("a second SIGTERM stopped the run at once")
    assert stop.signum == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        stop._handler(signal.SIGINT, None)


def test_under_torchrun_a_second_ctrl_c_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchrun passes the terminal's second Ctrl-C on as SIGTERM: the workers waited for the step, and torchrun killed
    # them 30 s later with no summary and no word
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    for second in (signal.SIGTERM, signal.SIGINT):
        stop = distributed.StopSignals()
        stop._handler(signal.SIGINT, None)
        with pytest.raises(KeyboardInterrupt):
            stop._handler(second, None)
        assert stop.signum == signal.SIGINT and stop.second == second
    # helper-114: a scheduler that signals every process of the job (scancel, a preemption) reaches each worker
    # twice, once itself and once through torchrun; taken as a second Ctrl-C, that lost the step's checkpoint
    stop = distributed.StopSignals()
    stop._handler(signal.SIGTERM, None)
    try:
        stop._handler(signal.SIGTERM, None)
    except KeyboardInterrupt:
        pytest.fail("a repeated SIGTERM under torchrun stopped the run at once")
    assert stop.signum == signal.SIGTERM and stop.second is None


def test_a_signal_taken_over_from_a_peer_is_not_this_process_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # helper-116: a rank that learnt of rank 0's SIGINT through `agreed` took its own copy of the same Ctrl-C,
    # arriving after, as a second one and stopped at once, without the step's checkpoint
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda t, op=None: t.fill_(int(signal.SIGINT)))
    stop = distributed.StopSignals()
    assert stop.agreed(2, torch.device("cpu")) and stop.signum == signal.SIGINT
    try:
        stop._handler(signal.SIGINT, None)
    except KeyboardInterrupt:
        pytest.fail("the process's own first signal stopped it at once")
    assert stop.received == signal.SIGINT and stop.second is None
    with pytest.raises(KeyboardInterrupt):
        stop._handler(signal.SIGTERM, None)  # torchrun's second Ctrl-C


def test_a_second_ctrl_c_waits_while_the_run_writes_its_end() -> None:
    stop = distributed.StopSignals()
    stop._handler(signal.SIGINT, None)
    stop.defer_second()
    stop._handler(signal.SIGINT, None)  # held
    assert stop.second == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        stop.release_second()
    quiet = distributed.StopSignals()
    quiet.defer_second()
    quiet.release_second()  # nothing pending: nothing raised
    quiet.defer_second()
    quiet.restore()  # the run ended some other way: a later second Ctrl-C is not held
    quiet._handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        quiet._handler(signal.SIGINT, None)


def test_a_first_signal_stops_the_run_when_stderr_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    # the acknowledgement's write raised BrokenPipeError inside the handler (a closed `| tee`, a dropped terminal)
    # before the signal was recorded: the error surfaced mid-step and no checkpoint was saved
    def broken(fd: int, data: bytes) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(distributed.os, "write", broken)
    stop = distributed.StopSignals()
    stop._announce = True
    stop._handler(signal.SIGINT, None)
    assert stop.signum == signal.SIGINT and stop.agreed(1, torch.device("cpu"))


def test_the_first_signal_is_acknowledged_on_stderr_where_asked(capfd: pytest.CaptureFixture[str]) -> None:
    # helper-108: nothing was said until the evaluation under way ended, so users pressed Ctrl-C again and lost work
    for signum, tail in ((signal.SIGINT, "; Ctrl-C again stops at once, losing the work since the last checkpoint"),
                         (signal.SIGTERM, "")):  # fmt: skip
        stop = distributed.StopSignals()
        stop._announce = True
        stop._handler(signum, None)
        stop._handler(signal.SIGTERM, None)  # said once
        name = signal.Signals(signum).name
        said = f"vicinal: {name}: saving a checkpoint after the current step or evaluation, then stopping{tail}\n"
        assert capfd.readouterr().err == said
    # the demo's runs lie in a temporary folder: no checkpoint is promised
    demo = distributed.StopSignals()
    demo._announce, demo.saves = True, False
    demo._handler(signal.SIGINT, None)
    said = "vicinal: SIGINT: stopping after the current step or evaluation; Ctrl-C again stops at once\n"
    assert capfd.readouterr().err == said
    quiet = distributed.StopSignals()  # a rank other than 0
    quiet._handler(signal.SIGTERM, None)
    assert capfd.readouterr().err == "" and quiet.signum == signal.SIGTERM


def test_the_ranks_agree_on_the_signal_a_peer_received(monkeypatch: pytest.MonkeyPatch) -> None:
    # three ranks, two of them sent SIGTERM: the third stops with SIGTERM too (the largest signal number, not a sum)
    def all_reduce(t: torch.Tensor, op: object = distributed.dist.ReduceOp.SUM) -> None:
        flags = [int(t), int(signal.SIGTERM), int(signal.SIGTERM)]
        t.fill_(max(flags) if op == distributed.dist.ReduceOp.MAX else sum(flags))

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    stop = distributed.StopSignals()
    assert stop.agreed(3, torch.device("cpu")) and stop.signum == signal.SIGTERM
