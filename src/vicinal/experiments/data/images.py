"""Image datasets: CIFAR (shared JPEG tree or torchvision), small ImageFolder trees in memory, and
scikit-learn's 8x8 digits (big trees such as ImageNet are streamed by `vicinal.experiments.data.streaming`).

In-memory images are kept as uint8 ``(N, 3, H, W)`` tensors (CIFAR-10 train: 50,000 x 3 x 32 x 32 = 147 MiB)
and reach the model as float32 in [0, 1]; normalisation is the model's first layer (INTERFACES.md s. 3).

Decoding a JPEG tree happens once: the result is cached in ``cache_dir()`` as one ``.pt`` file per split,
named by a hash of the split's path, file list, file sizes and mtimes, so a changed tree gets a new cache file
(old ones are left in place; delete ``cache_dir()`` to reclaim the space).
Decoding uses ``torchvision.io.decode_jpeg`` on chunks of 1,000 files (one C++ call per chunk, bit-identical
to PIL on the CIFAR files); non-JPEG files fall back to PIL.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from vicinal.experiments.data.base import (
    STREAM_SPLIT,
    TensorSplits,
    check_fraction,
    check_option_bool,
    check_option_int,
    empty_class_folder,
    file_list_key,
    make_generator,
    no_class_folders,
    stat_files,
    unreadable_image,
)

# The streamed ImageFolder loader lived here until it moved to streaming.py: its names stay importable from here.
from vicinal.experiments.data.streaming import (  # noqa: F401
    CenterCropEval,
    ImageFolderLoader,
    SeededRandomResizedCrop,
    image_folder_samples,
    subset_samples,
)
from vicinal.experiments.errors import DataError, DataNotFoundError, LabWarning
from vicinal.experiments.paths import cache_dir, data_root
from vicinal.experiments.runs import atomic_write, clean_stale_temp_files

log = logging.getLogger(__name__)

# Alphabetical = the class order of the CIFAR-10 binary release (labels 0..9).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# torchvision's ImageNet normalisation constants (docs of torchvision.models).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
_CACHE_VERSION = 1  # bump when the cached content changes meaning
_DECODE_CHUNK = 1000


# --------------------------------------------------------------------------------------------------------------
# Listing, decoding, caching
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderListing:
    """The image files of one ImageFolder split (``<split>/<class>/<file>``), in load order.

    Classes are sorted by name (torchvision ImageFolder's rule); files are sorted by name within a class.
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]  # relative paths "<class>/<file>"
    sizes: tuple[int, ...]  # bytes
    mtimes: tuple[int, ...]  # st_mtime_ns
    labels: tuple[int, ...]

    def key(self, **options: Any) -> str:
        """The cache key: a hash of the split's absolute path, the relative file list, each file's size and
        modification time, and the decode options. Any added, removed, renamed or rewritten file changes it."""
        files = zip(self.files, self.sizes, self.mtimes, strict=True)
        return file_list_key(self.root, files, version=_CACHE_VERSION, options=options)[:20]


def list_image_folder(split_dir: str | Path, *, max_per_class: int | None = None) -> FolderListing:
    """List an ImageFolder split, optionally only the first ``max_per_class`` files (by name) of each class.

    Raises:
        FileNotFoundError: ``split_dir`` does not exist.
        ValueError: no class folders, or a class folder without image files.
    """
    root = Path(split_dir)
    if not root.is_dir():
        raise DataNotFoundError(f"image folder split not found: {root}")
    if max_per_class is not None and (isinstance(max_per_class, bool) or max_per_class < 1):
        raise ValueError(f"max_per_class must be a positive int or None, got {max_per_class!r}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(no_class_folders(root))
    files: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        entries = sorted(
            (e for e in os.scandir(root / cls) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)),
            key=lambda e: e.name,
        )
        if not entries:
            raise DataError(empty_class_folder(root / cls, IMAGE_EXTENSIONS))
        for e in entries[:max_per_class]:
            files.append(f"{cls}/{e.name}")
            st = e.stat()
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
            labels.append(label)
    return FolderListing(root, tuple(classes), tuple(files), tuple(sizes), tuple(mtimes), tuple(labels))


def _decode_pil(path: Path) -> Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError and "Truncated File Read" are OSErrors
        raise unreadable_image(path, exc) from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, H, W)


def _decode_jpegs_torchvision(paths: Sequence[Path]) -> list[Tensor] | None:
    """One batched libjpeg-turbo call for many JPEGs (faster than decoding with PIL one file at a time), or None if unavailable."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # torchvision's image codecs are deprecated (0.29) and may disappear
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
            return list(decode_jpeg(data, mode=ImageReadMode.RGB))
    except RuntimeError:  # e.g. a CMYK file libjpeg-turbo rejects, or no image extension: PIL handles it
        log.debug("batched JPEG decode failed; falling back to PIL for %d files", len(paths))
        return None


def _decode_chunk(paths: Sequence[Path]) -> list[Tensor]:
    """Decode files to uint8 ``(3, H, W)``: JPEGs in one batched torchvision call, the rest with PIL."""
    out: list[Tensor | None] = [None] * len(paths)
    jpeg_pos = [i for i, p in enumerate(paths) if p.suffix.lower() in _JPEG_EXTENSIONS]
    if jpeg_pos:
        decoded = _decode_jpegs_torchvision([paths[i] for i in jpeg_pos])
        undecoded: list[Tensor | None] = [None] * len(jpeg_pos)
        for i, img in zip(jpeg_pos, decoded or undecoded, strict=True):
            out[i] = img
    return [img if img is not None else _decode_pil(p) for img, p in zip(out, paths, strict=True)]


def _resize_center(img: Tensor, size: int) -> Tensor:
    """Resize the shorter side to ``size`` (antialiased bilinear), then centre-crop ``size x size``."""
    from torchvision.transforms.v2 import functional as TF

    return TF.center_crop(TF.resize(img, [size], antialias=True), [size, size])


# The caller's "no progress output" (vicinal train --quiet, the demo's runs, ranks other than 0) wins over a
# dataset's own progress option (data.kwargs.progress defaults to true): the trainer builds its data inside
# quiet_progress(); the bars are the decoders' only output.
_QUIET: ContextVar[bool] = ContextVar("vicinal_quiet_progress", default=False)


@contextlib.contextmanager
def quiet_progress(quiet: bool = True) -> Iterator[None]:
    """No decoding progress bar inside the block when ``quiet`` (whatever ``progress`` a loader is given)."""
    token = _QUIET.set(quiet or _QUIET.get())
    try:
        yield
    finally:
        _QUIET.reset(token)


def decode_images(
    paths: Sequence[Path], *, image_size: int | None = None, progress: bool = True, desc: str = "decode"
) -> Tensor:
    """Decode image files into one uint8 tensor ``(N, 3, H, W)``.

    Args:
        paths: Image files.
        image_size: Resize (shorter side) and centre-crop every image to this size; None requires all
            images to have the same size already.
        progress: Show a tqdm bar (never inside :func:`quiet_progress`).
        desc: Label of the bar.

    Raises:
        ValueError: images of different sizes and no ``image_size``.
    """
    if not paths:
        raise ValueError("decode_images got an empty list of files")
    out: Tensor | None = None
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress or _QUIET.get(), leave=False) as bar:
        for start in range(0, len(paths), _DECODE_CHUNK):
            chunk = paths[start : start + _DECODE_CHUNK]
            imgs = _decode_chunk(chunk)
            if image_size is not None:
                imgs = [_resize_center(im, image_size) for im in imgs]
            if out is None:
                # Preallocate once: no list of 60k tensors, no second copy from torch.stack.
                out = torch.empty((len(paths), *imgs[0].shape), dtype=torch.uint8)
            for k, (im, p) in enumerate(zip(imgs, chunk, strict=True)):
                if im.shape != out.shape[1:]:
                    raise DataError(
                        f"image {p} has shape {tuple(im.shape)} but {paths[0]} has {tuple(out.shape[1:])}; "
                        "pass image_size=... to resize all images to one size"
                    )
                out[start + k] = im
            bar.update(len(chunk))
    assert out is not None
    return out


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images ``(N, C, H, W)`` in the [0, 1] scale.

    Sums are taken in float64 over chunks (exact for integer pixels up to ~10^9 images of 32x32).
    """
    if x.ndim != 4:
        raise ValueError(f"channel_stats expects (N, C, H, W), got shape {tuple(x.shape)}")
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, x.shape[0], 2048):
        xs = x[start : start + 2048].to(torch.float64)  # (b, C, H, W)
        s += xs.sum(dim=(0, 2, 3))
        s2 += xs.square().sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    mean = s / count
    std = (s2 / count - mean.square()).clamp_min(0).sqrt()
    return tuple((mean / scale).tolist()), tuple((std / scale).tolist())


@dataclass
class DecodedSplit:
    """One decoded ImageFolder split."""

    x: Tensor  # (N, 3, H, W) uint8
    y: Tensor  # (N,) int64
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cache_path: Path | None
    cache_hit: bool
    decode_seconds: float  # time of the original decode (also reported on cache hits)
    key: str = ""  # FolderListing.key: the cache key, also the split's fingerprint in a run's provenance


def _read_cache(path: Path) -> dict[str, Any] | None:
    """A decoded-images cache file, or None (with a warning naming it, after removing it) when it is unreadable:
    the caller then decodes the images again and writes a new one."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or not {"x", "y", "classes", "mean", "std", "decode_seconds"} <= set(blob):
            raise ValueError("not a decoded-images cache")
        return blob
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError ... for a truncated or foreign file
        text = " ".join(str(exc).split())[:160]
        warnings.warn(
            f"decoded-images cache '{path}' is unreadable ({type(exc).__name__}: {text}); removing it and "
            "decoding the images again",
            LabWarning,
            stacklevel=3,
        )
        path.unlink(missing_ok=True)
        return None


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "root"


def load_image_folder_split(
    split_dir: str | Path,
    *,
    max_per_class: int | None = None,
    image_size: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> DecodedSplit:
    """Decode an ImageFolder split into memory, reusing ``cache_dir()/imagefolder-<parent>-<split>-<key>.pt``.

    Args:
        split_dir: ``<split>/<class>/<image>`` tree.
        max_per_class: Decode only the first N files (by name) of each class (fast tests, previews).
        image_size: See `decode_images`.
        cache: Read and write the decoded tensor cache.
        progress: tqdm bar while decoding.
    """
    check_option_int("image_size", image_size, 1, none_ok=True)
    check_option_bool("cache", cache)
    listing = list_image_folder(split_dir, max_per_class=max_per_class)
    key = listing.key(image_size=image_size)
    root = listing.root
    path = cache_dir() / f"imagefolder-{_safe(root.resolve().parent.name)}-{_safe(root.name)}-{key}.pt"
    blob = _read_cache(path) if cache and path.is_file() else None
    if blob is not None:
        if blob.get("version") == _CACHE_VERSION and blob.get("key") == key:
            log.info("decoded images from cache %s", path)
            return DecodedSplit(
                blob["x"],
                blob["y"],
                tuple(blob["classes"]),
                tuple(blob["mean"]),
                tuple(blob["std"]),
                path,
                True,
                float(blob["decode_seconds"]),
                key,
            )
    t0 = time.perf_counter()
    x = decode_images(
        [root / rel for rel in listing.files], image_size=image_size, progress=progress, desc=f"decode {root}"
    )
    seconds = time.perf_counter() - t0
    log.info("decoded %d images from %s in %.1f s", x.shape[0], root, seconds)
    y = torch.tensor(listing.labels, dtype=torch.int64)
    mean, std = channel_stats(x)
    if cache:
        blob = {
            "version": _CACHE_VERSION,
            "key": key,
            "source": str(root.resolve()),
            "x": x,
            "y": y,
            "classes": list(listing.classes),
            "mean": list(mean),
            "std": list(std),
            "decode_seconds": seconds,
        }
        clean_stale_temp_files(path.parent, path.name)  # a killed earlier write of this cache: its temp file
        atomic_write(path, lambda f: torch.save(blob, f))  # a crash or a concurrent reader never sees half a cache
    return DecodedSplit(x, y, listing.classes, mean, std, path if cache else None, False, seconds, key)


# --------------------------------------------------------------------------------------------------------------
# In-memory datasets -> TensorSplits
# --------------------------------------------------------------------------------------------------------------


def load_cifar10_jpeg(
    root: str | Path | None = None,
    *,
    max_per_class: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> TensorSplits:
    """CIFAR-10 from a JPEG ImageFolder tree (``<root>/{train,test}/<class>/NNNN.jpg``), as uint8 tensors.

    Args:
        root: The tree; default ``data_root()/"cifar10-jpeg"`` (the shared copy, see SOURCES.md).
        max_per_class: Decode only the first N files of each class (tests); None = all 60,000.
        cache: Use the decoded-tensor cache in ``cache_dir()``.
        progress: tqdm bar while decoding.

    Returns:
        TensorSplits with train ``(50000, 3, 32, 32)`` and test ``(10000, 3, 32, 32)`` uint8; mean/std of
        the decoded training split; info["augment"] = "crop_flip" (paper 3.2).
    """
    root = Path(root) if root is not None else data_root() / "cifar10-jpeg"
    splits = {}
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataNotFoundError(f"CIFAR-10 JPEG split not found: {root / split}")
        d = load_image_folder_split(root / split, max_per_class=max_per_class, cache=cache, progress=progress)
        if d.classes != CIFAR10_CLASSES:
            raise DataError(f"{root / split} has classes {list(d.classes)}, expected {list(CIFAR10_CLASSES)}")
        if d.x.shape[1:] != (3, 32, 32):
            raise DataError(f"{root / split} images have shape {tuple(d.x.shape[1:])}, expected (3, 32, 32)")
        splits[split] = d
    tr, te = splits["train"], splits["test"]
    return TensorSplits(
        train=(tr.x, tr.y),
        test=(te.x, te.y),
        num_classes=10,
        mean=tr.mean,
        std=tr.std,
        info={
            "source": "cifar10-jpeg",
            "root": str(root),
            "classes": list(CIFAR10_CLASSES),
            "augment": "crop_flip",
            "crop_padding": 4,
            "cache": [str(tr.cache_path), str(te.cache_path)],
            "cache_key": f"train {tr.key} test {te.key}",
            "decode_seconds": tr.decode_seconds + te.decode_seconds,
        },
    )


def cifar_search_roots(name: str) -> list[Path]:
    """Where the python batches of torchvision CIFAR ``name`` are looked for under the data root, in order:
    ``data_root()``, then ``data_root()/name``. One list for both readers: `load_cifar_torchvision` and the cifar10
    builder's ``source: auto``, which must pick the batches exactly when the loader would find them.

    Raises:
        DataNotFoundError: there is no data root (an installed package without ``VICINAL_DATA`` or ``--data``).
    """
    root = data_root()
    return [root, root / name]


def load_cifar_torchvision(name: str, root: str | Path | None = None, *, download: bool = False) -> TensorSplits:
    """CIFAR-10 or CIFAR-100 in torchvision's python format, converted to uint8 ``(N, 3, 32, 32)`` tensors.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: Folder holding ``cifar-10-batches-py`` / ``cifar-100-python``. Default: the first of
            ``data_root()``, ``data_root()/name``, ``cache_dir()/"datasets"`` that has it; with ``download``
            and nothing found, ``cache_dir()/"datasets"``.
        download: Let torchvision download (and md5-check) the archive. Off unless the user asks.

    Raises:
        ValueError: unknown ``name``.
        FileNotFoundError: data absent and ``download`` is False.
    """
    from torchvision.datasets import CIFAR10, CIFAR100

    classes = {"cifar10": (CIFAR10, 10), "cifar100": (CIFAR100, 100)}
    if name not in classes:
        raise ValueError(f"load_cifar_torchvision: name must be 'cifar10' or 'cifar100', got {name!r}")
    cls, num_classes = classes[name]
    check_option_bool("download", download)
    if root is None:
        try:
            roots = cifar_search_roots(name)
        except DataNotFoundError:  # no data root (an installed package without VICINAL_DATA or --data)
            if not download:
                raise
            roots = []  # download into the cache
        candidates = [*roots, cache_dir() / "datasets"]
        found = [c for c in candidates if (c / cls.base_folder).is_dir()]
        if found:
            root = found[0]
        elif download:
            root = cache_dir() / "datasets"
        else:
            where = ", ".join(str(c) for c in candidates)
            raise DataNotFoundError(
                f"{name}: {cls.base_folder} not found in {where}; pass download=True or root=<folder holding it>"
            )
    root = Path(root)
    if not download and not (root / cls.base_folder).is_dir():
        raise DataNotFoundError(f"{name}: {root / cls.base_folder} not found; pass download=True to fetch it")
    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = cls(str(root), train=train, download=download)
        except (OSError, RuntimeError) as exc:  # URLError (no network) is an OSError; bad archives RuntimeErrors
            raise _torchvision_failure(name, cls, root, download, exc) from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # (N,H,W,C)->(N,C,H,W)
        out[split] = (x, torch.tensor(ds.targets, dtype=torch.int64))
    mean, std = channel_stats(out["train"][0])
    batches = root / cls.base_folder
    fingerprint = file_list_key(batches, stat_files(sorted(batches.iterdir()), batches), version=1, options={})
    return TensorSplits(
        train=out["train"],
        test=out["test"],
        num_classes=num_classes,
        mean=mean,
        std=std,
        info={
            "source": f"torchvision.{cls.__name__}",
            "root": str(root),
            "augment": "crop_flip",
            "crop_padding": 4,
            "fingerprint": fingerprint[:20],  # of the batch files: a run's provenance records it
        },
    )


def _torchvision_failure(name: str, cls: Any, root: Path, download: bool, exc: BaseException) -> DataError:
    """The one-line error for a torchvision CIFAR that could not be downloaded or read, saying how to supply it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if download:
        return DataError(
            f"{name}: downloading {cls.url} into {root} failed ({type(exc).__name__}: {text}); without network "
            f"access, extract {cls.filename} elsewhere and put its {cls.base_folder} folder into {root} (or point "
            "data.root / --data at the folder holding it), then run with data.kwargs.download=false"
        )
    return DataError(
        f"{name}: {root / cls.base_folder} cannot be read ({type(exc).__name__}: {text}); replace it with a fresh "
        f"copy extracted from {cls.filename}, or set data.kwargs.download=true to fetch it"
    )


def eval_split_dirs(root: Path) -> tuple[Path, Path | None]:
    """(test split, val split or None): ``test/`` if present (then ``val/`` is the validation split), else ``val/``."""
    test, val = root / "test", root / "val"
    if not root.is_dir():  # named as missing, not as a folder without an evaluation split
        raise DataNotFoundError(f"image folder not found: {root}")
    if test.is_dir():
        return test, (val if val.is_dir() else None)
    if val.is_dir():
        return val, None
    raise DataNotFoundError(f"no evaluation split in {root}: expected {test} or {val}")


def load_image_folder_memory(
    root: str | Path,
    *,
    image_size: int | None = None,
    max_per_class: int | None = None,
    crop_padding: int = 4,
    cache: bool = True,
    progress: bool = True,
) -> TensorSplits:
    """A small ImageFolder tree (``root/train``, ``root/test`` or ``root/val``) decoded into memory.

    The test split is ``root/test`` if present (and then ``root/val`` is the validation split), else
    ``root/val``. All splits must have the same classes. Training augmentation: random crop with
    ``crop_padding`` zero padding + horizontal flip.
    """
    check_option_int("crop_padding", crop_padding, 0)
    root = Path(root)
    test_dir, val_dir = eval_split_dirs(root)
    kw: dict[str, Any] = {
        "image_size": image_size,
        "max_per_class": max_per_class,
        "cache": cache,
        "progress": progress,
    }
    tr = load_image_folder_split(root / "train", **kw)
    evals = {"test": load_image_folder_split(test_dir, **kw)}
    if val_dir is not None:
        evals["val"] = load_image_folder_split(val_dir, **kw)
    for split, d in evals.items():
        if d.classes != tr.classes:
            raise DataError(f"{root}: {split} split has classes {list(d.classes)} but train has {list(tr.classes)}")
        if d.x.shape[1:] != tr.x.shape[1:]:
            raise DataError(
                f"{root}: {split} images have shape {tuple(d.x.shape[1:])} but train images have "
                f"{tuple(tr.x.shape[1:])}; pass image_size=..."
            )
    te = evals["test"]
    va = evals.get("val")
    return TensorSplits(
        train=(tr.x, tr.y),
        test=(te.x, te.y),
        val=(va.x, va.y) if va is not None else None,
        num_classes=len(tr.classes),
        mean=tr.mean,
        std=tr.std,
        info={
            "source": "imagefolder_memory",
            "root": str(root),
            "classes": list(tr.classes),
            "test_dir": str(test_dir),
            "augment": "crop_flip",
            "crop_padding": crop_padding,
            "cache_key": " ".join(f"{k} {d.key}" for k, d in (("train", tr), *evals.items())),
        },
    )


def load_digits_splits(*, seed: int = 0, test_fraction: float = 1 / 3) -> TensorSplits:
    """scikit-learn's 1,797 8x8 handwritten digits as float images ``(N, 1, 8, 8)`` in [0, 1] (pixels / 16).

    Split, stratified and seeded: for each class ``c`` (``n_c`` samples) the class's indices are permuted
    with ``make_generator(seed, STREAM_SPLIT)`` and the first ``floor(n_c * test_fraction + 0.5)`` go to the
    test split, the rest to train; both index sets are sorted ascending. With the default 1/3 that is 599
    test and 1,198 training images.
    """
    from sklearn.datasets import load_digits

    check_fraction("test_fraction", test_fraction)
    d = load_digits()
    x = torch.from_numpy(d.images).to(torch.float32).div_(16.0).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(d.target).to(torch.int64)
    g = make_generator(seed, STREAM_SPLIT)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = math.floor(idx.numel() * test_fraction + 0.5)
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    tr = torch.cat(train_idx).sort().values
    te = torch.cat(test_idx).sort().values
    xt = x[tr]
    return TensorSplits(
        train=(xt, y[tr]),
        test=(x[te], y[te]),
        num_classes=10,
        mean=(float(xt.mean()),),
        std=(float(xt.std(unbiased=False)),),
        info={"source": "sklearn.datasets.load_digits", "test_fraction": test_fraction, "split_seed": seed},
    )


__all__ = [
    "CIFAR10_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DecodedSplit",
    "FolderListing",
    "channel_stats",
    "cifar_search_roots",
    "decode_images",
    "eval_split_dirs",
    "list_image_folder",
    "load_cifar10_jpeg",
    "load_cifar_torchvision",
    "load_digits_splits",
    "load_image_folder_memory",
    "load_image_folder_split",
    "quiet_progress",
]
