"""Issue 14 fast paths against the paper's formula: each new path is bit-identical (``torch.equal``)."""

import pytest
import torch
import torch.nn.functional as F

import vicinal
from vicinal import functional as VF


@pytest.mark.parametrize("n, c", [(1, 2), (7, 3), (128, 10), (64, 1000)])
@pytest.mark.parametrize("lam_kind", ["batch", "sample", "edges"])
def test_mixed_one_hot_equals_formula(n, c, lam_kind):
    g = torch.Generator().manual_seed(n + c)
    y = torch.randint(0, c, (n,), generator=g)
    perm = torch.randperm(n, generator=g)
    lams = {
        "batch": [float(torch.rand((), generator=g, dtype=torch.float64)), 0.5, 0.1 + 0.2],
        "sample": [torch.rand(n, generator=g, dtype=torch.float64)],
        "edges": [0.0, 1.0, torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)],
    }[lam_kind]
    for lam in lams:
        expected = VF.mix_targets(F.one_hot(y, c).float(), lam, perm)  # the formula: w * y + (1 - w) * y[perm]
        assert torch.equal(VF.mixed_one_hot(y, lam, perm, c), expected)


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


# -- round 2: the fused uint8 kernel (one quantized add per slice) --------------------------------------------------
def _u8_formula(a, b, lam):
    """The contract: mix in float32 (weights float32(lam), float32(1 - lam)), round to nearest-even, clamp."""
    return (lam * a.float() + (1 - lam) * b.float()).round().clamp(0, 255).to(torch.uint8)


ALL_PAIRS_LAMS = [0.5, 0.25, 0.75, 1 / 3, 2 / 3, 0.1, 0.9, 0.3 + 0.2, 1e-6, 1 - 1e-6, 2.0**-90, 1 - 2.0**-40]


def test_fused_uint8_is_used_and_exact_over_every_pair():
    """Exhaustive: all 65,536 (a, b) pairs, exact ties (lam = 1/2, 1/4, 3/4) included: bound 0 (bit-identical)."""
    assert VF._quantized_available()  # this torch has the quantized add: the fused path is what is tested below
    grid = torch.arange(256, dtype=torch.uint8)
    a = grid.repeat_interleave(256).view(256, 256)
    b = grid.repeat(256).view(256, 256)
    g = torch.Generator().manual_seed(14)
    lams = ALL_PAIRS_LAMS + torch.rand(24, generator=g, dtype=torch.float64).tolist()
    for lam in lams:
        expected = _u8_formula(a, b, lam)
        assert torch.equal(VF.mix(a, lam, partner=b), expected), lam
        x = torch.cat([a, b])  # partners by perm: row i of a is paired with row i of b
        perm = torch.cat([torch.arange(256, 512), torch.arange(256)])
        assert torch.equal(VF.mix_(x.clone(), lam, perm)[:256], expected), lam


@pytest.mark.parametrize("shape", [(3, 5), (32, 3, 32, 32), (256, 3, 40, 40), (9, 3, 100, 100)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_fused_uint8_paths_equal_formula(shape, layout):
    """In place (any perm, several slices), out=, new tensor, partner=: torch.equal to the float32 formula."""
    g = torch.Generator().manual_seed(sum(shape))
    x0 = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    if layout == "channels_last" and x0.dim() == 4:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x0 = torch.randint(0, 256, (shape[0], *shape[1:-1], 2 * shape[-1]), generator=g, dtype=torch.uint8)[..., ::2]
    n = shape[0]
    for lam in [float(torch.rand((), generator=g, dtype=torch.float64)), 0.5, 0.37]:
        perm = torch.randint(0, n, (n,), generator=g)  # any index map, not only permutations
        expected = _u8_formula(x0, x0[perm], lam)
        assert torch.equal(VF.mix(x0, lam, perm), expected)
        assert torch.equal(VF.mix(x0, lam, perm, out=torch.empty_like(x0)), expected)
        assert torch.equal(VF.mix_(x0.clone(), lam, perm), expected)
        assert torch.equal(VF.mix_(x0.clone(), lam, partner=x0[perm].clone()), expected)


def test_fused_uint8_small_chunks_cover_every_column(monkeypatch):
    monkeypatch.setattr(VF, "_Q_CHUNK_BYTES", 64 * 7)  # many slices, a ragged last one
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 256, (7, 3, 11, 13), generator=g, dtype=torch.uint8)
    perm = torch.randperm(7, generator=g)
    assert torch.equal(VF.mix_(x0.clone(), 0.61, perm), _u8_formula(x0, x0[perm], 0.61))


def test_uint8_without_fused_kernel_falls_back_to_the_float_slices(monkeypatch):
    monkeypatch.setattr(VF, "_quantized_ok", False)  # as on a torch without quantized ops
    g = torch.Generator().manual_seed(4)
    x0 = torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8)
    perm = torch.randperm(64, generator=g)
    assert torch.equal(VF.mix_(x0.clone(), 0.5, perm), _u8_formula(x0, x0[perm], 0.5))
    lam = torch.rand(64, generator=g, dtype=torch.float64)  # per-sample lam never takes the fused path
    w = lam.float().view(-1, 1, 1, 1)
    expected = (w * x0.float() + (1 - w) * x0[perm].float()).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(VF.mix_(x0.clone(), lam, perm), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("shape", [(32, 3, 32, 32), (128, 3, 32, 32), (5, 7)])
def test_drawn_inplace_lean_path_equals_mix_(dtype, shape):
    """Mixup(inplace=True)'s short path for small batches: bit-identical to functional.mix_ (which is within the
    stated lerp bound of the formula, tests/test_fast.py), for lam on both sides of 1/2."""
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
