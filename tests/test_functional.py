"""Kernels: the formula, argument checks, targets helpers."""

import re
import warnings

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

import vicinal
from tests.mixing_reference import DTYPES, lams, make, mix_reference, within_rounding_bound
from vicinal import functional as VF


def test_mix_with_perm_and_partner():
    x = torch.randn(4, 3)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.equal(VF.mix(x, 0.25, perm), 0.25 * x + 0.75 * x[perm])
    other = torch.randn(4, 3)
    assert torch.equal(VF.mix(x, 0.25, partner=other), 0.25 * x + 0.75 * other)


def test_one_hot_smooth_mix_targets():
    y = torch.tensor([0, 2])
    oh = VF.one_hot(y, 3)
    assert oh.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert VF.smooth(oh, 0.0) is oh
    torch.testing.assert_close(VF.smooth(oh, 0.3), torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    mt = VF.mix_targets(oh, 0.6, torch.tensor([1, 0]))
    torch.testing.assert_close(mt, torch.tensor([[0.6, 0.0, 0.4], [0.4, 0.0, 0.6]]))
    assert torch.equal(VF.closer_targets(oh, 0.4, torch.tensor([1, 0])), oh[[1, 0]])


def test_errors():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="pass either perm or partner, not both"):
        VF.mix(x, 0.5, torch.arange(4), partner=x)
    with pytest.raises(ValueError, match=r"mix needs perm \(partner indices into the batch\) or partner"):
        VF.mix(x, 0.5)
    with pytest.raises(ValueError, match=r"perm has shape \(3,\) but the batch has 4 samples"):
        VF.mix(x, 0.5, torch.arange(3))
    with pytest.raises(ValueError, match=r"partner batch has shape \(4, 2\) but inputs have \(4, 3\)"):
        VF.mix(x, 0.5, partner=torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"weights have shape \(4, 2\), expected \(4, 3\)"):
        VF.mix_many(x, torch.ones(4, 2), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="cutmix needs perm or partner"):
        VF.cutmix(torch.randn(2, 1, 4, 4), (0, 2, 0, 2))


# -- the fast paths (issue 7) against the formula, tests/mixing_reference.py -------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, channels_last", [((9, 3, 5, 7), False), ((9, 3, 5, 7), True), ((6, 50), False)])
def test_chunked_paths_equal_formula(small_chunks, dtype, shape, channels_last):
    x = make(shape, dtype, channels_last=channels_last)
    perm = torch.randperm(shape[0], generator=torch.Generator().manual_seed(1))
    for lam in lams(shape[0]):
        ref = mix_reference(x, lam, x[perm])
        before = x.clone()
        assert torch.equal(VF.mix(x, lam, perm), ref)  # default: fresh output, chunked
        out = torch.empty_like(x)
        assert VF.mix(x, lam, perm, out=out) is out and torch.equal(out, ref)
        assert torch.equal(x, before)  # out-of-place paths leave x alone
        y = x.clone(memory_format=torch.preserve_format)
        assert VF.mix_(y, lam, perm, exact=True) is y and torch.equal(y, ref)
        z = x.clone(memory_format=torch.preserve_format)
        assert VF.mix_(z, lam, perm) is z and z.dtype == dtype
        if dtype == torch.uint8:
            assert torch.equal(z, ref)  # uint8 is always exact
        else:
            assert within_rounding_bound(z, ref, x, x[perm])


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_sizes_use_several_slices_and_stay_exact(dtype):
    # the kernel's real settings on a batch above the single-pass size: several slices in float32 and uint8
    x = make((160, 3, 64, 64), dtype, seed=3)
    assert VF._worth_chunking(x)
    if dtype in (torch.float32, torch.uint8):
        assert x.numel() * 4 > VF._SINGLE_PASS_BYTES and 3 * 64 * 64 > VF._slice_width(160, 4, VF._CHUNK_BYTES, 16)
    perm = torch.randperm(160, generator=torch.Generator().manual_seed(2))
    for lam in lams(160, seed=1):
        ref = mix_reference(x, lam, x[perm])
        assert torch.equal(VF.mix(x, lam, perm), ref)
        y = x.clone()
        assert torch.equal(VF.mix_(y, lam, perm, exact=True), ref)
        if dtype != torch.uint8:
            z = VF.mix_(x.clone(), lam, perm)
            assert within_rounding_bound(z, ref, x, x[perm])
            assert not torch.equal(z, x)  # it did mix


def test_rounding_bound_is_tight_enough_to_catch_a_wrong_weight():
    # guards within_rounding_bound: a weight off by 1e-6 (16 float32 ulps of 1) already fails it
    x = make((8, 64), torch.float32)
    perm = torch.arange(8).roll(1)
    ref = mix_reference(x, 0.3, x[perm])
    assert not within_rounding_bound(mix_reference(x, 0.3 + 1e-6, x[perm]), ref, x, x[perm])


@pytest.mark.parametrize("dtype", DTYPES)
def test_partner_batch_paths(small_chunks, dtype):
    x, xp = make((7, 2, 6, 5), dtype, seed=1), make((7, 2, 6, 5), dtype, seed=2)
    for lam in lams(7):
        ref = mix_reference(x, lam, xp)
        assert torch.equal(VF.mix(x, lam, partner=xp), ref)
        assert torch.equal(VF.mix_(x.clone(), lam, partner=xp, exact=True), ref)
        kept = xp.clone()
        fast = VF.mix_(x.clone(), lam, partner=xp)
        assert torch.equal(xp, kept)  # the partner batch is read, never written
        assert torch.equal(fast, ref) if dtype == torch.uint8 else within_rounding_bound(fast, ref, x, xp)


def test_uint8_float_output_with_out(small_chunks):
    x = make((5, 3, 4, 4), torch.uint8)
    perm = torch.tensor([4, 0, 1, 2, 3])
    out = torch.empty(x.shape, dtype=torch.float32)
    expected = 0.35 * x.float() + 0.65 * x[perm].float()
    assert torch.equal(VF.mix(x, 0.35, perm, out_dtype=torch.float32, out=out), expected)
    # float64 output: the rare path falls back to the formula, still exact
    out64 = torch.empty(x.shape, dtype=torch.float64)
    assert torch.equal(VF.mix(x, 0.35, perm, out_dtype=torch.float64, out=out64), reference_f64(x, 0.35, perm))


def reference_f64(x, lam, perm):
    return lam * x.double() + (1 - lam) * x[perm].double()


def test_uint8_extremes_round_to_nearest_even_and_stay_in_range(small_chunks):
    # 0/255 pairs at lam near 0 and 1, and exact .5 ties (round half to even, as torch.round)
    a = torch.tensor([0, 255, 0, 255, 1, 2, 3], dtype=torch.uint8).repeat(4, 1)
    a[1::2] = torch.tensor([255, 0, 1, 254, 2, 3, 4], dtype=torch.uint8)
    perm = torch.tensor([1, 0, 3, 2])
    for lam in [0.0, 1e-9, 0.5, 1 - 1e-9, 1.0, torch.tensor([0.5, 1e-12, 1 - 1e-12, 0.25], dtype=torch.float64)]:
        ref = mix_reference(a, lam, a[perm])
        assert torch.equal(VF.mix_(a.clone(), lam, perm), ref)
    for lam in [1.5, -0.25, torch.tensor([1.5, 0.5, -1.0, 0.0], dtype=torch.float64)]:  # extrapolation (#11)
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
            VF.mix_(a.clone(), lam, perm)
    half = VF.mix_(a.clone(), 0.5, perm)
    assert half[0, 4] == 2 and half[0, 5] == 2 and half[0, 6] == 4  # 1.5 -> 2, 2.5 -> 2, 3.5 -> 4


def test_uint8_every_pair_of_grey_levels(monkeypatch):
    monkeypatch.setattr(VF, "_CHUNK_BYTES", 1 << 14)  # 32 slices of 2048 columns
    monkeypatch.setattr(VF, "_MIN_ROW_BYTES", 0)
    monkeypatch.setattr(VF, "_SINGLE_PASS_BYTES", 0)
    monkeypatch.setattr(VF, "_Q_CHUNK_BYTES", 1 << 12)  # the fused uint8 pass in slices too
    # all 65536 (a, b) pairs: row 0 holds a, row 1 holds b; partners swap rows. Exhausts the kernel's rounding
    # (2**23 trick) against torch.round, ties included (lam = 0.5, 0.25 give exact .5 fractions).
    a = torch.arange(256, dtype=torch.uint8).repeat_interleave(256)
    b = torch.arange(256, dtype=torch.uint8).repeat(256)
    x = torch.stack([a, b])  # (2, 65536)
    perm = torch.tensor([1, 0])
    for lam in [0.5, 0.25, 0.1, 0.3, 0.7, 1 / 3, 0.999, torch.tensor([0.5, 0.125], dtype=torch.float64)]:
        assert torch.equal(VF.mix_(x.clone(), lam, perm), mix_reference(x, lam, x[perm])), lam


def test_non_dense_input_falls_back_exactly():
    base = make((6, 3, 8, 8), torch.float32)
    x = base[:, :, ::2]  # gaps between elements: no (B, F) view exists
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    ref = mix_reference(x, 0.4, x[perm])
    assert torch.equal(VF.mix(x, 0.4, perm, out=torch.empty_like(x)), ref)
    before = base.clone()
    VF.mix_(x, 0.4, perm)
    assert torch.equal(x, ref)
    assert torch.equal(base[:, :, 1::2], before[:, :, 1::2])  # only the view's elements were written


def test_one_dimensional_batches(small_chunks):
    x = make((40,), torch.float32)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(VF.mix(x, 0.7, perm), mix_reference(x, 0.7, x[perm]))
    assert torch.equal(VF.mix_(x.clone(), 0.7, perm, exact=True), mix_reference(x, 0.7, x[perm]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_paths_equal_formula(dtype):
    x = make((16, 3, 8, 8), dtype).cuda()
    perm = torch.randperm(16).cuda()
    for lam in lams(16):
        ref = mix_reference(x, lam.cuda() if isinstance(lam, torch.Tensor) else lam, x[perm])
        assert torch.equal(VF.mix(x, lam, perm, out=torch.empty_like(x)), ref)
        assert torch.equal(VF.mix_(x.clone(), lam, perm, exact=True), ref)


def test_out_equal_to_x_is_in_place():
    x = make((6, 40), torch.float32)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    ref = mix_reference(x, 0.6, x[perm])
    assert VF.mix(x, 0.6, perm, out=x) is x and torch.equal(x, ref)


def test_autograd_and_vmap_fall_back_to_the_formula(small_chunks):
    # out= kernels cannot record autograd graphs or run under vmap: those calls take the formula, same values
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    x = make((6, 40), torch.float32).requires_grad_()
    mixed = VF.mix(x, 0.3, perm)
    assert torch.equal(mixed, mix_reference(x.detach(), 0.3, x.detach()[perm]))
    mixed.sum().backward()  # each x_i enters once with weight lam and once with 1 - lam
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.3 + 0.7))
    h = x * 2.0  # a non-leaf activation, mixed in place (latent mixing)
    VF.mix_(h, 0.3, perm, exact=True)
    h.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 3.0))
    members = make((3, 6, 40), torch.float32, seed=4)
    batched = torch.func.vmap(lambda t: VF.mix(t, 0.3, perm))(members)
    assert torch.equal(batched, torch.stack([mix_reference(m, 0.3, m[perm]) for m in members]))


def test_a_vmapped_lam_mixes_each_member_with_its_own():
    # an ensemble of lams under torch.func.vmap: check_lam read their values and failed with torch's
    # "data-dependent control flow" error (the GAN loss already stepped aside)
    perm = torch.tensor([1, 2, 3, 0])
    xs, lams = make((5, 4, 3), torch.float32, seed=2), torch.rand(5, generator=torch.Generator().manual_seed(0))
    y = torch.softmax(make((4, 3), torch.float32, seed=3), 1)
    mixed = torch.func.vmap(lambda a, lam: VF.mix(a, lam, perm))(xs, lams)
    targets = torch.func.vmap(lambda lam: VF.mix_targets(y, lam, perm))(lams)
    for m, lam, got, got_y in zip(xs, lams, mixed, targets, strict=True):
        torch.testing.assert_close(got, mix_reference(m, lam.item(), m[perm]))
        torch.testing.assert_close(got_y, lam * y + (1 - lam) * y[perm])
    # torch.func.grad and jvp can read the value: a lam outside [0, 1] is still refused there
    for bad in (1.5, float("nan")):
        with pytest.raises(ValueError, match=r"^lam must be in \[0, 1\] \(a convex combination\)"):
            torch.func.grad(lambda lam: VF.mix(xs[0], lam, perm).sum())(torch.tensor(bad))


def test_out_partner_and_perm_errors():
    x = make((4, 3), torch.float32)
    perm = torch.tensor([1, 0, 3, 2])
    with pytest.raises(ValueError, match=r"out has shape \(4, 2\), dtype torch.float32 and device cpu; expected shape"):
        VF.mix(x, 0.5, perm, out=torch.empty(4, 2))
    with pytest.raises(
        ValueError, match=r"dtype torch.float64 and device cpu; expected shape \(4, 3\), dtype torch.float32"
    ):
        VF.mix(x, 0.5, perm, out=torch.empty(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="out must be a torch.Tensor, got list"):
        VF.mix(x, 0.5, perm, out=[0.0])
    base = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="out shares memory with x; pass separate tensors"):
        VF.mix(base[:4], 0.5, perm, out=base[1:])
    with pytest.raises(ValueError, match="out shares memory with partner"):
        VF.mix(x, 0.5, partner=base[:4], out=base[1:])
    with pytest.raises(ValueError, match="x shares memory with partner"):
        VF.mix_(base[:4], 0.5, partner=base[1:])
    with pytest.raises(ValueError, match=r"perm has shape \(3,\) but the batch has 4 samples"):
        VF.mix_(x, 0.5, torch.arange(3))
    with pytest.raises(ValueError, match="pass either perm or partner, not both"):
        VF.mix_(x, 0.5, perm, partner=x.clone())
    with pytest.raises(ValueError, match=r"mix needs perm \(partner indices into the batch\) or partner"):
        VF.mix_(x, 0.5)
    with pytest.raises(ValueError, match="cutmix needs perm or partner"):
        VF.cutmix_(torch.zeros(2, 1, 4, 4), (0, 2, 0, 2))


# -- issue 11: named argument errors -----------------------------------------------------------------------------------
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


# -- issue 14: one-hot targets and the fused uint8 kernel, bit-identical to the formula --------------------------------
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


def test_slice_width_rule():
    # 1 MiB slices while rows stay >= 16 KiB; longer rows for many-row batches, up to 4 MiB slices; a column floor
    assert VF._slice_width(64, 4, 1 << 20, 16) == 4096  # 64 rows x 16 KiB: 1 MiB
    assert VF._slice_width(256, 4, 1 << 20, 16) == 4096  # not 1024 (4 KiB rows): a 4 MiB slice
    assert VF._slice_width(1024, 4, 1 << 20, 16) == 1024  # 4 KiB rows: the 4 MiB cap
    assert VF._slice_width(256, 1, 1 << 20, 64) == 16384  # uint8: 16 KiB rows, 4 MiB
    assert VF._slice_width(1 << 20, 4, 1 << 20, 16) == 16  # the floor


def test_drawn_uint8_batch_of_one_slice_skips_the_generic_kernel(monkeypatch):
    """A collate-sized uint8 batch mixed in place by a transform takes the fused pass directly (bit-identical to the
    formula); a batch above one slice, a per-sample lam or a strided batch still goes through _mix_into."""
    import vicinal

    calls = []
    generic = VF._mix_into
    monkeypatch.setattr(VF, "_mix_into", lambda *a, **k: calls.append(a[0].shape) or generic(*a, **k))
    g = torch.Generator().manual_seed(3)
    for shape, lam_mode, strided, generic_expected in [
        ((32, 3, 32, 32), "batch", False, False),  # 96 KiB: one slice
        ((64, 3, 64, 64), "batch", False, False),  # 768 KiB
        ((128, 3, 64, 64), "batch", False, True),  # 1.5 MiB: slices
        ((32, 3, 32, 32), "sample", False, True),  # per-sample lam: the float32 slices
        ((32, 3, 32, 32), "batch", True, True),  # channels_last: the layout search
    ]:
        calls.clear()
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        if strided:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (shape[0],), generator=g)
        mixer = vicinal.Mixup(num_classes=10, inplace=True, lam_mode=lam_mode, seed=shape[0])
        p = mixer.sample(x, y)
        expected = mix_reference(x, p.lam, x[p.perm])
        assert torch.equal(mixer.apply_inputs(x, p), expected)
        assert bool(calls) == generic_expected, (shape, lam_mode, strided)


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_row_slices_with_a_ragged_tail(dtype):
    # real constants: 80 rows of 21,000 features, cut by the 16 KiB row minimum (float32: 4096 columns, 6 slices;
    # uint8: 16384 columns, 2 slices), the last one ragged
    x = make((80, 3, 100, 70), dtype, seed=5)
    itemsize = 1 if dtype == torch.uint8 else x.element_size()  # uint8: the fused pass slices the uint8 batch
    width = VF._slice_width(80, itemsize, VF._Q_CHUNK_BYTES if dtype == torch.uint8 else VF._CHUNK_BYTES, 16)
    assert width == VF._MIN_ROW_BYTES // itemsize and 21000 // width >= 1 and 21000 % width
    perm = torch.randperm(80, generator=torch.Generator().manual_seed(6))
    for lam in lams(80, seed=7):
        ref = mix_reference(x, lam, x[perm])
        assert torch.equal(VF.mix(x, lam, perm), ref)
        assert torch.equal(VF.mix_(x.clone(), lam, perm, exact=True), ref)
        fast = VF.mix_(x.clone(), lam, perm)
        if dtype == torch.uint8:
            assert torch.equal(fast, ref)
        else:
            assert within_rounding_bound(fast, ref, x, x[perm])


@pytest.mark.parametrize("shape", [(3, 5), (32, 3, 32, 32), (80, 3, 100, 70), (9, 3, 100, 100)])
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
    monkeypatch.setattr(VF, "_MIN_ROW_BYTES", 0)
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


# -- argument checks of every entry point: what was wrong, named -----------------------------------------------------
def test_inputs_other_than_float_or_uint8_are_refused():
    perm = torch.tensor([1, 0, 3, 2])
    xi = torch.tensor([[1000], [3000], [-5], [7]], dtype=torch.int32)  # the formula would give 2000: never clamp it
    for call in (lambda: VF.mix(xi, 0.5, perm), lambda: VF.mix_(xi, 0.5, perm)):
        with pytest.raises(
            TypeError, match="x must be a float16, bfloat16, float32, float64 or uint8 tensor, got dtype torch.int32"
        ):
            call()
    with pytest.raises(
        TypeError, match="x must be a float16, bfloat16, float32, float64 or uint8 tensor, got dtype torch.int32"
    ):
        VF.mix_many(xi, torch.full((4, 2), 0.5), torch.stack([torch.arange(4), perm]))
    x8 = torch.randn(4, 3).to(torch.float8_e4m3fn)  # a float dtype without arithmetic on CPU
    with pytest.raises(
        TypeError,
        match="x must be a float16, bfloat16, float32, float64 or uint8 tensor, got dtype torch.float8_e4m3fn",
    ):
        VF.mix(x8, 0.5, perm)
    with pytest.raises(TypeError, match="inputs must be .* or uint8 tensor, got dtype torch.float8_e5m2"):
        vicinal.Mixup(1.0, num_classes=2, seed=0)(x8.to(torch.float8_e5m2), torch.arange(4) % 2)
    xu = torch.randint(0, 256, (4, 3, 4, 4), dtype=torch.uint8)
    with pytest.raises(
        TypeError, match=r"out_dtype must be a floating-point dtype \(the unrounded mix\), got torch.int32"
    ):
        VF.mix(xu, 0.3, perm, out_dtype=torch.int32)
    xf = torch.randn(4, 3, 4, 4)
    assert VF.mix(xf, 0.3, perm, out_dtype=torch.float32).dtype == torch.float32  # its own dtype: allowed
    for call in (lambda: VF.mix(xf, 0.3, perm, out_dtype=torch.float64),
                 lambda: VF.mix_many(xf, torch.tensor([0.3, 0.7]), torch.stack([torch.arange(4), perm]),
                                     out_dtype=torch.float16)):  # fmt: skip
        with pytest.raises(
            ValueError, match=r"out_dtype is for uint8 inputs .* a torch.float32 batch is mixed in its "
        ):
            call()
    with pytest.raises(ValueError, match=r"x must have at least 1 dimension\(s\) with the batch first, got shape \(\)"):
        VF.mix(torch.tensor(1.0), 0.5, perm)


def test_a_learned_one_value_lam_gets_its_gradient():
    # a one-value lam tensor became a float for the kernels, so a learned scalar mixing weight got no gradient
    x, perm = torch.randn(4, 3), torch.tensor([1, 0, 3, 2])
    ref = torch.tensor(0.3, requires_grad=True)
    (ref * x + (1 - ref) * x[perm]).pow(2).sum().backward()
    for shape in ((), (1,), (1, 1)):
        for call in (lambda w: VF.mix(x, w, perm), lambda w: VF.mix_(x.clone(), w, perm),
                     lambda w: VF.mix(x, w, partner=x[perm].clone(), exact=False)):  # fmt: skip
            lam = torch.full(shape, 0.3, requires_grad=True)
            call(lam).pow(2).sum().backward()
            assert lam.grad is not None and torch.allclose(lam.grad.reshape(()), ref.grad), shape
            # forward mode too: torch.func.jvp and forward-AD duals (neither sets requires_grad)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.func's first use: a torch.jit deprecation
                _, tangent = torch.func.jvp(
                    lambda w, f=call: f(w).pow(2).sum(), (torch.full(shape, 0.3),), (torch.ones(shape),)
                )
            assert torch.allclose(tangent, ref.grad), shape
            with torch.autograd.forward_ad.dual_level():
                dual = torch.autograd.forward_ad.make_dual(torch.full(shape, 0.3), torch.ones(shape))
                tangent = torch.autograd.forward_ad.unpack_dual(call(dual).pow(2).sum()).tangent
            assert tangent is not None and torch.allclose(tangent, ref.grad), shape


def test_perm_dtype_and_partner_dtype_are_checked():
    x = torch.randn(4, 3)
    with pytest.raises(
        TypeError, match=r"perm must be an integer tensor of partner indices \(int64 or int32\), got dtype torch.uint8"
    ):
        VF.mix(x, 0.5, torch.tensor([1, 0, 3, 2], dtype=torch.uint8))
    assert torch.equal(
        VF.mix(x, 0.5, torch.tensor([1, 0, 3, 2], dtype=torch.int32)), VF.mix(x, 0.5, torch.tensor([1, 0, 3, 2]))
    )
    # a float64 partner of a float32 batch: the result's dtype would depend on the batch size (formula vs kernel)
    for shape in ((4, 3), (4, 3, 128, 128)):
        xs = torch.randn(shape)
        with pytest.raises(
            ValueError, match="partner batch has dtype torch.float64 on cpu but inputs have dtype torch.float32 on cpu"
        ):
            VF.mix(xs, 0.5, partner=xs.double())
    xu = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match="partner batch has dtype torch.float32"):
        VF.mix_(xu, 0.5, partner=xu.float())
    with pytest.raises(TypeError, match="partner must be a torch.Tensor"):
        VF.mix(x, 0.5, partner=x.numpy())


def test_a_one_value_tensor_lam_is_the_per_batch_lam():
    """Validation admits lam as a tensor of one value: every path then mixes with that float, bit for bit."""
    perm = torch.tensor([1, 0, 3, 2])
    for x in (
        torch.randn(4, 3, 4, 4),
        torch.randn(4, 3, 128, 128),
        torch.randint(0, 256, (4, 3, 4, 4), dtype=torch.uint8),
    ):
        for lam in (torch.tensor(0.3), torch.tensor([0.3]), torch.tensor(0.3, dtype=torch.float64)):
            assert torch.equal(VF.mix(x, lam, perm), VF.mix(x, 0.3, perm))
            assert torch.equal(VF.mix_(x.clone(), lam, perm), VF.mix_(x.clone(), 0.3, perm))
    y = torch.tensor([0, 1, 2, 3])
    assert torch.equal(VF.mixed_one_hot(y, torch.tensor(0.3), perm, 5), VF.mixed_one_hot(y, 0.3, perm, 5))
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\] \(a convex combination\), got nan"):
        VF.mix(torch.randn(4, 3), torch.tensor(float("nan")), perm)
    with pytest.raises(TypeError, match="lam must hold real numbers, got dtype torch.bool"):
        VF.mix(torch.randn(4, 3), torch.tensor(True), perm)


def test_target_helpers_check_their_arguments():
    y = torch.tensor([10, 20, 30, 40])
    perm = torch.tensor([1, 0, 3, 2])
    # integer labels with a per-sample lam were once cast to lam = 0 (the partners' labels); now refused by name
    with pytest.raises(
        TypeError,
        match=r"mix_targets mixes float targets .* got dtype torch.int64; for class indices use mixed_one_hot",
    ):
        VF.mix_targets(y, torch.full((4,), 0.3), perm)
    assert torch.equal(VF.mix_targets(y.float(), torch.full((4,), 0.3), perm), VF.mix_targets(y.float(), 0.3, perm))
    labels = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"perm has shape \(8,\) but the batch has 4 samples"):
        VF.mixed_one_hot(labels, 0.3, torch.arange(8), 5)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\] \(a convex combination\), got 1.5"):
        VF.mixed_one_hot(labels, 1.5, perm, 5)


def test_mix_many_checks_indices_and_weights():
    x = torch.randn(6, 3)
    idx = torch.stack([torch.arange(6), torch.tensor([1, 0, 3, 2, 5, 4])])
    w = torch.full((6, 2), 0.5)
    assert torch.equal(VF.mix_many(x, w, idx), 0.5 * x + 0.5 * x[idx[1]])
    with pytest.raises(
        ValueError, match=r"indices must lie in \[0, 6\) \(partners within the batch\), got values from 0 to 9"
    ):
        VF.mix_many(x, w, torch.stack([torch.arange(6), torch.tensor([9, 0, 3, 2, 5, 4])]))
    with pytest.raises(
        ValueError, match=r"indices must be \(k, 6\) partner indices \(one row per example mixed\), got \(2, 3\)"
    ):
        VF.mix_many(x, w, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(
        TypeError,
        match=r"perm must be an integer tensor of partner indices \(int64 or int32\), got dtype torch.float32",
    ):
        VF.mix_many(x, w, idx.float())
    for bad in (torch.full((6, 2), float("nan")), torch.tensor([[1.5, -0.5]] * 6), torch.full((6, 2), 0.4)):
        with pytest.raises(
            ValueError, match=r"weights must be finite, >= 0 and sum to 1 in every row \(a convex combination\)"
        ):
            VF.mix_many(x, bad, idx)


def test_cutmix_checks_partner_and_layout():
    x = torch.randn(6, 3, 8, 8)
    with pytest.raises(ValueError, match=r"partner batch has shape \(6, 1, 8, 8\) but inputs have \(6, 3, 8, 8\)"):
        VF.cutmix(x, (0, 4, 0, 4), partner=torch.randn(6, 1, 8, 8))  # once broadcast over the channels, silently
    with pytest.raises(
        ValueError, match=r"x must have at least 3 dimension\(s\) with the batch first, got shape \(6, 8\)"
    ):
        VF.cutmix_(torch.randn(6, 8), (0, 4, 0, 4), torch.arange(6))
    with pytest.raises(ValueError, match="x shares memory with partner"):
        VF.cutmix_(x, (0, 4, 0, 4), partner=x)
    p = torch.randn(6, 3, 8, 8)
    expected = x.clone()
    expected[..., 0:4, 0:4] = p[..., 0:4, 0:4]
    assert torch.equal(VF.cutmix(x, (0, 4, 0, 4), partner=p), expected)


def test_small_chunks_fixture_really_slices(small_chunks, monkeypatch):
    # the slice tests above rest on this: tiny batches cut into many slices, in float and in the fused uint8 pass
    calls = []
    real = torch.index_select
    monkeypatch.setattr(torch, "index_select", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(VF, "_Q_CHUNK_BYTES", 64)
    perm = torch.tensor([1, 2, 3, 0])
    for x in (make((4, 3, 8, 8), torch.float32), make((4, 3, 16, 16), torch.uint8)):
        calls.clear()
        VF.mix_(x, 0.3, perm)
        assert len(calls) >= 8, x.dtype


@pytest.mark.parametrize("box", [(0, 4, -3, 2), (3, 1, 0, 2), (0, 5, 0, 2), (0, 2, 0, 7), (0.5, 2, 0, 2), (0, 2, 0)])
@pytest.mark.parametrize("fn", [VF.cutmix, VF.cutmix_])
def test_cutmix_refuses_boxes_outside_the_image(fn, box):
    # a negative bound would wrap around and an inverted box paste nothing, silently
    x = torch.randn(2, 1, 4, 6)
    with pytest.raises(ValueError, match=r"box must be 4 ints \(y0, y1, x0, x1\) with 0 <= y0 <= y1 <= 4 and 0 <= x0 "):
        fn(x, box, torch.tensor([1, 0]))
    out = fn(x.clone(), (0, 4, 0, 6), torch.tensor([1, 0]))  # the whole image is a valid box
    assert torch.equal(out, x[[1, 0]])


@pytest.mark.parametrize("fn", [VF.cutmix, VF.cutmix_])
def test_cutmix_takes_boxes_of_any_integer_type(fn):
    # timm's rand_bbox returns numpy ints; 0-d integer tensors work as indices too; bools are not coordinates
    x = torch.randn(2, 1, 4, 6)
    want = fn(x.clone(), (1, 3, 2, 5), torch.tensor([1, 0]))
    np_box = tuple(np.int64(v) for v in (1, 3, 2, 5))
    assert torch.equal(fn(x.clone(), np_box, torch.tensor([1, 0])), want)
    assert torch.equal(fn(x.clone(), tuple(torch.tensor(v) for v in (1, 3, 2, 5)), torch.tensor([1, 0])), want)
    with pytest.raises(ValueError, match="box must be 4 ints"):
        fn(x.clone(), (False, True, 0, 2), torch.tensor([1, 0]))


def test_label_helpers_validate_their_arguments():
    y = torch.tensor([0, 5])
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=3\), got values from 0 to 5"):
        VF.one_hot(y, 3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=3\), got values from 0 to 5"):
        VF.mixed_one_hot(y, 0.3, torch.tensor([1, 0]), 3)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, got 0"):
        VF.one_hot(torch.tensor([0]), 0)
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\], got 2.0"):
        VF.smooth(torch.full((2, 3), 1 / 3), 2.0)
    with pytest.raises(TypeError, match=r"^smooth takes soft or one-hot labels \(\.\.\., C\), got torch.int64 labels"):
        VF.smooth(torch.tensor([0, 1, 2]), 0.1)  # class indices: it returned [0.025, 1.825, 3.625]
    for one_hot in (F.one_hot(torch.tensor([0, 2]), 3), F.one_hot(torch.tensor([0, 2]), 3).bool()):  # int, bool rows
        assert torch.equal(VF.smooth(one_hot, 0.3), VF.smooth(one_hot.float(), 0.3))
    with pytest.raises(TypeError, match="labels must be an integer tensor, got torch.float32"):
        VF.mixed_one_hot(torch.tensor([0.0, 1.0]), 0.3, torch.tensor([1, 0]), 3)
    # any real number type for eps, and integer labels of any shape (as torch's one_hot)
    assert torch.equal(VF.smooth(torch.eye(3), np.float32(0.25)), VF.smooth(torch.eye(3), 0.25))
    assert torch.equal(VF.smooth(torch.eye(3), torch.tensor(0.25)), VF.smooth(torch.eye(3), 0.25))
    assert torch.equal(
        VF.one_hot(torch.tensor([[0, 2], [1, 1]]), 3), F.one_hot(torch.tensor([[0, 2], [1, 1]]), 3).float()
    )
    # under vmap the values cannot be read: the check steps aside
    assert torch.vmap(lambda t: VF.one_hot(t, 3))(torch.tensor([[0, 1], [2, 0]])).shape == (2, 2, 3)


# -- boundaries the mutation run (notes/helper-mutation.md) found untested ------------------------------------------
def test_closer_targets_keep_their_own_label_at_lam_one_half():
    """``y_i`` where ``lam >= 0.5``: at exactly 1/2 a sample keeps its own target (float and per-sample lam)."""
    oh = VF.one_hot(torch.tensor([0, 2, 1]), 3)
    perm = torch.tensor([1, 2, 0])
    assert torch.equal(VF.closer_targets(oh, 0.5, perm), oh)
    lam = torch.tensor([0.5, 0.5 - 2**-40, 0.5 + 2**-40], dtype=torch.float64)
    assert torch.equal(VF.closer_targets(oh, lam, perm), torch.stack([oh[0], oh[2], oh[2]]))


def test_mix_many_rejects_the_first_index_past_the_batch():
    x = torch.randn(6, 3)
    w = torch.full((6, 2), 0.5)
    for bad, lo, hi in ((6, 0, 6), (-1, -1, 5)):
        idx = torch.stack([torch.arange(6), torch.tensor([1, 0, 3, 2, 5, bad])])
        with pytest.raises(ValueError, match=rf"indices must lie in \[0, 6\) .*got values from {lo} to {hi}"):
            VF.mix_many(x, w, idx)


def test_lam_of_another_shape_with_the_batch_size_of_values_is_refused():
    # (B, 1) holds one value per sample but is not the documented (B,) per-sample shape: a named error, not a
    # failure inside a kernel
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"lam has shape \(4, 1\); expected a float, one value or \(4,\) per-sample"):
        VF.mix(x, torch.full((4, 1), 0.3), torch.arange(4))


def test_cutmix_box_sides_round_to_nearest_and_are_centred():
    """Sides ``round(H sqrt(1 - lam))`` (timm truncates), ``cut // 2`` above/left of the centre, the rest below/right."""
    # sqrt(1 - 0.64) = 0.6: sides round(11 * 0.6) = round(6.6) = 7 (truncation: 6) and round(9 * 0.6) = round(5.4) = 5;
    # centre (int(0.5 * 11), int(0.5 * 9)) = (5, 4): rows 5 - 3 .. 5 + 4, columns 4 - 2 .. 4 + 3
    box, lam = VF.cutmix_box(0.64, 11, 9, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert box == (2, 9, 2, 7)
    assert lam == 1 - 35 / 99


# -- exact=False: the fused gather-and-mix (torch.embedding_bag) and the lerp slices, within the rounding bound ----
FUSED = [torch.float32, torch.bfloat16, torch.float16]


def _wide_range(shape, dtype, seed=0):
    # magnitudes over six decades and both signs, so a wrong weight or a product rounded in the wrong place shows
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-3, 3, shape[-1], dtype=torch.float64)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 3, 5, 7), (6, 50), (1, 40)])
def test_mix_not_exact_is_within_the_bound_and_leaves_x_alone(dtype, shape):
    x = _wide_range(shape, dtype) if dtype != torch.uint8 else make(shape, dtype)
    perm = torch.randperm(shape[0], generator=torch.Generator().manual_seed(1))
    for lam in [*lams(shape[0]), 1e-7, 1 - 1e-7, 0.5]:
        ref = mix_reference(x, lam, x[perm])
        before = x.clone()
        fast = VF.mix(x, lam, perm, exact=False)
        assert torch.equal(x, before) and fast.shape == x.shape and fast.dtype == dtype
        if dtype == torch.uint8:
            assert torch.equal(fast, ref)  # uint8 is always exact
        else:
            assert within_rounding_bound(fast, ref, x, x[perm]), (dtype, lam)
        out = torch.empty_like(x)
        assert VF.mix(x, lam, perm, out=out, exact=False) is out
        assert torch.equal(out, ref) if dtype == torch.uint8 else within_rounding_bound(out, ref, x, x[perm])


@pytest.mark.parametrize("dtype", FUSED)
def test_fused_gather_and_mix_is_taken_and_catches_a_wrong_weight(dtype, monkeypatch):
    x = _wide_range((16, 3, 8, 8), dtype, seed=2)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    calls = []
    real = VF._bag_mix
    monkeypatch.setattr(VF, "_bag_mix", lambda *a: calls.append(1) or real(*a))
    VF.mix(x, 0.3, perm, exact=False)
    VF.mix_(x.clone(), 0.3, perm)  # in place: taken for the half dtypes only
    assert len(calls) == (2 if dtype != torch.float32 else 1)
    # the bound is tight enough to see the partner's weight given to the sample itself
    swapped = real(x.view(16, -1), 0.7, perm).view_as(x)
    assert not within_rounding_bound(swapped, mix_reference(x, 0.3, x[perm]), x, x[perm])


@pytest.mark.parametrize("dtype", FUSED)
def test_fused_kernel_reuses_its_buffers_across_sizes_lams_and_inference_mode(dtype):
    # the index and weight buffers are kept per (batch size, dtype) and rewritten each call: interleave sizes,
    # lam kinds and inference_mode and check every result
    cases = []
    for n, seed in [(8, 0), (5, 1), (8, 2), (5, 3)]:
        x = _wide_range((n, 2, 3, 4), dtype, seed)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        cases += [(x, lam, perm) for lam in lams(n, seed)]
    for i, (x, lam, perm) in enumerate(cases):
        with torch.inference_mode(i % 2 == 1):
            fast = VF.mix(x, lam, perm, exact=False)
            y = VF.mix_(x.clone(), lam, perm)
        ref = mix_reference(x, lam, x[perm])
        assert within_rounding_bound(fast, ref, x, x[perm]) and within_rounding_bound(y, ref, x, x[perm])
        assert torch.equal(VF.mix(x, lam, perm, exact=False), fast)  # deterministic


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_in_place_one_slice_with_per_sample_lam_and_channels_last(dtype):
    x = _wide_range((12, 3, 6, 6), dtype, seed=4).contiguous(memory_format=torch.channels_last)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    for lam in lams(12, seed=6):
        ref = mix_reference(x, lam, x[perm])
        y = x.clone(memory_format=torch.preserve_format)
        assert VF.mix_(y, lam, perm) is y and y.is_contiguous(memory_format=torch.channels_last)
        assert within_rounding_bound(y, ref, x, x[perm])
        assert within_rounding_bound(VF.mix(x, lam, perm, exact=False), ref, x, x[perm])


def test_mix_not_exact_keeps_autograd_and_large_batches_use_slices():
    x = torch.randn(4, 6, requires_grad=True)
    perm = torch.tensor([1, 0, 3, 2])
    VF.mix(x, 0.3, perm, exact=False).sum().backward()
    assert torch.allclose(x.grad, torch.ones(4, 6))  # each sample's weights sum to 1 over the batch
    big = make((160, 3, 64, 64), torch.float32, seed=7)  # above the one-slice size: lerp slices, new tensor
    assert big.nbytes > VF._SINGLE_PASS_BYTES
    perm = torch.randperm(160, generator=torch.Generator().manual_seed(8))
    fast = VF.mix(big, 0.3, perm, exact=False)
    assert fast.data_ptr() != big.data_ptr()
    assert within_rounding_bound(fast, mix_reference(big, 0.3, big[perm]), big, big[perm])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_above_one_slice_mixes_in_pieces_of_every_sample(dtype, monkeypatch):
    # the real slice settings: 9.8 MB of bfloat16 is cut into equal pieces of each sample, mixed in place
    x = make((64, 3, 160, 160), dtype, seed=9)
    assert x.nbytes > VF._SINGLE_PASS_BYTES
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(10))
    used = []
    real = VF._bag_mix_pieces
    monkeypatch.setattr(VF, "_bag_mix_pieces", lambda *a: used.append(a[-1]) or real(*a))
    for lam in lams(64, seed=11):
        ref = mix_reference(x, lam, x[perm])
        y = x.clone()
        assert VF.mix_(y, lam, perm) is y and within_rounding_bound(y, ref, x, x[perm])
        assert within_rounding_bound(VF.mix(x, lam, perm, exact=False), ref, x, x[perm])
    assert len(used) == 6 and all(k > 1 for k in used)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cols", [105, 53])  # 53 has no divisor near the slice width: the lerp slices take it
def test_half_precision_pieces_and_their_fallback(small_chunks, dtype, cols):
    assert VF._bag_pieces(cols, 16) == (7 if cols == 105 else 0)
    x = _wide_range((10, cols), dtype, seed=12)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(13))
    for lam in lams(10, seed=14):
        ref = mix_reference(x, lam, x[perm])
        assert within_rounding_bound(VF.mix_(x.clone(), lam, perm), ref, x, x[perm])
        out = torch.empty_like(x)
        assert within_rounding_bound(VF.mix(x, lam, perm, out=out, exact=False), ref, x, x[perm])


def test_fused_kernel_buffers_stay_bounded_when_the_batch_size_changes():
    # one set of buffers per dtype, as long as the largest batch so far: a batch size that changes every call
    # (graphs, tokens) must not add buffers
    VF._WORKSPACE.bags.pop(torch.float32, None)
    VF._WORKSPACE.bag_views.pop(torch.float32, None)
    for n in [5, 9, 3, 7, 9, 2]:
        x = _wide_range((n, 11), torch.float32, seed=n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
        assert within_rounding_bound(VF.mix(x, 0.3, perm, exact=False), mix_reference(x, 0.3, x[perm]), x, x[perm])
    index, offsets, weights = VF._WORKSPACE.bags[torch.float32]
    assert index.shape == (9, 2) and offsets.shape == (9,) and weights.shape == (9, 2)


def test_fused_kernel_keeps_its_views_for_the_next_call_of_the_same_size():
    # slicing and viewing the buffers anew cost as much as a small batch's pass: the views of the last size are kept,
    # rebuilt when the size changes, and made outside inference_mode so that either mode can write them next
    VF._WORKSPACE.bags.pop(torch.bfloat16, None)
    VF._WORKSPACE.bag_views.pop(torch.bfloat16, None)
    g = torch.Generator().manual_seed(15)
    perms = {n: torch.randperm(n, generator=g) for n in (6, 11)}
    with torch.inference_mode():
        first = VF._bag_inputs(6, torch.bfloat16, 0.25, perms[6])
    again = VF._bag_inputs(6, torch.bfloat16, 0.75, perms[6].flip(0))  # outside inference_mode: writable
    assert again is first and not again.pairs.is_inference()

    def check(bag, n, perm, w):  # right after its call: the next call of any size rewrites the shared buffers
        assert torch.equal(bag.pairs, torch.stack([torch.arange(n), perm], 1))
        assert torch.equal(bag.pairs_flat, bag.pairs.reshape(-1)) and torch.equal(
            bag.offsets, torch.arange(0, 2 * n, 2)
        )
        assert torch.equal(bag.weights, torch.tensor([[w, 1 - w]] * n, dtype=torch.bfloat16))

    grown = VF._bag_inputs(11, torch.bfloat16, torch.full((11,), 0.5, dtype=torch.float64), perms[11])
    check(grown, 11, perms[11], 0.5)
    back = VF._bag_inputs(6, torch.bfloat16, 0.125, perms[6])
    check(back, 6, perms[6], 0.125)
    assert grown is not first and back is not first and back.pairs.untyped_storage().nbytes() == 11 * 2 * 8


# torch's forward AD scripts a decomposition at first use, which warns in torch 2.14 (not vicinal's doing)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_fast_paths_fall_back_to_the_formula_under_forward_ad():
    x, tangent = torch.randn(4, 6), torch.randn(4, 6)
    perm = torch.tensor([2, 0, 3, 1])
    with fwAD.dual_level():
        for exact in (True, False):
            mixed = VF.mix(fwAD.make_dual(x, tangent), 0.3, perm, exact=exact)
            got = fwAD.unpack_dual(mixed).tangent
            assert torch.allclose(got, 0.3 * tangent + 0.7 * tangent[perm], rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_transform_mixes_forward_ad_duals_in_place_with_the_formula(dtype):
    # Mixup(inplace=True)'s one-slice fast path (gather into a buffer, or the fused bag) has no forward AD
    x, tangent = torch.randn(8, 3, 4, 4).to(dtype), torch.randn(8, 3, 4, 4).to(dtype)
    mixer = vicinal.Mixup(1.0, num_classes=10, inplace=True, seed=0)
    with fwAD.dual_level():
        dual = fwAD.make_dual(x.clone(), tangent) * 1  # a non-leaf dual, as an activation would be
        params = mixer.sample(dual, torch.arange(8))
        primal, got = fwAD.unpack_dual(mixer.apply_inputs(dual, params))
    lam, perm = params.lam, params.perm
    assert within_rounding_bound(primal, mix_reference(x, lam, x[perm]), x, x[perm])
    torch.testing.assert_close(got, mix_reference(tangent, lam, tangent[perm]))


@pytest.mark.parametrize("exact", [True, False])
def test_a_learned_per_sample_lam_keeps_its_gradient_when_mixing_in_place(exact):
    # autograd saves x for lam * x: mixing in place must not overwrite what lam's gradient reads
    x, perm = torch.randn(6, 3, 4, 4), torch.tensor([2, 0, 1, 5, 3, 4])
    expected = None
    for mix in (lambda lam: VF.mix(x, lam, perm, exact=exact), lambda lam: VF.mix_(x.clone(), lam, perm, exact=exact)):
        lam = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
        (mix(lam) ** 2).sum().backward()
        if expected is None:
            expected = lam.grad
        else:
            torch.testing.assert_close(lam.grad, expected)


def test_a_learned_lam_mixes_in_place_under_torch_func_too():
    # functorch wrappers hold no data pointer: the aliasing checks must not ask them for one
    x, perm = torch.randn(6, 3, 4, 4), torch.tensor([2, 0, 1, 5, 3, 4])
    lam = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = torch.func.grad(lambda w: (VF.mix(x, w, perm) ** 2).sum())(lam)
    torch.testing.assert_close(torch.func.grad(lambda w: (VF.mix_(x.clone(), w, perm) ** 2).sum())(lam), expected)
    into = torch.func.grad(lambda w: (VF.mix(x, w, perm, out=torch.empty_like(x)) ** 2).sum())(lam)
    torch.testing.assert_close(into, expected)
    members = torch.stack([x, 2 * x])
    batched = torch.func.vmap(lambda m: VF.mix(m, 0.3, partner=m.flip(0), out=torch.empty_like(m)))(members)
    assert torch.equal(batched, torch.stack([mix_reference(m, 0.3, m.flip(0)) for m in members]))


def test_memory_shared_through_another_storage_is_refused():
    # two from_numpy views of one array are separate torch storages over the same memory
    a = np.random.default_rng(0).standard_normal((9, 3, 4, 4)).astype(np.float32)
    x, p = torch.from_numpy(a[1:]), torch.from_numpy(a[:8])
    assert x.untyped_storage().data_ptr() != p.untyped_storage().data_ptr()
    perm = torch.randperm(8)
    with pytest.raises(ValueError, match="x shares memory with partner"):
        VF.mix_(x, 0.3, partner=p)
    with pytest.raises(ValueError, match="out shares memory with x"):
        VF.mix(x, 0.3, perm, out=p)
    with pytest.raises(ValueError, match="out shares memory with partner"):
        VF.mix(torch.randn(8, 3, 4, 4), 0.3, partner=x, out=p)
    with pytest.raises(ValueError, match="x shares memory with partner"):
        VF.cutmix_(x, (0, 4, 0, 4), partner=p)
    with pytest.raises(ValueError, match="x shares memory with partner"):
        vicinal.Mixup(1.0, num_classes=2, inplace=True, seed=0)(
            x, torch.arange(8) % 2, partner=(p, torch.arange(8) % 2)
        )
    assert torch.equal(torch.from_numpy(a[:8]), p)  # refused before anything was written
    # halves of one storage that do not overlap are separate memory: mixed as the formula says
    base = torch.randn(16, 5)
    first, second = base[:8], base[8:]
    expected = mix_reference(first.clone(), 0.3, second.clone())
    assert torch.equal(VF.mix_(first, 0.3, partner=second, exact=True), expected)


def test_empty_batches_share_no_memory():
    # every empty tensor's storage starts at address 0: that is not shared memory
    x, p = torch.zeros(4, 0), torch.zeros(4, 0)
    assert VF.mix_(x, 0.3, partner=p) is x
    y = torch.arange(4) % 2
    mixed, _ = vicinal.Mixup(1.0, num_classes=2, inplace=True, seed=0)(x, y, partner=(p, y))
    assert mixed.shape == (4, 0)
    out = torch.zeros(0, 4).t()  # (4, 0) with other strides
    assert VF.mix(x, 0.3, torch.tensor([1, 0, 3, 2]), out=out) is out


@pytest.mark.parametrize("exact", [None, "no", 1])
def test_exact_must_be_a_bool(exact):
    x = torch.randn(4, 3)
    perm = torch.tensor([1, 0, 3, 2])
    with pytest.raises(TypeError, match=f"exact must be True or False, got {exact!r}"):
        VF.mix(x, 0.3, perm, exact=exact)
    with pytest.raises(TypeError, match=f"exact must be True or False, got {exact!r}"):
        VF.mix_(x, 0.3, perm, exact=exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.uint8])
def test_samples_without_values_mix_to_themselves(dtype):
    x = torch.empty(4, 0, dtype=dtype)
    perm = torch.tensor([1, 0, 3, 2])
    assert VF.mix_(x, 0.3, perm) is x
    out = torch.empty_like(x)
    assert VF.mix(x, 0.3, perm, out=out) is out and VF.mix(x, 0.3, perm, exact=False).shape == (4, 0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool, "float32"])
def test_mixed_one_hot_needs_a_float_dtype(dtype):
    # integer weights truncate lam to 0: all-zero targets, or the partner's one-hot alone with per-sample lam
    # (helper-104); bool had no subtraction
    y, perm = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3, 2])
    with pytest.raises(TypeError, match=rf"^dtype must be a floating-point dtype, got {re.escape(repr(dtype))}$"):
        VF.mixed_one_hot(y, 0.3, perm, 4, dtype=dtype)


def test_target_helpers_and_the_cutmix_box_name_bad_input():
    perm = torch.tensor([1, 0])
    with pytest.raises(
        ValueError, match=r"float labels are taken as probabilities of shape \(B, 3\); got shape \(2,\)"
    ):
        VF.one_hot(torch.tensor([0.0, 1.0]), 3)  # passed through unchanged as "one-hot"
    with pytest.raises(ValueError, match=r"float labels .* \(B, 3\); got shape \(2, 4\)"):
        VF.one_hot(torch.full((2, 4), 0.25), 3)
    assert torch.equal(VF.one_hot(torch.eye(3)[:2], 3), torch.eye(3)[:2])
    with pytest.raises(ValueError, match=r"labels must be class indices of shape \(B,\), got shape \(2, 2\)"):
        VF.mixed_one_hot(torch.tensor([[0, 1], [1, 0]]), 0.3, perm, 3)
    with pytest.raises(TypeError, match="targets must be a torch.Tensor with the batch first, got list"):
        VF.closer_targets([1, 2], 0.3, perm)
    u = torch.tensor([0.5, 0.5])
    for lam, match in ((2.0, r"lam must be in \[0, 1\]"), (-1.0, r"lam must be in \[0, 1\]")):
        with pytest.raises(ValueError, match=match):
            VF.cutmix_box(lam, 10, 10, u)
    for bad in (torch.tensor([3.0, 3.0]), torch.tensor([0.5]), torch.tensor([1.0, 0.2]), None):
        with pytest.raises(ValueError, match=r"u must be two uniforms in \[0, 1\)"):
            VF.cutmix_box(0.5, 10, 10, bad)
    with pytest.raises(TypeError, match=r"cutmix_box takes one lam for the box, got a tensor of shape \(2,\)"):
        VF.cutmix_box(torch.tensor([0.5, 0.5]), 10, 10, u)
    assert VF.cutmix_box(torch.tensor([0.75]), 10, 10, u) == VF.cutmix_box(0.75, 10, 10, (0.5, 0.5))
    assert VF.cutmix_box(0.75, 10, 10, np.array([0.5, 0.5])) == VF.cutmix_box(0.75, 10, 10, u)  # numpy centres too


# -- gaps a mutation audit found: each test fails on the code changed as its comment says ----------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_layout, out_layout", [("contiguous", "channels_last"), ("channels_last", "contiguous")])
def test_out_in_another_layout_than_x_equals_formula(small_chunks, dtype, x_layout, out_layout):
    # guards out= whose memory layout differs from x's (viewing each tensor in its own memory order paired
    # elements that do not line up); the docstring promises the formula's values in any buffer of the right shape
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    x = make((5, 3, 4, 6), dtype).contiguous(memory_format=formats[x_layout])
    perm = torch.tensor([3, 0, 4, 1, 2])
    for lam in lams(5):
        ref = mix_reference(x, lam, x[perm])
        out = torch.empty_like(x, memory_format=formats[out_layout])
        assert VF.mix(x, lam, perm, out=out) is out and torch.equal(out, ref)
        gapped = torch.empty(5, 3, 4, 12, dtype=dtype)[..., ::2]  # gapped strides: no (B, F) view of out
        assert VF.mix(x, lam, perm, out=gapped) is gapped and torch.equal(gapped, ref)


def test_out_aliasing_x_with_other_strides_is_refused():
    # guards the stride half of the aliasing check (with only the start address compared, out=x.t()
    # was accepted and scrambled x into neither x nor its mix); only out=x itself (same strides) mixes in place
    x = torch.arange(16.0).view(4, 4)
    before = x.clone()
    perm = torch.tensor([1, 0, 3, 2])
    for alias in (x.t(), x.as_strided((4, 4), (1, 4))):
        with pytest.raises(ValueError, match="out shares memory with x; pass separate tensors"):
            VF.mix(x, 0.5, perm, out=alias)
        assert torch.equal(x, before)
    assert VF.mix(x, 0.5, perm, out=x) is x and torch.equal(x, mix_reference(before, 0.5, before[perm]))


def test_mix_many_uint8_honours_a_float64_out_dtype():
    # guards out_dtype for uint8 in mix_many (it was ignored, the unrounded mix came back in float32);
    # docstring: "for uint8 inputs, a float dtype returns the unrounded mix in that dtype"
    x = torch.tensor([[1, 7], [2, 250]], dtype=torch.uint8)
    w = torch.tensor([[1 / 3, 2 / 3], [2 / 3, 1 / 3]], dtype=torch.float64)
    idx = torch.tensor([[0, 1], [1, 0]])
    got = VF.mix_many(x, w, idx, out_dtype=torch.float64)
    xd = x.double()
    expected = w[:, :1] * xd[idx[0]] + w[:, 1:] * xd[idx[1]]  # sum_j w_j x[idx_j] in float64, unrounded
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-13)  # float32 arithmetic errs by ~1e-5 here
    assert VF.mix_many(x, w.float(), idx, out_dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_one_hot_and_mixed_one_hot_honour_dtype(dtype):
    # guards dtype= of one_hot and mixed_one_hot (both returned float32 whatever was asked);
    # mixed_one_hot stays bit-identical to mix_targets(one_hot(y, C, dtype), ...) in that dtype too
    y = torch.tensor([0, 2, 1, 2])
    perm = torch.tensor([1, 2, 3, 0])
    oh = VF.one_hot(y, 3, dtype=dtype)
    assert oh.dtype == dtype and torch.equal(oh, F.one_hot(y, 3).to(dtype))
    for lam in (0.1 + 0.2, torch.tensor([0.3, 1 / 3, 0.9, 0.5], dtype=torch.float64)):
        got = VF.mixed_one_hot(y, lam, perm, 3, dtype=dtype)
        assert got.dtype == dtype and torch.equal(got, VF.mix_targets(oh, lam, perm))


@pytest.mark.parametrize(
    "kernel",
    [
        lambda x, perm: VF.mix(x, 0.3, perm, exact=False),  # the fused gather-and-mix (_bag_applies)
        lambda x, perm: VF._mix_inplace_drawn(x, 0.3, perm, exact=False),  # the transforms' in-place kernel
    ],
    ids=["mix-exact-false", "in-place-drawn"],
)
def test_fast_paths_compile_for_a_second_batch_size(kernel):
    # the last, partial batch of an epoch: dynamo recompiled with a symbolic batch size, where reading x.nbytes
    # failed ("Cannot call numel() on tensor with symbolic sizes/strides"). The transforms run eagerly under
    # torch.compile now (test_mixup.py); the kernels may still be compiled by a user's own code.
    torch._dynamo.reset()
    step = torch.compile(kernel, backend="eager")  # dynamo's graph, no C++ compiler needed
    with warnings.catch_warnings():
        # dynamo warned that it cannot trace torch's functorch-wrapper test (and broke the graph there)
        warnings.simplefilter("error")
        for b in (8, 5, 3):
            x, perm = make((b, 4), torch.float32, seed=b), torch.randperm(b, generator=torch.Generator().manual_seed(b))
            torch.testing.assert_close(step(x.clone(), perm), kernel(x.clone(), perm), rtol=0, atol=0)
        # under vmap inside the compiled region every tensor counts as wrapped: the formula, within its bound
        torch._dynamo.reset()
        xs, perm = make((3, 6, 4), torch.float32, seed=0), torch.randperm(6, generator=torch.Generator().manual_seed(0))
        got = torch.compile(torch.func.vmap(lambda x: kernel(x.clone(), perm)), backend="eager")(xs)
        assert torch.equal(got, torch.stack([mix_reference(x, 0.3, x[perm]) for x in xs]))


def test_mixed_one_hot_under_vmap_over_lams_and_over_labels():
    # an ensemble's lams, or its labels: the in-place scatters into the unbatched zeros failed inside torch
    perm = torch.tensor([1, 0, 3, 2, 5, 4])
    y = torch.tensor([0, 1, 2, 3, 0, 0])
    lams = torch.rand(4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = torch.func.vmap(lambda lam: VF.mixed_one_hot(y, lam, perm, 4))(lams)
    # a vmapped lam is a per-sample lam (check_lam): the same targets as its one-hot mixed as floats
    assert torch.equal(got, torch.func.vmap(lambda lam: VF.mix_targets(VF.one_hot(y, 4), lam, perm))(lams))
    assert torch.equal(got, torch.stack([VF.mixed_one_hot(y, lam.expand(6), perm, 4) for lam in lams]))
    ys = torch.tensor([[0, 1, 2, 3, 0, 0], [3, 3, 1, 1, 2, 0]])
    got = torch.func.vmap(lambda t: VF.mixed_one_hot(t, 0.3, perm, 4))(ys)
    assert torch.equal(got, torch.stack([VF.mixed_one_hot(t, 0.3, perm, 4) for t in ys]))
    got = torch.func.vmap(lambda t, lam: VF.mixed_one_hot(t, lam, perm, 4))(ys, lams[:2])
    assert torch.equal(
        got, torch.stack([VF.mixed_one_hot(t, lam.expand(6), perm, 4) for t, lam in zip(ys, lams[:2], strict=True)])
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_mix_many_keeps_a_channels_last_batch_channels_last(dtype):
    # as every other path does: a channels_last model would otherwise convert the batch back on every step
    x = make((5, 3, 4, 6), dtype)
    weights = torch.tensor([0.5, 0.3, 0.2])
    indices = torch.tensor([[0, 1, 2, 3, 4], [2, 0, 1, 4, 3], [4, 3, 0, 2, 1]])
    got = VF.mix_many(x.contiguous(memory_format=torch.channels_last), weights, indices)
    assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    assert torch.equal(got, VF.mix_many(x, weights, indices))
    # an expanded batch (gray widened to 3 channels) has no memory order: contiguous, as Mixup returns it (a model
    # flattening with .view failed on the channels_last-like result)
    gray = x[:, :1].expand(5, 3, 4, 6)
    assert VF.mix_many(gray, weights, indices).is_contiguous()
    assert torch.equal(VF.mix_many(gray, weights, indices), VF.mix_many(gray.contiguous(), weights, indices))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_per_sample_boxes_paste_under_autograd_forward_ad_and_vmap():
    # CutMix(lam_mode="sample") pastes through where(out=), which autograd, forward AD and vmap refuse: an input that
    # requires grad (adversarial training, learned inputs) stopped on torch's "out=... don't support automatic
    # differentiation"
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 8, 8, generator=g).contiguous(memory_format=torch.channels_last)
    w, tangent = torch.randn(2, 4, 3, 8, 8, generator=g)
    perm = torch.tensor([2, 0, 3, 1])
    boxes = torch.tensor([[0, 4, 1, 5], [2, 8, 0, 8], [3, 3, 2, 6], [1, 7, 4, 8]])  # row 2: an empty box

    def reference(t):  # the paste written out, sample by sample
        out = t.clone()
        for i, (y0, y1, x0, x1) in enumerate(boxes.tolist()):
            out[i, :, y0:y1, x0:x1] = t[perm[i], :, y0:y1, x0:x1]
        return out

    leaf, ref_leaf = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = VF.cutmix(leaf, boxes, perm)
    assert torch.equal(got, reference(x)) and got.is_contiguous(memory_format=torch.channels_last)
    (got * w).sum().backward()
    (reference(ref_leaf) * w).sum().backward()
    assert torch.equal(leaf.grad, ref_leaf.grad)
    assert torch.equal(torch.func.grad(lambda t: (VF.cutmix(t, boxes, perm) * w).sum())(x), ref_leaf.grad)
    _, jv = torch.func.jvp(lambda t: VF.cutmix(t, boxes, perm), (x,), (tangent,))
    assert torch.equal(jv, reference(tangent))
    stack = torch.randn(2, 4, 3, 8, 8, generator=g)
    mixed = torch.func.vmap(lambda t: VF.cutmix(t, boxes, perm))(stack)
    assert torch.equal(mixed, torch.stack([reference(s) for s in stack]))
    # the transforms that draw per-sample boxes take such a batch too
    y = torch.tensor([0, 1, 2, 3])
    for mixer in (
        vicinal.CutMix(num_classes=4, lam_mode="sample", seed=0),
        vicinal.MixupOrCutMix(num_classes=4, lam_mode="pair", pairing="flip", switch_prob=1.0, seed=0),
    ):
        params = mixer.sample(x, y)
        out = mixer.apply_inputs(leaf, params)
        assert out.requires_grad and torch.equal(out, mixer.apply_inputs(x, params))
