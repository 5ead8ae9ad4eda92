"""The ``vicinal`` command: one-line user errors (exit 2), train / reproduce / report / demo end to end, a smoke
test of every paper-scale config, and SIGTERM / SIGKILL in a real subprocess."""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import vicinal
from tests.experiments.data.data_helpers import small_jpeg, write_two_class_tree
from tests.experiments.lab_helpers import (  # noqa: F401 (one_thread: autouse fixture)
    SYNTHETIC,
    one_thread,
    plant_killed_writes,
    register_synthetic,
)
from vicinal.experiments.checkpoint import load_checkpoint, save_checkpoint
from vicinal.experiments.cli import _check_out, main
from vicinal.experiments.errors import LabWarning
from vicinal.experiments.paths import PROJECT_ROOT, configs_dir
from vicinal.experiments.runs import check_out_folder, claim
from vicinal.experiments.tasks import gan, uci
from vicinal.experiments.tasks.cifar import cifar_configs

CONFIGS = configs_dir()
DEMO = CONFIGS / "demo" / "digits.yaml"
TINY = [
    f"data.name={SYNTHETIC}",
    "data.kwargs={n_per_class: 8, n_test_per_class: 2}",
    "data.subset_per_class=null",
    "data.batch_size=16",
    "model.name=preact_resnet18",
    "model.kwargs={width: 4}",
    "train.epochs=2",
]


@pytest.fixture(autouse=True)
def synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register_synthetic()
    monkeypatch.chdir(tmp_path)  # commands without --out write runs/ into the working directory


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, match: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vicinal: error: ") and "Traceback" not in err
    assert match in lines[0], lines[0]


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, match)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train", "missing.yaml"], "config file 'missing.yaml' does not exist"),
        (
            ["train", str(DEMO), "--set", "optim.lrr=1"],
            "unknown config key 'optim.lrr' (did you mean 'optim.lr'?); valid keys in 'optim': name, lr",
        ),
        (["train", str(DEMO), "--set", "train.epochs=abc"], "config key 'train.epochs' expects int, got str 'abc'"),
        (["train", str(DEMO), "--set", "model.name=nope"], "unknown model 'nope'"),
        (["train", str(DEMO), "--set", "data.name=nope"], "unknown dataset 'nope'"),
        (
            ["train", str(DEMO), "--set", "data.kwargs.test_fraction=abc"],
            "test_fraction must be a number in (0, 1), got 'abc'",
        ),
        (
            ["train", str(DEMO), "--set", "model.kwargs.widht=3"],
            "model 'digits_cnn' got unexpected keyword argument(s) widht",
        ),
        (["train"], "train needs a CONFIG.yaml (or --resume RUN_DIR)"),
        (["train", "--resume", "no/such/run"], "run folder 'no/such/run' does not exist"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (
            ["reproduce", "nope", "--scale", "cpu"],
            "unknown table 'nope'; known tables: ablation, adversarial, cifar, corrupted-labels, ",
        ),
        (["reproduce", "cifar", "--scale", "huge"], "argument --scale: invalid choice: 'huge'"),
        (["reproduce", "cifar"], "the following arguments are required: --scale"),
        (
            ["reproduce", "cifar", "--scale", "cpu", "--shard", "2/2"],
            "argument --shard: expected 0 <= I < N, got '2/2'",
        ),
        (
            ["reproduce", "cifar", "--scale", "cpu", "--shard", "a/2"],
            "argument --shard: expected I/N with integers 0 <= I < N, e.g. 0/2; got 'a/2'",
        ),
        (
            ["reproduce", "gan", "--scale", "cpu", "--shard", "0/2"],
            "--shard: table 'gan' trains as one batched job and cannot be split",
        ),
        (["report", "no/such/dir", "--out", "x"], "'no/such/dir' does not exist"),
        (["demo", "--seeds", "0"], "--seeds must be in [1, 10000], got 0"),
    ],
)
def test_user_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, match)
    assert not Path("runs").exists()  # a failed start leaves no empty run folder behind


def test_train_then_bad_checkpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "train", str(DEMO), "--set", *TINY, "--out", str(tmp_path), "--quiet")
    assert code == 0
    run = tmp_path / "demo-digits" / "seed0"
    assert out.startswith("vicinal: complete: test error ") and str(run) in out
    code, _, err = run_cli(capsys, "train", str(DEMO), "--set", *TINY, "--out", str(tmp_path))
    # a finished run: no advice to resume it (that re-finished it, whatever config the user asked for)
    assert_one_line_error(code, err, f"run folder '{run}' already holds a finished run; choose another --out or name")
    code, _, err = run_cli(capsys, "train", "--resume", str(run.parent))  # the folder above the run folder
    assert_one_line_error(
        code, err, f"'{run.parent}' is not a run folder (no config.yaml); it holds the run folders seed0: resume one"
    )
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--set", "optim.lr=0.5")
    assert_one_line_error(
        code,
        err,
        "was written by a different config (differs at optim.lr); only notes, data.root, data.eval_batch_size",
    )
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--out", str(tmp_path / "elsewhere"))
    assert_one_line_error(code, err, f"--out places a new run; a resumed run continues in its own folder ('{run}')")
    # a folder another live process trains is refused, fresh or resumed (both wrote one folder, interleaving their
    # metrics and overwriting each other's results)
    held = claim(run)
    assert held is not None
    try:
        for argv, advice in (
            (["--resume", str(run)], "; wait for it to finish (delete"),  # --out is not an option of a resume
            ([str(DEMO), "--set", *TINY, "--out", str(tmp_path), "--overwrite"], "; wait for it to finish or choose"),
        ):
            code, _, err = run_cli(capsys, "train", *argv)
            assert_one_line_error(code, err, f"'{run}' is being written by another process (host and pid: ")
            assert advice in err
    finally:
        held.release()
    # a refused fresh start leaves neither its folder nor its claim behind
    code, _, err = run_cli(capsys, "train", str(DEMO), "--set", *TINY, "optim.lr=-1", "--out", str(tmp_path / "new"))
    assert code == 2 and not (tmp_path / "new").exists()
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    code, _, err = run_cli(capsys, "train", "--resume", str(run))
    assert_one_line_error(code, err, f"checkpoint file '{run / 'checkpoint.pt'}' is unreadable")


def test_a_resume_sweeps_every_killed_write_of_its_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # only the checkpoint's temporary files were removed: a SIGKILL during the summary's or the metrics' write left
    # theirs in the folder for good, --overwrite included
    code, _, _ = run_cli(capsys, "train", str(DEMO), "--set", *TINY, "--out", str(tmp_path), "--quiet")
    run = tmp_path / "demo-digits" / "seed0"
    planted = plant_killed_writes(run, ["checkpoint.pt", "summary.json", "metrics.jsonl", "provenance.json"])
    code, _, _ = run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 0 and not [p for p in planted if p.exists()]


def test_files_that_are_not_utf8_are_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    code, _, err = run_cli(capsys, "train", str(bad))
    assert_one_line_error(code, err, f"config file '{bad}' is not UTF-8 text (byte 0xff at offset 0)")
    code, _, _ = run_cli(capsys, "train", str(DEMO), "--set", *TINY, "--out", str(tmp_path), "--quiet")
    run = tmp_path / "demo-digits" / "seed0"
    for name in ("summary.json", "metrics.jsonl"):
        original = (run / name).read_bytes()
        (run / name).write_bytes(b"\xff" + original)
        code, _, err = run_cli(capsys, "report", str(run), "--out", str(tmp_path / "rep"))
        assert_one_line_error(code, err, f"'{run / name}' is not UTF-8 text (byte 0xff at offset 0); repair or delete")
        (run / name).write_bytes(original)


def test_resume_keeps_the_runs_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`train CONFIG --resume RUN` once re-read CONFIG, putting back the epochs a --set had changed, silently."""
    tiny = [o for o in TINY if not o.startswith("train.epochs=")]
    code, _, _ = run_cli(
        capsys, "train", str(DEMO), "--set", *tiny, "train.epochs=1", "--out", str(tmp_path), "--quiet"
    )
    assert code == 0
    run = tmp_path / "demo-digits" / "seed0"
    code, _, err = run_cli(capsys, "train", str(DEMO), "--set", *tiny, "--resume", str(run))
    assert_one_line_error(
        code,
        err,
        f"{DEMO} differs from the config of the run in '{run}' at train.epochs (1 in the run, 12 in it); "
        f"resume with 'vicinal train --resume {run}'",
    )
    # what a resume may change is changed by --set, and said
    with pytest.warns(LabWarning, match=re.escape(f"resuming '{run}' with train.epochs 1 -> 2")):
        code, out, _ = run_cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=2", "--quiet")
    assert code == 0 and out.startswith("vicinal: complete:")
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_run_of_an_older_lab_with_options_it_never_read_resumes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the lab once accepted a cosine run's gamma and an ERM run's sigma (ignored); refusing them now must not strand
    # such a run: its config.yaml and its checkpoint's copy both hold them, and the resume reads them as trained
    tiny = [o for o in TINY if not o.startswith("train.epochs=")]
    code, _, _ = run_cli(
        capsys, "train", str(DEMO), "--set", *tiny, "train.epochs=1", "--out", str(tmp_path), "--quiet"
    )
    assert code == 0
    run = tmp_path / "demo-digits" / "seed0"
    text = (run / "config.yaml").read_text()
    assert "gamma: 0.1\n" in text and "sigma: 0.0\n" in text
    (run / "config.yaml").write_text(
        text.replace("gamma: 0.1\n", "gamma: 0.5\n").replace("sigma: 0.0\n", "sigma: 0.3\n")
    )
    state = load_checkpoint(run / "checkpoint.pt")
    state["config"]["schedule"]["gamma"], state["config"]["mix"]["sigma"] = 0.5, 0.3
    save_checkpoint(state, run / "checkpoint.pt")
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--quiet", "--set", "schedule.gamma=0.5")
    assert_one_line_error(code, err, "config key 'schedule.gamma' (0.5) is not used by schedule.name 'cosine'")
    with pytest.warns(LabWarning, match=r"with train\.epochs 1 -> 2$"):  # the resume says what it changed
        code, out, err = run_cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=2", "--quiet")
    assert code == 0 and out.startswith("vicinal: complete:"), (out, err)
    # the resumed run's config.yaml records what it trained with
    assert "gamma: 0.1\n" in (run / "config.yaml").read_text() and "sigma: 0.0\n" in (run / "config.yaml").read_text()


def test_report_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for seed in (0, 1):
        code, _, _ = run_cli(
            capsys, "train", str(DEMO), "--set", *TINY, f"train.seed={seed}", "--out", str(tmp_path / "r"), "--quiet"
        )
        assert code == 0
    code, out, _ = run_cli(capsys, "report", str(tmp_path / "r"), "--out", str(tmp_path / "rep"))
    assert code == 0 and "| demo-digits | 2 (0 1) | 2/2 |" in out
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"report.md", "report.csv", "runs.csv", "test_error.png"}


def test_report_names_the_document_options_without_document(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # they name the --document pages: without it they were ignored, even an invalid --name (helper-105)
    one_line(
        capsys,
        ["report", str(tmp_path), "--out", str(tmp_path / "o"), "--name", "x"],
        "--name applies to --document only",
    )
    one_line(
        capsys,
        ["report", str(tmp_path), "--out", str(tmp_path / "o"), "--tag", "--name", "a/b"],
        "--name and --tag apply to --document only",
    )


def test_report_document_and_figure_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, _ = run_cli(capsys, "train", str(DEMO), "--set", *TINY, "--out", str(tmp_path / "r"), "--quiet")
    assert code == 0
    mixup = ["name=demo-mixup", "mix.variant=mixup"]
    code, _, _ = run_cli(capsys, "train", str(DEMO), "--set", *TINY, *mixup, "--out", str(tmp_path / "m"), "--quiet")
    assert code == 0
    code, out, _ = run_cli(capsys, "figure", "fig3b", "--erm", str(tmp_path / "r"), "--mixup", str(tmp_path / "m"),
                           "--out", str(tmp_path / "fig"))  # fmt: skip
    assert code == 0 and (tmp_path / "fig" / "fig3b.png").is_file() and "fig3b.png" in out
    code, out, _ = run_cli(
        capsys, "report", "--document", str(tmp_path / "r"), str(tmp_path / "fig"), "--out", str(tmp_path / "doc")
    )
    assert code == 0
    html = (tmp_path / "doc" / "report.html").read_text()
    assert "data:image/png;base64," in html  # self-contained: figures embedded
    assert "demo-digits" in (tmp_path / "doc" / "report.md").read_text()


def test_runner_tables_plan_and_reject_overrides(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "reproduce", "gan", "--scale", "cpu", "--dry-run", "--out", str(tmp_path / "g"))
    assert code == 0 and f"dry run: '{tmp_path / 'g'}': 0 of 16 groups recorded; would train the other 16\n" in out
    assert not (tmp_path / "g").exists()
    code, _, err = run_cli(capsys, "reproduce", "gan", "--scale", "cpu", "--set", "train.epochs=1")
    assert code == 2 and err.strip() == "vicinal: error: table 'gan' is not made of config files: --set does not apply"


def paper_smoke_overrides(path: Path) -> list[str]:
    num_classes = 100 if path.name.startswith("cifar100") else 10
    model = {
        "preact_resnet18": ["model.kwargs.width=4"],
        "wrn28_10": ["model.kwargs.depth=10", "model.kwargs.widen=1"],
        "densenet_bc190": ["model.kwargs.depth=10", "model.kwargs.growth_rate=4"],
    }[path.stem.split("-")[1]]
    return [
        f"data.name={SYNTHETIC}",
        f"data.kwargs={{num_classes: {num_classes}, n_per_class: 2, n_test_per_class: 1}}",
        "data.batch_size=8",
        "data.global_batch_size=8",  # the paper's 128, shrunk with the batch (one process)
        "data.eval_batch_size=128",
        "train.max_steps=2",
        "train.device=cpu",
        *model,
    ]


def test_every_paper_config_runs_two_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    files = cifar_configs("paper")
    assert len(files) == 12
    for path in files:
        code, out, err = run_cli(
            capsys, "train", str(path), "--set", *paper_smoke_overrides(path), "--out", str(tmp_path), "--quiet"
        )
        assert code == 0, err
        summary = json.loads((tmp_path / path.stem / "seed0" / "summary.json").read_text())
        assert summary["status"] == "max_steps" and summary["row"] == summary["name"].replace("-", "/")
        ck = load_checkpoint(tmp_path / path.stem / "seed0" / "checkpoint.pt")
        assert ck["global_step"] == 2 and ck["config"]["train"]["epochs"] == 200


def test_a_paper_config_refuses_a_global_batch_it_was_not_written_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Finding 2 of the paper audit: a paper config's batch is the paper's global minibatch; training it at another
    (here batch 8 in one process; under torchrun, 128 x the process count) is refused in one line, before any file
    is written. The smoke test above also shrinks data.global_batch_size, and trains."""
    path = next(p for p in cifar_configs("paper") if p.stem == "cifar10-preact_resnet18-erm")
    smoke = [o for o in paper_smoke_overrides(path) if not o.startswith("data.global_batch_size=")]
    code, _, err = run_cli(capsys, "train", str(path), "--set", *smoke, "--out", str(tmp_path), "--quiet")
    assert_one_line_error(
        code,
        err,
        "data.batch_size 8 x 1 process is a global batch of 8, but this config was written for a global batch of 128 "
        "(data.global_batch_size: its learning rate assumes that batch, the paper's in a paper config): start 16 "
        "processes, or --set data.batch_size=128 for 1 process, or --set data.global_batch_size=null to train at "
        "another global batch on purpose",
    )
    assert not (tmp_path / path.stem).exists()


def test_reproduce_dry_run_and_a_tiny_cpu_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "reproduce", "cifar", "--scale", "paper", "--dry-run", "--out", str(tmp_path / "p"))
    assert code == 0 and out.count("[   new]") == 12 and "dry run: 12 of 12 runs would be trained" in out
    assert not (tmp_path / "p").exists()
    argv = ["reproduce", "cifar", "--scale", "cpu", "--seeds", "2", "--out", str(tmp_path / "c"), "--quiet", "--set",
            f"data.name={SYNTHETIC}", "data.kwargs={}", "data.subset_per_class=4", "model.kwargs.width=4",
            "train.epochs=1"]  # fmt: skip
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert "| cifar10-preact_resnet18-erm-cpu | 2 (0 1) | 2/2 |" in out
    # the paper's numbers stand beside the rows, marked: --set trained another recipe than the shipped rows
    differs = "(config differs: data.name, data.subset_per_class, model.kwargs.width, train.epochs) |"
    assert f"| 5.6 {differs}" in out and f"| 4.2 {differs}" in out
    assert (tmp_path / "c" / "report" / "report.md").is_file()
    code, out, _ = run_cli(capsys, *argv[:-1], "train.epochs=1", "--dry-run")
    assert code == 0 and out.count("[  done]") == 4
    # a config that now declares its global batch finds the runs of before done: the check changes no result
    code, out, _ = run_cli(capsys, *argv[:-1], "train.epochs=1", "data.global_batch_size=512", "--dry-run")
    assert code == 0 and out.count("[  done]") == 4
    # nor do where the data lies, logging or the evaluation batch (recipe.NOT_RESULT_KEYS): a rerun without the
    # first launch's --set data.root=... finds its runs done
    ran_elsewhere = ["data.root=/elsewhere", "train.log_every=3", "data.eval_batch_size=7"]
    code, out, _ = run_cli(capsys, *argv[:-1], "train.epochs=1", *ran_elsewhere, "--dry-run")
    assert code == 0 and out.count("[  done]") == 4
    code, _, err = run_cli(capsys, *argv[:-1], "train.epochs=1", "data.kwargs={'noise': 0.5}", "--dry-run")
    assert_one_line_error(code, err, "holds a finished run of a different config (differs at data.kwargs)")
    # Two shards over one output folder: the first leaves the report to the last one to finish.
    shard = [*argv[:6], "--out", str(tmp_path / "s"), *argv[8:]]
    code, out, _ = run_cli(capsys, *shard, "--shard", "1/2")
    assert code == 0 and "shard 1/2 done; 2 runs trained elsewhere are not finished yet" in out
    assert not (tmp_path / "s" / "report").exists() and len(list((tmp_path / "s").glob("*/seed*/summary.json"))) == 2
    code, out, _ = run_cli(capsys, *shard, "--shard", "0/2", "--dry-run")
    assert code == 0 and out.count("[ shard]") == 2 and "2 of 4 runs would be trained by shard 0/2" in out
    # Of two shards finishing together, the one that finds the lock taken leaves the report to the other.
    with (tmp_path / "s" / ".finishing-cifar.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # (a lock of its own open file: held against this process too)
        code, out, _ = run_cli(capsys, *shard, "--shard", "0/2")
    assert code == 0 and "shard 0/2 done; another process is writing the report" in out
    assert not (tmp_path / "s" / "report").exists()
    (tmp_path / "s" / ".finishing-cifar.lock").unlink()
    code, out, _ = run_cli(capsys, *shard, "--shard", "0/2")
    assert code == 0 and (tmp_path / "s" / "report" / "report.md").is_file()
    assert not (tmp_path / "s" / ".finishing-cifar.lock").exists()
    assert "| cifar10-preact_resnet18-erm-cpu | 2 (0 1) | 2/2 |" in out
    code, _, err = run_cli(capsys, *argv[:-1], "train.epochs=2", "--dry-run")
    assert_one_line_error(code, err, "holds a finished run of a different config (differs at train.epochs)")


def test_reproduce_processes_share_runs_through_claims(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["reproduce", "cifar", "--scale", "cpu", "--seeds", "2", "--out", str(tmp_path), "--quiet", "--set",
            f"data.name={SYNTHETIC}", "data.kwargs={}", "data.subset_per_class=4", "model.kwargs.width=4",
            "train.epochs=1", "train.reliability_diagram=false"]  # fmt: skip
    busy = tmp_path / "cifar10-preact_resnet18-mixup-cpu" / "seed1"
    busy.mkdir(parents=True)
    # a live process of this host (not this one: a claim naming this process, whose lock is free, is stale)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (busy / ".claim").write_text(f"{socket.gethostname()} {live.pid}")
        code, out, _ = run_cli(capsys, *argv)
    finally:
        live.kill()
        live.wait()
    assert code == 0 and f"[claimed] {busy}: another process is training it; skipped" in out
    assert "this process done; 1 runs trained elsewhere are not finished yet" in out
    assert len(list(tmp_path.glob("*/seed*/summary.json"))) == 3 and not (tmp_path / "report").exists()
    assert not list(tmp_path.glob("*/seed[0]/.claim"))  # released after training
    # The claiming process died (its pid no longer runs): the claim is stale and taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (busy / ".claim").write_text(f"{socket.gethostname()} {dead.pid}")
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "[claimed]" not in out and (tmp_path / "report" / "report.md").is_file()
    assert (busy / "summary.json").is_file() and not (busy / ".claim").exists()


def test_demo_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "demo", "--seeds", "2", "--set", "train.epochs=1", "--out", str(tmp_path))
    assert code == 0
    assert "| method | n | train error (%) | test error (%) | FGSM error (%), eps=0.1 |" in out
    assert "| ERM | 2 |" in out and "| mixup (alpha=1) | 2 |" in out and " ± " in out
    assert err.count("seed 1: train error") == 2 and err.count("%  test error") == 4
    assert err.startswith("vicinal demo: digits_cnn on sklearn digits") and err.count("vicinal demo:") == 1
    blocked, blocked_above = tmp_path / "blocked", tmp_path / "blocked-above"
    (blocked / "demo-digits-erm").mkdir(parents=True)
    (blocked / "demo-digits-erm" / "seed0").write_text("")
    blocked_above.mkdir()
    (blocked_above / "demo-digits-mixup").write_text("")  # found after all ERM seeds had trained
    # errors of the data, the model or the run folder come before the banner: the only line (the refusal of a used
    # --out named --resume and --overwrite, which the demo does not take)
    for argv, match in (
        (["--set", "model.kwargs.foo=1"], "model 'digits_cnn' got unexpected keyword argument(s) foo"),
        (["--set", "data.root=/tmp"], "dataset 'digits' is bundled with scikit-learn and reads no files"),
        (["--out", str(tmp_path)], f"--out '{tmp_path}' already holds a demo run ('{tmp_path / 'demo-digits-erm'}"),
        (["--out", str(blocked)], f"--out '{blocked}': '{blocked / 'demo-digits-erm' / 'seed0'}' is a file, where a "),
        (["--out", str(blocked_above)], f"'{blocked_above / 'demo-digits-mixup'}' is a file, where a folder is needed"),
    ):
        code, _, err = run_cli(capsys, "demo", "--seeds", "1", *argv)
        assert_one_line_error(code, err, match)


# -- real processes ----------------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_resumes(capsys: pytest.CaptureFixture[str], tmp_path: Path, sig: signal.Signals) -> None:
    # digits with batch 8: 150 steps per epoch; the signal arrives once the first checkpoint exists (in epoch 2).
    argv = [
        "train",
        str(DEMO),
        "--set",
        "train.epochs=3",
        "train.checkpoint_every=1",
        "data.batch_size=8",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen([sys.executable, "-m", "vicinal", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())  # fmt: skip
    run = tmp_path / "demo-digits" / "seed0"
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)  # (this also shows that `python -m vicinal` works)
    ck = load_checkpoint(run / "checkpoint.pt")  # intact whatever the moment of the kill
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
        assert "interrupted by SIGTERM" in err and f"resume with: vicinal train --resume {run}" in err
        assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
        # saved where it stopped: in epoch 2 (or at its very start, if the signal came during epoch 1's wrap-up)
        assert ck["epoch"] == 1 and 0 <= ck["step_in_epoch"] <= 150
    else:
        assert proc.returncode == -signal.SIGKILL
        assert ck["epoch"] >= 1 and ck["step_in_epoch"] == 0  # the last end-of-epoch checkpoint
    code, out, _ = run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 0 and out.startswith("vicinal: complete:")
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("broken", ["truncated", "text"])
def test_an_undecodable_image_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, broken: str) -> None:
    write_two_class_tree(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "train" / "dog" / "bad.jpg"
    bad.write_bytes(small_jpeg(99)[:200] if broken == "truncated" else b"not an image at all\n")
    argv = ["train", str(DEMO), "--set", "data.name=imagefolder_memory", f"data.root={tmp_path / 'imgs'}",
            "data.kwargs={progress: false, cache: false}"]  # fmt: skip
    one_line(capsys, argv, f"image file '{bad}' cannot be decoded")


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


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc, where no folder can be made")
def test_an_out_that_cannot_be_created_is_one_line_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = "/proc/vicinal-test/deeper"
    for argv in (
        ["train", str(DEMO), "--out", bad],
        ["demo", "--out", bad],
        ["reproduce", "cifar", "--scale", "cpu", "--out", bad, "--dry-run"],
        ["report", str(tmp_path), "--out", bad],
        ["figure", "fig1b", "--out", bad],
    ):
        one_line(capsys, argv, f"--out '{bad}' cannot be created or written: No such file or directory")
    # the probe removes what it made: a new nested --out that can be created is left as it was, absent
    check_out_folder(tmp_path / "a" / "b" / "c")
    (tmp_path / "old").mkdir()
    check_out_folder(tmp_path / "new" / ".." / "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    (tmp_path / "link").symlink_to(tmp_path / "unmounted")
    one_line(capsys, ["demo", "--out", str(tmp_path / "link" / "x")], f"lies below '{tmp_path / 'link'}', a link to")
    one_line(capsys, ["demo", "--out", str(tmp_path / "link")], f"--out '{tmp_path / 'link'}' is a link to")
    (tmp_path / "link").unlink()
    # a resume writes into its run folder: the default --out (runs/) is not probed
    _check_out(argparse.Namespace(out=Path(bad), resume=tmp_path / "old"))


def test_the_out_probe_of_processes_starting_together_refuses_none(tmp_path: Path) -> None:
    # ranks of one torchrun probe the same new --out at once: a level another one made or removed is no refusal
    errors: list[BaseException] = []

    def probe(out: Path) -> None:
        try:
            check_out_folder(out)
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    for trial in range(30):
        out = tmp_path / f"t{trial}" / "a" / "b"
        threads = [threading.Thread(target=probe, args=(out,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_a_corrupt_summary_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "t" / "cifar10-preact_resnet18-erm-cpu" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    (run / "summary.json").write_text("{'status': 'complete'}")
    match = f"'{run / 'summary.json'}' is not valid JSON (Expecting property name enclosed in double quotes"
    one_line(capsys, ["report", str(tmp_path / "t"), "--out", "rep"], match)
    one_line(capsys, ["reproduce", "cifar", "--scale", "cpu", "--out", str(tmp_path / "t"), "--dry-run"], match)


@pytest.mark.parametrize(
    ("file", "text", "problem"),
    [
        ("config.yaml", "name: [unclosed\n", " is not valid YAML at line 2: expected ',' or ']'"),
        ("config.yaml", "- a\n- b\n", " must hold a mapping at the top level, got list ['a', 'b']"),
        ("metrics.jsonl", "[1, 2]\n", " line 1 is not a JSON object (got list)"),
    ],
)
def test_a_run_file_of_the_wrong_shape_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, file: str, text: str, problem: str
) -> None:
    good = tmp_path / "good" / "seed0"
    good.mkdir(parents=True)
    (good / "config.yaml").write_text("name: good\ntrain: {seed: 0}\n")
    (good / "summary.json").write_text('{"status": "complete", "last_test_error": 5.0}')
    bad = tmp_path / "bad" / "seed0"
    bad.mkdir(parents=True)
    (bad / "config.yaml").write_text("name: bad\n")
    (bad / file).write_text(text)
    match = f"'{bad / file}'{problem}"
    one_line(capsys, ["report", str(tmp_path / "bad"), "--out", "rep"], match)
    one_line(capsys, ["report", "--document", str(tmp_path / "bad"), "--out", "doc"], match)
    figure = ["figure", "fig3b", "--erm", str(tmp_path / "bad"), "--mixup", str(tmp_path / "good"), "--out", "fig"]
    one_line(capsys, figure, match)


def test_report_document_name_must_be_a_plain_file_stem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "r" / "x" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\ntrain: {seed: 0}\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1, "test_error": 5.0}\n')
    (run / "summary.json").write_text('{"status": "complete", "last_test_error": 5.0}')
    for name in ("a/b", "", ".x"):
        argv = ["report", "--document", str(tmp_path / "r"), "--out", "doc", "--name", name]
        one_line(capsys, argv, f"--name {name!r} must be a plain file stem: not empty, without a path separator")
    assert not Path("doc").exists()
    code, out, _ = run_cli(
        capsys, "report", "--document", str(tmp_path / "r"), "--out", "doc", "--name", "page", "--tag"
    )
    assert code == 0, out
    (md,) = Path("doc").glob("page-*.md")
    # the page's regenerating command names its files as this one did
    assert f"vicinal report --document {tmp_path / 'r'} --out doc --name page --tag\n" in md.read_text()


def test_options_are_checked_before_anything_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["demo", "--eps", "-1"], "--eps must be a finite float >= 0, got -1.0"),
        (["demo", "--alpha", "-1"], "--alpha must be a finite float >= 0, got -1.0"),
        (["demo", "--set", "train.epochs=0"], "config key 'train.epochs' must be >= 1, got 0"),
        (["reproduce", "uci", "--scale", "cpu", "--seeds", "-2", "--dry-run"], "--seeds must be in [1, 10000], got -2"),
        (["reproduce", "gan", "--scale", "cpu", "--seeds", "-1", "--dry-run"], "--seeds must be in [1, 10000], got -1"),
        (["reproduce", "cifar", "--scale", "cpu", "--seeds", "0", "--dry-run"], "--seeds must be in [1, 10000], got 0"),
        # a huge count once built its plan until memory ran out, printing nothing
        (
            ["reproduce", "cifar", "--scale", "cpu", "--seeds", str(10**20), "--dry-run"],
            "--seeds must be in [1, 10000]",
        ),
        (["demo", "--seeds", "10001"], "--seeds must be in [1, 10000], got 10001"),
        (["train", str(DEMO), "--set", f"train.seed={2**64}"], f"config key 'train.seed' must be < 2**63, got {2**64}"),
    ]
    for argv, match in cases:
        code, out, err = run_cli(capsys, *argv)
        assert_one_line_error(code, err, match)  # no banner before the error
        assert out == "", argv
    assert not Path("runs").exists()


def test_reproduce_uci_set_values_of_the_wrong_type_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for setting, match in (
        ("lr=abc", "UCIProtocol.lr must be a number, got 'abc'"),
        ("alphas=0.5", "alphas must be a non-empty sequence of positive floats, got 0.5"),
        ("alphas=[0.2,null]", "every mixup alpha must be a finite float > 0 (ERM is always run), got None"),
    ):
        argv = ["reproduce", "uci", "--scale", "cpu", "--seeds", "1", "--set", setting, "--dry-run"]
        one_line(capsys, argv, match)
    assert not Path("runs").exists()


def test_reproduce_uci_header_names_the_overrides(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the header states the paper's protocol (10 epochs): a --set that changes it is named beside it (helper-105)
    argv = ["reproduce", "uci", "--scale", "cpu", "--seeds", "1", "--set", "epochs=1", "--dry-run", "--out"]
    code, out, _ = run_cli(capsys, *argv, str(tmp_path / "u"))
    assert code == 0
    assert out.splitlines()[0].endswith("Adam, 10 epochs, batch 16 (changed by --set epochs=1)"), out


def test_figure_seed_out_of_range_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = "99999999999999999999999"
    one_line(
        capsys, ["figure", "fig1b", "--seed", big, "--out", "fig"], f"seed must be an int in [0, 2**63), got {big}"
    )
    argv = ["figure", "fig2", "--erm", str(tmp_path), "--mixup", str(tmp_path), "--seed", big, "--out", "fig"]
    one_line(capsys, argv, f"seed must be an int in [0, 2**63), got {big}")
    assert not Path("fig").exists()


def test_reproduce_uci_and_gan_pass_quiet_to_their_runners(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The runners' training is replaced: what is tested is that --quiet reaches the progress switch of each task
    seen: list[tuple[str, bool]] = []

    def uci_table(out: Path, *, verbose: bool, **_: object) -> list[dict[str, object]]:
        seen.append(("uci", verbose))
        return []

    def gan_table(out: Path, scale: str, seeds: int, *, log: object, announce: object) -> Path:
        seen.append(("gan", log is not None))
        return out

    monkeypatch.setattr(uci, "run_uci_table", uci_table)
    monkeypatch.setattr(gan, "run_gan_table", gan_table)
    for table in ("uci", "gan"):
        for quiet in ([], ["--quiet"]):
            code, _, _ = run_cli(capsys, "reproduce", table, "--scale", "cpu", "--out", str(tmp_path / table), *quiet)
            assert code == 0
    assert seen == [("uci", True), ("uci", False), ("gan", True), ("gan", False)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_attack_device_hint_names_a_device_attack_takes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["attack", str(tmp_path), "--attack", "fgsm", "--device", "cuda"]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "--device is 'cuda' but CUDA is not available on this machine (use cpu)")
    assert err.rstrip().endswith("(use cpu)")  # not "auto": attack refuses it


def test_the_warning_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    argv = ["train", str(DEMO), "--set", "data.subset_per_class=150", "train.max_steps=1", "--out", str(tmp_path),
            "--quiet"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "vicinal", *argv], capture_output=True, text=True, env=_env(),
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "subset_per_class" in line]
    assert len(warning) == 1 and warning[0].startswith("vicinal: warning: data.subset_per_class=150 but 10 training")


def test_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    script = (
        "import sys; import vicinal.experiments.trainer as t\n"
        "def bug(*a, **k): raise ValueError('a bug, not bad input')\n"
        "t.summarize = bug\n"
        "from vicinal.experiments.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    argv = ["train", str(DEMO), "--set", "train.max_steps=1", "--out", str(tmp_path), "--quiet"]
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=_env(),
                          timeout=300)  # fmt: skip
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().endswith("ValueError: a bug, not bad input")


def test_config_mistakes_caught_by_the_library_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    one_line(capsys, ["train", str(DEMO), "--set", "data.kwargs={sed: 1}"],
             "dataset 'digits' takes no option 'data.kwargs.sed'; its options: test_fraction")  # fmt: skip
    # a typo gets the closest option, as a config key's does (helper-118)
    one_line(capsys, ["train", str(DEMO), "--set", "data.kwargs.test_fractoin=0.2"],
             "takes no option 'data.kwargs.test_fractoin' (did you mean 'data.kwargs.test_fraction'?); its options: ")  # fmt: skip
    one_line(capsys, ["train", str(DEMO), "--set", "mix.variant=mixup", "mix.kwargs={nope: 1}"],
             "the mix section of config 'demo-digits' is rejected by vicinal")  # fmt: skip
    one_line(capsys, ["train", str(DEMO), "--set", "model.kwargs.widht=3"], "got unexpected keyword argument(s) widht")


# -- audit "train" (2026-12-01): refused before anything trains or is written ------------------------------------------
def test_configs_that_crashed_at_the_first_step_are_one_line_before_any_run_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    Path("dup.yaml").write_text(f"base: {DEMO}\nname: dup\nmix:\n  variant: mixup\nmix:\n  alpha: 0.2\n")
    quick = ["train.epochs=1", "train.max_steps=1"]
    cases = [
        (["train", "dup.yaml"], "config file 'dup.yaml' repeats key 'mix' (lines 3 and 5)"),
        (
            ["train", str(DEMO), "--set", *quick, "mix.variant=mixup", "mix.pairing=knn", "mix.layer=layer2"],
            "mix.pairing 'knn' cannot be combined with mix.layer (latent mixing), got 'layer2'",
        ),
        (
            ["train", str(DEMO), "--set", *quick, "mix.variant=dirichlet", "mix.pairing=knn", "mix.knn_k=5"],
            "config key 'mix.pairing' is not used by mix.variant 'dirichlet'",
        ),
        (
            ["train", str(DEMO), "--set", *quick, "optim.nesterov=true", "optim.momentum=0"],
            "config key 'optim.nesterov' needs optim.momentum > 0, got 0",
        ),
        (
            ["train", str(DEMO), "--set", *quick, "optim.name=adam", "optim.betas=[0.9, 1.5]"],
            "config key 'optim.betas' must lie in [0, 1), got [0.9, 1.5]",
        ),
        (
            ["train", str(DEMO), "--set", *quick, "name=../../escape"],
            "config key 'name' must be a plain folder name (not empty, without a path separator, not starting "
            "with '.'), got '../../escape'",
        ),
        (["train", str(DEMO), "--set", *quick, "name=''"], "config key 'name' must be a plain folder name"),
        # the library's own refusal of mix.kwargs: once only at the run's start (the folder was made), and a plan's
        # --dry-run said every run of a table with ERM rows would train
        (
            ["train", str(DEMO), "--set", *quick, "mix.kwargs.prob=0.5"],
            "the mix section of config 'demo-digits' is rejected by vicinal: ERM leaves every batch's inputs as they "
            "are, so prob=0.5 would change nothing",
        ),
        (
            ["reproduce", "cifar", "--scale", "cpu", "--dry-run", "--set", "mix.kwargs.prob=0.5"],
            "the mix section of config 'cifar10-preact_resnet18-erm-cpu' is rejected by vicinal: ERM leaves",
        ),
        (  # a latent row, checked without its model (the run trained 6 rows, then stopped at it)
            ["reproduce", "ablation", "--scale", "cpu", "--dry-run", "--set", "mix.kwargs.inplace=true"],
            "is rejected by vicinal: LatentMixup mixes the activations at 'layer1' out of place",
        ),
    ]
    for argv, match in cases:
        one_line(capsys, [*argv, "--out", str(tmp_path / "o")], match)
    assert not (tmp_path / "o").exists() and not Path("runs").exists() and not (tmp_path.parent / "escape").exists()


def test_demo_refuses_a_set_of_the_keys_that_define_its_methods(capsys: pytest.CaptureFixture[str]) -> None:
    """--set mix.variant=cutmix trained cutmix in both rows ("ERM" and "mixup"), --set mix.alpha=0.2 kept the
    label "mixup (alpha=1)", --set name=foo made both methods share one run folder."""
    for key, value in (("mix.variant", "cutmix"), ("mix.alpha", "0.2"), ("name", "foo"), ("train.seed", "3")):
        code, out, err = run_cli(capsys, "demo", "--seeds", "1", "--set", "train.epochs=1", f"{key}={value}")
        assert_one_line_error(code, err, f"--set {key} is not allowed in the demo: the demo sets {key} itself")
        assert out == ""
    one_line(capsys, ["demo", "--set", "mix={variant: cutmix}"], "--set mix is not allowed in the demo: the demo "
             "sets mix.variant, mix.alpha itself for the methods it compares (use --alpha")  # fmt: skip
    assert not Path("runs").exists()


def test_reproduce_refuses_rows_that_share_a_run_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--set name=mine mapped ERM and mixup to one folder: only ERM trained, mixup was skipped as "complete"."""
    argv = ["reproduce", "cifar", "--scale", "cpu", "--seeds", "1", "--set", "name=mine", "--out", str(tmp_path)]
    code, out, err = run_cli(capsys, *argv, "--dry-run")
    assert_one_line_error(code, err, "rows '")
    assert re.search(
        r"rows '[^']*erm[^']*' and '[^']*mixup[^']*' of the plan share the run folder '.*mine/seed0' \(name "
        r"'mine', seed 0\) \(--set name=\.\.\. gives every row one name\); each row needs its own name",
        err,
    ), err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_figure2_checks_its_device_as_attack_does(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["figure", "fig2", "--erm", str(tmp_path), "--mixup", str(tmp_path), "--out", str(tmp_path / "f")]
    one_line(capsys, [*argv, "--device", "bogus"], "--device must be one of cpu, cuda, cuda:N, mps, got 'bogus'")
    if not torch.cuda.is_available():
        one_line(capsys, [*argv, "--device", "cuda"], "--device is 'cuda' but CUDA is not available on this machine")
    assert not (tmp_path / "f").exists()


def test_a_missing_optional_package_is_a_lab_warning(tmp_path: Path) -> None:
    """The TensorBoard (and matplotlib) warnings were printed in Python's default format with a source line."""
    script = (
        "import sys; sys.modules['torch.utils.tensorboard'] = sys.modules['matplotlib'] = None\n"  # not installed
        "from vicinal.experiments.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    argv = ["train", str(DEMO), "--set", "train.tensorboard=true", "train.max_steps=1", "--out", str(tmp_path),
            "--quiet"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=_env(),
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "install" in line or "fn(self" in line]
    assert lines == [
        "vicinal: warning: train.tensorboard is on but TensorBoard is not installed; skipping it",
        "vicinal: warning: matplotlib is not installed; reliability.png skipped",
    ], proc.stderr
    assert (tmp_path / "demo-digits" / "seed0" / "reliability.json").is_file()  # the numbers are still written


def test_the_resume_hint_of_a_multi_process_run_names_torchrun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # "resume with: vicinal train --resume DIR" was printed under torchrun too, where one process is refused
    from vicinal.experiments import cli
    from vicinal.experiments.trainer import TrainingInterrupted

    checkpoint = tmp_path / "run" / "checkpoint.pt"
    for world_size, hint in (
        (1, f"resume with: vicinal train --resume {checkpoint.parent}\n"),
        (2, f"resume with: torchrun with the same 2 processes, e.g. torchrun --nproc_per_node=2 -m vicinal train "
            f"--resume {checkpoint.parent}\n"),
    ):  # fmt: skip

        def interrupted(args: argparse.Namespace, world_size: int = world_size) -> int:
            raise TrainingInterrupted(signal.SIGTERM, checkpoint, world_size)

        monkeypatch.setitem(cli.COMMANDS, "configs", interrupted)
        assert main(["configs"]) == 143
        assert capsys.readouterr().err.endswith(hint)


def test_an_interrupted_reproduction_says_to_rerun_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # it said "vicinal train --resume <the stopped run>", which finishes that run and leaves the rest of the table
    # and its report undone; rerunning the reproduction continues all of it
    from vicinal.experiments import cli
    from vicinal.experiments.trainer import TrainingInterrupted

    checkpoint = tmp_path / "run" / "checkpoint.pt"
    for world_size, how in ((1, "command"), (2, "torchrun command")):

        def interrupted(args: argparse.Namespace, world_size: int = world_size) -> int:
            raise TrainingInterrupted(signal.SIGINT, checkpoint, world_size)

        monkeypatch.setitem(cli.COMMANDS, "reproduce", interrupted)
        assert main(["reproduce", "cifar", "--scale", "cpu", "--out", str(tmp_path / "out")]) == 130
        err = capsys.readouterr().err
        assert err.endswith(f"resumes from its checkpoint: rerun the same {how} to continue\n"), err
        assert "train --resume" not in err


def test_a_run_stopped_at_once_says_what_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a second Ctrl-C printed a bare "vicinal: interrupted", with no word of the checkpoint or how to go on
    from vicinal.experiments import cli
    from vicinal.experiments.trainer import TrainingInterrupted

    checkpoint = tmp_path / "run" / "checkpoint.pt"
    for kept, said in (
        (checkpoint, f"the work since the last checkpoint ({checkpoint}) is lost; resume with: vicinal train --resume "
                     f"{checkpoint.parent}\n"),
        (None, "before the run saved any checkpoint; run the same command again to start it anew\n"),
    ):  # fmt: skip

        def stopped(args: argparse.Namespace, kept: Path | None = kept) -> int:
            raise TrainingInterrupted(signal.SIGINT, kept, forced=True)

        monkeypatch.setitem(cli.COMMANDS, "train", stopped)
        assert main(["train", "demo/digits", "--out", str(tmp_path / "out")]) == 130
        err = capsys.readouterr().err
        assert err.startswith("vicinal: stopped at once by a second SIGINT") and err.endswith(said), err


def test_the_demo_acknowledges_ctrl_c_without_promising_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its first Ctrl-C said "saving a checkpoint", though the demo's runs lie in a folder it removes
    from vicinal.experiments import demo

    class Stopped(Exception):
        pass

    def fit(trainer: demo.Trainer) -> dict[str, object]:
        raise Stopped(trainer.stop.saves)

    monkeypatch.setattr(demo.Trainer, "fit", fit)
    with pytest.raises(Stopped) as caught:
        demo.run_demo(seeds=1, out=tmp_path / "d", stream=io.StringIO())
    assert caught.value.args == (False,)
    assert demo.Trainer(demo.demo_configs()[0][1], tmp_path / "t").stop.saves  # other runs: as before


def test_an_unknown_option_points_at_its_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    # helper-118: argparse's top-level error said "(see 'vicinal --help')", which lists no command's options
    for argv, where in (
        (["train", "demo/digits", "--dry-run"], "vicinal train"),
        (["configs", "a", "b"], "vicinal configs"),
        (["figure", "fig3b", "--erm", "a", "--mixup", "b", "--bogus"], "vicinal figure fig3b"),
    ):
        assert main(argv) == 2
        extra = argv[-1]
        assert capsys.readouterr().err == f"vicinal: error: unrecognized arguments: {extra} (see '{where} --help')\n"
    # argparse named the type function: "invalid _floats value: '0.5,abc'"
    assert main(["figure", "fig2", "--erm", "e", "--mixup", "m", "--lams", "0.5,abc"]) == 2
    assert capsys.readouterr().err == (
        "vicinal: error: argument --lams: 'abc' is not a number (comma-separated, e.g. 0,0.5,1) "
        "(see 'vicinal figure fig2 --help')\n"
    )
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"vicinal {vicinal.__version__}\n"


def test_out_refuses_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # helper-118: a run folder given as --out took the new runs inside it (RUN/demo-digits/seed0)
    run = tmp_path / "demo-digits" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    (run / "provenance.json").write_text("{}")
    said = (
        f"vicinal: error: --out '{run}' is a run folder (it holds config.yaml); --out names the folder that holds runs"
    )
    assert main(["train", "demo/digits", "--out", str(run)]) == 2
    assert capsys.readouterr().err == f"{said}; to continue that run: vicinal train --resume {run}\n"
    assert main(["reproduce", "cifar", "--scale", "cpu", "--out", str(run), "--dry-run"]) == 2
    assert capsys.readouterr().err == f"{said}\n"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "provenance.json"]


def test_the_demo_banner_counts_its_seeds(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from vicinal.experiments import cli

    banners = []

    def run_demo(**kwargs: object) -> tuple[list[object], str]:
        banners.append(kwargs["banner"])
        return [], "table"

    monkeypatch.setattr(cli, "run_demo", run_demo)
    assert main(["demo", "--seeds", "1"]) == 0 and main(["demo", "--seeds", "2"]) == 0
    assert ", 1 seed, FGSM" in str(banners[0]) and ", 2 seeds, FGSM" in str(banners[1])  # it said "1 seeds"


def test_the_demo_table_says_whether_erm_fits_its_training_set() -> None:
    # helper-118: "ERM fits them" was a fixed string, printed under 17% ERM training error (`--set train.epochs=1`)
    from vicinal.experiments.demo import DemoRow, format_table

    def table(erm_train: list[float]) -> str:
        rows = [DemoRow("ERM", [1.0, 2.0], [40.0, 42.0], erm_train), DemoRow("mixup (alpha=1)", [1.0], [30.0], [0.5])]
        return format_table(rows, 0.1, 9.0).splitlines()[-1]

    assert table([0.0, 1.0]) == (
        "mean ± sample std over seeds; train error: the model on its own un-augmented training images (ERM fits "
        "them: the regime the paper studies); wall time 9 s"
    )
    assert "(ERM does not fit them here, 17.15% > 1%: outside the regime the paper studies); " in table([16.6, 17.7])


def test_an_interrupted_demo_says_to_run_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # it named a checkpoint in the temporary folder the demo had just removed, and a one-run resume
    from vicinal.experiments import cli
    from vicinal.experiments.trainer import TrainingInterrupted

    def interrupted(args: argparse.Namespace) -> int:
        raise TrainingInterrupted(signal.SIGINT, tmp_path / "vicinal-demo-x" / "run" / "checkpoint.pt")

    monkeypatch.setitem(cli.COMMANDS, "demo", interrupted)
    assert main(["demo"]) == 130
    assert capsys.readouterr().err == "vicinal: demo interrupted by SIGINT; run it again to see its table\n"
    # with --out, that folder now holds the stopped demo's runs, which a new demo refuses
    assert main(["demo", "--out", str(tmp_path / "d")]) == 130
    err = capsys.readouterr().err
    assert err == "vicinal: demo interrupted by SIGINT; run it again with another --out to see its table\n"


@pytest.mark.parametrize(
    ("override", "match"),
    [("model.name=resnet_nope", "unknown model 'resnet_nope'; known models: "),
     ("data.name=nope", "unknown dataset 'nope'; known datasets: ")],
)  # fmt: skip
def test_an_unknown_model_or_dataset_is_refused_by_the_plan_and_before_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, match: str
) -> None:
    # they passed --dry-run ("10 of 10 runs would be trained") and failed only once the first run had made its folder
    argv = ["reproduce", "cifar", "--scale", "cpu", "--out", str(tmp_path / "r"), "--set", override, "--dry-run"]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, match)
    code, _, err = run_cli(capsys, "train", "demo/digits", "--out", str(tmp_path / "t"), "--set", override)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "t").exists()


def test_the_demo_refuses_several_processes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # under torchrun each rank attacked its own share of the test split and printed its own table
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    code, _, err = run_cli(capsys, "demo")
    assert_one_line_error(code, err, "vicinal demo runs in one process, not under torchrun (use vicinal train there)")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--eps", "255.5"], "--eps must be in [0, 255] pixel units, got 255.5"),
        (["--eps", "-0.5"], "--eps must be in [0, 255] pixel units, got -0.5"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--every", "0"], "--every must be >= 1, got 0"),
        # the edges of each range pass the option checks and reach the run folder's
        (["--steps", "1", "--eps", "255", "--batch-size", "1", "--every", "1"], "RUN_DIR 'nope' is not a folder"),
        (["--eps", "0"], "RUN_DIR 'nope' is not a folder"),
    ],
)
def test_attack_options_are_checked_at_their_edges(
    capsys: pytest.CaptureFixture[str], options: list[str], match: str
) -> None:
    code, out, err = run_cli(capsys, "attack", "nope", "--attack", "ifgsm", *options)
    assert_one_line_error(code, err, match)
    assert err == f"vicinal: error: {match}\n" and out == ""


def test_a_resume_refuses_overwrite_and_out_whatever_out_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    one_line(
        capsys, ["train", "--resume", str(run), "--overwrite"], "--overwrite starts a new run; it cannot be combined"
    )
    (tmp_path / "file").write_text("")
    # --out is no folder check for a resume (it writes into its own folder): the error is the combination
    one_line(
        capsys,
        ["train", "--resume", str(run), "--out", str(tmp_path / "file")],
        f"--out places a new run; a resumed run continues in its own folder ('{run}')",
    )


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys)
    assert code == 2 and out.startswith("usage: vicinal [-h] [--version] COMMAND ...") and err == ""


def test_a_document_with_the_default_name_records_its_command_without_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = tmp_path / "r" / "x" / "seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\ntrain: {seed: 0}\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1, "test_error": 5.0}\n')
    (run / "summary.json").write_text('{"status": "complete", "last_test_error": 5.0}')
    code, out, _ = run_cli(capsys, "report", "--document", str(tmp_path / "r"), "--out", "doc")
    assert code == 0, out
    assert f"vicinal report --document {tmp_path / 'r'} --out doc\n" in Path("doc/report.md").read_text()


def test_a_resume_with_its_config_ignores_a_global_batch_the_run_predates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # data.global_batch_size only checks the launch: a run started before its config declared one is the same run
    from vicinal.experiments.config import load_config
    from vicinal.experiments.runs import dump_config

    run = tmp_path / "run"
    dump_config(load_config(DEMO), run / "config.yaml")
    declared = tmp_path / "declared.yaml"
    declared.write_text(f"base: {DEMO}\ndata: {{global_batch_size: 128}}\n")
    one_line(
        capsys,
        ["train", str(declared), "--resume", str(run)],
        f"checkpoint file '{run / 'checkpoint.pt'}' does not exist: nothing to resume in '{run}'",
    )
    declared.write_text(f"base: {DEMO}\noptim: {{lr: 0.5}}\n")
    one_line(
        capsys,
        ["train", str(declared), "--resume", str(run)],
        f"{declared} differs from the config of the run in '{run}' at optim.lr (0.05 in the run, 0.5 in it)",
    )


def test_a_reproduction_refused_at_a_runs_start_leaves_no_run_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the claim made the run folder, and the refused run (missing data) left it empty in the table's folder
    (tmp_path / "data").mkdir()
    code, _, err = run_cli(
        capsys, "reproduce", "cifar", "--scale", "cpu", "--seeds", "1", "--data", str(tmp_path / "data"),
        "--out", str(tmp_path / "t"),
    )  # fmt: skip
    assert code == 2 and "CIFAR-10 JPEG split not found" in err
    assert not (tmp_path / "t").exists() or not any(p.is_dir() for p in (tmp_path / "t").iterdir())


def test_missing_data_names_the_data_folder_and_how_to_set_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # audit "docs": the message named the missing split only, not where the folder came from nor --data; a missing
    # ImageFolder root was "no evaluation split"
    from vicinal.experiments import build

    cifar = ["train", "cifar/cpu/cifar10-preact_resnet18-mixup", "--set", "train.max_steps=1"]
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "nothing"))
    one_line(
        capsys,
        [*cifar, "--out", str(tmp_path / "o")],
        f"CIFAR-10 JPEG split not found: {tmp_path / 'nothing' / 'cifar10-jpeg' / 'train'} (data folder "
        f"'{tmp_path / 'nothing'}', from --data or VICINAL_DATA)",
    )
    monkeypatch.delenv("VICINAL_DATA")
    monkeypatch.setattr(build, "default_data_root", lambda: tmp_path / "shared" / "data")
    monkeypatch.setattr("vicinal.experiments.paths.default_data_root", lambda: tmp_path / "shared" / "data")
    one_line(
        capsys,
        [*cifar, "--out", str(tmp_path / "o")],
        f"(data folder '{tmp_path / 'shared' / 'data'}', the default ../shared/data beside the project; --data DIR "
        "sets another)",
    )
    code, _, err = run_cli(capsys, *cifar, f"data.root={tmp_path / 'mine'}", "--out", str(tmp_path / "o"))
    # the config's own folder: the message names it, with no word of --data
    assert code == 2 and err == f"vicinal: error: CIFAR-10 JPEG split not found: {tmp_path / 'mine' / 'train'}\n"
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "nothing"))  # a loader that says how already: said once
    code, _, err = run_cli(capsys, "train", "speech/cpu/speech-lenet-erm", "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("VICINAL_DATA") == 1 and "(pass root= or set VICINAL_DATA)" in err, err
    one_line(
        capsys,
        ["train", "imagenet/paper/imagenet-resnet50-90ep-mixup", "--set", f"data.root={tmp_path / 'imagenet'}",
         "data.batch_size=1024", "--out", str(tmp_path / "o")],
        f"image folder not found: {tmp_path / 'imagenet'}",
    )  # fmt: skip
    assert not (tmp_path / "o").exists()
