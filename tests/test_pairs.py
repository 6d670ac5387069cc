"""High-influence pairs against a plain loop over the FZ arrays, on multi-chunk ragged stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.errors import MemoxrInputError
from memoxr.estimate import estimate, estimate_to_zarr
from memoxr.influence.pairs import PAIR_COLUMNS, _threshold_in, block_pairs
from memoxr.io.chunks import BlockChunks

from conftest import CountingStore, write_npz

TRAIN_SIZES = [30, 45, 12, 1, 38]  # ragged, with a one-sample class
TEST_SIZES = [20, 9, 25, 14, 3]
CHUNKS = BlockChunks(cls=2, train=8, test=6)


@pytest.fixture(scope="module")
def arrays():
    arrays = make_fz_arrays(TRAIN_SIZES, TEST_SIZES, seed=3)
    arrays["tr_mem"][arrays["tr_classidx_1"][:5]] = np.nan  # NaN memorization never pairs
    return arrays


@pytest.fixture(scope="module")
def npz(tmp_path_factory, arrays):
    return write_npz(tmp_path_factory.mktemp("pairs") / "infl.npz", arrays)


@pytest.fixture(scope="module")
def store(tmp_path_factory, npz):
    return str(convert_npz(npz, tmp_path_factory.mktemp("pairs") / "infl.zarr", chunks=CHUNKS))


def reference_pairs(tr_mem, tr_labels, tt_labels, blocks, min_infl, min_mem, top_k=None):
    """Plain loop: ``blocks`` is a list of (train rows, test rows, matrix)."""
    rows = []
    for train_rows, test_rows, matrix in blocks:
        for a, i in enumerate(train_rows):
            if not tr_mem[i] >= min_mem:
                continue
            for b, j in enumerate(test_rows):
                value = float(matrix[a, b])
                if value >= min_infl:
                    rows.append((int(tr_labels[i]), int(i), int(j), int(tt_labels[j]), float(tr_mem[i]), value))
    if top_k is not None:
        by_test = {}
        for row in rows:
            by_test.setdefault(row[2], []).append(row)
        rows = [r for group in by_test.values() for r in sorted(group, key=lambda r: (-r[5], r[1]))[:top_k]]
    rows.sort(key=lambda r: (r[0], r[2], -r[5], r[1]))
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS)).astype(
        {"class_label": np.int64, "train_index": np.int64, "test_index": np.int64, "test_label": np.int64}
    )


def class_blocks(arrays):
    n_class = len([k for k in arrays if k.startswith("infl_matrix_class")])
    return [(arrays[f"tr_classidx_{k}"], arrays[f"tt_classidx_{k}"], arrays[f"infl_matrix_class{k}"]) for k in range(n_class)]


def reference_from_arrays(arrays, min_infl, min_mem, top_k=None):
    return reference_pairs(arrays["tr_mem"], arrays["tr_labels"], arrays["tt_labels"], class_blocks(arrays),
                           min_infl, min_mem, top_k)


def assert_same(table, expected):
    assert list(table.columns) == list(PAIR_COLUMNS)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected, check_dtype=False)


def test_fixture_spans_several_chunks_on_every_dim(store):
    chunks = memoxr.open_influence(store)["influence"].chunks
    assert all(len(c) > 1 for c in chunks)


@pytest.mark.parametrize(("min_infl", "min_mem"), [(0.15, 0.25), (0.0, 0.3), (0.01, 0.0), (-1.0, -1.0), (2.0, 0.0)])
def test_store_matches_loop(store, arrays, min_infl, min_mem):
    table = memoxr.pairs(store, min_infl=min_infl, min_mem=min_mem)
    expected = reference_from_arrays(arrays, min_infl, min_mem)
    assert_same(table, expected)
    if min_infl == -1.0:  # everything real pairs: padding and NaN memorization never do
        real = sum(len(t) * len(s) for t, s, _ in class_blocks(arrays)) - 5 * TEST_SIZES[1]
        assert len(table) == real


def test_npz_viewed_in_place_matches_loop(npz, arrays):
    ds = memoxr.open_influence(npz, chunk_mb=0.0005)
    assert all(len(c) > 1 for c in ds["influence"].chunks[:2])  # whole rows: test splits in the store test
    assert_same(memoxr.pairs(ds, min_infl=0.0, min_mem=0.3), reference_from_arrays(arrays, 0.0, 0.3))
    assert_same(memoxr.pairs(npz, min_infl=0.0, min_mem=0.3, chunk_mb=0.0005), reference_from_arrays(arrays, 0.0, 0.3))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_per_test_matches_loop(store, arrays, k):
    table = memoxr.pairs(store, min_infl=-0.02, min_mem=0.1, top_k_per_test=k)
    assert_same(table, reference_from_arrays(arrays, -0.02, 0.1, top_k=k))
    assert table.groupby("test_index").size().max() == k


def test_top_k_ties_keep_lower_train_index():
    infl = np.array([[[0.3], [0.5], [0.3], [0.3]]], dtype=np.float32)  # one test column split over chunks below
    found = block_pairs(infl, np.ones((1, 4), bool), np.array([[9, 4, 2, 7]]), np.array([[0]]), min_infl=0.1, top_k=3)
    assert found["train"].tolist() == [4, 2, 7]


def test_chunks_without_eligible_rows_are_never_read(store, arrays):
    counting = CountingStore(zarr.storage.LocalStore(store, read_only=True))
    ds = memoxr.open_influence(counting)
    min_mem = 0.6
    eligible = np.nan_to_num(arrays["tr_mem"]) >= min_mem
    train_index = ds["train_index"].values
    row_ok = np.where(train_index >= 0, eligible[np.maximum(train_index, 0)], False)
    c_chunks, i_chunks, j_chunks = ds["influence"].chunks
    c_edges, i_edges = np.cumsum((0, *c_chunks)), np.cumsum((0, *i_chunks))
    needed = {
        (c, i) for c in range(len(c_chunks)) for i in range(len(i_chunks))
        if row_ok[c_edges[c] : c_edges[c + 1], i_edges[i] : i_edges[i + 1]].any()
    }
    assert 0 < len(needed) < len(c_chunks) * len(i_chunks)
    counting.reads.clear()
    table = memoxr.pairs(ds, min_infl=0.0, min_mem=min_mem)
    assert_same(table, reference_from_arrays(arrays, 0.0, min_mem))
    reads = {tuple(map(int, k.split("/")[2:5])): v for k, v in counting.reads.items() if k.startswith("influence/c/")}
    assert {(c, i) for c, i, _ in reads} == needed
    assert set(reads.values()) == {1}


def make_trials(n_trials=60, n_train=40, n_test=23, n_class=3, seed=1):
    rng = np.random.default_rng(seed)
    tr_labels = rng.permutation(np.arange(n_train) % n_class)
    tr_labels[:10] = 0  # ragged
    mask = rng.random((n_trials, n_train)) < 0.7
    mask[0], mask[1] = True, False
    return {
        "mask": mask,
        "train_correct": (rng.random((n_trials, n_train)) < 0.7).astype(np.int8),
        "test_correct": (rng.random((n_trials, n_test)) < 0.6).astype(np.int8),
        "tr_labels": tr_labels.astype(np.int64),
        "tt_labels": rng.permutation(np.arange(n_test) % n_class).astype(np.int64),
    }


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "full.zarr"
    return estimate_to_zarr(make_trials(), path, full=True, chunk_mb=0.0008, chunks=CHUNKS)


@pytest.mark.parametrize("top_k", [None, 2])
def test_full_layout_matches_loop(full_store, top_k):
    ds = memoxr.open_influence(full_store).chunk({"train_id": 7, "test_id": 5})
    assert all(len(c) > 1 for c in ds["influence_full"].chunks)
    full = ds["influence_full"].values
    tr_mem, tr_labels, tt_labels = (ds[k].values for k in ("tr_mem", "tr_labels", "tt_labels"))
    blocks = [(np.arange(full.shape[0]), np.arange(full.shape[1]), full)]
    table = memoxr.pairs(ds, min_infl=0.1, min_mem=0.0, full=True, top_k_per_test=top_k)
    assert_same(table, reference_pairs(tr_mem, tr_labels, tt_labels, blocks, 0.1, 0.0, top_k))
    assert (table["class_label"] != table["test_label"]).any()  # across classes, unlike the blocks


def test_within_class_pairs_are_the_same_class_pairs_of_full(full_store):
    within = memoxr.pairs(full_store, min_infl=0.05, min_mem=0.0)
    full = memoxr.pairs(full_store, min_infl=0.05, min_mem=0.0, full=True)
    same = full[full["class_label"] == full["test_label"]].reset_index(drop=True)
    assert len(within) > 0
    pd.testing.assert_frame_equal(within, same)


def test_threshold_is_exact_for_float32():
    for t in (0.15, 0.1, 1 / 3, 0.25, -0.07):
        x = np.float32(t)
        values = np.array([np.nextafter(x, -1, dtype=np.float32), x, np.nextafter(x, 1, dtype=np.float32)])
        assert ((values >= _threshold_in(values.dtype, t)) == (values.astype(np.float64) >= t)).all()


def test_estimate_in_memory_dataset_is_accepted():
    ds = estimate(make_trials(n_trials=30, seed=4), chunks=CHUNKS)
    assert list(memoxr.pairs(ds, min_infl=0.0, min_mem=0.0).columns) == list(PAIR_COLUMNS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_infl": float("nan")}, "min_infl must be a finite number; received nan"),
        ({"min_mem": "0.2"}, "min_mem must be a finite number; received '0.2'"),
        ({"top_k_per_test": 0}, r"top_k_per_test must be a whole number >= 1 or None; received 0"),
        ({"top_k_per_test": 1.5}, "top_k_per_test must be a whole number"),
        ({"full": True}, "variable 'influence_full' missing; expected an influence store written by `memoxr estimate --full`"),
    ],
)
def test_errors(store, kwargs, match):
    with pytest.raises(MemoxrInputError, match=match):
        memoxr.pairs(store, **kwargs)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_csv_and_npz(tmp_path, store, arrays):
    out = tmp_path / "pairs.csv"
    result = run("pairs", store, out, "--min-infl", "0", "--min-mem", "0.3", "--top-k-per-test", "2", "-q")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert_same(pd.read_csv(out), reference_from_arrays(arrays, 0.0, 0.3, top_k=2))

    npz_out = tmp_path / "pairs.npz"
    assert run("pairs", store, npz_out, "-q").exit_code == 0
    expected = reference_from_arrays(arrays, 0.15, 0.25)
    with np.load(npz_out) as saved:
        assert sorted(saved.files) == ["infl", "mem", "tr_idx", "tr_labels", "tt_idx", "tt_labels"]
        assert saved["tr_idx"].tolist() == expected["train_index"].tolist()
        assert saved["tt_idx"].tolist() == expected["test_index"].tolist()
        np.testing.assert_array_equal(saved["mem"], arrays["tr_mem"][saved["tr_idx"]])
        np.testing.assert_array_equal(saved["infl"], expected["influence"].to_numpy())


def test_cli_never_replaces_without_overwrite(tmp_path, store):
    out = tmp_path / "pairs.csv"
    out.write_text("keep me\n")
    result = run("pairs", store, out, "-q")
    assert result.exit_code == 2
    assert "already exists; pass --overwrite" in result.output
    assert out.read_text() == "keep me\n"
    assert run("pairs", store, out, "--overwrite", "-q").exit_code == 0
    assert out.read_text().startswith(",".join(PAIR_COLUMNS))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--full"], "variable 'influence_full' missing"),
        (["--min-infl", "nan"], "min_infl must be a finite number"),
        (["--top-k-per-test", "0"], "0 is not in the range x>=1"),
        (["--chunk-mb", "0"], "--chunk-mb must be a positive number"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, store, args, message):
    out = tmp_path / "pairs.csv"
    result = run("pairs", store, out, "-q", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_bad_paths_exit_2(tmp_path, store):
    result = run("pairs", tmp_path / "missing.zarr", tmp_path / "p.csv", "-q")
    assert result.exit_code == 2 and "Error:" in result.output
    result = run("pairs", store, tmp_path / "p.parquet", "-q")
    assert result.exit_code == 2 and "expected a .csv or .npz file name" in result.output


def test_docstring_examples():
    import doctest

    import memoxr.influence.pairs

    result = doctest.testmod(memoxr.influence.pairs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
