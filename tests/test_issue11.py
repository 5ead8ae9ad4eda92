"""Regression tests for issue #11 (items 1-7): each failed before its fix."""

import functools

import pytest
import torch
import torch.nn.functional as F

import vicinal
from vicinal import functional as VF


def uint8_batch(n=8, seed=0, shape=(3, 6, 5)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.arange(n) % 4


# -- item 1: Dirichlet mixing of uint8 batches ----------------------------------------------------------------------
def dirichlet_reference(x, params):
    """sum_j w_j x[idx_j] in float32, rounded to nearest (the 2-way uint8 contract)."""
    acc = torch.zeros(x.shape, dtype=torch.float32)
    for j in range(params.indices.shape[0]):
        w = params.weights[:, j].float().reshape(-1, *([1] * (x.dim() - 1)))
        acc += w * x[params.indices[j]].float()
    return acc


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


def test_dirichlet_through_mixup_collate_uint8():
    x, y = uint8_batch(6)
    batch = [(x[i], int(y[i])) for i in range(6)]
    xm, _ = vicinal.MixupCollate(mixer=vicinal.DirichletMixup(alpha=1.0, k=3, num_classes=4, seed=2))(batch)
    params = vicinal.DirichletMixup(alpha=1.0, k=3, num_classes=4, seed=2).sample(x, y)
    assert xm.dtype == torch.uint8
    assert float((xm.float() - dirichlet_reference(x, params)).abs().max()) <= 0.5 + 1e-4


# -- item 2: uint8_output="float" returns float32 whatever is drawn ---------------------------------------------------
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


# -- item 3: k-NN neighbours are translation invariant and keep float64 ------------------------------------------------
def brute_force_neighbours(feats, k):
    d = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    d.fill_diagonal_(float("inf"))
    return d.topk(k, dim=1, largest=False).indices


def test_knn_translation_invariant_float64():
    b = torch.randn(300, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    base = vicinal.KNNPartners.fit(b, k=5, chunk_size=128)
    shifted = vicinal.KNNPartners.fit(b + 1000, k=5, chunk_size=128)
    assert torch.equal(base.neighbours, brute_force_neighbours(b, 5))
    assert torch.equal(shifted.neighbours, base.neighbours)


def test_knn_keeps_float64_precision():
    # sample 0's nearest neighbour is sample 2 (distance 1) by 1e-10 over sample 1: float32 cannot tell them apart
    feats = torch.tensor([[0.0], [-1.0 - 1e-10], [1.0]], dtype=torch.float64)
    knn = vicinal.KNNPartners.fit(feats, k=1)
    assert knn.neighbours[:, 0].tolist() == [2, 0, 0]


# -- item 4: MixupOrCutMix validates eagerly ------------------------------------------------------------------------
def test_mixup_or_cutmix_rejects_2d_batches_on_every_call():
    mixer = vicinal.MixupOrCutMix(num_classes=4, switch_prob=0.5, seed=0)
    x, y = torch.randn(8, 5), torch.arange(8) % 4
    for _ in range(20):
        with pytest.raises(ValueError, match=r"CutMix needs inputs of shape \(B, \.\.\., H, W\), got shape \(8, 5\)"):
            mixer(x, y)
    with pytest.raises(ValueError, match=r"CutMix needs inputs of shape \(B, \.\.\., H, W\), got shape \(1, 5\)"):
        vicinal.CutMix(num_classes=4)(torch.randn(1, 5), torch.tensor([0]))
    # switch_prob=0 never draws CutMix: tabular batches stay accepted
    xm, _ = vicinal.MixupOrCutMix(num_classes=4, switch_prob=0.0, seed=0)(x, y)
    assert xm.shape == x.shape


# -- item 5: mixed_criterion equals soft_cross_entropy for every variant, or says why not ------------------------------
@pytest.mark.parametrize("name", vicinal.VARIANTS)
@pytest.mark.parametrize("lam_mode", ["batch", "sample"])
def test_mixed_criterion_matches_soft_targets_for_every_variant(name, lam_mode):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 5, (8,), generator=g)
    logits = torch.randn(8, 5, generator=g) * 2
    kwargs = {"num_classes": 5, "seed": 0}
    if lam_mode == "sample" and name in ("mixup", "mix_inputs_only", "mix_inputs_label_smoothing", "dirichlet"):
        kwargs["lam_mode"] = "sample"
    mixer = vicinal.build(name, **kwargs)
    for _ in range(4):
        p = mixer.sample(x, y)
        soft = vicinal.soft_cross_entropy(logits, mixer.apply_targets(y, p))
        if mixer.smoothing:
            with pytest.raises(ValueError, match=r"label smoothing.*smoothing=0\.1.*label_smoothing="):
                vicinal.mixed_criterion(F.cross_entropy, logits, y, p)
            ce = functools.partial(F.cross_entropy, label_smoothing=mixer.smoothing)
            two = vicinal.mixed_criterion(ce, logits, y, p, label_smoothing=mixer.smoothing)
        else:
            two = vicinal.mixed_criterion(F.cross_entropy, logits, y, p)
        torch.testing.assert_close(two, soft, rtol=1e-5, atol=1e-6)


def test_mixed_criterion_smoothing_mismatch():
    x, y = torch.randn(4, 3), torch.arange(4)
    p = vicinal.Mixup(1.0, num_classes=4, smoothing=0.1, seed=0).sample(x, y)
    with pytest.raises(ValueError, match=r"label_smoothing=0\.2 .* mixer's smoothing=0\.1"):
        vicinal.mixed_criterion(F.cross_entropy, torch.zeros(4, 4), y, p, label_smoothing=0.2)


def test_mixed_criterion_closer_targets():
    x, y = torch.randn(6, 3), torch.arange(6) % 3
    mixer = vicinal.Mixup(1.0, num_classes=3, targets="closer", lam_mode="sample", seed=0)
    p = mixer.sample(x, y)
    logits = torch.randn(6, 3)
    closer = torch.where(p.lam >= 0.5, y, y[p.perm])
    torch.testing.assert_close(vicinal.mixed_criterion(F.cross_entropy, logits, y, p), F.cross_entropy(logits, closer))


# -- item 6: named errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.tensor([[0.5, 0.4], [0.0, 1.0]]), r"probability labels must sum to 1.*row 0 sums to 0\.9"),
        (torch.tensor([[1.5, -0.5], [0.0, 1.0]]), r"probability labels must be >= 0.*-0\.5"),
        (torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]), r"probability labels contain 1 non-finite"),
    ],
)
def test_probability_labels_validated(labels, message):
    with pytest.raises(ValueError, match=message):
        vicinal.Mixup(1.0, num_classes=2, seed=0)(torch.randn(2, 3), labels)


def test_probability_labels_accept_rounding_and_smoothing():
    y = F.one_hot(torch.arange(3), 3).float() * 0.9 + 0.1 / 3  # label smoothing, rows sum to 1 up to rounding
    vicinal.Mixup(1.0, num_classes=3, seed=0)(torch.randn(3, 2), y)
    vicinal.Mixup(1.0, num_classes=3, seed=0)(torch.randn(3, 2), y.bfloat16())


@pytest.mark.parametrize("lam", [1.5, -0.1, float("nan"), torch.tensor([0.5, 1.5, 0.2, 0.1])])
def test_mix_rejects_lam_outside_unit_interval(lam):
    x = torch.randn(4, 3)
    for call in (lambda: VF.mix(x, lam, torch.arange(4)), lambda: VF.mix_(x.clone(), lam, torch.arange(4))):
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
            call()
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        VF.mix_targets(torch.eye(4), lam, torch.arange(4))


def test_perm_out_of_range():
    x = torch.randn(4, 3)
    for perm in (torch.tensor([0, 1, 2, 4]), torch.tensor([-1, 0, 1, 2])):
        with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 4\)"):
            VF.mix(x, 0.5, perm)
        with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 4\)"):
            VF.mix_(x.clone(), 0.5, perm)
    with pytest.raises(TypeError, match="perm must be an integer tensor"):
        VF.mix(x, 0.5, torch.zeros(4))


def test_mixed_criterion_batch_mismatch():
    x, y = torch.randn(8, 3), torch.arange(8) % 4
    p = vicinal.Mixup(1.0, num_classes=4, seed=0).sample(x, y)
    with pytest.raises(ValueError, match=r"labels have 4 samples but predictions have 8"):
        vicinal.mixed_criterion(F.cross_entropy, torch.zeros(8, 4), y[:4], p)
    with pytest.raises(ValueError, match=r"params were drawn for a batch of 8 but predictions have 4"):
        vicinal.mixed_criterion(F.cross_entropy, torch.zeros(4, 4), y[:4], p)


def test_knn_rejects_non_finite_features():
    feats = torch.randn(10, 3)
    feats[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"features contain 1 non-finite value"):
        vicinal.KNNPartners.fit(feats, k=2)


@pytest.mark.parametrize("bad", [-1, 0, 2.5, True])
def test_sample_gan_lam_batch_size(bad):
    with pytest.raises((ValueError, TypeError), match=r"batch_size must be an int >= 1"):
        vicinal.sample_gan_lam(bad, generator=torch.Generator())


def test_load_state_dict_errors():
    mixer = vicinal.Mixup(1.0, num_classes=2)
    with pytest.raises(ValueError, match=r"state has no 'generator' entry"):
        mixer.load_state_dict({})
    with pytest.raises(TypeError, match=r"state must be a dict from state_dict\(\), got list"):
        mixer.load_state_dict([])
    with pytest.raises(TypeError, match=r"state\['generator'\] must be the uint8 tensor"):
        mixer.load_state_dict({"generator": 3})


# -- item 7: CutMix's rounding convention is documented ------------------------------------------------------------------
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
