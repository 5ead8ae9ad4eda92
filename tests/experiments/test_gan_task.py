"""The GAN task (Section 3.7; tasks.gan and tasks.gan_train): toy data, metrics, the vmapped trainer against a
plain one, the table and figure."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.func import functional_call

import vicinal.experiments.tasks.gan as gan_task
import vicinal.experiments.tasks.gan_train as gan_train
from vicinal.experiments.data.seeds import derive_seed, make_generator
from vicinal.experiments.models import build_model
from vicinal.experiments.report import make_report
from vicinal.experiments.runs import read_metrics, read_provenance, read_summary
from vicinal.experiments.tasks.gan import PROTOCOLS, GANProtocol, plot_gan_figure, run_gan_table
from vicinal.experiments.tasks.gan_metrics import (
    evaluate_samples,
    high_quality_mask,
    is_converged,
    mode_counts,
    sample_toy,
    sliced_wasserstein,
    toy_modes,
)
from vicinal.experiments.tasks.gan_train import (
    GANConfig,
    draw_block,
    erm_discriminator_loss,
    init_gan_params,
    mlp_forward,
    train_gan_runs,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: on a shared 2-core machine a second intra-op thread only spin-waits (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = {"iterations": 4, "batch_size": 16, "d_steps": 2, "width": 16, "eval_every": 2, "n_eval": 64}


def tiny(**kw) -> GANConfig:
    return GANConfig(**{**TINY, "snapshot_iters": (1, 4), "n_snapshot": 32, "block": 3, **kw})


# ---------------------------------------------------------------------------------------------------- toy data


def test_toy_modes_locations():
    ring = toy_modes("ring")
    assert ring.shape == (8, 2)
    torch.testing.assert_close(ring.norm(dim=1), torch.ones(8))
    angles = torch.atan2(ring[:, 1], ring[:, 0]).remainder(2 * math.pi)
    torch.testing.assert_close(angles, torch.arange(8) * (math.pi / 4), atol=1e-6, rtol=0)
    grid = toy_modes("grid")
    assert grid.shape == (25, 2)
    assert {tuple(p) for p in grid.int().tolist()} == {(x, y) for x in range(-2, 3) for y in range(-2, 3)}
    assert torch.equal(grid, grid.round())


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_sample_toy_std_modes_and_seed(name):
    gen = torch.Generator().manual_seed(0)
    x = sample_toy(name, 20000, generator=gen, std=0.01)
    modes = toy_modes(name)
    d2 = (x.unsqueeze(1) - modes).pow(2).sum(-1)
    nearest = d2.argmin(1)
    resid = x - modes[nearest]  # (n, 2): N(0, 0.01^2) per coordinate
    assert abs(resid.std().item() - 0.01) < 0.0003
    assert resid.mean(0).abs().max().item() < 0.0005
    share = torch.bincount(nearest, minlength=len(modes)).float() / len(x)
    assert (share - 1 / len(modes)).abs().max().item() < 0.015  # uniform over modes
    # seeded: the same seed gives the same points, another seed other points
    again = sample_toy(name, 20000, generator=torch.Generator().manual_seed(0), std=0.01)
    other = sample_toy(name, 20000, generator=torch.Generator().manual_seed(1), std=0.01)
    assert torch.equal(x, again) and not torch.equal(x, other)


def test_toy_errors():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="unknown toy dataset 'spiral'"):
        toy_modes("spiral")
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        sample_toy("ring", 0, generator=gen)
    with pytest.raises(ValueError, match="std must be a number > 0, got -0.1"):
        sample_toy("ring", 4, generator=gen, std=-0.1)


# ---------------------------------------------------------------------------------------------------- metrics


def _on_modes(modes: torch.Tensor, per_mode: int, offset: float = 0.0) -> torch.Tensor:
    """``per_mode`` points on each mode, shifted by ``offset`` along x: (K * per_mode, 2)."""
    pts = modes.repeat_interleave(per_mode, dim=0).clone()
    pts[:, 0] += offset
    return pts


def test_metrics_all_modes_half_modes_off_modes():
    grid = toy_modes("grid")
    real = _on_modes(grid, 100)  # (2500, 2)
    m = evaluate_samples(_on_modes(grid, 100), "grid", real)
    assert (int(m["modes_covered"]), float(m["high_quality"]), int(m["n_modes"])) == (25, 1.0, 25)
    assert float(m["sliced_w2"]) == pytest.approx(0.0, abs=1e-6)

    ring = toy_modes("ring")
    half = _on_modes(ring[::2], 625)  # 2500 points on 4 of the 8 modes
    m = evaluate_samples(half, "ring", _on_modes(ring, 625 // 2 + 1)[:2500])
    assert (int(m["modes_covered"]), float(m["high_quality"])) == (4, 1.0)

    # halfway between neighbouring grid modes: 0.5 away from both, far outside 3 std = 0.03
    off = _on_modes(grid, 100, offset=0.5)
    m = evaluate_samples(off, "grid", real)
    assert (int(m["modes_covered"]), float(m["high_quality"])) == (0, 0.0)

    # 60% on the modes, 40% 0.5 away: high-quality share 0.6, every mode still has 60 >= 20 points
    mixed = torch.cat([_on_modes(grid, 60), _on_modes(grid, 40, offset=0.5)])
    m = evaluate_samples(mixed, "grid", real)
    assert (int(m["modes_covered"]), float(m["high_quality"])) == (25, pytest.approx(0.6))


def test_metrics_thresholds_and_batching():
    ring = toy_modes("ring")
    # 2.9 std from mode 0 is high quality, 3.1 std is not
    pts = torch.tensor([[1.029, 0.0], [1.031, 0.0], [0.0, 1.0], [float("nan"), 0.0]])
    mask, nearest = high_quality_mask(pts, ring, std=0.01)
    assert mask.tolist() == [True, False, True, False]
    assert nearest[:3].tolist() == [0, 0, 2]
    # a mode needs min_count high-quality points: 19 on mode 0 -> not covered, 20 on mode 1 -> covered
    pts = torch.cat([_on_modes(ring[:1], 19), _on_modes(ring[1:2], 20)])
    counts = mode_counts(pts, ring)
    assert counts.tolist() == [19, 20, 0, 0, 0, 0, 0, 0]
    m = evaluate_samples(pts, "ring", pts.flip(0), min_count=20)
    assert int(m["modes_covered"]) == 1
    # batched over runs: metrics of (S, N, 2) equal the metrics of each run alone
    runs = torch.stack([_on_modes(ring, 5), _on_modes(ring, 5, offset=0.5), _on_modes(ring[:2], 20)])
    real = _on_modes(ring, 5)
    batched = evaluate_samples(runs, "ring", real, min_count=5)
    for s in range(3):
        alone = evaluate_samples(runs[s], "ring", real, min_count=5)
        for key in ("modes_covered", "high_quality", "sliced_w2"):
            assert batched[key][s].item() == pytest.approx(alone[key].item())
    assert batched["modes_covered"].tolist() == [8, 0, 2]


def test_sliced_wasserstein_reference_values():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(500, 2, generator=gen, dtype=torch.float64)
    c = torch.tensor([0.3, -0.4], dtype=torch.float64)  # |c| = 0.5
    # a translation by c moves every projection by <c, u>: SW2^2 = mean_theta <c, u_theta>^2 = |c|^2 / 2
    assert sliced_wasserstein(a, a + c).item() == pytest.approx(0.5 / math.sqrt(2), rel=1e-12)
    assert sliced_wasserstein(a, a[torch.randperm(500, generator=gen)]).item() == pytest.approx(0.0, abs=1e-12)
    # a scaling by k of centred points: per direction W2^2 = (k - 1)^2 mean <a, u>^2
    k = 1.5
    u = torch.stack([torch.cos(t := torch.arange(64, dtype=torch.float64) * math.pi / 64), torch.sin(t)])
    expected = math.sqrt((k - 1) ** 2 * (a @ u).pow(2).mean().item())
    assert sliced_wasserstein(a, k * a).item() == pytest.approx(expected, rel=1e-12)
    bad = a.clone()
    bad[3, 0] = float("nan")
    assert math.isnan(sliced_wasserstein(torch.stack([bad, a]), a)[0].item())
    assert sliced_wasserstein(torch.stack([bad, a]), a)[1].item() == pytest.approx(0.0, abs=1e-12)


def test_is_converged_rule():
    assert is_converged(8, 8, 0.5)
    assert not is_converged(7, 8, 0.9)
    assert not is_converged(8, 8, 0.49)
    assert not is_converged(8, 8, float("nan"))


def test_metric_errors():
    a = torch.zeros(10, 2)
    with pytest.raises(ValueError, match=r"a has 10 points but b has 9"):
        sliced_wasserstein(a, torch.zeros(9, 2))
    with pytest.raises(ValueError, match=r"samples must have shape \(\.\.\., N, 2\) with N >= 1, got \(10, 3\)"):
        high_quality_mask(torch.zeros(10, 3), toy_modes("ring"))
    with pytest.raises(ValueError, match="n_proj must be an int >= 2, got 1"):
        sliced_wasserstein(a, a, n_proj=1)
    with pytest.raises(ValueError, match="min_count must be an int >= 1, got 0"):
        evaluate_samples(a, "ring", a, min_count=0)
    with pytest.raises(TypeError, match="a must be a torch.Tensor, got list"):
        sliced_wasserstein([[0.0, 0.0]], a)


# ---------------------------------------------------------------------------------------------------- training


def test_mlp_forward_equals_gan_mlp_module():
    module = build_model("gan_mlp", in_features=2, out_features=1, hidden=8, layers=3, seed=0)
    params = dict(module.named_parameters())
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mlp_forward(params, x), functional_call(module, params, (x,)), rtol=0, atol=0)


def _reference_run(config: GANConfig, seed: int, lr: float) -> tuple[dict, dict]:
    """One GAN trained the plain way: nn.Modules, torch.optim.Adam, losses written out with F, no vmap."""
    g_params, d_params, gen = init_gan_params(config, seed)
    G = build_model("gan_mlp", in_features=2, out_features=2, hidden=config.width, layers=config.layers)
    D = build_model("gan_mlp", in_features=2, out_features=1, hidden=config.width, layers=config.layers)
    G.load_state_dict(g_params)
    D.load_state_dict(d_params)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr)
    block = draw_block(config, gen, config.iterations)  # block >= iterations in the callers: one draw
    for it in range(config.iterations):
        for k in range(config.d_steps):
            real, z, lam = block["real"][it, k], block["z_d"][it, k], block["lam"][it, k]
            with torch.no_grad():
                fake = G(z)
            if config.method == "mixup":
                w = lam.unsqueeze(1)
                loss = F.binary_cross_entropy_with_logits(D(w * real + (1 - w) * fake).squeeze(1), lam)
            else:
                loss = F.binary_cross_entropy_with_logits(
                    D(real).squeeze(1), torch.ones(len(real))
                ) + F.binary_cross_entropy_with_logits(D(fake).squeeze(1), torch.zeros(len(real)))
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
        logits = D(G(block["z_g"][it])).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    return dict(G.named_parameters()), dict(D.named_parameters())


@pytest.mark.parametrize("method", ["mixup", "erm"])
def test_vmapped_member_equals_single_run_and_plain_reference(method):
    config = tiny(method=method, block=4)
    seeds, lrs = [3, 7, 7], [1e-3, 1e-3, 1e-4]
    batched = train_gan_runs(config, seeds, lrs)
    alone = train_gan_runs(config, [7], 1e-4)
    ref_g, ref_d = _reference_run(config, 7, 1e-4)
    for name, p in alone.g_params.items():
        torch.testing.assert_close(batched.g_params[name][2], p[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(p[0], ref_g[name].detach(), rtol=0, atol=1e-5)
    for name, p in alone.d_params.items():
        torch.testing.assert_close(batched.d_params[name][2], p[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(p[0], ref_d[name].detach(), rtol=0, atol=1e-5)
    # the parameters did move, and the two learning rates of seed 7 ended in different places
    init_g, _, _ = init_gan_params(config, 7)
    assert (alone.g_params["head.weight"][0] - init_g["head.weight"]).abs().max() > 1e-5
    assert (batched.d_params["head.weight"][1] - batched.d_params["head.weight"][2]).abs().max() > 1e-4
    # the metrics of the batched member are those of the single run
    last = [r for r in batched.history if r["run"] == 2 and r["iteration"] == 4][0]
    single = [r for r in alone.history if r["iteration"] == 4][0]
    assert last["high_quality"] == single["high_quality"]
    assert last["sliced_w2"] == pytest.approx(single["sliced_w2"], abs=1e-5)


def test_each_seed_has_its_own_derived_streams():
    config = tiny()
    g0, d0, gen0 = init_gan_params(config, 0)
    g1, _, _ = init_gan_params(config, 1)
    common = {"hidden": config.width, "layers": config.layers}
    expected_g = build_model(
        "gan_mlp", in_features=2, out_features=2, seed=derive_seed(0, gan_train.STREAM_INIT, 0), **common
    )
    expected_d = build_model(
        "gan_mlp", in_features=2, out_features=1, seed=derive_seed(0, gan_train.STREAM_INIT, 1), **common
    )
    for name, p in expected_g.named_parameters():
        assert torch.equal(g0[name], p.detach())
    for name, p in expected_d.named_parameters():
        assert torch.equal(d0[name], p.detach())
    assert not torch.equal(g0["head.weight"], g1["head.weight"])
    # the data stream is make_generator(seed, STREAM_DATA), not a generator seeded with the bare seed
    reference = make_generator(0, gan_train.STREAM_DATA)
    assert torch.equal(draw_block(config, gen0, 2)["real"], draw_block(config, reference, 2)["real"])


def test_training_is_deterministic_and_block_is_part_of_the_stream():
    a = train_gan_runs(tiny(block=3), [5])
    b = train_gan_runs(tiny(block=3), [5])
    c = train_gan_runs(tiny(block=1), [5])
    for name in a.g_params:
        assert torch.equal(a.g_params[name], b.g_params[name])
    # another block size interleaves the draws differently: another (equally valid) random stream
    assert not torch.equal(a.g_params["head.weight"], c.g_params["head.weight"])
    assert a.history == b.history


def test_mixup_path_calls_the_library_objective(monkeypatch):
    calls = {"mixup": 0, "generator": 0}
    lib_mixup, lib_gen = gan_train.mixup_discriminator_loss, gan_train.generator_loss

    def spy_mixup(*args, **kwargs):
        calls["mixup"] += 1
        return lib_mixup(*args, **kwargs)

    def spy_gen(*args, **kwargs):
        calls["generator"] += 1
        return lib_gen(*args, **kwargs)

    monkeypatch.setattr(gan_train, "mixup_discriminator_loss", spy_mixup)
    monkeypatch.setattr(gan_train, "generator_loss", spy_gen)
    config = tiny()
    train_gan_runs(config, [0, 1])
    # one call per discriminator step (vmap traces the per-run function once per batched call)
    assert calls == {"mixup": config.iterations * config.d_steps, "generator": config.iterations}
    calls.update(mixup=0, generator=0)
    train_gan_runs(tiny(method="erm"), [0])
    assert calls == {"mixup": 0, "generator": config.iterations}


def test_draw_block_lam_distributions():
    gen = torch.Generator().manual_seed(0)
    uni = draw_block(tiny(lam_distribution="uniform"), gen, 50)["lam"]
    assert uni.shape == (50, 2, 16) and 0 <= uni.min() and uni.max() <= 0.2 and uni.max() > 0.19
    beta = draw_block(tiny(), torch.Generator().manual_seed(0), 50)["lam"]
    # Beta(0.2, 0.2) is U-shaped on (0, 1): most mass near 0 and 1, mean 1/2
    assert beta.max() > 0.9 and ((beta < 0.1) | (beta > 0.9)).float().mean() > 0.5
    assert abs(beta.mean().item() - 0.5) < 0.05
    erm = draw_block(tiny(method="erm"), torch.Generator().manual_seed(0), 2)
    assert torch.equal(erm["lam"], torch.zeros(2, 2, 16))


def test_erm_discriminator_loss_reference():
    gen = torch.Generator().manual_seed(0)
    D = build_model("gan_mlp", in_features=2, out_features=1, hidden=8, layers=2, seed=1)
    real, fake = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    p_real, p_fake = torch.sigmoid(D(real)), torch.sigmoid(D(fake))
    expected = -(p_real.log().mean() + (1 - p_fake).log().mean())
    torch.testing.assert_close(erm_discriminator_loss(D, real, fake), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"real batch has shape \(6, 2\) but fake batch has \(5, 2\)"):
        erm_discriminator_loss(D, real, fake[:5])


def test_training_errors():
    with pytest.raises(ValueError, match="unknown dataset 'moons'"):
        GANConfig(dataset="moons")
    with pytest.raises(ValueError, match="unknown method 'wgan'"):
        GANConfig(method="wgan")
    with pytest.raises(ValueError, match="unknown lam_distribution 'normal'"):
        GANConfig(lam_distribution="normal")
    with pytest.raises(ValueError, match=r"snapshot_iters must lie in \[1, iterations=4\], got \[5\]"):
        tiny(snapshot_iters=(1, 5))
    with pytest.raises(ValueError, match="std must be a number > 0, got 0.0"):
        tiny(std=0.0)
    with pytest.raises(ValueError, match="alpha must be a number > 0, got -1"):
        tiny(alpha=-1)
    with pytest.raises(ValueError, match="d_steps must be an int >= 1, got 0"):
        tiny(d_steps=0)
    with pytest.raises(ValueError, match="n_snapshot \\(100\\) must not exceed n_eval \\(64\\)"):
        tiny(n_snapshot=100)
    with pytest.raises(ValueError, match="seeds is empty"):
        train_gan_runs(tiny(), [])
    with pytest.raises(ValueError, match="got 1 learning rates for 2 seeds"):
        train_gan_runs(tiny(), [0, 1], [1e-3])
    with pytest.raises(ValueError, match=r"learning rates must be finite and > 0, got \[0.0\]"):
        train_gan_runs(tiny(), [0], 0.0)
    with pytest.raises(TypeError, match="seed must be an int, got str '0'"):
        init_gan_params(tiny(), "0")


# ---------------------------------------------------------------------------------------------------- table


def test_run_gan_table_writes_summary_figure_and_provenance(tmp_path):
    out = run_gan_table(
        tmp_path / "run",
        "cpu",
        seeds=2,
        iterations=20,
        widths=(8,),
        d_steps=(1,),
        lrs=(1e-3,),
        eval_every=10,
        n_eval=100,
        datasets=("ring",),
        log=None,
    )
    names = {p.name for p in out.iterdir()}
    expected = {"protocol.json", "provenance.json", "metrics.jsonl", "runs.csv", "summary.csv", "summary.md"}
    assert expected | {"gan_figure.png", "snapshots.npz"} <= names
    assert (out / "gan_figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 3  # methods x seeds x evaluations (0, 10, 20)
    assert {(r["method"], r["seed"], r["iteration"]) for r in records} == {
        (m, s, it) for m in ("erm", "mixup") for s in (0, 1) for it in (0, 10, 20)
    }
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["dataset"], r["method"]) for r in rows] == [("ring", "erm"), ("ring", "mixup")]
    for row in rows:
        assert row["runs_grid"] == "2" and row["modes_covered_n"] == "2" and row["n_modes"] == "8"
    finals = list(csv.DictReader(open(out / "runs.csv")))
    assert len(finals) == 4 and {r["iteration"] for r in finals} == {"20"}
    # the summary's means are the means of the final records
    erm_hq = [float(r["high_quality"]) for r in finals if r["method"] == "erm"]
    assert float(rows[0]["high_quality_mean"]) == pytest.approx(sum(erm_hq) / 2)
    md = (out / "summary.md").read_text()
    assert "| ring | mixup |" in md and "converge" in md and "gan_figure.png" in md
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["iterations"] == 20 and protocol["snapshot_iters"] == [1, 10, 20]
    assert protocol["default_width"] == 8 and protocol["default_d_steps"] == 1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seeds"] == [0, 1] and prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert "git_commit" in prov and prov["argv"] and prov["group_seconds"] and prov["wall_seconds"] >= 0
    # one standard run folder per run, which the report groups by name (seeds pooled)
    for method, seed in ((m, s) for m in ("erm", "mixup") for s in (0, 1)):
        folder = out / "runs" / f"gan-ring-{method}-w8-d1-lr0.001" / f"seed{seed}"
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert (config["name"], config["table"], config["row"]) == (
            f"gan-ring-{method}-w8-d1-lr0.001",
            "gan",
            f"ring/{method}",
        )
        assert config["train"] == {"seed": seed, "lr": 1e-3} and config["gan"]["width"] == 8
        summary = read_summary(folder)
        final = [r for r in finals if (r["method"], r["seed"]) == (method, str(seed))][0]
        assert summary["status"] == "complete" and summary["iteration"] == 20
        assert summary["high_quality"] == pytest.approx(float(final["high_quality"]))
        assert summary["converged"] == (final["converged"] == "True")
        assert [r["iteration"] for r in read_metrics(folder)] == [0, 10, 20]
        assert read_provenance(folder)["seed"] == seed
    report = make_report([out], tmp_path / "report")
    assert {g["name"]: g["n"] for g in report["groups"]} == {
        "gan-ring-erm-w8-d1-lr0.001": 2,
        "gan-ring-mixup-w8-d1-lr0.001": 2,
    }
    # and prints the GAN outcome tables from the run folders, equal to the table's own summary
    md = (out / "summary.md").read_text()
    for row in ("| ring | erm |", "| ring | mixup |"):
        table_lines = [line for line in md.splitlines() if line.startswith(row)]
        report_lines = [line for line in report["markdown"].splitlines() if line.startswith(row)]
        assert len(table_lines) == 2 and report_lines == table_lines
    assert "## GANs (Figure 5): the paper's setting" in report["markdown"]
    with pytest.raises(ValueError, match="already holds a run"):
        run_gan_table(out, "cpu", seeds=1, iterations=2, log=None)


def test_protocols_and_table_errors(tmp_path):
    paper = PROTOCOLS["paper"]
    assert (paper.iterations, paper.default_width, paper.default_d_steps, paper.default_lr) == (20000, 512, 5, 1e-3)
    assert paper.snapshot_iters == (10, 100, 1000, 10000, 20000)
    assert PROTOCOLS["cpu"].snapshot_iters == tuple(
        max(1, round(it * PROTOCOLS["cpu"].iterations / 20000)) for it in (10, 100, 1000, 10000, 20000)
    )
    with pytest.raises(ValueError, match="unknown scale 'gpu'; known scales: paper, cpu"):
        run_gan_table(tmp_path / "x", "gpu")
    with pytest.raises(ValueError, match="threads must be an int >= 1, got 0"):
        run_gan_table(tmp_path / "x", "cpu", threads=0)
    with pytest.raises(TypeError, match="seeds must be an int or a sequence of ints, got str"):
        run_gan_table(tmp_path / "x", "cpu", seeds="3")
    with pytest.raises(ValueError, match=r"default_lr 0.1 is not in lrs \(0.001,\)"):
        GANProtocol(scale="cpu", iterations=2, widths=(8,), d_steps=(1,), lrs=(1e-3,), seeds=(0,), default_lr=0.1)
    with pytest.raises(ValueError, match=r"widths has repeated values: \(8, 8\)"):
        GANProtocol(scale="cpu", iterations=2, widths=(8, 8), d_steps=(5,), lrs=(1e-3,), seeds=(0,))
    with pytest.raises(ValueError, match="samples is empty"):
        plot_gan_figure({}, {}, tmp_path / "f.png")


def test_main_parses_arguments(monkeypatch, tmp_path):
    seen = {}

    def fake_table(out, scale, seeds, **kwargs):
        seen.update(out=out, scale=scale, seeds=seeds, **kwargs)
        return out

    monkeypatch.setattr(gan_task, "run_gan_table", fake_table)
    assert gan_task.main(["--out", str(tmp_path), "--scale", "paper", "--seeds", "0,4", "--threads", "0"]) == 0
    assert (seen["scale"], seen["seeds"], seen["iterations"], seen["threads"]) == ("paper", [0, 4], None, None)
    gan_task.main(["--out", str(tmp_path), "--seeds", "3"])
    assert (seen["scale"], seen["seeds"], seen["threads"]) == ("cpu", 3, 1)
    with pytest.raises(SystemExit):
        gan_task.main(["--out", str(tmp_path), "--seeds", "a,b"])
