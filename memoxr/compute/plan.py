"""Cost plans: what a command will read, run and hold, from metadata alone (``--dry-run``).

A plan opens the input lazily (array metadata, the store's object listing, an npz's
headers), builds the same dask graph the command would run and counts it; no
chunk of data is read. The peak memory it predicts per worker is a model of what
one task holds while it works on one chunk, times the tasks a worker runs at once,
plus the results that stay in memory:

* a task reading a Zarr chunk holds its stored bytes, the decoded chunk and the
  array zarr copies it into (2x the chunk, uncompressed, plus the stored size); a
  chunk of a local store read straight from its file (:mod:`memoxr.io.direct_chunks`)
  is decoded into its own array, so 1x plus the stored size;
* the scores of a ``(class, train_sample)`` layout stay in memory: the row
  moments (4 float64 per sample) and the fields (7 float64 per sample); where
  the test samples span several chunks, each further chunk's partial moments
  (4 float64 per sample) until they are merged. That last term assumes every
  partial is alive at once: tight for a few test chunks, an upper bound for many
  (dask merges them four at a time; 10 test chunks: about 2x the traced peak).

Checked against measured peaks by ``python -m memoxr.benchmarks.scaling``, which
prints each prediction beside the measured peak (see the README's Performance
section). The baseline a worker needs before any work (Python, numpy, xarray,
dask and zarr imported, about 150-200 MB) is not part of the prediction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Buffers a task holds per chunk it decodes through zarr, in units of the uncompressed chunk (see module docs).
DECODED_COPIES = 2
#: float64 values kept per training sample while the scores are assembled (moments 4 + fields 7).
RESIDENT_VALUES_PER_SAMPLE = 4 + 7
#: float64 values per training sample of each further test chunk's partial moments, held until merged.
PARTIAL_VALUES_PER_SAMPLE = 4


@dataclass(frozen=True)
class CostPlan:
    """What a command will do, before it does it. Sizes in bytes.

    Examples
    --------
    >>> import memoxr
    >>> from memoxr.influence.plan import plan_calculate
    >>> plan = plan_calculate(memoxr.sample_path(), threads=2)
    >>> plan.peak_per_worker == 2 * plan.per_task_bytes + plan.resident_bytes
    True
    >>> print(plan)  # doctest: +ELLIPSIS
    Plan for memoxr calculate on .../digits_infl_matrix.npz (dry run: ...)
      influence: 10 x 137 x 46 float32, 252.1 KB uncompressed
    ...
    """

    command: str
    source: str
    variable: str
    shape: tuple[int, ...]
    dtype: str
    chunk_shape: tuple[int, ...]  # the largest chunk
    n_chunks: int
    uncompressed_bytes: int
    bytes_to_read: int
    n_tasks: int
    threads_per_worker: int
    per_task_bytes: int
    resident_bytes: int
    notes: list[str] = field(default_factory=list)

    @property
    def peak_per_worker(self) -> int:
        """Predicted peak memory a worker adds to its baseline: tasks at once x per task + results."""
        return self.threads_per_worker * self.per_task_bytes + self.resident_bytes

    def __str__(self) -> str:
        dims = " x ".join(str(n) for n in self.shape)
        chunk = " x ".join(str(n) for n in self.chunk_shape)
        lines = [
            f"Plan for memoxr {self.command} on {self.source} (dry run: metadata, listings and small index arrays read; nothing written)",
            f"  {self.variable}: {dims} {self.dtype}, {_size(self.uncompressed_bytes)} uncompressed",
            f"  chunks: {self.n_chunks} (largest {chunk}, {_size(self._chunk_bytes)})",
            f"  bytes to read: {_size(self.bytes_to_read)}",
            f"  dask tasks: {self.n_tasks}",
            f"  predicted peak memory per worker: {_size(self.peak_per_worker)} "
            f"({self.threads_per_worker} thread(s) x {_size(self.per_task_bytes)} per task "
            f"+ {_size(self.resident_bytes)} held throughout), above the worker's baseline",
        ]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])

    @property
    def _chunk_bytes(self) -> int:
        import numpy as np

        return math.prod(self.chunk_shape) * np.dtype(self.dtype).itemsize


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def default_threads() -> int:
    """Threads dask's local scheduler runs at once here (the cores this process may use).

    Examples
    --------
    >>> default_threads() >= 1
    True
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[function(item) for item in items]``, on up to :func:`default_threads` threads.

    For numpy work that releases the GIL (sorts, large ufuncs); results keep the items' order.

    Examples
    --------
    >>> thread_map(abs, [-2, 3, -5])
    [2, 3, 5]
    """
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, min(default_threads(), len(items)))) as pool:
        return list(pool.map(function, items))


class _Counted(Exception):
    """Raised by :func:`_counting_scheduler` with the number of tasks it was handed."""


def _counting_scheduler(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    graph = dsk.__dask_graph__() if hasattr(dsk, "__dask_graph__") else dsk  # an expression in dask >= 2025
    # Literal data in the graph (the opened arrays) is not a task: nothing runs for it.
    raise _Counted(sum(type(node).__name__ != "DataNode" for node in graph.values()))


def count_tasks(collections: list[Any]) -> int:
    """Tasks ``dask.compute(*collections)`` would run: dask optimizes and finalizes the graph as it
    does for a real run and hands it to a scheduler that counts it and runs nothing.

    Examples
    --------
    >>> import dask.array as da
    >>> count_tasks([(da.ones(10, chunks=5) + 1).sum()])  # two fused chunk tasks, two to combine
    4
    """
    import dask

    try:
        dask.compute(*collections, scheduler=_counting_scheduler)
    except _Counted as counted:
        return int(counted.args[0])
    raise AssertionError("the counting scheduler was not called")


