"""``storage_options`` stop at the public boundary: one :class:`~memoxr.io.location.Location` below it.

A function users call (a name in some ``__all__``, a 0.x public name of ``test_compat.OLD_API``,
``memoxr.workflows``, a CLI command) may take ``path`` plus ``storage_options``; it resolves each
path once, ``Location.of(path, storage_options)`` (or ``locate``/``locate_each`` for an argument
that may also be data or a mapping of paths), and passes the Location down. Every other function takes the Location instead. The source
is scanned (ast), so a new helper that threads ``storage_options`` by hand fails here, with its
file and line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_compat import OLD_API

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((ROOT / "memoxr").rglob("*.py")), *sorted((ROOT / "convert").glob("*.py"))]
NAME = "storage_options"
#: Where options are resolved: the Location itself and the option helpers beside it.
RESOLVER = Path("memoxr/io/location.py")
#: Calls that resolve: the one place ``storage_options`` may go inside a public function.
RESOLVING_CALLS = {"Location.of", "locate", "locate_each"}
#: The CLI's option decorator: it turns ``--storage-options``/``--credentials`` into the mapping.
CLI_OPTIONS = Path("memoxr/cli/options.py")


def _relative(path: Path) -> Path:
    return path.resolve().relative_to(ROOT)


def _checkout_path(file: Path) -> Path:
    """The checkout path of an imported module's file, wherever memoxr is installed (CI: site-packages)."""
    import memoxr

    relative = file.resolve().relative_to(Path(memoxr.__file__).resolve().parents[1])
    if relative.parts[:2] == ("memoxr", "convert"):  # convert/ installs as memoxr/convert
        relative = Path("convert", *relative.parts[2:])
    return relative


def _source_path(module: str) -> Path:
    file = importlib.import_module(module).__file__
    assert file is not None
    return _checkout_path(Path(file))


def _public_functions() -> set[tuple[Path, str]]:
    """(file, qualname) of every function and class users may call, and each public class's methods."""
    names: dict[str, list[str]] = {module: list(found) for module, found in OLD_API.items()}
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        exported = [
            node for node in tree.body
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ]
        if exported:
            module = _module_name(path)
            names.setdefault(module, []).extend(ast.literal_eval(exported[0].value))
    names.setdefault("memoxr.workflows", []).extend(
        n for n, v in vars(importlib.import_module("memoxr.workflows")).items()
        if not n.startswith("_") and inspect.isfunction(v) and v.__module__ == "memoxr.workflows"
    )
    public: set[tuple[Path, str]] = set()
    for module, found in names.items():
        owner = importlib.import_module(module)
        for name in found:
            value = getattr(owner, name, None)
            value = getattr(value, "callback", value)  # a click command: its function
            if not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            value = inspect.unwrap(value)
            file = inspect.getsourcefile(value)
            if file is None:
                continue
            public.add((_checkout_path(Path(file)), value.__qualname__))
            if inspect.isclass(value):
                public.update((_checkout_path(Path(file)), f"{value.__qualname__}.{m}") for m in vars(value) if m == "__init__" or not m.startswith("_"))
    return public


def _module_name(path: Path) -> str:
    parts = list(_relative(path).with_suffix("").parts)
    if parts[0] == "convert":
        parts.insert(0, "memoxr")  # convert/ installs as memoxr.convert
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Function:
    file: Path
    qualname: str
    line: int
    node: ast.FunctionDef | ast.AsyncFunctionDef

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} {self.qualname}"

    @property
    def is_command(self) -> bool:
        """A click command of the CLI (its options arrive from the ``remote_options`` decorator)."""
        return self.file.parts[:2] == ("memoxr", "cli") and bool(self.node.decorator_list)


def _functions() -> list[Function]:
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str, file: Path) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{child.name}"
                found.append(Function(file, qualname, child.lineno, child))
                visit(child, f"{qualname}.<locals>.", file)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", file)

    for path in SOURCES:
        visit(ast.parse(path.read_text()), "", _relative(path))
    return found


def _takes_options(function: Function) -> bool:
    args = function.node.args
    return any(a.arg == NAME for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _unresolved_uses(function: Function) -> list[int]:
    """Lines where ``storage_options`` is read other than as the options of ``Location.of``/``locate``."""
    resolving: set[int] = set()
    for node in ast.walk(function.node):
        if isinstance(node, ast.Call) and _call_name(node) in RESOLVING_CALLS and len(node.args) == 2:
            if isinstance(node.args[1], ast.Name) and node.args[1].id == NAME:
                resolving.add(id(node.args[1]))
    return sorted(
        node.lineno for node in ast.walk(function.node)
        if isinstance(node, ast.Name) and node.id == NAME and isinstance(node.ctx, ast.Load) and id(node) not in resolving
    )


FUNCTIONS = _functions()
PUBLIC = _public_functions()
WITH_OPTIONS = [f for f in FUNCTIONS if _takes_options(f)]


def test_the_scan_sees_the_boundary():
    """The scan is not vacuous: it finds the public functions that take options, and they are public."""
    names = {f.qualname for f in WITH_OPTIONS}
    assert {"open_influence", "convert_npz", "calculate", "ingest", "write_estimate", "Location.of"} <= names
    assert (Path("memoxr/influence/sources.py"), "open_influence") in PUBLIC
    assert (Path("memoxr/io/npz.py"), "read_npz_headers") in PUBLIC  # a 0.x name of memoxr.convert.fz_npz
    assert (Path("memoxr/estimate/trials.py"), "trial_arrays") not in PUBLIC


def test_only_public_functions_take_storage_options():
    internal = [
        f.where for f in WITH_OPTIONS
        if (f.file, f.qualname) not in PUBLIC and not f.is_command and f.file not in (RESOLVER, CLI_OPTIONS)
    ]
    assert internal == [], (
        "internal functions take storage_options; take a memoxr.io.location.Location instead "
        f"(the public caller resolves it once): {internal}"
    )


def test_public_functions_only_resolve_their_options():
    """Inside a public function ``storage_options`` goes only into ``Location.of``/``locate``: resolved
    once, at entry, never handed down by hand (the CLI's commands pass them to public functions)."""
    threaded = {
        f.where: lines for f in WITH_OPTIONS
        if f.file not in (RESOLVER, CLI_OPTIONS) and not f.is_command and (lines := _unresolved_uses(f))
    }
    assert threaded == {}, f"storage_options used other than to resolve a Location (file:line, lines): {threaded}"


@pytest.mark.parametrize("function", WITH_OPTIONS, ids=lambda f: f"{f.file}:{f.qualname}")
def test_storage_options_have_the_one_type(function):
    """Every ``storage_options`` parameter is annotated ``StorageOptions`` (io.location's alias)."""
    args = function.node.args
    (arg,) = [a for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg == NAME]
    annotation = ast.unparse(arg.annotation) if arg.annotation is not None else None
    if function.file == CLI_OPTIONS or (function.file == RESOLVER and function.qualname == "resolve_storage_options"):
        return  # the raw --storage-options JSON text, before it is a mapping
    assert annotation == "StorageOptions", f"{function.where}: storage_options annotated {annotation!r}"


def test_a_helper_that_threads_options_is_caught(tmp_path):
    """The rule fails on the pattern it forbids (an internal helper taking and handing on options)."""
    code = (
        "def _open(path, storage_options=None):\n"
        "    return open_dataset(path, storage_options=storage_options)\n"
        "def open_thing(path, storage_options=None):\n"
        "    return _open(path, storage_options)\n"
        "def open_right(path, storage_options=None):\n"
        "    return _open(Location.of(path, storage_options))\n"
    )
    tree = ast.parse(code)
    functions = [Function(Path("x.py"), n.name, n.lineno, n) for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [f.qualname for f in functions if _takes_options(f)] == ["_open", "open_thing", "open_right"]
    assert {f.qualname: _unresolved_uses(f) for f in functions} == {"_open": [2], "open_thing": [4], "open_right": []}


def test_a_location_never_shows_its_options():
    # They may hold credentials; a printed Location (a log line, a traceback's locals) names the path only.
    from memoxr.io.location import Location

    location = Location.of("s3://bucket/x.zarr", {"key": "AKIA-secret", "secret": "hunter2"})
    assert "hunter2" not in repr(location) and "AKIA" not in repr(location) and "s3://bucket/x.zarr" in repr(location)
