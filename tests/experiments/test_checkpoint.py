"""Checkpoints: atomic writes, safe loads, clear errors for bad files, exact RNG round trips."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vicinal.experiments import checkpoint as ck
from vicinal.experiments.checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_resumable,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from vicinal.experiments.config import ExperimentConfig, apply_overrides, config_to_dict


def test_roundtrip(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "records": [{"a": 1.5, "b": None}]}
    path = save_checkpoint(state, tmp_path / "sub" / "c.pt")
    loaded = load_checkpoint(path)
    assert loaded["format"] == ck.FORMAT and loaded["version"] == ck.VERSION
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["epoch"] == 3 and loaded["records"] == [{"a": 1.5, "b": None}]
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temp files left behind


def test_crash_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint({"epoch": 1}, path)
    before = path.read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk pulled out"):
        save_checkpoint({"epoch": 2, "big": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # the partial temp file was removed


def test_save_uses_fsync_and_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save_checkpoint({"epoch": 1}, tmp_path / "c.pt")
    assert calls == ["fsync", "replace", "fsync"]  # file data, rename, directory entry


def test_truncated_file(tmp_path: Path) -> None:
    path = save_checkpoint({"w": torch.randn(100)}, tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint file '.*c.pt' is unreadable \(truncated, corrupt"):
        load_checkpoint(path)


def test_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"checkpoint file '.*c.pt' is not a vicinal checkpoint"):
        load_checkpoint(path)
    path.write_text("hello, I am text")
    with pytest.raises(CheckpointError, match=r"checkpoint file '.*c.pt' is unreadable"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"checkpoint file '.*missing.pt' does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": ck.FORMAT, "version": 99}, path)
    with pytest.raises(CheckpointError, match=r"has format version 99; this vicinal reads 1"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):  # would run code when unpickled by a full pickle load
        return (os.system, ("echo should-not-run",))


def test_loading_never_runs_code(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    torch.save({"format": ck.FORMAT, "version": ck.VERSION, "x": _Evil()}, path)
    # named by what the unpickler met, without torch's advice to load with weights_only=False (helper-108)
    refused = r"is not a vicinal checkpoint: it holds a type that torch's safe loader refuses: "
    with pytest.raises(CheckpointError, match=refused + r"UnpicklingError: .*unsupported GLOBAL posix.system"):
        load_checkpoint(path)
    path.write_bytes(bytes(range(256)) * 8)  # random-looking bytes
    with pytest.raises(
        CheckpointError, match=r"is unreadable \(truncated, corrupt or not a torch file\): UnpicklingError: [^ ]"
    ) as caught:
        load_checkpoint(path)
    assert "weights_only" not in str(caught.value)
    # a class outside torch's allowlist: its message puts the weights_only=False advice on a numbered line first
    torch.save({"format": ck.FORMAT, "version": ck.VERSION, "x": np.arange(3)}, path)
    # an intact torch file: not "truncated, corrupt or not a torch file" (helper-114)
    with pytest.raises(
        CheckpointError, match=refused + r"UnpicklingError: Unsupported global: GLOBAL numpy\."
    ) as caught:
        load_checkpoint(path)
    assert "weights_only" not in str(caught.value) and "safe_globals" not in str(caught.value)
    path.unlink()
    path.mkdir()
    with pytest.raises(CheckpointError, match=r"^checkpoint file '.*c.pt' is a folder, not a checkpoint$"):
        load_checkpoint(path)


def test_rng_state_roundtrip_through_a_file(tmp_path: Path) -> None:
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002 - the global state is what is being checkpointed
    random.seed(5)
    np.random.randn()  # noqa: NPY002 - leaves a cached gaussian in the legacy state
    state = capture_rng_state()
    first = (torch.rand(4), np.random.rand(3), np.random.randn(), random.random(), random.gauss(0, 1))  # noqa: NPY002
    save_checkpoint({"rng": state}, tmp_path / "c.pt")
    torch.rand(10), np.random.rand(10), random.random()  # noqa: NPY002 - move every stream on
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    again = (torch.rand(4), np.random.rand(3), np.random.randn(), random.random(), random.gauss(0, 1))  # noqa: NPY002
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def test_each_rank_takes_its_own_state() -> None:
    """Under torchrun every rank resumes from its own entry of "ranks"; one process (and a checkpoint of an older
    vicinal, without "ranks") reads the top level, the latter flagged as not exact when there are several ranks."""
    own = [{k: f"{k} of rank {r}" for k in ck.RANK_KEYS} for r in range(3)]
    state = {**own[0], "epoch": 2, "world_size": 3, "ranks": own}
    for r in range(3):
        assert ck.rank_state(state, r, 3, "c.pt") == (own[r], True)
    older = {**own[0], "epoch": 2}
    assert ck.rank_state(older, 0, 1, "c.pt") == (own[0], True)  # the single-process format is unchanged
    assert ck.rank_state(older, 2, 3, "c.pt") == (own[0], False)  # rank 0's, and said to be inexact
    older.pop("loader")  # checkpoints written before the loader state existed
    assert ck.rank_state(older, 0, 1, "c.pt") == ({**own[0], "loader": None}, True)
    for bad, got in ((own[:2], "2 entries"), ([*own[:2], None], "3 entries"), ("x", "str")):
        with pytest.raises(CheckpointError, match=rf"^checkpoint file 'c.pt' holds per-rank states \('ranks'\) with {got}; expected one dict for each of the 3 processes$"):  # fmt: skip
            ck.rank_state({**state, "ranks": bad}, 1, 3, "c.pt")


def test_a_resume_may_declare_the_global_batch_but_not_change_the_batch() -> None:
    """data.global_batch_size only checks batch x processes (both compared here): a run started before its config
    declared it resumes; another per-process batch does not."""
    state = {"config": config_to_dict(ExperimentConfig()), "epoch": 1, "world_size": 2}
    check_resumable(state, apply_overrides(ExperimentConfig(), ["data.global_batch_size=256"]), 2, "ck.pt")
    with pytest.raises(CheckpointError, match=r"differs at data.batch_size\); only notes, "):
        check_resumable(state, apply_overrides(ExperimentConfig(), ["data.batch_size=64"]), 2, "ck.pt")


def test_a_resume_may_read_the_same_data_from_another_place() -> None:
    """A finished run counts as done whatever its data.root or loader settings (recipe.NOT_RESULT_KEYS), but a
    stopped one refused to resume with them changed: a suite could not continue once its data had moved."""
    saved = apply_overrides(ExperimentConfig(), ["data.root=/a", "data.kwargs={num_workers: 0, noise: 0.1}"])
    state = {"config": config_to_dict(saved), "epoch": 1, "world_size": 1}
    moved = ["data.root=/b", "data.eval_batch_size=17", "data.kwargs={num_workers: 4, progress: false, noise: 0.1}"]
    check_resumable(state, apply_overrides(saved, moved), 1, "ck.pt")
    with pytest.raises(CheckpointError, match=r"differs at data.kwargs\); only notes, data.root, "):
        check_resumable(state, apply_overrides(saved, ["data.kwargs={num_workers: 0, noise: 0.2}"]), 1, "ck.pt")


def test_a_cached_python_gaussian_is_restored() -> None:
    random.seed(7)
    random.gauss(0, 1)  # draws a pair and keeps the second for the next call
    state = capture_rng_state()
    expected = random.gauss(0, 1)
    random.seed(8)
    random.gauss(0, 1)
    restore_rng_state(state)
    assert random.gauss(0, 1) == expected


def test_a_resume_needs_the_epoch_a_checkpoint_one_step_into_it_started() -> None:
    cfg = apply_overrides(ExperimentConfig(), ["train.epochs=2"])
    state = {"config": config_to_dict(cfg), "epoch": 2, "step_in_epoch": 1, "world_size": 1}
    with pytest.raises(
        CheckpointError,
        match=r"has completed 2 epoch\(s\) and is part-way through the next, so train.epochs must be >= 3$",
    ):
        check_resumable(state, cfg, 1, "ck.pt")
    check_resumable({**state, "step_in_epoch": 0}, cfg, 1, "ck.pt")  # at the end of epoch 2: nothing left, fine


def test_a_resume_needs_as_many_processes_as_wrote_the_checkpoint() -> None:
    state = {"config": config_to_dict(ExperimentConfig()), "epoch": 1, "world_size": 2}
    with pytest.raises(CheckpointError, match=r"'ck.pt' was written by 2 processes; this run has 1 \(exact resume"):
        check_resumable(state, ExperimentConfig(), 1, "ck.pt")


def test_a_resume_skips_options_neither_config_reads() -> None:
    # a stopped ERM run recorded with an alpha it never drew (a plan's --set 'mix={alpha: A}' before it went row by
    # row) resumes under the plan's config; an alpha mixup draws is another run
    erm = apply_overrides(ExperimentConfig(), ["mix.variant=erm", "mix.alpha=0.5"])
    state = {"config": config_to_dict(erm), "epoch": 1, "world_size": 1}
    check_resumable(state, apply_overrides(erm, ["mix.alpha=1.0"]), 1, "ck.pt")
    mixup = apply_overrides(ExperimentConfig(), ["mix.variant=mixup", "mix.alpha=0.5"])
    state = {"config": config_to_dict(mixup), "epoch": 1, "world_size": 1}
    with pytest.raises(CheckpointError, match=r"differs at mix.alpha\)"):
        check_resumable(state, apply_overrides(mixup, ["mix.alpha=1.0"]), 1, "ck.pt")
