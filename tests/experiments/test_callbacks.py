"""The trainer's extras as callbacks (experiments/callbacks.py) and the hook order the trainer follows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import one_thread, tiny_config  # noqa: F401 (one_thread: autouse fixture)

from vicinal.experiments.callbacks import (
    Callback,
    Progress,
    ReliabilityDiagram,
    TensorBoard,
    TrainEval,
    default_callbacks,
    epoch_line,
    train_labels,
)
from vicinal.experiments.evaluation import TRAIN_EVAL_FIELDS
from vicinal.experiments.trainer import Trainer


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_fit_start(self, trainer: Any) -> None:
        self.events.append("fit_start")

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.events.append(("epoch_start", epoch))

    def on_eval(self, trainer: Any, metrics: dict[str, float]) -> None:
        self.events.append(("eval", metrics["test_n"]))

    def on_epoch_record(self, trainer: Any, record: dict[str, Any], final: bool) -> None:
        # the built-in TrainEval ran first: its fields are in the record on the final epoch
        self.events.append(("record", record["epoch"], final, record.get("train_eval_error") is not None))
        record["my_metric"] = 2.5  # a caller's measurement lands in metrics.jsonl

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        self.events.append(("epoch_end", record["epoch"]))

    def on_fit_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        self.events.append(("fit_end", summary["status"]))

    def on_close(self, trainer: Any) -> None:
        self.events.append("close")


def test_hooks_run_in_order_and_records_take_callback_fields(tmp_path: Path) -> None:
    rec = Recorder()
    cfg = tiny_config("train.epochs=2", "train.reliability_diagram=false")
    Trainer(cfg, tmp_path / "run", callbacks=[rec], quiet=True).fit()
    steps = [e for e in rec.events if e not in ("fit_start", "close")]
    assert rec.events[0] == "fit_start" and rec.events[-1] == "close"
    assert steps == [
        ("epoch_start", 0), ("eval", 40), ("record", 1, False, False), ("epoch_end", 1),
        ("epoch_start", 1), ("eval", 40), ("record", 2, True, True), ("epoch_end", 2),
        ("fit_end", "complete"),
    ]  # fmt: skip
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["my_metric"] for r in lines] == [2.5, 2.5]
    # the timing fields stay last (the file's format): callbacks' fields come before them
    assert list(lines[-1])[-5:] == ["my_metric", "epoch_time_s", "eval_time_s", "images_per_s", "wall_time_s"]


def test_default_callbacks_follow_the_config() -> None:
    kinds = [type(c) for c in default_callbacks(tiny_config(), is_main=True, quiet=False)]
    assert kinds == [TrainEval, ReliabilityDiagram, Progress]
    cfg = tiny_config("train.reliability_diagram=false", "train.tensorboard=true")
    assert [type(c) for c in default_callbacks(cfg, is_main=True, quiet=True)] == [TrainEval, TensorBoard]
    assert [type(c) for c in default_callbacks(cfg, is_main=False, quiet=False)] == [TrainEval, TensorBoard]


def test_train_eval_periodic_fields_and_labels(tmp_path: Path) -> None:
    cfg = tiny_config("train.epochs=3", "train.train_eval_every=2", "train.reliability_diagram=false")
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    trainer.fit()
    measured = [r["train_eval_error"] is not None for r in trainer.records]
    assert measured == [False, True, True]  # epoch 2 (every 2) and the last one
    assert all(set(TRAIN_EVAL_FIELDS) <= set(r) for r in trainer.records)  # None fields where not measured
    labels = train_labels(trainer.data)
    assert labels is not None and int(labels.replaced.sum()) == 0 and labels.num_classes == trainer.data.num_classes
    assert TrainEval().on_epoch_record(trainer, {"epoch": 1}, final=False) is None  # nothing before on_fit_start


def test_reliability_diagram_written_at_the_end(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config("train.epochs=1"), tmp_path / "run", quiet=True)
    summary = trainer.fit()
    bins = json.loads((tmp_path / "run" / "reliability.json").read_text())
    assert bins["epoch"] == 1 and bins["name"] == "tiny" and bins["n"] == 40
    assert bins["ece"] == pytest.approx(summary["last_test_ece"])
    assert sum(bins["count"]) == 40 and len(bins["edges"]) == 16


def test_progress_prints_lines_without_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config("train.epochs=1", "train.log_every=2", "train.reliability_diagram=false")
    Trainer(cfg, tmp_path / "run").fit()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("vicinal: training 'tiny' seed 3 for 1 epochs x 5 steps on cpu (world size 1)")
    assert [x.split(" loss")[0] for x in err[1:3]] == ["epoch 1/1 step 2/5", "epoch 1/1 step 4/5"]
    assert err[3].startswith("epoch 1: train loss ") and "un-augmented train err all " not in err[3]
    assert " un-augmented train err real " in err[3]


def test_epoch_line() -> None:
    r = {"epoch": 3, "train_loss": 0.5, "train_error": 12.0, "lr": 0.1, "epoch_time_s": 2.0, "images_per_s": 100.0}
    assert epoch_line(r) == "epoch 3: train loss 0.5000 err 12.00% lr 0.1 2.0s 100 img/s"
    r.update(test_error=20.0, train_eval_error=5.0, train_error_real=4.0, train_error_corrupted=None)
    assert (
        epoch_line(r)
        == "epoch 3: train loss 0.5000 err 12.00% test err 20.00% un-augmented train err real 4.00% lr 0.1 2.0s 100 img/s"
    )
