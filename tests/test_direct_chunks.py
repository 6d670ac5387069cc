"""Local stores' chunks read straight from their files (memoxr/io/direct_chunks.py) equal zarr's reads."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numcodecs import Blosc
from zarr.codecs import BloscCodec

import memoxr
from memoxr.errors import MemoxrInputError
from memoxr.io import direct_chunks
from memoxr.io.storage import open_dataset, write_dataset

from conftest import CountingStore


def _direct(array) -> bool:
    return any(name.startswith("read-") for name in array.data.dask.layers)


def _zarr_values(store, name):
    return zarr.open_array(str(Path(store) / name), mode="r")[...]


def test_influence_store_reads_directly_and_equals_zarr(ragged_store):
    ds = memoxr.open_influence(ragged_store)
    assert _direct(ds["influence"]) and _direct(ds["memorization"])
    assert all(len(c) > 1 for c in ds["influence"].chunks)  # several chunks on every dim,
    assert ds["influence"].chunks[-1][-1] < ds["influence"].chunks[-1][0]  # the last cut at the edge
    for name in ("influence", "memorization"):
        np.testing.assert_array_equal(ds[name].values, _zarr_values(ragged_store, name))
    assert ds["influence"].encoding["chunks"] == tuple(c[0] for c in ds["influence"].chunks)


def test_a_store_filled_in_place_reads_directly_under_new_keys_as_it_grows(tmp_path):
    # Blosc float chunks are read directly; in a store a writer fills in place (attrs["writer"]) their
    # keys must change with its files, as xarray's do (memoxr/io/storage.py), and stay put otherwise.
    path = tmp_path / "filled.zarr"
    ds = xr.Dataset({"loss": (("epoch", "sample"), np.full((2, 3), np.nan, dtype=np.float32))},
                    attrs={"writer": "a test"})
    write_dataset(ds, path, encoding={"loss": {"chunks": (1, 3), "compressors": [BloscCodec(cname="lz4")],
                                               "fill_value": np.nan}})
    before = open_dataset(path)["loss"]
    assert _direct(before) and open_dataset(path)["loss"].data.name == before.data.name
    zarr.open_array(str(path / "loss"), mode="r+")[1] = [1, 2, 3]  # the second epoch lands
    after = open_dataset(path)["loss"]
    assert _direct(after) and after.data.name != before.data.name
    np.testing.assert_array_equal(after.values[1], [1, 2, 3])


def test_scores_are_the_same_through_zarr_and_directly(ragged_store):
    direct = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    wrapped = memoxr.open_influence(CountingStore(zarr.storage.LocalStore(ragged_store, read_only=True)))
    assert not _direct(wrapped["influence"])
    via_zarr = memoxr.class_stats(memoxr.influence_scores(wrapped))
    import pandas as pd

    pd.testing.assert_frame_equal(direct, via_zarr, check_exact=True)


def test_scores_and_stats_read_each_chunk_file_once(ragged_store, monkeypatch):
    reads: Counter[str] = Counter()
    read = direct_chunks.read_chunk

    def counting(path, *args):
        reads[path] += 1
        return read(path, *args)

    monkeypatch.setattr(direct_chunks, "read_chunk", counting)
    ds = memoxr.open_influence(ragged_store)
    memoxr.class_stats(memoxr.influence_scores(ds))
    influence = {p: n for p, n in reads.items() if "/influence/" in p}
    assert len(influence) == int(np.prod([len(c) for c in ds["influence"].chunks]))
    assert set(influence.values()) == {1}


def test_chunks_the_caller_chose_and_integers_are_not_read_directly(ragged_store):
    ds = open_dataset(ragged_store, chunks={"class": 6})
    assert not _direct(ds["influence"])
    np.testing.assert_array_equal(ds["influence"].values, _zarr_values(ragged_store, "influence"))
    assert not _direct(open_dataset(ragged_store)["train_count"])


def test_a_relative_store_path_still_reads_after_a_chdir(ragged_store, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(ragged_store).parent)
    ds = open_dataset(Path(ragged_store).name)
    assert _direct(ds["influence"])
    monkeypatch.chdir(tmp_path.parent)
    np.testing.assert_array_equal(ds["influence"].values, _zarr_values(ragged_store, "influence"))


def test_values_xarray_masks_or_scales_stay_on_zarrs_path(tmp_path):
    values = np.array([1.0, -9.0, 3.0, np.nan, 5.0])
    blosc = (BloscCodec(cname="lz4", shuffle="noshuffle"),)
    encoding = {name: {"chunks": (2,), "fill_value": np.nan, "compressors": blosc} for name in ("masked", "scaled", "plain")}
    ds = xr.Dataset({
        "masked": ("i", values, {"missing_value": -9.0}),
        "scaled": ("i", values, {"scale_factor": 2.0}),
        "plain": ("i", values),
    })
    store = tmp_path / "cf.zarr"
    write_dataset(ds, store, encoding=encoding)
    opened, expected = open_dataset(store), xr.open_zarr(store)
    assert _direct(opened["plain"]) and not _direct(opened["masked"]) and not _direct(opened["scaled"])
    for name in ("masked", "scaled", "plain"):
        np.testing.assert_array_equal(opened[name].values, expected[name].values)
    assert np.isnan(opened["masked"].values[1])


def test_a_chunk_zarr_never_wrote_is_nan_as_zarr_gives_it(ragged_store, tmp_path):
    store = tmp_path / "missing.zarr"
    shutil.copytree(ragged_store, store)
    (store / "influence" / "c" / "1" / "0" / "1").unlink()
    ds = open_dataset(store)
    assert _direct(ds["influence"])
    values = ds["influence"].values
    np.testing.assert_array_equal(values, _zarr_values(store, "influence"))
    assert np.isnan(values[2:4, 0:4, 3:6]).all()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda b: b[: len(b) // 2], "the file holds"),
        (lambda b: b[:10], "shorter than a Blosc header"),
    ],
    ids=["truncated", "header-only"],
)
def test_a_damaged_chunk_names_variable_chunk_and_object(ragged_store, tmp_path, damage, says):
    store = tmp_path / "damaged.zarr"
    shutil.copytree(ragged_store, store)
    chunk = store / "influence" / "c" / "0" / "1" / "0"
    chunk.write_bytes(damage(chunk.read_bytes()))
    ds = open_dataset(store)
    with pytest.raises(MemoxrInputError, match=says) as info:
        memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(store)))
    assert "variable 'influence', chunk (0, 1, 0) (object 'c/0/1/0')" in str(info.value)
    assert "write it again" in str(info.value)
    with pytest.raises(MemoxrInputError, match="chunk \\(0, 1, 0\\)"):
        ds["influence"].values  # noqa: B018 (a plain xarray read names it too)


def test_a_chunk_that_cannot_be_read_is_named(ragged_store, tmp_path):
    store = tmp_path / "folder.zarr"
    shutil.copytree(ragged_store, store)
    chunk = store / "influence" / "c" / "2" / "0" / "0"
    chunk.unlink()
    chunk.mkdir()
    with pytest.raises(MemoxrInputError, match=r"chunk \(2, 0, 0\) \(object 'c/2/0/0'\) could not be read \(IsADirectoryError"):
        open_dataset(store)["influence"].values  # noqa: B018


def test_a_frame_lz4_cannot_decode_or_of_the_wrong_size_is_refused(tmp_path):
    values = np.repeat(np.arange(100, dtype=np.float32), 50)  # compressible: LZ4 blocks, not a copy
    frame = Blosc(cname="lz4", clevel=5, shuffle=Blosc.NOSHUFFLE).encode(values)
    path = tmp_path / "chunk"
    path.write_bytes(frame)
    where = ("s.zarr", "x", (0,), "c/0")
    np.testing.assert_array_equal(direct_chunks.read_chunk(str(path), (5000,), (5000,), "<f4", where), values)
    with pytest.raises(MemoxrInputError, match="announces 20000 decoded bytes, a chunk holds 20004"):
        direct_chunks.read_chunk(str(path), (5001,), (5001,), "<f4", where)
    path.write_bytes(frame[:16] + b"\xff" * (len(frame) - 16))
    with pytest.raises(MemoxrInputError, match=r"variable 'x', chunk \(0,\) \(object 'c/0'\) could not be decoded \(RuntimeError"):
        direct_chunks.read_chunk(str(path), (5000,), (5000,), "<f4", where)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    data=st.data(),
    dtype=st.sampled_from(["float32", "float64"]),
    shuffle=st.sampled_from(["noshuffle", "shuffle", "bitshuffle"]),
)
def test_any_regular_grid_reads_as_zarr_does(tmp_path_factory, shape, data, dtype, shuffle):
    chunks = tuple(data.draw(st.integers(1, n)) for n in shape)
    rng = np.random.default_rng(len(shape))
    values = rng.standard_normal(shape).astype(dtype)
    values[rng.random(shape) < 0.2] = np.nan
    dims = [f"d{i}" for i in range(len(shape))]
    store = tmp_path_factory.mktemp("grid") / "x.zarr"
    encoding = {"x": {"chunks": chunks, "compressors": (BloscCodec(cname="lz4", shuffle=shuffle),), "fill_value": np.nan}}
    write_dataset(xr.Dataset({"x": (dims, values)}), store, encoding=encoding)
    ds = open_dataset(store)
    assert _direct(ds["x"])
    assert ds["x"].chunks == tuple(tuple(min(c, n - s) for s in range(0, n, c)) for n, c in zip(shape, chunks, strict=True))
    np.testing.assert_array_equal(ds["x"].values, values)
