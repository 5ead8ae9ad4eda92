"""A/B of the slicing of the chunked in-place kernel, two settings of ``vicinal.functional``:

* ``--setting rows`` (default): the slice length, ``_MIN_ROW_BYTES``: each row's piece of a (B, Fc) slice at least
  16 KiB, slices up to 4 MiB ("new"), against slices sized by ``_CHUNK_BYTES`` alone ("old"), on batches that are
  sliced (above ``_SINGLE_PASS_BYTES`` in float, above one uint8 slice of ``_Q_CHUNK_BYTES``);
* ``--setting single``: the single-pass size, ``_SINGLE_PASS_BYTES``: float batches up to 6 MiB mixed in one pass
  (the whole gather, then one lerp: "one pass") against the slice loop ("slices"), at 3-12 MiB.

    .venv/bin/python benchmarks/bench_slices.py [--setting rows|single] [--calls 16] [--threads 2] [--tag epyc2]

With ``--tag`` the table is also written to ``results/bench_slices-<tag>.md`` (``rows``) or
``results/bench_single_pass-<tag>.md`` (``single``).

Calls alternate between the two settings (ABBA order) on the same batch, restored before every call, so a load
change on the machine hits both alike; medians of the calls after the first two. Both settings compute the same
values bit for bit (mixing is elementwise; only the slicing differs). Rerun it to retune the constants on another
CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import ab_cli
import torch

import vicinal
from vicinal import functional as VF

# name -> (module constant, {label: value}, shapes, dtypes, table title)
SETTINGS = {
    "rows": (
        "_MIN_ROW_BYTES",
        {"old (slices of _CHUNK_BYTES)": 0, "new (rows >= 16 KiB)": VF._MIN_ROW_BYTES},
        # every one above the single-pass size in float32 and bfloat16 and above one uint8 slice
        ((2048, 3, 32, 32), (64, 3, 224, 224), (256, 3, 224, 224)),
        (torch.float32, torch.bfloat16, torch.uint8),
        "bench_slices",
    ),
    "single": (
        "_SINGLE_PASS_BYTES",
        {"slices": 0, "one pass (<= 6 MiB)": VF._SINGLE_PASS_BYTES},
        # 3, 6 and 12 MiB in float32 (1.5, 3, 6 in bfloat16): the last float32 one is sliced in both settings
        ((256, 3, 32, 32), (64, 3, 64, 64), (128, 3, 64, 64), (256, 3, 64, 64)),
        (torch.float32, torch.bfloat16),
        "bench_single_pass",
    ),
}


def _setting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setting", choices=tuple(SETTINGS), default="rows", help="the constant to A/B")


def main() -> None:
    args = ab_cli.parse_args(
        __doc__, "bench_slices", calls=16, calls_help="calls per setting (the first two warm up)", extra=_setting
    )
    constant, values, shapes, dtypes, table = SETTINGS[args.setting]
    shipped = getattr(VF, constant)
    warnings.simplefilter("ignore")  # the uint8 kernel's quantized ops warn of their deprecation once
    lines = [
        f"`{ab_cli.command('bench_slices')}`: torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Mixup(inplace=True) full call, median ms of {args.calls - 2} calls; "
        f"A/B of functional.{constant}",
        "",
        f"| batch | dtype | {' | '.join(values)} |",
        "|---|---|---|---|",
    ]
    print(lines[0])
    try:
        for shape in shapes:
            for dtype in dtypes:
                g = torch.Generator().manual_seed(0)
                if dtype == torch.uint8:
                    x0 = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
                else:
                    x0 = torch.randn(shape, generator=g).to(dtype)
                x, y = x0.clone(), torch.arange(shape[0]) % 1000
                mixer = vicinal.Mixup(1.0, num_classes=1000, inplace=True, seed=0)
                times: dict[str, list[float]] = {name: [] for name in values}
                for call in range(args.calls):
                    for name in values if call % 2 == 0 else reversed(values):
                        setattr(VF, constant, values[name])
                        x.copy_(x0)
                        t0 = time.perf_counter()
                        mixer(x, y)
                        times[name].append(time.perf_counter() - t0)
                a, b = (1e3 * statistics.median(times[name][2:]) for name in values)
                mib = x0.numel() * x0.element_size() / 2**20
                lines.append(
                    f"| {'x'.join(map(str, shape))} ({mib:g} MiB) | {str(dtype).replace('torch.', '')} | {a:.3f} | "
                    f"{b:.3f} |"
                )
                print(lines[-1], flush=True)
    finally:
        setattr(VF, constant, shipped)
    ab_cli.write_table(table, args.tag, lines)


if __name__ == "__main__":
    main()
