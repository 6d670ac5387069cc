"""influence_scores against the plain-Python reference, lazily and in memory."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given
from hypothesis import strategies as st

import memoxr
from memoxr.convert import convert_npz
from memoxr.datasets.synthetic import make_fz_arrays

from conftest import SMALL_CHUNKS, CountingStore, raise_if_dask_computes, write_npz
from reference import all_scores

NAMES = ["influence_weighted_memo", "representativeness_score", "weighted_combination",
         "critical_sample_score", "pos_infl_mean", "influence_std", "original_memo"]


def assert_matches_reference(scores, arrays, alpha=0.7, beta=0.3):
    expected = all_scores(arrays, alpha, beta)
    assert scores["class"].values.tolist() == sorted(expected)
    for c, k in enumerate(scores["class"].values):
        n = len(expected[k]["original_memo"])
        assert int(scores["train_count"][c]) == n
        np.testing.assert_array_equal(scores["training_indices"].values[c, :n], expected[k]["training_indices"])
        assert (scores["training_indices"].values[c, n:] == -1).all()
        for name in NAMES:
            got = scores[name].values[c]
            np.testing.assert_allclose(got[:n], expected[k][name], rtol=1e-6, atol=1e-12, err_msg=f"{name} class {k}")
            assert np.isnan(got[n:]).all(), f"padding leaked into {name} of class {k}"


@pytest.mark.parametrize("which", ["ragged", "balanced"])
def test_scores_match_reference_over_several_chunks(request, which):
    store = request.getfixturevalue(f"{which}_store")
    arrays = request.getfixturevalue(f"{which}_arrays")
    ds = memoxr.open_influence(store)
    assert all(len(c) > 1 for c in ds["influence"].chunks), "fixture must span several chunks on every dim"
    assert_matches_reference(memoxr.influence_scores(ds).compute(), arrays)


def test_alpha_beta(ragged_store, ragged_arrays):
    scores = memoxr.influence_scores(memoxr.open_influence(ragged_store), alpha=0.2, beta=1.5)
    assert_matches_reference(scores.compute(), ragged_arrays, 0.2, 1.5)
    assert scores.attrs["alpha"] == 0.2 and scores.attrs["beta"] == 1.5


def test_dask_equals_numpy(ragged_store):
    ds = memoxr.open_influence(ragged_store)
    lazy = memoxr.influence_scores(ds).compute()
    eager = memoxr.influence_scores(ds.load())
    assert not any(v.chunks for v in eager.data_vars.values())
    xr.testing.assert_allclose(lazy, eager, rtol=1e-6)


def test_npz_viewed_in_place_equals_store(ragged_npz, ragged_store):
    from_npz = memoxr.influence_scores(memoxr.open_influence(ragged_npz, chunk_mb=0.0001)).compute()
    from_store = memoxr.influence_scores(memoxr.open_influence(ragged_store)).compute()
    xr.testing.assert_allclose(from_npz.drop_attrs(), from_store.drop_attrs(), rtol=1e-6)


def test_scores_of_different_inputs_computed_together_stay_apart(ragged_store, ragged_arrays, balanced_store):
    # dask identifies tasks by key: two score graphs must not share one, or one's values stand in for the other's.
    from memoxr.compute.progress import compute

    ds = memoxr.open_influence(ragged_store)
    halved = ds.copy()
    halved["influence"] = ds["influence"] / 2
    lazy = {
        "ragged": memoxr.influence_scores(ds),
        "halved": memoxr.influence_scores(halved),
        "other weights": memoxr.influence_scores(ds, alpha=0.2, beta=1.5),
        "balanced": memoxr.influence_scores(memoxr.open_influence(balanced_store)),
    }
    together = dict(zip(lazy, compute(*lazy.values()), strict=True))
    for name, scores in lazy.items():
        xr.testing.assert_identical(together[name], scores.compute())
    assert_matches_reference(together["ragged"], ragged_arrays)
    assert_matches_reference(together["other weights"], ragged_arrays, 0.2, 1.5)
    np.testing.assert_allclose(together["halved"]["pos_infl_mean"], together["ragged"]["pos_infl_mean"] / 2, rtol=1e-6)


def test_lazy_calls_compute_nothing(ragged_store):
    with raise_if_dask_computes():
        ds = memoxr.open_influence(ragged_store)
        scores = memoxr.influence_scores(ds)
        stats = memoxr.row_statistics(ds["influence"])
    assert all(v.chunks for v in scores.data_vars.values())
    assert stats["std"].chunks is not None


def test_scores_and_stats_read_each_influence_chunk_once(ragged_store):
    counting = CountingStore(zarr.storage.LocalStore(ragged_store, read_only=True))
    ds = memoxr.open_influence(counting)
    n_chunks = int(np.prod([len(c) for c in ds["influence"].chunks]))
    counting.reads.clear()
    memoxr.class_stats(memoxr.influence_scores(ds))
    reads = {k: v for k, v in counting.reads.items() if k.startswith("influence/c")}
    assert len(reads) == n_chunks
    assert set(reads.values()) == {1}, f"chunks read more than once: {reads}"


def test_calculate_reads_each_influence_chunk_once(ragged_store, monkeypatch):
    from memoxr import workflows

    counting = CountingStore(zarr.storage.LocalStore(ragged_store, read_only=True))
    monkeypatch.setattr(workflows, "open_influence", lambda *a, **k: memoxr.open_influence(counting))
    workflows.calculate("ignored")
    reads = [v for k, v in counting.reads.items() if k.startswith("influence/c")]
    assert reads and set(reads) == {1}


def _one_class(matrix, memo):
    n_tr, n_tt = matrix.shape
    return {
        "tr_mem": np.asarray(memo, dtype=float), "tr_labels": np.zeros(n_tr, dtype=int),
        "tt_labels": np.zeros(n_tt, dtype=int), "tr_classidx_0": np.arange(n_tr),
        "tt_classidx_0": np.arange(n_tt), "infl_matrix_class0": np.asarray(matrix, dtype=np.float32),
    }


def _scores_of(tmp_path, arrays, **kwargs):
    path = write_npz(tmp_path / "x.npz", arrays)
    return memoxr.influence_scores(memoxr.open_influence(path, chunk_mb=1e-5), **kwargs).compute()


def test_nan_inside_a_real_row(tmp_path):
    matrix = np.array([[0.2, np.nan, 0.4, -0.1], [0.1, 0.3, 0.0, 0.2], [0.5, 0.1, 0.1, 0.1]])
    arrays = _one_class(matrix, [0.5, 0.8, 0.6])
    strict = _scores_of(tmp_path, arrays)
    assert np.isnan(strict["influence_weighted_memo"].values[0, 0])
    assert np.isnan(strict["critical_sample_score"].values[0, 0])
    # The NaN sample is not ranked: the two others rank 0 and 1 among two.
    np.testing.assert_allclose(strict["critical_sample_score"].values[0, 1:], [0.0, 0.6])
    skipping = _scores_of(tmp_path, arrays, skipna=True)
    row = np.array([0.2, 0.4, -0.1])
    np.testing.assert_allclose(skipping["pos_infl_mean"].values[0, 0], np.maximum(row, 0).mean())
    np.testing.assert_allclose(skipping["influence_std"].values[0, 0], row.std())


def test_zero_std_rule(tmp_path):
    arrays = _one_class(np.array([[0.3, 0.3, 0.3], [0.1, 0.5, 0.0]]), [0.5, 0.8])
    zero = _scores_of(tmp_path, arrays)
    assert zero["representativeness_score"].values[0, 0] == 0.0
    nan = _scores_of(tmp_path, arrays, zero_std="nan")
    assert np.isnan(nan["representativeness_score"].values[0, 0])
    assert np.isfinite(nan["representativeness_score"].values[0, 1])


def test_bad_options(ragged_store):
    ds = memoxr.open_influence(ragged_store)
    with pytest.raises(memoxr.MemoxrInputError, match="alpha must be a finite number; received nan"):
        memoxr.influence_scores(ds, alpha=float("nan"))
    with pytest.raises(memoxr.MemoxrInputError, match=r"zero_std must be one of \('zero', 'nan'\); received 'inf'"):
        memoxr.influence_scores(ds, zero_std="inf")
    with pytest.raises(memoxr.MemoxrInputError, match="variable 'influence' missing"):
        memoxr.influence_scores(ds.drop_vars("influence"))


@given(
    sizes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 6)), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    alpha=st.floats(0, 1),
)
def test_score_properties(tmp_path_factory, sizes, seed, alpha):
    arrays = make_fz_arrays([s[0] for s in sizes], [s[1] for s in sizes], seed=seed)
    path = write_npz(tmp_path_factory.mktemp("h") / "h.npz", arrays)
    scores = memoxr.influence_scores(memoxr.open_influence(path, chunk_mb=1e-5), alpha=alpha, beta=1 - alpha).compute()
    real = scores["training_indices"].values >= 0
    memo = scores["original_memo"].values[real]
    crit = scores["critical_sample_score"].values[real]
    assert ((crit >= -1e-12) & (crit <= memo + 1e-12)).all()
    wc = scores["weighted_combination"].values[real]
    assert ((wc >= alpha * memo - 1e-12) & (wc <= alpha * memo + (1 - alpha) + 1e-12)).all()
    assert (scores["influence_std"].values[real] >= 0).all()
    # Each class's normalized influence peaks at exactly 1 unless its influence is all non-positive.
    assert real.sum() == sum(s[0] for s in sizes) == int(scores["train_count"].sum())
    table = memoxr.class_stats(scores)
    assert table["sample_count"].sum() == real.sum()


def test_convert_chunk_mb_splits_whole_classes(tmp_path, ragged_npz, ragged_arrays):
    store = convert_npz(ragged_npz, tmp_path / "a.zarr", chunk_mb=12 * 11 * 4 * 2 / 2**20)
    ds = memoxr.open_influence(store)
    assert ds["influence"].chunks == ((2, 2, 2), (12,), (11,))
    assert_matches_reference(memoxr.influence_scores(ds).compute(), ragged_arrays)


@pytest.mark.parametrize("classes_per_block", [1, 2, 3, 100])
def test_per_class_blocks_follow_the_class_chunks(ragged_store, ragged_arrays, monkeypatch, classes_per_block):
    """The per-class step merges whole class chunks up to PER_CLASS_BLOCK_BYTES, never splits one,
    and its block layout changes no value."""
    import memoxr.influence.scores as scores_module

    ds = memoxr.open_influence(ragged_store)
    chunks = ds["influence"].chunks[0]
    per_class = ds.sizes["train_sample"] * 4 * 8  # four float64 moments per sample
    monkeypatch.setattr(scores_module, "PER_CLASS_BLOCK_BYTES", classes_per_block * per_class)
    scores = memoxr.influence_scores(ds)
    blocks = scores["critical_sample_score"].chunks[0]
    assert sum(blocks) == sum(chunks) and set(np.cumsum(chunks)) >= set(np.cumsum(blocks))
    assert blocks == (chunks if classes_per_block < 2 * SMALL_CHUNKS.cls else (sum(chunks),))
    assert all(b <= max(classes_per_block, SMALL_CHUNKS.cls) for b in blocks)
    assert_matches_reference(scores.compute(), ragged_arrays)


def test_small_chunks_fixture_is_what_it_says(ragged_store):
    ds = memoxr.open_influence(ragged_store)
    assert ds["influence"].data.chunksize == (SMALL_CHUNKS.cls, SMALL_CHUNKS.train, SMALL_CHUNKS.test)


def test_weights_accept_numpy_reals_and_refuse_bools(ragged_store):
    ds = memoxr.open_influence(ragged_store)
    scores = memoxr.influence_scores(ds, alpha=np.float32(0.5), beta=np.int64(1))
    assert scores.attrs["alpha"] == 0.5 and scores.attrs["beta"] == 1.0
    with pytest.raises(memoxr.MemoxrInputError, match="alpha must be a finite number; received True"):
        memoxr.influence_scores(ds, alpha=True)
