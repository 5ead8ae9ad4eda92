"""Deterministic mixing kernels. Randomness (lam, perm, boxes) is drawn elsewhere and passed in, so every kernel
can be checked exactly against the paper's formula ``lam * x_i + (1 - lam) * x_j`` (Section 2).

Three ways to mix a batch, all for any permutation, per-batch or per-sample lam, float32/64, bfloat16, float16 and
uint8 (rounded to nearest):

* ``mix(x, lam, perm)``: a new tensor, bit-identical to the formula (on CPU computed by the chunked kernel below);
  with ``exact=False``, within the rounding bound of ``mix_`` and faster on CPU (see :func:`mix`).
* ``mix(x, lam, perm, out=buf)``: the same values written into a preallocated tensor: no allocation per call.
* ``mix_(x, lam, perm)``: in place, the fast path, each element read from memory once and written once: one
  ``lerp`` per cache-sized slice in float32/64 (no batch-sized allocation), the fused gather-and-mix in
  bfloat16/float16 (bounded rounding, see :func:`mix_`) or, with ``exact=True``, bit-identical to the formula.
"""

from __future__ import annotations

import math
import operator
import threading
import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from ._validation import (
    _forward_ad_level,
    _functorch_wrapped,
    check_float_dtype,
    check_index_range,
    check_inputs,
    check_lam,
    check_num_classes,
    check_probability,
    is_int,
    unless_vmapped,
)


def _expand(lam: float | Tensor, x: Tensor, dtype: torch.dtype) -> float | Tensor:
    """A per-sample lam (B,) broadcast over the trailing dimensions of x: (B, 1, 1, ...)."""
    if isinstance(lam, Tensor):
        return lam.to(device=x.device, dtype=dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return float(lam)


def _check_partner(x: Tensor, perm: Tensor | None, partner: Tensor | None) -> None:
    if partner is not None:
        if perm is not None:
            raise ValueError("pass either perm or partner, not both")
        if not isinstance(partner, Tensor):
            raise TypeError(f"partner must be a torch.Tensor (the partner batch), got {type(partner).__name__}")
        if partner.shape != x.shape:
            raise ValueError(f"partner batch has shape {tuple(partner.shape)} but inputs have {tuple(x.shape)}")
        # a partner of another dtype would make the result's dtype (and uint8 rounding) depend on the path taken
        if partner.dtype != x.dtype or partner.device != x.device:
            raise ValueError(
                f"partner batch has dtype {partner.dtype} on {partner.device} but inputs have dtype {x.dtype} "
                f"on {x.device}; convert the partners to match"
            )
        return
    if perm is None:
        raise ValueError("mix needs perm (partner indices into the batch) or partner (the partner batch)")
    _check_perm(perm, x.shape[0])


def _check_exact(exact: object) -> None:
    if not isinstance(exact, bool):  # None or a string would otherwise pick a kernel by truthiness
        raise TypeError(f"exact must be True or False, got {exact!r}")


def _check_perm_shape(perm: Tensor, n: int) -> None:
    """``perm`` must be ``(n,)`` int64 or int32 indices (the index dtypes of ``index_select``): no device sync."""
    if not isinstance(perm, Tensor):
        raise TypeError(f"perm must be a torch.Tensor of partner indices, got {type(perm).__name__}")
    if perm.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"perm must be an integer tensor of partner indices (int64 or int32), got dtype {perm.dtype}")
    if perm.shape != (n,):
        raise ValueError(f"perm has shape {tuple(perm.shape)} but the batch has {n} samples")


def _check_perm(perm: Tensor, n: int) -> None:
    """``perm`` must be ``(n,)`` integer indices in ``[0, n)``: one min/max reduction."""
    _check_perm_shape(perm, n)
    lo, hi = torch.stack(torch.aminmax(perm)).tolist()  # one reduction, one device sync
    if lo < 0 or hi >= n:
        raise ValueError(
            f"perm must hold indices in [0, {n}) (partners within the batch), got values from {lo} to {hi}"
        )


def _check_x(x: Tensor, out_dtype: torch.dtype | None = None) -> None:
    """The batch a kernel mixes: float or uint8 with the batch first (other dtypes would be truncated or clamped),
    and ``out_dtype`` a float dtype (the exact mix of uint8 inputs)."""
    check_inputs(x, what="x")
    if out_dtype is not None and not (isinstance(out_dtype, torch.dtype) and out_dtype.is_floating_point):
        raise TypeError(f"out_dtype must be a floating-point dtype (the unrounded mix), got {out_dtype!r}")
    if out_dtype is not None and x.is_floating_point() and out_dtype != x.dtype:
        # a float batch is mixed in its own dtype: a float64 request would come back float32, silently
        raise ValueError(
            f"out_dtype is for uint8 inputs (the unrounded mix); a {x.dtype} batch is mixed in its own dtype, "
            f"got out_dtype={out_dtype}: convert x first"
        )


def _partner(x: Tensor, perm: Tensor | None, partner: Tensor | None) -> Tensor:
    _check_partner(x, perm, partner)
    if partner is not None:
        return partner
    assert perm is not None
    return x.index_select(0, perm.to(x.device))


def _formula(x: Tensor, lam: float | Tensor, xp: Tensor, out_dtype: torch.dtype | None) -> Tensor:
    """The paper's formula, written out: the reference every other path is tested against."""
    if x.is_floating_point():
        w = _expand(lam, x, x.dtype)
        return w * x + (1 - w) * xp
    compute = out_dtype if out_dtype is not None else torch.float32
    w = _expand(lam, x, compute)
    mixed = w * x.to(compute) + (1 - w) * xp.to(compute)
    if out_dtype is not None:
        return mixed
    # round half to even, then clamp guards against float error just outside [0, 255]
    return mixed.round_().clamp_(0, 255).to(x.dtype)


def mix(
    x: Tensor,
    lam: float | Tensor,
    perm: Tensor | None = None,
    *,
    partner: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    out: Tensor | None = None,
    exact: bool = True,
) -> Tensor:
    """``lam * x + (1 - lam) * x[perm]`` (or ``* partner``), the paper's vicinal sample.

    By default the result is bit-identical (``torch.equal``) to that formula evaluated with PyTorch ops, whichever
    path computes it: on CPU, batches of at least 256 KiB go through the chunked kernel below (it reproduces the
    formula's roundings one cache-sized slice of every sample at a time, without the full-batch gather and
    temporaries); smaller batches and other devices evaluate the formula directly. ``exact=False`` trades the
    bit-identity for speed within the rounding bound stated in :func:`mix_`: on CPU a contiguous float32, bfloat16
    or float16 batch of up to 6 MiB is mixed in one fused pass that never writes the gathered partners
    (``torch.embedding_bag`` with per-sample weights); a larger one, or another layout, the way :func:`mix_` mixes
    it, into the new tensor. On other devices ``exact=False`` changes nothing.

    Args:
        x: batch ``(B, ...)`` of any modality, float or uint8.
        lam: weight of ``x`` itself: a float (one per batch) or a tensor ``(B,)`` (one per sample), in [0, 1]
            (anything else, NaN included, raises ``ValueError``; a tensor lam costs one reduction to check). A float
            lam weighs a half-precision batch in float32 (PyTorch's scalar arithmetic); a tensor lam is rounded to
            the batch's float dtype first, as the formula reads in that dtype (bfloat16: to 8 significant bits).
        perm: ``(B,)`` integer partner indices into the batch, each in ``[0, B)`` (checked with one min/max).
        partner: the partner batch itself (e.g. k-NN partners drawn from the dataset), instead of ``perm``.
        out_dtype: for uint8 inputs, a float dtype returns the exact mix without rounding; by default uint8 inputs
            are mixed in float32 and rounded to the nearest integer (never truncated).
        out: a preallocated result tensor (same shape as ``x``; dtype ``out_dtype`` or that of ``x``) to write
            into: no allocation per call. ``out=x`` mixes in place (see :func:`mix_`).
        exact: ``True`` (default) reproduces the formula bit for bit; ``False`` allows the faster kernels above,
            within :func:`mix_`'s bound. uint8 batches are always exact.

    Returns:
        The mixed batch, same shape as ``x`` (``out`` itself when given).
    """
    _check_x(x, out_dtype)
    _check_partner(x, perm, partner)
    lam = check_lam(lam, x.shape[0])
    _check_exact(exact)
    result_dtype = x.dtype if (x.is_floating_point() or out_dtype is None) else out_dtype
    if out is not None:
        _check_out(x, out, result_dtype, partner)
        return _mix_into(out, x, lam, perm, partner, exact=exact)
    if not exact and perm is not None and _bag_applies(x, lam, perm):
        return _bag_mix(x.view(x.shape[0], -1), lam, perm).view_as(x)
    if _worth_chunking(x) and _plain(x, lam, partner):
        out = torch.empty_like(x, dtype=result_dtype)
        return _mix_into(out, x, lam, perm, partner, exact=exact)
    return _formula(x, lam, _partner(x, perm, partner), out_dtype)


def _bag_applies(x: Tensor, lam: float | Tensor, perm: Tensor) -> bool:
    """Whether :func:`_bag_mix` may compute a new mixed batch: a contiguous CPU batch in _BAG_DTYPES of one slice,
    and nothing autograd or functorch must see."""
    return (
        x.is_cpu
        and perm.is_cpu
        and x.dtype in _BAG_DTYPES
        and x.numel() > 0  # embedding_bag has no rows of length 0
        and x.is_contiguous()
        and x.numel() * x.element_size() <= _SINGLE_PASS_BYTES  # x.nbytes fails on torch.compile's symbolic sizes
        and _plain(x, lam)
    )


def _mix_drawn(x: Tensor, lam: float | Tensor, perm: Tensor) -> Tensor:
    """``mix(x, lam, perm, exact=False)`` for a lam and perm drawn by a transform (already valid), without the
    checks on the hot path."""
    if _bag_applies(x, lam, perm):
        return _bag_mix(x.view(x.shape[0], -1), lam, perm).view_as(x)
    return mix(x, lam, perm, exact=False)


def mix_(
    x: Tensor,
    lam: float | Tensor,
    perm: Tensor | None = None,
    *,
    partner: Tensor | None = None,
    exact: bool = False,
) -> Tensor:
    """In-place :func:`mix`: overwrite ``x`` with ``lam * x + (1 - lam) * x[perm]`` and return it.

    Works for any permutation (not only pairings that are involutions): on CPU the batch is processed one
    cache-sized slice of every sample at a time, and each slice's partners are gathered before the slice is
    overwritten, so each element is read from memory once and written once. In float32/64 no batch-sized temporary
    is allocated (scratch buffers of one slice, at most 6 MiB, are kept per thread and reused); in bfloat16/float16
    the fused gather-and-mix writes each slice's (or each piece's) result to a new tensor, copied back. Tensors that
    autograd or functorch must see (``requires_grad``, forward-AD duals, ``vmap``) are mixed with the formula and
    copied back instead.

    Args:
        x: batch ``(B, ...)``, float (float32/64, bfloat16, float16) or uint8, overwritten.
        lam: a float (one per batch) or a tensor ``(B,)`` (one per sample), in [0, 1] (checked as in :func:`mix`).
        perm: ``(B,)`` partner indices into the batch, in ``[0, B)``; or ``partner``: a partner batch of the same
            shape.
        exact: ``True`` reproduces the formula's roundings bit for bit (three arithmetic passes over each cached
            slice instead of one).
            ``False`` (default) computes each slice with one ``torch.lerp``, choosing the direction so that
            the weight passed is the smaller of ``lam`` and ``1 - lam`` (bfloat16 and float16 on CPU: the fused
            gather-and-mix of :func:`mix` with ``exact=False``, one slice or equal pieces of every sample at a time,
            each copied back). It then differs from the formula only by
            float rounding: elementwise ``|mix_(x) - formula| <= 6 u (|x_i| + |x_j|)`` with ``u`` the unit
            roundoff of the dtype (2**-24 float32, 2**-53 float64, 2**-8 bfloat16, 2**-11 float16), plus a
            subnormal-sized absolute term; derivation in ``tests/mixing_reference.py``. The bound needs
            ``|x_i - x_j|`` to be finite (values below half the dtype's largest, ~1.7e38 in float32 and bfloat16):
            beyond that the difference the lerp forms overflows, where the formula does not. uint8 batches are always
            exact: ``round(lam * a + (1 - lam) * b)`` computed in float32, as :func:`mix` does (with one lam per
            batch, one fused uint8 pass per slice, see ``_mix_uint8_quantized``).

    Returns:
        ``x``, mixed.
    """
    _check_x(x)
    _check_partner(x, perm, partner)
    lam = check_lam(lam, x.shape[0])
    _check_exact(exact)
    if partner is not None:
        _check_no_overlap(x, partner, "x", "partner")
    if not exact and not x.is_floating_point():
        exact = True  # uint8: lerp does not apply; the float32 formula and rounding are cheap per slice
    return _mix_into(x, x, lam, perm, partner, exact=exact)


def _mix_inplace_drawn(x: Tensor, lam: float | Tensor, perm: Tensor, *, exact: bool) -> Tensor:
    """:func:`mix_` for a lam and perm drawn by a transform (already valid): the same kernel, without the checks."""
    if (
        not exact
        and not isinstance(lam, Tensor)
        and x.is_cpu
        and perm.is_cpu
        and x.is_floating_point()
        and x.is_contiguous()
        and x.numel() * x.element_size() <= _SINGLE_PASS_BYTES  # x.nbytes fails on torch.compile's symbolic sizes
        and _plain(x)  # autograd, forward-AD duals and functorch take _mix_into's formula
    ):
        # the one-slice case of _mix_into (a batch that fits L2), without its layout and dtype dispatch: the same
        # ops (the fused gather-and-mix, or a gather into the reused buffer and one lerp), so the same values bit
        # for bit
        n = x.shape[0]
        x2 = x.view(n, -1)  # (B, F): index_select's row-copy path (a 4-D gather is several times slower)
        lam = float(lam)
        if x.dtype in _BAG_INPLACE_DTYPES:
            if x2.shape[1]:  # embedding_bag has no rows of length 0; such samples mix to themselves
                x2.copy_(_bag_mix(x2, lam, perm))
            return x
        ps = torch.index_select(x2, 0, perm, out=_scratch_rows("p", n, x2.shape[1], x.dtype))
        w = 1 - lam
        if w <= 0.5:
            torch.lerp(x2, ps, w, out=x2)
        else:
            torch.lerp(ps, x2, lam, out=x2)
        return x
    if (
        x.dtype == torch.uint8
        and not isinstance(lam, Tensor)
        and x.is_cpu
        and perm.is_cpu
        and x.is_contiguous()
        and 0 < x.numel() <= _Q_CHUNK_BYTES
        and not _functorch_wrapped(x)
        and _quantized_mix_applies(lam)
    ):
        # a collate-sized uint8 batch (one slice): _mix_into's fused uint8 pass without its layout and dtype
        # dispatch, which costs as much as the pass itself at batch 32 (the same ops, so the same values bit for bit)
        x2 = x.view(x.shape[0], -1)
        _mix_uint8_quantized(x2, x2, float(lam), perm, None)
        return x
    return _mix_into(x, x, lam, perm, None, exact=exact or not x.is_floating_point())


def _check_no_overlap(a: Tensor, b: Tensor, a_name: str, b_name: str) -> None:
    # conservative: any overlap of the two address ranges counts (overlap inside them would make the result depend
    # on the slice order). Addresses, not storages: two torch storages can hold the same memory (from_numpy views of
    # one array, frombuffer), and unrelated empty tensors share the storage address 0 while holding nothing.
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device or _functorch_wrapped(a) or _functorch_wrapped(b):
        return  # functorch (vmap, grad) wrappers hold no address; their transforms mix through the formula
    (a0, a1), (b0, b1) = _span(a), _span(b)
    if a0 < b1 and b0 < a1:
        raise ValueError(f"{a_name} shares memory with {b_name}; pass separate tensors (out=x mixes in place)")


def _same_memory(a: Tensor, b: Tensor) -> bool:
    """``a`` and ``b`` start at the same address (``out`` is ``x``, perhaps through another view); functorch
    wrappers hold no address, so only the same object counts there."""
    if a is b:
        return True
    if _functorch_wrapped(a) or _functorch_wrapped(b) or a.numel() == 0 or b.numel() == 0:
        return False
    return a.data_ptr() == b.data_ptr()


def _span(t: Tensor) -> tuple[int, int]:
    """The byte addresses ``[first, end)`` a non-empty tensor's elements lie in (torch strides are never negative)."""
    first = t.data_ptr()
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return first, first + (last + 1) * t.element_size()


def _check_out(x: Tensor, out: Tensor, dtype: torch.dtype, partner: Tensor | None) -> None:
    if not isinstance(out, Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != dtype or out.device != x.device:
        raise ValueError(
            f"out has shape {tuple(out.shape)}, dtype {out.dtype} and device {out.device}; "
            f"expected shape {tuple(x.shape)}, dtype {dtype} and device {x.device}"
        )
    if partner is not None:
        _check_no_overlap(out, partner, "out", "partner")
    same = _same_memory(out, x) and out.stride() == x.stride()
    if not same:
        _check_no_overlap(out, x, "out", "x")


# -- the chunked kernel ----------------------------------------------------------------------------------------
# Mixing is elementwise along the features, so a batch viewed as (B, F) can be mixed one column slice (B, Fc) at a
# time: gather the partners' slice into a small reused buffer, then combine it with the slice of x. With
# B * Fc * itemsize ~ _CHUNK_BYTES the slice stays in the core's L2 cache between the gather and the combine, so
# every element of x is read from memory once and every element of the result written once (the "roofline" of a
# copy), for ANY permutation: the slice's partners are read before the slice is overwritten, which is what makes
# the in-place mode correct without pairing constraints. The full-batch formula instead makes four batch-sized
# temporaries (x[perm], lam * x, (1 - lam) * x[perm], their sum), each a fresh allocation that page-faults.

_CHUNK_BYTES = 1 << 20  # bytes of one (B, Fc) slice: with two threads each core holds half of it and of the buffer
# Each row's piece of a slice is at least this long, up to slices of _MAX_SLICE_BYTES. A slice is B strided pieces;
# pieces of one 4 KiB page (256 rows of float32 at 1 MiB) restart the hardware prefetchers and miss the TLB on every
# row, so large batches take longer slices, still far below the last-level cache. benchmarks/bench_slices.py
# (results/bench_slices-epyc2.md) measures the rule against slices of _CHUNK_BYTES alone. Values do not depend on the
# slicing (mixing is elementwise).
_MIN_ROW_BYTES = 16 << 10
_MAX_SLICE_BYTES = 4 << 20
_MIN_CHUNKED_BYTES = 1 << 18  # below this, the formula's few small ops are as fast as the slice loop
# Up to this (batch in the compute dtype), one slice: the whole gather, then one pass. Measured on this project's
# machine (benchmarks/bench_slices.py --setting single, results/bench_single_pass-epyc2.md, 2 threads, warm): one
# pass beats slices by 7-27% in float32 at 3 and 6 MiB and by 6-17% in bfloat16 at 1.5-6 MiB. Larger batches are
# sliced (not measured against one pass there): batch + gathered copy would crowd the last-level cache.
_SINGLE_PASS_BYTES = 6 << 20
_ROUND_MAGIC = float(2**23)  # s + 2**23 rounds s in [0, 2**22) to an integer held in the low mantissa bits


class _Workspace(threading.local):
    """Reused scratch buffers, one set per thread (DataLoader workers are processes: each has its own)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype], Tensor] = {}
        self.rows: dict[tuple[str, torch.dtype], Tensor] = {}  # the last (n, cols) view of each buffer
        self.bags: dict[torch.dtype, tuple[Tensor, Tensor, Tensor]] = {}  # _bag_inputs' buffers, per weight dtype
        self.bag_views: dict[torch.dtype, _Bag] = {}  # their views for the last batch size, per weight dtype


_WORKSPACE = _Workspace()


def _scratch(slot: str, numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 1-D buffer of ``numel`` elements; on CPU reused across calls (bounded by the slice size)."""
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)  # the caching allocator already reuses memory
    buf = _WORKSPACE.buffers.get((slot, dtype))
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # made inside inference_mode it could not be written outside it again
            buf = torch.empty(numel, dtype=dtype)
        _WORKSPACE.buffers[(slot, dtype)] = buf
    return buf[:numel]


def _scratch_rows(slot: str, n: int, cols: int, dtype: torch.dtype) -> Tensor:
    """``_scratch`` on CPU as an ``(n, cols)`` view, the view itself kept for the next call of the same shape (a
    transform mixes batches of one shape: slicing and viewing the buffer cost as much as a small batch's lerp). A
    kept view may outlive a buffer the chunked kernel has since replaced by a larger one: it still owns its memory
    (at most _SINGLE_PASS_BYTES), so it stays correct."""
    key = (slot, dtype)
    view = _WORKSPACE.rows.get(key)
    if view is None or view.shape != (n, cols):
        view = _scratch(slot, n * cols, dtype, torch.device("cpu")).view(n, cols)
        _WORKSPACE.rows[key] = view
    return view


# The fused gather-and-mix: each output row i is a weighted "bag" of two rows of the batch, i (weight lam) and
# perm[i] (weight 1 - lam), which torch.embedding_bag (sum mode, per-sample weights; on x86 fbgemm's vectorised
# kernel) reads, multiplies and adds in float32 in one pass, without writing the gathered partners anywhere. Where
# it beats gather + lerp (benchmarks/README.md, 2 threads): for a new tensor of one slice in float32, bfloat16 and
# float16; in place (or into out=) in bfloat16 and float16 at every size, whose lerp widens to float32 and back
# element by element, batches above one slice cut into equal pieces of every sample (_bag_mix_pieces). In float32,
# in place, the copy back costs what the fusion saves. Rounding: the weights are rounded once to the batch's dtype
# and products and sum are formed in float32 (at least), which is within mix_'s bound.
_BAG_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_BAG_INPLACE_DTYPES = (torch.bfloat16, torch.float16)


def _bag_mix(x2: Tensor, lam: float | Tensor, perm: Tensor) -> Tensor:
    """``lam * x2 + (1 - lam) * x2[perm]`` as a new tensor, for a contiguous CPU ``(B, F)`` batch in _BAG_DTYPES
    (lam and perm already checked), in one pass; within the rounding bound of :func:`mix_`."""
    bag = _bag_inputs(x2.shape[0], x2.dtype, lam, perm)
    return _embedding_bag(x2, bag.pairs_flat, bag.offsets, bag.weights_flat)


class _Bag(NamedTuple):
    """The bags of a batch of ``n`` (:func:`_bag_inputs`): views into the per-dtype buffers, kept for the next call
    of the same size (slicing and viewing them anew costs as much as a small batch's fused pass)."""

    n: int
    # (n, 2): each sample, then its partner (not `index`: a NamedTuple field of that name hides tuple.index)
    pairs: Tensor
    offsets: Tensor  # (n,)
    weights: Tensor  # (n, 2): lam, then 1 - lam
    pairs_flat: Tensor  # (2n,) views of the two above, as embedding_bag takes them
    weights_flat: Tensor
    partner: Tensor  # index column 1 and the weight columns, rewritten each call
    w_self: Tensor
    w_partner: Tensor


def _bag_inputs(n: int, dtype: torch.dtype, lam: float | Tensor, perm: Tensor) -> _Bag:
    """The bags of a batch of ``n``: index ``(n, 2)`` (each sample, then its partner), offsets ``(n,)`` and weights
    ``(n, 2)`` (lam, then 1 - lam) in ``dtype``. One set of buffers per dtype, as long as the largest batch so far
    (memory stays bounded when the batch size changes every call): the first ``n`` rows of its index column 0 and
    offsets are those of any batch of ``n``; column 1 and the weights are rewritten each call."""
    bag = _WORKSPACE.bag_views.get(dtype)
    if bag is None or bag.n != n:
        full = _WORKSPACE.bags.get(dtype)
        # made outside inference_mode: buffers and views made inside it could not be written outside it again
        with torch.inference_mode(False):
            if full is None or full[1].shape[0] < n:
                index = torch.arange(n).repeat_interleave(2).view(n, 2)  # column 0: the sample itself
                full = (index, torch.arange(0, 2 * n, 2), torch.empty(n, 2, dtype=dtype))
                _WORKSPACE.bags[dtype] = full
            index, offsets, weights = (t[:n] for t in full)
            bag = _Bag(
                n, index, offsets, weights, index.view(-1), weights.view(-1), index.select(1, 1), *weights.unbind(1)
            )
        _WORKSPACE.bag_views[dtype] = bag
    bag.partner.copy_(perm)  # column 1: its partner
    if isinstance(lam, Tensor):
        bag.w_self.copy_(lam)
        bag.w_partner.copy_(1 - lam.to(torch.float64))  # the complement rounded once, as mix_'s lerp weight
    else:
        bag.w_self.fill_(lam)
        bag.w_partner.fill_(1 - lam)
    return bag


def _embedding_bag(rows: Tensor, index: Tensor, offsets: Tensor, weights: Tensor) -> Tensor:
    # positional: (weight, indices, offsets, scale_grad_by_freq, mode 0 = sum, sparse, per_sample_weights,
    # include_last_offset); the first of the four results is the mix
    return torch.embedding_bag(rows, index, offsets, False, 0, False, weights, False)[0]


def _bag_pieces(feats: int, width: int) -> int:
    """How many equal pieces to cut each sample's ``feats`` values into for :func:`_bag_mix_pieces`, each at most
    about ``width`` long: the first divisor of ``feats`` from ``feats / width`` up to twice that; 0 if there is none
    (the lerp slices take such batches)."""
    first = max(1, round(feats / width))
    return next((k for k in range(first, 2 * first + 1) if feats % k == 0), 0)


def _bag_mix_pieces(o2: Tensor, x2: Tensor, lam: float | Tensor, perm: Tensor, pieces: int) -> None:
    """The fused gather-and-mix of a batch larger than one slice, written into ``o2`` (``x2`` itself or another
    contiguous (B, F) tensor). Viewing the batch as ``(B * pieces, F / pieces)`` rows keeps it one contiguous table
    for ``embedding_bag``, in which sample i's piece p is row ``i * pieces + p``: piece p of the result reads only
    the rows of piece p, all of them before it is written, so any permutation mixes correctly in place."""
    n, feats = x2.shape
    rows = x2.view(n * pieces, feats // pieces)
    o3 = o2.view(n, pieces, feats // pieces)
    bag = _bag_inputs(n, x2.dtype, lam, perm)
    base = bag.pairs * pieces  # (B, 2): the rows of piece 0 of each sample and of its partner; piece p adds p
    shifted = torch.empty_like(base)
    for p in range(pieces):
        # no name for the piece's result: freed right after the copy, the next piece's result reuses its memory (a
        # result kept alive over the next call made every piece a fresh, page-faulting allocation)
        o3.select(1, p).copy_(
            _embedding_bag(rows, torch.add(base, p, out=shifted).view(-1), bag.offsets, bag.weights_flat)
        )


def _slice_width(n: int, itemsize: int, chunk_bytes: int, min_cols: int) -> int:
    """Columns of one (B, Fc) slice of B = ``n`` rows: ``chunk_bytes`` per slice, longer when that leaves rows shorter
    than _MIN_ROW_BYTES (but never beyond _MAX_SLICE_BYTES), and at least ``min_cols``."""
    long_rows = min(_MIN_ROW_BYTES // itemsize, _MAX_SLICE_BYTES // (n * itemsize))
    return max(min_cols, long_rows, chunk_bytes // (n * itemsize))


def _worth_chunking(x: Tensor) -> bool:
    if x.device.type != "cpu":
        return False
    # uint8 at any size: the fused uint8 pass (or float32 slices) beat the formula's float32 copies of the batch
    return x.dtype == torch.uint8 or x.numel() * x.element_size() >= _MIN_CHUNKED_BYTES


def _plain(*tensors: object) -> bool:
    """True when the out= kernel may compute these: no autograd graph to record (latent mixing of activations
    goes through the formula, which autograd differentiates) and no functorch wrapper (vmap, grad)."""
    if _forward_ad_level() >= 0:  # dual tensors may be among them: the formula, which forward AD differentiates
        return False
    grad = torch.is_grad_enabled()
    for t in tensors:
        if isinstance(t, Tensor) and ((grad and t.requires_grad) or _functorch_wrapped(t)):
            return False
    return True


def _rows(t: Tensor, order: list[int]) -> Tensor | None:
    """``t`` as a (B, F) view over its memory, trailing dims taken in ``order``; None if no such view exists."""
    p = t.permute(0, *order)
    return p.view(t.shape[0], -1) if p.is_contiguous() else None


def _memory_order(t: Tensor) -> list[int]:
    """The non-batch dims sorted by decreasing stride: (1, 2, 3) when contiguous, (2, 3, 1) for channels_last."""
    stride = t.stride()
    return sorted(range(1, t.dim()), key=lambda d: -stride[d])


def _mix_into(
    out: Tensor, x: Tensor, lam: float | Tensor, perm: Tensor | None, partner: Tensor | None, *, exact: bool
) -> Tensor:
    """Write the mix of ``x`` into ``out`` (``out`` may be ``x`` itself) one (B, Fc) slice at a time."""
    n = x.shape[0]
    if x.is_contiguous() and out.is_contiguous():  # the common case, without the general layout search
        order = list(range(1, x.dim()))
        x2: Tensor | None = x.view(n, -1)
        o2: Tensor | None = out.view(n, -1)
    else:
        order = _memory_order(x)
        x2, o2 = _rows(x, order), _rows(out, order)
    uint8_other = x.dtype == torch.uint8 and out.dtype not in (torch.uint8, torch.float32)
    if x2 is None or o2 is None or uint8_other or not _plain(x, out, lam, partner):
        # no common (B, F) view (overlapping or gapped strides), a rare uint8 -> float64/16 output, or autograd /
        # vmap at work: the formula, copied into out
        if isinstance(lam, Tensor) and lam.requires_grad and torch.is_grad_enabled() and _same_memory(out, x):
            # lam's gradient needs x as it was: autograd saves x for lam * x, and copying into out would overwrite it
            x = x.clone()
        xp = _partner(x, perm, partner)
        return out.copy_(_formula(x, lam, xp, None if out.dtype == torch.uint8 else out.dtype))
    p2 = None if partner is None else partner.permute(0, *order).reshape(n, -1)
    idx = perm if perm is None or perm.device == x.device else perm.to(x.device)
    feats = x2.shape[1]
    if feats == 0:  # samples without values (a zero-sized dimension): nothing to mix, and no slice width
        return out
    # compute dtype: the float dtype itself, float32 for uint8 (as the formula)
    compute, itemsize = (x.dtype, x.element_size()) if x.is_floating_point() else (torch.float32, 4)
    if x.device.type != "cpu" or n * feats * itemsize <= _SINGLE_PASS_BYTES:
        # one slice: on accelerators (the gather buffer is the only temporary), and on CPU when the batch and its
        # gathered copy stay in cache together (strided slices would only add work)
        width = feats
    else:
        width = _slice_width(n, itemsize, _CHUNK_BYTES, 16)
    # weights exactly as the formula forms them: a Python float, or (B, 1) in the compute dtype and its complement
    # computed in that dtype
    if isinstance(lam, Tensor):
        w_self: float | Tensor = lam.to(x.device, compute).reshape(n, 1)
        w_partner: float | Tensor = 1 - w_self
        # lerp weight for the partner, rounded once from float64 (see mix_ for the error bound)
        w_lerp: float | Tensor = (1 - lam.to(x.device, torch.float64)).to(compute).reshape(n, 1)
    else:
        w_self, w_partner, w_lerp = float(lam), 1 - float(lam), 1 - float(lam)
    if not exact and idx is not None and x.device.type == "cpu" and x.dtype in _BAG_INPLACE_DTYPES:
        # half precision: the fused gather-and-mix (then one copy), one slice or equal pieces of every sample
        if width == feats:
            o2.copy_(_bag_mix(x2, lam, idx))
            return out
        pieces = _bag_pieces(feats, width)
        if pieces and o2.is_contiguous() and x2.is_contiguous():
            _bag_mix_pieces(o2, x2, lam, idx, pieces)
            return out
    if out.dtype == torch.uint8 and x.device.type == "cpu" and _quantized_mix_applies(lam):
        _mix_uint8_quantized(o2, x2, float(lam), idx, p2)
        return out
    for start in range(0, feats, width):
        xs = x2[:, start : start + width] if width < feats else x2  # (B, Fc), strided view into x
        os = o2[:, start : start + width] if width < feats else o2
        cols = xs.shape[1]
        if idx is not None:
            ps = torch.index_select(xs, 0, idx, out=_scratch("p", n * cols, x.dtype, x.device).view(n, cols))
        else:
            assert p2 is not None
            ps = p2[:, start : start + width]
        # from here on the slice's inputs are in ps and xs: os may overwrite xs
        if not x.is_floating_point():
            fa = _scratch("a", n * cols, torch.float32, x.device).view(n, cols)
            fb = _scratch("b", n * cols, torch.float32, x.device).view(n, cols)
            # x.to(float32) * w, as the formula: an exact u8 -> f32 copy, then the product (two vectorised passes
            # beat one mixed-dtype multiply)
            fa.copy_(xs).mul_(w_self)
            fb.copy_(ps).mul_(w_partner)
            if out.dtype == torch.uint8:
                fa.add_(fb).add_(_ROUND_MAGIC)
                # fa = 2**23 + round(mix) exactly (0 <= mix < 2**22; ties to even, as torch.round): its bit pattern
                # as int32 is 0x4B000000 + round(mix), and the int32 -> uint8 copy keeps the low byte. No clamp:
                # weights >= 0 summing to <= 1 + 2**-24 keep the mix in [0, 255.01], so it rounds into [0, 255].
                os.copy_(fa.view(torch.int32))
            else:
                torch.add(fa, fb, out=os)
        elif exact:
            if idx is None:  # the partner slice is the caller's: scale a copy
                fb = torch.mul(ps, w_partner, out=_scratch("b", n * cols, x.dtype, x.device).view(n, cols))
            else:
                fb = ps.mul_(w_partner)  # the gathered slice is ours to overwrite
            torch.mul(xs, w_self, out=os)
            os.add_(fb)
        elif isinstance(w_lerp, Tensor):
            torch.lerp(xs, ps, w_lerp, out=os)  # torch's lerp picks its stable branch per element
        elif w_lerp <= 0.5:
            torch.lerp(xs, ps, w_lerp, out=os)  # xs + w (ps - xs), small weight on the partner
        else:
            torch.lerp(ps, xs, float(lam), out=os)  # ps + lam (xs - ps), small weight on x
    return out


# -- uint8: one fused pass per slice ----------------------------------------------------------------------------
# PyTorch's quantized add computes ``requantize(dequantize(a) + dequantize(b))`` in one vectorised pass over uint8
# data. With per-tensor scales lam and 1 - lam (zero point 0) and an output scale of 1 that is, operation for
# operation, the formula on uint8 inputs: each dequantization is the float32 product ``float32(scale) * a`` (one
# rounding), the two products are added in float32 (one rounding), and requantization multiplies by 1/1 (exact),
# rounds to nearest-even (torch.round's ties) and saturates to [0, 255] (the formula's clamp). So the result equals
# ``round(lam * a + (1 - lam) * b)`` computed in float32 bit for bit; the first use in a process checks exactly
# that over all 65,536 (a, b) pairs for several lam, and any mismatch or missing op falls back to the float32 slices.
# The quantized tensors are only aliases: x (or out) is read and written where it lies, through quint8 views of its
# own storage, so a slice costs one gather of the partners and one fused pass (the float32 path needs seven).

_Q_CHUNK_BYTES = 1 << 20  # bytes of one (B, Fc) uint8 slice, and of the gathered partner buffer
_Q_MIN_SCALE = 2.0**-100  # lam and 1 - lam must be positive, normal float32 scales for the quantized ops
_quantized_ok: bool | None = None
_quantized_lock = threading.Lock()


def _quantized_mix_applies(lam: float | Tensor) -> bool:
    if isinstance(lam, Tensor):
        return False  # per-sample lam: one scale per tensor only, the float32 slices apply
    lam = float(lam)
    return lam >= _Q_MIN_SCALE and 1.0 - lam >= _Q_MIN_SCALE and _quantized_available()


def _quantized_alias(t: Tensor, scale: float) -> Tensor:
    """A quint8 view (scale, zero point 0) of the memory of the uint8 tensor ``t``: no copy."""
    q = torch._empty_affine_quantized((0,), scale=scale, zero_point=0, dtype=torch.quint8)
    return q.set_(t.untyped_storage(), t.storage_offset(), t.shape, t.stride())


def _quantized_available() -> bool:
    """Whether the fused uint8 kernel exists and is bit-identical to the formula (checked once per process)."""
    global _quantized_ok
    if _quantized_ok is None:
        with _quantized_lock:
            if _quantized_ok is None:
                _quantized_ok = _quantized_self_check()
    return _quantized_ok


def _quantized_self_check() -> bool:
    try:
        grid = torch.arange(256, dtype=torch.uint8)
        a = grid.repeat_interleave(256).view(256, 256)  # a[i, j] = i
        b = grid.repeat(256).view(256, 256)  # b[i, j] = j: every (a, b) pair once
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor creation warns (once per process) of a deprecation
            for lam in (0.5, 0.25, 0.75, 1 / 3, 0.1234567891, 0.987654321, 1e-7, 1 - 1e-7):
                got = torch.empty_like(a)
                _mix_uint8_quantized(got, a, lam, None, b)
                if not torch.equal(got, _formula(a, lam, b, None)):
                    return False
        return True
    except Exception:  # quantized ops missing in this build (or removed in a later release)
        return False


def _mix_uint8_quantized(o2: Tensor, x2: Tensor, lam: float, idx: Tensor | None, p2: Tensor | None) -> None:
    """``o2 = round(lam * x2 + (1 - lam) * partner)`` for uint8 (B, F) views, one (B, Fc) slice at a time."""
    n, feats = x2.shape
    width = feats if n * feats <= _Q_CHUNK_BYTES else _slice_width(n, 1, _Q_CHUNK_BYTES, 64)
    if width >= feats:  # one slice (collate-sized batches): the same ops without the per-slice views
        qb = torch._empty_affine_quantized((n, feats), scale=1.0 - lam, zero_point=0, dtype=torch.quint8)
        bs = torch.empty(0, dtype=torch.uint8, device=x2.device).set_(qb.untyped_storage(), 0, (n, feats), (feats, 1))
        if idx is not None:
            torch.index_select(x2, 0, idx, out=bs)
        else:
            assert p2 is not None
            bs.copy_(p2)
        torch.ops.quantized.add_out(_quantized_alias(x2, lam), qb, _quantized_alias(o2, 1.0))
        return
    cols_max = min(width, feats)
    qb = torch._empty_affine_quantized((n * cols_max,), scale=1.0 - lam, zero_point=0, dtype=torch.quint8)
    qb_u8 = torch.empty(0, dtype=torch.uint8, device=x2.device).set_(qb.untyped_storage(), 0, (n * cols_max,), (1,))
    for start in range(0, feats, width):
        xs = x2[:, start : start + width] if width < feats else x2
        os = o2[:, start : start + width] if width < feats else o2
        cols = xs.shape[1]
        bs = qb_u8[: n * cols].view(n, cols)
        if idx is not None:
            torch.index_select(xs, 0, idx, out=bs)  # the partners' slice, before os may overwrite xs
        else:
            assert p2 is not None
            bs.copy_(p2[:, start : start + width] if width < feats else p2)
        qa, qo = _quantized_alias(xs, lam), _quantized_alias(os, 1.0)
        torch.ops.quantized.add_out(qa, qb[: n * cols].view(n, cols), qo)


def _check_many(n: int, weights: Tensor, indices: Tensor) -> Tensor:
    """:func:`mix_many`'s ``weights`` and ``indices`` for a batch of ``n``: indices ``(k, n)`` within the batch,
    weights ``(n, k)`` (or ``(k,)``, returned expanded) of convex combinations. ValueError/TypeError naming them."""
    if not isinstance(indices, Tensor) or indices.dim() != 2 or indices.shape[1] != n or indices.shape[0] < 1:
        shape = tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__
        raise ValueError(f"indices must be (k, {n}) partner indices (one row per example mixed), got {shape}")
    k = indices.shape[0]
    _check_perm_shape(indices[0], n)  # the index dtype (the shape is checked above)
    lo, hi = torch.stack(torch.aminmax(indices)).tolist()
    if lo < 0 or hi >= n:
        raise ValueError(f"indices must lie in [0, {n}) (partners within the batch), got values from {lo} to {hi}")
    if not isinstance(weights, Tensor) or not weights.is_floating_point():
        raise TypeError(f"weights must be a float tensor, got {getattr(weights, 'dtype', type(weights).__name__)}")
    if weights.dim() == 1:
        weights = weights.expand(n, -1)
    if weights.shape != (n, k):
        raise ValueError(f"weights have shape {tuple(weights.shape)}, expected ({n}, {k})")
    tol = 1e-3 + torch.finfo(weights.dtype).eps  # as for probability labels: float rounding, not a wrong weight
    if not bool(torch.isfinite(weights).all() & (weights >= 0).all() & ((weights.sum(1) - 1).abs() <= tol).all()):
        raise ValueError("weights must be finite, >= 0 and sum to 1 in every row (a convex combination)")
    return weights


def mix_many(x: Tensor, weights: Tensor, indices: Tensor, *, out_dtype: torch.dtype | None = None) -> Tensor:
    """Convex combination of k examples: ``sum_j weights[:, j] * x[indices[j]]`` (Section 2, Dirichlet mixing).

    Args:
        x: batch ``(B, ...)``, float or uint8. Float batches are mixed in their own dtype; uint8 batches are mixed in
            float32 and rounded to the nearest integer (never truncated), as :func:`mix` does for two examples.
        weights: ``(B, k)`` per-sample weights (or ``(k,)`` shared by the batch), rows summing to 1.
        indices: ``(k, B)`` partner indices; row 0 is usually the identity.
        out_dtype: for uint8 inputs, a float dtype returns the unrounded mix in that dtype.
    """
    _check_x(x, out_dtype)
    weights = _check_many(x.shape[0], weights, indices)
    k = indices.shape[0]
    compute = x.dtype if x.is_floating_point() else (out_dtype or torch.float32)
    # the terms in x's memory order (index_select returns rows in the order of its input's dims), permuted back at
    # the end: a channels_last batch comes back channels_last, as from every other path. Only for a dense layout:
    # an expanded or gapped batch has no memory order to keep, and gets a contiguous result
    order = [0, *_memory_order(x)]
    if not x.permute(order).is_contiguous():
        order = list(range(x.dim()))
    xs = x.permute(order)
    out = None
    for j in range(k):
        xj = xs.index_select(0, indices[j].to(x.device)).to(compute)
        term = _expand(weights[:, j], xs, compute) * xj
        out = term if out is None else out.add_(term)
    assert out is not None
    out = out.permute(sorted(range(x.dim()), key=order.__getitem__))
    if x.is_floating_point() or out_dtype is not None:
        return out
    # round half to even; the clamp guards against float error just outside [0, 255]
    return out.round_().clamp_(0, 255).to(x.dtype)


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Integer labels ``(B,)`` to one-hot ``(B, C)``; float labels ``(B, C)`` pass through (cast to dtype)."""
    if not isinstance(y, Tensor) or not y.is_floating_point():
        _check_class_labels(y, num_classes)
    elif y.dim() < 2 or y.shape[-1] != check_num_classes(num_classes):
        # float labels are probabilities over the classes; a (B,) float vector would pass through as "one-hot"
        raise ValueError(
            f"float labels are taken as probabilities of shape (B, {num_classes}); got shape {tuple(y.shape)} "
            "(class indices must be an integer tensor)"
        )
    return _one_hot(y, num_classes, dtype)


def _one_hot(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`one_hot` for labels already checked (the transforms check each batch once)."""
    if y.is_floating_point():
        return y.to(dtype)
    return torch.nn.functional.one_hot(y.long(), num_classes).to(dtype)


def _check_class_labels(y: Tensor, num_classes: int) -> None:
    """Integer labels of any shape in ``[0, num_classes)``, with errors naming them (torch's index error does not)."""
    num_classes = check_num_classes(num_classes)
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.numel() == 0 or y.device.type == "meta":  # no value to read
        return
    unless_vmapped(lambda: check_index_range(y, num_classes), y)


def smooth(y_soft: Tensor, eps: float) -> Tensor:
    """Label smoothing: ``(1 - eps) * y + eps / C`` (1 - eps + eps/C on the true class, eps/C elsewhere)."""
    if not isinstance(y_soft, Tensor):
        raise TypeError(f"smooth takes soft or one-hot labels (..., C), got {type(y_soft).__name__}")
    if not y_soft.is_floating_point():
        if y_soft.dim() < 2:  # class indices (B,): smoothing their values gave nonsense numbers
            raise TypeError(
                f"smooth takes soft or one-hot labels (..., C), got {y_soft.dtype} labels of shape "
                f"{tuple(y_soft.shape)}; for class indices use one_hot(y, num_classes) first"
            )
        y_soft = y_soft.float()  # integer or bool one-hot rows (torch's one_hot returns int64)
    eps = check_probability(float(eps) if isinstance(eps, Tensor) else eps, "eps")  # eps > 1: negative probabilities
    if eps == 0.0:
        return y_soft
    return y_soft * (1.0 - eps) + eps / y_soft.shape[-1]


def mix_targets(y: Tensor, lam: float | Tensor, perm: Tensor | None = None, *, partner: Tensor | None = None) -> Tensor:
    """``lam * y + (1 - lam) * y[perm]`` for soft labels ``(B, C)`` or regression targets ``(B,)`` / ``(B, K)``.

    Float targets only: integer class labels go through :func:`mixed_one_hot` (or :func:`one_hot` first).
    """
    if isinstance(y, Tensor) and not y.is_floating_point():
        raise TypeError(
            f"mix_targets mixes float targets (soft labels or regression values), got dtype {y.dtype}; "
            "for class indices use mixed_one_hot(y, lam, perm, num_classes)"
        )
    check_inputs(y, what="targets")
    lam = check_lam(lam, y.shape[0])
    yp = _partner(y, perm, partner)
    w = _expand(lam, y, y.dtype)
    return w * y + (1 - w) * yp


def mixed_one_hot(
    y: Tensor, lam: float | Tensor, perm: Tensor, num_classes: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``lam * one_hot(y) + (1 - lam) * one_hot(y)[perm]`` for integer labels ``(B,)``, built with two scatters
    into one ``(B, C)`` tensor instead of two one-hots, a gather and three arithmetic passes.

    Bit-identical to ``mix_targets(one_hot(y, C), lam, perm)``: each entry receives the same rounded weights, added
    in the same order (``lam`` then ``1 - lam``, formed as the formula forms them). Labels must lie in ``[0, C)``
    (checked here; the transforms check each batch once and call the unchecked kernel).
    """
    _check_class_labels(y, num_classes)
    if y.dim() != 1:
        raise ValueError(f"labels must be class indices of shape (B,), got shape {tuple(y.shape)}")
    check_float_dtype(dtype)  # integer weights truncate lam to 0: all-zero targets, or the partner's alone
    n = y.shape[0]
    _check_perm(perm, n)  # a shorter perm would leave rows of zeros, an index out of [0, n) fail inside torch
    return _mixed_one_hot(y, check_lam(lam, n), perm, num_classes, dtype)


def _mixed_one_hot(y: Tensor, lam: float | Tensor, perm: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """:func:`mixed_one_hot` for a lam and perm already checked (drawn by a transform)."""
    n = y.shape[0]
    idx = y.reshape(n, 1).long()
    out = torch.zeros(n, num_classes, dtype=dtype, device=y.device)
    pidx = idx.index_select(0, perm.to(y.device))
    if isinstance(lam, Tensor):
        w = lam.to(device=y.device, dtype=dtype).reshape(n, 1)
        if _functorch_wrapped(w) or _functorch_wrapped(pidx):
            # vmap cannot write batched weights or labels into the unbatched zeros: the out-of-place forms
            return out.scatter(1, idx, w).scatter_add(1, pidx, 1 - w)
        out.scatter_(1, idx, w)
        return out.scatter_add_(1, pidx, 1 - w)
    if _functorch_wrapped(pidx):  # vmapped labels: as above
        return out.scatter(1, idx, float(lam)).scatter(1, pidx, 1 - float(lam), reduce="add")
    out.scatter_(1, idx, float(lam))
    # the scalar form adds the complement rounded once to dtype, as a filled (n, 1) tensor would, without making it
    return out.scatter_(1, pidx, 1 - float(lam), reduce="add")


def closer_targets(
    y: Tensor, lam: float | Tensor, perm: Tensor | None = None, *, partner: Tensor | None = None
) -> Tensor:
    """ "Mix inputs only" (Table 5): the target of the closer sample, ``y_i`` where ``lam >= 0.5`` else ``y_j``."""
    if not isinstance(y, Tensor) or y.dim() == 0:
        what = f"shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
        raise TypeError(f"targets must be a torch.Tensor with the batch first, got {what}")
    lam = check_lam(lam, y.shape[0])
    yp = _partner(y, perm, partner)
    if isinstance(lam, Tensor):
        keep = (lam.to(y.device) >= 0.5).reshape(-1, *([1] * (y.dim() - 1)))
        return torch.where(keep, y, yp)
    return y if lam >= 0.5 else yp


Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), shared by the batch; or a (B, 4) integer tensor of one per sample


def _per_sample_boxes(box: object) -> bool:
    return isinstance(box, Tensor) and box.dim() == 2


def _check_cutmix(x: Tensor, box: Box | Tensor, perm: Tensor | None, partner: Tensor | None) -> None:
    check_inputs(x, min_dim=3, what="x")  # a box on the last two dimensions of (B, ..., H, W)
    if perm is None and partner is None:
        raise ValueError("cutmix needs perm or partner")
    _check_partner(x, perm, partner)
    height, width = x.shape[-2], x.shape[-1]
    if _per_sample_boxes(box):
        assert isinstance(box, Tensor)
        n = x.shape[0]
        integer = not (box.is_floating_point() or box.is_complex() or box.dtype == torch.bool)
        if not integer or box.shape != (n, 4):
            raise ValueError(
                f"per-sample boxes must be an integer tensor (B, 4) = ({n}, 4) of rows (y0, y1, x0, x1), got "
                f"dtype {box.dtype} and shape {tuple(box.shape)}"
            )
        top, bottom, left, right = box.unbind(1)  # (B,) each: y0, y1, x0, x1
        ok = (0 <= top) & (top <= bottom) & (bottom <= height) & (0 <= left) & (left <= right) & (right <= width)
        if not bool(ok.all()):
            row = int((~ok).nonzero()[0, 0])
            raise ValueError(
                f"per-sample boxes must satisfy 0 <= y0 <= y1 <= {height} and 0 <= x0 <= x1 <= {width} (the image's "
                f"height and width); row {row} is {tuple(box[row].tolist())}"
            )
        return
    # slicing would wrap a negative bound and make an inverted box empty, both silently: a box inside the image.
    # Any integer type counts (numpy ints from timm's rand_bbox, 0-d integer tensors): operator.index accepts them.
    try:
        y0, y1, x0, x1 = (operator.index(v) for v in box)
        inside = 0 <= y0 <= y1 <= height and 0 <= x0 <= x1 <= width
    except (TypeError, ValueError):
        inside = False
    if not inside or any(isinstance(v, bool) for v in box):
        raise ValueError(
            f"box must be 4 ints (y0, y1, x0, x1) with 0 <= y0 <= y1 <= {height} and 0 <= x0 <= x1 <= {width} "
            f"(the image's height and width), or a (B, 4) integer tensor of one box per sample, got {box!r}"
        )


def _paste_per_sample(x: Tensor, boxes: Tensor, xp: Tensor) -> Tensor:
    """``x`` with each sample's box taken from ``xp`` (a new tensor): a select through the (B, ..., H, W) mask of
    the boxes, so values move unchanged."""
    n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    b = boxes.to(x.device)
    rows = torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device)
    in_rows = (rows >= b[:, 0:1]) & (rows < b[:, 1:2])  # (B, H)
    in_cols = (cols >= b[:, 2:3]) & (cols < b[:, 3:4])  # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :]).view(n, *([1] * (x.dim() - 3)), height, width)
    if _plain(x, xp):
        # into a tensor of x's layout: where() over the contiguous mask returned channels_last batches contiguous
        return torch.where(mask, xp, x, out=torch.empty_like(x))
    # autograd, forward AD and functorch cannot see through out=: the formula's where(), then copied into x's
    # layout by copy_, which they differentiate (vmap's batched result has no layout of x's to take)
    pasted = torch.where(mask, xp, x)
    return pasted if _functorch_wrapped(pasted) else torch.empty_like(x).copy_(pasted)


def cutmix(x: Tensor, box: Box | Tensor, perm: Tensor | None = None, *, partner: Tensor | None = None) -> Tensor:
    """Paste ``partner[..., y0:y1, x0:x1]`` (or ``x[perm][...]``) into a copy of ``x`` (Yun et al., 2019).

    ``box = (y0, y1, x0, x1)`` on the last two dimensions, shared by the batch; or a ``(B, 4)`` integer tensor of
    one such box per sample (:func:`cutmix_boxes` draws them).
    """
    _check_cutmix(x, box, perm, partner)
    if _per_sample_boxes(box):
        assert isinstance(box, Tensor)
        return _paste_per_sample(x, box, partner if partner is not None else _partner(x, perm, None))
    y0, y1, x0, x1 = (operator.index(v) for v in box)
    out = x.clone()
    if y1 > y0 and x1 > x0:
        if partner is not None:
            out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        else:
            assert perm is not None
            out[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1].index_select(0, perm.to(x.device))
    return out


def cutmix_(x: Tensor, box: Box | Tensor, perm: Tensor | None = None, *, partner: Tensor | None = None) -> Tensor:
    """In-place :func:`cutmix`: paste the partners' box into ``x`` itself and return it.

    Only the box moves: its partner pixels are gathered (a box-sized temporary) before ``x`` is written. Per-sample
    boxes gather the partners whole and select through the boxes' mask, then copy back.
    """
    _check_cutmix(x, box, perm, partner)
    if partner is not None:
        _check_no_overlap(x, partner, "x", "partner")
    if _per_sample_boxes(box):
        assert isinstance(box, Tensor)
        return x.copy_(_paste_per_sample(x, box, partner if partner is not None else _partner(x, perm, None)))
    y0, y1, x0, x1 = (operator.index(v) for v in box)
    if y1 > y0 and x1 > x0:
        if partner is not None:
            x[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        else:
            assert perm is not None
            x[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1].index_select(0, perm.to(x.device))
    return x


def _check_image(height: int, width: int, fn: str) -> None:
    if not (is_int(height) and is_int(width)):  # a tensor failed in round(), a float was taken as a size
        raise TypeError(
            f"{fn} needs the image height and width as ints, got {type(height).__name__} {height!r} and "
            f"{type(width).__name__} {width!r}"
        )
    if height < 1 or width < 1:
        raise ValueError(f"{fn} needs an image of at least 1x1 pixels, got height {height} and width {width}")


def _uniforms(u: object, count: int, what: str) -> list[float]:
    """The ``count`` numbers of ``u`` (a tensor, array, list or tuple), each in [0, 1); else an error that they must
    be ``what``."""
    try:
        values = [float(v) for v in u]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        values = []
    if len(values) != count or not all(0.0 <= v < 1.0 for v in values):
        raise ValueError(f"u must be {what}, got {u!r}")
    return values


def cutmix_box(lam: float, height: int, width: int, u: Tensor) -> tuple[tuple[int, int, int, int], float]:
    """Box of area ``(1 - lam) * H * W`` centred at ``u`` (two uniforms in [0,1)), clipped to the image.

    Returns the box and lam corrected to the area actually kept, ``1 - box_area / (H * W)``.
    """
    _check_image(height, width, "cutmix_box")
    if isinstance(lam, Tensor):
        if lam.numel() != 1:
            raise TypeError(f"cutmix_box takes one lam for the box, got a tensor of shape {tuple(lam.shape)}")
        lam = float(lam)
    lam = check_lam(lam, 1)  # lam > 1 gave a complex ratio, lam < 0 a box larger than the image
    centre = _uniforms(u, 2, "two uniforms in [0, 1) (the box centre as fractions of H and W)")
    ratio = math.sqrt(1.0 - lam)  # correctly rounded, as torch.sqrt in cutmix_boxes (x ** 0.5 can differ by 1 ulp)
    cut_h, cut_w = int(round(height * ratio)), int(round(width * ratio))
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    area = max(y1 - y0, 0) * max(x1 - x0, 0)
    return (y0, y1, x0, x1), 1.0 - area / float(height * width)


def check_box_range(box_range: object) -> tuple[float, float]:
    """``(min, max)``: the fractions of the image height and width that bound a drawn box's sides, ``0 <= min <
    max <= 1``."""
    try:
        values = [] if isinstance(box_range, str | bytes) else list(box_range)  # type: ignore[call-overload]
        # float("0.2") and float(True) would pass: only numbers (or 1-element tensors and arrays) are fractions
        if any(isinstance(v, str | bytes | bool) for v in values):
            raise TypeError
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"box_range must be two fractions (min, max) of the image sides, got {box_range!r}") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"box_range must satisfy 0 <= min < max <= 1, got ({lo}, {hi})")
    return lo, hi


def _range_sides(box_range: tuple[float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """The bounds ``[lo, hi)`` of the box height and width: ``int(side * min)`` to ``int(side * max)``, the upper one
    excluded, as timm's ``rand_bbox_minmax`` draws them."""
    lo, hi = box_range
    h_lo, h_hi, w_lo, w_hi = int(height * lo), int(height * hi), int(width * lo), int(width * hi)
    # h_hi < 2: the only height is 0, a box that pastes nothing, so no batch would ever be mixed
    if h_lo >= h_hi or w_lo >= w_hi or h_hi < 2 or w_hi < 2:
        raise ValueError(
            f"box_range=({lo}, {hi}) leaves no box of at least 1x1 pixels to draw on images of {height}x{width} "
            f"pixels (heights in [{h_lo}, {h_hi}), widths in [{w_lo}, {w_hi})): widen the range or use larger images"
        )
    return h_lo, h_hi, w_lo, w_hi


def cutmix_range_box(
    box_range: tuple[float, float], height: int, width: int, u: Tensor
) -> tuple[tuple[int, int, int, int], float]:
    """A box whose sides are drawn uniformly from a range of image fractions (timm's ``cutmix_minmax``, after
    Darknet's CutMix), placed uniformly inside the image; lam is the kept area, ``1 - box_area / (H * W)``.

    The height is an integer uniform in ``[int(H * min), int(H * max))``, the width likewise on ``W``, and the
    top-left corner uniform over the positions that keep the whole box inside the image; so no box is clipped.
    ``u`` holds the four uniforms in [0, 1) that choose them, in that order (height, width, top, left), each
    mapped to an integer ``k`` of ``m`` choices as ``floor(u * m)``.
    """
    _check_image(height, width, "cutmix_range_box")
    h_lo, h_hi, w_lo, w_hi = _range_sides(check_box_range(box_range), height, width)
    draws = _uniforms(u, 4, "four uniforms in [0, 1) (height, width, top, left)")

    def pick(v: float, choices: int) -> int:
        return min(int(v * choices), choices - 1)  # v * choices can round up to choices for v just below 1

    cut_h = h_lo + pick(draws[0], h_hi - h_lo)
    cut_w = w_lo + pick(draws[1], w_hi - w_lo)
    y0 = pick(draws[2], height - cut_h + 1)
    x0 = pick(draws[3], width - cut_w + 1)
    return (y0, y0 + cut_h, x0, x0 + cut_w), 1.0 - cut_h * cut_w / float(height * width)


def _per_sample_uniforms(u: object, n: int | None, count: int, what: str) -> Tensor:
    """``u`` as a float64 tensor ``(n, count)`` (``n`` None: any number of rows) of values in [0, 1); else an error
    that it must be ``what``."""
    try:
        t = u.to(torch.float64) if isinstance(u, Tensor) else torch.as_tensor(u, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"u must be {what}, a (B, {count}) tensor in [0, 1), got {type(u).__name__}") from None
    rows = t.shape[0] if n is None and t.dim() else n
    if t.shape != (rows, count) or not bool(((t >= 0) & (t < 1)).all()):
        raise ValueError(
            f"u must be {what}, a ({rows if rows is not None else 'B'}, {count}) tensor of values in [0, 1), got "
            f"shape {tuple(t.shape)}"
        )
    return t.cpu()


def _kept_lam(boxes: Tensor, height: int, width: int) -> Tensor:
    """``1 - box_area / (H * W)`` per box, float64, as :func:`cutmix_box` computes it."""
    area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    return 1.0 - area.to(torch.float64) / float(height * width)


def cutmix_boxes(lam: Tensor, height: int, width: int, u: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`cutmix_box` for each sample: ``lam`` ``(B,)``, ``u`` ``(B, 2)`` (each row the box centre as fractions
    of H and W). Returns the boxes ``(B, 4)`` int64 and the kept lams ``(B,)`` float64, row for row equal to
    ``cutmix_box(lam[i], H, W, u[i])``."""
    _check_image(height, width, "cutmix_boxes")
    lam_t = torch.as_tensor(lam, dtype=torch.float64).cpu()
    if lam_t.dim() != 1:
        raise ValueError(f"cutmix_boxes takes one lam per sample, shape (B,), got shape {tuple(lam_t.shape)}")
    check_lam(lam_t, lam_t.shape[0])
    centre = _per_sample_uniforms(u, lam_t.shape[0], 2, "the box centres as fractions of H and W")
    ratio = torch.sqrt(1.0 - lam_t)
    cut_h = torch.round(height * ratio).long()  # ties to even, as Python's round
    cut_w = torch.round(width * ratio).long()
    cy = (centre[:, 0] * height).long()  # int(): the values are >= 0, so truncation is the floor
    cx = (centre[:, 1] * width).long()
    boxes = torch.stack(
        (
            (cy - cut_h // 2).clamp(min=0),
            (cy + cut_h - cut_h // 2).clamp(max=height),
            (cx - cut_w // 2).clamp(min=0),
            (cx + cut_w - cut_w // 2).clamp(max=width),
        ),
        1,
    )
    return boxes, _kept_lam(boxes, height, width)


def cutmix_range_boxes(box_range: tuple[float, float], height: int, width: int, u: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`cutmix_range_box` for each sample: ``u`` ``(B, 4)`` (height, width, top, left). Returns the boxes
    ``(B, 4)`` int64 and the kept lams ``(B,)`` float64, row for row equal to ``cutmix_range_box``."""
    _check_image(height, width, "cutmix_range_boxes")
    h_lo, h_hi, w_lo, w_hi = _range_sides(check_box_range(box_range), height, width)
    draws = _per_sample_uniforms(u, None, 4, "four uniforms per sample (height, width, top, left)")

    def pick(v: Tensor, choices: Tensor | int) -> Tensor:
        return torch.minimum((v * choices).long(), torch.as_tensor(choices) - 1)  # as cutmix_range_box's pick

    cut_h = h_lo + pick(draws[:, 0], h_hi - h_lo)
    cut_w = w_lo + pick(draws[:, 1], w_hi - w_lo)
    y0 = pick(draws[:, 2], height - cut_h + 1)
    x0 = pick(draws[:, 3], width - cut_w + 1)
    boxes = torch.stack((y0, y0 + cut_h, x0, x0 + cut_w), 1)
    return boxes, _kept_lam(boxes, height, width)
