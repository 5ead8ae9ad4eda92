"""The public API's types, as a user's type checker reads them (the package ships py.typed).

`make lint` runs mypy over this file (pyproject's [tool.mypy] files): each ``assert_type`` states the type the hints
give. pytest runs it too, and checks that the value a call returns at run time is of that type, so the hints and
the code cannot drift apart unnoticed.
"""

from typing import Any

import torch
from torch import Tensor
from typing_extensions import assert_type

import vicinal
from vicinal import functional as F


def _batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 8, 8, generator=g), torch.randint(0, 4, (6,), generator=g)


def test_transforms_return_a_batch_and_soft_targets() -> None:
    x, y = _batch()
    for mixer in (
        vicinal.Mixup(num_classes=4, seed=0),
        vicinal.CutMix(num_classes=4, seed=0),
        vicinal.ERM(num_classes=4),
    ):
        xm, ym = mixer(x, y)
        assert isinstance(assert_type(xm, Tensor), Tensor) and isinstance(assert_type(ym, Tensor), Tensor)
        params = mixer.sample(x, y)
        assert isinstance(assert_type(params, vicinal.MixParams), vicinal.MixParams)
        assert isinstance(assert_type(mixer.apply_inputs(x, params), Tensor), Tensor)
        assert isinstance(assert_type(mixer.apply_targets(y, params), Tensor), Tensor)
        assert isinstance(assert_type(mixer.state_dict(), dict[str, Any]), dict)
    built = vicinal.build("mixup", alpha=0.2, num_classes=4, seed=0)
    assert isinstance(assert_type(built, vicinal.BatchMix), vicinal.Mixup)


def test_each_lam_mode_has_its_own_return_type() -> None:
    g = torch.Generator().manual_seed(0)
    per_batch = vicinal.sample_lam(1.0, 6, "batch", generator=g)
    per_sample = vicinal.sample_lam(1.0, 6, "sample", generator=g)
    assert isinstance(assert_type(per_batch, float), float)
    assert isinstance(assert_type(per_sample, Tensor), Tensor) and per_sample.shape == (6,)
    mode: str = "sample"  # a mode known only at run time: either type
    assert isinstance(assert_type(vicinal.sample_lam(1.0, 6, mode, generator=g), float | Tensor), Tensor)
    assert isinstance(assert_type(vicinal.sample_beta(0.5, (3,), generator=g), Tensor), Tensor)


def test_functional_and_losses() -> None:
    x, y = _batch()
    perm = torch.tensor([1, 0, 3, 2, 5, 4])
    assert isinstance(assert_type(F.mix(x, 0.3, perm), Tensor), Tensor)
    targets = F.one_hot(y, 4)
    assert isinstance(assert_type(targets, Tensor), Tensor)
    loss = vicinal.soft_cross_entropy(torch.randn(6, 4), targets)
    assert isinstance(assert_type(loss, Tensor), Tensor)
    collate = vicinal.MixupCollate(vicinal.Mixup(num_classes=4, seed=0))
    images = (x * 255).to(torch.uint8)  # collate-time mixing takes uint8 images
    xb, yb = collate([(images[i], int(y[i])) for i in range(6)])
    assert isinstance(assert_type(xb, Tensor), Tensor) and isinstance(assert_type(yb, Tensor), Tensor)
