"""FGSM / I-FGSM against hand-computed gradient signs on a tiny linear model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from vicinal.experiments.attacks import (
    attack_errors,
    attack_file_stem,
    error_under_attack,
    every_nth,
    fgsm,
    ifgsm,
    trained_step,
)


def linear_model() -> nn.Linear:
    # logits = W x. For 2 classes, d CE / dx = W^T (p - e_y) = p_other * W^T (e_other - e_y), so its sign is
    # sign(W^T [-1, 1]) = sign([1*-1 + 3*1, 2*-1 + -0.5*1]) = [+, -] for y = 0 and [-, +] for y = 1.
    m = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -0.5]]))
    return m


def test_fgsm_matches_hand_computed_signs() -> None:
    x = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.95, 0.02]])
    y = torch.tensor([0, 1, 0])
    out = fgsm(linear_model(), x, y, eps=0.1)
    expected = torch.tensor([[0.6, 0.4], [0.4, 0.6], [1.0, 0.0]])  # last row clamped to [0, 1] on both sides
    assert torch.allclose(out, expected, atol=1e-7)
    unclamped = fgsm(linear_model(), x, y, eps=0.1, clamp=None)
    assert torch.allclose(unclamped[2], torch.tensor([1.05, -0.08]), atol=1e-7)
    assert not out.requires_grad and x.grad is None


def test_fgsm_eps_zero_is_identity_and_batching_does_not_matter() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.rand(6, 4), torch.randint(0, 3, (6,))
    assert torch.equal(fgsm(model, x, y, eps=0.0), x)
    whole = fgsm(model, x, y, eps=0.05)
    parts = torch.cat([fgsm(model, x[:2], y[:2], eps=0.05), fgsm(model, x[2:], y[2:], eps=0.05)])
    assert torch.equal(whole, parts)  # per-sample gradients: the sum reduction makes batches independent
    assert torch.equal(whole, fgsm(model, x, y, eps=0.05))  # deterministic


def test_ifgsm_on_a_linear_model_equals_fgsm() -> None:
    # For a 2-class linear model the gradient sign never changes, so 10 steps of eps/10 add up to eps.
    x = torch.tensor([[0.5, 0.5], [0.3, 0.7]])
    y = torch.tensor([0, 1])
    assert torch.allclose(
        ifgsm(linear_model(), x, y, eps=0.1, steps=10), fgsm(linear_model(), x, y, eps=0.1), atol=1e-6
    )
    assert torch.equal(ifgsm(linear_model(), x, y, eps=0.1, steps=1), fgsm(linear_model(), x, y, eps=0.1))


def test_ifgsm_stays_in_the_ball_and_the_box() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 4))
    x, y = torch.rand(32, 5), torch.randint(0, 4, (32,))
    adv = ifgsm(model, x, y, eps=0.2, steps=7)
    assert (adv - x).abs().max() <= 0.2 + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert torch.equal(adv, ifgsm(model, x, y, eps=0.2, steps=7))


def test_error_under_attack_counts_and_restores_mode() -> None:
    model = linear_model()
    model.train()
    x = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    y = torch.tensor([1, 1])  # logits at x: [1.5, 1.25] -> predicted 0: both wrong before any attack
    loader = [(x[:1], y[:1], torch.tensor([0])), (x[1:], y[1:], torch.tensor([1]))]
    assert error_under_attack(model, loader, fgsm, eps=0.0) == 100.0
    y0 = torch.tensor([0, 0])  # right at eps 0; eps 0.3 moves x to [0.8, 0.2]: logits [1.2, 2.3] -> wrong
    assert error_under_attack(model, [(x, y0)], fgsm, eps=0.0) == 0.0
    assert error_under_attack(model, [(x, y0)], fgsm, eps=0.3) == 100.0
    assert model.training


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": -0.1}, ValueError, r"eps must be a float >= 0, got -0.1"),
        ({"eps": float("nan")}, ValueError, r"eps must be a float >= 0, got nan"),
        (
            {"eps": 0.1, "clamp": (1.0, 0.0)},
            ValueError,
            r"clamp must be \(low, high\) with low < high, got \(1.0, 0.0\)",
        ),
    ],
)
def test_argument_errors(kwargs: dict, error: type, match: str) -> None:
    x, y = torch.rand(2, 2), torch.tensor([0, 1])
    with pytest.raises(error, match=match):
        fgsm(linear_model(), x, y, **kwargs)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match=r"y must have shape \(2,\) to match x of shape \(2, 2\), got \(3,\)"):
        fgsm(linear_model(), torch.rand(2, 2), torch.tensor([0, 1, 0]), eps=0.1)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got Tensor torch.int64"):
        fgsm(linear_model(), torch.ones(2, 2, dtype=torch.int64), torch.tensor([0, 1]), eps=0.1)
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got 0"):
        ifgsm(linear_model(), torch.rand(2, 2), torch.tensor([0, 1]), eps=0.1, steps=0)
    with pytest.raises(ValueError, match=r"the loader yielded no batches"):
        error_under_attack(linear_model(), [], fgsm, eps=0.1)


# -- top-5, black box, I-FGSM clamping, independent references --------------------------------------------------
class Bump(nn.Module):
    """2 classes on a scalar input: logits [0, -(x - 0.999)^2 * 100]. For y = 0 the loss grows with the second
    logit, so the gradient sign is + below 0.999 and - above: I-FGSM oscillates around 0.999."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), -100.0 * (x - 0.999) ** 2], dim=1)  # (B, 2)


def test_ifgsm_clamps_after_every_step() -> None:
    # eps 0.03, 3 steps of 0.01 from 0.985: 0.995 (+), 1.005 -> clamped to 1.0 (+), then 1.0 > 0.999 (-) -> 0.99.
    # Clamping only at the end would give 1.005 - 0.01 = 0.995.
    x, y = torch.tensor([[0.985]]), torch.tensor([0])
    out = ifgsm(Bump(), x, y, eps=0.03, steps=3)
    assert torch.allclose(out, torch.tensor([[0.99]]), atol=1e-6)
    assert torch.allclose(ifgsm(Bump(), x, y, eps=0.03, steps=3, clamp=None), torch.tensor([[0.995]]), atol=1e-6)


def reference_ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int) -> torch.Tensor:
    """An independent per-sample loop: the textbook I-FGSM (Kurakin et al.) with clip to the ball and the box."""
    out = []
    for xi, yi in zip(x, y, strict=True):
        adv = xi.clone()
        for _ in range(steps):
            a = adv.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(a[None]), yi[None])
            (g,) = torch.autograd.grad(loss, a)
            adv = adv + (eps / steps) * g.sign()
            adv = torch.max(torch.min(adv, xi + eps), xi - eps).clamp(0, 1)
        out.append(adv)
    return torch.stack(out)


def test_ifgsm_matches_a_per_sample_reference() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 5))
    x, y = torch.rand(9, 3, 2, 2), torch.randint(0, 5, (9,))
    assert torch.allclose(ifgsm(model, x, y, eps=0.05, steps=4), reference_ifgsm(model, x, y, 0.05, 4), atol=1e-6)


def test_against_torchattacks() -> None:
    ta = pytest.importorskip("torchattacks", reason="torchattacks (test-only reference) is not installed")
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(27, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x, y = torch.rand(16, 3, 3, 3), torch.randint(0, 10, (16,))
    eps = 4 / 255
    assert torch.allclose(fgsm(model, x, y, eps=eps), ta.FGSM(model, eps=eps)(x, y), atol=1e-6)
    ref = ta.BIM(model, eps=eps, alpha=eps / 10, steps=10)(x, y)
    assert torch.allclose(ifgsm(model, x, y, eps=eps, steps=10), ref, atol=1e-6)


def test_attack_errors_top5_and_black_box() -> None:
    # Target: 6 classes, logits = x @ W^T with W rows e_0..e_5 scaled: logits equal the inputs.
    target = nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        target.weight.copy_(torch.eye(6))
    x = torch.tensor([[0.9, 0.5, 0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.45]])
    y = torch.tensor([0, 0])
    # clean: sample 0 right (top-1), sample 1 has label 0 with the smallest logit: wrong at top-1 and top-5.
    res = attack_errors(target, [(x, y)], fgsm, eps=0.0)
    assert res == {
        "n": 2,
        "clean_top1_error": 50.0,
        "clean_top5_error": 50.0,
        "top1_error": 50.0,
        "top5_error": 50.0,
    }
    # White box, eps 0.25: d CE/dx = p - e_y, so sign = -1 at the label and +1 elsewhere: sample 0 becomes
    # [0.65, 0.75, 0.65, 0.55, 0.45, 0.35] (label 0 no longer first, still in the top 5).
    res = attack_errors(target, [(x, y)], fgsm, eps=0.25)
    assert (res["top1_error"], res["top5_error"]) == (100.0, 50.0)
    # Black box: a source whose gradient sign is the opposite (-W) pushes the label up instead: no new errors.
    source = nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        source.weight.copy_(-torch.eye(6))
    res = attack_errors(target, [(x, y)], fgsm, source=source, eps=0.25)
    expected = (x + 0.25 * torch.tensor([1.0, -1, -1, -1, -1, -1])).clamp(0, 1)
    assert torch.equal(fgsm(source, x, y, eps=0.25), expected)
    # sample 1 after the source's step: [0.35, 0, 0.05, 0.15, 0.25, 0.2]: label 0 now first.
    assert (res["top1_error"], res["top5_error"]) == (0.0, 0.0)


def test_attack_errors_restores_both_modes() -> None:
    target, source = linear_model(), linear_model()
    target.train()
    source.train()
    attack_errors(target, [(torch.rand(2, 2), torch.tensor([0, 1]))], fgsm, source=source, eps=0.1)
    assert target.training and source.training


@pytest.mark.parametrize("every", [1, 2, 3, 5, 12, 13])
@pytest.mark.parametrize("sizes", [(3, 4, 5), (5, 5, 2), (1, 1, 1, 9)])
def test_every_nth_keeps_global_positions(sizes: tuple[int, ...], every: int) -> None:
    n = sum(sizes)
    idx = torch.arange(n)
    batches = [(x, x + 100) for x in idx.split(list(sizes))]
    kept = list(every_nth(batches, every))
    assert all(b[0].numel() > 0 for b in kept)  # empty batches are skipped, not yielded
    got = torch.cat([b[0] for b in kept]) if kept else torch.empty(0, dtype=torch.long)
    assert torch.equal(got, idx[::every])
    assert torch.equal(torch.cat([b[1] for b in kept]), idx[::every] + 100)  # labels stay with their inputs


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_every_nth_rejects_bad_every(every: object) -> None:
    with pytest.raises(ValueError, match=f"every must be an int >= 1, got {every!r}"):
        list(every_nth([(torch.zeros(2),)], every))  # type: ignore[arg-type]


def test_attack_file_stem() -> None:
    assert attack_file_stem("fgsm", 4.0, 10) == "white-fgsm-eps4"
    assert attack_file_stem("ifgsm", 4.0, 10, 2) == "white-ifgsm-eps4-steps10-every2"
    assert attack_file_stem("ifgsm", 8, 3, 1, ("src", 1000)) == "black-ifgsm-eps8-steps3-from-src-seed1000"


def test_a_model_with_non_finite_outputs_is_wrong_under_attack_too() -> None:
    # the error counts read an all-NaN row as a prediction of class 0 (90% error on 10 classes, not 100%)
    from vicinal.experiments.attacks import _count_errors, _topk_errors

    nan = torch.nn.Linear(4, 10)
    with torch.no_grad():
        nan.weight.fill_(float("nan"))
    x, y = torch.randn(20, 4), torch.arange(20) % 10
    assert _count_errors(nan, x, y) == 20 and _topk_errors(nan, x, y) == (20, 20)


def test_ifgsm_results_lie_in_the_ball_exactly_on_both_sides() -> None:
    # The 10 steps of eps / 10 add up, in float32, to a little more or less than eps: only the projection keeps
    # every coordinate inside [x - eps, x + eps] exactly. For y = 0 the linear model's gradient sign is [+, -]
    # at every point, so coordinate 0 is pushed up and coordinate 1 down on every step.
    x = torch.rand(1000, 2, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(1000, dtype=torch.long)
    eps = 4 / 255
    adv = ifgsm(linear_model(), x, y, eps=eps, steps=10, clamp=None)
    assert ((adv >= x - eps) & (adv <= x + eps)).all()


def test_attack_errors_counts_a_label_ranked_fifth_as_a_top5_hit() -> None:
    # logits equal the inputs: label 4 has the 5th largest logit (a top-5 hit), label 5 the 6th (a miss)
    target = nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        target.weight.copy_(torch.eye(6))
    x = torch.tensor([[0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).repeat(2, 1)
    res = attack_errors(target, [(x, torch.tensor([4, 5]))], fgsm, eps=0.0)
    assert res == {"n": 2, "clean_top1_error": 100.0, "clean_top5_error": 50.0, "top1_error": 100.0, "top5_error": 50.0}


def test_attack_errors_reads_the_clean_errors_from_the_unattacked_inputs() -> None:
    # label 0 is first on the clean input; eps 0.2 gives [0.42, 0.7, 0.6, 0.5, 0.4, 0.25]: 4th, still in the top 5
    target = nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        target.weight.copy_(torch.eye(6))
    x = torch.tensor([[0.62, 0.5, 0.4, 0.3, 0.2, 0.05]])
    res = attack_errors(target, [(x, torch.tensor([0]))], fgsm, eps=0.2)
    assert res == {"n": 1, "clean_top1_error": 0.0, "clean_top5_error": 0.0, "top1_error": 100.0, "top5_error": 0.0}


def test_a_row_with_one_non_finite_logit_names_no_class_in_the_top_k() -> None:
    # topk puts the NaN first and the label (0) second: still no hit, as for predicted_class
    from vicinal.experiments.attacks import _topk_errors

    x = torch.tensor([[0.9, float("nan"), 0.1, 0.2, 0.3, 0.4], [0.9, 0.0, 0.1, 0.2, 0.3, 0.4]])
    assert _topk_errors(nn.Identity(), x, torch.tensor([0, 0])) == (1, 1)


@pytest.mark.parametrize(("status", "step"), [("complete", 7), ("max_steps", 3)])
def test_a_finished_run_gives_the_step_count_of_its_weights(tmp_path: Path, status: str, step: int) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"status": status, "global_step": step}))
    assert trained_step(tmp_path) == step
    (tmp_path / "summary.json").write_text(json.dumps({"status": "interrupted", "global_step": step}))
    with pytest.raises(ValueError, match=r"has not finished training \(status: interrupted\)"):
        trained_step(tmp_path)
