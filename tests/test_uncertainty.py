"""Convergence of the estimates over trials, and standard errors carried into the scores."""

from __future__ import annotations

import numpy as np
import pytest
from test_estimate import make_records, reference

import memoxr
from memoxr.errors import MemoxrInputError
from memoxr.estimate import estimate

# ------------------------------------------------------------------------------------------------
# Convergence


def _within_class(infl, tr_labels, tt_labels):
    """Influence values of same-class pairs, in one flat array."""
    return infl[tr_labels[:, None] == tt_labels[None, :]]


def _reference_rows(rec, fractions):
    """The convergence table from plain loops: the reference estimator on each prefix of trials."""
    n_total = len(rec["mask"])
    estimates = {}
    for n in [*(max(1, round(f * n_total)) for f in fractions), n_total]:
        mem, infl = reference(rec["mask"][:n], rec["train_correct"][:n], rec["test_correct"][:n])
        estimates[n] = {"memorization": mem, "influence": _within_class(infl, rec["tr_labels"], rec["tt_labels"])}
    rows, previous = [], None
    for f in fractions:
        n = max(1, round(f * n_total))
        for name in ("memorization", "influence"):
            x, full = estimates[n][name], estimates[n_total][name]
            both = np.isfinite(x) & np.isfinite(full)
            change = np.nan
            if previous is not None:
                prev = estimates[previous][name]
                moved = np.isfinite(x) & np.isfinite(prev)
                change = np.abs(x[moved] - prev[moved]).mean()
            rows.append((f, n, name, both.sum(), np.corrcoef(x[both], full[both])[0, 1],
                         np.abs(x[both] - full[both]).mean(), change))
        previous = n
    return rows


def test_convergence_matches_a_loop_over_prefixes():
    rec = make_records(n_trials=60, n_train=17, n_test=13, n_class=3, seed=9)
    fractions = (0.1, 0.25, 0.5, 0.8, 1.0)
    table = memoxr.convergence(rec, fractions=fractions, chunk_mb=0.001)  # several chunks of trials and samples
    expected = _reference_rows(rec, fractions)
    assert list(table.columns) == ["fraction", "n_trials", "estimate", "n_defined", "correlation",
                                   "mean_abs_diff", "mean_abs_change"]
    assert len(table) == len(expected)
    for row, (f, n, name, count, corr, diff, change) in zip(table.itertuples(), expected, strict=True):
        assert (row.fraction, row.n_trials, row.estimate, row.n_defined) == (f, n, name, count)
        np.testing.assert_allclose([row.correlation, row.mean_abs_diff], [corr, diff], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(row.mean_abs_change, change, rtol=1e-5, atol=1e-6)
    last = table[table.fraction == 1.0]
    assert (last.correlation == 1).all() and (last.mean_abs_diff == 0).all()
    # With more trials the estimates get closer to the all-trial ones.
    infl = table[table.estimate == "influence"]
    assert infl.correlation.is_monotonic_increasing and infl.mean_abs_diff.is_monotonic_decreasing


def test_convergence_without_the_full_fraction_and_errors():
    rec = make_records(n_trials=40)
    table = memoxr.convergence(rec, fractions=(0.5,))
    assert table.n_trials.tolist() == [20, 20] and table.correlation.lt(1).all()
    for bad in [(), (0.5, 0.2), (0, 1), (1.5,), "0.5", (True,)]:
        with pytest.raises(MemoxrInputError, match="fractions: expected increasing numbers in \\(0, 1\\]"):
            memoxr.convergence(rec, fractions=bad)


def test_plot_convergence():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = memoxr.convergence(make_records(n_trials=50), fractions=(0.2, 0.6, 1.0))
    fig = memoxr.plot_convergence(table)
    corr_axes, change_axes = fig.axes
    assert [line.get_label() for line in corr_axes.lines] == ["memorization", "influence"]
    np.testing.assert_array_equal(corr_axes.lines[1].get_ydata(), table[table.estimate == "influence"].correlation)
    assert change_axes.get_yscale() == "log"
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Errors carried into the scores


@pytest.fixture(scope="module")
def estimated():
    return estimate(make_records(n_trials=80, n_train=31, n_test=19, n_class=3, seed=3), chunk_mb=0.001)


@pytest.mark.parametrize("errors", ["independent", "bound"])
def test_influence_weighted_memo_error_matches_a_loop(estimated, errors):
    ds = estimated.compute()
    out = memoxr.score_errors(estimated, errors=errors).compute()
    scores = memoxr.influence_scores(ds).compute()  # the same means of float32 values, summed another way
    np.testing.assert_allclose(out["pos_infl_mean"], scores["pos_infl_mean"], rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(out["influence_weighted_memo"], scores["influence_weighted_memo"], rtol=1e-6,
                               equal_nan=True)
    for c in range(ds.sizes["class"]):
        n_i, n_j = int(ds["train_count"][c]), int(ds["test_count"][c])
        for row in range(ds.sizes["train_sample"]):
            if row >= n_i:
                assert np.isnan(out["influence_weighted_memo_se"].values[c, row])
                continue
            i = int(ds["train_index"][c, row])
            infl, se = ds["influence"].values[c, row, :n_j], ds["influence_se"].values[c, row, :n_j]
            m, se_m = ds["tr_mem"].values[i], ds["tr_mem_se"].values[i]
            p = sum(max(v, 0.0) for v in infl) / n_j
            terms = [s for v, s in zip(infl, se, strict=True) if v > 0]
            se_p = np.sqrt(sum(s * s for s in terms)) / n_j if errors == "independent" else sum(terms) / n_j
            expected = np.sqrt(p**2 * se_m**2 + m**2 * se_p**2)
            np.testing.assert_allclose(out["influence_weighted_memo_se"].values[c, row], expected, rtol=1e-5)
            np.testing.assert_allclose(out["memorization_se"].values[c, row], se_m, rtol=1e-12)


def test_bound_is_at_least_the_independent_error(estimated):
    independent = memoxr.score_errors(estimated)["pos_infl_mean_se"].values
    bound = memoxr.score_errors(estimated, errors="bound")["pos_infl_mean_se"].values
    finite = np.isfinite(independent)
    assert finite.any() and (bound[finite] >= independent[finite] - 1e-12).all()


def test_score_errors_need_an_estimate_store(estimated):
    with pytest.raises(MemoxrInputError, match=r"lacks \['influence_se'\]; expected an estimate store"):
        memoxr.score_errors(estimated.drop_vars("influence_se"))
    with pytest.raises(MemoxrInputError, match="errors: expected 'independent' or 'bound', received 'x'"):
        memoxr.score_errors(estimated, errors="x")



def test_convergence_cli(tmp_path):
    pytest.importorskip("matplotlib")
    import pandas as pd
    from click.testing import CliRunner

    from memoxr.cli import main
    from memoxr.estimate import write_trials

    rec = make_records(n_trials=40)
    write_trials(rec, tmp_path / "t.npz")
    args = ["convergence", str(tmp_path / "t.npz"), str(tmp_path / "c.csv"), "--fractions", "0.5,1", "-q"]
    result = CliRunner().invoke(main, [*args, "--figure", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "c.csv")
    pd.testing.assert_frame_equal(written, memoxr.convergence(rec, fractions=(0.5, 1.0)), check_dtype=False)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    result = CliRunner().invoke(main, [*args[:2], str(tmp_path / "d.csv"), "--fractions", "0.5,x"])
    assert result.exit_code == 2 and "--fractions: expected comma-separated numbers" in result.output
    result = CliRunner().invoke(main, [*args[:2], str(tmp_path / "d.csv"), "--fractions", "0.9,0.5"])
    assert result.exit_code == 2 and "fractions: expected increasing numbers" in result.output
    assert not (tmp_path / "d.csv").exists()
