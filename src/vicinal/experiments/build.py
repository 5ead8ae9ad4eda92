"""What a config builds: the run's data, network, optimiser, learning-rate schedule and mixer.

The trainer, the attacks and the figures all build a run's pieces here, so a config means the same thing to each
of them (the attacks and figures reload a trained run with :func:`load_run_model`).
"""

from __future__ import annotations

import inspect
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import vicinal

from .checkpoint import CheckpointError, load_checkpoint
from .config import (
    VARIANT_OPTIONS,
    ConfigError,
    ExperimentConfig,
    MixConfig,
    OptimConfig,
    ScheduleConfig,
    VariantOptions,
)
from .data import build_data, check_dataset_name
from .data.seeds import STREAM_GLOBAL, STREAM_MIX, derive_seed
from .errors import DataNotFoundError, LabError, LabFileNotFoundError, RunError
from .models import MODELS, build_model, check_model_name
from .paths import default_data_root
from .runs import CHECKPOINT_NAME, read_config

__all__ = [
    "CHECKPOINT_NAME",
    "LRSchedule",
    "Mixing",
    "RunParts",
    "build_mixing",
    "build_optimizer",
    "build_run",
    "build_run_data",
    "build_run_model",
    "load_run_model",
    "lr_at",
    "mixer_options",
]


# -- data and network -------------------------------------------------------------------------------------------
def build_run_data(
    cfg: ExperimentConfig,
    device: str | torch.device,
    *,
    rank: int = 0,
    world_size: int = 1,
    train: bool = True,
    eval_batch_size: int | None = None,
) -> Any:
    """The run's DataBundle for ``rank``. ``train=False`` builds it for evaluating a trained run: no augmentation
    and no label corruption (only the test split is read; the training labels do not matter)."""
    d = cfg.data
    extra: dict[str, Any] = {}
    if train:
        extra = {"corrupt_fraction": d.corrupt_fraction, "corrupt_seed": d.corrupt_seed}
    try:
        return build_data(
            d.name,
            root=d.root,
            batch_size=d.batch_size,
            eval_batch_size=d.eval_batch_size if eval_batch_size is None else eval_batch_size,  # 0 is refused there
            seed=cfg.train.seed,
            device=str(device),
            rank=rank,
            world_size=world_size,
            augment=d.augment if train else False,
            subset_per_class=d.subset_per_class,
            **extra,
            **d.kwargs,
        )
    except DataNotFoundError as exc:
        if "VICINAL_DATA" in str(exc):  # the loader's own message says how to set it already
            raise
        raise DataNotFoundError(f"{exc}{_data_place(d.root)}") from None


def _data_place(root: str | None) -> str:
    """Where a run looked for its data when the config names no data.root, and how to point it elsewhere."""
    if root is not None:
        return ""  # the message names the config's own path
    if os.environ.get("VICINAL_DATA"):
        return f" (data folder '{os.environ['VICINAL_DATA']}', from --data or VICINAL_DATA)"
    default = default_data_root()
    if default is None:  # data_root()'s own error says what to set
        return ""
    return f" (data folder '{default}', the default ../shared/data beside the project; --data DIR sets another)"


def check_buildable(cfg: ExperimentConfig) -> None:
    """What can be checked of a run without its data and model, before its folder is made and in a plan: the model
    and dataset are registered, and the library takes the mix options (each showed only when the run started,
    after its empty folder was made, and not in `--dry-run`: a typo in a name, ``--set mix.kwargs.prob=0.5`` on a
    table's ERM rows)."""
    check_model_name(cfg.model.name)
    check_dataset_name(cfg.data.name)
    _check_mix_options(cfg)


def build_run_model(cfg: ExperimentConfig, data: Any) -> nn.Module:
    """The run's network, freshly initialised from ``train.seed``, sized for ``data`` (a DataBundle).

    ``in_channels`` / ``in_features`` are filled from the data's input shape when the model takes them and the
    config does not set them; the data's mean/std become the model's normalisation layer. Used by the trainer and
    by everything that reloads a run's weights (:func:`load_run_model`).
    """
    model_kwargs = dict(cfg.model.kwargs)
    if cfg.model.name in MODELS:
        params = inspect.signature(MODELS[cfg.model.name]).parameters
        shape = tuple(data.input_shape)
        if "in_channels" in params and "in_channels" not in model_kwargs and len(shape) >= 2:
            model_kwargs["in_channels"] = int(shape[0])
        if "in_features" in params and "in_features" not in model_kwargs:
            model_kwargs["in_features"] = int(math.prod(shape))
    return build_model(
        cfg.model.name,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        seed=cfg.train.seed,  # identical initial weights on every rank (DDP also broadcasts rank 0's)
        **model_kwargs,
    )


def load_run_model(
    run_dir: str | Path, device: str | torch.device = "cpu", *, data: Any = None, eval_batch_size: int | None = None
) -> tuple[nn.Module, Any, Any]:
    """The trained network of a run folder: ``(model in eval mode, config, data bundle)``.

    Reads ``config.yaml`` (``yaml.safe_load``) and the weights of ``checkpoint.pt`` (``torch.load(...,
    weights_only=True)``: a checkpoint never runs code). ``data`` reuses an already built bundle (the black-box
    source is evaluated on the target's data); otherwise the run's own data is built (its test split).

    Raises:
        FileNotFoundError: not a run folder or no checkpoint. CheckpointError: bad checkpoint or other weights.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise LabFileNotFoundError(f"'{run_dir}' is not a run folder (no config.yaml)")
    ckpt = run_dir / CHECKPOINT_NAME
    if not ckpt.is_file():
        raise LabFileNotFoundError(f"run folder '{run_dir}' holds no {CHECKPOINT_NAME} (train it first)")
    cfg = read_config(run_dir)
    if data is None:
        data = build_run_data(cfg, device, train=False, eval_batch_size=eval_batch_size)
    model = build_run_model(cfg, data)
    state = load_checkpoint(ckpt, map_location="cpu")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        # load_state_dict's first line only says "Error(s) in loading state_dict for X:"; the next names the key
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = " ".join(lines[:2])
        if len(first) > 300:  # another architecture: the second line lists every missing key
            first = first[:300] + " ..."
        raise CheckpointError(f"checkpoint file '{ckpt}' does not fit the model of '{run_dir}': {first}") from None
    return model.to(device).eval(), cfg, data


# -- optimiser and learning rate --------------------------------------------------------------------------------
def build_optimizer(optim: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD or Adam over every parameter; weight decay applies to all of them, as in the paper's official code.

    Raises:
        ConfigError: torch rejects the optimiser's arguments (``validate`` checks the known cases first).
    """
    try:
        if optim.name == "sgd":
            return torch.optim.SGD(
                model.parameters(),
                lr=optim.lr,
                momentum=optim.momentum,
                nesterov=optim.nesterov,
                weight_decay=optim.weight_decay,
            )
        return torch.optim.Adam(
            model.parameters(), lr=optim.lr, betas=(optim.betas[0], optim.betas[1]), weight_decay=optim.weight_decay
        )
    except ValueError as exc:  # a value torch refuses is the config's fault, not a bug: one line, not a traceback
        raise ConfigError(f"the optim section is rejected by torch.optim: {exc}") from None


def lr_at(step: int, *, schedule: ScheduleConfig, base_lr: float, epochs: int, steps_per_epoch: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based), from the fractional epoch ``step / steps_per_epoch``.

    Linear warm-up from ``warmup_start_lr`` to ``base_lr`` over ``warmup_epochs`` (per step, Goyal et al.), then
    "multistep" (x gamma for each milestone <= the integer epoch), "step", "cosine" or "constant".
    """
    t = step / steps_per_epoch  # fractional epoch
    epoch = step // steps_per_epoch  # integer epoch, exact
    warm = schedule.warmup_epochs
    if warm > 0 and t < warm:
        return schedule.warmup_start_lr + (base_lr - schedule.warmup_start_lr) * t / warm
    if schedule.name == "multistep":
        return base_lr * schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (epoch // schedule.step_size)
    if schedule.name == "cosine":
        progress = min(max((t - warm) / max(epochs - warm, 1e-12), 0.0), 1.0)
        return schedule.eta_min + (base_lr - schedule.eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule.name == "constant":
        return base_lr
    raise ConfigError(f"unknown schedule {schedule.name!r}")


class LRSchedule:
    """Sets every param group's lr from :func:`lr_at` each step; ``state_dict`` is just the step count."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, schedule: ScheduleConfig, base_lr: float, epochs: int, steps: int
    ) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.base_lr = base_lr
        self.epochs = epochs
        self.steps_per_epoch = steps
        self.step_count = 0
        self._apply()

    def lr(self, step: int | None = None) -> float:
        """The lr of optimiser step ``step`` (0-based); by default the next one."""
        return lr_at(
            self.step_count if step is None else step,
            schedule=self.schedule,
            base_lr=self.base_lr,
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
        )

    def _apply(self) -> None:
        lr = self.lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimiser step."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """The number of steps taken (the lr follows from it)."""
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved step count."""
        self.step_count = int(state["step_count"])
        self._apply()


# -- mixing -----------------------------------------------------------------------------------------------------
def mixer_options(mix: MixConfig) -> dict[str, Any]:
    """The ``vicinal.build`` options of the configured variant (each variant takes its own set).

    The config's typed fields (``alpha``, ``pairing``, ``lam_mode``, ``sigma``) are passed to the variants that take
    them (``config.VARIANT_OPTIONS``, the table `validate` checks against), ``smoothing`` to any variant when > 0;
    ``mix.kwargs`` is passed as it is, last. The library validates the result.
    """
    reads = VARIANT_OPTIONS.get(mix.variant, VariantOptions())
    opts: dict[str, Any] = {}
    if mix.smoothing > 0:
        opts["smoothing"] = mix.smoothing
    opts.update(dict.fromkeys(reads.alpha, mix.alpha))
    if reads.pairing:
        opts["pairing"] = mix.pairing
    if len(reads.lam_modes) > 1 or (reads.lam_modes and mix.lam_mode not in reads.lam_modes):
        # a variant with one lam mode (cutmix: "batch") has it implied; another one is passed for the library to refuse
        opts["lam_mode"] = mix.lam_mode
    if reads.sigma:
        opts["sigma"] = mix.sigma
    opts.update(mix.kwargs)
    return opts


@dataclass
class Mixing:
    """The run's vicinal risk: ``mixer`` (None for plain ERM), ``latent`` when latent representations are mixed
    (its ``mixer`` is then ``mixer``), ``knn`` when partners are nearest neighbours."""

    mixer: vicinal.BatchMix | None = None
    latent: vicinal.LatentMixup | None = None
    knn: vicinal.KNNPartners | None = None


def _rejected(cfg: ExperimentConfig, exc: Exception) -> ConfigError:
    """The library checks the mixing arguments the config gave it: its ValueError/TypeError is a config error."""
    return ConfigError(f"the mix section of config {cfg.name!r} is rejected by vicinal: {exc}")


def _builds_mixer(mix: MixConfig) -> bool:
    """Whether the run has a mixer: plain ERM trains without one; with mix.kwargs it is built so that the library
    checks them."""
    return mix.variant != "erm" or mix.smoothing > 0 or bool(mix.kwargs)


def _check_mix_options(cfg: ExperimentConfig) -> None:
    """The library's own check of the mix options, without the data's number of classes (which it never refuses)
    and without the model (whether a latent layer exists is the model's to say)."""
    m = cfg.mix
    if m.layer is None and not _builds_mixer(m):
        return
    opts = mixer_options(m)
    try:
        if m.layer is not None:
            opts.pop("alpha", None)
            mixer: vicinal.BatchMix = vicinal.LatentMixup.check_options(m.layer, m.alpha, **opts)
        else:
            mixer = vicinal.build(m.variant, **opts)
        _check_classifier_targets(mixer)
    except (ValueError, TypeError) as exc:
        raise _rejected(cfg, exc) from exc


def _check_classifier_targets(mixer: vicinal.BatchMix | None) -> None:
    if mixer is not None and mixer.regression:
        # the library takes it; the trainer's data are class labels and its loss cross-entropy, so the first
        # step failed with a traceback, after the run folder was written
        raise ValueError("regression=True mixes float targets, and this trainer trains classifiers on class labels")
    if mixer is not None and mixer.multi_label:  # the same: its data hold one class per sample
        raise ValueError(
            "multi_label=True mixes multi-hot rows, and this trainer trains classifiers on one class label per sample"
        )


def build_mixing(cfg: ExperimentConfig, model: nn.Module, data: Any, generator: torch.Generator) -> Mixing:
    """The mixer of ``cfg.mix`` (``vicinal.build``, or ``vicinal.LatentMixup`` on ``model`` when ``mix.layer`` is
    set) and its k-NN partners; all draw from ``generator``. Rejected options raise ConfigError."""
    m = cfg.mix
    out = Mixing()
    opts = {"num_classes": data.num_classes, "generator": generator, **mixer_options(m)}
    try:
        if m.layer is not None:
            if cfg.train.compile:
                raise RunError("train.compile cannot be combined with latent mixing (mix.layer): hooks need eager mode")
            opts.pop("alpha")
            out.latent = vicinal.LatentMixup(model, m.layer, alpha=m.alpha, **opts)
            out.mixer = out.latent.mixer
        elif _builds_mixer(m):
            out.mixer = vicinal.build(m.variant, **opts)
        _check_classifier_targets(out.mixer)
        if m.pairing == "knn":
            if data.train_dataset_x is None:
                raise RunError(f"mix.pairing 'knn' needs an in-memory dataset; {cfg.data.name!r} is not one")
            feats = data.train_dataset_x.float()  # (N, ...) raw inputs; the scale does not change neighbours
            labels = data.train_dataset_y if m.knn_same_class else None
            out.knn = vicinal.KNNPartners.fit(feats, labels, k=m.knn_k, same_class=m.knn_same_class)
    except LabError:
        raise
    except (ValueError, TypeError) as exc:
        raise _rejected(cfg, exc) from exc
    return out


@dataclass
class RunParts:
    """What `build_run` builds for one process of a run (see there)."""

    data: Any
    steps_per_epoch: int
    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRSchedule
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    mix_seed: int
    mix_generator: torch.Generator
    mixing: Mixing


def build_run(cfg: ExperimentConfig, device: torch.device, *, rank: int = 0, world_size: int = 1) -> RunParts:
    """Seed this process's global RNGs and build the run's data, model, optimiser, schedule, AMP and mixing.

    ``model`` is the plain module (checkpoints, evaluation, attacks), ``train_model`` what the training step calls
    (DistributedDataParallel when ``world_size`` > 1, then ``torch.compile`` when asked). The order of the steps is
    part of the run's random stream (the global RNGs are seeded before anything draws from them).
    """
    t = cfg.train
    if t.amp == "fp16" and device.type != "cuda":
        raise RunError(f"train.amp 'fp16' needs a CUDA device, but the run is on {device} (use bf16 or none)")
    # Global RNGs only feed stochastic layers (dropout) and third-party code; seeded per rank.
    global_seed = derive_seed(t.seed, STREAM_GLOBAL, rank)
    torch.manual_seed(global_seed)
    np.random.seed(global_seed % 2**32)  # noqa: NPY002 - third-party code may use it
    random.seed(global_seed)

    data = build_run_data(cfg, device, rank=rank, world_size=world_size)
    steps_per_epoch = len(data.train)
    if steps_per_epoch < 1:
        raise RunError(f"the training loader of {cfg.data.name!r} has no batches (batch size too large?)")

    model = build_run_model(cfg, data).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if t.compile:  # after DDP, as PyTorch recommends (DDP's graph-break optimiser sees the buckets)
        train_model = torch.compile(train_model)  # type: ignore[assignment]

    optimizer = build_optimizer(cfg.optim, model)
    scheduler = LRSchedule(optimizer, cfg.schedule, cfg.optim.lr, t.epochs, steps_per_epoch)
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")

    # Mixing: one generator per rank; the mixer, LatentMixup and KNN sampling all draw from it.
    mix_seed = derive_seed(t.seed, STREAM_MIX, rank)
    mix_generator = torch.Generator().manual_seed(mix_seed)
    mixing = build_mixing(cfg, train_model, data, mix_generator)
    return RunParts(
        data,
        steps_per_epoch,
        model,
        train_model,
        optimizer,
        scheduler,
        amp_dtype,
        scaler,
        mix_seed,
        mix_generator,
        mixing,
    )
