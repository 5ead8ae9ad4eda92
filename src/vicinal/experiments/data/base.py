"""Raw tensor splits, the in-memory loader and the bundle every dataset builder returns.

Every in-memory dataset (CIFAR, digits, FSDD, Speech Commands, UCI) is first loaded into a `TensorSplits`
(whole splits as tensors), then wrapped into `InMemoryLoader`s that gather, move, augment and convert
one minibatch at a time. Big datasets (ImageNet) bring their own loader with the same protocol (`Loader`).

Also the small pieces every loader module shares: the checks of dataset options (``data.kwargs``), the cache key of
a decoded file list (`file_list_key`), the wording of ImageFolder layout errors, and a bundle's provenance record.

Determinism: everything random in a loader derives from ``(seed, epoch, rank)`` through `derive_seed`
and fresh `torch.Generator`s, never from global RNGs, so the batches of epoch ``e`` are a pure function of
``(seed, e, rank)``, and ``iter_from(e, b)`` resumes exactly where an interrupted epoch stopped.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from vicinal.experiments.data.corrupt import CorruptedLabels

# derive_seed and the data layer's stream numbers stay importable from here (their owner is data/seeds.py)
from vicinal.experiments.data.seeds import (  # noqa: F401
    STREAM_AUGMENT,
    STREAM_FETCH,
    STREAM_ORDER,
    STREAM_SPLIT,
    STREAM_SUBSET,
    derive_seed,
    make_generator,
)
from vicinal.experiments.errors import DataError

Batch = tuple[Tensor, Tensor, Tensor]  # (x float32 (B, ...), y int64 (B,), idx int64 (B,)), all on the device
Augment = Callable[[Tensor, torch.Generator], Tensor]  # (B, C, H, W) -> (B, C, H, W), any dtype


def _check_xy(x: Tensor, y: Tensor, what: str) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"{what}: expected a pair of tensors (x, y), got ({type(x).__name__}, {type(y).__name__})")
    if y.ndim != 1:
        raise ValueError(f"{what}: labels must have shape (N,), got shape {tuple(y.shape)}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{what}: inputs have shape {tuple(x.shape)} but labels have shape {tuple(y.shape)} "
            "(first dimensions must match)"
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{what}: labels must be an integer tensor, got dtype {y.dtype}")
    if not (x.dtype == torch.uint8 or x.dtype.is_floating_point):
        raise TypeError(f"{what}: inputs must be uint8 (pixels 0..255) or floating point, got dtype {x.dtype}")


@dataclass
class TensorSplits:
    """A dataset fully in memory: the raw form every in-memory loader function returns.

    Attributes:
        train: ``(x, y)`` with x ``(N, ...)`` uint8 pixels (images, 0..255) or float features, y int64 ``(N,)``.
        test: Same form, the split errors are reported on.
        val: Same form, or None when the dataset has no validation split.
        num_classes: Number of classes; labels lie in ``[0, num_classes)``.
        mean: Per-channel mean of the training inputs in the scale the model sees ([0, 1] for uint8 images),
            for the model's `Normalize` layer; None when the model should not normalise.
        std: Per-channel standard deviation, same convention as ``mean``.
        info: Free-form provenance (source path, class names, split rule, default augmentation ...).
            Keys read by `build_data`: ``"augment"`` (``"crop_flip"`` or absent) and ``"crop_padding"``.
    """

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor] | None = None
    num_classes: int = 0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("train", "test", "val"):
            pair = getattr(self, name)
            if pair is None and name == "val":
                continue
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise TypeError(f"TensorSplits.{name} must be a pair (x, y), got {type(pair).__name__}")
            x, y = pair
            _check_xy(x, y, f"TensorSplits.{name}")
            setattr(self, name, (x, y.to(torch.int64)))
        if self.num_classes <= 0:
            self.num_classes = int(self.train[1].max()) + 1 if self.train[1].numel() else 0


@runtime_checkable
class Loader(Protocol):
    """What the trainer iterates: batches ``(x, y, idx)`` already on the device.

    ``x`` float32 ``(B, ...)``, ``y`` int64 ``(B,)``, ``idx`` int64 ``(B,)`` dataset indices.
    """

    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def iter_from(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]: ...


def shard_indices(
    n: int, *, epoch: int, seed: int, shuffle: bool, rank: int, world_size: int, pad: bool = True
) -> Tensor:
    """The dataset indices one rank visits in one epoch, in order (like `DistributedSampler`).

    All ranks draw the same permutation (it depends on ``(seed, epoch)`` only); rank ``r`` takes every
    ``world_size``-th element starting at ``r``. With ``pad`` the permutation is first extended by repeating
    its head until its length is a multiple of ``world_size``, so every rank gets ``ceil(n / world_size)``
    indices and runs the same number of steps (needed by DDP's per-step all-reduce). Without ``pad`` (eval)
    every sample is visited exactly once over all ranks and shard lengths differ by at most one.

    Returns:
        LongTensor ``(L,)`` on the CPU.
    """
    if shuffle:
        order = torch.randperm(n, generator=make_generator(seed, STREAM_ORDER, epoch))
    else:
        order = torch.arange(n)
    if pad and world_size > 1:
        total = math.ceil(n / world_size) * world_size
        if total > n:
            order = order.repeat(math.ceil(total / n))[:total]
    return order[rank::world_size]


def to_model_input(x: Tensor) -> Tensor:
    """uint8 pixels -> float32 in [0, 1] (``x / 255``, like torchvision's ToTensor); floats -> float32."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255)
    return x.to(torch.float32)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_rank(rank: int, world_size: int) -> None:
    """Raise ValueError unless ``0 <= rank < world_size``."""
    _check_int(world_size, "world_size", 1)
    _check_int(rank, "rank", 0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got rank={rank}")


class InMemoryLoader:
    """Minibatches of an in-memory dataset, deterministic per ``(seed, epoch, rank)``, sharded like DDP.

    Per batch: gather the rows of ``x`` (uint8 stays uint8: 4x less memory traffic), move them to
    ``device``, augment there, and only then convert uint8 to float32 in [0, 1]. Float inputs (spectrograms,
    tabular features) pass through unscaled.

    Randomness:
        * order of epoch ``e``: ``randperm`` from ``make_generator(seed, STREAM_ORDER, e)`` (same on all ranks);
        * augmentation of batch ``b`` of epoch ``e`` on rank ``r``:
          ``make_generator(seed, STREAM_AUGMENT, e, r, b)``, so resuming at batch ``b`` reproduces it exactly;
        * `fetch` without a generator: one CPU generator seeded ``derive_seed(seed, STREAM_FETCH, rank)``,
          advanced by every call and saved in `state_dict`.

    Like `DistributedSampler`, the loader does not advance the epoch by itself: call `set_epoch` (or
    `iter_from`) each epoch, otherwise every epoch repeats the same order.

    Args:
        x: ``(N, ...)`` uint8 or floating inputs, on the CPU or already on ``device``.
        y: ``(N,)`` integer labels, same placement as ``x``.
        batch_size: Samples per batch on this rank.
        shuffle: Permute the dataset each epoch (train) or keep its order (eval).
        seed: Root of all randomness of this loader.
        device: Where batches are delivered.
        augment: Optional batched augmentation ``(x_batch, generator) -> x_batch`` applied before the float
            conversion (see `augment.RandomCropFlip`).
        drop_last: Drop this rank's last incomplete batch.
        rank: This process's rank.
        world_size: Number of processes sharing the epoch.
        pad: Pad the epoch so all ranks see ``ceil(N / world_size)`` samples (train); False for evaluation,
            so each sample is counted exactly once (then sum metrics over ranks, do not average).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        device: str | torch.device,
        augment: Augment | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        _check_xy(x, y, "InMemoryLoader")
        _check_int(batch_size, "batch_size", 1)
        _check_int(seed, "seed", 0)
        check_rank(rank, world_size)
        if x.shape[0] == 0:
            raise ValueError(f"InMemoryLoader: the dataset is empty (x has shape {tuple(x.shape)})")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be callable (x, generator) -> x, got {type(augment).__name__}")
        self.x = x
        self.y = y.to(torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.device = torch.device(device)
        self.augment = augment
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self._fetch_generator = make_generator(seed, STREAM_FETCH, rank)

    @property
    def num_samples(self) -> int:
        """Number of samples this rank visits per epoch (including padding)."""
        n = self.x.shape[0]
        if self.pad:
            return math.ceil(n / self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation `__iter__` produces."""
        self.epoch = _check_int(epoch, "epoch", 0)

    def indices(self, epoch: int) -> Tensor:
        """Dataset indices this rank visits in ``epoch``, in order: LongTensor ``(num_samples,)`` on the CPU."""
        return shard_indices(
            self.x.shape[0],
            epoch=epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            pad=self.pad,
        )

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(self.epoch, 0)

    def iter_from(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Batches ``start_batch, start_batch + 1, ...`` of ``epoch``: identical to those of a full pass.

        Also sets the loader's epoch. Raises ValueError for a negative epoch or a start beyond ``len(self)``.
        """
        self.set_epoch(epoch)
        _check_int(start_batch, "start_batch", 0)
        if start_batch > len(self):
            raise ValueError(f"start_batch={start_batch} is beyond the {len(self)} batches of an epoch")
        return self._batches(epoch, start_batch)

    def _batches(self, epoch: int, start_batch: int) -> Iterator[Batch]:
        order = self.indices(epoch)
        for b in range(start_batch, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]  # (B,)
            gen = make_generator(self.seed, STREAM_AUGMENT, epoch, self.rank, b) if self.augment else None
            x, y = self._materialise(idx, gen)
            yield x, y, idx.to(self.device, non_blocking=True)

    def _materialise(self, idx: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Gather rows ``idx`` (still uint8), move to the device, augment, convert to float32."""
        src = idx.to(self.x.device)
        x = self.x.index_select(0, src)  # (B, ...) storage dtype
        y = self.y.index_select(0, src)  # (B,)
        if x.device != self.device:
            if self.device.type == "cuda":
                # Page-locked staging lets the copy overlap with the previous step's kernels.
                x, y = x.pin_memory(), y.pin_memory()
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        if self.augment is not None and generator is not None:
            x = self.augment(x, generator)
        return to_model_input(x), y

    def fetch(self, indices: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Training samples by dataset index, augmented like a training batch (e.g. KNN mixing partners).

        Args:
            indices: LongTensor ``(B,)`` of dataset indices (any device).
            generator: CPU generator for the augmentation; defaults to the loader's own fetch generator
                (seeded ``derive_seed(seed, STREAM_FETCH, rank)``, advanced by each call, in `state_dict`).

        Returns:
            ``(x, y)`` on the device: float32 ``(B, ...)`` and int64 ``(B,)``.
        """
        if not isinstance(indices, Tensor) or indices.ndim != 1 or indices.dtype != torch.int64:
            got = tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__
            raise TypeError(f"fetch expects a 1-D int64 tensor of indices, got {got}")
        n = self.x.shape[0]
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise ValueError(
                f"fetch indices must lie in [0, {n}), got range [{int(indices.min())}, {int(indices.max())}]"
            )
        return self._materialise(indices.cpu(), generator or self._fetch_generator)

    def state_dict(self) -> dict[str, Any]:
        """Epoch and the fetch generator's state (the order and augmentation need nothing else)."""
        return {"epoch": self.epoch, "fetch_generator": self._fetch_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.set_epoch(int(state["epoch"]))
        self._fetch_generator.set_state(state["fetch_generator"])


@dataclass
class DataBundle:
    """Everything a task needs from a dataset (INTERFACES.md section 3).

    Attributes:
        train: Shuffled, augmented, padded-for-DDP training loader.
        test: Evaluation loader of the split errors are reported on.
        val: Evaluation loader of the validation split, or None.
        train_eval: The training split in order, without augmentation or padding (training error).
        num_classes: Number of classes.
        input_shape: Shape of one model input, e.g. ``(3, 32, 32)``.
        mean: Per-channel mean for the model's `Normalize` layer, or None.
        std: Per-channel std, or None.
        name: Registry name the bundle was built from.
        train_dataset_x: All training inputs in storage form (uint8 pixels for images), or None when the
            dataset is not held in memory (ImageFolder).
        train_dataset_y: All training labels int64 ``(N,)``, or None.
        info: Provenance and settings (source, augmentation, subset rule, sizes).
        corruption: Per-sample true and noisy training labels when ``corrupt_fraction > 0`` (Table 2), else None;
            the loaders (``train``, ``train_eval``) and ``train_dataset_y`` then hold the noisy labels.
    """

    train: Loader
    test: Loader
    val: Loader | None
    train_eval: Loader
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    name: str
    train_dataset_x: Tensor | None = None
    train_dataset_y: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    corruption: CorruptedLabels | None = None

    def record(self) -> dict[str, Any]:
        """What this bundle holds, for a run's provenance (JSON-able): ``name``, ``source``, ``root`` (resolved),
        ``sizes`` (samples per split), ``num_classes`` and, where the loader computes one, ``fingerprint`` (the
        hash of the files' names, sizes and mtimes that keys the decoded cache). Absent entries are left out.

        Two records differ when a resume reads other data than the run started on (another ``--data`` /
        ``VICINAL_DATA``, another source picked by ``source: auto``, rewritten files); see `data_changes`.
        """
        info = self.info
        root = info.get("root")
        fields = {
            "name": self.name,
            "source": info.get("source", info.get("dataset")),
            "root": str(Path(root).resolve()) if root is not None else None,
            "sizes": info.get("sizes"),
            "num_classes": self.num_classes,
            "fingerprint": info.get("fingerprint", info.get("cache_key")) or None,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def fetch(self, indices: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Augmented training samples by dataset index; see `InMemoryLoader.fetch`."""
        fetch = getattr(self.train, "fetch", None)
        if fetch is None:
            raise NotImplementedError(f"the training loader of {self.name!r} cannot fetch samples by index")
        return fetch(indices, generator)


def subset_per_class_indices(y: Tensor, per_class: int, seed: int) -> Tensor:
    """Indices of a class-balanced subset: the first ``per_class`` of each class after a seeded shuffle.

    The dataset order is permuted with ``make_generator(seed, STREAM_SUBSET)``; walking that permutation,
    each class keeps its first ``per_class`` samples (all of them if it has fewer). The result is sorted
    ascending, so the subset keeps the dataset's order and depends only on ``(y, per_class, seed)``.

    Args:
        y: Integer labels ``(N,)``.
        per_class: Samples kept per class, >= 1.
        seed: Seed of the shuffle.

    Returns:
        LongTensor ``(M,)`` of indices into ``y``, ``M = sum_c min(per_class, n_c)``.
    """
    _check_int(per_class, "subset_per_class", 1)
    y = y.cpu().to(torch.int64)
    perm = torch.randperm(y.shape[0], generator=make_generator(seed, STREAM_SUBSET))  # (N,)
    ys = y[perm]
    keep = [perm[ys == c][:per_class] for c in torch.unique(ys).tolist()]
    return torch.cat(keep).sort().values


def unreadable_image(path: str | os.PathLike[str], exc: BaseException) -> DataError:
    """The user error for an image file that cannot be decoded (truncated, corrupt, not an image)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(f"image file '{path}' cannot be decoded ({type(exc).__name__}: {text}); replace or remove it")


def data_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """``"root '/a' -> '/b', sizes ..."``: the entries of two data records (`DataBundle.record`) that differ.

    "" when none differ, and when ``old`` is None (a run whose provenance predates data records: nothing to compare).
    Only entries both records have are compared: a field a later version adds (or a loader drops) is no change of
    the data. Records are compared as JSON reads them back (dicts, lists, scalars).
    """
    if old is None:
        return ""
    return ", ".join(f"{k} {old[k]!r} -> {new[k]!r}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k])


def no_class_folders(split_dir: str | os.PathLike[str]) -> str:
    """The message for an ImageFolder split without class folders (in-memory and streamed loaders alike); when
    the images lie directly in the split (as in ImageNet's official, flat validation tarball), it says so."""
    flat = sum(1 for e in os.scandir(split_dir) if e.is_file() and not e.name.startswith("."))
    hint = (
        f"; it holds {flat} files directly: sort them into one sub-folder per class (ImageNet's validation "
        "tarball is flat: move each image into the folder of its class, e.g. with the devkit's labels)"
        if flat
        else ""
    )
    return f"no class folders in {split_dir} (expected <split>/<class>/<image files>){hint}"


def empty_class_folder(folder: str | os.PathLike[str], extensions: Iterable[str]) -> str:
    """The message for an ImageFolder class folder that holds no image file with one of ``extensions``."""
    return f"class folder {folder} has no image files ({', '.join(extensions)})"


def file_list_key(root: Path, files: Iterable[tuple[str, int, int]], *, version: int, options: dict[str, Any]) -> str:
    """The cache key of files decoded from one folder: a sha256 hex digest of the folder's resolved path, the
    cache format ``version``, the decode ``options`` and each file's ``(relative path, size, st_mtime_ns)``.

    Any added, removed, renamed or rewritten file (a rewrite changes the mtime even at the same size), or the same
    names in another folder, changes the key, so a stale decoded cache is never reused.
    """
    head = f"v{version};{Path(root).resolve()};{sorted(options.items())!r}\n"
    h = hashlib.sha256(head.encode())
    for rel, size, mtime in files:
        h.update(f"{rel}\t{size}\t{mtime}\n".encode())
    return h.hexdigest()


def stat_files(files: Iterable[Path], base: Path) -> list[tuple[str, int, int]]:
    """``(path relative to base, size, st_mtime_ns)`` per file: the input of `file_list_key`."""
    out = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:  # listed, but a broken link (git-annex or DVC content not fetched)
            raise DataError(f"{f} is a broken link: its content is missing (fetch it, or remove the link)") from None
        out.append((f.relative_to(base).as_posix(), st.st_size, st.st_mtime_ns))
    return out


def check_fraction(name: str, value: Any, *, zero_ok: bool = False) -> float:
    """A dataset option that is a share of the samples: a number in (0, 1), or [0, 1) with ``zero_ok``.

    Raises:
        DataError: ``value`` is not a number (a string, None, a bool) or lies outside the range; the message
            names ``name`` and the value, so a bad ``data.kwargs`` entry is one line, not a traceback.
    """
    interval = "[0, 1)" if zero_ok else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{name} must be a number in {interval}, got {value!r}")
    if not ((0.0 <= value if zero_ok else 0.0 < value) and value < 1.0):  # also refuses nan
        raise DataError(f"{name} must be in {interval}, got {value}")
    return float(value)


def check_option_int(name: str, value: Any, minimum: int, *, none_ok: bool = False) -> int | None:
    """A dataset option that is a count or a size: an int >= ``minimum`` (or None with ``none_ok``).

    Raises:
        DataError: ``value`` is not an int (a float, a string, a bool) or is below ``minimum``; the message names
            ``name`` and the value.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{name} must be an int >= {minimum}{' or null' if none_ok else ''}, got {value!r}")
    if value < minimum:
        raise DataError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_option_bool(name: str, value: Any) -> bool:
    """A dataset on/off option (``download``, ``cache``): True or False, not a string such as ``"no"``.

    Raises:
        DataError: ``value`` is not a bool (the message names ``name`` and the value).
    """
    if not isinstance(value, bool):
        raise DataError(f"{name} must be true or false, got {value!r}")
    return value
