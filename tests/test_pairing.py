"""Pairing: permutations, same-class, no self-pairs, k-NN partners."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicinal.pairing import KNNPartners, batch_pairs, fixed_pairs, random_pairs, same_class_pairs


def g(seed=0):
    return torch.Generator().manual_seed(seed)


@given(n=st.integers(1, 64), seed=st.integers(0, 2**31), allow_self=st.booleans())
@settings(max_examples=60, deadline=None)
def test_random_pairs_is_a_permutation(n, seed, allow_self):
    perm = random_pairs(n, generator=g(seed), allow_self=allow_self)
    assert torch.equal(perm.sort().values, torch.arange(n))
    if not allow_self and n > 1:
        assert not bool((perm == torch.arange(n)).any())


@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=50),
    seed=st.integers(0, 2**31),
    allow_self=st.booleans(),
)
@settings(max_examples=80, deadline=None)
def test_same_class_never_crosses_classes(labels, seed, allow_self):
    y = torch.tensor(labels)
    perm = same_class_pairs(y, generator=g(seed), allow_self=allow_self)
    assert torch.equal(perm.sort().values, torch.arange(len(labels)))
    assert torch.equal(y[perm], y)
    if not allow_self:
        counts = torch.bincount(y)
        self_paired = perm == torch.arange(len(labels))
        # only members of singleton classes may keep themselves
        assert bool((counts[y[self_paired]] == 1).all())


def test_same_class_is_uniform_within_class():
    # 4 samples of one class: each of the 4 partners of sample 0 appears ~1/4 of the time
    y = torch.zeros(4, dtype=torch.long)
    gen = g(1)
    hits = torch.zeros(4)
    for _ in range(4000):
        hits[same_class_pairs(y, generator=gen)[0]] += 1
    # binomial std of a count is ~27; 5 std tolerance
    assert torch.allclose(hits, torch.full((4,), 1000.0), atol=140)


def test_same_class_accepts_soft_labels():
    y = torch.tensor([0, 1, 0, 1])
    perm = same_class_pairs(torch.nn.functional.one_hot(y, 2).float(), generator=g())
    assert torch.equal(y[perm], y)


def test_no_self_pairs_partner_uniform():
    gen = g(2)
    hits = torch.zeros(5)
    for _ in range(4000):
        hits[random_pairs(5, generator=gen, allow_self=False)[0]] += 1
    assert hits[0] == 0
    assert torch.allclose(hits[1:], torch.full((4,), 1000.0), atol=140)


def test_fixed_pairs():
    assert fixed_pairs(4, "roll").tolist() == [3, 0, 1, 2]  # torch.roll(x, 1, 0)[i] == x[i - 1]
    assert fixed_pairs(4, "flip").tolist() == [3, 2, 1, 0]
    x = torch.arange(4)
    assert torch.equal(x[fixed_pairs(4, "roll")], x.roll(1, 0))


def test_batch_pairs_errors():
    with pytest.raises(ValueError, match="unknown pairing 'nearest'; known: random, same_class, roll, flip, knn"):
        batch_pairs("nearest", 4, None, generator=g())
    with pytest.raises(ValueError, match="same_class pairing needs labels"):
        batch_pairs("same_class", 4, None, generator=g())
    with pytest.raises(ValueError, match="knn pairing draws partners from the dataset"):
        batch_pairs("knn", 4, None, generator=g())
    with pytest.raises(ValueError, match=r"flip pairing pairs the middle sample of an odd batch \(5\)"):
        batch_pairs("flip", 5, None, generator=g(), allow_self=False)


def brute_force_knn(x, k, labels=None):
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    if labels is not None:
        d[labels[:, None] != labels[None, :]] = float("inf")
    return d


@pytest.mark.parametrize("same_class", [False, True])
def test_knn_partners_are_among_k_nearest(same_class):
    gen = g(0)
    x = torch.randn(300, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (300,), generator=gen)
    k = 10
    knn = KNNPartners.fit(x, y, k=k, same_class=same_class, chunk_size=64)
    d = brute_force_knn(x, k, y if same_class else None)
    expected = torch.topk(d, k, largest=False).indices.sort(1).values
    assert torch.equal(knn.neighbours.sort(1).values, expected)
    idx = torch.arange(300)
    for _ in range(5):
        partner = knn.sample(idx, generator=gen)
        assert bool((partner != idx).all())
        assert bool((knn.neighbours == partner[:, None]).any(1).all())
        if same_class:
            assert torch.equal(y[partner], y)


def test_knn_small_class_uses_valid_neighbours_only():
    x = torch.arange(6, dtype=torch.float32)[:, None]
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    knn = KNNPartners.fit(x, y, k=4, same_class=True)
    assert knn.counts.tolist() == [2] * 6
    partners = torch.stack([knn.sample(torch.arange(6), generator=g(s)) for s in range(50)])
    assert torch.equal(y[partners], y.expand(50, 6))


def test_knn_errors():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, N-1\] = \[1, 9\], got 10"):
        KNNPartners.fit(x, k=10)
    with pytest.raises(ValueError, match=r"same_class=True needs labels of shape \(10,\)"):
        KNNPartners.fit(x, k=2, same_class=True)
    with pytest.raises(ValueError, match=r"features must be \(N, D\) or \(N, ...\), got shape \(10,\)"):
        KNNPartners.fit(torch.randn(10), k=2)
    with pytest.raises(ValueError, match="every sample needs at least one neighbour"):
        KNNPartners.fit(x, torch.tensor([0] * 9 + [1]), k=2, same_class=True)
    knn = KNNPartners.fit(x, k=2)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 10\), got values from 0 to 10"):
        knn.sample(torch.tensor([0, 10]), generator=g())
