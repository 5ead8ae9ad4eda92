"""The dataset registry: ``build_data(name, ...)`` -> `DataBundle`.

A builder is registered with ``@register_dataset(name)`` and called as ``builder(request, **kwargs)`` with a
`DataRequest` (root, seed, batch sizes, device, rank ...) and the dataset-specific keyword arguments. It
returns either a `TensorSplits` (in-memory data: `build_data` subsets it and wraps it in `InMemoryLoader`s)
or a finished `DataBundle` (datasets that stream from disk, e.g. ImageNet).

Loaders written by other modules (``audio.py``, ``uci.py``) are imported inside their builders, so this
module imports, and the other datasets work, whether or not those modules are present.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vicinal.experiments.data import images, streaming
from vicinal.experiments.data.augment import RandomCropFlip
from vicinal.experiments.data.base import (
    DataBundle,
    InMemoryLoader,
    TensorSplits,
    _check_int,
    check_option_bool,
    check_option_int,
    check_rank,
    subset_per_class_indices,
)
from vicinal.experiments.data.corrupt import corrupt_labels
from vicinal.experiments.errors import DataArgumentError, DataError, DataNotFoundError, LabWarning
from vicinal.experiments.paths import data_root

UCI_NAMES = ("abalone", "arcene", "arrhythmia", "htru2", "iris", "phishing")
# Datasets up to this size are copied to the GPU once; batches are then gathered there (no H2D per step).
_DEVICE_RESIDENT_BYTES = 4 << 30


@dataclass(frozen=True)
class DataRequest:
    """The dataset-independent arguments of `build_data`, handed to every builder."""

    root: Path | None
    batch_size: int
    eval_batch_size: int
    seed: int
    device: torch.device
    rank: int
    world_size: int
    augment: bool
    subset_per_class: int | None
    test_subset_per_class: int | None
    drop_last: bool
    data_on_device: bool | None
    corrupt_fraction: float = 0.0
    corrupt_seed: int = 0


Builder = Callable[..., "TensorSplits | DataBundle"]
DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(request: DataRequest, **kwargs) -> TensorSplits | DataBundle`` as ``name``.

    Raises:
        ValueError: ``name`` is empty or already registered.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")

    def decorator(fn: Builder) -> Builder:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        return fn

    return decorator


def check_dataset_name(name: str) -> None:
    """Raise DataError, listing the known names, unless ``name`` is a registered dataset."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")


def build_data(
    name: str,
    *,
    root: str | Path | None = None,
    batch_size: int = 128,
    eval_batch_size: int = 512,
    seed: int = 0,
    device: str | torch.device = "cpu",
    rank: int = 0,
    world_size: int = 1,
    augment: bool = True,
    subset_per_class: int | None = None,
    test_subset_per_class: int | None = None,
    drop_last: bool = False,
    data_on_device: bool | None = None,
    corrupt_fraction: float = 0.0,
    corrupt_seed: int = 0,
    **kwargs: Any,
) -> DataBundle:
    """Build the loaders of a registered dataset.

    Args:
        name: A key of `DATASETS` (``"cifar10"``, ``"digits"``, ``"uci:iris"`` ...).
        root: Where the dataset lives; None = the dataset's default under ``data_root()``.
        batch_size: Training batch size per rank.
        eval_batch_size: Batch size of the evaluation loaders.
        seed: Root of the order, augmentation and subset randomness.
        device: Where batches are delivered.
        rank: This process's rank (DDP).
        world_size: Number of processes.
        augment: Apply the dataset's training augmentation (crop + flip for CIFAR-like images; the
            datasets of the paper without augmentation ignore it).
        subset_per_class: Keep only this many training samples per class (`subset_per_class_indices`:
            first N per class after a shuffle seeded by ``seed``); for CPU-scale runs.
        test_subset_per_class: The same for the test and validation splits.
        drop_last: Drop the incomplete last training batch of each epoch.
        data_on_device: Copy in-memory datasets to ``device`` once (None: yes on CUDA when under 4 GiB).
        corrupt_fraction: Replace this fraction of the (subsetted) training labels by uniformly random labels
            (Table 2; rule in `corrupt.corrupt_labels`); in-memory datasets only. 0 = clean labels.
        corrupt_seed: Seed of the corruption (independent of ``seed``, so the noise can be held fixed).
        **kwargs: Dataset-specific options (``download``, ``source``, ``image_size``, ``num_workers`` ...).

    Raises:
        ValueError: unknown ``name`` (the message lists the known names) or invalid sizes/ranks.
    """
    check_dataset_name(name)
    _check_int(batch_size, "batch_size", 1)
    _check_int(eval_batch_size, "eval_batch_size", 1)
    _check_int(seed, "seed", 0)
    check_rank(rank, world_size)
    for label, value in (("subset_per_class", subset_per_class), ("test_subset_per_class", test_subset_per_class)):
        if value is not None:
            _check_int(value, label, 1)
    if isinstance(corrupt_fraction, bool) or not isinstance(corrupt_fraction, int | float):
        raise TypeError(f"corrupt_fraction must be a float in [0, 1], got {type(corrupt_fraction).__name__}")
    if not 0.0 <= corrupt_fraction <= 1.0:
        raise ValueError(f"corrupt_fraction must be in [0, 1], got {corrupt_fraction}")
    _check_int(corrupt_seed, "corrupt_seed", 0)
    req = DataRequest(
        root=Path(root).expanduser() if root is not None else None,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        seed=seed,
        device=torch.device(device),
        rank=rank,
        world_size=world_size,
        augment=augment,
        subset_per_class=subset_per_class,
        test_subset_per_class=test_subset_per_class,
        drop_last=drop_last,
        data_on_device=data_on_device,
        corrupt_fraction=float(corrupt_fraction),
        corrupt_seed=corrupt_seed,
    )
    out = _call_with_options(name, DATASETS[name], req, **kwargs)
    if isinstance(out, DataBundle):
        if corrupt_fraction > 0:
            raise DataError(
                f"corrupt_fraction={corrupt_fraction} needs an in-memory dataset; {name!r} streams from disk"
            )
        return out
    if not isinstance(out, TensorSplits):
        raise TypeError(f"dataset builder {name!r} returned {type(out).__name__}, not TensorSplits or DataBundle")
    return bundle_from_splits(out, req, name)


def _call_with_options(
    dataset: str, fn: Callable[..., Any], *args: Any, _fixed: tuple[str, ...] = (), **kwargs: Any
) -> Any:
    """``fn(*args, **kwargs)`` where ``kwargs`` come from the user's config (data.kwargs): a keyword ``fn`` does not
    take is a config error, raised before any work. Builders that pass their options on to a loader call the loader
    through this too (their own ``**kwargs`` signature would accept anything). ``_fixed``: keywords in ``kwargs``
    that the builder sets itself (not the user's options, so not listed as such)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        # a typo of an option ("num_worker") gets the closest one and the list, as a config key's typo does
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = list(inspect.signature(fn).parameters.values())[len(args) :]
        names = [p.name for p in params if p.kind in kinds and p.name not in _fixed]
        unknown = next((k for k in kwargs if k not in names and k not in _fixed), None)
        if unknown is None or not names:
            raise DataArgumentError(f"dataset {dataset!r}: {exc} (check data.kwargs)") from None
        close = difflib.get_close_matches(unknown, names, n=1)
        hint = f" (did you mean 'data.kwargs.{close[0]}'?)" if close else ""
        raise DataArgumentError(
            f"dataset {dataset!r} takes no option 'data.kwargs.{unknown}'{hint}; its options: {', '.join(names)}"
        ) from None
    return fn(*args, **kwargs)


def warn_short_classes(
    y: torch.Tensor, per_class: int, what: str, classes: Any = None, option: str = "data.subset_per_class"
) -> None:
    """Warn (`LabWarning`) when classes of ``y`` have fewer than ``per_class`` samples: a subset of N per class then
    keeps all of them, fewer than asked. Names each class (by ``classes[c]`` when given) and its count."""
    counts = torch.bincount(y.cpu().to(torch.int64))
    short = [(c, int(n)) for c, n in enumerate(counts.tolist()) if 0 < n < per_class]
    if not short:
        return

    def label(c: int) -> str:
        return f"{c} ({classes[c]})" if classes is not None and c < len(classes) else str(c)

    listed = ", ".join(f"class {label(c)} has {n}" for c, n in short[:8]) + (" ..." if len(short) > 8 else "")
    warnings.warn(
        f"{option}={per_class} but {len(short)} {what} class(es) have fewer images, so they keep all of theirs "
        f"({listed}); the subset is smaller than {per_class} per class and unbalanced",
        LabWarning,
        stacklevel=3,
    )


def _subset(
    pair: tuple[torch.Tensor, torch.Tensor],
    per_class: int | None,
    seed: int,
    what: str = "training",
    classes: Any = None,
    option: str = "data.subset_per_class",
) -> tuple[Any, Any]:
    if per_class is None:
        return pair
    warn_short_classes(pair[1], per_class, what, classes, option)
    keep = subset_per_class_indices(pair[1], per_class, seed)
    return pair[0][keep], pair[1][keep]


def bundle_from_splits(splits: TensorSplits, req: DataRequest, name: str) -> DataBundle:
    """Subset the splits as requested and wrap them in `InMemoryLoader`s.

    train: shuffled, augmented, padded for DDP; train_eval / test / val: in order, unaugmented, unpadded.
    """
    classes = splits.info.get("classes")
    train = _subset(splits.train, req.subset_per_class, req.seed, "training", classes)
    corruption = None
    if req.corrupt_fraction > 0:
        # After the subset: the fraction is of the labels actually trained on.
        corruption = corrupt_labels(train[1], splits.num_classes, req.corrupt_fraction, req.corrupt_seed)
        train = (train[0], corruption.noisy.to(train[1].device))
    test_option = "test_subset_per_class"
    test = _subset(splits.test, req.test_subset_per_class, req.seed, "test", classes, test_option)
    val = None
    if splits.val is not None:
        val = _subset(splits.val, req.test_subset_per_class, req.seed, "validation", classes, test_option)
    on_device = req.data_on_device
    if on_device is None:
        total = sum(t.numel() * t.element_size() for pair in (train, test, val) if pair for t in pair)
        on_device = req.device.type == "cuda" and total <= _DEVICE_RESIDENT_BYTES
    if on_device:
        train, test = tuple(t.to(req.device) for t in train), tuple(t.to(req.device) for t in test)
        val = tuple(t.to(req.device) for t in val) if val is not None else None
    aug = None
    if req.augment and splits.info.get("augment") == "crop_flip":
        aug = RandomCropFlip(padding=int(splits.info.get("crop_padding", 4)))
    common: dict[str, Any] = {"seed": req.seed, "device": req.device, "rank": req.rank, "world_size": req.world_size}

    def evaluation(pair: tuple[Any, Any]) -> InMemoryLoader:
        return InMemoryLoader(*pair, batch_size=req.eval_batch_size, shuffle=False, pad=False, **common)

    info = dict(splits.info)
    info.update(
        augment=repr(aug) if aug is not None else None,
        subset_per_class=req.subset_per_class,
        test_subset_per_class=req.test_subset_per_class,
        sizes={"train": int(train[1].shape[0]), "test": int(test[1].shape[0])}
        | ({"val": int(val[1].shape[0])} if val is not None else {}),
    )
    if corruption is not None:
        info["corruption"] = corruption.stats()
    return DataBundle(
        train=InMemoryLoader(
            *train, batch_size=req.batch_size, shuffle=True, augment=aug, drop_last=req.drop_last, **common
        ),
        test=evaluation(test),
        val=evaluation(val) if val is not None else None,
        train_eval=evaluation(train),
        num_classes=splits.num_classes,
        input_shape=tuple(train[0].shape[1:]),
        mean=splits.mean,
        std=splits.std,
        name=name,
        train_dataset_x=train[0],
        train_dataset_y=train[1],
        info=info,
        corruption=corruption,
    )


# --------------------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------------------


def _holds_cifar10_batches(root: Path | None) -> bool:
    """Whether the original CIFAR-10 (``cifar-10-batches-py``) is at ``root``, or without one under the data root
    (where `images.load_cifar_torchvision` finds it): a null ``data.root`` once always meant the JPEG copy."""
    try:
        places = [root] if root is not None else images.cifar_search_roots("cifar10")
    except DataNotFoundError:  # no data root at all: the JPEG loader's error names it
        return False
    return any((p / "cifar-10-batches-py").is_dir() for p in places)


@register_dataset("cifar10")
def _cifar10(
    req: DataRequest, *, source: str = "auto", download: bool = False, cache: bool = True, progress: bool = True
) -> TensorSplits:
    """CIFAR-10. ``source``: ``"jpeg"`` (an ImageFolder JPEG tree: ``root`` or ``data_root()/cifar10-jpeg``),
    ``"torchvision"`` (the original release's python batches, ``download`` allowed), or ``"auto"``: torchvision
    if ``download`` is set or ``cifar-10-batches-py`` is where the torchvision loader looks (``root``; without
    one, ``data_root()`` or ``data_root()/cifar10``), else the JPEG tree (the re-encoded shared copy)."""
    if source not in ("auto", "jpeg", "torchvision"):
        raise DataError(f"cifar10: source must be 'auto', 'jpeg' or 'torchvision', got {source!r}")
    check_option_bool("download", download)  # before "auto" reads it: a string "no" would be true
    if source == "auto":
        source = "torchvision" if download or _holds_cifar10_batches(req.root) else "jpeg"
    if source == "torchvision":
        return images.load_cifar_torchvision("cifar10", req.root, download=download)
    return images.load_cifar10_jpeg(req.root, cache=cache, progress=progress)


@register_dataset("cifar100")
def _cifar100(req: DataRequest, *, download: bool = False) -> TensorSplits:
    """CIFAR-100 through torchvision (``download`` only when asked)."""
    return images.load_cifar_torchvision("cifar100", req.root, download=download)


@register_dataset("imagefolder_memory")
def _imagefolder_memory(
    req: DataRequest,
    *,
    image_size: int | None = None,
    crop_padding: int = 4,
    cache: bool = True,
    progress: bool = True,
) -> TensorSplits:
    """A small ImageFolder tree decoded into memory (``root`` required)."""
    if req.root is None:
        raise DataError("imagefolder_memory needs root=<folder with train/ and test/ or val/>")
    return images.load_image_folder_memory(
        req.root, image_size=image_size, crop_padding=crop_padding, cache=cache, progress=progress
    )


def _imagefolder_bundle(
    req: DataRequest,
    name: str,
    root: Path,
    *,
    num_workers: int | None = None,
    image_size: int = 224,
    resize: int = 256,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> DataBundle:
    # Checked before the (for ImageNet, minutes long) file scan; ImageFolderLoader checks them again.
    check_option_int("num_workers", num_workers, 0, none_ok=True)
    check_option_int("image_size", image_size, 1)
    check_option_int("resize", resize, 1)
    test_dir, val_dir = images.eval_split_dirs(root)
    train_samples, classes = streaming.image_folder_samples(root / "train")
    if req.subset_per_class is not None:
        labels = torch.tensor([label for _, label in train_samples], dtype=torch.int64)
        warn_short_classes(labels, req.subset_per_class, "training", classes)
        train_samples = streaming.subset_samples(train_samples, req.subset_per_class, req.seed)
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    common: dict[str, Any] = {
        "seed": req.seed,
        "device": req.device,
        "rank": req.rank,
        "world_size": req.world_size,
        "num_workers": num_workers,
        "image_size": image_size,
        "resize": resize,
    }

    def evaluation(split_dir: Path, subset: bool = True) -> streaming.ImageFolderLoader:
        samples, eval_classes = streaming.image_folder_samples(split_dir)
        if eval_classes != classes:
            raise DataError(f"{split_dir} has {len(eval_classes)} classes that differ from train's {len(classes)}")
        if subset and req.test_subset_per_class is not None:
            samples = streaming.subset_samples(samples, req.test_subset_per_class, req.seed)
        return streaming.ImageFolderLoader(samples, train=False, batch_size=req.eval_batch_size, **common)

    # With augment=False the training loader uses the evaluation transform (centre crop).
    train = streaming.ImageFolderLoader(
        train_samples, train=req.augment, batch_size=req.batch_size, drop_last=req.drop_last, **common
    )
    train_eval = streaming.ImageFolderLoader(train_samples, train=False, batch_size=req.eval_batch_size, **common)
    test = evaluation(test_dir)
    val = evaluation(val_dir) if val_dir is not None else None
    if mean is None or std is None:
        mean, std = images.IMAGENET_MEAN, images.IMAGENET_STD
    return DataBundle(
        train=train,
        test=test,
        val=val,
        train_eval=train_eval,
        num_classes=len(classes),
        input_shape=(3, image_size, image_size),
        mean=tuple(mean),
        std=tuple(std),
        name=name,
        train_dataset_x=None,
        train_dataset_y=train.targets,
        info={
            "source": "torchvision.datasets.ImageFolder",
            "root": str(root),
            "classes": classes,
            "test_dir": str(test_dir),
            "sizes": {"train": len(train.targets), "test": len(test.targets)}
            | ({"val": len(val.targets)} if val is not None else {}),
            "augment": "RandomResizedCrop+flip" if req.augment else None,
            "num_workers": num_workers,
        },
    )


@register_dataset("imagenet")
def _imagenet(req: DataRequest, **kwargs: Any) -> DataBundle:
    """ImageNet-2012 as ImageFolder: ``root`` (default ``data_root()/imagenet``) with ``train/`` and ``val/``
    (class sub-folders); the test loader is the validation set, as in the paper's Table 1."""
    return _call_with_options(
        "imagenet", _imagefolder_bundle, req, "imagenet", req.root or data_root() / "imagenet", **kwargs
    )


@register_dataset("imagefolder")
def _imagefolder(req: DataRequest, **kwargs: Any) -> DataBundle:
    """Any ImageFolder tree streamed from disk (``root`` required; ``train/`` + ``test/`` or ``val/``)."""
    if req.root is None:
        raise DataError("imagefolder needs root=<folder with train/ and val/ or test/>")
    return _call_with_options("imagefolder", _imagefolder_bundle, req, "imagefolder", req.root, **kwargs)


@register_dataset("digits")
def _digits(req: DataRequest, *, test_fraction: float = 1 / 3) -> TensorSplits:
    """scikit-learn digits, stratified seeded split (see `images.load_digits_splits`)."""
    if req.root is not None:  # scikit-learn's bundled copy: a root would be ignored, so it may point at nothing
        raise DataError(
            f"dataset 'digits' is bundled with scikit-learn and reads no files: data.root must be null, "
            f"got '{req.root}'"
        )
    return images.load_digits_splits(seed=req.seed, test_fraction=test_fraction)


def _lazy(module: str) -> Any:
    """Import a sibling data module when its dataset is first built (it may be written after this one)."""
    return importlib.import_module(f"vicinal.experiments.data.{module}")


@register_dataset("fsdd")
def _fsdd(req: DataRequest, **kwargs: Any) -> TensorSplits:
    """Free Spoken Digit Dataset (`audio.load_fsdd`; kwargs: val_fraction, sample_level)."""
    return _call_with_options("fsdd", _lazy("audio").load_fsdd, req.root, seed=req.seed, _fixed=("seed",), **kwargs)


@register_dataset("speech_commands")
def _speech_commands(req: DataRequest, **kwargs: Any) -> TensorSplits:
    """Google Speech Commands (`audio.load_speech_commands`; root default ``data_root()/speech_commands``)."""
    root = req.root or data_root() / "speech_commands"
    return _call_with_options("speech_commands", _lazy("audio").load_speech_commands, root, **kwargs)


def _uci(req: DataRequest, *, dataset: str, **kwargs: Any) -> TensorSplits:
    return _call_with_options(
        f"uci:{dataset}", _lazy("uci").load_uci, dataset, req.root, seed=req.seed, _fixed=("seed",), **kwargs
    )


for _name in UCI_NAMES:
    register_dataset(f"uci:{_name}")(functools.partial(_uci, dataset=_name))
