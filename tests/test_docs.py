"""The examples in the docstrings run and print what they say, in every module of the package.

Modules are found, not listed: every module under ``memoxr`` (``memoxr.convert``
included) runs its examples, and one that defines public functions must have at
least one example unless it is in :data:`NO_EXAMPLES_YET`.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import sys
import tempfile

import numpy as np
import pytest

import memoxr
import memoxr.convert

#: Not imported here, each with the reason. (CI installs ``.[test]``, which has every optional
#: extra, so no module needs skipping for a missing dependency.)
SKIP = {
    "memoxr.__main__": "runs the command line when imported (``python -m memoxr``)",
}

#: Command scripts, not an API (``python -m memoxr.benchmarks.NAME``): imported and their
#: examples run, but their public functions need none.
SCRIPT_PACKAGES = ("memoxr.benchmarks",)

#: Modules with public functions and no example yet. This set only shrinks: a module leaves it
#: when its functions get examples (the test below fails while a module with examples is still
#: listed); a new module comes with its examples.
NO_EXAMPLES_YET: set[str] = set()


def discover_modules() -> list[str]:
    """Every module of memoxr and memoxr.convert, by walking their folders."""
    names = set()
    for package in (memoxr, memoxr.convert):
        names.add(package.__name__)
        # The package's own folder only: from an uninstalled checkout memoxr.__path__ also
        # holds the repository root (for convert/), whose other folders are not memoxr's.
        folder = os.path.dirname(package.__file__)
        for info in pkgutil.walk_packages([folder], f"{package.__name__}."):
            names.add(info.name)
    return sorted(names)


MODULES = discover_modules()


def public_functions(module) -> list[str]:
    """Functions the module defines (not imports) whose names do not start with ``_``."""
    return sorted(
        name for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    )


@pytest.mark.parametrize("name", [m for m in MODULES if m not in SKIP])
def test_docstring_examples(name, tmp_path, monkeypatch):
    # Examples make their files with tempfile: here they land in pytest's tmp_path, removed after.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    if "matplotlib.pyplot" in sys.modules:  # figures drawn by the examples
        sys.modules["matplotlib.pyplot"].close("all")
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (output above)"

    functions = public_functions(module)
    if name.startswith(SCRIPT_PACKAGES) or not functions:
        return
    if name in NO_EXAMPLES_YET:
        assert result.attempted == 0, f"{name} has examples now: remove it from NO_EXAMPLES_YET"
    else:
        assert result.attempted > 0, (
            f"{name} defines public functions {functions} but no docstring example; add an Examples "
            "section (numpy style) that runs as a doctest"
        )


def test_discovery_covers_the_package():
    # Subpackages, private modules and the converters (installed as memoxr.convert) are all found.
    for expected in ("memoxr.influence.scores", "memoxr.io.chunks", "memoxr.dynamics.proxies", "memoxr.plot._style",
                     "memoxr.convert", "memoxr.convert.heldout_runs"):
        assert expected in MODULES
    assert all(name == "memoxr" or name.startswith("memoxr.") for name in MODULES)


def test_lists_name_only_existing_modules():
    # A module renamed or moved must leave these lists too (else they silently stop applying).
    assert set(SKIP) <= set(MODULES)
    assert NO_EXAMPLES_YET <= set(MODULES), sorted(NO_EXAMPLES_YET - set(MODULES))


def test_readme_quickstart_snippet_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    snippet = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    assert "memoxr.open_influence" in snippet
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert list(namespace["stats"]["class_label"]) == list(range(10))
    assert (tmp_path / "digits.zarr").is_dir()


def test_readme_xarray_manners_snippets_run():
    # The accessor example, then the skipna/keep_attrs example that continues from its `ds`.
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    snippets = [s for s in re.findall(r"```python\n(.*?)```", readme, re.S) if "ds.memoxr" in s or "skipna=True).loc" in s]
    assert len(snippets) == 2
    namespace: dict = {}
    for snippet in snippets:
        exec(compile("import memoxr\n" + snippet, "README.md", "exec"), namespace)
    memoxr = namespace["memoxr"]
    assert np.isnan(memoxr.class_stats(namespace["scores"]).loc[0, "mean_infl_weighted_memo"])
    assert np.isfinite(memoxr.class_stats(namespace["scores"], skipna=True).loc[0, "mean_infl_weighted_memo"])


def test_readme_allocator_snippet_runs():
    # Run in a process of its own: it changes that process's allocator.
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", readme, re.S) if "keep_freed_buffers" in s]
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_exported_function_has_an_example():
    # The public API: the names of memoxr's and each subpackage's __all__ (classes and exceptions aside).
    import memoxr.convert

    packages = [memoxr, memoxr.convert] + [
        importlib.import_module(f"memoxr.{info.name}")
        for info in pkgutil.iter_modules([os.path.dirname(memoxr.__file__)]) if info.ispkg
    ]
    missing = [
        f"{package.__name__}.{name}"
        for package in packages
        for name in getattr(package, "__all__", [])
        if inspect.isfunction(obj := getattr(package, name)) and ">>>" not in (obj.__doc__ or "")
    ]
    assert len(packages) > 8
    assert not missing, missing
