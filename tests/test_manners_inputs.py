"""xarray manners of the influence layer: dims by name, hand-built input, coords, attrs, the accessor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.errors import MemoxrInputError
from memoxr.io.schema import COMPLETE_ATTR

from conftest import write_npz
from reference import all_scores

TURNED = ("test_sample", "class", "train_sample", ...)


@pytest.fixture
def ds(ragged_store):
    return memoxr.open_influence(ragged_store)


@pytest.fixture
def scores(ds):
    return memoxr.influence_scores(ds).compute()


def hand_built(ds):
    """The variables influence_scores needs, as a user would build them: data variables, no attrs."""
    loaded = ds.compute()
    return xr.Dataset(
        {name: (loaded[name].dims, loaded[name].values)
         for name in ("influence", "memorization", "train_index", "train_count", "test_count")}
    )


@pytest.mark.parametrize("variant", ["transposed", "drop_attrs", "hand_built", "data_vars"])
def test_influence_inputs_in_any_form_give_the_same_scores(ds, scores, ragged_arrays, variant):
    given = {
        "transposed": lambda: ds.transpose(*TURNED),
        "drop_attrs": lambda: ds.drop_attrs(),
        "hand_built": lambda: hand_built(ds).transpose(*TURNED),
        "data_vars": lambda: ds.reset_coords(["train_index", "train_count", "test_count"]),  # an old-style dataset
    }[variant]()
    got = memoxr.influence_scores(given).compute()
    assert got["critical_sample_score"].dims == ("class", "train_sample")
    for name in scores.data_vars:
        np.testing.assert_allclose(got[name].values, scores[name].values, rtol=1e-6, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(got["training_indices"].values, scores["training_indices"].values)
    expected = all_scores(ragged_arrays)
    np.testing.assert_allclose(got["critical_sample_score"].values[3, :9], expected[3]["critical_sample_score"], rtol=1e-6)
    pd.testing.assert_frame_equal(memoxr.class_stats(got), memoxr.class_stats(scores))


def test_scores_inputs_in_any_form_give_the_same_tables(scores):
    turned = scores.transpose("train_sample", "class").drop_attrs()
    old_style = scores.reset_coords(["training_indices", "train_count"])
    for given in (turned, old_style):
        pd.testing.assert_frame_equal(memoxr.class_stats(given), memoxr.class_stats(scores))
        pd.testing.assert_frame_equal(memoxr.rank_agreement(given), memoxr.rank_agreement(scores))
        pd.testing.assert_frame_equal(memoxr.top_k(given, 3, k=4), memoxr.top_k(scores, 3, k=4))
        pd.testing.assert_frame_equal(memoxr.score_ranges(given), memoxr.score_ranges(scores))


def test_transposed_store_is_still_read_once(ragged_store):
    import zarr

    from conftest import CountingStore

    counting = CountingStore(zarr.storage.LocalStore(ragged_store, read_only=True))
    turned = memoxr.open_influence(counting).transpose(*TURNED)
    counting.reads.clear()
    memoxr.class_stats(memoxr.influence_scores(turned))
    reads = [v for k, v in counting.reads.items() if k.startswith("influence/c")]
    assert len(reads) > 1 and set(reads) == {1}


def test_row_statistics_by_name_in_any_order(ds):
    straight = memoxr.row_statistics(ds["influence"]).compute()
    turned = memoxr.row_statistics(ds["influence"].transpose("test_sample", "train_sample", "class")).compute()
    xr.testing.assert_allclose(turned.transpose("class", "train_sample"), straight)
    with pytest.raises(MemoxrInputError, match=r"dim 'epoch' missing from influence; expected one of \("):
        memoxr.row_statistics(ds["influence"], dim="epoch")


def test_wrong_schema_attr_is_refused_and_wrong_dims_named(ds, scores):
    with pytest.raises(MemoxrInputError, match=r"attribute 'schema' is 'memoxr.scores' \(a scores store, as memoxr calculate --output writes\); "
                       r"expected 'memoxr.influence' \(an influence store, as memoxr convert writes\)"):
        memoxr.influence_scores(ds.assign_attrs(schema="memoxr.scores"))
    with pytest.raises(MemoxrInputError, match="schema_version is 7; this memoxr reads version 1"):
        memoxr.influence_scores(ds.assign_attrs(schema_version=7))
    with pytest.raises(MemoxrInputError, match=r"attribute 'schema' is 'memoxr.influence' \(an influence store, as memoxr convert writes\); "
                       r"expected 'memoxr.scores' \(a scores store, as memoxr calculate --output writes\)"):
        memoxr.class_stats(scores.assign_attrs(schema="memoxr.influence"))
    renamed = ds.rename({"test_sample": "test"})
    with pytest.raises(MemoxrInputError, match=r"variable 'influence' has dims \('class', 'train_sample', 'test'\); "
                                                r"expected \('class', 'train_sample', 'test_sample'\) in any order"):
        memoxr.influence_scores(renamed)
    with pytest.raises(MemoxrInputError, match="ds must be an xarray.Dataset; received DataArray"):
        memoxr.influence_scores(ds["influence"])


def test_indices_and_counts_are_coordinates(ds, scores):
    for name in ("train_index", "test_index", "train_count", "test_count"):
        assert name in ds.coords, name
    assert set(scores.coords) == {"class", "training_indices", "train_count"}
    means = scores.mean("train_sample")
    assert "training_indices" not in means and "train_count" in means.coords
    real = scores["training_indices"] >= 0
    np.testing.assert_allclose(means["original_memo"], scores["original_memo"].where(real).mean("train_sample"))
    reduced = ds[["memorization"]].sum("train_sample")
    assert "train_index" not in reduced.variables and list(reduced.data_vars) == ["memorization"]


def test_stores_keep_data_variables_on_disk_and_open_as_coordinates(tmp_path, ds, scores):
    from memoxr.workflows import load_scores, save_scores

    path = save_scores(scores.assign_attrs({COMPLETE_ATTR: True}), tmp_path / "s.zarr")
    raw = xr.open_zarr(path)
    assert {"training_indices", "train_count"} <= set(raw.data_vars)
    loaded = load_scores(path)
    assert {"training_indices", "train_count"} <= set(loaded.coords)
    xr.testing.assert_allclose(loaded.compute().drop_attrs(), scores.drop_attrs())
    npz = save_scores(scores, tmp_path / "seed.npz")
    assert "training_indices" in load_scores(npz, allow_pickle=True).coords


def test_scores_store_of_earlier_memoxr_still_loads(tmp_path, scores):
    """The on-disk schema name is "memoxr.scores" (a format, whatever the module is called now)."""
    from memoxr.io.storage import write_dataset
    from memoxr.workflows import load_scores

    old = scores.reset_coords(["training_indices", "train_count"]).drop_attrs()
    old.attrs.update(schema="memoxr.scores", schema_version=1)
    path = write_dataset(old, tmp_path / "old.zarr")
    loaded = load_scores(path)
    assert "training_indices" in loaded.coords
    pd.testing.assert_frame_equal(memoxr.class_stats(loaded), memoxr.class_stats(scores))


def test_influence_store_on_disk_is_unchanged(ragged_store):
    raw = xr.open_zarr(ragged_store)
    assert {"train_index", "test_index", "train_count", "test_count", "tr_labels", "tt_labels"} <= set(raw.data_vars)


def test_keep_attrs(ds, scores):
    assert "memoxr_version" not in memoxr.influence_scores(ds).attrs
    kept = memoxr.influence_scores(ds.assign_attrs({"note": "mine", COMPLETE_ATTR: True}), keep_attrs=True)
    assert kept.attrs["note"] == "mine" and kept.attrs["schema"] == "memoxr.scores"
    assert COMPLETE_ATTR not in kept.attrs  # never carried into a write
    tagged = scores.assign_attrs(note="mine")
    assert memoxr.class_stats(tagged).attrs == {}
    assert memoxr.class_stats(tagged, keep_attrs=True).attrs["note"] == "mine"
    for frame in (memoxr.top_k(tagged, 0, keep_attrs=True), memoxr.rank_agreement(tagged, keep_attrs=True),
                  memoxr.score_ranges(tagged, keep_attrs=True)):
        assert frame.attrs["note"] == "mine"
    table = memoxr.class_stats(tagged, keep_attrs=True)
    assert memoxr.top_classes(table, keep_attrs=True).attrs["note"] == "mine"
    report = memoxr.analyze(tagged, table, keep_attrs=True)
    assert report.ranges.attrs["note"] == "mine" and report.agreement.attrs["note"] == "mine"
    stats = memoxr.row_statistics(ds["influence"].assign_attrs(units="acc", note="x"), keep_attrs=True)
    assert stats.attrs["note"] == "x" and stats["mean"].attrs["units"] == "acc" and "units" not in stats["count"].attrs


def test_variables_carry_long_names_for_xarray_plots(ds, scores):
    for name in ("influence", "memorization", "class", "train_count"):
        assert ds[name].attrs["long_name"], name
    for name in [*scores.data_vars, "training_indices"]:
        assert scores[name].attrs["long_name"], name
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = scores["critical_sample_score"].isel({"class": 0}).plot()
    assert lines[0].axes.get_ylabel() == "critical sample score"
    plt.close("all")


def test_accessor_on_influence_and_scores(ds, scores):
    assert ds.memoxr.kind == "influence" and scores.memoxr.kind == "scores"
    xr.testing.assert_allclose(ds.memoxr.scores(alpha=0.5).compute(), memoxr.influence_scores(ds, alpha=0.5).compute())
    pd.testing.assert_frame_equal(ds.memoxr.class_stats(), memoxr.class_stats(scores))
    pd.testing.assert_frame_equal(scores.memoxr.class_stats(skipna=True), memoxr.class_stats(scores, skipna=True))
    pd.testing.assert_frame_equal(ds.memoxr.top_k(3, k=4, by="critical_sample_score"),
                                  memoxr.top_k(scores, 3, k=4, by="critical_sample_score"))
    assert str(ds.memoxr.analyze(class_label=1, k=2)) == str(memoxr.analyze(scores, memoxr.class_stats(scores), class_label=1, k=2))
    one = ds.memoxr.sel_class(3)
    assert dict(one["influence"].sizes) == {"train_sample": 9, "test_sample": 11}
    assert not np.isnan(one["influence"].values).any() and (one["train_index"].values >= 0).all()
    assert scores.memoxr.sel_class(2).sizes["train_sample"] == 1


def test_accessor_errors(ds, scores):
    with pytest.raises(MemoxrInputError, match=r"ds.memoxr.scores\(\) needs influence data .* received a Dataset"):
        scores.memoxr.scores()
    with pytest.raises(MemoxrInputError, match=r"ds.memoxr.class_stats\(\) needs influence or scores data"):
        xr.Dataset({"x": ("i", [1.0])}).memoxr.class_stats()
    with pytest.raises(MemoxrInputError, match=r"options \['alpha'\] apply to an influence Dataset"):
        scores.memoxr.class_stats(alpha=0.2)
    with pytest.raises(MemoxrInputError, match=r"class_label must be one of the classes \[0, 1, 2, 3, 4, 5\]; received 9"):
        ds.memoxr.sel_class(9)


def test_accessor_registers_lazily():
    code = ("import memoxr, xarray as xr; assert not hasattr(xr.Dataset, 'memoxr'); "
            "memoxr.open_influence; assert hasattr(xr.Dataset, 'memoxr')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_calculate_skipna(tmp_path, ragged_arrays):
    arrays = dict(ragged_arrays)
    arrays["infl_matrix_class0"] = arrays["infl_matrix_class0"].copy()
    arrays["infl_matrix_class0"][1, 2] = np.nan
    path = write_npz(tmp_path / "n.npz", arrays)
    outputs = {}
    for flag in ([], ["--skipna"]):
        csv = tmp_path / f"stats{len(flag)}.csv"
        result = CliRunner().invoke(main, ["calculate", "--input", path, "--stats-csv", str(csv), "-q", *flag])
        assert result.exit_code == 0, result.output
        outputs[bool(flag)] = (pd.read_csv(csv).set_index("class_label"), result.output)
    strict, skipping = outputs[False][0], outputs[True][0]
    assert np.isnan(strict.loc[0, "mean_infl_weighted_memo"]) and np.isfinite(skipping.loc[0, "mean_infl_weighted_memo"])
    row = arrays["infl_matrix_class0"][1].astype(float)
    row = row[~np.isnan(row)]
    memo = arrays["tr_mem"][arrays["tr_classidx_0"][1]]
    assert np.isfinite(strict.loc[1:, "mean_infl_weighted_memo"]).all()
    got = memoxr.influence_scores(memoxr.open_influence(path), skipna=True)["influence_weighted_memo"].values[0, 1]
    assert got == pytest.approx(memo * np.maximum(row, 0).mean(), rel=1e-6)
    assert "--skipna" in CliRunner().invoke(main, ["calculate", "--help"]).output
