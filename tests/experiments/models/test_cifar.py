"""The CIFAR networks (models/cifar.py): paper-scale sizes, any input size, PreAct ResNet-18 against the reference,
stage names for latent mixing, the DenseNet-BC channel schedule and dropout placement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vicinal
from tests.experiments.models.zoo import CIFAR_SIZES, TINY
from vicinal.experiments.models import build_model, count_parameters
from vicinal.experiments.models.cifar import PreActBlock


@pytest.mark.parametrize("name", sorted(CIFAR_SIZES))
def test_cifar_paper_scale_parameter_counts(name: str) -> None:
    kwargs, exact, published = CIFAR_SIZES[name]
    n = count_parameters(build_model(name, num_classes=10, **kwargs))
    assert n == exact
    assert abs(n - published) / published < 0.01


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


def test_latent_mixup_hooks_a_zoo_model() -> None:
    model = build_model("preact_resnet18", num_classes=10, width=4, seed=0)
    lm = vicinal.LatentMixup(
        model, layer="layer3", alpha=1.0, num_classes=10, generator=torch.Generator().manual_seed(0)
    )
    logits, y_soft = lm(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))
    assert logits.shape == (4, 10) and y_soft.shape == (4, 10)
