"""Speed-up of the batched UCI trainer (all members as one vmapped model) over the plain sequential loop.

Both train the same members with the same initialisations, data orders and mixing (lam, perm), and the script
checks that they agree (max parameter difference), so the timing compares two implementations of one computation:

* sequential: :func:`vicinal.experiments.tasks.uci_train.train_sequential`, one member after another (``nn.Module``,
  ``torch.optim.Adam``, one minibatch of 16 at a time);
* batched: :func:`vicinal.experiments.tasks.uci_train.train_vmapped`, every member at once (``torch.func.vmap`` over
  stacked parameters, ``torch.optim.Adam`` over them: the seed-ensemble engine of ``experiments/ensemble.py``).

Both include the per-epoch validation/test evaluation. Rounds alternate batched and sequential training, so that
the load of a shared machine hits both alike; the sequential time is measured on ``--sequential-members`` members
spread over seeds and methods and scaled linearly to all members (members are independent, so the sequential
cost is linear in their number). Every epoch costs the same, so one epoch per round (the default) is representative.

Usage::

    python benchmarks/bench_uci.py --threads 1                    # abalone, 10 seeds x (ERM + 4 alphas) = 50
    python benchmarks/bench_uci.py --dataset htru2 --threads 1

Measured 2026-12-02 (``--threads 1 --tag epyc2-1thread``, one file per dataset in
``results/bench_uci-<dataset>-epyc2-1thread.md``; torch 2.14.1 CPU on this project's 2-core machine while a
one-thread training job used the other core), 50 members, 1 epoch per round: median speed-up per round 2.3x
(abalone, 168 steps), 2.7x (htru2, 716 steps), 2.8x (iris, 6 steps).

The members agree with their sequential runs up to float rounding, not bit for bit (max abs parameter difference
after one epoch: 4.5e-07 abalone, 8.4e-06 htru2, 3.0e-08 iris): the batched matrix products sum in another order,
which Adam's normalisation amplifies on near-zero gradients. Part of the batched time goes to Adam's elementwise
passes over the stacked parameters (memory-bound), the rest to the vmapped forward/backward; a wide dataset
(arcene: 1.3 M parameters per member, 5 steps per epoch) is Adam- and memory-bound in both implementations, so
batching should gain least there (not measured here).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch
from ab_cli import command, usable_device, write_table

from vicinal.experiments.data.uci import UCI_DATASETS, load_uci
from vicinal.experiments.errors import LabError
from vicinal.experiments.tasks.uci_train import DEFAULT_ALPHAS, Member, UCIProtocol, train_sequential, train_vmapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="abalone")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed round (every epoch costs the same)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating batched/sequential rounds")
    parser.add_argument("--alphas", default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS))
    parser.add_argument("--sequential-members", type=int, default=10, help="members timed sequentially per round")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--tag", default=None, help="also write the table row to results/bench_uci-TAG.md")
    args = parser.parse_args()
    for name in ("seeds", "epochs", "rounds", "sequential_members"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.dataset.lower() not in UCI_DATASETS:
        parser.error(f"unknown --dataset {args.dataset!r}; known: {', '.join(UCI_DATASETS)}")
    try:
        alphas = tuple(float(a) for a in args.alphas.split(","))
    except ValueError:
        parser.error(f"--alphas must be comma-separated numbers, got {args.alphas!r}")
    if not all(math.isfinite(a) and a > 0 for a in alphas):
        parser.error(f"--alphas must be finite and > 0 (ERM is always trained), got {args.alphas!r}")
    usable_device(parser, args.device)
    if args.json and (Path(args.json).is_dir() or not Path(args.json).parent.is_dir()):  # before the run, not after
        parser.error(f"--json {args.json!r} must name a file in an existing folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    protocol = UCIProtocol(epochs=args.epochs, alphas=alphas)
    seeds = list(range(args.seeds))
    try:
        splits = {s: load_uci(args.dataset, args.data_root, seed=s) for s in seeds}
    except LabError as err:  # no data where --data-root (or the data root) points
        parser.error(f"{err}; here: --data-root DIR, the folder that holds {args.dataset}/")
    members = [Member(s, a) for s in seeds for a in (0.0, *protocol.alphas)]
    k = min(args.sequential_members, len(members))
    # Spread the K timed members over seeds and methods (every len(members)/K-th member).
    timed = [members[round(i * len(members) / k)] for i in range(k)]
    steps = protocol.epochs * math.ceil(len(splits[0].train[1]) / protocol.batch_size)

    train_vmapped(splits, members[:2], UCIProtocol(epochs=1, alphas=protocol.alphas), device=args.device)  # warm-up
    rounds = []
    for _ in range(args.rounds):  # alternate, so that a shared machine's load drifts hit both alike
        t0 = time.perf_counter()
        batched = train_vmapped(splits, members, protocol, device=args.device, return_state=True)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        reference = [train_sequential(splits[m.seed], m, protocol, device=args.device) for m in timed]
        t_sequential = (time.perf_counter() - t0) * len(members) / k
        rounds.append({"batched_s": t_batched, "sequential_s": t_sequential, "speedup": t_sequential / t_batched})

    by_member = dict(zip(members, batched, strict=True))
    diff = 0.0
    for m, ref in zip(timed, reference, strict=True):
        state = by_member[m].state
        assert state is not None and ref.state is not None
        diff = max(diff, max(float((state[n] - ref.state[n]).abs().max()) for n in ref.state))
    speedups = sorted(r["speedup"] for r in rounds)
    out = {
        "dataset": args.dataset,
        "members": len(members),
        "steps_per_member": steps,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "sequential_measured_members": k,
        "rounds": rounds,
        "median_speedup": statistics.median(speedups),
        "max_param_diff": diff,
        "torch": torch.__version__,
    }
    best = min(rounds, key=lambda r: r["batched_s"])
    row = (
        f"| {args.dataset} | {len(members)} members x {steps} steps | {out['threads']} thread(s) | "
        f"sequential {best['sequential_s']:.1f} s (measured on {k} members, scaled x{len(members) / k:g}) | "
        f"batched {best['batched_s']:.1f} s | speed-up per round {', '.join(f'{x:.1f}' for x in speedups)}x "
        f"(median {out['median_speedup']:.1f}x) | max |param diff| {diff:.1e} |"
    )
    print(row)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if args.tag:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lines = [
            f"`{command('bench_uci')}`: torch {torch.__version__}, {out['threads']} thread(s), load average {load} "
            f"at the end; the sequential time is measured on {k} members and scaled to {len(members)}",
            "",
            "| dataset | members x steps | sequential, fastest round | batched, fastest round | speed-up per round "
            "| median | max abs param difference |",
            "|---|---|---|---|---|---|---|",
            f"| {args.dataset} | {len(members)} x {steps} | {best['sequential_s']:.1f} s | {best['batched_s']:.1f} s "
            f"| {', '.join(f'{x:.1f}x' for x in speedups)} | {out['median_speedup']:.1f}x | {diff:.1e} |",
        ]
        write_table("bench_uci", f"{args.dataset}-{args.tag}", lines)


if __name__ == "__main__":
    main()
