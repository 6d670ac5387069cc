"""memoxr.plot scores figures: the figures hold the computed values (checked against numpy written apart),
zero-heavy data is drawn honestly, inputs are validated. Proxy figures: test_plot_proxies.py; the CLI and
files: test_plot_cli.py."""

from __future__ import annotations

import importlib
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.text import Text
from scipy import stats as sps

import memoxr
from memoxr import plot as mp
from memoxr.convert import convert_npz
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.errors import MissingExtraError
from memoxr.influence.analysis import METHODS

from conftest import RAGGED_TEST, RAGGED_TRAIN, SMALL_CHUNKS, raise_if_dask_computes, write_npz

# Zero-heavy: class 2 is all zeros, class 5 has one non-zero value, the others 50-95 % zeros.
ZERO_TRAIN = [30, 41, 6, 25, 37, 12, 9]
ZERO_TEST = [5, 8, 3, 11, 4, 6, 7]
ZERO_SHARE = [0.9, 0.6, 1.0, 0.8, 0.5, None, 0.95]


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


def zero_heavy_arrays(seed=5):
    arrays = make_fz_arrays(ZERO_TRAIN, ZERO_TEST, seed=seed)
    rng = np.random.default_rng(seed)
    for k, share in enumerate(ZERO_SHARE):
        rows = arrays[f"tr_classidx_{k}"]
        if share is None:  # exactly one non-zero value
            arrays["tr_mem"][rows[1:]] = 0.0
        else:
            arrays["tr_mem"][rows[rng.random(rows.size) < share]] = 0.0
    return arrays


@pytest.fixture(scope="module")
def zero_scores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zeros")
    npz = write_npz(folder / "zeros.npz", zero_heavy_arrays())
    store = convert_npz(npz, folder / "zeros.zarr", chunks=SMALL_CHUNKS)
    return memoxr.influence_scores(memoxr.open_influence(store)).compute()


def real_values(scores, name):
    """Per-class finite values of the real samples, in class order (the reference)."""
    real = scores["training_indices"].values >= 0
    out = {}
    for label, row, keep in zip(scores["class"].values.tolist(), scores[name].values, real, strict=True):
        v = row[keep]
        out[label] = v[np.isfinite(v)]
    return out


def tukey(values):
    """Quartiles and whisker ends of ``values``, by hand."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    low = values[values >= q1 - 1.5 * (q3 - q1)].min()
    high = values[values <= q3 + 1.5 * (q3 - q1)].max()
    return q1, median, q3, low, high


def symlog(values, threshold):
    """Matplotlib's symlog with base 10 and linscale 1, written out."""
    a = np.asarray(values, dtype=float)
    scale = 1.0 / (1.0 - 0.1)
    inside = np.abs(a) <= threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        outside = np.sign(a) * threshold * (scale + np.log10(np.abs(a) / threshold))
    return np.where(inside, a * scale, outside)


def by_gid(artists, prefix):
    return {a.get_gid().split(":", 1)[1]: a for a in artists if (a.get_gid() or "").startswith(prefix)}


def tick_labels(ax):
    return [t.get_text() for t in ax.get_xticklabels()]


def top_labels(ax):
    (top,) = [child for child in ax.child_axes if child.get_gid() == "zero_share"]
    return [t.get_text() for t in top.get_xticklabels()]


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


def box_extent(box):
    ys = box.get_path().vertices[:, 1]
    return ys.min(), ys.max()


# --------------------------------------------------------------------------- score_distributions


def test_linear_box_quartiles_and_whiskers_equal_per_class_values(scores):
    ax = mp.score_distributions(scores, "original_memo", kind="box", sort_by="median", scale="linear")
    reference = real_values(scores, "original_memo")
    medians, boxes = by_gid(ax.lines, "median:"), by_gid(ax.patches, "box:")
    assert set(medians) == {str(c) for c in reference}
    for label, values in reference.items():
        np.testing.assert_allclose(medians[str(label)].get_ydata(), np.median(values))
        if np.unique(values).size < 2:  # the one-sample class: its value, not a flat box
            assert str(label) not in boxes
            np.testing.assert_array_equal(by_gid(ax.lines, "points:")[str(label)].get_ydata(), values)
            continue
        q1, _, q3, low, high = tukey(values)
        np.testing.assert_allclose(box_extent(boxes[str(label)]), (q1, q3))
        np.testing.assert_allclose(by_gid(ax.lines, "whisker_low:")[str(label)].get_ydata()[1], low)
        np.testing.assert_allclose(by_gid(ax.lines, "whisker_high:")[str(label)].get_ydata()[1], high)
    # Sorted by median (ties by mean), ascending, along x; each median sits above its class's tick.
    order = sorted(reference, key=lambda c: (np.median(reference[c]), np.mean(reference[c])))
    assert tick_labels(ax) == [str(c) for c in order]
    for position, label in zip(ax.get_xticks(), order, strict=True):
        assert np.mean(medians[str(label)].get_xdata()) == pytest.approx(position)
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "original_memo"
    assert "median" in ax.get_xlabel()
    assert "original_memo" in ax.get_title() and "padding excluded" in ax.get_title()
    assert not [c for c in ax.child_axes if c.get_gid() == "zero_share"]  # no exact zeros: no row of "0"


def test_log_boxes_show_the_positive_values_and_count_the_zeros(zero_scores):
    ax = mp.score_distributions(zero_scores, "original_memo", sort_by="class")  # auto: zero-heavy -> log
    assert ax.get_yscale() == "log"
    reference = real_values(zero_scores, "original_memo")
    assert top_labels(ax) == [f"{100 * np.mean(v == 0):.0f}" for v in reference.values()]
    assert top_labels(ax)[2] == "100"
    boxes, medians = by_gid(ax.patches, "box:"), by_gid(ax.lines, "median:")
    for label, values in reference.items():
        positive = values[values > 0]
        if np.unique(positive).size < 2:
            assert str(label) not in boxes
            continue
        # Quartiles and fences on log10 of the positive values, then back.
        q1, median, q3, low, high = (10.0 ** s for s in tukey(np.log10(positive)))
        np.testing.assert_allclose(box_extent(boxes[str(label)]), (q1, q3))
        np.testing.assert_allclose(medians[str(label)].get_ydata(), median)
        np.testing.assert_allclose(by_gid(ax.lines, "whisker_low:")[str(label)].get_ydata()[1], low)
        np.testing.assert_allclose(by_gid(ax.lines, "whisker_high:")[str(label)].get_ydata()[1], high)
    np.testing.assert_array_equal(by_gid(ax.lines, "points:")["5"].get_ydata(), reference[5][reference[5] > 0])
    assert "2" not in by_gid(ax.lines, "points:")  # all zeros: nothing on the log axis, 100 on top
    assert "log" in ax.get_ylabel() and "% exactly 0" in ax.get_title()


def test_symlog_draws_every_value_around_zero(zero_scores):
    ax = mp.score_distributions(zero_scores, "original_memo", scale="symlog", sort_by="class")
    assert ax.get_yscale() == "symlog"
    reference = real_values(zero_scores, "original_memo")
    pooled = np.concatenate(list(reference.values()))
    threshold = 10.0 ** np.floor(np.log10(np.percentile(pooled[pooled != 0], 5)))
    assert ax.yaxis.get_transform().linthresh == pytest.approx(threshold)
    boxes = by_gid(ax.patches, "box:")
    for label, values in reference.items():
        t = symlog(values, threshold)
        q1, _, q3, _, _ = tukey(t)
        if q3 > q1:
            np.testing.assert_allclose(symlog(box_extent(boxes[str(label)]), threshold), (q1, q3))
        else:  # quartiles at 0: the values themselves, never a flat box
            assert str(label) not in boxes
            np.testing.assert_array_equal(by_gid(ax.lines, "points:")[str(label)].get_ydata(), values)


def test_log_violins_are_estimated_on_log10(zero_scores):
    ax = mp.score_distributions(zero_scores, "original_memo", kind="violin", scale="log", sort_by="class")
    reference = real_values(zero_scores, "original_memo")
    drawn = {c: v[v > 0] for c, v in reference.items() if np.unique(v[v > 0]).size >= 2}
    collections = {c.get_gid(): c for c in ax.collections}
    for gid, func in (("medians", lambda p: 10 ** np.median(np.log10(p))), ("mins", np.min), ("maxes", np.max)):
        segments = collections[gid].get_segments()
        assert len(segments) == len(drawn)
        for segment, positive in zip(segments, drawn.values(), strict=True):
            np.testing.assert_allclose(segment[:, 1], func(positive))
    for label, positive in drawn.items():  # each body spans the class's positive values
        ys = collections[f"violin:{label}"].get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose((ys.min(), ys.max()), (positive.min(), positive.max()))


@pytest.mark.parametrize("sort_by", ["mean", "median", "nonzero", "class", None])
def test_sort_orders(zero_scores, sort_by):
    ax = mp.score_distributions(zero_scores, "critical_sample_score", sort_by=sort_by)
    reference = real_values(zero_scores, "critical_sample_score")
    labels = list(reference)
    key = {
        "mean": lambda c: (np.mean(reference[c]), labels.index(c)),
        "median": lambda c: (np.median(reference[c]), np.mean(reference[c]), labels.index(c)),
        "nonzero": lambda c: (np.mean(reference[c] != 0), np.mean(reference[c]), labels.index(c)),
        "class": labels.index,
        None: labels.index,
    }[sort_by]
    assert tick_labels(ax) == [str(c) for c in sorted(labels, key=key)]
    if sort_by == "median":  # zero-heavy: most medians are 0, the mean breaks the tie
        assert sum(np.median(v) == 0 for v in reference.values()) >= 3
    if sort_by == "mean":  # the sorting statistic is drawn, zeros included
        means = by_gid(ax.lines, "mean:")
        for label, values in reference.items():
            if values.mean() > 0:
                np.testing.assert_allclose(means[str(label)].get_ydata(), values.mean())


def test_a_subset_of_classes(scores):
    ax = mp.score_distributions(scores, "pos_infl_mean", sort_by="mean", classes=[5, 0, 3])
    reference = real_values(scores, "pos_infl_mean")
    assert tick_labels(ax) == [str(c) for c in sorted([5, 0, 3], key=lambda c: np.mean(reference[c]))]
    assert set(by_gid(ax.lines, "median:")) == {"0", "3", "5"}


def test_distributions_compute_only_their_variable_once(lazy_scores):
    with raise_if_dask_computes(max_computes=1):
        mp.score_distributions(lazy_scores, "weighted_combination")


def test_many_classes_keep_readable_tick_labels():
    ax = mp.score_distributions(fake_scores(100), scale="linear")
    labels = ax.get_xticklabels()
    assert len(labels) == 100  # 100 classes fit at a readable size: every one is labelled
    assert min(t.get_fontsize() for t in labels) >= 5.5
    ax = mp.score_distributions(fake_scores(250), scale="linear")
    assert len(ax.get_xticklabels()) < 250  # thinned, never shrunk below the minimum size
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 5.5
    ticks = {*ax.get_xticks(), *ax.get_xticks(minor=True)}
    assert ticks == set(range(1, 251))  # but every class keeps a tick (minor where unlabelled)


def test_auto_scale_rules():
    assert mp.resolve_scale(np.linspace(1, 2, 50), "auto") == "linear"
    assert mp.resolve_scale(np.r_[np.zeros(30), np.linspace(1, 2, 70)], "auto") == "log"  # 30 % zeros
    assert mp.resolve_scale(np.r_[np.zeros(20), np.linspace(1, 2, 80)], "auto") == "linear"
    assert mp.resolve_scale(np.logspace(-6, 0, 50), "auto") == "log"  # skewed, no zeros
    assert mp.resolve_scale(np.r_[np.zeros(50), -np.logspace(-3, 0, 50)], "auto") == "symlog"
    assert mp.resolve_scale(np.zeros(5), "auto") == "linear"
    assert mp.resolve_scale(np.zeros(5), "symlog") == "symlog"


# --------------------------------------------------------------------------- zero-heavy data, every figure


def test_zero_heavy_data_every_figure_has_no_flat_box(zero_scores):
    """On data that is mostly 0, no box or violin collapses to a line where non-zero values exist."""
    reference = real_values(zero_scores, "original_memo")
    real = zero_scores["training_indices"].values >= 0
    memo, infl = zero_scores["original_memo"].values[real], zero_scores["pos_infl_mean"].values[real]
    for scale in ("auto", "linear", "log", "symlog"):
        for kind in ("box", "violin"):
            fig, ax = plt.subplots(layout="constrained")
            mp.score_distributions(zero_scores, kind=kind, scale=scale, ax=ax)
            fig.canvas.draw()
            shapes = by_gid(ax.patches, "box:") | by_gid(ax.collections, "violin:")
            points = by_gid(ax.lines, "points:")
            for label, values in reference.items():
                nonzero = values[values != 0]
                if not nonzero.size:
                    continue
                if str(label) in shapes:
                    assert shapes[str(label)].get_window_extent().height > 1, (scale, kind, label)
                else:  # too few distinct values for a box: the values are drawn
                    assert points[str(label)].get_ydata().size > 0, (scale, kind, label)
            assert all(s.get_window_extent().height > 1 for s in shapes.values())
            if scale in ("auto", "log"):  # the positive values of the classes with spread keep their boxes
                assert len(shapes) >= 4
            plt.close(fig)
    # The other figures render on the same data, with the zeros counted in their labels.
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), layout="constrained")
    flat = axes.ravel()
    mp.memorization_vs_influence(zero_scores, highlight_class=1, ax=flat[0])
    mp.method_agreement(zero_scores, ax=flat[1])
    mp.top_k_table(zero_scores, 1, ax=flat[2])
    mp.binned_against_memorization(infl, memo, bins=6, ax=flat[3])
    mp.roc_curves({"influence": infl}, memo > 0.5, ax=flat[4])
    mp.data_map(memo, infl, ax=flat[5])
    fig.canvas.draw()
    assert "% exactly 0" in flat[0].get_xlabel()
    bands = [c for c in flat[3].collections if c.get_gid() == "band:25-75"]
    assert bands[0].get_window_extent().height > 1


# --------------------------------------------------------------------------- memorization_vs_influence


def test_scatter_offsets_equal_memorization_and_influence(scores):
    ax = mp.memorization_vs_influence(scores, highlight_class=3, kind="scatter", scale="linear")
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


def test_hexbin_counts_every_real_sample(lazy_scores):
    with raise_if_dask_computes(max_computes=1):
        ax = mp.memorization_vs_influence(lazy_scores, highlight_class=0, scale="linear")
    (hexes,) = [c for c in ax.collections if c.get_gid() == "hexbin"]
    assert hexes.get_array().sum() == sum(RAGGED_TRAIN)
    assert ax.figure.axes[-1].get_ylabel().startswith("samples per cell")
    assert "red: class 0" in ax.get_title()


def test_zero_heavy_memorization_on_symlog_keeps_the_zeros(zero_scores):
    ax = mp.memorization_vs_influence(zero_scores)
    assert ax.get_xscale() == "symlog"
    real = zero_scores["training_indices"].values >= 0
    memo, infl = zero_scores["original_memo"].values[real], zero_scores["pos_infl_mean"].values[real]
    (mesh,) = [c for c in ax.collections if c.get_gid() == "hexbin"]
    counts = np.ma.filled(mesh.get_array(), 0)
    assert counts.sum() == memo.size
    left = ax.get_xlim()[0]
    assert left < 0 < ax.get_xlim()[1]  # the column of exact zeros is inside the frame
    assert f"{100 * np.mean(memo == 0):.0f}% exactly 0" in ax.get_xlabel()
    assert infl.size == memo.size


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
    assert [t.get_text() for t in ax.texts] == [f"{v:.3f}" for v in matrix.ravel()]
    # Sequential colours over the observed range: the lowest correlation and 1 are the ends.
    assert image.get_cmap().name == "viridis"
    assert image.norm.vmin == pytest.approx(matrix.min()) and image.norm.vmax == 1.0
    assert [t.get_text() for t in ax.get_yticklabels()] == list(METHODS)
    assert "Spearman" in ax.get_title(loc="left")


def test_heatmap_title_clear_of_colorbar_and_values_only_where_they_fit():
    fig = plt.figure(figsize=(7, 6), layout="constrained")
    ax = mp.method_agreement(fake_scores(100, n_train=20), ax=fig.add_subplot())
    fig.canvas.draw()
    (title,) = [t for t in ax.get_children() if isinstance(t, Text) and t.get_text().startswith("Rank agreement")]
    colorbar = fig.axes[-1]
    renderer = fig.canvas.get_renderer()
    assert not title.get_window_extent(renderer).overlaps(colorbar.get_tightbbox(renderer))
    _, axes = plt.subplots(4, 4, figsize=(4, 4))  # cells of about 10 points: no room for "0.993"
    assert not mp.method_agreement(fake_scores(10), ax=axes[0, 0]).texts


# --------------------------------------------------------------------------- top_k_table


def test_table_cells_equal_top_k_to_four_significant_digits(scores):
    ax = mp.top_k_table(scores, 3, k=4, by="critical_sample_score")
    frame = memoxr.top_k(scores, 3, k=4, by="critical_sample_score")
    (table,) = ax.tables
    cells = table.get_celld()
    headers = [cells[0, j].get_text().get_text().replace("\n", "") for j in range(frame.shape[1])]
    assert headers == list(frame.columns)
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        for j, value in enumerate(row):
            text = cells[i, j].get_text().get_text()
            assert float(text) == pytest.approx(value, rel=5e-4, abs=0), (i, j, text)
    assert "class 3" in ax.get_title(loc="left") and "critical_sample_score" in ax.get_title(loc="left")


def test_small_values_keep_their_significant_digits():
    assert mp.scores.column_text(np.array([3.19e-06, 1.33e-05, 0.5, 0.0, 0.012345, np.nan])) == [
        "3.19e-06", "1.33e-05", "0.5", "0", "0.01235", "NaN"]
    assert mp.scores.column_text(np.array([4, 17])) == ["4", "17"]


def test_table_computes_once(lazy_scores):
    with raise_if_dask_computes(max_computes=1):
        mp.top_k_table(lazy_scores, 0)


def test_given_axes_are_drawn_on(scores):
    fig, axes = plt.subplots(2, 4)
    flat = axes.ravel()
    rng = np.random.default_rng(3)
    mask = rng.random(100) < 0.3
    proxies = {"csl": mask + rng.random(100), "noise": rng.random(100)}
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
    for ax, given_ax in zip(drawn, flat, strict=True):
        assert ax is given_ax
        if not ax.tables:
            assert_labelled(ax)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: mp.score_distributions(s, "memo"), r"name must be .*score variable.*received 'memo'"),
        (lambda s: mp.score_distributions(s, kind="bar"), r"kind must be one of \['box', 'violin'\]; received 'bar'"),
        (lambda s: mp.score_distributions(s, sort_by="max"), r"sort_by must be one of .*'nonzero'.*received 'max'"),
        (lambda s: mp.score_distributions(s, scale="ln"), r"scale must be one of .*'symlog'.*received 'ln'"),
        (lambda s: mp.score_distributions(s, classes=[0, 42]), r"classes must be one of the store's classes .*received 42"),
        (lambda s: mp.score_distributions(s, classes=[]), r"classes must name at least one class"),
        (lambda s: mp.memorization_vs_influence(s, highlight_class=42), r"highlight_class must be one of .*received 42"),
        (lambda s: mp.memorization_vs_influence(s, kind="kde"), r"kind must be one of \['hexbin', 'scatter'\]"),
        (lambda s: mp.top_k_table(s, 42), r"class_label must be one of .*received 42"),
        (lambda s: mp.top_k_table(s, 0, by="pos_infl_mean"), r"by must be one of .*received 'pos_infl_mean'"),
        (lambda s: mp.top_k_table(s, 0, k=0), r"k must be a positive integer; received 0"),
    ],
)
def test_bad_scores_arguments(scores, call, message):
    with pytest.raises(memoxr.MemoxrInputError, match=message):
        call(scores)


def test_log_scale_refuses_negative_values(scores):
    negative = scores.assign(original_memo=scores["original_memo"] - 0.5)
    with pytest.raises(memoxr.MemoxrInputError, match=r"scale='log' needs values >= 0; original_memo has \d+ negative.*symlog"):
        mp.score_distributions(negative, scale="log")
    assert mp.score_distributions(negative).get_yscale() in ("linear", "symlog")  # auto never picks log


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "memoxr.plot")
    with pytest.raises(MissingExtraError, match=r"pip install .memoxr\[plot\]."):
        importlib.import_module("memoxr.plot")


def test_missing_matplotlib_is_one_line_and_status_2_on_the_command_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from memoxr.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for name in [m for m in sys.modules if m == "memoxr.plot" or m.startswith(("memoxr.plot.", "memoxr.cli.plot"))]:
        monkeypatch.delitem(sys.modules, name)
    main.commands.pop("plot", None)  # imported again, lazily, without matplotlib
    result = CliRunner().invoke(main, ["plot", "--input", memoxr.sample_path(), "--output", str(tmp_path / "f")])
    assert result.exit_code == 2, result.output
    assert "memoxr[plot]" in result.output and "Traceback" not in result.output
    main.commands.pop("plot", None)
