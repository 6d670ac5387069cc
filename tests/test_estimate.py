"""The Feldman–Zhang estimator: kernels, the dask wrapper, writers, errors and the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz, inspect_fz_npz
from memoxr.errors import MemoxrInputError, OutputExistsError
from memoxr.estimate import (
    DegenerateSampleWarning,
    estimate,
    estimate_to_zarr,
    open_trials,
    write_estimate,
    write_fz_npz,
    write_trials,
)
from memoxr.estimate import kernels as K
from memoxr.estimate.sums import SUM_NAMES
from memoxr.estimate.sums import trial_chunk as _trial_chunk
from memoxr.io.chunks import BlockChunks
from memoxr.io.schema import INFLUENCE_VARIABLES

# ------------------------------------------------------------------------------------------------
# Independent reference: explicit loops over samples, conditional means over trials.


def reference(mask, train_correct, test_correct):
    """Plain-numpy FZ estimator written from the definition, one (i, j) at a time."""
    mask = np.asarray(mask).astype(bool)
    n_trials, n_train = mask.shape
    n_test = test_correct.shape[1]
    mem = np.full(n_train, np.nan)
    infl = np.full((n_train, n_test), np.nan)
    for i in range(n_train):
        inside = [t for t in range(n_trials) if mask[t, i]]
        outside = [t for t in range(n_trials) if not mask[t, i]]
        if not inside or not outside:
            continue
        mem[i] = np.mean([train_correct[t, i] for t in inside]) - np.mean([train_correct[t, i] for t in outside])
        for j in range(n_test):
            infl[i, j] = np.mean([test_correct[t, j] for t in inside]) - np.mean(
                [test_correct[t, j] for t in outside]
            )
    return mem, infl


def make_records(n_trials=40, n_train=31, n_test=19, n_class=3, seed=0, ragged=True):
    rng = np.random.default_rng(seed)
    if ragged:
        tr_labels = rng.permutation(np.arange(n_train) % n_class if n_class > 1 else np.zeros(n_train, int))
        tr_labels[: n_train // 3] = 0  # class 0 much bigger than the others
        tt_labels = rng.permutation(np.arange(n_test) % n_class)
    else:
        tr_labels = rng.permutation(np.arange(n_train) % n_class)
        tt_labels = rng.permutation(np.arange(n_test) % n_class)
    mask = rng.random((n_trials, n_train)) < 0.7
    mask[0], mask[1] = True, False  # every sample both in and out of some subset
    return {
        "mask": mask,
        "train_correct": (rng.random((n_trials, n_train)) < 0.8).astype(np.int8),
        "test_correct": (rng.random((n_trials, n_test)) < 0.6).astype(np.float64),
        "tr_labels": tr_labels.astype(np.int64),
        "tt_labels": tt_labels.astype(np.int64),
    }


@pytest.fixture
def records():
    return make_records()


SMALL = {"chunks": BlockChunks(2, 4, 3), "chunk_mb": 0.001}  # several chunks on every dim, trials included


def check_against_reference(ds, rec):
    mem, infl = reference(rec["mask"], rec["train_correct"], rec["test_correct"])
    np.testing.assert_allclose(ds["tr_mem"].values, mem, atol=1e-12)
    influence = ds["influence"].values
    assert influence.dtype == np.float32
    for c, k in enumerate(ds["class"].values):
        tr = np.flatnonzero(rec["tr_labels"] == k)
        tt = np.flatnonzero(rec["tt_labels"] == k)
        assert ds["train_count"].values[c] == len(tr) and ds["test_count"].values[c] == len(tt)
        np.testing.assert_array_equal(ds["train_index"].values[c, : len(tr)], tr)
        np.testing.assert_array_equal(ds["test_index"].values[c, : len(tt)], tt)
        assert (ds["train_index"].values[c, len(tr) :] == -1).all()
        assert (ds["test_index"].values[c, len(tt) :] == -1).all()
        np.testing.assert_allclose(influence[c, : len(tr), : len(tt)], infl[np.ix_(tr, tt)], atol=1e-6)
        assert np.isnan(influence[c, len(tr) :]).all() and np.isnan(influence[c, :, len(tt) :]).all()
        np.testing.assert_allclose(ds["memorization"].values[c, : len(tr)], mem[tr], atol=1e-12)
        assert np.isnan(ds["memorization"].values[c, len(tr) :]).all()


# ------------------------------------------------------------------------------------------------
# Kernels


def test_kernels_match_reference(records):
    mem, infl = reference(records["mask"], records["train_correct"], records["test_correct"])
    np.testing.assert_allclose(K.estimate_memorization(records["mask"], records["train_correct"]), mem, atol=1e-12)
    np.testing.assert_allclose(K.estimate_influence(records["mask"], records["test_correct"]), infl, atol=1e-6)


def test_kernel_sums_merge_over_trial_chunks(records):
    m, c, t = records["mask"], records["train_correct"], records["test_correct"]
    split = [0, 7, 8, 25, 40]
    parts = [K.trial_sums(m[a:b], c[a:b]) for a, b in zip(split[:-1], split[1:], strict=True)]
    np.testing.assert_array_equal(sum(parts), K.trial_sums(m, c))
    products = [K.masked_products(m[a:b], t[a:b]) for a, b in zip(split[:-1], split[1:], strict=True)]
    np.testing.assert_array_equal(sum(products), K.masked_products(m, t))


def test_masked_products_batches_over_classes(records):
    m, t = records["mask"][:, :6].reshape(40, 2, 3), records["test_correct"][:, :4].reshape(40, 2, 2)
    out = K.masked_products(m, t)
    assert out.shape == (2, 3, 2) and out.dtype == np.float32
    for b in range(2):
        np.testing.assert_array_equal(out[b], m[:, b].astype(float).T @ t[:, b])


def _loop_class_products(mask, correct, train_index, test_index):
    """Plain loop: sum over trials of mask[t, i] * correct[t, j] within each class; 0 on padding."""
    out = np.zeros((train_index.shape[0], train_index.shape[1], test_index.shape[1]))
    for c in range(train_index.shape[0]):
        for a, i in enumerate(train_index[c]):
            for b, j in enumerate(test_index[c]):
                if i >= 0 and j >= 0:
                    out[c, a, b] = sum(float(mask[t, i]) * float(correct[t, j]) for t in range(mask.shape[0]))
    return out


@pytest.mark.parametrize("max_operand_bytes", [None, 64])
def test_gathered_class_products_match_a_loop_over_trial_chunks(records, max_operand_bytes):
    from memoxr.io.schema import pad_indices

    m, t = records["mask"], records["test_correct"]  # bool and float64 0/1
    classes = np.unique(records["tr_labels"])
    train_lists = [np.flatnonzero(records["tr_labels"] == k) for k in classes]
    test_lists = [np.flatnonzero(records["tt_labels"] == k) for k in classes]
    train_index = pad_indices(train_lists, max(map(len, train_lists)))
    test_index = pad_indices(test_lists, max(map(len, test_lists)))
    assert (train_index < 0).any() and (test_index < 0).any()  # ragged: padding in both
    expected = _loop_class_products(m, t, train_index, test_index)
    split = [0, 7, 8, 25, 40]
    for rows_sl, cols_sl in [(slice(None), slice(None)), (slice(5, 14), slice(2, 7))]:  # blocks of rows/columns too
        tr, tt = train_index[:, rows_sl], test_index[:, cols_sl]
        parts = [
            K.class_products(K.gather_columns(m[a:b], tr), K.gather_columns(t[a:b], tt), tr, tt,
                             max_operand_bytes=max_operand_bytes)
            for a, b in zip(split[:-1], split[1:], strict=True)
        ]
        assert all(p.dtype == np.float32 for p in parts)
        np.testing.assert_array_equal(K.add_parts(parts), expected[:, rows_sl, cols_sl])
        np.testing.assert_array_equal(K.add_parts([parts[:2], [parts[2], parts[3]]]), expected[:, rows_sl, cols_sl])


def test_gather_columns_reads_any_01_dtype(records):
    index = np.array([[3, 0, -1], [5, 5, 1]])
    gathered = K.gather_columns(records["mask"], index)
    assert gathered.dtype == bool and gathered.shape == (40, 2, 3)
    for dtype in (np.int8, np.uint8, np.float32, np.float64):
        np.testing.assert_array_equal(K.gather_columns(records["mask"].astype(dtype), index), gathered)
    np.testing.assert_array_equal(gathered[:, 1, 0], records["mask"][:, 5])


@pytest.mark.parametrize("block_elements", [1, 7, 2**16])
def test_row_block_finalizer_equals_the_float64_one(block_elements):
    rng = np.random.default_rng(1)
    n_trials = 40
    test_in = rng.integers(0, 30, (3, 11, 6)).astype(np.float32)
    n_in = rng.integers(1, n_trials, (3, 11)).astype(np.float64)
    n_in[0, 2], n_in[1, 4] = 0, n_trials  # undefined rows
    test_all = rng.integers(20, n_trials, (3, 6)).astype(np.float64)
    test_all[2, 5] = np.nan  # a padded test column
    got = K.influence_from_sums_f32(test_in, test_all, n_in, n_trials, block_elements=block_elements)
    assert got.dtype == np.float32 and got.shape == test_in.shape
    np.testing.assert_array_equal(got, K.influence_from_sums(test_in, test_all, n_in, n_trials).astype(np.float32))
    assert np.isnan(got[0, 2]).all() and np.isnan(got[1, 4]).all() and np.isnan(got[2, :, 5]).all()
    flat = K.influence_from_sums_f32(test_in[0], test_all[0], n_in[0], n_trials, block_elements=block_elements)
    np.testing.assert_array_equal(flat, got[0])


def test_class_groups_and_trial_chunks_are_even():
    from memoxr.estimate.sums import class_groups as _class_groups
    from memoxr.estimate.sums import even_sizes as _even_sizes

    assert _even_sizes(10, 3) == (3, 3, 2, 2) and _even_sizes(2000, 1118) == (1000, 1000)
    assert _even_sizes(5, 10) == (5,) and _even_sizes(7, 1) == (1,) * 7
    assert _class_groups(10, BlockChunks(3, 5000, 1000), 2000) == (1,) * 10  # big classes: one per task
    assert _class_groups(100, BlockChunks(100, 500, 100), 2000) == (10,) * 10  # small ones grouped, evenly


def test_not_binary():
    assert K.not_binary(np.array([0, 1, 2, np.nan, 0.5])).tolist() == [False, False, True, True, True]
    assert not K.not_binary(np.array([True, False])).any()


# ------------------------------------------------------------------------------------------------
# The dask wrapper


def test_estimate_matches_reference_over_many_chunks(records):
    ds = estimate(records, **SMALL)
    assert isinstance(ds["influence"].data, da.Array)
    assert all(len(c) > 1 for c in ds["influence"].data.chunks)
    assert _trial_chunk(40, 50, 4, int(0.001 * 2**20)) < 40  # trials split too
    check_against_reference(ds, records)
    assert sorted(np.bincount(records["tr_labels"])) != [len(records["tr_labels"]) // 3] * 3  # ragged


def test_estimate_dask_inputs_equal_numpy_inputs(records):
    lazy = {k: da.from_array(v, chunks=(7, 5)) if v.ndim == 2 else v for k, v in records.items()}
    a = estimate(records, **SMALL).compute()
    b = estimate(lazy, **SMALL).compute()
    xr.testing.assert_identical(a, b)
    c = estimate(records).compute()  # default chunks: one block
    xr.testing.assert_allclose(a, c)


def test_estimate_full_matrix(records):
    ds = estimate(records, full=True, chunk_mb=0.0005)
    _, infl = reference(records["mask"], records["train_correct"], records["test_correct"])
    full = ds["influence_full"]
    assert full.dims == ("train_id", "test_id") and full.dtype == np.float32
    assert len(full.data.chunks[0]) > 1
    np.testing.assert_allclose(full.values, infl, atol=1e-6)


def test_estimate_schema_attrs(records):
    ds = estimate(records, sample_order="torchvision")
    memoxr.io.schema.check_influence_dataset(ds)
    assert ds.attrs["sample_order"] == "torchvision"
    assert ds.attrs["n_trials"] == 40
    for name, dims in INFLUENCE_VARIABLES.items():
        assert ds[name].dims == dims


def test_degenerate_samples_are_nan_with_warning(records):
    rec = dict(records)
    rec["mask"] = records["mask"].copy()
    rec["mask"][:, 3] = True  # in every subset
    rec["mask"][:, 5] = False  # in none
    ds = estimate(rec, **SMALL)  # lazy: the warning comes with the sums, when computed
    with pytest.warns(DegenerateSampleWarning, match=r"1 train sample\(s\) are in every trial's subset"):
        ds = ds.compute()
    assert np.isnan(ds["tr_mem"].values[[3, 5]]).all()
    assert np.isfinite(np.delete(ds["tr_mem"].values, [3, 5])).all()
    for i in (3, 5):
        c, row = np.argwhere(ds["train_index"].values == i)[0]
        assert np.isnan(ds["influence"].values[c, row]).all()
    check_against_reference(ds, rec)  # the reference leaves them NaN too


# ------------------------------------------------------------------------------------------------
# Properties (exact constructions)

binary = hnp.arrays(np.int8, st.tuples(st.integers(2, 12), st.integers(1, 6)), elements=st.integers(0, 1))


def _both_in_and_out(mask):
    mask = np.concatenate([np.ones((1, mask.shape[1]), mask.dtype), np.zeros((1, mask.shape[1]), mask.dtype), mask])
    return mask


@settings(max_examples=40, deadline=None)
@given(mask=binary, data=st.data())
def test_always_correct_sample_has_zero_memorization(mask, data):
    mask = _both_in_and_out(mask)
    correct = data.draw(hnp.arrays(np.int8, mask.shape, elements=st.integers(0, 1)))
    i = data.draw(st.integers(0, mask.shape[1] - 1))
    correct[:, i] = 1
    assert K.estimate_memorization(mask, correct)[i] == 0.0


@settings(max_examples=40, deadline=None)
@given(mask=binary, data=st.data())
def test_estimates_in_range_and_complement_negates(mask, data):
    mask = _both_in_and_out(mask)
    correct = data.draw(hnp.arrays(np.int8, (mask.shape[0], data.draw(st.integers(1, 5))), elements=st.integers(0, 1)))
    infl = K.estimate_influence(mask, correct)
    assert np.isfinite(infl).all() and (infl >= -1).all() and (infl <= 1).all()
    np.testing.assert_array_equal(K.estimate_influence(1 - mask, correct), -infl)
    mem = K.estimate_memorization(mask, correct[:, :1].repeat(mask.shape[1], axis=1))
    assert ((mem >= -1) & (mem <= 1)).all()


@settings(max_examples=40, deadline=None)
@given(pattern=st.lists(st.booleans(), min_size=1, max_size=8), reps=st.integers(1, 3))
def test_independent_test_point_has_zero_influence(pattern, reps):
    # Full factorial: trials (a, b, r), sample i in the subset iff a == 1, test point j right iff pattern[b];
    # so j's correctness is independent of i: both conditional means are mean(pattern).
    a, b = np.meshgrid([0, 1], np.arange(len(pattern)), indexing="ij")
    a, b = np.tile(a.ravel(), reps), np.tile(b.ravel(), reps)
    mask = np.stack([a, (b % 2)], axis=1)  # sample 1 follows b, to have a dependent pair too
    correct = np.stack([np.asarray(pattern)[b], a, 1 - a], axis=1).astype(np.int8)
    infl = K.estimate_influence(mask, correct)
    assert infl[0, 0] == 0.0  # independent
    assert infl[0, 1] == 1.0 and infl[0, 2] == -1.0  # right exactly when i is in / out


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), n_class=st.integers(1, 4))
def test_estimate_equals_reference_property(seed, n_class):
    rec = make_records(n_trials=12, n_train=9, n_test=7, n_class=n_class, seed=seed, ragged=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateSampleWarning)
        ds = estimate(rec, chunks=BlockChunks(1, 2, 2), chunk_mb=0.0002)
    check_against_reference(ds, rec)


# ------------------------------------------------------------------------------------------------
# Errors: one per documented rule


def _with(records, **changes):
    rec = dict(records)
    rec.update(changes)
    return {k: v for k, v in rec.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: _with(r, test_correct=None), r"missing key\(s\) \['test_correct'\]"),
        (lambda r: _with(r, mask=r["mask"][0]), r"key 'mask': expected a 2-D array \('trial', 'train_id'\), received shape \(31,\)"),
        (lambda r: _with(r, train_correct=r["train_correct"][:, :5]), r"key 'train_correct': expected shape \(40, 31\).*received \(40, 5\)"),
        (lambda r: _with(r, test_correct=r["test_correct"][:3]), r"key 'test_correct': expected shape \(40, 19\).*received \(3, 19\)"),
        (lambda r: _with(r, tt_labels=r["tt_labels"][:4]), r"key 'tt_labels': expected shape \(19,\).*received \(4,\)"),
        (lambda r: _with(r, mask=r["mask"][:0], train_correct=r["train_correct"][:0], test_correct=r["test_correct"][:0]),
         r"expected at least one trial, train and test sample"),
        (lambda r: _with(r, mask=r["mask"].astype(complex)), r"key 'mask': expected bool, integer or float 0/1 values, received dtype complex128"),
        (lambda r: _with(r, tr_labels=r["tr_labels"].astype(str)), r"key 'tr_labels': expected integer class labels, received dtype <U"),
        (lambda r: _with(r, train_correct=np.where(np.arange(31) == 4, 2, r["train_correct"])),
         r"key 'train_correct': expected 0/1 values, received 2 at trial 0, sample 4 \(40 such values in trials 0\.\.39\)"),
        (lambda r: _with(r, test_correct=np.where(np.arange(19) == 2, np.nan, r["test_correct"])),
         r"key 'test_correct': expected 0/1 values, received nan at trial 0, sample 2"),
        (lambda r: _with(r, tr_labels=r["tr_labels"] + 0.5), r"key 'tr_labels': expected whole-number class labels >= 0, received 0.5 at position 0|received 1.5 at position 0|received 2.5 at position 0"),
        (lambda r: _with(r, tt_labels=r["tt_labels"] - 5), r"key 'tt_labels': expected whole-number class labels >= 0, received -\d at position \d"),
    ],
    ids=["missing", "ndim", "train-shape", "test-trials", "label-shape", "empty", "dtype", "label-dtype",
         "not-binary", "nan", "fractional-label", "negative-label"],
)
def test_input_errors(records, change, match):
    with pytest.raises(MemoxrInputError, match=match):
        estimate(change(records)).compute()  # 0/1 values are checked when computed, the rest at the call


def test_chunk_mb_error(records):
    with pytest.raises(MemoxrInputError, match=r"chunk_mb must be a positive number of megabytes; received 0"):
        estimate(records, chunk_mb=0)


def test_chunks_as_three_sizes(records):
    """chunks= takes (class, train_sample, test_sample) as a tuple too; other values are refused by name."""
    by_tuple, by_class = estimate(records, chunks=(2, 4, 3)), estimate(records, chunks=BlockChunks(2, 4, 3))
    assert by_tuple["influence"].chunks == by_class["influence"].chunks
    xr.testing.assert_identical(by_tuple.compute(), by_class.compute())
    for bad in [(2, 0, 3), (2, 4), (2.5, 4, 3), {"class": 2}]:
        with pytest.raises(MemoxrInputError, match=r"chunks: expected BlockChunks or three positive whole numbers"):
            estimate(records, chunks=bad)


def test_trials_type_error():
    with pytest.raises(MemoxrInputError, match=r"trials: expected a path .*received list"):
        estimate([1, 2, 3])


def test_path_errors(tmp_path, records):
    with pytest.raises(MemoxrInputError, match=r"do not exist; expected an .npz file or a Zarr store"):
        estimate(tmp_path / "nothing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(MemoxrInputError, match=r"is not an npz archive"):
        estimate(text)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**records, "mask": np.array([object()] * 3, dtype=object)})
    with pytest.raises(MemoxrInputError, match=r"key 'mask': expected a numeric or bool array, received dtype object"):
        estimate(pickled)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(MemoxrInputError, match=r"not a readable Zarr store"):
        estimate(folder)


def test_writer_errors(tmp_path, records):
    with pytest.raises(MemoxrInputError, match=r"full: the FZ .npz layout holds within-class blocks only"):
        write_estimate(records, tmp_path / "out.npz", full=True)
    with pytest.raises(MemoxrInputError, match=r"expected a file name ending in '.npz'"):
        write_fz_npz(estimate(records), tmp_path / "out.zarr")
    (tmp_path / "taken.npz").write_bytes(b"")
    with pytest.raises(OutputExistsError, match=r"already exists; pass overwrite=True"):
        write_estimate(records, tmp_path / "taken.npz")
    assert (tmp_path / "taken.npz").read_bytes() == b""


# ------------------------------------------------------------------------------------------------
# Writers, readers and the pipeline end to end


@pytest.mark.parametrize("suffix", [".npz", ".zarr"])
def test_trials_round_trip(tmp_path, records, suffix):
    path = write_trials(records, tmp_path / f"trials{suffix}")
    opened = open_trials(path)
    assert opened["mask"].dims == ("trial", "train_id") and isinstance(opened["mask"].data, da.Array)
    from_file = estimate(path, **SMALL)
    from_memory = estimate(records, **SMALL)
    xr.testing.assert_identical(from_file.drop_attrs(), from_memory.drop_attrs())
    assert from_file.attrs["source_name"] == f"trials{suffix}"
    assert (len(from_file.attrs["source_sha256"]) == 64) == (suffix == ".npz")


def test_zarr_store_scores_end_to_end(tmp_path, records):
    path = estimate_to_zarr(records, tmp_path / "infl.zarr", full=True, **SMALL)
    ds = memoxr.open_influence(path)
    check_against_reference(ds, records)
    scores = memoxr.influence_scores(ds)
    table = memoxr.class_stats(scores)
    assert table["sample_count"].tolist() == np.bincount(records["tr_labels"]).tolist()
    np.testing.assert_allclose(scores["original_memo"].values, ds["memorization"].values)
    assert np.isfinite(scores["critical_sample_score"].values[ds["train_index"].values >= 0]).all()
    group = zarr.open_group(path, mode="r")
    shuffles = {name: getattr(array.compressors[0], "shuffle", None) for name, array in group.arrays()}
    shuffles = {name: shuffle.value for name, shuffle in shuffles.items() if shuffle is not None}  # Blosc only
    # Influence matrices, mostly exact zeros, unshuffled; the rest (counts, indices, sums) byte-shuffled.
    assert {n for n, shuffle in shuffles.items() if shuffle == "noshuffle"} == {"influence", "influence_full", "influence_se"}
    assert {"test_correct_in", "train_index", "memorization"} <= {n for n, s in shuffles.items() if s == "shuffle"}
    with pytest.raises(OutputExistsError):
        estimate_to_zarr(records, path)
    estimate_to_zarr(records, path, overwrite=True)


@pytest.mark.parametrize("chunks", [BlockChunks(2, 4, 3), BlockChunks(1, 3, 4), BlockChunks(3, 20, 20)])
def test_fz_npz_same_schema_as_convert(tmp_path, records, chunks):
    est = estimate(records, chunks=chunks, chunk_mb=0.001)
    npz = write_fz_npz(est, tmp_path / "infl.npz")
    layout = inspect_fz_npz(npz)
    assert layout.classes == [0, 1, 2]
    with np.load(npz) as f:
        assert f["infl_matrix_class0"].dtype == np.float32
        assert f["tr_classidx_1"].dtype == np.int64
    converted = memoxr.open_influence(convert_npz(npz, tmp_path / "converted.zarr"))
    stored = memoxr.open_influence(estimate_to_zarr(records, tmp_path / "est.zarr", chunks=chunks, chunk_mb=0.001))
    # The estimate store adds its standard errors and sums to the converted store's variables.
    assert set(stored.variables) - set(converted.variables) == {*SUM_NAMES, "tr_mem_se", "influence_se"}
    for name in converted.variables:
        assert converted[name].dims == stored[name].dims and converted[name].dtype == stored[name].dtype, name
    assert set(converted.attrs) <= set(stored.attrs)
    xr.testing.assert_equal(converted.drop_attrs(), stored[list(converted.data_vars)].drop_attrs())
    check_against_reference(memoxr.open_influence(npz), records)


def test_fz_npz_from_converted_store_round_trips(tmp_path, records):
    first = write_estimate(records, tmp_path / "a.npz", chunk_mb=0.001)
    store = convert_npz(first, tmp_path / "a.zarr", chunk_mb=0.001)
    second = write_fz_npz(memoxr.open_influence(store), tmp_path / "b.npz")
    with np.load(first) as a, np.load(second) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


# ------------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def trials_file(tmp_path, records):
    return str(write_trials(records, tmp_path / "trials.npz"))


@pytest.mark.parametrize("name", ["out.zarr", "out.npz"])
def test_cli_writes(tmp_path, trials_file, name):
    out = tmp_path / name
    result = CliRunner().invoke(main, ["estimate", trials_file, str(out), "--chunk-mb", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    ds = memoxr.open_influence(out)
    assert ds.sizes["class"] == 3
    again = CliRunner().invoke(main, ["estimate", trials_file, str(out), "-q"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert CliRunner().invoke(main, ["estimate", trials_file, str(out), "-q", "--overwrite"]).exit_code == 0


def test_cli_full(tmp_path, trials_file):
    out = tmp_path / "full.zarr"
    result = CliRunner().invoke(main, ["estimate", trials_file, str(out), "--full", "-q"])
    assert result.exit_code == 0, result.output
    assert "influence_full" in memoxr.open_influence(out)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--full"], "full: the FZ .npz layout"),
        (["--chunk-mb", "-1"], "--chunk-mb must be a positive number of megabytes"),
    ],
)
def test_cli_bad_options_exit_2(tmp_path, trials_file, args, match):
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["estimate", trials_file, str(out), "-q", *args])
    assert result.exit_code == 2 and match in result.output
    assert list(tmp_path.iterdir()) == [Path(trials_file)]


def test_cli_bad_input_exit_2_leaves_nothing(tmp_path, records):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**records, "mask": records["mask"].astype(int) * 3})
    for name in ("out.zarr", "out.npz"):
        result = CliRunner().invoke(main, ["estimate", str(bad), str(tmp_path / name), "-q"])
        assert result.exit_code == 2
        assert "key 'mask': expected 0/1 values, received 3" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_blas_runs_one_thread_per_dask_thread_only_around_threaded_work():
    import dask
    from threadpoolctl import threadpool_info

    from memoxr.compute.blas import blas_threads_for_dask

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    x = da.ones((4, 4), chunks=2)
    with blas_threads_for_dask([x]):
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
    with dask.config.set(scheduler="synchronous"), blas_threads_for_dask([x]):
        assert blas_threads() == before


def test_indices_and_counts_are_coordinates_in_memory_and_data_on_disk(tmp_path, records):
    ds = estimate(records, chunk_mb=0.001)
    assert {"train_index", "test_index", "train_count", "test_count"} <= set(ds.coords)
    assert "train_index" not in ds.mean("train_sample").coords  # never averaged as data
    path = estimate_to_zarr(records, tmp_path / "e.zarr", chunk_mb=0.001)
    on_disk = xr.open_zarr(path)
    assert {"train_index", "test_index", "train_count", "test_count"} <= set(on_disk.data_vars)  # the 0.x format
    reopened = memoxr.open_influence(path)
    xr.testing.assert_equal(reopened["train_index"], ds["train_index"].compute())


def test_a_trials_store_written_again_gets_other_task_keys(tmp_path):
    # A result of the old store still held (persisted, or on a cluster) must not stand in for the new one's.
    from memoxr.estimate.trials import trial_arrays

    old, new = make_records(seed=1), make_records(seed=2)
    path = write_trials(old, tmp_path / "trials.zarr")
    held = trial_arrays(str(path))[0]["mask"].persist()
    write_trials(new, path, overwrite=True)
    fresh = trial_arrays(str(path))[0]["mask"]
    assert fresh.name != held.name
    np.testing.assert_array_equal(dask.compute(held, fresh)[1], np.asarray(new["mask"]) != 0)


def test_a_zarr_v2_trials_store_still_opens_and_keys_its_version(tmp_path):
    # The version behind the keys comes from whichever metadata file the store has (here v2's .zarray).
    import zarr

    from memoxr.estimate.trials import trial_arrays

    records = make_records(seed=3)
    path = tmp_path / "v2.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    for key, values in records.items():
        group.create_array(key, data=np.asarray(values))
    arrays = trial_arrays(str(path))[0]
    np.testing.assert_array_equal(arrays["mask"].compute(), np.asarray(records["mask"]))
    assert trial_arrays(str(path))[0]["mask"].name == arrays["mask"].name  # unchanged: the same keys
