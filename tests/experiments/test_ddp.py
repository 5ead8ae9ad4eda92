"""Two gloo processes on the CPU: DistributedDataParallel keeps the ranks' weights identical, rank 0 writes a
complete run folder, metrics are summed over ranks, each rank mixes with its own generator, and an interrupted run
resumes bit-identically on every rank (each from its own state in the checkpoint)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from tests.experiments.lab_helpers import ddp_worker
from vicinal.experiments.checkpoint import RANK_KEYS
from vicinal.experiments.trainer import TIMING_FIELDS

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def free_ports(n: int) -> list[int]:
    """``n`` different free ports (all bound at once, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def untimed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runs of `lab_helpers.ddp_worker`, spawned once for the module's tests (process start-up is most of it)."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker, args=(2, free_ports(5), str(out)), nprocs=2, join=True)
    return out


def test_two_gloo_ranks(two_ranks: Path) -> None:
    out = two_ranks
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name
    for name, value in r0["buffers"].items():  # BatchNorm statistics are synchronised from rank 0 each epoch
        assert torch.equal(value, r1["buffers"][name]), name
    assert untimed(r0["records"]) == untimed(r1["records"])  # all-reduced metrics: every rank computes the same record
    assert r0["mix_seed"] != r1["mix_seed"]  # each rank mixes its own minibatch with its own stream

    run = out / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt", "config.yaml", "metrics.jsonl", "provenance.json",
        "reliability.json", "reliability.png", "summary.json",
    ]  # fmt: skip
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    # 160 training images split over 2 ranks (80 each, 3 batches of up to 32): all counted once, the test split too
    assert all(r["train_n"] == 160 and r["test_n"] == 40 for r in records)
    assert json.loads((run / "provenance.json").read_text())["world_size"] == 2
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["world_size"] == 2 and all(torch.equal(ck["model"][k], v) for k, v in r0["params"].items())


def test_an_interrupted_run_resumes_bit_identically_on_every_rank(two_ranks: Path) -> None:
    """Rank 0 alone wrote the checkpoint, and every rank resumed from rank 0's mixing generator, RNG states and
    partial-epoch sums: rank 1 then repeated rank 0's draws (mixup diverged from the straight run) and the interrupted
    epoch's train loss counted rank 0's share twice. Now each rank resumes from its own state: stopped mid-epoch 1 by
    a signal on rank 1, resumed to a step limit at the end of epoch 1, then to the end, the run equals the straight
    one on every rank, weights, records and mixing streams."""
    out = two_ranks
    ck = torch.load(out / "interrupted.pt", weights_only=True)
    assert (ck["epoch"], ck["step_in_epoch"], ck["world_size"]) == (0, 2, 2)
    ranks = ck["ranks"]
    assert len(ranks) == 2 and all(set(r) == set(RANK_KEYS) for r in ranks)
    # the top level stays rank 0's (the single-process format); rank 1's own state differs from it
    assert torch.equal(ranks[0]["mix_generator"], ck["mix_generator"])
    assert torch.equal(ranks[0]["rng"]["torch"], ck["rng"]["torch"])
    assert not torch.equal(ranks[1]["mix_generator"], ck["mix_generator"])
    assert not torch.equal(ranks[1]["rng"]["torch"], ck["rng"]["torch"])
    assert not torch.equal(ranks[1]["partial"]["sums"], ck["partial"]["sums"])
    assert ranks[1]["partial"]["sums"][2] == 64  # rank 1's own two batches of 32

    for rank in (0, 1):
        straight = torch.load(out / f"rank{rank}.pt", weights_only=True)
        resumed = torch.load(out / f"resumed{rank}.pt", weights_only=True)
        assert resumed["exit_code"] == 143  # SIGTERM reached rank 1 only; rank 0 stopped with it
        for kind in ("params", "buffers"):
            for name, value in straight[kind].items():
                assert torch.equal(value, resumed[kind][name]), (rank, name)
        assert torch.equal(resumed["mix_state"], straight["mix_state"]), rank  # its own stream, continued
        # (the epoch that ended at the step limit was evaluated as a last one: it also has the training error)
        want, got = untimed(straight["records"]), untimed(resumed["records"])
        assert [{k: r[k] for k in w} for r, w in zip(got, want, strict=True)] == want, rank
        assert not any("per-rank" in m for m in resumed["warnings"]), resumed["warnings"]
    lines = [[json.loads(x) for x in (out / r / "metrics.jsonl").read_text().splitlines()] for r in ("run", "resumed")]
    assert [{k: r[k] for k in w} for r, w in zip(lines[1], untimed(lines[0]), strict=True)] == untimed(lines[0])
    prov = json.loads((out / "resumed" / "provenance.json").read_text())
    assert [(r["from_epoch"], r["from_step_in_epoch"]) for r in prov["resumes"]] == [(0, 2), (1, 0)]
    assert not any("per_rank_state" in r for r in prov["resumes"])


def test_a_checkpoint_without_per_rank_states_resumes_with_a_warning(two_ranks: Path) -> None:
    """A multi-process checkpoint of an older vicinal (no "ranks") still resumes, as it did, every rank from rank 0's
    state; rank 0 says so in one warning and the provenance's resume entry records it."""
    out = two_ranks
    said = [torch.load(out / f"resumed{rank}.pt", weights_only=True)["legacy_warnings"] for rank in (0, 1)]
    legacy = [m for m in said[0] if "per-rank" in m]
    assert legacy == [
        f"resuming '{out / 'legacy'}' from a checkpoint without per-rank states (written by an older vicinal): every "
        "rank continues from rank 0's mixing and RNG states and partial-epoch sums, so the run is not bit-identical "
        "to an uninterrupted one"
    ]
    assert said[1] == []  # rank 0 speaks for the run
    prov = json.loads((out / "legacy" / "provenance.json").read_text())
    assert [r.get("per_rank_state") for r in prov["resumes"]] == [False]
    assert json.loads((out / "legacy" / "summary.json").read_text())["status"] == "max_steps"


SEVERAL_RUNS = """
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import torch

from tests.experiments.lab_helpers import tiny_config
from vicinal.experiments.trainer import Trainer

torch.set_num_threads(1)
for name in ("a", "b"):  # as `vicinal reproduce` trains a plan's runs in one process
    Trainer(tiny_config("train.epochs=1", "data.global_batch_size=null"), Path(sys.argv[2]) / name, quiet=True).fit()
"""


def test_one_torchrun_process_trains_several_runs(tmp_path: Path) -> None:
    # each run joined the process group and destroyed it: under torchrun the second run hung in DDP's setup, so
    # `torchrun ... vicinal reproduce imagenet --scale paper` trained its first row and then waited for ever
    import subprocess
    import sys

    script = tmp_path / "several.py"
    script.write_text(SEVERAL_RUNS)
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    done = subprocess.run([*cmd, str(root), str(tmp_path)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("a", "b"):
        assert json.loads((tmp_path / name / "summary.json").read_text())["status"] == "complete"
