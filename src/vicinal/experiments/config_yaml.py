"""Config files: safe YAML (a repeated key is an error), ``base:`` inheritance, sweeps declared as data, shipped names.

This module turns a config's name or path into the plain mapping that :func:`vicinal.experiments.config.load_config`
validates against the schema (the dataclasses of :mod:`vicinal.experiments.config`, which re-exports the public
names below). It knows nothing of the schema, so that reading files and checking values stay apart.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import LabError
from .paths import configs_dir

__all__ = [
    "ConfigError",
    "config_exists",
    "describe",
    "PLAIN_NAME",
    "is_plain_name",
    "read_config_data",
    "read_yaml_mapping",
    "resolve_config",
    "shipped_configs",
    "sweep_rows",
]


class ConfigError(LabError, ValueError):
    """A config file or override is invalid (unknown key, wrong type, bad value, missing file); a user error."""


def describe(value: Any) -> str:
    """``str 'abc'`` / ``int 3`` for error messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


PLAIN_NAME = "not empty, without a path separator, not starting with '.'"


def is_plain_name(name: str) -> bool:
    """Whether ``name`` can name one file or folder inside a given folder (:data:`PLAIN_NAME`): a separator or
    ``..`` would put it elsewhere (or fail), and a leading dot would hide it."""
    separators = {"/", os.sep, os.altsep or "/", "\0"}
    return bool(name) and not name.startswith(".") and not any(c in name for c in separators)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merge key by key (recursively), anything else (lists too) is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key written twice: PyYAML keeps the last value silently, so a
    section written twice (``mix:`` ... ``mix:``) dropped the first one whole (a mixup config trained ERM)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _RepeatedKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base class raises its own error for it
                continue
        return super().construct_mapping(node, deep=deep)


class _RepeatedKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(f"repeats key {key!r} (lines {first} and {second})")
        self.key, self.first, self.second = key, first, second


def _load_yaml(path: Path) -> Any:
    """The YAML document of ``path``, read safely (no code runs) and strictly (a repeated key is an error).

    Raises:
        yaml.YAMLError: not valid YAML. ConfigError: a key written twice in one mapping (naming it, the file and
        both lines). OSError, UnicodeDecodeError: unreadable.
    """
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except _RepeatedKeyError as exc:
        raise ConfigError(f"config file '{path}' {exc}") from None


def read_yaml_mapping(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path`` (``chain``: the files that inherit from it, for errors).

    Raises:
        ConfigError: ``path`` is missing, a folder, unreadable, not valid YAML or not a mapping (one line each).
    """
    if path.is_dir():
        what = f" (the base of '{chain[-1]}')" if chain else ""
        raise ConfigError(f"config file '{path}'{what} is a folder, not a YAML file")
    if not path.is_file():
        if chain:
            raise ConfigError(f"config file '{path}' (the base of '{chain[-1]}') does not exist")
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = _load_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level, got {describe(data)}")
    return dict(data or {})


# -- sweeps -----------------------------------------------------------------------------------------------------
# A sweep file declares several configs in one YAML: its keys (``base:`` included) are common to every row, and
# ``sweep:`` says how the rows differ:
#
#   sweep:
#     config: "{method}-{wd}"          # each row's name; the row is shipped as <folder>/<file stem>/<name>
#     rows:                            # axes -> named overrides; the rows are the axes' cross product, first axis
#       method:                        # outermost. A list of such mappings is the union of their products, in order
#         erm: {mix: {variant: erm}}
#         mixup: {mix: {variant: mixup, alpha: 1.0}, vars: {label: "mixup"}}
#       optim.weight_decay: [1.0e-4, 5.0e-4]     # a dotted key and its values: ids "0.0001", "0.0005"
#
# An override may use dotted keys (``optim.weight_decay: 1.0e-4``) and carry ``vars`` (not config keys: values for
# the templates). The templates are ``sweep.config`` and the top-level ``name``, ``notes`` and ``row`` strings that
# the sweep file itself sets: Python ``str.format`` fields naming an axis (its id in this row) or a var (``{{`` is a
# literal brace). Rows are expanded in memory, like seeds: no generated file exists, and a row is loaded by its name
# (``configs/<folder>/<stem>/<name>.yaml`` names no file; :func:`load_config` expands the sweep).
_SWEEP_KEYS = ("config", "rows")
_TEMPLATED = ("name", "notes", "row")


def _undot(override: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.weight_decay": v}`` -> ``{"optim": {"weight_decay": v}}`` (other keys kept), merged in order."""
    out: dict[str, Any] = {}
    for key, value in override.items():
        for part in reversed(str(key).split(".")[1:]):
            value = {part: value}
        out = _merge(out, {str(key).split(".")[0]: value})
    return out


def _fill(text: str, fields: Mapping[str, Any], where: str) -> str:
    try:
        return text.format_map(fields)
    except KeyError as exc:
        known = ", ".join(fields) or "none"
        raise ConfigError(f"{where}: template {text!r} names {exc}, which is no axis or var (known: {known})") from None
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{where}: template {text!r} is malformed ({exc}); write a literal brace as {{{{") from None


def _axis(path: Path, axis: str, values: Any) -> list[tuple[str, dict[str, Any]]]:
    """One axis of a sweep: ``[(id, override)]``; a list of values belongs to the dotted config key ``axis``."""
    if isinstance(values, list) and values:
        return [(f"{v:g}" if isinstance(v, float) else str(v), _undot({axis: v})) for v in values]
    if not isinstance(values, Mapping) or not values:
        raise ConfigError(
            f"sweep axis '{axis}' in '{path}' must map ids to overrides or list a config key's values, "
            f"got {describe(values)}"
        )
    out = []
    for vid, override in values.items():
        if override is not None and not isinstance(override, Mapping):
            raise ConfigError(f"sweep row '{axis}: {vid}' in '{path}' must be a mapping, got {describe(override)}")
        out.append((str(vid), dict(override or {})))
    return out


def _expand_sweep(path: Path, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows of the sweep file ``path`` (``data``: its mapping): ``name -> mapping`` (``base:`` still relative)."""
    spec = data.pop("sweep")
    if not isinstance(spec, Mapping) or set(spec) - set(_SWEEP_KEYS) or "rows" not in spec:
        raise ConfigError(
            f"config key 'sweep' in '{path}' must be a mapping with 'rows' and optionally 'config', got "
            f"{describe(spec)}"
        )
    blocks = spec["rows"] if isinstance(spec["rows"], list) else [spec["rows"]]
    rows: dict[str, dict[str, Any]] = {}
    for block in blocks:
        if not isinstance(block, Mapping) or not block:
            raise ConfigError(f"sweep rows in '{path}' must be axes mapping ids to overrides, got {describe(block)}")
        axes = [(str(axis), _axis(path, str(axis), values)) for axis, values in block.items()]
        for combo in itertools.product(*(values for _, values in axes)):
            fields: dict[str, Any] = {}
            row: dict[str, Any] = {k: v for k, v in data.items()}
            for (axis, _), (vid, override) in zip(axes, combo, strict=True):
                override = dict(override)
                extra = override.pop("vars", None) or {}
                if not isinstance(extra, Mapping):
                    raise ConfigError(f"'vars' of sweep row '{axis}: {vid}' in '{path}' must be a mapping")
                fields[axis] = vid
                fields.update(extra)
                row = merge_sections(row, _undot(override), f"sweep row '{axis}: {vid}' of '{path}'")
            where = f"sweep in '{path}'"
            name = _fill(str(spec.get("config") or "-".join(vid for vid, _ in combo)), fields, where)
            if not name or "/" in name or name in rows:
                problem = "is empty" if not name else "holds a '/'" if "/" in name else "names two rows"
                raise ConfigError(f"{where}: row name {name!r} {problem}")
            for key in _TEMPLATED:
                if isinstance(row.get(key), str):
                    row[key] = _fill(row[key], fields, where)
            rows[name] = row
    return rows


def _sweep_of(path: Path) -> tuple[Path, str] | None:
    """``(sweep file, row name)`` when ``path`` (``X/Y/NAME[.yaml]``, no file) is a row of the sweep ``X/Y.yaml``."""
    if path.exists() or path.parent.name in ("", ".", ".."):  # a file, or no folder that a sweep file could name
        return None
    sweep = path.parent.with_suffix(".yaml")
    if not sweep.is_file():
        return None
    try:
        head = _load_yaml(sweep)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None  # not a readable sweep: the caller reports the path as missing
    if not isinstance(head, Mapping) or "sweep" not in head:
        return None
    return sweep, path.name.removesuffix(".yaml")


def sweep_rows(path: str | Path) -> list[str]:
    """The row names of the sweep file ``path``, in declared order; ConfigError if it is no sweep."""
    path = Path(path)
    data = read_yaml_mapping(path, ())
    if "sweep" not in data:
        raise ConfigError(f"config file '{path}' declares no 'sweep'")
    return list(_expand_sweep(path, data))


def config_exists(path: str | Path) -> bool:
    """Whether ``path`` is a config file or a row of a sweep file (``X/Y/NAME.yaml`` of ``X/Y.yaml``)."""
    path = Path(path)
    if path.is_file():
        return True
    row = _sweep_of(path)
    return row is not None and row[1] in sweep_rows(row[0])


def read_config_data(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping of a config (a YAML file or a sweep row), with its ``base:`` config (if any) merged underneath."""
    row = _sweep_of(path)
    if row is not None:
        sweep, name = row
        rows = _expand_sweep(sweep, read_yaml_mapping(sweep, chain))
        if name not in rows:
            what = f" (the base of '{chain[-1]}')" if chain else ""
            raise ConfigError(
                f"config '{path}'{what} does not exist: the sweep '{sweep}' has no row {name!r} (its rows: "
                f"{', '.join(rows)})"
            )
        data, folder = dict(rows[name]), sweep.parent
    else:
        data, folder = read_yaml_mapping(path, chain), path.parent
        if "sweep" in data:
            names = list(_expand_sweep(path, data))
            stem = path.with_suffix("")
            raise ConfigError(
                f"config file '{path}' is a sweep of {len(names)} configs; name one of them, e.g. '{stem / names[0]}' "
                f"(rows: {', '.join(names)})"
            )
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"config key 'base' in '{path}' must be a path string, got {describe(base)}")
    base_path = (folder / base).resolve()
    if base_path in chain or base_path == path.resolve():
        raise ConfigError(f"config file '{path}' inherits from itself through 'base: {base}'")
    return merge_sections(read_config_data(base_path, (*chain, path.resolve())), data, f"'{path}'")


def merge_sections(base: Mapping[str, Any], top: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """``top`` merged over ``base`` key by key (:func:`_merge`), refusing an empty (null) key of ``top`` over a
    section of ``base`` (named ``prefix + key`` in ``where``): see :func:`_check_no_null_section`."""
    _check_no_null_section(base, top, where, prefix)
    return _merge(dict(base), top)


def _check_no_null_section(base: Mapping[str, Any], top: Mapping[str, Any], where: str, prefix: str = "") -> None:
    """Refuse an empty (null) key of ``top`` over a section of ``base``: merged, it would replace the inherited
    section by nothing, which the config then fills with defaults (an empty ``mix:`` made a mixup child train ERM)."""
    for key, value in top.items():
        full = f"{prefix}{key}"
        if value is None and isinstance(base.get(key), Mapping):
            raise ConfigError(
                f"config key '{full}' in {where} is empty (null) over the section it inherits, which would reset "
                "it to the defaults; remove the line, or give the keys to change"
            )
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            _check_no_null_section(base[key], value, where, f"{full}.")


# Shipped YAML files that are not trainer configs: the protocol of a table that trains in a process of its own.
PROTOCOLS = {"uci/uci": "the UCI table's protocol, which 'vicinal reproduce uci --scale cpu' trains"}


def check_not_protocol(path: Path) -> None:
    """A ConfigError when ``path`` is one of the shipped PROTOCOLS (they have keys no trainer config has)."""
    for name, what in PROTOCOLS.items():
        if path.resolve() == (configs_dir() / f"{name}.yaml").resolve():
            raise ConfigError(f"'{name}' is {what}, not a config for 'vicinal train'")


def shipped_configs(prefix: str = "") -> list[str]:
    """Names of the configs shipped with the package (``cifar/cpu/cifar10-preact_resnet18-mixup``), sorted; with
    ``prefix``, only the names that start with it or with it spelled with ``_`` for ``-`` (the table
    ``corrupted-labels`` keeps its configs in ``corrupted_labels/``). A sweep file ``X/Y.yaml`` contributes its rows
    ``X/Y/NAME``; the PROTOCOLS are not listed."""
    root = configs_dir()
    names = []
    for p in root.rglob("*.yaml"):
        if not p.is_file():
            continue
        stem = p.relative_to(root).with_suffix("").as_posix()
        if stem in PROTOCOLS:
            continue
        data = read_yaml_mapping(p, ())
        names += [f"{stem}/{row}" for row in _expand_sweep(p, data)] if "sweep" in data else [stem]
    prefixes = (prefix, prefix.replace("-", "_"))
    return sorted(n for n in names if n.startswith(prefixes))


def resolve_config(path: str | Path) -> Path:
    """The file of a config named by a path or by its shipped name.

    An existing path (file or folder), an absolute path or a sweep row's path (``X/Y/NAME.yaml`` beside the sweep
    file ``X/Y.yaml``; it names no file) is taken as it is. Otherwise ``path`` is a name relative to the shipped
    configs (``vicinal.experiments.paths.configs_dir()``), with or without ``.yaml``; a leading ``configs/`` (how a
    source checkout spelled them before they moved into the package) is dropped. A shipped sweep row resolves to
    ``configs_dir()/X/Y/NAME.yaml``, which :func:`load_config` reads by expanding the sweep.

    Raises:
        ConfigError: neither a file nor a shipped name (one line, saying where it looked).
    """
    given = Path(path)
    if given.exists() or given.is_absolute() or _sweep_of(given) is not None:
        return given
    root = configs_dir()
    name = given.as_posix()
    if name.startswith("configs/"):
        name = name[len("configs/") :]
    if name and name != ".":
        for candidate in (root / name, root / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
        row = root / f"{name.removesuffix('.yaml')}.yaml"
        if _sweep_of(row) is not None:
            return row
    raise ConfigError(
        f"config file '{path}' does not exist, nor does '{name}[.yaml]' among the shipped configs in '{root}' "
        "('vicinal configs' lists them)"
    )
