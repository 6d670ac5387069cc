"""One BLAS thread per dask thread while memoxr computes matrix products with the threaded scheduler.

Dask's threaded scheduler runs one task per core; OpenBLAS would start its own
threads, one per core, inside each task, so two cores would carry four busy
threads. :func:`blas_threads_for_dask` sets the BLAS libraries to one thread
for the whole process, once, around a computation (not per task: BLAS thread
counts are process-wide state, and context managers entered in several worker
threads at once would race on it), and restores the previous count after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dask
import dask.base
import dask.threaded

from .scheduler import falls_back_to_default_scheduler, scheduler_without_client


def threaded_scheduler(collections: list[Any] | None = None) -> bool:
    """True when dask would run ``collections`` (or dask arrays) with its local thread pool.

    Examples
    --------
    >>> import dask
    >>> threaded_scheduler()
    True
    >>> with dask.config.set(scheduler="synchronous"):
    ...     threaded_scheduler()
    False
    """
    if not collections and falls_back_to_default_scheduler():
        return True  # dask arrays default to threads (no client to look for: scheduler.py)
    scheduler = scheduler_without_client(collections or []) or dask.base.get_scheduler(collections=collections)
    if scheduler is None:  # nothing configured and no collection: dask arrays default to threads
        return True
    return scheduler is dask.threaded.get


@contextlib.contextmanager
def blas_threads_for_dask(collections: list[Any] | None = None) -> Iterator[None]:
    """Within the block, BLAS runs one thread per call when dask's threaded scheduler is in use.

    Enter it once, in the thread that starts the computation. With another
    scheduler (a ``distributed`` cluster, processes, synchronous) nothing changes.

    Examples
    --------
    >>> import dask
    >>> from threadpoolctl import threadpool_info, threadpool_limits
    >>> def blas_threads():
    ...     return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    >>> with threadpool_limits(limits=2, user_api="blas"):
    ...     with blas_threads_for_dask():
    ...         inside = blas_threads()
    ...     with dask.config.set(scheduler="synchronous"), blas_threads_for_dask():
    ...         synchronous = blas_threads()
    ...     after = blas_threads()
    >>> inside, synchronous, after
    ({1}, {2}, {2})
    """
    if not threaded_scheduler(collections):
        yield
        return
    from threadpoolctl import threadpool_limits  # comes with scikit-learn; imported only when used

    with threadpool_limits(limits=1, user_api="blas"):
        yield
