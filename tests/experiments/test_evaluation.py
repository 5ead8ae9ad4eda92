"""Evaluation sums as a named result (experiments/evaluation.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vicinal.experiments.data.corrupt import CorruptedLabels, counts_to_errors
from vicinal.experiments.errors import RunError
from vicinal.experiments.evaluation import (
    TRAIN_EVAL_FIELDS,
    EvalSums,
    eval_metrics,
    evaluate,
    summarize,
    train_set_counts,
)


def _loader() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    logits = torch.randn(30, 4) * 3
    y = torch.randint(0, 4, (30,))
    return [(logits[:16], y[:16], torch.arange(16)), (logits[16:], y[16:], torch.arange(16, 30))]


def test_evaluate_names_its_sums() -> None:
    loader = _loader()
    logits = torch.cat([b[0] for b in loader])
    y = torch.cat([b[1] for b in loader])
    s = evaluate(nn.Identity(), loader, n_bins=5)
    assert s.n_bins == 5 and s.n.dtype == torch.float64 and float(s.n) == 30
    assert float(s.top1_correct) == (logits.argmax(1) == y).sum().item()
    assert float(s.topk_correct) == 30  # k = min(5, C) = 4 = C: the label is always among them
    assert float(s.nll_sum) == pytest.approx(torch.nn.functional.cross_entropy(logits, y, reduction="sum").item())
    conf = logits.softmax(1).max(1).values
    assert s.bin_count.tolist() == [float(((conf > b / 5) & (conf <= (b + 1) / 5)).sum()) for b in range(5)]
    assert float(s.bin_conf_sum.sum()) == pytest.approx(conf.double().sum().item())
    assert float(s.bin_acc_sum.sum()) == float(s.top1_correct)


def test_the_nll_does_not_depend_on_the_evaluation_batch_size() -> None:
    # the float32 sum per batch gave 0.16311314348784434 at one eval batch size and 0.1631131514483979 at another
    # for one checkpoint, where a resume may change data.eval_batch_size and is said to continue bit-identically
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(1000, 10, generator=g) * 4, torch.randint(0, 10, (1000,), generator=g)
    sums = {
        size: float(
            evaluate(
                nn.Identity(), [(logits[i : i + size], y[i : i + size], None) for i in range(0, 1000, size)]
            ).nll_sum
        )
        for size in (1000, 250, 100, 40)
    }
    assert len(set(sums.values())) == 1, sums


def test_pack_unpack_round_trip_and_shape_check() -> None:
    s = evaluate(nn.Identity(), _loader(), n_bins=3)
    packed = s.pack()
    assert packed.shape == (4 + 3 * 3,) and packed.dtype == torch.float64
    back = EvalSums.unpack(packed)
    for name in ("n", "nll_sum", "top1_correct", "topk_correct", "bin_count", "bin_conf_sum", "bin_acc_sum"):
        assert torch.equal(getattr(back, name), getattr(s, name)), name
    assert back.metrics() == s.metrics()
    with pytest.raises(ValueError, match=r"packed evaluation sums must have shape \(4 \+ 3 \* n_bins,\), got \(6,\)"):
        EvalSums.unpack(torch.zeros(6))


def test_evaluate_restores_the_mode_and_refuses_an_empty_loader() -> None:
    model = nn.Dropout(0.5).train()
    evaluate(model, _loader())
    assert model.training
    with pytest.raises(ValueError, match=r"the evaluation loader yielded no batches"):
        evaluate(model, [])


def test_train_set_counts_against_noisy_and_true_labels() -> None:
    loader = _loader()
    true = torch.cat([b[1] for b in loader])
    noisy = true.clone()
    noisy[:5] = (noisy[:5] + 1) % 4  # 5 replaced labels, each now wrong
    replaced = torch.zeros(30, dtype=torch.bool)
    replaced[:5] = True
    labels = CorruptedLabels(true, noisy, replaced, 5 / 30, 0, 4)
    errors = counts_to_errors(train_set_counts(nn.Identity(), loader, labels))
    pred = torch.cat([b[0] for b in loader]).argmax(1)
    assert errors["train_eval_error"] == pytest.approx(100 * (pred != noisy).double().mean().item())
    assert errors["train_true_error"] == pytest.approx(100 * (pred != true).double().mean().item())


# -- evaluation ---------------------------------------------------------------------------------------------------
def test_evaluate_against_direct_formulas() -> None:
    torch.manual_seed(0)
    logits = torch.randn(50, 7) * 3
    y = torch.randint(0, 7, (50,))
    model = nn.Identity()
    loader = [(logits[:20], y[:20], None), (logits[20:], y[20:], None)]
    m = eval_metrics(evaluate(model, loader))
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    top5 = logits.topk(5, 1).indices
    assert m["test_n"] == 50
    assert m["test_error"] == pytest.approx(100 * (pred != y).double().mean().item())
    assert m["test_top5_error"] == pytest.approx(100 * (1 - (top5 == y[:, None]).any(1).double().mean().item()))
    assert m["test_nll"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    ece = 0.0  # Guo et al. 2017: sum over 15 equal-width bins of |acc - conf| * n_bin / N
    for b in range(15):
        inside = (conf > b / 15) & (conf <= (b + 1) / 15)
        if inside.any():
            acc = (pred[inside] == y[inside]).double().mean().item()
            ece += abs(acc - conf[inside].double().mean().item()) * inside.sum().item() / 50
    assert m["test_ece"] == pytest.approx(100 * ece, rel=1e-9)


def test_summarize() -> None:
    records = [
        {"epoch": i + 1, "test_error": e, "train_loss": 1.0 / (i + 1), "train_error": 50.0 - i, "epoch_time_s": 2.0}
        for i, e in enumerate([30.0, 20.0, 25.0, 10.0, 12.0, 11.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0])
    ]
    s = summarize(records, "complete")
    assert s["best_test_error"] == 10.0 and s["best_epoch"] == 4 and s["last_test_error"] == 18.0
    assert s["median_last10_test_error"] == 14.5  # median of epochs 3..12
    assert s["train_time_s"] == 24.0 and s["epochs_completed"] == 12 and s["status"] == "complete"


class _Constant(nn.Module):
    """Outputs ``rows`` for every batch (cycled), whatever the input."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.rows = rows
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows[: x.shape[0]] + self.w


def test_a_sample_with_non_finite_outputs_is_never_correct() -> None:
    # an all-NaN row ranked first and predicted class 0: a NaN model scored 90% top-1 and 50% top-5 error
    y = torch.arange(10)
    logits = torch.randn(10, 10)
    logits[y, y] = 10.0  # every finite row right
    logits[:5] = float("nan")
    m = evaluate(_Constant(logits), [(torch.zeros(10, 1), y, y)]).metrics()
    assert m["test_error"] == 50.0 and m["test_top5_error"] == 50.0 and m["test_n"] == 10
    assert torch.isnan(torch.tensor(m["test_nll"]))


def test_a_process_with_no_test_sample_adds_zero_sums() -> None:
    # under DDP a split smaller than the world leaves a rank with no batch: "the evaluation loader yielded no batches"
    model = _Constant(torch.zeros(1, 3))
    with pytest.raises(RunError, match=r"^the evaluation loader yielded no batches$"):
        evaluate(model, [])
    empty = evaluate(model, [], allow_empty=True)
    assert float(empty.n) == 0.0 and float(empty.bin_count.sum()) == 0.0
    with pytest.raises(RunError, match=r"^the evaluation split is empty$"):
        eval_metrics(empty)


def test_an_epoch_cut_short_by_max_steps_is_not_completed() -> None:
    rec = {"train_loss": 1.0, "train_error": 50.0, "epoch_time_s": 2.0}
    records = [{"epoch": 1, "test_error": 30.0, **rec}, {"epoch": 2, "test_error": 20.0, "partial_epoch": True, **rec}]
    assert summarize(records, "max_steps")["epochs_completed"] == 1


def test_the_training_set_counts_never_count_non_finite_outputs_correct() -> None:
    # the test evaluation already did; the training error (and Table 2's columns) still read NaN rows as class 0
    loader = _loader()
    true = torch.cat([b[1] for b in loader])
    labels = CorruptedLabels(true, true.clone(), torch.zeros(30, dtype=torch.bool), 0.0, 0, 4)
    errors = counts_to_errors(train_set_counts(_Constant(torch.full((30, 4), float("nan"))), loader, labels))
    assert errors["train_eval_error"] == 100.0 and errors["train_true_error"] == 100.0


def test_confidence_bins_are_closed_on_the_right() -> None:
    # Guo et al.'s bin i is (i/M, (i+1)/M]: a confidence of exactly 0.25 belongs to bin 0 and 0.5 to bin 1 (four
    # classes at equal logits, two at equal logits and two at -1e4, whose probabilities underflow to 0), 1 to the last
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1e4, -1e4], [1e4, 0.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    s = evaluate(nn.Identity(), [(logits, y, None)], n_bins=4)
    assert logits.softmax(1).max(1).values.tolist() == [0.25, 0.5, 1.0]
    assert s.bin_count.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert s.bin_conf_sum.tolist() == [0.25, 0.5, 0.0, 1.0] and s.bin_acc_sum.tolist() == [1.0, 0.0, 0.0, 1.0]
    # |1 - 0.25| + |0 - 0.5| + |1 - 1| over 3 samples
    assert s.metrics()["test_ece"] == pytest.approx(100 * 1.25 / 3, rel=1e-12)


def test_a_row_with_one_non_finite_logit_is_never_in_the_top_k() -> None:
    # one NaN or +Inf logit beside a label scored 10.0: the label is among the 5 largest, but the row is no valid
    # prediction (its softmax is NaN); top-5 counted it correct where top-1 did not
    logits = torch.zeros(3, 10)
    logits[:, 7] = 10.0
    logits[0, 3] = float("nan")
    logits[1, 2] = float("inf")
    y = torch.full((3,), 7)
    m = evaluate(nn.Identity(), [(logits, y, None)]).metrics()
    assert m["test_error"] == pytest.approx(200 / 3) and m["test_top5_error"] == pytest.approx(200 / 3)


def test_summarize_reads_each_field_from_the_right_epoch() -> None:
    # evaluated every other epoch (test_error None in between, as the trainer records it); two epochs tie for best;
    # the validation error and the un-augmented training errors come from the last epoch that measured them, the
    # training loss and error from the last epoch
    def rec(epoch: int, **fields: object) -> dict[str, object]:
        base = {"epoch": epoch, "test_error": None, "train_loss": 0.5, "train_error": 9.0, "epoch_time_s": 1.0}
        return {**base, **fields}

    train_eval = dict.fromkeys(TRAIN_EVAL_FIELDS, 1.0)
    records = [
        rec(1),
        rec(2, test_error=20.0, test_top5_error=5.0, test_nll=0.9, test_ece=3.0, val_error=21.0, **train_eval),
        rec(3),
        rec(4, test_error=20.0, test_top5_error=4.0, test_nll=0.8, test_ece=2.0, val_error=22.0),
        rec(5, **{**train_eval, "train_eval_error": 2.0, "train_error_real": 3.0}),
        rec(6, test_error=25.0, test_top5_error=6.0, test_nll=1.1, test_ece=4.0, val_error=23.0),
        rec(7, train_loss=0.25, train_error=7.0),  # stopped before its evaluation: the training stats are its own
    ]
    s = summarize(records, "complete")
    assert s["best_test_error"] == 20.0 and s["best_epoch"] == 2  # the first epoch to reach it
    assert (s["last_test_error"], s["last_test_top5_error"], s["last_test_nll"], s["last_test_ece"]) == (
        25.0,
        6.0,
        1.1,
        4.0,
    )
    assert s["last_val_error"] == 23.0
    assert s["median_last10_test_error"] == 20.0 and s["median_last10_n"] == 3  # over the 3 evaluations
    assert s["train_eval_epoch"] == 5 and s["last_train_eval_error"] == 2.0 and s["last_train_error_real"] == 3.0
    assert s["last_train_error_corrupted"] == 1.0
    assert (s["last_train_loss"], s["last_train_error"]) == (0.25, 7.0)
    assert s["train_time_s"] == 7.0 and s["epochs_completed"] == 7
