"""Cost plan of ``estimate`` (``--dry-run``): the records' headers and labels are read, not their values."""

from __future__ import annotations

import os
from typing import Any

from ..compute.plan import CostPlan, count_tasks, default_threads
from ..io.chunks import DEFAULT_CHUNK_MB, plan_block_chunks
from ..io.location import Location, StorageOptions, file_size, locate, stored_bytes
from ..io.npz import load_npz_arrays, read_npz_headers
from .graph import class_indices, pass_sums_graph
from .sums import class_test_in, full_test_in
from .trials import TRIAL_VARIABLES, read_records

#: Bytes a product task holds per byte of its ``chunk_mb`` budget, with records read chunk by chunk
#: (the trial block, its gathered operands and their float32 copies, the product).
ESTIMATE_TASK_BUDGETS = 2


#: Copies of an npz's records in memory at the peak (measured: the loaded arrays and one more).
NPZ_RECORD_COPIES = 2


def _npz_placeholders(location: Location) -> dict[str, Any]:
    """Trial records of an npz as lazy placeholders from its headers; only the labels are read."""
    import dask.array as da

    headers = read_npz_headers(location)
    labels, _ = load_npz_arrays(location, ["tr_labels", "tt_labels"], what="trials", expected="a numeric array")
    arrays: dict[str, Any] = {key: value for key, value in labels.items() if value is not None}
    for key in TRIAL_VARIABLES:
        if key not in arrays and key in headers:
            arrays[key] = da.empty(headers[key].shape, dtype=headers[key].dtype, chunks=-1)
    return arrays


def _records_stored_bytes(trials: Any) -> int | None:
    if not isinstance(trials, Location):
        return None
    if trials.path.endswith(".npz"):
        return file_size(trials)
    sizes = [stored_bytes(trials, key) for key in ("mask", "train_correct", "test_correct")]
    return None if any(size is None for size in sizes) else int(sum(sizes))  # type: ignore[arg-type]


def plan_estimate(
    trials: Any,
    *,
    chunk_mb: float | None = None,
    full: bool = False,
    threads: int | None = None,
    storage_options: StorageOptions = None,
) -> CostPlan:
    """The cost plan of ``memoxr estimate``: the records' headers and labels are read, not their values.

    Bytes to read assume two passes over the records (the per-sample sums, then the
    within-class products; three with ``full``), as when writing an ``.npz``; writing a
    Zarr store fuses them and reads each chunk once.
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
    ((40, 30), True, '3 classes, 40 trials; records counted as read twice (a Zarr output reads them once)')
    """
    chunk_mb = DEFAULT_CHUNK_MB if chunk_mb is None else chunk_mb
    budget = int(chunk_mb * 2**20)
    trials = locate(trials, storage_options)
    npz = isinstance(trials, Location) and trials.path.endswith(".npz")
    records = read_records(_npz_placeholders(trials) if npz else trials, chunk_mb)
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
             f"{len(classes)} classes, {records.mask.shape[0]} trials; records counted as read twice"
             + (" (three times with --full)" if full else "") + " (a Zarr output reads them once)"]
    stored = _records_stored_bytes(trials)
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
