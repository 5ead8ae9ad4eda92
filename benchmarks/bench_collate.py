"""A/B of how ``MixupCollate`` stacks numpy and PIL images: ``np.stack`` straight into the batch tensor
(``vicinal.collate._stack_numpy_or_pil``, transposing (H, W, C) images as it copies) against the per-image path it
replaced for these inputs (a tensor view of each image, permuted to (C, H, W), then ``torch.stack``), which is still
the path for batches of mixed types and the one that names an odd image.

    .venv/bin/python benchmarks/bench_collate.py [--calls 21] [--threads 2] [--tag epyc2]

With ``--tag`` the table is also written to ``results/bench_collate-<tag>.md``. "per-image" switches
``_stack_numpy_or_pil`` off; "np.stack" is the code as shipped. Full collate calls (stack, labels, lam, pairing, the uint8
mix in place, targets) alternate between the two (ABBA order) on the same samples, so a load change on the machine
hits both alike; medians of the calls after the first two.
"""

from __future__ import annotations

import statistics
import time

import ab_cli
import numpy as np
import torch
from PIL import Image

import vicinal
from vicinal import collate as VC

SHAPES = ((32, 3, 32, 32), (128, 3, 32, 32), (256, 3, 32, 32), (64, 3, 224, 224), (256, 3, 224, 224))
INPUTS = ("numpy (H, W, C)", "numpy (C, H, W)", "PIL")
SHIPPED = VC._stack_numpy_or_pil


def _set(setting: str) -> None:
    VC._stack_numpy_or_pil = SHIPPED if setting == "np.stack" else (lambda images: None)


def samples(shape: tuple[int, ...], kind: str) -> list[tuple[object, int]]:
    rng = np.random.default_rng(0)
    n, c, h, w = shape
    images = [rng.integers(0, 256, (h, w, c), dtype=np.uint8) for _ in range(n)]
    if kind == "numpy (C, H, W)":  # timm's ToNumpy layout
        images = [np.ascontiguousarray(img.transpose(2, 0, 1)) for img in images]
    elif kind == "PIL":  # what torchvision datasets yield without ToTensor
        images = [Image.fromarray(img) for img in images]
    return [(img, i % 10) for i, img in enumerate(images)]


def main() -> None:
    args = ab_cli.parse_args(__doc__, "bench_collate", calls=21, calls_help="calls per setting (x5 for 32x32 batches)")
    settings = ("per-image", "np.stack")
    lines = [
        f"`{ab_cli.command('bench_collate')}`: torch {torch.__version__}, {torch.get_num_threads()} threads; full "
        "MixupCollate call, median of the calls after two warm-up calls (both settings interleaved)",
        "",
        "| batch | images | per-image views + torch.stack (before) | np.stack into the batch | before / after |",
        "|---|---|---|---|---|",
    ]
    print(lines[0])
    try:
        for shape in SHAPES:
            calls = args.calls * (5 if shape[-1] == 32 else 1)
            for kind in INPUTS:
                batch = samples(shape, kind)
                collate = vicinal.MixupCollate(alpha=1.0, num_classes=10, seed=0)
                times: dict[str, list[float]] = {s: [] for s in settings}
                outputs = {}
                for call in range(calls):
                    for setting in settings if call % 2 == 0 else reversed(settings):
                        _set(setting)
                        state = collate.mixer.state_dict()
                        t0 = time.perf_counter()
                        out = collate(batch)
                        times[setting].append(time.perf_counter() - t0)
                        if call == 0:
                            outputs[setting] = out
                            collate.mixer.load_state_dict(state)  # the other setting mixes with the same draws
                # the A/B compares two ways to the same batch: refuse to time a wrong one
                if not all(torch.equal(a, b) for a, b in zip(*outputs.values(), strict=True)):
                    raise AssertionError(f"the two settings stacked different batches ({shape}, {kind})")
                old, new = (statistics.median(times[s][2:]) for s in settings)
                unit, scale = ("us", 1e6) if shape[-1] == 32 else ("ms", 1e3)
                lines.append(
                    f"| {'x'.join(map(str, shape))} | {kind} | {old * scale:.1f} {unit} | {new * scale:.1f} {unit} | "
                    f"{old / new:.2f}x |"
                )
                print(lines[-1], flush=True)
    finally:
        _set("np.stack")
    ab_cli.write_table("bench_collate", args.tag, lines)


if __name__ == "__main__":
    main()
