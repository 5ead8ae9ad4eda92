"""Kernels: the formula, argument checks, targets helpers."""

import pytest
import torch

from vicinal import functional as VF


def test_mix_with_perm_and_partner():
    x = torch.randn(4, 3)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.equal(VF.mix(x, 0.25, perm), 0.25 * x + 0.75 * x[perm])
    other = torch.randn(4, 3)
    assert torch.equal(VF.mix(x, 0.25, partner=other), 0.25 * x + 0.75 * other)


def test_one_hot_smooth_mix_targets():
    y = torch.tensor([0, 2])
    oh = VF.one_hot(y, 3)
    assert oh.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert VF.smooth(oh, 0.0) is oh
    torch.testing.assert_close(VF.smooth(oh, 0.3), torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    mt = VF.mix_targets(oh, 0.6, torch.tensor([1, 0]))
    torch.testing.assert_close(mt, torch.tensor([[0.6, 0.0, 0.4], [0.4, 0.0, 0.6]]))
    assert torch.equal(VF.closer_targets(oh, 0.4, torch.tensor([1, 0])), oh[[1, 0]])


def test_errors():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="pass either perm or partner, not both"):
        VF.mix(x, 0.5, torch.arange(4), partner=x)
    with pytest.raises(ValueError, match=r"mix needs perm \(partner indices into the batch\) or partner"):
        VF.mix(x, 0.5)
    with pytest.raises(ValueError, match=r"perm has shape \(3,\) but the batch has 4 samples"):
        VF.mix(x, 0.5, torch.arange(3))
    with pytest.raises(ValueError, match=r"partner batch has shape \(4, 2\) but inputs have \(4, 3\)"):
        VF.mix(x, 0.5, partner=torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"weights have shape \(4, 2\), expected \(4, 3\)"):
        VF.mix_many(x, torch.ones(4, 2), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="cutmix needs perm or partner"):
        VF.cutmix(torch.randn(2, 1, 4, 4), (0, 2, 0, 2))
