"""xarray manners of the dynamics functions, as a table in the style of xskillscore's metric tests.

Every public reducing function (each proxy, compute_proxies, evaluate) x skipna (None, True, False)
x has_nan x backend (numpy, dask chunked on epoch and on train_id): values against plain-Python loops
written here apart from the implementation (scikit-learn for AUROC), numpy == dask, NaN as documented.
Then: dims in any order, the old ``sample`` name, attributes, bad keywords.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import roc_auc_score

import memoxr.dynamics as dyn
from memoxr.errors import MemoxrInputError

RUNS, T, N = ("mlp", "cnn"), 7, 13
CHUNKS = {"epoch": 3, "train_id": 5}  # 3 chunks on epoch, 3 on train_id (the last ragged)
SKIPNA = [None, True, False]


# --------------------------------------------------------------------------- references (plain Python)


def _is_nan(v: float) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _ref(name: str, traj: list[float], skip: bool, tau: float = math.nan) -> float:
    """One proxy on one sample's trajectory; ``skip``: leave NaN epochs out, else a NaN makes NaN."""
    t = len(traj)
    kept = [(i, v) for i, v in enumerate(traj) if not _is_nan(v)]
    if name in ("final_loss", "in_confidence"):
        last = (kept[-1][1] if kept else math.nan) if skip else traj[-1]
        return last if name == "final_loss" else 1.0 - last
    if not kept or (not skip and len(kept) < t):
        return math.nan
    values = [v for _, v in kept]
    n = len(values)
    if name in ("csl", "cumulative_grad_norm"):
        total = 0.0
        for v in values:
            total += v
        return total
    if name in ("mean_loss", "mean_curvature", "confidence"):
        return sum(values) / n
    if name == "variability":
        mean = sum(values) / n
        return (sum((v - mean) ** 2 for v in values) / n) ** 0.5
    if name == "learning_time":
        if _is_nan(tau):
            return math.nan
        below, running = 0, 0.0
        for k, v in enumerate(values, start=1):
            running += v
            below += running / k < tau
        return 1.0 - below / n
    if name == "threshold_learning_time":
        wrong = [i for i, v in kept if v == 0]
        return float(wrong[-1] + 1) if wrong else 0.0
    if name == "forgetting_events":
        return float(sum(1 for a, b in zip(values[:-1], values[1:], strict=True) if a != 0 and b == 0))
    raise KeyError(name)


def _reference(ds: xr.Dataset, name: str, skip: bool) -> np.ndarray:
    x = ds[dyn.PROXIES[name].variable].transpose("run", "epoch", "train_id").values.astype(np.float64)
    out = np.empty((len(RUNS), N))
    for r in range(len(RUNS)):
        tau = math.nan
        if name == "learning_time":
            flat = [float(v) for v in x[r].ravel()]
            kept = [v for v in flat if not _is_nan(v)]
            tau = (sum(kept) / len(kept) if kept else math.nan) if skip else (
                math.nan if len(kept) < len(flat) else sum(flat) / len(flat))
        for i in range(N):
            out[r, i] = _ref(name, [float(v) for v in x[r, :, i]], skip, tau)
    return out


def _dataset(has_nan: bool, seed: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    shape = (len(RUNS), T, N)
    correct = (rng.random(shape) < 0.6).astype(np.float64 if has_nan else bool)
    data = {
        "loss": rng.gamma(2.0, 1.0, shape),
        "grad_norm": rng.gamma(2.0, 1.0, shape),
        "curvature": rng.random(shape),
        "true_prob": rng.random(shape),
        "correct": correct,
    }
    if has_nan:
        for name, arr in data.items():
            arr[0, rng.integers(0, T, 4), rng.integers(0, N, 4)] = np.nan  # scattered missing epochs
            arr[1, T - 1, 2] = np.nan  # a missing last epoch
            arr[1, :, 5] = np.nan  # a sample never recorded in one run
            data[name] = arr
    mislabeled = np.zeros(N, dtype=bool)
    mislabeled[[0, 3, 4, 8, 11]] = True
    dims = ("run", "epoch", "train_id")
    return xr.Dataset(
        {**{k: (dims, v) for k, v in data.items()}, "is_mislabeled": ("train_id", mislabeled)},
        coords={"run": np.array(RUNS, dtype=object), "epoch": np.arange(T), "train_id": np.arange(100, 100 + N)},
        attrs={"sample_order": "tfds", "note": "kept with keep_attrs"},
    )


def _backend(ds: xr.Dataset, backend: str) -> xr.Dataset:
    return ds.chunk(CHUNKS) if backend == "dask" else ds


def _epoch_skip(skipna: bool | None) -> bool:
    return bool(skipna)  # None: NaN propagates along epoch (the documented default)


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
@pytest.mark.parametrize("name", list(dyn.PROXIES))
def test_proxy_table(name, skipna, has_nan, backend):
    ds = _dataset(has_nan)
    func = dyn.PROXIES[name].func
    got = func(_backend(ds, backend)[dyn.PROXIES[name].variable], skipna=skipna)
    assert got.dims == ("run", "train_id") and got.name == name
    assert (got.chunks is not None) == (backend == "dask")
    expected = _reference(ds, name, _epoch_skip(skipna))
    np.testing.assert_allclose(got.values, expected, rtol=1e-12, atol=1e-12)  # NaN where expected, nowhere else
    if backend == "dask":  # numpy == dask (up to the order of the chunked sums)
        np.testing.assert_allclose(got.values, func(ds[dyn.PROXIES[name].variable], skipna=skipna).values, rtol=1e-14)
    if not has_nan:  # without NaN every skipna gives the same numbers
        np.testing.assert_allclose(got.values, func(ds[dyn.PROXIES[name].variable], skipna=not skipna).values)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
def test_compute_proxies_table(skipna, has_nan, backend):
    ds = _dataset(has_nan)
    out = dyn.compute_proxies(_backend(ds, backend), skipna=skipna).compute()
    assert list(out.data_vars) == list(dyn.PROXIES)
    for name in dyn.PROXIES:
        np.testing.assert_allclose(out[name].values, _reference(ds, name, _epoch_skip(skipna)), rtol=1e-12, atol=1e-12)
    assert "is_mislabeled" in out.coords  # a mask is a coordinate: reductions never average it
    assert set(out.mean("train_id").data_vars) == set(dyn.PROXIES)


def _auroc_reference(csl: np.ndarray, mask: np.ndarray, skipna: bool | None) -> tuple[float, int]:
    ok = ~np.isnan(csl)
    if skipna is False and not ok.all():
        return math.nan, csl.size
    return roc_auc_score(mask[ok], csl[ok]), int(ok.sum())


@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
def test_evaluate_table(skipna, has_nan, backend):
    ds = _dataset(has_nan)
    table = dyn.evaluate(_backend(ds, backend), proxies=["csl", "confidence"], skipna=skipna)
    mask = ds["is_mislabeled"].values
    for r, run in enumerate(RUNS):
        for name, sign in (("csl", 1), ("confidence", -1)):
            score = sign * _reference(ds, name, _epoch_skip(skipna))[r]
            expected, n = _auroc_reference(score, mask, skipna)
            row = table[(table.run == run) & (table.proxy == name) & (table.metric == "auroc")]
            assert row["n"].item() == n
            np.testing.assert_allclose(row["value"].item(), expected, rtol=1e-12)
    if backend == "dask":
        pd.testing.assert_frame_equal(table, dyn.evaluate(ds, proxies=["csl", "confidence"], skipna=skipna))


@pytest.mark.parametrize("skipna", SKIPNA)
def test_cross_run_and_compare_stores_nan(skipna):
    ds = _dataset(True)
    across = dyn.cross_run(ds, dim="run", proxies=["csl"], skipna=skipna)
    x, y = (_reference(ds, "csl", _epoch_skip(skipna))[r] for r in range(2))
    ok = ~np.isnan(x) & ~np.isnan(y)
    pearson = across.query("metric == 'pearson'")["value"].item()
    if skipna is False:
        assert math.isnan(pearson)
    else:
        np.testing.assert_allclose(pearson, np.corrcoef(x[ok], y[ok])[0, 1], rtol=1e-10)
        assert across.query("metric == 'pearson'")["n"].item() == ok.sum()
    both = dyn.compare_stores(ds, ds.isel(train_id=slice(None, None, -1)), proxies=["csl"], skipna=skipna)
    assert (both.query("metric == 'pearson'")["value"].isna().all() if skipna is False
            else np.allclose(both.query("metric == 'pearson'")["value"], 1.0))


# --------------------------------------------------------------------------- dims by name, the old name


def test_dims_in_any_order_give_the_same_values():
    ds = _dataset(True)
    turned = ds.transpose("train_id", "epoch", "run").chunk({"epoch": 2, "train_id": 4})
    for name in dyn.PROXIES:
        a = dyn.PROXIES[name].func(ds[dyn.PROXIES[name].variable], skipna=True)
        b = dyn.PROXIES[name].func(turned[dyn.PROXIES[name].variable], skipna=True)
        assert b.dims == ("train_id", "run")  # the input's order, epoch reduced
        xr.testing.assert_allclose(a, b.transpose(*a.dims))
    pd.testing.assert_frame_equal(dyn.evaluate(ds, proxies=["csl"]), dyn.evaluate(turned, proxies=["csl"]))


def test_old_sample_name_is_read_and_kept():
    ds = _dataset(False)
    old = ds.rename(train_id="sample")
    out = dyn.compute_proxies(old)
    assert out["csl"].dims == ("run", "sample")  # the user's name is kept
    np.testing.assert_array_equal(out["csl"].values, dyn.compute_proxies(ds)["csl"].values)
    pd.testing.assert_frame_equal(dyn.evaluate(old), dyn.evaluate(ds))
    memo = xr.DataArray(np.linspace(0, 1, N), dims="sample", coords={"sample": ds["train_id"].values},
                        attrs={"sample_order": "tfds"})
    pd.testing.assert_frame_equal(dyn.evaluate(ds, proxies=["csl"], influence=memo),
                                  dyn.evaluate(old, proxies=["csl"], influence=memo.rename(sample="train_id")))
    assert dyn.sample_dim(old) == "sample" and dyn.sample_dim(ds) == "train_id"
    with pytest.raises(MemoxrInputError, match="both name the sample identity"):
        dyn.sample_dim(xr.DataArray(np.ones((2, 2)), dims=("sample", "train_id")))


def test_old_store_opens_with_train_id(tmp_path):
    from memoxr.io.storage import write_dataset

    ds = _dataset(False).rename(train_id="sample").assign_attrs(schema=dyn.DYNAMICS_SCHEMA, schema_version=1)
    write_dataset(ds, tmp_path / "old.zarr")
    opened = dyn.open_dynamics(tmp_path / "old.zarr")
    assert opened["loss"].dims == ("run", "epoch", "train_id")
    assert opened["loss"].attrs["long_name"] == "training loss" and opened["train_id"].attrs["long_name"]
    np.testing.assert_array_equal(opened["train_id"].values, ds["sample"].values)


def test_attributes_and_keep_attrs():
    ds = _dataset(False)
    ds["loss"].attrs = {"units": "nats", "recorded_by": "me"}
    plain = dyn.csl(ds["loss"])
    assert plain.attrs["long_name"] == "cumulative sample loss" and plain.attrs["direction"] == 1
    assert "recorded_by" not in plain.attrs
    kept = dyn.csl(ds["loss"], keep_attrs=True)
    assert kept.attrs["recorded_by"] == "me" and kept.attrs["proxy"] == "csl"
    with xr.set_options(keep_attrs=True):
        assert dyn.csl(ds["loss"]).attrs["recorded_by"] == "me"
    out = dyn.compute_proxies(ds, keep_attrs=True)
    assert out.attrs["note"] == "kept with keep_attrs" and out.attrs["sample_order"] == "tfds"
    assert dyn.compute_proxies(ds).attrs == {"sample_order": "tfds"}
    assert dyn.evaluate(ds, proxies=["csl"], keep_attrs=True).attrs["note"] == "kept with keep_attrs"
    assert dyn.confidence(ds["true_prob"]).attrs["direction"] == -1


def test_bad_keywords_are_clear_errors():
    ds = _dataset(False)
    with pytest.raises(MemoxrInputError, match="skipna: expected True, False or None; received 'yes'"):
        dyn.csl(ds["loss"], skipna="yes")
    with pytest.raises(MemoxrInputError, match="keep_attrs: expected True, False or None; received 1"):
        dyn.compute_proxies(ds, keep_attrs=1)
    with pytest.raises(MemoxrInputError, match="skipna: expected True, False or None"):
        dyn.evaluate(ds, skipna=0)


def test_cli_skipna_reaches_evaluate(tmp_path):
    from click.testing import CliRunner

    from memoxr.cli import main
    from memoxr.io.storage import write_dataset

    ds = _dataset(True).assign_attrs(schema=dyn.DYNAMICS_SCHEMA, schema_version=1)
    write_dataset(ds.chunk(CHUNKS), tmp_path / "d.zarr")
    for flag, skipna in (([], None), (["--skipna"], True), (["--no-skipna"], False)):
        out = tmp_path / f"{skipna}.csv"
        result = CliRunner().invoke(main, ["evaluate", "--input", str(tmp_path / "d.zarr"), "--proxy", "csl",
                                           "--output", str(out), "-q", *flag])
        assert result.exit_code == 0, result.output
        expected = dyn.evaluate(ds, proxies=["csl"], skipna=skipna)
        pd.testing.assert_frame_equal(pd.read_csv(out), expected, check_dtype=False)


def test_compare_scores_reads_the_old_name_and_proxy_coordinates():
    from memoxr.importers.compare import compare_scores

    ds = _dataset(False)
    new = compare_scores({"d": ds}, mask="is_mislabeled", proxies=["csl"])
    old = compare_scores({"d": ds.rename(train_id="sample")}, mask="is_mislabeled", proxies=["csl"])
    pd.testing.assert_frame_equal(new, old)
    from_proxies = compare_scores({"d": dyn.compute_proxies(ds, ["csl"])}, mask="is_mislabeled")
    pd.testing.assert_frame_equal(new, from_proxies)


def test_xarray_plot_labels_its_axes_from_long_name_and_units():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = dyn.compute_proxies(_dataset(False))
    fig, ax = plt.subplots()
    try:
        ds["csl"].sel(run="mlp").plot.line(ax=ax, x="train_id")
        assert ax.get_ylabel() == "cumulative sample loss [nats]"
        assert ax.get_xlabel() == "train_id"  # a hand-built fixture: no label; stores and ingest add one
        ax.clear()
        ds["threshold_learning_time"].plot.hist(ax=ax)
        assert ax.get_xlabel().split() == ["threshold", "learning", "time", "[epochs]"]  # xarray wraps long labels
    finally:
        plt.close(fig)


def test_evaluate_on_computed_proxies_equals_on_the_recording():
    ds = _dataset(True)
    proxies = dyn.compute_proxies(ds.chunk(CHUNKS), ["csl", "forgetting_events"], skipna=True)
    pd.testing.assert_frame_equal(dyn.evaluate(proxies), dyn.evaluate(ds, proxies=["csl", "forgetting_events"], skipna=True))
    pd.testing.assert_frame_equal(dyn.evaluate(proxies.drop_attrs()),  # no schema, no sample_order: still a dataset
                                  dyn.evaluate(ds, proxies=["csl", "forgetting_events"], skipna=True))
    with pytest.raises(MemoxrInputError, match="no score to evaluate among \\['other'\\]"):
        dyn.evaluate(xr.Dataset({"other": ("train_id", np.ones(N))}, coords={"is_mislabeled": ds["is_mislabeled"]}))


@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
def test_compare_scores_table(skipna, has_nan, backend):
    """compare_scores: proxies by the epoch rule, NaN samples left out of the metrics unless skipna=False."""
    from scipy import stats as sps

    from memoxr.importers.compare import compare_scores

    ds = _dataset(has_nan)
    memo_values = np.linspace(0.0, 1.0, N) ** 2
    if has_nan:
        memo_values[7] = np.nan  # a sample without an FZ estimate
    memo = xr.DataArray(memo_values, dims="train_id", coords={"train_id": ds["train_id"].values},
                        attrs={"sample_order": "tfds"})
    got = compare_scores({"d": _backend(ds, backend)}, mask="is_mislabeled", memorization=memo, proxies=["csl"],
                         skipna=skipna).set_index("run")
    mask = ds["is_mislabeled"].values
    for r, run in enumerate(RUNS):
        score = _reference(ds, "csl", _epoch_skip(skipna))[r]
        auroc, n = _auroc_reference(score, mask, skipna)
        np.testing.assert_allclose(got.loc[run, "auroc"], auroc, rtol=1e-12)
        assert got.loc[run, "n_mask"] == n
        both = ~np.isnan(score) & ~np.isnan(memo_values)
        if skipna is False and not both.all():
            assert math.isnan(got.loc[run, "spearman"]) and got.loc[run, "n_memorization"] == N
        else:
            rho = sps.spearmanr(score[both], memo_values[both]).statistic
            np.testing.assert_allclose(got.loc[run, "spearman"], rho, rtol=1e-10)
            assert got.loc[run, "n_memorization"] == both.sum()
    assert compare_scores({"d": ds}, mask="is_mislabeled", keep_attrs=True).attrs["note"] == "kept with keep_attrs"
    assert compare_scores({"d": ds}, mask="is_mislabeled").attrs == {}


@pytest.mark.parametrize("has_nan", [False, True])
@pytest.mark.parametrize("skipna", SKIPNA)
def test_metrics_table(skipna, has_nan):
    """detection_metrics / correlation_metrics on vectors: NaN samples left out unless skipna=False."""
    from scipy import stats as sps
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(8)
    score, other = rng.random(40), rng.random(40)
    mask = rng.random(40) < 0.3
    if has_nan:
        score[[2, 17]] = np.nan
        other[5] = np.nan
    detection = dyn.detection_metrics(score, mask, skipna=skipna)
    correlation = dyn.correlation_metrics(score, other, skipna=skipna)
    if has_nan and skipna is False:
        assert all(math.isnan(v) for v in [*detection.values(), *correlation.values()])
        return
    ok, both = ~np.isnan(score), ~np.isnan(score) & ~np.isnan(other)
    np.testing.assert_allclose(detection["auroc"], roc_auc_score(mask[ok], score[ok]), rtol=1e-12)
    np.testing.assert_allclose(detection["auprc"], average_precision_score(mask[ok], score[ok]), rtol=1e-12)
    np.testing.assert_allclose(correlation["pearson"], np.corrcoef(score[both], other[both])[0, 1], rtol=1e-10)
    np.testing.assert_allclose(correlation["spearman"], sps.spearmanr(score[both], other[both]).statistic, rtol=1e-10)
