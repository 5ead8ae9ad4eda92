"""The GAN trainer (tasks/gan_train.py): the vmapped members against a plain reference run, derived seed streams,
the mixup objective from the library, lam blocks and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import vicinal.experiments.tasks.gan_train as gan_train
from tests.experiments.lab_helpers import one_thread  # noqa: F401 (autouse fixture: torch on one thread)
from vicinal.experiments.data.seeds import derive_seed, make_generator
from vicinal.experiments.models import build_model
from vicinal.experiments.tasks.gan_train import (
    GANConfig,
    draw_block,
    erm_discriminator_loss,
    init_gan_params,
    mlp_forward,
    train_gan_runs,
)

TINY = {"iterations": 4, "batch_size": 16, "d_steps": 2, "width": 16, "eval_every": 2, "n_eval": 64}


def tiny(**kw) -> GANConfig:
    return GANConfig(**{**TINY, "snapshot_iters": (1, 4), "n_snapshot": 32, "block": 3, **kw})


def test_mlp_forward_equals_gan_mlp_module():
    module = build_model("gan_mlp", in_features=2, out_features=1, hidden=8, layers=3, seed=0)
    params = dict(module.named_parameters())
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mlp_forward(params, x), functional_call(module, params, (x,)), rtol=0, atol=0)


def _reference_run(config: GANConfig, seed: int, lr: float) -> tuple[dict, dict]:
    """One GAN trained the plain way: nn.Modules, torch.optim.Adam, losses written out with F, no vmap."""
    g_params, d_params, gen = init_gan_params(config, seed)
    G = build_model("gan_mlp", in_features=2, out_features=2, hidden=config.width, layers=config.layers)
    D = build_model("gan_mlp", in_features=2, out_features=1, hidden=config.width, layers=config.layers)
    G.load_state_dict(g_params)
    D.load_state_dict(d_params)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr)
    block = draw_block(config, gen, config.iterations)  # block >= iterations in the callers: one draw
    for it in range(config.iterations):
        for k in range(config.d_steps):
            real, z, lam = block["real"][it, k], block["z_d"][it, k], block["lam"][it, k]
            with torch.no_grad():
                fake = G(z)
            if config.method == "mixup":
                w = lam.unsqueeze(1)
                loss = F.binary_cross_entropy_with_logits(D(w * real + (1 - w) * fake).squeeze(1), lam)
            else:
                loss = F.binary_cross_entropy_with_logits(
                    D(real).squeeze(1), torch.ones(len(real))
                ) + F.binary_cross_entropy_with_logits(D(fake).squeeze(1), torch.zeros(len(real)))
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
        logits = D(G(block["z_g"][it])).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    return dict(G.named_parameters()), dict(D.named_parameters())


@pytest.mark.parametrize("method", ["mixup", "erm"])
def test_vmapped_member_equals_single_run_and_plain_reference(method):
    config = tiny(method=method, block=4)
    seeds, lrs = [3, 7, 7], [1e-3, 1e-3, 1e-4]
    batched = train_gan_runs(config, seeds, lrs)
    alone = train_gan_runs(config, [7], 1e-4)
    ref_g, ref_d = _reference_run(config, 7, 1e-4)
    for name, p in alone.g_params.items():
        torch.testing.assert_close(batched.g_params[name][2], p[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(p[0], ref_g[name].detach(), rtol=0, atol=1e-5)
    for name, p in alone.d_params.items():
        torch.testing.assert_close(batched.d_params[name][2], p[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(p[0], ref_d[name].detach(), rtol=0, atol=1e-5)
    # the parameters did move, and the two learning rates of seed 7 ended in different places
    init_g, _, _ = init_gan_params(config, 7)
    assert (alone.g_params["head.weight"][0] - init_g["head.weight"]).abs().max() > 1e-5
    assert (batched.d_params["head.weight"][1] - batched.d_params["head.weight"][2]).abs().max() > 1e-4
    # the metrics of the batched member are those of the single run
    last = [r for r in batched.history if r["run"] == 2 and r["iteration"] == 4][0]
    single = [r for r in alone.history if r["iteration"] == 4][0]
    assert last["high_quality"] == single["high_quality"]
    assert last["sliced_w2"] == pytest.approx(single["sliced_w2"], abs=1e-5)


def test_each_seed_has_its_own_derived_streams():
    config = tiny()
    g0, d0, gen0 = init_gan_params(config, 0)
    g1, _, _ = init_gan_params(config, 1)
    common = {"hidden": config.width, "layers": config.layers}
    expected_g = build_model(
        "gan_mlp", in_features=2, out_features=2, seed=derive_seed(0, gan_train.STREAM_INIT, 0), **common
    )
    expected_d = build_model(
        "gan_mlp", in_features=2, out_features=1, seed=derive_seed(0, gan_train.STREAM_INIT, 1), **common
    )
    for name, p in expected_g.named_parameters():
        assert torch.equal(g0[name], p.detach())
    for name, p in expected_d.named_parameters():
        assert torch.equal(d0[name], p.detach())
    assert not torch.equal(g0["head.weight"], g1["head.weight"])
    # the data stream is make_generator(seed, STREAM_DATA), not a generator seeded with the bare seed
    reference = make_generator(0, gan_train.STREAM_DATA)
    assert torch.equal(draw_block(config, gen0, 2)["real"], draw_block(config, reference, 2)["real"])


def test_training_is_deterministic_and_block_is_part_of_the_stream():
    a = train_gan_runs(tiny(block=3), [5])
    b = train_gan_runs(tiny(block=3), [5])
    c = train_gan_runs(tiny(block=1), [5])
    for name in a.g_params:
        assert torch.equal(a.g_params[name], b.g_params[name])
    # another block size interleaves the draws differently: another (equally valid) random stream
    assert not torch.equal(a.g_params["head.weight"], c.g_params["head.weight"])
    assert a.history == b.history


def test_mixup_path_calls_the_library_objective(monkeypatch):
    calls = {"mixup": 0, "generator": 0}
    lib_mixup, lib_gen = gan_train.mixup_discriminator_loss, gan_train.generator_loss

    def spy_mixup(*args, **kwargs):
        calls["mixup"] += 1
        return lib_mixup(*args, **kwargs)

    def spy_gen(*args, **kwargs):
        calls["generator"] += 1
        return lib_gen(*args, **kwargs)

    monkeypatch.setattr(gan_train, "mixup_discriminator_loss", spy_mixup)
    monkeypatch.setattr(gan_train, "generator_loss", spy_gen)
    config = tiny()
    train_gan_runs(config, [0, 1])
    # one call per discriminator step (vmap traces the per-run function once per batched call)
    assert calls == {"mixup": config.iterations * config.d_steps, "generator": config.iterations}
    calls.update(mixup=0, generator=0)
    train_gan_runs(tiny(method="erm"), [0])
    assert calls == {"mixup": 0, "generator": config.iterations}


def test_draw_block_lam_distributions():
    gen = torch.Generator().manual_seed(0)
    uni = draw_block(tiny(lam_distribution="uniform"), gen, 50)["lam"]
    assert uni.shape == (50, 2, 16) and 0 <= uni.min() and uni.max() <= 0.2 and uni.max() > 0.19
    beta = draw_block(tiny(), torch.Generator().manual_seed(0), 50)["lam"]
    # Beta(0.2, 0.2) is U-shaped on (0, 1): most mass near 0 and 1, mean 1/2
    assert beta.max() > 0.9 and ((beta < 0.1) | (beta > 0.9)).float().mean() > 0.5
    assert abs(beta.mean().item() - 0.5) < 0.05
    erm = draw_block(tiny(method="erm"), torch.Generator().manual_seed(0), 2)
    assert torch.equal(erm["lam"], torch.zeros(2, 2, 16))


def test_erm_discriminator_loss_reference():
    gen = torch.Generator().manual_seed(0)
    D = build_model("gan_mlp", in_features=2, out_features=1, hidden=8, layers=2, seed=1)
    real, fake = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    p_real, p_fake = torch.sigmoid(D(real)), torch.sigmoid(D(fake))
    expected = -(p_real.log().mean() + (1 - p_fake).log().mean())
    torch.testing.assert_close(erm_discriminator_loss(D, real, fake), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"real batch has shape \(6, 2\) but fake batch has \(5, 2\)"):
        erm_discriminator_loss(D, real, fake[:5])


def test_training_errors():
    with pytest.raises(ValueError, match="unknown dataset 'moons'"):
        GANConfig(dataset="moons")
    with pytest.raises(ValueError, match="unknown method 'wgan'"):
        GANConfig(method="wgan")
    with pytest.raises(ValueError, match="unknown lam_distribution 'normal'"):
        GANConfig(lam_distribution="normal")
    with pytest.raises(ValueError, match=r"snapshot_iters must lie in \[1, iterations=4\], got \[5\]"):
        tiny(snapshot_iters=(1, 5))
    with pytest.raises(ValueError, match="std must be a number > 0, got 0.0"):
        tiny(std=0.0)
    with pytest.raises(ValueError, match="alpha must be a number > 0, got -1"):
        tiny(alpha=-1)
    with pytest.raises(ValueError, match="d_steps must be an int >= 1, got 0"):
        tiny(d_steps=0)
    with pytest.raises(ValueError, match="n_snapshot \\(100\\) must not exceed n_eval \\(64\\)"):
        tiny(n_snapshot=100)
    with pytest.raises(ValueError, match="seeds is empty"):
        train_gan_runs(tiny(), [])
    with pytest.raises(ValueError, match="got 1 learning rates for 2 seeds"):
        train_gan_runs(tiny(), [0, 1], [1e-3])
    with pytest.raises(ValueError, match=r"learning rates must be finite and > 0, got \[0.0\]"):
        train_gan_runs(tiny(), [0], 0.0)
    with pytest.raises(TypeError, match="seed must be an int, got str '0'"):
        init_gan_params(tiny(), "0")
