"""Big ImageFolder trees (ImageNet) streamed by a DataLoader: seeded per-sample crops, DistributedSampler
order, and a loader that satisfies the trainer's `Loader` protocol.

Small trees that fit in memory are decoded once by `vicinal.experiments.data.images`; this module is for trees
that do not (ImageNet's 1.28 M training images), so each epoch decodes its images again in worker processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vicinal.experiments.data.base import (
    STREAM_AUGMENT,
    STREAM_FETCH,
    Batch,
    check_option_int,
    check_rank,
    empty_class_folder,
    make_generator,
    no_class_folders,
    subset_per_class_indices,
    to_model_input,
    unreadable_image,
)
from vicinal.experiments.errors import DataError, DataNotFoundError


class SeededRandomResizedCrop:
    """RandomResizedCrop(size, scale, ratio) + horizontal flip whose randomness comes from a generator.

    Same sampling rule as torchvision's `RandomResizedCrop.get_params` (10 tries of area fraction ~ U(scale),
    log aspect ratio ~ U(log ratio), else the central crop clamped to ``ratio``), but drawn from an explicit
    `torch.Generator` so that each sample's crop depends only on its seed, not on workers or global RNGs.
    Returns uint8 ``(3, size, size)``; the float conversion (ToTensor's ``/255``) happens on the device.
    """

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ) -> None:
        self.size = size
        self.scale = scale
        self.ratio = ratio
        self.flip = flip

    def params(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int, bool]:
        """(top, left, crop height, crop width, flip) for an image of ``height x width``."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        u = torch.rand(10, 4, generator=generator, dtype=torch.float64).tolist()  # one row per try
        for r_area, r_ratio, r_top, r_left in u:
            target_area = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * r_area)
            aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * r_ratio)
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = min(int(r_top * (height - h + 1)), height - h)
                left = min(int(r_left * (width - w + 1)), width - w)
                break
        else:
            in_ratio = width / height
            if in_ratio < min(self.ratio):
                w, h = width, round(width / min(self.ratio))
            elif in_ratio > max(self.ratio):
                h, w = height, round(height * max(self.ratio))
            else:
                w, h = width, height
            top, left = (height - h) // 2, (width - w) // 2
        flip = self.flip and bool(torch.rand((), generator=generator) < 0.5)
        return top, left, h, w, flip

    def __call__(self, img: Any, generator: torch.Generator) -> Tensor:
        from torchvision.transforms import functional as TF

        width, height = img.size  # PIL
        top, left, h, w, flip = self.params(height, width, generator)
        img = TF.resized_crop(img, top, left, h, w, [self.size, self.size], antialias=True)
        if flip:
            img = TF.hflip(img)
        return TF.pil_to_tensor(img)  # (3, size, size) uint8


class CenterCropEval:
    """Resize(resize) + CenterCrop(size), returning uint8 ``(3, size, size)`` (the standard ImageNet eval)."""

    def __init__(self, size: int = 224, resize: int = 256) -> None:
        self.size = size
        self.resize = resize

    def __call__(self, img: Any) -> Tensor:
        from torchvision.transforms import functional as TF

        img = TF.center_crop(TF.resize(img, [self.resize], antialias=True), [self.size, self.size])
        return TF.pil_to_tensor(img)


class _SeededFolderDataset(torch.utils.data.Dataset):
    """ImageFolder samples addressed by ``(index, epoch)``: the train crop of (index, epoch) is seeded
    ``make_generator(seed, STREAM_AUGMENT, epoch, index)``, independent of worker count and rank."""

    def __init__(self, samples: list[tuple[str, int]], loader: Any, transform: Any, seed: int, train: bool) -> None:
        self.samples = samples
        self.loader = loader
        self.transform = transform
        self.seed = seed
        self.train = train

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int, int]:
        index, epoch = key
        path, target = self.samples[index]
        try:
            img = self.loader(path)
        except (OSError, SyntaxError, ValueError) as exc:
            raise unreadable_image(path, exc) from None
        if self.train:
            x = self.transform(img, make_generator(self.seed, STREAM_AUGMENT, epoch, index))
        else:
            x = self.transform(img)
        return x, target, index


class _TaggedSampler(torch.utils.data.Sampler):
    """Yields ``(index, epoch)`` for a precomputed shard order (so the dataset knows the epoch)."""

    def __init__(self, order: list[int], epoch: int) -> None:
        self.order = order
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, self.epoch) for i in self.order)

    def __len__(self) -> int:
        return len(self.order)


class ImageFolderLoader:
    """A torchvision ImageFolder streamed by a DataLoader, satisfying the `Loader` protocol.

    Train: order from `DistributedSampler(shuffle=True, seed=seed)` (pads so all ranks run the same number
    of steps), crops from `SeededRandomResizedCrop` seeded per (epoch, index). Eval: `CenterCropEval`,
    shard ``range(rank, N, world_size)`` without padding (each image counted once over all ranks).
    ``iter_from(epoch, b)`` skips the first ``b`` batches without decoding them. Workers decode uint8;
    batches are pinned, moved with ``non_blocking`` and converted to float32 in [0, 1] on the device.
    """

    def __init__(
        self,
        samples: list[tuple[str, int]],
        *,
        train: bool,
        batch_size: int,
        seed: int,
        device: str | torch.device,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 4,
        drop_last: bool = False,
        image_size: int = 224,
        resize: int = 256,
        loader: Any = None,
    ) -> None:
        from torchvision.datasets.folder import default_loader

        check_rank(rank, world_size)
        # data.kwargs reach here unchecked: refuse bad values now, not when the first batch is drawn
        check_option_int("batch_size", batch_size, 1)
        check_option_int("num_workers", num_workers, 0)
        check_option_int("image_size", image_size, 1)
        check_option_int("resize", resize, 1)
        if not samples:
            raise DataError("ImageFolderLoader got no samples")
        self.train = train
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.transform = SeededRandomResizedCrop(image_size) if train else CenterCropEval(image_size, resize)
        self.dataset = _SeededFolderDataset(samples, loader or default_loader, self.transform, seed, train)
        self.targets = torch.tensor([t for _, t in samples], dtype=torch.int64)
        self.epoch = 0
        self._fetch_generator = make_generator(seed, STREAM_FETCH, rank)

    def _order(self, epoch: int) -> list[int]:
        n = len(self.dataset)
        if not self.train:
            return list(range(self.rank, n, self.world_size))
        sampler: torch.utils.data.DistributedSampler[int] = torch.utils.data.DistributedSampler(
            self.dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=self.seed
        )
        sampler.set_epoch(epoch)
        return list(sampler)

    @property
    def num_samples(self) -> int:
        """Samples this rank visits per epoch."""
        n = len(self.dataset)
        return math.ceil(n / self.world_size) if self.train else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch `__iter__` produces."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(self.epoch, 0)

    def iter_from(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Batches ``start_batch..`` of ``epoch`` (skipped batches are never decoded)."""
        self.set_epoch(epoch)
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch={start_batch} is outside [0, {len(self)}]")
        order = self._order(epoch)[start_batch * self.batch_size :]
        cuda = self.device.type == "cuda"
        dl = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=_TaggedSampler(order, epoch),
            num_workers=self.num_workers,
            pin_memory=cuda,
            drop_last=self.drop_last,
            # An explicit generator keeps DataLoader from drawing its worker base seed from the global RNG.
            generator=make_generator(self.seed, STREAM_FETCH, epoch, self.rank),
            persistent_workers=False,
        )
        return self._move(dl)

    def _move(self, dl: torch.utils.data.DataLoader) -> Iterator[Batch]:
        try:
            for x, y, idx in dl:
                x = x.to(self.device, non_blocking=True)
                yield to_model_input(x), y.to(self.device, non_blocking=True), idx.to(self.device, non_blocking=True)
        except DataError as exc:
            # Re-raised from a worker process with the worker's traceback in its text: keep the message only.
            text = str(exc).strip().splitlines()
            raise DataError(text[-1].split("DataError: ", 1)[-1] if text else str(exc)) from None

    def fetch(self, indices: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Training-transformed samples by index, crops drawn from ``generator`` (default: the loader's fetch
        generator, seeded ``derive_seed(seed, STREAM_FETCH, rank)``)."""
        gen = generator or self._fetch_generator
        ds = self.dataset
        imgs = []
        for i in indices.tolist():
            img = ds.loader(ds.samples[i][0])
            imgs.append(ds.transform(img, gen) if ds.train else ds.transform(img))
        x = torch.stack(imgs).to(self.device)
        return to_model_input(x), self.targets[indices.cpu()].to(self.device)


def image_folder_samples(split_dir: str | Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples, classes)`` of a torchvision ImageFolder (the class scan and file walk happen here).

    Raises:
        DataNotFoundError: ``split_dir`` is missing, has no class folders (e.g. a flat ImageNet ``val/``) or has
            a class folder without image files; the message says which and what layout is expected.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataNotFoundError(f"image folder split not found: {split_dir}")
    try:
        folder = ImageFolder(str(split_dir))
    except FileNotFoundError as exc:  # torchvision's wording for both layout errors: say which, in the lab's words
        raise DataNotFoundError(_layout_problem(split_dir, IMG_EXTENSIONS) or str(exc)) from None
    return list(folder.samples), list(folder.classes)


def _layout_problem(split_dir: Path, extensions: tuple[str, ...]) -> str | None:
    """What makes ``split_dir`` no ImageFolder split (torchvision's own rules), or None if nothing is found."""
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        return no_class_folders(split_dir)
    for cls in classes:
        if not any(e.is_file() and e.name.lower().endswith(extensions) for e in os.scandir(split_dir / cls)):
            return empty_class_folder(split_dir / cls, extensions)
    return None


def subset_samples(samples: list[tuple[str, int]], per_class: int, seed: int) -> list[tuple[str, int]]:
    """The `subset_per_class_indices` rule applied to an ImageFolder sample list."""
    y = torch.tensor([t for _, t in samples], dtype=torch.int64)
    return [samples[i] for i in subset_per_class_indices(y, per_class, seed).tolist()]


__all__ = [
    "CenterCropEval",
    "ImageFolderLoader",
    "SeededRandomResizedCrop",
    "image_folder_samples",
    "subset_samples",
]
