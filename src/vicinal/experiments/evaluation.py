"""Evaluation of a trained network: sums over a loader (:class:`EvalSums`), the metrics they give, ``summary.json``.

Evaluation returns sums rather than means so that ranks can add theirs exactly (one all-reduce of
:meth:`EvalSums.pack`) before anything is divided. Errors are in percent.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.corrupt import CorruptedLabels, corruption_counts
from .errors import RunError

__all__ = [
    "ECE_BINS",
    "TRAIN_EVAL_FIELDS",
    "EvalSums",
    "eval_metrics",
    "evaluate",
    "summarize",
    "train_set_counts",
]

ECE_BINS = 15
# Per-epoch training-error fields measured on un-augmented training images (`callbacks.TrainEval`, Table 2).
TRAIN_EVAL_FIELDS = (
    "train_eval_error",
    "train_true_error",
    "train_error_real",
    "train_error_corrupted",
    "train_error_corrupted_true",
    "train_error_wrong",
)


@dataclass
class EvalSums:
    """Float64 sums over an evaluated split (on the evaluation's device).

    Attributes:
        n: number of examples ``()``.
        nll_sum: summed cross-entropy ``()``.
        top1_correct: examples whose arg-max is the label ``()``.
        topk_correct: examples whose label is among the ``k = min(5, C)`` largest logits ``()``.
        bin_count, bin_conf_sum, bin_acc_sum: per confidence bin ``(n_bins,)``: examples, summed max softmax
            probability, correct examples. Bin ``i`` is ``(i/n_bins, (i+1)/n_bins]`` (Guo et al., 2017).
    """

    n: Tensor
    nll_sum: Tensor
    top1_correct: Tensor
    topk_correct: Tensor
    bin_count: Tensor
    bin_conf_sum: Tensor
    bin_acc_sum: Tensor

    @classmethod
    def zeros(cls, n_bins: int = ECE_BINS, device: torch.device | str = "cpu") -> EvalSums:
        """Empty sums: the start of an evaluation."""

        def z(*shape: int) -> Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        return cls(z(), z(), z(), z(), z(n_bins), z(n_bins), z(n_bins))

    @property
    def n_bins(self) -> int:
        """Number of confidence bins."""
        return int(self.bin_count.shape[0])

    def pack(self) -> Tensor:
        """All sums in one float64 vector ``(4 + 3 * n_bins,)`` (one all-reduce for the lot); see :meth:`unpack`."""
        return torch.cat([getattr(self, f.name).reshape(-1) for f in fields(self)])

    @classmethod
    def unpack(cls, packed: Tensor) -> EvalSums:
        """The inverse of :meth:`pack`."""
        b = (packed.shape[0] - 4) // 3
        if packed.ndim != 1 or packed.shape[0] != 4 + 3 * b or b < 1:
            raise ValueError(f"packed evaluation sums must have shape (4 + 3 * n_bins,), got {tuple(packed.shape)}")
        scalars = (packed[0], packed[1], packed[2], packed[3])
        return cls(*scalars, packed[4 : 4 + b], packed[4 + b : 4 + 2 * b], packed[4 + 2 * b :])

    def cpu(self) -> EvalSums:
        """A copy on the CPU."""
        return EvalSums(*(getattr(self, f.name).cpu() for f in fields(self)))

    def metrics(self) -> dict[str, float]:
        """Percent errors, mean NLL and ECE (percent): the ``test_*`` fields of an epoch record."""
        return eval_metrics(self)


def predicted_class(logits: Tensor) -> Tensor:
    """The argmax class of each row of ``logits`` ``(B, C)``, and -1 (no class: never correct) for a row that is not
    all finite: NaN ranks first, so a NaN model predicted class 0 and scored a plausible error."""
    return logits.argmax(dim=1).masked_fill(~torch.isfinite(logits).all(dim=1), -1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    channels_last: bool = False,
    n_bins: int = ECE_BINS,
    allow_empty: bool = False,
) -> EvalSums:
    """Sums over ``loader`` (batches ``(x, y, idx)``) in eval mode; the model's mode is restored afterwards.

    Top-5 becomes top-k with ``k = min(5, C)``. ECE bins are over the max softmax probability. A sample whose
    outputs are not all finite is never correct (its NLL and ECE terms are NaN). Convert with
    :meth:`EvalSums.metrics`. ``allow_empty``: a loader with no batches gives zero sums (one process of several,
    when the split has fewer samples than processes) instead of an error.
    """
    was_training = model.training
    model.eval()
    sums: EvalSums | None = None
    try:
        for x, y, _ in loader:
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x)
            logits = logits.float()  # (B, C)
            if sums is None:
                sums = EvalSums.zeros(n_bins, logits.device)
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices  # (B, k)
            probs = logits.softmax(dim=1)
            conf, pred = probs.max(dim=1)  # (B,), (B,)
            # NaN outputs would rank first and predict class 0: a plausible error, not the model's failure
            finite = torch.isfinite(logits).all(dim=1)  # (B,)
            correct = ((pred == y) & finite).double()
            bins = (conf.double() * n_bins).ceil().long().clamp_(1, n_bins) - 1  # (B,) in [0, n_bins)
            sums.n += y.shape[0]
            # each sample's loss summed in float64: a float32 sum per batch made the NLL depend on the evaluation
            # batch size (data.eval_batch_size, which a resume may change) in its last digits
            sums.nll_sum += F.cross_entropy(logits, y, reduction="none").double().sum()
            sums.top1_correct += correct.sum()
            sums.topk_correct += ((topk == y[:, None]).any(dim=1) & finite).double().sum()
            sums.bin_count.index_add_(0, bins, torch.ones_like(correct))
            sums.bin_conf_sum.index_add_(0, bins, conf.double())
            sums.bin_acc_sum.index_add_(0, bins, correct)
    finally:
        model.train(was_training)
    if sums is None:
        if not allow_empty:
            raise RunError("the evaluation loader yielded no batches")
        sums = EvalSums.zeros(n_bins, next(model.parameters()).device)
    return sums


def eval_metrics(sums: EvalSums) -> dict[str, float]:
    """Percent errors, mean NLL and ECE (percent) from :func:`evaluate`'s sums."""
    s = sums.cpu()
    n = float(s.n)
    if n == 0:  # every process's share was empty (allow_empty): there is no error rate to give
        raise RunError("the evaluation split is empty")
    # |acc_b - conf_b| * n_b / N == |acc_sum_b - conf_sum_b| / N
    return {
        "test_error": 100.0 * (1.0 - float(s.top1_correct) / n),
        "test_top5_error": 100.0 * (1.0 - float(s.topk_correct) / n),
        "test_nll": float(s.nll_sum) / n,
        "test_ece": 100.0 * float((s.bin_acc_sum - s.bin_conf_sum).abs().sum()) / n,
        "test_n": int(n),
    }


@torch.no_grad()
def train_set_counts(
    model: nn.Module,
    loader: Any,
    labels: CorruptedLabels,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    channels_last: bool = False,
) -> Tensor:
    """Table 2's counts (``data.corrupt.corruption_counts``, float64 ``(10,)``) of ``model``'s predictions on the
    un-augmented training loader against the noisy and the true labels; the model's mode is restored."""
    was_training = model.training
    model.eval()
    counts = torch.zeros(10, dtype=torch.float64)
    try:
        for x, _, idx in loader:
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                pred = predicted_class(model(x))  # (B,)
            counts += corruption_counts(pred, idx, labels)
    finally:
        model.train(was_training)
    return counts


def summarize(records: Sequence[dict[str, Any]], status: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json``: best / last test error, median of the last 10 evaluated epochs, final train stats."""
    evaluated = [r for r in records if r.get("test_error") is not None]
    out: dict[str, Any] = dict(extra or {})
    # an epoch cut short by train.max_steps has a record (marked partial_epoch) but was not completed
    out.update({"status": status, "epochs_completed": sum(not r.get("partial_epoch") for r in records)})
    if evaluated:
        best = min(evaluated, key=lambda r: r["test_error"])
        last10 = [r["test_error"] for r in evaluated[-10:]]
        out.update(
            {
                "best_test_error": best["test_error"],
                "best_epoch": best["epoch"],
                "last_test_error": evaluated[-1]["test_error"],
                "last_test_top5_error": evaluated[-1].get("test_top5_error"),
                "last_test_nll": evaluated[-1].get("test_nll"),
                "last_test_ece": evaluated[-1].get("test_ece"),
                "median_last10_test_error": statistics.median(last10),
                "median_last10_n": len(last10),
            }
        )
    if evaluated and evaluated[-1].get("val_error") is not None:
        out["last_val_error"] = evaluated[-1]["val_error"]
    measured = [r for r in records if r.get("train_eval_error") is not None]
    if measured:  # the last epoch whose training set was evaluated un-augmented (Table 2's columns)
        out.update({f"last_{k}": measured[-1].get(k) for k in TRAIN_EVAL_FIELDS})
        out["train_eval_epoch"] = measured[-1]["epoch"]
    if records:
        out.update(
            {
                "last_train_loss": records[-1]["train_loss"],
                "last_train_error": records[-1]["train_error"],
                "train_time_s": sum(r["epoch_time_s"] for r in records),
            }
        )
    return out
