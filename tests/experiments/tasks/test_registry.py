"""The table registry (tasks/registry.py): the paper-source text of tables that publish two numbers per row."""

from __future__ import annotations

from pathlib import Path

import pytest

from vicinal.experiments.errors import LabFileNotFoundError, TaskError
from vicinal.experiments.tasks import imagenet, registry, speech
from vicinal.experiments.tasks.registry import paper_pairs_source


def test_paper_pairs_source_lists_both_numbers_and_marks_missing_ones() -> None:
    text = paper_pairs_source(
        "Paper, Table 9", "top-1 error", ("top-1", "top-5"), {"a/erm": (23.5, None), "b": (1.0, 2.25)}
    )
    assert text == "Paper, Table 9; the column is the top-1 error (top-1 / top-5: a/erm 23.5 / -, b 1 / 2.25)"


def test_speech_and_imagenet_sources_name_both_published_columns() -> None:
    assert speech.PAPER_SPEECH_SOURCE.endswith("the column is the test error (validation / test: lenet/erm 9.8 / 10.3, "
                                               "lenet/mixup0.1 10.1 / 10.8, lenet/mixup0.2 10.2 / 11.3, vgg11/erm 5 / 4.6, "
                                               "vgg11/mixup0.1 4 / 3.8, vgg11/mixup0.2 3.9 / 3.4)")  # fmt: skip
    assert (
        "; the column is the top-1 error (top-1 / top-5: resnet50/90/erm 23.5 / -, " in imagenet.PAPER_IMAGENET_SOURCE
    )


def test_sweep_files_list_the_sweep_rows_then_the_files_and_config_files_sort_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "configs_dir", lambda: tmp_path)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "cpu.yaml").write_text("sweep:\n  rows:\n    m: {b: {}, a: {}}\n")
    (tmp_path / "t" / "cpu").mkdir()
    for name in ("z.yaml", "c.yaml", "notes.txt"):
        (tmp_path / "t" / "cpu" / name).write_text("name: x\n")
    folder = tmp_path / "t" / "cpu"
    assert registry.sweep_files("t", "cpu") == [
        folder / "b.yaml",
        folder / "a.yaml",
        folder / "c.yaml",
        folder / "z.yaml",
    ]
    assert registry.config_files("t", "cpu") == [folder / n for n in ("a.yaml", "b.yaml", "c.yaml", "z.yaml")]
    with pytest.raises(TaskError, match=r"^unknown scale 'gpu'; known scales: cpu, paper$"):
        registry.sweep_files("t", "gpu")
    with pytest.raises(LabFileNotFoundError, match=r"^no configs in '.*t/paper.yaml' nor in '.*t/paper' \(the configs"):
        registry.sweep_files("t", "paper")


def test_a_tables_rows_are_its_own_configs_and_its_seeds_may_differ_by_row(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine.yaml", tmp_path / "other.yaml"
    mine.write_text("name: mine\ntable: t\nrow: r/erm\n")
    other.write_text("name: other\ntable: cifar\nrow: r/mixup\n")  # listed too (as datasize lists cifar's configs)

    def configs(scale: str) -> list[Path]:
        if scale != "cpu":
            raise TaskError(f"unknown scale {scale!r}")
        return [mine, other]

    table = registry.Table("t", "T", configs, row_seeds=lambda scale, path: 5 if path == mine else 2)
    assert list(table.row_configs()) == ["r/erm"] and table.row_configs()["r/erm"][0]["name"] == "mine"
    assert (table.seeds_of("cpu", mine), table.seeds_of("cpu", other)) == (5, 2)
    plain = registry.Table("p", "P", configs, default_seeds={"cpu": 4})
    assert (plain.seeds_of("cpu", mine), plain.seeds_of("paper", mine)) == (4, 1)
    runner = registry.Table("t", "T", configs, runner=lambda *a, **k: None)
    assert runner.row_configs() == {}  # a table trained as one job (gan) has no trainer configs to compare with


def test_a_table_name_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "TABLES", {})
    table = registry.Table("t", "T", lambda scale: [])
    assert registry.register_table(table) is table and registry.TABLES == {"t": table}
    with pytest.raises(ValueError, match=r"^table 't' is already registered$"):
        registry.register_table(registry.Table("t", "T2", lambda scale: []))


def test_resume_line_says_how_many_parts_are_left() -> None:
    assert registry.resume_line(Path("o"), 2, 6, "datasets") == "'o': 2 of 6 datasets recorded; training the rest"
    assert (
        registry.resume_line(Path("o"), 2, 6, "datasets", dry_run=True)
        == "dry run: 'o': 2 of 6 datasets recorded; would train the other 4"
    )
    assert registry.resume_line(Path("o"), 3, 3, "groups") == "'o': 3 of 3 groups recorded; nothing to train"
    assert registry.resume_line(Path("o"), 3, 3, "groups", dry_run=True) == (
        "dry run: 'o': 3 of 3 groups recorded; would train nothing (the outputs would be rewritten)"
    )
