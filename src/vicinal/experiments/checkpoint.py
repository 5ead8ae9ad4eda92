"""Checkpoints that survive crashes and never run code: atomic writes, safe loads, every RNG state.

Saving goes through :func:`vicinal.experiments.runs.atomic_write`, like every file of a run folder: a temporary
file in the target's directory, flushed and fsynced, renamed over the target with ``os.replace`` (atomic on POSIX),
the directory fsynced; a crash at any moment leaves either the old checkpoint or the new one, never a torn file.
Loading uses ``torch.load(..., weights_only=True)``: only tensors and plain Python containers are accepted, so the
RNG states are stored as tensors, ints, floats and lists (never numpy objects or tuples of unknown classes). A
truncated, foreign or unreadable file raises :class:`CheckpointError` naming the file; the trainer never falls back
silently to a fresh start. A resume must come from the same config (`check_resumable`; only the keys in
`RESUME_MUTABLE`, such as the number of epochs, may change) and the same number of processes.

Per-rank state. Under torchrun every rank has its own mixing generator, global RNG states, loader generator and
share of a partial epoch's sums (`RANK_KEYS`). Rank 0 writes the one checkpoint: the top-level keys are its own, as
in a single process, and ``"ranks"`` (only when there are several) lists every rank's, indexed by rank, so that each
rank resumes from its own (`rank_state`). A checkpoint written before ``"ranks"`` existed still resumes, but every
rank then continues from rank 0's state: not bit-identical (the trainer warns and records it).
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import (
    DATA_PLACE_KEYS,
    LAUNCH_CHECK_KEYS,
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    diff_configs,
    flat_config,
    unread_by_both,
)
from .errors import LabError
from .runs import atomic_write, clean_stale_temp_files

__all__ = [
    "CheckpointError",
    "RANK_KEYS",
    "RESUME_MUTABLE",
    "check_resumable",
    "resume_changes",
    "rank_state",
    "FORMAT",
    "VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "clean_stale_temp_files",
]

FORMAT = "vicinal-checkpoint"
VERSION = 1
# Config keys a resume may change (longer training, logging, another device, the data's place: a suite resumed
# after its data moved); everything else must match.
RESUME_MUTABLE = (
    "notes",
    *DATA_PLACE_KEYS,
    "train.epochs",
    "train.max_steps",
    "train.log_every",
    "train.eval_every",
    "train.eval_last",
    "train.checkpoint_every",
    "train.tensorboard",
    "train.device",
    "train.threads",
    "train.train_eval_every",
    "train.reliability_diagram",
    *LAUNCH_CHECK_KEYS,
)

# What each rank holds of its own (saved per rank, see the module docstring): the global RNG states, the mixing
# generator, the mixer's state, the partial epoch's sums and the training loader's state.
RANK_KEYS = ("rng", "mix_generator", "mixer", "partial", "loader")


class CheckpointError(LabError, ValueError):
    """A checkpoint file is missing, truncated, foreign or from an incompatible version (a user error)."""


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Atomically write ``state`` (plus the format marker) to ``path``.

    Args:
        state: tensors and plain containers only (what ``torch.load(weights_only=True)`` accepts).
        path: destination file; its directory is created if needed.

    Returns:
        The path written.
    """
    payload = {"format": FORMAT, "version": VERSION, **state}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, safely.

    Raises:
        CheckpointError: the file is missing, truncated, not a vicinal checkpoint or of another version.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint file '{path}' is a folder, not a checkpoint")
    if not path.is_file():
        raise CheckpointError(f"checkpoint file '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        text = str(exc).strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        what = "is unreadable (truncated, corrupt or not a torch file)"
        if isinstance(exc, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
            # torch's first line (and, for a class outside its allowlist, an option "(1)") advises weights_only=False,
            # which would run the file's code and is no cure for a corrupt file: what the unpickler met follows
            # "WeightsUnpickler error:" where torch says it, else on the first line of neither advice nor options
            marker = "WeightsUnpickler error:"
            at = next((i for i, line in enumerate(lines) if marker in line), None)
            said = None if at is None else lines[at].split(marker, 1)[1].strip()
            if at is not None and not said and at + 1 < len(lines):
                said = lines[at + 1]  # the marker ends its line: the words are on the next one
            if said is None:
                advice = ("Check the documentation", "(1)", "(2)")
                said = next((line for line in lines[1:] if not line.startswith(advice)), "")
            # nor allowlisting the class ("Please use torch.serialization.add_safe_globals..."): not a checkpoint
            lines = [said.split(" Please use `torch.serialization", 1)[0]]
            if lines[0].lower().startswith(("unsupported global", "trying to load unsupported global")):
                # an intact torch file holding a type no vicinal checkpoint has (a numpy array, a class)
                what = "is not a vicinal checkpoint: it holds a type that torch's safe loader refuses"
        first = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        if len(first) > 160:
            first = first[:157] + "..."
        raise CheckpointError(f"checkpoint file '{path}' {what}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint file '{path}' is not a vicinal checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint file '{path}' has format version {state.get('version')!r}; this vicinal reads {VERSION}"
        )
    return state


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain types (``weights_only``-loadable).

    The lab draws its own randomness from explicit generators; the global states are saved anyway because
    layers such as dropout (and any third-party code) use them.
    """
    # saving the legacy global state is the point: ('MT19937', uint32[624], pos, has_gauss, cached_gaussian)
    np_state = np.random.get_state(legacy=True)  # noqa: NPY002
    # the global RandomState is always MT19937, so legacy=True gives the tuple (numpy's stub also allows a dict)
    assert isinstance(np_state, tuple)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss_next": py_gauss},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - restoring the legacy global state
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs restores the ones this machine has.
        n = min(len(cuda_states), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states[:n]])


def resume_changes(saved: ExperimentConfig, cfg: ExperimentConfig) -> list[str]:
    """The keys in which ``cfg`` differs from the config ``saved`` with a run's checkpoint that a resume may not
    change (outside `RESUME_MUTABLE`): the resume's refusal, and the plan's (`vicinal reproduce --dry-run`)."""
    # options neither config reads (an ERM run's mix.alpha) change nothing the run computes
    unread = unread_by_both(flat_config(config_to_dict(saved)), flat_config(config_to_dict(cfg)))
    changed = [k for k in diff_configs(saved, cfg) if k not in RESUME_MUTABLE and k not in unread]
    place = {k.rsplit(".", 1)[1] for k in RESUME_MUTABLE if k.startswith("data.kwargs.")}
    if "data.kwargs" in changed and _without(saved.data.kwargs, place) == _without(cfg.data.kwargs, place):
        changed.remove("data.kwargs")  # only where and how the data is loaded (kwargs are compared as one value)
    return changed


def check_resumable(state: Mapping[str, Any], cfg: ExperimentConfig, world_size: int, path: str | Path) -> None:
    """Refuse to resume run ``cfg`` on ``world_size`` processes from ``state`` (loaded from ``path``) when the
    checkpoint was written by another config (beyond `RESUME_MUTABLE`), another number of processes, or is past
    ``cfg.train.epochs`` (a started epoch counts)."""
    try:
        saved_cfg = config_from_dict(state["config"], saved=True)
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"checkpoint file '{path}' holds no valid config: {exc}") from None
    changed = resume_changes(saved_cfg, cfg)
    if changed:
        raise CheckpointError(
            f"checkpoint file '{path}' was written by a different config (differs at {', '.join(changed)}); "
            f"only {', '.join(RESUME_MUTABLE)} may change on resume"
        )
    # Fewer epochs than the checkpoint has reached would end the loop before it starts: the run was marked
    # complete with a summary of fewer epochs than its weights (a partial epoch's sums dropped).
    done, in_epoch = int(state.get("epoch", 0)), int(state.get("step_in_epoch", 0)) > 0
    if cfg.train.epochs < done + in_epoch:
        where = f"has completed {done} epoch(s)" + (" and is part-way through the next" if in_epoch else "")
        raise CheckpointError(
            f"cannot resume from '{path}' with train.epochs {cfg.train.epochs}: the checkpoint {where}, so "
            f"train.epochs must be >= {done + in_epoch}"
        )
    if int(state.get("world_size", 1)) != world_size:
        raise CheckpointError(
            f"checkpoint file '{path}' was written by {state.get('world_size')} processes; this run has "
            f"{world_size} (exact resume needs the same number)"
        )


def _without(kwargs: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in keys}


def rank_state(state: Mapping[str, Any], rank: int, world_size: int, path: str | Path) -> tuple[dict[str, Any], bool]:
    """This rank's own part of checkpoint ``state`` (the `RANK_KEYS`; loaded from ``path``) and whether it is exact.

    With one process that is the top level. With several it is entry ``rank`` of ``state["ranks"]``; a checkpoint
    without that list (written before it existed) gives rank 0's state to every rank and ``False``: the resume then
    runs, but ranks 1.. continue from rank 0's random streams and partial-epoch sums, not their own.

    Raises:
        CheckpointError: ``state["ranks"]`` does not hold one dict per process.
    """
    ranks = state.get("ranks")
    if world_size == 1 or ranks is None:
        return {k: state.get(k) for k in RANK_KEYS}, world_size == 1
    if not isinstance(ranks, list) or len(ranks) != world_size or not all(isinstance(r, dict) for r in ranks):
        got = f"{len(ranks)} entries" if isinstance(ranks, list) else type(ranks).__name__
        raise CheckpointError(
            f"checkpoint file '{path}' holds per-rank states ('ranks') with {got}; expected one dict for each of "
            f"the {world_size} processes"
        )
    return {k: ranks[rank].get(k) for k in RANK_KEYS}, True
