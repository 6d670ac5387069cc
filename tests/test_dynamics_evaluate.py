"""Evaluation metrics against loop references, sklearn and scipy; sample identity and orders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

import memoxr.dynamics as dyn
from memoxr.errors import MemoxrInputError

N, T = 40, 6


def _auroc_loop(s, m):
    pos, neg = s[m], s[~m]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def _ap_loop(s, m):
    order = sorted(range(len(s)), key=lambda i: -s[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if m[i]:
            hits += 1
            total += hits / rank
    return total / m.sum()


def _fpr95_loop(s, m):
    best = 1.0
    for thr in sorted(set(s.tolist()), reverse=True):
        tpr = np.sum(m & (s >= thr)) / m.sum()
        fpr = np.sum(~m & (s >= thr)) / (~m).sum()
        if tpr >= 0.95:
            best = min(best, fpr)
    return best


def _cosine_loop(x, y):
    dot = sum(a * b for a, b in zip(x, y, strict=True))
    return dot / (sum(a * a for a in x) ** 0.5 * sum(b * b for b in y) ** 0.5)


def test_fpr_at_95_tpr_on_a_straight_segment_of_the_curve() -> None:
    """Ties put the 95% TPR point on a straight segment, which roc_curve drops by default."""
    pos = [*np.linspace(10, 11, 18), 5.0, 4.0]  # 20 positives; at 5.0: TPR 19/20 with FPR 1/20
    neg = [5.0, 4.0, *np.linspace(0, 1, 18)]
    s, m = np.array(pos + neg), np.r_[np.ones(20, bool), np.zeros(20, bool)]
    assert _fpr95_loop(s, m) == 0.05
    assert dyn.detection_metrics(s, m)["fpr_at_95_tpr"] == 0.05


@settings(max_examples=60, deadline=None)
@given(st.integers(15, 40), st.lists(st.sampled_from([(1, 1), (2, 2), (1, 0), (0, 1), (1, 2)]), min_size=3, max_size=12))
def test_fpr_at_95_tpr_matches_the_loop_on_tied_scores(top: int, levels: list[tuple[int, int]]) -> None:
    """Positives above every negative, then levels of tied positives and negatives: runs of
    levels with the same mix are straight segments of the curve, where 95% TPR often falls."""
    s, m = [100.0] * top, [True] * top
    for value, (pos, neg) in enumerate(reversed(levels)):
        s += [float(value)] * (pos + neg)
        m += [True] * pos + [False] * neg
    s_, m_ = np.array(s), np.array(m)
    if m_.all():
        return
    assert dyn.detection_metrics(s_, m_)["fpr_at_95_tpr"] == pytest.approx(_fpr95_loop(s_, m_))


def test_detection_metrics_match_loops() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=60)
    m = rng.random(60) < 0.3
    s[m] += 1.0
    got = dyn.detection_metrics(s, m, k=10)
    assert got["auroc"] == pytest.approx(_auroc_loop(s, m))
    assert got["auroc"] == pytest.approx(roc_auc_score(m, s))
    assert got["auprc"] == pytest.approx(_ap_loop(s, m))
    assert got["fpr_at_95_tpr"] == pytest.approx(_fpr95_loop(s, m))
    assert got["precision_at_k"] == pytest.approx(m[np.argsort(-s)[:10]].mean())


@settings(max_examples=30, deadline=None)
@given(st.integers(5, 40), st.integers(0, 10_000))
def test_correlation_metrics_match_scipy(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    y[:2] = y[2]  # ties
    got = dyn.correlation_metrics(x, y)
    assert got["pearson"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
    assert got["spearman"] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)
    assert got["cosine"] == pytest.approx(_cosine_loop(x, y), abs=1e-9)


def _dynamics(seed: int = 0, *, order: str = "tfds", ids: np.ndarray | None = None) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    mislabeled = np.zeros((2, N), dtype=bool)
    mislabeled[0, :5] = True
    mislabeled[1, 10:18] = True
    loss = rng.gamma(2.0, 1.0, (2, 3, T, N))  # (noise, arch, epoch, sample)
    loss += 2.0 * mislabeled[:, None, None, :]
    prob = np.exp(-loss)
    return xr.Dataset(
        {
            "loss": (("noise", "arch", "epoch", "sample"), loss),
            "true_prob": (("noise", "arch", "epoch", "sample"), prob),
            "correct": (("noise", "arch", "epoch", "sample"), prob > 0.2),
            "is_mislabeled": (("noise", "sample"), mislabeled),
        },
        coords={"noise": [0.01, 0.1], "arch": ["a", "b", "c"], "epoch": np.arange(T),
                "sample": np.arange(N) if ids is None else ids},
        attrs={"sample_order": order},
    ).chunk({"epoch": 2, "sample": 16})


def test_evaluate_mask_per_run_against_reference() -> None:
    ds = _dynamics()
    df = dyn.evaluate(ds, proxies=["csl", "confidence"])
    assert list(df.columns) == ["noise", "arch", "proxy", "target", "metric", "value", "n"]
    assert len(df) == 2 * 3 * 2 * 4
    loss = ds["loss"].values
    for i, noise in enumerate([0.01, 0.1]):
        for j, arch in enumerate("abc"):
            m = ds["is_mislabeled"].values[i]
            row = df[(df.noise == noise) & (df.arch == arch) & (df.metric == "auroc")].set_index("proxy")["value"]
            assert row["csl"] == pytest.approx(roc_auc_score(m, loss[i, j].sum(axis=0)))
            conf = np.exp(-loss[i, j]).mean(axis=0)
            assert row["confidence"] == pytest.approx(roc_auc_score(m, -conf))  # low confidence flags
    tab = dyn.table(df, metric="auroc", columns="noise")
    assert list(tab.index) == ["csl", "confidence"] and list(tab.columns) == [0.01, 0.1]


def _influence(order: str = "tfds", n_train: int = 60) -> xr.Dataset:
    mem = np.linspace(0, 1, n_train) ** 2
    return xr.Dataset({"tr_mem": (("train_id",), mem)}, coords={"train_id": np.arange(n_train)},
                      attrs={"sample_order": order})


def test_evaluate_memorization_aligns_by_identity() -> None:
    ids = np.random.default_rng(1).permutation(60)[:N]  # a permuted subset of the train split
    ds = _dynamics(ids=ids)
    infl = _influence()
    df = dyn.evaluate(ds, proxies=["csl"], influence=infl, top_k=10)
    sel = df[(df.noise == 0.1) & (df.arch == "b")].set_index(["target", "metric"])["value"]
    csl = ds["loss"].values[1, 1].sum(axis=0)
    mem = infl["tr_mem"].values[ids]
    assert sel[("memorization", "pearson")] == pytest.approx(stats.pearsonr(csl, mem)[0])
    assert sel[("memorization", "spearman")] == pytest.approx(stats.spearmanr(csl, mem)[0])
    top = np.argsort(-mem)[:10]
    assert sel[("memorization_top10", "spearman")] == pytest.approx(stats.spearmanr(csl[top], mem[top])[0])
    assert sel[("memorization_top10", "cosine")] == pytest.approx(_cosine_loop(csl[top], mem[top]))
    assert set(df[df.target == "memorization_top10"]["n"]) == {10}


def test_mismatched_sample_orders_are_refused_unless_mapped() -> None:
    rng = np.random.default_rng(2)
    perm = rng.permutation(60)  # torchvision identity i is tfds identity perm[i]
    ds = _dynamics(order="torchvision", ids=np.arange(N))
    infl = _influence("tfds")
    with pytest.raises(MemoxrInputError, match="sample orders differ: dynamics follows 'torchvision', influence follows 'tfds'"):
        dyn.evaluate(ds, proxies=["csl"], influence=infl)
    df = dyn.evaluate(ds, proxies=["csl"], influence=infl, mapping=perm)
    csl = ds["loss"].values[0, 0].sum(axis=0)
    got = df[(df.noise == 0.01) & (df.arch == "a") & (df.target == "memorization") & (df.metric == "pearson")]
    assert got["value"].item() == pytest.approx(stats.pearsonr(csl, infl["tr_mem"].values[perm[:N]])[0])


def test_align_samples_errors(tmp_path) -> None:
    a = xr.DataArray(np.ones(3), dims="sample", coords={"sample": [0, 1, 7]}, attrs={"sample_order": "x"})
    b = xr.DataArray(np.ones(5), dims="train_id", coords={"train_id": np.arange(5)}, attrs={"sample_order": "x"})
    with pytest.raises(MemoxrInputError, match=r"b: 1 of 3 sample identities of a not found \(e.g. \[7\]\)"):
        dyn.align_samples(a, b, b_dim="train_id")
    with pytest.raises(MemoxrInputError, match="mapping: expected a permutation"):
        dyn.align_samples(a, b, b_dim="train_id", mapping=[0, 0, 1])
    with pytest.raises(MemoxrInputError, match="mapping: length 3; expected to cover a's identities 0..7"):
        dyn.align_samples(a, b, b_dim="train_id", mapping=[2, 0, 1])
    with pytest.raises(MemoxrInputError, match="b: sample dim 'train_id' or 'sample' missing"):
        dyn.align_samples(a, b.rename(train_id="row"))
    with pytest.raises(MemoxrInputError, match="b: sample dim 'train_id' with identity coordinate missing"):
        dyn.align_samples(a, b.drop_vars("train_id"))
    # b's train_id is found by name (the old 'sample' and the new name pair up): the same error as with b_dim.
    with pytest.raises(MemoxrInputError, match=r"b: 1 of 3 sample identities of a not found"):
        dyn.align_samples(a, b)
    np.save(tmp_path / "perm.npy", np.array([4, 3, 2, 1, 0, 5, 6, 7]))
    bb = xr.DataArray(np.arange(8.0), dims="train_id", coords={"train_id": np.arange(8)}, attrs={"sample_order": "x"})
    a2, b2 = dyn.align_samples(a.assign_attrs(sample_order="y"), bb, b_dim="train_id", mapping=str(tmp_path / "perm.npy"))
    assert a2["sample"].values.tolist() == [4, 3, 7] and b2.values.tolist() == [4.0, 3.0, 7.0]
    assert a2.attrs["sample_order"] == "x"


def test_cross_run_and_compare_stores() -> None:
    ds = _dynamics()
    df = dyn.cross_run(ds, dim="arch", proxies=["csl"])
    assert set(zip(df.arch_a, df.arch_b, strict=True)) == {("a", "b"), ("a", "c"), ("b", "c")}
    csl = ds["loss"].values.sum(axis=2)
    got = df[(df.noise == 0.1) & (df.arch_a == "a") & (df.arch_b == "c") & (df.metric == "spearman")]["value"].item()
    assert got == pytest.approx(stats.spearmanr(csl[1, 0], csl[1, 2])[0])
    other = _dynamics(seed=5).isel(sample=slice(None, None, -1))  # same identities, reversed positions
    cmp = dyn.compare_stores(ds, other, proxies=["csl"])
    csl2 = other.sortby("sample")["loss"].values.sum(axis=2)
    got = cmp[(cmp.noise == 0.01) & (cmp.arch == "b") & (cmp.metric == "pearson")]["value"].item()
    assert got == pytest.approx(stats.pearsonr(csl[0, 1], csl2[0, 1])[0])
    with pytest.raises(MemoxrInputError, match="sample orders differ"):
        dyn.compare_stores(ds, other.assign_attrs(sample_order="torchvision"), proxies=["csl"])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda ds: dyn.evaluate(ds.drop_vars("is_mislabeled")), "nothing to evaluate against"),
        (lambda ds: dyn.evaluate(ds, mask="dup"), "mask 'dup' not in the dataset"),
        (lambda ds: dyn.evaluate(ds, top_k=0, influence=_influence()), "top_k must be a positive integer"),
        (lambda ds: dyn.evaluate(ds.assign(z=ds.is_mislabeled & False), mask="z"), "one class only"),
        (lambda ds: dyn.evaluate(ds, mask=ds.is_mislabeled.isel(sample=slice(None, None, -1))), "identities differ"),
        (lambda ds: dyn.evaluate(ds.to_array()), "must be an xarray.Dataset"),
        (lambda ds: dyn.cross_run(ds, dim="epoch"), r"dim 'epoch': expected a run dim among \['noise', 'arch'\]"),
        (lambda ds: dyn.table(pd.DataFrame({"metric": ["auroc"]}), metric="pearson"), "metric 'pearson' not in the results"),
    ],
)
def test_evaluate_errors(call, match: str) -> None:
    with pytest.raises(MemoxrInputError, match=match):
        call(_dynamics())


def test_an_infinite_score_is_refused_by_name() -> None:
    """A diverged run's inf loss has no place on a ROC curve: a named error, not scikit-learn's ValueError."""
    ds = _dynamics()
    loss = ds["loss"].values.copy()
    loss[0, 1, 2, 7] = np.inf
    ds = ds.assign(loss=(ds["loss"].dims, loss))
    with pytest.raises(MemoxrInputError, match=r"proxy 'csl' at \{'noise': 0.01, 'arch': 'b'\}: 1 infinite value, the first inf at position 7"):
        dyn.evaluate(ds, proxies=["csl"])
    with pytest.raises(MemoxrInputError, match="score: 1 infinite value"):
        dyn.detection_metrics(np.array([0.1, np.inf, 0.3]), np.array([True, False, False]))
    from memoxr.importers.compare import compare_scores

    with pytest.raises(MemoxrInputError, match=r"score dyn/csl at \{'noise': 0.01, 'arch': 'b'\}: 1 infinite value"):
        compare_scores({"dyn": ds}, mask="is_mislabeled", proxies=["csl"])


def test_a_run_whose_scores_are_all_nan_gets_nan_metrics_not_an_error() -> None:
    """One NaN gradient norm makes its run's learning-time threshold NaN: that run has no metric, n=0."""
    ds = _dynamics()
    grad = np.abs(ds["loss"].values) + 0.1
    grad[1, 2, 3, 0] = np.nan  # noise 0.1, arch c, one epoch of one sample
    ds = ds.assign(grad_norm=(ds["loss"].dims, grad))
    df = dyn.evaluate(ds, proxies=["learning_time", "csl"])
    auroc = df[df.metric == "auroc"].set_index(["noise", "arch", "proxy"])
    assert np.isnan(auroc.loc[(0.1, "c", "learning_time"), "value"]) and auroc.loc[(0.1, "c", "learning_time"), "n"] == 0
    assert auroc.loc[(0.1, "c", "csl"), "n"] == N and np.isfinite(auroc.loc[(0.1, "c", "csl"), "value"])
    assert auroc.loc[(0.01, "a", "learning_time"), "n"] == N and np.isfinite(auroc.loc[(0.01, "a", "learning_time"), "value"])
    loss = ds["loss"].values.copy()
    loss[0, 0, 2, :5] = np.nan  # noise 0.01, arch a: every positive (samples 0-4) left out, the negatives kept
    left = dyn.evaluate(ds.assign(loss=(ds["loss"].dims, loss)), proxies=["csl"]).set_index(["noise", "arch", "metric"])
    assert np.isnan(left.loc[(0.01, "a", "auroc"), "value"]) and left.loc[(0.01, "a", "auroc"), "n"] == N - 5
    assert np.isfinite(left.loc[(0.01, "b", "auroc"), "value"])


def test_shipped_digits_sample_table() -> None:
    from memoxr.dynamics import demo

    ds = demo.sample_dataset()
    assert dict(ds.sizes) == {"noise": 4, "epoch": demo.EPOCHS, "train_id": 1797}
    np.testing.assert_array_equal(ds["is_mislabeled"].sum("train_id").values, [18, 36, 90, 180])
    tab = demo.auroc_table(ds)
    assert list(tab.columns) == ["1%", "2%", "5%", "10%"]
    assert (tab.loc["csl"] > 99.0).all()
    assert (tab.loc["csl"] >= tab.loc["final_loss"]).all()


def test_flip_labels_is_symmetric_noise() -> None:
    from memoxr.dynamics.demo import flip_labels

    y = np.arange(1000) % 10
    noisy, mask = flip_labels(y, 0.05, n_classes=10, seed=3)
    assert mask.sum() == 50
    assert (noisy[mask] != y[mask]).all() and (noisy[~mask] == y[~mask]).all()
    assert set(noisy[mask]) <= set(range(10))


def test_cli_evaluate_checks_csv_and_option_conflicts_first(tmp_path):
    from click.testing import CliRunner

    from memoxr.cli import main
    from memoxr.dynamics.demo import write_sample

    store = write_sample(tmp_path / "dyn.zarr")
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(store), "--mask", "is_mislabeled", "--csv", str(tmp_path / "no" / "x.csv")])
    assert result.exit_code == 2 and "parent folder" in result.stderr and "auroc" not in result.output
    result = runner.invoke(main, ["evaluate", str(store), "--across", "noise", "--mask", "is_mislabeled"])
    assert result.exit_code == 2 and "options ['--across', '--mask'] cannot be combined" in result.stderr
