"""Batch transforms: draw (lam, partners) in :meth:`BatchMix.sample`, apply them deterministically.

The torchvision v2 split: ``sample`` holds all randomness, ``apply_inputs`` / ``apply_targets`` are pure functions
of their arguments, so ``mixer(x, y)`` equals ``functional.mix(x, lam, perm)`` for the drawn ``(lam, perm)``
(within the rounding bound of ``functional.mix_`` on the fast paths, ``inplace=True`` or ``exact=False``).

The default path is the paper's whole method (Section 2)::

    lam = Beta(alpha, alpha)                  # one per minibatch
    perm = randperm(B)                        # partners from the same minibatch
    x = lam * x + (1 - lam) * x[perm]
    y = lam * onehot(y) + (1 - lam) * onehot(y)[perm]
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.utils.data
from torch import Tensor

from . import functional as F
from ._validation import (
    NUM_CLASSES_REQUIRED,
    _functorch_wrapped,
    check_alpha,
    check_choice,
    check_flag,
    check_inputs,
    check_num_classes,
    check_probability,
    check_targets,
    is_int,
    label_dtype_error,
)
from .pairing import PAIRINGS, batch_pairs, random_pairs
from .sampling import new_generator, sample_dirichlet, sample_lam

TARGET_MODES = ("mixed", "closer")
OPS = ("identity", "mix", "cutmix", "dirichlet", "noise")  # what MixParams.op may say
LAM_MODES = ("batch", "sample")
MIXUP_LAM_MODES = (*LAM_MODES, "pair")  # "pair": partners share their draws (two-way transforms, mutual pairings)
UINT8_OUTPUTS = ("round", "float")


@dataclass(frozen=True)
class MixParams:
    """Everything random about one mixed batch.

    Attributes:
        op: ``"identity"``, ``"mix"``, ``"cutmix"``, ``"dirichlet"`` or ``"noise"``.
        lam: weight of each sample itself: a float, or a float64 tensor ``(B,)`` for per-sample mixing. For CutMix,
            corrected to the image area actually kept.
        perm: ``(B,)`` partner indices into the batch (None when partners come from outside the batch).
        partner_x, partner_y: partners drawn from the dataset (k-NN pairing).
        box: CutMix box ``(y0, y1, x0, x1)``, or a ``(B, 4)`` int64 tensor of one box per sample
            (``lam_mode="sample"`` or ``"pair"``).
        blend: with per-sample boxes, ``(B,)`` bool: the samples mixed by the formula with their lam instead of
            pasted (the mixup draws of ``MixupOrCutMix(lam_mode="sample")`` or ``"pair"``; their box rows are empty).
        weights, indices: Dirichlet weights ``(B, k)`` and partner indices ``(k, B)``.
        noise: Gaussian noise added to the inputs.
        targets: how the transform forms its targets: ``"mixed"`` (paper) or ``"closer"`` (the label of the larger
            part); :func:`vicinal.mixed_criterion` reads it.
        smoothing: the label smoothing eps the transform applies to its targets (read by ``mixed_criterion``).
    """

    op: str = "identity"
    lam: float | Tensor = 1.0
    perm: Tensor | None = None
    partner_x: Tensor | None = None
    partner_y: Tensor | None = None
    box: tuple[int, int, int, int] | Tensor | None = None
    blend: Tensor | None = None
    weights: Tensor | None = None
    indices: Tensor | None = None
    noise: Tensor | None = None
    targets: str = "mixed"
    smoothing: float = 0.0
    # set by BatchMix.sample: lam and perm were drawn (and so are valid), apply_* may skip re-checking them; not an
    # init field, so dataclasses.replace(params, lam=...) gives params that are checked again
    _drawn: bool = field(default=False, init=False, repr=False, compare=False)
    # the labels sample() checked: apply_targets checks any other labels it is given
    _labels: Tensor | None = field(default=None, init=False, repr=False, compare=False)


# what each op of hand-made params must hold to mix inputs and to mix targets (sample() fills them all; targets
# need no box or noise)
_OP_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "inputs": {"noise": ("noise",), "cutmix": ("box",), "dirichlet": ("weights", "indices")},
    "labels": {"dirichlet": ("weights", "indices")},
}


def _check_params_batch(params: MixParams, n: int, what: str) -> None:
    """Params apply to the batch they were drawn for: a shape check (no device sync) of what they index or weight.
    Applied to another batch size, a permutation would leave rows unmixed or fail deep inside an index op."""
    if not isinstance(params, MixParams):
        raise TypeError(f"params must be the MixParams that sample() returns, got {type(params).__name__}")
    missing = [name for name in _OP_FIELDS[what].get(params.op, ()) if getattr(params, name) is None]
    blend_alone = params.op == "cutmix" and params.blend is not None and params.perm is None
    if what == "inputs" and blend_alone and params.partner_x is None:
        missing.append("perm or partner_x")
    if missing:  # hand-made params: a bare AssertionError (an AttributeError under python -O) deep inside otherwise
        raise ValueError(f"params with op={params.op!r} need {' and '.join(missing)}; draw them with sample()")
    drawn = (
        ("perm", params.perm),
        ("lam", params.lam if isinstance(params.lam, Tensor) else None),
        ("weights", params.weights),
        ("indices", None if params.indices is None else params.indices[0]),
        ("partner_x", params.partner_x),
        ("noise", params.noise),
        ("box", params.box if isinstance(params.box, Tensor) and params.box.dim() == 2 else None),  # (4,): shared
        ("blend", params.blend),
    )
    for name, t in drawn:
        if t is not None and t.dim() and t.shape[0] != n:
            raise ValueError(
                f"these params were drawn for a batch of {t.shape[0]} samples ({name}) but the {what} have "
                f"{n if n >= 0 else 'no batch dimension'}; draw them with sample() on this batch"
            )


# torchvision's tv_tensors whose values are labels or coordinates, not intensities: a weighted average of two
# masks is no mask (class ids 0 and 10 give 4), of two boxes no box of either object. torchvision's MixUp refuses
# them; here every transform that averages its inputs does, on every call (a paste, CutMix, moves values: allowed).
# Told by class name, so that the library needs no torchvision import.
_NOT_INTENSITIES = {"Mask": "class ids", "BoundingBoxes": "box coordinates", "KeyPoints": "point coordinates"}


def _check_intensities(x: Tensor, transform: str) -> None:
    for cls in type(x).__mro__:
        if cls.__name__ in _NOT_INTENSITIES and cls.__module__.startswith("torchvision"):
            raise TypeError(
                f"{transform} averages its inputs, and a {cls.__name__} holds {_NOT_INTENSITIES[cls.__name__]}, whose "
                "average means nothing (torchvision's MixUp refuses it too); CutMix pastes values and takes masks"
            )


def _generator_from_state(device: str, state: bytes) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    return generator


class _PickledGenerator:
    """Stands for a transform's ``torch.Generator`` while the transform is pickled or copied: pickled as its device
    and state bytes. torch's own reduction sends the state as a tensor, whose memory DataLoader workers started by
    spawn or forkserver receive shared and fail to map (pytorch/pytorch#146828). One stand-in per generator while
    any is alive (:func:`_stand_in`), so transforms that share a generator (``MixupOrCutMix`` and its branches) still
    share one after unpickling or ``copy.deepcopy`` (the memo of both keeps the first stand-in alive)."""

    __slots__ = ("generator", "__weakref__")

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __reduce__(self) -> tuple[Any, ...]:
        g = self.generator
        return _generator_from_state, (str(g.device), g.get_state().numpy().tobytes())


_STAND_INS: weakref.WeakValueDictionary[int, _PickledGenerator] = weakref.WeakValueDictionary()


def _stand_in(generator: torch.Generator) -> _PickledGenerator:
    found = _STAND_INS.get(id(generator))
    if found is None or found.generator is not generator:
        found = _STAND_INS[id(generator)] = _PickledGenerator(generator)
    return found


# Options of timm's Mixup / FastCollateMixup, torchvision's MixUp / CutMix and kornia's RandomMixUpV2 /
# RandomCutMixV2 that a port is likely to carry over, and what they are here (the README's table "Coming from ...").
_PEER_OPTIONS = {
    "mixup_alpha": "Mixup(alpha) (MixupOrCutMix takes mixup_alpha, cutmix_alpha and switch_prob)",
    "cutmix_alpha": "CutMix(alpha), or MixupOrCutMix(mixup_alpha, cutmix_alpha, switch_prob)",
    "switch_prob": "MixupOrCutMix(mixup_alpha, cutmix_alpha, switch_prob)",
    "label_smoothing": "smoothing=",
    "mode": "lam_mode='batch', 'sample' (timm's 'elem') or 'pair' (with pairing='flip' or 'matching')",
    "correct_lam": "always on: CutMix's lam comes from the clipped box",
    "cutmix_minmax": "box_range=(min, max) of CutMix or MixupOrCutMix",
    "labels_getter": "none: transforms take (x, y) as two arguments",
    "device": "none: a transform works on the batch's device",
    "p": "prob= (one coin per batch; kornia 0.8's p also gates each sample, which is not offered)",
    "p_batch": "prob= (one coin per batch)",
    "same_on_batch": "lam_mode='batch' (one lam per batch, the default here; kornia's default is lam_mode='sample')",
    "lambda_val": "none: lam ~ Beta(alpha, alpha); kornia's default, Uniform(0, 1), is alpha=1",
    "beta": "CutMix(alpha): lam ~ Beta(alpha, alpha)",
    "num_mix": "none: one box per sample",
}


def _unknown_options(cls: str, unknown: dict[str, Any]) -> str:
    names = sorted(unknown)
    what = (
        f"an unexpected keyword argument {names[0]!r}"
        if len(names) == 1
        else (f"unexpected keyword arguments {', '.join(map(repr, names))}")
    )
    hints = [f"{k} -> {_PEER_OPTIONS[k]}" for k in names if k in _PEER_OPTIONS]
    return f"{cls}() got {what}" + (f" (from timm / torchvision / kornia: {'; '.join(hints)})" if hints else "")


# torch.compile: a step compiled with a transform inside traced it, specialised on each drawn lam (one recompile
# per batch up to dynamo's limit, then each step slower than eager) and broke on get_worker_info. The public entry
# points run eagerly instead, a graph break around them: mixing is a memory-bound pass over the batch that draws
# Python numbers, nothing a graph would fuse (the lab's trainer compiles the model alone, for the same reason).
# torch.compiler.disable is applied when a compiled region calls them, not at import: it imports dynamo (~1 s).
_F = TypeVar("_F", bound=Callable[..., Any])
# torch.compiler.is_compiling is new in torch 2.3; the library admits 2.2, where a transform is traced as before
_is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", lambda: False)


def _name_vmap_draws(x: Tensor, exc: RuntimeError) -> None:
    """Name the way out when drawing fails under ``torch.func.vmap``: with ``randomness="different"`` each draw is a
    batched tensor, which has no Python number to read (torch said "Cannot access data pointer of Tensor that
    doesn't have storage"). Other failures are left to the caller to re-raise."""
    if _functorch_wrapped(x) and "storage" in str(exc):  # torch's own randomness='error' message stays
        raise ValueError(
            "a transform draws lam, partners and boxes as numbers for the whole batch, which torch.func.vmap cannot "
            "give each vmapped batch (randomness='different'): draw params = mixer.sample(x, y) outside vmap and vmap "
            "apply_inputs / apply_targets, or vmap with randomness='same'"
        ) from exc


def _eager(fn: _F) -> _F:
    disabled: list[Callable[..., Any]] = []  # torch.compiler.disable(fn), made at the first compiled call

    def call(*args: Any, **kwargs: Any) -> Any:
        if _is_compiling():  # true while dynamo traces, so only a compiled region takes this branch
            if not disabled:
                disabled.append(torch.compiler.disable(fn))
            return disabled[0](*args, **kwargs)
        return fn(*args, **kwargs)

    # Dynamo compiles the wrapper's own frame at the graph break, once per wrapped method and transform class
    # (its guards): with one code object shared by every wrapper, and the disabled functions in one global dict
    # whose size it guarded, a step with two transforms reached its recompile limit (8). A code object of its own
    # per wrapped method, and the disabled function in the wrapper's closure, keep each cache to the transform
    # classes that call that method.
    call.__code__ = call.__code__.replace(co_name=fn.__name__)  # replace() makes a new code object
    return cast(_F, functools.wraps(fn)(call))


def _check_soft_target_labels(y: Tensor, num_classes: int | None) -> None:
    """:meth:`BatchMix.soft_targets`' labels, of any leading shape (``sample()``'s ``check_targets`` wants
    ``(B,)`` / ``(B, C)``): a float ``(B,)`` batch was returned as its "targets", integer labels without
    ``num_classes`` were one-hot encoded with C = the batch size."""
    if y.dtype == torch.bool or y.is_complex():
        raise label_dtype_error(y.dtype)
    if y.is_floating_point():
        if y.dim() == 0 or (num_classes is not None and y.shape[-1] != num_classes):
            want = "C" if num_classes is None else f"C = num_classes={num_classes}"
            raise ValueError(
                f"float labels must be probabilities of shape (..., C) with {want}, got shape {tuple(y.shape)}; "
                "pass class indices as integers (y.long())"
            )
    elif num_classes is None:
        raise ValueError(NUM_CLASSES_REQUIRED)
    else:
        F._check_class_labels(y, num_classes)


class BatchMix:
    """Base class: validation, targets, generator and state handling shared by every variant.

    Args:
        num_classes: needed to one-hot integer labels.
        smoothing: label-smoothing eps applied to the one-hot targets before mixing.
        regression: targets are float ``(B,)`` or ``(B, K)`` values mixed linearly (paper, Section 5), not classes.
        multi_label: targets are multi-hot rows ``(B, C)`` (float, integer or bool; values in [0, 1], rows need not
            sum to 1), mixed linearly into float32 targets; ``smoothing`` moves each value towards 0.5,
            ``y * (1 - eps) + 0.5 * eps``, as timm's ``multi_label=True``. Train against them with
            ``binary_cross_entropy_with_logits``.
        check_finite: raise on NaN/Inf inputs (a full pass over the batch; off by default).
        prob: probability of transforming a batch (timm's ``prob``; kornia 0.8's ``p`` gates each sample too): with
            ``1 - prob`` the batch passes unchanged with its one-hot (smoothed) targets, as if lam were 1. One coin
            per batch, drawn from ``generator`` before anything else; with the default ``1.0`` no coin is drawn, so
            the random stream is the same as without the option.
        uint8_output: ``"round"`` mixes uint8 batches in float32 and rounds back to uint8; ``"float"`` returns the
            unrounded float32 mix (in the 0-255 scale).
        inplace: overwrite the input batch with the mixed one instead of returning a new tensor (the fast path:
            each sample read from memory once; no batch-sized allocation in float32; see
            :func:`vicinal.functional.mix_`).
            The caller's tensor is modified; targets are unaffected. Not with ``uint8_output="float"``.
        exact: ``True`` reproduces the formula's float roundings bit for bit on both paths; ``False`` mixes with the
            fastest kernels on both (a fused gather-and-mix or one ``lerp`` per slice, within a few units of
            rounding of the formula, bound stated in :func:`vicinal.functional.mix_`). ``None`` (default): exact
            out of place (the result matches timm and torchvision bit for bit), fast in place.
        generator, seed: the only source of randomness; same seed, same batches.

    In DataLoader workers (a transform called in the loader's ``collate_fn``, as torchvision's ``MixUp`` is, or
    through :class:`vicinal.MixupCollate`) each worker re-seeds its copy of the generator once, from two numbers: the
    worker's ``torch.utils.data.get_worker_info().seed`` (which the DataLoader derives from its ``generator``, or from
    the global torch RNG, anew for every epoch's workers) and the generator's seed. So the workers draw different
    streams, each epoch new ones, and the same again when both the loader and the transform are seeded; without it
    every worker would replay one copied stream, and every epoch the last. The worker seed alone would replay the
    numbers the worker's global RNG gives the dataset's augmentations. In the main process the generator is used as
    it is. A transform pickles (workers started by spawn or forkserver get a copy that continues the same stream).
    """

    multi_label: bool = False  # the class default: a transform pickled before the option has none

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        smoothing: float = 0.0,
        regression: bool = False,
        multi_label: bool = False,
        check_finite: bool = False,
        prob: float = 1.0,
        uint8_output: str = "round",
        inplace: bool = False,
        exact: bool | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:  # each subclass passes its **kwargs on to here: Python's own error named BatchMix.__init__
            raise TypeError(_unknown_options(type(self).__name__, unknown))
        self.num_classes = check_num_classes(num_classes)
        self.smoothing = check_probability(smoothing, "smoothing")
        self.regression = check_flag(regression, "regression")
        if self.regression and self.smoothing:
            raise ValueError("label smoothing does not apply to regression targets")
        self.multi_label = check_flag(multi_label, "multi_label")
        if self.regression and self.multi_label:
            raise ValueError("multi_label=True and regression=True are two kinds of targets: choose one")
        self.check_finite = check_flag(check_finite, "check_finite")
        self.prob = check_probability(prob, "prob")
        self.uint8_output = check_choice(uint8_output, UINT8_OUTPUTS, "uint8_output")
        self.inplace = check_flag(inplace, "inplace")
        if exact is not None and not isinstance(exact, bool):
            raise TypeError(f"exact must be True, False or None (the default), got {exact!r}")
        self.exact = exact
        if self.inplace and self.uint8_output == "float":
            raise ValueError(
                "inplace=True writes the mix into the input tensor, so it cannot return float32 for uint8 inputs "
                "(uint8_output='float'); use one or the other"
            )
        self.generator = new_generator(generator, seed)
        self._worker_seeded: int | None = None  # the id of the DataLoader worker that re-seeded this copy

    def __getstate__(self) -> dict[str, Any]:
        return {k: _stand_in(v) if isinstance(v, torch.Generator) else v for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled, each stand-in is a generator again; copy.copy hands back the stand-in itself: the same generator
        self.__dict__.update({k: v.generator if isinstance(v, _PickledGenerator) else v for k, v in state.items()})

    # -- randomness -------------------------------------------------------------------------------------------
    @_eager
    def sample(self, x: Tensor, y: Tensor, *, partner: tuple[Tensor, Tensor] | None = None) -> MixParams:
        """Validate the batch and draw the random parameters for it."""
        self._reseed_in_worker()
        n = self._validate(x, y, partner)
        try:  # a try costs nothing until it catches (a context manager cost ~2 us a call)
            if not self._coin():
                params = MixParams()  # this batch is left as it is (prob < 1)
            elif n == 1 and partner is None:
                params = MixParams()  # the only possible partner is the sample itself: nothing to mix
            else:
                params = self._sample(x, y, n, partner)
        except RuntimeError as exc:
            _name_vmap_draws(x, exc)
            raise
        return self._stamp(params, y)

    def _reseed_in_worker(self) -> None:
        """Once per DataLoader worker, re-seed the generator from the worker's seed and its own (class docstring)."""
        info = torch.utils.data.get_worker_info()
        # .get: a transform pickled before this attribute existed has none
        if info is not None and self.__dict__.get("_worker_seeded") != info.id:
            # the generator's seed as it stands when the loader starts (a manual_seed after construction counts)
            seed = np.random.SeedSequence([info.seed, self.generator.initial_seed()]).generate_state(1, np.uint64)[0]
            self.generator.manual_seed(int(seed))
            self._worker_seeded = info.id

    def _coin(self) -> bool:
        """Whether this batch is transformed: always at ``prob == 1`` (nothing drawn), else one uniform draw."""
        if self.prob == 1.0:
            return True
        return float(torch.rand((), generator=self.generator, dtype=torch.float64)) < self.prob

    def _stamp(self, params: MixParams, y: Tensor) -> MixParams:
        """Record how targets are formed (read by :func:`vicinal.mixed_criterion`)."""
        targets = getattr(self, "targets", "mixed")
        if self.smoothing != 0.0 or targets != "mixed":
            params = replace(params, targets=targets, smoothing=self.smoothing)
        object.__setattr__(params, "_drawn", True)  # frozen dataclass: the fields sample() itself sets
        object.__setattr__(params, "_labels", y)
        return params

    def _sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        return MixParams()

    # -- deterministic application ------------------------------------------------------------------------------
    @_eager
    def apply_inputs(self, x: Tensor, params: MixParams, *, inplace: bool | None = None) -> Tensor:
        """The mixed inputs for ``params`` (the input tensor itself when nothing is mixed, except a uint8 batch with
        ``uint8_output="float"``, which comes back as a new float32 tensor).

        ``inplace`` overrides the transform's own setting for this call (collate functions mix the batch they just
        stacked in place, whatever the transform's default).

        The result has the type of ``x`` whether or not the batch was mixed, so a tensor subclass whose ops return
        plain tensors (torchvision's ``tv_tensors.Image`` / ``Video``) comes back as that subclass with its
        attributes, as torchvision's own ``MixUp`` / ``CutMix`` return it. The exception is ``nn.Parameter``: a
        mixed batch of learnable inputs is a plain tensor of their graph (unmixed, the Parameter itself).
        """
        out = self._apply_inputs(x, params, inplace)
        if type(out) is Tensor and type(x) is not Tensor and isinstance(x, Tensor):
            # not a Parameter: a mixed batch computed from learnable inputs is an activation, not a new parameter
            if not isinstance(x, torch.nn.Parameter):
                out = out.as_subclass(type(x))
                # the subclass's instance attributes, as torchvision's wrap() copies them
                out.__dict__.update(x.__dict__)
        return out

    def _apply_inputs(self, x: Tensor, params: MixParams, inplace: bool | None) -> Tensor:
        inplace = self.inplace if inplace is None else check_flag(inplace, "inplace")
        if self._averages_inputs() and isinstance(x, Tensor) and type(x) is not Tensor:
            _check_intensities(x, type(self).__name__)
        _check_params_batch(params, x.shape[0] if isinstance(x, Tensor) and x.dim() else -1, "inputs")
        # uint8_output="float": uint8 batches come back float32 whatever was drawn (identity, lam == 1, CutMix, ...)
        to_float = x.dtype == torch.uint8 and self.uint8_output == "float"
        if to_float and inplace:
            raise ValueError("cannot mix a uint8 batch in place with uint8_output='float' (float32 result)")
        if params.op == "identity":
            return x.float() if to_float else x
        if params.op == "noise":
            assert params.noise is not None
            if params.noise.shape != x.shape:  # noise drawn for another shape would broadcast silently
                raise ValueError(
                    f"these params hold noise of shape {tuple(params.noise.shape)} but the inputs have shape "
                    f"{tuple(x.shape)}; draw them with sample() on this batch"
                )
            return x.add_(params.noise) if inplace else x + params.noise
        if params.op == "mix":
            if not isinstance(params.lam, Tensor) and params.lam == 1.0:
                return x.float() if to_float else x
            if inplace:
                if params._drawn and params.partner_x is None and params.perm is not None:
                    # lam and perm come from sample(): skip re-validating them on the hot path
                    return F._mix_inplace_drawn(x, params.lam, params.perm, exact=bool(self.exact))
                return F.mix_(x, params.lam, params.perm, partner=params.partner_x, exact=bool(self.exact))
            exact = self.exact is not False
            if not exact and params._drawn and params.partner_x is None and params.perm is not None and not to_float:
                return F._mix_drawn(x, params.lam, params.perm)
            out_dtype = torch.float32 if to_float else None
            return F.mix(x, params.lam, params.perm, partner=params.partner_x, out_dtype=out_dtype, exact=exact)
        if params.op == "cutmix":
            assert params.box is not None
            if params.blend is not None:
                return self._cut_or_blend(x, params, inplace, to_float)
            if inplace:
                return F.cutmix_(x, params.box, params.perm, partner=params.partner_x)
            if to_float:  # a paste moves values: converting first is exact
                partner = None if params.partner_x is None else params.partner_x.float()
                return F.cutmix_(x.float(), params.box, params.perm, partner=partner)
            return F.cutmix(x, params.box, params.perm, partner=params.partner_x)
        if params.op == "dirichlet":
            assert params.weights is not None and params.indices is not None
            mixed = F.mix_many(x, params.weights, params.indices, out_dtype=torch.float32 if to_float else None)
            return x.copy_(mixed) if inplace else mixed
        raise ValueError(f"unknown op {params.op!r}")

    def _cut_or_blend(self, x: Tensor, params: MixParams, inplace: bool, to_float: bool) -> Tensor:
        """Per-sample boxes pasted, and the rows of ``params.blend`` mixed by the formula with their lam instead."""
        blend, box, lam = params.blend, params.box, params.lam
        per_sample = isinstance(box, Tensor) and box.dim() == 2 and isinstance(lam, Tensor)
        if not (per_sample and isinstance(blend, Tensor) and blend.dtype == torch.bool):
            raise ValueError(
                "params with blend need per-sample boxes (B, 4), per-sample lam (B,) and blend as a bool tensor (B,), "
                "as MixupOrCutMix(lam_mode='sample' or 'pair') draws them; draw them with sample()"
            )
        assert isinstance(box, Tensor) and isinstance(lam, Tensor) and blend is not None
        src = x.float() if to_float else x  # converting first is exact for a paste, and the formula's first step
        xp = params.partner_x
        if xp is None:
            assert params.perm is not None
            xp = src.index_select(0, params.perm.to(src.device))
        elif to_float:
            xp = xp.float()
        out = F.cutmix(src, box, partner=xp)
        rows = blend.nonzero().squeeze(1)
        if rows.numel():
            on = rows.to(src.device)
            exact = self.exact is not False
            out[on] = F.mix(src.index_select(0, on), lam[rows], partner=xp.index_select(0, on), exact=exact)
        return x.copy_(out) if inplace else out

    def _averages_inputs(self) -> bool:
        """Whether some draw of this transform forms weighted averages of input values (ERM, label smoothing and
        CutMix never do)."""
        return False

    def soft_targets(self, y: Tensor) -> Tensor:
        """One-hot (or given probability) targets ``(B, C)``, smoothed; regression targets unchanged; multi-hot rows
        as float32, smoothed towards 0.5.

        Any leading shape works (``(...,)`` class indices give ``(..., C)``, as under ``vmap``): integer labels are
        checked against ``num_classes`` (a class out of range is named, not left to torch's one-hot; empty, vmapped
        and meta-device labels pass), float labels must end in ``C = num_classes`` classes.
        """
        if not isinstance(y, Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(y).__name__}")
        if not (self.regression or self.multi_label):
            _check_soft_target_labels(y, self.num_classes)
        return self._soft_targets(y)

    def _soft_targets(self, y: Tensor) -> Tensor:
        """:meth:`soft_targets` for labels already checked (by ``sample()`` or ``_check_labels``)."""
        if self.regression:
            return y
        if self.multi_label:
            soft = y.to(torch.float32)
            # timm's expression, so that its multi-label targets and these agree bit for bit
            return soft * (1.0 - self.smoothing) + 0.5 * self.smoothing if self.smoothing else soft
        num_classes = self.num_classes if self.num_classes is not None else int(y.shape[-1])
        return F.smooth(F._one_hot(y, num_classes), self.smoothing)  # y was checked by sample() / _validate

    @_eager
    def apply_targets(self, y: Tensor, params: MixParams) -> Tensor:
        """Targets for the mixed batch: ``(B, C)`` float32 (or the regression targets, mixed)."""
        self._check_labels(y, params)
        _check_params_batch(params, y.shape[0] if isinstance(y, Tensor) and y.dim() else -1, "labels")
        check_choice(params.op, OPS, "op")  # an unknown op would otherwise get mixed targets
        if (
            params.op in ("mix", "cutmix")
            and params.perm is not None
            and params.partner_y is None
            and not self.regression
            and self.smoothing == 0.0
            and not y.is_floating_point()
            and y.dim() == 1
            and self.num_classes is not None
        ):
            # integer labels, no smoothing: two scatters, bit-identical to mixing the one-hots
            if params._drawn:  # lam and perm come from sample() and the batch size was checked above
                return F._mixed_one_hot(y, params.lam, params.perm, self.num_classes, torch.float32)
            return F.mixed_one_hot(y, params.lam, params.perm, self.num_classes)
        soft = self._soft_targets(y)
        partner = None if params.partner_y is None else self._soft_targets(params.partner_y)
        if params.op in ("identity", "noise"):
            return soft
        if params.op == "dirichlet":
            assert params.weights is not None and params.indices is not None
            return F.mix_many(soft, params.weights, params.indices)
        return F.mix_targets(soft, params.lam, params.perm, partner=partner)

    def _check_labels(self, y: Tensor, params: MixParams) -> None:
        """Labels other than those ``sample()`` checked for ``params`` (another task's labels, or params drawn on
        another batch) get its checks too: out-of-range classes failed inside torch, float (B,) labels were mixed
        as regression targets and (B, 1) labels gave (B, 1, C) targets."""
        if y is not getattr(params, "_labels", None):  # params of another type are named by _check_params_batch
            n = int(y.shape[0]) if isinstance(y, Tensor) and y.dim() else -1
            check_targets(y, n, self.num_classes, regression=self.regression, multi_label=self.multi_label)

    @_eager
    def __call__(self, x: Tensor, y: Tensor, *, partner: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Mix a batch. Returns ``(x_mixed, targets)`` with targets ``(B, C)`` float32.

        Args:
            x: inputs ``(B, ...)``: images, spectrograms, waveforms, tabular rows, features; float or uint8.
            y: integer labels ``(B,)``, probability labels ``(B, C)``, or regression targets.
            partner: partners ``(x_partner, y_partner)`` drawn from the dataset (k-NN pairing) instead of the batch.
        """
        params = self.sample(x, y, partner=partner)
        return self.apply_inputs(x, params), self.apply_targets(y, params)

    # -- checks and state ---------------------------------------------------------------------------------------
    def _validate(self, x: Tensor, y: Tensor, partner: tuple[Tensor, Tensor] | None) -> int:
        n = check_inputs(x, check_finite=self.check_finite)
        check_targets(y, n, self.num_classes, regression=self.regression, multi_label=self.multi_label)
        if partner is not None:
            if not isinstance(partner, tuple | list) or len(partner) != 2:
                got = f"a {type(partner).__name__}" + (
                    f" of {len(partner)} items" if isinstance(partner, tuple | list) else ""
                )
                raise TypeError(f"partner must be the pair (x_partner, y_partner), got {got}")
            px, py = partner
            # eager, as the batch itself: with prob < 1 or a CutMix switch a bad partner would otherwise fail only
            # on the batches that happen to be mixed
            check_inputs(px, check_finite=self.check_finite, what="partner inputs")
            if px.shape != x.shape:
                raise ValueError(f"partner inputs have shape {tuple(px.shape)} but inputs have {tuple(x.shape)}")
            F._check_partner(x, None, px)  # dtype and device, as the kernels check them
            if py.shape != y.shape:
                raise ValueError(f"partner labels have shape {tuple(py.shape)} but labels have {tuple(y.shape)}")
            check_targets(py, n, self.num_classes, regression=self.regression, multi_label=self.multi_label)
        self._check_batch(x, y, n, partner)
        return n

    def _check_batch(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> None:
        """Checks of a variant that depend on the batch, made on every call whatever is drawn (eager validation)."""

    def state_dict(self) -> dict[str, Any]:
        """The generator state: saving and restoring it continues the same random stream."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state saved by :meth:`state_dict`."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        if "generator" not in state:
            raise ValueError(
                f"state has no 'generator' entry (keys: {sorted(state)}); expected a dict from state_dict()"
            )
        gen_state = state["generator"]
        if not isinstance(gen_state, Tensor) or gen_state.dtype != torch.uint8:
            raise TypeError(
                "state['generator'] must be the uint8 tensor of torch.Generator.get_state(), got "
                f"{type(gen_state).__name__}"
            )
        try:
            self.generator.set_state(gen_state)
        except RuntimeError as err:
            raise ValueError(f"state['generator'] is not a valid generator state: {err}") from None

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._repr_options().items())
        return f"{type(self).__name__}({opts})"

    def _repr_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_classes": self.num_classes, "smoothing": self.smoothing}
        # options away from their defaults only, so that the common repr stays short
        for name, default in (
            ("prob", 1.0),
            ("regression", False),
            ("multi_label", False),
            ("check_finite", False),
            ("uint8_output", "round"),
            ("inplace", False),
            ("exact", None),
        ):
            if getattr(self, name) != default:
                opts[name] = getattr(self, name)
        return opts


class ERM(BatchMix):
    """No mixing: the inputs unchanged and one-hot targets (the baseline). With ``smoothing`` it is label
    smoothing alone (Table 5)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.prob != 1.0:
            raise ValueError(
                f"{type(self).__name__} leaves every batch's inputs as they are, so prob={self.prob!r} would change "
                "nothing; prob applies to transforms that mix or add noise"
            )


class LabelSmoothing(ERM):
    """Label smoothing without mixing (Table 5): eps/C on the wrong classes, 1 - eps + eps/C on the right one."""

    def __init__(self, smoothing: float = 0.1, **kwargs: Any) -> None:
        super().__init__(smoothing=smoothing, **kwargs)


class GaussianNoise(BatchMix):
    """Gaussian noise on the inputs, ``x + sigma * N(0, 1)`` (the Table 5 baseline), targets unmixed."""

    def __init__(self, sigma: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sigma = check_alpha(sigma, "sigma")

    def _check_batch(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> None:
        if not x.is_floating_point():
            raise TypeError(f"gaussian noise needs float inputs, got dtype {x.dtype}")

    def _averages_inputs(self) -> bool:
        return True  # noise added to a class id or a coordinate is no better than an average

    def _sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        noise = torch.randn(x.shape, generator=self.generator, dtype=torch.float32).to(x.device, x.dtype)
        return MixParams(op="noise", noise=noise * self.sigma)

    @_eager
    def sample(self, x: Tensor, y: Tensor, *, partner: tuple[Tensor, Tensor] | None = None) -> MixParams:
        self._reseed_in_worker()
        n = self._validate(x, y, partner)
        # noise applies to a batch of one too
        try:
            params = self._sample(x, y, n, partner) if self._coin() else MixParams()
        except RuntimeError as exc:
            _name_vmap_draws(x, exc)
            raise
        return self._stamp(params, y)

    def _repr_options(self) -> dict[str, Any]:
        return {"sigma": self.sigma, **super()._repr_options()}


def _pair_leaders(perm: Tensor) -> Tensor:
    """For each sample, the sample whose draws its pair shares (``lam_mode="pair"``): each pair (i, perm[i]) takes
    those of its smaller index, so both partners get one lam (and box, and switch). The minimum over i, perm[i] and
    perm[perm[i]] is that index for pairs (perm[perm[i]] == i) and the smallest of the three for the 3-cycle of an
    odd matching without self-pairs, which shares one draw too."""
    p = perm.cpu()
    return torch.minimum(torch.minimum(torch.arange(p.shape[0]), p), p[p])


def _check_same_class(pairing: str, regression: bool, multi_label: bool = False) -> None:
    if regression and pairing == "same_class":
        # every continuous target would be a class of its own (each sample paired with itself: no mixing at all),
        # and (B, K) targets would be grouped by the argmax of K outputs, which means nothing
        raise ValueError("pairing='same_class' needs class labels, not regression targets")
    if multi_label and pairing == "same_class":  # a sample of several classes has no one class to pair within
        raise ValueError("pairing='same_class' needs one class per sample, not multi-label targets")


class Mixup(BatchMix):
    """mixup (Zhang et al., ICLR 2018) and its ablation variants.

    Args:
        alpha: lam ~ Beta(alpha, alpha); ``alpha = 0`` returns the batch unchanged (ERM).
        pairing: ``"random"`` (AC+RP, paper), ``"same_class"`` (SC+RP), ``"roll"``, ``"flip"``, ``"matching"`` (a
            random perfect matching: symmetric pairs, see :func:`vicinal.pairing.matching_pairs`); for k-NN pairing
            pass partners drawn with :class:`vicinal.KNNPartners` as ``partner=``.
        lam_mode: ``"batch"`` (one lam per minibatch, paper), ``"sample"`` (one per sample) or ``"pair"`` (one per
            pair of samples that are each other's partner, timm's ``mode="pair"``: both get the same lam, so the two
            mixes are ``lam * a + (1 - lam) * b`` and ``lam * b + (1 - lam) * a``; needs ``pairing="flip"`` (timm's
            pairs) or ``"matching"`` (random pairs), whose partners are mutual; the three-sample cycle of an odd
            matching with ``allow_self=False`` shares one lam as well).
        targets: ``"mixed"`` (paper) or ``"closer"`` ("mix inputs only", Table 5: the one-hot of x_i when
            lam >= 0.5, else of x_j).
        allow_self: ``False`` forbids pairing a sample with itself where the batch allows it.
        **kwargs: see :class:`BatchMix` (num_classes, smoothing, regression, inplace, exact, generator, seed, ...).

    Example:
        >>> import torch, vicinal
        >>> x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
        >>> mixer = Mixup(alpha=1.0, num_classes=10, seed=0)
        >>> x_mixed, y_soft = mixer(x, y)        # y (B,) int64 -> y_soft (B, 10)
        >>> loss = vicinal.soft_cross_entropy(model(x_mixed), y_soft)
        >>> fast = Mixup(alpha=1.0, num_classes=10, inplace=True, seed=0)
        >>> x_mixed, y_soft = fast(x, y)         # overwrites x: no allocation
        >>> x_mixed is x
        True
    """

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        pairing: str = "random",
        lam_mode: str = "batch",
        targets: str = "mixed",
        allow_self: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)
        self.pairing = check_choice(pairing, PAIRINGS, "pairing")
        self.lam_mode = check_choice(lam_mode, MIXUP_LAM_MODES, "lam_mode")
        self.targets = check_choice(targets, TARGET_MODES, "targets")
        if self.lam_mode == "pair" and self.pairing not in ("flip", "matching"):
            raise ValueError(
                f"lam_mode='pair' gives each two samples that are each other's partner one lam: it needs "
                f"pairing='flip' or 'matching', whose partners are mutual, got pairing={self.pairing!r}"
            )
        self.allow_self = check_flag(allow_self, "allow_self")
        if self.regression and self.targets == "closer":
            raise ValueError("targets='closer' needs class labels, not regression targets")
        _check_same_class(self.pairing, self.regression, self.multi_label)

    def _averages_inputs(self) -> bool:
        return True

    def _pairs(self, y: Tensor, n: int) -> Tensor:
        return batch_pairs(self.pairing, n, y, generator=self.generator, allow_self=self.allow_self)

    def _check_batch(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> None:
        if partner is not None and self.lam_mode == "pair":
            raise ValueError(
                "lam_mode='pair' shares lam between partners within the batch; with partner= from the dataset each "
                "sample has its own partner: use lam_mode='sample'"
            )
        if partner is None and self.pairing == "knn":
            raise ValueError("pairing='knn' needs partner=(x_partner, y_partner) from KNNPartners.sample")
        if partner is None and self.pairing == "flip" and not self.allow_self and n % 2 == 1 and n > 1:
            raise ValueError(
                f"flip pairing pairs the middle sample of an odd batch ({n}) with itself; allow_self=False forbids it"
            )

    def _sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        if self.alpha == 0.0:
            return MixParams()  # ERM limit: bit-identical batch, no randomness consumed
        pair = self.lam_mode == "pair"
        lam = sample_lam(self.alpha, n, "sample" if pair else self.lam_mode, generator=self.generator)
        if partner is not None:
            return MixParams(op="mix", lam=lam, partner_x=partner[0], partner_y=partner[1])
        perm = self._pairs(y, n)
        if pair:
            assert isinstance(lam, Tensor)
            lam = lam[_pair_leaders(perm)]
        return MixParams(op="mix", lam=lam, perm=perm)

    @_eager
    def apply_targets(self, y: Tensor, params: MixParams) -> Tensor:
        if self.targets == "closer" and params.op in ("mix", "cutmix"):
            self._check_labels(y, params)
            _check_params_batch(params, y.shape[0] if isinstance(y, Tensor) and y.dim() else -1, "labels")
            partner = None if params.partner_y is None else self._soft_targets(params.partner_y)
            return F.closer_targets(self._soft_targets(y), params.lam, params.perm, partner=partner)
        return super().apply_targets(y, params)

    def _repr_options(self) -> dict[str, Any]:
        opts = {"alpha": self.alpha, "pairing": self.pairing, "lam_mode": self.lam_mode, "targets": self.targets}
        if not self.allow_self:
            opts["allow_self"] = False
        return {**opts, **super()._repr_options()}


class CutMix(Mixup):
    """CutMix (Yun et al., ICCV 2019): paste a box of area ``(1 - lam) * H * W`` from the partner; lam is corrected
    to the area actually kept after the box is clipped to the image. Inputs need at least 3 dimensions
    ``(B, ..., H, W)``; one box and one lam per batch, or with ``lam_mode="sample"`` (timm's ``mode="elem"``) one
    of each per sample: n lams, the partners, then n box centres (:func:`vicinal.functional.cutmix_boxes`). With
    ``lam_mode="pair"`` (timm's ``mode="pair"``; ``pairing="flip"`` or ``"matching"``) the same n draws are made and
    the two samples of a pair both take the box of the smaller index: each pastes the other's pixels in one place.

    Rounding convention: the box sides are ``round(H * sqrt(1 - lam))`` and ``round(W * sqrt(1 - lam))``, rounded
    to the nearest integer, where timm (``rand_bbox``) and the CutMix authors' code truncate with ``int(...)``.
    For the same drawn lam a box here can be one pixel taller or wider than timm's. The targets are right either
    way: lam is always recomputed from the pasted box, ``lam = 1 - box_area / (H * W)``, so the label weights equal
    the pixel fractions actually mixed (the correction timm applies with ``correct_lam=True``).

    ``targets="closer"`` gives each sample the label of the larger part of its image (lam >= 0.5: its own).

    ``box_range=(min, max)`` (timm's ``cutmix_minmax``) draws the box instead of lam: its height uniform among the
    integers in ``[int(H * min), int(H * max))``, its width likewise on ``W``, placed uniformly inside the image
    (:func:`vicinal.functional.cutmix_range_box`); lam is the kept area. No Beta draw is made, so ``alpha`` must stay
    at 1 (timm forces it there too). Typical ranges are 0.2-0.3 for ``min`` and 0.8-0.9 for ``max``.
    """

    box_range: tuple[float, float] | None = None  # the class default: a CutMix pickled before the option has none

    def __init__(self, alpha: float = 1.0, *, box_range: tuple[float, float] | None = None, **kwargs: Any) -> None:
        super().__init__(alpha, **kwargs)
        self.box_range = None if box_range is None else F.check_box_range(box_range)
        if self.box_range is not None and self.alpha != 1.0:
            raise ValueError(
                f"box_range draws the box sides from a range, not lam from Beta(alpha, alpha): leave CutMix's alpha "
                f"(MixupOrCutMix's cutmix_alpha) at 1, got {self.alpha}"
            )

    def _averages_inputs(self) -> bool:
        return False

    def _check_batch(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> None:
        super()._check_batch(x, y, n, partner)
        if x.dim() < 3:
            raise ValueError(f"CutMix needs inputs of shape (B, ..., H, W), got shape {tuple(x.shape)}")
        if x.shape[-2] == 0 or x.shape[-1] == 0:
            raise ValueError(f"CutMix needs images of at least 1x1 pixels, got shape {tuple(x.shape)}")
        if self.box_range is not None:
            F._range_sides(self.box_range, x.shape[-2], x.shape[-1])

    def _sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        if self.lam_mode != "batch":
            return self._sample_boxes(y, n, x.shape[-2], x.shape[-1], partner)
        if self.box_range is not None:  # the partners as Mixup draws them, then the box: no lam is drawn
            perm = None if partner is not None else self._pairs(y, n)
            u = torch.rand(4, generator=self.generator, dtype=torch.float64)
            box, lam = F.cutmix_range_box(self.box_range, x.shape[-2], x.shape[-1], u)
            px, py = (None, None) if partner is None else partner
            return MixParams(op="cutmix", lam=lam, perm=perm, partner_x=px, partner_y=py, box=box)
        base = super()._sample(x, y, n, partner)
        if base.op == "identity":
            return base
        u = torch.rand(2, generator=self.generator, dtype=torch.float64)
        assert not isinstance(base.lam, Tensor)
        box, lam = F.cutmix_box(base.lam, x.shape[-2], x.shape[-1], u)
        return MixParams(
            op="cutmix", lam=lam, perm=base.perm, partner_x=base.partner_x, partner_y=base.partner_y, box=box
        )

    def _sample_boxes(
        self, y: Tensor, n: int, height: int, width: int, partner: tuple[Tensor, Tensor] | None
    ) -> MixParams:
        """One box per sample: the lams (none with box_range), the partners, then the uniforms of every box."""
        if self.alpha == 0.0:
            return MixParams()  # ERM limit, as one box per batch
        return MixParams(op="cutmix", **self._boxes(y, n, height, width, partner))

    def _boxes(
        self, y: Tensor, n: int, height: int, width: int, partner: tuple[Tensor, Tensor] | None
    ) -> dict[str, Any]:
        lam = None if self.box_range is not None else sample_lam(self.alpha, n, "sample", generator=self.generator)
        perm = None if partner is not None else self._pairs(y, n)
        if lam is None:
            u = torch.rand(n, 4, generator=self.generator, dtype=torch.float64)
            boxes, kept = F.cutmix_range_boxes(self.box_range, height, width, u)  # type: ignore[arg-type]
        else:
            u = torch.rand(n, 2, generator=self.generator, dtype=torch.float64)
            boxes, kept = F.cutmix_boxes(lam, height, width, u)
        if self.lam_mode == "pair":  # partners share the box (and so its lam): each pastes the other's pixels
            assert perm is not None  # lam_mode='pair' with partner= is refused by _check_batch
            lead = _pair_leaders(perm)
            boxes, kept = boxes[lead], kept[lead]
        px, py = (None, None) if partner is None else partner
        return {"lam": kept, "perm": perm, "partner_x": px, "partner_y": py, "box": boxes}

    def _repr_options(self) -> dict[str, Any]:
        opts = super()._repr_options()
        return opts if self.box_range is None else {"alpha": opts.pop("alpha"), "box_range": self.box_range, **opts}


class MixupOrCutMix(BatchMix):
    """Per batch, CutMix with probability ``switch_prob``, else mixup (the switch of timm and torchvision users).

    Args:
        mixup_alpha, cutmix_alpha: Beta parameters of each; ``switch_prob``: probability of CutMix.
        box_range: CutMix boxes with sides drawn from this range of image fractions (timm's ``cutmix_minmax``, see
            :class:`CutMix`; ``cutmix_alpha`` stays 1).
        lam_mode: ``"batch"`` (one switch, lam and box per batch), ``"sample"`` (timm's ``mode="elem"``: per
            sample, a switch, a lam, and for CutMix a box of its own; one ``prob`` coin per batch still) or
            ``"pair"`` (timm's ``mode="pair"``, with ``pairing="flip"`` or ``"matching"``: the draws of
            ``"sample"``, the two samples of each pair taking those of the smaller index, so partners share their
            switch, lam and box). The random stream per batch is then: the switches, the mixup lams, the CutMix lams
            (none with ``box_range``), the partners, the box uniforms; with ``switch_prob`` 0 or 1, only what that
            branch draws.
        **kwargs: pairing, allow_self, num_classes, smoothing, generator, seed, ...
    """

    lam_mode = "batch"  # the class default: a transform pickled before the option has none

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_prob: float = 0.5,
        *,
        pairing: str = "random",
        allow_self: bool = True,
        box_range: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        lam_mode = kwargs.pop("lam_mode", "batch")  # not an option of the base class
        super().__init__(**kwargs)
        self.lam_mode = check_choice(lam_mode, MIXUP_LAM_MODES, "lam_mode")
        self.switch_prob = check_probability(switch_prob, "switch_prob")
        _check_same_class(pairing, self.regression, self.multi_label)
        shared = {
            "pairing": pairing,
            "allow_self": allow_self,
            "num_classes": self.num_classes,
            "smoothing": self.smoothing,
            "generator": self.generator,
            "uint8_output": self.uint8_output,
            "lam_mode": lam_mode,
        }
        # Both share this transform's generator, so one state_dict covers the whole stream.
        self.mixup = Mixup(mixup_alpha, **shared)
        self.cutmix = CutMix(cutmix_alpha, box_range=box_range, **shared)
        # alpha = 0 is the ERM limit of a branch, while timm reads it as "branch disabled": with one alpha 0 and
        # its branch drawn, that share of the batches would silently go unmixed, so it is refused
        for name, alpha, drawn, other in (
            ("mixup_alpha", self.mixup.alpha, self.switch_prob < 1.0, "CutMix(cutmix_alpha) or switch_prob=1"),
            ("cutmix_alpha", self.cutmix.alpha, self.switch_prob > 0.0, "Mixup(mixup_alpha) or switch_prob=0"),
        ):
            if alpha == 0.0 and drawn and self.mixup.alpha + self.cutmix.alpha > 0.0:
                raise ValueError(
                    f"{name}=0 leaves the batches of its branch unmixed (the ERM limit, not a disabled branch as in "
                    f"timm), here with switch_prob={self.switch_prob}; for one method alone use {other}"
                )

    def _check_batch(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> None:
        # every branch that can be drawn checks every batch: an input one of them rejects fails on every call
        if self.switch_prob < 1.0:
            self.mixup._check_batch(x, y, n, partner)
        if self.switch_prob > 0.0:
            self.cutmix._check_batch(x, y, n, partner)

    def _averages_inputs(self) -> bool:
        return self.switch_prob < 1.0

    def _sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        if self.lam_mode != "batch" and 0.0 < self.switch_prob < 1.0:
            return self._sample_per_sample(x, y, n, partner)
        if self.lam_mode != "batch":  # one branch only: its own per-sample (per-pair) draws, no switches
            return (self.cutmix if self.switch_prob == 1.0 else self.mixup)._sample(x, y, n, partner)
        use_cutmix = float(torch.rand((), generator=self.generator, dtype=torch.float64)) < self.switch_prob
        chosen = self.cutmix if use_cutmix else self.mixup
        return chosen._sample(x, y, n, partner)

    def _sample_per_sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        if self.mixup.alpha == 0.0 and self.cutmix.alpha == 0.0:
            return MixParams()  # both branches at the ERM limit (one alone at 0 is refused at construction)
        cut = torch.rand(n, generator=self.generator, dtype=torch.float64) < self.switch_prob
        lam_mix = sample_lam(self.mixup.alpha, n, "sample", generator=self.generator)
        drawn = self.cutmix._boxes(y, n, x.shape[-2], x.shape[-1], partner)  # boxes shared within pairs already
        if self.lam_mode == "pair":
            lead = _pair_leaders(drawn["perm"])
            cut, lam_mix = cut[lead], lam_mix[lead]
        boxes = drawn.pop("box").masked_fill(~cut.unsqueeze(1), 0)  # mixup rows paste nothing
        lam = torch.where(cut, drawn.pop("lam"), lam_mix)
        return MixParams(op="cutmix", lam=lam, box=boxes, blend=~cut, **drawn)

    def _repr_options(self) -> dict[str, Any]:
        return {
            "mixup_alpha": self.mixup.alpha,
            "cutmix_alpha": self.cutmix.alpha,
            "switch_prob": self.switch_prob,
            "pairing": self.mixup.pairing,
            **({} if self.lam_mode == "batch" else {"lam_mode": self.lam_mode}),
            **({} if self.mixup.allow_self else {"allow_self": False}),
            **({} if self.cutmix.box_range is None else {"box_range": self.cutmix.box_range}),
            **super()._repr_options(),
        }


class DirichletMixup(BatchMix):
    """Convex combinations of ``k >= 3`` examples with weights ~ Dirichlet(alpha, ..., alpha) (Section 2: "convex
    combinations of three or more examples ... do not provide further gain but increase the computation cost").
    ``k=2`` is accepted too: mixup's pair with lam ~ Beta(alpha, alpha), drawn through the Dirichlet sampler.

    Partner j of each sample comes from an independent random permutation; the first "partner" is the sample
    itself. ``lam_mode="batch"`` shares one weight vector over the batch.
    """

    def __init__(self, alpha: float = 1.0, *, k: int = 3, lam_mode: str = "batch", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)
        if not is_int(k) or k < 2:
            raise ValueError(f"k must be an int >= 2, got {k!r}")
        self.k = int(k)
        self.lam_mode = check_choice(lam_mode, LAM_MODES, "lam_mode")

    def _check_batch(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> None:
        if partner is not None:
            raise ValueError("Dirichlet mixing draws its partners from the batch; partner= is not supported")

    def _averages_inputs(self) -> bool:
        return True

    def _sample(self, x: Tensor, y: Tensor, n: int, partner: tuple[Tensor, Tensor] | None) -> MixParams:
        if self.alpha == 0.0:
            return MixParams()
        size = () if self.lam_mode == "batch" else (n,)
        weights = sample_dirichlet(self.alpha, self.k, size, generator=self.generator)
        indices = torch.stack(
            [torch.arange(n)] + [random_pairs(n, generator=self.generator) for _ in range(self.k - 1)]
        )
        weights = weights.expand(n, self.k) if weights.dim() == 1 else weights
        return MixParams(op="dirichlet", lam=weights[:, 0], weights=weights, indices=indices)

    def _repr_options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "k": self.k, "lam_mode": self.lam_mode, **super()._repr_options()}


def _mix_inputs_only(alpha: float = 1.0, **kwargs: Any) -> Mixup:
    return Mixup(alpha, targets="closer", **kwargs)


def _mix_inputs_label_smoothing(alpha: float = 1.0, smoothing: float = 0.1, **kwargs: Any) -> Mixup:
    return Mixup(alpha, targets="closer", smoothing=smoothing, **kwargs)


_REGISTRY: dict[str, Any] = {
    "erm": ERM,
    "mixup": Mixup,
    "cutmix": CutMix,
    "mixup_or_cutmix": MixupOrCutMix,
    "mix_inputs_only": _mix_inputs_only,
    "label_smoothing": LabelSmoothing,
    "mix_inputs_label_smoothing": _mix_inputs_label_smoothing,
    "gaussian_noise": GaussianNoise,
    "dirichlet": DirichletMixup,
}
VARIANTS: tuple[str, ...] = tuple(_REGISTRY)


def build(name: str, **kwargs: Any) -> BatchMix:
    """Build a batch transform by name (see :data:`VARIANTS`), e.g. ``build("mixup", alpha=1.0, num_classes=10)``.

    Table 5 names: ``erm``, ``mixup`` (AC+RP; ``pairing="same_class"`` for SC+RP), ``mix_inputs_only``,
    ``label_smoothing``, ``mix_inputs_label_smoothing``, ``gaussian_noise``; Section 2: ``dirichlet``; peers:
    ``cutmix``, ``mixup_or_cutmix``. Latent mixing is :class:`vicinal.LatentMixup`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise TypeError(f"variant {name!r}: {err}") from None
        fixed = re.search(r"got multiple values for keyword argument '(\w+)'", str(err))
        if fixed:  # mix_inputs_only and mix_inputs_label_smoothing set targets themselves: Python named Mixup()
            raise TypeError(
                f"variant {name!r} sets {fixed.group(1)} itself (it is what the variant is): drop "
                f"{fixed.group(1)}=, or build 'mixup' with it"
            ) from None
        raise
