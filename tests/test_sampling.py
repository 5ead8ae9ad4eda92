"""lam samplers: distribution (KS tests), ERM limit, determinism, generator-only randomness."""

import pytest
import torch
from scipy import stats

import vicinal
from vicinal.sampling import _pair_concentration, new_generator, sample_beta, sample_dirichlet, sample_lam

# 20,000 draws: the KS statistic of a correct sampler stays below ~0.0096 (p = 0.05); we require p > 1e-3 at a
# fixed seed, so a wrong distribution (e.g. Beta(alpha, 1)) fails by orders of magnitude.
N_DRAWS = 20_000


@pytest.mark.parametrize("alpha", [0.1, 0.2, 1.0, 8.0, 32.0])
def test_beta_matches_scipy_beta_ks(alpha):
    g = torch.Generator().manual_seed(1234)
    lam = sample_beta(alpha, (N_DRAWS,), generator=g).numpy()
    assert lam.min() >= 0.0 and lam.max() <= 1.0
    result = stats.kstest(lam, stats.beta(alpha, alpha).cdf)
    assert result.pvalue > 1e-3, f"alpha={alpha}: KS statistic {result.statistic:.4f}, p={result.pvalue:.2e}"


@pytest.mark.parametrize("alpha", [0.01, 0.03, 0.1])  # both sides of the log-space switch at 0.05
def test_small_alpha_distribution_of_the_smaller_weight(alpha):
    # For tiny alpha a third of the draws lie within 1e-16 of 0 or 1, where lam itself rounds to exactly 1.0 in
    # float64; the smaller of the two weights keeps full precision. By symmetry it has cdf 2 * F(t) on [0, 0.5].
    g = torch.Generator().manual_seed(1234)
    smaller = sample_dirichlet(alpha, 2, (N_DRAWS,), generator=g).min(-1).values.numpy()
    result = stats.kstest(smaller, lambda t: 2 * stats.beta(alpha, alpha).cdf(t))
    assert result.pvalue > 1e-3, f"alpha={alpha}: KS statistic {result.statistic:.4f}, p={result.pvalue:.2e}"


def test_ks_test_detects_wrong_distribution():
    # guards the test above: the same check rejects a sampler with the wrong shape parameter
    g = torch.Generator().manual_seed(1234)
    lam = sample_beta(1.0, (N_DRAWS,), generator=g).numpy()
    assert stats.kstest(lam, stats.beta(2.0, 2.0).cdf).pvalue < 1e-6


@pytest.mark.parametrize("size", [(), (7,)])
def test_alpha_zero_is_erm(size):
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    lam = sample_beta(0.0, size, generator=g)
    assert torch.equal(lam, torch.ones(size, dtype=torch.float64))
    assert torch.equal(g.get_state(), state)  # no randomness consumed


def test_dirichlet_rows_sum_to_one_and_mean():
    g = torch.Generator().manual_seed(0)
    w = sample_dirichlet(0.5, 4, (5000,), generator=g)
    assert w.shape == (5000, 4)
    torch.testing.assert_close(w.sum(1), torch.ones(5000, dtype=torch.float64))
    # E[w_j] = 1/k; std of the mean over 5000 draws is ~0.004, tolerance 0.02
    assert torch.allclose(w.mean(0), torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)
    # marginal of Dirichlet(a,...,a) over k is Beta(a, (k-1) a)
    assert stats.kstest(w[:, 0].numpy(), stats.beta(0.5, 1.5).cdf).pvalue > 1e-3


def test_same_seed_same_draws():
    a = sample_beta(0.4, (10,), generator=torch.Generator().manual_seed(7))
    b = sample_beta(0.4, (10,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_global_rng_untouched():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    sample_beta(1.0, (10,), generator=new_generator(seed=3))
    new_generator()  # unseeded: OS entropy, still not the global RNG
    assert torch.equal(torch.get_rng_state(), before)


def test_sample_lam_modes():
    g = torch.Generator().manual_seed(0)
    assert isinstance(sample_lam(1.0, 8, "batch", generator=g), float)
    per_sample = sample_lam(1.0, 8, "sample", generator=g)
    assert per_sample.shape == (8,)
    with pytest.raises(ValueError, match="unknown lam_mode 'row'; known: batch, sample"):
        sample_lam(1.0, 8, "row", generator=g)


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.05, 0.2, 1, 1.0, 32.0])
def test_one_lam_per_batch_is_the_first_component_of_sample_beta(alpha):
    # the batch mode's fast path must draw the same stream as sample_beta: seeded runs regenerate bit for bit
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    fast = [sample_lam(alpha, 8, "batch", generator=g1) for _ in range(200)]
    assert fast == [float(sample_beta(alpha, generator=g2)) for _ in range(200)]
    assert all(type(v) is float for v in fast)


@pytest.mark.parametrize(
    "alpha, err, msg",
    [
        (-0.5, ValueError, r"alpha must be a finite number >= 0, got -0.5"),
        (float("nan"), ValueError, r"alpha must be a finite number >= 0, got nan"),
        (float("inf"), ValueError, r"alpha must be a finite number >= 0, got inf"),
        ("1", TypeError, r"alpha must be a number, got str '1'"),
    ],
)
def test_bad_alpha(alpha, err, msg):
    with pytest.raises(err, match=msg):
        sample_beta(alpha, generator=torch.Generator())
    with pytest.raises(err, match=msg):
        sample_lam(alpha, 4, "batch", generator=torch.Generator())


def test_dirichlet_needs_two_examples():
    with pytest.raises(ValueError, match=r"k must be an int >= 2 \(examples to mix\), got 1"):
        sample_dirichlet(1.0, 1, generator=torch.Generator())
    for k in (2.5, None, True):
        with pytest.raises(ValueError, match=rf"k must be an int >= 2 \(examples to mix\), got {k}"):
            sample_dirichlet(1.0, k, generator=torch.Generator())


def test_samplers_need_an_explicit_generator():
    # generator=None fell back to torch's global stream, silently: unseeded and shared with everything else
    for call in (lambda: sample_lam(1.0, 4, "batch", generator=None), lambda: sample_lam(0.01, 4, "sample", generator=None),
                 lambda: sample_beta(1.0, (3,), generator=None), lambda: sample_dirichlet(1.0, 3, generator=7)):  # fmt: skip
        with pytest.raises(TypeError, match="generator must be a torch.Generator, got (NoneType|int)"):
            call()


def test_generator_arguments():
    with pytest.raises(ValueError, match="pass either generator or seed, not both"):
        new_generator(torch.Generator(), 1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        new_generator(5)
    with pytest.raises(TypeError, match="seed must be an int, got float 1.5"):
        new_generator(seed=1.5)


def test_tiny_alpha_does_not_collapse_to_one_half():
    # Beta(0.001, 0.001) puts almost all mass next to 0 and 1 (P(0.01 < lam < 0.99) ~ 0.001); draws made as
    # Gamma ratios underflow to 0/0 here. Symmetry: the share above 0.5 is 0.5 (binomial std 0.005 at n=10,000).
    lam = sample_beta(0.001, (10_000,), generator=torch.Generator().manual_seed(0))
    assert float(((lam > 0.01) & (lam < 0.99)).double().mean()) < 0.01
    assert abs(float((lam > 0.5).double().mean()) - 0.5) < 0.025


def test_subnormal_alpha_gives_the_limit_not_nan():
    # below alpha ~1e-300, log(U) / alpha overflowed to -inf in both entries and softmax gave NaN: a silent all-NaN
    # batch on the fast paths. The alpha -> 0 limit is lam in {0, 1}, each half of the time; rows the overflow does
    # not reach keep their values bit for bit.
    for alpha in (1e-310, 5e-324, 1e-300):
        lam = sample_beta(alpha, (2_000,), generator=torch.Generator().manual_seed(0))
        assert set(lam.unique().tolist()) == {0.0, 1.0}, alpha
        assert abs(float(lam.mean()) - 0.5) < 0.05  # binomial std 0.011 at n=2,000
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    for kwargs in ({"inplace": True}, {"exact": False}, {}):
        xm, ym = vicinal.Mixup(1e-310, num_classes=3, seed=0, lam_mode="sample", **kwargs)(x.clone(), y)
        assert xm.isfinite().all() and ym.isfinite().all(), kwargs
    g = torch.Generator().manual_seed(0)
    conc = torch.full((4, 2), 0.01 + 1.0, dtype=torch.float64)
    log_gamma = torch._standard_gamma(conc, generator=g).log()
    log_u = torch.rand(conc.shape, generator=g, dtype=torch.float64).log()
    expected = torch.softmax(log_gamma + log_u / 0.01, dim=-1)[..., 0]
    assert torch.equal(sample_beta(0.01, (4,), generator=torch.Generator().manual_seed(0)), expected)


def test_huge_alpha_gives_equal_weights_not_an_overflow():
    # the k Gamma draws lie near alpha and their sum overflowed float64 from k * alpha ~ 1.8e308: lam came out as
    # 2.2e-308 (torch clamps 0 to the smallest normal) where Beta(alpha, alpha) is 0.5 to float64 precision
    g = torch.Generator().manual_seed(0)
    for alpha in (1e308, 1.7e308, 6e307):
        assert sample_lam(alpha, 4, "batch", generator=g) == 0.5, alpha
        assert sample_lam(alpha, 4, "sample", generator=g).tolist() == [0.5] * 4, alpha
        assert torch.allclose(
            sample_dirichlet(alpha, 3, (2,), generator=g), torch.full((2, 3), 1 / 3, dtype=torch.float64)
        ), alpha
    x = torch.randn(4, 3)
    xm, _ = vicinal.Mixup(1e308, num_classes=3, seed=0, pairing="flip")(x, torch.tensor([0, 1, 2, 0]))
    assert torch.equal(xm, 0.5 * x + 0.5 * x.flip(0))
    # below the cap the draws are unchanged: the same stream as the fused call on the concentration itself
    expected = torch._sample_dirichlet(torch.full((3, 2), 1e299, dtype=torch.float64), generator=g.manual_seed(1))
    assert torch.equal(sample_beta(1e299, (3,), generator=torch.Generator().manual_seed(1)), expected[:, 0])


def test_batch_lam_does_not_keep_the_first_calls_default_device():
    # the cached concentration once took the default device of its first call: one draw under torch.device("meta")
    # broke every later draw at that alpha
    _pair_concentration.cache_clear()
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        inside = sample_lam(0.3, 4, "batch", generator=g)
    outside = sample_lam(0.3, 4, "batch", generator=g)
    assert isinstance(inside, float) and isinstance(outside, float)


def test_unseeded_generators_draw_different_streams_without_touching_the_global_rng():
    state = torch.get_rng_state()
    seeds = {new_generator().initial_seed() for _ in range(4)}
    assert len(seeds) == 4  # fresh OS entropy: a collision of 64-bit seeds has probability ~1e-18
    assert torch.equal(torch.get_rng_state(), state)


def test_sizes_as_ints_or_tuples_and_bad_sizes_named():
    g = torch.Generator().manual_seed(0)
    # an int size, as torch.rand takes it ("Value after * must be an iterable, not int" before)
    assert sample_beta(1.0, 3, generator=g).shape == (3,) and sample_dirichlet(1.0, 3, 5, generator=g).shape == (5, 3)
    assert sample_beta(0.01, [2, 2], generator=g).shape == (2, 2)  # the log-space path too
    for bad in (-1, (2, -1), 2.5, "3"):
        with pytest.raises(ValueError, match=r"^size must be an int or a tuple of ints >= 0, got "):
            sample_beta(1.0, bad, generator=g)
    for bad in (-1, 0, 2.0):
        with pytest.raises(ValueError, match=rf"^batch_size must be an int >= 1, got {bad!r}"):
            sample_lam(1.0, bad, "sample", generator=g)
