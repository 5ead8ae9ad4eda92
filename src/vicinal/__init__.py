"""vicinal: mixup and its family for PyTorch.

The reference implementation of *mixup: Beyond Empirical Risk Minimization* (Zhang, Cisse, Dauphin, Lopez-Paz,
ICLR 2018) and of every variant its ablation compares. The library needs only torch and numpy.

    >>> import torch, vicinal
    >>> x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))  # a batch and its class labels
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    >>> mixer = vicinal.Mixup(alpha=1.0, num_classes=10, seed=0)
    >>> x_mixed, y_soft = mixer(x, y)
    >>> y_soft.shape
    torch.Size([8, 10])
    >>> loss = vicinal.soft_cross_entropy(model(x_mixed), y_soft)
"""

from . import functional
from .collate import MixupCollate
from .gan import generator_loss, mixup_discriminator_loss, sample_gan_lam
from .losses import mixed_criterion, soft_cross_entropy
from .manifold import LatentMixup
from .mixup import (
    ERM,
    VARIANTS,
    BatchMix,
    CutMix,
    DirichletMixup,
    GaussianNoise,
    LabelSmoothing,
    MixParams,
    Mixup,
    MixupOrCutMix,
    build,
)
from .pairing import PAIRINGS, KNNPartners
from .sampling import sample_beta, sample_dirichlet, sample_lam

__version__ = "0.1.0"

__all__ = [
    "ERM",
    "PAIRINGS",
    "VARIANTS",
    "BatchMix",
    "CutMix",
    "DirichletMixup",
    "GaussianNoise",
    "KNNPartners",
    "LabelSmoothing",
    "LatentMixup",
    "MixParams",
    "Mixup",
    "MixupCollate",
    "MixupOrCutMix",
    "build",
    "functional",
    "generator_loss",
    "mixed_criterion",
    "mixup_discriminator_loss",
    "sample_beta",
    "sample_dirichlet",
    "sample_gan_lam",
    "sample_lam",
    "soft_cross_entropy",
]
