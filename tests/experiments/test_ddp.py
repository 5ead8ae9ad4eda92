"""Two gloo processes on the CPU: DistributedDataParallel keeps the ranks' weights identical, rank 0 writes a
complete run folder, metrics are summed over ranks, and each rank mixes with its own generator."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.experiments.lab_helpers import ddp_worker
from vicinal.experiments.trainer import TIMING_FIELDS

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_gloo_ranks(tmp_path: Path) -> None:
    mp.spawn(ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name
    for name, value in r0["buffers"].items():  # BatchNorm statistics are synchronised from rank 0 each epoch
        assert torch.equal(value, r1["buffers"][name]), name
    untimed = [[{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in x["records"]] for x in (r0, r1)]
    assert untimed[0] == untimed[1]  # all-reduced metrics: every rank computes the same record
    assert r0["mix_seed"] != r1["mix_seed"]  # each rank mixes its own minibatch with its own stream

    run = tmp_path / "run"
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
