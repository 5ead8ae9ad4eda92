"""Pairing: permutations, same-class, no self-pairs, k-NN partners."""

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import vicinal
from tests.mixing_reference import make
from vicinal.pairing import KNNPartners, batch_pairs, fixed_pairs, matching_pairs, random_pairs, same_class_pairs


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


def test_knn_sample_is_uniform_over_every_valid_neighbour():
    # guards the draw j = floor(u * count) (floor(u * (count - 1)) never drew a row's last valid
    # neighbour; rows of one neighbour and the same-class check above still passed). Class 0 has 3 members (2 valid
    # neighbours each, the third entry is padding), class 1 has 4 (3 valid). 6000 draws per row: a count is
    # binomial(6000, 1/c), std <= 39; tolerance 5 std. Padding entries are never drawn.
    x = torch.arange(7, dtype=torch.float32)[:, None]
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    knn = KNNPartners.fit(x, y, k=3, same_class=True)
    assert knn.counts.tolist() == [2, 2, 2, 3, 3, 3, 3]
    draws = knn.sample(torch.arange(7).repeat_interleave(6000), generator=g(0)).view(7, 6000)
    for i in range(7):
        c = int(knn.counts[i])
        hits = torch.bincount(draws[i], minlength=7)
        assert int(hits[knn.neighbours[i, :c]].sum()) == 6000  # only valid neighbours
        expected = torch.full((c,), 6000 / c, dtype=torch.float64)
        assert torch.allclose(hits[knn.neighbours[i, :c]].double(), expected, atol=195), (i, hits.tolist())


def test_knn_errors():
    x = torch.randn(10, 3, generator=g(0))  # not the global RNG: the table's smallest entry below depends on x
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
    with pytest.raises(TypeError, match="indices must be an integer tensor of dataset indices, got torch.float32"):
        knn.sample(torch.tensor([0.5, 1.7]), generator=g())  # .long() truncated them to samples 0 and 1
    with pytest.raises(ValueError, match=r"chunk_size must be an int >= 1 \(rows per distance chunk\), got -1"):
        KNNPartners.fit(x, k=2, chunk_size=-1)  # computed nothing, then blamed a class with a single member
    # a table built by hand: its drawn entries must index the dataset, its counts fit its rows
    table, counts = knn.neighbours.clone(), knn.counts.clone()
    table[3, 0] = 10
    low = int(table.min())  # the message quotes the table's range
    with pytest.raises(
        ValueError, match=rf"neighbours must be dataset indices in \[0, 10\), got values from {low} to 10"
    ):
        KNNPartners(table, counts)
    table[3, 0], counts[2] = 1, 3
    with pytest.raises(ValueError, match=r"counts must be at most k = 2 \(the valid entries of a row\), got 3"):
        KNNPartners(table, counts)
    with pytest.raises(TypeError, match="neighbours must be an integer tensor, got torch.float32"):
        KNNPartners(knn.neighbours.float(), knn.counts)
    counts[2], table[2, 1] = 1, -5  # an entry past a row's count is never drawn: allowed
    assert KNNPartners(table, counts).k == 2


# -- matching pairing (issue 7) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 4, 10, 128])
def test_matching_is_an_involution_without_self_pairs_for_even_batches(n):
    for seed in range(20):
        for allow_self in (True, False):
            perm = matching_pairs(n, generator=torch.Generator().manual_seed(seed), allow_self=allow_self)
            assert torch.equal(perm.sort().values, torch.arange(n))
            assert torch.equal(perm[perm], torch.arange(n))
            assert not bool((perm == torch.arange(n)).any())


@pytest.mark.parametrize("n", [3, 5, 9])
def test_matching_odd_batches(n):
    ar = torch.arange(n)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        perm = matching_pairs(n, generator=g, allow_self=True)
        assert torch.equal(perm[perm], ar) and int((perm == ar).sum()) == 1  # one leftover keeps itself
        perm = matching_pairs(n, generator=g, allow_self=False)
        assert torch.equal(perm.sort().values, ar) and not bool((perm == ar).any())
        moved = perm[perm] != ar
        assert int(moved.sum()) == 3  # the 3-cycle
        cyc = ar[moved]
        assert torch.equal(perm[perm[perm[cyc]]], cyc)
    assert matching_pairs(1, generator=torch.Generator()).tolist() == [0]


@pytest.mark.parametrize("n, allow_self", [(6, True), (5, True), (5, False)])
def test_matching_partner_is_uniform(n, allow_self):
    # sample 0's partner over 6000 draws: uniform over the other n - 1 (even n, or odd n without self-pairs) or
    # over all n (odd n, allow_self: the leftover is uniform). Counts are binomial(6000, 1/k): std = sqrt(6000 p (1 -
    # p)) <= 33; tolerance 5 std.
    gen = torch.Generator().manual_seed(7)
    hits = torch.zeros(n)
    for _ in range(6000):
        hits[matching_pairs(n, generator=gen, allow_self=allow_self)[0]] += 1
    support = n if (n % 2 == 1 and allow_self) else n - 1
    p = 1.0 / support
    std = (6000 * p * (1 - p)) ** 0.5
    expected = torch.full((n,), 6000 * p)
    if support == n - 1:
        assert hits[0] == 0
        expected[0] = 0
    assert float((hits - expected).abs().max()) < 5 * std


def test_matching_pairs_share_their_two_inputs():
    # each pair's two outputs come from the same two inputs: x~_i + x~_j = x_i + x_j for a pair (i, j)
    x = make((10, 4), torch.float64)
    y = torch.arange(10) % 5
    mixer = vicinal.Mixup(1.0, num_classes=5, pairing="matching", seed=3)
    p = mixer.sample(x, y)
    xm, ym = mixer.apply_inputs(x, p), mixer.apply_targets(y, p)
    torch.testing.assert_close(xm + xm[p.perm], x + x[p.perm], rtol=0, atol=1e-12)
    yh = F.one_hot(y, 5).double()
    torch.testing.assert_close((ym + ym[p.perm]).double(), yh + yh[p.perm], rtol=0, atol=1e-6)
    assert torch.equal(batch_pairs("matching", 10, None, generator=torch.Generator().manual_seed(0)).sort().values,
                       torch.arange(10))  # fmt: skip


# -- issue 11: k-NN neighbours are translation invariant and keep float64 ----------------------------------------------
def brute_force_neighbours(feats, k):
    d = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    d.fill_diagonal_(float("inf"))
    return d.topk(k, dim=1, largest=False).indices


def test_knn_translation_invariant_float64():
    b = torch.randn(300, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    base = vicinal.KNNPartners.fit(b, k=5, chunk_size=128)
    shifted = vicinal.KNNPartners.fit(b + 1000, k=5, chunk_size=128)
    assert torch.equal(base.neighbours, brute_force_neighbours(b, 5))
    assert torch.equal(shifted.neighbours, base.neighbours)


def test_knn_keeps_float64_precision():
    # sample 0's nearest neighbour is sample 2 (distance 1) by 1e-10 over sample 1: float32 cannot tell them apart
    feats = torch.tensor([[0.0], [-1.0 - 1e-10], [1.0]], dtype=torch.float64)
    knn = vicinal.KNNPartners.fit(feats, k=1)
    assert knn.neighbours[:, 0].tolist() == [2, 0, 0]


def test_knn_rejects_non_finite_features():
    feats = torch.randn(10, 3)
    feats[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"features contain 1 non-finite value"):
        vicinal.KNNPartners.fit(feats, k=2)


def test_knn_translation_invariant_float32():
    """float32 is where the |a|^2 + |b|^2 - 2ab expansion cancels: at an offset of 1000 on 32 dims the squared norms
    are ~3e7, their float32 rounding (~2) exceeds the gaps between neighbour distances, unless features are centred."""
    b = torch.randn(300, 32, generator=torch.Generator().manual_seed(0))
    expected = brute_force_neighbours(b.double(), 5)
    assert torch.equal(vicinal.KNNPartners.fit(b, k=5, chunk_size=128).neighbours, expected)
    assert torch.equal(vicinal.KNNPartners.fit(b + 1000, k=5, chunk_size=128).neighbours, expected)


def test_pairings_need_an_explicit_generator():
    # generator=None fell back to torch's global stream, silently
    knn = KNNPartners.fit(torch.randn(6, 2), k=2)
    for call in (lambda: random_pairs(4, generator=None), lambda: matching_pairs(4, generator=None),
                 lambda: same_class_pairs(torch.tensor([0, 0, 1, 1]), generator=None),
                 lambda: batch_pairs("random", 4, None, generator=None),
                 lambda: knn.sample(torch.tensor([0, 1]), generator=None)):  # fmt: skip
        with pytest.raises(TypeError, match="generator must be a torch.Generator, got NoneType"):
            call()
    assert torch.equal(batch_pairs("flip", 4, None, generator=None), torch.tensor([3, 2, 1, 0]))  # draws nothing


def test_knn_sample_takes_one_index_per_sample_and_fit_tensor_labels():
    import numpy as np

    kp = KNNPartners.fit(torch.randn(20, 3), k=4)
    g = torch.Generator().manual_seed(0)
    # (B, 1) indices broadcast into a (B, B) table of partners; a 0-d index was an IndexError
    for bad in (torch.tensor([[1], [5], [9]]), torch.tensor(3)):
        with pytest.raises(
            ValueError, match=rf"indices must be \(B,\) dataset indices, got shape {re.escape(str(tuple(bad.shape)))}"
        ):
            kp.sample(bad, generator=g)
    for labels in (np.zeros(20, dtype=np.int64), [0] * 20):  # AttributeError before
        with pytest.raises(
            TypeError, match=rf"^labels must be a torch.Tensor of class indices, got {type(labels).__name__}$"
        ):
            KNNPartners.fit(torch.randn(20, 3), labels, k=3, same_class=True)


def test_a_hand_made_table_of_any_integer_dtype_samples_dataset_indices():
    # a uint8 table returned uint8 partners, which x[j] reads as a boolean mask
    table = vicinal.KNNPartners(torch.tensor([[1], [2], [0]], dtype=torch.uint8), torch.ones(3, dtype=torch.int16))
    j = table.sample(torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert j.dtype == torch.int64 and j.tolist() == [1, 2, 0]
    assert torch.equal(torch.arange(3.0)[j], torch.tensor([1.0, 2.0, 0.0]))
