"""The model registry (models/registry.py): every registered model builds and trains a step, seeds, Normalize,
count_parameters and the named errors of build_model / register_model.

Paper-scale models (in test_cifar.py, test_imagenet.py, test_small.py) are built once each and only PreAct
ResNet-18 runs a (batch-2) forward at full width, so the files stay fast on a 2-core CPU.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from tests.experiments.models.zoo import IMAGENET_SIZES, TINY
from vicinal.experiments.models import MODELS, Normalize, build_model, count_parameters, register_model


def test_every_registered_model_is_tested() -> None:
    assert set(MODELS) == set(TINY) | set(IMAGENET_SIZES)


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
