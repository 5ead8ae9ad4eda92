"""Floors under issue 14's unmet CPU targets: how fast the operations those targets need can be on this machine,
measured beside the call they bound and the peer they are compared with.

    .venv/bin/python benchmarks/bench_floors.py [--calls 41] [--threads 2] [--tag epyc2] [--no-compile]

With ``--tag`` the tables are also written to ``results/bench_floors-<tag>.md``.

Three questions, each timed with the methods interleaved call by call (a load change hits all alike), the batch
restored before every call (warm cache), medians after two warm-up calls:

1. **Small float32 batches vs timm.** The target is 1.5x timm's full call. The floor is the bare sequence of
   PyTorch ops one exact-to-bound call of the paper's method needs, with no Python around them: the label range
   check (``aminmax``, two reads), lam (one Beta draw, one read), the random permutation, the mix, and the soft
   targets (``zeros``, the partners' labels, two scatters). The mix either as ``Mixup(inplace=True)`` does it (the
   gather of the partners into a reused buffer, one ``lerp`` in place) or as ``Mixup(exact=False)`` does (its
   bag index and weights written into reused buffers, one fused gather-and-mix into a new tensor). timm pairs by
   flipping the batch (no permutation to draw) and checks nothing.
2. **Large batches vs the copy roofline** (256x3x224x224, bfloat16 and uint8). The floor of each kernel PyTorch
   offers for the mix, run on the whole batch without the gather and written into a preallocated tensor: uint8's
   quantized add (the only fused uint8 pass whose roundings equal the float32 formula), bfloat16's ``lerp``, and
   the fused gather-and-mix (``embedding_bag``) as vicinal runs it in pieces. Mixing in place with any permutation
   must read each partner before it is overwritten: the gather of the whole batch is timed too, and the sum of
   gather and pass is the floor of the unfused kernels. With a C++ compiler, a
   ``torch.compile``'d gather-and-mix into a preallocated tensor shows what a generated kernel reaches (not a
   library path: the library ships no compiled code).
3. **bfloat16 at 64x3x224x224 vs timm.** The target is 5x timm's call: the time that leaves, beside a copy.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import ab_cli
import torch

import vicinal
from vicinal import functional as VF
from vicinal.sampling import _pair_concentration

SMALL = ((32, 3, 32, 32), (128, 3, 32, 32), (256, 3, 32, 32))
LARGE = (256, 3, 224, 224)
MID = (64, 3, 224, 224)


def interleaved(
    methods: dict[str, Callable[[], object]], restore: Callable[[], object], calls: int
) -> dict[str, float]:
    """Median seconds per call of each method, calls alternating (ABC..., then reversed), warm cache."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for call in range(calls):
        for name in names if call % 2 == 0 else reversed(names):
            restore()
            t0 = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t[2:]) for name, t in times.items()}


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def timm_mixup(num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], object] | None:
    try:
        from timm.data import Mixup
    except ImportError:
        return None
    return Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode="batch", num_classes=num_classes, label_smoothing=0.0)


def small_floor(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, fused: bool = False) -> Callable[[], object]:
    """The ops of one call, bare (see the module docstring): ``Mixup(inplace=True)``'s gather and ``lerp``, or with
    ``fused`` ``Mixup(exact=False)``'s one fused gather-and-mix into a new tensor (its index and weights written into
    reused buffers, as ``functional._bag_inputs`` does)."""
    n = x.shape[0]
    x2 = x.view(n, -1)
    buf = torch.empty_like(x2)
    gen = torch.Generator().manual_seed(0)
    conc = _pair_concentration(1.0)
    idx = y.view(n, 1)
    bag_index = torch.arange(n).repeat_interleave(2).view(n, 2)
    offsets, weights = torch.arange(0, 2 * n, 2), torch.empty(n, 2)

    def run() -> object:
        lo, hi = torch.aminmax(y)
        lo.item(), hi.item()
        lam = torch._sample_dirichlet(conc, generator=gen).tolist()[0]
        perm = torch.randperm(n, generator=gen)
        if fused:
            bag_index.select(1, 1).copy_(perm)
            weights.select(1, 0).fill_(lam)
            weights.select(1, 1).fill_(1 - lam)
            torch.embedding_bag(x2, bag_index.view(-1), offsets, False, 0, False, weights.view(-1), False)
        else:
            torch.index_select(x2, 0, perm, out=buf)
            torch.lerp(x2, buf, 1 - lam, out=x2)
        out = torch.zeros(n, num_classes)
        out.scatter_(1, idx, lam)
        return out.scatter_(1, idx.index_select(0, perm), 1 - lam, reduce="add")

    return run


def section_small(calls: int, lines: list[str]) -> None:
    lines += [
        "### Small float32 batches: the bare ops of one call against 1.5x timm",
        "",
        "| batch | timm `Mixup` | target (timm / 1.5) | vicinal `Mixup(inplace=True)` | bare ops, gather + lerp "
        "| vicinal `Mixup(exact=False)` | bare ops, fused gather-and-mix | fastest bare ops / target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape in SMALL:
        row = small_case(shape, calls * 5)
        lines.append(row)
        print(row, flush=True)


def small_case(shape: tuple[int, ...], calls: int) -> str:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g)
    x, y = x0.clone(), torch.randint(0, 10, (shape[0],), generator=g)
    inplace = vicinal.Mixup(1.0, num_classes=10, inplace=True, seed=0)
    fast = vicinal.Mixup(1.0, num_classes=10, exact=False, seed=0)
    methods: dict[str, Callable[[], object]] = {
        "inplace": lambda: inplace(x, y),
        "floor": small_floor(x, y, 10),
        "new tensor": lambda: fast(x, y),
        "fused floor": small_floor(x, y, 10, fused=True),
    }
    peer = timm_mixup(10)
    if peer is not None:
        methods["timm"] = lambda: peer(x, y)
    t = interleaved(methods, lambda: x.copy_(x0), calls)
    label = "x".join(map(str, shape))
    ours = f"{fmt(t['inplace'])} | {fmt(t['floor'])} | {fmt(t['new tensor'])} | {fmt(t['fused floor'])}"
    if "timm" not in t:
        return f"| {label} | - | - | {ours} | - |"
    target = t["timm"] / 1.5
    return (
        f"| {label} | {fmt(t['timm'])} | {fmt(target)} | {ours} | {min(t['floor'], t['fused floor']) / target:.2f}x |"
    )


def compiled_mix(dtype: torch.dtype) -> Callable[..., object] | None:
    """A torch.compile'd gather-and-mix into ``out`` (the formula, rounded for uint8), or None without a compiler."""

    def mix_out(out: torch.Tensor, x: torch.Tensor, perm: torch.Tensor, w: torch.Tensor) -> None:
        mixed = x.float() * w[0] + x[perm].float() * w[1]
        out.copy_(mixed.round() if dtype == torch.uint8 else mixed)

    try:
        fn = torch.compile(mix_out, dynamic=False)
        probe = torch.zeros(4, 8, dtype=dtype)
        fn(torch.empty_like(probe), probe, torch.arange(4), torch.tensor([0.5, 0.5]))
        return fn
    except Exception as err:  # no C++ compiler, or inductor unavailable: the row is left out
        print(f"torch.compile unavailable ({type(err).__name__}: {str(err)[:80]})")
        return None


def section_large(calls: int, use_compile: bool, lines: list[str]) -> None:
    lines += [
        "",
        "### 256x3x224x224: each kernel's floor as a fraction of the copy roofline",
        "",
        "| dtype | method | median | % of copy | target |",
        "|---|---|---|---|---|",
    ]
    for dtype, goal in ((torch.bfloat16, 0.8), (torch.uint8, 0.5)):
        for name, v, frac in large_case(dtype, calls, use_compile):
            row = f"| {str(dtype).removeprefix('torch.')} | {name} | {fmt(v)} | {100 * frac:.0f}% | {goal:.0%} |"
            lines.append(row)
            print(row, flush=True)


def large_case(dtype: torch.dtype, calls: int, use_compile: bool) -> list[tuple[str, float, float]]:
    """(method, median seconds, fraction of the copy roofline) of each method on LARGE in ``dtype``."""
    lam = 0.3
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, LARGE, generator=g) if dtype == torch.uint8 else torch.randn(LARGE, generator=g)).to(
        dtype
    )
    n = LARGE[0]
    x, out, other = x0.clone(), torch.empty_like(x0), x0.flip(0).contiguous()
    perm = torch.randperm(n, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    mixer = vicinal.Mixup(1.0, num_classes=10, inplace=True, seed=0)
    methods: dict[str, Callable[[], object]] = {
        "copy into preallocated (roofline)": lambda: out.copy_(x),
        "vicinal Mixup(inplace=True), full call": lambda: mixer(x, y),
    }
    x2, o2, p2 = x.view(n, -1), out.view(n, -1), other.view(n, -1)
    # an in-place mix of any permutation reads each partner before overwriting it: a gather (or a fused one)
    methods["gather (index_select), whole batch, into out"] = lambda: torch.index_select(x2, 0, perm, out=o2)
    if dtype == torch.uint8:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor creation warns of its deprecation
            qa, qb, qo = VF._quantized_alias(x2, lam), VF._quantized_alias(p2, 1 - lam), VF._quantized_alias(o2, 1.0)
        methods["quantized add, whole batch, no gather"] = lambda: torch.ops.quantized.add_out(qa, qb, qo)
    else:
        methods["lerp, whole batch, no gather"] = lambda: torch.lerp(x2, p2, 1 - lam, out=o2)
        pieces = VF._bag_pieces(x2.shape[1], VF._slice_width(n, 2, VF._CHUNK_BYTES, 16))
        if pieces:  # the in-place path's cut (0: no divisor, the lerp slices would run)
            methods[f"fused gather-and-mix in {pieces} pieces, into out"] = lambda: VF._bag_mix_pieces(
                o2, x2, lam, perm, pieces
            )
    fn = compiled_mix(dtype) if use_compile else None
    if fn is not None:
        w = torch.tensor([lam, 1 - lam], dtype=torch.float32)
        methods["torch.compile'd gather-and-mix, into out"] = lambda: fn(out, x, perm, w)
    t = interleaved(methods, lambda: x.copy_(x0), calls)
    roof = t["copy into preallocated (roofline)"]
    one_pass = "quantized add" if dtype == torch.uint8 else "lerp"
    gather = t["gather (index_select), whole batch, into out"]
    single = next(v for k, v in t.items() if k.startswith(one_pass))
    t[f"sum: gather + {one_pass} (the unfused in-place floor)"] = gather + single
    return [(name, v, roof / v) for name, v in t.items()]


def section_mid(calls: int, lines: list[str]) -> None:
    lines += [
        "",
        "### 64x3x224x224 bfloat16: 5x timm against the copy",
        "",
        "| timm `Mixup` | target (timm / 5) | copy into preallocated | vicinal `Mixup(inplace=True)` |",
        "|---|---|---|---|",
    ]
    peer = timm_mixup(10)
    if peer is None:
        lines.append("| timm not installed | - | - | - |")
        return
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(MID, generator=g).bfloat16()
    x, out, y = x0.clone(), torch.empty_like(x0), torch.randint(0, 10, (MID[0],), generator=g)
    mixer = vicinal.Mixup(1.0, num_classes=10, inplace=True, seed=0)
    t = interleaved(
        {"timm": lambda: peer(x, y), "copy": lambda: out.copy_(x), "vicinal": lambda: mixer(x, y)},
        lambda: x.copy_(x0),
        calls,
    )
    row = f"| {fmt(t['timm'])} | {fmt(t['timm'] / 5)} | {fmt(t['copy'])} | {fmt(t['vicinal'])} |"
    lines.append(row)
    print(row, flush=True)


def main() -> None:
    args = ab_cli.parse_args(
        __doc__,
        "bench_floors",
        calls=41,
        calls_help="calls per method (x5 for 32x32 batches; 2 warm up)",
        extra=lambda p: p.add_argument(
            "--no-compile", action="store_true", help="leave out the torch.compile'd kernels"
        ),
    )
    lines = [
        f"`{ab_cli.command('bench_floors')}`: torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; warm cache, methods interleaved call by call, median of the calls after "
        "two warm-up calls",
        "",
    ]
    print(lines[0], flush=True)
    section_small(args.calls, lines)
    section_large(args.calls, not args.no_compile, lines)
    section_mid(args.calls, lines)
    ab_cli.write_table("bench_floors", args.tag, lines)


if __name__ == "__main__":
    main()
