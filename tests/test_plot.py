"""memoxr.plot: the figures hold the computed values, inputs are validated, the CLI writes PNGs."""

from __future__ import annotations

import importlib
import sys

import matplotlib

matplotlib.use("Agg")

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from scipy import stats as sps
from sklearn import metrics

import memoxr
from memoxr import plot as mp
from memoxr.analysis import METHODS
from memoxr.convert import convert_npz
from memoxr.synthetic import make_fz_arrays

from conftest import RAGGED_TEST, RAGGED_TRAIN, SMALL_CHUNKS, raise_if_dask_computes, write_npz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def lazy_scores(tmp_path_factory):
    """Scores of the ragged multi-chunk store (conftest's layout), built once for the module."""
    folder = tmp_path_factory.mktemp("plot")
    npz = write_npz(folder / "ragged.npz", make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=11))
    store = convert_npz(npz, folder / "ragged.zarr", chunks=SMALL_CHUNKS)
    return memoxr.influence_scores(memoxr.open_influence(store))


@pytest.fixture(scope="module")
def scores(lazy_scores):
    return lazy_scores.compute()


def real_values(scores, name):
    """Per-class finite values of the real samples, in class order (the reference)."""
    real = scores["training_indices"].values >= 0
    out = {}
    for label, row, keep in zip(scores["class"].values.tolist(), scores[name].values, real, strict=True):
        v = row[keep]
        out[label] = v[np.isfinite(v)]
    return out


def by_gid(artists, prefix):
    return {a.get_gid().split(":", 1)[1]: a for a in artists if (a.get_gid() or "").startswith(prefix)}


def tick_labels(ax):
    return [t.get_text() for t in ax.get_xticklabels()]


def assert_labelled(ax):
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title(loc="center") + ax.get_title(loc="left")


def fake_scores(n_classes, n_train=3, seed=0):
    """A scores Dataset in memory, many classes, no influence behind it."""
    rng = np.random.default_rng(seed)
    shape = (n_classes, n_train)
    data = {name: (("class", "train_sample"), rng.random(shape)) for name in (*METHODS, "pos_infl_mean")}
    index = np.arange(n_classes * n_train).reshape(shape)
    data["training_indices"] = (("class", "train_sample"), index)
    return xr.Dataset(data, coords={"class": np.arange(n_classes)})


# --------------------------------------------------------------------------- score_distributions


def test_box_medians_and_whiskers_equal_per_class_values(scores):
    ax = mp.score_distributions(scores, "original_memo", kind="box", sort_by="median")
    reference = real_values(scores, "original_memo")
    medians = by_gid(ax.lines, "median:")
    assert set(medians) == {str(c) for c in reference}
    for label, values in reference.items():
        np.testing.assert_allclose(medians[str(label)].get_ydata(), np.median(values))
        q1, q3 = np.percentile(values, [25, 75])
        low = values[values >= q1 - 1.5 * (q3 - q1)].min()
        high = values[values <= q3 + 1.5 * (q3 - q1)].max()
        np.testing.assert_allclose(by_gid(ax.lines, "whisker_low:")[str(label)].get_ydata()[1], low)
        np.testing.assert_allclose(by_gid(ax.lines, "whisker_high:")[str(label)].get_ydata()[1], high)
    # Sorted by median, ascending, along x; each median sits above its class's tick.
    order = sorted(reference, key=lambda c: np.median(reference[c]))
    assert tick_labels(ax) == [str(c) for c in order]
    for position, label in zip(ax.get_xticks(), order, strict=True):
        assert np.mean(medians[str(label)].get_xdata()) == pytest.approx(position)
    assert ax.get_ylabel() == "original_memo"
    assert "median" in ax.get_xlabel()
    assert "original_memo" in ax.get_title() and "padding excluded" in ax.get_title()


def test_violin_medians_and_extremes_equal_per_class_values(scores):
    ax = mp.score_distributions(scores, "critical_sample_score", kind="violin", sort_by=None)
    reference = real_values(scores, "critical_sample_score")
    labels = tick_labels(ax)
    assert labels == [str(c) for c in reference]  # class order
    drawn = {label: values for label, values in reference.items() if np.unique(values).size >= 2}
    single = {label: values for label, values in reference.items() if np.unique(values).size < 2}
    assert single, "the ragged fixture has a one-sample class"
    collections = {c.get_gid(): c for c in ax.collections}
    for gid, func in (("medians", np.median), ("mins", np.min), ("maxes", np.max)):
        segments = collections[gid].get_segments()
        assert len(segments) == len(drawn)
        for segment, values in zip(segments, drawn.values(), strict=True):
            np.testing.assert_allclose(segment[:, 1], func(values))
    points = by_gid(ax.lines, "points:")
    for label, values in single.items():
        np.testing.assert_array_equal(points[str(label)].get_ydata(), values)


def test_sort_by_mean_and_a_subset_of_classes(scores):
    ax = mp.score_distributions(scores, "pos_infl_mean", sort_by="mean", classes=[5, 0, 3])
    reference = real_values(scores, "pos_infl_mean")
    order = sorted([5, 0, 3], key=lambda c: np.mean(reference[c]))
    assert tick_labels(ax) == [str(c) for c in order]
    assert set(by_gid(ax.lines, "median:")) == {"0", "3", "5"}
    means = by_gid(ax.lines, "mean:")  # the sorting statistic is drawn
    for label in order:
        np.testing.assert_allclose(means[str(label)].get_ydata(), np.mean(reference[label]))
    ax = mp.score_distributions(scores, "pos_infl_mean", kind="violin", sort_by="mean")
    (collection,) = [c for c in ax.collections if c.get_gid() == "means"]
    drawn = [reference[int(t)] for t in tick_labels(ax) if np.unique(reference[int(t)]).size >= 2]
    np.testing.assert_allclose([seg[0, 1] for seg in collection.get_segments()], [np.mean(v) for v in drawn])


def test_distributions_compute_only_their_variable_once(lazy_scores):
    with raise_if_dask_computes(max_computes=1):
        mp.score_distributions(lazy_scores, "weighted_combination")


def test_many_classes_keep_readable_tick_labels():
    ax = mp.score_distributions(fake_scores(100))
    labels = ax.get_xticklabels()
    assert len(labels) == 100  # 100 classes fit at a readable size: every one is labelled
    assert min(t.get_fontsize() for t in labels) >= 5.5
    ax = mp.score_distributions(fake_scores(250))
    assert len(ax.get_xticklabels()) < 250  # thinned, never shrunk below the minimum size
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 5.5
    ticks = {*ax.get_xticks(), *ax.get_xticks(minor=True)}
    assert ticks == set(range(1, 251))  # but every class keeps a tick (minor where unlabelled)


# --------------------------------------------------------------------------- memorization_vs_influence


def test_scatter_offsets_equal_memorization_and_influence(scores):
    ax = mp.memorization_vs_influence(scores, highlight_class=3, kind="scatter")
    real = scores["training_indices"].values >= 0
    memo, infl = scores["original_memo"].values, scores["pos_infl_mean"].values
    collections = {c.get_gid(): c for c in ax.collections}
    highlighted = collections["class:3"].get_offsets()
    position = scores["class"].values.tolist().index(3)
    np.testing.assert_allclose(highlighted, np.c_[memo[position][real[position]], infl[position][real[position]]])
    both = np.concatenate([collections["others"].get_offsets(), highlighted])
    expected = np.c_[memo[real], infl[real]]
    np.testing.assert_allclose(both[np.lexsort(both.T)], expected[np.lexsort(expected.T)])
    assert "memorization" in ax.get_xlabel() and "influence" in ax.get_ylabel()
    assert ax.get_legend() is not None


def test_hexbin_counts_every_real_sample(lazy_scores, scores):
    with raise_if_dask_computes(max_computes=1):
        ax = mp.memorization_vs_influence(lazy_scores, highlight_class=0)
    (hexes,) = [c for c in ax.collections if c.get_gid() == "hexbin"]
    assert hexes.get_array().sum() == sum(RAGGED_TRAIN)
    assert ax.figure.axes[-1].get_ylabel().startswith("samples per hexagon")


# --------------------------------------------------------------------------- method_agreement


def test_heatmap_equals_rank_agreement_and_scipy(scores):
    ax = mp.method_agreement(scores)
    (image,) = ax.images
    matrix = np.asarray(image.get_array())
    overall = memoxr.rank_agreement(scores).query("class_label == 'all'")
    real = scores["training_indices"].values >= 0
    for a, b, rho in overall[["method_a", "method_b", "spearman"]].itertuples(index=False):
        i, j = METHODS.index(a), METHODS.index(b)
        assert matrix[i, j] == matrix[j, i] == pytest.approx(rho)
        direct = sps.spearmanr(scores[a].values[real], scores[b].values[real]).statistic
        assert matrix[i, j] == pytest.approx(direct)
    np.testing.assert_array_equal(np.diag(matrix), 1.0)
    annotations = [t.get_text() for t in ax.texts]
    assert annotations[1] == f"{matrix[0, 1]:.2f}"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(METHODS)
    assert "Spearman" in ax.get_title()


# --------------------------------------------------------------------------- top_k_table


def test_table_cells_equal_top_k(scores):
    ax = mp.top_k_table(scores, 3, k=4, by="critical_sample_score")
    frame = memoxr.top_k(scores, 3, k=4, by="critical_sample_score")
    (table,) = ax.tables
    cells = table.get_celld()
    headers = [cells[0, j].get_text().get_text().replace("\n", "") for j in range(frame.shape[1])]
    assert headers == list(frame.columns)
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        for j, value in enumerate(row):
            text = cells[i, j].get_text().get_text()
            decimals = len(text.partition(".")[2])  # one precision per column
            assert abs(float(text) - value) <= 0.5 * 10.0**-decimals * (1 + 1e-9), (i, j, text)
    assert "class 3" in ax.get_title(loc="left") and "critical_sample_score" in ax.get_title(loc="left")


def test_table_computes_once(lazy_scores):
    with raise_if_dask_computes(max_computes=1):
        mp.top_k_table(lazy_scores, 0)


# --------------------------------------------------------------------------- roc and precision-recall


@pytest.fixture
def detection():
    rng = np.random.default_rng(3)
    mask = rng.random(300) < 0.2
    return {"csl": mask * 1.0 + rng.normal(0, 1, 300), "noise": rng.random(300)}, mask


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


def test_pr_lines_equal_sklearn(detection):
    proxies, mask = detection
    ax = mp.pr_curves(proxies, mask)
    lines = by_gid(ax.lines, "pr:")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for name, score in proxies.items():
        precision, recall, _ = metrics.precision_recall_curve(mask, score)
        np.testing.assert_array_equal(lines[name].get_xdata(), recall)
        np.testing.assert_array_equal(lines[name].get_ydata(), precision)
        assert f"{name} (AP {metrics.average_precision_score(mask, score):.3f})" in legend
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("recall", "precision")


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


def test_binned_means_and_stds_equal_numpy_reference():
    rng = np.random.default_rng(7)
    memo = rng.random(200)
    proxy = 3 * memo + rng.normal(0, 0.5, 200)
    memo_nan, proxy_nan = np.r_[memo, np.nan, 0.5], np.r_[proxy, 1.0, np.nan]  # dropped pairs
    ax = mp.binned_against_memorization(proxy_nan, memo_nan, bins=8, label="CSL")
    bin_of = pd.qcut(memo, 8, labels=False)  # distinct values: 8 bins of exactly 25
    means = np.array([proxy[bin_of == b].mean() for b in range(8)])
    stds = np.array([proxy[bin_of == b].std() for b in range(8)])
    centers = np.array([memo[bin_of == b].mean() for b in range(8)])
    (line,) = [line for line in ax.lines if line.get_gid() == "binned_mean"]
    np.testing.assert_allclose(line.get_ydata(), means)
    np.testing.assert_allclose(line.get_xdata(), centers)
    (bars,) = [c for c in ax.collections if c.get_gid() == "binned_std"]
    spans = np.array([segment[:, 1] for segment in bars.get_segments()])
    np.testing.assert_allclose(spans, np.c_[means - stds, means + stds])
    assert ax.get_ylabel().startswith("CSL") and "memorization" in ax.get_xlabel()
    assert "8 equal-count bins of 25 samples" in ax.get_title()


def test_binned_bins_stay_equal_count_with_ties():
    memo = np.r_[np.zeros(60), np.linspace(0.1, 1, 40)]  # 60 % ties at 0
    ax = mp.binned_against_memorization(np.arange(100.0), memo, bins=10)
    (line,) = [line for line in ax.lines if line.get_gid() == "binned_mean"]
    np.testing.assert_allclose(line.get_ydata(), np.arange(100.0).reshape(10, 10).mean(axis=1))
    assert "10 equal-count bins of 10 samples" in ax.get_title()


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


def test_given_axes_are_drawn_on(scores, detection):
    fig, axes = plt.subplots(2, 4)
    flat = axes.ravel()
    proxies, mask = detection
    drawn = [
        mp.score_distributions(scores, ax=flat[0]),
        mp.memorization_vs_influence(scores, ax=flat[1]),
        mp.method_agreement(scores, ax=flat[2]),
        mp.top_k_table(scores, 0, ax=flat[3]),
        mp.roc_curves(proxies, mask, ax=flat[4]),
        mp.pr_curves(proxies, mask, ax=flat[5]),
        mp.binned_against_memorization(proxies["csl"], proxies["noise"], ax=flat[6]),
        mp.data_map(proxies["noise"], proxies["noise"] / 2, ax=flat[7]),
    ]
    for ax, given in zip(drawn, flat, strict=True):
        assert ax is given
        if not ax.tables:
            assert_labelled(ax)


# --------------------------------------------------------------------------- errors


def test_unknown_score_name(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"name must be .*score variable.*received 'memo'"):
        mp.score_distributions(scores, "memo")


def test_unknown_kind(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"kind must be one of \['box', 'violin'\]; received 'bar'"):
        mp.score_distributions(scores, kind="bar")


def test_unknown_sort_by(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"sort_by must be one of .*received 'max'"):
        mp.score_distributions(scores, sort_by="max")


def test_unknown_class_in_classes(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"classes must be one of the store's classes .*received 42"):
        mp.score_distributions(scores, classes=[0, 42])


def test_unknown_highlight_class(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"highlight_class must be one of .*received 42"):
        mp.memorization_vs_influence(scores, highlight_class=42)


def test_unknown_scatter_kind(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"kind must be one of \['hexbin', 'scatter'\]"):
        mp.memorization_vs_influence(scores, kind="kde")


def test_top_k_table_unknown_class(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"class_label must be one of .*received 42"):
        mp.top_k_table(scores, 42)


def test_top_k_table_unknown_by(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"by must be one of .*received 'pos_infl_mean'"):
        mp.top_k_table(scores, 0, by="pos_infl_mean")


def test_top_k_table_bad_k(scores):
    with pytest.raises(memoxr.MemoxrInputError, match=r"k must be a positive integer; received 0"):
        mp.top_k_table(scores, 0, k=0)


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


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "memoxr.plot")
    with pytest.raises(ImportError, match=r'pip install "memoxr\[plot\]"'):
        importlib.import_module("memoxr.plot")


# --------------------------------------------------------------------------- CLI


def run(*args):
    from memoxr.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_writes_the_four_pngs(tmp_path, ragged_npz):
    out = tmp_path / "figures"
    result = run("plot", ragged_npz, out, "--class", 3, "--score", "critical_sample_score", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(mp.FIGURE_FILES)
    for name in mp.FIGURE_FILES:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"wrote {out / name}" in result.output
    # Complete or absent: an existing folder is replaced only with --overwrite.
    result = run("plot", ragged_npz, out, "-q")
    assert result.exit_code == 2 and "already exists" in result.output
    assert run("plot", ragged_npz, out, "--overwrite", "-q").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--score", "nope"], "score must be a (class, train_sample) score variable"),
        (["--class", 42], "class must be one of the store's classes"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, ragged_npz, args, message):
    out = tmp_path / "figures"
    result = run("plot", ragged_npz, out, *args, "-q")
    assert result.exit_code == 2
    assert message in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "ragged.npz"]


def test_cli_missing_input_exits_2(tmp_path):
    result = run("plot", tmp_path / "missing.zarr", tmp_path / "figures", "-q")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_figures_folder_must_be_local(tmp_path):
    from memoxr.plot import write_score_figures

    with pytest.raises(memoxr.MemoxrInputError, match="output_dir: figures are written to a local folder; received the URL 's3://bucket/figs'"):
        write_score_figures(memoxr.sample_path(), "s3://bucket/figs")
