"""A/B of the fused gather-and-mix (``torch.embedding_bag``, ``vicinal.functional._bag_mix``) against the gather +
``lerp`` kernel it replaced where it is used: ``Mixup(inplace=True)`` in bfloat16/float16 and ``Mixup(exact=False)``
(a new tensor) in float32/bfloat16/float16.

    .venv/bin/python benchmarks/bench_fused.py [--calls 41] [--threads 2] [--tag epyc2]

With ``--tag`` the table is also written to ``results/bench_fused-<tag>.md``. ``--views`` times instead, on
CIFAR-sized batches, the kernel's index and weight views kept for the next call of the same size against made
anew at every call (``results/bench_fused-views-<tag>.md``).

"lerp" switches the fused kernel off (``_BAG_DTYPES`` and ``_BAG_INPLACE_DTYPES`` emptied: the kernels of the code
before it); "fused" is the code as shipped. Calls alternate between the two (ABBA order) on the same batch, restored
before every in-place call, so a load change on the machine hits both alike; medians of the calls after the first
two, full calls (lam, pairing, inputs, targets), warm cache. Single runs of ``bench_mixing.py`` on this shared
machine move by up to 2x from run to run; this interleaved A/B is what the kernel choice rests on.
"""

from __future__ import annotations

import statistics
import time

import ab_cli
import torch

import vicinal
from vicinal import functional as VF

SHAPES = ((32, 3, 32, 32), (128, 3, 32, 32), (256, 3, 32, 32), (64, 3, 224, 224), (256, 3, 224, 224))
CASES = (  # (mode, dtype): where the fused kernel is used
    ("inplace", torch.bfloat16),
    ("inplace", torch.float16),
    ("new tensor", torch.float32),
    ("new tensor", torch.bfloat16),
)
SHIPPED = {"_BAG_DTYPES": VF._BAG_DTYPES, "_BAG_INPLACE_DTYPES": VF._BAG_INPLACE_DTYPES}
SETTINGS = {"lerp": {"_BAG_DTYPES": (), "_BAG_INPLACE_DTYPES": ()}, "fused": SHIPPED}


def _set(name: str) -> None:
    for attr, value in SETTINGS[name].items():
        if not hasattr(VF, attr):  # a renamed switch would leave both settings fused: a silent, wrong A/B
            raise AttributeError(f"vicinal.functional has no {attr}: update bench_fused.SETTINGS")
        setattr(VF, attr, value)


def _rebuild_views() -> None:
    """The ``--views`` baseline: forget the kept views, so that the next call slices and views the buffers anew."""
    VF._WORKSPACE.bag_views.clear()


def main() -> None:
    args = ab_cli.parse_args(
        __doc__,
        "bench_fused",
        calls=41,
        calls_help="calls per setting (x5 for 32x32 batches; 2 warm up)",
        extra=lambda p: p.add_argument(
            "--views",
            action="store_true",
            help="instead: the kernel's index and weight views kept for the next call of the same batch size against "
            "rebuilt at every call (results/bench_fused-views-TAG.md), CIFAR-sized batches",
        ),
    )
    if args.views:
        # before: the views of the index and weight buffers sliced and made anew at every call
        hooks = {"rebuilt": _rebuild_views, "kept": lambda: None}
        shapes, name = SHAPES[:3], "bench_fused-views"
    else:
        hooks = {setting: (lambda s=setting: _set(s)) for setting in SETTINGS}
        shapes, name = SHAPES, "bench_fused"
    before, after = hooks
    lines = [
        f"`{ab_cli.command('bench_fused')}`: torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; full call, warm cache, median of the calls after two warm-up calls "
        f"({before} and {after} interleaved)",
        "",
        f"| batch | dtype | call | {before} (before) | {after} | {before} / {after} |",
        "|---|---|---|---|---|---|",
    ]
    print(lines[0])
    try:
        for shape in shapes:
            calls = args.calls * (5 if shape[-1] == 32 else 1)
            for mode, dtype in CASES:
                x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
                x, y = x0.clone(), torch.arange(shape[0]) % 1000
                kwargs = {"inplace": True} if mode == "inplace" else {"exact": False}
                mixer = vicinal.Mixup(1.0, num_classes=1000, seed=0, **kwargs)
                times: dict[str, list[float]] = {setting: [] for setting in hooks}
                for call in range(calls):
                    for setting in hooks if call % 2 == 0 else reversed(hooks):
                        hooks[setting]()
                        x.copy_(x0)
                        t0 = time.perf_counter()
                        mixer(x, y)
                        times[setting].append(time.perf_counter() - t0)
                old, new = (statistics.median(times[setting][2:]) for setting in hooks)
                unit, scale = ("us", 1e6) if shape[-1] == 32 else ("ms", 1e3)
                lines.append(
                    f"| {'x'.join(map(str, shape))} | {str(dtype).replace('torch.', '')} | "
                    f"`Mixup({', '.join(f'{k}={v}' for k, v in kwargs.items())})` | {old * scale:.1f} {unit} | "
                    f"{new * scale:.1f} {unit} | {old / new:.2f}x |"
                )
                print(lines[-1], flush=True)
    finally:
        _set("fused")
    ab_cli.write_table(name, args.tag, lines)


if __name__ == "__main__":
    main()
