"""What mypy and IDEs see of ``memoxr`` matches what it gives at run time."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

import memoxr

INIT = Path(memoxr.__file__)


def type_checking_imports() -> dict[str, str]:
    """Name -> absolute module of each import under ``if TYPE_CHECKING:`` in memoxr/__init__.py."""
    tree = ast.parse(INIT.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1
                for alias in statement.names:
                    found[alias.asname or alias.name] = f"memoxr.{statement.module}"
    return found


def test_every_lazy_name_is_visible_to_type_checkers():
    # A name added to _LAZY without its TYPE_CHECKING import is Any to mypy and unknown to IDEs.
    imported = type_checking_imports()
    assert set(imported) == set(memoxr._LAZY)


@pytest.mark.parametrize("name", sorted(type_checking_imports()))
def test_type_checking_imports_name_the_objects_memoxr_returns(name):
    value = getattr(memoxr, name)
    if isinstance(value, types.ModuleType):
        # memoxr.reproduce is its subpackage once one of its modules is imported; calling the
        # package calls the function, which is what type checkers are told it is.
        assert callable(value) and value.__name__ == f"memoxr.{name}"
    else:
        assert value is getattr(importlib.import_module(type_checking_imports()[name]), name)
