from __future__ import annotations

import contextlib
import os
from collections import Counter

import dask
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, settings

from memoxr.convert import convert_npz
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.io.chunks import BlockChunks

# Subprocesses import the installed memoxr, as pytest does here, not the checkout in the working
# directory: after `pip install .` that holds no built kernels (memoxr/influence/_*.c).
os.environ["PYTHONSAFEPATH"] = "1"

settings.register_profile("default", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")

# Ragged classes, a one-sample class, classes split over several chunks along every dim.
RAGGED_TRAIN = [7, 12, 1, 9, 10, 3]
RAGGED_TEST = [5, 8, 3, 11, 4, 6]
BALANCED_TRAIN = [10] * 5
BALANCED_TEST = [7] * 5
SMALL_CHUNKS = BlockChunks(cls=2, train=4, test=3)


def write_npz(path, arrays, *, compressed=False):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return str(path)


@pytest.fixture
def ragged_arrays():
    return make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=11)


@pytest.fixture
def balanced_arrays():
    return make_fz_arrays(BALANCED_TRAIN, BALANCED_TEST, seed=5)


@pytest.fixture
def ragged_npz(tmp_path, ragged_arrays):
    return write_npz(tmp_path / "ragged.npz", ragged_arrays, compressed=True)


@pytest.fixture
def balanced_npz(tmp_path, balanced_arrays):
    return write_npz(tmp_path / "balanced.npz", balanced_arrays)


@pytest.fixture
def ragged_store(tmp_path, ragged_npz):
    return str(convert_npz(ragged_npz, tmp_path / "ragged.zarr", chunks=SMALL_CHUNKS))


@pytest.fixture
def balanced_store(tmp_path, balanced_npz):
    return str(convert_npz(balanced_npz, tmp_path / "balanced.zarr", chunks=SMALL_CHUNKS))


class ComputeCounter:
    """A dask scheduler that counts compute calls and raises above a limit."""

    def __init__(self, max_computes: int = 0) -> None:
        self.max_computes = max_computes
        self.total = 0

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"Too many computes: {self.total} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if anything inside computes a dask graph (a lazy path must not)."""
    with dask.config.set(scheduler=ComputeCounter(max_computes)):
        yield


class CountingStore(zarr.storage.WrapperStore):
    """Counts reads of every key of the wrapped store."""

    def __init__(self, store, counter: Counter | None = None) -> None:
        super().__init__(store)
        self.reads = Counter() if counter is None else counter

    def _with_store(self, store):
        return type(self)(store, self.reads)

    async def get(self, key, prototype, byte_range=None):
        self.reads[key] += 1
        return await self._store.get(key, prototype, byte_range)
