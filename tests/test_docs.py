"""The examples in the docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "memoxr.influence.kernels", "memoxr.io.chunks", "memoxr.influence.scores", "memoxr.compute.plan",
    "memoxr.influence.plan", "memoxr.io.location", "memoxr.compute.reduction", "memoxr.influence.accessor",
    "memoxr.influence.stats", "memoxr.influence.analysis", "memoxr.influence.sources", "memoxr.io.schema",
    "memoxr.influence.seed_npz", "memoxr.workflows", "memoxr.dynamics._kernels",
    *(f"memoxr.dynamics.{name}" for name in (
        "schema", "files", "patterns", "ingest", "writer", "proxies", "registry", "metrics", "evaluate", "align",
        "demo", "plan", "_skipna_kernels",
    )),
    "memoxr.compute.progress", "memoxr.compute.scheduler",
    "memoxr.estimate", "memoxr.estimate.trials", "memoxr.estimate.kernels", "memoxr.estimate.sums", "memoxr.estimate.variables",
    "memoxr.estimate.graph", "memoxr.estimate.bootstrap", "memoxr.estimate.writers", "memoxr.estimate.incremental",
    "memoxr.estimate.uncertainty",
    "memoxr.convert.heldout_files", "memoxr.convert.heldout_runs",
    "memoxr.influence.pairs", "memoxr.importers.compare", "memoxr.io.sample_order",
    "memoxr.datasets.digits", "memoxr.datasets.synthetic",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


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
