"""Image decoding and image trees (data/images.py): CIFAR-10 JPEG, the decode cache, digits, named errors."""

from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from tests.experiments.data.data_helpers import write_image_tree, write_two_class_tree
from tests.experiments.lab_helpers import plant_killed_writes
from vicinal.experiments.data import (
    build_data,
    images,
    streaming,
)
from vicinal.experiments.errors import DataError, LabWarning


def test_cifar10_jpeg_subset_decodes_like_pil(require_data) -> None:
    from PIL import Image

    root = require_data("cifar10-jpeg")
    s = images.load_cifar10_jpeg(root, max_per_class=3, progress=False)
    x, y = s.train
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8
    assert y.tolist() == [c for c in range(10) for _ in range(3)]
    assert s.test[0].shape == (30, 3, 32, 32) and s.num_classes == 10
    assert s.info["classes"] == list(images.CIFAR10_CLASSES)
    first_truck = sorted((root / "train" / "truck").iterdir())[0]
    ref = torch.from_numpy(np.asarray(Image.open(first_truck).convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(x[27], ref)
    mean, std = images.channel_stats(x)
    assert mean == pytest.approx((x.double() / 255).mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx((x.double() / 255).std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-9)


def test_channel_stats_count_every_image_of_a_split_longer_than_one_chunk() -> None:
    x = torch.randint(0, 256, (2049, 3, 1, 2), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = images.channel_stats(x)  # sums over chunks of 2048 images
    assert mean == pytest.approx((x.double() / 255).mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx((x.double() / 255).std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-9)


def test_image_folder_cache_hit_reuses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_tree(tmp_path, {"train": 3})
    first = images.load_image_folder_split(tmp_path / "train", progress=False)
    assert not first.cache_hit and first.cache_path is not None and first.cache_path.is_file()
    assert first.cache_path.parent == Path(os.environ["VICINAL_CACHE"])
    mtime = first.cache_path.stat().st_mtime_ns

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(images, "decode_images", no_decode)
    second = images.load_image_folder_split(tmp_path / "train", progress=False)
    assert second.cache_hit and second.cache_path == first.cache_path
    assert first.cache_path.stat().st_mtime_ns == mtime
    assert torch.equal(second.x, first.x) and torch.equal(second.y, first.y)
    assert second.classes == ("a_cls", "b_cls")  # alphabetical, ImageFolder's rule
    # A changed file list is a different key: a new decode (which the patch forbids).
    (tmp_path / "train" / "a_cls" / "000.jpg").unlink()
    with pytest.raises(AssertionError, match="decoded although"):
        images.load_image_folder_split(tmp_path / "train", progress=False)


def test_digits_split_is_stratified_and_seeded() -> None:
    s = images.load_digits_splits(seed=0)
    (xtr, ytr), (xte, yte) = s.train, s.test
    assert xtr.shape == (1198, 1, 8, 8) and xte.shape == (599, 1, 8, 8)
    assert xtr.dtype == torch.float32 and float(xtr.min()) == 0.0 and float(xtr.max()) == 1.0
    all_y = torch.cat([ytr, yte])
    n_c = torch.bincount(all_y)
    assert torch.bincount(yte).tolist() == [math.floor(n / 3 + 0.5) for n in n_c.tolist()]
    other = images.load_digits_splits(seed=1)
    assert torch.equal(images.load_digits_splits(seed=0).test[0], xte)
    assert not torch.equal(other.test[0], xte)
    b = build_data("digits", batch_size=100, seed=0)
    assert b.info["sizes"] == {"train": 1198, "test": 599} and b.input_shape == (1, 8, 8) and len(b.train) == 12
    assert b.info["augment"] is None  # float non-CIFAR data: no augmentation
    with pytest.raises(ValueError, match="test_fraction must be in"):
        images.load_digits_splits(test_fraction=1.5)


def test_cifar_torchvision_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-100-python not found; pass download=True"):
        build_data("cifar100", root=tmp_path)
    with pytest.raises(ValueError, match="name must be 'cifar10' or 'cifar100', got 'svhn'"):
        images.load_cifar_torchvision("svhn")


def test_missing_jpeg_tree_and_empty_class(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CIFAR-10 JPEG split not found"):
        build_data("cifar10", root=tmp_path)
    (tmp_path / "train" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no image files"):
        images.list_image_folder(tmp_path / "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        images.list_image_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="image folder split not found"):
        images.list_image_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="max_per_class must be a positive int or None, got 0"):
        images.list_image_folder(tmp_path / "train", max_per_class=0)
    with pytest.raises(ValueError, match="decode_images got an empty list"):
        images.decode_images([])


def test_image_tree_errors_name_what_they_got(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_tree(tmp_path / "wrong", {"train": 1, "test": 1})
    with pytest.raises(ValueError, match=r"has classes \['a_cls', 'b_cls'\], expected \['airplane'"):
        images.load_cifar10_jpeg(tmp_path / "wrong", progress=False)
    write_image_tree(tmp_path / "mismatch", {"train": 1})
    write_image_tree(tmp_path / "mismatch", {"test": 1}, classes=("a_cls", "z_cls"))
    with pytest.raises(ValueError, match=r"test split has classes \['a_cls', 'z_cls'\] but train has"):
        images.load_image_folder_memory(tmp_path / "mismatch", progress=False)
    with pytest.raises(ValueError, match=r"differ from train's 2"):
        build_data("imagefolder", root=tmp_path / "mismatch", num_workers=0)
    write_image_tree(tmp_path / "noeval", {"train": 1})
    with pytest.raises(FileNotFoundError, match="no evaluation split in"):
        build_data("imagefolder_memory", root=tmp_path / "noeval", progress=False)
    with pytest.raises(ValueError, match=r"channel_stats expects \(N, C, H, W\), got shape \(2, 3\)"):
        images.channel_stats(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ImageFolderLoader got no samples"):
        streaming.ImageFolderLoader([], train=True, batch_size=2, seed=0, device="cpu")
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py not found in .*; pass download=True or root="):
        images.load_cifar_torchvision("cifar10")


def test_a_corrupt_decoded_cache_is_named_and_rebuilt(tmp_path: Path) -> None:
    from vicinal.experiments.data.images import load_image_folder_split

    write_two_class_tree(tmp_path / "imgs")
    first = load_image_folder_split(tmp_path / "imgs" / "train", progress=False)
    assert first.cache_path is not None and first.cache_path.is_file()
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:100])  # truncated: UnpicklingError / EOFError
    with pytest.warns(LabWarning, match=f"decoded-images cache '{first.cache_path}' is unreadable"):
        again = load_image_folder_split(tmp_path / "imgs" / "train", progress=False)
    assert not again.cache_hit and torch.equal(again.x, first.x)
    third = load_image_folder_split(tmp_path / "imgs" / "train", progress=False)  # rebuilt: read from it
    assert third.cache_hit and torch.equal(third.x, first.x)


def test_cifar_download_without_network_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 7 of the data audit: data.kwargs.download=true without network gave a URLError traceback."""
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        images.load_cifar_torchvision("cifar10", tmp_path, download=True)
    assert str(info.value).startswith(
        f"cifar10: downloading https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into {tmp_path} failed "
        "(URLError: <urlopen error [Errno -2] Name or service not known>); without network access, extract "
        f"cifar-10-python.tar.gz elsewhere and put its cifar-10-batches-py folder into {tmp_path}"
    )
    (tmp_path / "cifar-10-batches-py").mkdir()  # present but empty: torchvision's integrity check fails
    with pytest.raises(DataError, match=r"^cifar10: .*cifar-10-batches-py cannot be read \(RuntimeError: Dataset not"):
        images.load_cifar_torchvision("cifar10", tmp_path)


def test_a_rebuilt_cache_sweeps_the_temp_file_of_a_killed_write(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"train": 3})
    first = images.load_image_folder_split(tmp_path / "train", progress=False)
    first.cache_path.unlink()  # as if the decode that was to write it had been killed
    (planted,) = plant_killed_writes(first.cache_path.parent, [first.cache_path.name])
    again = images.load_image_folder_split(tmp_path / "train", progress=False)
    assert not again.cache_hit and again.cache_path.is_file() and not planted.exists()
