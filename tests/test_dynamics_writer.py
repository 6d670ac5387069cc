"""DynamicsWriter: epochs and batches, crash and resume, and its documented errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memoxr.dynamics import DynamicsWriter, open_dynamics
from memoxr.dynamics.store import COMPLETION_VAR
from memoxr.errors import MemoxrInputError

N, T = 6, 4
VARS = {"loss": "float32", "correct": "bool"}
RUNS = {"seed": [0, 1]}


def _values(epoch: int, seed: int) -> dict[str, np.ndarray]:
    loss = np.arange(N, dtype=np.float64) + 10 * epoch + 100 * seed
    return {"loss": loss, "correct": loss % 2 == 0}


def _new(path: Path, **kwargs) -> DynamicsWriter:
    return DynamicsWriter(
        path, samples=np.arange(50, 50 + N), epochs=T, variables=VARS, runs=RUNS,
        truth={"is_mislabeled": np.arange(N) < 2}, sample_order="torchvision", **kwargs,
    )


def test_write_epochs_and_batches_round_trip(tmp_path: Path) -> None:
    w = _new(tmp_path / "d.zarr")
    for seed in (0, 1):
        for epoch in range(T):
            v = _values(epoch, seed)
            if epoch == 2:  # by batches, out of order
                for idx in (np.array([5, 1, 3]), np.array([0, 2, 4])):
                    w.write_batch(epoch, idx, run={"seed": seed}, loss=v["loss"][idx], correct=v["correct"][idx])
                w.finish_epoch(epoch, run={"seed": seed})
            else:
                w.write_epoch(epoch, run={"seed": seed}, **v)
    ds = open_dynamics(tmp_path / "d.zarr")
    assert ds["loss"].dims == ("seed", "epoch", "train_id")
    assert ds.attrs["sample_order"] == "torchvision"
    np.testing.assert_array_equal(ds["train_id"].values, np.arange(50, 50 + N))
    assert COMPLETION_VAR not in ds
    for seed in (0, 1):
        for epoch in range(T):
            np.testing.assert_allclose(ds["loss"].values[seed, epoch], _values(epoch, seed)["loss"])
            np.testing.assert_array_equal(ds["correct"].values[seed, epoch], _values(epoch, seed)["correct"])
    np.testing.assert_array_equal(ds["is_mislabeled"].values, np.arange(N) < 2)


class _PowerCut:
    """Stands for the Zarr group; the completion flag write dies (the process is killed)."""

    def __init__(self, group) -> None:
        self.group = group

    def __getitem__(self, name: str):
        if name == COMPLETION_VAR:
            raise KeyboardInterrupt("power cut")
        return self.group[name]


def test_crash_mid_epoch_is_invisible_and_resumable(tmp_path: Path) -> None:
    path = tmp_path / "d.zarr"
    w = _new(path)
    for epoch in range(2):
        w.write_epoch(epoch, run={"seed": 0}, **_values(epoch, 0))
        w.write_epoch(epoch, run={"seed": 1}, **_values(epoch, 1))
    # Crash 1: half of epoch 2's batches written, then the process dies.
    w.write_batch(2, [0, 1, 2], run={"seed": 0}, loss=np.full(3, 99.0), correct=np.ones(3, bool))
    # Crash 2: all of epoch 2 written for seed 1, killed before its flag.
    w._group = _PowerCut(w._group)
    with pytest.raises(KeyboardInterrupt):
        w.write_epoch(2, run={"seed": 1}, **_values(2, 1))
    del w

    ds = open_dynamics(path)
    assert ds.sizes["epoch"] == 2  # epoch 2 never looks complete
    resumed = DynamicsWriter(path)
    assert resumed.pending_epochs(run={"seed": 0}) == [2, 3]
    assert resumed.pending_epochs(run={"seed": 1}) == [2, 3]
    assert resumed.completed_epochs(run={"seed": 0}) == [0, 1]
    # The stale half batch does not count for the new writer.
    with pytest.raises(MemoxrInputError, match="epoch 2 incomplete"):
        resumed.finish_epoch(2, run={"seed": 0})
    for seed in (0, 1):
        for epoch in resumed.pending_epochs(run={"seed": seed}):
            resumed.write_epoch(epoch, run={"seed": seed}, **_values(epoch, seed))
    ds = open_dynamics(path)
    assert ds.sizes["epoch"] == T
    np.testing.assert_allclose(ds["loss"].values[0, 2], _values(2, 0)["loss"])


def test_only_epochs_complete_in_every_run_are_opened(tmp_path: Path) -> None:
    w = _new(tmp_path / "d.zarr")
    w.write_epoch(0, run={"seed": 0}, **_values(0, 0))
    w.write_epoch(1, run={"seed": 0}, **_values(1, 0))
    w.write_epoch(1, run={"seed": 1}, **_values(1, 1))
    ds = open_dynamics(tmp_path / "d.zarr")
    assert ds["epoch"].values.tolist() == [1]


def test_overwrite_starts_again(tmp_path: Path) -> None:
    w = _new(tmp_path / "d.zarr")
    w.write_epoch(0, run={"seed": 0}, **_values(0, 0))
    w = _new(tmp_path / "d.zarr", overwrite=True)
    assert w.completed_epochs(run={"seed": 0}) == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda w: w.write_epoch(0, run={"seed": 0}, loss=np.zeros(N)), r"expected all of \['correct', 'loss'\]"),
        (lambda w: w.write_epoch(0, run={"seed": 0}, loss=np.zeros(N), correct=np.ones(N, bool), acc=np.ones(N)), r"variables \['acc'\] unknown"),
        (lambda w: w.write_epoch(0, run={"seed": 0}, loss=np.zeros(N + 1), correct=np.ones(N, bool)), r"shape \(7,\); expected \(6,\)"),
        (lambda w: w.write_epoch(0, run={"seed": 0}, loss=np.zeros(N), correct=np.ones(N)), "castable to bool"),
        (lambda w: w.write_epoch(9, run={"seed": 0}, **_values(0, 0)), "epoch 9 unknown"),
        (lambda w: w.write_epoch(0, run={"seed": 7}, **_values(0, 0)), "seed=7 unknown"),
        (lambda w: w.write_epoch(0, **_values(0, 0)), r"run: keys \[\]; expected \['seed'\]"),
        (lambda w: w.write_batch(0, [0, N], run={"seed": 0}, loss=[1.0, 2.0]), r"indices: expected 1-D integer positions in \[0, 6\)"),
        (lambda w: w.finish_epoch(0, run={"seed": 0}), "epoch 0 incomplete; 6 of 6"),
    ],
)
def test_writer_errors(tmp_path: Path, call, match: str) -> None:
    w = _new(tmp_path / "d.zarr")
    with pytest.raises(MemoxrInputError, match=match):
        call(w)


def test_writer_creation_errors(tmp_path: Path) -> None:
    with pytest.raises(MemoxrInputError, match="expected samples, epochs and variables"):
        DynamicsWriter(tmp_path / "x.zarr")
    with pytest.raises(MemoxrInputError, match="dtype <U1; expected bool, integer or float"):
        DynamicsWriter(tmp_path / "x.zarr", samples=3, epochs=2, variables={"loss": "U1"})
    with pytest.raises(MemoxrInputError, match="samples: expected a positive count or distinct"):
        DynamicsWriter(tmp_path / "x.zarr", samples=[1, 1], epochs=2, variables={"loss": "f4"})
    with pytest.raises(MemoxrInputError, match=r"truth 'm': shape \(4,\)"):
        DynamicsWriter(tmp_path / "x.zarr", samples=3, epochs=2, variables={"loss": "f4"}, truth={"m": np.zeros(4)})
    assert not (tmp_path / "x.zarr").exists()
    assert list(tmp_path.iterdir()) == []
    _new(tmp_path / "d.zarr")
    with pytest.raises(MemoxrInputError, match="samples: the store .* holds"):
        DynamicsWriter(tmp_path / "d.zarr", samples=N + 1)
    with pytest.raises(MemoxrInputError, match="variables: the store .* holds"):
        DynamicsWriter(tmp_path / "d.zarr", variables={"loss": "f4"})


def test_a_store_reopened_after_more_epochs_gets_other_task_keys(tmp_path: Path) -> None:
    # A notebook that kept (persisted) an earlier read must not get its values back for the later one.
    import dask

    from memoxr.io.storage import open_dataset

    path = tmp_path / "d.zarr"
    writer = DynamicsWriter(path, samples=4, epochs=2, variables={"loss": "f4"})
    writer.write_epoch(0, loss=[1, 2, 3, 4])
    held = open_dataset(path)["loss"].data.persist()
    writer.write_epoch(1, loss=[5, 6, 7, 8])
    fresh = open_dataset(path)["loss"].data
    assert fresh.name != held.name
    old, new = dask.compute(held, fresh)
    assert np.isnan(old[1]).all()
    np.testing.assert_array_equal(new, [[1, 2, 3, 4], [5, 6, 7, 8]])
    # Unchanged, it keeps its keys: two reads of the same state still share their work.
    assert open_dataset(path)["loss"].data.name == fresh.name


def test_a_chunk_being_written_does_not_stop_a_reader(tmp_path: Path, monkeypatch) -> None:
    # zarr writes a chunk to a *.partial file and renames it: the walk for the store's version skips
    # those, and a file gone between listing and stat (renamed meanwhile) is skipped, not an error.
    import os

    from memoxr.io import storage

    path = tmp_path / "d.zarr"
    writer = DynamicsWriter(path, samples=4, epochs=2, variables={"loss": "f4"})
    writer.write_epoch(0, loss=[1, 2, 3, 4])
    name = storage.open_dataset(path)["loss"].data.name
    (path / "loss" / "c").mkdir(exist_ok=True)
    (path / "loss" / "c" / "1.0123abcd.partial").write_bytes(b"half")
    assert storage.open_dataset(path)["loss"].data.name == name  # not counted: the same version
    real_walk = os.walk
    monkeypatch.setattr(os, "walk", lambda root: [*real_walk(root), (str(path), [], ["renamed-meanwhile"])])
    assert storage.open_dataset(path)["loss"].data.name == name
