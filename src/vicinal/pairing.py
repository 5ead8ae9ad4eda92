"""Who is mixed with whom (the "pairing" axis of the paper's ablation, Table 5).

* ``random``     AC+RP: a random permutation of the minibatch over all classes (the paper's default).
* ``same_class`` SC+RP: a random permutation within each class of the minibatch.
* ``roll``       partner = the previous sample (i - 1), ``roll(1)`` (torchvision v2's ``MixUp``/``CutMix``).
* ``flip``       partner = the mirror sample, ``flip(0)`` (timm's ``Mixup``).
* ``matching``   a random perfect matching: shuffle, then pair positions 2k and 2k+1 of the shuffled order.
  ``perm`` is an involution (``perm[perm] == arange``): each pair's two mixed samples come from the same two
  inputs, and each sample's partner is uniform over the other B - 1 (a random permutation instead leaves one
  sample unmixed per batch on average). Not needed for speed: the chunked kernels read each sample once for any
  permutation.
* k-NN (AC+KNN, SC+KNN): partners from the k nearest neighbours of each *training sample*, precomputed once
  over the dataset by :class:`KNNPartners`; partners come from the dataset, not from the minibatch.

``allow_self=False`` forbids pairing a sample with itself. It cannot hold for a batch of one sample, nor for a
class that has a single member in the batch (SC pairing), nor for the middle sample of an odd batch under
``flip``: those samples keep themselves as partner, which leaves them unmixed. For ``matching`` on an odd batch,
see :func:`matching_pairs`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import check_choice, check_generator, is_int

PAIRINGS = ("random", "same_class", "roll", "flip", "knn", "matching")


def random_pairs(n: int, *, generator: torch.Generator, allow_self: bool = True) -> Tensor:
    """AC+RP partner indices ``(n,)``. Without self-pairs, partners follow one random cycle, so each sample's
    partner is uniform over the other n - 1."""
    order = torch.randperm(n, generator=check_generator(generator))
    if allow_self or n == 1:
        return order
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm


def matching_pairs(n: int, *, generator: torch.Generator, allow_self: bool = True) -> Tensor:
    """A uniformly random perfect matching of ``n`` samples as partner indices ``(n,)``.

    Shuffle, then pair positions ``2k`` and ``2k + 1`` of the shuffled order: ``perm`` is an involution and, for
    even ``n``, nobody is paired with itself and each sample's partner is uniform over the other ``n - 1``.

    Odd ``n``: the last sample of the shuffled order (uniform over the batch) has no partner. With
    ``allow_self=True`` it keeps itself (left unmixed; every sample's partner, itself included, is then uniform
    over all ``n``, as under a random permutation). With ``allow_self=False`` the last three of the shuffled order
    form a 3-cycle instead (``a -> b -> c -> a``), so nobody is self-paired and partners stay uniform over the
    other ``n - 1``; ``perm`` is then an involution everywhere except on those three. ``n == 1`` gives ``[0]``.
    """
    order = torch.randperm(n, generator=check_generator(generator))
    perm = torch.empty(n, dtype=torch.long)
    even = n - n % 2
    first, second = order[0:even:2], order[1:even:2]
    perm[first] = second
    perm[second] = first
    if n % 2 == 1:
        last = order[-1]
        perm[last] = last
        if not allow_self and n >= 3:
            a, b, c = order[-3], order[-2], order[-1]  # the last pair and the leftover become a 3-cycle
            perm[a], perm[b], perm[c] = b, c, a
    return perm


def same_class_pairs(labels: Tensor, *, generator: torch.Generator, allow_self: bool = True) -> Tensor:
    """SC+RP partner indices: a uniformly random permutation inside each class of ``labels (B,)``.

    Soft labels ``(B, C)`` are grouped by their argmax. Vectorised: sort by class with random tie-breaking twice
    (same group boundaries both times) and map the first order onto the second.
    """
    check_generator(generator)
    if labels.dim() == 2:
        labels = labels.argmax(1)
    labels = labels.cpu()
    n = labels.shape[0]

    def grouped_order() -> Tensor:
        shuffled = torch.randperm(n, generator=generator)
        return shuffled[torch.argsort(labels[shuffled], stable=True)]

    order = grouped_order()
    perm = torch.empty(n, dtype=torch.long)
    if allow_self:
        perm[order] = grouped_order()
        return perm
    # cyclic shift by one inside each class group: never self unless the group has one member
    sorted_labels = labels[order]
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    ends = starts + torch.repeat_interleave(counts, counts)
    pos = torch.arange(n)
    nxt = torch.where(pos + 1 < ends, pos + 1, starts)
    perm[order] = order[nxt]
    return perm


def fixed_pairs(n: int, kind: str) -> Tensor:
    """Deterministic partners: ``roll`` (i -> i-1, like ``torch.roll(x, 1, 0)``) or ``flip`` (i -> n-1-i)."""
    idx = torch.arange(n)
    if kind == "roll":
        return idx.roll(1)
    if kind == "flip":
        return idx.flip(0)
    raise ValueError(f"unknown fixed pairing {kind!r}; known: roll, flip")


def batch_pairs(
    kind: str, n: int, labels: Tensor | None, *, generator: torch.Generator, allow_self: bool = True
) -> Tensor:
    """Partner indices ``(n,)`` within a minibatch for the named pairing."""
    check_choice(kind, PAIRINGS, "pairing")
    if kind == "random":
        return random_pairs(n, generator=generator, allow_self=allow_self)
    if kind == "matching":
        return matching_pairs(n, generator=generator, allow_self=allow_self)
    if kind == "same_class":
        if labels is None:
            raise ValueError("same_class pairing needs labels")
        return same_class_pairs(labels, generator=generator, allow_self=allow_self)
    if kind == "knn":
        raise ValueError(
            "knn pairing draws partners from the dataset: use KNNPartners.sample(indices) and pass "
            "partner=(x_partner, y_partner)"
        )
    if kind == "flip" and not allow_self and n % 2 == 1 and n > 1:
        raise ValueError(
            f"flip pairing pairs the middle sample of an odd batch ({n}) with itself; allow_self=False forbids it"
        )
    return fixed_pairs(n, kind)


class KNNPartners:
    """k nearest neighbours of every training sample, computed once (AC+KNN / SC+KNN of Table 5).

    ``neighbours[i]`` holds the dataset indices of the ``k`` nearest other samples of sample ``i`` (Euclidean
    distance on the given features: raw inputs flattened, or embeddings), restricted to its class when
    ``same_class=True``. Where a class has fewer than ``k + 1`` members, only ``counts[i]`` entries are valid.
    """

    def __init__(self, neighbours: Tensor, counts: Tensor) -> None:
        for name, t in (("neighbours", neighbours), ("counts", counts)):
            if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must be an integer tensor, got {getattr(t, 'dtype', type(t).__name__)}")
        if neighbours.dim() != 2 or counts.shape != (neighbours.shape[0],):
            raise ValueError(
                f"neighbours must be (N, k) and counts (N,), got {tuple(neighbours.shape)} and {tuple(counts.shape)}"
            )
        if bool((counts < 1).any()):
            raise ValueError("every sample needs at least one neighbour (a class with a single member has none)")
        n, k = neighbours.shape
        if bool((counts > k).any()):
            raise ValueError(f"counts must be at most k = {k} (the valid entries of a row), got {int(counts.max())}")
        # only the valid entries of a row are ever drawn: those must index the dataset
        valid = torch.arange(k, device=neighbours.device) < counts.to(neighbours.device)[:, None]
        drawn = neighbours[valid]
        if drawn.numel() and (int(drawn.min()) < 0 or int(drawn.max()) >= n):
            raise ValueError(
                f"neighbours must be dataset indices in [0, {n}), got values from {int(drawn.min())} to "
                f"{int(drawn.max())}"
            )
        # int64: sample() returns entries of this table, which index the dataset (x[j]); uint8 indices would be a
        # boolean mask there
        self.neighbours = neighbours.long()
        self.counts = counts.long()

    @property
    def k(self) -> int:
        return int(self.neighbours.shape[1])

    @classmethod
    def fit(
        cls,
        features: Tensor,
        labels: Tensor | None = None,
        *,
        k: int = 200,
        same_class: bool = False,
        chunk_size: int = 1024,
    ) -> KNNPartners:
        """Compute the neighbour table from ``features (N, ...)`` (flattened), in chunks of rows.

        Distances are computed in the features' own precision (float64 stays float64; float32, half types and
        integer features in float32) after centring the features on their mean, so the neighbours do not change
        under a translation of the features: the ``|a|^2 + |b|^2 - 2ab`` expansion used for speed (one matmul per
        chunk) would otherwise cancel catastrophically when the features share a large offset.
        """
        if not isinstance(features, Tensor):
            raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
        if features.dim() < 2:
            raise ValueError(f"features must be (N, D) or (N, ...), got shape {tuple(features.shape)}")
        n = features.shape[0]
        if not is_int(k) or k < 1 or k >= n:
            raise ValueError(f"k must be an int in [1, N-1] = [1, {n - 1}], got {k!r}")
        k = int(k)
        if not is_int(chunk_size) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1 (rows per distance chunk), got {chunk_size!r}")
        if same_class:
            if labels is not None and not isinstance(labels, Tensor):
                raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
            if labels is None or labels.shape != (n,):
                raise ValueError(f"same_class=True needs labels of shape ({n},)")
            labels = labels.to(features.device)
        dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
        feats = features.reshape(n, -1).to(dtype)
        finite = torch.isfinite(feats)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ValueError(f"features contain {bad} non-finite value(s) (NaN or Inf); distances would be undefined")
        feats = feats - feats.mean(0, keepdim=True)  # translation invariance (see above)
        sq = (feats * feats).sum(1)
        neighbours = torch.empty(n, k, dtype=torch.long)
        counts = torch.empty(n, dtype=torch.long)
        for start in range(0, n, chunk_size):
            rows = feats[start : start + chunk_size]
            # squared distances (rows, N) via |a|^2 + |b|^2 - 2ab: one matmul per chunk
            d = sq[start : start + chunk_size, None] + sq[None, :] - 2.0 * rows @ feats.T
            idx = torch.arange(start, start + rows.shape[0], device=d.device)
            d[torch.arange(rows.shape[0], device=d.device), idx] = float("inf")  # never your own neighbour
            if same_class:
                assert labels is not None
                d.masked_fill_(labels[start : start + chunk_size, None] != labels[None, :], float("inf"))
            dist, nn_idx = torch.topk(d, k, dim=1, largest=False)
            neighbours[start : start + rows.shape[0]] = nn_idx.cpu()
            counts[start : start + rows.shape[0]] = torch.isfinite(dist).sum(1).cpu()
        return cls(neighbours, counts)

    def sample(self, indices: Tensor, *, generator: torch.Generator) -> Tensor:
        """One partner per dataset index in ``indices (B,)``, uniform over its valid neighbours."""
        if (
            not isinstance(indices, Tensor)
            or indices.is_floating_point()
            or indices.is_complex()
            or indices.dtype == torch.bool
        ):
            # .long() would truncate 1.7 to sample 1
            raise TypeError(
                f"indices must be an integer tensor of dataset indices, got {getattr(indices, 'dtype', type(indices).__name__)}"
            )
        if indices.dim() != 1:  # (B, 1) would broadcast into a (B, B) table of partners
            raise ValueError(f"indices must be (B,) dataset indices, got shape {tuple(indices.shape)}")
        indices = indices.cpu().long()
        n = self.neighbours.shape[0]
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise ValueError(
                f"indices must be in [0, {n}), got values from {int(indices.min())} to {int(indices.max())}"
            )
        u = torch.rand(indices.shape[0], generator=check_generator(generator), dtype=torch.float64)
        j = (u * self.counts[indices]).long()
        return self.neighbours[indices, j]
