"""npz -> Zarr conversion: round trip, schema, chunking, validation, complete-or-absent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import memoxr
from memoxr.convert import convert_npz, inspect_fz_npz
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.errors import IncompleteStoreError, MemoxrInputError, OutputExistsError
from memoxr.influence import fz_npz

from conftest import SMALL_CHUNKS, write_npz


def assert_round_trip(store, arrays):
    ds = memoxr.open_influence(store).load()
    classes = ds["class"].values.tolist()
    assert classes == sorted(int(k[17:]) for k in arrays if k.startswith("infl_matrix_class"))
    for c, k in enumerate(classes):
        matrix = arrays[f"infl_matrix_class{k}"]
        n_tr, n_tt = matrix.shape
        block = ds["influence"].values[c]
        np.testing.assert_array_equal(block[:n_tr, :n_tt], matrix.astype(np.float32))
        assert np.isnan(block[n_tr:]).all() and np.isnan(block[:, n_tt:]).all()
        np.testing.assert_array_equal(ds["train_index"].values[c, :n_tr], arrays[f"tr_classidx_{k}"])
        np.testing.assert_array_equal(ds["test_index"].values[c, :n_tt], arrays[f"tt_classidx_{k}"])
        assert (ds["train_index"].values[c, n_tr:] == -1).all() and (ds["test_index"].values[c, n_tt:] == -1).all()
        np.testing.assert_array_equal(ds["memorization"].values[c, :n_tr], arrays["tr_mem"][arrays[f"tr_classidx_{k}"]])
        assert ds["train_count"].values[c] == n_tr and ds["test_count"].values[c] == n_tt
    for key in ("tr_mem", "tr_labels", "tt_labels"):
        np.testing.assert_array_equal(ds[key].values, arrays[key])


def test_round_trip_and_attrs(tmp_path, ragged_npz, ragged_arrays):
    store = convert_npz(ragged_npz, tmp_path / "out.zarr", chunks=SMALL_CHUNKS)
    assert_round_trip(store, ragged_arrays)
    ds = memoxr.open_influence(store)
    assert ds.attrs["schema"] == "memoxr.influence" and ds.attrs["schema_version"] == 1
    assert ds.attrs["source_name"] == "ragged.npz"
    assert ds.attrs["source_sha256"] == hashlib.sha256(Path(ragged_npz).read_bytes()).hexdigest()
    assert ds.attrs["memoxr_version"] == memoxr.__version__
    assert ds.attrs["sample_order"] == "tfds"
    assert ds["influence"].dims == ("class", "train_sample", "test_sample")
    group = zarr.open_group(store, mode="r")
    assert group["influence"].chunks == (2, 4, 3)
    assert group["influence"].compressors, "influence must be compressed"
    assert (Path(store) / "zarr.json").read_text().count("consolidated_metadata") >= 1


def test_real_estimates_compress_unshuffled(tmp_path):
    """The shipped real estimates, mostly exact zeros, compress 3.8x unshuffled (2.4x byte-shuffled)."""
    store = Path(convert_npz(memoxr.sample_path(), tmp_path / "digits.zarr"))
    group = zarr.open_group(store, mode="r")
    stored = sum(f.stat().st_size for f in (store / "influence" / "c").rglob("*") if f.is_file())
    assert group["influence"].nbytes / stored > 3.3
    (influence_codec,) = group["influence"].compressors
    (index_codec,) = group["train_index"].compressors  # integers: byte-shuffled, their zero high bytes in runs
    assert (influence_codec.shuffle.value, index_codec.shuffle.value) == ("noshuffle", "shuffle")


@given(
    sizes=st.lists(st.tuples(st.integers(0, 6), st.integers(1, 5)), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
    chunks=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
)
def test_round_trip_is_identical(tmp_path_factory, sizes, seed, chunks):
    arrays = make_fz_arrays([s[0] for s in sizes], [s[1] for s in sizes], seed=seed)
    folder = tmp_path_factory.mktemp("rt")
    path = write_npz(folder / "x.npz", arrays)
    store = convert_npz(path, folder / "x.zarr", chunks=chunks)  # the three sizes as a tuple (BlockChunks elsewhere)
    assert_round_trip(store, arrays)


def test_existing_output_needs_overwrite(tmp_path, ragged_npz, balanced_npz):
    out = tmp_path / "out.zarr"
    convert_npz(ragged_npz, out)
    with pytest.raises(OutputExistsError, match="already exists; pass overwrite=True"):
        convert_npz(balanced_npz, out)
    assert memoxr.open_influence(out).attrs["source_name"] == "ragged.npz"
    convert_npz(balanced_npz, out, overwrite=True)
    assert memoxr.open_influence(out).attrs["source_name"] == "balanced.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["balanced.npz", "out.zarr", "ragged.npz"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_conversion_leaves_nothing(tmp_path, ragged_npz, monkeypatch, exc):
    calls = []
    original = fz_npz._load_class_block

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise exc("interrupted")
        return original(*args, **kwargs)

    monkeypatch.setattr(fz_npz, "_load_class_block", failing)
    with pytest.raises(exc):
        convert_npz(ragged_npz, tmp_path / "out.zarr", chunks=SMALL_CHUNKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.npz"]


def test_failed_overwrite_keeps_the_old_store(tmp_path, ragged_npz, balanced_npz, monkeypatch):
    out = tmp_path / "out.zarr"
    convert_npz(ragged_npz, out)

    def failing(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fz_npz, "_load_class_block", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        convert_npz(balanced_npz, out, overwrite=True)
    assert memoxr.open_influence(out).attrs["source_name"] == "ragged.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["balanced.npz", "out.zarr", "ragged.npz"]


def test_store_without_completion_marker_is_refused(tmp_path, ragged_npz):
    out = convert_npz(ragged_npz, tmp_path / "out.zarr")
    group = zarr.open_group(out, mode="r+")
    del group.attrs["memoxr_complete"]
    zarr.consolidate_metadata(str(out))
    with pytest.raises(IncompleteStoreError, match="store is incomplete"):
        memoxr.open_influence(out)


def test_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MemoxrInputError, match="is not a readable Zarr store"):
        memoxr.open_influence(tmp_path / "empty")
    with pytest.raises(MemoxrInputError, match="does not exist"):
        memoxr.open_influence(tmp_path / "missing.zarr")


def test_allow_pickle_reads_object_arrays(tmp_path, ragged_arrays):
    arrays = dict(ragged_arrays)
    arrays["tr_mem"] = np.array(list(arrays["tr_mem"]), dtype=object)
    path = write_npz(tmp_path / "obj.npz", arrays)
    with pytest.raises(MemoxrInputError, match=r"key 'tr_mem': expected a numeric array, received dtype object"):
        convert_npz(path, tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
    convert_npz(path, tmp_path / "x.zarr", allow_pickle=True)
    assert_round_trip(tmp_path / "x.zarr", ragged_arrays)


def test_float_indices_that_are_whole_numbers_are_accepted(tmp_path, ragged_arrays):
    arrays = {k: (v.astype(float) if "classidx" in k else v) for k, v in ragged_arrays.items()}
    store = convert_npz(write_npz(tmp_path / "f.npz", arrays), tmp_path / "f.zarr")
    assert_round_trip(store, ragged_arrays)


def _broken(arrays, **changes):
    out = dict(arrays)
    for key, value in changes.items():
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


def _idx(arrays, key):
    return np.array(arrays[key])


BAD_INPUTS = {
    "missing global key": (lambda a: _broken(a, tr_mem=None), r"missing key\(s\) \['tr_mem'\]"),
    "missing class key": (lambda a: _broken(a, tt_classidx_2=None), r"missing key 'tt_classidx_2' for class 2"),
    "no classes": (lambda a: {k: a[k] for k in ("tr_mem", "tr_labels", "tt_labels")}, "no per-class keys"),
    "matrix shape": (
        lambda a: _broken(a, infl_matrix_class1=a["infl_matrix_class1"][:, :-1]),
        r"key 'infl_matrix_class1': expected shape \(12, 8\) \(len\(tr_classidx_1\), len\(tt_classidx_1\)\), received \(12, 7\)",
    ),
    "matrix not 2-D": (
        lambda a: _broken(a, infl_matrix_class1=a["infl_matrix_class1"].ravel()),
        r"key 'infl_matrix_class1': expected shape \(12, 8\)",
    ),
    "index out of range": (
        lambda a: _broken(a, tr_classidx_0=np.r_[_idx(a, "tr_classidx_0")[:-1], 10_000]),
        r"key 'tr_classidx_0': expected train indices in \[0, 42\), received 10000",
    ),
    "negative index": (
        lambda a: _broken(a, tt_classidx_3=np.r_[-1, _idx(a, "tt_classidx_3")[1:]]),
        r"key 'tt_classidx_3': expected test indices in \[0, 37\), received -1",
    ),
    "index in two classes": (
        lambda a: _broken(a, tr_classidx_1=np.r_[_idx(a, "tr_classidx_0")[0], _idx(a, "tr_classidx_1")[1:]]),
        r"key 'tr_classidx_1': index \d+ is also claimed by class 0",
    ),
    "index twice in a class": (
        lambda a: _broken(a, tr_classidx_1=np.r_[_idx(a, "tr_classidx_1")[1], _idx(a, "tr_classidx_1")[1:]]),
        r"key 'tr_classidx_1': expected distinct indices, received \d+ more than once",
    ),
    "label disagrees": (
        lambda a: _broken(a, tr_labels=np.where(np.arange(42) == a["tr_classidx_4"][0], 3, a["tr_labels"])),
        r"key 'tr_labels': sample \d+ is in 'tr_classidx_4', so its label should be 4, received 3",
    ),
    "non-finite index": (
        lambda a: _broken(a, tt_classidx_0=np.r_[np.nan, _idx(a, "tt_classidx_0")[1:]]),
        r"key 'tt_classidx_0': expected finite test indices, received nan at position 0",
    ),
    "fractional index": (
        lambda a: _broken(a, tt_classidx_0=np.r_[0.5, _idx(a, "tt_classidx_0")[1:]]),
        r"key 'tt_classidx_0': expected whole-number test indices, received 0.5",
    ),
    "string array": (
        lambda a: _broken(a, tt_labels=a["tt_labels"].astype(str)),
        r"key 'tt_labels': expected an integer or float array, received dtype <U\d+",
    ),
    "object array": (
        lambda a: _broken(a, infl_matrix_class0=a["infl_matrix_class0"].astype(object)),
        r"key 'infl_matrix_class0': expected a numeric array, received dtype object .*--allow-pickle",
    ),
    "labels length": (
        lambda a: _broken(a, tr_labels=a["tr_labels"][:-1]),
        r"key 'tr_labels': expected shape \(42,\) like 'tr_mem', received \(41,\)",
    ),
    "tr_mem not 1-D": (
        lambda a: _broken(a, tr_mem=a["tr_mem"].reshape(6, 7)),
        r"key 'tr_mem': expected a 1-D array, received shape \(6, 7\)",
    ),
    "sample_order not a string": (
        lambda a: _broken(a, sample_order=np.arange(3)),
        r"key 'sample_order': expected a string scalar naming the sample order, received dtype int64 and shape \(3,\)",
    ),
    "infinite influence": (
        lambda a: _broken(a, infl_matrix_class3=np.where(np.eye(9, 11, dtype=bool), np.inf, a["infl_matrix_class3"])),
        r"key 'infl_matrix_class3': expected finite influence values \(or NaN for missing\), received inf at row 0, column 0",
    ),
    "influence beyond float32": (  # finite in the file: named as it is stored, not as the inf of its cast
        lambda a: _broken(a, infl_matrix_class3=np.where(np.eye(9, 11, k=2, dtype=bool), -1e39, a["infl_matrix_class3"].astype(np.float64))),
        r"key 'infl_matrix_class3': expected influence values within float32's range \(magnitude at most 3.403e\+38: "
        r"memoxr keeps influence as float32\), received -1e\+39 at row 0, column 2",
    ),
    "infinite memorization": (
        lambda a: _broken(a, tr_mem=np.where(np.arange(42) == 5, -np.inf, a["tr_mem"])),
        r"key 'tr_mem': expected finite memorization values \(or NaN for missing\), received -inf at position 5",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_and_nothing_written(tmp_path, ragged_arrays, case):
    make, message = BAD_INPUTS[case]
    path = write_npz(tmp_path / "bad.npz", make(ragged_arrays))
    with pytest.raises(MemoxrInputError, match=message):
        convert_npz(path, tmp_path / "bad.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_not_an_npz(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(MemoxrInputError, match="is not an npz archive"):
        inspect_fz_npz(tmp_path / "x.npz")
    with pytest.raises(MemoxrInputError, match="does not exist or is not a file"):
        inspect_fz_npz(tmp_path / "nope.npz")


def test_missing_output_parent(tmp_path, ragged_npz):
    with pytest.raises(MemoxrInputError, match="parent folder .* does not exist"):
        convert_npz(ragged_npz, tmp_path / "no" / "x.zarr")


@pytest.mark.parametrize("value", [-1, 0, float("inf"), float("nan"), True])
def test_bad_chunk_and_shard_sizes(tmp_path, ragged_npz, value):
    with pytest.raises(MemoxrInputError, match=f"chunk_mb must be a positive number of megabytes; received {value!r}"):
        convert_npz(ragged_npz, tmp_path / "x.zarr", chunk_mb=value)
    with pytest.raises(MemoxrInputError, match=f"shard_mb must be a positive number of megabytes; received {value!r}"):
        convert_npz(ragged_npz, tmp_path / "x.zarr", shard_mb=value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.npz"]


def test_infinite_sizes_on_the_cli_exit_2(tmp_path, ragged_npz):
    from click.testing import CliRunner

    from memoxr.cli import main

    for args in (["convert", ragged_npz, str(tmp_path / "x.zarr"), "--chunk-mb", "inf"],
                 ["convert", ragged_npz, str(tmp_path / "x.zarr"), "--shard-mb", "inf"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "must be a positive number of megabytes; received inf" in result.stderr


def test_influence_beyond_float32_on_the_cli_is_one_line(tmp_path, ragged_arrays):
    """No numpy overflow warning before the error: the value is refused by name (exit 2, one line).

    A process of its own, with warnings as a user sees them (pytest would capture them).
    """
    import subprocess
    import sys

    big = {**ragged_arrays, "infl_matrix_class0": ragged_arrays["infl_matrix_class0"].astype(np.float64) * 1e45}
    path = str(write_npz(tmp_path / "big.npz", big))
    for args in (["calculate", "--input", path, "-q"], ["convert", path, str(tmp_path / "x.zarr"), "-q"]):
        done = subprocess.run([sys.executable, "-m", "memoxr", *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [done.stderr.strip()] and "within float32's range" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npz"]


def test_sample_order_key_of_the_npz(tmp_path, ragged_arrays):
    path = write_npz(tmp_path / "o.npz", {**ragged_arrays, "sample_order": np.array("torchvision")})
    assert memoxr.open_influence(path).attrs["sample_order"] == "torchvision"
    convert_npz(path, tmp_path / "a.zarr")
    assert memoxr.open_influence(tmp_path / "a.zarr").attrs["sample_order"] == "torchvision"
    convert_npz(path, tmp_path / "b.zarr", sample_order="mine")  # an explicit order wins
    assert memoxr.open_influence(tmp_path / "b.zarr").attrs["sample_order"] == "mine"
    assert inspect_fz_npz(path).ignored_keys == []


def test_shipped_sample_names_its_order():
    assert memoxr.open_influence(memoxr.sample_path()).attrs["sample_order"].startswith("sklearn load_digits")


def test_damaged_store_is_a_clear_error(tmp_path, ragged_npz):
    """The writer died after the completion marker but before the consolidated metadata."""
    import json

    out = convert_npz(ragged_npz, tmp_path / "out.zarr")
    root = Path(out) / "zarr.json"
    meta = json.loads(root.read_text())
    del meta["consolidated_metadata"]
    root.write_text(json.dumps(meta))
    with pytest.raises(IncompleteStoreError, match="store is damaged or incomplete"):
        memoxr.open_influence(out)
