"""The import structure of ``src/vicinal``, read with ``ast`` (nothing is imported).

* No import cycle among the package's own modules. Every import counts: at module level, inside functions, under
  ``if TYPE_CHECKING``, and the task modules that ``tasks.load_tables`` imports by name (``_TASK_MODULES``).
* The library (``src/vicinal/*.py``) never imports ``vicinal.experiments`` (``__main__``, the ``python -m vicinal``
  command, aside).
* An import inside a function is allowed only for an optional or heavy third-party dependency that a few code
  paths need; each one is in :data:`LOCAL_IMPORTS` with its reason, and the test fails on a new one (and on an entry
  that no longer exists).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "vicinal"

_MATPLOTLIB = "matplotlib is imported only to draw a figure (Agg backend set first); nothing else needs it"
_TORCHVISION = "torchvision is imported only when an image dataset or model that needs it is built"
# (module, imported module) -> why the import stays inside a function.
LOCAL_IMPORTS: dict[tuple[str, str], str] = {
    ("vicinal.experiments.data.images", "PIL"): "Pillow decodes the JPEG trees only (comes with torchvision)",
    ("vicinal.experiments.data.images", "torchvision.io"): _TORCHVISION,
    ("vicinal.experiments.data.images", "torchvision.transforms.v2"): _TORCHVISION,
    ("vicinal.experiments.data.images", "torchvision.datasets"): _TORCHVISION,
    ("vicinal.experiments.data.streaming", "torchvision.transforms"): _TORCHVISION,
    ("vicinal.experiments.data.streaming", "torchvision.datasets"): _TORCHVISION,
    ("vicinal.experiments.data.streaming", "torchvision.datasets.folder"): _TORCHVISION,
    ("vicinal.experiments.data.images", "sklearn.datasets"): "scikit-learn only for the bundled digits data set",
    ("vicinal.experiments.models.imagenet", "torchvision.models.resnet"): _TORCHVISION,
    ("vicinal.experiments.callbacks", "torch.utils.tensorboard"): "TensorBoard is optional (train.tensorboard)",
    ("vicinal.experiments.reliability", "matplotlib"): _MATPLOTLIB,
    ("vicinal.experiments.reliability", "matplotlib.pyplot"): _MATPLOTLIB,
    ("vicinal.experiments.report.report", "matplotlib"): _MATPLOTLIB,
    ("vicinal.experiments.report.report", "matplotlib.pyplot"): _MATPLOTLIB,
    ("vicinal.experiments.tasks.datasize", "matplotlib"): _MATPLOTLIB,
    ("vicinal.experiments.tasks.datasize", "matplotlib.pyplot"): _MATPLOTLIB,
    ("vicinal.experiments.tasks.figures", "matplotlib"): _MATPLOTLIB,
    ("vicinal.experiments.tasks.figures", "matplotlib.pyplot"): _MATPLOTLIB,
    ("vicinal.experiments.tasks.gan_summary", "matplotlib"): _MATPLOTLIB,
    ("vicinal.experiments.tasks.gan_summary", "matplotlib.pyplot"): _MATPLOTLIB,
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """``dotted name -> (file, is a package __init__)`` of every module under ``src/vicinal``."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute names an import statement imports (``from pkg import sub`` names ``pkg.sub`` if a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    out = []
    for alias in node.names:
        candidate = f"{prefix}.{alias.name}"
        out.append(candidate if candidate in MODULES else prefix)
    return out


def _own(name: str) -> str | None:
    """The package module that importing ``name`` runs (the longest known prefix), or None for a foreign one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _dynamic(module: str, tree: ast.Module) -> list[str]:
    """The task modules ``tasks.load_tables`` imports with importlib (the names in ``_TASK_MODULES``)."""
    if module != f"{PACKAGE}.experiments.tasks":
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_TASK_MODULES" for t in node.targets):
            return [f"{module}.{name}" for name in ast.literal_eval(node.value)]
    raise AssertionError("tasks/__init__.py no longer defines _TASK_MODULES: teach this test its new mechanism")


def _scan() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[int]]]:
    """The import graph of the package's own modules and every function-local import (with its lines)."""
    graph: dict[str, set[str]] = {}
    local: dict[tuple[str, str], list[int]] = {}
    for module, (path, is_pkg) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps = set(_dynamic(module, tree))

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for target in _targets(module, is_pkg, child):  # noqa: B023 - module/is_pkg of this iteration
                        own = _own(target)
                        if own is not None and own != module:  # noqa: B023
                            deps.add(own)  # noqa: B023
                        if in_function:
                            local.setdefault((module, target), []).append(child.lineno)  # noqa: B023
                visit(child, inside)

        visit(tree, False)
        graph[module] = deps
    return graph, local


GRAPH, LOCAL = _scan()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_scan_sees_the_package() -> None:
    assert {"vicinal", "vicinal.functional", "vicinal.experiments.trainer", "vicinal.experiments.runs"} <= set(GRAPH)
    assert "vicinal.experiments.runs" in GRAPH["vicinal.experiments.trainer"]
    assert "vicinal.experiments.tasks.cifar" in GRAPH["vicinal.experiments.tasks"]  # via _TASK_MODULES


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    detail = [
        " <-> ".join(c) + ": " + "; ".join(f"{a} -> {b}" for a in c for b in sorted(GRAPH[a] & set(c))) for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_the_library_never_imports_the_lab() -> None:
    # __main__ is `python -m vicinal` (the lab's command), run as a script and never imported by `import vicinal`.
    library = [m for m in GRAPH if not m.startswith(f"{PACKAGE}.experiments") and m != f"{PACKAGE}.__main__"]
    assert library and all(m.count(".") <= 1 for m in library)
    bad = {m: sorted(d for d in GRAPH[m] if d.startswith(f"{PACKAGE}.experiments")) for m in library}
    assert not {m: d for m, d in bad.items() if d}


def test_function_local_imports_are_the_allowed_ones() -> None:
    new = {f"{m} line {LOCAL[(m, t)][0]}: {t}" for m, t in LOCAL if (m, t) not in LOCAL_IMPORTS}
    assert not new, (
        "imports inside functions (move them to the module top; only an optional or heavy third-party "
        f"dependency may stay, with its reason in LOCAL_IMPORTS): {sorted(new)}"
    )
    stale = sorted(f"{m}: {t}" for m, t in LOCAL_IMPORTS if (m, t) not in LOCAL)
    assert not stale, f"LOCAL_IMPORTS entries that no longer exist (remove them): {stale}"
    assert all(reason.strip() for reason in LOCAL_IMPORTS.values())


# The lab's layers, lowest first (docs/lab.md "Layout"): a module imports only modules of its own layer or below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        ("errors", "paths", "stats", "data.seeds", "config_yaml", "config", "runs", "checkpoint"),
    ),
    ("data and models", ("data", "models")),
    (
        "building and evaluating a run",
        ("build", "evaluation", "reliability", "distributed", "ensemble", "callbacks", "recipe"),
    ),
    ("engines", ("trainer", "attacks")),
    ("tables", ("tasks",)),
    ("report", ("report",)),
    ("commands", ("orchestrate", "demo", "cli", "")),
)


def _layer(module: str) -> int:
    """The index in LAYERS of a lab module (its longest matching prefix); the package itself is a command."""
    rest = module.removeprefix(f"{PACKAGE}.experiments").removeprefix(".")
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (rest == p or rest.startswith(p + ".") or p == "") and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None and (best_len > 0 or rest == ""), f"{module} is in no layer of LAYERS: add it"
    return best


def _upward(graph: dict[str, set[str]]) -> list[str]:
    lab = f"{PACKAGE}.experiments"
    return sorted(
        f"{m} ({LAYERS[_layer(m)][0]}) -> {d} ({LAYERS[_layer(d)][0]})"
        for m, deps in graph.items()
        if m == lab or m.startswith(lab + ".")
        for d in deps
        if (d == lab or d.startswith(lab + ".")) and _layer(d) > _layer(m)
    )


def test_layer_check_finds_an_upward_import() -> None:
    lab = f"{PACKAGE}.experiments"
    assert _upward({f"{lab}.runs": {f"{lab}.report.report"}, f"{lab}.report.report": {f"{lab}.runs"}}) == [
        f"{lab}.runs (foundation) -> {lab}.report.report (report)"
    ]


def test_lab_imports_only_point_down_the_layers() -> None:
    upward = _upward(GRAPH)
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)
