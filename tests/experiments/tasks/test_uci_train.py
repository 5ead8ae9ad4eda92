"""Tests for vicinal.experiments.tasks.uci_train: the batched (vmapped) trainer against the plain loop, the
per-member randomness, the protocol file and the errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import vicinal
from vicinal.experiments.data.base import TensorSplits, make_generator
from vicinal.experiments.data.seeds import STREAM_UCI_MIX
from vicinal.experiments.errors import TaskError
from vicinal.experiments.paths import configs_dir, data_root
from vicinal.experiments.tasks.uci import parse_overrides
from vicinal.experiments.tasks.uci_train import (
    Member,
    MemberResult,
    UCIProtocol,
    _chunk_size,
    _meta_mlp,
    epoch_plan,
    load_protocol,
    member_init,
    train_sequential,
    train_vmapped,
)

# 45 training rows at batch 16: two full batches and a last batch of 13 (the partial batch is exercised).
N_TRAIN, N_VAL, N_TEST, D, C = 45, 25, 30, 5, 3


FAST = UCIProtocol(epochs=2, hidden=16)


def synthetic_splits(seed: int) -> TensorSplits:
    """Three Gaussian blobs in 5-D, a different draw per seed (like a different split per seed)."""
    g = torch.Generator().manual_seed(1000 + seed)
    n = N_TRAIN + N_VAL + N_TEST
    y = torch.randint(0, C, (n,), generator=g)
    x = torch.randn(n, D, generator=g) + 1.5 * torch.nn.functional.one_hot(y, D).float()
    a, b = N_TRAIN, N_TRAIN + N_VAL
    return TensorSplits(train=(x[:a], y[:a]), val=(x[a:b], y[a:b]), test=(x[b:], y[b:]), num_classes=C)


@pytest.fixture(scope="module")
def splits() -> dict[int, TensorSplits]:
    return {s: synthetic_splits(s) for s in (0, 1, 2)}


def max_param_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_vmapped_member_equals_sequential_loop(splits: dict[int, TensorSplits]) -> None:
    members = [Member(0, 0.0), Member(0, 0.4), Member(1, 1.0), Member(2, 0.2)]
    before = torch.get_rng_state()
    batched = train_vmapped(splits, members, FAST, return_state=True)
    assert torch.equal(torch.get_rng_state(), before)  # only the members' own generators are used
    for m, r in zip(members, batched, strict=True):
        ref = train_sequential(splits[m.seed], m, FAST)  # nn.Module + torch.optim.Adam + vicinal.functional.mix
        assert (r.seed, r.alpha) == (m.seed, m.alpha)
        assert r.state is not None and ref.state is not None
        assert max_param_diff(r.state, ref.state) <= 1e-5
        np.testing.assert_allclose(r.train_loss, ref.train_loss, rtol=0, atol=1e-5)
        assert r.val_error == ref.val_error and r.test_error == ref.test_error
        assert r.train_error == ref.train_error
        assert len(r.val_error) == FAST.epochs


def test_member_does_not_depend_on_its_batch_mates_or_chunking(
    splits: dict[int, TensorSplits], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Member(1, 0.4)
    alone = train_vmapped(splits, [target], FAST, return_state=True)[0]
    monkeypatch.setattr("vicinal.experiments.tasks.uci_train._EVAL_ROWS", 7)  # evaluation in blocks of 7 rows
    blocks = train_vmapped(splits, [target], FAST)[0]
    monkeypatch.undo()
    assert (blocks.val_error, blocks.test_error, blocks.train_error) == (
        alone.val_error,
        alone.test_error,
        alone.train_error,
    )
    crowd = [Member(0, 0.0), Member(2, 1.0), target, Member(0, 0.2)]
    together = train_vmapped(splits, crowd, FAST, return_state=True)
    chunked = train_vmapped(splits, crowd, FAST, chunk_size=3, return_state=True)
    for other in (together[2], chunked[2]):
        assert other.state is not None and alone.state is not None
        assert max_param_diff(other.state, alone.state) <= 1e-6
        assert other.test_error == alone.test_error
    for a, b in zip(together, chunked, strict=True):
        assert a.state is not None and b.state is not None
        assert max_param_diff(a.state, b.state) <= 1e-6


def test_different_seeds_differ_and_same_seed_repeats(splits: dict[int, TensorSplits]) -> None:
    same = {1: splits[0], 2: splits[0]}  # two seeds on the same data: only init, order and mixing differ
    r = train_vmapped(same, [Member(1, 0.4), Member(2, 0.4)], FAST, return_state=True)
    assert r[0].state is not None and r[1].state is not None
    assert max_param_diff(r[0].state, r[1].state) > 1e-2
    model = _meta_mlp(C, D, FAST)
    assert not torch.equal(member_init(model, 1)["layer1.0.weight"], member_init(model, 2)["layer1.0.weight"])
    assert not torch.equal(epoch_plan(Member(1), 0, 45, 16).order, epoch_plan(Member(2), 0, 45, 16).order)
    again = train_vmapped(same, [Member(1, 0.4)], FAST, return_state=True)[0]
    assert again.state is not None and max_param_diff(again.state, r[0].state) == 0.0


def test_epoch_plan_erm_and_mixup() -> None:
    erm, mix = epoch_plan(Member(3, 0.0), 2, N_TRAIN, 16), epoch_plan(Member(3, 0.4), 2, N_TRAIN, 16)
    assert torch.equal(erm.order, mix.order)  # ERM and mixup of a seed see the same batches (paired design)
    assert torch.equal(torch.sort(erm.order).values, torch.arange(N_TRAIN))
    assert erm.lam.tolist() == [1.0, 1.0, 1.0] and erm.lam.dtype == torch.float64
    assert mix.lam.shape == (3,) and bool(((mix.lam > 0) & (mix.lam < 1)).all())
    assert mix.perm.shape == (3, 16)
    for row in mix.perm[:2]:
        assert torch.equal(torch.sort(row).values, torch.arange(16))
    assert torch.equal(torch.sort(mix.perm[2, :13]).values, torch.arange(13))  # last batch: 45 - 32 = 13 rows
    assert not torch.equal(mix.perm[0], torch.arange(16))
    same = epoch_plan(Member(3, 0.4), 2, N_TRAIN, 16)
    assert torch.equal(same.lam, mix.lam) and torch.equal(same.perm, mix.perm)
    assert not torch.equal(epoch_plan(Member(3, 0.4), 3, N_TRAIN, 16).order, mix.order)


def test_epoch_plan_lam_follows_beta() -> None:
    lam = epoch_plan(Member(0, 0.2), 0, 16 * 4000, 16).lam  # 4000 draws of Beta(0.2, 0.2)
    assert stats.kstest(lam.numpy(), stats.beta(0.2, 0.2).cdf).pvalue > 1e-3
    assert abs(float(lam.mean()) - 0.5) < 0.03


def test_mixup_on_off(splits: dict[int, TensorSplits]) -> None:
    # alpha -> 0: in float32 every lam of this seed's plans is 0 or 1 (checked, the premise of the test) ...
    for epoch in range(FAST.epochs):
        lam = epoch_plan(Member(0, 0.005), epoch, N_TRAIN, 16).lam.float()
        assert all(v < 1e-20 or v == 1.0 for v in lam.tolist())
    members = [Member(0, 0.0), Member(0, 1.0), Member(0, 0.005)]
    erm, mix, tiny = (r.state for r in train_vmapped(splits, members, FAST, return_state=True))
    assert erm is not None and mix is not None and tiny is not None
    assert max_param_diff(erm, mix) > 1e-3  # same init and order: mixing alone makes the difference
    # ... so each batch is itself or its permutation, whose mean loss and gradient equal ERM's up to the
    # summation order: mixup with a vanishing alpha recovers ERM.
    assert max_param_diff(erm, tiny) <= 1e-5
    # ERM in the batched model (1 * x + 0 * x[perm]) equals a loop that never mixes at all.
    ref = train_sequential(splits[0], Member(0, 0.0), FAST)
    assert ref.state is not None and max_param_diff(erm, ref.state) <= 1e-5


def test_member_init_is_pytorch_default_distribution() -> None:
    model = _meta_mlp(C, 400, UCIProtocol())
    state = member_init(model, 0)
    assert list(state) == [n for n, _ in model.named_parameters()]
    w = state["layer1.0.weight"]  # (128, 400): U(-1/20, 1/20)
    assert w.shape == (128, 400) and float(w.abs().max()) <= 0.05 and float(w.abs().max()) > 0.0499
    assert abs(float(w.std()) - 0.05 / math.sqrt(3)) < 1e-3
    assert float(state["head.bias"].abs().max()) <= 1 / math.sqrt(128)
    assert torch.equal(member_init(model, 0)["head.weight"], state["head.weight"])


def test_config_file_equals_the_defaults() -> None:
    assert load_protocol(configs_dir() / "uci" / "uci.yaml") == UCIProtocol()


def test_real_iris_smoke() -> None:
    if not (data_root() / "uci" / "iris").is_dir():
        pytest.skip(f"shared UCI data not found at {data_root() / 'uci'}; set VICINAL_DATA")
    from vicinal.experiments.data.uci import load_uci

    sp = {s: load_uci("iris", seed=s) for s in (0, 1)}
    rs = train_vmapped(sp, [Member(s, a) for s in (0, 1) for a in (0.0, 0.4)], UCIProtocol(epochs=1))
    assert all(0.0 <= r.test_error[-1] <= 1.0 for r in rs) and len(rs) == 4


def test_errors(splits: dict[int, TensorSplits], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown UCI protocol key\(s\) \['epoch'\]"):
        UCIProtocol.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="every mixup alpha must be a finite float > 0.*got -0.5"):
        UCIProtocol(alphas=(0.2, -0.5))
    with pytest.raises(ValueError, match="alphas must be a non-empty sequence"):
        UCIProtocol(alphas=())
    with pytest.raises(ValueError, match=r"alphas contain duplicates: \[0.2, 0.2\]"):
        UCIProtocol(alphas=(0.2, 0.2))
    with pytest.raises(ValueError, match="UCIProtocol.batch_size must be a positive int, got 0"):
        UCIProtocol(batch_size=0)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        UCIProtocol(val_fraction=0.0)
    for bad in (0.0, 1.5, float("inf")):  # passed a dry run and the banner, then failed inside the loader
        with pytest.raises(ValueError, match=rf"UCIProtocol.test_fraction must be in \(0, 1\), got {bad!r}"):
            UCIProtocol(test_fraction=bad)
    with pytest.raises(ValueError, match="Member.alpha must be a finite float >= 0"):
        Member(0, -1.0)
    with pytest.raises(ValueError, match="Member.seed must be an int >= 0, got -1"):
        Member(-1)
    with pytest.raises(ValueError, match="member seed 7 has no split; splits are given for seeds"):
        train_vmapped(splits, [Member(7)], FAST)
    with pytest.raises(TypeError, match="members must be Member objects, got tuple"):
        train_vmapped(splits, [(0, 0.0)], FAST)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"splits\[0\] must be a TensorSplits, got dict"):
        train_vmapped({0: {}}, [Member(0)], FAST)  # type: ignore[dict-item]
    as_int = TensorSplits(
        train=(splits[0].train[0].to(torch.uint8), splits[0].train[1]), val=splits[0].val, test=splits[0].test
    )
    with pytest.raises(ValueError, match=r"inputs must be float \(N, D\) features, got torch.uint8"):
        train_vmapped({0: as_int}, [Member(0)], FAST)
    with pytest.raises(TypeError, match="a UCI protocol must be a mapping, got list"):
        UCIProtocol.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no members to train"):
        train_vmapped(splits, [], FAST)
    uneven = {0: splits[0], 1: TensorSplits(train=splits[1].train, val=splits[1].val, test=splits[1].val)}
    with pytest.raises(ValueError, match=r"same sizes.*seed 1: train/val/test \(45, 5\)/\(25, 5\)/\(25, 5\)"):
        train_vmapped(uneven, [Member(0), Member(1)], FAST)
    no_val = {0: TensorSplits(train=splits[0].train, test=splits[0].test)}
    with pytest.raises(ValueError, match=r"splits\[0\] has no validation split"):
        train_vmapped(no_val, [Member(0)], FAST)
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        train_vmapped(splits, [Member(0)], FAST, chunk_size=0)
    with pytest.raises(ValueError, match="epoch_plan needs n_train >= 1"):
        epoch_plan(Member(0), 0, 0, 16)
    with pytest.raises(FileNotFoundError, match="UCI protocol file .*nope.yaml does not exist"):
        load_protocol(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("lr=abc", "UCIProtocol.lr must be a number, got 'abc'"),
        ("eps=null", "UCIProtocol.eps must be a number, got None"),
        ("beta1=x", "UCIProtocol.beta1 must be a number, got 'x'"),
        ("beta2=true", "UCIProtocol.beta2 must be a number, got True"),
        ("val_fraction=[1]", r"UCIProtocol.val_fraction must be a number, got \[1\]"),
        ("test_fraction=abc", "UCIProtocol.test_fraction must be a number, got 'abc'"),
        ("alphas=0.5", "alphas must be a non-empty sequence of positive floats, got 0.5"),
        ("alphas={a: 1}", "alphas must be a non-empty sequence of positive floats, got {'a': 1}"),
        ("alphas=[a]", r"every mixup alpha must be a finite float > 0 \(ERM is always run\), got 'a'"),
        ("alphas=[0.2,null]", r"every mixup alpha must be a finite float > 0 \(ERM is always run\), got None"),
    ],
)
def test_overrides_of_the_wrong_type_are_task_errors_naming_key_and_value(override: str, match: str) -> None:
    # Checked before the range comparisons: a str or None compared with a number was a TypeError with a traceback
    with pytest.raises(TaskError, match=f"^{match}$"):
        parse_overrides(UCIProtocol(), [override])


def test_number_like_protocol_values_are_still_accepted() -> None:
    assert UCIProtocol.from_dict({"lr": 1, "alphas": np.array([0.5, 1.0])}).alphas == (0.5, 1.0)
    assert UCIProtocol(lr=np.float32(0.01), alphas=(np.float32(0.5), 1)).alphas == (0.5, 1.0)


def test_each_epoch_draws_its_mixing_from_its_own_stream() -> None:
    for epoch in (0, 1):
        plan = epoch_plan(Member(3, 0.4), epoch, N_TRAIN, 16)
        g = make_generator(3, STREAM_UCI_MIX, epoch)
        lam = vicinal.sample_beta(0.4, (3,), generator=g)
        u = torch.rand(3, 16, generator=g)
        assert torch.equal(plan.lam, lam) and torch.equal(plan.perm[:2], u[:2].argsort(dim=1))
        assert torch.equal(plan.perm[2], torch.cat([u[2, :13].argsort(), torch.arange(13, 16)]))


def test_a_members_record_reports_the_last_epochs_errors() -> None:
    r = MemberResult(seed=1, alpha=0.2, train_loss=[0.9, 0.5], val_error=[0.4, 0.3], test_error=[0.35, 0.25])
    r.train_error = 0.1
    assert r.record() == {
        "seed": 1,
        "method": "mixup",
        "alpha": 0.2,
        "final_val_error": 0.3,
        "final_test_error": 0.25,
        "final_train_error": 0.1,
        "train_loss": [0.9, 0.5],
        "val_error": [0.4, 0.3],
        "test_error": [0.35, 0.25],
    }


@pytest.mark.parametrize(("features", "protocol"), [(1000, UCIProtocol()), (500, UCIProtocol(hidden=64, layers=3))])
def test_a_chunk_holds_as_many_members_as_fit_the_parameter_budget(features: int, protocol: UCIProtocol) -> None:
    n_params = sum(p.numel() for p in _meta_mlp(2, features, protocol).parameters())
    chunk = _chunk_size(features, 2, protocol)
    assert chunk * n_params <= 2**25 < (chunk + 1) * n_params
