"""Reliability bins and diagram from named evaluation sums."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.experiments.lab_helpers import break_writer
from vicinal.experiments.evaluation import EvalSums
from vicinal.experiments.reliability import reliability_bins, save_reliability_diagram


def _hand_sums() -> EvalSums:
    # 2 bins; 4 samples: confidences 0.3 (right), 0.4 (wrong) -> bin 0; 0.9 (right), 0.8 (right) -> bin 1.
    s = EvalSums.zeros(2)
    s.n += 4
    s.bin_count += torch.tensor([2.0, 2.0], dtype=torch.float64)
    s.bin_conf_sum += torch.tensor([0.7, 1.7], dtype=torch.float64)
    s.bin_acc_sum += torch.tensor([1.0, 2.0], dtype=torch.float64)
    return s


def test_reliability_bins_hand_example() -> None:
    b = reliability_bins(_hand_sums())
    assert b["count"] == [2, 2] and b["edges"] == [0.0, 0.5, 1.0] and b["n"] == 4
    assert b["confidence"] == pytest.approx([0.35, 0.85]) and b["accuracy"] == [0.5, 1.0]
    assert b["ece"] == pytest.approx(100 * (0.3 + 0.3) / 4)


def test_reliability_bins_of_an_empty_bin_and_of_nothing() -> None:
    s = _hand_sums()
    s.bin_count[0] = 0
    b = reliability_bins(s)
    assert b["confidence"][0] is None and b["accuracy"][0] is None
    assert reliability_bins(EvalSums.zeros(3))["ece"] is None  # no examples: no ECE (not a division by zero)


def test_reliability_bins_refuse_bins_of_different_lengths() -> None:
    s = _hand_sums()
    s.bin_conf_sum = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"hold 2 bin counts, 3 confidence sums and 2 accuracy sums"):
        reliability_bins(s)


def test_save_reliability_diagram_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    save_reliability_diagram(reliability_bins(_hand_sums()), tmp_path / "r.png", title="hand")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reliability_diagram_that_fails_half_way_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matplotlib_figure = pytest.importorskip("matplotlib.figure")
    (tmp_path / "r.png").write_bytes(b"previous")
    break_writer(monkeypatch, matplotlib_figure.Figure, "savefig", 1)
    with pytest.raises(OSError, match="^disk full$"):
        save_reliability_diagram(reliability_bins(_hand_sums()), tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes() == b"previous"
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_ece_adds_the_gaps_of_over_and_under_confident_bins() -> None:
    # bin 0 under-confident (accuracy 1/2 at mean confidence 0.35 -> +0.15 per sample), bin 1 over-confident
    # (accuracy 1/2 at 0.85 -> -0.35): the ECE adds |gap| * count / N, the gaps never cancel
    s = _hand_sums()
    s.bin_acc_sum = torch.tensor([1.0, 1.0], dtype=torch.float64)
    b = reliability_bins(s)
    assert b["accuracy"] == [0.5, 0.5]
    assert b["ece"] == pytest.approx(100 * (0.3 + 0.7) / 4, rel=1e-12)  # 25, not |0.3 - 0.7| / 4 = 10
