"""The report document on synthetic run folders, figures and markdown: tables with the paper column, findings,
figures embedded in the HTML, commands, machine and versions, and the errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.experiments.lab_helpers import spy_atomic_writes
from vicinal.experiments.report import ReportError, make_report
from vicinal.experiments.report.document import environment_tag, make_document, md_blocks
from vicinal.experiments.tasks.figures import figure3b
from vicinal.experiments.trainer import summarize


def make_run(root: Path, name: str, table: str, row: str, seed: int, errors: list[float], prov: bool = True) -> Path:
    """A run folder as the trainer writes it (config, metrics, summary and, optionally, provenance)."""
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    variant = "mixup" if "mixup" in name else "erm"  # figure 3b checks each run's method against its option
    cfg = {
        "name": name,
        "table": table,
        "row": row,
        "mix": {"variant": variant},
        "train": {"seed": seed},  # no more of the recipe: the shipped row's (the paper column is not marked)
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    records = [
        {"epoch": i + 1, "test_error": e, "train_loss": 1.0, "train_error": 2.0, "epoch_time_s": 1.0}
        for i, e in enumerate(errors)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "summary.json").write_text(json.dumps(summarize(records, "complete", {"name": name, "seed": seed})))
    if prov:
        argv = ["/x/.venv/bin/vicinal", "train", f"configs/{name}.yaml", "--set", f"train.seed={seed}"]
        prov_data = {
            "argv": argv,
            "hostname": "box",
            "platform": "Linux-test",
            "device": "cpu",
            "device_name": "x86_64",
            "cpu_count": 2,
            "torch_threads": 1,
            "versions": {"torch": "9.9", "python": "3.11", "vicinal": "0.1.0"},
            "git_commit": "abc123",
            "git_dirty": False,
        }
        (run / "provenance.json").write_text(json.dumps(prov_data))
    return run


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    runs = tmp_path / "runs"
    make_run(runs, "c10-erm", "cifar", "cifar10/preact_resnet18/erm", 0, [30.0, 10.0])
    make_run(runs, "c10-erm", "cifar", "cifar10/preact_resnet18/erm", 1, [30.0, 12.0])
    make_run(runs, "c10-mixup", "cifar", "cifar10/preact_resnet18/mixup", 0, [30.0, 8.0], prov=False)
    make_run(runs, "abl-erm-lo", "ablation", "erm/wd1e-4", 0, [6.0, 5.0])
    make_run(runs, "abl-erm-hi", "ablation", "erm/wd5e-4", 0, [6.0, 4.0])
    figs = tmp_path / "figs"
    figure3b([runs / "c10-erm"], [runs / "c10-mixup"], figs)
    notes = tmp_path / "gan.md"
    notes.write_text(
        "# GAN table\n\n| method | modes |\n|:---|---:|\n| mixup | 8 |\n| a \\| b | 9 |\n\n- one <script>x</script>\n"
    )
    return {"runs": runs, "figs": figs, "notes": notes}


def test_document(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "doc"
    result = make_document([inputs["runs"], inputs["figs"], inputs["notes"]], out)
    md, page = result["markdown"], result["html"]
    assert (out / "report.md").read_text() == md and (out / "report.html").read_text() == page
    assert result["tables"] == ["ablation", "cifar"]
    # the cifar table beside the paper and the ablation's verified rows (each table's own numbers, Table.paper)
    assert re.search(r"\| c10-erm \| 2 \(0 1\) \| 2/2 \| 11\.00 ± 1\.41 \| .* \| 5\.6 \|", md)
    assert re.search(r"\| abl-erm-lo \| 1 \(0\) \| 1/1 \| 5\.00 \| .* \| 5\.53 \|", md)
    assert "Paper column (ablation): median test error of the last 10 epochs" in md
    # the findings: ERM's half of finding 3 needs mixup rows too, so it is undetermined
    assert "- **undetermined**: ERM prefers weight decay 5e-4" in md
    assert "<li><strong>undetermined</strong>: ERM prefers" in page
    # commands: from provenance (the venv path shortened), else the retraining command; the table's reproduce line
    assert "`vicinal train configs/c10-erm.yaml --set train.seed=1`" in md
    assert f"`vicinal train {inputs['runs'] / 'c10-mixup' / 'seed0' / 'config.yaml'} --out OUT`" in md
    assert f"Regenerate the whole table: `vicinal reproduce ablation --scale paper --out {inputs['runs']}`" in md
    # figures: copied beside the markdown, embedded in the HTML with their regenerating command
    png = (inputs["figs"] / "fig3b.png").read_bytes()
    assert (out / "figures" / "fig3b.png").read_bytes() == png
    assert "![Figure 3b: test error against epochs, ERM vs mixup" in md and "](figures/fig3b.png)" in md
    assert base64.b64encode(png).decode() in page
    assert "vicinal figure fig3b --erm" in page
    # the tables' own plots, embedded too
    assert base64.b64encode((out / "tables" / "cifar" / "test_error.png").read_bytes()).decode() in page
    assert "<td>---" not in page and "<th>run</th><th>n (seeds)</th>" in page
    assert "<td><code>vicinal train configs/c10-erm.yaml --set train.seed=1</code></td>" in page
    assert "<img" in page and 'src="figures/' not in page  # self-contained: no file links for images
    # other markdown outputs: parsed, never injected
    assert "### GAN table" in md and "<td>mixup</td><td>8</td>" in page and "<td>a | b</td><td>9</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    # machine and versions of the runs and of this process
    assert "| box | Linux-test | cpu (x86_64) | 2 | 1 | torch 9.9, python 3.11, vicinal 0.1.0 | abc123 | 4 |" in md
    assert "This page was built on" in md and "torch " in md
    assert md.rstrip().endswith(f"--out {out}\n```")


def test_document_rebuilt_in_place(inputs: dict[str, Path]) -> None:
    """An output folder inside an input folder is not read back as input."""
    out = inputs["runs"] / "doc"
    first = make_document([inputs["runs"]], out, name="r")
    second = make_document(str(inputs["runs"]), out, name="r")  # one folder as a str: one path, not its letters
    assert first["tables"] == second["tables"] and second["figures"] == []
    assert (out / "r.html").is_file()


def test_document_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="'.*missing' does not exist"):
        make_document([tmp_path / "missing"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no run folders, figures or markdown files in"):
        make_document([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "fig9.json").write_text(json.dumps({"figure": "fig9", "png": "fig9.png"}))
    with pytest.raises(ReportError, match="figure file '.*fig9.png' named by its JSON does not exist"):
        make_document([tmp_path / "figs"], tmp_path / "out")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ReportError, match="'.*x.txt' is not a run folder, PNG, figure JSON or markdown file"):
        make_document([tmp_path / "x.txt"], tmp_path / "out")


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "../up"])
def test_a_page_name_that_is_not_a_plain_file_stem_is_refused(tmp_path: Path, name: str) -> None:
    match = rf"^page name {re.escape(repr(name))} must be a plain file stem: not empty, without a path separator"
    with pytest.raises(ReportError, match=match):
        make_document([tmp_path / "missing"], tmp_path / "out", name=name)  # refused before the inputs are read
    assert not (tmp_path / "out").exists()


def test_the_pages_are_written_atomically(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = spy_atomic_writes(monkeypatch)
    result = make_document([inputs["runs"]], tmp_path / "doc", name="page")
    assert {"page.md", "page.html"} <= {p.name for p in written}
    assert [p.name for p in result["files"]] == ["page.md", "page.html"]
    assert not list((tmp_path / "doc").glob(".*.tmp"))  # no temporary file left behind


def test_md_blocks() -> None:
    text = "# T\n\npara one\ncontinued\n\n| a | b |\n|---|---|\n| 1 | 2 |\n- x\n- y\n```\ncode | here\n```\n"
    assert md_blocks(text, shift=1) == [
        ("h", 2, "T"),
        ("p", "para one continued"),
        ("table", "| a | b |\n|---|---|\n| 1 | 2 |"),
        ("ul", ["x", "y"]),
        ("code", "code | here"),
    ]


def test_environment_tag() -> None:
    env = {"device": "cpu", "cpu_count": 2, "versions": {"torch": "2.14.1"}}
    assert re.fullmatch(r"cpu2-[A-Za-z0-9_.-]+-torch2\.14\.1", environment_tag(env))
    gpu = {"device": "NVIDIA H100 80GB HBM3", "cpu_count": 16, "versions": {"torch": "2.14.1+cu128"}}
    assert environment_tag(gpu) == "NVIDIA-H100-80GB-HBM3-torch2.14.1-cu128"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", environment_tag())


def _png(path: Path, shade: int) -> Path:
    """A tiny distinct PNG (matplotlib is a lab dependency)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, [[shade / 255.0]], cmap="gray", vmin=0.0, vmax=1.0)
    return path


def test_reports_beside_runs_are_rebuilt_not_repeated(inputs: dict[str, Path], tmp_path: Path) -> None:
    # what `vicinal reproduce` leaves beside a table's runs: the page would list its tables and plots twice
    report = inputs["runs"] / "report"
    make_report([inputs["runs"] / "c10-erm", inputs["runs"] / "c10-mixup"], report)
    md = make_document([inputs["runs"]], tmp_path / "doc")["markdown"]
    assert "From " not in md and "## Figures" not in md
    # given on its own (no runs beside it), a report folder is the page's content
    md = make_document([report], tmp_path / "doc2")["markdown"]
    assert f"## From {(report / 'report.md').resolve()}" in md


@pytest.mark.parametrize(
    ("name", "recorded", "scale"),
    [
        ("abl-erm-cpu", None, "cpu"),
        ("abl-erm", None, "paper"),
        ("abl-erm", "cpu", "cpu"),
        ("abl-erm-cpu", "paper", "paper"),
    ],
)
def test_the_reproduce_line_takes_the_scale_the_runs_record(
    tmp_path: Path, name: str, recorded: str | None, scale: str
) -> None:
    """A run's recorded ``scale`` (the GAN table writes one) decides; without one the ``-cpu`` name rule does."""
    run = make_run(tmp_path / "runs", name, "ablation", "erm/wd1e-4", 0, [6.0, 5.0])
    if recorded is not None:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "scale": recorded}))
    md = make_document([tmp_path / "runs"], tmp_path / "doc")["markdown"]
    # where the runs lie, and their one seed where the table's default at that scale is another (cpu: 2)
    seeds = " --seeds 1" if scale == "cpu" else ""
    assert (
        f"Regenerate the whole table: `vicinal reproduce ablation --scale {scale} --out {tmp_path / 'runs'}{seeds}`"
        in md
    )


def test_images_of_one_name_stay_distinct_and_markdown_images_are_placed(tmp_path: Path) -> None:
    a = _png(tmp_path / "cifar" / "report" / "test_error.png", 10)
    b = _png(tmp_path / "speech" / "report" / "test_error.png", 200)
    notes = tmp_path / "notes" / "gan.md"
    _png(notes.parent / "plots" / "modes.png", 90)
    notes.write_text("# GAN\n\n![modes over iterations](plots/modes.png)\n\n![missing](nothere.png)\n")
    out = tmp_path / "doc"
    result = make_document([tmp_path / "cifar", tmp_path / "speech", notes], out)
    md, page = result["markdown"], result["html"]
    copies = sorted((out / "figures").iterdir())
    assert [c.name for c in copies] == ["modes.png", "report-test_error.png", "test_error.png"]
    assert {c.read_bytes() for c in copies[1:]} == {a.read_bytes(), b.read_bytes()}  # neither overwrote the other
    assert "](figures/modes.png)" in md and "![missing](nothere.png)" in md  # a missing file stays text
    for png in (a, b, notes.parent / "plots" / "modes.png"):
        assert base64.b64encode(png.read_bytes()).decode() in page


def test_a_table_that_draws_on_cifars_runs_gets_them_in_its_own_block(tmp_path: Path) -> None:
    # Table 3 attacks the cifar table's models; only the black-box source is an adversarial run. The page put
    # Table 3 under "Table: cifar" and left the adversarial block without it
    runs = tmp_path / "runs"
    for name, error in (("c10-erm-cpu", 50.0), ("c10-mixup-cpu", 30.0)):
        run = make_run(runs, name, "cifar", f"cifar10/preact_resnet18/{name[4:-4]}", 0, [30.0, 10.0])
        (run / "attacks").mkdir()
        result = {"every": 1, "n": 40, "eps_pixels": 4.0, "attack": "fgsm", "mode": "white", "top1_error": error,
                  "top5_error": error / 2, "clean_top1_error": 10.0, "clean_top5_error": 5.0}  # fmt: skip
        (run / "attacks" / "white-fgsm-eps4.json").write_text(json.dumps(result))
    make_run(runs, "c10-erm-source-cpu", "adversarial", "source", 1000, [30.0, 12.0])
    md = make_document([runs], tmp_path / "doc")["markdown"]
    adversarial = md[md.index("## Table: adversarial") : md.index("## Table: cifar")]
    rest = md[md.index("## Table: cifar") :]
    assert "Table 3" in adversarial and "| white box | top-1 | mixup | 10.00 | 30.00 | 75.2 / 99.6 |" in adversarial
    assert "Table 3" not in rest  # the cifar block leaves the attacks to the adversarial block
    # the adversarial block's command trains its source in the folder that holds the cifar models (1 seed, not 5)
    assert f"`vicinal reproduce adversarial --scale cpu --out {runs} --seeds 1`" in adversarial
    # without an adversarial block, Table 3 stays with the cifar runs it attacks, once (a datasize block that gets
    # the cifar runs too printed it again); the sources elsewhere: no --out reuses both folders
    moved = tmp_path / "sources"
    moved.mkdir()
    (runs / "c10-erm-source-cpu").rename(moved / "c10-erm-source-cpu")
    make_run(runs, "c10-erm-n500-cpu", "datasize", "500/erm", 0, [60.0, 50.0])
    md = make_document([runs], tmp_path / "doc2")["markdown"]
    assert md.count("Table 3") == 1 and md.index("## Table: cifar") < md.index("Table 3"), md
    md = make_document([runs, moved], tmp_path / "doc3")["markdown"]
    assert "`vicinal reproduce adversarial --scale cpu --seeds 1`" in md
