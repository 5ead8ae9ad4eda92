"""Mixing at collate time, on uint8 batches, inside DataLoader workers (the idea of timm's ``FastCollateMixup``):
the batch is mixed while still uint8 (4x less memory traffic than float32) and the float conversion and
normalisation happen once, after mixing, usually on the GPU.

Mixed pixels are rounded to the nearest integer (``round(lam * a + (1 - lam) * b)``), never truncated, and equal
bit for bit to mixing in float32 and rounding. The stacked batch is a fresh tensor owned by the collate function, so
it is mixed in place, one cache-sized slice at a time (:func:`vicinal.functional.mix_`): a gather of the partners'
slice and one fused uint8 pass per slice (float32 slices only for per-sample lam or a torch without quantized ops);
no float32 copy of the batch is ever made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .mixup import BatchMix, Mixup

_CHANNELS = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA (see _channels_last)

# PIL modes whose 8-bit values are not intensities, so that a weighted average of two of them means nothing
_NOT_INTENSITIES = {
    "P": "palette indices",
    "PA": "palette indices",
    "HSV": "hue is an angle",
    "LAB": "a* and b* are signed bytes",  # Pillow's LAB: grey is (L, 0, 0), green's a* = -79 is the byte 177
}


def _channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a 3-D numpy image is (H, W, C) rather than (C, H, W): the channel axis is the outer one of 1-4
    entries (the last if both are). Other channel counts are ambiguous in numpy's layout-free arrays (a multispectral
    (13, 64, 64) and a (32, 48, 100) are both plausible either way): refused, a (C, H, W) tensor says it."""
    first, _, last = shape
    if last in _CHANNELS or first in _CHANNELS:
        return last in _CHANNELS
    raise ValueError(
        f"MixupCollate cannot tell the channel axis of a numpy image of shape {shape} (neither outer axis has 1-4 "
        "entries); pass a (C, H, W) uint8 tensor, e.g. torch.from_numpy(image).permute(2, 0, 1) for (H, W, C)"
    )


def _pil_array(img: Any) -> np.ndarray:
    """The pixels of a PIL image as a (read-only) numpy array, refused unless they are 8-bit intensities."""
    if not (hasattr(img, "mode") and hasattr(img, "size")) and not hasattr(img, "__array__"):
        # a path, bytes, None, an open file (which has a mode): not an image at all
        raise TypeError(
            f"MixupCollate needs images (uint8 tensors, numpy arrays or PIL images), got {type(img).__name__}"
        )
    mode = getattr(img, "mode", None)
    if mode in _NOT_INTENSITIES:
        raise TypeError(
            f"collate-time mixing needs pixel intensities, got a {mode!r} image ({_NOT_INTENSITIES[mode]}); "
            "img.convert('RGB') it"
        )
    arr = np.asarray(img)  # no dtype=: a cast would wrap 16-bit and truncate float images silently
    if arr.dtype != np.uint8:
        raise TypeError(f"collate-time mixing needs uint8 images, got an image of mode {mode!r} ({arr.dtype} values)")
    return arr


def _to_chw_uint8(img: Any) -> Tensor:
    if isinstance(img, Tensor):
        t = img
    else:
        arr = np.ascontiguousarray(img) if isinstance(img, np.ndarray) else _pil_array(img)
        # torch warns of tensors over read-only arrays (PIL's, memory-mapped files); the view is only read
        # (torch.stack copies it), but a copy keeps the warning out of the user's log on this rare path
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
        if t.dim() == 3 and _channels_last(tuple(t.shape)):
            t = t.permute(2, 0, 1)  # (H, W, C), as numpy arrays of PIL images; else (C, H, W), as timm's ToNumpy
    if t.dtype != torch.uint8:
        # float images (a pipeline that ends in ToDtype / ToTensor): the transform itself mixes them, in the loop
        # or in a collate_fn, as torchvision's MixUp is used
        hint = "; mix float batches with the transform instead: mixer(x, y)" if t.is_floating_point() else ""
        raise TypeError(f"collate-time mixing needs uint8 images, got dtype {t.dtype}{hint}")
    if t.dim() == 2:
        t = t.unsqueeze(0)  # a grayscale (H, W) image, as PIL's "L" images: one channel
    return t


# Above this many bytes a batch is stacked by torch when torch has several threads: its copy runs on all of them,
# numpy's on one (bench_collate.py, 2 threads: np.stack 1.3-2.2x faster up to 256x3x32x32, 0.7-0.9x at 256x3x224x224;
# 1 thread, as in DataLoader workers: 0.99-2.0x, faster at every size but a tie for (C, H, W) arrays at 224x224)
_NUMPY_STACK_MAX_BYTES = 8 << 20


def _stack_arrays(arrays: list[np.ndarray]) -> Tensor | None:
    """The ``(B, C, H, W)`` batch of uint8 numpy images of one shape in one copy, or None when they differ (the
    per-image path then names the odd one). ``np.stack`` writes straight into the batch tensor, transposing (H, W, C)
    images on the way: faster than stacking per-image tensor views on one thread and for small batches
    (benchmarks/bench_collate.py), and no tensor is made over a read-only array (which torch warns of). Large batches
    with several torch threads are stacked by torch (``_NUMPY_STACK_MAX_BYTES``)."""
    first = arrays[0]
    if first.dtype != np.uint8 or first.ndim not in (2, 3):
        return None
    # np.stack would cast a uint16 image into the uint8 batch ("same_kind"): every dtype is checked
    if any(a.shape != first.shape or a.dtype != np.uint8 for a in arrays):
        return None
    n = len(arrays)
    if n * first.nbytes > _NUMPY_STACK_MAX_BYTES and torch.get_num_threads() > 1:
        return torch.stack([_to_chw_uint8(a) for a in arrays])  # arrays of PIL images are read-only: copied there
    if first.ndim == 2:  # (H, W): one channel
        out = torch.empty((n, 1, *first.shape), dtype=torch.uint8)
        target = out[:, 0]
    elif _channels_last(first.shape):
        height, width, channels = first.shape
        out = torch.empty((n, channels, height, width), dtype=torch.uint8)
        target = out.permute(0, 2, 3, 1)  # the batch seen as (B, H, W, C): np.stack transposes as it copies
    else:
        out = torch.empty((n, *first.shape), dtype=torch.uint8)
        target = out
    np.stack(arrays, out=target.numpy())
    return out


def _stack_numpy_or_pil(images: list[Any]) -> Tensor | None:
    """A batch of numpy arrays only, or of PIL images only (each mode checked), stacked by ``_stack_arrays``; None
    for other batches (mixed types, shapes or dtypes), which the per-image path stacks or names."""
    kinds = set(map(type, images))
    if all(issubclass(kind, np.ndarray) for kind in kinds):
        return _stack_arrays(images)
    if not any(issubclass(kind, Tensor | np.ndarray) for kind in kinds):
        return _stack_arrays([_pil_array(img) for img in images])
    return None


def _stack_images(images: list[Any]) -> Tensor:
    """``(B, C, H, W)`` uint8 from CHW uint8 tensors (or (H, W) ones), numpy arrays (HWC, or CHW as timm's
    ``ToNumpy`` gives them, told apart by ``_channels_last``) or PIL images, all of one size."""
    if isinstance(images[0], Tensor):
        # the common case (tensors of one shape and dtype) in one call: a per-image check costs as much as mixing
        try:
            stacked = torch.stack(images)
        except (TypeError, RuntimeError):  # mixed types or shapes: the per-image path says what is wrong
            stacked = None
        if stacked is not None and stacked.dtype == torch.uint8 and stacked.dim() in (3, 4):
            return stacked.unsqueeze(1) if stacked.dim() == 3 else stacked
    stacked = _stack_numpy_or_pil(images)
    if stacked is not None:
        return stacked
    chw = [_to_chw_uint8(img) for img in images]
    i = next((k for k, t in enumerate(chw) if t.shape != chw[0].shape), None)
    if (
        i is not None
        and chw[i].dim() == chw[0].dim() == 3
        and chw[i].shape[1:] == chw[0].shape[1:]
        and {chw[0].shape[0], chw[i].shape[0]} <= set(_CHANNELS)
    ):
        # a grayscale or CMYK file among RGB ones (ImageNet has both): a mode problem, not a size one
        raise ValueError(
            f"MixupCollate needs images of one mode: sample 0 has {chw[0].shape[0]} channel(s), sample {i} has "
            f"{chw[i].shape[0]}; convert them in the dataset (e.g. img.convert('RGB'))"
        )
    if i is not None:
        raise ValueError(
            f"MixupCollate needs images of one size (crop or resize them in the dataset); sample 0 is "
            f"{tuple(chw[0].shape)} (C, H, W), sample {i} is {tuple(chw[i].shape)}"
        )
    if chw[0].dim() != 3:
        raise ValueError(
            f"MixupCollate stacks (C, H, W) or (H, W) images into (B, C, H, W); got images of shape "
            f"{tuple(chw[0].shape)}"
        )
    return torch.stack(chw)


def _scalar(label: Any) -> Any:
    """One label as a Python number: one-element tensors and arrays, and numpy scalars, give their value."""
    if isinstance(label, np.generic | np.ndarray) and label.dtype.kind not in "iu":
        raise TypeError("not an integer")  # named by its numpy type (float64, bool_) in _labels' message
    if isinstance(label, np.generic):  # np.uint64 among them, which torch.as_tensor refuses
        return label.item()
    if isinstance(label, Tensor | np.ndarray):
        if (label.size if isinstance(label, np.ndarray) else label.numel()) != 1:
            raise TypeError("not one value")
        return label.item()
    return label


def _labels(raw: list[Any]) -> Tensor:
    """Class indices ``(B,)`` int64; a float label is refused rather than truncated to a class."""
    labels = None
    try:  # one call for the common cases: Python ints (torchvision datasets), 0-d tensors (TensorDataset)
        if isinstance(raw[0], Tensor):
            labels = torch.stack(raw)
        elif not isinstance(raw[0], np.ndarray | np.generic):  # numpy labels: value by value below (torch warns
            labels = torch.as_tensor(raw)  # that a list of arrays is slow, and refuses np.uint64 scalars)
    except (TypeError, RuntimeError, ValueError):
        pass
    if labels is None or labels.dim() != 1:  # e.g. one-element (1,) tensors, or a mix of tensors and numbers
        try:
            labels = torch.as_tensor([_scalar(label) for label in raw])
        except (TypeError, ValueError, RuntimeError):
            kinds = sorted({f"{type(label).__name__} of shape {tuple(np.shape(label))}" for label in raw})
            raise TypeError(
                f"MixupCollate needs integer class labels, one per sample; got {', '.join(kinds)}"
            ) from None
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() != 1:
        raise TypeError(
            f"MixupCollate needs integer class labels, one per sample; got {labels.dtype} labels of shape "
            f"{tuple(labels.shape)}"
        )
    return labels.long()


def _multi_hot_rows(raw: list[Any]) -> Tensor:
    """Multi-label rows ``(B, C)`` (tensors, arrays or lists of C values each); the mixer checks their values."""
    try:
        rows = torch.stack([torch.as_tensor(np.asarray(r) if isinstance(r, list | tuple) else r) for r in raw])
    except (TypeError, ValueError, RuntimeError):
        kinds = sorted({f"{type(label).__name__} of shape {tuple(np.shape(label))}" for label in raw})
        raise TypeError(
            f"MixupCollate with multi_label=True needs one row of class values per sample, all of one length; got "
            f"{', '.join(kinds)}"
        ) from None
    if rows.dim() != 2:
        raise TypeError(
            f"MixupCollate with multi_label=True needs one row of class values per sample; got labels of shape "
            f"{tuple(rows.shape[1:])}"
        )
    return rows


def _describe_sample(sample: Any) -> str:
    if isinstance(sample, dict):
        return f"a dict with keys {sorted(map(str, sample))} (map it to (image, label) in the dataset)"
    if isinstance(sample, tuple | list):
        return f"a {type(sample).__name__} of {len(sample)} items"
    return f"a {type(sample).__name__}"


class MixupCollate:
    """A ``collate_fn`` that stacks ``(image, label)`` samples into a uint8 batch and mixes it.

    Args:
        mixer: the transform to apply (default: ``Mixup(alpha, num_classes=..., **kwargs)``); it must keep
            ``uint8_output="round"`` so the batch stays uint8.
        alpha, **kwargs: used to build the default :class:`Mixup` (alpha 1.0 unless given) when ``mixer`` is None;
            with ``mixer`` they are refused (they would be ignored).

    Samples are ``(image, label)`` pairs (a dict sample is refused: map it to a pair in the dataset), images of one
    size as uint8 ``(C, H, W)`` or ``(H, W)`` tensors, PIL images, or numpy arrays: ``(H, W)``, or ``(H, W, C)`` and
    ``(C, H, W)`` told apart by the outer axis of 1-4 entries (the last if both have; other channel counts are
    refused as ambiguous: pass such images as tensors). Labels are integer class indices, one per sample; with a
    ``multi_label=True`` mixer, rows of class values (multi-hot tensors, arrays or lists, timm's
    ``FastCollateMixup(multi_label=True)``).

    Returns from ``__call__``: ``(x_uint8 (B, C, H, W), targets (B, C) float32)``.

    In DataLoader workers the mixer re-seeds its copy once per worker, from the worker's seed and its own, as every
    vicinal transform does (see :class:`vicinal.BatchMix`): the workers draw different streams, each epoch new ones,
    and the same again when both the loader and the mixer are seeded. In the main process (``num_workers=0``) the
    mixer's own generator is used. The collate pickles (workers started by spawn or forkserver get a copy that
    continues the same random stream).
    """

    def __init__(self, mixer: BatchMix | None = None, *, alpha: float | None = None, **kwargs: Any) -> None:
        if mixer is not None and not isinstance(mixer, BatchMix):
            hint = f"; for the default Mixup pass alpha={mixer!r}" if isinstance(mixer, int | float) else ""
            raise TypeError(
                f"MixupCollate's mixer must be a vicinal transform such as Mixup(alpha, num_classes=...), got "
                f"{type(mixer).__name__}{hint}"
            )
        if mixer is None:
            # timm's FastCollateMixup takes these; here the transform is chosen by its class
            if "cutmix_minmax" in kwargs:
                raise TypeError(
                    "timm's cutmix_minmax is CutMix's box_range: pass mixer=CutMix(box_range=(min, max), ...) or "
                    "mixer=MixupOrCutMix(..., box_range=(min, max))"
                )
            if kwargs.get("cutmix_alpha") == 0 and "switch_prob" not in kwargs:
                raise TypeError("cutmix_alpha=0 is timm's 'CutMix off': MixupCollate mixes with Mixup; drop it")
            cutmix = sorted(k for k in kwargs if "cutmix" in k or k == "switch_prob")
            if cutmix:
                raise TypeError(
                    f"MixupCollate builds a Mixup from its options; for CutMix or the switch ({', '.join(cutmix)}) "
                    "pass mixer=MixupOrCutMix(...) or mixer=CutMix(...)"
                )
            mixer = Mixup(1.0 if alpha is None else alpha, **kwargs)
        elif kwargs or alpha is not None:
            given = sorted(kwargs) + (["alpha"] if alpha is not None else [])
            raise TypeError(f"pass options to the mixer, not to MixupCollate: {given}")
        if mixer.uint8_output != "round":
            raise ValueError("MixupCollate keeps batches uint8: the mixer needs uint8_output='round'")
        self.mixer = mixer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mixer!r})"

    def __call__(self, batch: Sequence[tuple[Any, Any]]) -> tuple[Tensor, Tensor]:
        if len(batch) == 0:
            raise ValueError("cannot collate an empty batch")
        # every sample a pair: the types once per distinct type (cheap), the lengths by the strict zip
        odd = [t for t in set(map(type, batch)) if not issubclass(t, tuple | list)]
        if odd or len(batch[0]) != 2:
            bad = next(s for s in batch if type(s) in odd) if odd else batch[0]
            raise TypeError(f"MixupCollate needs (image, label) samples; got {_describe_sample(bad)}")
        try:
            images_raw, labels_raw = zip(*batch, strict=True)
        except ValueError:
            bad = next(s for s in batch if len(s) != 2)
            raise TypeError(f"MixupCollate needs (image, label) samples; got {_describe_sample(bad)}") from None
        images = _stack_images(list(images_raw))  # (B, C, H, W) uint8
        labels = _multi_hot_rows(list(labels_raw)) if self.mixer.multi_label else _labels(list(labels_raw))
        # the same stream as self.mixer(images, labels); in place because `images` is ours
        params = self.mixer.sample(images, labels)
        return self.mixer.apply_inputs(images, params, inplace=True), self.mixer.apply_targets(labels, params)
