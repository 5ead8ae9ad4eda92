"""Corrupted labels (Table 2, data/corrupt.py): the corruption rule, the training-error counts and build_data's option
(the trainer's Table 2 columns are tested in test_callbacks.py)."""

from __future__ import annotations

import pytest
import torch

from tests.experiments.lab_helpers import SYNTHETIC, one_thread, register_synthetic  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments.data import DATASETS, build_data, register_dataset
from vicinal.experiments.data.corrupt import (
    CorruptedLabels,
    corrupt_labels,
    corruption_counts,
    counts_to_errors,
)
from vicinal.experiments.data.registry import bundle_from_splits
from vicinal.experiments.data.seeds import STREAM_CORRUPT, derive_seed


def test_exact_count_and_only_chosen_labels_change() -> None:
    y = torch.arange(10).repeat(100)  # (1000,)
    c = corrupt_labels(y, 10, 0.2, seed=7)
    assert int(c.replaced.sum()) == 200  # round(0.2 * 1000), not a per-sample coin
    assert torch.equal(c.noisy[~c.replaced], y[~c.replaced])  # kept labels untouched
    assert torch.equal(c.true, y)
    assert c.wrong.sum() <= c.replaced.sum()
    # A redrawn label equals the true one by chance (1/10): some replaced labels are still correct.
    same = int((c.noisy[c.replaced] == y[c.replaced]).sum())
    assert 0 < same < 50
    s = c.stats()
    assert s["n_replaced"] == 200 and s["replaced_fraction"] == 0.2
    assert s["n_wrong"] == 200 - same and s["wrong_fraction"] == (200 - same) / 1000


def test_deterministic_per_seed_and_edge_fractions() -> None:
    y = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(0))
    a, b = corrupt_labels(y, 10, 0.5, seed=3), corrupt_labels(y, 10, 0.5, seed=3)
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.replaced, b.replaced)
    assert not torch.equal(a.noisy, corrupt_labels(y, 10, 0.5, seed=4).noisy)
    assert torch.equal(corrupt_labels(y, 10, 0.0, seed=3).noisy, y)
    assert bool(corrupt_labels(y, 10, 1.0, seed=3).replaced.all())


def test_replacements_are_uniform_over_all_classes() -> None:
    y = torch.zeros(100_000, dtype=torch.int64)  # every true label is 0
    c = corrupt_labels(y, 10, 0.8, seed=0)
    counts = torch.bincount(c.noisy[c.replaced], minlength=10).double()  # (10,) 80,000 draws
    expected = 8000.0
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001
    # About fraction * (1 - 1/C) of the labels end up wrong: 0.8 * 0.9 = 0.72; the wrong count is
    # Binomial(80,000, 0.9), sd 85 samples = 0.00085 of 100,000: 4 sd = 0.0034.
    assert abs(c.stats()["wrong_fraction"] - 0.72) < 0.0034


def test_counts_against_a_hand_example() -> None:
    true = torch.tensor([0, 1, 2, 3, 0, 1])
    noisy = torch.tensor([0, 1, 2, 0, 0, 2])  # samples 3, 4, 5 replaced; 4 was redrawn as its true label
    replaced = torch.tensor([False, False, False, True, True, True])
    c = CorruptedLabels(true, noisy, replaced, 0.5, 0, 4)
    pred = torch.tensor([0, 2, 2, 3, 0, 2])  # wrong on kept sample 1; on 3 predicts the truth; on 5 the noise
    counts = corruption_counts(pred[[5, 0, 1]], torch.tensor([5, 0, 1]), c) + corruption_counts(
        pred[[2, 3, 4]], torch.tensor([2, 3, 4]), c
    )
    err = counts_to_errors(counts)
    assert err["train_error_real"] == pytest.approx(100 / 3)  # kept: 0, 1, 2 -> 1 wrong
    assert err["train_error_corrupted"] == pytest.approx(100 / 3)  # replaced vs noisy: 3 wrong, 4 and 5 right
    assert err["train_error_corrupted_true"] == pytest.approx(100 / 3)  # replaced vs truth: 5 wrong
    assert err["train_error_wrong"] == 50.0  # actually wrong labels: 3 and 5; 3 is wrong vs noisy
    assert err["train_eval_error"] == pytest.approx(200 / 6)  # vs noisy: samples 1 and 3
    assert err["train_true_error"] == pytest.approx(200 / 6)  # vs true: samples 1 and 5
    empty = counts_to_errors(corruption_counts(pred[:3], torch.arange(3), c))
    assert empty["train_error_corrupted"] is None and empty["train_error_real"] == pytest.approx(100 / 3)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.tensor([0.0, 1.0]), 2, 0.1, 0), TypeError, r"y must be an integer tensor, got torch.float32"),
        (
            (torch.zeros(2, 2, dtype=torch.int64), 2, 0.1, 0),
            ValueError,
            r"y must have shape \(N,\), got shape \(2, 2\)",
        ),
        ((torch.tensor([0, 1]), 2, 1.5, 0), ValueError, r"fraction must be a float in \[0, 1\], got 1.5"),
        ((torch.tensor([0, 1]), 1, 0.1, 0), ValueError, r"num_classes must be an int >= 2, got 1"),
        ((torch.tensor([0, 1]), 2, 0.1, -1), ValueError, r"seed must be an int >= 0, got -1"),
        ((torch.tensor([0, 5]), 2, 0.1, 0), ValueError, r"labels must lie in \[0, 2\), got range \[0, 5\]"),
    ],
)
def test_corrupt_labels_errors(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        corrupt_labels(*args)


def test_counts_shape_error() -> None:
    c = corrupt_labels(torch.tensor([0, 1]), 2, 0.5, 0)
    with pytest.raises(ValueError, match=r"pred and idx must both have shape \(B,\), got \(2,\) and \(3,\)"):
        corruption_counts(torch.tensor([0, 1]), torch.tensor([0, 1, 0]), c)


def test_build_data_corrupts_the_training_labels_only() -> None:
    register_synthetic()
    clean = build_data(SYNTHETIC, batch_size=32, seed=1)
    bundle = build_data(SYNTHETIC, batch_size=32, seed=1, corrupt_fraction=0.5, corrupt_seed=9)
    c = bundle.corruption
    assert c is not None and clean.corruption is None
    assert torch.equal(c.true, clean.train_dataset_y)
    assert torch.equal(bundle.train_dataset_y, c.noisy) and int(c.replaced.sum()) == 80  # 160 samples
    assert torch.equal(c.noisy, corrupt_labels(clean.train_dataset_y, 10, 0.5, 9).noisy)
    ys = torch.cat([y for _, y, _ in bundle.train_eval])  # un-augmented, in order: the noisy labels
    assert torch.equal(ys, c.noisy)
    _, y, idx = next(iter(bundle.train))
    assert torch.equal(y, c.noisy[idx])
    test_y = torch.cat([y for _, y, _ in bundle.test])
    assert torch.equal(test_y, torch.cat([y for _, y, _ in clean.test]))  # test labels intact
    assert bundle.info["corruption"]["n_replaced"] == 80


def test_build_data_corruption_errors() -> None:
    register_synthetic()
    with pytest.raises(ValueError, match=r"corrupt_fraction must be in \[0, 1\], got 2"):
        build_data(SYNTHETIC, corrupt_fraction=2)
    with pytest.raises(TypeError, match=r"corrupt_fraction must be a float in \[0, 1\], got str"):
        build_data(SYNTHETIC, corrupt_fraction="0.5")
    if "streamed_fake" not in DATASETS:  # a builder that returns a finished DataBundle (like ImageFolder)

        @register_dataset("streamed_fake")
        def _fake(req, **kwargs):  # type: ignore[no-untyped-def]
            from tests.experiments.lab_helpers import synthetic_splits

            return bundle_from_splits(synthetic_splits(), req, "streamed_fake")

    with pytest.raises(ValueError, match=r"needs an in-memory dataset; 'streamed_fake' streams from disk"):
        build_data("streamed_fake", corrupt_fraction=0.2)


def test_each_training_error_column_has_its_own_count() -> None:
    # every column differs from the one its neighbours' counts would give: vs noisy or true labels, over the
    # replaced or the actually wrong samples
    true = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    noisy = torch.tensor([0, 1, 2, 3, 1, 2, 3, 3])  # 4..7 replaced; 7 redrawn as its true label
    replaced = torch.tensor([False] * 4 + [True] * 4)
    c = CorruptedLabels(true, noisy, replaced, 0.5, 0, 4)
    pred = torch.tensor([0, 2, 2, 3, 1, 2, 2, 0])  # kept: 1 wrong; 4, 5 predict the noise, 6 the truth, 7 neither
    err = counts_to_errors(corruption_counts(pred, torch.arange(8), c))
    assert err == {
        "train_eval_error": 100 * 3 / 8,  # vs noisy: 1, 6, 7
        "train_true_error": 100 * 4 / 8,  # vs true: 1, 4, 5, 7
        "train_error_real": 100 * 1 / 4,  # kept 0..3: 1
        "train_error_corrupted": 100 * 2 / 4,  # replaced vs noisy: 6, 7
        "train_error_corrupted_true": 100 * 3 / 4,  # replaced vs true: 4, 5, 7
        "train_error_wrong": 100 * 1 / 3,  # wrong labels 4, 5, 6 vs noisy: 6
    }


def test_the_replaced_count_is_rounded_not_truncated() -> None:
    # round(fraction * N): 0.29 * 100 is 28.999999999999996 in floating point, and 29 labels are replaced
    c = corrupt_labels(torch.arange(100) % 10, 10, 0.29, seed=0)
    assert int(c.replaced.sum()) == 29 and c.stats()["replaced_fraction"] == 0.29


def test_the_corruption_draws_from_its_own_seed_stream() -> None:
    # the module's rule: one CPU generator seeded derive_seed(seed, STREAM_CORRUPT) chooses the samples, then draws
    # their labels; seeded with the bare seed, the corruption would share its draws with other streams of that seed
    y = torch.arange(40) % 4
    c = corrupt_labels(y, 4, 0.25, seed=5)
    gen = torch.Generator().manual_seed(derive_seed(5, STREAM_CORRUPT))
    chosen = torch.randperm(40, generator=gen)[:10]
    new = torch.randint(0, 4, (10,), generator=gen)
    assert torch.equal(torch.nonzero(c.replaced).flatten(), chosen.sort().values)
    assert torch.equal(c.noisy[chosen], new)
