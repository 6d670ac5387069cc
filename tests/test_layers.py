"""The package is layered: a module imports only from its own layer or the layers below.

import-linter cannot see ``convert/`` (installed as ``memoxr.convert``, beside the package in a
checkout), so the import graph is read from the source with ``ast`` instead. Imports inside
functions count too: a lazy upward import is still an upward import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Top to bottom. A module may import from its own layer and any layer below it; packages that
#: share a layer are independent of each other.
LAYERS: list[tuple[str, ...]] = [
    ("memoxr.benchmarks", "memoxr.__main__"),
    ("memoxr.cli",),
    ("memoxr",),  # the facade: lazy public names from every layer
    ("memoxr.reproduce",),
    ("memoxr.plot", "memoxr.importers"),
    ("memoxr.workflows",),  # what the commands do: convert, compute, write, report
    ("memoxr.datasets",),
    ("memoxr.convert",),
    ("memoxr.estimate",),
    ("memoxr.dynamics",),
    ("memoxr.influence",),
    ("memoxr.io",),
    ("memoxr.compute",),
    ("memoxr.errors", "memoxr._optional", "memoxr._version", "memoxr._compat"),
]


def _layer_of(module: str) -> tuple[int, str]:
    best = None
    for rank, layer in enumerate(LAYERS):
        for package in layer:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > len(best[1])
            ):
                best = (rank, package)
    assert best is not None, module
    return best


def _modules() -> dict[str, Path]:
    found = {}
    for base, prefix in ((ROOT / "memoxr", "memoxr"), (ROOT / "convert", "memoxr.convert")):
        for path in base.rglob("*.py"):
            parts = [prefix, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import module` imports the module, not pkg
                submodule = f"{target}.{alias.name}"
                targets.add(submodule if submodule in known else target)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return {t for t in targets if t == "memoxr" or t.startswith("memoxr.")}


def _upward_imports() -> list[str]:
    modules = _modules()
    found = []
    for module, path in sorted(modules.items()):
        rank, package = _layer_of(module)
        for target in sorted(_imports(module, path, modules)):
            if target not in modules:
                continue
            target_rank, target_package = _layer_of(target)
            if target_rank < rank or (target_rank == rank and target_package != package
                                      and LAYERS[rank] != LAYERS[-1]):
                found.append(f"{module} -> {target}")
    return found


def test_imports_only_go_down():
    assert _upward_imports() == []


def _cycles() -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's SCCs)."""
    modules = _modules()
    graph = {m: {t for t in _imports(m, p, modules) if t in modules and t != m} for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert _cycles() == []


def test_the_layer_list_names_every_package():
    packages = {m for m, p in _modules().items() if p.name == "__init__.py"}
    listed = {package for layer in LAYERS for package in layer}
    assert packages - listed == set()


@pytest.mark.parametrize("module", ["memoxr.influence.scores", "memoxr.cli.main"])
def test_the_scan_sees_imports(module):
    assert _imports(module, _modules()[module], _modules())  # guards the scan itself


def test_moving_modules_left_the_store_formats_alone():
    # Schema names are written into every store; old stores must keep opening.
    from memoxr.dynamics.store import DYNAMICS_SCHEMA
    from memoxr.io.schema import INFLUENCE_SCHEMA, SCORES_SCHEMA

    assert (INFLUENCE_SCHEMA, SCORES_SCHEMA, DYNAMICS_SCHEMA) == ("memoxr.influence", "memoxr.scores", "memoxr.dynamics")
