"""Collate-time uint8 mixing equals float mixing followed by rounding."""

import io
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import vicinal
from tests.mixing_reference import dirichlet_reference, mix_reference, uint8_batch


def samples(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, 5, 4), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (n,), generator=g)
    return [(imgs[i], int(labels[i])) for i in range(n)], imgs, labels


def test_uint8_collate_equals_float_mix_then_round():
    batch, imgs, labels = samples()
    collate = vicinal.MixupCollate(alpha=1.0, num_classes=4, seed=3)
    xm, ym = collate(batch)
    p = vicinal.Mixup(1.0, num_classes=4, seed=3).sample(imgs, labels)
    expected = (p.lam * imgs.float() + (1 - p.lam) * imgs[p.perm].float()).round().to(torch.uint8)
    assert xm.dtype == torch.uint8 and torch.equal(xm, expected)
    yh = torch.nn.functional.one_hot(labels, 4).float()
    assert torch.equal(ym, p.lam * yh + (1 - p.lam) * yh[p.perm])
    # never more than half a grey level away from the exact float mix
    exact = p.lam * imgs.float() + (1 - p.lam) * imgs[p.perm].float()
    assert float((xm.float() - exact).abs().max()) <= 0.5


def test_accepts_numpy_hwc_and_pil():
    batch, imgs, labels = samples(4)
    as_np = [(img.permute(1, 2, 0).numpy(), lab) for img, lab in batch]
    as_pil = [(Image.fromarray(img.permute(1, 2, 0).numpy()), lab) for img, lab in batch]
    a = vicinal.MixupCollate(alpha=0.0, num_classes=4)(as_np)
    b = vicinal.MixupCollate(alpha=0.0, num_classes=4)(as_pil)
    assert torch.equal(a[0], imgs) and torch.equal(b[0], imgs)


def test_multi_label_collate_stacks_rows_and_mixes_them_as_the_transform_does():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8, generator=g)
    rows = (torch.rand(6, 4, generator=g) < 0.5).float()
    as_lists = [(imgs[i], rows[i].int().tolist()) for i in range(6)]  # lists of ints, as a dataset may hold them
    as_arrays = [(imgs[i], rows[i].numpy()) for i in range(6)]
    for samples in (as_lists, as_arrays):
        xb, yb = vicinal.MixupCollate(num_classes=4, multi_label=True, smoothing=0.1, seed=3)(samples)
        mixer = vicinal.Mixup(1.0, num_classes=4, multi_label=True, smoothing=0.1, seed=3)
        xe, ye = mixer(imgs.clone(), rows)
        assert torch.equal(xb, xe) and torch.equal(yb, ye)
    with pytest.raises(TypeError, match=r"^MixupCollate with multi_label=True needs one row of class values per "):
        vicinal.MixupCollate(multi_label=True)([(imgs[0], [1, 0]), (imgs[1], [1, 0, 1])])
    with pytest.raises(TypeError, match=r"needs one row of class values per sample; got labels of shape \(\)$"):
        vicinal.MixupCollate(multi_label=True)([(imgs[0], 3), (imgs[1], 1)])
    with pytest.raises(ValueError, match=r"^multi-label targets must lie in \[0, 1\]"):
        vicinal.MixupCollate(multi_label=True)([(imgs[0], [3, 0]), (imgs[1], [1, 0])])


def test_cutmix_collate():
    batch, imgs, labels = samples()
    collate = vicinal.MixupCollate(vicinal.CutMix(1.0, num_classes=4, seed=0))
    xm, _ = collate(batch)
    assert xm.dtype == torch.uint8 and xm.shape == imgs.shape


def test_in_dataloader_workers_distinct_and_reproducible():
    """Every batch holds the same four samples, so two batches differ only by what their worker drew: the two
    workers draw different streams (each reseeds its copy of the mixer), a worker's batches follow one stream (it
    reseeds once, not per batch), and the same seeds give the same batches again."""
    _, imgs, labels = samples(4)
    ds = torch.utils.data.TensorDataset(imgs.repeat(4, 1, 1, 1), labels.repeat(4))

    def run():
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=4,
            num_workers=2,
            collate_fn=vicinal.MixupCollate(alpha=1.0, num_classes=4, seed=0),
            generator=torch.Generator().manual_seed(5),
        )
        return list(loader)

    first, second = run(), run()
    assert len(first) == 4
    assert all(torch.equal(a, b) and torch.equal(ya, yb) for (a, ya), (b, yb) in zip(first, second, strict=True))
    # batches 0 and 2 come from worker 0, 1 and 3 from worker 1
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(first[i][0], first[j][0]), (i, j)


def test_errors():
    with pytest.raises(ValueError, match="cannot collate an empty batch"):
        vicinal.MixupCollate(num_classes=2)([])
    with pytest.raises(
        TypeError,
        match=r"^collate-time mixing needs uint8 images, got dtype torch.float32; mix float batches with the "
        r"transform instead: mixer\(x, y\)$",
    ):
        vicinal.MixupCollate(num_classes=2)([(torch.zeros(3, 2, 2), 0), (torch.zeros(3, 2, 2), 1)])
    with pytest.raises(ValueError, match="MixupCollate keeps batches uint8: the mixer needs uint8_output='round'"):
        vicinal.MixupCollate(vicinal.Mixup(uint8_output="float"))
    with pytest.raises(TypeError, match=r"pass options to the mixer, not to MixupCollate: \['num_classes'\]"):
        vicinal.MixupCollate(vicinal.Mixup(), num_classes=3)
    _ = np  # numpy inputs covered above


def test_collate_mixes_in_place_and_equals_float_mix_then_round():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (32, 3, 24, 24), dtype=torch.uint8, generator=g)  # 55 KiB per batch
    labels = torch.randint(0, 10, (32,), generator=g)
    batch = [(imgs[i], int(labels[i])) for i in range(32)]
    for lam_mode in ["batch", "sample"]:
        xm, ym = vicinal.MixupCollate(alpha=1.0, num_classes=10, lam_mode=lam_mode, seed=4)(batch)
        p = vicinal.Mixup(1.0, num_classes=10, lam_mode=lam_mode, seed=4).sample(imgs, labels)
        assert xm.dtype == torch.uint8 and torch.equal(xm, mix_reference(imgs, p.lam, imgs[p.perm]))
        lam = p.lam if lam_mode == "batch" else p.lam.float()[:, None]
        yh = F.one_hot(labels, 10).float()
        assert torch.equal(ym, lam * yh + (1 - lam) * yh[p.perm])
    assert torch.equal(torch.stack([img for img, _ in batch]), imgs)  # the samples themselves are never written


def test_dirichlet_through_mixup_collate_uint8():
    x, y = uint8_batch(6)
    batch = [(x[i], int(y[i])) for i in range(6)]
    xm, _ = vicinal.MixupCollate(mixer=vicinal.DirichletMixup(alpha=1.0, k=3, num_classes=4, seed=2))(batch)
    params = vicinal.DirichletMixup(alpha=1.0, k=3, num_classes=4, seed=2).sample(x, y)
    assert xm.dtype == torch.uint8
    assert float((xm.float() - dirichlet_reference(x, params)).abs().max()) <= 0.5 + 1e-4


def test_labels_must_be_class_indices_and_grayscale_arrays_get_a_channel():
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    c = vicinal.MixupCollate(alpha=0.0, num_classes=10, seed=0)
    # 2.7 was truncated to class 2; one-element (1,) float tensors take the per-label path, whose int() truncation
    # went unnoticed
    for labels in (
        (torch.tensor(2.7), torch.tensor(3.9)),
        (2.7, 3),
        (2.0, 3),
        (torch.tensor([2.7]), torch.tensor([0.2])),
    ):
        with pytest.raises(
            TypeError, match=r"MixupCollate needs integer class labels, one per sample; got torch.float"
        ):
            c([(img, labels[0]), (img, labels[1])])
    assert c([(img, np.int64(3)), (img, torch.tensor(1))])[1].argmax(1).tolist() == [3, 1]
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    for sample in (gray, torch.from_numpy(gray), Image.fromarray(gray)):  # (H, W) arrays as PIL "L" images
        x, _ = c([(sample, 1), (sample, 2)])
        assert x.shape == (2, 1, 8, 8) and torch.equal(x[0, 0], torch.from_numpy(gray))


def test_one_call_stacking_equals_the_per_image_path(monkeypatch):
    """Tensors of one shape and plain labels are stacked in one call; anything else goes image by image. Both must
    give the same batch and labels (and the per-image path keeps naming what is wrong)."""
    from vicinal import collate as VC
    from vicinal.collate import _labels, _stack_images, _to_chw_uint8

    # no tensor over a read-only array (torch warns of it, once per process: a warnings check could pass by luck)
    from_numpy = torch.from_numpy

    def writable_only(array):
        assert array.flags.writeable, "a tensor over a read-only array"
        return from_numpy(array)

    monkeypatch.setattr(torch, "from_numpy", writable_only)

    g = torch.Generator().manual_seed(0)
    chw = [torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8, generator=g) for _ in range(4)]
    hw = [c[0] for c in chw]
    mixed = [chw[0], chw[1].permute(1, 2, 0).numpy(), Image.fromarray(chw[2].permute(1, 2, 0).numpy()), chw[3]]
    hwc_np = [c.permute(1, 2, 0).numpy() for c in chw]
    pil = [Image.fromarray(a) for a in hwc_np]
    read_only = [a.copy() for a in hwc_np]
    for a in read_only:
        a.setflags(write=False)  # as memory-mapped datasets give them
    numpy_and_pil = ([c.numpy() for c in chw], [h.numpy() for h in hw], hwc_np, pil, read_only)
    threads = torch.get_num_threads()
    try:
        # large batches with several torch threads are stacked by torch (its copy runs on every thread): the same
        for limit, num_threads in ((VC._NUMPY_STACK_MAX_BYTES, threads), (0, 2)):
            monkeypatch.setattr(VC, "_NUMPY_STACK_MAX_BYTES", limit)
            torch.set_num_threads(num_threads)
            for images in (chw, hw, mixed, *numpy_and_pil):
                got = _stack_images(images)
                assert torch.equal(got, torch.stack([_to_chw_uint8(i) for i in images]))
                assert got.is_contiguous()  # (B, C, H, W) in that memory order, whatever the images' layout
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(_stack_images([read_only[0], chw[1]]), torch.stack([chw[0], chw[1]]))  # mixed types
    # one image of another integer type in a numpy batch is refused, not cast into the uint8 batch
    with pytest.raises(TypeError, match="collate-time mixing needs uint8 images, got dtype torch.uint16"):
        _stack_images([hwc_np[0], hwc_np[1].astype(np.uint16)])
    assert torch.equal(_stack_images(hw), torch.stack(hw).unsqueeze(1))
    for raw in ([1, 2, 3], [torch.tensor(1), torch.tensor(2)], [torch.tensor([1]), torch.tensor([2])],
                [np.int64(1), 2], [torch.tensor(1), 2]):  # fmt: skip
        got = _labels(raw)
        assert got.dtype == torch.int64 and got.tolist() == [int(v) for v in raw]
    with pytest.raises(
        ValueError, match=r"needs images of one size .* sample 0 is \(3, 4, 5\) \(C, H, W\), sample 1 is \(3, 2, 5\)"
    ):
        _stack_images([chw[0], chw[1][:, :2]])
    with pytest.raises(TypeError, match="collate-time mixing needs uint8 images, got dtype torch.int16"):
        _stack_images([c.short() for c in chw])


def test_pil_images_that_are_not_8_bit_intensities_are_refused():
    # np.asarray(img, dtype=uint8) turned a 16-bit 1000 into 232 and a float 0.5 into 0, silently
    c = vicinal.MixupCollate(alpha=1.0, num_classes=3, seed=0)
    for img, match in (
        (Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)), r"got an image of mode 'I;16' \(uint16 values\)"),
        (Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), r"got an image of mode 'F' \(float32 values\)"),
        (Image.new("1", (4, 4)), r"got an image of mode '1' \(bool values\)"),
    ):
        with pytest.raises(TypeError, match="collate-time mixing needs uint8 images, " + match):
            c([(img, 0), (img, 1)])


def test_worker_seeds_mix_the_loader_seed_with_the_mixer_seed(monkeypatch):
    """In a worker the mixer was seeded with the worker seed alone: the very numbers the worker's global RNG gives the
    dataset's augmentations, whatever seed the mixer was given."""
    info = type("Info", (), {"id": 0, "seed": 1234})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)

    def first_draws(seed):
        c = vicinal.MixupCollate(alpha=1.0, num_classes=3, seed=seed)
        c.mixer._reseed_in_worker()
        return torch.rand(4, generator=c.mixer.generator)

    augmentations = torch.rand(4, generator=torch.Generator().manual_seed(1234))
    assert not torch.equal(first_draws(0), augmentations)
    assert torch.equal(first_draws(0), first_draws(0)) and not torch.equal(first_draws(0), first_draws(1))
    epoch0 = first_draws(0)
    info.seed = 1235  # the next epoch's workers: new numbers
    assert not torch.equal(first_draws(0), epoch0)


def test_palette_and_hue_images_and_unusable_labels_are_named():
    c = vicinal.MixupCollate(alpha=1.0, num_classes=3, seed=0)
    for mode, why in (("P", "palette indices"), ("PA", "palette indices"), ("HSV", "hue is an angle"),
                      ("LAB", "a\\* and b\\* are signed bytes")):  # fmt: skip
        img = Image.new("RGB", (4, 4), (0, 255, 0)).convert(mode)
        with pytest.raises(TypeError, match=rf"needs pixel intensities, got a '{mode}' image \({why}\)"):
            c([(img, 0), (img, 1)])
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    assert c([(img, np.array(2)), (img, np.array([1]))])[1].argmax(1).tolist() == [2, 1]  # one-value arrays
    for labels, what in (((torch.tensor([0.0, 1, 0]), torch.tensor([1.0, 0, 0])), r"Tensor of shape \(3,\)"),
                         (("cat", "dog"), r"str of shape \(\)")):  # fmt: skip
        with pytest.raises(TypeError, match=rf"needs integer class labels, one per sample; got {what}"):
            c([(img, labels[0]), (img, labels[1])])


def test_worker_seed_follows_a_mixer_seeded_after_wrapping(monkeypatch):
    info = type("Info", (), {"id": 0, "seed": 77})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
    late = vicinal.MixupCollate(vicinal.Mixup(1.0, num_classes=3))  # unseeded at construction
    late.mixer.generator.manual_seed(5)
    early = vicinal.MixupCollate(vicinal.Mixup(1.0, num_classes=3, seed=5))
    late.mixer._reseed_in_worker(), early.mixer._reseed_in_worker()
    assert torch.equal(torch.rand(4, generator=late.mixer.generator), torch.rand(4, generator=early.mixer.generator))


@pytest.mark.parametrize(
    "samples, what",
    [
        (
            [{"image": torch.zeros(3, 4, 4, dtype=torch.uint8), "label": 1}] * 2,
            r"a dict with keys \['image', 'label'\]",
        ),
        ([(torch.zeros(3, 4, 4, dtype=torch.uint8), 1, "path.png")] * 2, "a tuple of 3 items"),
        ([torch.zeros(3, 4, 4, dtype=torch.uint8)] * 2, "a Tensor"),
        (
            [(torch.zeros(3, 4, 4, dtype=torch.uint8), 1), (torch.zeros(3, 4, 4, dtype=torch.uint8), 1, "x")],
            "a tuple of 3 items",
        ),
    ],
)
def test_collate_names_samples_that_are_not_image_label_pairs(samples, what):
    with pytest.raises(TypeError, match=r"^MixupCollate needs \(image, label\) samples; got " + what):
        vicinal.MixupCollate(alpha=1.0, num_classes=3, seed=0)(samples)


def test_collate_names_a_dict_sample_anywhere_in_the_batch():
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"got a dict with keys \['image', 'label'\]"):
        vicinal.MixupCollate(alpha=1.0, num_classes=3, seed=0)([(img, 1), {"image": img, "label": 1}])


def test_collate_refuses_alpha_beside_a_mixer():
    # alpha is ignored when a mixer is given: refused like any other option
    with pytest.raises(TypeError, match=r"pass options to the mixer, not to MixupCollate: \['alpha'\]"):
        vicinal.MixupCollate(vicinal.Mixup(num_classes=3), alpha=0.2)
    assert vicinal.MixupCollate(num_classes=3).mixer.alpha == 1.0
    assert vicinal.MixupCollate(alpha=0.2, num_classes=3).mixer.alpha == 0.2
    assert repr(vicinal.MixupCollate(alpha=0.2, num_classes=3)).startswith("MixupCollate(Mixup(alpha=0.2, ")


def test_a_worker_reseeds_once_then_its_batches_follow_one_stream(monkeypatch):
    info = type("Info", (), {"id": 0, "seed": 1234})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
    batch, imgs, labels = samples()
    collate = vicinal.MixupCollate(alpha=1.0, num_classes=4, seed=0)
    seed = int(np.random.SeedSequence([1234, 0]).generate_state(1, np.uint64)[0])
    mixed = [collate(batch) for _ in range(3)]
    monkeypatch.undo()  # the reference runs in the main process: its own generator as it is
    reference = vicinal.Mixup(1.0, num_classes=4, seed=seed)  # the worker's stream, continued batch after batch
    for xm, ym in mixed:
        x_ref, y_ref = reference(imgs.clone(), labels)
        assert torch.equal(xm, x_ref) and torch.equal(ym, y_ref)


def test_workers_started_by_spawn_receive_the_collate_and_mix_as_forked_ones():
    # spawn and forkserver (Python 3.14's Linux default) pickle the collate_fn: torch's own reduction of a generator
    # fails in such a worker; the same seeds must give the same batches as forked workers
    _, imgs, labels = samples(4)
    ds = torch.utils.data.TensorDataset(imgs.repeat(2, 1, 1, 1), labels.repeat(2))

    def run(context):
        collate = vicinal.MixupCollate(alpha=1.0, num_classes=4, seed=0)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=4, num_workers=2, collate_fn=collate, multiprocessing_context=context,
            generator=torch.Generator().manual_seed(5),
        )  # fmt: skip
        return list(loader)

    forked, spawned = run("fork"), run("spawn")
    assert len(spawned) == 2
    for (a, ya), (b, yb) in zip(forked, spawned, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)


def test_a_pickled_collate_keeps_its_stream_and_shared_generators():
    import pickle

    collate = vicinal.MixupCollate(vicinal.MixupOrCutMix(num_classes=4, switch_prob=0.5, seed=2))
    copy = pickle.loads(pickle.dumps(collate))
    shared = copy.mixer.generator
    assert shared is copy.mixer.mixup.generator and shared is copy.mixer.cutmix.generator
    batch, _, _ = samples()
    for _ in range(3):  # the copy continues the original's stream
        (a, ya), (b, yb) = collate(batch), copy(batch)
        assert torch.equal(a, b) and torch.equal(ya, yb)


def test_numpy_images_as_chw_or_hwc_and_refused_layouts():
    imgs = torch.randint(0, 256, (4, 3, 6, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    chw = [(img.numpy(), 0) for img in imgs]  # timm's ToNumpy gives (C, H, W) arrays
    hwc = [(img.permute(1, 2, 0).numpy(), 0) for img in imgs]
    for layout in (chw, hwc):
        assert torch.equal(vicinal.MixupCollate(alpha=0.0, num_classes=4)(layout)[0], imgs)
    plain = vicinal.MixupCollate(alpha=0.0, num_classes=4)
    for shape, stacked in (((6, 5, 2), (2, 2, 6, 5)), ((2, 6, 5), (2, 2, 6, 5)), ((3, 3, 3), (2, 3, 3, 3)),
                           ((4, 3, 5), (2, 4, 3, 5))):  # fmt: skip
        assert plain([(np.zeros(shape, np.uint8), 0)] * 2)[0].shape == stacked, shape
    for shape in ((13, 64, 64), (32, 48, 100)):  # either layout is plausible: refused, a tensor says which
        with pytest.raises(ValueError, match=rf"cannot tell the channel axis of a numpy image of shape \({shape[0]}, "):
            plain([(np.zeros(shape, np.uint8), 0)] * 2)
    collate = vicinal.MixupCollate(alpha=1.0, num_classes=4, seed=0)
    with pytest.raises(
        ValueError,
        match=r"stacks \(C, H, W\) or \(H, W\) images into \(B, C, H, W\); got images of shape \(1, 3, 4, 4\)",
    ):
        collate([(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 0)] * 2)
    with pytest.raises(ValueError, match=r"stacks .* got images of shape \(4,\)"):
        collate([(torch.zeros(4, dtype=torch.uint8), 0)] * 2)
    mixed = [(torch.zeros(3, 8, 8, dtype=torch.uint8), 0), (torch.zeros(3, 6, 8, dtype=torch.uint8), 1)]
    with pytest.raises(
        ValueError, match=r"needs images of one size .* sample 0 is \(3, 8, 8\) \(C, H, W\), sample 1 is \(3, 6, 8\)"
    ):
        collate(mixed)


def test_numpy_labels_of_every_integer_kind_and_one_element_arrays_are_taken_quietly(monkeypatch):
    # np.uint64 scalars were refused (torch.as_tensor takes no uint64 list), and one-element arrays went to
    # torch.as_tensor as a list of arrays, which warns (once per process) that it is extremely slow
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    c = vicinal.MixupCollate(alpha=0.0, num_classes=10, seed=0)
    as_tensor = torch.as_tensor
    lists_of_arrays = []

    def spy(data, *args, **kwargs):
        if isinstance(data, list) and data and isinstance(data[0], np.ndarray):
            lists_of_arrays.append(data)
        return as_tensor(data, *args, **kwargs)

    monkeypatch.setattr(torch, "as_tensor", spy)
    for kind in (np.uint64, np.uint8, np.int32, np.int64):
        assert c([(img, kind(3)), (img, kind(7))])[1].argmax(1).tolist() == [3, 7], kind
    for kind in (np.int64, np.uint64):
        assert c([(img, np.array([3], dtype=kind)), (img, np.array([7], dtype=kind))])[1].argmax(1).tolist() == [3, 7]
    assert not lists_of_arrays
    # numpy labels that are not integers are refused by their own type's name
    for bad in (np.float64(2.0), np.array([2.0]), np.bool_(True)):
        with pytest.raises(
            TypeError, match=rf"integer class labels, one per sample; got {type(bad).__name__} of shape"
        ):
            c([(img, bad), (img, bad)])


def test_the_mixer_argument_and_timm_options_get_errors_that_say_what_to_pass():
    with pytest.raises(
        TypeError, match=r"mixer must be a vicinal transform .*got float; for the default Mixup pass alpha=0.2$"
    ):
        vicinal.MixupCollate(0.2, num_classes=10)
    with pytest.raises(TypeError, match=r"mixer must be a vicinal transform .*got type$"):
        vicinal.MixupCollate(vicinal.Mixup)
    with pytest.raises(
        TypeError, match=r"for CutMix or the switch \(cutmix_alpha, switch_prob\) pass mixer=MixupOrCutMix"
    ):
        vicinal.MixupCollate(num_classes=10, cutmix_alpha=1.0, switch_prob=0.5)
    with pytest.raises(TypeError, match=r"^timm's cutmix_minmax is CutMix's box_range: pass mixer=CutMix\(box_range"):
        vicinal.MixupCollate(num_classes=10, cutmix_minmax=(0.2, 0.8))
    with pytest.raises(TypeError, match=r"^cutmix_alpha=0 is timm's 'CutMix off': MixupCollate mixes with Mixup"):
        vicinal.MixupCollate(num_classes=10, cutmix_alpha=0.0)


def test_non_images_and_images_of_another_mode_are_named():
    c = vicinal.MixupCollate(num_classes=2, seed=0)
    file = io.BufferedReader(io.BytesIO(b"\xff\xd8"))  # an open file has a .mode, but is no image
    for thing in ("a.jpg", b"\xff\xd8", None, file):
        with pytest.raises(
            TypeError, match=rf"needs images \(uint8 tensors, numpy arrays or PIL images\), got {type(thing).__name__}$"
        ):
            c([(thing, 0), (thing, 1)])
    rgb, gray = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)  # ImageNet holds grayscale JPEGs
    for batch in ([(rgb, 0), (gray, 1)], [(Image.fromarray(rgb), 0), (Image.fromarray(gray), 1)]):
        with pytest.raises(
            ValueError, match=r"images of one mode: sample 0 has 3 channel\(s\), sample 1 has 1; convert"
        ):
            c(batch)
    with pytest.raises(ValueError, match=r"images of one size \(crop or resize them"):  # a size problem stays one
        c([(rgb, 0), (np.zeros((5, 4, 3), np.uint8), 1)])
    # (H, W, C) tensors of two heights, or 13 and 12 bands, are not a mode problem: the size message shows the layout
    for a, b in (((375, 4, 3), (333, 4, 3)), ((13, 4, 4), (12, 4, 4))):
        with pytest.raises(ValueError, match=rf"images of one size .*sample 0 is {re.escape(str(a))} \(C, H, W\)"):
            c([(torch.zeros(a, dtype=torch.uint8), 0), (torch.zeros(b, dtype=torch.uint8), 1)])
