"""Cost plans of ``calculate`` and ``pairs`` (``--dry-run``): metadata read, nothing computed."""

from __future__ import annotations

import math
from typing import Any

from ..compute.plan import (
    DECODED_COPIES,
    PARTIAL_VALUES_PER_SAMPLE,
    RESIDENT_VALUES_PER_SAMPLE,
    CostPlan,
    count_tasks,
    default_threads,
)
from ..io.direct_chunks import reads_directly
from ..io.location import Location, PathLike, StorageOptions, file_size, stored_bytes


def influence_bytes_to_read(location: Location, variable: str, uncompressed: int, notes: list[str]) -> int:
    """Stored bytes of ``variable`` (an npz: the file), or ``uncompressed`` with a note when unknown."""
    stored = file_size(location) if location.path.endswith(".npz") else stored_bytes(location, variable)
    if stored is None:
        notes.append("stored sizes unknown (no listing): bytes to read assumed uncompressed")
        return uncompressed
    return stored


def plan_calculate(
    source: PathLike | Location,
    *,
    threads: int | None = None,
    allow_pickle: bool = False,
    storage_options: StorageOptions = None,
) -> CostPlan:
    """The cost plan of ``memoxr calculate`` (scores, table, analysis) on an influence store or FZ npz.

    ``threads``: tasks a worker runs at once (default: dask's local scheduler, one per core;
    1 for a single-threaded distributed worker).

    Example
    -------
    >>> import memoxr, memoxr.compute.plan
    >>> plan = memoxr.influence.plan.plan_calculate(memoxr.sample_path(), threads=1)
    >>> plan.n_chunks >= 1 and plan.bytes_to_read > 0
    True
    """
    from .scores import influence_scores
    from .sources import open_influence

    location = Location.of(source, storage_options)
    path = location.path
    ds = open_influence(location, allow_pickle=allow_pickle)
    influence = ds["influence"]
    data = influence.data
    scores = influence_scores(ds)
    arrays = [v.data for v in scores.data_vars.values() if v.chunks]
    chunk_shape = tuple(max(c) for c in data.chunks)
    itemsize = data.dtype.itemsize
    uncompressed = int(math.prod(data.shape) * itemsize)
    chunk_bytes = int(math.prod(chunk_shape) * itemsize)
    notes = []
    if path.endswith(".npz"):
        notes.append("an npz is read member by member into padded class blocks; bytes to read is the file's size")
    stored = influence_bytes_to_read(location, "influence", uncompressed, notes)
    stored_per_chunk = math.ceil(stored / max(1, data.npartitions))
    copies = DECODED_COPIES
    if reads_directly(data):
        copies = 1
        notes.append("chunks read straight from their files: each task holds one decoded copy of its chunk")
    samples = int(math.prod(influence.shape[:2]))
    test_chunks = len(data.chunks[influence.get_axis_num("test_sample")])
    resident_values = RESIDENT_VALUES_PER_SAMPLE + PARTIAL_VALUES_PER_SAMPLE * (test_chunks - 1)
    return CostPlan(
        command="calculate",
        source=path,
        variable="influence",
        shape=tuple(int(n) for n in data.shape),
        dtype=str(data.dtype),
        chunk_shape=chunk_shape,
        n_chunks=int(data.npartitions),
        uncompressed_bytes=uncompressed,
        bytes_to_read=int(stored),
        n_tasks=count_tasks(arrays),
        threads_per_worker=threads or default_threads(),
        per_task_bytes=copies * chunk_bytes + min(stored_per_chunk, chunk_bytes),
        resident_bytes=resident_values * 8 * samples,
        notes=notes,
    )


def plan_pairs(
    source: PathLike | Location,
    *,
    threads: int | None = None,
    storage_options: StorageOptions = None,
    **options: Any,
) -> CostPlan:
    """The cost plan of ``memoxr pairs``: only chunks holding a train row at or above ``min_mem`` are read.

    ``options`` are :func:`memoxr.pairs`'s (``min_infl``, ``min_mem``, ``top_k_per_test``, ``full``...).
    The memorization and index arrays are read (small, needed to know which chunks to read);
    the influence is not. A task holds its chunk as read (counted as 2x decoded plus stored). The pairs
    found are not counted: how many there are is known only once the chunks are read, and a note says so.

    Examples
    --------
    >>> import memoxr
    >>> plan = plan_pairs(memoxr.sample_path(), min_mem=0.5)
    >>> plan.command, plan.n_chunks, plan.notes[0]
    ('pairs', 1, '1 of 1 chunks hold a train row with memorization >= 0.5; only those are read')
    """
    from .pairs import plan_search

    location = Location.of(source, storage_options)
    path = location.path
    search = plan_search(location, **options)
    data = search.influence
    variable = "influence_full" if options.get("full") else "influence"
    itemsize = data.dtype.itemsize
    chunk_shape = tuple(max(c) for c in data.chunks)
    chunk_bytes = math.prod(chunk_shape) * itemsize
    uncompressed = int(math.prod(data.shape) * itemsize)
    notes = [f"{len(search.wanted)} of {data.npartitions} chunks hold a train row with memorization >= "
             f"{search.min_mem:g}; only those are read",
             "the predicted peak leaves out the pairs found, which are known only once the chunks are read"]
    stored = influence_bytes_to_read(location, variable, uncompressed, notes)
    per_chunk = stored / max(1, data.npartitions)
    return CostPlan(
        command="pairs",
        source=path,
        variable=variable,
        shape=tuple(int(n) for n in (data.shape[1:] if options.get("full") else data.shape)),
        dtype=str(data.dtype),
        chunk_shape=chunk_shape[1:] if options.get("full") else chunk_shape,
        n_chunks=len(search.wanted),
        uncompressed_bytes=uncompressed,
        bytes_to_read=int(per_chunk * len(search.wanted)),
        n_tasks=count_tasks(search.wanted) if search.wanted else 0,
        threads_per_worker=threads or default_threads(),
        per_task_bytes=DECODED_COPIES * chunk_bytes + min(math.ceil(per_chunk), chunk_bytes),
        resident_bytes=int(search.tr_mem.nbytes + search.tr_labels.nbytes + search.tt_labels.nbytes),
        notes=notes,
    )
