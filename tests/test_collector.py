"""The garbage collector over the command's start-up and exit (memoxr/compute/collector.py)."""

from __future__ import annotations

import gc
import importlib
import subprocess
import sys
from importlib.metadata import entry_points

import dask.array as da
import pytest
from click.testing import CliRunner

from memoxr.compute import collector
from memoxr.compute.progress import compute

cli = importlib.import_module("memoxr.cli.main")  # the module: `memoxr.cli.main` as an attribute is the command


def _collecting() -> bool:
    return gc.isenabled() and gc.get_threshold()[0] != 0


@pytest.fixture(autouse=True)
def _collector_as_found():
    found = gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()
    yield
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == found, "the collector was left changed"


def test_paused_until_the_first_computation_then_as_before():
    frozen = gc.get_freeze_count()
    with collector.paused_until_work():
        assert not _collecting()
        assert int(compute(da.ones(4, chunks=2).sum())[0]) == 4
        assert _collecting()
        assert gc.get_freeze_count() > frozen  # start-up's objects skipped by later collections
        collector.resume()  # a second computation changes nothing
        assert _collecting()
    assert gc.get_freeze_count() == frozen


def test_without_a_computation_the_pause_ends_with_the_block():
    with collector.paused_until_work():
        with collector.paused_until_work():  # nested: the outer pause is the one
            pass
        assert not _collecting()
    assert _collecting()


def test_a_pause_opened_after_resume_leaves_the_first_in_charge():
    with collector.paused_until_work():
        collector.resume()
        with collector.paused_until_work():  # the first is still open: this one changes nothing
            assert _collecting()
        assert _collecting() and gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_objects_the_host_froze_stay_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector.paused_until_work():
            assert not _collecting()
            collector.resume()
            assert _collecting() and gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("host", ["disabled", "threshold 0"])
def test_a_collector_the_host_turned_off_is_left_alone(host):
    saved = gc.get_threshold()
    gc.disable() if host == "disabled" else gc.set_threshold(0)
    try:
        with collector.paused_until_work():
            collector.resume()
            assert not _collecting() and gc.get_freeze_count() == 0
        assert not _collecting()
    finally:
        gc.enable()
        gc.set_threshold(*saved)


def test_resume_outside_a_pause_does_nothing():
    collector.resume()
    assert _collecting() and gc.get_freeze_count() == 0


def test_dask_imported_during_the_pause_collects_afterwards():
    """dask's ``disable_gc`` restores the gc.isenabled() it saw at import after every slice."""
    probe = ("import gc\nfrom memoxr.compute import collector\n"
             "with collector.paused_until_work():\n"
             "    import dask.array as da\n"
             "    collector.resume()\n"
             "    da.ones((6, 6), chunks=2)[1:5, 2].sum().compute()\n"
             "print(gc.isenabled(), gc.get_threshold()[0] > 0)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


def _collection_when_dask_imports(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    seen: list[bool] = []
    monkeypatch.setattr(cli, "import_dask_array_lean", lambda: seen.append(_collecting()))
    return seen


def test_calculate_imports_without_collection_and_computes_with_it(monkeypatch, tmp_path, ragged_store):
    at_import = _collection_when_dask_imports(monkeypatch)
    at_compute: list[bool] = []
    real_resume = collector.resume

    def resume() -> None:
        at_compute.append(_collecting())
        real_resume()

    monkeypatch.setattr(collector, "resume", resume)
    result = CliRunner().invoke(cli.main, ["calculate", "--input", str(ragged_store), "-q",
                                           "--stats-csv", str(tmp_path / "stats.csv")])
    assert result.exit_code == 0, result.output
    assert at_import == [False] and at_compute[0] is False and all(at_compute[1:])


def test_other_commands_collect_as_usual(monkeypatch):
    at_import = _collection_when_dask_imports(monkeypatch)
    result = CliRunner().invoke(cli.main, ["pairs", "--help"])
    assert result.exit_code == 0, result.output
    assert at_import == [True]


def test_commands_that_pause_exist():
    assert cli.COLLECTOR_PAUSED <= set(cli.main.list_commands(None))


def _freeze_count_at_exit(entry: str) -> int:
    probe = ("import atexit, gc, sys\n"
             "atexit.register(lambda: print(gc.get_freeze_count()))\n"  # registered first: runs last
             "sys.argv = ['memoxr', '--version']\n"
             f"from memoxr.cli.main import main, run\n{entry}\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


@pytest.mark.parametrize("entry", ["run()", "import runpy; runpy.run_module('memoxr', run_name='__main__')"])
def test_the_command_process_freezes_what_the_exit_would_scan(entry):
    assert _freeze_count_at_exit(entry) > 1000


def test_main_in_process_leaves_nothing_frozen_at_exit():
    assert _freeze_count_at_exit("main()") == 0


def test_the_console_script_is_the_process_entry():
    (script,) = entry_points(group="console_scripts", name="memoxr")
    assert script.value == "memoxr.cli.main:run"
