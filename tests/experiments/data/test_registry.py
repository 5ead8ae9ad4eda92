"""The dataset registry and build_data (data/registry.py): the paper's datasets, builders, options, errors."""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.experiments.data.data_helpers import write_image_tree
from vicinal.experiments.build import build_run_data
from vicinal.experiments.config import load_config
from vicinal.experiments.data import (
    DATASETS,
    DataBundle,
    TensorSplits,
    build_data,
    images,
    register_dataset,
    streaming,
)
from vicinal.experiments.data.base import data_changes
from vicinal.experiments.errors import DataArgumentError, DataError, DataNotFoundError, LabWarning


def test_imagefolder_memory_bundle(tmp_path: Path) -> None:
    from PIL import Image

    write_image_tree(tmp_path, {"train": 4, "test": 2, "val": 1}, size=(16, 16))
    b = build_data("imagefolder_memory", root=tmp_path, batch_size=3, eval_batch_size=5, progress=False)
    assert isinstance(b, DataBundle) and b.num_classes == 2 and b.input_shape == (3, 16, 16)
    assert b.info["sizes"] == {"train": 8, "test": 4, "val": 2}
    assert b.train_dataset_x is not None and b.train_dataset_x.dtype == torch.uint8
    xb, _, ib = next(iter(b.test))
    assert torch.equal(ib, torch.arange(4)) and xb.shape == (4, 3, 16, 16)
    assert b.info["augment"] == "RandomCropFlip(padding=4, flip=True)"
    xf, yf = b.fetch(torch.tensor([0, 5]))
    assert xf.shape == (2, 3, 16, 16) and yf.tolist() == [0, 1]

    # Images of different sizes need image_size.
    other = tmp_path / "mixed"
    write_image_tree(other, {"train": 1, "test": 1}, size=(20, 12))
    Image.new("RGB", (12, 20)).save(other / "train" / "a_cls" / "001.jpg")  # PIL size is (width, height)
    with pytest.raises(ValueError, match=r"has shape \(3, 20, 12\) but .* has \(3, 12, 20\); pass image_size"):
        build_data("imagefolder_memory", root=other, batch_size=2, progress=False)


def test_imagefolder_memory_resizes_with_image_size(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"train": 2, "test": 1}, size=(20, 12))
    b = build_data("imagefolder_memory", root=tmp_path, batch_size=2, image_size=8, progress=False)
    assert b.input_shape == (3, 8, 8)


def test_subset_per_class_in_build_data() -> None:
    b = build_data("digits", batch_size=8, subset_per_class=5, test_subset_per_class=2)
    assert b.info["sizes"] == {"train": 50, "test": 20}
    assert torch.bincount(b.train_dataset_y).tolist() == [5] * 10


def test_registry_lists_the_paper_datasets() -> None:
    expected = {
        "cifar10",
        "cifar100",
        "imagefolder_memory",
        "imagenet",
        "imagefolder",
        "digits",
        "fsdd",
        "speech_commands",
    }
    assert expected | {f"uci:{n}" for n in ("abalone", "arcene", "arrhythmia", "htru2", "iris", "phishing")} <= set(
        DATASETS
    )


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; known datasets: cifar10, cifar100, digits"):
        build_data("mnist")
    with pytest.raises(ValueError, match="dataset 'digits' is already registered"):
        register_dataset("digits")(lambda req: None)
    with pytest.raises(ValueError, match="dataset name must be a non-empty string"):
        register_dataset("")
    with pytest.raises(ValueError, match="eval_batch_size must be >= 1, got 0"):
        build_data("digits", eval_batch_size=0)
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size=2\), got rank=3"):
        build_data("digits", rank=3, world_size=2)
    with pytest.raises(ValueError, match="test_subset_per_class must be >= 1, got -2"):
        build_data("digits", test_subset_per_class=-2)
    with pytest.raises(ValueError, match="cifar10: source must be 'auto', 'jpeg' or 'torchvision', got 'png'"):
        build_data("cifar10", source="png")
    with pytest.raises(ValueError, match="imagefolder_memory needs root="):
        build_data("imagefolder_memory")
    with pytest.raises(ValueError, match="imagefolder needs root="):
        build_data("imagefolder")


class _Picked(Exception):
    """Raised by the stubbed CIFAR-10 loaders: which one the builder called, and how."""


def test_cifar10_source_paper_rows_read_the_original_and_auto_finds_it_under_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 1 of the paper audit: with data.root null, "auto" always picked the JPEG re-encoded copy, even with
    the original python batches under VICINAL_DATA, and the paper configs (Figure 3a, Tables 2 and 5) trained on it.
    The loaders are stubbed: nothing is read or downloaded."""

    def stub(which: str) -> Any:
        def load(*args: Any, **kwargs: Any) -> None:
            raise _Picked(which, args, kwargs)

        return load

    monkeypatch.setattr(images, "load_cifar_torchvision", stub("torchvision"))
    monkeypatch.setattr(images, "load_cifar10_jpeg", stub("jpeg"))

    def picked(config: str) -> tuple[Any, ...]:
        with pytest.raises(_Picked) as info:
            build_run_data(load_config(config), "cpu")
        return info.value.args

    paper = ("cifar/paper/cifar10-preact_resnet18-erm", "corrupted_labels/paper/cifar10-preact_resnet18-c50-erm",
             "ablation/paper/erm-wd5e-4")  # fmt: skip
    cpu = "cifar/cpu/cifar10-preact_resnet18-erm"
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path))  # the JPEG copy only (as ../shared/data)
    for config in paper:
        assert picked(config) == ("torchvision", ("cifar10", None), {"download": True}), config
    assert picked(cpu)[0] == "jpeg"
    for holder in (tmp_path, tmp_path / "cifar10"):  # the places load_cifar_torchvision looks in
        (holder / "cifar-10-batches-py").mkdir(parents=True)
        assert picked(cpu) == ("torchvision", ("cifar10", None), {"download": False}), holder
        (holder / "cifar-10-batches-py").rmdir()
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(_Picked, match="jpeg"):  # an explicit source wins
        build_data("cifar10", source="jpeg")
    with pytest.raises(_Picked, match="jpeg"):  # an explicit root is the only place looked in
        build_data("cifar10", root=tmp_path / "cifar10")
    monkeypatch.delenv("VICINAL_DATA")
    monkeypatch.setattr(images, "cifar_search_roots", _no_data_root)
    assert picked(cpu)[0] == "jpeg"  # no data root: the JPEG loader names it


def _no_data_root(name: str) -> list[Path]:
    raise DataNotFoundError("no data folder")


def test_digits_refuses_a_root_it_would_ignore(tmp_path: Path) -> None:
    # scikit-learn's bundled copy: a data.root was silently ignored, so a run "on" other files trained on these
    match = r"^dataset 'digits' is bundled with scikit-learn and reads no files: data.root must be null, got "
    match += re.escape(f"'{tmp_path}'") + "$"
    with pytest.raises(DataError, match=match):
        build_data("digits", root=tmp_path)
    cfg = load_config("demo/digits", [f"data.root={tmp_path}"])
    with pytest.raises(DataError, match=match):
        build_run_data(cfg, "cpu")
    assert build_run_data(load_config("demo/digits"), "cpu").num_classes == 10  # no root: the bundled copy


def test_registry_rejects_builders_returning_other_things() -> None:
    register_dataset("_bad_for_test")(lambda req: 42)
    try:
        with pytest.raises(TypeError, match="dataset builder '_bad_for_test' returned int"):
            build_data("_bad_for_test")
    finally:
        del DATASETS["_bad_for_test"]


def test_wrapped_loaders_are_imported_lazily_and_pass_floats_through(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_uci(name: str, root=None, *, seed: int = 0) -> TensorSplits:
        calls.append((name, root, seed))
        x = torch.linspace(-3, 3, 24, dtype=torch.float32).reshape(6, 4)
        return TensorSplits(
            train=(x, torch.tensor([0, 1, 2, 0, 1, 2])), test=(x[:2], torch.tensor([0, 1])), num_classes=3
        )

    def load_fsdd(root=None, *, seed: int = 0, val_fraction: float = 0.1, sample_level: str = "spectrogram"):
        calls.append(("fsdd", root, seed, val_fraction))
        x = torch.randn(4, 1, 5, 3, generator=torch.Generator().manual_seed(0))
        return TensorSplits(
            train=(x, torch.tensor([0, 1, 0, 1])), test=(x, torch.tensor([0, 1, 0, 1])), val=(x[:1], torch.tensor([1]))
        )

    monkeypatch.setitem(sys.modules, "vicinal.experiments.data.uci", types.SimpleNamespace(load_uci=load_uci))
    monkeypatch.setitem(sys.modules, "vicinal.experiments.data.audio", types.SimpleNamespace(load_fsdd=load_fsdd))
    b = build_data("uci:htru2", batch_size=4, seed=3)
    assert calls[-1] == ("htru2", None, 3)
    xb, _, ib = next(iter(b.train_eval))
    assert torch.equal(xb, torch.linspace(-3, 3, 24).reshape(6, 4)[ib])  # no /255, no augmentation
    assert b.input_shape == (4,) and b.num_classes == 3 and b.info["augment"] is None
    f = build_data("fsdd", batch_size=2, seed=1, val_fraction=0.2)
    assert calls[-1] == ("fsdd", None, 1, 0.2) and f.val is not None and len(f.val) == 1


def test_augment_false_turns_off_crop_flip(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"train": 2, "test": 1}, size=(8, 8))
    b = build_data("imagefolder_memory", root=tmp_path, batch_size=4, augment=False, progress=False)
    assert b.info["augment"] is None
    xb, _, ib = next(iter(b.train))
    assert torch.equal(xb, b.train_dataset_x[ib].float() / 255)


def test_short_classes_of_a_subset_are_warned_about() -> None:
    name = "imbalanced_for_test"
    if name not in __import__("vicinal.experiments.data", fromlist=["DATASETS"]).DATASETS:

        @register_dataset(name)
        def _imbalanced(req: object) -> TensorSplits:
            y = torch.tensor([0] * 60 + [1] * 12 + [2] * 60)
            x = torch.zeros(len(y), 4)
            return TensorSplits(train=(x, y), test=(x, y), num_classes=3, mean=(0.0,), std=(1.0,),
                                info={"classes": ["ant", "bee", "cow"]})  # fmt: skip

    with pytest.warns(
        LabWarning, match=r"data.subset_per_class=50 but 1 training class\(es\) .*class 1 \(bee\) has 12"
    ):
        bundle = build_data(name, subset_per_class=50)
    assert bundle.train_dataset_y.bincount().tolist() == [50, 12, 50]


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("digits", {"test_fraction": "abc"}, r"test_fraction must be a number in \(0, 1\), got 'abc'"),
        ("digits", {"test_fraction": None}, r"test_fraction must be a number in \(0, 1\), got None"),
        ("digits", {"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\), got 1.0"),
        ("digits", {"test_fraction": float("nan")}, r"test_fraction must be in \(0, 1\), got nan"),
        ("uci:iris", {"test_fraction": "abc"}, r"test_fraction must be a number in \(0, 1\), got 'abc'"),
        ("uci:iris", {"val_fraction": None}, r"val_fraction must be a number in \[0, 1\), got None"),
        ("imagefolder_memory", {"image_size": 0}, r"image_size must be >= 1, got 0"),
        ("imagefolder_memory", {"image_size": 8.5}, r"image_size must be an int >= 1 or null, got 8.5"),
        ("imagefolder_memory", {"crop_padding": -1}, r"crop_padding must be >= 0, got -1"),
        ("imagefolder_memory", {"cache": "no"}, r"cache must be true or false, got 'no'"),
        ("imagefolder", {"num_workers": -1}, r"num_workers must be >= 0, got -1"),
        ("imagefolder", {"num_workers": "2"}, r"num_workers must be an int >= 0 or null, got '2'"),
        ("imagefolder", {"image_size": 0}, r"image_size must be >= 1, got 0"),
        ("imagefolder", {"resize": 2.5}, r"resize must be an int >= 1, got 2.5"),
        ("cifar10", {"download": "no"}, r"download must be true or false, got 'no'"),
    ],
)
def test_bad_option_values_are_data_errors(tmp_path: Path, name: str, kwargs: dict, match: str) -> None:
    """Finding 2 of the data audit: these gave TypeErrors/RuntimeErrors, the streamed ones at the first batch."""
    write_image_tree(tmp_path, {"train": 1, "test": 1}, size=(8, 8))
    extra = {"progress": False} if name == "imagefolder_memory" else {}
    with pytest.raises(DataError, match=f"^{match}$"):
        build_data(name, root=tmp_path if "image" in name else None, **extra, **kwargs)


def test_streamed_loader_checks_its_sizes() -> None:
    samples = [("a.jpg", 0)]
    with pytest.raises(DataError, match=r"^num_workers must be >= 0, got -2$"):
        streaming.ImageFolderLoader(samples, train=True, batch_size=2, seed=0, device="cpu", num_workers=-2)
    with pytest.raises(DataError, match=r"^batch_size must be an int >= 1, got 0.5$"):
        streaming.ImageFolderLoader(samples, train=True, batch_size=0.5, seed=0, device="cpu")


def test_bundle_records_name_what_was_read(tmp_path: Path) -> None:
    write_image_tree(tmp_path, {"train": 2, "val": 1}, size=(8, 8))
    streamed = build_data("imagefolder", root=tmp_path, num_workers=0, image_size=8, resize=8).record()
    assert streamed == {
        "name": "imagefolder",
        "source": "torchvision.datasets.ImageFolder",
        "root": str(tmp_path.resolve()),
        "sizes": {"train": 4, "test": 2},
        "num_classes": 2,
    }
    memory = build_data("imagefolder_memory", root=tmp_path, progress=False).record()
    assert memory["sizes"] == {"train": 4, "test": 2} and memory["source"] == "imagefolder_memory"
    assert memory["fingerprint"].startswith("train ") and " test " in memory["fingerprint"]
    touched = tmp_path / "train" / "a_cls" / "000.jpg"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    again = build_data("imagefolder_memory", root=tmp_path, progress=False).record()
    assert data_changes(memory, again).startswith("fingerprint 'train ")
    assert data_changes(memory, memory) == "" and data_changes(None, again) == ""
    assert data_changes({"root": "/a", "old_field": 1}, {"root": "/b"}) == "root '/a' -> '/b'"


@pytest.mark.parametrize("name", ["imagefolder", "imagenet", "fsdd", "speech_commands", "uci:iris"])
def test_builders_that_pass_options_on_refuse_an_unknown_one_before_any_work(name: str, tmp_path: Path) -> None:
    # these builders take **kwargs and hand them to a loader: the loader's signature is what is checked (a
    # traceback from inside the loader before). The folder is empty: the refusal comes before any file is read.
    said = rf"^dataset '{name}' takes no option 'data\.kwargs\.progres'; its options: (?!.*seed)"
    with pytest.raises(DataArgumentError, match=said):  # not the seed its builder sets
        build_data(name, root=tmp_path, progres=False)
    # a typo gets the closest option (helper-118)
    typo, meant = {"fsdd": ("val_fractoin", "val_fraction"), "speech_commands": ("versoin", "version"),
                   "uci:iris": ("test_fractoin", "test_fraction")}.get(name, ("num_worker", "num_workers"))  # fmt: skip
    with pytest.raises(DataArgumentError, match=rf"'data\.kwargs\.{typo}' \(did you mean 'data\.kwargs\.{meant}'\?\)"):
        build_data(name, root=tmp_path, **{typo: 1})
