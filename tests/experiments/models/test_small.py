"""The small networks (models/small.py): the speech LeNet and VGG-11 at paper input size, digits CNN and MLP sizes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vicinal.experiments.models import build_model, count_parameters


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
