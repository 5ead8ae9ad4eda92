"""Configs by name (shipped package data) and the data-root rule (``--data`` / ``VICINAL_DATA`` / source checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vicinal.experiments import paths
from vicinal.experiments.cli import _data_option, main
from vicinal.experiments.config import ConfigError, load_config, resolve_config, shipped_configs
from vicinal.experiments.errors import DataNotFoundError, LabError

ERM = "cifar/cpu/cifar10-preact_resnet18-erm"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work from a folder outside the checkout, so that names cannot be read as relative file paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_configs_ship_inside_the_package() -> None:
    root = paths.configs_dir()
    assert root == Path(paths.__file__).resolve().parent / "configs" and root.is_dir()
    names = shipped_configs()
    assert ERM in names and "demo/digits" in names
    assert shipped_configs("cifar/cpu/") == [ERM, "cifar/cpu/cifar10-preact_resnet18-mixup"]
    # the table is called corrupted-labels, its folder corrupted_labels: either spelling lists its configs
    assert shipped_configs("corrupted-labels") == shipped_configs("corrupted_labels") != []
    # uci/uci is the UCI table's protocol (keys no trainer config has): not listed, and named as such by train
    assert "uci/uci" not in names and (paths.configs_dir() / "uci" / "uci.yaml").is_file()
    with pytest.raises(ConfigError, match="'uci/uci' is the UCI table's protocol, which 'vicinal reproduce uci"):
        load_config("uci/uci")


def test_load_config_resolves_a_shipped_name(elsewhere: Path) -> None:
    file = paths.configs_dir() / f"{ERM}.yaml"
    expected = load_config(file)
    for name in (ERM, f"{ERM}.yaml", f"configs/{ERM}.yaml"):  # configs/...: the spelling before the move
        assert resolve_config(name) == file
        assert load_config(name) == expected
    # a name whose config starts from another one (base:) inherits as from its file
    assert load_config("corrupted_labels/cpu/cifar10-preact_resnet18-c20-mixup_a8-cpu").train.epochs > 1
    # an existing file wins over a shipped name
    (elsewhere / "cifar" / "cpu").mkdir(parents=True)
    (elsewhere / "cifar" / "cpu" / "cifar10-preact_resnet18-erm.yaml").write_text("name: mine\n")
    assert load_config(f"{ERM}.yaml").name == "mine"
    assert load_config(ERM).name == expected.name  # no file named without .yaml here: the shipped one


def test_unknown_name_is_one_line_saying_where_it_looked(elsewhere: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("cifar/cpu/no-such-config")
    message = str(info.value)
    assert "\n" not in message
    assert "config file 'cifar/cpu/no-such-config' does not exist" in message
    assert f"'cifar/cpu/no-such-config[.yaml]' among the shipped configs in '{paths.configs_dir()}'" in message
    assert main(["train", "cifar/cpu/no-such-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vicinal: error: config file") and "vicinal configs" in err[0]
    with pytest.raises(ConfigError, match="config file '.*absent.yaml' does not exist"):
        load_config(elsewhere / "absent.yaml")  # an absolute path is a file path, not a name


def test_configs_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["configs", "cifar/cpu"]) == 0
    assert capsys.readouterr().out.split() == [ERM, "cifar/cpu/cifar10-preact_resnet18-mixup"]
    assert main(["configs", "nope"]) == 2
    assert "no shipped config name starts with 'nope'" in capsys.readouterr().err
    assert main(["configs", "uci"]) == 2
    assert "; 'uci/uci' is the UCI table's protocol, which 'vicinal reproduce uci --scale cpu' trains\n" in (
        capsys.readouterr().err
    )


def test_data_root_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VICINAL_DATA", raising=False)
    # a source checkout: ../shared/data beside the project root
    monkeypatch.setattr(paths, "SOURCE_CHECKOUT", True)
    assert paths.data_root() == (paths.PROJECT_ROOT / ".." / "shared" / "data").resolve()
    # an installed package (no source checkout): no default, one line naming both ways to give one
    monkeypatch.setattr(paths, "SOURCE_CHECKOUT", False)
    assert paths.default_data_root() is None and paths.source_root() is None
    with pytest.raises(DataNotFoundError) as info:
        paths.data_root()
    assert isinstance(info.value, LabError) and "\n" not in str(info.value)
    assert "VICINAL_DATA" in str(info.value) and "--data" in str(info.value)
    # VICINAL_DATA decides, checkout or not
    monkeypatch.setenv("VICINAL_DATA", str(tmp_path))
    assert paths.data_root() == tmp_path
    monkeypatch.setattr(paths, "SOURCE_CHECKOUT", True)
    assert paths.data_root() == tmp_path


def test_data_option_sets_vicinal_data_for_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "SOURCE_CHECKOUT", False)
    monkeypatch.setenv("VICINAL_DATA", "/before")
    with _data_option(tmp_path):
        assert paths.data_root() == tmp_path.resolve()
    assert os.environ["VICINAL_DATA"] == "/before"
    monkeypatch.delenv("VICINAL_DATA")
    with _data_option(None):
        with pytest.raises(DataNotFoundError):
            paths.data_root()
    with pytest.raises(LabError, match="--data '.*nowhere' does not exist"):
        with _data_option(tmp_path / "nowhere"):
            pass


def test_train_without_data_root_is_one_line(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(paths, "SOURCE_CHECKOUT", False)
    monkeypatch.delenv("VICINAL_DATA", raising=False)
    assert main(["train", ERM, "--set", "train.max_steps=1", "--out", str(elsewhere / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vicinal: error: no data folder"), err
    assert "VICINAL_DATA" in err[0] and "--data" in err[0]
    assert main(["train", ERM, "--data", str(elsewhere / "nowhere")]) == 2
    assert "--data" in capsys.readouterr().err


def test_unusable_cache_folder_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Finding 7 of the data audit: VICINAL_CACHE naming a file gave a FileExistsError traceback."""
    afile = tmp_path / "afile"
    afile.write_text("")
    for value, error in ((afile, "FileExistsError"), (afile / "below", r"(FileExistsError|NotADirectoryError)")):
        monkeypatch.setenv("VICINAL_CACHE", str(value))
        with pytest.raises(LabError, match=rf"^VICINAL_CACHE='{value}' cannot be used as the cache folder \({error}: "):
            paths.cache_dir()
    monkeypatch.setenv("VICINAL_CACHE", str(afile))
    rc = main(["train", "speech/cpu/speech-lenet-erm", "--out", str(tmp_path / "runs"), "--set", "train.max_steps=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("vicinal: error: VICINAL_CACHE=") and len(err.splitlines()) == 1, err


def test_a_home_relative_data_or_cache_folder_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VICINAL_DATA", "~/datasets")
    assert paths.data_root() == tmp_path / "datasets"
    monkeypatch.setenv("VICINAL_CACHE", "~/cache")
    assert paths.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    monkeypatch.delenv("VICINAL_CACHE")
    assert paths.cache_dir() == tmp_path / ".cache" / "vicinal"  # the default, under the home folder


def test_an_empty_vicinal_data_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # VICINAL_DATA= (empty) means the default, not the current folder
    monkeypatch.setenv("VICINAL_DATA", "")
    assert paths.default_data_root() is not None  # these tests run from a source checkout
    assert paths.data_root() == paths.default_data_root()


def test_data_option_leaves_an_unset_vicinal_data_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VICINAL_DATA", raising=False)
    with _data_option(tmp_path):
        assert os.environ["VICINAL_DATA"] == str(tmp_path.resolve())
    assert "VICINAL_DATA" not in os.environ  # the next command of this process finds the default again
