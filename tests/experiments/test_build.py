"""What a config builds: data, network, optimiser, lr schedule and mixer (experiments/build.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import vicinal
from tests.experiments.lab_helpers import one_thread, tiny_config  # noqa: F401 (one_thread: autouse fixture)
from vicinal.experiments.build import (
    CHECKPOINT_NAME,
    LRSchedule,
    build_mixing,
    build_optimizer,
    build_run,
    build_run_data,
    build_run_model,
    load_run_model,
    lr_at,
    mixer_options,
)
from vicinal.experiments.config import VARIANT_OPTIONS, ConfigError, MixConfig, OptimConfig, ScheduleConfig
from vicinal.experiments.data.seeds import STREAM_MIX, derive_seed
from vicinal.experiments.errors import LabFileNotFoundError, RunError
from vicinal.experiments.trainer import Trainer


@pytest.mark.parametrize(
    ("mix", "expected"),
    [
        (MixConfig(variant="mixup", alpha=0.4), {"alpha": 0.4, "pairing": "random", "lam_mode": "batch"}),
        (MixConfig(variant="cutmix", alpha=1.0), {"alpha": 1.0, "pairing": "random", "lam_mode": "batch"}),
        (MixConfig(variant="cutmix", lam_mode="sample"), {"alpha": 1.0, "pairing": "random", "lam_mode": "sample"}),
        (
            MixConfig(variant="mixup", lam_mode="pair", pairing="flip"),
            {"alpha": 1.0, "pairing": "flip", "lam_mode": "pair"},
        ),
        (
            MixConfig(variant="mixup_or_cutmix", alpha=2.0),
            {"mixup_alpha": 2.0, "cutmix_alpha": 2.0, "pairing": "random", "lam_mode": "batch"},
        ),
        (MixConfig(variant="dirichlet", alpha=0.5), {"alpha": 0.5, "lam_mode": "batch"}),
        (MixConfig(variant="gaussian_noise", sigma=0.1), {"sigma": 0.1}),
        (MixConfig(variant="label_smoothing", smoothing=0.1), {"smoothing": 0.1}),
        (MixConfig(variant="erm"), {}),
        (MixConfig(variant="mixup", kwargs={"alpha": 3.0}), {"alpha": 3.0, "pairing": "random", "lam_mode": "batch"}),
    ],
)
def test_mixer_options_per_variant(mix: MixConfig, expected: dict) -> None:
    assert mixer_options(mix) == expected


def test_every_variant_builds_from_its_options() -> None:
    # each variant's options are accepted by the library factory (which validates them)
    for variant in ("mixup", "cutmix", "mixup_or_cutmix", "dirichlet", "gaussian_noise", "mix_inputs_only"):
        mixer = vicinal.build(variant, num_classes=3, **mixer_options(MixConfig(variant=variant, sigma=0.1)))
        assert isinstance(mixer, vicinal.BatchMix)


def _library_takes(variant: str, **option: Any) -> bool:
    try:
        vicinal.build(variant, num_classes=3, **option)
    except (TypeError, ValueError):  # an argument it does not take, or a value it refuses
        return False
    return True


def _config_takes(variant: str, *overrides: str) -> bool:
    try:
        noise = ["mix.sigma=0.1"] if VARIANT_OPTIONS[variant].sigma else []  # (checked against the library below)
        tiny_config(f"mix.variant={variant}", "mix.smoothing=0.1", *noise, *overrides)
    except ConfigError:
        return False
    return True


def test_the_options_validate_allows_are_the_ones_mixer_options_passes_and_the_library_takes() -> None:
    # One table (config.VARIANT_OPTIONS) feeds validate and mixer_options; this catches it drifting from the
    # library: a variant added to vicinal.VARIANTS, or a variant that starts or stops taking pairing / lam_mode.
    assert set(VARIANT_OPTIONS) == set(vicinal.VARIANTS)
    for v in vicinal.VARIANTS:
        pairing = _library_takes(v, pairing="flip")
        sample = _library_takes(v, lam_mode="sample")
        assert _config_takes(v, "mix.pairing=flip") == pairing, v
        assert _config_takes(v, "mix.lam_mode=sample") == sample, v
        pair = _library_takes(v, lam_mode="pair", pairing="flip")
        assert _config_takes(v, "mix.lam_mode=pair", "mix.pairing=flip") == pair, v
        assert _config_takes(v, "mix.sigma=0.1") == _library_takes(v, sigma=0.1), v  # refused where not read
        mix = MixConfig(
            variant=v, alpha=0.5, smoothing=0.1, sigma=0.1, pairing="flip" if pairing else "random",
            lam_mode="sample" if sample else "batch",
        )  # fmt: skip
        opts = mixer_options(mix)
        assert (opts.get("pairing") == "flip") == pairing and (opts.get("lam_mode") == "sample") == sample, v
        alphas = {k for k in ("alpha", "mixup_alpha", "cutmix_alpha") if _library_takes(v, **{k: 0.5})}
        assert {k for k, x in opts.items() if k.endswith("alpha") and x == 0.5} == alphas, v
        assert ("sigma" in opts) == _library_takes(v, sigma=0.1), v
        assert isinstance(vicinal.build(v, num_classes=3, **opts), vicinal.BatchMix)  # all of it taken


def test_build_mixing_wraps_library_errors_in_a_config_error() -> None:
    cfg = tiny_config("mix.kwargs={nope: 1}")
    data = build_run_data(cfg, "cpu")
    model = build_run_model(cfg, data)
    with pytest.raises(ConfigError, match=r"the mix section of config 'tiny' is rejected by vicinal: .*nope"):
        build_mixing(cfg, model, data, torch.Generator())
    with pytest.raises(ConfigError, match=r"the mix section of config 'tiny' is rejected by vicinal: .*prob"):
        build_mixing(tiny_config("mix.kwargs={prob: 1.5}"), model, data, torch.Generator())
    # plain ERM trains without a mixer, but options given for it are still checked by the library, not ignored
    erm = tiny_config("mix.variant=erm", "mix.kwargs={prob: 0.5}")
    with pytest.raises(ConfigError, match=r"rejected by vicinal: ERM leaves every batch's inputs as they are, so prob"):
        build_mixing(erm, model, data, torch.Generator())
    assert build_mixing(tiny_config("mix.variant=erm"), model, data, torch.Generator()).mixer is None
    # the library takes regression targets; the trainer's are class labels (the first step failed, traceback)
    with pytest.raises(
        ConfigError, match=r"rejected by vicinal: regression=True mixes float targets, and this trainer"
    ):
        build_mixing(tiny_config("mix.kwargs={regression: true}"), model, data, torch.Generator())
    with pytest.raises(ConfigError, match=r"rejected by vicinal: multi_label=True mixes multi-hot rows, and this"):
        build_mixing(tiny_config("mix.kwargs={multi_label: true}"), model, data, torch.Generator())
    checked = build_mixing(tiny_config("mix.variant=erm", "mix.kwargs={check_finite: true}"), model, data, None)
    assert isinstance(checked.mixer, vicinal.ERM) and checked.mixer.check_finite


def test_build_mixing_kinds() -> None:
    cfg = tiny_config()
    data = build_run_data(cfg, "cpu")
    model = build_run_model(cfg, data)
    erm = build_mixing(tiny_config("mix.variant=erm"), model, data, torch.Generator())
    assert erm.mixer is None and erm.latent is None and erm.knn is None
    latent = build_mixing(tiny_config("mix.layer=layer1"), model, data, torch.Generator())
    assert latent.latent is not None and latent.mixer is latent.latent.mixer
    knn = build_mixing(tiny_config("mix.pairing=knn", "mix.knn_k=2"), model, data, torch.Generator())
    assert isinstance(knn.knn, vicinal.KNNPartners) and knn.mixer is not None
    with pytest.raises(RunError, match=r"train.compile cannot be combined with latent mixing"):
        build_mixing(tiny_config("mix.layer=layer1", "train.compile=true"), model, data, torch.Generator())


def test_knn_partners_of_the_same_class_are_fitted_on_the_training_labels() -> None:
    cfg = tiny_config("mix.pairing=knn", "mix.knn_k=2", "mix.knn_same_class=true")
    data = build_run_data(cfg, "cpu")
    knn = build_mixing(cfg, build_run_model(cfg, data), data, torch.Generator()).knn
    assert knn is not None
    y = data.train_dataset_y
    assert torch.equal(y[knn.neighbours], y[:, None].expand(-1, 2))  # every neighbour shares its row's label


def test_build_run_model_is_seeded_and_sized_by_the_data() -> None:
    cfg = tiny_config()
    data = build_run_data(cfg, "cpu")
    a, b = build_run_model(cfg, data), build_run_model(cfg, data)
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    x = next(iter(data.test))[0]
    assert a.eval()(x).shape == (x.shape[0], data.num_classes)


def test_an_mlp_on_images_takes_every_pixel_as_a_feature() -> None:
    cfg = tiny_config("model.name=mlp", "model.kwargs={hidden: 8}")
    data = build_run_data(cfg, "cpu")
    x = next(iter(data.test))[0]  # (B, 3, 8, 8)
    assert build_run_model(cfg, data).eval()(x).shape == (x.shape[0], data.num_classes)


def test_the_mixing_generator_is_seeded_from_its_own_stream() -> None:
    parts = build_run(tiny_config("train.seed=5"), torch.device("cpu"))
    assert parts.mix_seed == derive_seed(5, STREAM_MIX, 0)
    assert torch.equal(parts.mix_generator.get_state(), torch.Generator().manual_seed(parts.mix_seed).get_state())


def test_build_run_data_for_evaluation_has_no_augmentation_nor_corruption() -> None:
    cfg = tiny_config("data.corrupt_fraction=0.5")
    assert build_run_data(cfg, "cpu").corruption is not None
    assert build_run_data(cfg, "cpu", train=False).corruption is None


def test_build_optimizer() -> None:
    model = torch.nn.Linear(3, 2)
    cfg = tiny_config("optim.name=adam", "optim.betas=[0.8, 0.9]", "optim.weight_decay=0.01")
    adam = build_optimizer(cfg.optim, model)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.8, 0.9)
    sgd = build_optimizer(tiny_config("optim.nesterov=true").optim, model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 5e-4


def test_build_optimizer_wraps_what_torch_rejects_in_a_config_error() -> None:
    # validate() refuses the known cases first; an OptimConfig built by hand reaches torch's own check
    bad = OptimConfig(lr=-1.0)
    with pytest.raises(ConfigError, match=r"^the optim section is rejected by torch.optim: Invalid learning rate: -1"):
        build_optimizer(bad, torch.nn.Linear(3, 2))
    with pytest.raises(ConfigError, match=r"rejected by torch.optim: .*beta parameter at index 1: 1.5"):
        build_optimizer(OptimConfig(name="adam", betas=[0.9, 1.5]), torch.nn.Linear(3, 2))


def test_lr_schedule_sets_the_groups_and_resumes_from_its_step_count() -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = LRSchedule(opt, ScheduleConfig(name="step", step_size=1, gamma=0.5), 0.4, epochs=4, steps=2)
    assert opt.param_groups[0]["lr"] == 0.4
    for _ in range(3):
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.2 and sched.lr() == 0.2 and sched.lr(4) == 0.1
    again = LRSchedule(opt, ScheduleConfig(name="step", step_size=1, gamma=0.5), 0.4, epochs=4, steps=2)
    again.load_state_dict(sched.state_dict())
    assert opt.param_groups[0]["lr"] == 0.2 and again.step_count == 3


def test_load_run_model_reloads_the_trained_weights(tmp_path: Path) -> None:
    cfg = tiny_config("train.epochs=1", "train.reliability_diagram=false")
    trainer = Trainer(cfg, tmp_path / "run", quiet=True)
    trainer.fit()
    model, loaded_cfg, data = load_run_model(tmp_path / "run")
    assert loaded_cfg.name == "tiny" and not model.training
    for (k, p), q in zip(trainer.model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    (tmp_path / "run" / CHECKPOINT_NAME).unlink()
    with pytest.raises(LabFileNotFoundError, match=r"holds no checkpoint.pt \(train it first\)"):
        load_run_model(tmp_path / "run", data=data)
    with pytest.raises(LabFileNotFoundError, match=r"is not a run folder \(no config.yaml\)"):
        load_run_model(tmp_path)


# -- schedules ----------------------------------------------------------------------------------------------------
def test_multistep_follows_the_official_code() -> None:
    # official mixup-cifar10: lr = 0.1, /10 once epoch >= 100 and again once epoch >= 150 (0-based epochs)
    s = ScheduleConfig(name="multistep", milestones=[100, 150], gamma=0.1)
    at = {
        e: lr_at(e * 10, schedule=s, base_lr=0.1, epochs=200, steps_per_epoch=10) for e in (0, 99, 100, 149, 150, 199)
    }
    assert at[0] == at[99] == 0.1
    assert at[100] == at[149] == pytest.approx(0.01, rel=1e-12)
    assert at[150] == at[199] == pytest.approx(0.001, rel=1e-12)
    assert lr_at(999, schedule=s, base_lr=0.1, epochs=200, steps_per_epoch=10) == 0.1  # last step of epoch 99


def test_linear_warmup_then_step() -> None:
    # Goyal et al. / paper 3.1: 0.1 -> 0.4 linearly over 5 epochs, then /10 at 30, 60, 80
    s = ScheduleConfig(name="multistep", milestones=[30, 60, 80], warmup_epochs=5, warmup_start_lr=0.1)
    kw = {"schedule": s, "base_lr": 0.4, "epochs": 90, "steps_per_epoch": 4}
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(10, **kw) == pytest.approx(0.1 + 0.3 * 2.5 / 5)  # step 10 = epoch 2.5
    assert lr_at(20, **kw) == pytest.approx(0.4)
    assert lr_at(30 * 4, **kw) == pytest.approx(0.04)


def test_the_first_step_after_the_warmup_follows_the_schedule() -> None:
    # warm-up covers the fractional epochs [0, warmup_epochs); step warmup_epochs * steps_per_epoch is the
    # schedule's, here already past the step at epoch 2
    s = ScheduleConfig(name="step", step_size=2, gamma=0.1, warmup_epochs=2, warmup_start_lr=0.1)
    kw: dict[str, Any] = {"schedule": s, "base_lr": 0.4, "epochs": 6, "steps_per_epoch": 4}
    assert lr_at(7, **kw) == pytest.approx(0.1 + 0.3 * 1.75 / 2)
    assert lr_at(8, **kw) == pytest.approx(0.04)


def test_cosine_after_a_warmup_anneals_over_the_remaining_epochs() -> None:
    # warm-up 2 of 10 epochs: the cosine runs over epochs 2..10, half way at epoch 6
    cos = ScheduleConfig(name="cosine", eta_min=0.001, warmup_epochs=2, warmup_start_lr=0.01)
    kw: dict[str, Any] = {"schedule": cos, "base_lr": 0.1, "epochs": 10, "steps_per_epoch": 5}
    assert lr_at(10, **kw) == pytest.approx(0.1)
    assert lr_at(30, **kw) == pytest.approx(0.001 + 0.099 * 0.5)
    assert lr_at(50, **kw) == pytest.approx(0.001)


def test_cosine_and_step_and_constant() -> None:
    cos = ScheduleConfig(name="cosine", eta_min=0.001)
    kw: dict[str, Any] = {"base_lr": 0.1, "epochs": 10, "steps_per_epoch": 5}
    assert lr_at(0, schedule=cos, **kw) == pytest.approx(0.1)
    assert lr_at(25, schedule=cos, **kw) == pytest.approx(0.001 + 0.099 * 0.5)  # half way
    assert lr_at(50, schedule=cos, **kw) == pytest.approx(0.001)
    step = ScheduleConfig(name="step", step_size=3, gamma=0.5)
    assert [lr_at(e * 5, schedule=step, **kw) for e in (0, 2, 3, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert lr_at(37, schedule=ScheduleConfig(name="constant"), **kw) == 0.1
