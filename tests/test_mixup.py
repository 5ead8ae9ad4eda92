"""Batch transforms against the paper's formula, for a given (lam, perm), every variant and dtype."""

import dataclasses
import functools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import vicinal
from tests.mixing_reference import DTYPES, dirichlet_reference, make, mix_reference, uint8_batch, within_rounding_bound
from vicinal import functional as VF


def batch(shape=(6, 3, 4, 4), num_classes=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dtype)
    y = torch.randint(0, num_classes, (shape[0],), generator=g)
    return x, y


def reference(x, y, lam, perm, num_classes):
    """The paper's formula, written out."""
    yh = F.one_hot(y, num_classes).float()
    return lam * x + (1 - lam) * x[perm], lam * yh + (1 - lam) * yh[perm]


SHAPES = [(6, 3, 4, 4), (5, 1, 16, 10), (7, 20), (4, 9), (3, 2, 5)]  # images, spectrograms, waveforms, tabular


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pairing", ["random", "same_class", "roll", "flip"])
def test_mixup_equals_paper_formula(shape, pairing):
    x, y = batch(shape)
    mixer = vicinal.Mixup(alpha=1.0, num_classes=4, pairing=pairing, seed=3)
    params = mixer.sample(x, y)
    xm, ym = mixer.apply_inputs(x, params), mixer.apply_targets(y, params)
    rx, ry = reference(x, y, params.lam, params.perm, 4)
    assert torch.equal(xm, rx)
    assert torch.equal(ym, ry)
    # __call__ is sample + apply with the same stream
    again = vicinal.Mixup(alpha=1.0, num_classes=4, pairing=pairing, seed=3)(x, y)
    assert torch.equal(again[0], rx) and torch.equal(again[1], ry)


def test_per_sample_lam_formula():
    x, y = batch((8, 5))
    mixer = vicinal.Mixup(alpha=0.4, num_classes=4, lam_mode="sample", seed=1)
    params = mixer.sample(x, y)
    lam = params.lam.float()
    assert lam.shape == (8,) and len(set(lam.tolist())) == 8
    xm, ym = mixer.apply_inputs(x, params), mixer.apply_targets(y, params)
    yh = F.one_hot(y, 4).float()
    assert torch.equal(xm, lam[:, None] * x + (1 - lam[:, None]) * x[params.perm])
    assert torch.equal(ym, lam[:, None] * yh + (1 - lam[:, None]) * yh[params.perm])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_keep_dtype_and_formula(dtype):
    x, y = batch((6, 3, 4, 4), dtype=dtype)
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=0)
    params = mixer.sample(x, y)
    xm = mixer.apply_inputs(x, params)
    assert xm.dtype == dtype
    assert torch.equal(xm, params.lam * x + (1 - params.lam) * x[params.perm])
    assert mixer.apply_targets(y, params).dtype == torch.float32


def test_uint8_is_rounded_not_truncated():
    x = torch.tensor([[0, 255, 10, 11]], dtype=torch.uint8).repeat(2, 1)
    x[1] = torch.tensor([1, 0, 11, 10], dtype=torch.uint8)
    perm = torch.tensor([1, 0])
    out = VF.mix(x, 0.3, perm)
    expected = (0.3 * x.float() + 0.7 * x[perm].float()).round().to(torch.uint8)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    # 0.3*10 + 0.7*11 = 10.7 -> 11 (truncation would give 10)
    assert out[0, 2] == 11
    assert torch.equal(VF.mix(x, 0.3, perm, out_dtype=torch.float32), 0.3 * x.float() + 0.7 * x[perm].float())


def test_uint8_float_output_by_choice():
    x = torch.randint(0, 256, (4, 3, 2, 2), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3])
    mixer = vicinal.Mixup(1.0, num_classes=4, uint8_output="float", seed=0)
    params = mixer.sample(x, y)
    out = mixer.apply_inputs(x, params)
    assert out.dtype == torch.float32
    assert torch.equal(out, params.lam * x.float() + (1 - params.lam) * x[params.perm].float())


@pytest.mark.parametrize("lam_mode", ["batch", "sample"])
def test_alpha_zero_returns_identical_batch(lam_mode):
    x, y = batch()
    mixer = vicinal.Mixup(0.0, num_classes=4, lam_mode=lam_mode, seed=0)
    xm, ym = mixer(x, y)
    assert torch.equal(xm, x)
    assert torch.equal(ym, F.one_hot(y, 4).float())


@given(
    alpha=st.sampled_from([0.1, 0.5, 1.0, 4.0]),
    n=st.integers(2, 16),
    seed=st.integers(0, 10_000),
    lam_mode=st.sampled_from(["batch", "sample"]),
)
@settings(max_examples=50, deadline=None)
def test_targets_are_distributions_with_two_nonzeros(alpha, n, seed, lam_mode):
    x, y = batch((n, 3), num_classes=5, seed=seed)
    mixer = vicinal.Mixup(alpha, num_classes=5, lam_mode=lam_mode, seed=seed)
    params = mixer.sample(x, y)
    ym = mixer.apply_targets(y, params)
    lam = torch.as_tensor(params.lam)
    assert bool(((lam >= 0) & (lam <= 1)).all())
    torch.testing.assert_close(ym.sum(1), torch.ones(n))
    assert int((ym > 0).sum(1).max()) <= 2
    assert bool((ym >= 0).all())


def test_dirichlet_formula_and_k_nonzeros():
    x, y = batch((9, 4), num_classes=6)
    mixer = vicinal.DirichletMixup(1.0, k=3, num_classes=6, lam_mode="sample", seed=0)
    p = mixer.sample(x, y)
    w = p.weights
    expected = sum(w[:, j : j + 1].float() * x[p.indices[j]] for j in range(3))
    torch.testing.assert_close(mixer.apply_inputs(x, p), expected, rtol=0, atol=1e-6)
    ym = mixer.apply_targets(y, p)
    torch.testing.assert_close(ym.sum(1), torch.ones(9))
    assert int((ym > 0).sum(1).max()) <= 3
    assert torch.equal(p.indices[0], torch.arange(9))


def test_mix_inputs_only_uses_closer_label():
    x, y = batch((8, 3), num_classes=4)
    mixer = vicinal.build("mix_inputs_only", alpha=1.0, num_classes=4, lam_mode="sample", seed=2)
    p = mixer.sample(x, y)
    ym = mixer.apply_targets(y, p)
    yh = F.one_hot(y, 4).float()
    expected = torch.where((p.lam >= 0.5)[:, None], yh, yh[p.perm])
    assert torch.equal(ym, expected)
    lam = p.lam.float()[:, None]
    assert torch.equal(mixer.apply_inputs(x, p), lam * x + (1 - lam) * x[p.perm])


def test_label_smoothing_values():
    x, y = batch((4, 3), num_classes=5)
    xm, ym = vicinal.build("label_smoothing", smoothing=0.1, num_classes=5)(x, y)
    assert torch.equal(xm, x)
    expected = torch.full((4, 5), 0.1 / 5)
    expected[torch.arange(4), y] = 1 - 0.1 + 0.1 / 5
    torch.testing.assert_close(ym, expected, rtol=0, atol=1e-7)


def test_mix_inputs_label_smoothing():
    x, y = batch((4, 3), num_classes=5)
    mixer = vicinal.build("mix_inputs_label_smoothing", alpha=1.0, smoothing=0.2, num_classes=5, seed=0)
    p = mixer.sample(x, y)
    ym = mixer.apply_targets(y, p)
    closer = y if p.lam >= 0.5 else y[p.perm]
    expected = 0.8 * F.one_hot(closer, 5).float() + 0.2 / 5
    torch.testing.assert_close(ym, expected, rtol=0, atol=1e-7)


def test_mixup_with_smoothing_mixes_smoothed_targets():
    x, y = batch((6, 3), num_classes=4)
    mixer = vicinal.Mixup(1.0, num_classes=4, smoothing=0.1, seed=0)
    p = mixer.sample(x, y)
    s = F.one_hot(y, 4).float() * 0.9 + 0.1 / 4
    assert torch.equal(mixer.apply_targets(y, p), p.lam * s + (1 - p.lam) * s[p.perm])


def test_gaussian_noise():
    x, y = batch((64, 3, 8, 8))
    mixer = vicinal.build("gaussian_noise", sigma=0.1, num_classes=4, seed=0)
    p = mixer.sample(x, y)
    xm = mixer.apply_inputs(x, p)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 0.1
    assert torch.equal(xm, x + noise)
    assert abs(float((xm - x).std()) - 0.1) < 0.005  # 12k draws: std error ~0.0006
    assert torch.equal(mixer.apply_targets(y, p), F.one_hot(y, 4).float())
    # noise drawn for this batch does not broadcast onto a batch of another shape
    with pytest.raises(ValueError, match=r"noise of shape \(64, 3, 8, 8\) but the inputs have shape \(64, 1, 8, 1\)"):
        mixer.apply_inputs(x[:, :1, :, :1], p)


def test_erm_identity():
    x, y = batch()
    xm, ym = vicinal.build("erm", num_classes=4)(x, y)
    assert xm is x and torch.equal(ym, F.one_hot(y, 4).float())


def test_cutmix_box_and_corrected_lam():
    x, y = batch((4, 3, 10, 12), num_classes=4)
    mixer = vicinal.CutMix(1.0, num_classes=4, seed=5)
    p = mixer.sample(x, y)
    y0, y1, x0, x1 = p.box
    expected = x.clone()
    expected[:, :, y0:y1, x0:x1] = x[p.perm][:, :, y0:y1, x0:x1]
    assert torch.equal(mixer.apply_inputs(x, p), expected)
    assert p.lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 120)
    yh = F.one_hot(y, 4).float()
    assert torch.equal(mixer.apply_targets(y, p), p.lam * yh + (1 - p.lam) * yh[p.perm])


def test_cutmix_box_clipped_at_border():
    box, lam = VF.cutmix_box(0.36, 10, 10, torch.tensor([0.0, 0.99]))  # cut 8x8 centred at (0, 9)
    assert box == (0, 4, 5, 10)
    assert lam == pytest.approx(1 - 20 / 100)


def test_mixup_or_cutmix_switch_probability():
    x, y = batch((4, 3, 8, 8), num_classes=4)
    mixer = vicinal.MixupOrCutMix(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.3, num_classes=4, seed=0)
    ops = [mixer.sample(x, y).op for _ in range(2000)]
    # binomial(2000, 0.3): std 20.5; 5 std tolerance
    assert abs(ops.count("cutmix") - 600) < 103
    assert set(ops) == {"mix", "cutmix"}
    assert all(
        o == "mix" for o in (vicinal.MixupOrCutMix(switch_prob=0.0, num_classes=4).sample(x, y).op for _ in range(20))
    )


def test_knn_partner_path():
    x, y = batch((5, 3), num_classes=4)
    xp, yp = batch((5, 3), num_classes=4, seed=9)
    mixer = vicinal.Mixup(1.0, num_classes=4, pairing="knn", seed=0)
    p = mixer.sample(x, y, partner=(xp, yp))
    xm, ym = mixer.apply_inputs(x, p), mixer.apply_targets(y, p)
    assert torch.equal(xm, p.lam * x + (1 - p.lam) * xp)
    assert torch.equal(ym, p.lam * F.one_hot(y, 4).float() + (1 - p.lam) * F.one_hot(yp, 4).float())
    with pytest.raises(ValueError, match=r"pairing='knn' needs partner=\(x_partner, y_partner\)"):
        mixer(x, y)


def test_regression_targets_mixed_linearly():
    x = torch.randn(6, 4)
    t = torch.randn(6, 2)
    mixer = vicinal.Mixup(1.0, regression=True, seed=0)
    p = mixer.sample(x, t)
    assert torch.equal(mixer.apply_targets(t, p), p.lam * t + (1 - p.lam) * t[p.perm])
    t1 = torch.randn(6)
    p = mixer.sample(x, t1)
    assert torch.equal(mixer.apply_targets(t1, p), p.lam * t1 + (1 - p.lam) * t1[p.perm])


def _multi_hot(n=8, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, generator=g) < 0.4).float()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("lam", [0.3, 0.8125])
def test_multi_label_targets_equal_timms_bit_for_bit(lam, eps):
    """timm's mixup_target(multi_label=True), written out: target.float() * (1 - eps) + 0.5 * eps, then
    y1 * lam + y1.flip(0) * (1 - lam)."""
    x, _ = batch((8, 3, 4, 4))
    y = _multi_hot()
    y1 = y.float() * (1.0 - eps) + 0.5 * eps
    timm = y1 * lam + y1.flip(0) * (1.0 - lam)
    mixer = vicinal.Mixup(num_classes=5, pairing="flip", multi_label=True, smoothing=eps)
    p = vicinal.MixParams(op="mix", lam=lam, perm=torch.arange(8).flip(0))
    assert torch.equal(mixer.apply_targets(y, p), timm)
    assert torch.equal(mixer.sample(x, y).perm, torch.arange(8).flip(0))


@pytest.mark.parametrize("kind", ["float", "long", "bool", "float64"])
def test_multi_label_targets_are_the_formula_for_every_label_dtype(kind):
    x, _ = batch((8, 3))
    y = {"float": _multi_hot(), "long": _multi_hot().long(), "bool": _multi_hot().bool()}.get(kind)
    if kind == "float64":
        y = torch.rand(8, 5, dtype=torch.float64)  # values in [0, 1] that are not 0 or 1: label confidences
    s = y.float() * 0.9 + 0.05  # smoothing 0.1 towards 0.5
    for lam_mode in ("batch", "sample"):
        mixer = vicinal.Mixup(1.0, lam_mode=lam_mode, multi_label=True, smoothing=0.1, seed=0)  # C from the rows
        p = mixer.sample(x, y)
        lam = p.lam if lam_mode == "batch" else p.lam.float().reshape(-1, 1)
        got = mixer.apply_targets(y, p)
        assert got.dtype == torch.float32 and got.shape == (8, 5)
        assert torch.allclose(got, lam * s + (1 - lam) * s[p.perm], rtol=0, atol=2**-23)
    cut = vicinal.MixupOrCutMix(num_classes=5, multi_label=True, seed=0)
    xi, _ = batch((8, 3, 6, 6))
    for _ in range(6):  # both branches
        p = cut.sample(xi, y)
        assert torch.equal(cut.apply_targets(y, p), p.lam * y.float() + (1 - p.lam) * y.float()[p.perm])


@pytest.mark.parametrize(
    ("make_it", "labels", "message"),
    [
        (
            lambda: vicinal.Mixup(multi_label=True),
            torch.tensor([0, 1, 2, 3, 4, 0, 1, 2]),
            r"^multi-label targets must be rows \(B, C\) of one value per class, got dtype torch\.int64 and shape \(8,\)$",
        ),
        (
            lambda: vicinal.Mixup(multi_label=True),
            _multi_hot() * 2,
            r"^multi-label targets must lie in \[0, 1\] \(1 where a class is present\), got values from 0 to 2$",
        ),
        (lambda: vicinal.Mixup(multi_label=True), _multi_hot() - 1, r"got values from -1 to 0$"),
        (
            lambda: vicinal.Mixup(multi_label=True),
            torch.where(_multi_hot() > 0, torch.nan, 0.0),
            r"^multi-label targets contain \d+ non-finite value\(s\) \(NaN or Inf\)$",
        ),
        (
            lambda: vicinal.Mixup(multi_label=True, num_classes=4),
            _multi_hot(),
            r"^labels have 5 classes \(shape \(8, 5\)\) but num_classes=4$",
        ),
        (
            lambda: vicinal.Mixup(multi_label=True),
            torch.zeros(8, 0),
            r"^multi-label targets need at least one class, got shape \(8, 0\)$",
        ),
        (
            lambda: vicinal.Mixup(num_classes=5),
            _multi_hot(),
            r"row \d sums to \d \(multi-hot targets: pass multi_label=True\)$",
        ),
    ],
    ids=["indices", "above-1", "below-0", "nan", "num_classes", "no-classes", "hint"],
)
def test_multi_label_errors_name_the_labels(make_it, labels, message):
    x, _ = batch((8, 3))
    with pytest.raises(ValueError, match=message):
        make_it()(x, labels)


def test_multi_label_options_that_contradict_it_are_refused():
    with pytest.raises(
        ValueError, match=r"^multi_label=True and regression=True are two kinds of targets: choose one$"
    ):
        vicinal.Mixup(multi_label=True, regression=True)
    for make_it in (
        lambda: vicinal.Mixup(multi_label=True, pairing="same_class"),
        lambda: vicinal.MixupOrCutMix(multi_label=True, pairing="same_class"),
    ):
        with pytest.raises(ValueError, match=r"^pairing='same_class' needs one class per sample, not multi-label"):
            make_it()
    assert "multi_label=True" in repr(vicinal.Mixup(multi_label=True)) and "multi_label" not in repr(vicinal.Mixup())


def test_multi_label_two_label_loss_equals_bce_on_the_mixed_targets():
    """binary cross-entropy is linear in its target: mixed_criterion's lam-weighted losses equal the loss of the
    mixed targets, per batch and per sample lam (float rounding)."""
    x, _ = batch((8, 3))
    y = _multi_hot()
    pred = torch.randn(8, 5)
    for lam_mode in ("batch", "sample"):
        mixer = vicinal.Mixup(1.0, lam_mode=lam_mode, multi_label=True, seed=1)
        p = mixer.sample(x, y)
        two = vicinal.mixed_criterion(F.binary_cross_entropy_with_logits, pred, y, p)
        soft = F.binary_cross_entropy_with_logits(pred, mixer.apply_targets(y, p))
        assert torch.allclose(two, soft, rtol=1e-6, atol=0)


def test_probability_labels_accepted():
    x, y = batch((6, 3), num_classes=4)
    soft = torch.softmax(torch.randn(6, 4), 1)
    mixer = vicinal.Mixup(1.0, seed=0)
    p = mixer.sample(x, soft)
    assert torch.equal(mixer.apply_targets(soft, p), p.lam * soft + (1 - p.lam) * soft[p.perm])


def test_batch_of_one_is_returned_unchanged():
    x, y = batch((1, 3, 4, 4))
    xm, ym = vicinal.Mixup(1.0, num_classes=4, seed=0)(x, y)
    assert xm is x and torch.equal(ym, F.one_hot(y, 4).float())


@pytest.mark.parametrize("n", [3, 5, 7])
def test_odd_batches_work(n):
    x, y = batch((n, 2, 3, 3))
    for pairing in ["random", "roll", "flip", "same_class"]:
        xm, ym = vicinal.Mixup(1.0, num_classes=4, pairing=pairing, seed=0)(x, y)
        assert xm.shape == x.shape and ym.shape == (n, 4)


def test_same_seed_bit_identical_and_state_dict_resumes():
    x, y = batch()
    a = vicinal.Mixup(1.0, num_classes=4, seed=11)
    b = vicinal.Mixup(1.0, num_classes=4, seed=11)
    assert all(torch.equal(u, v) for u, v in zip(a(x, y), b(x, y), strict=True))
    state = a.state_dict()
    first = a(x, y)
    a.load_state_dict(state)
    second = a(x, y)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_global_rng_not_used():
    x, y = batch()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    for name in ["mixup", "cutmix", "mixup_or_cutmix", "dirichlet", "gaussian_noise"]:
        vicinal.build(name, num_classes=4, seed=0)(x, y)
    assert torch.equal(torch.get_rng_state(), before)


def test_no_self_pairing_option():
    x, y = batch((10, 3))
    for _ in range(20):
        p = vicinal.Mixup(1.0, num_classes=4, allow_self=False).sample(x, y)
        assert not bool((p.perm == torch.arange(10)).any())


def test_build_lists_variants_and_repr():
    assert set(vicinal.VARIANTS) >= {"erm", "mixup", "cutmix", "mix_inputs_only", "label_smoothing", "dirichlet"}
    assert "alpha=0.5" in repr(vicinal.build("mixup", alpha=0.5, num_classes=3))


# -- validation: every error, matched by message ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        ({"alpha": -1.0}, ValueError, r"alpha must be a finite number >= 0, got -1.0"),
        ({"alpha": float("inf")}, ValueError, r"alpha must be a finite number >= 0, got inf"),
        ({"pairing": "knn2"}, ValueError, r"unknown pairing 'knn2'; known: random, same_class, roll, flip, knn"),
        ({"lam_mode": "pixel"}, ValueError, r"unknown lam_mode 'pixel'; known: batch, sample"),
        ({"targets": "hard"}, ValueError, r"unknown targets 'hard'; known: mixed, closer"),
        ({"num_classes": 0}, ValueError, r"num_classes must be an int >= 1, got 0"),
        ({"smoothing": 1.5}, ValueError, r"smoothing must be in \[0, 1\], got 1.5"),
        ({"uint8_output": "trunc"}, ValueError, r"unknown uint8_output 'trunc'; known: round, float"),
        ({"regression": True, "smoothing": 0.1}, ValueError, "label smoothing does not apply to regression targets"),
        ({"regression": True, "targets": "closer"}, ValueError, "targets='closer' needs class labels"),
    ],
)
def test_constructor_errors(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        vicinal.Mixup(**kwargs)


def test_unknown_variant_lists_known():
    with pytest.raises(ValueError, match=r"unknown variant 'mixupp'; known: erm, mixup, cutmix"):
        vicinal.build("mixupp")
    with pytest.raises(TypeError, match=r"variant 'erm': .*unexpected keyword argument 'alpha'"):
        vicinal.build("erm", alpha=1.0)


@pytest.mark.parametrize(
    "x, y, err, msg",
    [
        (torch.randn(4, 3), torch.tensor([0, 1, 2]), ValueError, r"labels have shape \(3,\) but the batch has 4 samples"),
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 4]), ValueError, r"labels must be in \[0, num_classes=4\), got values from 0 to 4"),
        (torch.randn(4, 3), torch.tensor([-1, 1, 2, 3]), ValueError, r"labels must be in \[0, num_classes=4\), got values from -1 to 3"),
        (torch.randn(2, 3), torch.zeros(2, 2, 2, dtype=torch.long), ValueError, r"integer labels must be class indices of shape \(B,\), got shape \(2, 2, 2\); pass one-hot"),
        (torch.randn(2, 3), torch.eye(2, 4, dtype=torch.long), ValueError, r"got shape \(2, 4\); pass one-hot or probability labels \(B, C\) as float \(y.float\(\)\)$"),
        (torch.randn(2, 3), torch.zeros(2, 1, dtype=torch.long), ValueError, r"got shape \(2, 1\); pass y.squeeze\(1\) for class indices$"),
        (torch.randn(2, 3), torch.zeros(2), ValueError, r"float labels must be probabilities of shape \(B, C\), got shape \(2,\); pass class indices as integers \(y\.long\(\)\), or regression=True for regression targets$"),
        (torch.randn(2, 3), torch.zeros(2, 5), ValueError, r"labels have 5 classes \(shape \(2, 5\)\) but num_classes=4"),
        (torch.randn(2, 3), torch.zeros(2, dtype=torch.bool), TypeError, r"labels must be class indices \(int64, int32, int16, int8 or uint8\) or float probabilities, got dtype torch.bool"),
        (torch.randn(2, 3), torch.zeros(2, dtype=torch.uint16), TypeError, r"^labels must be class indices \(int64, int32, int16, int8 or uint8\) or float probabilities, got dtype torch.uint16$"),
        (torch.randint(0, 5, (2, 3)), torch.tensor([0, 1]), TypeError, r"inputs must be a float16, bfloat16, float32, float64 or uint8 tensor, got dtype torch.int64"),
        (torch.randn(0, 3), torch.zeros(0, dtype=torch.long), ValueError, r"inputs is an empty batch \(shape \(0, 3\)\)"),
        (torch.tensor(1.0), torch.tensor([0]), ValueError, r"inputs must have at least 1 dimension\(s\) with the batch first, got shape \(\)"),
        ([1.0, 2.0], torch.tensor([0, 1]), TypeError, r"inputs must be a torch.Tensor, got list"),
        (torch.randn(2, 3), [0, 1], TypeError, r"labels must be a torch.Tensor, got list"),
    ],
)  # fmt: skip
def test_call_errors(x, y, err, msg):
    with pytest.raises(err, match=msg):
        vicinal.Mixup(1.0, num_classes=4, seed=0)(x, y)


def test_num_classes_required_for_int_labels():
    with pytest.raises(ValueError, match="num_classes is required to turn integer labels into one-hot targets"):
        vicinal.Mixup(1.0)(torch.randn(3, 2), torch.tensor([0, 1, 0]))


def test_non_finite_check():
    x = torch.randn(3, 2)
    x[1, 1] = float("nan")
    x[2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"inputs contain 2 non-finite value\(s\) \(NaN or Inf\)"):
        vicinal.Mixup(1.0, num_classes=2, check_finite=True)(x, torch.tensor([0, 1, 0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_check_in_every_float_dtype_and_for_inf_alone(dtype, bad):
    # guards check_finite beyond a float32 batch holding a NaN beside an Inf (only float32 checked, a NaN
    # in float64/bfloat16/float16 passed silently; V10: a NaN-only test let an Inf-only batch through)
    x = torch.randn(3, 2).to(dtype)
    x[1, 1] = bad
    with pytest.raises(ValueError, match=r"inputs contain 1 non-finite value\(s\) \(NaN or Inf\)"):
        vicinal.Mixup(1.0, num_classes=2, check_finite=True, seed=0)(x, torch.tensor([0, 1, 0]))


def test_partner_shape_errors():
    x, y = batch((4, 3))
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=0)
    with pytest.raises(ValueError, match=r"partner inputs have shape \(4, 2\) but inputs have \(4, 3\)"):
        mixer(x, y, partner=(torch.randn(4, 2), y))
    with pytest.raises(ValueError, match=r"partner labels have shape \(3,\) but labels have \(4,\)"):
        mixer(x, y, partner=(x, y[:3]))


def test_partner_batches_are_checked_on_every_call_whatever_is_drawn():
    # a partner of another dtype failed only on the batches that were mixed (prob < 1: a random batch), and
    # check_finite looked at the batch but not at its partners
    x, y = batch((4, 3, 6, 6))
    for mixer in (vicinal.Mixup(1.0, num_classes=4, seed=0, prob=0.5),
                  vicinal.MixupOrCutMix(1.0, 1.0, num_classes=4, seed=0)):  # fmt: skip
        for _ in range(8):
            with pytest.raises(
                ValueError, match=r"partner batch has dtype torch.float64 on cpu but inputs have dtype torch.float32"
            ):
                mixer(x, y, partner=(x.double(), y))
    xp = x.clone()
    xp[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"partner inputs contain 1 non-finite value\(s\)"):
        vicinal.Mixup(1.0, num_classes=4, seed=0, check_finite=True)(x, y, partner=(xp, y))
    with pytest.raises(TypeError, match="partner inputs must be a torch.Tensor, got list"):
        vicinal.Mixup(1.0, num_classes=4, seed=0)(x, y, partner=([1, 2], y))


def test_numpy_numbers_are_accepted_where_python_numbers_are():
    # num_classes = labels.max() + 1 on a numpy array is a numpy int; alpha from a numpy grid a numpy float
    x, y = batch((4, 3))
    plain = vicinal.Mixup(1.0, num_classes=4, seed=3)(x, y)
    from_numpy = vicinal.Mixup(np.float32(1.0), num_classes=np.int64(4), seed=np.int64(3))(x, y)
    assert all(torch.equal(a, b) for a, b in zip(plain, from_numpy, strict=True))
    assert vicinal.Mixup(num_classes=np.int64(4)).num_classes.__class__ is int
    assert vicinal.DirichletMixup(np.float64(0.5), k=np.int32(3), num_classes=4).k == 3
    perm = torch.tensor([1, 0, 3, 2])
    assert torch.equal(VF.mix(x, np.float32(0.25), perm), VF.mix(x, 0.25, perm))
    for bad, match in ((np.True_, "alpha must be a number, got bool"), (True, "alpha must be a number, got bool")):
        with pytest.raises(TypeError, match=match):
            vicinal.Mixup(bad, num_classes=4)
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 1, got np.float64\(4.0\)"):
        vicinal.Mixup(num_classes=np.float64(4.0))


def test_variant_specific_errors():
    x, y = batch((4, 6))
    with pytest.raises(ValueError, match=r"CutMix needs inputs of shape \(B, ..., H, W\), got shape \(4, 6\)"):
        vicinal.CutMix(1.0, num_classes=4)(x, y)
    with pytest.raises(ValueError, match=r"^unknown lam_mode 'elem'; known: batch, sample, pair$"):
        vicinal.CutMix(1.0, lam_mode="elem", pairing="flip")
    with pytest.raises(ValueError, match=r"^lam_mode='pair' gives each two samples .* got pairing='random'$"):
        vicinal.CutMix(1.0, lam_mode="pair")
    with pytest.raises(ValueError, match="k must be an int >= 2, got 1"):
        vicinal.DirichletMixup(k=1)
    with pytest.raises(ValueError, match=r"switch_prob must be in \[0, 1\], got 2.0"):
        vicinal.MixupOrCutMix(switch_prob=2.0)
    with pytest.raises(ValueError, match=r"cutmix_alpha=0 leaves the batches of its branch unmixed .* use Mixup"):
        vicinal.MixupOrCutMix(mixup_alpha=0.8, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match=r"mixup_alpha=0 leaves .*switch_prob=0.3; for one method alone use CutMix"):
        vicinal.MixupOrCutMix(mixup_alpha=0.0, cutmix_alpha=1.0, switch_prob=0.3)
    # the branch that is never drawn may have alpha 0, and both 0 is the ERM limit
    assert vicinal.MixupOrCutMix(mixup_alpha=0.8, cutmix_alpha=0.0, switch_prob=0.0).cutmix.alpha == 0.0
    assert vicinal.MixupOrCutMix(mixup_alpha=0.0, cutmix_alpha=0.0).mixup.alpha == 0.0
    with pytest.raises(TypeError, match="gaussian noise needs float inputs, got dtype torch.uint8"):
        vicinal.GaussianNoise(0.1, num_classes=4)(torch.zeros(4, 3, dtype=torch.uint8), y)
    with pytest.raises(ValueError, match="Dirichlet mixing draws its partners from the batch"):
        vicinal.DirichletMixup(num_classes=4)(x, y, partner=(x, y))


# -- the in-place fast path (issue 7) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lam_mode", ["batch", "sample"])
@pytest.mark.parametrize("pairing", ["random", "matching"])
def test_mixup_inplace_modifies_input_iff_inplace(small_chunks, dtype, lam_mode, pairing):
    x = make((8, 3, 4, 4), dtype)
    y = torch.arange(8) % 4
    kept = x.clone()
    plain = vicinal.Mixup(1.0, num_classes=4, lam_mode=lam_mode, pairing=pairing, seed=5)
    xm, ym = plain(x, y)
    assert torch.equal(x, kept) and xm.data_ptr() != x.data_ptr()
    p = vicinal.Mixup(1.0, num_classes=4, lam_mode=lam_mode, pairing=pairing, seed=5).sample(x, y)
    ref = mix_reference(x, p.lam, x[p.perm])
    assert torch.equal(xm, ref)

    fast = vicinal.Mixup(1.0, num_classes=4, lam_mode=lam_mode, pairing=pairing, inplace=True, seed=5)
    xf, yf = fast(x, y)
    assert xf is x and not torch.equal(x, kept)
    assert torch.equal(yf, ym)  # same stream, same targets
    if dtype == torch.uint8:
        assert torch.equal(xf, ref)
    else:
        assert within_rounding_bound(xf, ref, kept, kept[p.perm])

    exact = vicinal.Mixup(1.0, num_classes=4, lam_mode=lam_mode, pairing=pairing, inplace=True, exact=True, seed=5)
    x2 = kept.clone()
    assert torch.equal(exact(x2, y)[0], ref) and torch.equal(x2, ref)

    # exact=False out of place: a new tensor within the bound (the fused gather-and-mix), the caller's batch kept
    bounded = vicinal.Mixup(1.0, num_classes=4, lam_mode=lam_mode, pairing=pairing, exact=False, seed=5)
    x3 = kept.clone()
    xb, yb = bounded(x3, y)
    assert torch.equal(x3, kept) and xb.data_ptr() != x3.data_ptr() and torch.equal(yb, ym)
    if dtype == torch.uint8:
        assert torch.equal(xb, ref)
    else:
        assert within_rounding_bound(xb, ref, kept, kept[p.perm])
        assert not torch.equal(xb, kept)  # it did mix


def test_inplace_other_variants():
    x = make((6, 3, 8, 8), torch.float32)
    y = torch.arange(6) % 3
    for name, kwargs in [("cutmix", {}), ("dirichlet", {}), ("gaussian_noise", {"sigma": 0.1})]:
        expected, _ = vicinal.build(name, num_classes=3, seed=2, **kwargs)(x.clone(), y)
        z = x.clone()
        got, _ = vicinal.build(name, num_classes=3, seed=2, inplace=True, **kwargs)(z, y)
        assert got is z and torch.equal(got, expected), name
    # identity (alpha=0, a batch of one) returns the input itself, untouched
    z = x.clone()
    assert vicinal.Mixup(0.0, num_classes=3, inplace=True)(z, y)[0] is z and torch.equal(z, x)


def test_mixup_or_cutmix_inplace_matches_default():
    x = make((6, 3, 8, 8), torch.float32)
    y = torch.arange(6) % 3
    a = vicinal.MixupOrCutMix(num_classes=3, seed=0)
    b = vicinal.MixupOrCutMix(num_classes=3, seed=0, inplace=True, exact=True)
    for _ in range(6):
        z = x.clone()
        xa, ya = a(x, y)
        xb, yb = b(z, y)
        assert xb is z and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_per_sample_lam_large_batch_without_python_loops():
    # 512 samples, each with its own lam: one vectorised pass, exact against the broadcast formula
    x = make((512, 3, 8, 8), torch.float32)
    mixer = vicinal.Mixup(0.4, num_classes=4, lam_mode="sample", inplace=True, exact=True, seed=0)
    y = torch.arange(512) % 4
    p = vicinal.Mixup(0.4, num_classes=4, lam_mode="sample", seed=0).sample(x, y)
    ref = mix_reference(x, p.lam, x[p.perm])
    assert torch.equal(mixer(x.clone(), y)[0], ref)
    assert len(set(p.lam.tolist())) == 512


def test_inplace_and_pairing_errors():
    with pytest.raises(ValueError, match=r"inplace=True writes the mix into the input tensor.*uint8_output='float'"):
        vicinal.Mixup(inplace=True, uint8_output="float")
    mixer = vicinal.Mixup(1.0, num_classes=2, uint8_output="float", seed=0)
    xu = torch.zeros(4, 3, dtype=torch.uint8)
    params = mixer.sample(xu, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="cannot mix a uint8 batch in place with uint8_output='float'"):
        mixer.apply_inputs(xu, params, inplace=True)
    with pytest.raises(ValueError, match=r"unknown pairing 'pairs'; known: .*knn, matching"):
        vicinal.Mixup(pairing="pairs")


# -- issue 11: uint8 batches, eager validation, named errors, CutMix rounding ------------------------------------------
@pytest.mark.parametrize("lam_mode", ["batch", "sample"])
def test_dirichlet_mixes_uint8_in_float32_and_rounds(lam_mode):
    x = torch.full((4, 3, 2, 2), 200, dtype=torch.uint8)
    out = vicinal.DirichletMixup(alpha=1.0, k=3, num_classes=4, lam_mode=lam_mode, seed=0)(x, torch.arange(4))[0]
    assert out.dtype == torch.uint8 and torch.equal(out, x)  # a convex combination of 200s is 200
    x, y = uint8_batch()
    mixer = vicinal.DirichletMixup(alpha=1.0, k=3, num_classes=4, lam_mode=lam_mode, seed=1)
    params = mixer.sample(x, y)
    out = mixer.apply_inputs(x, params)
    exact = dirichlet_reference(x, params)
    assert out.dtype == torch.uint8
    assert float((out.float() - exact).abs().max()) <= 0.5 + 1e-4  # rounded to nearest, never truncated


@pytest.mark.parametrize(
    "make",
    [
        lambda: vicinal.Mixup(0.0, num_classes=4, uint8_output="float"),  # alpha=0: nothing mixed
        lambda: vicinal.Mixup(1.0, num_classes=4, uint8_output="float", seed=0),
        lambda: vicinal.CutMix(1.0, num_classes=4, uint8_output="float", seed=0),
        lambda: vicinal.MixupOrCutMix(num_classes=4, uint8_output="float", seed=0),
        lambda: vicinal.DirichletMixup(1.0, num_classes=4, uint8_output="float", seed=0),
        lambda: vicinal.ERM(num_classes=4, uint8_output="float"),
    ],
)
@pytest.mark.parametrize("n", [1, 8])
def test_uint8_output_float_dtype_depends_on_options_only(make, n):
    mixer = make()
    x, y = uint8_batch(n)
    for _ in range(6):
        out = mixer(x, y)[0]
        assert out.dtype == torch.float32
    assert torch.equal(x, uint8_batch(n)[0])  # the caller's batch is untouched


def test_cutmix_uint8_float_output_with_dataset_partners_equals_the_float_mix():
    # guards the partner conversion of CutMix(uint8_output="float") (with partner= the uint8 partners
    # were pasted into the float batch unconverted, and a supported combination raised a dtype error)
    x, y = uint8_batch(6, seed=1)
    xp, yp = uint8_batch(6, seed=2)
    got_x, got_y = vicinal.CutMix(1.0, num_classes=4, uint8_output="float", seed=0)(x, y, partner=(xp, yp))
    want_x, want_y = vicinal.CutMix(1.0, num_classes=4, seed=0)(x.float(), y, partner=(xp.float(), yp))
    assert got_x.dtype == torch.float32 and torch.equal(got_x, want_x) and torch.equal(got_y, want_y)
    assert not torch.equal(got_x, x.float())  # a box was pasted


def test_uint8_output_float_when_lam_is_exactly_one():
    mixer = vicinal.Mixup(1.0, num_classes=4, uint8_output="float")
    x, y = uint8_batch()
    p = vicinal.MixParams(op="mix", lam=1.0, perm=torch.arange(8).flip(0))
    out = mixer.apply_inputs(x, p)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())


def test_uint8_output_float_cutmix_is_exact_paste():
    mixer = vicinal.CutMix(1.0, num_classes=4, uint8_output="float", seed=0)
    x, y = uint8_batch()
    p = mixer.sample(x, y)
    out = mixer.apply_inputs(x, p)
    assert torch.equal(out, VF.cutmix(x, p.box, p.perm).float())


def test_mixup_or_cutmix_rejects_2d_batches_on_every_call():
    mixer = vicinal.MixupOrCutMix(num_classes=4, switch_prob=0.5, seed=0)
    x, y = torch.randn(8, 5), torch.arange(8) % 4
    for _ in range(20):
        with pytest.raises(ValueError, match=r"CutMix needs inputs of shape \(B, \.\.\., H, W\), got shape \(8, 5\)"):
            mixer(x, y)
    with pytest.raises(ValueError, match=r"CutMix needs inputs of shape \(B, \.\.\., H, W\), got shape \(1, 5\)"):
        vicinal.CutMix(num_classes=4)(torch.randn(1, 5), torch.tensor([0]))
    for shape in ((4, 3, 0, 0), (4, 3, 0, 5), (4, 3, 5, 0)):  # no pixels to cut a box from (area H * W = 0)
        with pytest.raises(ValueError, match=rf"CutMix needs images of at least 1x1 pixels, got shape \({shape[0]}, "):
            vicinal.CutMix(num_classes=4, seed=0)(torch.rand(shape), torch.arange(4))
    with pytest.raises(ValueError, match="cutmix_box needs an image of at least 1x1 pixels, got height 0 and width 5"):
        vicinal.functional.cutmix_box(0.5, 0, 5, torch.tensor([0.5, 0.5]))
    # switch_prob=0 never draws CutMix: tabular batches stay accepted
    xm, _ = vicinal.MixupOrCutMix(num_classes=4, switch_prob=0.0, seed=0)(x, y)
    assert xm.shape == x.shape


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.tensor([[0.5, 0.4], [0.0, 1.0]]), r"probability labels must sum to 1.*row 0 sums to 0\.9"),
        # just past the 1e-3 tolerance: refused (a 1e-2 tolerance accepted rows summing to 1.005)
        (torch.tensor([[0.502, 0.5], [0.0, 1.0]]), r"probability labels must sum to 1.*row 0 sums to 1\.002"),
        (torch.tensor([[1.5, -0.5], [0.0, 1.0]]), r"probability labels must be >= 0.*-0\.5"),
        (torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]), r"probability labels contain 1 non-finite"),
    ],
)
def test_probability_labels_validated(labels, message):
    with pytest.raises(ValueError, match=message):
        vicinal.Mixup(1.0, num_classes=2, seed=0)(torch.randn(2, 3), labels)


def test_probability_labels_without_classes_are_named():
    # (B, 0) labels reached torch's "amin(): Expected reduction dim" inside the row check
    with pytest.raises(ValueError, match=r"probability labels need at least one class, got shape \(2, 0\)"):
        vicinal.Mixup(1.0, seed=0)(torch.randn(2, 3), torch.empty(2, 0))


def test_probability_labels_accept_rounding_and_smoothing():
    y = F.one_hot(torch.arange(3), 3).float() * 0.9 + 0.1 / 3  # label smoothing, rows sum to 1 up to rounding
    vicinal.Mixup(1.0, num_classes=3, seed=0)(torch.randn(3, 2), y)
    vicinal.Mixup(1.0, num_classes=3, seed=0)(torch.randn(3, 2), y.bfloat16())


def test_load_state_dict_errors():
    mixer = vicinal.Mixup(1.0, num_classes=2)
    with pytest.raises(ValueError, match=r"state has no 'generator' entry"):
        mixer.load_state_dict({})
    with pytest.raises(TypeError, match=r"state must be a dict from state_dict\(\), got list"):
        mixer.load_state_dict([])
    with pytest.raises(TypeError, match=r"state\['generator'\] must be the uint8 tensor"):
        mixer.load_state_dict({"generator": 3})


def test_cutmix_docstring_states_rounding_convention():
    doc = vicinal.CutMix.__doc__
    assert "rounded" in doc and "nearest" in doc and "timm" in doc and "truncat" in doc
    # lam is corrected to the pasted box whatever the rounding
    x, y = uint8_batch(4, shape=(3, 7, 9))
    mixer = vicinal.CutMix(1.0, num_classes=4, seed=5)
    for _ in range(10):
        p = mixer.sample(x, y)
        y0, y1, x0, x1 = p.box
        assert p.lam == 1 - (y1 - y0) * (x1 - x0) / 63


# -- issue 14: fast targets and drawn params ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_mixup_fast_targets_equal_formula_for_integer_label_dtypes(dtype):
    x = torch.randn(16, 3, 4, 4)
    y = (torch.arange(16) % 5).to(dtype)
    for lam_mode in ("batch", "sample"):
        mixer = vicinal.Mixup(1.0, num_classes=5, lam_mode=lam_mode, inplace=True, seed=1)
        p = mixer.sample(x, y)
        yh = F.one_hot(y.long(), 5).float()
        w = p.lam.float()[:, None] if isinstance(p.lam, torch.Tensor) else p.lam
        assert torch.equal(mixer.apply_targets(y, p), w * yh + (1 - w) * yh[p.perm])


def test_drawn_params_skip_checks_but_user_params_do_not():
    x, y = torch.randn(4, 3), torch.arange(4)
    mixer = vicinal.Mixup(1.0, num_classes=4, inplace=True, seed=0)
    drawn = mixer.sample(x, y)
    assert drawn._drawn and drawn == vicinal.MixParams(op="mix", lam=drawn.lam, perm=drawn.perm)
    bad = vicinal.MixParams(op="mix", lam=0.5, perm=torch.tensor([0, 1, 2, 9]))
    with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 4\)"):
        mixer.apply_inputs(x, bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
# (6, 1) and (6,): one value per sample (tabular, regression); a half-precision branch that skipped them as if
# empty would leave the batch unmixed
@pytest.mark.parametrize("shape", [(32, 3, 32, 32), (128, 3, 32, 32), (5, 7), (6, 1), (6,)])
def test_drawn_inplace_lean_path_equals_mix_(dtype, shape):
    """Mixup(inplace=True)'s short path for small batches: bit-identical to functional.mix_ (which is within the
    stated lerp bound of the formula, tests/mixing_reference.py), for lam on both sides of 1/2."""
    g = torch.Generator().manual_seed(shape[0])
    x0 = torch.randn(shape, generator=g).to(dtype)
    y = torch.arange(shape[0]) % 3
    mixer = vicinal.Mixup(1.0, num_classes=3, inplace=True, seed=5)
    for _ in range(6):
        p = mixer.sample(x0, y)
        got = mixer.apply_inputs(x0.clone(), p)
        assert torch.equal(got, VF.mix_(x0.clone(), p.lam, p.perm))
        w = p.lam
        ref = (w * x0.double() + (1 - w) * x0.double()[p.perm]).to(dtype)
        u = {torch.float32: 2.0**-24, torch.float64: 2.0**-53, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}[dtype]
        bound = 6 * u * (x0.double().abs() + x0.double()[p.perm].abs()) + 1e-30
        assert ((got.double() - ref.double()).abs() <= bound + u * ref.double().abs()).all()


def test_lean_path_scratch_view_follows_shape_and_buffer_changes():
    """The lean path keeps its gather buffer's (B, F) view between calls: batches of other shapes (same numel
    included), and a larger batch that makes the chunked kernel grow the buffer, must not reuse a wrong view."""
    mixer = vicinal.Mixup(1.0, num_classes=3, inplace=True, seed=1)
    g = torch.Generator().manual_seed(0)
    for shape in [(128, 3, 32, 32), (5, 7), (128, 3, 32, 32), (96, 3, 64, 64), (128, 3, 32, 32), (64, 6, 32, 32)]:
        x0 = torch.randn(shape, generator=g)
        y = torch.arange(shape[0]) % 3
        p = mixer.sample(x0, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a view of the wrong shape would be resized by index_select, with a warning
            got = mixer.apply_inputs(x0.clone(), p)
        x2 = x0.reshape(shape[0], -1)
        lam = p.lam
        want = torch.lerp(x2, x2[p.perm], 1 - lam) if 1 - lam <= 0.5 else torch.lerp(x2[p.perm], x2, lam)
        assert torch.equal(got.reshape(shape[0], -1), want), shape


@pytest.mark.parametrize("inplace", [False, True])
def test_params_apply_to_the_batch_they_were_drawn_for(inplace):
    """Params for 8 samples applied to 12 once gave targets whose last rows summed to lam, silently."""
    m = vicinal.Mixup(1.0, num_classes=10, seed=0, inplace=inplace)
    p = m.sample(torch.randn(8, 3, 4, 4), torch.randint(0, 10, (8,)))
    msg = r"these params were drawn for a batch of 8 samples \(perm\) but the {} have 12; draw them with sample\(\)"
    with pytest.raises(ValueError, match=msg.format("labels")):
        m.apply_targets(torch.randint(0, 10, (12,)), p)
    with pytest.raises(ValueError, match=msg.format("inputs")):
        m.apply_inputs(torch.randn(12, 3, 4, 4), p)
    d = vicinal.DirichletMixup(1.0, k=3, num_classes=10, seed=0)
    pd = d.sample(torch.randn(8, 3), torch.randint(0, 10, (8,)))
    with pytest.raises(ValueError, match=r"drawn for a batch of 8 samples \(lam\) but the inputs have 5"):
        d.apply_inputs(torch.randn(5, 3), pd)


def test_hand_made_params_without_the_fields_of_their_op_are_named():
    # they stopped on a bare AssertionError inside apply_inputs (an AttributeError under python -O)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    cases = [
        (
            vicinal.CutMix(num_classes=3, seed=0),
            vicinal.MixParams(op="cutmix", lam=0.5, perm=torch.tensor([1, 0, 3, 2])),
            "box",
        ),
        (vicinal.DirichletMixup(num_classes=3, seed=0), vicinal.MixParams(op="dirichlet"), "weights and indices"),
        (vicinal.GaussianNoise(num_classes=3, seed=0), vicinal.MixParams(op="noise"), "noise"),
    ]
    switch = vicinal.MixupOrCutMix(num_classes=3, lam_mode="sample", seed=0)
    cases.append((switch, dataclasses.replace(switch.sample(x, y), perm=None), "perm or partner_x"))
    for mixer, params, need in cases:
        msg = rf"^params with op='{params.op}' need {need}; draw them with sample\(\)$"
        with pytest.raises(ValueError, match=msg):
            mixer.apply_inputs(x, params)
        if params.op == "dirichlet":  # targets mix with the weights too
            with pytest.raises(ValueError, match=msg):
                mixer.apply_targets(y, params)
        elif params.blend is None:  # targets need no box or noise (mixed_criterion never asked for them either)
            one_hot = torch.eye(3)[y]
            want = one_hot if params.op == "noise" else 0.5 * one_hot + 0.5 * one_hot[params.perm]
            assert torch.equal(mixer.apply_targets(y, params), want)


def test_params_changed_with_replace_are_checked_again():
    # _drawn once travelled through dataclasses.replace, so an edited lam skipped the checks of the drawn fast paths
    x, y = torch.randn(8, 3, 4, 4), torch.arange(8) % 4
    for inplace in (False, True):
        m = vicinal.Mixup(1.0, num_classes=4, seed=0, inplace=inplace)
        bad = dataclasses.replace(m.sample(x, y), lam=1.5)
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\] \(a convex combination\), got 1.5"):
            m.apply_targets(y, bad)
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\] \(a convex combination\), got 1.5"):
            m.apply_inputs(x.clone(), bad)
        p = m.sample(x, y)
        one = dataclasses.replace(p, lam=torch.tensor(p.lam, dtype=torch.float64))  # a 0-d lam means that float
        assert torch.equal(m.apply_targets(y, one), m.apply_targets(y, p))


def test_scratch_made_under_inference_mode_still_works_outside(monkeypatch):
    monkeypatch.setattr(VF._WORKSPACE, "buffers", {})  # the next mix allocates them, here inside inference_mode
    monkeypatch.setattr(VF._WORKSPACE, "rows", {})
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    for inplace in (False, True):
        m = vicinal.Mixup(1.0, num_classes=10, seed=0, inplace=inplace)
        with torch.inference_mode():
            m(x.clone(), y)
        got, _ = m(x.clone(), y)  # raised "Inplace update to inference tensor outside InferenceMode"
        assert not got.is_inference()


# -- prob: transform a batch with probability prob (timm's prob, kornia's batch coin) ---------------------------------------


def test_prob_one_draws_no_coin():
    # the default: the same stream as a transform built before the option existed (no extra draw)
    x, y = batch()
    mixer = vicinal.Mixup(num_classes=4, prob=1.0, seed=5)
    g = torch.Generator().manual_seed(5)  # the reference: Mixup's draws alone, no coin before them
    for _ in range(5):
        p = mixer.sample(x, y)
        lam = vicinal.sampling.sample_lam(1.0, 6, "batch", generator=g)
        assert p.op == "mix" and p.lam == lam and torch.equal(p.perm, torch.randperm(6, generator=g))


def test_prob_coin_is_drawn_first_from_the_generator():
    x, y = batch()
    mixer = vicinal.Mixup(alpha=0.4, num_classes=4, prob=0.5, seed=7)
    g = torch.Generator().manual_seed(7)  # the reference: coin, then the unchanged Mixup draws
    ops = []
    for _ in range(40):
        p = mixer.sample(x, y)
        ops.append(p.op)
        if float(torch.rand((), generator=g, dtype=torch.float64)) < 0.5:
            lam = vicinal.sampling.sample_lam(0.4, 6, "batch", generator=g)
            perm = torch.randperm(6, generator=g)
            assert p.op == "mix" and p.lam == lam and torch.equal(p.perm, perm)
        else:
            assert p.op == "identity" and p.perm is None
    assert set(ops) == {"mix", "identity"}


def test_prob_frequency():
    x, y = batch()
    mixer = vicinal.MixupOrCutMix(num_classes=4, prob=0.3, switch_prob=0.5, seed=0)
    ops = [mixer.sample(x, y).op for _ in range(2000)]
    # binomial(2000, 0.7) batches left alone: std 20.5; 5 std tolerance; the rest split between the two branches
    assert abs(ops.count("identity") - 1400) < 103
    assert ops.count("mix") > 0 and ops.count("cutmix") > 0
    assert all(vicinal.Mixup(num_classes=4, prob=0.0, seed=s).sample(x, y).op == "identity" for s in range(20))


@pytest.mark.parametrize("inplace", [False, True])
def test_prob_skipped_batch_is_unchanged_with_one_hot_targets(inplace):
    x, y = batch()
    mixer = vicinal.Mixup(num_classes=4, smoothing=0.1, prob=0.0, inplace=inplace, seed=0)
    x0 = x.clone()
    p = mixer.sample(x, y)
    xm, ym = mixer.apply_inputs(x, p), mixer.apply_targets(y, p)
    assert torch.equal(xm, x0)
    assert torch.equal(ym, F.one_hot(y, 4).float() * 0.9 + 0.1 / 4)
    pred = torch.randn(6, 4)
    ce = functools.partial(F.cross_entropy, label_smoothing=0.1)
    loss = vicinal.mixed_criterion(ce, pred, y, p, label_smoothing=0.1)
    assert torch.allclose(loss, vicinal.soft_cross_entropy(pred, ym), atol=1e-6)


def test_prob_uint8_float_output_and_collate():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3])
    out, _ = vicinal.Mixup(num_classes=4, prob=0.0, uint8_output="float", seed=0)(x, y)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())
    collate = vicinal.MixupCollate(alpha=1.0, num_classes=4, prob=0.0, seed=0)
    xb, yb = collate([(img, int(label)) for img, label in zip(x, y, strict=True)])
    assert torch.equal(xb, x) and torch.equal(yb, F.one_hot(y, 4).float())


def test_prob_resume_continues_the_stream():
    x, y = batch()
    a = vicinal.Mixup(num_classes=4, prob=0.5, seed=3)
    for _ in range(3):
        a.sample(x, y)
    b = vicinal.Mixup(num_classes=4, prob=0.5, seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(10):
        pa, pb = a.sample(x, y), b.sample(x, y)
        assert pa.op == pb.op and pa.lam == pb.lam
        assert (pa.perm is None and pb.perm is None) or torch.equal(pa.perm, pb.perm)


def test_prob_noise_and_latent():
    x, y = batch()
    noise = vicinal.GaussianNoise(0.1, num_classes=4, prob=0.5, seed=0)
    assert {noise.sample(x, y).op for _ in range(50)} == {"noise", "identity"}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    latent = vicinal.LatentMixup(model, "1", alpha=1.0, num_classes=4, prob=0.0, seed=0)
    out, targets = latent(x, y)
    assert torch.equal(out, model(x)) and torch.equal(targets, F.one_hot(y, 4).float())


def test_prob_errors():
    with pytest.raises(ValueError, match=r"prob must be in \[0, 1\], got 1.5"):
        vicinal.Mixup(prob=1.5)
    with pytest.raises(TypeError, match="prob must be a number, got str 'half'"):
        vicinal.Mixup(prob="half")
    with pytest.raises(
        ValueError, match="ERM leaves every batch's inputs as they are, so prob=0.5 would change nothing"
    ):
        vicinal.ERM(prob=0.5)
    with pytest.raises(ValueError, match="LabelSmoothing leaves every batch's inputs as they are"):
        vicinal.build("label_smoothing", prob=0.9)
    assert "prob=0.25" in repr(vicinal.CutMix(prob=0.25)) and "prob" not in repr(vicinal.CutMix())


# -- the peers' methods, written out as their code computes them (README "Coming from timm or torchvision") ----------


def _timm_batch_mixup(x, y, lam, num_classes, smoothing):
    """timm ``Mixup(mode="batch", cutmix_alpha=0)``: flip partners, in place, then smoothed one-hot targets."""
    x = x.clone()
    x_flipped = x.flip(0).mul_(1.0 - lam)
    x.mul_(lam).add_(x_flipped)
    off = smoothing / num_classes
    on = 1.0 - smoothing + off

    def one_hot(t):
        return torch.full((t.shape[0], num_classes), off).scatter_(1, t.long().view(-1, 1), on)

    return x, one_hot(y) * lam + one_hot(y.flip(0)) * (1.0 - lam)


def _torchvision_mixup(x, y, lam, num_classes):
    """torchvision ``v2.MixUp``: roll partners, then one-hot targets mixed the same way."""
    x_rolled = x.roll(1, 0).mul_(1.0 - lam)
    x = x.mul(lam).add_(x_rolled)
    yh = F.one_hot(y, num_classes).float()
    return x, yh.roll(1, 0).mul_(1.0 - lam).add_(yh.mul(lam))


@pytest.mark.parametrize("lam", [0.3, 0.8125, 0.999])
def test_flip_and_roll_pairing_equal_timm_and_torchvision(lam):
    x, y = batch((8, 3, 5, 5), num_classes=5)
    flip = vicinal.Mixup(num_classes=5, pairing="flip")
    p = vicinal.MixParams(op="mix", lam=lam, perm=torch.arange(8).flip(0))
    tx, ty = _timm_batch_mixup(x, y, lam, 5, 0.0)
    assert torch.equal(flip.apply_inputs(x, p), tx) and torch.equal(flip.apply_targets(y, p), ty)
    smoothed = vicinal.Mixup(num_classes=5, pairing="flip", smoothing=0.1)
    _, ty = _timm_batch_mixup(x, y, lam, 5, 0.1)
    # timm forms on/off values in double precision, vicinal smooths in float32: equal to float32 rounding
    assert torch.allclose(smoothed.apply_targets(y, p), ty, rtol=0, atol=2**-23)
    roll = vicinal.Mixup(num_classes=5, pairing="roll")
    p = vicinal.MixParams(op="mix", lam=lam, perm=torch.arange(8).roll(1))
    vx, vy = _torchvision_mixup(x, y, lam, 5)
    assert torch.equal(roll.apply_inputs(x, p), vx) and torch.equal(roll.apply_targets(y, p), vy)
    # and the transforms draw exactly those partners
    assert torch.equal(roll.sample(x, y).perm, torch.arange(8).roll(1))
    assert torch.equal(flip.sample(x, y).perm, torch.arange(8).flip(0))


def _timm_pair_mixup(x, lam_half):
    """timm's Mixup(mode="pair") inputs, written out: sample i and its mirror j = B - 1 - i share lam_half[i]."""
    n = x.shape[0]
    x_orig = x.clone()
    out = x.clone()
    for i in range(n // 2):
        j = n - i - 1
        lam = lam_half[i]
        out[i] = x[i] * lam + x_orig[j] * (1 - lam)
        out[j] = x[j] * lam + x_orig[i] * (1 - lam)
    return out


@pytest.mark.parametrize("n", [8, 7])
def test_pair_lam_mode_with_flip_pairing_equals_timms_pair_mode(n):
    x, y = batch((n, 3, 4, 4), num_classes=4)
    mixer = vicinal.Mixup(1.0, pairing="flip", lam_mode="pair", num_classes=4, seed=2)
    p = mixer.sample(x, y)
    assert torch.equal(p.perm, torch.arange(n).flip(0)) and torch.equal(p.lam, p.lam.flip(0))
    lam32 = p.lam.float()  # timm holds its lams in a float32 array
    expected = _timm_pair_mixup(x, lam32)
    if n % 2:  # timm refuses odd batches; here the middle sample is its own partner, mixed with itself
        m = n // 2
        expected[m] = x[m] * lam32[m] + x[m] * (1 - lam32[m])
    assert torch.equal(mixer.apply_inputs(x, p), expected)
    yh = F.one_hot(y, 4).float()
    w = lam32.reshape(-1, 1)
    assert torch.equal(mixer.apply_targets(y, p), yh * w + yh.flip(0) * (1 - w))


def test_pair_lam_mode_draws_one_lam_per_pair_of_mutual_partners():
    """The stream: n lams as lam_mode='sample' draws them, then the pairs; pair (i, perm[i]) takes the lam drawn
    for min(i, perm[i])."""
    x, y = batch((9, 3), num_classes=4)
    mixer = vicinal.Mixup(0.4, pairing="matching", lam_mode="pair", num_classes=4, seed=5)
    g = torch.Generator().manual_seed(5)
    for _ in range(10):
        p = mixer.sample(x, y)
        raw = vicinal.sampling.sample_lam(0.4, 9, "sample", generator=g)
        perm = vicinal.pairing.matching_pairs(9, generator=g)
        assert torch.equal(p.perm, perm)
        assert torch.equal(p.lam, raw[torch.minimum(torch.arange(9), perm)])
        assert torch.equal(p.lam[p.perm], p.lam)  # partners share their lam
        assert torch.equal(mixer.apply_inputs(x, p), reference(x, y, p.lam.float().reshape(-1, 1), p.perm, 4)[0])


def test_pair_lam_mode_gives_the_three_cycle_of_an_odd_matching_one_lam():
    """matching_pairs(allow_self=False) on an odd batch closes the last three samples into a cycle a -> b -> c -> a
    (helper-104: they took the lam of min(i, perm[i]), two different lams around the cycle)."""
    x, y = batch((7, 3), num_classes=4)
    mixer = vicinal.Mixup(1.0, pairing="matching", allow_self=False, lam_mode="pair", num_classes=4, seed=0)
    for _ in range(10):
        p = mixer.sample(x, y)
        cycle = [i for i in range(7) if int(p.perm[p.perm[i]]) != i]
        assert len(cycle) == 3 and len({float(p.lam[i]) for i in cycle}) == 1
        assert torch.equal(p.lam[p.perm], p.lam)  # every sample's partner has its lam


@pytest.mark.parametrize("variant", ["mixup", "mix_inputs_only", "erm", "cutmix"])
def test_apply_targets_checks_labels_other_than_those_sample_checked(variant):
    # the split form lets a user pass other labels (another task's) to apply_targets: out-of-range classes failed
    # inside torch, float (B,) labels were mixed as regression targets, (B, 1) labels gave (B, 1, C) targets
    x, y = batch((4, 3, 4, 4), num_classes=5)
    mixer = vicinal.build(variant, num_classes=5, seed=0)
    p = mixer.sample(x, y)
    for labels, error, message in (
        (torch.tensor([0, 1, 7, 2]), ValueError, r"^labels must be in \[0, num_classes=5\), got values from 0 to 7$"),
        (torch.tensor([0.0, 1.0, 2.0, 2.0]), ValueError, r"^float labels must be probabilities of shape \(B, C\)"),
        (y[:, None], ValueError, r"^integer labels must be class indices of shape \(B,\), got shape \(4, 1\)"),
        ([0, 1, 2, 3], TypeError, r"^labels must be a torch\.Tensor, got list$"),
    ):
        with pytest.raises(error, match=message):
            mixer.apply_targets(labels, p)
    # other labels that pass the checks are mixed as sample()'s labels would be
    other = torch.tensor([4, 3, 2, 1])
    assert torch.equal(mixer.apply_targets(other, p), mixer.apply_targets(other.clone(), p))


@pytest.mark.parametrize("variant", ["mixup", "erm", "label_smoothing"])
def test_soft_targets_checks_its_labels(variant):
    # soft_targets is public: out-of-range classes failed inside torch's one-hot ("Class values must be smaller than
    # num_classes."), float (B,) labels were returned as the "targets" (helper-114, helper-116)
    mixer = vicinal.build(variant, num_classes=5, seed=0)
    for labels, error, message in (
        (torch.tensor([0, 1, 7, 2]), ValueError, r"^labels must be in \[0, num_classes=5\), got values from 0 to 7$"),
        (torch.tensor([-1, 1, 2]), ValueError, r"^labels must be in \[0, num_classes=5\), got values from -1 to 2$"),
        ([0, 1, 2, 3], TypeError, r"^labels must be a torch\.Tensor, got list$"),
        (
            torch.tensor([0.0, 1.0, 2.0]),
            ValueError,
            r"^float labels must be probabilities of shape \(\.\.\., C\) with C = num_classes=5, got shape \(3,\); ",
        ),
        (torch.full((2, 3), 1 / 3), ValueError, r"with C = num_classes=5, got shape \(2, 3\); "),
        (torch.tensor(0.5), ValueError, r"got shape \(\); pass class indices as integers \(y\.long\(\)\)$"),
        (
            torch.tensor([True, False]),
            TypeError,
            r"^labels must be class indices \(int64, int32, int16, int8 or uint8\) or float probabilities, got dtype torch\.bool$",
        ),
    ):
        with pytest.raises(error, match=message):
            mixer.soft_targets(labels)
    # without num_classes, integer labels were one-hot encoded with C = the batch size (sample() refuses them)
    unsized = vicinal.build(variant, seed=0)
    with pytest.raises(ValueError, match=r"^num_classes is required to turn integer labels into one-hot targets$"):
        unsized.soft_targets(torch.tensor([0, 1, 2]))
    probs = torch.softmax(torch.randn(3, 4), 1)
    eps = unsized.smoothing
    assert torch.equal(unsized.soft_targets(probs), probs * (1 - eps) + eps / 4 if eps else probs)  # C from the shape
    meta = mixer.soft_targets(torch.tensor([1, 2], device="meta"))  # no values to check: shapes only, as before
    assert meta.shape == (2, 5) and meta.device.type == "meta"
    y = torch.tensor([4, 0, 2])
    eps = mixer.smoothing
    assert torch.equal(mixer.soft_targets(y), torch.nn.functional.one_hot(y, 5).float() * (1 - eps) + eps / 5)
    # what worked before the check still does: no labels, one label, and labels under vmap
    assert mixer.soft_targets(torch.zeros(0, dtype=torch.long)).shape == (0, 5)
    assert torch.equal(mixer.soft_targets(torch.tensor(3)), mixer.soft_targets(torch.tensor([3]))[0])
    assert torch.equal(torch.func.vmap(mixer.soft_targets)(y[:, None]), mixer.soft_targets(y)[:, None])


def test_vmap_with_different_randomness_names_the_way_out():
    # torch said "Cannot access data pointer of Tensor that doesn't have storage" from inside the lam draw
    y = torch.randint(0, 5, (4,))
    xs = torch.rand(3, 4, 3, 8, 8)
    for mixer in (vicinal.Mixup(1.0, num_classes=5, seed=0), vicinal.CutMix(num_classes=5, seed=0)):
        with pytest.raises(ValueError, match=r"vmap with randomness='same'$"):
            torch.func.vmap(lambda xx, m=mixer: m(xx, y)[0], randomness="different")(xs)
        same = torch.func.vmap(lambda xx, m=mixer: m(xx, y)[0], randomness="same")(xs)
        assert same.shape == xs.shape
    # what the message says to do: params drawn once, the application vmapped
    mixer = vicinal.Mixup(1.0, num_classes=5, seed=0)
    params = mixer.sample(xs[0], y)
    out = torch.func.vmap(lambda xx: mixer.apply_inputs(xx, params))(xs)
    assert torch.equal(out[1], mixer.apply_inputs(xs[1], params))
    # and apply_targets over vmapped labels, class indices or probability rows (the label check had read their
    # values: torch's ".item() under vmap" error), as over each batch of labels alone
    ys = torch.randint(0, 5, (3, 4))
    for mixer in (
        vicinal.Mixup(1.0, num_classes=5, seed=0),
        vicinal.Mixup(1.0, num_classes=5, lam_mode="sample", seed=0),
        vicinal.DirichletMixup(num_classes=5, seed=0),
        vicinal.CutMix(num_classes=5, lam_mode="sample", seed=0),
    ):
        params = mixer.sample(xs[0], y)
        for labels in (ys, F.one_hot(ys, 5).float()):
            got = torch.func.vmap(lambda yy, m=mixer, p=params: m.apply_targets(yy, p))(labels)
            assert torch.equal(got, torch.stack([mixer.apply_targets(row, params) for row in labels]))
    whole = torch.func.vmap(lambda xx, yy: vicinal.Mixup(1.0, num_classes=5, seed=0)(xx, yy), randomness="same")
    assert whole(xs, ys)[1].shape == (3, 4, 5)
    # torch.func.grad wraps the labels too, but their values can be read: they are checked as in eager mode
    mixer = vicinal.Mixup(1.0, num_classes=5, seed=0)
    x0 = xs[0]

    def loss(xx, yy, **kwargs):
        return mixer.apply_targets(yy, mixer.sample(xx, yy, **kwargs)).sum() + xx.sum()

    bad = [
        (torch.tensor([0, 1, 2, 9]), r"^labels must be in \[0, num_classes=5\), got values from 0 to 9$"),
        (torch.full((4, 5), 0.6), r"^probability labels must sum to 1 in every row"),
    ]
    for labels, msg in bad:
        with pytest.raises(ValueError, match=msg):
            torch.func.grad(loss)(x0, labels)
    multi = vicinal.Mixup(1.0, num_classes=5, multi_label=True, seed=0)
    with pytest.raises(ValueError, match=r"^multi-label targets must lie in \[0, 1\]"):
        torch.func.grad(lambda xx, yy: multi.apply_targets(yy, multi.sample(xx, yy)).sum() + xx.sum())(
            x0, torch.full((4, 5), 2.0)
        )
    with pytest.raises(ValueError, match=r"^labels must be in \[0, num_classes=5\), got values from 0 to 7$"):
        torch.func.grad(lambda xx, yy: VF.one_hot(yy, 5).sum() + xx.sum())(x0, torch.tensor([0, 7, 1, 2]))


def test_out_of_range_seeds_and_non_integer_image_sizes_are_named():
    with pytest.raises(
        ValueError, match=r"^seed must be in \[-2\*\*63, 2\*\*64\) \(a 64-bit seed\), got 18446744073709551616$"
    ):
        vicinal.Mixup(1.0, seed=2**64)
    assert vicinal.Mixup(1.0, seed=2**64 - 1).generator.initial_seed() == 2**64 - 1
    with pytest.raises(TypeError, match=r"^cutmix_box needs the image height and width as ints, got Tensor "):
        VF.cutmix_box(0.5, torch.tensor(8), 8, [0.5, 0.5])
    with pytest.raises(TypeError, match=r"got float 8\.0 and int 8$"):
        VF.cutmix_range_box((0.2, 0.8), 8.0, 8, [0.5] * 4)
    assert VF.cutmix_box(0.5, np.int64(8), 8, [0.5, 0.5]) == VF.cutmix_box(0.5, 8, 8, [0.5, 0.5])
    with pytest.raises(
        TypeError,
        match=r"^variant 'mix_inputs_only' sets targets itself \(it is what the variant is\): drop targets=, or "
        r"build 'mixup' with it$",
    ):
        vicinal.build("mix_inputs_only", targets="mixed", num_classes=3)


def test_boolean_options_take_only_booleans():
    # bool("False") is True: inplace="False" from a config or a command line overwrote the caller's batch, and
    # allow_self="False" allowed self-pairs (helper-104); exact was already checked this way
    for make_it, name, value in (
        (lambda: vicinal.Mixup(inplace="False"), "inplace", "'False'"),
        (lambda: vicinal.Mixup(allow_self="False"), "allow_self", "'False'"),
        (lambda: vicinal.Mixup(regression=1), "regression", "1"),
        (lambda: vicinal.Mixup(multi_label="yes"), "multi_label", "'yes'"),
        (lambda: vicinal.ERM(check_finite=None), "check_finite", "None"),
        (lambda: vicinal.MixupOrCutMix(allow_self=0), "allow_self", "0"),
        (lambda: vicinal.LatentMixup.check_options("layer1", inplace="False"), "inplace", "'False'"),
    ):
        with pytest.raises(TypeError, match=rf"^{name} must be True or False, got {value}$"):
            make_it()
    x, y = batch((4, 3), num_classes=4)
    mixer = vicinal.Mixup(num_classes=4, inplace=np.bool_(True))  # numpy's bool is a bool
    assert mixer.inplace is True
    with pytest.raises(TypeError, match=r"^inplace must be True or False, got 'no'$"):
        mixer.apply_inputs(x, mixer.sample(x, y), inplace="no")


def test_pair_lam_mode_needs_mutual_partners_from_the_batch():
    message = (
        r"^lam_mode='pair' gives each two samples that are each other's partner one lam: it needs pairing='flip' "
        r"or 'matching', whose partners are mutual, got pairing='random'$"
    )
    with pytest.raises(ValueError, match=message):
        vicinal.Mixup(lam_mode="pair")
    with pytest.raises(ValueError, match=r"got pairing='same_class'$"):
        vicinal.LatentMixup.check_options("layer1", lam_mode="pair", pairing="same_class")
    x, y = batch((4, 3), num_classes=4)
    with pytest.raises(ValueError, match=r"^lam_mode='pair' shares lam between partners within the batch; with "):
        vicinal.Mixup(lam_mode="pair", pairing="flip", num_classes=4)(x, y, partner=(x, y))
    with pytest.raises(ValueError, match=r"^unknown lam_mode 'pair'; known: batch, sample$"):
        vicinal.DirichletMixup(lam_mode="pair")
    assert "lam_mode='pair'" in repr(vicinal.Mixup(lam_mode="pair", pairing="flip"))


def test_exact_is_true_false_or_none():
    with pytest.raises(TypeError, match=r"exact must be True, False or None \(the default\), got 'no'"):
        vicinal.Mixup(num_classes=3, exact="no")


def test_exact_defaults_to_exact_out_of_place_and_fast_in_place():
    x, y = batch((8, 3, 4, 4), seed=3)
    default = vicinal.Mixup(1.0, num_classes=4, seed=1)
    assert default.exact is None and "exact" not in repr(default)
    assert "exact=False" in repr(vicinal.Mixup(num_classes=4, exact=False))
    p = vicinal.Mixup(1.0, num_classes=4, seed=1).sample(x, y)
    assert torch.equal(default(x, y)[0], mix_reference(x, p.lam, x[p.perm]))  # bit for bit (timm, torchvision)


def test_repr_shows_every_option_away_from_its_default():
    r = repr(vicinal.Mixup(num_classes=3, allow_self=False, uint8_output="float", exact=True, regression=False))
    assert "allow_self=False" in r and "uint8_output='float'" in r and "exact=True" in r and "regression" not in r
    r = repr(vicinal.MixupOrCutMix(num_classes=3, pairing="flip", allow_self=False))
    assert "pairing='flip'" in r and "allow_self=False" in r
    assert repr(vicinal.Mixup(num_classes=3)) == (
        "Mixup(alpha=1.0, pairing='random', lam_mode='batch', targets='mixed', num_classes=3, smoothing=0.0)"
    )


# -- behaviour the mutation run (notes/helper-mutation.md) found untested --------------------------------------------
def test_lean_inplace_path_equals_mix_at_lam_one_half(monkeypatch):
    """At lam = 1/2 exactly both lerp directions pass the weight 1/2 and their float32 roundings differ: the lean
    path of drawn params must take the same one as mix_ (``1 - lam <= 0.5``: from x towards the partner)."""
    monkeypatch.setattr(vicinal.mixup, "sample_lam", lambda *args, **kwargs: 0.5)
    x0, y = batch((64, 3, 8, 8))
    mixer = vicinal.Mixup(1.0, num_classes=4, inplace=True, seed=0)
    p = mixer.sample(x0, y)
    assert p.lam == 0.5 and p._drawn
    got = mixer.apply_inputs(x0.clone(), p)
    assert torch.equal(got, VF.mix_(x0.clone(), 0.5, p.perm))
    assert torch.equal(got, torch.lerp(x0, x0[p.perm], 0.5))


def test_cutmix_params_are_the_box_of_the_drawn_lam_and_centre():
    """The stream of CutMix: lam, the permutation, then the two centre uniforms; the box is cutmix_box of those on
    (H, W) of the image (not (W, H): a non-square image tells them apart), lam the kept area."""
    x, y = batch((5, 2, 11, 7), num_classes=4)
    mixer = vicinal.CutMix(1.0, num_classes=4, seed=3)
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        p = mixer.sample(x, y)
        lam = vicinal.sampling.sample_lam(1.0, 5, "batch", generator=g)
        perm = torch.randperm(5, generator=g)
        u = torch.rand(2, generator=g, dtype=torch.float64)
        box, kept = VF.cutmix_box(lam, 11, 7, u)
        assert p.op == "cutmix" and torch.equal(p.perm, perm)
        assert p.box == box and p.lam == kept
        y0, y1, x0, x1 = box
        assert p.lam == 1 - (y1 - y0) * (x1 - x0) / 77


def test_cutmix_box_range_params_are_the_range_box_of_the_drawn_stream():
    """box_range (timm's cutmix_minmax): the permutation, then four uniforms (height, width, top, left); no Beta
    draw. The box is cutmix_range_box of those on (H, W), the paste and the targets those of the box's lam."""
    x, y = batch((5, 2, 11, 7), num_classes=4)
    mixer = vicinal.CutMix(num_classes=4, box_range=(0.2, 0.8), seed=3)
    g = torch.Generator().manual_seed(3)
    yh = F.one_hot(y, 4).float()
    for _ in range(20):
        p = mixer.sample(x, y)
        perm = torch.randperm(5, generator=g)
        u = torch.rand(4, generator=g, dtype=torch.float64)
        box, kept = VF.cutmix_range_box((0.2, 0.8), 11, 7, u)
        assert p.op == "cutmix" and torch.equal(p.perm, perm) and p.box == box and p.lam == kept
        y0, y1, x0, x1 = box
        assert 2 <= y1 - y0 < 8 and 1 <= x1 - x0 < 5  # int(11 * 0.2) = 2, int(11 * 0.8) = 8; 1 and 5 on 7 columns
        assert 0 <= y0 and y1 <= 11 and 0 <= x0 and x1 <= 7  # placed inside the image: never clipped
        assert p.lam == 1 - (y1 - y0) * (x1 - x0) / 77
        expected = x.clone()
        expected[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        assert torch.equal(mixer.apply_inputs(x.clone(), p), expected)
        assert torch.equal(mixer.apply_targets(y, p), p.lam * yh + (1 - p.lam) * yh[perm])
    assert torch.equal(mixer.generator.get_state(), g.get_state())  # nothing else was drawn


def test_cutmix_range_box_maps_each_uniform_to_one_of_equally_likely_integers():
    """floor(u * m) over the m choices: the intervals [k/m, (k+1)/m) of u, so each side and corner is uniform."""
    # heights in [int(10 * 0.25), int(10 * 0.75)) = [2, 7): 5 choices; widths [5, 15): 10 choices on 20 columns
    for k in range(5):
        for u0 in (k / 5, (k + 0.999) / 5):
            box, _ = VF.cutmix_range_box((0.25, 0.75), 10, 20, (u0, 0.0, 0.0, 0.0))
            assert box[1] - box[0] == 2 + k
    edge = 1 - 2**-53  # the largest float64 below 1: u * m can round up to m, still the last choice
    box, lam = VF.cutmix_range_box((0.25, 0.75), 10, 20, (edge, edge, edge, edge))
    assert box == (4, 10, 6, 20) and lam == 1 - 6 * 14 / 200  # the tallest, widest box, at the bottom-right corner
    assert VF.cutmix_range_box((0.25, 0.75), 10, 20, (0.0, 0.0, 0.0, 0.0)) == ((0, 2, 0, 5), 1 - 10 / 200)
    # the top-left corner: 10 - 2 + 1 = 9 rows and 20 - 5 + 1 = 16 columns keep the smallest box inside
    assert VF.cutmix_range_box((0.25, 0.75), 10, 20, (0.0, 0.0, 8.5 / 9, 15.5 / 16))[0] == (8, 10, 15, 20)


def test_cutmix_box_range_sides_cover_the_range_in_proportion():
    """Statistical check of the transform's draws: 4,000 batches, heights uniform over the 6 values of [2, 8) on 10
    rows: each count within 5 binomial standard deviations of 4000 / 6 (a false alarm below 1e-5 per value)."""
    x, y = batch((4, 1, 10, 10), num_classes=4)
    mixer = vicinal.CutMix(num_classes=4, box_range=(0.2, 0.8), seed=0)
    heights = [mixer.sample(x, y).box for _ in range(4000)]
    counts = np.bincount([b[1] - b[0] for b in heights], minlength=8)
    assert counts[:2].sum() == 0
    sd = (4000 * (1 / 6) * (5 / 6)) ** 0.5
    assert np.all(np.abs(counts[2:] - 4000 / 6) < 5 * sd), counts


@pytest.mark.parametrize(
    ("make_it", "error", "message"),
    [
        (
            lambda: vicinal.CutMix(box_range=(0.8, 0.2)),
            ValueError,
            r"^box_range must satisfy 0 <= min < max <= 1, got \(0\.8, 0\.2\)$",
        ),
        (
            lambda: vicinal.CutMix(box_range=(0.2, 1.5)),
            ValueError,
            r"^box_range must satisfy 0 <= min < max <= 1, got \(0\.2, 1\.5\)$",
        ),
        (
            lambda: vicinal.CutMix(box_range=0.5),
            ValueError,
            r"^box_range must be two fractions \(min, max\) of the image sides, got 0\.5$",
        ),
        (lambda: vicinal.CutMix(box_range=(0.1, 0.5, 0.9)), ValueError, r"^box_range must be two fractions"),
        (lambda: vicinal.CutMix(box_range=("0.2", "0.8")), ValueError, r"^box_range must be two fractions"),
        (lambda: vicinal.CutMix(box_range=(False, True)), ValueError, r"^box_range must be two fractions"),
        (
            lambda: vicinal.CutMix(0.5, box_range=(0.2, 0.8)),
            ValueError,
            r"^box_range draws the box sides from a range, not lam from Beta\(alpha, alpha\): leave CutMix's alpha \(MixupOrCutMix's cutmix_alpha\) at 1, got 0\.5$",
        ),
        (
            lambda: vicinal.MixupOrCutMix(0.8, 2.0, box_range=(0.2, 0.8)),
            ValueError,
            r"MixupOrCutMix's cutmix_alpha\) at 1, got 2\.0$",
        ),
        (
            lambda: VF.cutmix_range_box((0.2, 0.8), 10, 10, (0.5, 0.5, 0.5)),
            ValueError,
            r"^u must be four uniforms in \[0, 1\) \(height, width, top, left\), got \(0\.5, 0\.5, 0\.5\)$",
        ),
        (
            lambda: VF.cutmix_range_box((0.2, 0.8), 10, 10, (0.5, 0.5, 0.5, 1.0)),
            ValueError,
            r"^u must be four uniforms",
        ),
        (
            lambda: VF.cutmix_range_box((0.2, 0.8), 0, 10, (0.5,) * 4),
            ValueError,
            r"^cutmix_range_box needs an image of at least 1x1 pixels, got height 0 and width 10$",
        ),
    ],
    ids=[
        "reversed",
        "above-1",
        "scalar",
        "three",
        "strings",
        "bools",
        "alpha",
        "switch-alpha",
        "three-u",
        "u-1",
        "empty-image",
    ],
)
def test_cutmix_box_range_errors_name_the_option(make_it, error, message):
    with pytest.raises(error, match=message):
        make_it()


def test_cutmix_box_range_too_narrow_for_the_images_fails_on_every_call():
    """int(H * min) == int(H * max) leaves no side to draw: named with the image size on every batch, whatever the
    switch draws (timm's numpy.random.randint says 'low >= high')."""
    x, y = batch((4, 3, 8, 8), num_classes=4)
    message = (
        r"^box_range=\(0\.3, 0\.35\) leaves no box of at least 1x1 pixels to draw on images of 8x8 pixels \(heights "
        r"in \[2, 2\), "
        r"widths in \[2, 2\)\): widen the range or use larger images$"
    )
    for mixer in (
        vicinal.CutMix(num_classes=4, box_range=(0.3, 0.35)),
        vicinal.MixupOrCutMix(num_classes=4, box_range=(0.3, 0.35), switch_prob=0.01, seed=0),
    ):
        for _ in range(3):
            with pytest.raises(ValueError, match=message):
                mixer(x, y)
    assert vicinal.CutMix(num_classes=4, box_range=(0.3, 0.35))(*batch((4, 3, 40, 40), num_classes=4))[0].shape


def test_mixup_or_cutmix_box_range_reaches_its_cutmix_branch():
    x, y = batch((6, 3, 10, 10), num_classes=4)
    mixer = vicinal.MixupOrCutMix(1.0, 1.0, 0.5, num_classes=4, box_range=[0.2, 0.8], seed=0)
    assert mixer.cutmix.box_range == (0.2, 0.8)
    assert "box_range=(0.2, 0.8)" in repr(mixer)
    assert repr(vicinal.CutMix(box_range=(0.2, 0.8))).startswith("CutMix(alpha=1.0, box_range=(0.2, 0.8), pairing=")
    sides = set()
    for _ in range(40):
        p = mixer.sample(x, y)
        if p.op == "cutmix":
            y0, y1, x0, x1 = p.box
            sides.add(y1 - y0)
            assert p.lam == 1 - (y1 - y0) * (x1 - x0) / 100
    assert sides and sides <= set(range(2, 8))


def _paste_loop(x, xp, boxes):
    """Per-sample CutMix written out: each sample's box from its partner."""
    out = x.clone()
    for i, (y0, y1, x0, x1) in enumerate(boxes.tolist()):
        out[i, ..., y0:y1, x0:x1] = xp[i, ..., y0:y1, x0:x1]
    return out


@pytest.mark.parametrize("box_range", [None, (0.2, 0.8)])
def test_cutmix_per_sample_boxes_are_the_scalar_boxes_of_the_drawn_stream(box_range):
    """lam_mode='sample': n lams (none with box_range), the permutation, then the uniforms of every box; each row
    is cutmix_box (cutmix_range_box) of its own draws, each sample pasted from its partner inside its own box."""
    x, y = batch((6, 2, 11, 7), num_classes=4)
    mixer = vicinal.CutMix(num_classes=4, lam_mode="sample", box_range=box_range, seed=4)
    g = torch.Generator().manual_seed(4)
    yh = F.one_hot(y, 4).float()
    for _ in range(10):
        p = mixer.sample(x, y)
        lam = None if box_range else vicinal.sampling.sample_lam(1.0, 6, "sample", generator=g)
        perm = torch.randperm(6, generator=g)
        u = torch.rand(6, 4 if box_range else 2, generator=g, dtype=torch.float64)
        assert torch.equal(p.perm, perm) and p.box.shape == (6, 4) and p.box.dtype == torch.int64
        for i in range(6):
            if box_range:
                box, kept = VF.cutmix_range_box(box_range, 11, 7, u[i])
            else:
                box, kept = VF.cutmix_box(float(lam[i]), 11, 7, u[i])
            assert tuple(p.box[i].tolist()) == box and float(p.lam[i]) == kept
        assert torch.equal(mixer.apply_inputs(x, p), _paste_loop(x, x[perm], p.box))
        xi = x.clone()
        assert mixer.apply_inputs(xi, p, inplace=True) is xi and torch.equal(xi, _paste_loop(x, x[perm], p.box))
        w = p.lam.float().reshape(-1, 1)
        assert torch.equal(mixer.apply_targets(y, p), w * yh + (1 - w) * yh[perm])
    assert torch.equal(mixer.generator.get_state(), g.get_state())


def test_cutmix_boxes_equal_the_scalar_box_row_for_row():
    """The vectorised boxes against cutmix_box / cutmix_range_box: 3,000 draws on each of four image sizes, with
    lam at 0, 1, 0.5 and ties among them (torch.sqrt and math.sqrt are both correctly rounded)."""
    g = torch.Generator().manual_seed(0)
    for height, width in ((11, 7), (32, 32), (1, 1), (224, 160)):
        lam = torch.rand(3000, generator=g, dtype=torch.float64)
        lam[:8] = torch.tensor([0.0, 1.0, 0.5, 0.25, 0.75, 0.36, 0.64, 1e-12], dtype=torch.float64)
        u = torch.rand(3000, 2, generator=g, dtype=torch.float64)
        boxes, kept = VF.cutmix_boxes(lam, height, width, u)
        for i in range(3000):
            assert VF.cutmix_box(float(lam[i]), height, width, u[i]) == (tuple(boxes[i].tolist()), float(kept[i]))
        if height > 1:
            u4 = torch.rand(3000, 4, generator=g, dtype=torch.float64)
            u4[0] = 1 - 2**-53  # the clamp of the last choice
            boxes, kept = VF.cutmix_range_boxes((0.2, 0.9), height, width, u4)
            for i in range(3000):
                expected = VF.cutmix_range_box((0.2, 0.9), height, width, u4[i])
                assert expected == (tuple(boxes[i].tolist()), float(kept[i]))


def test_cutmix_with_per_sample_boxes_checks_them():
    x, _ = batch((3, 2, 6, 5))
    perm = torch.tensor([1, 2, 0])
    boxes = torch.tensor([[0, 3, 1, 4], [2, 6, 0, 5], [1, 1, 2, 2]])
    assert torch.equal(VF.cutmix(x, boxes, perm), _paste_loop(x, x[perm], boxes))
    assert torch.equal(VF.cutmix(x, boxes, partner=x.flip(0)), _paste_loop(x, x.flip(0), boxes))
    xi = x.clone()
    assert torch.equal(VF.cutmix_(xi, boxes, perm), _paste_loop(x, x[perm], boxes)) and torch.equal(
        xi, _paste_loop(x, x[perm], boxes)
    )
    for fn in (VF.cutmix, VF.cutmix_):
        with pytest.raises(ValueError, match=r"^per-sample boxes must be an integer tensor \(B, 4\) = \(3, 4\) of "):
            fn(x.clone(), boxes.float(), perm)
        with pytest.raises(ValueError, match=r"got dtype torch\.int64 and shape \(2, 4\)$"):
            fn(x.clone(), boxes[:2], perm)
        bad = boxes.clone()
        bad[2] = torch.tensor([0, 7, 0, 1])
        with pytest.raises(
            ValueError,
            match=r"^per-sample boxes must satisfy 0 <= y0 <= y1 <= 6 and 0 <= x0 <= x1 <= 5 \(the image's height "
            r"and width\); row 2 is \(0, 7, 0, 1\)$",
        ):
            fn(x.clone(), bad, perm)
    with pytest.raises(ValueError, match=r"^cutmix_boxes takes one lam per sample, shape \(B,\), got shape \(\)$"):
        VF.cutmix_boxes(torch.tensor(0.5), 6, 5, torch.rand(1, 2))
    with pytest.raises(ValueError, match=r"^u must be the box centres as fractions of H and W, a \(2, 2\) tensor "):
        VF.cutmix_boxes(torch.tensor([0.5, 0.5]), 6, 5, torch.rand(3, 2))
    with pytest.raises(ValueError, match=r"^lam must be in \[0, 1\]"):
        VF.cutmix_boxes(torch.tensor([0.5, 1.5]), 6, 5, torch.rand(2, 2))
    with pytest.raises(ValueError, match=r"^u must be four uniforms per sample \(height, width, top, left\), a "):
        VF.cutmix_range_boxes((0.2, 0.8), 10, 10, torch.ones(2, 4))


def test_mixup_or_cutmix_per_sample_switch_is_timms_elem_mode():
    """lam_mode='sample' (timm's mode='elem'): per sample a switch, a mixup lam, a CutMix lam and box; the mixup
    rows are the formula with their lam, the CutMix rows their box from the partner; targets weighted per sample."""
    x, y = batch((8, 3, 9, 10), num_classes=4)
    mixer = vicinal.MixupOrCutMix(0.4, 1.0, 0.5, num_classes=4, lam_mode="sample", seed=7)
    g = torch.Generator().manual_seed(7)
    yh = F.one_hot(y, 4).float()
    seen = set()
    for _ in range(10):
        p = mixer.sample(x, y)
        cut = torch.rand(8, generator=g, dtype=torch.float64) < 0.5
        lam_mix = vicinal.sampling.sample_lam(0.4, 8, "sample", generator=g)
        lam_cut = vicinal.sampling.sample_lam(1.0, 8, "sample", generator=g)
        perm = torch.randperm(8, generator=g)
        u = torch.rand(8, 2, generator=g, dtype=torch.float64)
        assert p.op == "cutmix" and torch.equal(p.blend, ~cut) and torch.equal(p.perm, perm)
        expected = x.clone()
        for i in range(8):
            if cut[i]:
                box, kept = VF.cutmix_box(float(lam_cut[i]), 9, 10, u[i])
                assert tuple(p.box[i].tolist()) == box and float(p.lam[i]) == kept
                y0, y1, x0, x1 = box
                expected[i, :, y0:y1, x0:x1] = x[perm[i], :, y0:y1, x0:x1]
            else:
                assert p.box[i].tolist() == [0, 0, 0, 0] and float(p.lam[i]) == float(lam_mix[i])
                w = lam_mix[i].float()
                expected[i] = w * x[i] + (1 - w) * x[perm[i]]
            seen.add(bool(cut[i]))
        assert torch.equal(mixer.apply_inputs(x, p), expected)
        xi = x.clone()
        assert torch.equal(mixer.apply_inputs(xi, p, inplace=True), expected) and torch.equal(xi, expected)
        w = p.lam.float().reshape(-1, 1)
        assert torch.equal(mixer.apply_targets(y, p), w * yh + (1 - w) * yh[perm])
        pred = torch.randn(8, 4)
        two = vicinal.mixed_criterion(F.cross_entropy, pred, y, p)
        assert torch.allclose(two, vicinal.soft_cross_entropy(pred, mixer.apply_targets(y, p)), rtol=1e-6)
    assert seen == {True, False}


def test_mixup_or_cutmix_per_sample_on_uint8_rounds_the_mixup_rows_and_pastes_the_rest():
    x = torch.randint(0, 256, (8, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 4
    mixer = vicinal.MixupOrCutMix(1.0, 1.0, 0.5, num_classes=4, lam_mode="sample", seed=2)
    as_float = vicinal.MixupOrCutMix(1.0, 1.0, 0.5, num_classes=4, lam_mode="sample", seed=2, uint8_output="float")
    p = mixer.sample(x, y)
    rounded, unrounded = mixer.apply_inputs(x, p), as_float.apply_inputs(x, p)
    assert rounded.dtype == torch.uint8 and unrounded.dtype == torch.float32
    # the float32 mix, rounded to nearest (ties to even), is the uint8 result on every row
    assert torch.equal(rounded, unrounded.round().to(torch.uint8))
    collated, _ = vicinal.MixupCollate(vicinal.MixupOrCutMix(1.0, 1.0, 0.5, num_classes=4, lam_mode="sample", seed=2))(
        [(x[i], int(y[i])) for i in range(8)]
    )
    assert torch.equal(collated, rounded)


def test_per_sample_boxes_review_fixes():
    """helper-106: a shared box given as a (4,) tensor is not read as a batch of 4; per-sample pastes keep
    channels_last; a box_range whose only side is 0 pixels (it would never mix) is refused; hand-made blend params
    are named, not an AssertionError."""
    x, y = batch((6, 3, 8, 8), num_classes=4)
    mixer = vicinal.CutMix(num_classes=4, seed=0)
    p = vicinal.MixParams(op="cutmix", lam=0.75, perm=torch.arange(6).flip(0), box=torch.tensor([0, 4, 0, 4]))
    assert torch.equal(mixer.apply_inputs(x, p), VF.cutmix(x, (0, 4, 0, 4), torch.arange(6).flip(0)))
    cl = x.contiguous(memory_format=torch.channels_last)
    for m in (
        vicinal.CutMix(num_classes=4, lam_mode="sample", seed=1),
        vicinal.MixupOrCutMix(num_classes=4, lam_mode="sample", seed=1),
    ):
        q = m.sample(cl, y)
        out = m.apply_inputs(cl, q)
        assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(out, m.apply_inputs(x, q))
    with pytest.raises(ValueError, match=r"leaves no box of at least 1x1 pixels to draw on images of 32x32 pixels"):
        vicinal.CutMix(num_classes=4, box_range=(0.01, 0.04))(*batch((4, 3, 32, 32), num_classes=4))
    mixed = vicinal.MixupOrCutMix(num_classes=4, lam_mode="sample", seed=2)
    q = mixed.sample(x, y)
    for bad in (dataclasses.replace(q, lam=0.5), dataclasses.replace(q, blend=q.blend.long())):
        with pytest.raises(ValueError, match=r"^params with blend need per-sample boxes \(B, 4\), per-sample lam"):
            mixed.apply_inputs(x, bad)


def test_mixup_or_cutmix_per_sample_with_one_branch_draws_only_that_branch():
    x, y = batch((6, 3, 8, 8), num_classes=4)
    for switch, alone in (
        (0.0, vicinal.Mixup(0.4, lam_mode="sample", num_classes=4, seed=3)),
        (1.0, vicinal.CutMix(1.0, lam_mode="sample", num_classes=4, seed=3)),
    ):
        both = vicinal.MixupOrCutMix(0.4, 1.0, switch, num_classes=4, lam_mode="sample", seed=3)
        for _ in range(3):
            p, q = both.sample(x, y), alone.sample(x, y)
            assert p.op == q.op and torch.equal(p.lam, q.lam) and torch.equal(p.perm, q.perm)
            assert torch.equal(both.apply_inputs(x, p), alone.apply_inputs(x, q))
    erm = vicinal.MixupOrCutMix(0.0, 0.0, 0.5, num_classes=4, lam_mode="sample", seed=3)
    assert erm.sample(x, y).op == "identity"


def _timm_pair_mix(x, use_cutmix, lam_half, boxes_half):
    """timm's Mixup(mode="pair") with CutMix and the switch, written out: sample i and its mirror j = B - 1 - i share
    use_cutmix[i], lam_half[i] and boxes_half[i]; a CutMix pair swaps that box between the two images."""
    n = x.shape[0]
    out = x.clone()
    for i in range(n // 2):
        j = n - i - 1
        if use_cutmix[i]:
            y0, y1, x0, x1 = boxes_half[i]
            out[i, ..., y0:y1, x0:x1] = x[j, ..., y0:y1, x0:x1]
            out[j, ..., y0:y1, x0:x1] = x[i, ..., y0:y1, x0:x1]
        else:
            lam = lam_half[i]
            out[i] = x[i] * lam + x[j] * (1 - lam)
            out[j] = x[j] * lam + x[i] * (1 - lam)
    return out


@pytest.mark.parametrize("n", [8, 7])
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: vicinal.CutMix(1.0, **kw),
        lambda **kw: vicinal.CutMix(box_range=(0.2, 0.8), **kw),
        lambda **kw: vicinal.MixupOrCutMix(0.4, 1.0, 0.5, **kw),
    ],
    ids=["cutmix", "cutmix-box-range", "mixup-or-cutmix"],
)
def test_pair_lam_mode_with_cutmix_equals_timms_pair_mode(make, n):
    """lam_mode='pair' with flip pairs (timm's mode='pair'): the draws of lam_mode='sample', each pair taking those
    of its smaller index, so the two images of a pair swap one box (or mix with one lam); odd batches' middle
    sample is its own partner (timm refuses odd batches)."""
    x, y = batch((n, 3, 9, 10), num_classes=4)
    yh = F.one_hot(y, 4).float()
    mixer = make(pairing="flip", lam_mode="pair", num_classes=4, seed=3)
    twin = make(pairing="flip", lam_mode="sample", num_classes=4, seed=3)
    lead = torch.minimum(torch.arange(n), torch.arange(n).flip(0))
    seen = set()
    for _ in range(10):
        p, q = mixer.sample(x, y), twin.sample(x, y)
        assert torch.equal(p.perm, q.perm) and torch.equal(p.perm, torch.arange(n).flip(0))
        assert torch.equal(p.lam, q.lam[lead]) and torch.equal(p.box, q.box[lead])
        cut = torch.ones(n, dtype=torch.bool) if p.blend is None else ~p.blend
        if p.blend is not None:
            assert torch.equal(p.blend, q.blend[lead])
        seen.update(cut.tolist())
        expected = _timm_pair_mix(x, cut, p.lam.float(), p.box.tolist())
        if n % 2:
            m = n // 2
            w = p.lam[m].float()
            expected[m] = x[m] if cut[m] else w * x[m] + (1 - w) * x[m]
        assert torch.equal(mixer.apply_inputs(x, p), expected)
        xi = x.clone()
        assert mixer.apply_inputs(xi, p, inplace=True) is xi and torch.equal(xi, expected)
        w = p.lam.float().reshape(-1, 1)
        assert torch.equal(mixer.apply_targets(y, p), w * yh + (1 - w) * yh[p.perm])
    assert seen == ({True, False} if isinstance(mixer, vicinal.MixupOrCutMix) else {True})


def test_pair_lam_mode_with_cutmix_shares_the_draws_within_random_pairs_and_the_three_cycle():
    for n, allow_self in ((8, True), (9, False)):
        x, y = batch((n, 3, 8, 8), num_classes=4)
        for mixer in (
            vicinal.CutMix(1.0, pairing="matching", lam_mode="pair", allow_self=allow_self, num_classes=4, seed=1),
            vicinal.MixupOrCutMix(
                1.0, 1.0, 0.5, pairing="matching", lam_mode="pair", allow_self=allow_self, num_classes=4, seed=1
            ),
        ):
            for _ in range(10):
                p = mixer.sample(x, y)
                # every sample's partner has its lam, box and switch: a -> b -> c -> a included
                assert torch.equal(p.lam[p.perm], p.lam) and torch.equal(p.box[p.perm], p.box)
                assert p.blend is None or torch.equal(p.blend[p.perm], p.blend)
                expected = _paste_loop(x, x[p.perm], p.box)
                for i in [] if p.blend is None else p.blend.nonzero().flatten().tolist():  # the mixup rows
                    w = p.lam[i].float()
                    expected[i] = w * x[i] + (1 - w) * x[p.perm[i]]
                assert torch.equal(mixer.apply_inputs(x, p), expected)
    with pytest.raises(ValueError, match=r"^lam_mode='pair' shares lam between partners within the batch; with "):
        vicinal.MixupOrCutMix(pairing="flip", lam_mode="pair", num_classes=4)(x, y, partner=(x, y))


def test_cutmix_closer_targets_follow_the_corrected_lam():
    x, y = batch((6, 3, 8, 8), num_classes=4)
    mixer = vicinal.CutMix(1.0, num_classes=4, targets="closer", seed=1)
    yh = F.one_hot(y, 4).float()
    seen = set()
    for _ in range(20):
        p = mixer.sample(x, y)
        seen.add(p.lam >= 0.5)
        assert torch.equal(mixer.apply_targets(y, p), yh if p.lam >= 0.5 else yh[p.perm])
    assert seen == {True, False}  # both branches met


def test_closer_targets_with_dataset_partners():
    x, y = batch((6, 3), num_classes=4)
    xp, yp = batch((6, 3), num_classes=4, seed=1)
    mixer = vicinal.Mixup(1.0, num_classes=4, targets="closer", lam_mode="sample", seed=0)
    p = mixer.sample(x, y, partner=(xp, yp))
    keep = (p.lam >= 0.5)[:, None]
    assert torch.equal(mixer.apply_targets(y, p), torch.where(keep, F.one_hot(y, 4).float(), F.one_hot(yp, 4).float()))


def test_batch_of_one_is_mixed_with_a_dataset_partner():
    """Only a batch of one without partners has nothing to mix; a k-NN partner is another sample."""
    x, y = batch((1, 3), num_classes=4)
    xp, yp = torch.randn(1, 3), (y + 1) % 4
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=0)
    p = mixer.sample(x, y, partner=(xp, yp))
    assert p.op == "mix" and 0.0 < p.lam < 1.0
    assert torch.equal(mixer.apply_inputs(x, p), p.lam * x + (1 - p.lam) * xp)
    yh, yph = F.one_hot(y, 4).float(), F.one_hot(yp, 4).float()
    assert torch.equal(mixer.apply_targets(y, p), p.lam * yh + (1 - p.lam) * yph)


def test_partner_labels_are_checked_like_the_batch_labels():
    x, y = batch((4, 3), num_classes=4)
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=4\), got values from 0 to 4"):
        mixer(x, y, partner=(x.clone(), torch.tensor([0, 1, 2, 4])))
    soft = F.one_hot(y, 4).float()
    with pytest.raises(ValueError, match=r"probability labels must sum to 1 in every row"):
        mixer(x, soft, partner=(x.clone(), torch.tensor([[0.5, 0.6, 0.0, 0.0]] * 4)))


def test_multi_hot_labels_are_refused_with_the_way_to_mix_them():
    # timm's multi_label=True and fastai mix multi-hot rows; without the option such rows are not probabilities,
    # and the error names the option
    x = torch.randn(4, 3)
    multi_hot = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match=r"row 0 sums to 2 \(multi-hot targets: pass multi_label=True\)$"):
        vicinal.Mixup(1.0, num_classes=3, seed=0)(x, multi_hot)
    with pytest.raises(ValueError, match=r"row 0 sums to 0$"):  # one column: no multi-label hint
        vicinal.Mixup(1.0, seed=0)(x, torch.zeros(4, 1))
    params = vicinal.Mixup(1.0, regression=True, seed=0).sample(x, multi_hot)
    mixed = vicinal.Mixup(1.0, regression=True).apply_targets(multi_hot, params)
    assert torch.equal(mixed, params.lam * multi_hot + (1 - params.lam) * multi_hot[params.perm])


def test_flip_odd_batch_without_self_pairs_is_refused_even_when_nothing_is_drawn():
    """Eager validation: the refusal does not wait for a batch whose pairs are drawn (alpha 0, a coin that fails)."""
    x, y = batch((5, 3), num_classes=4)
    for kwargs in ({"alpha": 0.0}, {"alpha": 1.0, "prob": 0.0}):
        mixer = vicinal.Mixup(pairing="flip", allow_self=False, num_classes=4, seed=0, **kwargs)
        with pytest.raises(ValueError, match=r"flip pairing pairs the middle sample of an odd batch \(5\) with itself"):
            mixer(x, y)


def test_alpha_zero_draws_nothing():
    """alpha = 0 is ERM: the batch unchanged, params of op "identity", and no random number consumed."""
    x, y = batch()
    for mixer in (vicinal.Mixup(0.0, num_classes=4, seed=0), vicinal.DirichletMixup(0.0, num_classes=4, seed=0)):
        state = mixer.generator.get_state()
        p = mixer.sample(x, y)
        assert p.op == "identity" and p.perm is None
        assert torch.equal(mixer.generator.get_state(), state)


def test_dirichlet_params_lam_is_the_weight_of_the_sample_itself_and_batch_mode_shares_weights():
    x, y = batch((8, 3), num_classes=4)
    for lam_mode in ("batch", "sample"):
        p = vicinal.DirichletMixup(1.0, k=3, lam_mode=lam_mode, num_classes=4, seed=0).sample(x, y)
        assert torch.equal(p.indices[0], torch.arange(8))  # row 0: the sample itself, weighted by column 0
        assert torch.equal(p.lam, p.weights[:, 0])
        rows_equal = bool((p.weights == p.weights[0]).all())
        assert rows_equal == (lam_mode == "batch")


def test_regression_targets_of_three_dimensions_are_refused():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"regression targets must be float of shape \(B,\) or \(B, K\), got dtype "):
        vicinal.Mixup(1.0, regression=True, seed=0)(x, torch.randn(4, 2, 2))


def test_transforms_mix_samples_without_values():
    x, y = torch.empty(4, 0, dtype=torch.bfloat16), torch.tensor([0, 1, 2, 0])
    for kwargs in ({"inplace": True}, {"exact": False}, {}):
        xm, ym = vicinal.Mixup(1.0, num_classes=3, seed=0, **kwargs)(x, y)
        assert xm.shape == (4, 0) and torch.allclose(ym.sum(1), torch.ones(4))


class _Unwrapping(torch.Tensor):
    """A tensor subclass whose ops return plain tensors, as torchvision's tv_tensors do."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "make",
    [
        lambda: vicinal.Mixup(1.0, num_classes=4, prob=0.5, seed=0),
        lambda: vicinal.Mixup(1.0, num_classes=4, inplace=True, seed=0),
        lambda: vicinal.Mixup(1.0, num_classes=4, exact=False, seed=0),
        lambda: vicinal.Mixup(1.0, num_classes=4, lam_mode="sample", seed=0),
        lambda: vicinal.MixupOrCutMix(1.0, 1.0, num_classes=4, seed=0),
        lambda: vicinal.Mixup(1.0, num_classes=4, uint8_output="float", seed=0),
    ],
)
def test_the_output_keeps_the_inputs_tensor_subclass_whatever_is_drawn(make):
    # before, a mixed batch came back a plain tensor and an unmixed one (a failed prob coin, CutMix, in place) the
    # subclass: with prob < 1 the type changed from batch to batch; torchvision's MixUp always returns the subclass
    mixer = make()
    x = torch.rand(6, 3, 4, 4)
    if mixer.uint8_output == "float":
        x = (x * 255).to(torch.uint8)
    y = torch.arange(6) % 4
    for _ in range(8):
        xs = x.clone().as_subclass(_Unwrapping)
        xs.tag = "metadata"  # instance attributes come along, as tv_tensors.wrap() copies them
        params = mixer.sample(xs, y)
        out = mixer.apply_inputs(xs, params)
        assert type(out) is _Unwrapping and out.tag == "metadata"
        ref = mixer.apply_inputs(x.clone(), params)  # the values are those of the plain batch
        assert type(ref) is torch.Tensor and torch.equal(out.as_subclass(torch.Tensor), ref)


def test_learnable_inputs_mix_into_an_activation_of_their_graph():
    x = torch.nn.Parameter(torch.rand(6, 3))
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=0)
    params = mixer.sample(x, torch.arange(6) % 4)
    out = mixer.apply_inputs(x, params)
    assert type(out) is torch.Tensor and out.grad_fn is not None
    out.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # each row's weights sum to 1 over the batch's rows


def test_torchvision_images_stay_images():
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    x, y = tv_tensors.Image(torch.rand(8, 3, 4, 4)), torch.arange(8) % 4
    mixer = vicinal.Mixup(1.0, num_classes=4, prob=0.5, seed=0)
    assert {type(mixer(x, y)[0]) for _ in range(8)} == {tv_tensors.Image}


@pytest.mark.parametrize(
    "make",
    [
        lambda: vicinal.Mixup(1.0, regression=True, pairing="same_class"),
        lambda: vicinal.CutMix(1.0, regression=True, pairing="same_class"),
        lambda: vicinal.MixupOrCutMix(regression=True, pairing="same_class"),
    ],
)
def test_same_class_pairing_needs_class_labels(make):
    # with continuous targets every sample was a class of its own and paired with itself: ERM under a mixup name
    with pytest.raises(ValueError, match=r"^pairing='same_class' needs class labels, not regression targets$"):
        make()


def _mix_after_default_collate(mixer, samples):
    """torchvision v2's documented way to mix in the loader: ``collate_fn=lambda b: mixup(*default_collate(b))``
    (module-level so that spawned workers can unpickle it)."""
    return mixer(*torch.utils.data.default_collate(samples))


def _worker_loader(mixer, context="fork", persistent=False, seed=5):
    # row i of batch k is 4k + i: the mixed values encode each batch's lam and partners
    ds = torch.utils.data.TensorDataset(torch.arange(16.0).view(16, 1), torch.zeros(16, dtype=torch.long))
    return torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=2, collate_fn=functools.partial(_mix_after_default_collate, mixer),
        multiprocessing_context=context, persistent_workers=persistent, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def _draws(loader):
    """Each batch's mix of its local indices 0-3 (to 4 decimals, past the rounding of the offset 4k): equal lists
    mean the same lam and partners."""
    return [[round(v, 4) for v in (x.flatten() - 4 * k).tolist()] for k, (x, _) in enumerate(loader)]


def test_a_transform_in_loader_workers_draws_per_worker_and_per_epoch():
    # every forked worker copied one generator state: the two workers drew the same lam and partners, and each
    # epoch replayed the last (torchvision's MixUp uses the global RNG, which the DataLoader seeds per worker)
    loader = _worker_loader(vicinal.Mixup(1.0, num_classes=2, seed=0))
    epoch1, epoch2 = _draws(loader), _draws(loader)
    assert epoch1[0] != epoch1[1] and epoch1[2] != epoch1[3]  # batches 0 and 1 come from workers 0 and 1
    assert epoch1 != epoch2
    # the same seeds (loader and transform) give the same batches; worker k of the first epoch, batch after batch,
    # continues the stream of the generator seeded from its worker seed and the transform's seed
    assert _draws(_worker_loader(vicinal.Mixup(1.0, num_classes=2, seed=0))) == epoch1
    base = torch.empty((), dtype=torch.int64).random_(generator=torch.Generator().manual_seed(5)).item()
    for worker in (0, 1):
        seed = int(np.random.SeedSequence([base + worker, 0]).generate_state(1, np.uint64)[0])
        ref = vicinal.Mixup(1.0, num_classes=2, seed=seed)
        for k in (worker, worker + 2):
            x = torch.arange(4.0 * k, 4.0 * k + 4).view(4, 1)
            mixed = ref(x, torch.zeros(4, dtype=torch.long))[0].flatten() - 4 * k
            assert [round(v, 4) for v in mixed.tolist()] == epoch1[k]
    # persistent workers re-seed once, then continue their streams across epochs
    persistent = _worker_loader(vicinal.Mixup(1.0, num_classes=2, seed=0), persistent=True)
    first, second = _draws(persistent), _draws(persistent)
    assert first == epoch1 and second != first and second[0] != second[1]


def test_a_transform_in_spawned_workers_mixes_as_in_forked_ones():
    # spawn (macOS, Windows) and forkserver (Python 3.14's Linux default) pickle the collate_fn: torch's own reduction
    # of the generator made the workers fail ("unable to resize file")
    mixer = vicinal.Mixup(1.0, num_classes=2, seed=0)
    assert _draws(_worker_loader(mixer, "spawn")) == _draws(_worker_loader(mixer, "fork"))


def test_pickle_and_copies_keep_the_stream_and_a_shared_generator():
    import copy
    import pickle

    x, y = batch()
    for name, clone in (("pickle", lambda m: pickle.loads(pickle.dumps(m))), ("deepcopy", copy.deepcopy)):
        mixer = vicinal.MixupOrCutMix(num_classes=4, seed=2)
        twin = clone(mixer)
        g = twin.generator
        assert g is not mixer.generator and g is twin.mixup.generator and g is twin.cutmix.generator, name
        for _ in range(4):  # the copy continues the original's stream, both branches on one generator
            (a, ya), (b, yb) = mixer(x.clone(), y), twin(x.clone(), y)
            assert torch.equal(a, b) and torch.equal(ya, yb), name
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=2)
    assert copy.copy(mixer).generator is mixer.generator  # a shallow copy shares it, as before


def test_masks_boxes_and_keypoints_are_not_averaged():
    # a Mask was mixed into non-classes (ids 0, 5, 10, 15 -> 1, 4, 11, 14) and came back labelled a Mask; boxes
    # likewise. Every transform that averages inputs refuses them on every call, whatever is drawn; CutMix pastes
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")
    mask = tv_tensors.Mask((torch.arange(4, dtype=torch.uint8) * 5)[:, None, None].expand(4, 4, 4).contiguous())
    boxes = tv_tensors.BoundingBoxes(torch.rand(4, 4) * 4, format="XYXY", canvas_size=(4, 4))
    y = torch.arange(4)
    for build, inputs in (
        (lambda: vicinal.Mixup(1.0, num_classes=4, prob=0.01, seed=0), (mask, boxes)),  # unmixed by the coin too
        (lambda: vicinal.Mixup(1.0, num_classes=4, inplace=True, seed=0), (mask, boxes)),
        (lambda: vicinal.MixupOrCutMix(1.0, 1.0, 0.99, num_classes=4, seed=0), (mask,)),  # boxes: no (H, W) for CutMix
        (lambda: vicinal.DirichletMixup(1.0, num_classes=4, seed=0), (mask, boxes)),
    ):
        for x in inputs:
            what = "a Mask holds class ids" if x is mask else "a BoundingBoxes holds box coordinates"
            with pytest.raises(TypeError, match=rf"^\w+ averages its inputs, and {what}, whose average means nothing"):
                build()(x.clone(), y)
    noise = vicinal.GaussianNoise(0.1, num_classes=4, seed=0)
    with pytest.raises(TypeError, match=r"^GaussianNoise averages its inputs, and a Mask holds class ids"):
        noise(tv_tensors.wrap(mask.float(), like=mask), y)
    # a paste keeps every value a class id: CutMix and ERM take masks, as the image they go with
    for mixer in (vicinal.CutMix(1.0, num_classes=4, seed=0), vicinal.ERM(num_classes=4)):
        out, _ = mixer(mask.clone(), y)
        assert type(out) is tv_tensors.Mask and set(out.unique().tolist()) <= {0, 5, 10, 15}


def test_misplaced_partner_params_and_lam_mode_are_named():
    x, y = batch()
    mixer = vicinal.Mixup(1.0, num_classes=4, seed=0)
    for partner, got in ((x, "a Tensor"), ((x, y, x), "a tuple of 3 items")):  # a tensor was unpacked row by row
        with pytest.raises(TypeError, match=rf"^partner must be the pair \(x_partner, y_partner\), got {got}$"):
            mixer(x, y, partner=partner)
    for params in ({"lam": 0.5}, None):
        with pytest.raises(TypeError, match=r"^params must be the MixParams that sample\(\) returns, got "):
            mixer.apply_inputs(x, params)
        with pytest.raises(TypeError, match=r"^params must be the MixParams that sample\(\) returns, got "):
            mixer.apply_targets(y, params)
    with pytest.raises(ValueError, match=r"^unknown lam_mode 'elem'; known: batch, sample, pair$"):
        vicinal.MixupOrCutMix(1.0, 1.0, 0.5, lam_mode="elem", pairing="flip")
    with pytest.raises(ValueError, match=r"^lam_mode='pair' gives each two samples .* got pairing='roll'$"):
        vicinal.MixupOrCutMix(1.0, 1.0, 0.5, lam_mode="pair", pairing="roll")


@pytest.mark.parametrize(
    "make",
    [
        lambda: vicinal.Mixup(1.0, num_classes=3, seed=0),
        lambda: vicinal.Mixup(1.0, num_classes=3, inplace=True, lam_mode="sample", seed=0),
        lambda: vicinal.MixupOrCutMix(1.0, 1.0, 0.5, num_classes=3, seed=0),
        lambda: vicinal.GaussianNoise(0.1, num_classes=3, seed=0),
        lambda: vicinal.Mixup(1.0, num_classes=3, targets="closer", seed=0),
    ],
    ids=["mixup", "in-place-per-sample", "mixup-or-cutmix", "noise", "closer-targets"],
)
def test_a_compiled_step_runs_the_transform_eagerly_around_one_graph(make):
    # A step compiled with the transform inside traced it, specialised on each drawn lam (a recompile per batch
    # up to dynamo's limit, 27 graphs in 30 steps, then slower than eager) and broke on get_worker_info. The
    # transform runs eagerly now: one graph for the rest of the step, and the same stream as the eager step.
    from torch._dynamo.utils import counters

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))

    def step(mixer, x, y):
        xm, ym = mixer(x, y)
        return vicinal.soft_cross_entropy(model(xm), ym)

    def step_in_parts(mixer, x, y):  # the fastai row of the README: sample, then each apply_*
        params = mixer.sample(x, y)
        xm, ym = mixer.apply_inputs(x, params), mixer.apply_targets(y, params)
        return vicinal.soft_cross_entropy(model(xm), ym)

    for fn in (step, step_in_parts):
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(functools.partial(fn, make()), backend="eager")  # no C++ compiler needed
        eager = functools.partial(fn, make())
        gen = torch.Generator().manual_seed(1)
        for _ in range(12):
            x, y = torch.rand(6, 3, 2, 2, generator=gen), torch.randint(0, 3, (6,), generator=gen)
            assert torch.equal(compiled(x.clone(), y), eager(x.clone(), y))
        assert counters["stats"]["unique_graphs"] == 1, (fn.__name__, dict(counters["stats"]))


def test_one_compiled_step_takes_five_transform_classes_within_dynamos_recompile_limit():
    """Dynamo compiles each wrapper's frame at its graph break, guarded on the transform's class. The wrappers
    shared one code object, and a global dict whose size dynamo guarded: two transforms in one compiled step hit
    its recompile limit (8), a warning, or FailOnRecompileLimitHit with fail_on_recompile_limit_hit. Now each method
    has its own frame cache: five classes, both call forms, and every step as the eager one."""
    import torch._dynamo

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))

    def step(mixer, x, y):
        params = mixer.sample(x, y)
        return vicinal.soft_cross_entropy(model(mixer.apply_inputs(x, params)), mixer.apply_targets(y, params))

    def step_in_one(mixer, x, y):
        xm, ym = mixer(x, y)
        return vicinal.soft_cross_entropy(model(xm), ym)

    def transforms():
        return [
            vicinal.Mixup(1.0, num_classes=3, seed=0),
            vicinal.CutMix(1.0, num_classes=3, seed=0),
            vicinal.MixupOrCutMix(num_classes=3, seed=0),
            vicinal.DirichletMixup(num_classes=3, seed=0),
            vicinal.GaussianNoise(num_classes=3, seed=0),
        ]

    torch._dynamo.reset()
    compiled_mixers, eager_mixers = transforms(), transforms()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        compiled = [torch.compile(step, backend="eager"), torch.compile(step_in_one, backend="eager")]
        gen = torch.Generator().manual_seed(1)
        for i in range(20):
            x, y = torch.rand(6, 3, 2, 2, generator=gen), torch.randint(0, 3, (6,), generator=gen)
            k = i % 5
            for c, fn in zip(compiled, (step, step_in_one), strict=True):
                assert torch.equal(c(compiled_mixers[k], x.clone(), y), fn(eager_mixers[k], x.clone(), y))
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: vicinal.Mixup(mixup_alpha=0.8),
            r"^Mixup\(\) got an unexpected keyword argument 'mixup_alpha' \(from timm / torchvision / kornia: mixup_alpha -> "
            r"Mixup\(alpha\) \(MixupOrCutMix takes mixup_alpha, cutmix_alpha and switch_prob\)\)$",
        ),
        (
            lambda: vicinal.CutMix(1.0, label_smoothing=0.1, mode="elem"),
            r"^CutMix\(\) got unexpected keyword arguments 'label_smoothing', 'mode' \(from timm / torchvision / kornia: "
            r"label_smoothing -> smoothing=; mode -> lam_mode='batch', 'sample' \(timm's 'elem'\) or 'pair' \(with "
            r"pairing='flip' or 'matching'\)\)$",
        ),
        (
            lambda: vicinal.MixupOrCutMix(cutmix_minmax=(0.2, 0.8)),
            r"^MixupOrCutMix\(\) got an unexpected keyword argument 'cutmix_minmax' \(from timm / torchvision / kornia: "
            r"cutmix_minmax -> box_range=\(min, max\) of CutMix or MixupOrCutMix\)$",
        ),
        (
            lambda: vicinal.Mixup(1.0, p=0.5, same_on_batch=True),
            r"^Mixup\(\) got unexpected keyword arguments 'p', 'same_on_batch' \(from timm / torchvision / kornia: "
            r"p -> prob= \(one coin per batch; kornia 0.8's p also gates each sample, which is not offered\); "
            r"same_on_batch -> lam_mode='batch' \(one lam per batch, the default here; kornia's default is "
            r"lam_mode='sample'\)\)$",
        ),
        (
            lambda: vicinal.DirichletMixup(1.0, bogus=1),
            r"^DirichletMixup\(\) got an unexpected keyword argument 'bogus'$",
        ),
    ],
    ids=["mixup_alpha", "two", "cutmix_minmax", "kornia", "unknown"],
)
def test_an_unknown_option_names_the_class_called_and_a_peer_names_equivalent(make, message):
    # Python's own error named BatchMix.__init__ (where each subclass passes its **kwargs), not the class the user
    # called, and gave no hint for the names a port from timm or torchvision carries over
    with pytest.raises(TypeError, match=message):
        make()
