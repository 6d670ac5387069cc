"""What `pip install .` ships: every subpackage of the checkout, and mypy's view of convert/."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_installed():
    # A folder missing from [tool.setuptools] packages works in an editable install and is absent
    # from a real one (CI installs with `pip install ".[test]"`): every import of it then fails.
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "memoxr").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    found |= {  # convert/ installs as memoxr.convert
        ".".join(("memoxr", "convert", *path.parent.relative_to(ROOT / "convert").parts))
        for path in (ROOT / "convert").rglob("__init__.py")
    }
    assert found <= set(SETUPTOOLS["packages"]), sorted(found - set(SETUPTOOLS["packages"]))


def test_mypy_sees_convert_as_memoxr_convert():
    # .ci/mypy-path/memoxr/convert is how mypy resolves memoxr.convert to the checkout's convert/.
    link = ROOT / ".ci" / "mypy-path" / "memoxr" / "convert"
    assert link.is_symlink() and link.resolve() == (ROOT / "convert").resolve()
    assert SETUPTOOLS["package-dir"]["memoxr.convert"] == "convert"
