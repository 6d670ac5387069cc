"""The digits sample: regenerated small end to end, and the shipped file checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import memoxr
from memoxr.convert import inspect_fz_npz

SHIPPED = Path(memoxr.__file__).parent / "data" / "digits_infl_matrix.npz"
TRAIN_PER_CLASS = [133, 136, 133, 137, 136, 136, 136, 134, 131, 135]
TEST_PER_CLASS = [45, 46, 44, 46, 45, 46, 45, 45, 43, 45]


def test_regenerate_small_sample_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    from memoxr.datasets.digits import main, make_digits_sample
    from memoxr.estimate import write_estimate

    path, trials = make_digits_sample(tmp_path / "digits.npz", 30, trials_output=tmp_path / "trials.npz")
    assert trials.records["mask"].shape == (30, 1347)
    assert trials.records["mask"].sum(axis=1).tolist() == [943] * 30
    assert trials.test_accuracy.mean() > 0.9
    layout = inspect_fz_npz(path)
    assert layout.classes == list(range(10))
    assert [len(i) for i in layout.train_index] == TRAIN_PER_CLASS
    assert [len(i) for i in layout.test_index] == TEST_PER_CLASS

    ds = memoxr.open_influence(path)
    scores = memoxr.influence_scores(ds)
    table = memoxr.class_stats(scores)
    assert table["sample_count"].tolist() == TRAIN_PER_CLASS
    real = ds["train_index"].values >= 0
    influence = ds["influence"].values
    finite = influence[np.isfinite(influence)]
    assert ((finite >= -1) & (finite <= 1)).all()
    assert np.isfinite(ds["memorization"].values[real]).sum() >= real.sum() - 5  # NaN only if degenerate

    # Same records through the saved trial file give the same estimate.
    again = write_estimate(tmp_path / "trials.npz", tmp_path / "again.npz", sample_order=ds.attrs["sample_order"])
    with np.load(path) as a, np.load(again) as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])

    # The module's command line: an existing output is refused with status 2.
    assert main(["--trials", "3", "--output", str(path), "--quiet"]) == 2


def test_shipped_sample_is_a_valid_fz_npz():
    layout = inspect_fz_npz(SHIPPED)
    assert layout.classes == list(range(10))
    train_counts = [len(i) for i in layout.train_index]
    test_counts = [len(i) for i in layout.test_index]
    assert train_counts == TRAIN_PER_CLASS and test_counts == TEST_PER_CLASS
    assert len(set(train_counts)) > 1 and len(set(test_counts)) > 1  # ragged
    assert layout.tr_mem.shape == (1347,) and layout.tt_labels.shape == (450,)
    with np.load(SHIPPED) as f:
        assert all(f[f"infl_matrix_class{k}"].dtype == np.float32 for k in range(10))
    assert SHIPPED.stat().st_size < 5 * 2**20
    assert np.nanmax(layout.tr_mem) > 0.5  # some samples are memorized
