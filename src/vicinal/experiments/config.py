"""Experiments as data: typed dataclasses, YAML files and strict ``--set a.b=value`` overrides.

One :class:`ExperimentConfig` describes one run completely (data, model, optimiser, schedule, mixing, training
loop). Files are read with a ``yaml.SafeLoader`` (a config never runs code; a key written twice is an error) by
:mod:`vicinal.experiments.config_yaml` (``base:`` inheritance, sweeps declared as data, shipped names; its public
names are re-exported here). Every key is checked against the dataclass fields: an unknown key is an error that
lists the valid keys, a value of the wrong type is an error that names the key, the expected type and what it
received; ``validate`` also refuses values and combinations that a run cannot use (an option the chosen variant
would ignore, say). Errors are :class:`ConfigError` (a ``ValueError`` and a ``LabError``).

YAML 1.1 (PyYAML) reads ``1e-4`` as the *string* "1e-4" (it wants ``1.0e-4``). A float field therefore also accepts
a string that Python's ``float()`` reads as a finite number; that is the only coercion besides int -> float.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, Union

import yaml

import vicinal

from .config_yaml import (
    PLAIN_NAME,
    ConfigError,
    check_not_protocol,
    config_exists,
    describe,
    is_plain_name,
    merge_sections,
    read_config_data,
    resolve_config,
    shipped_configs,
    sweep_rows,
)
from .errors import TaskArgumentError, TaskError

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "MixConfig",
    "TrainConfig",
    "ExperimentConfig",
    "LAUNCH_CHECK_KEYS",
    "VARIANT_OPTIONS",
    "VariantOptions",
    "config_exists",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "resolve_config",
    "shipped_configs",
    "sweep_rows",
    "apply_overrides",
    "config_changes",
    "diff_configs",
    "flat_config",
    "unread_keys",
    "unread_by_both",
]


@dataclass
class DataConfig:
    """Which data and how it is batched (see ``vicinal.experiments.data.build_data``).

    Attributes:
        name: dataset name in the data registry ("cifar10", "digits", ...).
        root: data directory; ``None`` means ``vicinal.experiments.paths.data_root()`` (the data layer decides).
        batch_size: training minibatch per process (per rank under DDP).
        global_batch_size: the minibatch summed over all processes that the config was written for (the
            paper's: its learning rate and schedule assume it); the trainer refuses to start when ``batch_size``
            x the number of processes differs, and says what to set. ``None`` = no check. It changes nothing a
            run computes, so a resume or a finished run may differ in it (`LAUNCH_CHECK_KEYS`).
        eval_batch_size: minibatch for evaluation.
        subset_per_class: keep only this many training examples per class (cpu-scale runs); ``None`` = all. A
            class with fewer keeps all of its examples, and a warning names it and its count (the run goes on).
        augment: training augmentation (random crop + flip for CIFAR).
        corrupt_fraction: replace this fraction of the training labels by uniformly random labels (Section 3.4,
            Table 2; the exact rule is in ``vicinal.experiments.data.corrupt``); 0 = clean labels.
        corrupt_seed: seed of the corruption (recorded; independent of ``train.seed``).
        kwargs: extra keyword arguments for the dataset builder.
    """

    name: str = "digits"
    root: str | None = None
    batch_size: int = 128
    global_batch_size: int | None = None
    eval_batch_size: int = 512
    subset_per_class: int | None = None
    augment: bool = True
    corrupt_fraction: float = 0.0
    corrupt_seed: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Which network: ``build_model(name, num_classes, in_channels, **kwargs)``."""

    name: str = "digits_cnn"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser. Weight decay applies to every parameter, as in the paper's official code.

    Attributes:
        name: "sgd" or "adam".
        lr: base learning rate (the peak after any warm-up).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        weight_decay: L2 penalty (coupled, torch's ``weight_decay``).
        betas: Adam betas.
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, evaluated every optimiser step from the fractional epoch.

    Attributes:
        name: "multistep" (x gamma at each milestone), "step" (x gamma every ``step_size`` epochs), "cosine"
            (to ``eta_min`` at the last epoch) or "constant".
        milestones: 0-based epochs at which "multistep" multiplies the lr by ``gamma`` (the paper's "divide by 10
            at epochs 100 and 150" is ``[100, 150]`` with ``gamma: 0.1``).
        gamma: multiplicative decay.
        step_size: period in epochs for "step".
        warmup_epochs: linear warm-up from ``warmup_start_lr`` to ``optim.lr`` over this many epochs (per step).
        warmup_start_lr: learning rate at step 0 of the warm-up.
        eta_min: final learning rate of "cosine".
    """

    name: str = "multistep"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    step_size: int = 30
    warmup_epochs: int = 0
    warmup_start_lr: float = 0.0
    eta_min: float = 0.0


@dataclass
class MixConfig:
    """Vicinal risk: which ``vicinal.build`` variant and when it is active.

    Attributes:
        variant: a name in ``vicinal.VARIANTS`` ("erm", "mixup", ...).
        alpha: Beta(alpha, alpha) parameter.
        pairing: "random" (AC+RP), "same_class" (SC+RP), "knn" (AC+KNN, or SC+KNN with ``knn_same_class``),
            "roll", "flip"; only the variants that draw partners read it ("knn": not with ``layer``).
        lam_mode: "batch" (one lam per minibatch, the paper), "sample" (mixup, mix_inputs_*, dirichlet, cutmix, mixup_or_cutmix) or "pair"
            (one lam, box and switch per pair of mutual partners: all of those but dirichlet, with pairing "flip" or
            "matching").
        smoothing: label-smoothing epsilon for the smoothing variants.
        sigma: standard deviation of the "gaussian_noise" variant.
        layer: mix latent representations entering this module (``vicinal.LatentMixup``); ``None`` = inputs.
        warmup_epochs: the first N epochs train without mixing (speech: 5); < ``train.epochs``.
        off_epoch: stop mixing from this 0-based epoch on (> ``warmup_epochs``); ``None`` = never.
        two_label: use the official two-label loss lam*CE(y_i) + (1-lam)*CE(y_j) instead of soft targets.
        knn_k: neighbours per training sample for "knn" pairing (paper: 200); another value needs ``pairing: knn``.
        knn_same_class: "knn" pairing restricted to the same class (SC+KNN); needs ``pairing: knn``.
        kwargs: extra keyword arguments for ``vicinal.build``.
    """

    variant: str = "erm"
    alpha: float = 1.0
    pairing: str = "random"
    lam_mode: str = "batch"
    smoothing: float = 0.0
    sigma: float = 0.0
    layer: str | None = None
    warmup_epochs: int = 0
    off_epoch: int | None = None
    two_label: bool = False
    knn_k: int = 200
    knn_same_class: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """The loop itself.

    Attributes:
        epochs: number of epochs.
        seed: the run's seed (model init, data order and augmentation, mixing).
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        amp: "none", "bf16" or "fp16" (fp16 uses a GradScaler; CUDA only).
        channels_last: NHWC memory format for 4-D inputs (GPU speed-up).
        compile: wrap the model in ``torch.compile``.
        checkpoint_every: save ``checkpoint.pt`` every N epochs (and always after the last one).
        eval_every: evaluate on the test split every N epochs (and always after the last one).
        eval_last: also evaluate after each of the last N epochs, whatever ``eval_every`` (the median of the last
            10 epochs, Table 5's metric, needs them while earlier evaluations can be sparse); 0 = off.
        log_every: a progress line every N steps when stderr is not a terminal.
        max_steps: stop after this many optimiser steps in total (smoke tests); ``None`` = no limit.
        tensorboard: also write TensorBoard scalars to ``run_dir/tensorboard`` (skipped if not installed).
        threads: ``torch.set_num_threads`` for the run (restored afterwards); ``None`` keeps torch's default.
            Small CPU models run fastest on one thread, and a fixed count makes CPU results independent of the
            machine's core count (the order of floating-point reductions depends on it).
        train_eval_every: the training error on un-augmented training images (against the true and the noisy
            labels when ``data.corrupt_fraction > 0``) is measured after the last epoch of every run whose data
            has integer training labels (classification); N also measures it every N epochs. ``None``: after
            the last epoch only; ``0``: never (a pass over the whole training set: on ImageNet 1.28 M images, more
            than a short throughput probe trains). The measurement changes no other metric (no randomness, no
            weight update).
        reliability_diagram: write ``reliability.png`` (and ``reliability.json``) into the run folder after
            training (classification runs: 15 confidence bins of the last evaluation).
    """

    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 1
    eval_every: int = 1
    eval_last: int = 0
    log_every: int = 50
    max_steps: int | None = None
    tensorboard: bool = False
    threads: int | None = None
    train_eval_every: int | None = None
    reliability_diagram: bool = True


@dataclass
class ExperimentConfig:
    """One run.

    Attributes:
        name: the run's name (the report groups runs by name; seeds are not part of it).
        notes: free text (why this config exists, its source).
        table: the paper table this run belongs to ("cifar"), for the report's paper column.
        row: the row key within ``table`` (e.g. "cifar10/preact_resnet18/mixup").
    """

    name: str = "experiment"
    notes: str = ""
    table: str = ""
    row: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Keys that check how a run is launched and change nothing it computes (``data.global_batch_size`` only checks
# data.batch_size x processes, both recorded): a resume, or a run folder written before such a key existed, may
# differ in them.
LAUNCH_CHECK_KEYS = ("data.global_batch_size",)
# Keys that say where the data is read from and how it is loaded, not what it is (provenance records that, and a
# resume compares it): a finished run counts as done and a stopped one resumes whatever they are now.
DATA_PLACE_KEYS = (
    "data.root",
    "data.eval_batch_size",
    "data.kwargs.progress",
    "data.kwargs.cache",
    "data.kwargs.num_workers",  # loader processes: every crop is seeded per sample, so the values do not change
)

# Allowed values of the string fields that have a closed set of choices.
_CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adam"),
    "schedule.name": ("multistep", "cosine", "constant", "step"),
    "mix.lam_mode": ("batch", "sample", "pair"),
    "mix.pairing": vicinal.PAIRINGS,  # a typo showed only when the mixer was built, after the run folder was made
    "train.amp": ("none", "bf16", "fp16"),
}
# Variants whose targets are plain mixed one-hots, so the two-label loss is exact for them.
_TWO_LABEL_VARIANTS = ("erm", "mixup", "cutmix", "mixup_or_cutmix", "dirichlet", "gaussian_noise")
_NEEDS_SMOOTHING = ("label_smoothing", "mix_inputs_label_smoothing")


@dataclass(frozen=True)
class VariantOptions:
    """What one ``vicinal.build`` variant reads of the mix section, besides ``smoothing`` and ``kwargs``.

    Attributes:
        alpha: the ``vicinal.build`` arguments that take ``mix.alpha`` (``mixup_or_cutmix`` has two).
        pairing: it takes ``mix.pairing``.
        lam_modes: the ``mix.lam_mode`` values it takes; ``()`` = no ``lam_mode`` argument.
        sigma: it takes ``mix.sigma``.
    """

    alpha: tuple[str, ...] = ()
    pairing: bool = False
    lam_modes: tuple[str, ...] = ()
    sigma: bool = False


_MIXUP_LIKE = VariantOptions(alpha=("alpha",), pairing=True, lam_modes=_CHOICES["mix.lam_mode"])
# The one table of which variant reads which mix option: `validate` refuses an option the variant would ignore (the
# run would silently train something other than what its config says), ``build.mixer_options`` passes each variant
# the options it reads. Its order is the order the error messages list the variants in.
VARIANT_OPTIONS: dict[str, VariantOptions] = {
    "mixup": _MIXUP_LIKE,
    "cutmix": VariantOptions(alpha=("alpha",), pairing=True, lam_modes=_CHOICES["mix.lam_mode"]),
    "mix_inputs_only": _MIXUP_LIKE,
    "mix_inputs_label_smoothing": _MIXUP_LIKE,
    "mixup_or_cutmix": VariantOptions(
        alpha=("mixup_alpha", "cutmix_alpha"), pairing=True, lam_modes=_CHOICES["mix.lam_mode"]
    ),
    "dirichlet": VariantOptions(alpha=("alpha",), lam_modes=("batch", "sample")),  # no pairs to share a lam
    "gaussian_noise": VariantOptions(sigma=True),
    "erm": VariantOptions(),
    "label_smoothing": VariantOptions(),
}
_MIX_FIELDS = frozenset(f.name for f in dataclasses.fields(MixConfig)) - {"kwargs"}
_MIXER_KEYS_OF_THE_TRAINER = frozenset({"num_classes", "generator", "seed"})
# what the trainer passes to build_data / build_model itself (build.py): the same key in data.kwargs / model.kwargs
# would be a second value for one argument (a TypeError at the start of every run); where a config key sets it
_DATA_KEYS_OF_THE_TRAINER = {
    "name": "data.name",
    "root": "data.root",
    "batch_size": "data.batch_size",
    "eval_batch_size": "data.eval_batch_size",
    "augment": "data.augment",
    "subset_per_class": "data.subset_per_class",
    "corrupt_fraction": "data.corrupt_fraction",
    "corrupt_seed": "data.corrupt_seed",
    "seed": "train.seed",
    "device": "train.device",
    "rank": None,
    "world_size": None,
}
_MODEL_KEYS_OF_THE_TRAINER = {
    "name": "model.name",
    "seed": "train.seed",
    "num_classes": None,
    "mean": None,
    "std": None,
}
_PAIRING_VARIANTS = tuple(v for v, o in VARIANT_OPTIONS.items() if o.pairing)
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# threads of one training process (train.threads): more than any CPU node has, fewer than exhaust the address space
MAX_THREADS = 1024
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def _type_name(tp: Any) -> str:
    """Readable name of a type annotation: ``int | None``, ``list[float]``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    if tp is type(None):
        return "None"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (int -> float widened). Raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {describe(value)}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {describe(value)}")
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {describe(value)}")
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"config key '{key}' expects string keys, got key {describe(k)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        # bool is an int subclass in Python; `epochs: true` is a mistake, not 1.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config key '{key}' expects a finite float, got {describe(value)}")
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            number = float(value)  # YAML 1.1 reads "1e-4" as a string; see the module docstring.
            if not math.isfinite(number):  # "1e999" overflows to inf, as .inf would be
                raise ConfigError(f"config key '{key}' expects a finite float, got {describe(value)}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - every field type is handled above
        raise TypeError(f"unsupported config field type {tp!r} at '{key}'")
    raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {describe(value)}")


def _fields(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a config dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(full: str, where: str, fields: Iterable[str]) -> str:
    """The error for config key ``full``, which its section (``where``) lacks: the closest valid key first (a typo
    is the usual cause), then all of them."""
    key = full.rpartition(".")[2]
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f" (did you mean '{full[: len(full) - len(key)]}{close[0]}'?)" if close else ""
    return f"unknown config key '{full}'{hint}; valid keys in {where}: {', '.join(fields)}"


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursively, strictly."""
    where = f"'{prefix}'" if prefix else "the top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {where} must be a mapping, got {describe(data)}")
    fields = _fields(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(_unknown_key(full, where, fields))
        tp = fields[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # a field hint is a class, never an instance
            kwargs[key] = _build(tp, value if value is not None else {}, full)
        else:
            kwargs[key] = _coerce(full, value, tp)
    return cls(**kwargs)


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check values beyond types (choices, ranges). Returns ``cfg``; raises ConfigError."""
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got {value!r}")
    if not _DEVICE_RE.match(cfg.train.device):
        raise ConfigError(f"config key 'train.device' must be auto, cpu, cuda or cuda:N, got {cfg.train.device!r}")
    positive = {
        "data.batch_size": cfg.data.batch_size,
        "data.eval_batch_size": cfg.data.eval_batch_size,
        "train.epochs": cfg.train.epochs,
        "train.checkpoint_every": cfg.train.checkpoint_every,
        "train.eval_every": cfg.train.eval_every,
        "train.log_every": cfg.train.log_every,
        "schedule.step_size": cfg.schedule.step_size,
        "mix.knn_k": cfg.mix.knn_k,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
    if cfg.train.eval_last < 0:
        raise ConfigError(f"config key 'train.eval_last' must be >= 0, got {cfg.train.eval_last}")
    optional_positive = {
        "data.subset_per_class": cfg.data.subset_per_class,
        "data.global_batch_size": cfg.data.global_batch_size,
        "train.max_steps": cfg.train.max_steps,
        "train.threads": cfg.train.threads,
    }
    for key, value in optional_positive.items():
        if value is not None and value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1 or null, got {value}")
    if cfg.train.train_eval_every is not None and cfg.train.train_eval_every < 0:
        raise ConfigError(
            f"config key 'train.train_eval_every' must be >= 0 (0: never) or null, got {cfg.train.train_eval_every}"
        )
    if cfg.train.threads is not None and cfg.train.threads > MAX_THREADS:
        # torch starts them all: 100,000 threads exhaust the address space with a traceback from some library
        raise ConfigError(f"config key 'train.threads' must be <= {MAX_THREADS} or null, got {cfg.train.threads}")
    non_negative = {
        "optim.lr": cfg.optim.lr,
        "optim.momentum": cfg.optim.momentum,
        "optim.weight_decay": cfg.optim.weight_decay,
        "schedule.warmup_epochs": cfg.schedule.warmup_epochs,
        "schedule.warmup_start_lr": cfg.schedule.warmup_start_lr,
        "mix.alpha": cfg.mix.alpha,
        "mix.warmup_epochs": cfg.mix.warmup_epochs,
        "mix.smoothing": cfg.mix.smoothing,
        "mix.sigma": cfg.mix.sigma,
        "data.corrupt_seed": cfg.data.corrupt_seed,
        "train.seed": cfg.train.seed,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"config key '{key}' must be >= 0, got {value}")
    for key in ("train.seed", "data.corrupt_seed"):  # torch's manual_seed overflows past 64 bits
        if non_negative[key] >= 2**63:
            raise ConfigError(f"config key '{key}' must be < 2**63, got {non_negative[key]}")
    if cfg.schedule.gamma <= 0:  # a negative lr after the first decay, or none at all
        raise ConfigError(f"config key 'schedule.gamma' must be > 0, got {cfg.schedule.gamma}")
    if cfg.schedule.eta_min < 0:
        raise ConfigError(f"config key 'schedule.eta_min' must be >= 0, got {cfg.schedule.eta_min}")
    if cfg.mix.off_epoch is not None and cfg.mix.off_epoch <= cfg.mix.warmup_epochs:
        # mixing is on for epochs warmup_epochs <= e < off_epoch: none at all otherwise (an "ERM" run in disguise)
        raise ConfigError(
            f"config key 'mix.off_epoch' must be null or > mix.warmup_epochs ({cfg.mix.warmup_epochs}), "
            f"got {cfg.mix.off_epoch}"
        )
    if cfg.mix.warmup_epochs >= cfg.train.epochs:  # epochs >= 1: a warmup of 0 never trips this
        # the unmixed warm-up covers every epoch: mixing never starts (an "ERM" run in disguise)
        raise ConfigError(
            f"config key 'mix.warmup_epochs' must be < train.epochs ({cfg.train.epochs}): mixing would never start, "
            f"got {cfg.mix.warmup_epochs}"
        )
    if not is_plain_name(cfg.name):  # the run folder is OUT/<name>/seed<seed>: the name must stay inside OUT
        raise ConfigError(f"config key 'name' must be a plain folder name ({PLAIN_NAME}), got {cfg.name!r}")
    if "|" in cfg.name:  # every report is a markdown table with the name in its first cell: '|' shifted the columns
        raise ConfigError(
            f"config key 'name' must not contain '|' (it splits the report's table cells), got {cfg.name!r}"
        )
    if not 0.0 <= cfg.data.corrupt_fraction <= 1.0:
        raise ConfigError(f"config key 'data.corrupt_fraction' must be in [0, 1], got {cfg.data.corrupt_fraction}")
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"config key 'optim.betas' must hold 2 floats, got {cfg.optim.betas}")
    if not all(0.0 <= b < 1.0 for b in cfg.optim.betas):
        raise ConfigError(f"config key 'optim.betas' must lie in [0, 1), got {cfg.optim.betas}")
    if cfg.optim.name != "sgd" and cfg.optim.nesterov:  # Adam takes no nesterov: it was accepted and ignored
        raise ConfigError(f"config key 'optim.nesterov' is used by optim.name 'sgd' only, got {cfg.optim.name!r}")
    if cfg.optim.name == "sgd" and cfg.optim.nesterov and cfg.optim.momentum <= 0:
        raise ConfigError(f"config key 'optim.nesterov' needs optim.momentum > 0, got {cfg.optim.momentum}")
    if cfg.schedule.milestones != sorted(cfg.schedule.milestones):
        raise ConfigError(f"config key 'schedule.milestones' must be increasing, got {cfg.schedule.milestones}")
    if cfg.mix.two_label and (cfg.mix.variant not in _TWO_LABEL_VARIANTS or cfg.mix.smoothing > 0):
        # The two-label loss lam*CE(y_i) + (1-lam)*CE(y_j) uses hard labels: it cannot express smoothed or
        # "closer" targets, so those variants need the soft-target path.
        raise ConfigError(
            f"config key 'mix.two_label' needs mix.variant in {', '.join(_TWO_LABEL_VARIANTS)} and "
            f"mix.smoothing 0, got variant {cfg.mix.variant!r} with smoothing {cfg.mix.smoothing}"
        )
    if cfg.mix.layer is not None and cfg.mix.variant != "mixup":
        raise ConfigError(f"config key 'mix.layer' (latent mixing) needs mix.variant 'mixup', got {cfg.mix.variant!r}")
    if cfg.mix.variant in _NEEDS_SMOOTHING and cfg.mix.smoothing <= 0:
        raise ConfigError(
            f"mix.variant {cfg.mix.variant!r} needs config key 'mix.smoothing' > 0, got {cfg.mix.smoothing}"
        )
    if cfg.mix.variant == "gaussian_noise" and cfg.mix.sigma <= 0:
        raise ConfigError(f"mix.variant 'gaussian_noise' needs config key 'mix.sigma' > 0, got {cfg.mix.sigma}")
    variants = getattr(vicinal, "VARIANTS", None)  # the library owns the list of variants
    if variants and cfg.mix.variant not in variants:
        raise ConfigError(f"config key 'mix.variant' must be one of {', '.join(variants)}, got {cfg.mix.variant!r}")
    _check_mix_options(cfg.mix)
    _check_schedule_options(cfg.schedule)
    for section, kwargs, reserved in (
        ("data", cfg.data.kwargs, _DATA_KEYS_OF_THE_TRAINER),
        ("model", cfg.model.kwargs, _MODEL_KEYS_OF_THE_TRAINER),
    ):
        taken = sorted(k for k in kwargs if k in reserved)
        if taken:
            owner = reserved[taken[0]]
            how = f"set it as {owner}" if owner else "the trainer sets it (from the data and the launch)"
            raise ConfigError(f"config key '{section}.kwargs.{taken[0]}' is not an extra option: {how}")
    return cfg


# the schedules that read each ScheduleConfig option; "warmup_*" apply to every schedule
_SCHEDULE_OPTION_USERS = {
    "milestones": ("multistep",),
    "gamma": ("multistep", "step"),
    "step_size": ("step",),
    "eta_min": ("cosine",),
}


def unread_keys(flat: Mapping[str, Any]) -> set[str]:
    """The dotted keys of a flat config (:func:`flat_config`) that its ``mix.variant`` and ``schedule.name`` never
    read: ``mix.alpha`` of a variant that draws no weight, ``mix.sigma`` off gaussian_noise, the schedule options
    off their schedule (``gamma`` of a multistep schedule without milestones too). Whatever value they hold, the
    run computes the same: the report pools such runs and a rerun finds them done."""
    out = set()
    reads = VARIANT_OPTIONS.get(str(flat.get("mix.variant")))
    if reads is not None:
        out |= {k for k, used in (("mix.alpha", reads.alpha), ("mix.sigma", reads.sigma)) if not used}
    name = flat.get("schedule.name")
    if name in _CHOICES["schedule.name"]:
        out |= {f"schedule.{k}" for k, users in _SCHEDULE_OPTION_USERS.items() if name not in users}
        if name == "multistep" and not flat.get("schedule.milestones"):
            out.add("schedule.gamma")
    return out


def unread_by_both(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """The dotted keys that neither flat config ``a`` nor ``b`` reads (:func:`unread_keys`): two runs that differ
    only there computed the same (seeds of an ERM row recorded with two alphas). A key one of them reads is
    compared as usual, and a variant or schedule that differs is a difference of its own."""
    return unread_keys(a) & unread_keys(b)


# options validate() refuses where unread (mix.alpha is not: a table's base gives it to its ERM rows too)
_REFUSED_UNREAD = ("mix.sigma", *(f"schedule.{k}" for k in _SCHEDULE_OPTION_USERS))


def _check_schedule_options(schedule: ScheduleConfig) -> None:
    """Refuse schedule options that the configured schedule would silently ignore.

    A set option is told apart by a value other than the default (as mix.sigma): a cosine run "with milestones
    [100, 150]" never decayed at them, and its config.yaml recorded them as if it had. schedule.warmup_start_lr is
    left alone with warmup_epochs 0: a row that turns off its base's warm-up need not reset the start lr too.
    """
    defaults = ScheduleConfig()
    unread = unread_keys({"schedule.name": schedule.name, "schedule.milestones": schedule.milestones})
    for key, users in _SCHEDULE_OPTION_USERS.items():
        value = getattr(schedule, key)
        if value != getattr(defaults, key) and f"schedule.{key}" in unread:
            if schedule.name in users:  # gamma of a multistep schedule with no milestone to apply it at
                raise ConfigError(
                    f"config key 'schedule.{key}' ({value}) is not used by schedule.name 'multistep' without "
                    "schedule.milestones"
                )
            raise ConfigError(
                f"config key 'schedule.{key}' ({value}) is not used by schedule.name {schedule.name!r} "
                f"(only by {', '.join(users)})"
            )
    if any(m < 0 for m in schedule.milestones):  # epoch >= -1 holds from the first step: a decay before training
        raise ConfigError(f"config key 'schedule.milestones' must be epochs >= 0, got {schedule.milestones}")


def _as_trained(cfg: ExperimentConfig) -> ExperimentConfig:
    """A saved run's config (its ``config.yaml``, its checkpoint's copy) with the unread options that
    :func:`validate` refuses set to their defaults: the run trained without them. A run started before the lab
    refused them (a cosine run with ``gamma: 0.5``, mixup with ``sigma: 0.3``) resumes, is attacked and rerun."""
    for key in unread_keys(flat_config(config_to_dict(cfg))) & set(_REFUSED_UNREAD):
        section, name = key.split(".")
        part = getattr(cfg, section)
        setattr(part, name, getattr(type(part)(), name))
    return cfg


def _check_mix_options(mix: MixConfig) -> None:
    """Refuse mix options that the configured variant would silently ignore (or crash on at the first step)."""
    if mix.pairing != "random" and mix.variant not in _PAIRING_VARIANTS:
        raise ConfigError(
            f"config key 'mix.pairing' is not used by mix.variant {mix.variant!r} (only by "
            f"{', '.join(_PAIRING_VARIANTS)}), got {mix.pairing!r}"
        )
    if mix.lam_mode != "batch" and mix.lam_mode not in VARIANT_OPTIONS.get(mix.variant, VariantOptions()).lam_modes:
        users = [v for v, o in VARIANT_OPTIONS.items() if mix.lam_mode in o.lam_modes]
        raise ConfigError(
            f"config key 'mix.lam_mode' {mix.lam_mode!r} is not used by mix.variant {mix.variant!r} (only by "
            f"{', '.join(users)})"
        )
    reads = VARIANT_OPTIONS.get(mix.variant, VariantOptions())
    # told apart by a value other than the default, as knn_k: a mixup run "with sigma 0.3" added no noise, and its
    # config.yaml recorded the ignored value. mix.alpha is left to the variants that draw no weight (ERM, label
    # smoothing, noise): a table's base sets the method's alpha under its ERM rows too
    if mix.sigma != MixConfig.sigma and not reads.sigma:
        sigma_users = ", ".join(v for v, o in VARIANT_OPTIONS.items() if o.sigma)
        raise ConfigError(
            f"config key 'mix.sigma' ({mix.sigma}) is not used by mix.variant {mix.variant!r} (only by {sigma_users})"
        )
    if mix.knn_same_class and mix.pairing != "knn":
        raise ConfigError(f"config key 'mix.knn_same_class' needs mix.pairing 'knn', got {mix.pairing!r}")
    if mix.knn_k != MixConfig.knn_k and mix.pairing != "knn":  # a set knn_k is told apart by its differing value
        raise ConfigError(f"config key 'mix.knn_k' ({mix.knn_k}) needs mix.pairing 'knn', got {mix.pairing!r}")
    if mix.pairing == "knn" and mix.layer is not None:
        # the k-NN partners are input images; a latent mixer needs partners in the space of mix.layer
        raise ConfigError(f"mix.pairing 'knn' cannot be combined with mix.layer (latent mixing), got {mix.layer!r}")
    # mix.kwargs are for the vicinal.build options no typed setting covers (prob, allow_self, ...): a key of a typed
    # setting would override it silently while config.yaml records the typed value, and the trainer's own keys
    # (num_classes from the data, the run's generator) would crash at the first step
    # what mix.alpha sets is the variant's first alpha (mixup_or_cutmix: mixup_alpha); a second one (cutmix_alpha)
    # may be given apart
    fed = reads.alpha[:1]
    taken = sorted(k for k in mix.kwargs if k in _MIX_FIELDS or k in _MIXER_KEYS_OF_THE_TRAINER or k in fed)
    if taken:
        key = taken[0]
        if key in _MIX_FIELDS or key in fed:
            owner = f"set it as mix.{'alpha' if key in fed else key}"
        else:
            owner = "the trainer sets it (from the data and train.seed)"
        raise ConfigError(f"config key 'mix.kwargs.{key}' is not an extra option: {owner}")


def config_from_dict(data: Mapping[str, Any] | None, *, saved: bool = False) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a (YAML-like) mapping; missing keys keep defaults.

    ``saved``: the mapping is a run's own (a checkpoint's copy): options it never read are reset first
    (:func:`_as_trained`)."""
    cfg = _build(ExperimentConfig, data if data is not None else {}, "")
    return validate(_as_trained(cfg) if saved else cfg)


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict of ``cfg`` (lists, dicts, scalars only: YAML/JSON safe)."""
    return dataclasses.asdict(cfg)


def load_config(
    path: str | Path, overrides: Iterable[str] = (), *, saved: bool = False, validate_values: bool = True
) -> ExperimentConfig:
    """Read a YAML config with ``yaml.safe_load``, apply ``--set`` overrides, validate.

    A file may start from another one: a top-level ``base: OTHER.yaml`` (relative to the file) loads that
    file first and merges this file's keys over it (sections merge key by key; lists and scalars replace). A sweep
    row (``X/Y/NAME.yaml`` of the sweep file ``X/Y.yaml``, see :mod:`vicinal.experiments.config_yaml`) is the sweep
    file's common keys with the row's overrides merged over them, then the same ``base:`` rule.

    Args:
        path: the YAML file, or the name of a shipped config (``cifar/cpu/cifar10-preact_resnet18-mixup``, with
            or without ``.yaml``; see :func:`resolve_config`), used when no file ``path`` exists.
        overrides: strings ``"a.b=value"`` (value parsed with ``yaml.safe_load``).
        saved: ``path`` is a run folder's ``config.yaml``: the options its run never read are reset before the
            overrides (:func:`_as_trained`; read run folders with :func:`vicinal.experiments.runs.read_config`).
        validate_values: False skips :func:`validate` (keys and types are still checked): to read one key of a
            config that is not whole yet.

    Raises:
        ConfigError: missing/unreadable file, unknown name, invalid YAML, unknown key, wrong type, bad value.
    """
    overrides = str_list(overrides, "overrides", "'key=value' strings")
    path = resolve_config(path)
    check_not_protocol(path)
    data = read_config_data(path, ())
    try:
        cfg = _build(ExperimentConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in '{path}')") from None
    if saved:
        cfg = _as_trained(cfg)
    cfg = apply_overrides(cfg, overrides, _validate=False)
    if not validate_values:
        return cfg
    try:
        return validate(cfg)
    except ConfigError as exc:
        where = f"'{path}' with --set {' '.join(overrides)}" if overrides else f"'{path}'"
        raise ConfigError(f"{exc} (in {where})") from None


def str_list(value: Iterable[str], what: str, kind: str = "strings", *, lone: str = "[{!r}]") -> list[str]:
    """A list of strings (config overrides, a command line). A lone str is refused by name, with ``lone`` (formatted
    with it) as the way to pass it: iterated, it gave its letters ("override 't' must look like key=value")."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        shown = f"{type(value).__name__} {value!r}" if isinstance(value, str) else type(value).__name__
        one = f" (pass {lone.format(value)})" if isinstance(value, str) else ""
        raise TaskArgumentError(f"{what} must be a list of {kind}, got {shown}{one}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TaskArgumentError(f"{what} must be a list of {kind}, got {type(item).__name__} {item!r} in it")
    return items


def apply_overrides(cfg: ExperimentConfig, overrides: Iterable[str], *, _validate: bool = True) -> ExperimentConfig:
    """Return a copy of ``cfg`` with ``"a.b=value"`` overrides applied strictly.

    The value is parsed with ``yaml.safe_load`` (``3`` is an int, ``0.1`` a float, ``[100, 150]`` a list, ``null``
    is None). Keys inside a dict field (``model.kwargs.width=16``) may be anything; every other key must exist.
    """
    overrides = str_list(overrides, "overrides", "'key=value' strings")
    cfg = dataclasses.replace(cfg)  # shallow copy of the top level; sections are rebuilt below
    data = config_to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. optim.lr=0.05)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"override '{item}': the value {raw!r} is not valid YAML") from None
        _set_path(data, key, value)
    new = _build(ExperimentConfig, data, "")
    return validate(new) if _validate else new


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b]... = value`` for ``key = "a.b..."``, refusing keys the schema does not have."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"override key '{key}' is malformed")
    cls: Any = ExperimentConfig
    node = data
    for depth, part in enumerate(parts):
        full = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if cls is None:  # inside a free-form dict field: any key
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override key '{key}': '{full}' is not a mapping")
            continue
        fields = _fields(cls)
        if part not in fields:
            where = f"'{'.'.join(parts[:depth])}'" if depth else "the top level"
            raise ConfigError(_unknown_key(full, where, fields))
        tp = fields[part]
        if last and dataclasses.is_dataclass(tp):
            # a whole section: a mapping merges into it key by key, as a config's `base:` does; null would reset it
            # to its defaults (`--set mix=null` made a mixup row train ERM, `data={...}` a CIFAR config use digits)
            if value is None:
                raise ConfigError(
                    f"override '{key}=null' would reset the section '{full}' to its defaults; set its keys instead "
                    f"({full}.NAME=VALUE)"
                )
            if isinstance(value, Mapping) and isinstance(node.get(part), Mapping):
                value = merge_sections(node[part], value, f"override '{key}=...'", f"{full}.")
            node[part] = value
            return
        if last:
            node[part] = value
            return
        if dataclasses.is_dataclass(tp):
            cls = tp
        elif typing.get_origin(tp) is dict:
            cls = None
        else:
            raise ConfigError(f"override key '{key}': '{full}' is a {_type_name(tp)}, not a section")
        node = node[part]


def flat_config(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config mapping as ``{dotted key: value}`` (``kwargs`` dicts kept whole: they are one value each)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k != "kwargs":
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def diff_configs(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    """Dotted keys whose values differ between two configs (dict fields compared as a whole)."""
    fa, fb = flat_config(config_to_dict(a)), flat_config(config_to_dict(b))
    return sorted(k for k in fa if fa[k] != fb.get(k))


def config_changes(
    old: ExperimentConfig, new: ExperimentConfig, fmt: str = "{k} {a!r} -> {b!r}", ignore: Iterable[str] = ()
) -> str:
    """``"train.epochs 2 -> 5, ..."`` (``fmt`` of key, old and new value) where ``new`` differs ("" when nowhere),
    leaving out the keys in ``ignore``."""
    a, b = flat_config(config_to_dict(old)), flat_config(config_to_dict(new))
    skip = set(ignore)
    return ", ".join(fmt.format(k=k, a=a.get(k), b=b.get(k)) for k in diff_configs(old, new) if k not in skip)


MAX_SEEDS = 10_000  # seeds per row: a plan of more (even a dry run's) would take the machine's memory first


def _is_int(value: object) -> TypeGuard[int]:
    """Python's or numpy's integers (not bools): to a type checker an int, as numpy's compare and convert as one."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def seed_list(seeds: int | Iterable[int], *, negative: bool = False) -> list[int]:
    """A runner's ``seeds`` argument: a count ``n`` (seeds ``0 .. n-1``) or the seeds themselves, distinct ints
    (>= 0 unless ``negative``), at most MAX_SEEDS of them; numpy's integers count as ints. A str is refused by name
    (iterated, "10" had been seeds 1 and 0)."""
    if getattr(seeds, "ndim", None) == 0:  # a 0-d numpy array or tensor: its one value
        seeds = seeds.item()  # type: ignore[union-attr]
    if _is_int(seeds):
        if not 1 <= int(seeds) <= MAX_SEEDS:
            raise TaskError(f"seeds must be in [1, {MAX_SEEDS}], got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, str | bytes | Mapping) or not isinstance(seeds, Iterable):
        raise TaskArgumentError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__} {seeds!r}")
    out = list(seeds)
    for seed in out:
        if not _is_int(seed):
            raise TaskArgumentError(f"seeds must be ints, got {type(seed).__name__} {seed!r}")
    if not 1 <= len(out) <= MAX_SEEDS:
        raise TaskError(f"seeds must hold 1 to {MAX_SEEDS} seeds, got {len(out)}")
    low = -(2**63) if negative else 0  # torch's generators take seeds in [-2**63, 2**64)
    if len(set(out)) != len(out) or min(out) < low or max(out) >= 2**64:
        shown = out if len(out) <= 10 else f"[{', '.join(map(str, out[:10]))}, ...]"
        raise TaskError(f"seeds must be distinct ints in [{'-2**63' if negative else 0}, 2**64), got {shown}")
    return [int(seed) for seed in out]


def check_seeds(seeds: int | None) -> None:
    """``--seeds`` (None: the table's count) must be in [1, MAX_SEEDS], for trainer and runner tables alike (and
    the demo's)."""
    if seeds is not None and not (_is_int(seeds) and 1 <= seeds <= MAX_SEEDS):  # run_demo(seeds=1.0): range()'s error
        raise ConfigError(f"--seeds must be in [1, {MAX_SEEDS}], got {seeds!r}")
