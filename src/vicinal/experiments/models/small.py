"""Small models: a CPU-scale digits CNN, the speech models (Section 3.3) and the MLPs (Sections 3.6, 3.7).

Speech. The paper compares "a LeNet and a VGG-11 ..., each of them composed by two convolutional and two
fully-connected layers" on spectrograms zero-padded to 160 x 101. The sentence fits the Google Commands
models of Yossi Adi's GCommandsPytorch (FAIR, the loader that produces 161 x 101 log-spectrograms):

- LeNet: conv5x5(20) - maxpool2 - ReLU - conv5x5(20) - Dropout2d - maxpool2 - ReLU - fc(1000) - ReLU -
  dropout - fc(classes). Two convolutions, two fully connected layers.
- VGG-11: the 8-convolution VGG-11 configuration [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]
  with BN after every convolution, then fc(512) - fc(classes) with *no* nonlinearity between the two
  fully connected layers (so they compose to one linear map; kept because it is what that code trains).

Both are built here to be exact at 160 x 101 (and 161 x 101) and to accept any other size: the last
pooling is adaptive, with an output size chosen equal to the fixed pooling's output at 160 x 101
(LeNet: 2x2 max pooling of 74 x 44 -> 37 x 22; VGG: the five 2x2 poolings give 5 x 3 and the adaptive
average pooling is then the identity). Parameter counts with 30 classes: LeNet 16,321,570,
VGG-11 13,172,894 (asserted in the tests).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ModelConfigError
from .registry import check_positive_int, check_probability, register_model

__all__ = ["MLP", "DigitsCNN", "SpeechLeNet", "SpeechVGG11"]

# VGG-11, configuration "A" of Simonyan & Zisserman: channels per convolution, "M" = 2x2 max pooling.
_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _check_pair(arg: str, value: object) -> tuple[int, int]:
    """A pair of positive ints (an output size), else ValueError naming ``arg``."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ModelConfigError(f"{arg} must be a pair of positive ints, got {value!r}")
    return check_positive_int(f"{arg}[0]", value[0]), check_positive_int(f"{arg}[1]", value[1])


class DigitsCNN(nn.Module):
    """A small CNN for the 8x8 sklearn digits: fast on a CPU (24,058 parameters at ``width=16``, 10 classes).

    ``conv1``: conv3x3(w)-BN-ReLU at 8x8; ``layer1``: conv3x3(2w)-BN-ReLU-maxpool2 -> 4x4;
    ``layer2``: conv3x3(4w)-BN-ReLU; ``head``: global average pooling, linear. Any input size >= 2x2.

    Args:
        num_classes: Number of outputs.
        in_channels: Input channels (1 for the digits).
        width: Channels of the first convolution.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        w = check_positive_int("width", width)
        self.conv1 = _conv_bn_relu(in_channels, w)
        self.layer1 = nn.Sequential(*_conv_bn_relu(w, 2 * w), nn.MaxPool2d(2))
        self.layer2 = _conv_bn_relu(2 * w, 4 * w)
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("linear", nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        out = self.conv1(x)  # (B, w, H, W)
        out = self.layer1(out)  # (B, 2w, H/2, W/2)
        out = self.layer2(out)  # (B, 4w, H/2, W/2)
        return self.head(out)  # (B, num_classes)


def _conv_bn_relu(in_planes: int, planes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
    )


class SpeechLeNet(nn.Module):
    """LeNet for spectrograms (paper Section 3.3); see the module docstring for its source.

    Input ``(B, in_channels, F, T)`` with F, T >= 14. Stages: ``layer1`` (conv5x5, maxpool2, ReLU),
    ``layer2`` (conv5x5, Dropout2d, adaptive max pooling to ``pool_size``, ReLU), ``head`` (flatten,
    ``fc1``, ReLU, dropout, ``fc2``).

    Args:
        num_classes: Number of outputs (30 or 35 for Google Commands).
        in_channels: Input channels.
        channels: Channels of both convolutions (20 in the reference).
        hidden: Units of the first fully connected layer (1000 in the reference).
        dropout: Probability of the Dropout2d after the second convolution and of the dropout before the
            last layer (0.5 in the reference, PyTorch's default there).
        pool_size: Output size of the second pooling; (37, 22) is exactly the reference's 2x2 max pooling
            at 160 x 101 and 161 x 101 inputs.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        channels: int = 20,
        hidden: int = 1000,
        dropout: float = 0.5,
        pool_size: tuple[int, int] = (37, 22),
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("channels", channels)
        check_positive_int("hidden", hidden)
        check_probability("dropout", dropout)
        ph, pw = _check_pair("pool_size", pool_size)
        self.layer1 = nn.Sequential()
        self.layer1.add_module("conv", nn.Conv2d(in_channels, channels, kernel_size=5))
        self.layer1.add_module("pool", nn.MaxPool2d(2))
        self.layer1.add_module("relu", nn.ReLU(inplace=True))
        self.layer2 = nn.Sequential()
        self.layer2.add_module("conv", nn.Conv2d(channels, channels, kernel_size=5))
        self.layer2.add_module("dropout", nn.Dropout2d(p=dropout))
        self.layer2.add_module("pool", nn.AdaptiveMaxPool2d((ph, pw)))
        self.layer2.add_module("relu", nn.ReLU(inplace=True))
        self.head = nn.Sequential()
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc1", nn.Linear(channels * ph * pw, hidden))
        self.head.add_module("relu", nn.ReLU(inplace=True))
        self.head.add_module("dropout", nn.Dropout(p=dropout))
        self.head.add_module("fc2", nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, F, T) -> logits (B, num_classes)."""
        if x.dim() != 4 or x.shape[-2] < 14 or x.shape[-1] < 14:
            raise ModelConfigError(f"SpeechLeNet needs inputs (B, C, F, T) with F, T >= 14, got {tuple(x.shape)}")
        out = self.layer1(x)  # (B, c, (F-4)/2, (T-4)/2) = (B, 20, 78, 48) at 160 x 101
        out = self.layer2(out)  # (B, c, 37, 22)
        return self.head(out)  # (B, num_classes)


class SpeechVGG11(nn.Module):
    """VGG-11 with BN for spectrograms (paper Section 3.3); see the module docstring for its source.

    Stages ``layer1`` .. ``layer5``, each ending with a 2x2 max pooling (so the input must be at least
    32 x 32), and ``head``: adaptive average pooling to ``pool_size``, flatten, ``fc1``, ``fc2``.

    Args:
        num_classes: Number of outputs.
        in_channels: Input channels.
        width_divisor: Divides every channel count and the hidden width (1 = paper, 64..512 channels);
            e.g. 4 gives 16..128 channels for CPU runs. Must divide 64.
        pool_size: Output size of the adaptive pooling; (5, 3) is what five 2x2 poolings leave of a
            160 x 101 input, where the pooling is therefore the identity as in the reference.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        width_divisor: int = 1,
        pool_size: tuple[int, int] = (5, 3),
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        d = check_positive_int("width_divisor", width_divisor)
        if 64 % d != 0:
            raise ModelConfigError(f"width_divisor must divide 64 (1, 2, 4, 8, 16, 32, 64), got {d}")
        ph, pw = _check_pair("pool_size", pool_size)
        planes, stage, stage_idx = in_channels, nn.Sequential(), 1
        for item in _VGG11:
            if item == "M":
                stage.append(nn.MaxPool2d(kernel_size=2, stride=2))
                self.add_module(f"layer{stage_idx}", stage)
                stage, stage_idx = nn.Sequential(), stage_idx + 1
            else:
                out = int(item) // d
                # Convolutions keep their bias before BN, as the reference does (a few redundant parameters).
                stage.extend([nn.Conv2d(planes, out, kernel_size=3, padding=1), nn.BatchNorm2d(out), nn.ReLU(True)])
                planes = out
        hidden = 512 // d
        self.head = nn.Sequential()
        self.head.add_module("pool", nn.AdaptiveAvgPool2d((ph, pw)))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc1", nn.Linear(planes * ph * pw, hidden))
        self.head.add_module("fc2", nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, F, T) -> logits (B, num_classes)."""
        if x.dim() != 4 or x.shape[-2] < 32 or x.shape[-1] < 32:
            raise ModelConfigError(f"SpeechVGG11 needs inputs (B, C, F, T) with F, T >= 32, got {tuple(x.shape)}")
        out = x
        for i in range(1, 6):
            out = getattr(self, f"layer{i}")(out)  # halves F and T; (B, 512/d, 5, 3) after layer5 at 160 x 101
        return self.head(out)  # (B, num_classes)


class MLP(nn.Module):
    """Fully connected ReLU network: ``layers`` hidden layers of ``hidden`` units, then a linear output.

    Stages ``layer1`` .. ``layer{layers}`` (each Linear-ReLU) and ``head`` (Linear). The input is
    flattened, so ``(B, in_features)`` and ``(B, ...)`` with ``in_features`` elements per sample both
    work. Outputs are raw (logits for classifiers and GAN discriminators, samples for generators).

    Args:
        in_features: Input features per sample.
        out_features: Outputs.
        hidden: Units per hidden layer.
        layers: Number of hidden layers.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        check_positive_int("hidden", hidden)
        check_positive_int("layers", layers)
        self.flatten = nn.Flatten()
        width = in_features
        for i in range(1, layers + 1):
            self.add_module(f"layer{i}", nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True)))
            width = hidden
        self.num_hidden_layers = layers
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features) or (B, ...) -> (B, out_features)."""
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            raise ModelConfigError(
                f"MLP expects {self.in_features} features per sample, got an input of shape {tuple(x.shape)}"
            )
        out = self.flatten(x)  # (B, in_features)
        for i in range(1, self.num_hidden_layers + 1):
            out = getattr(self, f"layer{i}")(out)  # (B, hidden)
        return self.head(out)


@register_model("digits_cnn")
def digits_cnn(num_classes: int, in_channels: int = 1, width: int = 16) -> DigitsCNN:
    """Small CNN for 1 x 8 x 8 digits (CPU-scale stand-in for the image experiments)."""
    return DigitsCNN(num_classes, in_channels, width=width)


@register_model("lenet_speech")
def lenet_speech(
    num_classes: int,
    in_channels: int = 1,
    channels: int = 20,
    hidden: int = 1000,
    dropout: float = 0.5,
    pool_size: tuple[int, int] = (37, 22),
) -> SpeechLeNet:
    """LeNet for 1 x 160 x 101 spectrograms (paper Table 4)."""
    return SpeechLeNet(num_classes, in_channels, channels=channels, hidden=hidden, dropout=dropout, pool_size=pool_size)


@register_model("vgg11_speech")
def vgg11_speech(
    num_classes: int, in_channels: int = 1, width_divisor: int = 1, pool_size: tuple[int, int] = (5, 3)
) -> SpeechVGG11:
    """VGG-11 (BN) for 1 x 160 x 101 spectrograms (paper Table 4); ``width_divisor`` shrinks it for CPUs."""
    return SpeechVGG11(num_classes, in_channels, width_divisor=width_divisor, pool_size=pool_size)


@register_model("mlp")
def mlp(num_classes: int, in_features: int, hidden: int = 128, layers: int = 2) -> MLP:
    """Classifier MLP of the UCI experiments (Section 3.6): two hidden layers of 128 ReLU units."""
    return MLP(in_features, num_classes, hidden, layers)


@register_model("gan_mlp")
def gan_mlp(in_features: int, out_features: int, hidden: int = 512, layers: int = 3) -> MLP:
    """Generator or discriminator of the toy GANs (Section 3.7): three hidden layers of 512 ReLU units.

    The generator maps 2-D noise to 2-D points (``in_features=2, out_features=2``); the discriminator
    returns one logit (``in_features=2, out_features=1``), as ``vicinal.gan`` expects.
    """
    return MLP(in_features, out_features, hidden, layers)
