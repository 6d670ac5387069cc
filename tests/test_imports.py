"""Start-up cost: ``import memoxr`` and ``memoxr --help`` load no heavy optional library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import memoxr
from memoxr.convert import convert_npz

HEAVY = ("sklearn", "scipy.stats", "matplotlib", "distributed", "s3fs")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _python_prints_ok(code: str) -> None:
    """Run ``code`` in a fresh interpreter; it must end by printing ``ok`` (its own asserts say what broke)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.splitlines()[-1:] == ["ok"], done.stderr


@pytest.mark.parametrize(
    "code",
    [
        "import memoxr",
        "from memoxr.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        "from memoxr.cli import main\ntry:\n    main(['convert', '--help'])\nexcept SystemExit:\n    pass",
        "from memoxr.cli import main\ntry:\n    main(['evaluate', '--help'])\nexcept SystemExit:\n    pass",
        *(f"from memoxr.cli import main\ntry:\n    main(['{c}', '--help'])\nexcept SystemExit:\n    pass"
          for c in ("estimate", "compare", "pairs", "align-order", "reproduce")),
    ],
    ids=["import", "help", "convert-help", "evaluate-help", "estimate-help", "compare-help", "pairs-help",
         "align-order-help", "reproduce-help"],
)
def test_start_up_imports_nothing_heavy(code):
    loaded = _modules_after(code)
    assert not [name for name in (*HEAVY, "scipy", "zarr", "dask.array") if name in loaded]


def test_calculate_path_does_not_import_scipy_stats_or_sklearn():
    loaded = _modules_after("import memoxr.workflows")
    assert not [name for name in ("sklearn", "scipy.stats", "matplotlib", "distributed", "s3fs") if name in loaded]


def test_every_lazy_name_resolves():
    for name in memoxr.__all__:
        assert getattr(memoxr, name) is not None
    assert set(dir(memoxr)) >= set(memoxr.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        memoxr.nope  # noqa: B018


def test_python_dash_m_memoxr_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "memoxr", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage: memoxr" in done.stdout and "estimate" in done.stdout


@pytest.mark.parametrize("source", ["npz", "store"])
def test_calculate_loads_no_cluster_plot_or_s3_library(source, tmp_path):
    path = memoxr.sample_path()
    if source == "store":  # several chunks per dim, so the scores rechunk (dask looks for a cluster there)
        path = tmp_path / "sample.zarr"
        convert_npz(memoxr.sample_path(), path, chunk_mb=0.01)
        assert memoxr.open_influence(path)["influence"].data.npartitions > 1
    csv = tmp_path / "stats.csv"
    code = (
        "import memoxr\nfrom memoxr.cli import main\n"
        f"try:\n    main(['calculate', '--input', {str(path)!r}, '-q', '--stats-csv', {str(csv)!r}])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code"
    )
    loaded = _modules_after(code)
    assert "memoxr.workflows" in loaded and "dask.array" in loaded and csv.read_text().startswith("class_label")
    assert not [name for name in HEAVY if name in loaded]
    assert "scipy" not in loaded  # hidden while dask.array imports (memoxr/compute/lean_imports.py)
    assert "zarr" not in loaded  # a local store opens without zarr-python (memoxr/io/local_zarr.py)
    assert "fsspec" not in loaded  # which only URLs need
    if source == "npz":  # no store opened or written: no chunk decoded either
        assert "numcodecs" not in loaded


@pytest.mark.parametrize("source", ["npz", "store"])
def test_library_work_does_not_import_distributed_to_look_for_a_client(source, tmp_path):
    # dask imports distributed (0.1-0.2 s) on a compute or rechunk to look for a default client,
    # unless told what to use; with distributed installed but not imported there is none to find.
    pytest.importorskip("distributed")  # else nothing to import
    path = memoxr.sample_path()
    if source == "store":  # several chunks per dim, so the scores rechunk
        path = tmp_path / "sample.zarr"
        convert_npz(memoxr.sample_path(), path, chunk_mb=0.01)
    code = (
        "import numpy as np, memoxr, memoxr.workflows\nfrom memoxr.compute.progress import compute\nfrom memoxr.estimate import estimate\n"
        f"result = memoxr.workflows.calculate({str(path)!r})\n"
        "rng = np.random.default_rng(0)\n"
        "records = {'mask': rng.random((40, 30)) < 0.5, 'train_correct': rng.random((40, 30)) < 0.5,\n"
        "           'test_correct': rng.random((40, 12)) < 0.5, 'tr_labels': np.repeat([0, 1, 2], 10),\n"
        "           'tt_labels': np.repeat([0, 1, 2], 4)}\n"
        "(est,) = compute(estimate(records, chunk_mb=0.001))\n"
        "assert result.stats.shape[0] == 10 and est['influence'].shape == (3, 10, 4)\n"
        "from memoxr.estimate import write_estimate\n"
        f"for name in ('e.zarr', 'e.npz'):\n    write_estimate(records, {str(tmp_path)!r} + '/' + name)\n"
        "from memoxr.dynamics import compute_proxies\nfrom memoxr.dynamics.demo import sample_dataset\n"
        "compute(compute_proxies(sample_dataset().chunk({'epoch': 7})))  # order-dependent proxies rechunk epoch"
    )
    loaded = _modules_after(code)
    assert "dask.array" in loaded and "memoxr.estimate.sums" in loaded
    assert "distributed" not in loaded


EXTRAS_ONLY = ("s3fs", "aiohttp", "aiobotocore", "botocore", "distributed", "matplotlib", "bokeh", "jinja2")


def test_base_install_commands_run_without_any_extra(tmp_path):
    # What `pip install memoxr` (no extra) gives: every optional package absent.
    blocked = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in EXTRAS_ONLY)
    code = (
        blocked + "from memoxr.cli import main\n"
        f"for args in (['demo', '--output', {str(tmp_path / 'demo')!r}, '-q'], ['dynamics-demo', '--sample']):\n"
        "    try:\n        main(args)\n    except SystemExit as exit:\n        assert not exit.code, (args, exit.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Three facts:" in done.stdout and "csl" in done.stdout
    assert (tmp_path / "demo" / "scores.zarr").is_dir()


def test_extras_are_consistent():
    import tomllib
    from pathlib import Path

    from memoxr._optional import EXTRAS

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)  # every extra an error message names exists
    assert sorted(extras["all"]) == sorted(r for name in EXTRAS for r in extras[name])
    assert set(extras["all"]) <= set(extras["test"])  # the suite exercises every extra
    base = " ".join(project["dependencies"])
    for optional in ("s3fs", "distributed", "matplotlib", "diagnostics", "bokeh"):
        assert optional not in base


@pytest.mark.parametrize("old", sorted(__import__("memoxr._compat", fromlist=["MOVED"]).MOVED))
def test_old_module_paths_are_the_moved_modules(old):
    import importlib

    from memoxr._compat import MOVED

    moved = importlib.import_module(old)
    assert moved is importlib.import_module(MOVED[old])
    assert moved.__spec__.name == MOVED[old]  # its own spec, not the alias's


def test_commands_import_dask_array_lean_and_scipy_and_dask_docs_are_whole_after(tmp_path):
    # memoxr/compute/lean_imports.py: while dask.array imports, for the command only, scipy is hidden
    # and numpy's docstrings are not copied; both are back to normal afterwards.
    code = (
        "import sys\nfrom memoxr.cli import main\n"
        f"try:\n    main(['calculate', '--input', {str(memoxr.sample_path())!r}, '-q', '--stats-csv', "
        f"{str(tmp_path / 'stats.csv')!r}])\nexcept SystemExit as exit:\n    assert not exit.code\n"
        "assert 'dask.array' in sys.modules\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'memoxr.compute.lean_imports']\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('scipy', 'jinja2')], 'scipy or jinja2'\n"
        "import numpy as np, scipy.stats, dask.array as da, dask.utils\n"
        "assert scipy.stats.spearmanr([1, 2, 3], [1, 3, 2])[0] == 0.5\n"
        "assert float(da.arange(6, chunks=2).sum().compute()) == 15.0\n"
        "assert float(da.sqrt(da.full(3, 4.0, chunks=2)).sum().compute()) == 6.0  # a dask ufunc\n"
        "assert 'This docstring was copied from numpy' not in (da.nanmean.__doc__ or '')  # lean\n"
        "assert dask.utils._derived_from.__module__ == 'dask.utils'  # restored\n"
        "import jinja2\nassert jinja2.Template('{{ 1 + 1 }}').render() == '2'\n"
        "def nanmean(x):\n    'Own text.'\n"
        "assert 'This docstring was copied from numpy' in dask.utils.derived_from(np)(nanmean).__doc__\n"
        "print('ok')\n"
    )
    _python_prints_ok(code)
    assert (tmp_path / "stats.csv").read_text().startswith("class_label")


def test_command_that_ends_early_leaves_the_import_system_alone(tmp_path):
    """A refused output ends calculate before dask.array is imported: a host that ran it in-process
    then imports dask.array as usual (numpy's docstrings copied, scipy's sparse chunks known)."""
    existing = tmp_path / "stats.csv"
    existing.write_text("keep me")
    code = (
        "import sys\nfrom memoxr.cli import main\n"
        f"try:\n    main(['calculate', '--input', {str(memoxr.sample_path())!r}, '-q', '--stats-csv', {str(existing)!r}])\n"
        "except SystemExit as exit:\n    assert exit.code == 2, exit.code\n"
        "assert 'dask.array' not in sys.modules\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'memoxr.compute.lean_imports']\n"
        "import dask.array as da\n"
        "assert 'This docstring was copied from numpy' in (da.nanmean.__doc__ or '')\nprint('ok')"
    )
    _python_prints_ok(code)
    assert existing.read_text() == "keep me"


def test_library_import_leaves_the_import_system_alone():
    code = (
        "import sys, importlib.util\nimport memoxr, memoxr.workflows, dask.array\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'memoxr.compute.lean_imports']\n"
        "assert importlib.util.find_spec('scipy') is not None\nprint('ok')"
    )
    _python_prints_ok(code)


def test_hidden_module_is_importable_again_after_a_failed_import(monkeypatch, tmp_path):
    import importlib.abc
    import importlib.util

    from memoxr.compute import lean_imports

    (tmp_path / "memoxr_probe.py").write_text("VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Failing(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            assert importlib.util.find_spec("memoxr_probe") is None  # absent to probes too
            with pytest.raises(ModuleNotFoundError, match="memoxr_probe"):
                import memoxr_probe  # noqa: F401
            raise RuntimeError("the wrapped import fails")

    module = type(sys)("fake")
    module.__spec__ = None
    try:
        with pytest.raises(RuntimeError, match="wrapped import fails"):
            lean_imports._ExecutedLean(Failing(), lambda: lean_imports._absent("memoxr_probe")).exec_module(module)
        assert "memoxr_probe" not in sys.modules
        import memoxr_probe

        assert memoxr_probe.VALUE == 3
    finally:
        sys.modules.pop("memoxr_probe", None)


def _command_names() -> list[str]:
    import click

    from memoxr.cli import main

    return main.list_commands(click.Context(main))


@pytest.mark.parametrize("command", _command_names())
def test_every_command_help_loads_no_data_library(command):
    code = f"from memoxr.cli import main\ntry:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass"
    loaded = _modules_after(code)
    assert not [name for name in (*HEAVY, "scipy", "zarr", "dask.array") if name in loaded]


def test_lean_docstrings_keep_dask_behaviour_and_are_restored_even_after_a_failure():
    import dask.utils
    import numpy as np

    from memoxr.compute.lean_imports import _docstrings_not_copied

    copier = dask.utils._derived_from

    def nanmean(x):
        """Own text."""
        return np.nanmean(x)

    def no_such_numpy_function(x):
        return x

    with _docstrings_not_copied():
        lean = dask.utils.derived_from(np)(nanmean)
        missing = dask.utils.derived_from(np.ndarray, version="9.9")(no_such_numpy_function)
    assert lean is nanmean and lean.__doc__ == "Own text." and lean(np.array([1.0, np.nan, 3.0])) == 2.0
    with pytest.raises(NotImplementedError, match="no_such_numpy_function"):  # as dask does
        missing(1)
    assert dask.utils._derived_from is copier
    with pytest.raises(RuntimeError, match="inside"), _docstrings_not_copied():
        raise RuntimeError("inside")
    assert dask.utils._derived_from is copier
    assert "This docstring was copied from numpy" in dask.utils.derived_from(np)(nanmean).__doc__


def test_lean_import_after_dask_itself_is_imported_still_applies_and_leaves_nothing_behind():
    # A process that imported dask (not dask.array) first: dask.widgets is done, the rest still applies.
    code = (
        "import sys, dask\nfrom memoxr.compute.lean_imports import import_dask_array_lean\n"
        "assert 'dask.widgets' in sys.modules and import_dask_array_lean()\n"
        "assert not import_dask_array_lean()  # arranged once\n"
        "import dask.array as da\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'memoxr.compute.lean_imports']\n"
        "assert 'scipy' not in sys.modules\n"
        "assert 'This docstring was copied from numpy' not in (da.nanmean.__doc__ or '')\n"
        "assert not import_dask_array_lean()  # dask.array imported: nothing left to arrange\n"
        "print('ok')\n"
    )
    _python_prints_ok(code)


def test_lean_finder_leaving_does_not_skip_the_next_finder(monkeypatch):
    # The last target, not on the path: the finder leaves sys.meta_path, and the import system must
    # still ask the finder after it (it walks the list it started with).
    import importlib.abc
    import importlib.util

    from memoxr.compute import lean_imports

    class Provider(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            return importlib.util.spec_from_loader(name, self) if name == "memoxr_probe_elsewhere" else None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            module.VALUE = 7

    lean = lean_imports._OnFirstImport({"memoxr_probe_elsewhere"})
    monkeypatch.setattr(sys, "meta_path", [lean, Provider(), *sys.meta_path])
    try:
        import memoxr_probe_elsewhere

        assert memoxr_probe_elsewhere.VALUE == 7
        assert lean not in sys.meta_path
    finally:
        sys.modules.pop("memoxr_probe_elsewhere", None)


@pytest.mark.parametrize("command", [["calculate", "--input", "missing.zarr", "--stats-csv"], ["convert", "missing.npz"]])
def test_an_existing_local_output_is_refused_before_loading_xarray(tmp_path, command):
    existing = tmp_path / "out"
    existing.write_text("kept\n")
    code = (
        "from memoxr.cli import main\n"
        f"try:\n    main({[*command, str(existing)]!r})\n"
        "except SystemExit as exit:\n    assert exit.code == 2, exit.code"
    )
    loaded = _modules_after(code)
    assert not [name for name in ("xarray", "pandas", "zarr", "dask.array") if name in loaded]
    shown = subprocess.run([sys.executable, "-m", "memoxr", *command, str(existing)], capture_output=True, text=True)
    assert shown.returncode == 2 and f"output {str(existing)!r} already exists" in shown.stderr
    assert existing.read_text() == "kept\n"


def test_outputs_are_refused_early_only_where_the_library_would_report_the_same(tmp_path, ragged_store):
    """The command's early refusal, where it refuses, says what the library says for the same paths."""
    from memoxr.cli.options import refuse_existing_local_outputs
    from memoxr.errors import MemoxrInputError, OutputExistsError
    from memoxr.workflows import calculate

    def early(output, stats):
        store = None if output is None or output.endswith(".npz") else output
        try:
            refuse_existing_local_outputs((output, stats), overwrite=False, stores=(store,), inputs=(ragged_store,))
        except OutputExistsError as exc:
            return str(exc)
        return None

    def library(output, stats):
        try:
            calculate(ragged_store, output=output, stats_csv=stats)
        except (OutputExistsError, MemoxrInputError) as exc:
            return str(exc)
        return "written"

    (tmp_path / "scores.zarr").mkdir()
    (tmp_path / "stats.csv").write_text("kept\n")
    (tmp_path / "taken.csv").mkdir()  # an existing store named like a CSV
    (tmp_path / "link.csv").symlink_to(tmp_path / "gone" / "x.csv")  # dangling
    at = lambda name: str(tmp_path / name)  # noqa: E731
    cases = [
        (at("scores.zarr"), at("stats.csv")),  # both exist: refused early, both named
        (at("scores.zarr"), at("stats.csv") + "/"),  # a trailing slash names the same file
        (at("scores.zarr"), None),
        (None, at("stats.csv")),
        (at("scores.zarr"), at("new.csv")),  # one new: the library decides
        (at("new.zarr"), at("stats.csv")),
        (at("scores.zarr"), at("nodir/stats.csv")),  # a missing parent: the library reports it
        (at("taken.csv"), at("stats.csv")),  # a store named like a file: refused for its name
        (at("scores.zarr"), at("link.csv")),  # a dangling link
        (at("scores.zarr"), at("scores.zarr/x.csv")),  # one output inside the other: the library refuses it
        (ragged_store, at("stats.csv")),  # the input as an output
    ]
    refused_early = 0
    for output, stats in cases:
        said = early(output, stats)
        if said is not None:
            refused_early += 1
            assert library(output, stats) == said, (output, stats)
    assert refused_early == 4
    assert "outputs" in early(at("scores.zarr"), at("stats.csv"))
    assert early(at("scores.zarr"), at("new.csv")) is None and early(at("taken.csv"), at("stats.csv")) is None
    assert "lies inside --output" in library(at("scores.zarr"), at("scores.zarr/x.csv"))
    refuse_existing_local_outputs((at("stats.csv"),), overwrite=False, inputs=("s3://bucket/in.npz",))
    refuse_existing_local_outputs((at("stats.csv"),), overwrite=True)
