"""The seed-ensemble engine: S stacked members step exactly as S separate models with their own optimizers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vicinal.experiments.ensemble import Ensemble, EnsembleError, member_groups

S = 3


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def states(models: list[nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]


OPTIMIZERS = [
    (torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6}),
    (torch.optim.Adam, {"weight_decay": 1e-2, "amsgrad": True}),
    (torch.optim.AdamW, {"weight_decay": 0.1}),
    (torch.optim.SGD, {}),
    (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
    (torch.optim.SGD, {"momentum": 0.9, "dampening": 0.1}),
]


@pytest.mark.parametrize(("optimizer", "options"), OPTIMIZERS)
def test_ensemble_step_equals_separate_optimizers_bit_for_bit(optimizer, options) -> None:
    models = [make_model(s) for s in range(S)]
    lrs = [1e-2, 1e-2, 3e-3]  # two groups: members 0-1 and member 2
    ens = Ensemble(states(models), optimizer, per_member={"lr": lrs}, **options)
    assert ens.groups == [(0, 2), (2, 3)] and len(ens) == S
    separate = [optimizer(m.parameters(), lr=lr, **options) for m, lr in zip(models, lrs, strict=True)]
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in ens.params]  # (S, ...) each
        ens.step(grads)
        for i, (m, opt) in enumerate(zip(models, separate, strict=True)):
            for p, grad in zip(m.parameters(), grads, strict=True):
                p.grad = grad[i].clone()
            opt.step()
    for i, m in enumerate(models):
        for name, p in m.named_parameters():
            assert torch.equal(ens.member(i)[name], p.detach()), (optimizer.__name__, options, i, name)
    # the step cleared the gradients it set, and the members moved apart from where they started
    assert all(p.grad is None for group in ens.optimizer.param_groups for p in group["params"])
    assert not torch.equal(ens.member(0)["0.weight"], states([make_model(0)])[0]["0.weight"])


def test_forward_and_autograd_step_equal_separate_training() -> None:
    models = [make_model(10 + s) for s in range(S)]
    ens = Ensemble(states(models), torch.optim.Adam, lr=1e-2)
    separate = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in models]
    template = make_model(0).to("meta")
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(S, 5, 4, generator=g)  # each member its own batch
        y = torch.randint(0, 3, (S, 5), generator=g)
        losses = ens.autograd_step(
            lambda params, x=x, y=y: nn.functional.cross_entropy(
                ens.forward(template, x, params).transpose(1, 2), y, reduction="none"
            ).mean(-1)
        )
        for i, (m, opt) in enumerate(zip(models, separate, strict=True)):
            loss = nn.functional.cross_entropy(m(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            torch.testing.assert_close(losses[i], loss.detach(), rtol=0, atol=1e-6)
    x = torch.randn(S, 7, 4, generator=g)
    out = ens.forward(template, x)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(x[i]).detach(), rtol=0, atol=1e-6)
        for name, p in m.named_parameters():
            torch.testing.assert_close(ens.as_dict()[name][i], p.detach(), rtol=0, atol=1e-6)


def test_member_groups() -> None:
    assert member_groups([]) == []
    assert member_groups([1.0]) == [(0, 1)]
    assert member_groups([1, 1, 2, 2, 1]) == [(0, 2), (2, 4), (4, 5)]


def test_errors() -> None:
    good = states([make_model(0), make_model(1)])
    with pytest.raises(EnsembleError, match="at least one member"):
        Ensemble([])
    with pytest.raises(EnsembleError, match="'LBFGS' is not one whose update is elementwise"):
        Ensemble(good, torch.optim.LBFGS)
    with pytest.raises(EnsembleError, match=r"member 1 has parameters \['0.weight'\]"):
        Ensemble([good[0], {"0.weight": good[1]["0.weight"]}])
    with pytest.raises(EnsembleError, match=r"member 1's '2.bias' has shape \(4,\); member 0's \(3,\)"):
        Ensemble([good[0], {**good[1], "2.bias": torch.zeros(4)}])
    with pytest.raises(EnsembleError, match="per_member 'lr' has 1 values for 2 members"):
        Ensemble(good, per_member={"lr": [0.1]})
    with pytest.raises(EnsembleError, match="option 'lr' is given both for all members and per member"):
        Ensemble(good, per_member={"lr": [0.1, 0.2]}, lr=0.1)
    ens = Ensemble(good, lr=0.1)
    with pytest.raises(EnsembleError, match="step got 1 gradients for 4 parameters"):
        ens.step([torch.zeros(2, 8, 4)])
    with pytest.raises(EnsembleError, match=r"one value per member, shape \(2,\); got torch.Size\(\[\]\)"):
        ens.autograd_step(lambda params: params[0].sum())


def test_every_per_member_option_splits_the_groups_and_reaches_the_optimizer() -> None:
    ens = Ensemble(
        states([make_model(s) for s in range(S)]),
        torch.optim.SGD,
        per_member={"lr": [0.1, 0.1, 0.1], "weight_decay": [0.0, 0.0, 0.5]},
    )
    assert ens.groups == [(0, 2), (2, 3)]
    assert [(g["lr"], g["weight_decay"]) for g in ens.optimizer.param_groups] == [(0.1, 0.0), (0.1, 0.5)]


def test_a_member_is_a_copy_that_later_steps_leave_alone() -> None:
    ens = Ensemble(states([make_model(s) for s in range(S)]), torch.optim.SGD, lr=0.1)
    before = ens.member(1)
    kept = {n: t.clone() for n, t in before.items()}
    ens.step([torch.ones_like(p) for p in ens.params])
    for name, t in before.items():
        assert torch.equal(t, kept[name]), name
        assert torch.equal(ens.member(1)[name], kept[name] - 0.1), name
