"""Which dask scheduler runs memoxr's computations: threads by default, a cluster on request."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import dask

from .._optional import require
from ..errors import MemoxrInputError

#: Environment variable naming the scheduler when ``--scheduler`` is not given.
SCHEDULER_ENV = "MEMOXR_SCHEDULER"
LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def current_client() -> Any | None:
    """The ``distributed`` client dask would use now, if any.

    >>> with use_scheduler("threads"):
    ...     current_client() is None
    True
    """
    # A default Client sets dask's scheduler to "dask.distributed"; anything else is local.
    if "distributed" not in sys.modules or dask.config.get("scheduler", None) != "dask.distributed":
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        return None


def _local_scheduler(name: str) -> Any:
    if name == "threads":
        import dask.threaded

        return dask.threaded.get
    if name == "processes":
        import dask.multiprocessing

        return dask.multiprocessing.get
    import dask.local

    return dask.local.get_sync


@contextlib.contextmanager
def use_scheduler(address: str | None = None, *, timeout: str = "10s") -> Iterator[Any | None]:
    """Run the block's dask work on ``address``.

    ``address`` is ``"threads"`` (the default), ``"processes"``, ``"synchronous"``,
    or the address of a ``distributed`` scheduler (``tcp://host:8786``), for
    instance one started by dask-jobqueue's ``SLURMCluster``. When ``None``, the
    environment variable ``MEMOXR_SCHEDULER`` is read, then ``"threads"``.
    Yields the ``distributed.Client`` for a cluster, else ``None``. The CLI
    enters it once per command (``--scheduler``); in Python, wrap the work::

        with use_scheduler("tcp://scheduler:8786"), memoxr.progress():
            memoxr.estimate.write_estimate("trials.zarr", "estimate.zarr")

    Examples
    --------
    >>> import dask.array as da
    >>> from memoxr.compute.progress import compute
    >>> with use_scheduler("synchronous") as client:
    ...     client, int(compute(da.arange(4, chunks=2).sum())[0])
    (None, 6)
    """
    address = address or os.environ.get(SCHEDULER_ENV) or "threads"
    if address in LOCAL_SCHEDULERS:
        # dask imports distributed (0.1-0.2 s) to resolve a scheduler *name*, and to look for a
        # client before every rechunk; the function and the rechunk method skip both.
        with dask.config.set({"scheduler": _local_scheduler(address), "array.rechunk.method": "tasks"}):
            yield None
        return
    Client = require("distributed", "distributed").Client

    try:
        client = Client(address, timeout=timeout, set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise MemoxrInputError(
            f"scheduler {address!r}: expected one of {list(LOCAL_SCHEDULERS)} or the address of a running "
            f"dask scheduler (tcp://host:port); could not connect: {exc}"
        ) from exc
    with client:
        yield client
