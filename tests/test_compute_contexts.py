"""Progress and scheduler contexts, the one compute gateway, and the lazy estimator."""

from __future__ import annotations

import ast
import sys
import threading
import time
import types
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from click.testing import CliRunner
from test_estimate import SMALL, check_against_reference, make_records

import memoxr
from memoxr.compute.progress import compute, progress, progress_shown
from memoxr.compute.scheduler import rechunk, scheduler_without_client, use_scheduler
from memoxr.estimate import DegenerateSampleWarning, estimate, write_trials

ROOT = Path(__file__).resolve().parent.parent


def _slow_sum(n_chunks: int = 4, seconds: float = 0.05) -> da.Array:
    def slow(block):
        time.sleep(seconds)
        return block

    return da.ones(n_chunks * 2, chunks=2).map_blocks(slow, dtype=float).sum()


# ------------------------------------------------------------------------------------------------
# progress()


def test_progress_bar_on_stderr_inside_the_block_only(capsys):
    assert float(compute(_slow_sum())[0]) == 8.0
    assert "100%" not in capsys.readouterr().err
    with progress(minimum=0):
        assert progress_shown()
        assert float(compute(_slow_sum())[0]) == 8.0
        assert int(_slow_sum().compute()) == 8  # any computation inside, not only the gateway's
    captured = capsys.readouterr()
    assert captured.err.count("100% Completed") == 2 and "100%" not in captured.out
    assert not progress_shown()
    compute(_slow_sum())
    assert capsys.readouterr().err == ""


def test_nested_progress_draws_one_bar_and_false_does_not_silence(capsys):
    with progress(minimum=0):
        with progress(minimum=0), progress(False):
            assert progress_shown()
            compute(_slow_sum())
        assert progress_shown()  # the inner block's exit leaves the outer one on
        compute(_slow_sum())
    assert not progress_shown()
    assert capsys.readouterr().err.count("100% Completed") == 2  # one bar per computation, not one per block


def test_memoxr_progress_is_the_context(capsys):
    import memoxr

    assert memoxr.progress is progress and "progress" in memoxr.__all__
    with memoxr.progress(minimum=0):
        compute(_slow_sum())
    assert "100% Completed" in capsys.readouterr().err


def test_progress_false_alone_shows_nothing(capsys):
    with progress(False):
        assert not progress_shown()
        compute(_slow_sum())
    assert capsys.readouterr().err == ""


def test_show_progress_is_deprecated_and_enters_the_context(capsys):
    records = make_records()
    with pytest.warns(DeprecationWarning, match="estimate: show_progress is deprecated"):
        ds = estimate(records, show_progress=True)
    check_against_reference(ds, records)  # the old keyword still works, same numbers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not given: no warning
        estimate(records)
    scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    with pytest.warns(DeprecationWarning, match="class_stats: show_progress is deprecated"):
        assert len(memoxr.class_stats(scores, show_progress=True)) == 10


# ------------------------------------------------------------------------------------------------
# use_scheduler()


def _threads_used(work: da.Array) -> set[str]:
    seen: set[str] = set()

    def record(block):
        seen.add(threading.current_thread().name)
        time.sleep(0.01)
        return block

    compute(work.map_blocks(record, dtype=work.dtype).sum())
    return seen


def test_use_scheduler_chooses_the_local_scheduler():
    work = da.ones(8, chunks=1)
    with use_scheduler("synchronous"):
        assert _threads_used(work) == {threading.current_thread().name}
    with use_scheduler("threads"):
        assert _threads_used(work) - {threading.current_thread().name}  # a pool's threads


def test_a_local_scheduler_is_named_only_when_no_client_can_exist(monkeypatch):
    x = da.ones(4, chunks=2)
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    with dask.config.set(scheduler=None):
        assert scheduler_without_client([x, x + 1]) is dask.threaded.get  # what dask falls back to
        assert scheduler_without_client([]) is None
    with dask.config.set(scheduler="synchronous"):  # configured: dask's own choice
        assert scheduler_without_client([x]) is None
    with dask.config.set(get=dask.threaded.get):  # dask's removed option: dask raises, not memoxr
        assert scheduler_without_client([x]) is None
    with dask.config.set(scheduler=None):
        monkeypatch.setitem(sys.modules, "distributed", types.ModuleType("distributed"))  # a client may exist
        assert scheduler_without_client([x]) is None


def test_rechunk_names_tasks_only_when_no_client_can_exist(monkeypatch):
    methods = []
    original = da.Array.rechunk

    def recorded(self, chunks="auto", *args, method=None, **kwargs):
        methods.append(method)
        return original(self, chunks, *args, method=method, **kwargs)

    monkeypatch.setattr(da.Array, "rechunk", recorded)
    x = da.arange(6, chunks=2)
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    assert rechunk(x, 3).chunks == ((3, 3),)
    with dask.config.set({"array.rechunk.method": "tasks"}):  # configured: dask reads it itself
        rechunk(x, 3)
    monkeypatch.setitem(sys.modules, "distributed", types.ModuleType("distributed"))
    assert rechunk(x, 3).compute().tolist() == list(range(6))
    assert methods == ["tasks", None, None]


def test_progress_on_a_distributed_cluster(capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster, use_scheduler(cluster.scheduler_address) as client:
        assert client is not None
        assert float(compute(_slow_sum())[0]) == 8.0
        assert "100% Completed" not in capsys.readouterr().err
        with progress():
            assert float(compute(_slow_sum())[0]) == 8.0
        captured = capsys.readouterr()
        assert "100% Completed" in captured.err and "100% Completed" not in captured.out


def test_cli_enters_progress_unless_quiet_and_applies_the_scheduler(tmp_path, monkeypatch):
    from memoxr.cli import main
    from memoxr.estimate import incremental

    seen = []

    def spy(trials, output, **kwargs):
        seen.append((progress_shown(), dask.config.get("scheduler")))
        return output

    monkeypatch.setattr(incremental, "write_or_append_estimate", spy)
    trials = write_trials(make_records(), tmp_path / "t.npz")
    runner = CliRunner()
    for args in ([], ["-q"]):
        result = runner.invoke(main, ["estimate", str(trials), str(tmp_path / "e.zarr"), "--scheduler", "synchronous", *args])
        assert result.exit_code == 0, result.output
    assert [shown for shown, _ in seen] == [True, False]
    assert all(getattr(scheduler, "__name__", "") == "get_sync" for _, scheduler in seen)


# ------------------------------------------------------------------------------------------------
# estimate() is lazy


def _count_zarr_chunk_reads(monkeypatch) -> list[str]:
    from zarr.storage import LocalStore

    reads: list[str] = []
    real = LocalStore.get

    async def counting(self, key, *args, **kwargs):
        if "/c/" in key or key.startswith("c/"):
            reads.append(key)
        return await real(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", counting)
    return reads


def test_estimate_reads_no_record_chunk_before_compute_zarr(tmp_path, monkeypatch):
    records = make_records(n_trials=40, n_train=31, n_test=19)
    trials = write_trials(records, tmp_path / "t.zarr")
    reads = _count_zarr_chunk_reads(monkeypatch)
    ds = estimate(trials, **SMALL)
    read_before = {key.split("/")[0] for key in reads}
    assert read_before <= {"tr_labels", "tt_labels"}, read_before  # the labels lay out the classes
    assert not any(key.split("/")[0] in ("mask", "train_correct", "test_correct") for key in reads)
    (computed,) = compute(ds)
    assert {key.split("/")[0] for key in reads} >= {"mask", "train_correct", "test_correct"}
    check_against_reference(computed, records)


def test_writing_an_estimate_store_reads_each_record_chunk_once(tmp_path, monkeypatch):
    import collections

    import xarray as xr
    import zarr

    from memoxr import open_influence
    from memoxr.estimate import TRIAL_VARIABLES, estimate_to_zarr

    records = make_records(n_trials=40, n_train=31, n_test=19)
    trials = tmp_path / "t.zarr"
    xr.Dataset({k: (TRIAL_VARIABLES[k], v) for k, v in records.items()}).chunk({"trial": 10}).to_zarr(
        trials, consolidated=False
    )
    n_chunks = {key: zarr.open_array(trials / key).nchunks for key in ("mask", "train_correct", "test_correct")}
    assert min(n_chunks.values()) == 4
    reads = _count_zarr_chunk_reads(monkeypatch)
    out = estimate_to_zarr(trials, tmp_path / "e.zarr", **SMALL)
    per_key = collections.Counter(key.split("/")[0] for key in reads)
    # One graph: the per-sample sums share the products' reads (the eager estimator read mask and
    # test_correct twice, once to validate and sum them, once for the products).
    assert {key: per_key[key] for key in n_chunks} == n_chunks
    check_against_reference(open_influence(out).load(), records)


def test_estimate_reads_no_npz_record_before_compute(tmp_path, monkeypatch):
    from memoxr.io.npz import CheckedNpz

    records = make_records(n_trials=30, n_train=23, n_test=11, seed=2)
    trials = write_trials(records, tmp_path / "t.npz")
    members: list[str] = []
    real = CheckedNpz.__getitem__

    def counting(self, key):
        members.append(key)
        return real(self, key)

    monkeypatch.setattr(CheckedNpz, "__getitem__", counting)
    ds = estimate(trials, **SMALL)
    assert set(members) == {"tr_labels", "tt_labels"}
    (computed,) = compute(ds)
    assert {"mask", "train_correct", "test_correct"} <= set(members)
    check_against_reference(computed, records)


def test_bad_values_and_degenerate_samples_surface_when_computed():
    records = make_records()
    records["train_correct"] = records["train_correct"].copy()
    records["train_correct"][7, 3] = 5
    ds = estimate(records, **SMALL)  # no error yet: values are not read
    from memoxr.errors import MemoxrInputError

    with pytest.raises(MemoxrInputError, match=r"key 'train_correct': expected 0/1 values, received 5 at trial 7, sample 3"):
        compute(ds["tr_mem"])
    records = make_records()
    records["mask"] = records["mask"].copy()
    records["mask"][:, 2] = True
    ds = estimate(records, **SMALL)
    with pytest.warns(DegenerateSampleWarning, match=r"1 train sample\(s\) are in every trial's subset"):
        (mem,) = compute(ds["tr_mem"])
    assert np.isnan(mem.values[2]) and np.isfinite(np.delete(mem.values, 2)).all()


# ------------------------------------------------------------------------------------------------
# Every computation goes through the gateway

GATEWAY = "memoxr/compute/progress.py"
#: Computations allowed outside the gateway, each with its reason.
EXEMPT = {
    "memoxr/compute/plan.py": "counts a graph's tasks with a scheduler that runs nothing",
}
EXEMPT_FOLDERS = ("memoxr/benchmarks/",)  # scripts that time bare dask on purpose


def direct_computations(source: str) -> list[tuple[int, str]]:
    """Lines of ``source`` calling ``.compute()``, ``.persist()``, ``.load()``, ``dask.compute`` or importing them from dask.

    ``progress.compute(...)`` (the gateway reached through its module) is not one.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("compute", "persist", "load"):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name != "progress" and not (node.func.attr == "load" and name in ("np", "numpy", "json")):
                found.append((node.lineno, ast.unparse(node.func)))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dask":
            found.extend((node.lineno, f"from {node.module} import {a.name}") for a in node.names if a.name in ("compute", "persist"))
    return found


def test_the_scan_finds_every_form():
    code = (
        "import dask\nfrom dask import compute\nx.compute()\ndask.compute(a, b)\ny.persist()\n"
        "client.compute(f)\nfrom memoxr.compute.progress import compute\ncompute(x)\nprogress.compute(x)\nds.load()\nnp.load(f)\n"
    )
    assert [line for line, _ in direct_computations(code)] == [2, 3, 4, 5, 6, 10]


def test_no_computation_outside_the_gateway():
    offenders = []
    for folder in ("memoxr", "convert"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name == GATEWAY or name in EXEMPT or name.startswith(EXEMPT_FOLDERS):
                continue
            offenders += [f"{name}:{line}: {what}" for line, what in direct_computations(path.read_text())]
    assert not offenders, "compute through memoxr.compute.progress.compute instead:\n" + "\n".join(offenders)


def test_the_exemptions_are_real():
    for name in [GATEWAY, *EXEMPT]:
        assert direct_computations((ROOT / name).read_text()), f"{name} computes nothing: drop its exemption"
