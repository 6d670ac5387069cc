"""Cost plans: what a command will read, run and hold, from metadata alone (``--dry-run``).

A plan opens the input lazily (array metadata, the store's object listing, an npz's
headers), builds the same dask graph the command would run and counts it; no
chunk of data is read. The peak memory it predicts per worker is a model of what
one task holds while it works on one chunk, times the tasks a worker runs at once,
plus the results that stay in memory:

* a task reading a Zarr chunk holds its stored bytes, the decoded chunk and the
  array zarr copies it into (2x the chunk, uncompressed, plus the stored size);
* the scores of a ``(class, train_sample)`` layout stay in memory: the row
  moments (4 float64 per sample) and the fields (7 float64 per sample).

Checked against measured peaks by ``python -m memoxr.benchmarks.scaling``, which
prints each prediction beside the measured peak (see the README's Performance
section). The baseline a worker needs before any work (Python, numpy, xarray,
dask and zarr imported, about 150-200 MB) is not part of the prediction.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

#: Buffers a task holds per chunk it decodes, in units of the uncompressed chunk (see module docs).
DECODED_COPIES = 2
#: float64 values kept per training sample while the scores are assembled (moments 4 + fields 7).
RESIDENT_VALUES_PER_SAMPLE = 4 + 7


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


#: Bytes a product task holds per byte of its ``chunk_mb`` budget, with records read chunk by chunk
#: (the trial block, its gathered operands and their float32 copies, the product).
ESTIMATE_TASK_BUDGETS = 2

#: Copies of an npz's records in memory at the peak (measured: the loaded arrays and one more).
NPZ_RECORD_COPIES = 2


def _npz_placeholders(path: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """Trial records of an npz as lazy placeholders from its headers; only the labels are read."""
    import dask.array as da

    from ..estimate import TRIAL_VARIABLES
    from ..io.npz import load_npz_arrays, read_npz_headers

    headers = read_npz_headers(path, storage_options=storage_options)
    labels, _ = load_npz_arrays(path, ["tr_labels", "tt_labels"], what="trials", expected="a numeric array",
                                storage_options=storage_options)
    arrays: dict[str, Any] = {key: value for key, value in labels.items() if value is not None}
    for key in TRIAL_VARIABLES:
        if key not in arrays and key in headers:
            arrays[key] = da.empty(headers[key].shape, dtype=headers[key].dtype, chunks=-1)
    return arrays


def _records_stored_bytes(trials: Any, storage_options: dict[str, Any] | None) -> int | None:
    if not isinstance(trials, str | os.PathLike):
        return None
    from ..io.location import (  # moves to the estimate layer with plan_estimate
        file_size,
        stored_bytes,
    )

    path = str(trials)
    if path.endswith(".npz"):
        return file_size(path, storage_options)
    sizes = [stored_bytes(path, key, storage_options) for key in ("mask", "train_correct", "test_correct")]
    return None if any(size is None for size in sizes) else int(sum(sizes))  # type: ignore[arg-type]


def plan_estimate(
    trials: Any,
    *,
    chunk_mb: float | None = None,
    full: bool = False,
    threads: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> CostPlan:
    """The cost plan of ``memoxr estimate``: the records' headers and labels are read, not their values.

    The records are read twice: once to check their 0/1 values and sum them per
    sample, once for the within-class products (three times with ``full``).
    Memory: an ``.npz``'s records are decompressed whole (twice over at the peak)
    and each task adds its ``chunk_mb`` budget; a Zarr trials store's chunks are
    gathered once into every class group (one bool copy of ``mask`` and
    ``test_correct``) and each product task holds about ``ESTIMATE_TASK_BUDGETS``
    times the budget. Measured against tracemalloc's peak of a synchronous run
    (2000 trials x 20,000 train x 5,000 test, ``python -m memoxr.benchmarks.plan``):
    0.75-0.97x at ``chunk_mb`` 4 to 64 for an npz; 0.73-0.96x at 16 and 64 MB for a
    Zarr store, and 1.48x (under-predicted) at 4 MB, where buffers that do not follow
    the budget dominate.

    Examples
    --------
    Records in memory: 40 trials, 30 training and 12 test samples in 3 classes.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> records = {
    ...     "mask": rng.random((40, 30)) < 0.7, "train_correct": rng.random((40, 30)) < 0.9,
    ...     "test_correct": rng.random((40, 12)) < 0.9, "tr_labels": np.arange(30) % 3, "tt_labels": np.arange(12) % 3,
    ... }
    >>> plan = plan_estimate(records, chunk_mb=1, threads=1)
    >>> plan.shape, plan.bytes_to_read == 2 * plan.uncompressed_bytes, plan.notes[1]
    ((40, 30), True, '3 classes, 40 trials; records read twice')
    """
    from ..estimate import (
        class_indices,
        class_test_in,
        full_test_in,
        pass_sums_graph,
        read_records,
    )
    from ..io.chunks import DEFAULT_CHUNK_MB, plan_block_chunks

    chunk_mb = DEFAULT_CHUNK_MB if chunk_mb is None else chunk_mb
    budget = int(chunk_mb * 2**20)
    npz = isinstance(trials, str | os.PathLike) and str(trials).endswith(".npz")
    records = read_records(_npz_placeholders(str(trials), storage_options) if npz else trials, chunk_mb,
                           storage_options)
    classes, train_index, test_index = class_indices(records.tr_labels, records.tt_labels)
    plan = plan_block_chunks(len(classes), train_index.shape[1], test_index.shape[1], chunk_mb=chunk_mb)
    test_in = class_test_in(records.mask, records.test_correct, train_index, test_index, plan, budget)
    products = [test_in]
    if full:
        products.append(full_test_in(records.mask, records.test_correct, chunk_mb, budget))
    validation = pass_sums_graph(records.mask, records.train_correct, records.test_correct)
    n_tasks = count_tasks(list(validation)) + count_tasks(products)
    arrays = (records.mask, records.train_correct, records.test_correct)
    uncompressed = sum(int(a.nbytes) for a in arrays)
    notes = [f"records mask and train_correct {records.mask.shape[0]} x {records.mask.shape[1]}, test_correct "
             f"{records.test_correct.shape[0]} x {records.test_correct.shape[1]}; sizes are of all three",
             f"{len(classes)} classes, {records.mask.shape[0]} trials; records read twice"
             + (" (three times with --full)" if full else "")]
    stored = _records_stored_bytes(trials, storage_options)
    if stored is None:
        stored = uncompressed
        notes.append("records in memory or stored sizes unknown: bytes to read counted uncompressed")
    passes = 3 if full else 2
    n_train, n_test = records.mask.shape[1], records.test_correct.shape[1]
    if npz:  # an npz's records are decompressed into memory whole; tasks work on views of them
        resident_records, per_task = NPZ_RECORD_COPIES * uncompressed, budget
        notes.append("an .npz's records are loaded whole (a Zarr trials store is read chunk by chunk)")
    else:  # each chunk of records is read once and gathered into every class group: one bool copy at most
        resident_records = records.mask.shape[0] * (n_train + n_test)
        per_task = ESTIMATE_TASK_BUDGETS * budget
    return CostPlan(
        command="estimate",
        source=str(trials) if isinstance(trials, str | os.PathLike) else "records in memory",
        variable="mask",
        shape=tuple(int(n) for n in records.mask.shape),
        dtype=str(records.mask.dtype),
        chunk_shape=tuple(max(c) for c in records.mask.chunks),
        n_chunks=sum(a.npartitions for a in arrays),
        uncompressed_bytes=uncompressed,
        bytes_to_read=int(stored) * passes,
        n_tasks=n_tasks,
        threads_per_worker=threads or default_threads(),
        per_task_bytes=min(per_task, 4 * uncompressed),  # at most float32 copies of all the records
        # per-sample sums (float64) and the index arrays; the influence is written chunk by chunk.
        resident_bytes=8 * (4 * n_train + n_test) + train_index.nbytes + test_index.nbytes + resident_records,
        notes=notes,
    )
