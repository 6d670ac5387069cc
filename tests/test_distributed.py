"""The same work on a distributed.LocalCluster with two worker processes equals the threaded result."""

from __future__ import annotations

import dask
import distributed
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.compute.scheduler import SCHEDULER_ENV, current_client, use_scheduler
from memoxr.convert import convert_npz

from conftest import SMALL_CHUNKS


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="2GiB"
    ) as cluster:
        yield cluster


def _threaded(func):
    with use_scheduler("threads"):
        return func()


def _on_cluster(cluster, func):
    with use_scheduler(cluster.scheduler_address) as client:
        assert current_client() is client
        assert len(client.scheduler_info()["workers"]) == 2
        return func()


def test_scores_and_table_on_the_cluster(cluster, ragged_store):
    def work():
        scores = memoxr.influence_scores(memoxr.open_influence(ragged_store))
        with memoxr.progress():
            return memoxr.class_stats(scores), memoxr.compute.progress.compute(scores)[0]

    table_threads, scores_threads = _threaded(work)
    table_cluster, scores_cluster = _on_cluster(cluster, work)
    pd.testing.assert_frame_equal(table_cluster, table_threads)
    xr.testing.assert_identical(scores_cluster, scores_threads)


def test_conversion_written_by_the_cluster(cluster, tmp_path, ragged_npz, ragged_store):
    out = tmp_path / "cluster.zarr"
    _on_cluster(cluster, lambda: convert_npz(ragged_npz, out, chunks=SMALL_CHUNKS))
    xr.testing.assert_identical(memoxr.open_influence(out).load(), memoxr.open_influence(ragged_store).load())


def test_estimator_on_the_cluster(cluster):
    from memoxr.estimate import estimate

    rng = np.random.default_rng(3)
    n_trials, n_train, n_test = 60, 29, 17
    mask = rng.random((n_trials, n_train)) < 0.7
    mask[0], mask[1] = True, False
    records = {
        "mask": mask,
        "train_correct": rng.random((n_trials, n_train)) < 0.8,
        "test_correct": rng.random((n_trials, n_test)) < 0.6,
        "tr_labels": rng.permutation(np.arange(n_train) % 3),
        "tt_labels": rng.permutation(np.arange(n_test) % 3),
    }

    def work():
        return estimate(records, chunk_mb=0.0005).compute()

    xr.testing.assert_allclose(_on_cluster(cluster, work), _threaded(work))


def test_proxies_on_the_cluster(cluster):
    from memoxr.dynamics import compute_proxies
    from memoxr.dynamics.demo import sample_dataset

    ds = sample_dataset().chunk({"epoch": 7, "train_id": 500})

    def work():
        return compute_proxies(ds).compute()

    xr.testing.assert_allclose(_on_cluster(cluster, work), _threaded(work))


def test_a_default_client_of_the_users_gets_the_work(cluster, ragged_npz):
    # A Client made the usual way (no use_scheduler): dask's own lookup must still find it, so
    # memoxr names a local scheduler only while distributed is not imported at all.
    def work():
        ds = memoxr.open_influence(ragged_npz, chunks=SMALL_CHUNKS)  # several blocks: the scores rechunk
        return memoxr.class_stats(memoxr.influence_scores(ds))

    threaded = _threaded(work)
    with distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            on_cluster = work()
        assert len(stream.data) > 0  # the tasks ran on the cluster's workers
        pd.testing.assert_frame_equal(on_cluster, threaded)
        # No scheduler configured, distributed imported: dask's own lookup finds the client.
        with dask.config.set(scheduler=None), distributed.get_task_stream(client) as stream:
            again = work()
        assert len(stream.data) > 0
        pd.testing.assert_frame_equal(again, threaded)


def test_scheduler_flag_and_environment(cluster, tmp_path, ragged_store, monkeypatch):
    runner = CliRunner()
    args = ["calculate", "--input", ragged_store, "--stats-csv", str(tmp_path / "a.csv"), "-q"]
    result = runner.invoke(main, [*args, "--scheduler", cluster.scheduler_address], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    args[4] = str(tmp_path / "b.csv")
    assert runner.invoke(main, args, catch_exceptions=False).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


def test_unreachable_scheduler_exits_2(ragged_store):
    result = CliRunner().invoke(main, ["calculate", "--input", ragged_store, "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "scheduler 'tcp://127.0.0.1:1': expected one of ['threads', 'processes', 'synchronous']" in result.stderr
