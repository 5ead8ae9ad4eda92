"""Tests of the model zoo: paper-scale sizes, shapes, dropout placement, stage names, errors.

Paper-scale models are built once each and only PreAct ResNet-18 runs a (batch-2) forward at full width,
so the file stays fast on a 2-core CPU.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vicinal.experiments.models import MODELS, Normalize, build_model, count_parameters, register_model
from vicinal.experiments.models.cifar import PreActBlock

# name -> (kwargs, exact count measured here, published figure). Published: PreAct ResNet-18 11.17M
# (kuangliu/pytorch-cifar), WRN-28-10 36.5M (Zagoruyko & Komodakis 2016, Table 1), DenseNet-BC-190 k=40
# 25.6M (Huang et al. 2017, Table 2).
CIFAR_SIZES = {
    "preact_resnet18": ({}, 11_171_146, 11.17e6),
    "wrn": ({"depth": 28, "widen": 10}, 36_479_194, 36.5e6),
    "densenet_bc": ({"depth": 190, "growth_rate": 40}, 25_624_430, 25.6e6),
}

# torchvision's published counts (model docs), 1000 classes; ResNeXt-101 32x4d is not in torchvision's
# list, 44,177,704 is the count of the Facebook/timm model of that name.
IMAGENET_SIZES = {
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnext101_32x4d": 44_177_704,
    "resnext101_64x4d": 83_455_272,
}

# name -> (kwargs, input shape, output shape) at tiny sizes; every non-ImageNet model must appear.
TINY = {
    "preact_resnet18": ({"num_classes": 10, "width": 4}, (2, 3, 32, 32), (2, 10)),
    "wrn": ({"num_classes": 10, "depth": 10, "widen": 1}, (2, 3, 32, 32), (2, 10)),
    "densenet_bc": ({"num_classes": 10, "depth": 16, "growth_rate": 4}, (2, 3, 32, 32), (2, 10)),
    "digits_cnn": ({"num_classes": 10}, (2, 1, 8, 8), (2, 10)),
    "lenet_speech": ({"num_classes": 30, "channels": 4, "hidden": 16}, (2, 1, 40, 30), (2, 30)),
    "vgg11_speech": ({"num_classes": 30, "width_divisor": 16}, (2, 1, 40, 36), (2, 30)),
    "mlp": ({"num_classes": 3, "in_features": 4}, (2, 4), (2, 3)),
    "gan_mlp": ({"in_features": 2, "out_features": 1, "hidden": 8}, (5, 2), (5, 1)),
}


def test_every_registered_model_is_tested() -> None:
    assert set(MODELS) == set(TINY) | set(IMAGENET_SIZES)


@pytest.mark.parametrize("name", sorted(CIFAR_SIZES))
def test_cifar_paper_scale_parameter_counts(name: str) -> None:
    kwargs, exact, published = CIFAR_SIZES[name]
    n = count_parameters(build_model(name, num_classes=10, **kwargs))
    assert n == exact
    assert abs(n - published) / published < 0.01


@pytest.mark.parametrize("name", sorted(IMAGENET_SIZES))
def test_imagenet_parameter_counts_and_forward(name: str) -> None:
    model = build_model(name, num_classes=1000, seed=0)
    assert count_parameters(model) == IMAGENET_SIZES[name]
    assert [n for n, _ in model.named_children()][:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 48)).shape == (1, 1000)


def test_imagenet_in_channels_and_zero_init_residual() -> None:
    model = build_model("resnet50", num_classes=7, in_channels=1, zero_init_residual=True, seed=0)
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert model.fc.out_features == 7
    bn3 = [m.bn3.weight for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for m in stage]
    assert len(bn3) == 16 and all(bool((w == 0).all()) for w in bn3)
    # Zeroed residual branches: each block is relu(shortcut), so the net still runs end to end.
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_shapes_tiny(name: str) -> None:
    kwargs, in_shape, out_shape = TINY[name]
    model = build_model(name, seed=0, **kwargs)
    x = torch.rand(in_shape, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == out_shape
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    out.sum().backward()  # every parameter is used
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["preact_resnet18", "wrn", "densenet_bc"])
@pytest.mark.parametrize("hw", [(20, 28), (64, 64), (8, 8)])
def test_cifar_models_take_any_input_size(name: str, hw: tuple[int, int]) -> None:
    kwargs, _, _ = TINY[name]
    model = build_model(name, in_channels=2, seed=0, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 2, *hw)).shape == (1, 10)


def test_preact_resnet18_structure_matches_reference() -> None:
    model = build_model("preact_resnet18", num_classes=10)
    assert [n for n, _ in model.named_children()] == ["conv1", "layer1", "layer2", "layer3", "layer4", "head"]
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.out_channels == 64
    for k, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        stage = getattr(model, f"layer{k}")
        assert len(stage) == 2
        assert [b.conv1.out_channels for b in stage] == [planes, planes]
        assert [b.conv1.stride[0] for b in stage] == [stride, 1]
        # Projection only where the width or stride changes (not in layer1, as in the reference).
        assert (stage[0].shortcut is not None) == (k > 1) and stage[1].shortcut is None
    # No final BN before pooling (the reference has none): the head is pool, flatten, linear.
    assert [n for n, _ in model.head.named_children()] == ["pool", "flatten", "linear"]
    assert model.linear is model.head.linear and model.linear.in_features == 512
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_hooks_see_stage_inputs_at_paper_scale() -> None:
    model = build_model("preact_resnet18", num_classes=10, seed=0)
    seen: dict[str, tuple[int, ...]] = {}
    for name in ("layer1", "layer2", "layer3", "layer4", "head"):
        model.get_submodule(name).register_forward_pre_hook(
            lambda m, args, name=name: seen.__setitem__(name, tuple(args[0].shape))
        )
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert seen == {
        "layer1": (2, 64, 32, 32),
        "layer2": (2, 64, 32, 32),
        "layer3": (2, 128, 16, 16),
        "layer4": (2, 256, 8, 8),
        "head": (2, 512, 4, 4),  # "Layer 5" of the ablation
    }


def test_wrn_and_densenet_stage_names_and_layer3_input() -> None:
    wrn = build_model("wrn", num_classes=10, depth=16, widen=2, seed=0)
    assert [n for n, _ in wrn.named_children()] == ["conv1", "layer1", "layer2", "layer3", "head"]
    assert [len(getattr(wrn, f"layer{k}")) for k in (1, 2, 3)] == [2, 2, 2]  # (16 - 4) / 6 blocks
    assert [n for n, _ in wrn.head.named_children()] == ["bn", "relu", "pool", "flatten", "linear"]
    seen: list[tuple[int, ...]] = []
    wrn.layer3.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    wrn(torch.rand(2, 3, 32, 32))
    assert seen == [(2, 64, 16, 16)]  # 32 * widen channels at half resolution

    dense = build_model("densenet_bc", num_classes=10, depth=22, growth_rate=6, seed=0)
    names = ["conv1", "dense1", "trans1", "dense2", "trans2", "dense3", "head"]
    assert [n for n, _ in dense.named_children()] == names
    assert [len(getattr(dense, f"dense{k}")) for k in (1, 2, 3)] == [3, 3, 3]  # (22 - 4) / 6 layers
    # Channels: 2k = 12, +3*6 = 30 -> 15, +18 = 33 -> 16, +18 = 34.
    assert dense.trans1.conv.out_channels == 15 and dense.trans2.conv.out_channels == 16
    assert dense.linear.in_features == 34
    seen_d: list[tuple[int, ...]] = []
    dense.head.register_forward_pre_hook(lambda m, args: seen_d.append(tuple(args[0].shape)))
    dense(torch.rand(2, 3, 32, 32))
    assert seen_d == [(2, 34, 8, 8)]


def test_densenet_bc_190_channel_schedule() -> None:
    model = build_model("densenet_bc", num_classes=100)
    assert model.conv1.out_channels == 80
    assert [len(getattr(model, f"dense{k}")) for k in (1, 2, 3)] == [31, 31, 31]
    assert (model.trans1.conv.in_channels, model.trans1.conv.out_channels) == (1320, 660)
    assert (model.trans2.conv.in_channels, model.trans2.conv.out_channels) == (1900, 950)
    assert model.linear.in_features == 2190 and model.linear.out_features == 100


def test_dropout_sits_between_the_two_convolutions() -> None:
    model = build_model("preact_resnet18", num_classes=10, width=4, dropout=0.7, seed=0)
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert len(blocks) == 8
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 8  # one per block, nowhere else
    for block in blocks:
        assert isinstance(block.dropout, nn.Dropout) and block.dropout.p == 0.7
    # Order of calls inside a projection block: the dropout runs after bn2 (+ ReLU) and before conv2.
    order: list[str] = []
    block = model.layer2[0]
    for name, child in block.named_children():
        child.register_forward_pre_hook(lambda m, args, name=name: order.append(name))
    block(torch.rand(2, 4, 8, 8))
    assert order == ["bn1", "shortcut", "conv1", "bn2", "dropout", "conv2"]


def test_dropout_one_leaves_only_the_shortcut() -> None:
    # With p = 1 the residual branch after the dropout is conv2(0) = 0, so a block returns its shortcut.
    model = build_model("preact_resnet18", num_classes=10, width=4, dropout=1.0, seed=0).train()
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    identity_block = model.layer1[1]
    assert torch.equal(identity_block(x), x)
    proj = model.layer2[0]
    x2 = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = proj.shortcut(F.relu(proj.bn1(x2)))
    torch.testing.assert_close(proj(x2), expected, rtol=0, atol=0)
    # The WRN shares the block, hence the placement.
    wrn = build_model("wrn", num_classes=10, depth=10, widen=2, dropout=0.3)  # 16 -> 32: projection
    assert [type(c).__name__ for c in wrn.layer1[0].children()] == [
        "BatchNorm2d",
        "Conv2d",
        "BatchNorm2d",
        "Dropout",
        "Conv2d",
        "Conv2d",
    ]


def test_speech_models_are_exact_at_paper_input_size() -> None:
    lenet = build_model("lenet_speech", num_classes=30, seed=0)
    vgg = build_model("vgg11_speech", num_classes=30, seed=0)
    assert count_parameters(lenet) == 16_321_570  # fc1 takes 20 * 37 * 22 = 16,280 features, as the reference
    assert lenet.head.fc1.in_features == 16_280
    assert count_parameters(vgg) == 13_172_894  # fc1 takes 512 * 5 * 3 = 7,680 features, as the reference
    assert vgg.head.fc1.in_features == 7_680
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 8
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg.modules()) == 8
    # The adaptive pooling equals the reference's 2x2 max pooling at 160 x 101 and 161 x 101.
    for freq in (160, 161):
        x = torch.randn(2, 1, freq, 101, generator=torch.Generator().manual_seed(freq))
        conv2_out = lenet.layer2.conv(lenet.layer1(x))  # (2, 20, 74, 44)
        torch.testing.assert_close(lenet.layer2.pool(conv2_out), F.max_pool2d(conv2_out, 2), rtol=0, atol=0)
    # VGG: five poolings leave 5 x 3 at 160 x 101, where the adaptive average pooling is the identity.
    small = build_model("vgg11_speech", num_classes=30, width_divisor=16, seed=0).eval()
    seen: list[torch.Tensor] = []
    small.head.pool.register_forward_hook(lambda m, args, out: seen.extend([args[0], out]))
    with torch.no_grad():
        assert small(torch.rand(2, 1, 160, 101)).shape == (2, 30)
    assert seen[0].shape == (2, 32, 5, 3)
    torch.testing.assert_close(seen[1], seen[0], rtol=0, atol=0)


def test_small_model_sizes() -> None:
    assert count_parameters(build_model("digits_cnn", num_classes=10)) == 24_058
    # UCI MLP: 4 -> 128 -> 128 -> 3.
    assert count_parameters(build_model("mlp", num_classes=3, in_features=4)) == (4 * 128 + 128) + (128 * 128 + 128) + (
        128 * 3 + 3
    )
    # GAN MLP: 2 -> 512 -> 512 -> 512 -> 1.
    gan = build_model("gan_mlp", in_features=2, out_features=1)
    assert count_parameters(gan) == (2 * 512 + 512) + 2 * (512 * 512 + 512) + (512 + 1)
    assert [n for n, _ in gan.named_children()] == ["flatten", "layer1", "layer2", "layer3", "head"]
    assert all(isinstance(gan.get_submodule(f"layer{i}.1"), nn.ReLU) for i in (1, 2, 3))


def test_mlp_flattens_inputs() -> None:
    model = build_model("mlp", num_classes=2, in_features=6, seed=0)
    x = torch.rand(4, 2, 3)
    torch.testing.assert_close(model(x), model(x.reshape(4, 6)), rtol=0, atol=0)


def test_seed_makes_init_deterministic_and_leaves_global_rng_alone() -> None:
    before = torch.get_rng_state()
    a = build_model("preact_resnet18", num_classes=10, width=4, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    b = build_model("preact_resnet18", num_classes=10, width=4, seed=3)
    c = build_model("preact_resnet18", num_classes=10, width=4, seed=4)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_normalize_matches_formula() -> None:
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    norm = Normalize(mean, std)
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([(x[:, c] - mean[c]) / std[c] for c in range(3)], dim=1)
    torch.testing.assert_close(norm(x), expected)
    assert set(norm.state_dict()) == {"mean", "std"}
    assert count_parameters(norm) == 0
    # (B, C) features and a single value for every channel.
    f = torch.rand(5, 3)
    torch.testing.assert_close(norm(f), (f - torch.tensor(mean)) / torch.tensor(std))
    torch.testing.assert_close(Normalize(0.5, 0.25)(x), (x - 0.5) / 0.25)


def test_build_model_with_normalization_keeps_names() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    plain = build_model("preact_resnet18", num_classes=10, width=4, seed=0).eval()
    normed = build_model("preact_resnet18", num_classes=10, width=4, seed=0, mean=mean, std=std).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain(Normalize(mean, std)(x)))
    assert normed.get_submodule("layer3") is normed.layer3  # stage names unchanged
    assert "normalize.mean" in normed.state_dict()
    clone = pickle.loads(pickle.dumps(normed))  # the hook is a module-level function: models pickle
    with torch.no_grad():
        torch.testing.assert_close(clone(x), normed(x))
        torch.testing.assert_close(copy.deepcopy(normed)(x), normed(x))


def test_latent_mixup_hooks_a_zoo_model() -> None:
    import vicinal

    latent_mixup = getattr(vicinal, "LatentMixup", None)
    if latent_mixup is None:
        pytest.skip("vicinal.LatentMixup is not available yet")
    model = build_model("preact_resnet18", num_classes=10, width=4, seed=0)
    lm = latent_mixup(model, layer="layer3", alpha=1.0, num_classes=10, generator=torch.Generator().manual_seed(0))
    logits, y_soft = lm(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))
    assert logits.shape == (4, 10) and y_soft.shape == (4, 10)


def test_count_parameters_trainable_only_and_shared() -> None:
    lin = nn.Linear(3, 2)
    shared = nn.Sequential(lin, lin)
    assert count_parameters(shared) == 8
    lin.bias.requires_grad_(False)
    assert count_parameters(shared, trainable_only=True) == 6
    with pytest.raises(TypeError, match="expects an nn.Module, got list"):
        count_parameters([lin])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- errors


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet18'; known models: densenet_bc, digits_cnn"):
        build_model("resnet18", num_classes=10)


def test_unknown_kwargs_are_named() -> None:
    with pytest.raises(TypeError, match=r"model 'wrn' got unexpected keyword argument\(s\) widen_factor; it accepts"):
        build_model("wrn", num_classes=10, widen_factor=10)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) bogus, width"):
        build_model("densenet_bc", num_classes=10, width=3, bogus=1)
    # The MLPs have no channels: in_channels is refused, not ignored.
    with pytest.raises(TypeError, match=r"model 'mlp' got unexpected keyword argument\(s\) in_channels"):
        build_model("mlp", num_classes=3, in_channels=3, in_features=4)
    with pytest.raises(TypeError, match=r"model 'gan_mlp' got unexpected keyword argument\(s\) num_classes"):
        build_model("gan_mlp", num_classes=3, in_features=2, out_features=1)


def test_missing_required_kwargs_are_named() -> None:
    with pytest.raises(TypeError, match=r"model 'mlp' is missing required argument\(s\) in_features"):
        build_model("mlp", num_classes=3)
    with pytest.raises(TypeError, match=r"model 'preact_resnet18' is missing required argument\(s\) num_classes"):
        build_model("preact_resnet18")


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "message"),
    [
        ("preact_resnet18", {"num_classes": 0}, ValueError, r"num_classes must be >= 1, got 0"),
        ("preact_resnet18", {"num_classes": True}, TypeError, r"num_classes must be an int, got bool"),
        ("preact_resnet18", {"num_classes": 10, "width": 0}, ValueError, r"width must be >= 1, got 0"),
        ("preact_resnet18", {"num_classes": 10, "dropout": 1.5}, ValueError, r"dropout must lie in \[0, 1\], got 1.5"),
        ("wrn", {"num_classes": 10, "depth": 27}, ValueError, r"WRN depth must be 6n \+ 4 .* got 27"),
        ("wrn", {"num_classes": 10, "dropout": "0.3"}, TypeError, r"dropout must be a float in \[0, 1\], got str"),
        ("densenet_bc", {"num_classes": 10, "depth": 101}, ValueError, r"DenseNet depth must be 6n \+ 4 .* got 101"),
        (
            "densenet_bc",
            {"num_classes": 10, "compression": 0.0},
            ValueError,
            r"compression must lie in \(0, 1\], got 0.0",
        ),
        ("densenet_bc", {"num_classes": 10, "bottleneck": 1}, TypeError, r"bottleneck must be a bool, got int"),
        ("vgg11_speech", {"num_classes": 30, "width_divisor": 3}, ValueError, r"width_divisor must divide 64 .* got 3"),
        ("lenet_speech", {"num_classes": 30, "pool_size": (37,)}, ValueError, r"pool_size must be a pair of positive"),
        ("resnet50", {"zero_init_residual": "yes"}, TypeError, r"zero_init_residual must be a bool, got str"),
        ("mlp", {"num_classes": 3, "in_features": 4, "layers": 0}, ValueError, r"layers must be >= 1, got 0"),
    ],
)
def test_bad_values_raise(name: str, kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_model(name, **kwargs)


def test_generic_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"in_channels must be >= 1, got 0"):
        build_model("digits_cnn", num_classes=10, in_channels=0)
    with pytest.raises(ValueError, match=r"mean and std must be given together, got mean=\(0.5,\) and std=None"):
        build_model("digits_cnn", num_classes=10, mean=(0.5,))
    with pytest.raises(TypeError, match=r"seed must be an int or None, got float"):
        build_model("digits_cnn", num_classes=10, seed=1.5)


def test_bad_inputs_raise() -> None:
    with pytest.raises(
        ValueError, match=r"SpeechLeNet needs inputs \(B, C, F, T\) with F, T >= 14, got \(2, 1, 10, 101\)"
    ):
        build_model("lenet_speech", num_classes=30, channels=2, hidden=4)(torch.rand(2, 1, 10, 101))
    with pytest.raises(ValueError, match=r"SpeechVGG11 needs inputs .* F, T >= 32, got \(2, 1, 160, 16\)"):
        build_model("vgg11_speech", num_classes=30, width_divisor=16)(torch.rand(2, 1, 160, 16))
    with pytest.raises(ValueError, match=r"MLP expects 4 features per sample, got an input of shape \(2, 5\)"):
        build_model("mlp", num_classes=3, in_features=4)(torch.rand(2, 5))
    with pytest.raises(ValueError, match=r"Normalize has 3 channels but got an input of shape \(2, 1, 8, 8\)"):
        Normalize((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))(torch.rand(2, 1, 8, 8))


def test_normalize_bad_statistics() -> None:
    with pytest.raises(ValueError, match=r"mean has 3 values but std has 2"):
        Normalize((0.1, 0.2, 0.3), (0.1, 0.2))
    with pytest.raises(ValueError, match=r"std must be > 0 for every channel, got \[0.1, 0.0\]"):
        Normalize((0.1, 0.2), (0.1, 0.0))
    with pytest.raises(ValueError, match=r"mean and std must be scalars or 1-d, got shapes \(1, 2\) and \(2,\)"):
        Normalize([[0.1, 0.2]], (0.1, 0.2))
    with pytest.raises(ValueError, match=r"mean and std must be finite"):
        Normalize((float("nan"),), (1.0,))


def test_register_model_rejects_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError, match=r"model 'mlp' is already registered"):
        register_model("mlp")(lambda num_classes: nn.Linear(1, num_classes))
    with pytest.raises(TypeError, match=r"model name must be a str, got int"):
        register_model(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model name must be a non-empty string"):
        register_model("")
    try:

        @register_model("_test_linear")
        def _linear(num_classes: int, in_features: int = 2) -> nn.Module:
            return nn.Linear(in_features, num_classes)

        model = build_model("_test_linear", num_classes=3, in_features=5)
        assert isinstance(model, nn.Linear) and model.weight.shape == (3, 5)
    finally:
        MODELS.pop("_test_linear", None)
