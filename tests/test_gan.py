"""The mixup GAN discriminator objective (Section 3.7)."""

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

import vicinal


def test_discriminator_loss_formula():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    disc = torch.nn.Linear(2, 1)
    lam = vicinal.sample_gan_lam(8, 0.2, generator=g)
    loss = vicinal.mixup_discriminator_loss(disc, real, fake, lam)
    mixed = lam[:, None] * real + (1 - lam[:, None]) * fake
    logit = disc(mixed).reshape(-1)
    expected = -(lam * F.logsigmoid(logit) + (1 - lam) * F.logsigmoid(-logit)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert disc.weight.grad is not None


def test_generator_loss_is_nonsaturating_bce():
    disc = torch.nn.Linear(2, 1)
    fake = torch.randn(5, 2)
    torch.testing.assert_close(vicinal.generator_loss(disc, fake), -F.logsigmoid(disc(fake)).mean())


def test_lam_distributions():
    g = torch.Generator().manual_seed(0)
    beta = vicinal.sample_gan_lam(20000, 0.2, generator=g, dtype=torch.float64)
    assert stats.kstest(beta.numpy(), stats.beta(0.2, 0.2).cdf).pvalue > 1e-3
    uni = vicinal.sample_gan_lam(20000, 0.2, distribution="uniform", generator=g, dtype=torch.float64)
    assert stats.kstest(uni.numpy(), stats.uniform(0, 0.2).cdf).pvalue > 1e-3


def test_errors():
    g = torch.Generator()
    disc = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="unknown distribution 'normal'; known: beta, uniform"):
        vicinal.sample_gan_lam(4, 0.2, distribution="normal", generator=g)
    with pytest.raises(ValueError, match=r"real batch has shape \(4, 2\) but fake batch has \(3, 2\)"):
        vicinal.mixup_discriminator_loss(disc, torch.zeros(4, 2), torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match=r"lam has shape \(3,\), expected \(4,\)"):
        vicinal.mixup_discriminator_loss(disc, torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(3))


@pytest.mark.parametrize("bad", [-1, 0, 2.5, True])
def test_sample_gan_lam_batch_size(bad):
    with pytest.raises((ValueError, TypeError), match=r"batch_size must be an int >= 1"):
        vicinal.sample_gan_lam(bad, generator=torch.Generator())


def test_lam_must_be_a_weight_in_the_unit_interval():
    g = torch.Generator().manual_seed(0)
    # U(0, 2) would give lam up to 2: refused, where U(0, 1) is the widest uniform weight
    with pytest.raises(ValueError, match=r"distribution='uniform' draws lam from U\(0, alpha\), .* got alpha=2.0"):
        vicinal.sample_gan_lam(4, 2.0, distribution="uniform", generator=g)
    assert float(vicinal.sample_gan_lam(1000, 1.0, distribution="uniform", generator=g).max()) <= 1.0
    disc = torch.nn.Linear(2, 1)
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    for bad, shown in ((float("nan"), "nan"), (1.7, "1.7")):
        with pytest.raises(ValueError, match=rf"lam must be in \[0, 1\] \(a convex combination\), got {shown}"):
            vicinal.mixup_discriminator_loss(disc, real, fake, torch.tensor([bad, 0.5, 0.5, 0.5]))


def test_mixup_discriminator_loss_dtypes():
    # an integer batch would turn every lam < 1 into 0 (the discriminator would see one side only): refused
    d = torch.nn.Linear(2, 1)
    lam = torch.tensor([0.5, 0.25, 1.0, 0.0])
    with pytest.raises(
        TypeError, match=r"real and fake batches must be float, got real torch.uint8 and fake torch.flo"
    ):
        vicinal.mixup_discriminator_loss(d, torch.ones(4, 2, dtype=torch.uint8), torch.zeros(4, 2), lam)
    # float batches of two dtypes (a float32 real batch beside an autocast bfloat16 fake one) mix in the promoted one
    real, fake = torch.randn(4, 2), torch.randn(4, 2).bfloat16()
    got = vicinal.mixup_discriminator_loss(d, real, fake, lam)
    w = lam.reshape(4, 1)
    want = F.binary_cross_entropy_with_logits(d(w * real + (1 - w) * fake.float()).reshape(-1), lam)
    assert torch.equal(got, want)
    # and in the other order, a bfloat16 real batch beside a float32 fake one: lam is not rounded to bfloat16 first
    # (taking the real batch's dtype mixed with a weight ~1e-3 away from the BCE target's lam)
    lam = torch.tensor([0.1234567, 0.5, 0.777777, 0.3])
    real, fake = torch.randn(4, 2).bfloat16(), torch.randn(4, 2)
    seen = []
    got = vicinal.mixup_discriminator_loss(lambda h: seen.append(h) or d(h), real, fake, lam)
    w = lam.reshape(4, 1)
    mixed = w * real.float() + (1 - w) * fake  # the formula in float32, lam unrounded
    assert seen[0].dtype == torch.float32 and torch.equal(seen[0], mixed)
    assert torch.equal(got, F.binary_cross_entropy_with_logits(d(mixed).reshape(-1), lam))


def test_gan_lam_needs_a_float_dtype():
    with pytest.raises(TypeError, match=r"^dtype must be a floating-point dtype, got torch.int64$"):
        vicinal.sample_gan_lam(6, 0.2, generator=torch.Generator().manual_seed(0), dtype=torch.int64)


def test_a_discriminator_with_several_outputs_is_named():
    # a (B, 2) output was flattened to 2B logits and failed inside torch's BCE with sizes 4 and 8
    real, fake, lam = torch.rand(4, 3), torch.rand(4, 3), torch.full((4,), 0.5)
    with pytest.raises(ValueError, match=r"^the discriminator returned shape \(4, 2\); expected one logit per sample"):
        vicinal.mixup_discriminator_loss(torch.nn.Linear(3, 2), real, fake, lam)
    with pytest.raises(ValueError, match=r"^the discriminator returned shape \(4, 2\); expected one logit per sample"):
        vicinal.generator_loss(torch.nn.Linear(3, 2), fake)
    # (B, 1), (B,) and a conv head's (B, 1, 1, 1): one value per sample, all taken by both losses
    for d in (torch.nn.Linear(3, 1), lambda z: z.sum(1), lambda z: z.sum(1).view(4, 1, 1, 1)):
        assert vicinal.mixup_discriminator_loss(d, real, fake, lam).dim() == 0
        assert vicinal.generator_loss(d, fake).dim() == 0
