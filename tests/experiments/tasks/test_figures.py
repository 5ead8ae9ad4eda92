"""Figures 1b, 2 and 3b on small seeded problems and tiny synthetic run folders."""

from __future__ import annotations

import json
import math
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from tests.experiments.lab_helpers import one_thread, tiny_config  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments.cli import main as cli_main
from vicinal.experiments.data.seeds import derive_seed
from vicinal.experiments.errors import LabWarning, TaskError
from vicinal.experiments.tasks import figures as figures_module
from vicinal.experiments.tasks.figures import (
    STREAM_TOY_INIT,
    figure1b,
    figure2,
    figure3b,
    interpolation_curves,
    load_trained,
    main,
    toy_moons,
    train_toy_mlp,
    train_toy_mlps,
)
from vicinal.experiments.trainer import Trainer, summarize


def test_toy_moons_seeded() -> None:
    x, y = toy_moons(50, 0.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (100, 2) and y.tolist() == [0] * 50 + [1] * 50
    # without noise: class 0 on the unit circle around the origin, class 1 on the unit circle around (1, 0.5)
    assert torch.allclose(x[:50].norm(dim=1), torch.ones(50))
    assert torch.allclose((x[50:] - torch.tensor([1.0, 0.5])).norm(dim=1), torch.ones(50))
    x2, _ = toy_moons(50, 0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="n_per_class must be >= 1, got 0"):
        toy_moons(0, generator=torch.Generator())


def test_train_toy_mlp_is_seeded() -> None:
    x, y = toy_moons(20, 0.1, generator=torch.Generator().manual_seed(0))
    a = train_toy_mlp(x, y, alpha=1.0, seed=3, steps=5)
    b = train_toy_mlp(x, y, alpha=1.0, seed=3, steps=5)
    c = train_toy_mlp(x, y, alpha=0.0, seed=3, steps=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    d = train_toy_mlp(x, y, alpha=1.0, seed=4, steps=5)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), d.parameters(), strict=True))


def test_train_toy_mlps_members_equal_single_runs_and_share_the_init() -> None:
    x, y = toy_moons(20, 0.1, generator=torch.Generator().manual_seed(0))
    together = train_toy_mlps(x, y, alphas=(0.0, 0.4, 1.0), seed=3, steps=6)
    for alpha, model in zip((0.0, 0.4, 1.0), together, strict=True):
        alone = train_toy_mlp(x, y, alpha=alpha, seed=3, steps=6)
        for p, q in zip(model.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # zero steps: every member is the initialisation derived from the seed's own stream
    start = train_toy_mlps(x, y, alphas=(0.0, 1.0), seed=3, steps=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(3, STREAM_TOY_INIT))
        expected = torch.nn.Linear(2, 64).weight.detach()
    assert torch.equal(start[0][0].weight, expected) and torch.equal(start[1][0].weight, expected)
    with pytest.raises(ValueError, match=r"alphas must be a non-empty sequence .* got \[-1.0\]"):
        train_toy_mlps(x, y, alphas=[-1.0], seed=0)


def test_figure1b_mixup_transitions_smoothly(tmp_path: Path) -> None:
    result = figure1b(tmp_path, steps=300, n_per_class=50, grid=60)
    share = result["uncertain_share"]
    # ERM's boundary is sharp; mixup's probability changes gradually between the classes
    assert share["mixup"] > 3 * share["erm"] and share["mixup"] > 0.1
    assert (tmp_path / "fig1b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((tmp_path / "fig1b.json").read_text())
    assert meta["figure"] == "fig1b" and meta["png"] == "fig1b.png"
    assert meta["command"].startswith("vicinal figure fig1b --seed 0 --alpha 1.0")
    with pytest.raises(ValueError, match="alpha must be > 0 for the mixup panel, got 0"):
        figure1b(tmp_path, alpha=0)


def test_interpolation_curves_against_closed_form() -> None:
    """For a linear model, d CE / d x = W^T (softmax(Wx + b) - target), target = lam e_yi + (1 - lam) e_yj."""
    gen = torch.Generator().manual_seed(0)
    model = nn.Linear(4, 3).eval()
    x_i, x_j = torch.randn(7, 4, generator=gen), torch.randn(7, 4, generator=gen)
    y_i, y_j = torch.randint(0, 3, (7,), generator=gen), torch.randint(0, 3, (7,), generator=gen)
    lams = [0.0, 0.3, 1.0]
    out = interpolation_curves(model, x_i, y_i, x_j, y_j, lams, batch_size=3)
    assert out["lam"] == lams
    with torch.no_grad():
        for k, lam in enumerate(lams):
            x = lam * x_i + (1 - lam) * x_j
            logits = model(x)
            target = lam * F.one_hot(y_i, 3).float() + (1 - lam) * F.one_hot(y_j, 3).float()
            grad = (logits.softmax(dim=1) - target) @ model.weight  # (7, 4)
            assert out["grad_norm"][k] == pytest.approx(float(grad.norm(dim=1).mean()), rel=1e-5)
            pred = logits.argmax(dim=1)
            assert out["miss_rate"][k] == pytest.approx(100.0 * float(((pred != y_i) & (pred != y_j)).float().mean()))
    with pytest.raises(ValueError, match="every lam must lie in"):
        interpolation_curves(model, x_i, y_i, x_j, y_j, [1.5])
    with pytest.raises(ValueError, match=r"pairs must match: x_i \(7, 4\), x_j \(6, 4\)"):
        interpolation_curves(model, x_i, y_i, x_j[:6], y_j, [0.5])


def _tiny_run(root: Path, variant: str, *extra: str) -> Path:
    cfg = tiny_config(f"name=tiny-{variant}", f"mix.variant={variant}", "train.epochs=1", "train.max_steps=2", *extra)
    run = root / variant
    Trainer(cfg, run, quiet=True).fit()
    return run


def test_figure2_from_run_folders(tmp_path: Path) -> None:
    erm, mix = _tiny_run(tmp_path, "erm"), _tiny_run(tmp_path, "mixup")
    model, cfg, data = load_trained(erm)
    assert cfg.mix.variant == "erm" and not model.training
    saved = torch.load(erm / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    result = figure2(erm, mix, tmp_path / "figs", n_pairs=20, lams=[0.0, 0.5, 1.0])
    assert (tmp_path / "figs" / "fig2.png").is_file()
    curves = result["curves"]
    # lam = 1 evaluates the ERM model on x_i itself: recompute with the same pairs
    gen = torch.Generator().manual_seed(0)
    n = data.train_dataset_y.shape[0]
    i = torch.randint(0, n, (20,), generator=gen)
    j = (i + torch.randint(1, n, (20,), generator=gen)) % n
    assert bool((i != j).all())
    with torch.no_grad():
        pred = model(data.train_dataset_x[i].float() / 255).argmax(dim=1)
    y = data.train_dataset_y
    expected = 100.0 * float(((pred != y[i]) & (pred != y[j])).float().mean())
    assert curves["erm"]["miss_rate"][2] == pytest.approx(expected)
    assert all(v > 0 and math.isfinite(v) for m in ("erm", "mixup") for v in curves[m]["grad_norm"])
    meta = json.loads((tmp_path / "figs" / "fig2.json").read_text())
    assert meta["curves"] == curves and f"--erm {erm} --mixup {mix}" in meta["command"]
    assert meta["command"].endswith("--lams 0.0,0.5,1.0")
    # the recorded command regenerates the same numbers
    argv = meta["command"].split()[2:]
    assert main(argv) == 0
    assert json.loads((tmp_path / "figs" / "fig2.json").read_text())["curves"] == curves


def test_figure2_errors(tmp_path: Path) -> None:
    erm = _tiny_run(tmp_path, "erm")
    other = _tiny_run(tmp_path, "mixup", "data.kwargs.n_per_class=8")
    with pytest.raises(ValueError, match="the two runs were trained on different data"):
        figure2(erm, other, tmp_path / "figs", n_pairs=4)
    with pytest.raises(ValueError, match="n_pairs must be an int >= 1, got 0"):
        figure2(erm, erm, tmp_path / "figs", n_pairs=0)
    # checked before any run is read: [] drew an empty figure recording `--lams ''`, others failed deep inside
    for kwargs, msg in (
        ({"lams": []}, r"^lams must be a non-empty list of floats in \[0, 1\], got \[\]$"),
        ({"lams": 0.5}, r"^lams must be a list of floats in \[0, 1\], got float 0.5$"),
        ({"lams": "0,0.5,1"}, r"^lams must be a list of floats in \[0, 1\], got str '0,0.5,1'$"),
        ({"lams": [0, 1.5]}, r"^lams must be a non-empty list of floats in \[0, 1\], got \[0, 1.5\]$"),
        ({"n_pairs": 50.0}, r"^n_pairs must be an int >= 1, got 50.0$"),
        ({"batch_size": 0}, r"^batch_size must be an int >= 1, got 0$"),
    ):
        with pytest.raises(ValueError, match=msg):
            figure2(erm, erm, tmp_path / "figs2", **kwargs)
    assert not (tmp_path / "figs2").exists()
    mix = _tiny_run(tmp_path / "same-data", "mixup")
    with pytest.raises(ValueError, match=r"--erm takes ERM runs, but '.*mixup' has mix.variant 'mixup'"):
        figure2(mix, erm, tmp_path / "figs", n_pairs=4)  # roles swapped: each curve under the other's name
    assert not (tmp_path / "figs").exists()


def test_figure2_refuses_runs_trained_on_other_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the class-sorted subsets of two seeds share their labels but not their images: the mixup curve would be
    # measured away from the mixup model's training points
    erm, mix = _tiny_run(tmp_path, "erm"), _tiny_run(tmp_path, "mixup")
    real = figures_module.load_trained

    def other_images(run: Path, **kwargs: object) -> tuple:
        model, cfg, data = real(run, **kwargs)
        if Path(run) == mix:
            data.train_dataset_x = data.train_dataset_x.flip(0)  # the same labels come from the class sort
        return model, cfg, data

    monkeypatch.setattr(figures_module, "load_trained", other_images)
    with pytest.raises(ValueError, match=r"trained on different images of .* \(the same labels; another subset seed"):
        figure2(erm, mix, tmp_path / "figs", n_pairs=4)
    with pytest.raises(ValueError, match="is not a run folder"):
        load_trained(tmp_path)


def test_figure_seeds_out_of_range_are_task_errors(tmp_path: Path) -> None:
    # torch.Generator.manual_seed overflowed with a traceback past 2**64; checked before anything is trained or read
    for bad in (2**63, 99999999999999999999999, -1, True):
        with pytest.raises(TaskError, match=rf"^seed must be an int in \[0, 2\*\*63\), got {bad!r}$"):
            figure1b(tmp_path / "figs", seed=bad, steps=1)
        with pytest.raises(TaskError, match=rf"^seed must be an int in \[0, 2\*\*63\), got {bad!r}$"):
            figure2(tmp_path / "no-erm", tmp_path / "no-mixup", tmp_path / "figs", seed=bad)
    assert not (tmp_path / "figs").exists()
    assert figure1b(tmp_path / "figs", seed=2**63 - 1, steps=1, n_per_class=4, grid=2)["settings"]["seed"] == 2**63 - 1


def _run(root: Path, name: str, seed: int, errors: list[float | None]) -> Path:
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    variant = "erm" if name == "erm" else "mixup"
    (run / "config.yaml").write_text(
        yaml.safe_dump({"name": name, "mix": {"variant": variant}, "train": {"seed": seed}})
    )
    records = [
        {"epoch": k + 1, "test_error": e, "train_loss": 1.0, "train_error": 1.0, "epoch_time_s": 1.0}
        for k, e in enumerate(errors)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "summary.json").write_text(json.dumps(summarize(records, "complete")))
    return run


def test_figure3b_curves(tmp_path: Path) -> None:
    _run(tmp_path / "erm", "erm", 0, [50.0, 30.0, 20.0, 19.5])
    _run(tmp_path / "erm", "erm", 1, [40.0, 20.0, 10.0, 10.5])
    mix = _run(tmp_path / "mix", "mixup", 0, [60.0, None, 12.0, 11.0])  # epoch 2 not evaluated
    result = figure3b([tmp_path / "erm"], [mix], tmp_path / "figs")
    erm = result["curves"]["erm"]
    assert erm["epoch"] == [1, 2, 3, 4] and erm["mean"] == [45.0, 25.0, 15.0, 15.0]
    assert erm["min"] == [40.0, 20.0, 10.0, 10.5] and erm["n_runs"] == 2
    assert erm["best"] == 15.0 and erm["epoch_within_1pt_of_best"] == 3
    m = result["curves"]["mixup"]
    assert m["epoch"] == [1, 3, 4] and m["epoch_within_1pt_of_best"] == 3
    assert (tmp_path / "figs" / "fig3b.png").is_file()
    with pytest.raises(ValueError, match="figure 3b needs ERM and mixup run folders, got 1 and 0"):
        figure3b([mix], [], tmp_path)
    # one folder as a str, and an iterator (read once: the recorded command names its folders)
    again = figure3b(str(tmp_path / "erm"), mix.parent.glob("seed*"), tmp_path / "figs2")
    assert again["curves"] == result["curves"]
    assert f"--erm {tmp_path / 'erm'} --mixup {mix} --out" in again["command"]


def test_figure3b_refuses_runs_of_the_other_method(tmp_path: Path) -> None:
    _run(tmp_path / "t", "erm", 0, [50.0, 30.0])
    mix = _run(tmp_path / "t", "mixup", 0, [40.0, 20.0])
    # a table folder given to both options: the two curves would be the same runs
    with pytest.raises(TaskError, match=rf"^--erm takes ERM runs, but '{mix}' has mix.variant 'mixup'$"):
        figure3b([tmp_path / "t"], [tmp_path / "t"], tmp_path / "figs")
    with pytest.raises(TaskError, match=r"^--mixup takes mixup runs \(mix.variant other than erm\), but .*'erm'$"):
        figure3b([tmp_path / "t" / "erm"], [tmp_path / "t" / "erm"], tmp_path / "figs")
    # a config without mix: is an ERM run, as the trainer reads it
    plain = tmp_path / "plain" / "seed0"
    plain.mkdir(parents=True)
    (plain / "config.yaml").write_text("name: plain\ntrain: {seed: 0}\n")
    (plain / "metrics.jsonl").write_text('{"epoch": 1, "test_error": 5.0}\n')
    with pytest.raises(TaskError, match=rf"^--mixup takes mixup runs .*'{plain}' has mix.variant 'erm'$"):
        figure3b([tmp_path / "t" / "erm"], [plain], tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


def test_figure3b_averages_only_the_epochs_every_run_has(tmp_path: Path) -> None:
    # seed 1 was interrupted after epoch 1: epochs 2-3 would be seed 0 alone under a legend saying n=2
    _run(tmp_path / "erm", "erm", 0, [20.0, 10.0, 10.0])
    short = _run(tmp_path / "erm", "erm", 1, [16.0])
    mix = _run(tmp_path / "mix", "mixup", 0, [30.0, 12.0, 8.0])
    with pytest.warns(
        LabWarning, match=r"fig3b --erm: plotting only the 1 epoch\(s\) evaluated in all 2 runs; .*seed0 eval"
    ):
        result = figure3b([tmp_path / "erm"], [mix], tmp_path / "figs")
    erm = result["curves"]["erm"]
    assert erm["n_runs"] == 2 and erm["epoch"] == [1] and erm["mean"] == [18.0] and erm["min"] == [16.0]
    assert result["curves"]["mixup"]["epoch"] == [1, 2, 3]
    (short / "metrics.jsonl").write_text('{"epoch": 1, "test_error": null}\n')  # no evaluated epoch at all
    with pytest.raises(TaskError, match=rf"^--erm: no epoch is evaluated in every run below .* \(none in {short}\)$"):
        figure3b([tmp_path / "erm"], [mix], tmp_path / "figs")


def test_cli_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path / "a", "erm", 0, [5.0, 4.0])
    _run(tmp_path / "b", "mixup", 0, [6.0, 3.0])
    out = tmp_path / "figs"
    assert main(["fig3b", "--erm", str(tmp_path / "a"), "--mixup", str(tmp_path / "b"), "--out", str(out)]) == 0
    assert "fig3b.png" in capsys.readouterr().out
    meta = json.loads((out / "fig3b.json").read_text())
    assert meta["command"] == f"vicinal figure fig3b --erm {tmp_path / 'a'} --mixup {tmp_path / 'b'} --out {out}"
    # the recorded command is the lab's: run through `vicinal`, it writes the same figure again
    (out / "fig3b.json").unlink()
    assert cli_main(shlex.split(meta["command"])[1:]) == 0
    assert json.loads((out / "fig3b.json").read_text()) == meta


def test_fig2_refuses_runs_of_two_recipes(tmp_path: Path) -> None:
    # helper-118: fig2 compared an ERM run with a mixup run of another lr and length without a word (fig3b refused)
    erm, mix = _tiny_run(tmp_path, "erm"), _tiny_run(tmp_path, "mixup", "optim.lr=0.01")
    with pytest.raises(
        TaskError, match=r"^the ERM and mixup runs differ in more than their mixing \(optim\.lr .*\); Figure 2 compares"
    ):
        figure2(erm, mix, tmp_path / "figs", n_pairs=4)
    assert not (tmp_path / "figs").exists()


def test_fig2_records_the_data_folder_it_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # helper-114: `vicinal figure fig2 --data DIR` recorded a command without --data, which run in another shell read
    # the runs' data from the default folder
    erm, mix = _tiny_run(tmp_path, "erm"), _tiny_run(tmp_path, "mixup")
    data, out = tmp_path / "data", tmp_path / "figs"
    data.mkdir()
    monkeypatch.delenv("VICINAL_DATA", raising=False)
    argv = ["figure", "fig2", "--erm", str(erm), "--mixup", str(mix), "--n-pairs", "4", "--out", str(out)]
    assert cli_main([*argv, "--data", str(data)]) == 0
    meta = json.loads((out / "fig2.json").read_text())
    assert shlex.split(meta["command"])[-2:] == ["--data", str(data.resolve())]
    (out / "fig2.json").unlink()
    assert cli_main(shlex.split(meta["command"])[1:]) == 0  # reruns to the same JSON
    assert json.loads((out / "fig2.json").read_text()) == meta
    assert cli_main(argv) == 0  # without --data nothing is added
    assert "--data" not in json.loads((out / "fig2.json").read_text())["command"]


def test_figures_refuse_what_would_plot_the_wrong_models(tmp_path: Path) -> None:
    # fig2 took an interrupted run's checkpoint as the trained model; fig3b averaged runs of other configs or data
    # sets as seeds of one curve, and compared ERM and mixup of different recipes, all without a word
    erm, mix = _tiny_run(tmp_path, "erm"), _tiny_run(tmp_path, "mixup")
    summary = json.loads((mix / "summary.json").read_text())
    (mix / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    with pytest.raises(TaskError, match=rf"^--mixup '{mix}' has not finished training; finish it first"):
        figure2(erm, mix, tmp_path / "figs", n_pairs=4)
    runs = [_run(tmp_path / "e", "erm", 0, [50.0, 30.0]), _run(tmp_path / "e", "erm", 1, [40.0, 20.0])]
    m = _run(tmp_path / "m", "mixup", 0, [45.0, 25.0])
    for run in (*runs, m):  # config.yaml as the trainer writes it: every key
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "data": {"name": "cifar10"}}))
    other = runs[1]
    config = yaml.safe_load((other / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({**config, "data": {"name": "digits"}}))
    with pytest.raises(TaskError, match=r"^--erm: '.*seed1' is not a seed of the recipe of '.*seed0' \(data.name"):
        figure3b([tmp_path / "e"], [m], tmp_path / "figs")
    other.joinpath("config.yaml").write_text(yaml.safe_dump({**config, "data": {"name": "cifar10"}}))  # one recipe
    config = yaml.safe_load((m / "config.yaml").read_text())
    (m / "config.yaml").write_text(yaml.safe_dump({**config, "data": {"name": "digits"}}))
    with pytest.raises(TaskError, match=r"^the ERM and mixup runs differ in more than their mixing \(data.name"):
        figure3b([tmp_path / "e"], [m], tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


def test_the_recorded_command_regenerates_and_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the command each figure's JSON records gave tracebacks on bad input, left --grid and lams' digits out, and
    # took an infinite noise
    result = figure1b(tmp_path / "a", steps=2, n_per_class=4, grid=7)
    assert result["settings"]["grid"] == 7 and "--grid 7" in result["command"]
    assert main([*result["command"].split()[2:-2], "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "fig1b.json").read_text())["uncertain_share"] == result["uncertain_share"]
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    for argv, message in (
        (["fig1b", "--steps", "2", "--out", str(tmp_path / "file")], f"--out '{tmp_path / 'file'}' is not a folder"),
        (
            ["fig2", "--erm", str(tmp_path / "nope"), "--mixup", str(tmp_path), "--out", str(tmp_path / "c")],
            "is not a run folder",
        ),
        (
            ["fig1b", "--noise", "inf", "--out", str(tmp_path / "c")],
            ": error: --noise must be a finite float >= 0, got inf",
        ),
        # grid**2 points evaluated at once: 100,000 asked for 40 GB and printed torch's traceback (helper-105)
        (
            ["fig1b", "--grid", "100000", "--steps", "1", "--out", str(tmp_path / "c")],
            ": error: --grid must be in [2, 2000] points per axis, got 100000",
        ),
        # the two checks were one message, which named the default steps=1000 beside a bad grid (helper-107)
        (["fig1b", "--steps", "0", "--out", str(tmp_path / "c")], ": error: --steps must be >= 1, got 0"),
        # the options typed, not the functions' parameter names (helper-118)
        (["fig1b", "--n-per-class", "0", "--out", str(tmp_path / "c")], ": error: --n-per-class must be >= 1, got 0"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m vicinal.experiments.tasks.figures: error: ") and message in err
        assert err.count("\n") == 1, err


def test_figure3b_counts_each_seed_once(tmp_path: Path) -> None:
    # a copied run folder was averaged in as one more seed ("ERM (n=3)" over two seeds)
    _run(tmp_path / "e", "erm", 0, [50.0, 30.0])
    _run(tmp_path / "e", "erm", 1, [40.0, 20.0])
    m = _run(tmp_path / "m", "mixup", 0, [45.0, 25.0])
    shutil.copytree(tmp_path / "e" / "erm" / "seed0", tmp_path / "e" / "erm" / "seed0-copy")
    with pytest.raises(TaskError, match=r"^--erm: '.*' and '.*' are both seed 0; pass each seed once$"):
        figure3b([tmp_path / "e"], [m], tmp_path / "figs")
