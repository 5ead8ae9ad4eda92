"""The paper's mixing formula written out with PyTorch ops, and the rounding bound of the fast paths.

Shared by the tests of ``functional``, ``mixup``, ``pairing`` and ``collate`` (the fast mixing paths of issue 7: chunked
kernel, out=, in place, matching pairing, uint8 collate). Every fast path is checked against ``mix_reference``:

* ``mix`` (default, chunked on CPU), ``mix(out=)``, ``mix_(exact=True)``, uint8 rounding: ``torch.equal``.
* ``mix_(exact=False)`` (one ``torch.lerp`` per slice, or the fused gather-and-mix) and ``mix(exact=False)``: an
  elementwise rounding bound, derived here.

Rounding bound for ``exact=False``. Write a = x_i, b = x_j, m = lam a + (1 - lam) b exactly, u the unit roundoff of
the dtype (2**-24 float32, 2**-53 float64, 2**-8 bfloat16, 2**-11 float16; bfloat16/float16 ops compute in float32
and round once to the dtype, and float32 rounding errors are smaller than u). To first order in u:

* formula ``fl(fl(w a) + fl(w' b))``: the two weights are rounded (|dw| <= u lam, |dw'| <= u (1 - lam) + u lam when
  w' = 1 - w is formed in the dtype), each product and the sum round once:
  ``|formula - m| <= 2 u lam |a| + 3 u (1 - lam) |b| + u lam |b| + u |m| <= 3 u (|a| + |b|)`` (|m| <= max(|a|, |b|)).
* lerp with weight t in {lam, 1 - lam} (the kernel passes the smaller one for a batch lam; torch switches to
  ``end - (end - self)(1 - t)``, with 1 - t exact by Sterbenz, when t >= 0.5): the weight rounds once (u t |b - a|),
  the difference and the multiply-add round at most twice in float32, the result once in the dtype:
  ``|lerp - m| <= u t (|a| + |b|) + 2 u (|a| + |b|) t + u |m| <= 3 u (|a| + |b|)``.

* fused gather-and-mix (``torch.embedding_bag``: weights w ~ lam and w' ~ 1 - lam each rounded once to the dtype,
  products and their sum formed in float32 or wider, the result rounded once to the dtype): the weights err by
  ``u lam |a| + u (1 - lam) |b|``, the float32 arithmetic by at most ``2 u (|a| + |b|)``, the last rounding by ``u |m|``:
  ``|fused - m| <= 4 u (|a| + |b|)``, inside the ``3 u + 3 u`` budget of the lerp.

Hence ``|mix_(exact=False) - formula| <= 6 u (|a| + |b|)`` plus, in the subnormal range, an absolute term of a few
smallest subnormals (each rounding there errs by at most half of one). Observed on random normal data: at most
~3.3 u (|a| + |b|) (float16, per-sample lam), ~2 u (|a| + |b|) for float32.
"""

from __future__ import annotations

import torch

UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
FLOATS = list(UNIT_ROUNDOFF)
DTYPES = [*FLOATS, torch.uint8]


def make(shape, dtype, seed=0, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    else:
        x = torch.randn(shape, generator=g).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def mix_reference(x, lam, xp):
    """The paper's formula with PyTorch ops, exactly as ``functional.mix`` documents it (uint8: float32, rounded)."""
    compute = x.dtype if x.is_floating_point() else torch.float32
    w = lam.to(compute).reshape(-1, *([1] * (x.dim() - 1))) if isinstance(lam, torch.Tensor) else lam
    mixed = w * x.to(compute) + (1 - w) * xp.to(compute)
    return mixed if x.is_floating_point() else mixed.round().clamp(0, 255).to(torch.uint8)


def lams(n, seed=0):
    """A batch lam below and above 0.5 (the lerp kernel switches direction there) and a per-sample lam (B,)."""
    return [0.3, 0.8, torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)]


def within_rounding_bound(fast, ref, a, b):
    """``|fast - ref| <= 6 u (|a| + |b|) + 4 * smallest subnormal`` elementwise (module docstring)."""
    dtype = fast.dtype
    u = UNIT_ROUNDOFF[dtype]
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    bound = 6 * u * (a.double().abs() + b.double().abs()) + 4 * tiny
    return bool(((fast.double() - ref.double()).abs() <= bound).all())


def uint8_batch(n=8, seed=0, shape=(3, 6, 5)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.arange(n) % 4


def dirichlet_reference(x, params):
    """sum_j w_j x[idx_j] in float32, rounded to nearest (the 2-way uint8 contract)."""
    acc = torch.zeros(x.shape, dtype=torch.float32)
    for j in range(params.indices.shape[0]):
        w = params.weights[:, j].float().reshape(-1, *([1] * (x.dim() - 1)))
        acc += w * x[params.indices[j]].float()
    return acc
