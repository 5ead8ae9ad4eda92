"""Issue 14 fast paths against the paper's formula: each new path is bit-identical (``torch.equal``)."""

import pytest
import torch
import torch.nn.functional as F

import vicinal
from vicinal import functional as VF


@pytest.mark.parametrize("n, c", [(1, 2), (7, 3), (128, 10), (64, 1000)])
@pytest.mark.parametrize("lam_kind", ["batch", "sample", "edges"])
def test_mixed_one_hot_equals_formula(n, c, lam_kind):
    g = torch.Generator().manual_seed(n + c)
    y = torch.randint(0, c, (n,), generator=g)
    perm = torch.randperm(n, generator=g)
    lams = {
        "batch": [float(torch.rand((), generator=g, dtype=torch.float64)), 0.5, 0.1 + 0.2],
        "sample": [torch.rand(n, generator=g, dtype=torch.float64)],
        "edges": [0.0, 1.0, torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)],
    }[lam_kind]
    for lam in lams:
        expected = VF.mix_targets(F.one_hot(y, c).float(), lam, perm)  # the formula: w * y + (1 - w) * y[perm]
        assert torch.equal(VF.mixed_one_hot(y, lam, perm, c), expected)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_mixup_fast_targets_equal_formula_for_integer_label_dtypes(dtype):
    x = torch.randn(16, 3, 4, 4)
    y = (torch.arange(16) % 5).to(dtype)
    for lam_mode in ("batch", "sample"):
        mixer = vicinal.Mixup(1.0, num_classes=5, lam_mode=lam_mode, inplace=True, seed=1)
        p = mixer.sample(x, y)
        yh = F.one_hot(y.long(), 5).float()
        w = p.lam.float()[:, None] if isinstance(p.lam, torch.Tensor) else p.lam
        assert torch.equal(mixer.apply_targets(y, p), w * yh + (1 - w) * yh[p.perm])


def test_drawn_params_skip_checks_but_user_params_do_not():
    x, y = torch.randn(4, 3), torch.arange(4)
    mixer = vicinal.Mixup(1.0, num_classes=4, inplace=True, seed=0)
    drawn = mixer.sample(x, y)
    assert drawn._drawn and drawn == vicinal.MixParams(op="mix", lam=drawn.lam, perm=drawn.perm)
    bad = vicinal.MixParams(op="mix", lam=0.5, perm=torch.tensor([0, 1, 2, 9]))
    with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 4\)"):
        mixer.apply_inputs(x, bad)
