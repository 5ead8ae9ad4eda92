"""The trainer's extras as callbacks (experiments/callbacks.py) and the hook order the trainer follows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests.experiments.lab_helpers import (  # noqa: F401 (one_thread: autouse fixture)
    SYNTHETIC,
    break_writer,
    one_thread,
    tiny_config,
)
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
from vicinal.experiments.config import apply_overrides
from vicinal.experiments.errors import LabWarning
from vicinal.experiments.evaluation import TRAIN_EVAL_FIELDS
from vicinal.experiments.trainer import TIMING_FIELDS, Trainer


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
    # a run stopped after its last checkpoint (a signal in the final evaluation, a kill while the diagram was
    # drawn) is resumed at its end: nothing is trained or evaluated there, and the diagram was never written
    for name in ("reliability.json", "reliability.png"):
        (tmp_path / "run" / name).unlink()
    Trainer(tiny_config("train.epochs=1"), tmp_path / "run", resume=True, quiet=True).fit()
    assert json.loads((tmp_path / "run" / "reliability.json").read_text()) == bins  # the same model, the same sums
    assert (tmp_path / "run" / "reliability.png").stat().st_size > 1000


def test_the_reliability_diagram_names_the_last_epoch(tmp_path: Path) -> None:
    Trainer(tiny_config("train.epochs=2", "train.eval_every=1"), tmp_path / "run", quiet=True).fit()
    assert json.loads((tmp_path / "run" / "reliability.json").read_text())["epoch"] == 2


def test_progress_prints_lines_without_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tiny_config("train.epochs=1", "train.log_every=2", "train.reliability_diagram=false")
    Trainer(cfg, tmp_path / "run").fit()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("vicinal: training 'tiny' seed 3 for 1 epochs x 5 steps on cpu (world size 1)")
    assert [x.split(" loss")[0] for x in err[1:3]] == ["epoch 1/1 step 2/5", "epoch 1/1 step 4/5"]
    assert err[3].startswith("epoch 1: train loss ") and re.search(r" un-augmented train err \d+\.\d\d% lr ", err[3])


def test_progress_says_where_a_resume_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a resume of a finished run printed "training ... for 1 epochs", then "complete", and trained nothing
    cfg = tiny_config("train.epochs=2", "train.max_steps=7", "train.reliability_diagram=false")
    Trainer(cfg, tmp_path / "run", quiet=True).fit()  # stops at step 7 of 10 (max_steps)
    capsys.readouterr()
    with pytest.warns(LabWarning, match=r"with train.max_steps 7 -> None$"):  # the resume's own note of the change
        Trainer(tiny_config("train.epochs=2", "train.reliability_diagram=false"), tmp_path / "run", resume=True).fit()
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("vicinal: training 'tiny' seed 3 for 2 epochs x 5 steps, resumed at step 7, on cpu ")
    Trainer(tiny_config("train.epochs=2", "train.reliability_diagram=false"), tmp_path / "run", resume=True).fit()
    first = capsys.readouterr().err.splitlines()[0]
    assert "for 2 epochs x 5 steps, resumed at step 10 (nothing left to train), on cpu " in first
    # stopped by its max_steps and resumed with the same config: nothing left either
    Trainer(cfg, tmp_path / "again", quiet=True).fit()
    capsys.readouterr()
    Trainer(cfg, tmp_path / "again", resume=True).fit()
    assert ", resumed at step 7 (nothing left to train), on cpu " in capsys.readouterr().err.splitlines()[0]


def test_epoch_line() -> None:
    r = {"epoch": 3, "train_loss": 0.5, "train_error": 12.0, "lr": 0.1, "epoch_time_s": 2.0, "images_per_s": 100.0}
    assert epoch_line(r) == "epoch 3: train loss 0.5000 err 12.00% lr 0.1 2.0s 100 img/s"
    r.update(test_error=20.0, train_eval_error=5.0, train_error_real=4.0, train_error_corrupted=None)
    assert (
        epoch_line(r)
        == "epoch 3: train loss 0.5000 err 12.00% test err 20.00% un-augmented train err 4.00% lr 0.1 2.0s 100 img/s"
    )
    r.update(train_error_corrupted=30.0)  # Table 2's columns, each named (the line said "real" and nothing more)
    assert epoch_line(r) == (
        "epoch 3: train loss 0.5000 err 12.00% test err 20.00% un-augmented train err real labels 4.00%, corrupted "
        "labels 30.00% lr 0.1 2.0s 100 img/s"
    )
    r.update(train_error_real=None, train_error_corrupted=None)  # no breakdown: the error on all training labels
    assert " un-augmented train err 5.00% lr " in epoch_line(r)


def test_trainer_records_table2_columns(tmp_path: Path) -> None:
    cfg = tiny_config("train.epochs=2", "data.corrupt_fraction=0.5", "data.corrupt_seed=4", "mix.variant=erm")
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    summary = trainer.fit()
    run = tmp_path / "run"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["train_error_corrupted"] is None  # only after the last epoch by default
    last = records[-1]
    # Recompute independently from the saved per-sample labels and the final model on un-augmented images.
    saved = torch.load(run / "corrupted_labels.pt", weights_only=True)
    assert saved["n_replaced"] == 80 and torch.equal(saved["noisy"], trainer.data.train_dataset_y)
    x = trainer.data.train_dataset_x.float() / 255  # (160, 3, 8, 8) in dataset order
    trainer.model.eval()
    with torch.no_grad():
        pred = trainer.model(x).argmax(dim=1)
    kept, rep = ~saved["replaced"], saved["replaced"]
    real = 100.0 * float((pred[kept] != saved["true"][kept]).double().mean())
    corrupted = 100.0 * float((pred[rep] != saved["noisy"][rep]).double().mean())
    assert last["train_error_real"] == pytest.approx(real)
    assert last["train_error_corrupted"] == pytest.approx(corrupted)
    assert summary["last_train_error_real"] == pytest.approx(real)
    assert summary["last_train_error_corrupted"] == pytest.approx(corrupted)
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["corruption"]["fraction"] == 0.5 and prov["corruption"]["seed"] == 4
    # The reliability diagram: bins of the last evaluation, whose ECE is the summary's.
    bins = json.loads((run / "reliability.json").read_text())
    assert bins["ece"] == pytest.approx(summary["last_test_ece"]) and sum(bins["count"]) == bins["n"] == 40
    assert (run / "reliability.png").stat().st_size > 1000


def test_corrupted_labels_that_fail_half_way_leave_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "corrupted_labels.pt").write_bytes(b"previous")  # not a run's result: the folder may start a run
    break_writer(monkeypatch, torch, "save", 1)
    cfg = tiny_config("train.epochs=1", "data.corrupt_fraction=0.5", "mix.variant=erm")
    with pytest.raises(OSError, match="^disk full$"):
        Trainer(cfg, run, quiet=True).fit()
    assert (run / "corrupted_labels.pt").read_bytes() == b"previous"
    assert not list(run.glob(".*.tmp"))


def test_train_eval_every_on_a_clean_run(tmp_path: Path) -> None:
    cfg = apply_overrides(
        tiny_config("train.epochs=2"), ["train.train_eval_every=1", "train.reliability_diagram=false"]
    )
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    trainer.fit()
    r = trainer.records
    assert all(x["train_eval_error"] is not None for x in r)
    assert r[-1]["train_error_corrupted"] is None and r[-1]["train_error_real"] == r[-1]["train_eval_error"]
    assert not (tmp_path / "run" / "reliability.png").exists()


def test_every_run_measures_its_training_error_and_nothing_else_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config("train.epochs=2", "train.reliability_diagram=false")
    with_eval = Trainer(cfg, tmp_path / "a", quiet=True)
    summary = with_eval.fit()
    first, last = with_eval.records
    assert last["train_eval_error"] is not None and last["train_error_real"] == last["train_eval_error"]
    assert "train_eval_error" not in first  # the records of other epochs keep their format
    assert summary["last_train_eval_error"] == last["train_eval_error"] and summary["train_eval_epoch"] == 2
    # the measurement switched off (TrainEval measures nothing when the training labels are not class labels)
    monkeypatch.setattr("vicinal.experiments.callbacks.train_labels", lambda data: None)
    without = Trainer(cfg, tmp_path / "b", quiet=True)
    without.fit()
    skip = {*TIMING_FIELDS, *TRAIN_EVAL_FIELDS}
    for a, b in zip(with_eval.records, without.records, strict=True):
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    for (k, p), q in zip(with_eval.model.state_dict().items(), without.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    ck_a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    ck_b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert torch.equal(ck_a["rng"]["torch"], ck_b["rng"]["torch"])
    assert torch.equal(ck_a["mix_generator"], ck_b["mix_generator"])
    assert json.loads((tmp_path / "b" / "summary.json").read_text()).get("last_train_eval_error") is None


def test_runs_without_integer_labels_measure_nothing(tmp_path: Path) -> None:
    cfg = tiny_config("train.epochs=1", "train.reliability_diagram=false", f"data.name={SYNTHETIC}")
    trainer = Trainer(cfg, tmp_path / "r", quiet=True)
    trainer.fit()
    trainer.data.train_dataset_y = trainer.data.train_dataset_y.float()  # e.g. regression targets
    assert train_labels(trainer.data) is None


def test_train_eval_every_0_never_measures_the_training_set(tmp_path: Path) -> None:
    # every run ended with a pass over the whole training set, a throughput probe on ImageNet too (1.28 M images)
    cfg = tiny_config("train.epochs=2", "train.train_eval_every=0", "train.reliability_diagram=false")
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    summary = trainer.fit()
    assert all("train_eval_error" not in r for r in trainer.records) and summary.get("last_train_eval_error") is None


def test_train_labels_are_integer_class_labels_only() -> None:
    def data(y: Any) -> SimpleNamespace:
        return SimpleNamespace(corruption=None, train_dataset_y=y, num_classes=3)

    for y in (torch.tensor([True, False, True]), torch.tensor([[0, 1, 2]]), torch.tensor([0.0, 1.0, 2.0]), None):
        assert train_labels(data(y)) is None, y
    labels = train_labels(data([2, 0, 1]))  # ImageFolder loaders may hold a list
    assert labels is not None and labels.true.dtype == torch.int64 and labels.true.tolist() == [2, 0, 1]
    assert torch.equal(labels.noisy, labels.true) and not labels.replaced.any() and labels.num_classes == 3


def test_tensorboard_writes_the_numeric_fields_of_a_record_only() -> None:
    class Writer:
        def __init__(self) -> None:
            self.scalars: list[tuple[str, Any, int]] = []

        def add_scalar(self, key: str, value: Any, step: int) -> None:
            self.scalars.append((key, value, step))

    tb = TensorBoard()
    tb.writer = writer = Writer()
    record = {"epoch": 3, "train_loss": 0.5, "train_n": 40, "mixing": True, "test_error": None, "partial_epoch": False}
    tb.on_epoch_end(None, record)  # type: ignore[arg-type]
    assert writer.scalars == [("epoch", 3, 3), ("train_loss", 0.5, 3), ("train_n", 40, 3)]
