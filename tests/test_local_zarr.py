"""Local stores opened without zarr-python (memoxr/io/local_zarr.py) equal what zarr-python opens."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz
from memoxr.dynamics import DynamicsWriter
from memoxr.dynamics.demo import write_sample
from memoxr.errors import MemoxrInputError
from memoxr.io import local_zarr
from memoxr.io.local_zarr import LocalZarrBackend, read_local_metadata
from memoxr.io.location import Location
from memoxr.io.storage import _open_with_zarr, open_dataset

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")


def _normal(encoding: dict) -> dict:
    """An encoding with zarr-python's codec objects as their JSON dicts and NaN made comparable."""
    out = {}
    for key, value in encoding.items():
        if key == "compressors":
            value = tuple(c if isinstance(c, dict) else c.to_dict() for c in value)
        elif key == "serializer" and not isinstance(value, dict):
            value = value.to_dict()
        elif isinstance(value, float | np.floating) and math.isnan(value):
            value = "NaN"
        out[key] = value
    return out


def assert_same_as_zarr(store, ds: xr.Dataset | None = None) -> None:
    ds = open_dataset(store) if ds is None else ds
    via_zarr = _open_with_zarr(Location.of(str(store)), chunks=None)
    xr.testing.assert_identical(ds, via_zarr)
    assert ds.encoding == via_zarr.encoding
    assert list(ds.indexes) == list(via_zarr.indexes)
    for name, var in via_zarr.variables.items():
        assert ds[name].chunks == var.chunks, name
        assert type(ds[name].data) is type(var.data), name
        assert _normal(ds[name].encoding) == _normal(var.encoding), name


def _dynamics_writer_store(path: Path) -> Path:
    writer = DynamicsWriter(path, samples=np.arange(50, 56), epochs=4, variables={"loss": "float32", "correct": "bool"},
                            runs={"seed": [0, 1]}, truth={"is_mislabeled": np.arange(6) < 2}, sample_order="torchvision")
    for epoch in (0, 2):  # epochs 1 and 3 never written: chunks the reader fills
        loss = np.arange(6, dtype=np.float32) + epoch
        writer.write_epoch(epoch, run={"seed": 0}, loss=loss, correct=loss % 2 == 0)
    return path


def test_every_kind_of_store_memoxr_writes_opens_without_zarr_as_with_it(ragged_store, tmp_path):
    demo = tmp_path / "demo"
    try:
        main(["demo", "--output", str(demo), "-q"])
    except SystemExit as exit:
        assert not exit.code, exit.code
    stores = {
        "influence, several chunks per dimension, ragged": ragged_store,
        "influence of the sample": convert_npz(memoxr.sample_path(), tmp_path / "sample.zarr"),
        "scores": demo / "scores.zarr",
        "dynamics": write_sample(tmp_path / "dynamics.zarr"),
        "dynamics being recorded (unwritten chunks)": _dynamics_writer_store(tmp_path / "recording.zarr"),
    }
    for kind, store in stores.items():
        meta = read_local_metadata(store)
        assert meta is not None and meta.unfamiliar == (), kind
        assert_same_as_zarr(store)


def test_the_ragged_store_has_several_chunks_and_reads_its_values(ragged_store):
    ds = open_dataset(ragged_store)
    for name in ("train_index", "train_count"):  # integers: through the backend, not direct reads
        assert not any(layer.startswith("read-") for layer in ds[name].data.dask.layers)
        np.testing.assert_array_equal(ds[name].values, zarr.open_array(str(Path(ragged_store) / name), mode="r")[...])
    assert all(len(c) > 1 for c in ds["influence"].chunks)


@pytest.mark.filterwarnings("ignore:The specified chunks separate the stored chunks")
def test_chunks_the_caller_chooses_are_cut_from_the_stores_chunks(ragged_store):
    chunks = {"class": 3, "train_sample": 7, "test_sample": 5}
    ds = open_dataset(ragged_store, chunks=chunks)
    via_zarr = _open_with_zarr(Location.of(str(ragged_store)), chunks=chunks)
    xr.testing.assert_identical(ds, via_zarr)
    assert ds["influence"].chunks == via_zarr["influence"].chunks


def test_a_written_copy_keeps_the_codecs(tmp_path):
    store = convert_npz(memoxr.sample_path(), tmp_path / "sample.zarr")
    open_dataset(store).to_zarr(tmp_path / "copy.zarr", zarr_format=3, consolidated=True)
    _open_with_zarr(Location.of(str(store)), chunks=None).to_zarr(
        tmp_path / "zarr_copy.zarr", zarr_format=3, consolidated=True)
    for name in ("influence", "memorization", "class", "train_index"):
        ours = json.loads((tmp_path / "copy.zarr" / name / "zarr.json").read_text())
        theirs = json.loads((tmp_path / "zarr_copy.zarr" / name / "zarr.json").read_text())
        assert ours == theirs, name
    assert ours["codecs"][1]["name"] == "blosc"


def test_calculate_on_a_local_store_gives_the_same_scores_without_zarr(ragged_store):
    wrapped = zarr.storage.LocalStore(ragged_store, read_only=True)  # a Store: zarr-python's path
    ours = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    theirs = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(wrapped)))
    import pandas as pd

    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


# --- arrays of every kind read here, written by zarr-python ---------------------------------------

_DTYPES = ["bool", "int8", "uint16", "int32", "int64", "uint64", "float16", "float32", "float64"]
_COMPRESSORS = {"blosc": (BloscCodec(cname="lz4", shuffle="shuffle"),), "zstd": (ZstdCodec(),), "none": ()}


@st.composite
def _arrays(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "b":
        values = rng.random(shape) < 0.5
        fill = draw(st.booleans())
    elif dtype.kind == "f":
        values = rng.normal(size=shape).astype(dtype)
        values[rng.random(shape) < 0.2] = np.nan
        fill = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -2.5]))
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        fill = int(draw(st.sampled_from([0, 1, int(info.max)])))
    written = rng.random(shape) < 0.7  # the rest left to the fill value, some chunks never written
    return values, chunks, fill, written, draw(st.sampled_from(sorted(_COMPRESSORS))), draw(st.sampled_from(["/", "."]))


def _index(draw, n):
    if draw(st.booleans()):
        return draw(st.integers(-n, n - 1))
    return slice(draw(st.none() | st.integers(-n - 1, n + 1)), draw(st.none() | st.integers(-n - 1, n + 1)),
                 draw(st.sampled_from([None, 1, 2, 3, -1, -2])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_arrays(), data=st.data())
def test_any_plain_array_reads_as_zarr_reads_it(tmp_path_factory, case, data):
    values, chunks, fill, written, compressor, separator = case
    root = tmp_path_factory.mktemp("s") / "s.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    dims = [f"d{i}" for i in range(values.ndim)]
    array = group.create_array("x", shape=values.shape, chunks=chunks, dtype=values.dtype, fill_value=fill,
                               compressors=_COMPRESSORS[compressor], dimension_names=dims,
                               chunk_key_encoding={"name": "default", "separator": separator},
                               config={"write_empty_chunks": False})
    expected = np.where(written, values, np.asarray(fill, dtype=values.dtype))
    for i in np.argwhere(written):  # sample by sample, so chunks of fill values stay unwritten
        array[tuple(i)] = values[tuple(i)]
    zarr.consolidate_metadata(root)
    meta = read_local_metadata(root)
    assert meta is not None and meta.unfamiliar == () and meta.arrays["x"].compressor == (
        None if compressor == "none" else compressor)
    np.testing.assert_array_equal(zarr.open_array(root / "x", mode="r")[...], expected)
    backend = local_zarr._ChunkedArray(Path(root), meta.arrays["x"])
    key = tuple(_index(data.draw, n) for n in values.shape)
    read = backend._read(key)
    np.testing.assert_array_equal(read, expected[key])
    assert read.dtype == expected.dtype and read.shape == expected[key].shape
    ds = xr.open_dataset(root, engine=LocalZarrBackend, chunks={}, mask_and_scale=False)
    np.testing.assert_array_equal(ds["x"].values, expected)
    if values.dtype.kind == "f" and math.isnan(fill):
        assert math.isnan(meta.arrays["x"].fill_value)
    else:
        assert meta.arrays["x"].fill_value == np.asarray(fill, dtype=values.dtype)


def test_a_hex_fill_value_is_the_values_bits():
    meta = {"zarr_format": 3, "node_type": "array", "shape": [2], "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
            "chunk_key_encoding": {"name": "default"}, "fill_value": "0x3f800000",
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}], "dimension_names": ["a"]}
    assert local_zarr.parse_array_metadata("x", meta).fill_value == np.float32(1.0)


# --- what is left to zarr-python -------------------------------------------------------------------

def _store_with(tmp_path, **create) -> Path:
    root = tmp_path / "s.zarr"
    ds = convert_npz(memoxr.sample_path(), root)
    group = zarr.open_group(ds, mode="r+")
    group.create_array("extra", dimension_names=["extra"], **create)
    zarr.consolidate_metadata(root)
    return root


@pytest.mark.parametrize("create", [
    {"shape": (4,), "dtype": "str"},  # strings
    {"shape": (4,), "dtype": "int32", "compressors": (GzipCodec(),)},  # another codec
    {"shape": (8,), "dtype": "float32", "chunks": (2,), "shards": (4,)},  # sharding
], ids=["strings", "gzip", "sharded"])
def test_a_store_with_an_unfamiliar_array_opens_with_zarr(tmp_path, create):
    root = _store_with(tmp_path, **create)
    meta = read_local_metadata(root)
    assert meta is not None and meta.unfamiliar == ("extra",)
    ds = open_dataset(root)
    assert_same_as_zarr(root, ds)
    assert any(layer.startswith("read-") for layer in ds["influence"].data.dask.layers)  # its floats still direct


def test_a_nested_group_is_left_to_zarr_and_no_consolidated_metadata_opens_nothing(tmp_path):
    root = convert_npz(memoxr.sample_path(), tmp_path / "s.zarr")
    zarr.open_group(root, mode="r+").create_group("sub").create_array("y", shape=(2,), dtype="f4")
    zarr.consolidate_metadata(root)
    meta = read_local_metadata(root)
    assert meta is not None and set(meta.unfamiliar) == {"sub", "sub/y"}
    ds = open_dataset(root)
    assert_same_as_zarr(root, ds)
    assert any(layer.startswith("read-") for layer in ds["influence"].data.dask.layers)  # its floats still direct
    text = json.loads((Path(root) / "zarr.json").read_text())
    (Path(root) / "zarr.json").write_text(json.dumps({k: v for k, v in text.items() if k != "consolidated_metadata"}))
    assert read_local_metadata(root) is None
    (Path(root) / "zarr.json").write_text("[" * 100_000)  # deeper than json can nest
    assert read_local_metadata(root) is None
    (Path(root) / "zarr.json").write_text("{not json")
    assert read_local_metadata(root) is None
    with pytest.raises(MemoxrInputError, match="not a readable Zarr store"):
        open_dataset(root)


_PLAIN = {"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "int32",
          "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
          "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}}, "fill_value": 0,
          "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}], "dimension_names": ["a"]}


@pytest.mark.parametrize("change", [
    {"fill_value": 2**40}, {"fill_value": -1, "data_type": "uint8"}, {"fill_value": True},
    {"fill_value": "0x1ffffffff", "data_type": "float32"}, {"fill_value": "0x_1", "data_type": "float32"},
    {"shape": [2.7]}, {"shape": [True]}, {"shape": "4"}, {"shape": [1e400]},
    {"extension": {"must_understand": True}}, {"extension": 1},
    {"dimension_names": None}, {"dimension_names": ["a", "b"]}, {"dimension_names": [None]},
    {"codecs": [{"name": "bytes"}]},  # a 4-byte type with no byte order
    {"codecs": [{"name": "bytes", "configuration": {"endian": "big" if sys.byteorder == "little" else "little"}}]},
    {"codecs": [{"name": "transpose", "configuration": {"order": [0]}}, {"name": "bytes"}]},
    {"chunk_key_encoding": {"name": "v2"}}, {"storage_transformers": [{"name": "x"}]}, {"data_type": "string"},
], ids=repr)
def test_metadata_zarr_python_would_refuse_or_read_otherwise_is_left_to_it(change):
    assert local_zarr.parse_array_metadata("x", {**_PLAIN, **change}) is None


def test_an_extension_that_need_not_be_understood_and_a_scalar_are_read():
    ignorable = {**_PLAIN, "extension": {"must_understand": False}}
    assert local_zarr.parse_array_metadata("x", ignorable) is not None
    scalar = {**_PLAIN, "shape": [], "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": []}},
              "dimension_names": None}
    assert local_zarr.parse_array_metadata("x", scalar).dimension_names == ()


def test_a_store_with_a_scalar_opens_as_zarr_opens_it(tmp_path):
    from memoxr.io.storage import write_dataset

    ds = xr.Dataset({"v": ("x", np.arange(5.0)), "s": ((), 3.5), "n": ((), np.int64(7))}, attrs={"schema": "test"})
    root = write_dataset(ds, tmp_path / "s.zarr")
    assert read_local_metadata(root).unfamiliar == ()
    opened = open_dataset(root)
    assert_same_as_zarr(root, opened)
    assert float(opened["s"]) == 3.5 and int(opened["n"]) == 7


def test_a_damaged_chunk_of_an_index_array_is_named(tmp_path):
    root = convert_npz(memoxr.sample_path(), tmp_path / "s.zarr")
    chunk = next((Path(root) / "train_index").rglob("c/*/*"))
    chunk.write_bytes(b"not a blosc frame at all")
    with pytest.raises(MemoxrInputError, match=r"train_index.*chunk"):
        open_dataset(root)["train_index"].values  # noqa: B018
