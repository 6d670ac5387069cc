"""Top-k, top classes, rank agreement and ranges, against the reference."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import memoxr
from memoxr.errors import MemoxrInputError
from memoxr.influence.analysis import METHODS

from reference import all_scores


@pytest.fixture
def scores(ragged_store):
    return memoxr.influence_scores(memoxr.open_influence(ragged_store))


@pytest.mark.parametrize("by", METHODS)
def test_top_k_matches_reference(scores, ragged_arrays, by):
    expected = all_scores(ragged_arrays)[3]
    order = sorted(range(len(expected[by])), key=lambda i: (-expected[by][i], i))[:4]
    top = memoxr.top_k(scores, 3, k=4, by=by)
    assert top["rank"].tolist() == [1, 2, 3, 4]
    assert top["sample_index"].tolist() == [int(expected["training_indices"][i]) for i in order]
    assert top["train_sample"].tolist() == order
    for name in METHODS:
        np.testing.assert_allclose(top[name], expected[name][order], rtol=1e-6)


def test_top_k_larger_than_class(scores):
    assert len(memoxr.top_k(scores, 2, k=50)) == 1


def test_rank_agreement_matches_scipy(scores, ragged_arrays):
    expected = all_scores(ragged_arrays)
    table = memoxr.rank_agreement(scores)
    assert len(table) == 10 * (len(expected) + 1)
    got = table.set_index(["class_label", "method_a", "method_b"])["spearman"]
    a, b = "original_memo", "critical_sample_score"
    assert got[(4, a, b)] == pytest.approx(sps.spearmanr(expected[4][a], expected[4][b]).statistic)
    pooled = [np.concatenate([expected[k][m] for k in expected]) for m in (a, b)]
    assert got[("all", a, b)] == pytest.approx(sps.spearmanr(*pooled).statistic)
    assert np.isnan(got[(2, a, b)])  # one sample: no correlation


def test_ranges_and_top_classes(scores, ragged_arrays):
    expected = all_scores(ragged_arrays)
    ranges = memoxr.score_ranges(scores).set_index("method")
    for m in METHODS:
        values = np.concatenate([expected[k][m] for k in expected])
        assert ranges.loc[m, "min"] == pytest.approx(values.min()) and ranges.loc[m, "max"] == pytest.approx(values.max())
    table = memoxr.class_stats(scores)
    top = memoxr.top_classes(table, n=3)
    best = top[top["method"] == "weighted_combination"]["class_label"].tolist()
    means = {k: expected[k]["weighted_combination"].mean() for k in expected}
    assert best == sorted(means, key=lambda k: -means[k])[:3]


def test_analysis_report(scores):
    table = memoxr.class_stats(scores)
    report = memoxr.analyze(scores, table, class_label=1, k=2)
    text = str(report)
    for part in ("Score ranges", "Top samples of class 1 by critical_sample_score", "Top classes", "Rank agreement"):
        assert part in text
    assert "memoxr.Analysis" in repr(report)
    html = report._repr_html_()
    assert html.count("<table") == 2 + 5 + 1 and "Top samples of class 1 by critical_sample_score" in html
    # The two index columns are explained once, above the top-sample tables, in both forms.
    legend = "sample_index: the sample's row in the train split (tr_labels, tr_mem); train_sample: its row within its class."
    assert text.count(legend) == 1 and text.index(legend) < text.index("Top samples of class 1")
    assert html.count(legend) == 1


def test_analysis_error_beside_the_background_agreement(scores):
    """analyze ranks in a thread of its own while it lists the top samples: an error there still
    reaches the caller as itself, and no thread is left running."""
    table = memoxr.class_stats(scores)
    before = threading.active_count()
    with pytest.raises(MemoxrInputError, match=r"class_label must be one of the store's classes .*; received 9"):
        memoxr.analyze(scores, table, class_label=9)
    assert threading.active_count() == before


@pytest.mark.parametrize("skipna", [None, True, False])
def test_stats_and_analysis_equal_class_stats_then_analyze(scores, skipna):
    """Computed at once (the agreement's sorts beside the table), the same numbers as one after the other."""
    held = scores.compute()
    held["representativeness_score"][1, 0] = np.nan  # a NaN in one class's real samples
    table, report = memoxr.stats_and_analysis(held, class_label=3, k=2, n_classes=2, skipna=skipna, keep_attrs=True)
    expected_table = memoxr.class_stats(held, skipna=skipna, keep_attrs=True)
    expected = memoxr.analyze(held, expected_table, class_label=3, k=2, n_classes=2, skipna=skipna, keep_attrs=True)
    pd.testing.assert_frame_equal(table, expected_table, check_exact=True)
    assert table.attrs == expected_table.attrs and table.attrs
    for got, want in [(report.ranges, expected.ranges), (report.top_classes, expected.top_classes), (report.agreement, expected.agreement), *zip(report.top_samples.values(), expected.top_samples.values(), strict=True)]:
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert str(report) == str(expected)


def test_stats_and_analysis_error_leaves_no_thread(scores):
    before = threading.active_count()
    with pytest.raises(MemoxrInputError, match=r"class_label must be one of the store's classes .*; received 9"):
        memoxr.stats_and_analysis(scores, class_label=9)
    assert threading.active_count() == before


@pytest.mark.parametrize("failing", ["table", "agreement", "both"])
def test_stats_and_analysis_errors_of_either_side_reach_the_caller(scores, monkeypatch, failing):
    """The table's error, the background agreement's, or the table's with the agreement's as a note."""
    import memoxr.influence.analysis as analysis
    import memoxr.influence.stats as stats

    started = threading.Event()  # the table fails once the agreement has started, so it cannot be cancelled

    def fail(name):
        def raises(*args, **kwargs):
            if name == "agreement":
                started.set()
            elif failing == "both":
                assert started.wait(10)
            raise ValueError(f"{name} failed")
        return raises

    if failing in ("table", "both"):
        monkeypatch.setattr(stats, "class_stats", fail("table"))
    if failing in ("agreement", "both"):
        monkeypatch.setattr(analysis, "rank_agreement", fail("agreement"))
    before = threading.active_count()
    with pytest.raises(ValueError, match="table failed" if failing != "agreement" else "agreement failed") as raised:
        memoxr.stats_and_analysis(scores.compute())
    notes = getattr(raised.value, "__notes__", [])
    assert notes == (["The rank agreement, computed meanwhile, failed too: ValueError('agreement failed')"] if failing == "both" else [])
    assert threading.active_count() == before


def test_analysis_errors(scores):
    with pytest.raises(MemoxrInputError, match=r"class_label must be one of the store's classes \[0, 1, 2, 3, 4, 5\]; received 9"):
        memoxr.top_k(scores, 9)
    with pytest.raises(MemoxrInputError, match="by must be one of .*; received 'memo'"):
        memoxr.top_k(scores, 0, by="memo")
    with pytest.raises(MemoxrInputError, match="k must be a positive integer; received 0"):
        memoxr.top_k(scores, 0, k=0)
    with pytest.raises(MemoxrInputError, match="n must be a positive integer; received -2"):
        memoxr.top_classes(memoxr.class_stats(scores), n=-2)
