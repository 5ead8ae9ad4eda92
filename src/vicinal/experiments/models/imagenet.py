"""ImageNet models of the paper (Section 3.1, Table 1; Section 3.5 uses ResNet-101).

All are torchvision's ``ResNet`` with ``Bottleneck`` blocks, built with random weights: nothing is
downloaded. Stage names are torchvision's: ``conv1``, ``bn1``, ``layer1`` .. ``layer4``, ``avgpool``,
``fc``. Parameter counts with 1000 classes (asserted in the tests): ResNet-50 25,557,032;
ResNet-101 44,549,160; ResNeXt-101 32x4d 44,177,704; ResNeXt-101 64x4d 83,455,272.

``zero_init_residual=True`` zeroes the last BN weight of every residual branch, the initialisation of
Goyal et al. (2017), whose large-minibatch schedule (linear warm-up to lr 0.4 at batch 1,024) the
paper's ImageNet setup follows; torchvision's default (False) is kept as the default here.
"""

from __future__ import annotations

from torch import nn

from ..errors import ModelArgumentError
from .registry import check_positive_int, register_model

__all__: list[str] = []


def _bottleneck_resnet(
    layers: list[int],
    num_classes: int,
    in_channels: int,
    groups: int,
    width_per_group: int,
    zero_init_residual: bool,
) -> nn.Module:
    """torchvision ResNet/ResNeXt with Bottleneck blocks and an optional non-RGB stem."""
    # Imported here so that `import vicinal.experiments.models` stays light for CPU-only experiments.
    from torchvision.models.resnet import Bottleneck, ResNet

    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    if not isinstance(zero_init_residual, bool):
        raise ModelArgumentError(f"zero_init_residual must be a bool, got {type(zero_init_residual).__name__}")
    model = ResNet(
        Bottleneck,
        layers,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        groups=groups,
        width_per_group=width_per_group,
    )
    if in_channels != 3:
        # Same 7x7/2 stem for another channel count, initialised as torchvision initialises it.
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


@register_model("resnet50")
def resnet50(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> nn.Module:
    """ResNet-50: Bottleneck blocks [3, 4, 6, 3]."""
    return _bottleneck_resnet([3, 4, 6, 3], num_classes, in_channels, 1, 64, zero_init_residual)


@register_model("resnet101")
def resnet101(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> nn.Module:
    """ResNet-101: Bottleneck blocks [3, 4, 23, 3]."""
    return _bottleneck_resnet([3, 4, 23, 3], num_classes, in_channels, 1, 64, zero_init_residual)


@register_model("resnext101_32x4d")
def resnext101_32x4d(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> nn.Module:
    """ResNeXt-101 32x4d (Xie et al. 2017): [3, 4, 23, 3], 32 groups of width 4 (not in torchvision's list)."""
    return _bottleneck_resnet([3, 4, 23, 3], num_classes, in_channels, 32, 4, zero_init_residual)


@register_model("resnext101_64x4d")
def resnext101_64x4d(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False) -> nn.Module:
    """ResNeXt-101 64x4d: [3, 4, 23, 3], 64 groups of width 4 (torchvision's ``resnext101_64x4d``)."""
    return _bottleneck_resnet([3, 4, 23, 3], num_classes, in_channels, 64, 4, zero_init_residual)
