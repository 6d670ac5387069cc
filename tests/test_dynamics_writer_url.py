"""DynamicsWriter on an fsspec URL: moto's S3 server (started by test_s3's fixtures), complete or absent, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import s3fs
import xarray as xr
from test_s3 import bucket, options, s3_endpoint  # noqa: F401 (fixtures)

from memoxr.dynamics import DynamicsWriter, open_dynamics
from memoxr.dynamics.schema import COMPLETION_VAR, DYNAMICS_SCHEMA
from memoxr.errors import IncompleteStoreError, MemoxrInputError
from memoxr.io.storage import write_dataset

N, T = 12, 4
RUNS = {"seed": [0, 1]}


def _values(epoch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 * seed + epoch)
    return {"loss": rng.random(N).astype(np.float32), "correct": rng.random(N) < 0.5}


def _record(path, *, storage_options=None, epochs=range(T)) -> DynamicsWriter:
    w = DynamicsWriter(path, samples=np.arange(40, 40 + N), epochs=T, variables={"loss": "float32", "correct": "bool"},
                       runs=RUNS, truth={"is_mislabeled": np.arange(N) % 4 == 0}, sample_order="tfds",
                       sample_chunk=5, storage_options=storage_options)
    for seed in RUNS["seed"]:
        for epoch in epochs:
            v = _values(epoch, seed)
            if epoch == 1:  # by batches, out of order
                for idx in (np.arange(6, N), np.arange(6)):
                    w.write_batch(epoch, idx, run={"seed": seed}, loss=v["loss"][idx], correct=v["correct"][idx])
                w.finish_epoch(epoch, run={"seed": seed})
            else:
                w.write_epoch(epoch, run={"seed": seed}, **v)
    return w


def test_writer_on_s3_equals_local_and_resumes(tmp_path, bucket, options):  # noqa: F811
    url = f"s3://{bucket}/runs/dyn.zarr"
    _record(url, storage_options=options, epochs=range(3))  # the 4th epoch still to come
    remote = open_dynamics(url, storage_options=options)
    assert remote["loss"].dims == ("seed", "epoch", "train_id") and remote.sizes["epoch"] == 3
    resumed = DynamicsWriter(url, storage_options=options)
    assert resumed.pending_epochs(run={"seed": 0}) == [3] and resumed.completed_epochs(run={"seed": 1}) == [0, 1, 2]
    for seed in RUNS["seed"]:
        resumed.write_epoch(3, run={"seed": seed}, **_values(3, seed))
    _record(tmp_path / "dyn.zarr")
    local = open_dynamics(tmp_path / "dyn.zarr").load()
    remote = open_dynamics(url, storage_options=options).load()
    xr.testing.assert_identical(remote.drop_attrs(), local.drop_attrs())
    np.testing.assert_array_equal(remote["loss"].sel(seed=1, epoch=1).values, _values(1, 1)["loss"])
    root = json.loads(s3fs.S3FileSystem(**options, skip_instance_cache=True).cat_file(f"{bucket}/runs/dyn.zarr/zarr.json"))
    assert root["attributes"]["schema"] == DYNAMICS_SCHEMA and root["attributes"]["memoxr_complete"] is True


def test_writer_on_s3_complete_or_absent(bucket, options):  # noqa: F811
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    url = f"s3://{bucket}/d.zarr"
    # A writer killed while creating: memoxr's root, no completion marker. Refused on open, replaced by a rerun.
    fs.pipe_file(f"{bucket}/d.zarr/zarr.json", json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {"schema": DYNAMICS_SCHEMA}}).encode())
    with pytest.raises(IncompleteStoreError, match="incomplete"):
        open_dynamics(url, storage_options=options)
    w = DynamicsWriter(url, samples=N, epochs=2, variables={"loss": "float32"}, storage_options=options)
    assert w.pending_epochs() == [0, 1]
    with pytest.raises(MemoxrInputError, match="samples: the store .* holds 12; received 5"):
        DynamicsWriter(url, samples=5, storage_options=options)
    w2 = DynamicsWriter(url, samples=3, epochs=1, variables={"loss": "float32"}, overwrite=True, storage_options=options)
    assert w2.pending_epochs() == [0] and open_dynamics(url, storage_options=options).sizes["train_id"] == 3
    # A store memoxr did not write is never resumed nor replaced (without overwrite).
    fs.pipe_file(f"{bucket}/other.zarr/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(IncompleteStoreError, match="not written by memoxr"):
        DynamicsWriter(f"s3://{bucket}/other.zarr", samples=3, epochs=1, variables={"loss": "f4"},
                       storage_options=options)
    assert fs.cat_file(f"{bucket}/other.zarr/zarr.json").endswith(b'"attributes": {}}')
    # Nor a non-store prefix with overwrite.
    fs.pipe_file(f"{bucket}/notes/readme.txt", b"mine")
    with pytest.raises(MemoxrInputError, match="not a Zarr store"):
        DynamicsWriter(f"s3://{bucket}/notes", samples=3, epochs=1, variables={"loss": "f4"}, overwrite=True,
                       storage_options=options)
    assert fs.cat_file(f"{bucket}/notes/readme.txt") == b"mine"


def test_old_writer_store_with_sample_dim_resumes(tmp_path):
    """A store written before train_id (dim ``sample``) is resumed as it is and opens with ``train_id``."""
    old = xr.Dataset(
        {"loss": (("epoch", "sample"), np.zeros((2, 3), dtype=np.float32)),
         COMPLETION_VAR: ("epoch", np.array([1, 0], dtype=np.uint8))},
        coords={"epoch": [0, 1], "sample": [7, 8, 9]},
        attrs={"schema": DYNAMICS_SCHEMA, "schema_version": 1, "sample_order": "x"},
    )
    write_dataset(old, tmp_path / "old.zarr")
    w = DynamicsWriter(tmp_path / "old.zarr", samples=[7, 8, 9])
    assert w.pending_epochs() == [1]
    w.write_epoch(1, loss=np.array([1.0, 2.0, 3.0]))
    ds = open_dynamics(tmp_path / "old.zarr")
    assert ds["loss"].dims == ("epoch", "train_id") and ds["train_id"].values.tolist() == [7, 8, 9]
    assert ds["loss"].sel(epoch=1).values.tolist() == [1.0, 2.0, 3.0]


def test_library_forms_of_evaluate_and_compare_reach_s3_with_storage_options(tmp_path, bucket, options):  # noqa: F811
    # evaluate_store and compare_report resolve every path (inputs and the CSV) with storage_options.
    import pandas as pd

    from memoxr.dynamics.demo import sample_dataset
    from memoxr.dynamics.report import evaluate_store
    from memoxr.importers.report import compare_report
    from memoxr.io.location import Location

    store, local = f"s3://{bucket}/dyn.zarr", tmp_path / "dyn.zarr"
    write_dataset(sample_dataset(), store, storage_options=options)
    write_dataset(sample_dataset(), local)
    remote_csv = f"s3://{bucket}/auroc.csv"
    table = evaluate_store(store, proxies=["csl"], mask="is_mislabeled", output=remote_csv, storage_options=options)
    expected = evaluate_store(local, proxies=["csl"], mask="is_mislabeled")
    pd.testing.assert_frame_equal(table, expected)
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    with fs.open(remote_csv) as f:
        assert len(pd.read_csv(f)) == len(table)
    compared = compare_report([store], mask="is_mislabeled", output=f"s3://{bucket}/compare.csv",
                              storage_options=options)
    with fs.open(f"s3://{bucket}/compare.csv") as f:
        assert pd.read_csv(f)["auroc"].round(12).tolist() == compared["auroc"].round(12).tolist()
    # A Location resolved with these options may meet them again; other options are refused.
    location = Location.of(store, options)
    assert Location.of(location, options) is location
    with pytest.raises(MemoxrInputError, match="carries its own options"):
        Location.of(location, {**options, "key": "other"})
