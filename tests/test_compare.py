"""``compare``: every score of every source against a mask and FZ memorization, paired by identity.

Expected values are computed here from the raw arrays with sklearn.metrics,
scipy.stats and numpy, pairing samples by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from memoxr.cli import main
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.dynamics.store import DYNAMICS_SCHEMA
from memoxr.errors import MemoxrInputError
from memoxr.importers import scores_dataset, write_scores
from memoxr.importers.compare import compare_scores
from memoxr.io.schema import SCHEMA_VERSION
from memoxr.io.storage import write_dataset

N, T, NOISE = 50, 7, [0.0, 0.2]
RAGGED_TRAIN, RAGGED_TEST = [7, 12, 1, 9, 10, 3], [5, 8, 3, 11, 4, 6]  # 42 train samples, ragged classes


def _fpr95(s, m):
    """The smallest false-positive rate at a threshold whose true-positive rate is >= 0.95 (a loop)."""
    best = 1.0
    for thr in sorted(set(s.tolist()), reverse=True):
        if np.sum(m & (s >= thr)) / m.sum() >= 0.95:
            best = min(best, np.sum(~m & (s >= thr)) / (~m).sum())
    return best


@pytest.fixture
def world(tmp_path):
    """A dynamics store (tfds order, chunked), a scores store (tfds, shuffled rows), an FZ npz (torchvision order)."""
    rng = np.random.default_rng(7)
    loss = rng.gamma(1.5, 0.5, size=(len(NOISE), T, N)).astype(np.float32)
    mislabeled = np.zeros((len(NOISE), N), dtype=bool)
    mislabeled[0, rng.choice(N, 6, replace=False)] = True
    mislabeled[1, rng.choice(N, 11, replace=False)] = True
    loss[mislabeled[:, None, :].repeat(T, axis=1)] += 0.8  # mislabeled samples lose more: a detectable signal
    true_prob = np.exp(-loss)
    dyn = xr.Dataset(
        {"loss": (("noise", "epoch", "sample"), loss), "true_prob": (("noise", "epoch", "sample"), true_prob),
         "is_mislabeled": (("noise", "sample"), mislabeled)},
        coords={"noise": NOISE, "epoch": np.arange(T), "sample": np.arange(N)},
        attrs={"schema": DYNAMICS_SCHEMA, "schema_version": SCHEMA_VERSION, "sample_order": "tfds"},
    ).chunk({"epoch": 3, "sample": 16})  # several chunks on the reduced dim and on samples
    write_dataset(dyn, tmp_path / "dyn.zarr")

    rows = rng.permutation(N)  # the scores store lists samples in another row order, same identities
    aum = rng.normal(size=N) - 2 * mislabeled[1]
    aum[3] = np.nan
    write_scores(scores_dataset({"aum": aum[rows]}, sample_order="tfds", source="aum", directions={"aum": -1},
                                sample_ids=rows), tmp_path / "aum.zarr")

    fz = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=3)
    np.savez(tmp_path / "fz.npz", **fz, sample_order=np.array("torchvision"))
    to_tfds = rng.permutation(N)[: fz["tr_mem"].size]  # torchvision identity j is tfds identity to_tfds[j]
    np.save(tmp_path / "tv_to_tfds.npy", to_tfds)
    return {"path": tmp_path, "loss": loss, "true_prob": true_prob, "mask": mislabeled, "aum": aum,
            "mem": fz["tr_mem"], "to_tfds": to_tfds}


def _expected(world):
    """Oriented scores per noise level by tfds identity, and the reference metrics of every row."""
    scores = {("dyn", "csl"): world["loss"].astype(np.float64).sum(axis=1),
              ("dyn", "confidence"): -world["true_prob"].astype(np.float64).mean(axis=1),
              ("aum", "aum"): np.tile(-world["aum"], (len(NOISE), 1))}
    out = {}
    for (source, name), per_noise in scores.items():
        for k, noise in enumerate(NOISE):
            s, m = per_noise[k], world["mask"][k]
            ok = ~np.isnan(s)
            x, mem = s[world["to_tfds"]], world["mem"]
            ok2 = ~np.isnan(x)
            out[(source, name, noise)] = {
                "auroc": roc_auc_score(m[ok], s[ok]), "auprc": average_precision_score(m[ok], s[ok]),
                "fpr_at_95_tpr": _fpr95(s[ok], m[ok]), "n_mask": int(ok.sum()),
                "cosine": x[ok2] @ mem[ok2] / np.linalg.norm(x[ok2]) / np.linalg.norm(mem[ok2]),
                "pearson": stats.pearsonr(x[ok2], mem[ok2])[0], "spearman": stats.spearmanr(x[ok2], mem[ok2])[0],
                "n_memorization": int(ok2.sum()),
            }
    return out


def _check(table, expected):
    for (source, name, noise), metrics in expected.items():
        row = table[(table.source == source) & (table.score == name) & (table.noise == noise)]
        assert len(row) == 1, (source, name, noise)
        for metric, value in metrics.items():
            assert row[metric].iloc[0] == pytest.approx(value, rel=1e-6, abs=1e-9), (source, name, noise, metric)


def test_compare_matches_sklearn_and_scipy(world):
    p = world["path"]
    table = compare_scores([p / "dyn.zarr", p / "aum.zarr"], mask="is_mislabeled", memorization=p / "fz.npz",
                           mapping=p / "tv_to_tfds.npy", proxies=["csl", "confidence"])
    assert list(table.columns) == ["source", "score", "noise", "auroc", "auprc", "fpr_at_95_tpr", "n_mask",
                                   "cosine", "pearson", "spearman", "n_memorization"]
    assert len(table) == 3 * len(NOISE)
    _check(table, _expected(world))
    # The same with the mapping named by its order, and the mask coming from the second source.
    named = compare_scores({"aum": p / "aum.zarr", "dyn": p / "dyn.zarr"}, mask="is_mislabeled",
                           memorization=p / "fz.npz", mapping={"torchvision": np.load(p / "tv_to_tfds.npy")},
                           proxies=["csl", "confidence"])
    _check(named, _expected(world))


def test_compare_refuses_unmapped_orders_and_bad_input(world):
    p = world["path"]
    with pytest.raises(MemoxrInputError, match="sample orders differ: memorization follows 'torchvision'"):
        compare_scores([p / "dyn.zarr"], mask="is_mislabeled", memorization=p / "fz.npz")
    with pytest.raises(MemoxrInputError, match="nothing to compare against"):
        compare_scores([p / "dyn.zarr"])
    with pytest.raises(MemoxrInputError, match="mask 'is_noisy': in no source"):
        compare_scores([p / "dyn.zarr"], mask="is_noisy")
    with pytest.raises(MemoxrInputError, match="mapping of order 'torchvision': length 5; expected to cover"):
        compare_scores([p / "dyn.zarr"], mask="is_mislabeled", memorization=p / "fz.npz", mapping={"torchvision": np.arange(5)})
    other = scores_dataset({"s": np.arange(N, dtype=float)}, sample_order="tfds", source="x", directions={"s": 1})
    other = xr.concat([other, other], dim=xr.DataArray([0.0, 0.5], dims="noise", name="noise"))
    with pytest.raises(MemoxrInputError, match="run coordinates differ"):
        compare_scores([p / "dyn.zarr", other], mask="is_mislabeled", proxies=["csl"])
    far = scores_dataset({"s": [1.0, 2.0]}, sample_order="tfds", source="x", directions={"s": 1}, sample_ids=[900, 901])
    with pytest.raises(MemoxrInputError, match="no sample identity in common"):
        compare_scores([p / "dyn.zarr", far], mask="is_mislabeled", proxies=["csl"])


def test_compare_cli_prints_and_writes_the_table(world):
    p = world["path"]
    args = ["compare", str(p / "dyn.zarr"), str(p / "aum.zarr"), "--mask", "is_mislabeled", "--memorization",
            str(p / "fz.npz"), "--mapping", f"torchvision={p / 'tv_to_tfds.npy'}", "--proxy", "csl",
            "--proxy", "confidence", "--csv", str(p / "table.csv")]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    assert "cleanlab" not in done.output and "spearman" in done.output and "aum" in done.output
    _check(pd.read_csv(p / "table.csv"), _expected(world))
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    unmapped = CliRunner().invoke(main, args[:7] + ["--csv", str(p / "other.csv")])
    assert unmapped.exit_code == 2 and "sample orders differ" in unmapped.output
    assert not (p / "other.csv").exists()


def test_compare_on_the_shipped_digits(tmp_path):
    """The shipped digits recording (1797 samples) against the shipped FZ estimate (its 1347-sample train split)."""
    from sklearn.model_selection import train_test_split

    import memoxr
    from memoxr.dynamics.demo import sample_dataset

    dyn = sample_dataset()
    infl = memoxr.open_influence(memoxr.sample_path())
    digits = _digit_labels()
    rows = train_test_split(np.arange(digits.size), test_size=0.25, stratify=digits, random_state=0)[0]
    assert np.array_equal(digits[rows], infl["tr_labels"].values)  # the FZ split's train sample j is digit rows[j]
    table = compare_scores({"dynamics": dyn}, mask="is_mislabeled", memorization=infl,
                           mapping={infl.attrs["sample_order"]: rows}, proxies=["csl"])
    csl = dyn["loss"].values.astype(np.float64).sum(axis=1)
    for k, noise in enumerate(dyn["noise"].values):
        row = table[table.noise == noise].iloc[0]
        assert row["auroc"] == pytest.approx(roc_auc_score(dyn["is_mislabeled"].values[k], csl[k]), rel=1e-9)
        assert row["spearman"] == pytest.approx(stats.spearmanr(csl[k][rows], infl["tr_mem"].values)[0], rel=1e-9)
        assert row["n_memorization"] == rows.size


def _digit_labels():
    from sklearn.datasets import load_digits

    return load_digits().target


@settings(max_examples=25, deadline=None)
@given(n=st.integers(8, 40), seed=st.integers(0, 2**16))
def test_rows_in_any_order_and_a_mapped_order_give_the_same_table(n, seed):
    """Stored row order never matters (pairing is by identity), nor does an order translated by its mapping."""
    rng = np.random.default_rng(seed)
    score, mask, mem = rng.normal(size=n), rng.random(n) < 0.3, rng.random(n)
    mask[:2] = [True, False]  # both classes present
    base = scores_dataset({"s": score}, sample_order="tfds", source="a", directions={"s": 1},
                          truth={"is_mislabeled": mask})
    memo = xr.DataArray(mem, dims="sample", coords={"sample": np.arange(n)}, attrs={"sample_order": "tfds"})
    expected = compare_scores({"a": base}, mask="is_mislabeled", memorization=memo)
    rows = rng.permutation(n)
    shuffled = scores_dataset({"s": score[rows]}, sample_order="tfds", source="a", directions={"s": 1},
                              sample_ids=rows, truth={"is_mislabeled": mask[rows]})
    pd.testing.assert_frame_equal(compare_scores({"a": shuffled}, mask="is_mislabeled", memorization=memo), expected)
    # The memorization in another order: its identity j is tfds identity to_tfds[j].
    to_tfds = rng.permutation(n)
    other = xr.DataArray(mem[to_tfds], dims="sample", coords={"sample": np.arange(n)}, attrs={"sample_order": "tv"})
    mapped = compare_scores({"a": shuffled}, mask="is_mislabeled", memorization=other, mapping={"tv": to_tfds})
    pd.testing.assert_frame_equal(mapped, expected)
    assert expected["auroc"].iloc[0] == pytest.approx(roc_auc_score(mask, score))
    assert expected["spearman"].iloc[0] == pytest.approx(stats.spearmanr(score, mem)[0])


def test_select_one_run_for_every_source(world):
    p = world["path"]
    full = compare_scores([p / "dyn.zarr", p / "aum.zarr"], mask="is_mislabeled", proxies=["csl"])
    args = ["compare", str(p / "dyn.zarr"), str(p / "aum.zarr"), "--mask", "is_mislabeled", "--proxy", "csl",
            "--sel", "noise=0.2", "--csv", str(p / "one.csv")]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    one = pd.read_csv(p / "one.csv")
    assert "noise" not in one.columns and len(one) == 2
    at = full[full.noise == 0.2].drop(columns="noise").reset_index(drop=True)
    pd.testing.assert_frame_equal(one, at, check_dtype=False)
    for bad, message in ((["--sel", "noise=0.3"], "noise=0.3: not a value of 'noise'; expected one of [0.0, 0.2]"),
                         (["--sel", "seed=1"], "select 'seed': no source has this dim"),
                         (["--sel", "noise"], "expected DIM=VALUE")):
        done = CliRunner().invoke(main, args[:7] + bad)
        assert done.exit_code == 2 and message in " ".join(done.output.split()), done.output


def test_align_order_writes_the_mapping_compare_reads():
    """`align-order --from OTHER --to REFERENCE` is compare's direction (the inverse of evaluate's)."""
    from memoxr import align_order

    rng = np.random.default_rng(4)
    n = 50
    samples = rng.normal(size=(n, 3))  # the data set, in the reference order (tfds)
    score, mask = rng.normal(size=n), rng.random(n) < 0.3
    mask[:2] = [True, False]
    base = scores_dataset({"s": score}, sample_order="tfds", source="a", directions={"s": 1},
                          truth={"is_mislabeled": mask})
    rows = rng.permutation(n)  # the other order: its sample j is reference sample rows[j]
    other = xr.DataArray(score[rows], dims="sample", coords={"sample": np.arange(n)}, attrs={"sample_order": "tv"})
    mapping = align_order(samples[rows], samples).mapping  # --from OTHER --to REFERENCE
    table = compare_scores({"a": base}, mask="is_mislabeled", memorization=other, mapping={"tv": mapping})
    assert table["pearson"].iloc[0] == pytest.approx(1.0)
    wrong = compare_scores({"a": base}, mask="is_mislabeled", memorization=other,
                           mapping={"tv": align_order(samples, samples[rows]).mapping})
    assert wrong["pearson"].iloc[0] < 0.9  # the evaluate direction pairs the wrong samples here
