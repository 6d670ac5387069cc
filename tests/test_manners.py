"""Every public reducing function x skipna (None, True, False) x has_nan x backend, against a plain-Python reference.

In the style of xskillscore's metric tables: one table of functions drives the
tests; each result is checked against tests/reference_nan.py (written apart from
memoxr), numpy and dask results are compared, and the NaN rules are the
documented ones (memoxr.compute.manners). Fixtures are ragged and span several
chunks on every reduced dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import reference_nan as ref
import xarray as xr

import memoxr
from memoxr.datasets.synthetic import make_fz_arrays

from conftest import RAGGED_TEST, RAGGED_TRAIN, SMALL_CHUNKS, write_npz

CHUNKS = {"class": SMALL_CHUNKS.cls, "train_sample": SMALL_CHUNKS.train, "test_sample": SMALL_CHUNKS.test}
#: NaN placed inside real influence rows: (class, train row, test columns).
NAN_ENTRIES = [(0, 1, [2]), (1, 5, slice(None)), (2, 0, [1]), (3, 0, [10]), (3, 8, [0, 10])]
TOP_K = 4
SKIPNA = [None, True, False]
#: Functions whose ``skipna=None`` is ``False`` (NaN propagates); the others rank or compare samples (``True``).
PROPAGATING = {"influence_scores", "row_statistics", "class_stats", "score_errors"}
PAIRS = {"min_infl": 0.05, "min_mem": 0.2, "top_k_per_test": 3}


def influence_se(train, test):
    """A made-up standard error of influence(train, test), from the indices alone (the reference recomputes it)."""
    return 0.01 + ((train * 31 + test * 17) % 13) / 100


def tr_mem_se(train):
    return 0.02 + (train % 7) / 50


@dataclass
class Case:
    arrays: dict
    ds: xr.Dataset  # lazy, several chunks on every dim

    def influence(self, backend: str) -> xr.Dataset:
        if backend == "numpy":
            return self.ds.compute()  # a copy: the lazy fixture stays lazy
        assert self.ds["influence"].chunks is not None
        return self.ds

    def scores(self, backend: str) -> xr.Dataset:
        scores = memoxr.influence_scores(self.ds).compute()
        return scores if backend == "numpy" else scores.chunk({"class": 2, "train_sample": 4})

    def estimate(self, backend: str) -> xr.Dataset:
        """The influence Dataset with the standard errors an estimate store keeps (padding NaN)."""
        ds = self.influence(backend)
        train, test = ds["train_index"], ds["test_index"]
        se = influence_se(train, test).where((train >= 0) & (test >= 0)).transpose("class", "train_sample", "test_sample")
        return ds.assign(influence_se=se.astype(np.float32), tr_mem_se=tr_mem_se(ds["train_id"]).astype(np.float64))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    out = {}
    for has_nan in (False, True):
        arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=11)
        if has_nan:
            for k, row, columns in NAN_ENTRIES:
                arrays[f"infl_matrix_class{k}"][row, columns] = np.nan
        path = write_npz(tmp_path_factory.mktemp("m") / "m.npz", arrays)
        ds = memoxr.open_influence(path).chunk(CHUNKS)
        assert all(len(c) > 1 for c in ds["influence"].chunks), "fixture must span several chunks on every dim"
        out[has_nan] = Case(arrays, ds)
    return out


# --------------------------------------------------------------------------- the table


def run_influence_scores(case, backend, skipna):
    return memoxr.influence_scores(case.influence(backend), skipna=skipna).compute()


def check_influence_scores(got, case, skipna):
    expected = ref.scores(case.arrays, skipna)
    for c, k in enumerate(got["class"].values.tolist()):
        n = len(expected[k]["original_memo"])
        assert int(got["train_count"][c]) == n
        np.testing.assert_array_equal(got["training_indices"].values[c, :n], expected[k]["training_indices"])
        for name in ref.SAMPLE_FIELDS:
            np.testing.assert_allclose(got[name].values[c, :n], expected[k][name], rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name} class {k}")
            assert np.isnan(got[name].values[c, n:]).all()


def run_row_statistics(case, backend, skipna):
    return memoxr.row_statistics(case.influence(backend)["influence"], skipna=skipna).compute()


def check_row_statistics(got, case, skipna):
    expected = ref.row_statistics(case.arrays, skipna)
    for c, k in enumerate(got["class"].values.tolist()):
        rows = np.array(expected[k], dtype=float).reshape(-1, 4)
        n = len(rows)
        for f, field in enumerate(("count", "positive_mean", "mean", "std")):
            np.testing.assert_allclose(got[field].values[c, :n], rows[:, f], rtol=1e-6, atol=1e-12,
                                       err_msg=f"{field} class {k}")
        assert (got["count"].values[c, n:] == 0).all() and np.isnan(got["mean"].values[c, n:]).all()


def run_class_stats(case, backend, skipna):
    return memoxr.class_stats(case.scores(backend), skipna=skipna)


def check_class_stats(got, case, skipna):
    expected = pd.DataFrame(ref.class_stats(ref.scores(case.arrays, False), skipna))
    pd.testing.assert_frame_equal(got, expected[got.columns], check_dtype=False, rtol=1e-6)


def run_top_k(case, backend, skipna):
    scores = case.scores(backend)
    return {k: memoxr.top_k(scores, k, k=TOP_K, by="influence_weighted_memo", skipna=skipna)
            for k in scores["class"].values.tolist()}


def check_top_k(got, case, skipna):
    per_class = ref.scores(case.arrays, False)
    for k, frame in got.items():
        expected = ref.top_k(per_class, k, TOP_K, "influence_weighted_memo", skipna)
        assert frame["rank"].tolist() == list(range(1, len(expected) + 1))
        assert frame["train_sample"].tolist() == [e[0] for e in expected]
        assert frame["sample_index"].tolist() == [e[1] for e in expected]
        for name in ref.SAMPLE_FIELDS:
            np.testing.assert_allclose(frame[name], [e[2][name] for e in expected], rtol=1e-6, atol=1e-12)


def run_top_classes(case, backend, skipna):
    return memoxr.top_classes(memoxr.class_stats(case.scores(backend)), n=3, skipna=skipna)


def check_top_classes(got, case, skipna):
    expected = ref.top_classes(ref.class_stats(ref.scores(case.arrays, False), False), 3, skipna)
    for method, labels in expected.items():
        assert got[got["method"] == method]["class_label"].tolist() == labels, method


def run_rank_agreement(case, backend, skipna):
    return memoxr.rank_agreement(case.scores(backend), skipna=skipna)


def check_rank_agreement(got, case, skipna):
    expected = ref.rank_agreement(ref.scores(case.arrays, False), skipna)
    table = got.set_index(["class_label", "method_a", "method_b"])["spearman"]
    assert len(table) == len(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert np.isnan(table[key]), key
        else:
            assert table[key] == pytest.approx(value, abs=1e-12), key


def run_score_ranges(case, backend, skipna):
    return memoxr.score_ranges(case.scores(backend), skipna=skipna)


def check_score_ranges(got, case, skipna):
    expected = ref.score_ranges(ref.scores(case.arrays, False), skipna)
    table = got.set_index("method")
    for method, (low, high) in expected.items():
        np.testing.assert_allclose(table.loc[method, ["min", "max"]].to_numpy(float), [low, high], rtol=1e-6)


def run_analyze(case, backend, skipna):
    scores = case.scores(backend)
    return memoxr.analyze(scores, memoxr.class_stats(scores), class_label=3, k=TOP_K, n_classes=3, skipna=skipna)


def check_analyze(got, case, skipna):
    per_class = ref.scores(case.arrays, False)
    check_score_ranges(got.ranges, case, skipna)
    check_rank_agreement(got.agreement, case, skipna)
    check_top_classes(got.top_classes, case, skipna)
    for method, frame in got.top_samples.items():
        expected = ref.top_k(per_class, 3, TOP_K, method, skipna)
        assert frame["train_sample"].tolist() == [e[0] for e in expected], method


def run_pairs(case, backend, skipna):
    return memoxr.pairs(case.influence(backend), **PAIRS, skipna=skipna)


def check_pairs(got, case, skipna):
    expected = ref.pairs(case.arrays, PAIRS["min_infl"], PAIRS["min_mem"], PAIRS["top_k_per_test"], skipna)
    assert len(got) == len(expected) > 0
    got_rows = got[["class_label", "train_index", "test_index", "test_label"]].to_numpy().tolist()
    assert got_rows == [list(row[:4]) for row in expected]
    np.testing.assert_allclose(got["memorization"], [row[4] for row in expected], rtol=1e-12)
    np.testing.assert_allclose(got["influence"], [row[5] for row in expected], rtol=1e-7)


def run_score_errors(case, backend, skipna):
    from memoxr.estimate.uncertainty import score_errors

    return score_errors(case.estimate(backend), skipna=skipna).compute()


def check_score_errors(got, case, skipna):
    train = {int(i) for k in ref.classes_of(case.arrays) for i in case.arrays[f"tr_classidx_{k}"]}
    test = {int(j) for k in ref.classes_of(case.arrays) for j in case.arrays[f"tt_classidx_{k}"]}
    se_by_class = {
        k: [[influence_se(int(i), int(j)) for j in case.arrays[f"tt_classidx_{k}"]] for i in case.arrays[f"tr_classidx_{k}"]]
        for k in ref.classes_of(case.arrays)
    }
    expected = ref.score_errors(case.arrays, se_by_class, {i: tr_mem_se(i) for i in train}, skipna)
    assert test  # the fixture has test samples
    for c, k in enumerate(got["class"].values.tolist()):
        n = len(expected[k]["pos_infl_mean"])
        for name, values in expected[k].items():
            np.testing.assert_allclose(got[name].values[c, :n], values, rtol=1e-6, atol=1e-12, err_msg=f"{name} class {k}")


FUNCTIONS = {
    "influence_scores": (run_influence_scores, check_influence_scores),
    "row_statistics": (run_row_statistics, check_row_statistics),
    "class_stats": (run_class_stats, check_class_stats),
    "top_k": (run_top_k, check_top_k),
    "top_classes": (run_top_classes, check_top_classes),
    "rank_agreement": (run_rank_agreement, check_rank_agreement),
    "score_ranges": (run_score_ranges, check_score_ranges),
    "analyze": (run_analyze, check_analyze),
    "pairs": (run_pairs, check_pairs),
    "score_errors": (run_score_errors, check_score_errors),
}


@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_matches_reference(cases, name, skipna, has_nan, backend):
    run, check = FUNCTIONS[name]
    check(run(cases[has_nan], backend, skipna), cases[has_nan], skipna)


def _flat(result):
    """Every number of a result, in a fixed order (Dataset, DataFrame, dict of frames, Analysis)."""
    if isinstance(result, xr.Dataset):
        return np.concatenate([np.ravel(result[n].values).astype(float) for n in sorted(result.variables)])
    if isinstance(result, pd.DataFrame):
        return np.concatenate([pd.to_numeric(result[c], errors="coerce").to_numpy(float) for c in result.columns])
    if isinstance(result, dict):
        return np.concatenate([_flat(result[k]) for k in sorted(result)])
    return np.concatenate([_flat(result.ranges), _flat(result.top_samples), _flat(result.agreement)])


@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_numpy_equals_dask(cases, name, skipna, has_nan):
    run, _ = FUNCTIONS[name]
    eager, lazy = (_flat(run(cases[has_nan], backend, skipna)) for backend in ("numpy", "dask"))
    # The hot loop sums float32 rows whole (numpy) or merges per-chunk partials (dask): ~1e-7 apart.
    np.testing.assert_allclose(eager, lazy, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_skipna_matters_exactly_when_there_is_nan(cases, name):
    """No NaN: skipna changes nothing. NaN: skipna=False lets more NaN through than skipna=True."""
    run, _ = FUNCTIONS[name]
    clean = [_flat(run(cases[False], "numpy", s)) for s in (False, True)]
    np.testing.assert_array_equal(*clean)
    strict, skipping = (_flat(run(cases[True], "numpy", s)) for s in (False, True))
    if name in ("top_k", "top_classes", "pairs"):  # rankings: NaN listed last, or dropped
        assert len(strict) > len(skipping)
    else:
        assert np.isnan(strict).sum() > np.isnan(skipping).sum()


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_default_is_one_of_the_two_rules(cases, name):
    """skipna=None is False for a reduction of a sample's own values or a per-class statistic, True for rankings."""
    run, _ = FUNCTIONS[name]
    default = _flat(run(cases[True], "numpy", None))
    same_as = name not in PROPAGATING
    np.testing.assert_array_equal(default, _flat(run(cases[True], "numpy", same_as)))
    if name != "analyze":  # analyze mixes both (the table it is given propagates, its rankings skip)
        other = _flat(run(cases[True], "numpy", not same_as))
        assert len(other) != len(default) or not np.array_equal(default, other, equal_nan=True)
