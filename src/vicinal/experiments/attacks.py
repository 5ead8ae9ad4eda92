"""White-box adversarial attacks of Section 3.5: FGSM and iterative FGSM, in [0, 1] pixel space.

Models in this lab normalise inside their first layer, so the attacks perturb raw pixels and clamp to the valid
range. Both attacks are deterministic (no random start): the same model and batch give the same examples.

FGSM (Goodfellow et al., 2015): ``x_adv = clamp(x + eps * sign(grad_x CE(f(x), y)))``.
I-FGSM (Kurakin et al., 2017), as in the paper "10 iterations, equal step size": ``steps`` updates of size
``eps / steps``, each followed by projection onto the L-inf ball of radius ``eps`` around ``x`` and the clamp.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .build import load_run_model
from .checkpoint import CheckpointError, load_checkpoint
from .config import ConfigError
from .distributed import check_explicit_device
from .errors import RunError
from .evaluation import predicted_class
from .runs import CHECKPOINT_NAME, clean_stale_temp_files, read_config, read_object, read_summary, write_json

__all__ = [
    "ATTACKS",
    "IMAGE_DATASETS",
    "attack_errors",
    "attack_file_stem",
    "attack_run",
    "error_under_attack",
    "every_nth",
    "fgsm",
    "ifgsm",
    "load_run_model",
]

# Datasets whose inputs are [0, 1] pixels (the attacks clamp to that box); any uint8-stored dataset also is.
IMAGE_DATASETS = ("cifar10", "cifar100", "digits", "imagenet", "imagefolder", "imagefolder_memory")


def _check(x: Tensor, y: Tensor, eps: float, clamp: tuple[float, float] | None) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"y must have shape ({x.shape[0]},) to match x of shape {tuple(x.shape)}, got {tuple(y.shape)}"
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
        raise ValueError(f"eps must be a float >= 0, got {eps!r}")
    if clamp is not None and not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp}")


def _input_grad_sign(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """sign of d CE(model(x), y) / dx, per sample: ``(B, ...)`` in {-1, 0, 1}."""
    x = x.detach().clone().requires_grad_(True)
    # Summed (not averaged) loss: each sample's gradient is its own, whatever the batch size.
    loss = F.cross_entropy(model(x).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, clamp: tuple[float, float] | None = (0.0, 1.0)) -> Tensor:
    """Fast gradient sign method: one step of size ``eps`` up the loss gradient's sign.

    Args:
        model: maps ``x (B, ...)`` to logits ``(B, C)``; put it in eval mode first (BatchNorm, dropout).
        x: inputs in pixel space ``(B, ...)``; y: labels int64 ``(B,)``.
        eps: L-inf radius (e.g. ``4 / 255`` for the paper's 4 of 255).
        clamp: valid input range, or None for no clamp.

    Returns:
        Adversarial inputs, detached, same shape and dtype as ``x``.
    """
    _check(x, y, eps, clamp)
    x_adv = x.detach() + eps * _input_grad_sign(model, x, y)
    if clamp is not None:
        x_adv = x_adv.clamp(*clamp)
    return x_adv.detach()


def ifgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 10,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Iterative FGSM: ``steps`` sign steps of ``eps / steps``, projected onto ``[x - eps, x + eps]`` and ``clamp``.

    Args: as :func:`fgsm`, plus ``steps`` (the paper: 10).
    """
    _check(x, y, eps, clamp)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    x0 = x.detach()
    step = eps / steps
    x_adv = x0.clone()
    for _ in range(steps):
        x_adv = x_adv + step * _input_grad_sign(model, x_adv, y)
        x_adv = torch.minimum(torch.maximum(x_adv, x0 - eps), x0 + eps)  # L-inf projection
        if clamp is not None:
            x_adv = x_adv.clamp(*clamp)
    return x_adv.detach()


@torch.no_grad()
def _count_errors(model: nn.Module, x: Tensor, y: Tensor) -> int:
    return int((predicted_class(model(x)) != y).sum())


def error_under_attack(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, ...]],
    attack: Callable[..., Tensor] = fgsm,
    **kwargs: float | int | tuple[float, float] | None,
) -> float:
    """Top-1 error (percent) of ``model`` on ``attack(model, x, y, **kwargs)`` over the batches of ``loader``.

    The model is switched to eval mode for the duration and restored afterwards.
    """
    was_training = model.training
    model.eval()
    errors, n = 0, 0
    try:
        for batch in loader:
            x, y = batch[0], batch[1]
            x_adv = attack(model, x, y, **kwargs)
            errors += _count_errors(model, x_adv, y)
            n += y.shape[0]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("the loader yielded no batches")
    return 100.0 * errors / n


ATTACKS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "ifgsm": ifgsm}


@torch.no_grad()
def _topk_errors(model: nn.Module, x: Tensor, y: Tensor) -> tuple[int, int]:
    """(top-1 errors, top-k errors) of a batch, k = min(5, C)."""
    logits = model(x)  # (B, C)
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices  # (B, k)
    top[~torch.isfinite(logits).all(dim=1)] = -1  # a row that is not all finite names no class (predicted_class)
    top1 = int((top[:, 0] != y).sum())
    topk = int((~(top == y[:, None]).any(dim=1)).sum())
    return top1, topk


def attack_file_stem(attack: str, eps: float, steps: int, every: int = 1, source: tuple[str, int] | None = None) -> str:
    """The name (without ``.json``) under ``attacks/`` of one attack result; ``source`` = (config name, seed)."""
    mode = "white" if source is None else "black"
    name = f"{mode}-{attack}-eps{eps:g}" + (f"-steps{steps}" if attack == "ifgsm" else "")
    name += f"-every{every}" if every > 1 else ""
    if source is not None:
        name += f"-from-{source[0]}-seed{source[1]}"
    return name


def every_nth(loader: Iterable[tuple[Tensor, ...]], every: int) -> Iterator[tuple[Tensor, ...]]:
    """The batches of ``loader`` keeping only the examples at global positions 0, every, 2 * every, ...

    A subset spread evenly over the split (a prefix would hold only the first classes of a class-sorted split),
    the same on every call. Batches left empty are skipped.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    offset = 0
    for batch in loader:
        size = batch[0].shape[0]
        first = (-offset) % every  # position in this batch of the first kept example
        offset += size
        if first >= size:
            continue
        yield tuple(t[first::every] for t in batch)


def attack_errors(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, ...]],
    attack: Callable[..., Tensor] = fgsm,
    *,
    source: nn.Module | None = None,
    **kwargs: Any,
) -> dict[str, float | int]:
    """Clean and adversarial top-1 / top-5 error (percent) of ``model`` over ``loader``.

    White box (``source`` None): the examples are crafted on ``model`` itself. Black box: crafted on ``source``
    (e.g. a separately trained ERM network) and evaluated on ``model``. Both models are put in eval mode for the
    duration (BatchNorm statistics, no dropout) and restored afterwards. Top-5 is top-k with ``k = min(5, C)``.

    Returns:
        ``{"n", "clean_top1_error", "clean_top5_error", "top1_error", "top5_error"}``.
    """
    crafter = source if source is not None else model
    modes = [(m, m.training) for m in {id(model): model, id(crafter): crafter}.values()]
    for m, _ in modes:
        m.eval()
    n, c1, c5, a1, a5 = 0, 0, 0, 0, 0
    try:
        for batch in loader:
            x, y = batch[0], batch[1]
            x_adv = attack(crafter, x, y, **kwargs)
            e1, e5 = _topk_errors(model, x, y)
            f1, f5 = _topk_errors(model, x_adv, y)
            c1, c5, a1, a5 = c1 + e1, c5 + e5, a1 + f1, a5 + f5
            n += y.shape[0]
    finally:
        for m, was in modes:
            m.train(was)
    if n == 0:
        raise ValueError("the loader yielded no batches")
    return {
        "n": n,
        "clean_top1_error": 100.0 * c1 / n,
        "clean_top5_error": 100.0 * c5 / n,
        "top1_error": 100.0 * a1 / n,
        "top5_error": 100.0 * a5 / n,
    }


def trained_step(run_dir: str | Path) -> int | None:
    """The step count of a finished run's model: what an attack result records of the weights it measured, so that
    a result of other weights (the run resumed and trained on) is told apart; None where no step can be read (the
    result is then taken as current, see :func:`attack_is_current`). A run that has not finished (interrupted,
    still training) is refused: its checkpoint is not the model a table reports."""
    summary = read_summary(run_dir)
    status = None if summary is None else summary.get("status")
    if summary is None or status not in ("complete", "max_steps"):
        raise ConfigError(
            f"run '{run_dir}' has not finished training (status: {status or 'no summary.json'}): an attack measures "
            f"its final model; finish it first (vicinal train --resume {run_dir})"
        )
    return _current_step(Path(run_dir), summary)


def _current_step(run_dir: Path, summary: dict[str, Any] | None) -> int | None:
    """The step count of the weights ``run_dir`` holds: its summary's, or, in a summary of an older lab that has
    none, its checkpoint's; None when neither can tell (no checkpoint, or one that cannot be read: folders copied
    without their checkpoints still report)."""
    step = None if summary is None else summary.get("global_step")
    if isinstance(step, int):
        return step
    checkpoint = run_dir / CHECKPOINT_NAME
    try:
        stat = checkpoint.stat()
        return _checkpoint_step(str(checkpoint), stat.st_mtime_ns, stat.st_size)
    except (OSError, CheckpointError):
        return None


@functools.lru_cache(maxsize=64)
def _checkpoint_step(path: str, mtime_ns: int, size: int) -> int | None:
    """A checkpoint's step count, read once per version of the file (a report reads it for every attack result)."""
    step = load_checkpoint(path).get("global_step")
    return int(step) if isinstance(step, int) else None


# what a report and a resumed reproduction read of a saved attack result (attack_run writes them all)
RESULT_KEYS = ("mode", "attack", "eps_pixels", "n", "top1_error", "top5_error", "clean_top1_error", "clean_top5_error")
_RESULT_HINT = "delete it and measure it again (vicinal attack, or the vicinal reproduce that made it)"


def read_attack_result(path: Path) -> dict[str, Any] | None:
    """A saved attack result (``attacks/*.json``); None when absent. A file that is not JSON, not an object, or
    lacks a field a report reads is a RunError naming it: a report or a reproduction never stops on a traceback."""
    result = read_object(path, _RESULT_HINT)
    if result is not None and (missing := [k for k in RESULT_KEYS if k not in result]):
        raise RunError(f"'{path}' is not an attack result: it lacks {', '.join(missing)}; {_RESULT_HINT}")
    return result


def attack_is_current(result: dict[str, Any], target: str | Path) -> bool:
    """Whether a saved attack result of the run folder ``target`` (where it was found: the path it recorded may be
    relative to another working directory, or the folders moved) measured the weights the target holds now, and
    those the black-box source holds where it still lies: their step counts are those recorded. A source that is
    gone cannot be checked and counts as current; results of an older lab, which recorded no steps, are taken as
    they are."""
    for recorded, folder in ((result.get("target_step"), Path(target)), (result.get("source_step"), None)):
        if folder is None:
            source = result.get("source")
            if source is None or not Path(source).is_dir():
                continue
            folder = Path(source)
        current = None if recorded is None else _current_step(folder, read_summary(folder))
        if current is not None and current != recorded:  # None: cannot be checked, taken as it is
            return False
    return True


def attack_run(
    run_dir: str | Path,
    *,
    attack: str = "fgsm",
    eps: float = 4.0,
    steps: int = 10,
    source: str | Path | None = None,
    device: str = "cpu",
    eval_batch_size: int | None = None,
    every: int = 1,
    write: bool = True,
) -> dict[str, Any]:
    """Attack the model of ``run_dir`` on its test split; save the result under ``run_dir/attacks/``.

    Args:
        run_dir: the target run folder (config.yaml + checkpoint.pt).
        attack: "fgsm" or "ifgsm".
        eps: L-inf budget in pixel units out of 255 (the paper: 4); applied in [0, 1] pixel space as ``eps / 255``.
        steps: I-FGSM iterations of ``eps / steps`` each (the paper: 10); ignored by FGSM.
        source: black box: craft on this run's model and evaluate on ``run_dir``'s; None = white box.
        device: where the models run.
        eval_batch_size: attack batch size (default: the run's ``data.eval_batch_size``).
        every: attack every ``every``-th test image only (indices 0, every, 2 * every, ...: a deterministic subset
            spread over the whole split, whatever its order); 1 = all.
        write: save ``attacks/<mode>-<attack>-eps<eps>[-steps<k>][-every<K>][-from-<name>-seed<s>].json``.

    Raises:
        ValueError: unknown attack, bad eps/steps, a non-image dataset, or a source with other classes/inputs.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; known attacks: {', '.join(ATTACKS)}")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 <= eps <= 255:
        raise ValueError(f"eps must be in [0, 255] pixel units, got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    check_explicit_device(str(device), "device")  # torch's "Found no NVIDIA driver" otherwise, deep in a load
    t0 = time.perf_counter()
    model, cfg, data = load_run_model(run_dir, device, eval_batch_size=eval_batch_size)
    target_step = trained_step(run_dir)  # after the folder's own checks: they name a folder that is not a run
    stored = data.train_dataset_x.dtype if data.train_dataset_x is not None else None
    if cfg.data.name not in IMAGE_DATASETS and stored != torch.uint8:
        raise ConfigError(
            f"attacks work in [0, 1] pixel space; dataset {cfg.data.name!r} of '{run_dir}' does not hold images"
        )
    src_model, src_cfg, source_step = None, None, None
    if source is not None:
        if Path(source).resolve() == Path(run_dir).resolve():
            raise ConfigError(f"source '{source}' is the target itself: a black-box source is another trained model")
        try:
            src_model, src_cfg, _ = load_run_model(source, device, data=data)
        except CheckpointError as exc:
            if "does not fit the model" not in str(exc):
                raise  # unreadable or corrupt: its own message says so
            # the source is built for the target's data: weights that do not fit are most often another data set's
            theirs = read_config(source).data.name
            if theirs != cfg.data.name:  # said plainly, without torch's list of mismatched tensor sizes
                raise ConfigError(
                    f"source '{source}' was trained on data '{theirs}' and the target '{run_dir}' on "
                    f"'{cfg.data.name}': a black-box source must be trained on the target's data"
                ) from None
            raise CheckpointError(
                f"source '{source}' (data '{theirs}'), built for the inputs and classes of the target '{run_dir}' "
                f"(data '{cfg.data.name}') as a black-box source must be, does not fit its checkpoint: {exc}"
            ) from None
        source_step = trained_step(source)
        with torch.no_grad():
            x0 = next(iter(data.test))[0][:1]
            if src_model(x0).shape != model(x0).shape:
                raise ConfigError(f"source '{source}' and target '{run_dir}' have different outputs for the same input")
    kwargs: dict[str, Any] = {"eps": float(eps) / 255.0}
    if attack == "ifgsm":
        kwargs["steps"] = steps
    loader = data.test if every == 1 else every_nth(data.test, every)
    res = attack_errors(model, loader, ATTACKS[attack], source=src_model, **kwargs)
    mode = "white" if source is None else "black"
    result: dict[str, Any] = {
        "mode": mode,
        "attack": attack,
        "eps_pixels": float(eps),
        "eps": float(eps) / 255.0,
        "steps": steps if attack == "ifgsm" else 1,
        "every": every,
        "target": str(run_dir),
        "target_name": cfg.name,
        "target_seed": cfg.train.seed,
        "target_step": target_step,  # the weights measured (attack_is_current)
        # absolute: a report made from another working directory finds the source again (attack_is_current)
        "source": None if source is None else str(Path(source).resolve()),
        "source_name": None if src_cfg is None else src_cfg.name,
        "source_seed": None if src_cfg is None else src_cfg.train.seed,
        "source_step": source_step,
        **res,
        "time_s": time.perf_counter() - t0,
    }
    if write:
        source_id = None if src_cfg is None else (src_cfg.name, src_cfg.train.seed)
        name = attack_file_stem(attack, eps, steps, every, source_id)
        clean_stale_temp_files(Path(run_dir) / "attacks", None)  # of attacks killed while they wrote
        path = write_json(Path(run_dir) / "attacks" / f"{name}.json", result)
        result["file"] = str(path)
    return result
