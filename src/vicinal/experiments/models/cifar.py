"""CIFAR models of the paper (Section 3.2, Figure 3a): PreAct ResNet-18, WRN-28-10, DenseNet-BC-190.

Every model takes inputs of any spatial size (global average pooling by ``nn.AdaptiveAvgPool2d(1)``; at
32x32 this equals the references' fixed ``avg_pool2d(4)`` / ``(8)``) and names its stages so that latent
("manifold") mixing can hook them (Table 5, "Layer 1-5"):

- ``preact_resnet18``: ``conv1``, ``layer1`` .. ``layer4``, ``head`` (pool, flatten, ``linear``).
  "Layer k" = input of ``layer{k}`` (k = 1..4), "Layer 5" = input of ``head``.
- ``wrn``: ``conv1``, ``layer1`` .. ``layer3``, ``head`` (final BN-ReLU, pool, flatten, ``linear``).
- ``densenet_bc``: ``conv1``, ``dense1``, ``trans1``, ``dense2``, ``trans2``, ``dense3``,
  ``head`` (final BN-ReLU, pool, flatten, ``linear``).

Parameter counts at paper scale with 10 classes (asserted in tests/experiments/models/test_cifar.py):
PreAct ResNet-18 11,171,146; WRN-28-10 36,479,194; DenseNet-BC-190 (k = 40) 25,624,430.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelArgumentError, ModelConfigError
from .registry import check_positive_int, check_probability, register_model

__all__ = ["DenseNet", "PreActBlock", "PreActResNet", "WideResNet"]


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity Mappings"): the block of both PreAct ResNet
    and Wide ResNet.

    ``out = conv2(dropout(relu(bn2(conv1(relu(bn1(x))))))) + shortcut``. The shortcut is the identity, or,
    when the stride or width changes, a 1x1 convolution of the *pre-activated* input ``relu(bn1(x))``, as
    in kuangliu/pytorch-cifar ``PreActBlock`` and Zagoruyko & Komodakis' WRN ``BasicBlock``.

    The dropout sits after the ReLU between the two convolutions: the placement of the paper's
    Section 3.4 / Table 2 for PreAct ResNet-18, and of the WRN paper. With ``dropout == 0`` it is an
    ``nn.Identity`` (the reference has no layer there).

    Args:
        in_planes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution (and of the projection shortcut).
        dropout: Drop probability between the two convolutions.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        # Registered in the order of use, so printing the block reads as its forward pass.
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout: nn.Module = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_planes, H, W) -> (B, planes, H / stride, W / stride)."""
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


def _stage(in_planes: int, planes: int, num_blocks: int, stride: int, dropout: float) -> nn.Sequential:
    """``num_blocks`` PreActBlocks; only the first one changes stride and width."""
    blocks = [PreActBlock(in_planes, planes, stride, dropout)]
    blocks += [PreActBlock(planes, planes, 1, dropout) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class PreActResNet(nn.Module):
    """Pre-activation ResNet for 32x32 inputs, structured as kuangliu/pytorch-cifar ``PreActResNet``
    (the model of the paper's CIFAR experiments, via the first author's mixup-cifar10 code).

    3x3 stem convolution (``width`` channels, stride 1, no BN/ReLU after it: the first block
    pre-activates), four stages with ``width * (1, 2, 4, 8)`` channels and strides 1, 2, 2, 2, global
    average pooling and a linear layer. Like that reference there is no final BN-ReLU before the pooling
    (He et al.'s pre-activation paper adds one; the reference, and therefore the paper's numbers, do
    not). Initialisation is PyTorch's default, as in the reference.

    Args:
        num_blocks: Blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes: Number of outputs.
        in_channels: Input channels.
        width: Channels of the stem and first stage (64 in the paper).
        dropout: Dropout probability inside every block (Table 2); 0 disables it.
    """

    def __init__(
        self,
        num_blocks: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
        width: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4:
            raise ModelConfigError(f"num_blocks must list 4 stages, got {num_blocks!r}")
        for n in num_blocks:
            check_positive_int("num_blocks entries", n)
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        check_probability("dropout", dropout)
        w = width
        self.conv1 = nn.Conv2d(in_channels, w, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = _stage(w, w, num_blocks[0], 1, dropout)
        self.layer2 = _stage(w, 2 * w, num_blocks[1], 2, dropout)
        self.layer3 = _stage(2 * w, 4 * w, num_blocks[2], 2, dropout)
        self.layer4 = _stage(4 * w, 8 * w, num_blocks[3], 2, dropout)
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("linear", nn.Linear(8 * w, num_classes))

    @property
    def linear(self) -> nn.Linear:
        """The classifier, ``head.linear`` (the name kuangliu's reference gives it)."""
        return cast(nn.Linear, self.head.linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        out = self.conv1(x)  # (B, w, H, W)
        out = self.layer1(out)  # (B, w, H, W)
        out = self.layer2(out)  # (B, 2w, H/2, W/2)
        out = self.layer3(out)  # (B, 4w, H/4, W/4)
        out = self.layer4(out)  # (B, 8w, H/8, W/8)
        return self.head(out)  # (B, num_classes)


class WideResNet(nn.Module):
    """Wide ResNet WRN-depth-widen (Zagoruyko & Komodakis 2016), CIFAR variant.

    3x3 stem convolution to 16 channels, three stages of ``(depth - 4) / 6`` pre-activation blocks with
    ``16 * widen``, ``32 * widen``, ``64 * widen`` channels and strides 1, 2, 2, then BN-ReLU, global
    average pooling and a linear layer (the structure of the authors' code and of the common PyTorch
    port, xternalz/WideResNet-pytorch). Convolutions use He-normal (fan-out) initialisation, BN weights
    1, biases 0, as there.

    Args:
        num_classes: Number of outputs.
        in_channels: Input channels.
        depth: Total depth; ``depth - 4`` must be divisible by 6 (28 in the paper).
        widen: Widening factor (10 in the paper).
        dropout: Dropout probability between the two convolutions of every block (0 in the paper).
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, depth: int = 28, widen: int = 10, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("depth", depth)
        check_positive_int("widen", widen)
        check_probability("dropout", dropout)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ModelConfigError(f"WRN depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = _stage(widths[0], widths[1], n, 1, dropout)
        self.layer2 = _stage(widths[1], widths[2], n, 2, dropout)
        self.layer3 = _stage(widths[2], widths[3], n, 2, dropout)
        self.head = nn.Sequential()
        self.head.add_module("bn", nn.BatchNorm2d(widths[3]))
        self.head.add_module("relu", nn.ReLU(inplace=True))
        self.head.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("linear", nn.Linear(widths[3], num_classes))
        _init_he_fan_out(self)

    @property
    def linear(self) -> nn.Linear:
        """The classifier, ``head.linear``."""
        return cast(nn.Linear, self.head.linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        out = self.conv1(x)  # (B, 16, H, W)
        out = self.layer1(out)  # (B, 16k, H, W)
        out = self.layer2(out)  # (B, 32k, H/2, W/2)
        out = self.layer3(out)  # (B, 64k, H/4, W/4)
        return self.head(out)  # (B, num_classes)


class _DenseLayer(nn.Module):
    """One DenseNet layer: [BN-ReLU-conv1x1(4k)] - BN-ReLU-conv3x3(k), output concatenated to the input."""

    def __init__(self, in_planes: int, growth_rate: int, bottleneck: bool, dropout: float) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        mid = 4 * growth_rate if bottleneck else in_planes
        if bottleneck:
            self.bn1 = nn.BatchNorm2d(in_planes)
            self.conv1 = nn.Conv2d(in_planes, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, growth_rate, kernel_size=3, padding=1, bias=False)
        self.dropout: nn.Module = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C + growth_rate, H, W)."""
        out = x
        if self.bottleneck:
            out = self.dropout(self.conv1(F.relu(self.bn1(out))))
        out = self.dropout(self.conv2(F.relu(self.bn2(out))))
        return torch.cat([x, out], dim=1)


class _Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) - [dropout] - 2x2 average pooling."""

    def __init__(self, in_planes: int, out_planes: int, dropout: float) -> None:
        super().__init__()
        self.add_module("bn", nn.BatchNorm2d(in_planes))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False))
        if dropout > 0:
            self.add_module("dropout", nn.Dropout(p=dropout))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """DenseNet(-BC) for CIFAR (Huang et al. 2017), as in the authors' CIFAR code.

    Stem: 3x3 convolution to ``2 * growth_rate`` channels for DenseNet-BC (bottleneck and compression < 1),
    16 otherwise (the paper's Section 4 rule); three dense blocks
    of ``(depth - 4) / 6`` bottleneck layers (``(depth - 4) / 3`` without bottleneck) separated by
    transitions that keep ``floor(compression * C)`` channels and halve the resolution; final BN-ReLU,
    global average pooling, linear. He-normal (fan-out) initialisation, BN weights 1, biases 0.

    DenseNet-BC-190 with growth rate 40 (the paper's): 3 x 31 bottleneck layers, channels
    80 -> 1320 -> 660 -> 1900 -> 950 -> 2190.

    Args:
        num_classes: Number of outputs.
        in_channels: Input channels.
        depth: Total depth (190 in the paper).
        growth_rate: Channels added by each layer, k (40 in the paper).
        compression: Fraction of channels kept by a transition (0.5 for "C").
        bottleneck: Use 1x1 bottleneck convolutions (the "B").
        dropout: Dropout after each convolution (0 in the paper, which uses augmentation).
    """

    # Registered with add_module under f-string names in __init__; declared here for the type checker only.
    dense1: nn.Sequential
    dense2: nn.Sequential
    dense3: nn.Sequential
    trans1: _Transition
    trans2: _Transition

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        depth: int = 190,
        growth_rate: int = 40,
        compression: float = 0.5,
        bottleneck: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("depth", depth)
        check_positive_int("growth_rate", growth_rate)
        check_probability("dropout", dropout)
        if isinstance(compression, bool) or not isinstance(compression, int | float) or not 0 < compression <= 1:
            raise ModelConfigError(f"compression must lie in (0, 1], got {compression!r}")
        if not isinstance(bottleneck, bool):
            raise ModelArgumentError(f"bottleneck must be a bool, got {type(bottleneck).__name__}")
        per_layer = 6 if bottleneck else 3  # a bottleneck layer has two convolutions
        if depth <= 4 or (depth - 4) % per_layer != 0:
            raise ModelConfigError(
                f"DenseNet depth must be {per_layer}n + 4 with n >= 1 "
                f"({'bottleneck' if bottleneck else 'no bottleneck'}), got {depth}"
            )
        n = (depth - 4) // per_layer
        planes = 2 * growth_rate if bottleneck and compression < 1 else 16
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        for i in (1, 2, 3):
            layers = []
            for _ in range(n):
                layers.append(_DenseLayer(planes, growth_rate, bottleneck, dropout))
                planes += growth_rate
            self.add_module(f"dense{i}", nn.Sequential(*layers))
            if i < 3:
                out_planes = int(compression * planes)  # floor, as the reference
                self.add_module(f"trans{i}", _Transition(planes, out_planes, dropout))
                planes = out_planes
        self.head = nn.Sequential()
        self.head.add_module("bn", nn.BatchNorm2d(planes))
        self.head.add_module("relu", nn.ReLU(inplace=True))
        self.head.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("linear", nn.Linear(planes, num_classes))
        _init_he_fan_out(self)

    @property
    def linear(self) -> nn.Linear:
        """The classifier, ``head.linear``."""
        return cast(nn.Linear, self.head.linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        out = self.conv1(x)  # (B, 2k, H, W)
        out = self.trans1(self.dense1(out))  # (B, C1, H/2, W/2)
        out = self.trans2(self.dense2(out))  # (B, C2, H/4, W/4)
        out = self.dense3(out)  # (B, C3, H/4, W/4)
        return self.head(out)  # (B, num_classes)


def _init_he_fan_out(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions, BN weight 1 / bias 0, linear bias 0 (WRN and DenseNet code)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


@register_model("preact_resnet18")
def preact_resnet18(num_classes: int, in_channels: int = 3, width: int = 64, dropout: float = 0.0) -> PreActResNet:
    """PreAct ResNet-18 (paper Sections 3.2, 3.4, 3.8); ``width=64`` is the paper's size."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels, width=width, dropout=dropout)


@register_model("wrn")
def wrn(num_classes: int, in_channels: int = 3, depth: int = 28, widen: int = 10, dropout: float = 0.0) -> WideResNet:
    """Wide ResNet; the defaults give the paper's WRN-28-10."""
    return WideResNet(num_classes, in_channels, depth=depth, widen=widen, dropout=dropout)


@register_model("densenet_bc")
def densenet_bc(
    num_classes: int,
    in_channels: int = 3,
    depth: int = 190,
    growth_rate: int = 40,
    compression: float = 0.5,
    bottleneck: bool = True,
    dropout: float = 0.0,
) -> DenseNet:
    """DenseNet-BC; the defaults give the paper's DenseNet-BC-190 with growth rate 40."""
    return DenseNet(
        num_classes,
        in_channels,
        depth=depth,
        growth_rate=growth_rate,
        compression=compression,
        bottleneck=bottleneck,
        dropout=dropout,
    )
