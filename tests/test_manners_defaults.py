"""The one skipna/keep_attrs rule: every public reducing function shares its defaults, and on NaN data
the default (``skipna=None``) gives what memoxr 0.x gave.

0.x (before the redesign): ``score_ranges`` and ``rank_agreement`` always left NaN samples out,
``top_k``/``top_classes`` sorted them last, ``influence_scores`` and ``class_stats`` propagated NaN.
The references below are numpy and scipy, written apart from memoxr.
"""

from __future__ import annotations

import importlib
import inspect
import itertools

import numpy as np
import pytest
from scipy import stats as sps

import memoxr
import memoxr.dynamics as dyn
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.workflows import save_scores

from conftest import RAGGED_TEST, RAGGED_TRAIN, SMALL_CHUNKS, write_npz

METHODS = ["original_memo", "influence_weighted_memo", "representativeness_score", "weighted_combination",
           "critical_sample_score"]

#: Modules holding public reducing functions; every public function there with a ``skipna`` or
#: ``keep_attrs`` keyword must follow the rule's defaults (a new function is swept in by itself).
MODULES = [
    "memoxr.influence.scores", "memoxr.influence.stats", "memoxr.influence.analysis", "memoxr.influence.pairs",
    "memoxr.dynamics.proxies", "memoxr.dynamics.registry", "memoxr.dynamics.evaluate", "memoxr.dynamics.report",
    "memoxr.dynamics.metrics",
    "memoxr.importers.compare", "memoxr.estimate.uncertainty", "memoxr.workflows",
]
#: Functions that must take both keywords (and so cannot silently lose one).
BOTH = [
    "influence_scores", "row_statistics", "class_stats", "top_k", "top_classes", "rank_agreement", "score_ranges",
    "analyze", "pairs", "score_errors", "compare_scores", "compute_proxies", "evaluate", "cross_run",
    "compare_stores", "evaluate_store", *dyn.PROXIES,
]
#: Workflows behind the commands, and the metrics of plain numpy vectors: ``skipna`` only (no attributes to keep).
SKIPNA_ONLY = ["calculate", "update_csv", "load_scores", "plan_search", "detection_metrics", "correlation_metrics"]


def _public_functions() -> dict[str, object]:
    found = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not attr.startswith("_") and inspect.isfunction(value) and value.__module__ == name:
                found[attr] = value
    accessor = importlib.import_module("memoxr.influence.accessor").MemoxrAccessor
    for attr in ("class_stats", "top_k", "analyze"):
        found[f"Dataset.memoxr.{attr}"] = getattr(accessor, attr)
    return found


def test_every_public_reducing_function_shares_the_defaults():
    functions = _public_functions()
    for name in [*BOTH, *SKIPNA_ONLY, "Dataset.memoxr.class_stats", "Dataset.memoxr.top_k", "Dataset.memoxr.analyze"]:
        assert name in functions, f"{name} not found in {MODULES}"
        parameters = inspect.signature(functions[name]).parameters
        assert "skipna" in parameters, name
        if name in BOTH or name.startswith("Dataset."):
            assert "keep_attrs" in parameters, name
    checked = 0
    for name, func in functions.items():
        for keyword, parameter in inspect.signature(func).parameters.items():
            if keyword in ("skipna", "keep_attrs"):
                assert parameter.default is None, f"{name}({keyword}=...) defaults to {parameter.default!r}"
                assert parameter.annotation == "bool | None", f"{name}({keyword}: {parameter.annotation})"
                assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
                checked += 1
    assert checked >= 2 * len(BOTH) + len(SKIPNA_ONLY)


def test_the_old_dynamics_resolvers_are_the_shared_ones():
    from memoxr.compute import manners
    from memoxr.dynamics import _manners

    assert _manners.epoch_skipna is manners.reduce_skipna
    assert _manners.sample_skipna is manners.rank_skipna
    assert _manners.resolve_keep_attrs is manners.resolve_keep_attrs


@pytest.fixture(scope="module")
def nan_scores(tmp_path_factory):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=11)
    for k, row, columns in [(0, 1, [2]), (1, 5, slice(None)), (3, 0, [10]), (3, 8, [0, 10])]:
        arrays[f"infl_matrix_class{k}"][row, columns] = np.nan
    path = write_npz(tmp_path_factory.mktemp("nan") / "nan.npz", arrays)
    ds = memoxr.open_influence(path).chunk({"class": SMALL_CHUNKS.cls, "train_sample": SMALL_CHUNKS.train,
                                            "test_sample": SMALL_CHUNKS.test})
    scores = memoxr.influence_scores(ds).compute()
    real = scores["training_indices"].values >= 0
    assert np.isnan(scores["influence_weighted_memo"].values[real]).sum() == 4  # the fixture holds NaN scores
    return scores, real


def test_default_score_ranges_leave_nan_out_as_0x(nan_scores):
    scores, real = nan_scores
    got = memoxr.score_ranges(scores).set_index("method")
    for method in METHODS:
        values = scores[method].values[real]
        assert got.loc[method, "min"] == np.nanmin(values) and got.loc[method, "max"] == np.nanmax(values), method


def _spearman_0x(a: np.ndarray, b: np.ndarray) -> float:
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 2 or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
        return np.nan
    return float(sps.spearmanr(a[both], b[both]).statistic)


def test_default_rank_agreement_leaves_nan_out_as_0x(nan_scores):
    scores, real = nan_scores
    got = memoxr.rank_agreement(scores).set_index(["class_label", "method_a", "method_b"])["spearman"]
    labels = scores["class"].values.tolist()
    for a, b in itertools.combinations(METHODS, 2):
        x, y = scores[a].values, scores[b].values
        for c, label in enumerate(labels):
            keep = real[c]
            np.testing.assert_allclose(got[(label, a, b)], _spearman_0x(x[c][keep], y[c][keep]), atol=1e-12)
        np.testing.assert_allclose(got[("all", a, b)], _spearman_0x(x[real], y[real]), atol=1e-12)
    key = (1, "original_memo", "influence_weighted_memo")  # class 1 holds a NaN score
    assert np.isfinite(got[key])
    assert np.isnan(memoxr.rank_agreement(scores, skipna=False).set_index(got.index.names)["spearman"][key])


def test_default_top_k_and_top_classes_are_0x_without_the_nan_rows(nan_scores):
    """0.x listed NaN last; a NaN has no rank now, so the default keeps 0.x's rows up to the first NaN."""
    scores, real = nan_scores
    by = "influence_weighted_memo"
    n = int(real[1].sum())
    values = scores[by].values[1][real[1]]
    order_0x = sorted(range(n), key=lambda i: (np.isnan(values[i]), -values[i] if not np.isnan(values[i]) else 0, i))
    finite_0x = [i for i in order_0x if not np.isnan(values[i])]
    assert len(finite_0x) == n - 1  # class 1 holds one NaN score
    assert memoxr.top_k(scores, 1, k=n, by=by)["train_sample"].tolist() == finite_0x
    assert memoxr.top_k(scores, 1, k=n, by=by, skipna=False)["train_sample"].tolist() == order_0x
    table = memoxr.class_stats(scores)
    assert np.isnan(table.loc[table["class_label"] == 1, "mean_infl_weighted_memo"]).all()  # np.mean propagates, as 0.x
    means = table.set_index("class_label")["mean_infl_weighted_memo"]
    finite_classes = means.dropna().sort_values(ascending=False, kind="stable").index.tolist()
    best = memoxr.top_classes(table, n=len(means))
    assert best[best["method"] == by]["class_label"].tolist() == finite_classes


def test_bad_flags_are_clear_errors(nan_scores, tmp_path):
    from memoxr.errors import MemoxrInputError
    from memoxr.importers.compare import compare_scores

    scores, _ = nan_scores
    ds = memoxr.open_influence(memoxr.sample_path())
    calls = {
        "influence_scores": lambda **kw: memoxr.influence_scores(ds, **kw),
        "row_statistics": lambda **kw: memoxr.row_statistics(ds["influence"], **kw),
        "class_stats": lambda **kw: memoxr.class_stats(scores, **kw),
        "top_k": lambda **kw: memoxr.top_k(scores, 0, **kw),
        "top_classes": lambda **kw: memoxr.top_classes(memoxr.class_stats(scores), **kw),
        "rank_agreement": lambda **kw: memoxr.rank_agreement(scores, **kw),
        "score_ranges": lambda **kw: memoxr.score_ranges(scores, **kw),
        "pairs": lambda **kw: memoxr.pairs(ds, **kw),
        "compare_scores": lambda **kw: compare_scores([ds], memorization=ds, **kw),
    }
    for call in calls.values():
        with pytest.raises(MemoxrInputError, match="skipna: expected True, False or None; received 'yes'"):
            call(skipna="yes")
        with pytest.raises(MemoxrInputError, match="keep_attrs: expected True, False or None; received 1"):
            call(keep_attrs=1)


def test_keep_attrs_none_follows_xarray_option(nan_scores):
    import xarray as xr

    scores, _ = nan_scores
    scores = scores.assign_attrs(note="mine")
    ds = memoxr.open_influence(memoxr.sample_path()).assign_attrs(note="mine")
    calls = {
        "influence_scores": lambda **kw: memoxr.influence_scores(ds, **kw).attrs,
        "row_statistics": lambda **kw: memoxr.row_statistics(ds["influence"].assign_attrs(note="mine"), **kw).attrs,
        "class_stats": lambda **kw: memoxr.class_stats(scores, **kw).attrs,
        "top_k": lambda **kw: memoxr.top_k(scores, 0, **kw).attrs,
        "rank_agreement": lambda **kw: memoxr.rank_agreement(scores, **kw).attrs,
        "score_ranges": lambda **kw: memoxr.score_ranges(scores, **kw).attrs,
        "pairs": lambda **kw: memoxr.pairs(ds, **kw).attrs,
    }
    for name, call in calls.items():
        assert "note" not in call() and "note" not in call(keep_attrs=False), name
        assert call(keep_attrs=True)["note"] == "mine", name
        with xr.set_options(keep_attrs=True):
            assert call()["note"] == "mine", name
            assert "note" not in call(keep_attrs=False), name


def test_scores_record_the_nan_rule_as_before(tmp_path):
    """attrs["skipna"] stays 0 or 1 (what stores written before hold): None records the rule it applied, 0."""
    ds = memoxr.open_influence(memoxr.sample_path())
    recorded = {skipna: memoxr.influence_scores(ds, skipna=skipna).attrs["skipna"] for skipna in (None, False, True)}
    assert recorded == {None: 0, False: 0, True: 1} and all(type(v) is int for v in recorded.values())
    path = save_scores(memoxr.influence_scores(ds, skipna=True), tmp_path / "s.zarr")
    assert memoxr.load_scores(path).attrs["skipna"] == 1
