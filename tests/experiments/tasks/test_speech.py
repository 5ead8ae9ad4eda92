"""The ``speech`` table (Table 4 left): its configs match the paper, its cpu scale differs only where documented,
and a tiny Speech Commands tree (made from FSDD files resampled to 16 kHz) trains through the one trainer with
the paper's config, validation error included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal

from tests.experiments.lab_helpers import one_thread  # noqa: F401 - autouse fixture: torch on one thread for this module
from vicinal.experiments.config import diff_configs, load_config
from vicinal.experiments.tasks import TABLES, speech
from vicinal.experiments.tasks.speech import PAPER_SPEECH, ROWS, SPEECH, speech_configs
from vicinal.experiments.trainer import Trainer, lr_at

WORDS = ("one", "two", "zero")  # FSDD digits 1, 2, 0; alphabetical order = class order of the loader
DIGIT = {"zero": 0, "one": 1, "two": 2}


def _config(scale: str, name: str) -> Path:
    (path,) = [p for p in speech_configs(scale) if p.stem == name]
    return path


def _by_row(scale: str) -> dict[str, object]:
    cfgs = {}
    for path in speech_configs(scale):
        cfg = load_config(path)
        cfgs[cfg.row] = cfg
    return cfgs


def test_table_is_registered_with_every_row() -> None:
    assert TABLES["speech"] is SPEECH
    assert SPEECH.default_seeds == {"cpu": 3, "paper": 1}
    assert set(PAPER_SPEECH) == set(ROWS) and len(ROWS) == 6
    for scale in ("cpu", "paper"):
        assert sorted(_by_row(scale)) == sorted(ROWS)
    with pytest.raises(ValueError, match="unknown scale 'gpu'; known scales: cpu, paper"):
        speech_configs("gpu")


def test_module_doc_states_the_cpu_schedule_the_configs_run() -> None:
    """The docstring's CPU schedule is the one the cpu configs train (it once said 9 epochs after they ran 30)."""
    epochs = {load_config(p).train.epochs for p in speech_configs("cpu")}
    assert epochs == {30}
    doc = " ".join((speech.__doc__ or "").split())
    assert "narrower models and the paper's 30-epoch schedule" in doc and "9-epoch" not in doc


def test_paper_configs_hold_the_paper_settings() -> None:
    for row, cfg in _by_row("paper").items():
        model, method = row.split("/")
        assert cfg.table == "speech" and cfg.name == f"speech-{model}-{method}"
        assert (cfg.data.name, cfg.data.kwargs, cfg.data.batch_size) == ("speech_commands", {"version": "v0.01"}, 100)
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 3e-3, 0.0)
        assert (cfg.schedule.name, cfg.schedule.step_size, cfg.schedule.gamma) == ("step", 10, 0.1)
        assert cfg.train.epochs == 30
        assert cfg.model.name == {"lenet": "lenet_speech", "vgg11": "vgg11_speech"}[model]
        if method == "erm":
            assert cfg.mix.variant == "erm"
        else:
            assert (cfg.mix.variant, cfg.mix.alpha, cfg.mix.warmup_epochs) == ("mixup", float(method[5:]), 5)
        # lr 3e-3 divided by 10 every 10 epochs (10 steps per epoch here)
        lrs = [
            lr_at(s, schedule=cfg.schedule, base_lr=cfg.optim.lr, epochs=30, steps_per_epoch=10)
            for s in (99, 100, 200, 299)
        ]
        assert lrs == pytest.approx([3e-3, 3e-4, 3e-5, 3e-5], rel=1e-12)


def test_cpu_configs_differ_from_paper_only_where_documented() -> None:
    paper, cpu = _by_row("paper"), _by_row("cpu")
    for row, c in cpu.items():
        # Since the regime rule the cpu scale keeps the paper's schedule (30 epochs, /10 every 10, 5 warm-up
        # epochs) and only adds the measurement of its training error.
        allowed = {"name", "notes", "data.name", "data.eval_batch_size", "data.kwargs", "model.kwargs"}
        allowed |= {"train.threads", "train.train_eval_every"}
        allowed |= {"data.global_batch_size"}  # the paper's batch 100 of one process is checked at paper scale
        assert (paper[row].data.global_batch_size, paper[row].data.batch_size) == (100, 100)
        assert set(diff_configs(paper[row], c)) <= allowed, row
        assert (c.data.name, c.train.epochs, c.schedule.step_size, c.train.threads) == ("fsdd", 30, 10, 1)
        assert c.mix.warmup_epochs == (5 if c.mix.variant == "mixup" else 0)
        assert c.model.kwargs == (
            {"channels": 8, "hidden": 128, "dropout": 0.5} if row.startswith("lenet") else {"width_divisor": 16}
        )


@pytest.fixture(scope="module")
def commands_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech Commands layout from 12 FSDD files: 3 words x 4 takes, 16 kHz int16, take 0 test, take 1 val."""
    from tests.experiments.conftest import require_data_path

    fsdd = require_data_path("fsdd") / "recordings"
    root = tmp_path_factory.mktemp("speech_commands")
    val, test = [], []
    for word in WORDS:
        (root / word).mkdir()
        for take in range(4):
            rate, wave = scipy.io.wavfile.read(fsdd / f"{DIGIT[word]}_jackson_{take}.wav")
            assert rate == 8000
            up = scipy.signal.resample_poly(wave.astype(np.float64), 2, 1)  # 8 kHz -> 16 kHz
            name = f"jackson_nohash_{take}.wav"
            scipy.io.wavfile.write(root / word / name, 16000, np.clip(up, -32768, 32767).astype(np.int16))
            (test if take == 0 else val if take == 1 else []).append(f"{word}/{name}")
    (root / "_background_noise_").mkdir()  # excluded by the loader
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


def test_two_steps_of_the_paper_config_on_a_tiny_speech_commands_tree(commands_tree: Path, tmp_path: Path) -> None:
    cfg = load_config(
        _config("paper", "speech-lenet-mixup0.2"),
        [
            f"data.root={commands_tree}",
            "data.kwargs.version=null",
            "data.batch_size=4",
            "data.global_batch_size=4",  # the paper's 100, shrunk with the batch
            "data.eval_batch_size=8",
            "train.max_steps=2",
            "train.device=cpu",
        ],  # fmt: skip
    )
    assert cfg.row == "lenet/mixup0.2"
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    summary = trainer.fit()
    info = trainer.data.info
    assert info["classes"] == list(WORDS) and info["sample_rate"] == 16000 and info["version"] == "custom"
    assert info["counts"] == {"train": 6, "val": 3, "test": 3}
    assert tuple(trainer.data.input_shape) == (1, 160, 101)
    assert summary["status"] == "max_steps" and trainer.global_step == 2
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert record["train_n"] == 6 and record["test_n"] == 3 and record["val_n"] == 3
    assert record["mixing"] is False  # epoch 0 is inside the 5 warm-up epochs
    assert 0.0 <= record["val_error"] <= 100.0 and record["val_top5_error"] == 0.0  # 3 classes: top-3 = all
    assert record["lr"] == 3e-3
    assert summary["last_val_error"] == record["val_error"]


def test_mixing_starts_after_the_warmup_epochs(commands_tree: Path, tmp_path: Path) -> None:
    # batch 6 = one step per epoch; warm-up 2 epochs -> epochs 0 and 1 unmixed, epoch 2 mixed
    cfg = load_config(
        _config("paper", "speech-lenet-mixup0.1"),
        [
            f"data.root={commands_tree}",
            "data.kwargs.version=null",
            "data.batch_size=6",
            "data.global_batch_size=6",
            "train.epochs=3",
            "mix.warmup_epochs=2",
            "train.device=cpu",
            "model.kwargs.hidden=16",
        ],  # fmt: skip
    )
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    trainer.fit()
    assert [r["mixing"] for r in trainer.records] == [False, False, True]
    assert all(r["val_n"] == 3 for r in trainer.records)  # the trainer evaluates the validation split too


def test_reproduce_plans_the_cpu_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vicinal.experiments.cli import main

    assert main(["reproduce", "speech", "--scale", "cpu", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dry run: 18 of 18 runs would be trained" in out
    assert "speech-vgg11-mixup0.2-cpu seed 2: vgg11_speech on fsdd, 30 epochs, mix mixup" in out
