"""The held-out runs adapter: per-run aux_arrays.npz files in, trial records out."""

from __future__ import annotations

import re
from pathlib import Path

import dask
import dask.array as da
import fsspec
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.convert.heldout_runs import AUX_FILE, heldout_runs_to_trials, read_heldout_runs
from memoxr.errors import MemoxrInputError, OutputExistsError
from memoxr.estimate import estimate, open_trials

N_TRAIN, N_TEST, N_CLASS, N_RUNS, RATIO = 30, 10, 3, 12, 0.7
N_KEPT = round(RATIO * N_TRAIN)  # 21 kept, 9 removed per run

# ------------------------------------------------------------------------------------------------
# A hand-built release folder: <experiment>/<ratio>/<run_id>/aux_arrays.npz


def make_run(rng: np.random.Generator, t: int, ids: np.ndarray) -> dict[str, np.ndarray]:
    """One run's aux arrays: 9 removed ids (cycling so every id is removed at least once), shuffled."""
    removed = ids[(9 * t + np.arange(N_TRAIN - N_KEPT)) % N_TRAIN]
    kept = np.setdiff1d(np.arange(N_TRAIN), removed)
    kept, removed = rng.permutation(kept), rng.permutation(removed)
    test = rng.permutation(N_TEST)
    return {
        "correctness_train": (rng.random(N_KEPT) < 0.9).astype(np.int64),
        "correctness_removed": (rng.random(N_TRAIN - N_KEPT) < 0.5).astype(np.float32),
        "correctness_test": rng.random(N_TEST) < 0.6,
        "index_train": kept,
        "index_removed": removed,
        "index_test": test,
        "subsample_idx": np.sort(kept),  # the same set, another order
    }


def write_release(root: Path, runs: dict[str, list[dict[str, np.ndarray]]]) -> Path:
    for ratio, arrays in runs.items():
        for t, run in enumerate(arrays):
            folder = root / ratio / str(t)
            (folder / "checkpoints").mkdir(parents=True)
            np.savez(folder / AUX_FILE, **run)
    return root


@pytest.fixture(scope="module")
def runs() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    ids = rng.permutation(N_TRAIN)
    return [make_run(rng, t, ids) for t in range(N_RUNS)]


@pytest.fixture(scope="module")
def labels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    return {
        "tr_labels": rng.permutation(np.arange(N_TRAIN) % N_CLASS),
        "tt_labels": rng.permutation(np.arange(N_TEST) % N_CLASS),
    }


@pytest.fixture(scope="module")
def release(tmp_path_factory, runs) -> Path:
    """Ratio 0.7 with 12 runs (folders 0..11, so "10" sorts before "2" as text)."""
    return write_release(tmp_path_factory.mktemp("rel") / "toy-inception", {"0.7": runs})


@pytest.fixture(scope="module")
def two_ratios(tmp_path_factory, runs) -> Path:
    return write_release(tmp_path_factory.mktemp("two") / "toy-inception", {"0.7": runs, "0.1": runs[:2]})


@pytest.fixture
def labels_npz(tmp_path, labels) -> str:
    path = tmp_path / "labels.npz"
    np.savez(path, **labels)
    return str(path)


def reference(runs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Trial records from the definitions, one example at a time."""
    mask = np.zeros((len(runs), N_TRAIN), dtype=bool)
    train_correct = np.zeros((len(runs), N_TRAIN), dtype=bool)
    test_correct = np.zeros((len(runs), N_TEST), dtype=bool)
    for t, run in enumerate(runs):
        for i in run["subsample_idx"]:
            mask[t, i] = True
        for split, out in (("train", train_correct), ("removed", train_correct), ("test", test_correct)):
            for position, sample in enumerate(run[f"index_{split}"]):
                out[t, sample] = bool(run[f"correctness_{split}"][position])
    return {"mask": mask, "train_correct": train_correct, "test_correct": test_correct}


# ------------------------------------------------------------------------------------------------
# Reading


def test_dataset_equals_reference(release, runs, labels):
    ds = read_heldout_runs(release, **labels, trial_chunk_mb=70 * 5 / 2**20)  # 5 runs per chunk
    assert isinstance(ds["mask"].data, da.Array)
    assert ds["mask"].data.chunks[0] == (5, 5, 2)
    # One load task per run, shared by the three record arrays.
    graph = dict(ds["mask"].data.__dask_graph__())
    assert sum(str(k).startswith("load-heldout-run-") for k in graph) == N_RUNS
    assert ds["mask"].dims == ("trial", "train_id") and ds["test_correct"].dims == ("trial", "test_id")
    assert ds.attrs == {"sample_order": "tfds", "source_name": "toy-inception/0.7", "subset_ratio": "0.7",
                        "n_runs": N_RUNS}
    assert ds["run_id"].values.tolist() == list(range(N_RUNS))  # numeric, not text, order
    ref = reference(runs)
    for key, value in ref.items():
        assert ds[key].dtype == bool
        np.testing.assert_array_equal(ds[key].values, value, err_msg=key)
    np.testing.assert_array_equal(ds["tr_labels"].values, labels["tr_labels"])
    np.testing.assert_array_equal(ds["tt_labels"].values, labels["tt_labels"])


def test_a_run_written_again_gets_other_task_keys(tmp_path, runs, labels):
    # A result of the old file still held (persisted, or on a cluster) must not stand in for the new one's.
    root = write_release(tmp_path / "toy-inception", {"0.7": runs[:2]})
    held = read_heldout_runs(root, **labels)["test_correct"].data.persist()
    changed = dict(runs[1], correctness_test=1 - runs[1]["correctness_test"])
    np.savez(root / "0.7" / "1" / AUX_FILE, **changed)
    fresh = read_heldout_runs(root, **labels)["test_correct"].data
    expected = reference([runs[0], changed])["test_correct"]
    np.testing.assert_array_equal(fresh.compute(), expected)
    np.testing.assert_array_equal(dask.compute(held, fresh)[1], expected)


def test_estimate_equals_estimate_on_reference(release, runs, labels):
    ds = read_heldout_runs(release, **labels)
    got = estimate(ds, chunk_mb=0.0005).compute()
    want = estimate({**reference(runs), **labels}, chunk_mb=0.0005).compute()
    assert got.attrs["source_name"] == "toy-inception/0.7"
    for key in ("tr_mem", "memorization", "influence", "train_index", "test_index"):
        np.testing.assert_array_equal(got[key].values, want[key].values, err_msg=key)
    # And the memorization from the definition, on the runs themselves.
    ref = reference(runs)
    mem = [
        ref["train_correct"][ref["mask"][:, i], i].mean() - ref["train_correct"][~ref["mask"][:, i], i].mean()
        for i in range(N_TRAIN)
    ]
    np.testing.assert_allclose(got["tr_mem"].values, mem, atol=1e-12)


def test_subset_ratio_selects_by_value(two_ratios, runs, labels):
    ds = read_heldout_runs(two_ratios, subset_ratio=0.70, **labels)
    assert ds.sizes["trial"] == N_RUNS
    assert read_heldout_runs(two_ratios, subset_ratio="0.1", **labels).sizes["trial"] == 2


def test_remote_folder_via_fsspec(runs, labels):
    fs = fsspec.filesystem("memory")
    root = "memory://heldout-test/toy-inception"
    try:
        for t, run in enumerate(runs[:4]):
            with fs.open(f"{root}/0.7/{t}/{AUX_FILE}", "wb") as fp:
                np.savez(fp, **run)
        ds = read_heldout_runs(root, **labels, storage_options={})
        np.testing.assert_array_equal(ds["train_correct"].values, reference(runs[:4])["train_correct"])
    finally:
        fs.rm("/heldout-test", recursive=True)


# ------------------------------------------------------------------------------------------------
# Writing and the CLI


@pytest.mark.parametrize("name", ["trials.zarr", "trials.npz"])
def test_write_round_trip(tmp_path, release, runs, labels_npz, name):
    out = tmp_path / name
    assert heldout_runs_to_trials(release, out, labels=labels_npz) == str(out)
    back = open_trials(out)
    for key, value in reference(runs).items():
        np.testing.assert_array_equal(back[key].values.astype(bool), value, err_msg=key)
    with pytest.raises(OutputExistsError):
        heldout_runs_to_trials(release, out, labels=labels_npz)
    heldout_runs_to_trials(release, out, labels=labels_npz, overwrite=True)
    if name.endswith(".zarr"):
        store = memoxr.io.storage.open_dataset(out)
        assert store.attrs["sample_order"] == "tfds" and store["run_id"].values.tolist() == list(range(N_RUNS))
    # Either way the records carry their order into the estimate (the tfds/torchvision trap).
    assert estimate(out).attrs["sample_order"] == "tfds"


def test_cli_end_to_end(tmp_path, release, runs, labels, labels_npz):
    runner = CliRunner()
    trials, infl, scores = tmp_path / "trials.zarr", tmp_path / "infl.zarr", tmp_path / "scores.zarr"
    result = runner.invoke(main, ["trials-from-runs", str(release), str(trials), "--labels", labels_npz, "-q"])
    assert result.exit_code == 0, result.output
    assert f"wrote {trials}" in result.output
    result = runner.invoke(main, ["estimate", str(trials), str(infl), "-q"])  # the records carry their order
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["calculate", "--input", str(infl), "--output", str(scores), "-q"])
    assert result.exit_code == 0, result.output
    stored = memoxr.open_influence(infl)
    assert stored.attrs["sample_order"] == "tfds"
    want = estimate({**reference(runs), **labels})
    np.testing.assert_array_equal(stored["tr_mem"].values, want["tr_mem"].values)
    np.testing.assert_array_equal(stored["influence"].values, want["influence"].values)
    assert scores.exists()


def test_cli_bad_input_exit_2(tmp_path, two_ratios, labels_npz):
    out = tmp_path / "trials.zarr"
    result = CliRunner().invoke(main, ["trials-from-runs", str(two_ratios), str(out), "--labels", labels_npz])
    assert result.exit_code == 2
    assert "several subset ratios: 0.1 (2 runs), 0.7 (12 runs)" in result.output
    result = CliRunner().invoke(
        main, ["trials-from-runs", str(two_ratios), str(out), "--labels", labels_npz, "--subset-ratio", "0.5"]
    )
    assert result.exit_code == 2 and "subset_ratio: expected one of ['0.1', '0.7']" in result.output
    missing = str(tmp_path / "nolabels.npz")  # named as the labels file, not as the input
    result = CliRunner().invoke(main, ["trials-from-runs", str(two_ratios), str(out), "--labels", missing])
    assert result.exit_code == 2 and f"labels {missing!r} does not exist or is not a file" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.npz"]


# ------------------------------------------------------------------------------------------------
# Errors: one per documented check, and nothing left behind


def _set(t: int, **changes):
    """A change to run ``t``: replace (or with None, drop) keys."""

    def change(run_list):
        run = {k: v for k, v in run_list[t].items() if changes.get(k, "keep") is not None}
        run.update({k: v for k, v in changes.items() if v is not None})
        return [*run_list[:t], run, *run_list[t + 1 :]]

    return change


def _swap(key_a: str, key_b: str, i: int, t: int = 4):
    def change(run_list):
        run = dict(run_list[t])
        a, b = run[key_a].copy(), run[key_b].copy()
        a[i], b[0] = b[0], a[i]
        run[key_a], run[key_b] = a, b
        return [*run_list[:t], run, *run_list[t + 1 :]]

    return change


def _edit(key: str, position: int, value, t: int = 3):
    def change(run_list):
        run = dict(run_list[t])
        run[key] = run[key].copy()
        run[key][position] = value
        return [*run_list[:t], run, *run_list[t + 1 :]]

    return change


RUN_ERRORS = [
    (_set(2, index_test=None), r"2/aux_arrays.npz': missing key\(s\) \['index_test'\]"),
    (_set(1, correctness_test=np.array([None] * N_TEST, dtype=object)),
     "key 'correctness_test': expected a numeric array, received dtype object"),
    (_set(1, index_train=np.arange(N_KEPT, dtype=float)), "key 'index_train': expected integer indices, received dtype float64"),
    (_set(1, correctness_removed=np.zeros(N_TRAIN - N_KEPT + 1)),
     "key 'correctness_removed': expected length 9 \\(like 'index_removed'\\), received 10"),
    (_set(1, index_test=np.arange(N_TEST - 1), correctness_test=np.ones(N_TEST - 1)),
     "key 'index_test': expected 10 test examples"),
    (_edit("index_train", 0, N_TRAIN), f"key 'index_train': expected train ids in \\[0, {N_TRAIN}\\), received {N_TRAIN}"),
    (_edit("index_test", 0, -1), "key 'index_test': expected test indices in \\[0, 10\\), received -1"),
    (lambda r: _edit("index_removed", 1, r[3]["index_removed"][0])(r), "key 'index_removed': expected distinct train ids"),
    (lambda r: _edit("index_removed", 0, r[3]["index_train"][0])(r),
     "keys 'index_train' and 'index_removed': expected disjoint ids .* received id \\d+ in both"),
    (lambda r: _edit("subsample_idx", 0, r[3]["index_removed"][0])(r),
     "key 'subsample_idx': expected the same ids as 'index_train', received 1 id"),
    (_edit("correctness_train", 5, 2), "key 'correctness_train': expected 0/1 values, received 2 at position 5"),
    (_edit("correctness_removed", 0, 0.5), "key 'correctness_removed': expected 0/1 values, received 0.5"),
]


def _train_union_short(run_list):
    """Drop one removed id: the kept and removed ids no longer cover the train split."""
    run = dict(run_list[0])
    run["index_removed"], run["correctness_removed"] = run["index_removed"][1:], run["correctness_removed"][1:]
    return [run, *run_list[1:]]


RUN_ERRORS.append((_train_union_short, "keys 'index_train' \\+ 'index_removed': expected 30 train examples in all"))


@pytest.mark.parametrize(("change", "match"), RUN_ERRORS)
@pytest.mark.parametrize("name", ["out.zarr", "out.npz"])
def test_bad_run_raises_and_leaves_nothing(tmp_path, runs, labels, labels_npz, change, match, name):
    folder = write_release(tmp_path / "bad", {"0.7": change(runs)})
    with pytest.raises(MemoxrInputError, match=match):
        read_heldout_runs(folder, **labels)
    with pytest.raises(MemoxrInputError, match=match):
        heldout_runs_to_trials(folder, tmp_path / name, labels=labels_npz)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "labels.npz"]


def test_lazy_read_still_validates(tmp_path, runs, labels):
    folder = write_release(tmp_path / "bad", {"0.7": _edit("correctness_train", 0, 7)(runs)})
    ds = read_heldout_runs(folder, **labels, validate=False)
    with pytest.raises(MemoxrInputError, match="key 'correctness_train': expected 0/1 values, received 7"):
        ds["train_correct"].values  # noqa: B018


def test_folder_errors(tmp_path, release, two_ratios, runs, labels):
    with pytest.raises(MemoxrInputError, match="does not exist or is not a folder"):
        read_heldout_runs(tmp_path / "nowhere", **labels)
    with pytest.raises(MemoxrInputError, match=re.escape("several subset ratios: 0.1 (2 runs), 0.7 (12 runs)")):
        read_heldout_runs(two_ratios, **labels)
    with pytest.raises(MemoxrInputError, match=re.escape("subset_ratio: expected one of ['0.1', '0.7'], received 0.3")):
        read_heldout_runs(two_ratios, subset_ratio=0.3, **labels)
    with pytest.raises(MemoxrInputError, match="looks like one subset-ratio folder"):
        read_heldout_runs(release / "0.7", **labels)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MemoxrInputError, match="expected <subset_ratio>/<run_id>/aux_arrays.npz files, received none"):
        read_heldout_runs(empty, **labels)
    odd = write_release(tmp_path / "odd", {"0.7": runs[:2]})
    (odd / "0.7" / "1").rename(odd / "0.7" / "final")
    with pytest.raises(MemoxrInputError, match="expected a whole-number run id, received 'final'"):
        read_heldout_runs(odd, **labels)


def test_label_errors(tmp_path, release, labels):
    with pytest.raises(MemoxrInputError, match=re.escape("key 'index_test': expected 9 test examples (len(tt_labels)), received 10")):
        read_heldout_runs(release, tr_labels=labels["tr_labels"], tt_labels=labels["tt_labels"][:-1])
    with pytest.raises(MemoxrInputError, match=re.escape("expected 31 train examples in all (len(tr_labels)), received 21 + 9 = 30")):
        read_heldout_runs(release, tr_labels=np.zeros(31, int), tt_labels=labels["tt_labels"])
    with pytest.raises(MemoxrInputError, match="key 'tr_labels': expected whole-number class labels >= 0, received -1"):
        read_heldout_runs(release, tr_labels=labels["tr_labels"] - 1, tt_labels=labels["tt_labels"])
    missing = tmp_path / "labels.npz"
    np.savez(missing, tr_labels=labels["tr_labels"])
    with pytest.raises(MemoxrInputError, match=r"missing key\(s\) \['tt_labels'\]"):
        heldout_runs_to_trials(release, tmp_path / "out.zarr", labels=missing)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, tr_labels=np.array(list(labels["tr_labels"]), dtype=object), tt_labels=labels["tt_labels"])
    with pytest.raises(MemoxrInputError, match="key 'tr_labels': expected integer class labels, received dtype object"):
        heldout_runs_to_trials(release, tmp_path / "out.zarr", labels=pickled)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.npz", "pickled.npz"]


def test_dataset_feeds_estimate_lazily(release, labels):
    ds = read_heldout_runs(release, **labels)
    assert isinstance(ds, xr.Dataset) and all(isinstance(ds[k].data, da.Array) for k in ("mask", "test_correct"))
