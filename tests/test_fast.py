"""The fast mixing paths (issue 7): chunked kernel, out=, in place, matching pairing, uint8 collate.

Every fast path is checked against the paper's formula written out with PyTorch ops (``reference`` below):

* ``mix`` (default, chunked on CPU), ``mix(out=)``, ``mix_(exact=True)``, uint8 rounding: ``torch.equal``.
* ``mix_(exact=False)`` (one ``torch.lerp`` per slice): an elementwise rounding bound, derived here.

Rounding bound for ``exact=False``. Write a = x_i, b = x_j, m = lam a + (1 - lam) b exactly, u the unit roundoff of
the dtype (2**-24 float32, 2**-53 float64, 2**-8 bfloat16, 2**-11 float16; bfloat16/float16 ops compute in float32
and round once to the dtype, and float32 rounding errors are smaller than u). To first order in u:

* formula ``fl(fl(w a) + fl(w' b))``: the two weights are rounded (|dw| <= u lam, |dw'| <= u (1 - lam) + u lam when
  w' = 1 - w is formed in the dtype), each product and the sum round once:
  ``|formula - m| <= 2 u lam |a| + 3 u (1 - lam) |b| + u lam |b| + u |m| <= 3 u (|a| + |b|)`` (|m| <= max(|a|, |b|)).
* lerp with weight t in {lam, 1 - lam} (the kernel passes the smaller one for a batch lam; torch switches to
  ``end - (end - self)(1 - t)``, with 1 - t exact by Sterbenz, when t >= 0.5): the weight rounds once (u t |b - a|),
  the difference and the multiply-add round at most twice in float32, the result once in the dtype:
  ``|lerp - m| <= u t (|a| + |b|) + 2 u (|a| + |b|) t + u |m| <= 3 u (|a| + |b|)``.

Hence ``|mix_(exact=False) - formula| <= 6 u (|a| + |b|)`` plus, in the subnormal range, an absolute term of a few
smallest subnormals (each rounding there errs by at most half of one). Observed on random normal data: at most
~3.3 u (|a| + |b|) (float16, per-sample lam), ~2 u (|a| + |b|) for float32.
"""

import pytest
import torch
import torch.nn.functional as F

import vicinal
from vicinal import functional as VF
from vicinal.pairing import batch_pairs, matching_pairs

UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
FLOATS = list(UNIT_ROUNDOFF)
DTYPES = [*FLOATS, torch.uint8]


@pytest.fixture
def small_chunks(monkeypatch):
    """Force the chunked kernel on tiny tensors and cut them into many slices (16 columns per slice)."""
    monkeypatch.setattr(VF, "_CHUNK_BYTES", 64)
    monkeypatch.setattr(VF, "_MIN_CHUNKED_BYTES", 0)


def make(shape, dtype, seed=0, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    else:
        x = torch.randn(shape, generator=g).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def reference(x, lam, xp):
    """The paper's formula with PyTorch ops, exactly as ``functional.mix`` documents it (uint8: float32, rounded)."""
    compute = x.dtype if x.is_floating_point() else torch.float32
    w = lam.to(compute).reshape(-1, *([1] * (x.dim() - 1))) if isinstance(lam, torch.Tensor) else lam
    mixed = w * x.to(compute) + (1 - w) * xp.to(compute)
    return mixed if x.is_floating_point() else mixed.round().clamp(0, 255).to(torch.uint8)


def lams(n, seed=0):
    """A batch lam below and above 0.5 (the lerp kernel switches direction there) and a per-sample lam (B,)."""
    return [0.3, 0.8, torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)]


def within_rounding_bound(fast, ref, a, b):
    """``|fast - ref| <= 6 u (|a| + |b|) + 4 * smallest subnormal`` elementwise (module docstring)."""
    dtype = fast.dtype
    u = UNIT_ROUNDOFF[dtype]
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    bound = 6 * u * (a.double().abs() + b.double().abs()) + 4 * tiny
    return bool(((fast.double() - ref.double()).abs() <= bound).all())


# -- exactness of every fast path ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, channels_last", [((9, 3, 5, 7), False), ((9, 3, 5, 7), True), ((6, 50), False)])
def test_chunked_paths_equal_formula(small_chunks, dtype, shape, channels_last):
    x = make(shape, dtype, channels_last=channels_last)
    perm = torch.randperm(shape[0], generator=torch.Generator().manual_seed(1))
    for lam in lams(shape[0]):
        ref = reference(x, lam, x[perm])
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
    x = make((96, 3, 48, 48), dtype, seed=3)
    assert VF._worth_chunking(x)
    if dtype in (torch.float32, torch.uint8):
        assert x.numel() * 4 > VF._SINGLE_PASS_BYTES and 3 * 48 * 48 > VF._CHUNK_BYTES // (96 * 4)
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(2))
    for lam in lams(96, seed=1):
        ref = reference(x, lam, x[perm])
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
    ref = reference(x, 0.3, x[perm])
    assert not within_rounding_bound(reference(x, 0.3 + 1e-6, x[perm]), ref, x, x[perm])


@pytest.mark.parametrize("dtype", DTYPES)
def test_partner_batch_paths(small_chunks, dtype):
    x, xp = make((7, 2, 6, 5), dtype, seed=1), make((7, 2, 6, 5), dtype, seed=2)
    for lam in lams(7):
        ref = reference(x, lam, xp)
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
        ref = reference(a, lam, a[perm])
        assert torch.equal(VF.mix_(a.clone(), lam, perm), ref)
    for lam in [1.5, -0.25, torch.tensor([1.5, 0.5, -1.0, 0.0], dtype=torch.float64)]:  # extrapolation (#11)
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
            VF.mix_(a.clone(), lam, perm)
    half = VF.mix_(a.clone(), 0.5, perm)
    assert half[0, 4] == 2 and half[0, 5] == 2 and half[0, 6] == 4  # 1.5 -> 2, 2.5 -> 2, 3.5 -> 4


def test_uint8_every_pair_of_grey_levels(monkeypatch):
    monkeypatch.setattr(VF, "_CHUNK_BYTES", 1 << 14)  # 32 slices of 2048 columns
    # all 65536 (a, b) pairs: row 0 holds a, row 1 holds b; partners swap rows. Exhausts the kernel's rounding
    # (2**23 trick) against torch.round, ties included (lam = 0.5, 0.25 give exact .5 fractions).
    a = torch.arange(256, dtype=torch.uint8).repeat_interleave(256)
    b = torch.arange(256, dtype=torch.uint8).repeat(256)
    x = torch.stack([a, b])  # (2, 65536)
    perm = torch.tensor([1, 0])
    for lam in [0.5, 0.25, 0.1, 0.3, 0.7, 1 / 3, 0.999, torch.tensor([0.5, 0.125], dtype=torch.float64)]:
        assert torch.equal(VF.mix_(x.clone(), lam, perm), reference(x, lam, x[perm])), lam


def test_non_dense_input_falls_back_exactly():
    base = make((6, 3, 8, 8), torch.float32)
    x = base[:, :, ::2]  # gaps between elements: no (B, F) view exists
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    ref = reference(x, 0.4, x[perm])
    assert torch.equal(VF.mix(x, 0.4, perm, out=torch.empty_like(x)), ref)
    before = base.clone()
    VF.mix_(x, 0.4, perm)
    assert torch.equal(x, ref)
    assert torch.equal(base[:, :, 1::2], before[:, :, 1::2])  # only the view's elements were written


def test_one_dimensional_batches(small_chunks):
    x = make((40,), torch.float32)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(VF.mix(x, 0.7, perm), reference(x, 0.7, x[perm]))
    assert torch.equal(VF.mix_(x.clone(), 0.7, perm, exact=True), reference(x, 0.7, x[perm]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_paths_equal_formula(dtype):
    x = make((16, 3, 8, 8), dtype).cuda()
    perm = torch.randperm(16).cuda()
    for lam in lams(16):
        ref = reference(x, lam.cuda() if isinstance(lam, torch.Tensor) else lam, x[perm])
        assert torch.equal(VF.mix(x, lam, perm, out=torch.empty_like(x)), ref)
        assert torch.equal(VF.mix_(x.clone(), lam, perm, exact=True), ref)


# -- the Mixup transform's fast path ------------------------------------------------------------------------------
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
    ref = reference(x, p.lam, x[p.perm])
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
    ref = reference(x, p.lam, x[p.perm])
    assert torch.equal(mixer(x.clone(), y)[0], ref)
    assert len(set(p.lam.tolist())) == 512


# -- matching pairing ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 4, 10, 128])
def test_matching_is_an_involution_without_self_pairs_for_even_batches(n):
    for seed in range(20):
        for allow_self in (True, False):
            perm = matching_pairs(n, generator=torch.Generator().manual_seed(seed), allow_self=allow_self)
            assert torch.equal(perm.sort().values, torch.arange(n))
            assert torch.equal(perm[perm], torch.arange(n))
            assert not bool((perm == torch.arange(n)).any())


@pytest.mark.parametrize("n", [3, 5, 9])
def test_matching_odd_batches(n):
    ar = torch.arange(n)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        perm = matching_pairs(n, generator=g, allow_self=True)
        assert torch.equal(perm[perm], ar) and int((perm == ar).sum()) == 1  # one leftover keeps itself
        perm = matching_pairs(n, generator=g, allow_self=False)
        assert torch.equal(perm.sort().values, ar) and not bool((perm == ar).any())
        moved = perm[perm] != ar
        assert int(moved.sum()) == 3  # the 3-cycle
        cyc = ar[moved]
        assert torch.equal(perm[perm[perm[cyc]]], cyc)
    assert matching_pairs(1, generator=torch.Generator()).tolist() == [0]


@pytest.mark.parametrize("n, allow_self", [(6, True), (5, True), (5, False)])
def test_matching_partner_is_uniform(n, allow_self):
    # sample 0's partner over 6000 draws: uniform over the other n - 1 (even n, or odd n without self-pairs) or
    # over all n (odd n, allow_self: the leftover is uniform). Counts are binomial(6000, 1/k): std = sqrt(6000 p (1 -
    # p)) <= 33; tolerance 5 std.
    gen = torch.Generator().manual_seed(7)
    hits = torch.zeros(n)
    for _ in range(6000):
        hits[matching_pairs(n, generator=gen, allow_self=allow_self)[0]] += 1
    support = n if (n % 2 == 1 and allow_self) else n - 1
    p = 1.0 / support
    std = (6000 * p * (1 - p)) ** 0.5
    expected = torch.full((n,), 6000 * p)
    if support == n - 1:
        assert hits[0] == 0
        expected[0] = 0
    assert float((hits - expected).abs().max()) < 5 * std


def test_matching_pairs_share_their_two_inputs():
    # each pair's two outputs come from the same two inputs: x~_i + x~_j = x_i + x_j for a pair (i, j)
    x = make((10, 4), torch.float64)
    y = torch.arange(10) % 5
    mixer = vicinal.Mixup(1.0, num_classes=5, pairing="matching", seed=3)
    p = mixer.sample(x, y)
    xm, ym = mixer.apply_inputs(x, p), mixer.apply_targets(y, p)
    torch.testing.assert_close(xm + xm[p.perm], x + x[p.perm], rtol=0, atol=1e-12)
    yh = F.one_hot(y, 5).double()
    torch.testing.assert_close((ym + ym[p.perm]).double(), yh + yh[p.perm], rtol=0, atol=1e-6)
    assert torch.equal(batch_pairs("matching", 10, None, generator=torch.Generator().manual_seed(0)).sort().values,
                       torch.arange(10))  # fmt: skip


# -- collate ------------------------------------------------------------------------------------------------------
def test_collate_mixes_in_place_and_equals_float_mix_then_round():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (32, 3, 24, 24), dtype=torch.uint8, generator=g)  # 55 KiB per batch
    labels = torch.randint(0, 10, (32,), generator=g)
    batch = [(imgs[i], int(labels[i])) for i in range(32)]
    for lam_mode in ["batch", "sample"]:
        xm, ym = vicinal.MixupCollate(alpha=1.0, num_classes=10, lam_mode=lam_mode, seed=4)(batch)
        p = vicinal.Mixup(1.0, num_classes=10, lam_mode=lam_mode, seed=4).sample(imgs, labels)
        assert xm.dtype == torch.uint8 and torch.equal(xm, reference(imgs, p.lam, imgs[p.perm]))
        lam = p.lam if lam_mode == "batch" else p.lam.float()[:, None]
        yh = F.one_hot(labels, 10).float()
        assert torch.equal(ym, lam * yh + (1 - lam) * yh[p.perm])
    assert torch.equal(torch.stack([img for img, _ in batch]), imgs)  # the samples themselves are never written


# -- errors -------------------------------------------------------------------------------------------------------
def test_errors():
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
    with pytest.raises(ValueError, match=r"inplace=True writes the mix into the input tensor.*uint8_output='float'"):
        vicinal.Mixup(inplace=True, uint8_output="float")
    mixer = vicinal.Mixup(1.0, num_classes=2, uint8_output="float", seed=0)
    xu = torch.zeros(4, 3, dtype=torch.uint8)
    params = mixer.sample(xu, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="cannot mix a uint8 batch in place with uint8_output='float'"):
        mixer.apply_inputs(xu, params, inplace=True)
    with pytest.raises(ValueError, match=r"unknown pairing 'pairs'; known: .*knn, matching"):
        vicinal.Mixup(pairing="pairs")


def test_out_equal_to_x_is_in_place():
    x = make((6, 40), torch.float32)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    ref = reference(x, 0.6, x[perm])
    assert VF.mix(x, 0.6, perm, out=x) is x and torch.equal(x, ref)


def test_autograd_and_vmap_fall_back_to_the_formula(small_chunks):
    # out= kernels cannot record autograd graphs or run under vmap: those calls take the formula, same values
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    x = make((6, 40), torch.float32).requires_grad_()
    mixed = VF.mix(x, 0.3, perm)
    assert torch.equal(mixed, reference(x.detach(), 0.3, x.detach()[perm]))
    mixed.sum().backward()  # each x_i enters once with weight lam and once with 1 - lam
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.3 + 0.7))
    h = x * 2.0  # a non-leaf activation, mixed in place (latent mixing)
    VF.mix_(h, 0.3, perm, exact=True)
    h.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 3.0))
    members = make((3, 6, 40), torch.float32, seed=4)
    batched = torch.func.vmap(lambda t: VF.mix(t, 0.3, perm))(members)
    assert torch.equal(batched, torch.stack([reference(m, 0.3, m[perm]) for m in members]))
