"""Corrupted training labels (Section 3.4, Table 2), following Zhang et al. (2017), "Understanding deep learning
requires rethinking generalization".

The rule, exactly:

* ``fraction`` is the fraction of training labels that are **replaced**: ``round(fraction * N)`` samples, chosen
  uniformly without replacement (a fixed count, not a per-sample coin as in Zhang et al.'s code, so that "50%"
  means exactly half of the labels at every seed);
* each chosen sample gets a label drawn uniformly from **all** ``C`` classes, the true one included (as in
  Zhang et al.), so a replacement equals the true label by chance with probability ``1 / C``: at 10 classes
  about 10% of the replaced labels stay correct. Both numbers are recorded: ``replaced_fraction`` and
  ``wrong_fraction`` (labels that actually differ from the truth, about ``fraction * (1 - 1/C)``);
* the choice of samples and the random labels come from one CPU generator seeded
  ``derive_seed(seed, STREAM_CORRUPT)``: the corruption depends only on ``(true labels, fraction, seed)``.

Training-error columns of Table 2 (see :func:`corruption_counts`): "train real" is the error on the samples whose
label was kept, against that (true) label; "train corrupted" is the error on the replaced samples, against the
replaced label (a model that memorised the noise scores ~0; one that predicts the truth scores ~``1 - 1/C``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vicinal.experiments.data.seeds import STREAM_CORRUPT, derive_seed

__all__ = ["STREAM_CORRUPT", "CorruptedLabels", "corrupt_labels", "corruption_counts", "counts_to_errors"]

# Order of the sums returned by `corruption_counts` (all-reducible across ranks).
COUNT_KEYS = (
    "n",
    "err_noisy",
    "err_true",
    "n_kept",
    "err_kept",
    "n_replaced",
    "err_replaced_noisy",
    "err_replaced_true",
    "n_wrong",
    "err_wrong_noisy",
)


@dataclass
class CorruptedLabels:
    """Per-sample true and noisy labels of a training set.

    Attributes:
        true: int64 ``(N,)`` original labels.
        noisy: int64 ``(N,)`` labels the model is trained on.
        replaced: bool ``(N,)``: the sample's label was redrawn (it may still equal the true one).
        fraction: the requested replaced fraction.
        seed: the corruption seed.
        num_classes: ``C``.
    """

    true: Tensor
    noisy: Tensor
    replaced: Tensor
    fraction: float
    seed: int
    num_classes: int

    @property
    def wrong(self) -> Tensor:
        """bool ``(N,)``: the training label differs from the truth."""
        return self.noisy != self.true

    def stats(self) -> dict[str, float | int]:
        """JSON-safe summary: counts and fractions (replaced vs actually wrong)."""
        n = int(self.true.numel())
        n_rep, n_wrong = int(self.replaced.sum()), int(self.wrong.sum())
        return {
            "fraction": self.fraction,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "n": n,
            "n_replaced": n_rep,
            "n_wrong": n_wrong,
            "replaced_fraction": n_rep / n if n else 0.0,
            "wrong_fraction": n_wrong / n if n else 0.0,
        }


def corrupt_labels(y: Tensor, num_classes: int, fraction: float, seed: int) -> CorruptedLabels:
    """Replace ``round(fraction * N)`` labels by uniformly random ones (see the module docstring).

    Args:
        y: int64 ``(N,)`` true labels in ``[0, num_classes)``.
        num_classes: ``C >= 2``.
        fraction: in ``[0, 1]``.
        seed: corruption seed (>= 0).

    Raises:
        TypeError: ``y`` is not an integer tensor.
        ValueError: bad shape, fraction, num_classes, seed or labels out of range.
    """
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"corrupt_labels: y must be an integer tensor, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.ndim != 1:
        raise ValueError(f"corrupt_labels: y must have shape (N,), got shape {tuple(y.shape)}")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"corrupt_labels: fraction must be a float in [0, 1], got {fraction!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"corrupt_labels: num_classes must be an int >= 2, got {num_classes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"corrupt_labels: seed must be an int >= 0, got {seed!r}")
    true = y.detach().cpu().to(torch.int64)
    if true.numel() and (int(true.min()) < 0 or int(true.max()) >= num_classes):
        raise ValueError(
            f"corrupt_labels: labels must lie in [0, {num_classes}), got range [{int(true.min())}, {int(true.max())}]"
        )
    n = true.numel()
    k = int(round(float(fraction) * n))
    gen = torch.Generator().manual_seed(derive_seed(seed, STREAM_CORRUPT))
    chosen = torch.randperm(n, generator=gen)[:k]  # (k,) which samples are redrawn
    new = torch.randint(0, num_classes, (k,), generator=gen)  # (k,) uniform over all C classes, truth included
    noisy = true.clone()
    noisy[chosen] = new
    replaced = torch.zeros(n, dtype=torch.bool)
    replaced[chosen] = True
    return CorruptedLabels(true, noisy, replaced, float(fraction), seed, num_classes)


def corruption_counts(pred: Tensor, idx: Tensor, labels: CorruptedLabels) -> Tensor:
    """Error counts of predictions ``pred (B,)`` for training samples ``idx (B,)``: float64 ``(len(COUNT_KEYS),)``.

    Sums (not rates), so shards and ranks add up exactly; convert with :func:`counts_to_errors`.
    """
    if pred.shape != idx.shape or pred.ndim != 1:
        raise ValueError(f"pred and idx must both have shape (B,), got {tuple(pred.shape)} and {tuple(idx.shape)}")
    i = idx.cpu()
    p = pred.cpu()
    true, noisy, rep = labels.true[i], labels.noisy[i], labels.replaced[i]  # (B,) each
    wrong = noisy != true
    e_noisy, e_true = p != noisy, p != true
    kept = ~rep
    vals: list[int | Tensor] = [
        i.numel(),
        e_noisy.sum(),
        e_true.sum(),
        kept.sum(),
        (e_noisy & kept).sum(),
        rep.sum(),
        (e_noisy & rep).sum(),
        (e_true & rep).sum(),
        wrong.sum(),
        (e_noisy & wrong).sum(),
    ]
    return torch.tensor([float(v) for v in vals], dtype=torch.float64)


def counts_to_errors(counts: Tensor) -> dict[str, float | None]:
    """Percent training errors from :func:`corruption_counts` sums (None where a subset is empty).

    Keys: ``train_eval_error`` (all samples vs training labels), ``train_true_error`` (all vs true labels),
    ``train_error_real`` (kept samples vs their true label: Table 2's "train real"), ``train_error_corrupted``
    (replaced samples vs the replaced label: Table 2's "train corrupted"), ``train_error_corrupted_true``
    (replaced samples vs the truth), ``train_error_wrong`` (actually-wrong samples vs the wrong label).
    """
    c = dict(zip(COUNT_KEYS, (float(v) for v in counts.double().cpu()), strict=True))

    def rate(err: str, n: str) -> float | None:
        return 100.0 * c[err] / c[n] if c[n] > 0 else None

    return {
        "train_eval_error": rate("err_noisy", "n"),
        "train_true_error": rate("err_true", "n"),
        "train_error_real": rate("err_kept", "n_kept"),
        "train_error_corrupted": rate("err_replaced_noisy", "n_replaced"),
        "train_error_corrupted_true": rate("err_replaced_true", "n_replaced"),
        "train_error_wrong": rate("err_wrong_noisy", "n_wrong"),
    }
