"""Standard errors, sufficient sums, incremental trials (--append) and bootstrap intervals of the estimator."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_estimate import make_records

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz
from memoxr.errors import MemoxrInputError
from memoxr.estimate import estimate, estimate_to_zarr, write_estimate, write_trials
from memoxr.estimate import sums as _estimate_sums
from memoxr.estimate.bootstrap import (
    _BYTES_PER_VALUE,
    bootstrap_weights,
    interval_blocks,
    nan_quantiles,
)
from memoxr.estimate.incremental import append_estimate
from memoxr.io.chunks import BlockChunks

SMALL = {"chunks": BlockChunks(2, 4, 3), "chunk_mb": 0.001}  # several chunks on every dim, trials included
SUMS = ("n_in", "n_out", "train_correct_in", "train_correct_out", "test_correct_total", "test_correct_in")


def split(records, *bounds):
    """Records of trials ``[a, b)`` for consecutive bounds."""
    edges = [0, *bounds, len(records["mask"])]
    return [{k: (v[a:b] if k in ("mask", "train_correct", "test_correct") else v) for k, v in records.items()}
            for a, b in zip(edges, edges[1:], strict=False)]


def loop_counts(mask, correct, i, j_values):
    """Plain loops: trials with i, without i, and correct counts on each j among them."""
    inside = [t for t in range(len(mask)) if mask[t, i]]
    outside = [t for t in range(len(mask)) if not mask[t, i]]
    return (len(inside), len(outside), [sum(correct[t, j] for t in inside) for j in j_values],
            [sum(correct[t, j] for t in outside) for j in j_values])


def wald(k_in, n_in, k_out, n_out):
    if n_in == 0 or n_out == 0:
        return np.nan
    p, q = k_in / n_in, k_out / n_out
    return np.sqrt(p * (1 - p) / n_in + q * (1 - q) / n_out)


# ------------------------------------------------------------------------------------------------
# Standard errors and sums


def test_sums_and_standard_errors_match_a_loop():
    rec = make_records(n_trials=37, n_train=23, n_test=17, n_class=3, seed=4)
    rec["mask"][2, 5] = rec["mask"][3, 5] = False
    rec["mask"][:, 6] = True  # in every subset: no estimate, no error
    with pytest.warns(memoxr.estimate.DegenerateSampleWarning):
        ds = estimate(rec, **SMALL).compute()
    mask, train_correct, test_correct = (np.asarray(rec[k]).astype(bool) for k in ("mask", "train_correct", "test_correct"))
    np.testing.assert_array_equal(ds["test_correct_total"].values, test_correct.sum(axis=0))
    for i in range(mask.shape[1]):
        n_in, n_out, (k_in,), (k_out,) = loop_counts(mask, train_correct, i, [i])
        assert (ds["n_in"].values[i], ds["n_out"].values[i]) == (n_in, n_out)
        assert (ds["train_correct_in"].values[i], ds["train_correct_out"].values[i]) == (k_in, k_out)
        np.testing.assert_allclose(ds["tr_mem_se"].values[i], wald(k_in, n_in, k_out, n_out), rtol=1e-12)
    assert np.isnan(ds["tr_mem_se"].values[6])
    for c in range(ds.sizes["class"]):
        n_i, n_j = int(ds["train_count"][c]), int(ds["test_count"][c])
        tests = ds["test_index"].values[c, :n_j]
        for row, i in enumerate(ds["train_index"].values[c, :n_i]):
            n_in, n_out, k_in, k_out = loop_counts(mask, test_correct, i, tests)
            np.testing.assert_array_equal(ds["test_correct_in"].values[c, row, :n_j], k_in)
            expected = [wald(a, n_in, b, n_out) for a, b in zip(k_in, k_out, strict=True)]
            np.testing.assert_allclose(ds["influence_se"].values[c, row, :n_j], expected, rtol=1e-6)
        assert np.isnan(ds["influence_se"].values[c, n_i:]).all() and np.isnan(ds["influence_se"].values[c, :, n_j:]).all()
        assert (ds["test_correct_in"].values[c, n_i:] == 0).all()


@settings(max_examples=30, deadline=None)
@given(k_in=st.integers(0, 30), extra_in=st.integers(0, 30), k_out=st.integers(0, 30), extra_out=st.integers(0, 30))
def test_standard_error_formula(k_in, extra_in, k_out, extra_out):
    n_in, n_out = k_in + extra_in, k_out + extra_out
    got = _estimate_sums.standard_error(k_in, n_in, k_out, n_out)
    np.testing.assert_allclose(got, wald(k_in, n_in, k_out, n_out), rtol=1e-12)


@pytest.mark.parametrize("block_elements", [1, 5, 2**16])
def test_row_block_standard_error_kernel_equals_the_formula(block_elements):
    from memoxr.estimate.kernels import influence_se_from_sums_f32

    rng = np.random.default_rng(0)
    n_trials = 25
    n_in = rng.integers(0, n_trials + 1, size=(2, 7)).astype(np.float64)
    test_all = rng.integers(0, n_trials + 1, size=(2, 4)).astype(np.float64)
    test_in = np.minimum(rng.integers(0, n_trials + 1, size=(2, 7, 4)), np.minimum(n_in[..., None], test_all[:, None]))
    test_in = np.maximum(test_in, test_all[:, None] - (n_trials - n_in[..., None])).astype(np.float32)
    test_all[1, 2] = np.nan  # padding
    got = influence_se_from_sums_f32(test_in, test_all, n_in, n_trials, block_elements=block_elements)
    expected = _estimate_sums.standard_error(test_in, n_in[..., None], test_all[:, None] - test_in,
                                             n_trials - n_in[..., None])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert np.isnan(got[1, :, 2]).all()


# ------------------------------------------------------------------------------------------------
# Incremental trials


@pytest.mark.parametrize("full", [False, True])
def test_300_at_once_equals_100_plus_200_appended_bit_for_bit(tmp_path, full):
    rec = make_records(n_trials=300, n_train=29, n_test=21, n_class=4, seed=2)
    first, second = split(rec, 100)
    whole = memoxr.open_influence(estimate_to_zarr(rec, tmp_path / "all.zarr", full=full, **SMALL))
    store = estimate_to_zarr(first, tmp_path / "inc.zarr", full=full, **SMALL)
    write_trials(second, tmp_path / "second.npz")
    append_estimate(tmp_path / "second.npz", store, chunk_mb=0.001)
    appended = memoxr.open_influence(store)
    assert appended.attrs["n_trials"] == 300 and appended.attrs["trial_batches"] == [100, 200]
    names = [*SUMS, "influence", "influence_se", "tr_mem", "tr_mem_se", "memorization"]
    names += ["influence_full", "test_correct_in_full"] if full else []
    assert set(names) <= set(appended.data_vars)
    for name in names:
        a, b = whole[name].values, appended[name].values
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name  # to the last bit (NaN included)


def test_append_three_batches_equals_one_estimate(tmp_path):
    rec = make_records(n_trials=90, seed=5)
    parts = split(rec, 20, 55)
    store = estimate_to_zarr(parts[0], tmp_path / "inc.zarr", chunk_mb=0.001)
    for part in parts[1:]:
        append_estimate(part, store, chunk_mb=0.01)  # another trial chunking than the first
    whole = estimate(rec, chunk_mb=0.001).compute()
    appended = memoxr.open_influence(store).compute()
    for name in [*SUMS, "influence", "tr_mem"]:
        np.testing.assert_array_equal(whole[name].values, appended[name].values, err_msg=name)
    assert appended.attrs["trial_batches"] == [20, 35, 35]


def test_interrupted_append_leaves_the_previous_estimate(tmp_path, monkeypatch):
    rec = make_records(n_trials=60)
    first, second = split(rec, 30)
    store = Path(estimate_to_zarr(first, tmp_path / "est.zarr", **SMALL))
    before = {p.relative_to(store): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user stopped it in the middle of the products

    monkeypatch.setattr(_estimate_sums, "_class_products_block", broken)
    with pytest.raises(KeyboardInterrupt):
        append_estimate(second, store, chunk_mb=0.001)
    after = {p.relative_to(store): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est.zarr"]  # no partial left beside it
    assert memoxr.open_influence(store).attrs["n_trials"] == 30


def test_append_errors(tmp_path):
    rec = make_records(n_trials=40)
    first, second = split(rec, 20)
    npz = write_estimate(first, tmp_path / "est.npz", chunk_mb=0.001)
    # An old store: converted from an FZ npz, no sums. It opens; appending to it says why not.
    converted = convert_npz(npz, tmp_path / "converted.zarr")
    assert "influence" in memoxr.open_influence(converted)
    with pytest.raises(MemoxrInputError, match=r"holds no trial sums \(missing \['n_in'.*estimate all the trials again"):
        append_estimate(second, converted)
    with pytest.raises(MemoxrInputError, match="an FZ .npz holds no trial sums"):
        append_estimate(second, npz)
    with pytest.raises(MemoxrInputError, match="does not exist; expected an estimate store to append to"):
        append_estimate(second, tmp_path / "missing.zarr")
    with pytest.raises(MemoxrInputError, match="needs a local store"):
        append_estimate(second, "s3://bucket/est.zarr")
    store = estimate_to_zarr(first, tmp_path / "est.zarr", chunk_mb=0.001)
    other = dict(second, tr_labels=np.roll(second["tr_labels"], 1))
    with pytest.raises(MemoxrInputError, match=r"key 'tr_labels': expected the labels of store .* received label"):
        append_estimate(other, store)
    fewer = dict(second, tt_labels=second["tt_labels"][:-1], test_correct=second["test_correct"][:, :-1])
    with pytest.raises(MemoxrInputError, match=r"key 'tt_labels'.*received 18 samples, the store 19"):
        append_estimate(fewer, store)
    reordered = tmp_path / "reordered.npz"
    np.savez(reordered, **second, sample_order=np.array("another order"))
    with pytest.raises(MemoxrInputError, match="sample order 'another order', expected the store's 'trials'"):
        append_estimate(reordered, store)
    assert memoxr.open_influence(store).attrs["n_trials"] == 20


def test_append_drops_bootstrap_intervals_with_a_warning(tmp_path):
    first, second = split(make_records(n_trials=40), 20)
    store = estimate_to_zarr(first, tmp_path / "est.zarr", chunk_mb=0.05, bootstrap=20)
    with pytest.warns(UserWarning, match="bootstrap intervals .* are dropped"):
        append_estimate(second, store)
    assert "influence_ci_low" not in memoxr.open_influence(store)


def test_cli_append(tmp_path):
    rec = make_records(n_trials=50)
    first, second = split(rec, 25)
    write_trials(first, tmp_path / "a.npz")
    write_trials(second, tmp_path / "b.zarr")
    runner = CliRunner()
    out = tmp_path / "est.zarr"
    assert runner.invoke(main, ["estimate", str(tmp_path / "a.npz"), str(out), "-q"]).exit_code == 0
    again = runner.invoke(main, ["estimate", str(tmp_path / "a.npz"), str(out), "--append", "-q"])
    assert again.exit_code == 2 and "already in store" in again.output, again.output  # never counted twice
    result = runner.invoke(main, ["estimate", str(tmp_path / "b.zarr"), str(out), "--append", "-q"])
    assert result.exit_code == 0, result.output
    assert "appended to" in result.output
    np.testing.assert_array_equal(memoxr.open_influence(out)["tr_mem"].values, estimate(rec)["tr_mem"].values)
    for args, match in [
        (["--append", "--overwrite"], "received it with --overwrite"),
        (["--append", "--bootstrap", "5"], "received it with --overwrite, --full, --bootstrap"),
    ]:
        result = runner.invoke(main, ["estimate", str(tmp_path / "b.zarr"), str(out), *args])
        assert result.exit_code == 2 and match in result.output, result.output
    result = runner.invoke(main, ["estimate", str(tmp_path / "b.zarr"), str(tmp_path / "new.zarr"), "--append"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert memoxr.open_influence(out).attrs["n_trials"] == 50


# ------------------------------------------------------------------------------------------------
# Bootstrap intervals


@settings(max_examples=30, deadline=None)
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 5)),
                    elements=st.one_of(st.floats(-10, 10), st.just(np.nan))),
       q=st.floats(0, 1))
def test_nan_quantiles_equal_numpy(x, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        expected = np.nanquantile(x, q, axis=0)
    np.testing.assert_allclose(nan_quantiles(x, (q,))[0], expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(replicates=st.integers(1, 5000), mb=st.floats(0.01, 64), n_train=st.integers(1, 10**5),
       max_train=st.integers(1, 10**4), max_test=st.integers(1, 10**4))
def test_bootstrap_blocks_stay_within_the_budget(replicates, mb, n_train, max_train, max_test):
    budget = int(mb * 2**20)
    mem_block, ti, tj = interval_blocks(replicates, budget, n_train, max(max_train, 1), max_test)
    assert 1 <= mem_block <= n_train and 1 <= ti <= max_train and 1 <= tj <= max_test
    if budget >= replicates * _BYTES_PER_VALUE:  # else one sample per task, the least there is
        assert replicates * mem_block * _BYTES_PER_VALUE <= budget
        assert replicates * ti * tj * _BYTES_PER_VALUE <= budget


def test_bootstrap_intervals_match_a_loop_over_resamples():
    rec = make_records(n_trials=30, n_train=13, n_test=11, n_class=2, seed=7)
    ds = estimate(rec, chunk_mb=0.002, bootstrap=15, confidence=0.8, seed=3).compute()
    weights = bootstrap_weights(30, 15, seed=3).astype(np.int64)
    mask, train_correct, test_correct = (np.asarray(rec[k]).astype(bool) for k in ("mask", "train_correct", "test_correct"))

    def resampled(values, i):
        """Estimates of each resample: trials repeated as drawn, then the plain definition."""
        out = []
        for w in weights:
            trials = np.repeat(np.arange(30), w)
            inside = [t for t in trials if mask[t, i]]
            outside = [t for t in trials if not mask[t, i]]
            out.append(np.mean(values[inside]) - np.mean(values[outside]) if inside and outside else np.nan)
        return np.array(out)

    for i in range(13):
        expected = np.nanquantile(resampled(train_correct[:, i], i), (0.1, 0.9))
        np.testing.assert_allclose([ds["tr_mem_ci_low"].values[i], ds["tr_mem_ci_high"].values[i]], expected, atol=1e-12)
    for c in range(2):
        n_i, n_j = int(ds["train_count"][c]), int(ds["test_count"][c])
        for row, i in enumerate(ds["train_index"].values[c, :n_i]):
            for col, j in enumerate(ds["test_index"].values[c, :n_j]):
                expected = np.nanquantile(resampled(test_correct[:, j], i), (0.1, 0.9))
                got = [ds["influence_ci_low"].values[c, row, col], ds["influence_ci_high"].values[c, row, col]]
                np.testing.assert_allclose(got, expected, atol=1e-6)
        assert np.isnan(ds["influence_ci_low"].values[c, n_i:]).all()


def _widths(n_trials, seed):
    ds = estimate(make_records(n_trials=n_trials, seed=1), chunk_mb=0.05, bootstrap=60, seed=seed).compute()
    return ds, np.nanmean(ds["influence_ci_high"] - ds["influence_ci_low"]), np.nanmean(ds["tr_mem_ci_high"] - ds["tr_mem_ci_low"])


def test_bootstrap_interval_properties():
    ds, infl_width, mem_width = _widths(100, seed=0)
    finite = np.isfinite(ds["influence"].values)
    inside = (ds["influence_ci_low"].values <= ds["influence"].values) & (ds["influence"].values <= ds["influence_ci_high"].values)
    assert inside[finite].mean() > 0.99  # the point estimate lies inside in typical cases
    mem = ds["tr_mem"].values
    assert ((ds["tr_mem_ci_low"].values <= mem) & (mem <= ds["tr_mem_ci_high"].values)).mean() > 0.95
    # About 2 x 1.96 standard errors wide, as the normal approximation says.
    assert 3 < infl_width / np.nanmean(ds["influence_se"].values) < 4.8
    bigger, infl_width_4x, mem_width_4x = _widths(400, seed=0)
    assert infl_width_4x < 0.65 * infl_width and mem_width_4x < 0.65 * mem_width  # ~1/2: sqrt(4) times the trials
    again, _, _ = _widths(100, seed=0)
    other, _, _ = _widths(100, seed=1)
    for name in ("influence_ci_low", "influence_ci_high", "tr_mem_ci_low", "tr_mem_ci_high"):
        np.testing.assert_array_equal(ds[name].values, again[name].values)  # reproducible with a seed
    assert not np.array_equal(ds["influence_ci_low"].values, other["influence_ci_low"].values, equal_nan=True)
    assert ds.attrs["bootstrap_replicates"] == 60 and ds.attrs["bootstrap_seed"] == 0


def test_bootstrap_cli_and_errors(tmp_path):
    write_trials(make_records(n_trials=40), tmp_path / "t.npz")
    runner = CliRunner()
    result = runner.invoke(main, ["estimate", str(tmp_path / "t.npz"), str(tmp_path / "e.zarr"), "--bootstrap", "10",
                                  "--confidence", "0.9", "--seed", "4", "-q"])
    assert result.exit_code == 0, result.output
    stored = memoxr.open_influence(tmp_path / "e.zarr")
    assert stored.attrs["bootstrap_confidence"] == 0.9 and stored["influence_ci_low"].dims == stored["influence"].dims
    result = runner.invoke(main, ["estimate", str(tmp_path / "t.npz"), str(tmp_path / "e.npz"), "--bootstrap", "10"])
    assert result.exit_code == 2 and "bootstrap: the FZ .npz layout" in result.output
    assert not (tmp_path / "e.npz").exists()
    rec = make_records()
    with pytest.raises(MemoxrInputError, match="bootstrap: expected a whole number of replicates >= 0, received -1"):
        estimate(rec, bootstrap=-1)
    with pytest.raises(MemoxrInputError, match="confidence: expected a number between 0 and 1"):
        estimate(rec, bootstrap=5, confidence=1.5)
