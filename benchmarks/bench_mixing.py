"""How fast is mixing? vicinal's paths side by side with the memory roofline, the official formula, timm and
torchvision, plus collate-time uint8 mixing, loader throughput and the end-to-end cost of a mixup training step.

Run with ``make bench`` (installs the ``bench`` extra, i.e. timm) or::

    .venv/bin/python benchmarks/bench_mixing.py [--repeats 15] [--tag NAME] [--only mix,collate,loader,e2e,trainer]

One run prints the tables and writes ``benchmarks/results/<tag>.json`` (tag: ``--tag``, else ``$VICINAL_BENCH_TAG``,
else the host name) with the machine (CPU model, cores, torch version and threads, load average before and after
each section) and every timing sample. Timings are medians of ``--repeats`` calls (10x more for the small batch)
after warm-up calls; the input batch is restored from a pristine copy before every call, outside the timed region,
so in-place methods see the same data and cache state as the others.

Definitions.
* Roofline: mixing must read the batch once and write the result once, the bytes a copy moves; so the roofline time
  is the measured time of ``out.copy_(x)`` into a preallocated tensor (its bandwidth is printed), and
  "% roofline" = copy time / method time.
* Every vicinal, timm and torchvision time is a full call: lam sampling, pairing, mixed inputs and mixed targets.
  "official formula" is the inputs-only code of the official mixup-cifar10 repository (numpy Beta, randperm,
  ``lam * x + (1 - lam) * x[index]``); on uint8 it is the same formula in float32, rounded back.
* Peers are configured as the paper's method: timm ``Mixup(mixup_alpha=1, cutmix_alpha=0, mode='batch',
  label_smoothing=0)`` (in place, flip pairing, even batches only), torchvision ``v2.MixUp(alpha=1)`` (roll
  pairing); timm's ``FastCollateMixup`` for uint8 collate. They use the global RNGs; vicinal uses its generator.

Nothing here is imported by the library or the tests; there is no timing assertion anywhere in the test suite.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ab_cli import usable_device
from torch import nn

import vicinal
from vicinal import functional as VF

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SMALL = (128, 3, 32, 32)
LARGE = (256, 3, 224, 224)
# every batch of issue 14: CIFAR-like 32 / 128 / 256 and ImageNet-like 64 / 256
KNOWN_SIZES = {
    "small32": ((32, 3, 32, 32), 10),
    "small": (SMALL, 10),
    "small256": ((256, 3, 32, 32), 10),
    "large64": ((64, 3, 224, 224), 1000),
    "large": (LARGE, 1000),
}
DEFAULT_DTYPES = "float32,bfloat16,uint8"
KNOWN_DTYPES = ("float32", "bfloat16", "float16", "float64", "uint8")  # what vicinal mixes
CACHE = "warm"  # --cache: "cold" evicts the caches (writes a buffer twice the last-level cache) before every call
_FLUSH: torch.Tensor | None = None


def flush_caches() -> None:
    """Evict the batch from every cache level: write a buffer twice the size of the last-level cache."""
    global _FLUSH
    if _FLUSH is None:
        llc = 32 << 20
        for size in cache_sizes().values():
            if size.endswith("K"):
                llc = max(llc, int(size[:-1]) << 10)
        _FLUSH = torch.zeros(2 * llc // 4, dtype=torch.float32)
    _FLUSH.add_(1.0)


SECTIONS = ("mix", "collate", "loader", "e2e", "trainer")


# -- measurement helpers ----------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Which clock the tables and ratios use: "wall" (perf_counter) or "cpu" (this process's CPU time: on a loaded
# machine it leaves out the time spent waiting for a core; only meaningful with --threads 1, since idle OpenMP
# threads spin). Both are recorded.
CLOCK = "wall"


def time_calls(
    fn: Callable[[], Any], *, repeats: int, warmup: int, setup: Callable[[], Any] | None, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of ``fn`` on both clocks (``setup`` runs before each call, untimed)."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        if setup is not None:
            setup()
        if CACHE == "cold":
            flush_caches()
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall": wall, "cpu": cpu}


def time_round_robin(
    methods: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]],
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
) -> dict[str, dict[str, list[float]]]:
    """Like :func:`time_calls` for several ``(name, fn, setup)``, interleaved call by call: a change in the machine's
    load during the run then affects every method alike, which keeps their ratios honest."""
    for _, fn, setup in methods:
        time_calls(fn, repeats=0, warmup=warmup, setup=setup, device=device)
    out: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name, _, _ in methods}
    for _ in range(repeats):
        for name, fn, setup in methods:
            one = time_calls(fn, repeats=1, warmup=0, setup=setup, device=device)
            out[name]["wall"] += one["wall"]
            out[name]["cpu"] += one["cpu"]
    return out


def summary(times: dict[str, list[float]]) -> dict[str, Any]:
    chosen = times[CLOCK]
    return {
        "median_s": statistics.median(chosen),
        "min_s": min(chosen),
        "clock": CLOCK,
        "wall_median_s": statistics.median(times["wall"]),
        "cpu_median_s": statistics.median(times["cpu"]),
        "n": len(chosen),
        "samples_wall_s": times["wall"],
        "samples_cpu_s": times["cpu"],
    }


def steps_summary(times: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times), "samples_s": times}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def wait_for_quiet(args: argparse.Namespace) -> None:
    """Wait (at most --max-wait s) until the 1-minute load average is below --max-load: other jobs on a small
    machine distort every timing; the load is recorded either way."""
    if args.max_load is None:
        return
    deadline = time.monotonic() + args.max_wait
    while os.getloadavg()[0] >= args.max_load and time.monotonic() < deadline:
        time.sleep(5)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_sizes() -> dict[str, str]:
    out = {}
    for idx in range(8):
        base = Path(f"/sys/devices/system/cpu/cpu0/cache/index{idx}")
        if not base.exists():
            break
        level, kind = (base / "level").read_text().strip(), (base / "type").read_text().strip()
        out[f"L{level}{'' if kind == 'Unified' else kind[0].lower()}"] = (base / "size").read_text().strip()
    return out


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "caches_per_core": cache_sizes(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "vicinal": vicinal.__version__,
        "code": git_commit(),
        "device": str(device),
        "load_average_start": load(),
    }
    for name in ("timm", "torchvision", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def git_commit() -> str | None:
    """The commit of the code measured (``+dirty`` with uncommitted changes to tracked files), None outside git: a
    table then names the code it measured, not "the current code"."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def sizes(args: argparse.Namespace) -> list[tuple[str, tuple[int, ...], int]]:
    """(label, batch shape, number of classes) of the selected sizes: CIFAR-like and ImageNet-like batches."""
    return [(label, *KNOWN_SIZES[label]) for label in args.sizes.split(",") if label]


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


# -- section 1: mixing a batch --------------------------------------------------------------------------------------
def make_batch(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8).to(device)
    return torch.randn(shape, generator=g).to(device=device, dtype=dtype)


def accepts(fn: Callable[[], Any]) -> bool:
    """Whether a peer accepts this batch (timm and torchvision reject uint8 batches)."""
    try:
        fn()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def mixing_methods(
    x: torch.Tensor, x0: torch.Tensor, y: torch.Tensor, num_classes: int
) -> list[tuple[str, Callable[[], Any], bool]]:
    """(name, call, mutates x) for one batch. ``x`` is the working batch, restored from ``x0`` before calls."""
    is_float = x.is_floating_point()
    n = x.shape[0]
    out = torch.empty_like(x)
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    methods: list[tuple[str, Callable[[], Any], bool]] = [
        ("copy into preallocated (roofline)", lambda: out.copy_(x), False)
    ]

    def official() -> torch.Tensor:
        lam = float(rng.beta(1.0, 1.0))
        index = torch.randperm(n, generator=g).to(x.device)
        if is_float:
            return lam * x + (1 - lam) * x[index, :]
        return (lam * x.float() + (1 - lam) * x[index, :].float()).round().to(torch.uint8)

    methods.append(("official formula", official, False))
    default = vicinal.Mixup(1.0, num_classes=num_classes, seed=0)
    methods.append(("vicinal Mixup() [default, exact]", lambda: default(x, y), False))
    sampler = vicinal.Mixup(1.0, num_classes=num_classes, seed=0)

    def into_out() -> tuple[torch.Tensor, torch.Tensor]:
        p = sampler.sample(x, y)
        return VF.mix(x, p.lam, p.perm, out=out), sampler.apply_targets(y, p)

    methods.append(("vicinal mix(out=) [exact]", into_out, False))
    fast = vicinal.Mixup(1.0, num_classes=num_classes, inplace=True, seed=0)
    methods.append(("vicinal Mixup(inplace=True) [fast]", lambda: fast(x, y), True))
    if is_float:
        # a new tensor within the rounding bound: the fused gather-and-mix (the caller's batch is kept)
        fused = vicinal.Mixup(1.0, num_classes=num_classes, exact=False, seed=0)
        methods.append(("vicinal Mixup(exact=False) [fast, new tensor]", lambda: fused(x, y), False))
        exact = vicinal.Mixup(1.0, num_classes=num_classes, inplace=True, exact=True, seed=0)
        methods.append(("vicinal Mixup(inplace=True, exact=True)", lambda: exact(x, y), True))
        matching = vicinal.Mixup(1.0, num_classes=num_classes, inplace=True, pairing="matching", seed=0)
        methods.append(("vicinal Mixup(inplace, pairing=matching)", lambda: matching(x, y), True))
        per_sample = vicinal.Mixup(1.0, num_classes=num_classes, inplace=True, lam_mode="sample", seed=0)
        methods.append(("vicinal Mixup(inplace, lam_mode=sample)", lambda: per_sample(x, y), True))
    inputs_only = vicinal.Mixup(1.0, num_classes=num_classes, inplace=True, seed=0)

    def inputs() -> torch.Tensor:
        return inputs_only.apply_inputs(x, inputs_only.sample(x, y))

    methods.append(("vicinal inputs only (sample+pair+mix_)", inputs, True))
    try:
        from timm.data import Mixup as TimmMixup

        timm_mix = TimmMixup(
            mixup_alpha=1.0, cutmix_alpha=0.0, mode="batch", label_smoothing=0.0, num_classes=num_classes
        )
        if accepts(lambda: timm_mix(x.clone(), y)):
            methods.append(("timm Mixup (in place, flip)", lambda: timm_mix(x, y), True))
    except ImportError:
        print("  (timm not installed: `pip install -e .[bench]`; skipping it)")
    try:
        from torchvision.transforms import v2

        tv_mix = v2.MixUp(alpha=1.0, num_classes=num_classes)
        if accepts(lambda: tv_mix(x.clone(), y)):
            methods.append(("torchvision v2.MixUp (roll)", lambda: tv_mix(x, y), False))
    except ImportError:
        print("  (torchvision not installed; skipping it)")
    return methods


def bench_mixing(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    cases = []
    for label, shape, classes in sizes(args):
        for dtype in [getattr(torch, d) for d in args.dtypes.split(",")]:
            case = mixing_case(args, device, label, shape, classes, dtype)
            add_ratios(case)
            print_case(case)
            cases.append(case)
            gc.collect()
    return cases


def mixing_case(
    args: argparse.Namespace,
    device: torch.device,
    label: str,
    shape: tuple[int, ...],
    classes: int,
    dtype: torch.dtype,
) -> dict[str, Any]:
    wait_for_quiet(args)
    x0 = make_batch(shape, dtype, device)
    x = x0.clone()
    y = torch.arange(shape[0], device=device) % classes
    repeats = args.repeats * (10 if label.startswith("small") else 1)
    results: dict[str, dict[str, Any]] = {}
    load_before = load()

    def restore() -> None:
        x.copy_(x0)

    methods = [(name, fn, restore if mutates else None) for name, fn, mutates in mixing_methods(x, x0, y, classes)]
    gc.collect()
    for name, times in time_round_robin(methods, repeats=repeats, warmup=args.warmup, device=device).items():
        results[name] = summary(times)
    return {
        "case": label,
        "shape": list(shape),
        "dtype": str(dtype).replace("torch.", ""),
        "bytes": x0.numel() * x0.element_size(),
        "num_classes": classes,
        "load_before": load_before,
        "load_after": load(),
        "results": results,
    }


def add_ratios(case: dict[str, Any]) -> None:
    res = case["results"]
    roof = res["copy into preallocated (roofline)"]["median_s"]
    case["copy_bandwidth_GBps"] = 2 * case["bytes"] / roof / 1e9
    timm_t = res.get("timm Mixup (in place, flip)", {}).get("median_s")
    tv_t = res.get("torchvision v2.MixUp (roll)", {}).get("median_s")
    for r in res.values():
        t = r["median_s"]
        r["fraction_of_roofline"] = roof / t
        r["speedup_vs_timm"] = timm_t / t if timm_t else None
        r["speedup_vs_torchvision"] = tv_t / t if tv_t else None


def print_case(case: dict[str, Any]) -> None:
    shape = "x".join(map(str, case["shape"]))
    print(
        f"\n{case['case']} {shape} {case['dtype']} ({case['bytes'] / 1e6:.1f} MB); copy bandwidth "
        f"{case['copy_bandwidth_GBps']:.1f} GB/s (read+write); load {case['load_before']} -> {case['load_after']}"
    )
    print(
        f"  {'method (' + CLOCK + ' clock)':<42} {'median':>11} {'min':>11} {'% roofline':>10} {'x timm':>7} {'x tv':>7}"
    )
    for name, r in case["results"].items():
        timm_r = f"{r['speedup_vs_timm']:.2f}" if r["speedup_vs_timm"] else "-"
        tv_r = f"{r['speedup_vs_torchvision']:.2f}" if r["speedup_vs_torchvision"] else "-"
        print(
            f"  {name:<42} {fmt_time(r['median_s'])} {fmt_time(r['min_s'])} "
            f"{100 * r['fraction_of_roofline']:9.0f}% {timm_r:>7} {tv_r:>7}"
        )


# -- section 2: collate-time uint8 mixing ----------------------------------------------------------------------------
def bench_collate(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for label, shape, classes in sizes(args):
        row = collate_case(args, label, shape, classes)
        base = row["results"]["vicinal MixupCollate (uint8, exact)"]["median_s"]
        print(
            f"\ncollate {label} {'x'.join(map(str, shape))} uint8, per batch; "
            f"load {row['load_before']} -> {row['load_after']}"
        )
        print(f"  {'method':<42} {'median':>11} {'min':>11} {'vs vicinal':>10}")
        for name, r in row["results"].items():
            r["relative_to_vicinal"] = r["median_s"] / base
            print(f"  {name:<42} {fmt_time(r['median_s'])} {fmt_time(r['min_s'])} {r['relative_to_vicinal']:9.2f}x")
        rows.append(row)
    return rows


def collate_case(args: argparse.Namespace, label: str, shape: tuple[int, ...], classes: int) -> dict[str, Any]:
    wait_for_quiet(args)
    imgs = make_batch(shape, torch.uint8, torch.device("cpu"))
    labels = torch.arange(shape[0]) % classes
    batch = [(imgs[i].clone(), int(labels[i])) for i in range(shape[0])]
    np_batch = [(img.numpy(), lab) for img, lab in batch]
    repeats = args.repeats * (10 if label.startswith("small") else 1)
    default_collate = torch.utils.data.default_collate
    methods: list[tuple[str, Callable[[], Any]]] = [("stack only (default_collate)", lambda: default_collate(batch))]
    ours = vicinal.MixupCollate(alpha=1.0, num_classes=classes, seed=0)
    methods.append(("vicinal MixupCollate (uint8, exact)", lambda: ours(batch)))
    float_mixer = vicinal.Mixup(1.0, num_classes=classes, inplace=True, seed=0)

    def float_after() -> Any:
        xb, yb = default_collate(batch)
        return float_mixer(xb.float().div_(255), yb)

    methods.append(("stack, to float, vicinal Mixup(inplace)", float_after))
    try:
        from timm.data import FastCollateMixup

        timm_collate = FastCollateMixup(
            mixup_alpha=1.0, cutmix_alpha=0.0, mode="batch", label_smoothing=0.0, num_classes=classes
        )
        methods.append(("timm FastCollateMixup (numpy CHW)", lambda: timm_collate(np_batch)))
    except ImportError:
        pass
    load_before = load()
    cpu = torch.device("cpu")
    timed = time_round_robin([(n, f, None) for n, f in methods], repeats=repeats, warmup=args.warmup, device=cpu)
    results = {name: summary(times) for name, times in timed.items()}
    return {"case": label, "shape": list(shape), "load_before": load_before, "load_after": load(), "results": results}


# -- section 3: loader throughput --------------------------------------------------------------------------------------
# Two kinds of dataset per batch size. "tensors": uint8 images already in memory, no per-image work, so the collate
# and mixing are all the loader does (the worst case for collate-time mixing). "augmented": the per-image work of the
# standard training pipeline that feeds such a loader: CIFAR's 4-pixel-padded random crop + flip on a uint8 tensor
# (torchvision's CIFAR recipe), ImageNet's JPEG decode + RandomResizedCrop(224) + flip (timm's / torchvision's).
LOADER_DATA = ("tensors", "augmented")


def bench_loader(args: argparse.Namespace) -> list[dict[str, Any]]:
    """images/s of a DataLoader pipeline ending in a float batch in [0, 1] (the model's input, before normalisation)."""
    rows = []
    datasets = [d for d in args.loader_data.split(",") if d]
    if "augmented" in datasets and not _has_torchvision():
        print("  (torchvision not installed: `pip install -e .[bench]`; skipping the augmented loader)")
        datasets.remove("augmented")
    for label, shape, classes in sizes(args):
        for data in datasets:
            n_batches = 24 if label.startswith("small") else 4
            row = loader_case(args, label, shape, classes, n_batches, data)
            print(
                f"\nloader {label} {'x'.join(map(str, shape[1:]))} uint8 images ({data}), batch {shape[0]}, "
                f"num_workers={args.loader_workers}; load {row['load_before']} -> {row['load_after']}"
            )
            print(f"  {'pipeline':<42} {'images/s':>11} {'vs no mixing (paired)':>22}")
            for name, r in row["results"].items():
                print(f"  {name:<42} {r['images_per_s_median']:11.0f} {r['relative_to_no_mixing']:21.3f}x")
            rows.append(row)
            gc.collect()
    return rows


def _has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


class AugmentedImages(torch.utils.data.Dataset):
    """Training images with their per-image augmentation, returned as uint8 (C, H, W) for collate-time mixing.

    32x32: uint8 tensors in memory, RandomCrop(32, padding=4) + RandomHorizontalFlip. 224x224: JPEG files held in
    memory (smooth synthetic 256x256 images, ~24 KB each, so decoding costs what a photo of that size costs, not what
    noise costs; ImageNet's photos average ~500x375, so this per-image work is on the low side), decode_jpeg +
    RandomResizedCrop(224) + RandomHorizontalFlip.
    """

    def __init__(self, n: int, size: int, classes: int) -> None:
        from torchvision import io
        from torchvision.transforms import v2

        g = torch.Generator().manual_seed(0)
        self.classes = classes
        self.decode = None
        if size <= 32:
            self.items = list(torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8))
            self.transform = v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()])
        else:
            self.items = []
            for _ in range(n):  # one image at a time: no batch-sized float temporaries
                coarse = torch.rand((1, 3, 16, 16), generator=g) * 255
                fine = F.interpolate(coarse, size=(256, 256), mode="bicubic", align_corners=False)[0]
                fine = (fine + 8 * torch.randn(fine.shape, generator=g)).clamp(0, 255).to(torch.uint8)
                self.items.append(io.encode_jpeg(fine, quality=90))
            self.decode = io.decode_jpeg
            self.transform = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.items[i]
        if self.decode is not None:
            img = self.decode(img)
        return self.transform(img), i % self.classes


def loader_case(
    args: argparse.Namespace, label: str, shape: tuple[int, ...], classes: int, n_batches: int, data: str
) -> dict[str, Any]:
    wait_for_quiet(args)
    n = shape[0] * n_batches
    if data == "tensors":
        images = make_batch((n, *shape[1:]), torch.uint8, torch.device("cpu"))
        ds: torch.utils.data.Dataset = torch.utils.data.TensorDataset(images, torch.arange(n) % classes)
    elif data == "augmented":
        ds = AugmentedImages(n, shape[-1], classes)
    else:
        raise ValueError(f"unknown loader dataset {data!r}; known: {', '.join(LOADER_DATA)}")
    after_inplace = vicinal.Mixup(1.0, num_classes=classes, inplace=True, seed=0)
    after_default = vicinal.Mixup(1.0, num_classes=classes, seed=0)
    default_collate = torch.utils.data.default_collate
    pipelines: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "no mixing (to float only)": (default_collate, lambda b: b[0].float().div_(255)),
        "uint8 MixupCollate, then to float": (
            vicinal.MixupCollate(alpha=1.0, num_classes=classes, seed=0),
            lambda b: (b[0].float().div_(255), b[1]),
        ),
        "to float, then Mixup(inplace=True)": (default_collate, lambda b: after_inplace(b[0].float().div_(255), b[1])),
        "to float, then Mixup() default": (default_collate, lambda b: after_default(b[0].float().div_(255), b[1])),
    }
    results: dict[str, Any] = {name: {"images_per_s": []} for name in pipelines}
    loaders = {
        name: torch.utils.data.DataLoader(
            ds,
            batch_size=shape[0],
            shuffle=True,
            num_workers=args.loader_workers,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(0),
            persistent_workers=args.loader_workers > 0,
        )
        for name, (collate, _) in pipelines.items()
    }
    load_before = load()
    # Pipelines take turns epoch by epoch (as the mixing section interleaves calls), in an order that alternates
    # between rounds, so a load change on the machine hits all of them alike; each pipeline's first epoch warms up
    # (and starts its workers). The ratio to "no mixing" is paired: the median over rounds of the round's ratio.
    names = list(pipelines)
    for epoch in range(1 + max(15, args.repeats)):  # 7 rounds left +-1% on the ratio, as much as its margin
        for name in names if epoch % 2 == 0 else names[::-1]:
            finish = pipelines[name][1]
            t0 = time.perf_counter()
            for b in loaders[name]:
                finish(b)
            if epoch > 0:
                results[name]["images_per_s"].append(n / (time.perf_counter() - t0))
    base = results[names[0]]["images_per_s"]
    for r in results.values():
        r["images_per_s_median"] = statistics.median(r["images_per_s"])
        r["relative_to_no_mixing"] = statistics.median(v / b for v, b in zip(r["images_per_s"], base, strict=True))
    del loaders
    return {
        "case": label,
        "data": data,
        "shape": list(shape),
        "num_workers": args.loader_workers,
        "load_before": load_before,
        "load_after": load(),
        "results": results,
    }


# -- section 4: end to end --------------------------------------------------------------------------------------------
class _PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        short = self.short(out) if self.short is not None else x
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + short


def local_preact_resnet18(num_classes: int, width: int) -> nn.Module:
    """Fallback when the lab's model zoo is absent: PreAct ResNet-18 (2-2-2-2 blocks) at base width ``width``."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False)]
    cin = width
    for i, stride in enumerate((1, 2, 2, 2)):
        cout = width * 2**i
        layers += [_PreActBlock(cin, cout, stride), _PreActBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def reference_model(width: int) -> tuple[nn.Module, str]:
    try:
        from vicinal.experiments.models import build_model

        return build_model("preact_resnet18", num_classes=10, width=width, seed=0), "vicinal.experiments.models"
    except ImportError:
        torch.manual_seed(0)
        return local_preact_resnet18(10, width), "local fallback (benchmarks/bench_mixing.py)"


def bench_e2e(args: argparse.Namespace) -> dict[str, Any]:
    """One SGD step (forward, loss, backward, update) of the cpu reference model: ERM vs mixup, interleaved."""
    wait_for_quiet(args)
    model, source = reference_model(args.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x0 = make_batch(SMALL, torch.float32, torch.device("cpu"))
    x = x0.clone()
    y = torch.arange(SMALL[0]) % 10
    mixers = {
        "mixup Mixup(inplace=True)": vicinal.Mixup(1.0, num_classes=10, inplace=True, seed=0),
        "mixup Mixup() default": vicinal.Mixup(1.0, num_classes=10, seed=0),
    }

    def erm_step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def mix_step(mixer: vicinal.Mixup) -> None:
        opt.zero_grad(set_to_none=True)
        xm, ys = mixer(x, y)
        vicinal.soft_cross_entropy(model(xm), ys).backward()
        opt.step()

    steps = max(10, args.e2e_steps)
    for _ in range(3):
        x.copy_(x0)
        erm_step()
        for m in mixers.values():
            x.copy_(x0)
            mix_step(m)
    times: dict[str, list[float]] = {"erm": [], **{k: [] for k in mixers}}  # on the chosen clock
    load_before = load()
    clock = time.process_time if CLOCK == "cpu" else time.perf_counter
    for _ in range(steps):  # interleaved, so drift in the machine's load hits both alike
        x.copy_(x0)
        t0 = clock()
        erm_step()
        times["erm"].append(clock() - t0)
        for k, m in mixers.items():
            x.copy_(x0)
            t0 = clock()
            mix_step(m)
            times[k].append(clock() - t0)
    erm = statistics.median(times["erm"])
    res: dict[str, Any] = {
        "model": f"preact_resnet18 width={args.width} ({source})",
        "batch": list(SMALL),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "load_before": load_before,
        "load_after": load(),
        "clock": CLOCK,
        "erm_step": steps_summary(times["erm"]),
    }
    print(
        f"\nend to end: one SGD step of preact_resnet18 width {args.width} ({source}), batch 128x3x32x32, "
        f"{steps} interleaved steps each; load {load_before} -> {res['load_after']}"
    )
    print(f"  {'step':<34} {'median':>11} {'min':>11} {'/ ERM (medians)':>16} {'/ ERM (paired)':>15}")
    print(f"  {'ERM':<34} {fmt_time(erm)} {fmt_time(min(times['erm']))} {1.0:16.4f} {1.0:15.4f}")
    for k in mixers:
        paired = statistics.median(a / b for a, b in zip(times[k], times["erm"], strict=True))
        res[k] = {
            **steps_summary(times[k]),
            "ratio_of_medians": statistics.median(times[k]) / erm,
            "paired_ratio": paired,
        }
        print(
            f"  {k:<34} {fmt_time(statistics.median(times[k]))} {fmt_time(min(times[k]))} "
            f"{res[k]['ratio_of_medians']:16.4f} {paired:15.4f}"
        )
    # the mixing itself, timed alone, as a share of the ERM step: the overhead that noise cannot hide
    fast = mixers["mixup Mixup(inplace=True)"]
    alone = time_calls(
        lambda: fast(x, y), repeats=200, warmup=10, setup=lambda: x.copy_(x0), device=torch.device("cpu")
    )
    res["mixing_alone"] = summary(alone)
    res["mixing_share_of_erm_step"] = res["mixing_alone"]["median_s"] / erm
    print(
        f"  mixing alone (Mixup(inplace=True) call): {fmt_time(res['mixing_alone']['median_s'])} = "
        f"{100 * res['mixing_share_of_erm_step']:.3f}% of the ERM step"
    )
    return res


# -- section 5: the lab's trainer against a bare loop ----------------------------------------------------------------
def bench_trainer(args: argparse.Namespace) -> dict[str, Any]:
    """Images/s of vicinal.experiments.trainer vs a hand-written loop on the same model, data and mixing."""
    try:
        from vicinal.experiments.trainer import Trainer  # noqa: F401
    except ImportError as err:
        print(f"\ntrainer: skipped ({err})")
        return {"skipped": f"vicinal.experiments.trainer not importable: {err}"}
    try:
        return _bench_trainer(args)
    except Exception as err:  # the lab is under development: report, do not lose the other sections
        print(f"\ntrainer: failed ({type(err).__name__}: {err})")
        return {"skipped": f"{type(err).__name__}: {err}"}


class _StepClock:
    """Trainer callback: a timestamp after every optimiser step (intervals = full iterations of the loop)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step(self, trainer: Any, step: dict[str, Any]) -> None:
        self.stamps.append(time.perf_counter())


def _bench_trainer(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from vicinal.experiments.config import config_from_dict
    from vicinal.experiments.models import build_model
    from vicinal.experiments.trainer import Trainer

    warm, steps, rounds = 3, args.trainer_steps, max(1, args.trainer_rounds)
    total = warm + steps + 1
    batch = 128
    cfg = config_from_dict(
        {
            "name": "bench-trainer",
            "data": {"name": "cifar10", "batch_size": batch, "subset_per_class": total * batch // 10 + 1},
            "model": {"name": "preact_resnet18", "kwargs": {"width": args.width}},
            "mix": {"variant": "mixup", "alpha": 1.0},
            "train": {"epochs": 1, "max_steps": total, "seed": 0, "device": "cpu"},
        }
    )
    holder: dict[str, Any] = {}

    def trainer_round() -> list[float]:
        clock = _StepClock()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, Path(tmp) / "run", callbacks=[clock], quiet=True)
            trainer.fit()
        holder.setdefault("data", trainer.data)
        holder["reported"] = trainer.records[-1].get("images_per_s")
        return [b - a for a, b in zip(clock.stamps[warm:], clock.stamps[warm + 1 :], strict=False)]

    def bare_round() -> list[float]:
        # The bare loop a user would write: a fresh model of the same config, the same loader (epoch 0 again),
        # mixing, soft-target loss, SGD. Timed the same way: one interval per full iteration, after the same warm-up.
        data = holder["data"]
        model = build_model(
            "preact_resnet18", num_classes=data.num_classes, mean=data.mean, std=data.std, seed=0, width=args.width
        )
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        mixer = vicinal.Mixup(1.0, num_classes=data.num_classes, seed=0)
        stamps = []
        for i, (xb, yb, _idx) in enumerate(data.train.iter_from(0)):
            if i >= total:
                break
            xm, ys = mixer(xb, yb)
            loss = vicinal.soft_cross_entropy(model(xm), ys)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stamps.append(time.perf_counter())
        return [b - a for a, b in zip(stamps[warm:], stamps[warm + 1 :], strict=False)]

    # Rounds alternate which loop goes first (the trainer first in round 0: it builds the data), so a drift in the
    # machine's speed weighs on both alike. The ratio is the same as before, images/s from the median step of each
    # loop, now over every round's steps; with one trainer run followed by one bare loop it moved from 0.79 to 1.09
    # between the committed runs (results/epyc2-warm-run1..5.json), more than any code change between them could
    # explain. The rounds' own ratios show the spread.
    wait_for_quiet(args)
    load_before = load()
    trainer_steps: list[float] = []
    bare_steps: list[float] = []
    round_ratios: list[float] = []
    for r in range(rounds):
        order = ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")
        got = {name: (trainer_round if name == "trainer" else bare_round)() for name in order}
        trainer_steps += got["trainer"]
        bare_steps += got["bare"]
        round_ratios.append(statistics.median(got["bare"]) / statistics.median(got["trainer"]))
    res = {
        "steps_timed": len(trainer_steps),
        "steps_per_round": steps,
        "rounds": rounds,
        "warmup_steps": warm,
        "load_before": load_before,
        "load_after": load(),
        "trainer_step": steps_summary(trainer_steps),
        "bare_step": steps_summary(bare_steps),
        "trainer_images_per_s": batch / statistics.median(trainer_steps),
        "bare_loop_images_per_s": batch / statistics.median(bare_steps),
        "trainer_reported_images_per_s": holder.get("reported"),
        "round_ratios": round_ratios,
    }
    res["ratio"] = res["trainer_images_per_s"] / res["bare_loop_images_per_s"]
    print(
        f"\ntrainer vs bare loop: cifar10 subset, preact_resnet18 width {args.width}, mixup, batch {batch}, "
        f"{rounds} alternating rounds of {steps} timed iterations each after {warm} warm-up"
    )
    print(
        f"  trainer {res['trainer_images_per_s']:.0f} images/s, bare loop {res['bare_loop_images_per_s']:.0f} images/s; "
        f"ratio {res['ratio']:.3f} (per round {', '.join(f'{v:.3f}' for v in round_ratios)}) "
        f"(trainer's own epoch figure, warm-up included: {res['trainer_reported_images_per_s']})"
    )
    return res


# -- targets ------------------------------------------------------------------------------------------------------------
VICINAL_EXACT = (
    "vicinal Mixup() [default, exact]",
    "vicinal mix(out=) [exact]",
    "vicinal Mixup(inplace=True) [fast]",
    "vicinal Mixup(exact=False) [fast, new tensor]",
    "vicinal Mixup(inplace=True, exact=True)",
)


def best_vicinal(case: dict[str, Any]) -> tuple[str, float]:
    """vicinal's fastest full-call path of a case (every listed path is exact or within the stated rounding bound)."""
    res = case["results"]
    name = min((k for k in VICINAL_EXACT if k in res), key=lambda k: res[k]["median_s"])
    return name, res[name]["median_s"]


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 14, each from ratios measured in this one run."""
    targets = []

    def add(name: str, value: float | None, goal: str, met: bool | None) -> None:
        targets.append({"target": name, "value": value, "goal": goal, "met": met})

    for case in report.get("mix", []):
        label = f"{'x'.join(map(str, case['shape']))} {case['dtype']}"
        name, t = best_vicinal(case)
        big = case["shape"][-1] >= 224
        goal = 5.0 if big else 1.5
        for peer, key in (("timm", "timm Mixup (in place, flip)"), ("torchvision", "torchvision v2.MixUp (roll)")):
            peer_t = case["results"].get(key, {}).get("median_s")
            v = None if peer_t is None else peer_t / t
            add(f"{label}: fastest vicinal vs {peer}", v, f">= {goal}x", None if v is None else v >= goal)
        if tuple(case["shape"]) == SMALL and case["dtype"] == "float32":
            roof = case["results"]["copy into preallocated (roofline)"]["median_s"]
            add(f"{label}: fastest vicinal call / copy_ ({CACHE} cache)", t / roof, "<= 4x", t / roof <= 4)
        if tuple(case["shape"]) == LARGE:
            frac = case["results"]["vicinal Mixup(inplace=True) [fast]"]["fraction_of_roofline"]
            goal_f = 0.5 if case["dtype"] == "uint8" else 0.8
            add(f"{label}: fast path fraction of copy roofline", frac, f">= {goal_f}", frac >= goal_f)
    for row in report.get("loader", []):
        r = row["results"]["uint8 MixupCollate, then to float"]["relative_to_no_mixing"]
        data = row.get("data", "tensors")
        add(f"loader {row['case']} ({data}): MixupCollate images/s / no mixing", r, ">= 0.95", r >= 0.95)
    e2e = report.get("e2e")
    if e2e:
        v = e2e["mixup Mixup(inplace=True)"]["paired_ratio"]
        add("mixup step / ERM step (paired)", v, "<= 1.01", v <= 1.01)
    tr = report.get("trainer")
    if tr and tr.get("ratio") is not None:
        add("trainer / bare loop images/s", tr["ratio"], ">= 0.95", tr["ratio"] >= 0.95)
    print(f"\ntargets (issue 14; {CACHE} cache):")
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        met = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        print(f"  {t['target']:<66} {value:>10}  goal {t['goal']:<8} {met}")
    return targets


# one block per cache state, so a warm and a cold run each regenerate their own table
README_BEGIN = "<!-- bench_mixing.py --readme, {cache} cache: begin -->"
README_END = "<!-- bench_mixing.py --readme, {cache} cache: end -->"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def summary_markdown(report: dict[str, Any]) -> str:
    """One run as markdown: the machine, the command, the cache state, then per batch the fastest vicinal path
    beside timm, torchvision and the copy roofline, the loader ratios and the targets of issue 14."""
    m, a = report["machine"], report["args"]
    where = m.get("gpu") or f"{m['cpu_model']}, {m['cpu_count']} cores, caches per core {m.get('caches_per_core')}"
    lines = [
        f"Run `{a.get('tag')}`: {where}; torch {m['torch']} ({m.get('torch_threads')} threads), timm {m.get('timm')}, "
        f"torchvision {m.get('torchvision')}; **{a.get('cache', 'warm')} cache**, {a.get('clock', 'wall')} clock, "
        f"medians of {a.get('repeats')} calls "
        f"(x10 for 32x32 batches); load average {m['load_average_start']} at the start, "
        f"{m.get('load_average_end', '-')} at the end. Command: `{report['command']}`"
        + (f" at {m['code']}." if m.get("code") else "."),
        "",
    ]
    if report.get("mix"):
        lines += [
            "| batch | vicinal fastest path | median | vs timm `Mixup` | vs torchvision `MixUp` "
            "| fast path % of copy roofline | copy |",
            "|---|---|---|---|---|---|---|",
        ]
        for case in report["mix"]:
            name, t = best_vicinal(case)
            res = case["results"]
            fast = res["vicinal Mixup(inplace=True) [fast]"]["fraction_of_roofline"]
            copy = res["copy into preallocated (roofline)"]["median_s"]
            lines.append(
                f"| {'x'.join(map(str, case['shape']))} {case['dtype']} | `{name}` | {fmt_time(t).strip()} "
                f"| {_ratio(res[name]['speedup_vs_timm'])} | {_ratio(res[name]['speedup_vs_torchvision'])} "
                f"| {100 * fast:.0f}% | {fmt_time(copy).strip()} |"
            )
        lines.append("")
    if report.get("loader"):
        lines += [
            "| loader (num_workers) | dataset | no mixing, images/s | uint8 `MixupCollate` vs no mixing "
            "| float `Mixup(inplace=True)` vs no mixing |",
            "|---|---|---|---|---|",
        ]
        for row in report["loader"]:
            res = row["results"]
            lines.append(
                f"| {'x'.join(map(str, row['shape']))} ({row['num_workers']}) | {row.get('data', 'tensors')} "
                f"| {res['no mixing (to float only)']['images_per_s_median']:.0f} "
                f"| {res['uint8 MixupCollate, then to float']['relative_to_no_mixing']:.4g}x "
                f"| {res['to float, then Mixup(inplace=True)']['relative_to_no_mixing']:.4g}x |"
            )
        lines.append("")
    if report.get("targets"):
        lines += ["| target (issue 14) | value | goal | |", "|---|---|---|---|"]
        for t in report["targets"]:
            if t["value"] is None:
                continue  # no peer to compare with (timm and torchvision have no uint8 batch mixing)
            value = f"{t['value']:.4g}"  # 4 digits: 0.9499 must not read as 0.950 next to ">= 0.95"
            met = {True: "met", False: "**not met**", None: "n/a"}[t["met"]]
            lines.append(f"| {t['target']} | {value} | {t['goal']} | {met} |")
        lines.append("")
    return "\n".join(lines)


README = Path(__file__).resolve().parent / "README.md"


def check_readme_markers(path: Path, cache: str) -> None:
    """Fail before measuring anything when ``path`` lacks the marker lines of this cache state."""
    readme = path.read_text()
    begin, end = README_BEGIN.format(cache=cache), README_END.format(cache=cache)
    if begin not in readme or end not in readme:
        raise SystemExit(f"bench_mixing.py: error: {path} has no {begin} ... {end} markers")


def splice_readme(path: Path, text: str, cache: str) -> None:
    """Replace what lies between the two marker lines of ``path`` for this cache state with ``text``."""
    check_readme_markers(path, cache)
    readme = path.read_text()
    begin, end = README_BEGIN.format(cache=cache), README_END.format(cache=cache)
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}")


def write_summary(report: dict[str, Any], path: Path, *, readme: bool) -> None:
    """The markdown summary of a run beside its JSON, and with ``readme`` in benchmarks/README.md."""
    md = summary_markdown(report)
    path.with_suffix(".md").write_text(md)
    print(f"wrote {path.with_suffix('.md')}")
    if readme:
        splice_readme(README, md, report["args"].get("cache", "warm"))
        print("updated benchmarks/README.md")


def full_cpu_run(args: dict[str, Any]) -> bool:
    """Whether a run's arguments make it a table of record: a CPU run of every size and dtype (sections may be
    chosen: the cold table is the mixing section alone). A GPU or partial run would silently replace them."""
    return (
        args.get("device", "cpu") == "cpu"
        and args.get("sizes") == ",".join(KNOWN_SIZES)
        and args.get("dtypes") == DEFAULT_DTYPES
    )


def render(path: Path, parser: argparse.ArgumentParser, *, readme: bool) -> int:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        parser.error(f"cannot read the run {path}: {err}")
    if readme:
        # the check a live --readme run gets, on the saved run's own arguments
        if not isinstance(report, dict) or not full_cpu_run(report.get("args") or {}):
            parser.error(f"--readme needs a CPU run of every size and dtype; {path} is not one")
        check_readme_markers(README, report["args"].get("cache", "warm"))
    write_summary(report, path, readme=readme)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per method (x10 for the small batch)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--tag", default=os.environ.get("VICINAL_BENCH_TAG") or socket.gethostname())
    parser.add_argument(
        "--sizes",
        default=",".join(KNOWN_SIZES),
        help=f"batch sizes of the mix/collate/loader sections: {list(KNOWN_SIZES)}",
    )
    parser.add_argument("--dtypes", default=DEFAULT_DTYPES, help="dtypes of the mix section")
    parser.add_argument("--cache", choices=("warm", "cold"), default="warm", help="cache state before each timed call")
    parser.add_argument("--device", default="cpu", help="device of the mixing section (cuda: the GPU run)")
    parser.add_argument("--width", type=int, default=16, help="PreAct ResNet-18 base width of the cpu reference model")
    parser.add_argument("--e2e-steps", type=int, default=100, help="paired steps (20 left the ratio +-3%% noisy)")
    parser.add_argument("--trainer-steps", type=int, default=10, help="timed iterations per round and loop")
    parser.add_argument(
        "--trainer-rounds", type=int, default=5, help="alternating rounds of the trainer and the bare loop"
    )
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument(
        "--loader-data", default=",".join(LOADER_DATA), help=f"datasets of the loader section: {list(LOADER_DATA)}"
    )
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="clock of the tables and ratios")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--max-load", type=float, default=None, help="wait for a 1-min load average below this")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --max-load per case")
    parser.add_argument("--no-write", action="store_true", help="print only, write no JSON or markdown")
    parser.add_argument(
        "--render",
        metavar="JSON",
        default=None,
        help="measure nothing: write the markdown summary of a saved run (results/<tag>.json) again",
    )
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also put this run's markdown summary into benchmarks/README.md (between its markers)",
    )
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    bad_sizes = sorted(set(args.sizes.split(",")) - {*KNOWN_SIZES, ""})
    if bad_sizes:
        parser.error(f"unknown sizes {bad_sizes}; known: {', '.join(KNOWN_SIZES)}")
    bad_data = sorted(set(args.loader_data.split(",")) - {*LOADER_DATA, ""})
    if bad_data:
        parser.error(f"unknown --loader-data {bad_data}; known: {', '.join(LOADER_DATA)}")
    if args.no_write and (args.readme or args.render):
        parser.error("--readme and --render write a run's summary; they cannot go with --no-write")
    if args.render is not None:
        return render(Path(args.render), parser, readme=args.readme)
    if args.readme:
        if not full_cpu_run(vars(args)):
            parser.error("--readme needs a CPU run of every size and dtype (no --device, --sizes or --dtypes)")
        check_readme_markers(README, args.cache)
    if args.repeats < 10:
        parser.error(f"--repeats must be >= 10 (medians of at least 10 calls), got {args.repeats}")
    bad_dtypes = sorted(set(args.dtypes.split(",")) - set(KNOWN_DTYPES))
    if bad_dtypes or not args.dtypes:
        parser.error(f"unknown --dtypes {bad_dtypes}; known: {', '.join(KNOWN_DTYPES)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.loader_workers < 0:
        parser.error(f"--loader-workers must be >= 0, got {args.loader_workers}")
    device = usable_device(parser, args.device)
    global CLOCK, CACHE
    CLOCK = args.clock
    CACHE = args.cache
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"machine": machine_info(device), "args": vars(args), "command": " ".join(sys.argv)}
    m = report["machine"]
    print(
        f"vicinal {m['vicinal']} | torch {m['torch']} ({m['torch_threads']} threads) | {m['cpu_model']}, "
        f"{m['cpu_count']} cores, caches {m['caches_per_core']} | load {m['load_average_start']}"
    )
    if "mix" in sections:
        report["mix"] = bench_mixing(args, device)
    if "collate" in sections:
        report["collate"] = bench_collate(args)
    if "loader" in sections:
        report["loader"] = bench_loader(args)
    if "e2e" in sections:
        report["e2e"] = bench_e2e(args)
    if "trainer" in sections:
        report["trainer"] = bench_trainer(args)
    report["targets"] = check_targets(report)
    report["machine"]["load_average_end"] = load()
    if not args.no_write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{args.tag}.json"
        path.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {path}")
        write_summary(report, path, readme=args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
