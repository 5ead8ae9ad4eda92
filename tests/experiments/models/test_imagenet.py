"""The ImageNet ResNets and ResNeXts (models/imagenet.py): parameter counts, input channels, zero-init residuals."""

from __future__ import annotations

import pytest
import torch

from tests.experiments.models.zoo import IMAGENET_SIZES
from vicinal.experiments.models import build_model, count_parameters


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
