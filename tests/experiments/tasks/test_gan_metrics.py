"""The GAN toy data and metrics (tasks/gan_metrics.py): mode locations, sampling, mode counts, sliced Wasserstein,
the convergence rule and errors."""

from __future__ import annotations

import math

import pytest
import torch

from tests.experiments.lab_helpers import one_thread  # noqa: F401 (autouse fixture: torch on one thread)
from vicinal.experiments.tasks.gan_metrics import (
    evaluate_samples,
    high_quality_mask,
    is_converged,
    mode_counts,
    sample_toy,
    sliced_wasserstein,
    toy_modes,
)


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


def test_a_sample_exactly_3_std_from_its_mode_is_high_quality():
    # in float32, 0.03 ** 2 == (3 * 0.01) ** 2: the boundary of the 3-std ball belongs to it
    mask, nearest = high_quality_mask(torch.tensor([[0.03, 0.0], [0.0, -0.0301]]), toy_modes("grid"), std=0.01)
    assert mask.tolist() == [True, False] and nearest.tolist() == [12, 12]


def test_two_projections_are_the_two_axes():
    # n_proj directions theta = pi k / n_proj: for 2 the x and the y axis (not x twice, as 2 pi k / n_proj gives)
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert sliced_wasserstein(a, a + torch.tensor([0.0, 1.0]), n_proj=2).item() == pytest.approx(math.sqrt(0.5))
    assert sliced_wasserstein(a, a + torch.tensor([1.0, 0.0]), n_proj=2).item() == pytest.approx(math.sqrt(0.5))


def test_sample_toy_draws_the_modes_then_the_noise():
    x = sample_toy("ring", 6, generator=torch.Generator().manual_seed(7), std=0.1)
    g = torch.Generator().manual_seed(7)
    idx = torch.randint(8, (6,), generator=g)
    assert torch.equal(x, toy_modes("ring")[idx] + 0.1 * torch.randn(6, 2, generator=g))


def test_mode_counts_count_high_quality_samples_only():
    ring = toy_modes("ring")
    pts = torch.cat([_on_modes(ring[:1], 3), ring[1:2] + 0.5])  # 3 on mode 0, one sample far from mode 1
    assert mode_counts(pts, ring).tolist() == [3, 0, 0, 0, 0, 0, 0, 0]


def test_a_run_with_an_infinite_point_has_no_sliced_distance():
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    runs = torch.stack([real + 0.5, torch.tensor([[0.0, 0.0], [math.inf, 0.0]])])
    w2 = sliced_wasserstein(runs, real)
    assert w2[0].item() == pytest.approx(0.5) and math.isnan(w2[1].item())
