"""Nothing on disk is lost or made wrong (issue #11, items 8-13): a refused resume writes nothing, a run folder with
results is never overwritten silently, claims are taken over atomically, the report is written once, a dead
process's runs are taken over, temporary checkpoint files of killed writes are removed.

Most tests run the ``vicinal`` command in a real subprocess (what a user runs); the reproduction tests go through
``lab_runner`` below, which registers the tests' synthetic dataset first and then calls ``main``."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vicinal.experiments import orchestrate
from vicinal.experiments.cli import main
from vicinal.experiments.errors import LabWarning
from vicinal.experiments.paths import PROJECT_ROOT, configs_dir

DEMO = configs_dir() / "demo" / "digits.yaml"
TESTS = Path(__file__).resolve().parent
QUICK = ["train.epochs=1", "data.batch_size=64", "train.reliability_diagram=false"]
# `vicinal reproduce cifar` on the synthetic images: 2 rows x 2 seeds of a width-4 PreAct ResNet, 1 epoch each.
TINY_TABLE = ["reproduce", "cifar", "--scale", "cpu", "--seeds", "2", "--quiet", "--set", "data.name=synthetic_images",
              "data.kwargs={}", "data.subset_per_class=4", "model.kwargs.width=4", "train.epochs=1",
              "train.reliability_diagram=false"]  # fmt: skip
RUNNER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from lab_helpers import register_synthetic; register_synthetic(); "
    "from vicinal.experiments.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


def env() -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "src"), e.get("PYTHONPATH", "")])
    return e


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``vicinal ARGV`` through the command's own ``main`` in this process, reported as a finished subprocess: the
    same exit code and output without an interpreter start-up and torch import per call (seconds each)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), code, out, err)


def lab_runner(*argv: str) -> list[str]:
    """The command line of a subprocess running ``vicinal ARGV`` with the synthetic dataset registered."""
    return [sys.executable, "-c", RUNNER, str(TESTS), *argv]


def one_line_error(proc: subprocess.CompletedProcess[str], match: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vicinal: error: ") and match in lines[0], proc.stderr


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


# -- item 8: a refused resume changes nothing --------------------------------------------------------------------------
def test_refused_resume_leaves_the_run_folder_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert in_process(capsys, "train", str(DEMO), "--set", *QUICK, "--out", str(tmp_path), "--quiet").returncode == 0
    run = tmp_path / "demo-digits" / "seed0"
    before = snapshot(run)
    proc = in_process(capsys, "train", "--resume", str(run), "--set", "optim.lr=0.5")
    one_line_error(proc, "was written by a different config (differs at optim.lr)")
    other = tmp_path / "other.yaml"
    other.write_text(DEMO.read_text().replace("lr: 0.05", "lr: 0.5"))
    one_line_error(
        in_process(capsys, "train", str(other), "--resume", str(run)), "optim.lr (0.05 in the run, 0.5 in it), "
    )
    assert snapshot(run) == before  # config.yaml still says lr 0.05, provenance.json has no new resume entry
    proc = in_process(capsys, "train", "--resume", str(run), "--quiet")  # so a plain resume still works
    assert proc.returncode == 0 and proc.stdout.startswith("vicinal: complete:"), proc.stderr
    assert not list(run.glob(".*.tmp"))


# -- item 9: results are never overwritten without --overwrite ---------------------------------------------------------
def test_a_run_folder_with_results_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", str(DEMO), "--set", "train.epochs=2", *QUICK[1:], "--out", str(tmp_path), "--quiet"]
    assert in_process(capsys, *argv).returncode == 0
    run = tmp_path / "demo-digits" / "seed0"
    (run / "checkpoint.pt").unlink()
    (run / "attacks").mkdir()
    (run / "attacks" / "white-fgsm-eps4.json").write_text("{}")
    before = snapshot(run)
    proc = in_process(capsys, *argv[:4], "train.epochs=1", *argv[4:])
    one_line_error(proc, f"run folder '{run}' already holds results (summary.json, metrics.jsonl)")
    assert "--overwrite" in proc.stderr
    assert snapshot(run) == before and len((run / "metrics.jsonl").read_text().splitlines()) == 2
    proc = in_process(capsys, *argv[:4], "train.epochs=1", *argv[4:], "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1 and not (run / "attacks").exists()
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1
    one_line_error(in_process(capsys, "train", "--resume", str(run), "--overwrite"), "cannot be combined with --resume")


# -- item 10: taking over a stale claim is atomic ----------------------------------------------------------------------
CLAIMER = """
import sys, time
from pathlib import Path
from typing import Any
from vicinal.experiments import orchestrate, runs

alive = runs.pid_alive
def slow(pid):  # the pause of issue #11 item 10, between reading the stale claim and taking it over
    time.sleep(0.5)
    return alive(pid)
runs.pid_alive = slow  # the claims' module (orchestrate.claim is runs.claim)
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
print("owner" if orchestrate.claim(Path(sys.argv[1])) is not None else "skipped", flush=True)
time.sleep(2.0)  # hold the claim while the other process decides
"""


def test_two_processes_never_both_take_over_a_stale_claim(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / ".claim").write_text(f"{socket.gethostname()} {dead.pid}")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(run), str(go)], stdout=subprocess.PIPE, text=True,
                              env=env()) for _ in range(2)]  # fmt: skip
    time.sleep(3.0)  # both have imported the lab and wait for the signal
    go.touch()
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["owner", "skipped"]
    assert not (run / ".claim").exists() or (run / ".claim").read_text().split()[1] != str(dead.pid)


# -- item 11: without --shard too, one process writes the report -------------------------------------------------------
def test_the_finishing_lock_is_taken_without_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.experiments.lab_helpers import register_synthetic

    register_synthetic()
    out = tmp_path / "t"
    proc = in_process(capsys, *TINY_TABLE, "--out", str(out))
    assert proc.returncode == 0 and (out / "report" / "report.md").is_file(), proc.stderr
    for f in (out / "report").iterdir():
        f.unlink()
    (out / "report").rmdir()
    with (out / ".finishing-cifar.lock").open("w") as held:  # another process is finishing
        fcntl.flock(held, fcntl.LOCK_EX)  # (a lock of its own open file: held against this process too)
        proc = in_process(capsys, *TINY_TABLE, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "this process done; another process is writing the report" in proc.stdout
    assert not (out / "report").exists()
    # another table finishing in the same folder (adversarial and datasize share cifar's) holds its own lock: this
    # table's step after training and report still run (one lock per folder skipped them, exit 0)
    other = orchestrate.finish_lock(out, "adversarial")
    assert other is not None and orchestrate.finish_lock(out, "adversarial") is None  # held, as by another process
    try:
        proc = in_process(capsys, *TINY_TABLE, "--out", str(out))
    finally:
        other.release()
    assert proc.returncode == 0 and (out / "report" / "report.md").is_file(), proc.stdout


def test_a_report_written_meanwhile_is_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.experiments.lab_helpers import register_synthetic
    from vicinal.experiments import orchestrate
    from vicinal.experiments.cli import main

    register_synthetic()
    out = tmp_path / "t"
    take = orchestrate.finish_lock

    def another_process_finished_first(path: Path, table: str) -> orchestrate.Claim | None:
        runs = sorted(str(p.parent) for p in out.glob("*/seed*/summary.json"))
        (out / ".finished.json").write_text(json.dumps({"time": time.time(), "runs": runs}))
        return take(path, table)

    monkeypatch.setattr(orchestrate, "finish_lock", another_process_finished_first)
    assert main([*TINY_TABLE, "--out", str(out)]) == 0
    assert "this process done; another process has written the report meanwhile" in capsys.readouterr().out
    assert not (out / "report").exists() and not (out / ".finishing-cifar.lock").exists()
    monkeypatch.setattr(orchestrate, "finish_lock", take)
    assert main([*TINY_TABLE, "--out", str(out)]) == 0  # a later command writes it again (nothing trained)
    assert (out / "report" / "report.md").is_file() and not (out / ".finishing-cifar.lock").exists()


# -- item 12: the survivor takes over the runs of a dead process -------------------------------------------------------
def test_the_survivor_finishes_the_runs_of_a_killed_process(tmp_path: Path) -> None:
    out = tmp_path / "t"
    first = out / "cifar10-preact_resnet18-erm-cpu" / "seed0"  # the plan's first run
    first.mkdir(parents=True)
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # the other process
    try:
        (first / ".claim").write_text(f"{socket.gethostname()} {owner.pid}")
        survivor = subprocess.Popen(lab_runner(*TINY_TABLE, "--out", str(out), "--set", "train.epochs=2"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())  # fmt: skip
        assert survivor.stdout is not None
        lines = []
        for line in survivor.stdout:  # skipped while its owner lives ...
            lines.append(line)
            if "[claimed]" in line:
                break
        owner.send_signal(signal.SIGKILL)  # ... which is then killed, while the survivor trains its other runs
        owner.wait()
        rest, err = survivor.communicate(timeout=300)
    finally:
        owner.kill()
        owner.wait()
    out_text = "".join(lines) + rest
    assert survivor.returncode == 0, err
    assert f"[claimed] {first}" in out_text and f"[takeover] {first}" in out_text
    assert "not finished yet" not in out_text and (out / "report" / "report.md").is_file()
    assert json.loads((first / "summary.json").read_text())["status"] == "complete"
    assert not list(out.glob("*/seed*/.claim"))


# -- item 13: temporary files of killed checkpoint writes are removed --------------------------------------------------
def test_stale_checkpoint_temp_files_are_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert in_process(capsys, "train", str(DEMO), "--set", *QUICK, "--out", str(tmp_path), "--quiet").returncode == 0
    run = tmp_path / "demo-digits" / "seed0"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    killed = run / f".checkpoint.pt.{host}~{dead.pid}~k2j4.tmp"  # its writer was SIGKILLed
    old = run / ".checkpoint.pt.a8f3kq0z.tmp"  # an older version's name, hours old
    live = run / f".checkpoint.pt.{host}~{os.getpid()}~x1.tmp"  # a live writer's (this process's): kept
    recent = run / ".checkpoint.pt.zz91b2c4.tmp"  # no writer named, recent: perhaps another host's, kept
    for f in (killed, old, live, recent):
        f.write_bytes(b"\0" * 1000)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    proc = in_process(capsys, "train", "--resume", str(run), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not killed.exists() and not old.exists() and live.exists() and recent.exists()


def test_a_plan_of_max_steps_runs_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs stopped at the plan's step limit are done for that plan: the report is written, a second call trains
    nothing (it once said the runs were "trained elsewhere" and then took one more step each), and a raised limit
    resumes them."""
    from tests.experiments.lab_helpers import register_synthetic
    from vicinal.experiments.cli import main

    register_synthetic()
    two_epochs = [*TINY_TABLE, "train.epochs=2"]  # one step per epoch (40 images, batch 128)
    assert main([*two_epochs, "train.max_steps=1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"report written to {tmp_path / 'report'}" in out and "not finished yet" not in out
    summaries = sorted(tmp_path.glob("*/seed*/summary.json"))
    assert len(summaries) == 4 and all(json.loads(p.read_text())["global_step"] == 1 for p in summaries)
    assert main([*two_epochs, "train.max_steps=1", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("[  done]") == 4
    assert all(json.loads(p.read_text())["global_step"] == 1 for p in summaries)
    with pytest.warns(LabWarning, match=r"with train.max_steps 1 -> 2$"):
        assert main([*two_epochs, "train.max_steps=2", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("[resume]") == 4
    finished = [json.loads(p.read_text()) for p in summaries]
    assert all(s["global_step"] == 2 and s["status"] == "complete" for s in finished)  # the limit met the end


def test_ctrl_c_in_the_step_after_training_says_how_to_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl-C during Table 3's attacks (the step after training) printed a bare "vicinal: interrupted"
    (helper-105); it now says that every run is trained and the same command finishes the table, and exits 130."""
    import dataclasses

    from tests.experiments.lab_helpers import register_synthetic

    register_synthetic()
    real = orchestrate.get_table

    def interrupted(plan: Any, args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(
        orchestrate, "get_table", lambda name: dataclasses.replace(real(name), after_training=interrupted)
    )
    assert main([*TINY_TABLE, "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "vicinal: interrupted after training; rerun the same command to finish the cifar table (its finished runs "
        "and results are kept)"
    )
    assert not (tmp_path / "report").exists()
    monkeypatch.setattr(orchestrate, "get_table", real)
    assert main([*TINY_TABLE, "--out", str(tmp_path)]) == 0  # the rerun trains nothing and writes the report
    out = capsys.readouterr().out
    assert out.count("[  done]") == 4 and f"report written to {tmp_path / 'report'}" in out


def test_reproduce_looks_its_table_up_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    looked_up: list[str] = []
    real = orchestrate.get_table

    def counting(name: str) -> Any:
        looked_up.append(name)
        return real(name)

    monkeypatch.setattr(orchestrate, "get_table", counting)
    assert main(["reproduce", "ablation", "--scale", "cpu", "--dry-run", "--out", str(tmp_path)]) == 0
    assert looked_up == ["ablation"]
    out = capsys.readouterr().out
    assert "dry run: 36 of 36 runs would be trained" in out  # 18 rows of the cpu sweep x 2 seeds


def test_the_help_imports_no_task_module_but_the_reproduce_help_lists_every_table() -> None:
    code = (
        "import sys\n"
        "from vicinal.experiments.cli import build_parser\n"
        "p = build_parser()\n"
        "print(sorted(m for m in sys.modules if m.startswith('vicinal.experiments.tasks.')))\n"
        "p._subparsers._group_actions[0].choices['reproduce'].print_help()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    loaded, _, help_text = out.partition("\n")
    for task in ("uci", "gan", "speech", "imagenet", "robustness", "datasize", "cifar"):
        assert f"vicinal.experiments.tasks.{task}'" not in loaded, loaded
    for table in (
        "ablation",
        "adversarial",
        "cifar",
        "corrupted-labels",
        "datasize",
        "gan",
        "imagenet",
        "speech",
        "uci",
    ):
        assert f"\n  {table}: " in help_text


def test_a_file_in_the_way_of_a_run_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the claim's mkdir raised a bare FileExistsError traceback (a file where OUT/NAME/seedK should be)
    from tests.experiments.lab_helpers import register_synthetic
    from vicinal.experiments.cli import main

    register_synthetic()
    (tmp_path / "cifar10-preact_resnet18-erm-cpu").mkdir(parents=True)
    (tmp_path / "cifar10-preact_resnet18-erm-cpu" / "seed0").write_text("")
    assert main([*TINY_TABLE, "train.epochs=1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    blocker = tmp_path / "cifar10-preact_resnet18-erm-cpu" / "seed0"
    assert err == [
        f"vicinal: error: cannot read '{blocker / 'summary.json'}': '{blocker}' is a file, where a folder is needed"
    ]
    # `vicinal train`: refused before its data and model are built
    (tmp_path / "demo-digits").write_text("")
    proc = in_process(capsys, "train", str(DEMO), "--set", *QUICK, "--out", str(tmp_path))
    one_line_error(proc, f"cannot create or lock the folder '{tmp_path / 'demo-digits' / 'seed0'}': Not a directory")


def test_a_run_another_process_trains_with_another_recipe_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # two reproductions of one table into one --out with different --set: the claims kept each run to one
    # process, but each took the other's runs as its own, and the folder ended with two learning rates
    from vicinal.experiments.config import load_config
    from vicinal.experiments.runs import claim, dump_config
    from vicinal.experiments.tasks import get_table

    held = []
    for path in get_table("cifar").configs("cpu"):
        cfg = load_config(path, ["optim.lr=0.01", "train.seed=0"])  # the other process's recipe
        run_dir = tmp_path / cfg.name / "seed0"
        held.append(claim(run_dir))  # held by "another process" (another open file description of the lock)
        dump_config(cfg, run_dir / "config.yaml")
    try:
        proc = in_process(capsys, "reproduce", "cifar", "--scale", "cpu", "--seeds", "1", "--out", str(tmp_path))
    finally:
        for h in held:
            h.release()
    one_line_error(proc, "' holds a run that another process is training of a different config (differs at optim.lr)")


def test_a_resume_raised_by_the_same_command_in_another_process_is_no_other_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # two processes of `reproduce ... --set train.max_steps=4` over runs stopped at 2: the one that resumes a run
    # rewrites its config.yaml only when training starts, and the other refused it as "a different config"
    from vicinal.experiments.config import load_config
    from vicinal.experiments.runs import claim, dump_config
    from vicinal.experiments.tasks import get_table

    held = []
    for path in get_table("cifar").configs("cpu"):
        cfg = load_config(path, ["train.max_steps=2", "train.seed=0"])
        run_dir = tmp_path / cfg.name / "seed0"
        held.append(claim(run_dir))
        dump_config(cfg, run_dir / "config.yaml")
        (run_dir / "checkpoint.pt").write_bytes(b"")
    argv = [
        "reproduce",
        "cifar",
        "--scale",
        "cpu",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--set",
        "train.max_steps=4",
    ]
    try:
        proc = in_process(capsys, *argv)
    finally:
        for h in held:
            h.release()
    assert proc.returncode == 0 and proc.stdout.count("another process is training it; skipped") == 2, proc.stderr
    # a stopped run of another recipe is refused by the plan, before anything trains (the resume refused it later)
    proc = in_process(capsys, *argv, "optim.lr=0.01", "--dry-run")
    one_line_error(proc, "' holds a stopped run of a different config (differs at optim.lr); resume it as it was")
    # the resume's own comparison: a speed option that changes no result is still refused by a resume
    proc = in_process(capsys, *argv, "train.channels_last=true", "--dry-run")
    one_line_error(proc, "' holds a stopped run of a different config (differs at train.channels_last)")
    # a stopped run whose config.yaml is gone (a partial copy): the plan leaves the comparison to the resume
    for path in get_table("cifar").configs("cpu"):
        (tmp_path / load_config(path).name / "seed0" / "config.yaml").unlink()
    proc = in_process(capsys, *argv, "--dry-run")
    assert proc.returncode == 0 and "dry run: 2 of 2 runs would be trained" in proc.stdout, proc.stderr


def test_a_set_alpha_over_a_table_sets_the_rows_that_draw_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vicinal.experiments.cli import build_parser

    # over a table mix.alpha sets the rows that draw a weight and leaves ERM's recipe as shipped (its finished runs
    # were refused as another config, and the report marked them "config differs: mix.alpha")
    argv = ["reproduce", "cifar", "--scale", "cpu", "--seeds", "1", "--out", str(tmp_path)]
    _, plan, _ = orchestrate.plan_runs(build_parser().parse_args([*argv, "--set", "mix.alpha=0.2"]))
    assert {item["cfg"].mix.variant: item["cfg"].mix.alpha for item in plan} == {"erm": 1.0, "mixup": 0.2}
    # the same in a mapping: alpha went to every row (ERM's recipe too), the mapping's other keys still do
    # (check_finite: ERM takes it too; prob it refuses, and so does the plan, test_cli.py)
    set_ = ["--set", "mix={alpha: 0.2, kwargs: {check_finite: true}}"]
    _, plan, _ = orchestrate.plan_runs(build_parser().parse_args([*argv, *set_]))
    got = {item["cfg"].mix.variant: (item["cfg"].mix.alpha, item["cfg"].mix.kwargs) for item in plan}
    assert got == {"erm": (1.0, {"check_finite": True}), "mixup": (0.2, {"check_finite": True})}
    proc = in_process(capsys, *argv, "--dry-run", "--set", "mix={sigma: 0.3}")
    assert proc.stderr.endswith(
        "--set mix={sigma: 0.3} (its sigma): no row of table 'cifar' has a mix.variant that reads it\n"
    )
    # a mapping that makes every row a noise row, with its sigma (refused as "sigma 0.0" when the row's variant was
    # read from a validated config without the sigma)
    _, plan, _ = orchestrate.plan_runs(
        build_parser().parse_args([*argv, "--set", "mix={variant: gaussian_noise, sigma: 0.2}"])
    )
    assert {(item["cfg"].mix.variant, item["cfg"].mix.sigma) for item in plan} == {("gaussian_noise", 0.2)}
    # a refused value is quoted as typed, not as the rows' share of it
    proc = in_process(capsys, *argv, "--dry-run", "--set", "mix={alpha: -1, kwargs: {prob: 0.5}}")
    assert proc.returncode == 2 and proc.stderr.endswith("with --set mix={alpha: -1, kwargs: {prob: 0.5}})\n"), (
        proc.stderr
    )
    # a refused override is named as given: the error also named the seed probe's train.seed=4611686018427400249
    proc = in_process(capsys, *argv, "--dry-run", "--set", "mix.pairing=matching")
    assert proc.returncode == 2 and proc.stderr.endswith("with --set mix.pairing=matching)\n"), proc.stderr
    assert "train.seed" not in proc.stderr
    # dropped from every row, a noise level no row reads went unsaid and the command exited 0
    proc = in_process(capsys, *argv, "--dry-run", "--set", "mix.sigma=0.3")
    assert proc.returncode == 2
    assert (
        proc.stderr == "vicinal: error: --set mix.sigma=0.3: no row of table 'cifar' has a mix.variant that reads it\n"
    )


# -- the plan's seeds, completeness, shards and the finished note ------------------------------------------------------
def _plan(*argv: str) -> list[tuple[str, int]]:
    from vicinal.experiments.cli import build_parser

    _, plan, _ = orchestrate.plan_runs(build_parser().parse_args(["reproduce", *argv]))
    return [(item["cfg"].name, item["seed"]) for item in plan]


def test_the_plan_is_seed_major_and_gives_each_row_its_own_seed_count(tmp_path: Path) -> None:
    # corrupted-labels at cpu scale: 3 seeds for the 50% rows, 1 for the 20% and 80% rows (robustness.py)
    plan = _plan("corrupted-labels", "--scale", "cpu", "--out", str(tmp_path))
    level = [(name.split("-")[2], seed) for name, seed in plan]
    assert level == [("c20", 0)] * 4 + [("c50", 0)] * 4 + [("c80", 0)] * 4 + [("c50", 1)] * 4 + [("c50", 2)] * 4
    assert len(set(plan)) == 20


def test_set_train_seed_shifts_every_rows_first_seed(tmp_path: Path) -> None:
    # the black-box source starts at 1000: --set train.seed=5 moves it to 1005, not onto its target's seed 5
    plan = _plan("adversarial", "--scale", "cpu", "--seeds", "2", "--out", str(tmp_path), "--set", "train.seed=5")
    assert plan == [
        ("cifar10-preact_resnet18-erm-cpu", 5),
        ("cifar10-preact_resnet18-erm-source-cpu", 1005),
        ("cifar10-preact_resnet18-mixup-cpu", 5),
        ("cifar10-preact_resnet18-erm-cpu", 6),
        ("cifar10-preact_resnet18-erm-source-cpu", 1006),
        ("cifar10-preact_resnet18-mixup-cpu", 6),
    ]


def test_a_run_stopped_at_a_step_limit_is_complete_only_for_a_plan_with_that_limit_or_a_lower_one(
    tmp_path: Path,
) -> None:
    assert not orchestrate.complete(tmp_path / "none", 5)  # no summary yet
    (tmp_path / "summary.json").write_text('{"status": "max_steps", "global_step": 5}')
    assert orchestrate.complete(tmp_path, 4) and orchestrate.complete(tmp_path, 5)
    assert not orchestrate.complete(tmp_path, 6)
    assert not orchestrate.complete(tmp_path, None)  # a plan without a limit trains it to its end
    (tmp_path / "summary.json").write_text('{"status": "interrupted", "global_step": 5}')
    assert not orchestrate.complete(tmp_path, 5)
    (tmp_path / "summary.json").write_text('{"status": "complete", "global_step": 5}')
    assert orchestrate.complete(tmp_path, None) and orchestrate.complete(tmp_path, 9)


def test_parse_shard_takes_0_to_n_minus_1() -> None:
    import argparse

    assert orchestrate.parse_shard("0/2") == (0, 2) and orchestrate.parse_shard("1/2") == (1, 2)
    for text in ("2/2", "-1/2", "0/0"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^expected 0 <= I < N, got '{text}'$"):
            orchestrate.parse_shard(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected I/N with integers 0 <= I < N, e.g. 0/2; got '1'$"):
        orchestrate.parse_shard("1")


def test_a_finished_note_counts_only_when_written_since_and_for_every_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "seed0", tmp_path / "b" / "seed0"
    assert not orchestrate._finished_since(tmp_path, [a], 0.0)  # no note
    (tmp_path / ".finished.json").write_text(json.dumps({"time": 100.0, "runs": [str(a), str(b)]}))
    assert orchestrate._finished_since(tmp_path, [a, b], 100.0) and orchestrate._finished_since(tmp_path, [a], 50.0)
    assert not orchestrate._finished_since(tmp_path, [a, b], 100.5)  # written before this process started
    assert not orchestrate._finished_since(tmp_path, [a, b, tmp_path / "c"], 50.0)  # a run the note does not cover
    (tmp_path / ".finished.json").write_text("{")
    assert not orchestrate._finished_since(tmp_path, [a], 0.0)  # corrupt: not a note


def test_two_rows_of_a_plan_in_one_run_folder_are_refused(tmp_path: Path) -> None:
    # only the first would train; the second found it "done" and was skipped without a word
    with pytest.raises(
        orchestrate.ConfigError,
        match=r"^rows '.*-erm\.yaml' and '.*-mixup\.yaml' of the plan share the run folder '.*same/seed0' \(name 'same', "
        r"seed 0\) \(--set name=\.\.\. gives every row one name\); each row needs its own name$",
    ):
        _plan("cifar", "--scale", "cpu", "--seeds", "1", "--out", str(tmp_path), "--set", "name=same")


def test_the_plan_refuses_a_finished_run_of_another_recipe_before_training_anything(tmp_path: Path) -> None:
    from vicinal.experiments.config import load_config
    from vicinal.experiments.runs import dump_config

    erm = load_config("cifar/cpu/cifar10-preact_resnet18-erm", ["train.seed=0", "optim.lr=0.5"])
    run = tmp_path / erm.name / "seed0"
    dump_config(erm, run / "config.yaml")
    (run / "summary.json").write_text('{"status": "complete"}')
    with pytest.raises(
        orchestrate.ConfigError,
        match=rf"^run folder '{run}' holds a finished run of a different config \(differs at optim.lr\); use another",
    ):
        _plan("cifar", "--scale", "cpu", "--seeds", "1", "--out", str(tmp_path), "--dry-run")


def test_shards_split_the_plan_every_nth_run_to_the_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["reproduce", "cifar", "--scale", "cpu", "--seeds", "2", "--out", str(tmp_path), "--dry-run"]
    states = {}
    for shard in ("0/2", "1/2"):
        proc = in_process(capsys, *argv, "--shard", shard)
        assert proc.returncode == 0, proc.stderr
        assert f"dry run: 2 of 4 runs would be trained by shard {shard}\n" in proc.stdout
        states[shard] = [line.split("]")[0].strip(" [") for line in proc.stdout.splitlines() if line.startswith("  [")]
    assert states == {"0/2": ["new", "shard", "new", "shard"], "1/2": ["shard", "new", "shard", "new"]}


def test_a_shard_takes_over_a_run_of_another_shard_whose_owner_died_and_notes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.experiments.lab_helpers import register_synthetic

    register_synthetic()
    out = tmp_path / "t"
    erm, mixup = (out / f"cifar10-preact_resnet18-{m}-cpu" / "seed0" for m in ("erm", "mixup"))
    mixup.mkdir(parents=True)
    (mixup / ".claim").write_text(f"{socket.gethostname()} 999999999")  # shard 1's process, dead (no such pid)
    proc = in_process(capsys, *TINY_TABLE, "--seeds", "1", "--shard", "0/2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"[takeover] {mixup}: its claim ({socket.gethostname()} 999999999) names a process" in proc.stdout
    assert "not finished yet" not in proc.stdout and (out / "report" / "report.md").is_file()
    # the note that tells a process finishing at the same time that the report is written
    assert json.loads((out / ".finished.json").read_text())["runs"] == [str(erm), str(mixup)]
