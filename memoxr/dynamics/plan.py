"""Cost plan of ``ingest`` (``--dry-run``): file headers read, nothing computed."""

from __future__ import annotations

import math
from typing import Any

from ..compute.plan import CostPlan, count_tasks, default_threads
from ..io.location import StorageOptions, locate, locate_each


def plan_ingest(
    variables: str | dict[str, str],
    *,
    threads: int | None = None,
    storage_options: StorageOptions = None,
    **options: Any,
) -> CostPlan:
    """The cost plan of ``memoxr ingest``: the files listed and their headers read, nothing else.

    ``options`` are :func:`memoxr.dynamics.ingest`'s (``name``, ``truth``, ``chunk_mb``...).
    A task reads the files of one chunk's epochs, stacks them into the chunk and
    compresses it: about 3x the chunk's bytes. Ground truth is loaded whole (resident).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for epoch in range(3):
    ...     np.save(folder / f"loss_epoch_{epoch}.npy", np.zeros(5, dtype="f4"))
    >>> plan = plan_ingest(str(folder / "loss_epoch_{epoch}.npy"))
    >>> plan.command, plan.shape, plan.n_chunks
    ('ingest', (3, 5), 1)
    """
    from .ingest import ingest_dataset
    from .ingest import plan_ingest as plan_files

    name = options.get("name", "loss")
    # Each pattern and file argument its own Location, resolved here once.
    patterns = locate_each(variables, storage_options)
    options["truth"] = locate_each(options.get("truth"), storage_options)
    options["sample_ids"] = locate(options.get("sample_ids"), storage_options)
    files = plan_files(patterns, name=name, expected_epochs=options.get("epochs"), npz_key=options.get("npz_key"))
    ds = ingest_dataset(patterns, **options)
    recorded = [ds[v].data for v in files.files]
    largest = max(recorded, key=lambda a: math.prod(max(c) for c in a.chunks) * a.dtype.itemsize)
    chunk_shape = tuple(max(c) for c in largest.chunks)
    chunk_bytes = math.prod(chunk_shape) * largest.dtype.itemsize
    read = 0
    for var, paths in files.files.items():
        fs = files.fs[var]
        read += sum(int(fs.size(path)) for path in paths.values())
    n_chunks = sum(a.npartitions for a in recorded)
    resident = sum(int(v.nbytes) for v in ds.data_vars.values() if v.chunks is None)
    return CostPlan(
        command="ingest",
        source=variables if isinstance(variables, str) else ", ".join(f"{k}={v}" for k, v in variables.items()),
        variable=", ".join(files.files),
        shape=tuple(int(n) for n in largest.shape),
        dtype=str(largest.dtype),
        chunk_shape=chunk_shape,
        n_chunks=n_chunks,
        uncompressed_bytes=sum(int(a.nbytes) for a in recorded),
        bytes_to_read=read,
        n_tasks=count_tasks(recorded) + n_chunks,
        threads_per_worker=threads or default_threads(),
        per_task_bytes=3 * chunk_bytes,
        resident_bytes=resident,
        notes=[f"{sum(len(p) for p in files.files.values())} files; dask tasks include one write per chunk"],
    )
