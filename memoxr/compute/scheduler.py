"""Which dask scheduler runs memoxr's computations: threads by default, a cluster on request."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dask

from .._optional import require
from ..errors import MemoxrInputError

if TYPE_CHECKING:
    import dask.array as da

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


def falls_back_to_default_scheduler() -> bool:
    """Whether dask, choosing a scheduler now, would fall back to a collection's own default.

    True when no scheduler is configured and distributed is not imported, so no client exists
    to be found; dask would still import distributed (0.1-0.2 s, once, when installed) to look.

    >>> with dask.config.set(scheduler="synchronous"):
    ...     falls_back_to_default_scheduler()
    False
    """
    configured = dask.config.get("scheduler", None) is not None or dask.config.get("get", None) is not None
    return not configured and "distributed" not in sys.modules


def scheduler_without_client(collections: Sequence[Any]) -> Any | None:
    """The scheduler dask would choose for ``collections`` when no distributed client can exist, else None.

    Unless a scheduler is configured, dask looks for a default client on every ``dask.compute``,
    importing distributed to do so. When :func:`falls_back_to_default_scheduler`, dask then takes
    the collections' own default scheduler: named here, so the lookup is skipped. None (dask
    chooses, as usual) otherwise, or when the collections' defaults differ.

    >>> import dask.array as da
    >>> with dask.config.set(scheduler="synchronous"):  # configured: dask's own choice
    ...     scheduler_without_client([da.ones(2)]) is None
    True
    """
    if not falls_back_to_default_scheduler():
        return None
    defaults = {collection.__dask_scheduler__ for collection in collections}
    return defaults.pop() if len(defaults) == 1 else None


def rechunk(x: da.Array, chunks: Any) -> Any:  # Any, as dask types Array.rechunk
    """``x.rechunk(chunks)`` by the method dask would choose, without importing distributed to choose it.

    Unless a method is configured, dask asks a default client, before every rechunk, whether to
    rechunk peer to peer, importing distributed (0.1-0.2 s, once, when installed) to do so. With
    distributed not imported there is no client, and dask's answer is ``"tasks"``: given here, so
    the lookup is skipped.

    >>> import dask.array as da
    >>> rechunk(da.arange(6, chunks=2), 3).chunks
    ((3, 3),)
    """
    lookup = "distributed" in sys.modules or dask.config.get("array.rechunk.method", None) is not None
    return x.rechunk(chunks, method=None if lookup else "tasks")


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
