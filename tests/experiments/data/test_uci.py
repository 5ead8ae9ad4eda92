"""Tests for vicinal.experiments.data.uci: counts against the files, splits, standardisation, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vicinal.experiments.data.uci import UCI_DATASETS, load_uci, stratified_split
from vicinal.experiments.paths import data_root

UCI_ROOT = data_root() / "uci"
needs_data = pytest.mark.skipif(
    not UCI_ROOT.is_dir(), reason=f"shared UCI data not found at {UCI_ROOT} (set VICINAL_DATA)"
)

# Counts verified in ../shared/data/uci/SOURCES.md (rows, raw class counts), independent of UCI_DATASETS.
SOURCES_COUNTS = {
    "abalone": (4177, 10, 28),
    "arcene": (200, 10000, 2),
    "arrhythmia": (452, 279, 13),
    "htru2": (17898, 8, 2),
    "iris": (150, 4, 3),
    "phishing": (11055, 30, 2),
}
SOURCES_CLASS_COUNTS = {
    "arcene": {-1.0: 112, 1.0: 88},  # train +1 x44 / -1 x56, valid the same
    "arrhythmia": dict(
        zip(
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16],
            [245, 44, 15, 15, 13, 25, 3, 2, 9, 50, 4, 5, 22],
            strict=True,
        )
    ),
    "htru2": {0.0: 17898 - 1639, 1.0: 1639},
    "iris": {0.0: 50, 1.0: 50, 2.0: 50},
    "phishing": {-1.0: 4898, 1.0: 6157},
}


@pytest.fixture(scope="module")
def loaded() -> dict:
    if not UCI_ROOT.is_dir():
        pytest.skip(f"shared UCI data not found at {UCI_ROOT} (set VICINAL_DATA)")
    return {name: load_uci(name) for name in UCI_DATASETS}


# ---------------------------------------------------------------- stratified_split


def test_stratified_split_counts_partition_and_seed() -> None:
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    keep, held = stratified_split(y, 0.2, generator=torch.Generator().manual_seed(3))
    assert held.numel() == 20 and keep.numel() == 80
    assert torch.equal(torch.sort(torch.cat([keep, held])).values, torch.arange(100))
    assert torch.bincount(y[held], minlength=3).tolist() == [10, 6, 4]
    assert torch.equal(stratified_split(y, 0.2, generator=torch.Generator().manual_seed(3))[1], held)
    assert not torch.equal(stratified_split(y, 0.2, generator=torch.Generator().manual_seed(4))[1], held)


def test_stratified_split_breaks_a_tie_of_remainders_by_its_generator() -> None:
    # 3 + 3 rows at 0.5: 1.5 each, so the third held-out slot goes to either class, as the generator draws
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    larger = set()
    for seed in range(8):
        _, held = stratified_split(y, 0.5, generator=torch.Generator().manual_seed(seed))
        counts = torch.bincount(y[held], minlength=2).tolist()
        assert sorted(counts) == [1, 2]
        larger.add(counts.index(2))
    assert larger == {0, 1}


def test_stratified_split_quotas_that_are_whole_numbers_leave_no_slot_to_draw() -> None:
    # 0.57 * 100 = 56.99999999999999 in floats: each class holds out 57 rows, target round(0.57 * 200) = 114, so
    # no remainder slot is left and the generator only shuffles each class (class by class, in label order)
    y = torch.tensor([0, 1] * 100)
    _, held = stratified_split(y, 0.57, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    expected = [torch.nonzero(y == c).flatten()[torch.randperm(100, generator=g)[:57]] for c in (0, 1)]
    assert torch.equal(held, torch.sort(torch.cat(expected)).values)


def test_stratified_split_keeps_every_class_and_hits_the_total() -> None:
    # 3 singletons + a pair: floor gives 0 each; remainders go to eligible classes only.
    y = torch.tensor([0] * 47 + [1, 2, 3] + [4, 4])
    keep, held = stratified_split(y, 0.5, generator=torch.Generator().manual_seed(0))
    assert set(y[keep].tolist()) == {0, 1, 2, 3, 4}  # no class loses its last row
    # round(0.5 * 52) = 26 slots; floors give 23 + 1, and only class 0 may take a remainder slot (24), so the
    # held-out part is one short of the target rather than emptying a class.
    assert held.numel() == 25
    assert torch.bincount(y[held], minlength=5).tolist() == [24, 0, 0, 0, 1]


def test_stratified_split_zero_fraction_and_errors() -> None:
    y = torch.tensor([0, 1, 1, 0])
    keep, held = stratified_split(y, 0.0, generator=torch.Generator().manual_seed(0))
    assert held.numel() == 0 and keep.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\), got 1.0"):
        stratified_split(y, 1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"labels must be 1-D, got shape \(2, 2\)"):
        stratified_split(y.view(2, 2), 0.5, generator=torch.Generator())


# ---------------------------------------------------------------- counts per dataset


@needs_data
@pytest.mark.parametrize("name", list(SOURCES_COUNTS))
def test_rows_features_classes_match_sources(loaded: dict, name: str) -> None:
    s = loaded[name]
    rows, features, classes = SOURCES_COUNTS[name]
    assert (UCI_DATASETS[name]["rows"], UCI_DATASETS[name]["features"], UCI_DATASETS[name]["classes"]) == (
        rows,
        features,
        classes,
    )
    parts = [s.train, s.val, s.test]
    assert sum(len(p[0]) for p in parts) == rows
    for x, y in parts:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(y), features)
        assert int(y.min()) >= 0 and int(y.max()) < classes
    assert s.num_classes == classes == len(s.info["class_values"])
    assert s.info["num_features"] == features and s.info["rows"] == rows
    assert sum(s.info["class_counts"]["all"]) == rows
    if name in SOURCES_CLASS_COUNTS:
        counts = dict(zip(s.info["class_values"], s.info["class_counts"]["all"], strict=True))
        assert counts == SOURCES_CLASS_COUNTS[name]
    # Indices partition the file's rows.
    idx = torch.cat([s.info["indices"][k] for k in ("train", "val", "test")])
    assert torch.equal(torch.sort(idx).values, torch.arange(rows))


@needs_data
def test_split_sizes_follow_the_fractions(loaded: dict) -> None:
    for name in ("abalone", "arrhythmia", "htru2", "iris", "phishing"):
        s = loaded[name]
        n = s.info["rows"]
        n_test = len(s.test[1])
        assert n_test == math.floor(0.2 * n + 0.5), name
        assert len(s.val[1]) == math.floor(0.2 * (n - n_test) + 0.5), name
    arcene = loaded["arcene"]  # official split: 100 train rows (20 of them validation), 100 valid rows as test
    assert (len(arcene.train[1]), len(arcene.val[1]), len(arcene.test[1])) == (80, 20, 100)
    assert arcene.info["indices"]["test"].tolist() == list(range(100, 200))


@needs_data
def test_abalone_one_hot_sex_and_rings_classes(loaded: dict) -> None:
    s = loaded["abalone"]
    assert s.info["class_values"] == [*range(1, 28), 29]  # Rings 28 never occurs
    mean, std = s.info["feature_mean"], s.info["feature_std"]
    raw = torch.cat([p[0] for p in (s.train, s.val, s.test)]) * std + mean  # undo the standardisation
    sex = raw[:, :3]
    assert torch.allclose(sex, sex.round(), atol=1e-5)
    assert sex.round().sum(dim=0).tolist() == [1528, 1307, 1342]  # M, F, I as in SOURCES.md
    assert torch.allclose(sex.sum(dim=1), torch.ones(len(sex)), atol=1e-5)


@needs_data
def test_arcene_test_is_the_valid_file(loaded: dict) -> None:
    s = loaded["arcene"]
    labels = np.loadtxt(UCI_ROOT / "arcene" / "arcene_valid.labels")
    assert s.test[1].tolist() == ((labels + 1) / 2).astype(int).tolist()
    raw = np.loadtxt(UCI_ROOT / "arcene" / "arcene_valid.data")[:, :5]  # (100, 5)
    expected = (torch.from_numpy(raw) - s.info["feature_mean"][:5].double()) / s.info["feature_std"][:5].double()
    assert torch.allclose(s.test[0][:, :5].double(), expected, atol=1e-4)
    # test_fraction does not change the official split.
    other = load_uci("arcene", test_fraction=0.5)
    assert torch.equal(other.test[0], s.test[0])


# ---------------------------------------------------------------- preprocessing


@needs_data
def test_standardisation_uses_training_statistics_only(loaded: dict) -> None:
    for name, s in loaded.items():
        x_train, x_test = s.train[0].double(), s.test[0].double()
        constant = s.info["feature_std"] == 1.0  # guarded (or genuinely unit-variance) columns
        varying = (x_train.std(dim=0, correction=0) > 0.5) & ~constant
        assert torch.allclose(x_train.mean(dim=0), torch.zeros(x_train.shape[1], dtype=torch.double), atol=1e-5)
        assert torch.allclose(
            x_train[:, varying].std(dim=0, correction=0), torch.ones(int(varying.sum()), dtype=torch.double), atol=1e-4
        ), name
        # The test split was not used for the statistics: its means are not all zero.
        assert x_test.mean(dim=0).abs().max() > 1e-3, name


@needs_data
def test_iris_matches_an_independent_reference(loaded: dict) -> None:
    s = loaded["iris"]
    raw = np.genfromtxt(UCI_ROOT / "iris" / "bezdekIris.data", delimiter=",", usecols=range(4))  # (150, 4)
    names = np.genfromtxt(UCI_ROOT / "iris" / "bezdekIris.data", delimiter=",", usecols=4, dtype=str)
    tr = s.info["indices"]["train"].numpy()
    mu, sd = raw[tr].mean(axis=0), raw[tr].std(axis=0)
    for split, key in ((s.train, "train"), (s.val, "val"), (s.test, "test")):
        idx = s.info["indices"][key].numpy()
        np.testing.assert_allclose(split[0].numpy(), (raw[idx] - mu) / sd, atol=1e-5)
        labels = np.searchsorted(["Iris-setosa", "Iris-versicolor", "Iris-virginica"], names[idx])
        assert split[1].tolist() == labels.tolist()
    assert s.info["class_counts"]["test"] == [10, 10, 10]
    assert s.info["majority_class_error"] == pytest.approx(2 / 3)


@needs_data
def test_arrhythmia_imputes_training_medians(loaded: dict) -> None:
    s = loaded["arrhythmia"]
    for x, _ in (s.train, s.val, s.test):
        assert not torch.isnan(x).any()
    raw = np.genfromtxt(UCI_ROOT / "arrhythmia" / "arrhythmia.data", delimiter=",", missing_values="?")
    tr = s.info["indices"]["train"].numpy()
    col = 13  # 'J' angle: 376 of 452 values missing
    median = np.nanmedian(raw[tr, col])
    filled = np.where(np.isnan(raw[:, col]), median, raw[:, col])
    expected = (filled - filled[tr].mean()) / filled[tr].std()
    got = torch.cat([s.train[0], s.val[0], s.test[0]])[:, col].numpy()
    order = torch.cat([s.info["indices"][k] for k in ("train", "val", "test")]).numpy()
    np.testing.assert_allclose(got, expected[order], atol=1e-4)
    # Constant columns are kept: they are exactly zero on the training split.
    const = np.ptp(raw[tr, :279], axis=0) == 0
    assert const.sum() >= 13
    assert torch.all(s.train[0][:, torch.from_numpy(const)] == 0)


@needs_data
def test_every_class_is_in_train_and_splits_are_stratified(loaded: dict) -> None:
    for name, s in loaded.items():
        cc = s.info["class_counts"]
        assert all(c > 0 for c in cc["train"]), name  # abalone/arrhythmia singletons stay in train
        if name == "arcene":
            continue
        for n_all, n_test in zip(cc["all"], cc["test"], strict=True):
            assert abs(n_test - 0.2 * n_all) < 1.0 + 1e-9, name


@needs_data
def test_majority_class_error_is_computed_from_train_majority(loaded: dict) -> None:
    for s in loaded.values():
        majority = torch.bincount(s.train[1]).argmax()
        assert s.info["majority_class_error"] == pytest.approx(float((s.test[1] != majority).double().mean()))
    # HTRU2: 1639 pulsars of 17898 -> 328 in the 3580 test rows (stratified), majority = noise.
    assert loaded["htru2"].info["majority_class_error"] == pytest.approx(328 / 3580)


@needs_data
def test_test_rows_seen_in_training_are_counted(loaded: dict) -> None:
    # phishing's 11055 rows hold 5785 distinct vectors: most test rows occur in train too (stated in its split doc)
    for name, s in loaded.items():
        train = {tuple(r) for r in s.train[0].tolist()}
        assert s.info["test_rows_in_train"] == sum(tuple(r) in train for r in s.test[0].tolist()), name
    assert loaded["phishing"].info["test_rows_in_train"] > 0.5 * len(loaded["phishing"].test[1])
    assert all(loaded[n].info["test_rows_in_train"] == 0 for n in ("abalone", "arcene", "arrhythmia", "htru2"))


@needs_data
def test_same_seed_same_split_other_seed_other_split(loaded: dict) -> None:
    a = load_uci("iris", seed=0)
    b = load_uci("iris", seed=1)
    assert torch.equal(a.info["indices"]["test"], loaded["iris"].info["indices"]["test"])
    assert torch.equal(a.train[0], loaded["iris"].train[0])
    assert not torch.equal(a.info["indices"]["test"], b.info["indices"]["test"])
    no_val = load_uci("iris", val_fraction=0.0)
    assert no_val.val is None and len(no_val.train[1]) == 120


# ---------------------------------------------------------------- errors and robustness


def test_unknown_name_lists_the_six() -> None:
    with pytest.raises(
        ValueError,
        match="unknown UCI dataset 'wine'; expected one of abalone, arcene, arrhythmia, htru2, iris, phishing",
    ):
        load_uci("wine")


def test_missing_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"folder {tmp_path / 'iris'} does not exist"):
        load_uci("iris", root=tmp_path)
    (tmp_path / "arcene").mkdir()
    with pytest.raises(FileNotFoundError, match="arcene_train.data is missing"):
        load_uci("arcene", root=tmp_path)


def test_bad_fractions() -> None:
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 0.0"):
        load_uci("iris", test_fraction=0.0)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got -0.1"):
        load_uci("iris", val_fraction=-0.1)


def _write_iris(root: Path, text: str, newline: str) -> None:
    (root / "iris").mkdir()
    (root / "iris" / "bezdekIris.data").write_bytes(text.replace("\n", newline).encode())


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_are_read_robustly(tmp_path: Path, newline: str) -> None:
    rows = [f"{i}.0,{i % 3}.5,1.0,2.0,{'AB'[i % 2]}" for i in range(10)]
    _write_iris(tmp_path, "\n".join(rows) + "\n\n", newline)
    s = load_uci("uci:IRIS", root=tmp_path, test_fraction=0.2, val_fraction=0.0)
    assert s.num_classes == 2 and s.info["class_values"] == [0, 1]
    assert len(s.train[1]) + len(s.test[1]) == 10 and s.info["class_counts"]["test"] == [1, 1]
    # The constant column 2 (all 1.0) is kept and standardises to 0 without dividing by zero.
    assert torch.all(s.train[0][:, 2] == 0) and torch.all(torch.isfinite(s.test[0]))


def test_a_column_constant_on_train_is_zero_in_every_split(tmp_path: Path) -> None:
    # it standardised to 0 on train but kept x - c elsewhere, which the column's never-trained random weights turned
    # into noise on validation and test rows (up to 132 standard units on Arcene)
    rows = [f"{i}.0,{i % 3}.5,{'1.0' if i < 8 else '7.0'},2.0,{'AB'[i % 2]}" for i in range(10)]
    _write_iris(tmp_path, "\n".join(rows) + "\n", "\n")
    for seed in range(5):
        s = load_uci("iris", root=tmp_path, test_fraction=0.2, val_fraction=0.0, seed=seed)
        train_rows = s.info["indices"]["train"].tolist()
        if all(r < 8 for r in train_rows):  # column 2 is 1.0 on every training row; 7.0 is in test
            assert s.info["constant_columns"] == 2  # columns 2 and 3
            assert torch.all(s.train[0][:, 2:4] == 0) and torch.all(s.test[0][:, 2:4] == 0)
            break
    else:
        pytest.fail("no seed put both 7.0 rows in test")
    assert s.test[0][:, :2].abs().sum() > 0  # the varying columns are standardised, not zeroed


def test_an_infinite_value_is_named(tmp_path: Path) -> None:
    # it turned its column into NaN in every split, silently
    _write_iris(tmp_path, "1,2,3,4,A\n1,inf,3,4,B\n1,2,3,5,A\n2,2,3,4,B\n", "\n")
    with pytest.raises(ValueError, match=r"iris: 1 infinite value\(s\) in the data \(first: row 2, column 2\)"):
        load_uci("iris", root=tmp_path)


def test_malformed_row_names_file_and_row(tmp_path: Path) -> None:
    _write_iris(tmp_path, "1,2,3,4,A\n1,2,3,A\n", "\n")
    with pytest.raises(ValueError, match=r"bezdekIris.data: data row 2 has 4 fields, expected 5"):
        load_uci("iris", root=tmp_path)


def test_non_number_names_file_and_row(tmp_path: Path) -> None:
    _write_iris(tmp_path, "1,2,3,4,A\n1,x,3,4,A\n", "\n")
    with pytest.raises(ValueError, match=r"bezdekIris.data: data row 2: could not convert string to float: 'x'"):
        load_uci("iris", root=tmp_path)
