"""Sample orders fixed by content: scikit-learn's digits in two orders, with planted duplicates."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import memoxr
from memoxr.cli import main
from memoxr.dynamics.align import align_samples, load_mapping
from memoxr.errors import MemoxrInputError
from memoxr.io import sample_order

TWINS = (10, 20)  # same image, different labels: told apart by label
TRIPLETS = (30, 40, 50)  # same image, same label: paired by order


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.images.astype(np.uint8), data.target.astype(np.int64)
    assert np.unique(x.reshape(len(x), -1), axis=0).shape[0] == len(x)  # no duplicates of its own
    x[TWINS[1]] = x[TWINS[0]]
    y[list(TWINS)] = (1, 2)
    x[list(TRIPLETS)] = x[TRIPLETS[0]]
    y[list(TRIPLETS)] = 7
    perm = np.random.default_rng(0).permutation(len(x))  # B[k] = A[perm[k]]
    return x, y, perm


def expected_mapping(perm, groups=(TRIPLETS,)):
    """A's sample i sits at B position inverse[i]; a group of identical samples is paired in order."""
    inverse = np.argsort(perm)
    mapping = inverse.copy()
    for group in groups:
        mapping[list(group)] = np.sort(inverse[list(group)])
    return mapping


def test_digits_with_duplicates_and_labels(digits):
    x, y, perm = digits
    result = memoxr.align_order(x, x[perm], labels_a=y, labels_b=y[perm])
    np.testing.assert_array_equal(result.mapping, expected_mapping(perm))
    np.testing.assert_array_equal(x[perm][result.mapping], x)
    np.testing.assert_array_equal(y[perm][result.mapping], y)
    assert (result.duplicate_groups, result.duplicate_samples) == (2, 5)
    assert (result.by_label, result.by_order, result.label_mismatches) == (2, 3, 0)
    assert result.duplicate_examples == [list(TWINS), list(TRIPLETS)]
    text = result.summary()
    assert "1797 samples matched" in text and "2 told apart by label, 3 paired by order" in text


def test_without_labels_duplicates_go_by_order(digits):
    x, _, perm = digits
    result = memoxr.align_order(x, x[perm])
    np.testing.assert_array_equal(result.mapping, expected_mapping(perm, groups=(TWINS, TRIPLETS)))
    assert (result.by_label, result.by_order, result.labelled) == (0, 5, False)
    assert "carry different labels" not in result.summary()


def test_labels_that_differ_are_paired_by_content_and_reported(digits):
    x, y, perm = digits
    yb = y[perm].copy()
    inverse = np.argsort(perm)
    yb[inverse[100]] = (y[100] + 1) % 10  # a unique sample relabelled in B
    yb[inverse[TWINS[1]]] = 9  # one twin relabelled: the other twin still goes by its label
    result = memoxr.align_order(x, x[perm], labels_a=y, labels_b=yb)
    np.testing.assert_array_equal(result.mapping, expected_mapping(perm))
    assert result.label_mismatches == 2
    assert (result.by_label, result.by_order) == (1, 4)


def test_hashing_over_many_blocks_gives_the_same_mapping(digits, monkeypatch):
    x, y, perm = digits
    one_block = memoxr.align_order(x, x[perm], labels_a=y, labels_b=y[perm]).mapping
    monkeypatch.setattr(sample_order, "HASH_BLOCK_BYTES", 64 * 100)
    assert sample_order.content_digests(x).numblocks[0] > 10
    np.testing.assert_array_equal(memoxr.align_order(x, x[perm], labels_a=y, labels_b=y[perm]).mapping, one_block)


def test_refuses_different_sets_and_counts_matches(digits):
    x, y, perm = digits
    changed = x[perm].copy()
    changed[5, 0, 0] ^= 1
    with pytest.raises(MemoxrInputError, match=r"1796 of A's 1797 samples match one of B's 1797 .* 1 of A have no match"):
        memoxr.align_order(x, changed)
    with pytest.raises(MemoxrInputError, match=r"1796 of A's 1797 samples match one of B's 1796"):
        memoxr.align_order(x, x[perm][1:])
    extra_copy = x[perm].copy()
    extra_copy[np.argsort(perm)[0]] = x[TRIPLETS[0]]  # a fourth copy instead of sample 0
    with pytest.raises(MemoxrInputError, match=r"first positions \[0\]\) and 1 of B \(first positions"):
        memoxr.align_order(x, extra_copy)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        (np.zeros((3, 2), np.uint8), np.zeros((3, 2), np.float32), {}, r"samples of A are \(2,\) uint8, samples of B \(2,\) float32"),
        (np.zeros((3, 2)), np.zeros((3, 1, 2)), {}, r"expected the same shape and dtype"),
        (np.zeros((0, 2)), np.zeros((0, 2)), {}, "A: shape"),
        (np.eye(3), np.eye(3), {"labels_a": [0, 1, 2]}, "labels given for A only"),
        (np.eye(3), np.eye(3), {"labels_a": [0, 1], "labels_b": [0, 1, 2]}, r"labels of A: shape \(2,\)"),
    ],
)
def test_input_errors(a, b, kwargs, match):
    with pytest.raises(MemoxrInputError, match=match):
        memoxr.align_order(a, b, **kwargs)


@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 2), min_size=2 * n, max_size=2 * n),
            st.lists(st.integers(0, 1), min_size=n, max_size=n),
            st.permutations(list(range(n))),
        )
    )
)
def test_mapping_is_a_permutation_that_matches_content_and_labels(data):
    values, labels, perm = data
    x = np.array(values, dtype=np.int8).reshape(-1, 2)  # few distinct rows: many duplicates
    y = np.array(labels)
    perm = np.array(perm)
    result = memoxr.align_order(x, x[perm], labels_a=y, labels_b=y[perm])
    assert sorted(result.mapping.tolist()) == list(range(len(x)))
    np.testing.assert_array_equal(x[perm][result.mapping], x)
    np.testing.assert_array_equal(y[perm][result.mapping], y)
    assert result.label_mismatches == 0
    assert result.by_label + result.by_order == result.duplicate_samples


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def digit_files(tmp_path, digits):
    x, y, perm = digits
    a, b = tmp_path / "torchvision.npz", tmp_path / "tfds.npz"
    np.savez(a, x=x, y=y)
    np.savez(b, x=x[perm], y=y[perm])
    return a, b


@pytest.mark.parametrize("suffix", [".npy", ".txt", ".csv"])
def test_cli_mapping_round_trips_through_align_samples(tmp_path, digits, digit_files, suffix):
    x, y, perm = digits
    a, b = digit_files
    out = tmp_path / f"mapping{suffix}"
    result = run("align-order", a, b, out, "-q")
    assert result.exit_code == 0, result.output
    assert "2 told apart by label, 3 paired by order" in result.output and f"wrote {out}" in result.output
    mapping = load_mapping(str(out))
    np.testing.assert_array_equal(mapping, expected_mapping(perm))

    # The code behind --mapping: A's samples (torchvision order) relabelled into B's (tfds) order.
    ids = np.arange(len(x))
    in_a = xr.Dataset({"pixels": (("sample", "pixel"), x.reshape(len(x), -1)), "label": ("sample", y)},
                      coords={"sample": ids}, attrs={"sample_order": "torchvision"})
    in_b = xr.Dataset({"pixels": (("sample", "pixel"), x[perm].reshape(len(x), -1)), "label": ("sample", y[perm])},
                      coords={"sample": ids}, attrs={"sample_order": "tfds"})
    with pytest.raises(MemoxrInputError, match="sample orders differ"):
        align_samples(in_a, in_b)
    aligned_a, aligned_b = align_samples(in_a, in_b, mapping=str(out))
    np.testing.assert_array_equal(aligned_a["pixels"].values, aligned_b["pixels"].values)
    np.testing.assert_array_equal(aligned_a["label"].values, aligned_b["label"].values)
    assert aligned_a.attrs["sample_order"] == "tfds"


def test_mapping_pairs_the_right_samples_in_evaluate(tmp_path, digits, digit_files):
    """memoxr.evaluate(..., mapping=...) is what `memoxr evaluate --mapping` runs."""
    x, y, perm = digits
    a, b = digit_files
    out = tmp_path / "torchvision_to_tfds.npy"
    assert run("align-order", a, b, out, "-q").exit_code == 0
    score = x.reshape(len(x), -1).astype(float).mean(axis=1) + 0.01 * y  # one value per sample (A's order)
    proxies = xr.Dataset({"score": ("sample", score)}, coords={"sample": np.arange(len(x))},
                         attrs={"sample_order": "torchvision"})
    proxies["score"].attrs["direction"] = 1
    memorization = xr.DataArray(score[perm], dims="sample", attrs={"sample_order": "tfds"})  # B's order
    with pytest.raises(MemoxrInputError, match="sample orders differ"):
        memoxr.evaluate(proxies, proxies=["score"], influence=memorization)
    table = memoxr.evaluate(proxies, proxies=["score"], influence=memorization, mapping=str(out))
    pearson = table.query("target == 'memorization' and metric == 'pearson'")["value"].item()
    assert pearson == pytest.approx(1.0, abs=1e-12)
    by_position = memoxr.evaluate(proxies, proxies=["score"], influence=memorization, mapping=np.arange(len(x)))
    assert by_position.query("target == 'memorization' and metric == 'pearson'")["value"].item() < 0.2


def test_cli_npy_inputs_without_labels(tmp_path, digits):
    x, _, perm = digits
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[perm])
    result = run("align-order", tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "m.npy", "-q")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), expected_mapping(perm, groups=(TWINS, TRIPLETS)))


def test_cli_never_replaces_without_overwrite(tmp_path, digit_files):
    a, b = digit_files
    out = tmp_path / "m.npy"
    np.save(out, np.arange(3))
    result = run("align-order", a, b, out, "-q")
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    assert np.load(out).tolist() == [0, 1, 2]
    assert run("align-order", a, b, out, "--overwrite", "-q").exit_code == 0
    assert np.load(out).size == 1797


def test_cli_refuses_different_sets_and_writes_nothing(tmp_path, digits):
    x, y, perm = digits
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", x=x[perm][:-3], y=y[perm][:-3])
    result = run("align-order", tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "m.npy", "-q")
    assert result.exit_code == 2
    assert "A and B hold different samples: 1794 of A's 1797 samples match one of B's 1794" in result.output
    assert not (tmp_path / "m.npy").exists()


@pytest.mark.parametrize(
    ("b_arrays", "output", "message"),
    [
        ({"images": np.zeros((3, 2))}, "m.npy", "B: file .*: key 'x' \\(the samples\\) missing; expected keys 'x'"),
        ({"x": np.array([[1], [2], [3]], dtype=object)}, "m.npy", "received dtype object"),
        ({"x": np.eye(3)}, "m.npy", "labels given for A only"),
        ({"x": np.eye(3), "y": np.arange(3)}, "m.parquet", "expected a file name ending in .npy, .txt, .csv"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, b_arrays, output, message):
    np.savez(tmp_path / "a.npz", x=np.eye(3), y=np.arange(3))
    np.savez(tmp_path / "b.npz", **b_arrays)
    result = run("align-order", tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / output, "-q")
    assert result.exit_code == 2
    assert result.output.startswith("Error:")
    import re

    assert re.search(message, result.output), result.output
    assert not (tmp_path / output).exists()


def test_cli_missing_input_and_unknown_suffix(tmp_path):
    result = run("align-order", tmp_path / "none.npz", tmp_path / "none.npz", tmp_path / "m.npy")
    assert result.exit_code == 2 and "A: file" in result.output and "does not exist" in result.output
    (tmp_path / "a.h5").write_bytes(b"")
    result = run("align-order", tmp_path / "a.h5", tmp_path / "a.h5", tmp_path / "m.npy")
    assert result.exit_code == 2 and "expected .npy (samples) or .npz (keys x, y)" in result.output


def test_docstring_examples():
    import doctest

    result = doctest.testmod(sample_order, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
