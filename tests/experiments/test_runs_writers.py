"""The run-folder writers the seed-ensemble tasks added to runs.py: CSV files and a task's config.yaml."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from vicinal.experiments.errors import RunError
from vicinal.experiments.runs import write_csv, write_task_config


def test_write_csv_equals_the_csv_module_for_sequences_and_mappings(tmp_path: Path) -> None:
    rows = [{"a": 1.5, "b": None, "c": True, "extra": "left out"}, {"a": float("nan"), "b": 'q,"r', "c": False}]
    expected = io.StringIO()
    writer = csv.DictWriter(expected, fieldnames=["a", "b", "c"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_csv(tmp_path / "d.csv", ["a", "b", "c"], rows)
    assert (tmp_path / "d.csv").read_bytes() == expected.getvalue().encode()
    write_csv(tmp_path / "s.csv", ["x", "y"], [[1, "two"], [3.25, None]])
    assert (tmp_path / "s.csv").read_bytes() == b"x,y\r\n1,two\r\n3.25,\r\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary file left behind


def test_write_task_config_needs_the_keys_the_report_groups_by(tmp_path: Path) -> None:
    config = {"name": "gan-ring-erm", "table": "gan", "row": "ring/erm", "train": {"seed": 2}, "gan": {"width": 8}}
    path = write_task_config(tmp_path / "run", config)
    assert path == tmp_path / "run" / "config.yaml" and yaml.safe_load(path.read_text()) == config
    with pytest.raises(RunError, match=r"\['row'\] missing"):
        write_task_config(tmp_path / "bad", {"name": "x", "table": "gan", "train": {"seed": 0}})
    with pytest.raises(RunError, match=r"\['train.seed'\] missing"):
        write_task_config(tmp_path / "bad", {"name": "x", "table": "gan", "row": "r", "train": {}})
