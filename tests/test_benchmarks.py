"""The benchmark's reporting (not its timings): the markdown summary of a run and its splice into the README."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import vicinal
from vicinal import functional as VF

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_mixing.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    # the scripts import their shared command line (ab_cli.py) from their own folder, as `python benchmarks/x.py` does
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH.parent))
        return _load(BENCH)


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(median_s: float, roof_s: float, timm_s: float | None, tv_s: float | None) -> dict:
    return {
        "median_s": median_s,
        "fraction_of_roofline": roof_s / median_s,
        "speedup_vs_timm": None if timm_s is None else timm_s / median_s,
        "speedup_vs_torchvision": None if tv_s is None else tv_s / median_s,
    }


def _report(bench: ModuleType) -> dict:
    roof, timm_t, tv_t = 25e-6, 160e-6, 250e-6
    names = {
        "copy into preallocated (roofline)": roof,
        "vicinal Mixup() [default, exact]": 200e-6,
        "vicinal Mixup(inplace=True) [fast]": 125e-6,
        "vicinal Mixup(inplace=True, exact=True)": 100e-6,  # the fastest here, not the fast path
        "timm Mixup (in place, flip)": timm_t,
        "torchvision v2.MixUp (roll)": tv_t,
    }
    case = {
        "case": "small",
        "shape": list(bench.SMALL),
        "dtype": "float32",
        "results": {k: _result(v, roof, timm_t, tv_t) for k, v in names.items()},
    }
    loader = {
        "case": "small",
        "data": "augmented",
        "shape": list(bench.SMALL),
        "num_workers": 0,
        "results": {
            "no mixing (to float only)": {"images_per_s_median": 32000.0},
            "uint8 MixupCollate, then to float": {"relative_to_no_mixing": 0.94986},
            "to float, then Mixup(inplace=True)": {"relative_to_no_mixing": 0.96},
        },
    }
    report = {
        "machine": {
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "caches_per_core": {"L2": "1024K"},
            "torch": "2.14.1",
            "torch_threads": 2,
            "timm": "1.0",
            "torchvision": "0.29",
            "load_average_start": [0.1, 0.1, 0.1],
            "load_average_end": [0.2, 0.1, 0.1],
        },
        "args": {"tag": "t", "cache": "warm", "clock": "wall", "repeats": 15},
        "command": "benchmarks/bench_mixing.py --tag t",
        "mix": [case],
        "loader": [loader],
    }
    report["targets"] = bench.check_targets(report)
    return report


def test_summary_markdown_names_the_run_and_the_fastest_path(bench: ModuleType) -> None:
    report = _report(bench)
    report["targets"].append(
        {"target": "128x3x32x32 uint8: fastest vicinal vs timm", "value": None, "goal": "", "met": None}
    )
    md = bench.summary_markdown(report)
    assert "uint8: fastest vicinal vs timm" not in md  # no peer, no row
    assert "Test CPU, 2 cores" in md and "**warm cache**" in md and "`benchmarks/bench_mixing.py --tag t`" in md
    # fastest exact-to-bound path 100 us: 1.6x timm (160 us), 2.5x torchvision (250 us); the roofline column is the
    # fast path's (125 us: 20% of a 25 us copy)
    row = (
        "| 128x3x32x32 float32 | `vicinal Mixup(inplace=True, exact=True)` | 100.0 us | 1.60x | 2.50x | 20% | 25.0 us |"
    )
    assert row in md
    assert "| 128x3x32x32 (0) | augmented | 32000 | 0.9499x | 0.96x |" in md
    assert "| 128x3x32x32 float32: fastest vicinal vs timm | 1.6 | >= 1.5x | met |" in md
    assert "| 128x3x32x32 float32: fastest vicinal call / copy_ (warm cache) | 4 | <= 4x | met |" in md
    # four digits: just under the goal must not print as the goal
    assert "| loader small (augmented): MixupCollate images/s / no mixing | 0.9499 | >= 0.95 | **not met** |" in md


def test_splice_readme_replaces_only_the_marked_block(bench: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    warm = [bench.README_BEGIN.format(cache="warm"), bench.README_END.format(cache="warm")]
    cold = [bench.README_BEGIN.format(cache="cold"), bench.README_END.format(cache="cold")]
    readme.write_text(f"intro\n{warm[0]}\nold warm\n{warm[1]}\n{cold[0]}\nold cold\n{cold[1]}\noutro\n")
    bench.splice_readme(readme, "new warm\n", "warm")
    assert readme.read_text() == f"intro\n{warm[0]}\nnew warm\n{warm[1]}\n{cold[0]}\nold cold\n{cold[1]}\noutro\n"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="has no <!-- bench_mixing.py --readme, cold cache: begin --> ... <!--"):
        bench.splice_readme(readme, "x", "cold")


def test_render_writes_the_summary_of_a_saved_run(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "t.json"
    run.write_text(json.dumps(_report(bench)))
    assert bench.main(["--render", str(run)]) == 0
    assert (tmp_path / "t.md").read_text() == bench.summary_markdown(_report(bench))
    with pytest.raises(SystemExit) as err:  # argparse: exit code 2, message on stderr
        bench.main(["--render", str(run), "--no-write"])
    assert err.value.code == 2
    assert "--readme and --render write a run's summary; they cannot go with --no-write" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        bench.main(["--render", str(tmp_path / "missing.json")])
    assert err.value.code == 2 and "error: cannot read the run" in capsys.readouterr().err


def test_render_into_the_readme_takes_only_a_full_cpu_run(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a live --readme run of some sizes (or on a GPU) was refused, but rendering a saved one replaced the README's
    # tables of record with it
    readme = tmp_path / "README.md"
    readme.write_text(f"{bench.README_BEGIN.format(cache='warm')}\nold\n{bench.README_END.format(cache='warm')}\n")
    monkeypatch.setattr(bench, "README", readme)
    full = {**_report(bench), "args": {"sizes": ",".join(bench.KNOWN_SIZES), "dtypes": bench.DEFAULT_DTYPES}}
    for what, args in (("some sizes", {"sizes": "small"}), ("a GPU run", {"device": "cuda"})):
        run = tmp_path / f"{what}.json"
        run.write_text(json.dumps({**full, "args": {**full["args"], **args}}))
        with pytest.raises(SystemExit) as err:
            bench.main(["--render", str(run), "--readme"])
        assert err.value.code == 2, what
        assert f"--readme needs a CPU run of every size and dtype; {run} is not one" in capsys.readouterr().err
        assert "old" in readme.read_text()
    run = tmp_path / "full.json"
    run.write_text(json.dumps(full))
    assert bench.main(["--render", str(run), "--readme"]) == 0
    assert "old" not in readme.read_text() and bench.summary_markdown(full) in readme.read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dtypes", "int64"], "unknown --dtypes ['int64']; known: float32, bfloat16, float16, float64, uint8"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--loader-workers", "-1"], "--loader-workers must be >= 0, got -1"),
        (["--device", "bogus"], "--device 'bogus' is not usable here: "),
        (["--device", "meta"], "--device 'meta' is not usable here: the benchmarks run on cpu or cuda, not meta"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    bench: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as err:
        bench.main([*argv, "--no-write"])
    assert err.value.code == 2 and message in capsys.readouterr().err


def _ab_script(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """One of the interleaved A/B scripts, imported as a module."""
    monkeypatch.syspath_prepend(str(BENCH.parent))  # the scripts import their shared command line (ab_cli.py)
    return _load(BENCH.parent / f"{name}.py")


def test_the_collate_a_b_switches_the_path_it_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    # bench_collate.py's "per-image" setting must really take MixupCollate off the np.stack path, "np.stack" restore it
    from vicinal import collate as VC

    ab = _ab_script("bench_collate", monkeypatch)
    monkeypatch.setattr(VC, "_stack_numpy_or_pil", VC._stack_numpy_or_pil)  # restored after the test
    calls: list[int] = []
    shipped = ab.SHIPPED
    monkeypatch.setattr(ab, "SHIPPED", lambda images: calls.append(1) or shipped(images))
    images = [np.full((4, 5, 3), i, np.uint8) for i in range(3)]
    for name, expected in (("per-image", 0), ("np.stack", 1)):
        calls.clear()
        ab._set(name)
        assert torch.equal(VC._stack_images(images), torch.stack([torch.full((3, 4, 5), i) for i in range(3)]).byte())
        assert len(calls) == expected, name


def test_the_fused_a_b_switches_the_kernel_it_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    # bench_fused.py's "lerp" setting must really switch the fused gather-and-mix off, and "fused" restore it
    fused = _ab_script("bench_fused", monkeypatch)
    calls: list[int] = []
    real = VF._bag_mix
    monkeypatch.setattr(VF, "_bag_mix", lambda *a: calls.append(1) or real(*a))
    x, perm = torch.randn(8, 3, 4, 4, dtype=torch.bfloat16), torch.randperm(8)
    try:
        for name, expected in (("lerp", 0), ("fused", 2)):
            calls.clear()
            fused._set(name)
            VF.mix(x, 0.3, perm, exact=False)
            VF.mix_(x.clone(), 0.3, perm)
            assert len(calls) == expected, name
    finally:
        fused._set("fused")
    # --views: its baseline really drops the kept views (the next call makes new ones), its other setting keeps them
    VF.mix(x, 0.3, perm, exact=False)
    kept = VF._WORKSPACE.bag_views[torch.bfloat16]
    VF.mix(x, 0.7, perm, exact=False)
    assert VF._WORKSPACE.bag_views[torch.bfloat16] is kept
    fused._rebuild_views()
    assert not VF._WORKSPACE.bag_views
    VF.mix(x, 0.7, perm, exact=False)
    assert VF._WORKSPACE.bag_views[torch.bfloat16] is not kept
    assert VF._BAG_DTYPES == fused.SHIPPED["_BAG_DTYPES"]


def test_the_slice_a_bs_measure_batches_their_constant_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    # the rows A/B once timed batches small enough for one pass, where _MIN_ROW_BYTES is never read: every batch of
    # each setting must be one whose slicing the setting's two values change (checked on one small shape per
    # setting; the others are sized by the same rule, which the loop below checks on their byte counts)
    ab = _ab_script("bench_slices", monkeypatch)
    for name, (_, _, shapes, dtypes, _) in ab.SETTINGS.items():
        for shape in shapes:
            for dtype in dtypes:
                nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
                if name == "rows":  # sliced in both settings
                    limit = VF._Q_CHUNK_BYTES if dtype == torch.uint8 else VF._SINGLE_PASS_BYTES
                    assert nbytes > limit, (name, shape, dtype)
                else:  # sliced with one value only, but for the largest float32 shape (sliced in both: the contrast)
                    assert nbytes <= VF._SINGLE_PASS_BYTES or shape == shapes[-1], (name, shape, dtype)
    widths: list[int] = []
    real = VF._slice_width
    monkeypatch.setattr(VF, "_slice_width", lambda *a: widths.append(1) or real(*a))
    x, y = torch.randn(ab.SETTINGS["single"][2][0]), torch.zeros(256, dtype=torch.long)
    for value, sliced in ((0, True), (VF._SINGLE_PASS_BYTES, False)):
        widths.clear()
        monkeypatch.setattr(VF, "_SINGLE_PASS_BYTES", value)
        vicinal.Mixup(1.0, num_classes=10, inplace=True, seed=0)(x, y)
        assert bool(widths) == sliced, value


def test_the_fake_cifar10_tree_is_read_as_cifar10_and_never_written_over_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # gpu_check.sh times the trainer on this tree (the GPU machine has no ../shared/data): the lab's cifar10 loader
    # must take it as it takes the real JPEG copy, and the script must refuse a root that already holds a tree
    from vicinal.experiments.data import images

    monkeypatch.syspath_prepend(str(BENCH.parent))  # imported by name: its worker processes unpickle it so
    fake = importlib.import_module("fake_cifar10")
    assert fake.main([str(tmp_path / "d"), "--per-class", "3", "--test-per-class", "2", "--workers", "2"]) == 0
    monkeypatch.setenv("VICINAL_CACHE", str(tmp_path / "cache"))
    splits = images.load_cifar10_jpeg(tmp_path / "d" / "cifar10-jpeg", progress=False)
    assert splits.train[0].shape == (30, 3, 32, 32) and splits.test[0].shape == (20, 3, 32, 32)
    assert splits.train[1].bincount().tolist() == [3] * 10 and splits.test[1].bincount().tolist() == [2] * 10
    assert splits.train[0].float().std() > 50  # random pixels, not a constant image
    before = sorted(p.name for p in (tmp_path / "d" / "cifar10-jpeg" / "train" / "cat").iterdir())
    capsys.readouterr()
    with pytest.raises(SystemExit) as err:
        fake.main([str(tmp_path / "d"), "--per-class", "5"])
    assert err.value.code == 2
    assert f"{tmp_path / 'd' / 'cifar10-jpeg'} exists and is not empty; give a new root" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "d" / "cifar10-jpeg" / "train" / "cat").iterdir()) == before
    with pytest.raises(SystemExit):
        fake.main([str(tmp_path / "e"), "--workers", "0"])
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err
