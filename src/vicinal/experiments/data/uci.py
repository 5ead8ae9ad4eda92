"""The six UCI tabular datasets of the paper's Table 4 (right), as standardised float tensors.

The paper trains a 2x128 ReLU MLP with Adam for 10 epochs at batch 16 and states neither splits nor repeats
(``/work/shared/paper/EXPERIMENTS.md`` section 3.6). This module fixes those choices, once, for every run:

* a stratified, seeded split where the dataset has no official one: ``test_fraction`` of all rows is held out
  as test, then ``val_fraction`` of the rest as validation (Arcene has an official split: its ``valid`` files
  are the test set, and the validation part is carved out of its ``train`` files);
* every class present in the file keeps at least one row in the training split (see :func:`stratified_split`),
  so no label the model is evaluated on is absent from training; labels are remapped to ``0..C-1`` in
  sorted order of their original values (``info["class_values"]`` keeps the originals);
* features are standardised with the mean and (population) standard deviation of the *training split only*
  (no information from validation or test leaks in); a column that is constant on the training split is set to
  0 in every split: it carries nothing the model can learn (it standardises to 0 on train, so its weights get no
  gradient and keep their random initial values, which would turn its other values in validation and test, up
  to 132 on Arcene, into noise). ``info["feature_std"]`` says 1 for those columns and ``info["constant_columns"]``
  counts them.

:data:`UCI_DATASETS` documents each dataset: files, rows, features, classes, preprocessing, split.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vicinal.experiments.data.base import (
    STREAM_SPLIT,
    TensorSplits,
    check_fraction,
    file_list_key,
    make_generator,
    stat_files,
)
from vicinal.experiments.errors import DataError, DataNotFoundError
from vicinal.experiments.paths import data_root

__all__ = ["UCI_DATASETS", "check_uci_files", "load_uci", "stratified_split"]

# Documentation table and the single source of truth for the loaders below. Rows/features/classes are what
# load_uci returns (features after preprocessing, e.g. one-hot); the tests check them against the files and
# against ../shared/data/uci/SOURCES.md.
UCI_DATASETS: dict[str, dict[str, Any]] = {
    "abalone": {
        "files": ("abalone/abalone.data",),
        "rows": 4177,
        "features": 10,
        "classes": 28,
        "preprocessing": (
            "Sex one-hot in the order M, F, I (3 columns) followed by the 7 physical measurements; "
            "the class is Rings (values 1..27 and 29 occur, 28 distinct values -> 28 classes; Rings=28 never "
            "occurs and gets no class); all 10 columns standardised with training-split statistics"
        ),
        "split": "stratified by Rings: test_fraction of all rows, then val_fraction of the rest",
    },
    "arcene": {
        "files": (
            "arcene/arcene_train.data",
            "arcene/arcene_train.labels",
            "arcene/arcene_valid.data",
            "arcene/arcene_valid.labels",
        ),
        "rows": 200,
        "features": 10000,
        "classes": 2,
        "preprocessing": (
            "10000 integer features standardised with training-split statistics (columns constant on the "
            "training split are kept, as zeros in every split); labels -1/+1 -> 0/1"
        ),
        "split": (
            "official: arcene_train (100 rows) is the training pool, arcene_valid (100 rows) is used as the "
            "TEST set (the official test labels were never published); val_fraction of the training pool, "
            "stratified, is held out as validation; test_fraction is ignored"
        ),
    },
    "arrhythmia": {
        "files": ("arrhythmia/arrhythmia.data",),
        "rows": 452,
        "features": 279,
        "classes": 13,
        "preprocessing": (
            "'?' (408 missing values, 5 columns) imputed with the training-split column median (0 if a column "
            "is entirely missing on the training split); constant columns are KEPT so that the feature count "
            "is 279 for every seed (as zeros in every split); class values 1-10, 14, 15, 16 occur "
            "(11-13 never do) -> 13 classes"
        ),
        "split": "stratified by class: test_fraction of all rows, then val_fraction of the rest",
    },
    "htru2": {
        "files": ("htru2/HTRU_2.csv",),
        "rows": 17898,
        "features": 8,
        "classes": 2,
        "preprocessing": (
            "file has CR-only line endings and no header; read with universal newlines; 8 features "
            "standardised with training-split statistics; class 0 = noise, 1 = pulsar"
        ),
        "split": "stratified by class: test_fraction of all rows, then val_fraction of the rest",
    },
    "iris": {
        "files": ("iris/bezdekIris.data",),
        "rows": 150,
        "features": 4,
        "classes": 3,
        "preprocessing": (
            "UCI's corrected bezdekIris.data (not iris.data); 4 features standardised with training-split "
            "statistics; classes Iris-setosa, Iris-versicolor, Iris-virginica -> 0, 1, 2"
        ),
        "split": "stratified by class: test_fraction of all rows, then val_fraction of the rest",
    },
    "phishing": {
        "files": ("phishing/Training Dataset.arff",),
        "rows": 11055,
        "features": 30,
        "classes": 2,
        "preprocessing": (
            "ARFF @data section parsed by hand; 30 features with values in {-1, 0, 1} standardised with "
            "training-split statistics; Result -1/1 -> 0/1"
        ),
        "split": (
            "stratified by class: test_fraction of all rows, then val_fraction of the rest. The file's 11055 rows "
            "hold only 5785 distinct feature vectors, so about 59% of the test rows (58.5-60.0% for seeds 0-4) "
            "have an identical row in the training split (info['test_rows_in_train']): the rows are split as "
            "the file gives them, as the paper's protocol reads"
        ),
    },
}


def _rows_in(rows: Tensor, pool: Tensor) -> int:
    """How many of ``rows`` (N, D) equal some row of ``pool`` (M, D), compared by their bytes."""
    seen = {r.tobytes() for r in pool.contiguous().numpy()}
    return sum(r.tobytes() in seen for r in rows.contiguous().numpy())


def stratified_split(labels: Tensor, fraction: float, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Split indices into a kept part and a held-out ``fraction``, class by class, reproducibly.

    The held-out size is ``round(fraction * N)``. Each class first gets ``floor(fraction * n_c)`` held-out
    rows; the remaining slots go to the classes with the largest fractional remainders (ties broken by
    ``generator``). A class never gives away its last row, so every class of ``labels`` stays in the kept
    part (a singleton class is always kept); the held-out part may therefore be slightly smaller than
    ``round(fraction * N)`` when many classes are tiny.

    Args:
        labels: integer class labels, shape (N,).
        fraction: share to hold out, in [0, 1).
        generator: CPU ``torch.Generator`` that shuffles each class (the same state gives the same split).

    Returns:
        ``(kept, held_out)``: sorted int64 index tensors that partition ``range(N)``.

    Raises:
        ValueError: if ``labels`` is not 1-D or ``fraction`` is outside [0, 1).
    """
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    labels = labels.long().cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    target = math.floor(fraction * labels.numel() + 0.5)
    exact = fraction * counts.double()  # (C,) ideal held-out rows per class
    # +1e-9 so that e.g. 0.1 * 270 = 27.000000000000004 and 0.57 * 100 = 56.99999999999999 both floor right.
    cap = (counts - 1).clamp(min=0)  # keep at least one row of every class
    quota = torch.minimum(torch.floor(exact + 1e-9).long(), cap)
    extra = target - int(quota.sum())
    if extra > 0:
        remainder = exact - quota.double()
        remainder[quota >= cap] = -1.0  # classes at their cap get nothing more
        # Random tie-breaking: shuffle first, then a stable sort by remainder (descending).
        shuffle = torch.randperm(len(classes), generator=generator)
        order = shuffle[torch.argsort(-remainder[shuffle], stable=True)]
        eligible = order[remainder[order] >= 0][:extra]
        quota[eligible] += 1
    held = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=True):
        idx = torch.nonzero(labels == c).flatten()
        held.append(idx[torch.randperm(idx.numel(), generator=generator)[:q]])
    held_out = torch.sort(torch.cat(held)).values if held else torch.empty(0, dtype=torch.long)
    mask = torch.ones(labels.numel(), dtype=torch.bool)
    mask[held_out] = False
    return torch.nonzero(mask).flatten(), held_out


def _read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file; ``splitlines`` handles LF, CRLF and CR-only (HTRU2) endings."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _fields(path: Path, sep: str | None, n_fields: int) -> list[list[str]]:
    """Split every non-empty line of ``path`` at ``sep`` (None: whitespace); each must have ``n_fields``."""
    rows = [line.split(sep) for line in _read_lines(path)]
    for i, row in enumerate(rows):
        if len(row) != n_fields:
            raise DataError(f"{path}: data row {i + 1} has {len(row)} fields, expected {n_fields}")
    return rows


def _to_float(rows: list[list[str]], path: Path) -> np.ndarray:
    """Parse text fields into a float64 array, '?' -> NaN; a non-number names the file and row."""
    out = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=np.float64)
    for i, row in enumerate(rows):
        try:
            out[i] = [float("nan") if v == "?" else float(v) for v in row]
        except ValueError as err:
            raise DataError(f"{path}: data row {i + 1}: {err}") from err
    return out


def _read_abalone(root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = root / "abalone" / "abalone.data"
    rows = _fields(path, ",", 9)
    sex_order = ("M", "F", "I")  # as listed in abalone.names
    for i, row in enumerate(rows):
        if row and row[0] not in sex_order:
            raise DataError(f"{path}: row {i + 1} has Sex {row[0]!r}, expected one of {sex_order}")
    num = _to_float([row[1:] for row in rows], path)  # (N, 8): 7 measurements + Rings
    sex = np.array([[float(row[0] == s) for s in sex_order] for row in rows])  # (N, 3) one-hot
    return np.concatenate([sex, num[:, :7]], axis=1), num[:, 7]


def _read_arcene(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for part in ("train", "valid"):
        data = root / "arcene" / f"arcene_{part}.data"
        labels = root / "arcene" / f"arcene_{part}.labels"
        x = _to_float(_fields(data, None, 10000), data)
        y = _to_float(_fields(labels, None, 1), labels)[:, 0]
        if len(x) != len(y):
            raise DataError(f"{data} has {len(x)} rows but {labels} has {len(y)} labels")
        out += [x, y]
    return out[0], out[1], out[2], out[3]


def _read_arrhythmia(root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = root / "arrhythmia" / "arrhythmia.data"
    arr = _to_float(_fields(path, ",", 280), path)
    return arr[:, :279], arr[:, 279]


def _read_htru2(root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = root / "htru2" / "HTRU_2.csv"
    arr = _to_float(_fields(path, ",", 9), path)
    return arr[:, :8], arr[:, 8]


def _read_iris(root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = root / "iris" / "bezdekIris.data"
    rows = _fields(path, ",", 5)
    x = _to_float([row[:4] for row in rows], path)
    names = sorted({row[-1] for row in rows})
    return x, np.array([names.index(row[-1]) for row in rows], dtype=np.float64)


def _read_phishing(root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = root / "phishing" / "Training Dataset.arff"
    lines = [line for line in _read_lines(path) if not line.startswith("%")]
    heads = [line.lower() for line in lines]
    if "@data" not in heads:
        raise DataError(f"{path}: no @data line, not an ARFF file")
    start = heads.index("@data")
    n_attr = sum(h.startswith("@attribute") for h in heads[:start])
    rows = [line.split(",") for line in lines[start + 1 :]]
    for i, row in enumerate(rows):
        if len(row) != n_attr:
            raise DataError(f"{path}: data row {i + 1} has {len(row)} fields, expected {n_attr}")
    arr = _to_float(rows, path)
    return arr[:, :-1], arr[:, -1]


_READERS = {
    "abalone": _read_abalone,
    "arrhythmia": _read_arrhythmia,
    "htru2": _read_htru2,
    "iris": _read_iris,
    "phishing": _read_phishing,
}


def _class_counts(y: Tensor, num_classes: int) -> list[int]:
    return torch.bincount(y, minlength=num_classes).tolist()


def check_uci_files(name: str, root: Path | str | None = None) -> tuple[str, Path]:
    """``(key, base folder)`` of UCI dataset ``name`` once its folder and files are found (what :func:`load_uci`
    reads); a table checks every dataset with this before it writes or trains anything.

    Raises:
        DataError: unknown ``name``. DataNotFoundError: the dataset folder or one of its files is missing.
    """
    key = name.lower().removeprefix("uci:")
    if key not in UCI_DATASETS:
        raise DataError(f"unknown UCI dataset {name!r}; expected one of {', '.join(UCI_DATASETS)}")
    base = Path(root) if root is not None else data_root() / "uci"
    folder = base / key
    if not folder.is_dir():
        raise DataNotFoundError(
            f"UCI dataset {key!r} not found: folder {folder} does not exist (pass root= or set VICINAL_DATA)"
        )
    for rel in UCI_DATASETS[key]["files"]:
        if not (base / rel).is_file():
            raise DataNotFoundError(f"UCI dataset {key!r}: file {base / rel} is missing")
    return key, base


def load_uci(
    name: str,
    root: Path | str | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
) -> TensorSplits:
    """Load one of the paper's six UCI datasets as standardised float32 features and int64 labels.

    Args:
        name: ``abalone``, ``arcene``, ``arrhythmia``, ``htru2``, ``iris`` or ``phishing`` (case-insensitive;
            a ``uci:`` prefix is accepted).
        root: folder holding one sub-folder per dataset; default ``data_root() / "uci"``.
        seed: seed of the stratified split (the same seed always gives the same split).
        test_fraction: share of all rows held out as test, in (0, 1); ignored for Arcene (official split).
        val_fraction: share of the remaining rows held out as validation, in [0, 1); 0 gives ``val=None``.

    Returns:
        :class:`TensorSplits` with x float32 (N, D), y int64 (N,) in ``0..C-1``, ``mean``/``std`` ``None``
        (features are already standardised; the statistics are in ``info["feature_mean"]`` and
        ``info["feature_std"]``) and ``info`` with ``num_features``, ``class_values``, ``class_counts`` per
        split, ``majority_class_error`` (test error of always predicting the most frequent training class),
        ``split`` and ``preprocessing`` descriptions, and ``indices`` (row numbers of each split in the file).

    Raises:
        ValueError: unknown ``name``, fractions out of range, or a malformed file.
        FileNotFoundError: the dataset folder or one of its files is missing (the message names the path).
    """
    check_fraction("test_fraction", test_fraction)
    check_fraction("val_fraction", val_fraction, zero_ok=True)
    key, base = check_uci_files(name, root)
    spec = UCI_DATASETS[key]

    if key == "arcene":
        x_pool, y_pool, x_test_np, y_test_np = _read_arcene(base)
        x_all = np.concatenate([x_pool, x_test_np])
        y_raw = np.concatenate([y_pool, y_test_np])
        n_pool = len(x_pool)
    else:
        x_all, y_raw = _READERS[key](base)
        n_pool = None
    infinite = np.argwhere(np.isinf(x_all))
    if len(infinite):  # standardising would turn its column into NaN in every split
        row, col = (int(v) + 1 for v in infinite[0])
        raise DataError(f"{key}: {len(infinite)} infinite value(s) in the data (first: row {row}, column {col})")
    class_values, y_np = np.unique(y_raw, return_inverse=True)  # sorted originals -> 0..C-1
    x = torch.from_numpy(x_all)  # (N, D) float64 until standardised
    y = torch.from_numpy(y_np.reshape(-1)).long()  # (N,)
    num_classes = len(class_values)

    if n_pool is None:
        rest, test_idx = stratified_split(y, test_fraction, generator=make_generator(seed, STREAM_SPLIT, 0))
        split = f"stratified split (seed {seed}): test {test_fraction:g} of all rows, "
    else:
        rest = torch.arange(n_pool)
        test_idx = torch.arange(n_pool, len(y))
        split = "official split: arcene_valid used as test; "
    keep, val_sub = stratified_split(y[rest], val_fraction, generator=make_generator(seed, STREAM_SPLIT, 1))
    train_idx, val_idx = rest[keep], rest[val_sub]
    split += (
        f"validation {val_fraction:g} of the rest, stratified; generators make_generator(seed, STREAM_SPLIT, 0 / 1)"
    )

    # Missing values (arrhythmia): training-split column medians; all-missing columns -> 0.
    if torch.isnan(x).any():
        with warnings.catch_warnings():  # "All-NaN slice" is expected and handled just below
            warnings.simplefilter("ignore", RuntimeWarning)
            med = torch.from_numpy(np.nanmedian(x[train_idx].numpy(), axis=0))  # (D,)
        med = torch.nan_to_num(med, nan=0.0)
        x = torch.where(torch.isnan(x), med.expand_as(x), x)
    mean = x[train_idx].mean(dim=0)  # (D,)
    std = x[train_idx].std(dim=0, correction=0)  # (D,)
    constant = std < 1e-12
    std = torch.where(constant, torch.ones_like(std), std)  # constant column: divide by 1, not 0
    x = ((x - mean) / std).float()
    x[:, constant] = 0.0  # nothing to learn from it on train: zero in every split (see the module doc)

    def part(idx: Tensor) -> tuple[Tensor, Tensor]:
        return x[idx].contiguous(), y[idx].contiguous()

    y_train, y_test = y[train_idx], y[test_idx]
    majority = int(torch.bincount(y_train, minlength=num_classes).argmax())
    # the files' names, sizes and mtimes: a run's provenance records it, to notice other data on a resume
    files = stat_files([base / rel for rel in spec["files"]], base)
    info: dict[str, Any] = {
        "dataset": key,
        "root": str(base),
        "fingerprint": file_list_key(base, files, version=1, options={})[:20],
        "rows": len(y),
        "num_features": x.shape[1],
        "class_values": class_values.tolist(),
        "class_counts": {
            "all": _class_counts(y, num_classes),
            "train": _class_counts(y_train, num_classes),
            "val": _class_counts(y[val_idx], num_classes),
            "test": _class_counts(y_test, num_classes),
        },
        "majority_class_error": float((y_test != majority).double().mean()),
        # test rows whose features also occur in the training split (duplicated rows: phishing ~59%, iris 1 of 30)
        "test_rows_in_train": _rows_in(x[test_idx], x[train_idx]),
        "split": split,
        # Row numbers in the file (Arcene: in train rows followed by valid rows), for tracing and checks.
        "indices": {"train": train_idx, "val": val_idx, "test": test_idx},
        "preprocessing": spec["preprocessing"],
        "feature_mean": mean.float(),
        "feature_std": std.float(),
        "constant_columns": int(constant.sum()),  # zeroed in every split
    }
    return TensorSplits(
        train=part(train_idx),
        test=part(test_idx),
        val=part(val_idx) if len(val_idx) else None,
        num_classes=num_classes,
        mean=None,
        std=None,
        info=info,
    )
