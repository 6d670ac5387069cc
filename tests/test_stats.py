"""The per-class table: values, columns, empty classes, CSV merging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import memoxr
from memoxr.errors import MemoxrInputError, OutputExistsError
from memoxr.influence.stats import SCORE_COLUMNS

from conftest import write_npz
from reference import all_scores, stats_rows

SEED_COLUMNS = (
    "class_label,sample_count,mean_memo_score,std_memo_score,min_memo_score,max_memo_score,median_memo_score,"
    "mean_infl_weighted_memo,std_infl_weighted_memo,min_infl_weighted_memo,max_infl_weighted_memo,median_infl_weighted_memo,"
    "mean_representativeness,std_representativeness,min_representativeness,max_representativeness,median_representativeness,"
    "mean_weighted_combination,std_weighted_combination,min_weighted_combination,max_weighted_combination,median_weighted_combination,"
    "mean_critical_sample,std_critical_sample,min_critical_sample,max_critical_sample,median_critical_sample"
).split(",")


def expected_table(arrays):
    return pd.DataFrame(stats_rows(all_scores(arrays)))


@pytest.mark.parametrize("which", ["ragged", "balanced"])
def test_table_matches_reference(request, which):
    store = request.getfixturevalue(f"{which}_store")
    arrays = request.getfixturevalue(f"{which}_arrays")
    table = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(store)))
    assert list(table.columns) == SEED_COLUMNS
    expected = expected_table(arrays)[SEED_COLUMNS]
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-6)


def test_lazy_and_in_memory_tables_agree(ragged_store):
    scores = memoxr.influence_scores(memoxr.open_influence(ragged_store))
    pd.testing.assert_frame_equal(memoxr.class_stats(scores), memoxr.class_stats(scores.compute()))


def test_empty_class_is_present(tmp_path, ragged_arrays):
    arrays = dict(ragged_arrays)
    moved = arrays["tr_classidx_2"]  # the one-sample class becomes empty: its sample moves to class 0
    arrays["tr_classidx_2"] = np.array([], dtype=np.int64)
    arrays["infl_matrix_class2"] = np.zeros((0, len(arrays["tt_classidx_2"])), dtype=np.float32)
    arrays["tr_classidx_0"] = np.sort(np.r_[arrays["tr_classidx_0"], moved])
    arrays["tr_labels"] = arrays["tr_labels"].copy()
    arrays["tr_labels"][moved] = 0
    order = np.argsort(np.r_[ragged_arrays["tr_classidx_0"], moved])
    extra = np.random.default_rng(0).normal(size=(1, len(arrays["tt_classidx_0"]))).astype(np.float32)
    arrays["infl_matrix_class0"] = np.r_[ragged_arrays["infl_matrix_class0"], extra][order]
    path = write_npz(tmp_path / "e.npz", arrays)
    table = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(path, chunk_mb=1e-4)))
    row = table.set_index("class_label").loc[2]
    assert row["sample_count"] == 0
    assert row.drop("sample_count").isna().all()
    expected = expected_table(arrays)[SEED_COLUMNS]
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-6)


def test_nan_score_rule(tmp_path, ragged_store):
    scores = memoxr.influence_scores(memoxr.open_influence(ragged_store)).compute()
    scores["representativeness_score"][0, 0] = np.nan
    strict = memoxr.class_stats(scores).set_index("class_label")
    assert np.isnan(strict.loc[0, "mean_representativeness"]) and np.isfinite(strict.loc[1, "mean_representativeness"])
    skipping = memoxr.class_stats(scores, skipna=True).set_index("class_label")
    real = scores["representativeness_score"].values[0, 1:7]
    assert skipping.loc[0, "mean_representativeness"] == pytest.approx(real.mean())
    assert skipping.loc[0, "median_representativeness"] == pytest.approx(np.median(real))


def test_merge_keeps_other_columns(tmp_path, ragged_store):
    table = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    existing = table[SEED_COLUMNS[:7]].copy()
    existing["notes"] = [f"class {k}" for k in existing["class_label"]]
    existing["mean_critical_sample"] = -1.0  # a stale score column is replaced
    existing = existing.iloc[::-1]
    csv = tmp_path / "stats.csv"
    existing.to_csv(csv, index=False)
    out = memoxr.merge_stats_csv(table, csv, tmp_path / "updated.csv")
    merged = pd.read_csv(out)
    assert list(merged.columns) == [*SEED_COLUMNS[:7], "notes", *SCORE_COLUMNS]
    assert merged["notes"].tolist() == [f"class {k}" for k in merged["class_label"]]
    by_class = merged.set_index("class_label").sort_index()
    ours = table.set_index("class_label")
    np.testing.assert_allclose(by_class[list(SCORE_COLUMNS)].to_numpy(), ours[list(SCORE_COLUMNS)].to_numpy())


def test_merge_creates_full_table_and_refuses_replacing(tmp_path, ragged_store):
    table = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    csv = tmp_path / "new.csv"
    memoxr.merge_stats_csv(table, csv)
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)
    with pytest.raises(OutputExistsError, match="already exists"):
        memoxr.merge_stats_csv(table, csv)
    memoxr.merge_stats_csv(table, csv, overwrite=True)


def test_merge_refuses_other_classes(tmp_path, ragged_store):
    table = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    csv = tmp_path / "stats.csv"
    pd.DataFrame({"class_label": [0, 1, 2, 3, 4, 99]}).to_csv(csv, index=False)
    with pytest.raises(MemoxrInputError, match=r"classes differ .* only in the CSV: \[99\], only in the scores: \[5\]"):
        memoxr.merge_stats_csv(table, csv, tmp_path / "o.csv")
    pd.DataFrame({"label": [0]}).to_csv(csv, index=False)
    with pytest.raises(MemoxrInputError, match="column 'class_label' missing"):
        memoxr.merge_stats_csv(table, csv, tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()
