"""memoxr.plot proxy figures: ROC and PR against scikit-learn, tie-aware binned quantiles against numpy
and pandas, the data map; legends outside the curves; inputs validated."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics

import memoxr
from memoxr import plot as mp

from conftest import raise_if_dask_computes


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def by_gid(artists, prefix):
    return {a.get_gid().split(":", 1)[1]: a for a in artists if (a.get_gid() or "").startswith(prefix)}


# --------------------------------------------------------------------------- roc and precision-recall


@pytest.fixture
def detection():
    rng = np.random.default_rng(3)
    mask = rng.random(300) < 0.2
    return {"csl": mask * 1.0 + rng.normal(0, 1, 300), "noise": rng.random(300)}, mask


def assert_legend_outside(ax):
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_roc_lines_equal_sklearn(detection):
    proxies, mask = detection
    ax = mp.roc_curves(proxies, mask, mask_name="mislabeled")
    lines = by_gid(ax.lines, "roc:")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for name, score in proxies.items():
        fpr, tpr, _ = metrics.roc_curve(mask, score)
        np.testing.assert_array_equal(lines[name].get_xdata(), fpr)
        np.testing.assert_array_equal(lines[name].get_ydata(), tpr)
        assert f"{name} (AUROC {metrics.roc_auc_score(mask, score):.3f})" in legend
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("false positive rate", "true positive rate")
    assert "mislabeled" in ax.get_title()
    assert_legend_outside(ax)


def test_pr_lines_equal_sklearn(detection):
    proxies, mask = detection
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5), layout="constrained")  # the notebook's layout
    ax = mp.pr_curves(proxies, mask, ax=right)
    lines = by_gid(ax.lines, "pr:")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for name, score in proxies.items():
        precision, recall, _ = metrics.precision_recall_curve(mask, score)
        np.testing.assert_array_equal(lines[name].get_xdata(), recall)
        np.testing.assert_array_equal(lines[name].get_ydata(), precision)
        assert f"{name} (AP {metrics.average_precision_score(mask, score):.3f})" in legend
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("recall", "precision")
    mp.roc_curves(proxies, mask, ax=left)
    assert_legend_outside(ax)
    assert_legend_outside(left)


def test_lazy_proxies_nan_dropped_and_computed_together(detection):
    proxies, mask = detection
    csl = proxies["csl"].copy()
    csl[:5] = np.nan
    lazy = {
        "csl": xr.DataArray(da.from_array(csl, chunks=100), dims="sample"),
        "noise": xr.DataArray(da.from_array(proxies["noise"], chunks=100), dims="sample"),
    }
    with raise_if_dask_computes(max_computes=1):
        ax = mp.roc_curves(lazy, xr.DataArray(mask, dims="sample"))
    fpr, tpr, _ = metrics.roc_curve(mask[5:], csl[5:])
    np.testing.assert_array_equal(by_gid(ax.lines, "roc:")["csl"].get_xdata(), fpr)


# --------------------------------------------------------------------------- binned and data map


def band(ax, gid):
    (collection,) = [c for c in ax.collections if c.get_gid() == gid]
    vertices = collection.get_paths()[0].vertices
    return vertices


def test_binned_zeros_are_one_bin_and_the_rest_quantile_bins():
    rng = np.random.default_rng(7)
    memo = np.r_[np.zeros(120), rng.random(90)]  # 57 % ties at 0
    proxy = 3 * memo + rng.lognormal(0, 1, memo.size)  # skewed
    memo_nan, proxy_nan = np.r_[memo, np.nan, 0.5], np.r_[proxy, 1.0, np.nan]  # dropped pairs
    ax = mp.binned_against_memorization(proxy_nan, memo_nan, bins=10, label="CSL", scale="linear")
    # Reference: the zeros, then the 90 distinct others in 9 quantile bins of 10 (pandas).
    rest = memo > 0
    groups = [np.flatnonzero(~rest)] + [
        np.flatnonzero(rest)[pd.qcut(memo[rest], 9, labels=False) == b] for b in range(9)
    ]
    (line,) = [line for line in ax.lines if line.get_gid() == "binned_median"]
    np.testing.assert_allclose(line.get_xdata(), [np.median(memo[g]) for g in groups])
    np.testing.assert_allclose(line.get_ydata(), [np.median(proxy[g]) for g in groups])
    for gid, (low, high) in (("band:25-75", (25, 75)), ("band:10-90", (10, 90))):
        vertices = band(ax, gid)
        lower = [np.percentile(proxy[g], low) for g in groups]
        upper = [np.percentile(proxy[g], high) for g in groups]
        for value in (*lower, *upper):
            assert np.isclose(vertices[:, 1], value).any()
        assert vertices[:, 1].min() == pytest.approx(min(lower))
    (ranges,) = [c for c in ax.collections if c.get_gid() == "bin_range"]
    spans = np.array([segment[:, 0] for segment in ranges.get_segments()])
    np.testing.assert_allclose(spans, [(memo[g].min(), memo[g].max()) for g in groups])
    assert ax.get_ylabel().startswith("CSL") and "memorization" in ax.get_xlabel()
    assert "120 at 0, 9 quantile bins of 10; 210 samples" in ax.get_title()
    assert_legend_outside(ax)


def test_binned_distinct_values_make_equal_count_bins():
    rng = np.random.default_rng(1)
    memo = rng.random(200)
    ax = mp.binned_against_memorization(2 * memo, memo, bins=8)
    bin_of = pd.qcut(memo, 8, labels=False)
    (line,) = [line for line in ax.lines if line.get_gid() == "binned_median"]
    np.testing.assert_allclose(line.get_ydata(), [np.median(2 * memo[bin_of == b]) for b in range(8)])
    assert "8 quantile bins of 25" in ax.get_title()


@given(st.lists(st.integers(0, 6), min_size=1, max_size=80), st.integers(1, 12))
def test_tie_aware_bins_partition_without_splitting_ties(values, bins):
    x = np.array(values, dtype=float)
    bins = min(bins, x.size)
    groups = mp.tie_aware_bins(x, bins)
    heavy = [v for v, count in zip(*np.unique(x, return_counts=True), strict=True) if count * bins >= x.size]
    assert 1 <= len(groups) <= bins + len(heavy)  # one more per tied value a quantile bin would straddle
    rest = x[~np.isin(x, heavy)]
    if not rest.size or max(heavy, default=-np.inf) < rest.min():  # ties below the rest (zeros): at most bins
        assert len(groups) <= bins
    assert sorted(np.concatenate(groups).tolist()) == list(range(x.size))  # every sample once
    for before, after in zip(groups, groups[1:], strict=False):
        assert x[before].max() < x[after].min()  # ascending, a value never in two bins
    for value in heavy:  # one bin's worth of ties: a bin of its own
        assert any(set(x[g]) == {value} for g in groups)


def test_binned_label_from_dataarray_units():
    proxy = xr.DataArray(np.arange(10.0), dims="sample", name="CSL", attrs={"units": "loss x epochs"})
    ax = mp.binned_against_memorization(proxy, np.linspace(0, 1, 10), bins=2)
    assert ax.get_ylabel().startswith("CSL [loss x epochs]")


def test_data_map_points_equal_inputs():
    rng = np.random.default_rng(1)
    confidence, variability, correct = rng.random(50), rng.random(50) / 2, rng.random(50)
    ax = mp.data_map(confidence, variability, correct)
    (points,) = [c for c in ax.collections if c.get_gid() == "data_map"]
    np.testing.assert_array_equal(points.get_offsets(), np.c_[variability, confidence])
    np.testing.assert_array_equal(points.get_array(), correct)
    assert ax.get_xlabel().startswith("variability") and ax.get_ylabel().startswith("confidence")
    assert "correct" in ax.figure.axes[-1].get_ylabel()
    ax = mp.data_map(confidence, variability, correct > 0.5)  # boolean correctness counts as 0 / 1
    (points,) = [c for c in ax.collections if c.get_gid() == "data_map"]
    np.testing.assert_array_equal(points.get_array(), (correct > 0.5).astype(float))



# --------------------------------------------------------------------------- errors


def test_mask_length_mismatch(detection):
    proxies, mask = detection
    with pytest.raises(memoxr.MemoxrInputError, match=r"proxies\['csl'\] must have the shape of mask \(300,\).*received \(299,\)"):
        mp.roc_curves({"csl": proxies["csl"][:-1]}, mask)


def test_non_boolean_mask(detection):
    proxies, mask = detection
    with pytest.raises(memoxr.MemoxrInputError, match=r"mask must be a boolean array .*received dtype int64"):
        mp.pr_curves(proxies, mask.astype(np.int64))


def test_mask_with_one_class(detection):
    proxies, mask = detection
    with pytest.raises(memoxr.MemoxrInputError, match=r"mask must hold both True and False.*received 0 True of 300"):
        mp.roc_curves(proxies, np.zeros(300, dtype=bool))


def test_empty_proxies(detection):
    with pytest.raises(memoxr.MemoxrInputError, match=r"proxies must be a non-empty dict.*\(empty\)"):
        mp.roc_curves({}, detection[1])


def test_dataarrays_in_different_sample_orders():
    mask = xr.DataArray([True, False, True], dims="sample", coords={"sample": [0, 1, 2]})
    proxy = xr.DataArray([0.1, 0.2, 0.3], dims="sample", coords={"sample": [2, 1, 0]})
    with pytest.raises(memoxr.MemoxrInputError, match=r"proxies\['p'\] and mask must label the same samples"):
        mp.roc_curves({"p": proxy}, mask)


@pytest.mark.parametrize("bins", [0, -2, 2.5, True])
def test_bins_below_one_or_not_integer(bins):
    with pytest.raises(memoxr.MemoxrInputError, match=r"bins must be an integer >= 1; received"):
        mp.binned_against_memorization(np.arange(5.0), np.arange(5.0), bins=bins)


def test_more_bins_than_samples():
    with pytest.raises(memoxr.MemoxrInputError, match=r"bins must be at most the number of samples .*\(4\); received 5"):
        mp.binned_against_memorization(np.r_[np.arange(4.0), np.nan], np.arange(5.0), bins=5)


def test_binned_shape_mismatch():
    with pytest.raises(memoxr.MemoxrInputError, match=r"proxy must have the shape of memorization \(5,\).*received \(4,\)"):
        mp.binned_against_memorization(np.arange(4.0), np.arange(5.0))


def test_correct_outside_unit_interval():
    with pytest.raises(memoxr.MemoxrInputError, match=r"correct must be the fraction .*in \[0, 1\].*received 1 values outside"):
        mp.data_map(np.full(3, 0.5), np.full(3, 0.1), np.array([0.0, 1.0, 3.0]))


