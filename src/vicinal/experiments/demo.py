"""``vicinal demo``: ERM vs mixup on scikit-learn's handwritten digits, several seeds, clean and FGSM error.

Real data, no download, about a minute on 2 CPU cores. Every run goes through the same :class:`Trainer` as the
paper-scale experiments (run folders under a temporary directory unless ``--out`` is given), then the trained
model is attacked with FGSM in [0, 1] pixel space (normalisation is the model's first layer).

The embedded default below is mirrored by the shipped config ``demo/digits`` (a test keeps the two equal).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .attacks import error_under_attack, fgsm
from .callbacks import Callback
from .config import ConfigError, ExperimentConfig, apply_overrides, check_seeds, config_from_dict, str_list
from .recipe import RULE_MAX_TRAIN_ERROR
from .stats import fmt_mean_std, mean_std
from .trainer import Trainer

__all__ = [
    "DEMO_CONFIG",
    "DEMO_ALPHA",
    "DEMO_EPS",
    "DEMO_SEEDS",
    "DemoRow",
    "check_demo_options",
    "run_demo",
    "format_table",
]

# The small convnet of the models package on 1x8x8 digits (pixels / 16, in [0, 1]); 1,198 train / 599 test
# images per seed (the split is seeded too). Cosine schedule, no augmentation (8x8 digits have no room to crop).
DEMO_CONFIG: dict[str, Any] = {
    "name": "demo-digits",
    "notes": "vicinal demo: digits_cnn on sklearn digits, ERM vs mixup (see vicinal/experiments/demo.py)",
    "data": {"name": "digits", "batch_size": 32, "eval_batch_size": 600, "augment": False},
    "model": {"name": "digits_cnn", "kwargs": {}},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4},
    "schedule": {"name": "cosine"},
    "mix": {"variant": "erm"},
    # One thread: fastest for this tiny network, and the numbers do not depend on the machine's core count.
    "train": {"epochs": 12, "device": "cpu", "checkpoint_every": 12, "log_every": 1000, "threads": 1},
}
DEMO_ALPHA = 1.0  # mixup's Beta(alpha, alpha), the paper's CIFAR value
DEMO_EPS = 0.1  # FGSM L-inf radius in [0, 1] pixels (digit pixels are multiples of 1/16 = 0.0625)
DEMO_SEEDS = 5


@dataclass
class DemoRow:
    """One method's results over seeds (percent errors)."""

    method: str
    test_errors: list[float]
    fgsm_errors: list[float]
    train_errors: list[float] = field(default_factory=list)  # un-augmented training images, after the last epoch


def _mean_std(values: Sequence[float]) -> str:
    return fmt_mean_std(*mean_std(values))


def format_table(rows: Sequence[DemoRow], eps: float, seconds: float) -> str:
    """The demo's table: training, test and FGSM error, mean ± sample std over seeds, with n."""
    lines = [
        f"| method | n | train error (%) | test error (%) | FGSM error (%), eps={eps:g} |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {len(r.test_errors)} | {_mean_std(r.train_errors)} | {_mean_std(r.test_errors)} | "
            f"{_mean_std(r.fgsm_errors)} |"
        )
    lines.append("")
    # said from the numbers: with --set overrides (fewer epochs, another lr) ERM may stop short of fitting them
    erm = next((r.train_errors for r in rows if r.method == "ERM"), [])
    mean, _, n = mean_std(erm)
    regime = ""
    if n:
        regime = (
            " (ERM fits them: the regime the paper studies)"
            if mean <= RULE_MAX_TRAIN_ERROR
            else f" (ERM does not fit them here, {mean:.2f}% > {RULE_MAX_TRAIN_ERROR:g}%: outside the regime the "
            "paper studies)"
        )
    lines.append(
        "mean ± sample std over seeds; train error: the model on its own un-augmented training images"
        f"{regime}; wall time {seconds:.0f} s"
    )
    return "\n".join(lines)


# Keys the demo sets itself for each method and seed (its rows are labelled from them): a --set of one of them (or of
# a section holding one) relabelled nothing, turned both rows into one method, or made them share a run folder.
_DEMO_OWNED = ("name", "mix.variant", "mix.alpha", "train.seed")


def _check_demo_overrides(overrides: Sequence[str]) -> None:
    """ConfigError for a ``--set`` of a key in :data:`_DEMO_OWNED` (or a section above one)."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        owned = [k for k in _DEMO_OWNED if k == key or k.startswith(f"{key}.")]
        if "=" in item and owned:
            raise ConfigError(
                f"--set {key} is not allowed in the demo: the demo sets {', '.join(owned)} itself for the methods "
                "it compares (use --alpha for mixup's alpha, --seeds for the seeds, or 'vicinal train' for other "
                "methods)"
            )


def demo_configs(alpha: float = DEMO_ALPHA, overrides: Sequence[str] = ()) -> list[tuple[str, ExperimentConfig]]:
    """(method label, config) for ERM and mixup (seed still to set); ``overrides`` may not touch what defines them."""
    overrides = str_list(overrides, "overrides", "'key=value' strings")
    _check_demo_overrides(overrides)
    base = config_from_dict(DEMO_CONFIG)
    erm = apply_overrides(base, ["name=demo-digits-erm", "mix.variant=erm", *overrides])
    mix = apply_overrides(base, ["name=demo-digits-mixup", "mix.variant=mixup", f"mix.alpha={alpha}", *overrides])
    return [("ERM", erm), (f"mixup (alpha={alpha:g})", mix)]


def check_demo_options(
    *, seeds: int, alpha: float, eps: float, overrides: Sequence[str] = ()
) -> list[tuple[str, ExperimentConfig]]:
    """Check the demo's options (ConfigError naming the first bad one); returns :func:`demo_configs`.

    Everything is checked before anything trains or prints, so that an error is the only line the command shows.
    """
    check_seeds(seeds)
    if not (math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"--eps must be a finite float >= 0, got {eps}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"--alpha must be a finite float >= 0, got {alpha}")
    return demo_configs(alpha, overrides)  # the --set overrides, applied to both methods' configs


class _Banner(Callback):
    """Prints the demo's banner at the start of its first run, after the run's data, model and folder were built."""

    def __init__(self, text: str | None, stream: TextIO) -> None:
        self.text, self.stream = text, stream

    def on_fit_start(self, trainer: Any) -> None:
        if self.text is not None:
            print(self.text, file=self.stream, flush=True)
            self.text = None


def run_demo(
    *,
    seeds: int = DEMO_SEEDS,
    alpha: float = DEMO_ALPHA,
    eps: float = DEMO_EPS,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    stream: TextIO | None = None,
    banner: str | None = None,
) -> tuple[list[DemoRow], str]:
    """Train ERM and mixup for ``seeds`` seeds, attack each model with FGSM, return rows and the table text.

    ``banner`` is printed to ``stream`` once the first run is built (its data, model and run folder checked), so
    that an error of those is the only line the command shows.
    """
    stream = stream or sys.stdout
    configs = check_demo_options(seeds=seeds, alpha=alpha, eps=eps, overrides=overrides)
    t0 = time.perf_counter()
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="vicinal-demo-")
        out = tmp.name
    out = Path(out)
    planned = [
        out / apply_overrides(cfg, [f"train.seed={s}"]).name / f"seed{s}" for _, cfg in configs for s in range(seeds)
    ]
    blocked = next((p for run in planned for p in (run.parent, run) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ConfigError(f"--out '{out}': '{blocked}' is a file, where a folder is needed; choose another --out")
    taken = next((run for run in planned if run.is_dir() and any(run.iterdir())), None)
    if taken is not None:  # the demo trains afresh: `vicinal train`'s --resume / --overwrite are not its options
        raise ConfigError(f"--out '{out}' already holds a demo run ('{taken}'); choose another --out")
    announce = _Banner(banner, stream)
    rows = []
    try:
        for label, cfg in configs:
            row = DemoRow(label, [], [])
            for seed in range(seeds):
                run_cfg = apply_overrides(cfg, [f"train.seed={seed}"])
                trainer = Trainer(
                    run_cfg, out / run_cfg.name / f"seed{seed}", quiet=True, argv=sys.argv, callbacks=[announce]
                )
                trainer.stop.saves = False  # a stopped demo is run again, not resumed (see cli.main)
                summary = trainer.fit()
                row.test_errors.append(summary["last_test_error"])
                row.train_errors.append(summary["last_train_eval_error"])
                row.fgsm_errors.append(error_under_attack(trainer.model, trainer.data.test, fgsm, eps=eps))
                print(
                    f"  {label:<20} seed {seed}: train error {row.train_errors[-1]:5.2f}%  "
                    f"test error {row.test_errors[-1]:5.2f}%  "
                    f"FGSM error {row.fgsm_errors[-1]:5.2f}%",
                    file=stream,
                    flush=True,
                )
            rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    table = format_table(rows, eps, time.perf_counter() - t0)
    return rows, table
