"""Cost plans (``--dry-run``): figures from metadata, checked against the store and a real run."""

from __future__ import annotations

import math
import os
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback

import memoxr
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.dynamics.plan import plan_ingest
from memoxr.estimate.plan import plan_estimate
from memoxr.influence.plan import plan_calculate, plan_pairs

from conftest import write_npz


def _chunk_files(store: str) -> list[Path]:
    return [p for p in Path(store, "influence").rglob("*") if p.is_file() and p.name != "zarr.json"]


def test_plan_figures_match_the_store(ragged_store):
    plan = plan_calculate(ragged_store, threads=3)
    array = zarr.open_group(ragged_store, mode="r")["influence"]
    expected_chunks = math.prod(math.ceil(n / c) for n, c in zip(array.shape, array.chunks, strict=True))
    assert plan.n_chunks == expected_chunks > 8  # several chunks on every dim
    assert plan.shape == array.shape and plan.chunk_shape == array.chunks
    assert plan.bytes_to_read == sum(p.stat().st_size for p in _chunk_files(ragged_store))
    assert plan.uncompressed_bytes == math.prod(array.shape) * 4
    chunk_bytes = math.prod(array.chunks) * 4
    # Read straight from the chunk files: one decoded copy per task, plus the stored bytes.
    assert plan.per_task_bytes == chunk_bytes + min(math.ceil(plan.bytes_to_read / plan.n_chunks), chunk_bytes)
    assert any("straight from their files" in note for note in plan.notes)
    # Scores and moments (11 float64 per sample), and each further test chunk's partial moments (4).
    test_chunks = math.ceil(array.shape[2] / array.chunks[2])
    assert test_chunks > 1
    assert plan.resident_bytes == (11 + 4 * (test_chunks - 1)) * 8 * array.shape[0] * array.shape[1]
    assert plan.peak_per_worker == 3 * plan.per_task_bytes + plan.resident_bytes


def test_plan_counts_the_tasks_the_run_executes(ragged_store):
    plan = plan_calculate(ragged_store)
    executed = []

    class Count(Callback):
        def _pretask(self, key, dask, state):
            executed.append(key)

    scores = memoxr.influence_scores(memoxr.open_influence(ragged_store))
    with Count():
        dask.compute(*[v.data for v in scores.data_vars.values() if v.chunks], scheduler="sync")
    assert plan.n_tasks == len(executed)


def test_plan_reads_no_data(ragged_store, tmp_path):
    """Every chunk deleted: the plan still works (it never read one), the real run fails."""
    for path in _chunk_files(ragged_store):
        path.unlink()
    plan = plan_calculate(ragged_store)
    assert plan.bytes_to_read == plan.uncompressed_bytes  # no listing left to size: assumed uncompressed
    assert any("unknown" in note for note in plan.notes)


def test_plan_of_an_npz(tmp_path):
    arrays = make_fz_arrays([30, 5, 17], [9, 4, 12], seed=3)
    npz = write_npz(tmp_path / "x.npz", arrays)
    plan = plan_calculate(npz, threads=1)
    assert plan.bytes_to_read == os.path.getsize(npz)
    assert plan.shape == (3, 30, 12)
    assert "npz" in str(plan)
    chunk_bytes = math.prod(plan.chunk_shape) * 4
    assert plan.per_task_bytes == 2 * chunk_bytes + min(math.ceil(plan.bytes_to_read / plan.n_chunks), chunk_bytes)
    assert not any("straight from their files" in note for note in plan.notes)


@pytest.mark.parametrize("test_chunk", [1000, 400, 100])
def test_predicted_peak_matches_a_traced_run(tmp_path, test_chunk):
    """The model against numpy's and Python's allocations in a real run, one task at a time: chunks
    read straight from their files, ragged classes, several chunks on every dimension but, for the
    first case, test samples in one chunk (the usual FZ layout). Tight up to a few test chunks; with
    many, the partial moments' term counts more than dask holds at once: an upper bound."""
    import tracemalloc

    from memoxr.convert import convert_npz
    from memoxr.io.chunks import BlockChunks

    arrays = make_fz_arrays([1000, 950, 880, 1000, 993, 800], [1000, 970, 1000, 900, 997, 1000], seed=1)
    npz = write_npz(tmp_path / "x.npz", arrays)
    store = convert_npz(npz, tmp_path / "x.zarr", chunks=BlockChunks(cls=2, train=500, test=test_chunk))
    plan = plan_calculate(store, threads=1)
    test_chunks = math.ceil(1000 / test_chunk)
    assert plan.n_chunks == 3 * 2 * test_chunks
    scores = memoxr.influence_scores(memoxr.open_influence(store))
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="synchronous"):
            memoxr.class_stats(scores.compute())
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ratio = traced / plan.peak_per_worker
    assert ratio <= 1.1, (ratio, plan)
    assert ratio >= (0.85 if test_chunks <= 3 else 0.3), (ratio, plan)


def test_plan_text_names_every_figure(balanced_store):
    text = str(plan_calculate(balanced_store, threads=2))
    for word in ("chunks:", "bytes to read:", "dask tasks:", "predicted peak memory per worker:", "2 thread(s)"):
        assert word in text


def test_plan_of_an_ingest(tmp_path):
    """Files sized from the listing; chunks as the written store has them; nothing written."""
    from memoxr.dynamics.store import ingest

    n, epochs = 40_000, 20  # 160 kB per epoch: six epochs per 1 MB chunk, four chunks per run
    for run in (0, 1):
        for epoch in range(epochs):
            np.save(tmp_path / f"loss_run{run}_epoch_{epoch}.npy", np.full(n, epoch + run, dtype=np.float32))
    pattern = str(tmp_path / "loss_run{run}_epoch_{epoch}.npy")
    plan = plan_ingest(pattern, chunk_mb=1, threads=1)
    assert plan.bytes_to_read == sum(p.stat().st_size for p in tmp_path.glob("*.npy"))
    assert not list(tmp_path.glob("*.zarr"))
    store = ingest(pattern, tmp_path / "d.zarr", chunk_mb=1)
    loss = zarr.open_group(str(store), mode="r")["loss"]
    assert plan.shape == loss.shape == (2, epochs, n)
    assert plan.chunk_shape == loss.chunks
    assert plan.n_chunks == math.prod(math.ceil(s / c) for s, c in zip(loss.shape, loss.chunks, strict=True)) == 8
    assert plan.per_task_bytes == 3 * math.prod(loss.chunks) * 4
    assert "40 files" in str(plan)


@pytest.mark.parametrize("min_mem", [0.0, 0.5, 2.0])
def test_plan_of_pairs_reads_only_chunks_with_memorized_rows(ragged_store, min_mem):
    plan = plan_pairs(ragged_store, min_infl=0.0, min_mem=min_mem, threads=1)
    ds = memoxr.open_influence(ragged_store)
    influence = ds["influence"].data
    memo = ds["memorization"].values
    # Independent: a chunk is read when some real row in it has memorization >= min_mem.
    c_bounds, i_bounds = (np.cumsum((0, *c)) for c in influence.chunks[:2])
    wanted_rows = sum(
        bool(np.any(memo[c_bounds[c]:c_bounds[c + 1], i_bounds[i]:i_bounds[i + 1]] >= min_mem))
        for c in range(len(c_bounds) - 1) for i in range(len(i_bounds) - 1)
    )
    test_index = ds["test_index"].values
    j_bounds = np.cumsum((0, *influence.chunks[2]))
    expected = sum(
        bool(np.any(memo[c_bounds[c]:c_bounds[c + 1], i_bounds[i]:i_bounds[i + 1]] >= min_mem))
        and bool(np.any(test_index[c_bounds[c]:c_bounds[c + 1], j_bounds[j]:j_bounds[j + 1]] >= 0))
        for c in range(len(c_bounds) - 1) for i in range(len(i_bounds) - 1) for j in range(len(j_bounds) - 1)
    )
    assert plan.n_chunks == expected
    assert (expected == 0) == (wanted_rows == 0)
    assert plan.bytes_to_read <= sum(p.stat().st_size for p in _chunk_files(ragged_store))
    assert f"{expected} of {influence.npartitions} chunks" in str(plan)
    assert "leaves out the pairs found" in str(plan)  # their number is not in the metadata


def test_pairs_dry_run_prints_the_plan_and_writes_nothing(ragged_store, tmp_path):
    from click.testing import CliRunner

    from memoxr.cli import main

    out = tmp_path / "pairs.csv"
    result = CliRunner().invoke(main, ["pairs", ragged_store, str(out), "--dry-run", "--min-mem", "0"])
    assert result.exit_code == 0, result.output
    assert "Plan for memoxr pairs" in result.output and "bytes to read" in result.output
    assert not out.exists() and not list(tmp_path.glob(".pairs.csv*"))


@pytest.mark.parametrize("kind", ["npz", "zarr"])
def test_plan_of_an_estimate(tmp_path, kind):
    from memoxr.estimate import write_trials

    rng = np.random.default_rng(1)
    trials, n_train, n_test = 40, 90, 30
    records = {"mask": rng.random((trials, n_train)) < 0.7, "train_correct": rng.random((trials, n_train)) < 0.9,
               "test_correct": rng.random((trials, n_test)) < 0.8, "tr_labels": rng.integers(0, 4, n_train),
               "tt_labels": rng.integers(0, 4, n_test)}
    path = Path(write_trials(records, tmp_path / f"trials.{kind}"))
    plan = plan_estimate(path, chunk_mb=1, threads=2)
    assert plan.shape == (trials, n_train) and plan.command == "estimate"
    stored = path.stat().st_size if kind == "npz" else sum(
        p.stat().st_size for key in ("mask", "train_correct", "test_correct")
        for p in (path / key).rglob("*") if p.is_file() and p.name != "zarr.json")
    assert plan.bytes_to_read == 2 * stored  # the validation pass, then the products
    assert plan.n_tasks > 0
    if kind == "npz":  # the records are loaded whole when estimating from an npz
        assert plan.resident_bytes >= 2 * trials * (2 * n_train + n_test)
    assert "4 classes" in str(plan)


def test_estimate_dry_run_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from memoxr.cli import main
    from memoxr.estimate import write_trials

    rng = np.random.default_rng(2)
    records = {"mask": rng.random((20, 30)) < 0.7, "train_correct": rng.random((20, 30)) < 0.9,
               "test_correct": rng.random((20, 10)) < 0.8, "tr_labels": rng.integers(0, 3, 30),
               "tt_labels": rng.integers(0, 3, 10)}
    trials = write_trials(records, tmp_path / "t.npz")
    result = CliRunner().invoke(main, ["estimate", str(trials), str(tmp_path / "e.zarr"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Plan for memoxr estimate" in result.output and "predicted peak memory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


def test_calculate_and_ingest_dry_runs_write_nothing(ragged_store, tmp_path):
    from click.testing import CliRunner

    from memoxr.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["calculate", "--input", ragged_store, "--output", str(tmp_path / "s.zarr"),
                                  "--stats-csv", str(tmp_path / "t.csv"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Plan for memoxr calculate" in result.output and "dask tasks" in result.output
    for epoch in range(3):
        np.save(tmp_path / f"loss_epoch_{epoch}.npy", np.zeros(5, np.float32))
    result = runner.invoke(main, ["ingest", "--input", str(tmp_path / "loss_epoch_{epoch}.npy"),
                                  "--output", str(tmp_path / "d.zarr"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Plan for memoxr ingest" in result.output and "3 files" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("loss_")) == ["ragged.npz", "ragged.zarr"]
