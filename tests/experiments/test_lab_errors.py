"""One line where one was promised, a traceback where there is a bug (issue #11, items 14-15), and the training
error on un-augmented images measured by every classification run (issue #13)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lab_helpers import SYNTHETIC, one_thread, register_synthetic, tiny_config  # noqa: F401 (one_thread: autouse)

from vicinal.experiments.callbacks import train_labels
from vicinal.experiments.checkpoint import CheckpointError
from vicinal.experiments.cli import UsageError, main
from vicinal.experiments.config import ConfigError
from vicinal.experiments.data import TensorSplits, build_data, register_dataset
from vicinal.experiments.errors import DataError, LabError, LabWarning
from vicinal.experiments.paths import PROJECT_ROOT, configs_dir
from vicinal.experiments.trainer import TIMING_FIELDS, TRAIN_EVAL_FIELDS, RunError, Trainer

DEMO = configs_dir() / "demo" / "digits.yaml"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register_synthetic()
    monkeypatch.chdir(tmp_path)


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vicinal: error: ") and match in lines[0], err


def env() -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1")
    e["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "src"), e.get("PYTHONPATH", "")])
    return e


# -- item 14 -------------------------------------------------------------------------------------------------------
def _jpeg(seed: int) -> bytes:
    from PIL import Image

    arr = (np.random.default_rng(seed).random((8, 8, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def _image_tree(root: Path) -> None:
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                (root / split / cls / f"{i}.jpg").write_bytes(_jpeg(10 * c + i))


@pytest.mark.parametrize("broken", ["truncated", "text"])
def test_an_undecodable_image_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, broken: str) -> None:
    _image_tree(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "train" / "dog" / "bad.jpg"
    bad.write_bytes(_jpeg(99)[:200] if broken == "truncated" else b"not an image at all\n")
    argv = ["train", str(DEMO), "--set", "data.name=imagefolder_memory", f"data.root={tmp_path / 'imgs'}",
            "data.kwargs={progress: false, cache: false}"]  # fmt: skip
    one_line(capsys, argv, f"image file '{bad}' cannot be decoded")


def test_a_corrupt_decoded_cache_is_named_and_rebuilt(tmp_path: Path) -> None:
    from vicinal.experiments.data.images import load_image_folder_split

    _image_tree(tmp_path / "imgs")
    first = load_image_folder_split(tmp_path / "imgs" / "train", progress=False)
    assert first.cache_path is not None and first.cache_path.is_file()
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:100])  # truncated: UnpicklingError / EOFError
    with pytest.warns(LabWarning, match=f"decoded-images cache '{first.cache_path}' is unreadable"):
        again = load_image_folder_split(tmp_path / "imgs" / "train", progress=False)
    assert not again.cache_hit and torch.equal(again.x, first.x)
    third = load_image_folder_split(tmp_path / "imgs" / "train", progress=False)  # rebuilt: read from it
    assert third.cache_hit and torch.equal(third.x, first.x)


def test_more_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    Path("afile").write_text("x")
    one_line(capsys, ["train", str(DEMO), "--out", "afile"], "--out 'afile' is not a folder")
    one_line(capsys, ["report", str(tmp_path), "--out", "afile/rep"], "--out 'afile/rep' is not a folder ('afile' is")
    one_line(capsys, ["train", str(DEMO), "--set", "train.device=mps"], "train.device is 'mps' but MPS")
    assert not Path("runs").exists()
    for device, match in (("gpu", "--device must be one of cpu, cuda, cuda:N, mps, got 'gpu'"), ("mps", "MPS")):
        one_line(capsys, ["attack", str(tmp_path), "--attack", "fgsm", "--device", device], match)
    Path("cfgdir").mkdir()
    one_line(capsys, ["train", "cfgdir"], "config file 'cfgdir' is a folder, not a YAML file")
    one_line(capsys, ["train", "--resume", "afile"], "run folder 'afile' is not a folder")


def test_a_corrupt_summary_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "t" / "cifar10-preact_resnet18-erm-cpu" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    (run / "summary.json").write_text("{'status': 'complete'}")
    match = f"'{run / 'summary.json'}' is not valid JSON (Expecting property name enclosed in double quotes"
    one_line(capsys, ["report", str(tmp_path / "t"), "--out", "rep"], match)
    one_line(capsys, ["reproduce", "cifar", "--scale", "cpu", "--out", str(tmp_path / "t"), "--dry-run"], match)


def test_short_classes_of_a_subset_are_warned_about() -> None:
    name = "imbalanced_for_test"
    if name not in __import__("vicinal.experiments.data", fromlist=["DATASETS"]).DATASETS:

        @register_dataset(name)
        def _imbalanced(req: object) -> TensorSplits:
            y = torch.tensor([0] * 60 + [1] * 12 + [2] * 60)
            x = torch.zeros(len(y), 4)
            return TensorSplits(train=(x, y), test=(x, y), num_classes=3, mean=(0.0,), std=(1.0,),
                                info={"classes": ["ant", "bee", "cow"]})  # fmt: skip

    with pytest.warns(
        LabWarning, match=r"data.subset_per_class=50 but 1 training class\(es\) .*class 1 \(bee\) has 12"
    ):
        bundle = build_data(name, subset_per_class=50)
    assert bundle.train_dataset_y.bincount().tolist() == [50, 12, 50]


def test_the_warning_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    argv = ["train", str(DEMO), "--set", "data.subset_per_class=150", "train.max_steps=1", "--out", str(tmp_path),
            "--quiet"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "vicinal", *argv], capture_output=True, text=True, env=env(),
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "subset_per_class" in line]
    assert len(warning) == 1 and warning[0].startswith("vicinal: warning: data.subset_per_class=150 but 10 training")


# -- item 15 -------------------------------------------------------------------------------------------------------
def test_user_errors_share_one_base_class() -> None:
    for cls in (ConfigError, CheckpointError, RunError, DataError, UsageError):
        assert issubclass(cls, LabError)
    for cls in (ConfigError, CheckpointError, RunError, DataError):
        assert issubclass(cls, ValueError)  # what callers of the Python API catch


def test_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    script = (
        "import sys; import vicinal.experiments.trainer as t\n"
        "def bug(*a, **k): raise ValueError('a bug, not bad input')\n"
        "t.summarize = bug\n"
        "from vicinal.experiments.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    argv = ["train", str(DEMO), "--set", "train.max_steps=1", "--out", str(tmp_path), "--quiet"]
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env(),
                          timeout=300)  # fmt: skip
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().endswith("ValueError: a bug, not bad input")


def test_config_mistakes_caught_by_the_library_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    one_line(capsys, ["train", str(DEMO), "--set", "data.kwargs={sed: 1}"], "dataset 'digits': ")
    one_line(capsys, ["train", str(DEMO), "--set", "data.kwargs={sed: 1}"], "(check data.kwargs)")
    one_line(capsys, ["train", str(DEMO), "--set", "mix.variant=mixup", "mix.kwargs={nope: 1}"],
             "the mix section of config 'demo-digits' is rejected by vicinal")  # fmt: skip
    one_line(capsys, ["train", str(DEMO), "--set", "model.kwargs.widht=3"], "got unexpected keyword argument(s) widht")


# -- issue #13: every classification run measures its un-augmented training error after the last epoch ---------
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


def test_ctrl_c_while_torch_is_imported_exits_130_with_one_line() -> None:
    # The console script's module lives outside the package, so a SIGINT that lands while `import vicinal` (torch)
    # runs is caught too; one that lands later is caught by main. Either way: one line, exit code 130.
    script = Path(sys.executable).parent / "vicinal"
    if not script.is_file():
        pytest.skip("the vicinal console script is not installed beside this interpreter")
    if not Path("/proc/self/maps").is_file():
        pytest.skip("needs /proc to see when the child is importing torch")
    proc = subprocess.Popen([str(script), "configs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until torch's library is mapped: the launcher is then running (its handler installed before the import),
    # whatever the machine's load; a signal during Python's own start-up, before any of our code, is out of reach.
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal arrived")
    assert proc.returncode == 130, err
    assert err == "vicinal: interrupted\n" and "Traceback" not in err
