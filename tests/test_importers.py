"""Importers: each tool's real output (or its documented file format) into a scores store.

References are computed apart from the implementation: cleanlab itself, plain
numpy loops following AUM's and dataset cartography's published code, sklearn.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from memoxr.cli import main
from memoxr.dynamics import compute_proxies, open_dynamics
from memoxr.dynamics.demo import _digits, flip_labels
from memoxr.errors import MemoxrInputError
from memoxr.importers import (
    import_aum,
    import_cartography,
    import_cleanlab,
    import_plain,
    import_self_influence,
    label_quality,
    open_scores,
    read_cartography,
)


@pytest.fixture(scope="module")
def cleanlab_rank():
    """cleanlab itself, the reference (the plain, AUM, cartography and self-influence tests run without it)."""
    return pytest.importorskip("cleanlab.rank")


@pytest.fixture(scope="module")
def digits_pred_probs():
    """Out-of-sample pred_probs of a logistic regression on digits with 5% flipped labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    x, y = _digits()
    noisy, mask = flip_labels(y, 0.05, n_classes=10, seed=3)
    with threadpool_limits(1):
        probs = cross_val_predict(LogisticRegression(max_iter=300), x, noisy, cv=5, method="predict_proba")
    return probs, noisy, mask


# --------------------------------------------------------------------------- cleanlab


def test_cleanlab_scores_on_digits_equal_cleanlabs_own(tmp_path, digits_pred_probs, cleanlab_rank):
    probs, labels, mask = digits_pred_probs
    ids = np.random.default_rng(0).permutation(labels.size) + 100
    out = import_cleanlab(probs, labels, tmp_path / "cl.zarr", sample_order="sklearn-digits", sample_ids=ids,
                          truth={"is_mislabeled": mask})
    ds = open_scores(out).load()
    assert ds.attrs["sample_order"] == "sklearn-digits" and ds.attrs["computed_by"].startswith("cleanlab ")
    assert ds["train_id"].values.tolist() == ids.tolist()
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        expected = cleanlab_rank.get_label_quality_scores(labels, probs, method=method)
        np.testing.assert_allclose(ds[f"cleanlab_{method}"].values, expected, rtol=1e-12)
        assert ds[f"cleanlab_{method}"].attrs["direction"] == -1
    assert ds["is_mislabeled"].values.tolist() == mask.tolist()
    # Real detection: a mislabeled digit gets a low self-confidence.
    assert roc_auc_score(mask, -ds["cleanlab_self_confidence"].values) > 0.9


def test_cleanlab_store_is_read_by_memoxr_evaluate(tmp_path, digits_pred_probs, cleanlab_rank):
    probs, labels, mask = digits_pred_probs
    store = import_cleanlab(probs, labels, tmp_path / "cl.zarr", sample_order="sklearn-digits",
                            truth={"is_mislabeled": mask}, methods=["self_confidence"])
    done = CliRunner().invoke(main, ["evaluate", str(store), "--mask", "is_mislabeled", "--table", "auroc"])
    assert done.exit_code == 0, done.output
    expected = roc_auc_score(mask, -probs[np.arange(labels.size), labels])
    assert f"{expected:.4f}" in done.output


def test_self_confidence_without_cleanlab(monkeypatch, digits_pred_probs, cleanlab_rank):
    probs, labels, _ = digits_pred_probs
    expected = cleanlab_rank.get_self_confidence_for_each_label(labels, probs)
    np.testing.assert_array_equal(label_quality(probs, labels, use_cleanlab=False)["self_confidence"], expected)
    monkeypatch.setitem(sys.modules, "cleanlab.rank", None)  # import now fails, as if not installed
    scores = label_quality(probs, labels)
    assert list(scores) == ["self_confidence"]
    np.testing.assert_array_equal(scores["self_confidence"], expected)
    with pytest.raises(MemoxrInputError, match="cleanlab is not installed"):
        label_quality(probs, labels, use_cleanlab=True)
    with pytest.raises(MemoxrInputError, match="only 'self_confidence'"):
        label_quality(probs, labels, methods=["normalized_margin"])


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        ([[0.5, 0.6], [0.5, 0.5]], [0, 1], "row 0 sums to 1.1000"),
        ([[0.5, 0.5], [0.5, 0.5]], [0, 2], "labels: expected integers 0..1"),
        ([[0.5, 0.5], [0.5, 0.5]], [0], r"labels: shape \(1,\); expected \(2,\)"),
        ([[0.5, 0.5], [0.5, 0.5]], np.array(["0", "1"]), r"labels: expected integers 0..1 .*; received dtype <U1"),
        ([0.5, 0.5], [0], "pred_probs: shape"),
    ],
)
def test_cleanlab_bad_input(probs, labels, message):
    with pytest.raises(MemoxrInputError, match=message):
        label_quality(probs, labels, use_cleanlab=False)


def test_cleanlab_cli(tmp_path, digits_pred_probs, cleanlab_rank):
    probs, labels, _ = digits_pred_probs
    np.save(tmp_path / "probs.npy", probs)
    np.save(tmp_path / "labels.npy", labels)
    args = ["import-scores", "cleanlab", str(tmp_path / "probs.npy"), str(tmp_path / "labels.npy"),
            str(tmp_path / "cl.zarr"), "--sample-order", "sklearn-digits", "--method", "normalized_margin"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    ds = open_scores(tmp_path / "cl.zarr")
    assert list(ds.data_vars) == ["cleanlab_normalized_margin"]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--overwrite" in again.output


# --------------------------------------------------------------------------- plain


def test_plain_npy_csv_with_header_and_without(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.normal(size=23)
    ids = rng.permutation(23)
    np.save(tmp_path / "v.npy", values)
    ds = open_scores(import_plain(tmp_path / "v.npy", tmp_path / "a.zarr", sample_order="tfds", name="el2n",
                                  sample_ids=ids)).load()
    assert ds["el2n"].values.tolist() == values.tolist() and ds["train_id"].values.tolist() == ids.tolist()
    assert ds["el2n"].attrs["direction"] == 1 and ds.attrs["sample_order"] == "tfds"

    pd.DataFrame({"idx": ids, "grand": values, "note": ["x"] * 23, "forget": -values}).to_csv(tmp_path / "t.csv", index=False)
    ds = open_scores(import_plain(tmp_path / "t.csv", tmp_path / "b.zarr", sample_order="tfds", id_column="idx",
                                  direction=-1)).load()
    assert sorted(ds.data_vars) == ["forget", "grand"]  # numeric columns only
    assert ds["train_id"].values.tolist() == ids.tolist() and ds["grand"].values.tolist() == values.tolist()
    assert ds["forget"].attrs["direction"] == -1

    np.savetxt(tmp_path / "bare.csv", values)
    ds = open_scores(import_plain(tmp_path / "bare.csv", tmp_path / "c.zarr", sample_order="tfds", name="s")).load()
    np.testing.assert_allclose(ds["s"].values, values, rtol=1e-15)
    assert ds["train_id"].values.tolist() == list(range(23))


def test_plain_and_aum_command_lines(tmp_path):
    ids = np.array([5, 2, 9])
    pd.DataFrame({"idx": ids, "el2n": [0.1, 0.7, 0.3]}).to_csv(tmp_path / "t.csv", index=False)
    done = CliRunner().invoke(main, ["import-scores", "plain", str(tmp_path / "t.csv"), str(tmp_path / "p.zarr"),
                                     "--sample-order", "tfds", "--id-column", "idx", "--direction", "-1",
                                     "--truth", "is_mislabeled=" + str(tmp_path / "m.npy")])
    assert done.exit_code == 2 and "does not exist" in done.output and not (tmp_path / "p.zarr").exists()
    np.save(tmp_path / "m.npy", np.array([True, False, False]))
    done = CliRunner().invoke(main, ["import-scores", "plain", str(tmp_path / "t.csv"), str(tmp_path / "p.zarr"),
                                     "--sample-order", "tfds", "--id-column", "idx", "--direction", "-1",
                                     "--truth", "is_mislabeled=" + str(tmp_path / "m.npy")])
    assert done.exit_code == 0, done.output
    ds = open_scores(tmp_path / "p.zarr").load()
    assert ds["train_id"].values.tolist() == [5, 2, 9] and ds["el2n"].attrs["direction"] == -1
    assert ds["is_mislabeled"].values.tolist() == [True, False, False]
    pd.DataFrame({"sample_id": [3, 1], "aum": [0.5, -2.0]}).to_csv(tmp_path / "aum_values.csv", index=False)
    done = CliRunner().invoke(main, ["import-scores", "aum", str(tmp_path / "aum_values.csv"), str(tmp_path / "a.zarr"),
                                     "--sample-order", "tfds"])
    assert done.exit_code == 0, done.output
    ds = open_scores(tmp_path / "a.zarr").load()
    assert ds["train_id"].values.tolist() == [1, 3] and ds["aum"].values.tolist() == [-2.0, 0.5]
    missing = CliRunner().invoke(main, ["import-scores", "aum", str(tmp_path / "aum_values.csv"), str(tmp_path / "b.zarr")])
    assert missing.exit_code == 2 and "--sample-order" in missing.output


def test_plain_bad_input_names_the_problem(tmp_path):
    pd.DataFrame({"idx": ["a", "b"], "s": [1.0, 2.0], "t": ["u", "v"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(MemoxrInputError, match="identities such as 'a'; expected integers"):
        import_plain(tmp_path / "t.csv", tmp_path / "o.zarr", sample_order="x", id_column="idx")
    with pytest.raises(MemoxrInputError, match="column 't' of .*expected numbers"):
        import_plain(tmp_path / "t.csv", tmp_path / "o.zarr", sample_order="x", columns=["t"])
    with pytest.raises(MemoxrInputError, match=r"columns \['zz'\]"):
        import_plain(tmp_path / "t.csv", tmp_path / "o.zarr", sample_order="x", columns=["zz"])
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(MemoxrInputError, match="identity 1 appears 2 times"):
        import_plain(tmp_path / "v.npy", tmp_path / "o.zarr", sample_order="x", sample_ids=[0, 1, 1])
    with pytest.raises(MemoxrInputError, match=r"truth 'm'.*expected \(3,\) booleans"):
        import_plain(tmp_path / "v.npy", tmp_path / "o.zarr", sample_order="x", truth={"m": [0, 2, 1]})
    np.save(tmp_path / "inf.npy", np.array([0.5, np.nan, -np.inf]))  # NaN is a missing score, an infinity an error
    with pytest.raises(MemoxrInputError, match=r"score 'score': 1 infinite value, the first -inf at position 2; expected finite"):
        import_plain(tmp_path / "inf.npy", tmp_path / "o.zarr", sample_order="x")
    np.savez(tmp_path / "two.npz", a=np.ones(3), b=np.ones(3))  # no option names a member here: no --npz-key hint
    with pytest.raises(MemoxrInputError, match=r"exactly one array; received 2 \(\['a', 'b'\]\)$"):
        import_plain(tmp_path / "two.npz", tmp_path / "o.zarr", sample_order="x")
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5,0.5\n0.1,0.2\n0.3,0.4\n", {"s_0": [0.5, 0.1, 0.3], "s_1": [0.5, 0.2, 0.4]}),  # repeated value
        (",0.5\n0.1,0.2\n", {"s_0": [None, 0.1], "s_1": [0.5, 0.2]}),  # empty first field
        ("loss,0.5\n0.1,0.2\n", {"loss": [0.1], "0.5": [0.2]}),  # a word: a header
        ("7\n0.1\n", {"s": [7.0, 0.1]}),  # numbers only: data, as documented
    ],
)
def test_plain_csv_header_is_a_row_with_a_word(tmp_path, text, expected):
    (tmp_path / "t.csv").write_text(text)
    ds = open_scores(import_plain(tmp_path / "t.csv", tmp_path / "o.zarr", sample_order="x", name="s")).load()
    got = {k: [None if np.isnan(v) else v for v in ds[k].values.tolist()] for k in ds.data_vars}
    assert got == expected


# --------------------------------------------------------------------------- AUM


def _aum_run(rng, n=31, k=5, updates=7):
    """Logits of ``updates`` passes and AUM's margins, by a loop over AUMCalculator.update's definition."""
    logits = rng.normal(size=(updates, n, k))
    targets = rng.integers(0, k, size=n)
    margins = np.zeros((updates, n))
    for t in range(updates):
        for i in range(n):
            others = [logits[t, i, c] for c in range(k) if c != targets[i]]
            margins[t, i] = logits[t, i, targets[i]] - max(others)
    return logits, targets, margins


def test_aum_values_and_full_records(tmp_path):
    rng = np.random.default_rng(2)
    _, _, margins = _aum_run(rng)
    ids = rng.permutation(200)[:31]  # a subset of a larger data set, in no order
    aum = margins.mean(axis=0)
    # aum_values.csv as AUMCalculator.finalize writes it: sample_id, aum; sorted by aum, descending.
    pd.DataFrame({"sample_id": ids, "aum": aum}).sort_values(by="aum", ascending=False).to_csv(
        tmp_path / "aum_values.csv", index=False)
    ds = open_scores(import_aum(tmp_path / "aum_values.csv", tmp_path / "a.zarr", sample_order="cifar")).load()
    order = np.argsort(ids)
    assert ds["train_id"].values.tolist() == ids[order].tolist()
    np.testing.assert_allclose(ds["aum"].values, aum[order], rtol=1e-12)
    assert ds["aum"].attrs["direction"] == -1
    # full_aum_records.csv: one row per sample and update, the running mean in 'aum'.
    records = [
        {"sample_id": ids[i], "num_measurements": t + 1, "target_logit": 0.0, "target_val": 0, "other_logit": 0.0,
         "other_val": 1, "margin": margins[t, i], "aum": margins[: t + 1, i].mean()}
        for t in range(margins.shape[0]) for i in range(ids.size)
    ]
    pd.DataFrame(records).sort_values(by=["sample_id", "num_measurements"]).to_csv(tmp_path / "full.csv", index=False)
    ds = open_scores(import_aum(tmp_path / "full.csv", tmp_path / "b.zarr", sample_order="cifar")).load()
    np.testing.assert_allclose(ds["aum"].values, aum[order], rtol=1e-12)


def test_aum_bad_files(tmp_path):
    pd.DataFrame({"id": [1], "aum": [0.3]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(MemoxrInputError, match=r"columns \['sample_id'\] missing"):
        import_aum(tmp_path / "x.csv", tmp_path / "o.zarr", sample_order="x")
    pd.DataFrame({"sample_id": ["img_3.png"], "aum": [0.3]}).to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(MemoxrInputError, match="expected integers"):
        import_aum(tmp_path / "y.csv", tmp_path / "o.zarr", sample_order="x")
    with pytest.raises(MemoxrInputError, match="does not exist"):
        import_aum(tmp_path / "nope.csv", tmp_path / "o.zarr", sample_order="x")


# --------------------------------------------------------------------------- cartography


def _write_cartography(folder, logits, gold, guids, rng):
    """Files as cartography's log_training_dynamics writes them (pandas records, one per line), shuffled."""
    folder.mkdir(parents=True)
    for epoch in range(logits.shape[0]):
        perm = rng.permutation(guids.size)
        pd.DataFrame({"guid": guids[perm], f"logits_epoch_{epoch}": logits[epoch][perm].tolist(),
                      "gold": gold[perm]}).to_json(folder / f"dynamics_epoch_{epoch}.jsonl", lines=True, orient="records")


def _cartography_reference(logits, gold):
    """compute_train_dy_metrics of allenai/cartography, as a loop over samples."""
    out = {k: [] for k in ("confidence", "variability", "correctness", "forgetfulness", "threshold_closeness")}
    for i in range(gold.size):
        probs = [float(softmax(logits[e, i])[gold[i]]) for e in range(logits.shape[0])]
        correct = [int(np.argmax(logits[e, i]) == gold[i]) for e in range(logits.shape[0])]
        learnt, forgotten = False, 0
        for c in correct:
            if learnt and not c:
                learnt, forgotten = False, forgotten + 1
            elif not learnt and c:
                learnt = True
        out["confidence"].append(np.mean(probs))
        out["variability"].append(np.std(probs))
        out["correctness"].append(sum(correct))
        out["forgetfulness"].append(forgotten if any(correct) else 1000)
        out["threshold_closeness"].append(np.mean(probs) * (1 - np.mean(probs)))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def test_cartography_logs_give_its_data_map_metrics(tmp_path):
    rng = np.random.default_rng(4)
    epochs, n, k = 6, 40, 3
    gold = rng.integers(0, k, size=n)
    logits = rng.normal(size=(epochs, n, k)) + 1.5 * np.eye(k)[gold] * np.linspace(-1, 2, epochs)[:, None, None]
    logits[:, 0] = np.eye(k)[(gold[0] + 1) % k] * 5  # never learnt: forgetfulness 1000
    guids = rng.permutation(500)[:n]
    _write_cartography(tmp_path / "run" / "training_dynamics", logits, gold, guids, rng)
    ds = open_scores(import_cartography(tmp_path / "run", tmp_path / "c.zarr", sample_order="snli")).load()
    order = np.argsort(guids)
    assert ds["train_id"].values.tolist() == guids[order].tolist()
    expected = _cartography_reference(logits[:, order], gold[order])
    for name, values in expected.items():
        np.testing.assert_allclose(ds[f"cartography_{name}"].values, values, rtol=1e-10, atol=1e-12)
    assert ds["cartography_forgetfulness"].values[np.searchsorted(guids[order], guids[0])] == 1000
    assert ds["cartography_confidence"].attrs["direction"] == -1 and ds["cartography_variability"].attrs["direction"] == 1

    # --dynamics: the per-epoch records as a dynamics store; memoxr's own proxies agree with cartography's.
    done = CliRunner().invoke(main, ["import-scores", "cartography", str(tmp_path / "run"), str(tmp_path / "d.zarr"),
                                     "--sample-order", "snli", "--dynamics"])
    assert done.exit_code == 0, done.output
    proxies = compute_proxies(open_dynamics(tmp_path / "d.zarr"), ["confidence", "variability", "csl"]).load()
    np.testing.assert_allclose(proxies["confidence"].values, expected["confidence"], rtol=1e-6)
    np.testing.assert_allclose(proxies["variability"].values, expected["variability"], rtol=1e-5, atol=1e-7)
    loss = np.array([[-np.log(softmax(logits[e, i])[gold[i]]) for i in order] for e in range(epochs)])
    np.testing.assert_allclose(proxies["csl"].values, loss.sum(axis=0), rtol=1e-6)


def test_cartography_bad_logs(tmp_path):
    rng = np.random.default_rng(5)
    logits, gold, guids = rng.normal(size=(3, 4, 2)), np.array([0, 1, 1, 0]), np.arange(4)
    _write_cartography(tmp_path / "a", logits, gold, guids, rng)
    (tmp_path / "a" / "dynamics_epoch_1.jsonl").unlink()
    with pytest.raises(MemoxrInputError, match=r"epochs \[1\] missing"):
        read_cartography(tmp_path / "a")
    _write_cartography(tmp_path / "b", logits, gold, guids, rng)
    lines = (tmp_path / "b" / "dynamics_epoch_2.jsonl").read_text().splitlines()
    (tmp_path / "b" / "dynamics_epoch_2.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(MemoxrInputError, match="expected the same samples every epoch"):
        read_cartography(tmp_path / "b")
    record = json.loads(lines[0])
    del record["logits_epoch_2"]
    (tmp_path / "b" / "dynamics_epoch_2.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(MemoxrInputError, match="line 1: expected a JSON record with 'guid', 'gold' and 'logits_epoch_2'"):
        read_cartography(tmp_path / "b")
    with pytest.raises(MemoxrInputError, match="no dynamics_epoch"):
        read_cartography(tmp_path)


# --------------------------------------------------------------------------- self-influence


def test_self_influence_vector_and_matrix_diagonal(tmp_path):
    rng = np.random.default_rng(6)
    grads = rng.normal(size=(3, 17, 4))  # checkpoints x samples x parameters
    lrs = np.array([0.1, 0.05, 0.01])
    tracin = np.array([sum(lrs[c] * grads[c, i] @ grads[c, i] for c in range(3)) for i in range(17)])
    np.save(tmp_path / "tracin.npy", tracin)
    done = CliRunner().invoke(main, ["import-scores", "self-influence", str(tmp_path / "tracin.npy"),
                                     str(tmp_path / "s.zarr"), "--sample-order", "tfds"])
    assert done.exit_code == 0, done.output
    ds = open_scores(tmp_path / "s.zarr").load()
    np.testing.assert_allclose(ds["self_influence"].values, tracin, rtol=1e-12)
    assert ds["self_influence"].attrs["direction"] == 1
    features = rng.normal(size=(17, 5))
    trak = features @ features.T  # a train x train score matrix: its diagonal is each sample's self-influence
    np.save(tmp_path / "trak.npy", trak)
    ds = open_scores(import_self_influence(tmp_path / "trak.npy", tmp_path / "t.zarr", sample_order="tfds")).load()
    np.testing.assert_allclose(ds["self_influence"].values, (features**2).sum(axis=1), rtol=1e-12)
    np.save(tmp_path / "bad.npy", np.ones((3, 4)))
    with pytest.raises(MemoxrInputError, match=r"shape \(3, 4\); expected a vector"):
        import_self_influence(tmp_path / "bad.npy", tmp_path / "u.zarr", sample_order="tfds")
    assert not (tmp_path / "u.zarr").exists()
