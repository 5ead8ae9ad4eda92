"""A/B of the slice length of the chunked in-place kernel (``vicinal.functional._MIN_ROW_BYTES``): each row's piece
of a (B, Fc) slice at least 16 KiB, slices up to 4 MiB ("new"), against slices sized by ``_CHUNK_BYTES`` alone ("old").

    .venv/bin/python benchmarks/bench_slices.py [--calls 16] [--threads 2] [--tag epyc2]

With ``--tag`` the table is also written to ``results/bench_slices-<tag>.md``.

Calls alternate between the two settings (ABBA order) on the same batch, restored before every call, so a load
change on the machine hits both alike; medians of the calls after the first two. Both settings compute the same
values bit for bit (mixing is elementwise; only the slicing differs). Rerun it to retune the constant on another CPU.
"""

from __future__ import annotations

import statistics
import time
import warnings

import ab_cli
import torch

import vicinal
from vicinal import functional as VF

# CIFAR-sized batches above the single-pass size, and ImageNet-sized ones
SHAPES = ((256, 3, 32, 32), (1024, 3, 32, 32), (64, 3, 224, 224), (256, 3, 224, 224))
SETTINGS = {"old": 0, "new": VF._MIN_ROW_BYTES}


def main() -> None:
    args = ab_cli.parse_args(__doc__, "bench_slices", calls=16, calls_help="calls per setting (the first two warm up)")
    warnings.simplefilter("ignore")  # the uint8 kernel's quantized ops warn of their deprecation once
    lines = [
        f"`{ab_cli.command('bench_slices')}`: torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Mixup(inplace=True) full call, median ms of {args.calls - 2} calls",
        "",
        "| batch | dtype | old (slices of _CHUNK_BYTES) | new (rows >= 16 KiB) |",
        "|---|---|---|---|",
    ]
    print(lines[0])
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16, torch.uint8):
            g = torch.Generator().manual_seed(0)
            if dtype == torch.uint8:
                x0 = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
            else:
                x0 = torch.randn(shape, generator=g).to(dtype)
            x, y = x0.clone(), torch.arange(shape[0]) % 1000
            mixer = vicinal.Mixup(1.0, num_classes=1000, inplace=True, seed=0)
            times: dict[str, list[float]] = {name: [] for name in SETTINGS}
            for call in range(args.calls):
                for name in SETTINGS if call % 2 == 0 else reversed(SETTINGS):
                    VF._MIN_ROW_BYTES = SETTINGS[name]
                    x.copy_(x0)
                    t0 = time.perf_counter()
                    mixer(x, y)
                    times[name].append(time.perf_counter() - t0)
            VF._MIN_ROW_BYTES = SETTINGS["new"]
            old, new = (1e3 * statistics.median(times[name][2:]) for name in SETTINGS)
            lines.append(
                f"| {'x'.join(map(str, shape))} | {str(dtype).replace('torch.', '')} | {old:.3f} | {new:.3f} |"
            )
            print(lines[-1], flush=True)
    ab_cli.write_table("bench_slices", args.tag, lines)


if __name__ == "__main__":
    main()
