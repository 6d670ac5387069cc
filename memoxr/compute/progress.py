"""Progress on long work, and the one place memoxr triggers dask computations.

Two contexts decide how computations run, entered once (the CLI does it for
every command): :func:`progress` draws a bar for each computation inside it,
and :func:`memoxr.scheduler.use_scheduler` picks the scheduler. Every
computation of memoxr goes through :func:`compute` (a test scans the source
for any other ``.compute()``, ``dask.compute`` or ``.persist()``).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import sys
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import dask
from dask.diagnostics import ProgressBar

from ..errors import MemoxrInputError, connection_failure, damaged_chunk
from . import collector
from .scheduler import current_client, scheduler_without_client

if TYPE_CHECKING:
    import xarray as xr

# The ``minimum`` of the progress context entered in this thread, None outside one.
_ACTIVE: contextvars.ContextVar[float | None] = contextvars.ContextVar("memoxr_progress", default=None)


def distributed_progress(futures: Any) -> None:
    """distributed's text progress bar for ``futures``, until they are done (a cluster's :func:`progress`)."""
    from distributed import progress as show

    show(futures, notebook=False)


@contextlib.contextmanager
def progress(show: bool = True, *, minimum: float = 0.5) -> Iterator[None]:
    """Show a progress bar on stderr for every dask computation run inside the block.

    Local schedulers draw dask's :class:`~dask.diagnostics.ProgressBar`; on a
    ``distributed`` cluster (:func:`memoxr.scheduler.use_scheduler`) each
    computation of :func:`compute` draws distributed's progress bar. Only work
    lasting longer than ``minimum`` seconds draws a local bar. Nested blocks
    draw one bar, the outermost's; ``show=False`` adds nothing (it does not
    silence an enclosing block), so ``progress(not quiet)`` is the CLI's form.

    Examples
    --------
    >>> import dask.array as da
    >>> from memoxr.compute.progress import compute, progress, progress_shown
    >>> with progress():
    ...     progress_shown(), int(compute(da.ones(4).sum())[0])
    (True, 4)
    >>> progress_shown()
    False
    """
    if not show or _ACTIVE.get() is not None:
        yield
        return
    token = _ACTIVE.set(minimum)
    try:
        with ProgressBar(minimum=minimum, out=sys.stderr, dt=0.2):
            yield
    finally:
        _ACTIVE.reset(token)


def progress_shown() -> bool:
    """Whether computations started here are inside a :func:`progress` block.

    >>> progress_shown()
    False
    """
    return _ACTIVE.get() is not None


def deprecated_show_progress(show_progress: bool | None, where: str) -> contextlib.AbstractContextManager[None]:
    """The progress context the deprecated ``show_progress`` argument of ``where`` asks for.

    ``None`` (not given) enters nothing; ``True``/``False`` warn (use
    ``with memoxr.progress(): ...``) and behave as before.

    >>> with deprecated_show_progress(None, "estimate"):
    ...     progress_shown()
    False
    """
    if show_progress is None:
        return contextlib.nullcontext()
    warnings.warn(
        f"{where}: show_progress is deprecated; wrap the call in `with memoxr.progress():` instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return progress(bool(show_progress))


def _dask_variables(obj: xr.Dataset | xr.DataArray) -> list[xr.Variable]:
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        variables = list(obj.variables.values())
    else:
        variables = [obj.variable, *obj.coords.variables.values()]
    return [var for var in variables if dask.is_dask_collection(var.data)]


def compute(*objs: Any) -> tuple[Any, ...]:
    """Compute xarray objects (and other dask collections) together, in one dask pass.

    The one gateway of memoxr's computations: on the scheduler chosen by
    :func:`memoxr.scheduler.use_scheduler`, with a bar inside a :func:`progress`
    block. Shared inputs,
    such as the influence chunks behind several scores, are read once.
    xarray objects are handed to dask as their variables' arrays, the way
    ``Dataset.compute`` does: dask 2026.8 mis-optimizes a whole Dataset passed
    as one collection when it holds both an array and an expression on it
    ("Missing dependency").

    Examples
    --------
    >>> import dask.array as da, xarray as xr
    >>> x = xr.DataArray(da.arange(4, chunks=2), dims="i")
    >>> total, same = compute(x.sum(), x)
    >>> int(total), same.values.tolist()
    (6, [0, 1, 2, 3])
    """
    import xarray as xr  # here, not at import: a command's early checks run before xarray loads

    collector.resume()  # the command's start-up is over (compute/collector.py)
    arrays: list[Any] = []
    for obj in objs:
        if isinstance(obj, xr.Dataset | xr.DataArray):
            arrays.extend(var.data for var in _dask_variables(obj))
        elif dask.is_dask_collection(obj):
            arrays.append(obj)
    try:
        values = _compute_arrays(arrays)
    except MemoxrInputError:
        raise
    except Exception as exc:
        failure = connection_failure(exc)
        if failure is not None:  # object storage unreachable mid-read: not a damaged store
            raise MemoxrInputError(failure) from exc
        damaged = describe_undecodable(arrays, exc)
        if damaged is None:
            raise
        raise MemoxrInputError(damaged) from exc
    out: list[Any] = []
    for obj in objs:
        if isinstance(obj, xr.Dataset | xr.DataArray):
            new = obj.copy(deep=False)
            for var in _dask_variables(new):
                var.data = next(values)
            out.append(new)
        else:
            out.append(next(values) if dask.is_dask_collection(obj) else obj)
    return tuple(out)


def _compute_arrays(arrays: list[Any]) -> Iterator[Any]:
    client = current_client()
    if client is not None:
        # On a cluster: distributed's own progress, on stderr like dask's bar.
        futures = client.compute(arrays)
        if progress_shown():
            with contextlib.redirect_stdout(sys.stderr):
                distributed_progress(futures)
        return iter(client.gather(futures))
    # A local scheduler: the progress block's ProgressBar draws.
    return iter(dask.compute(*arrays, scheduler=scheduler_without_client(arrays)))


def _raised_in_codec(tb: TracebackType | None) -> bool:
    """Whether a traceback passes through Zarr's or numcodecs' decoding."""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if "numcodecs" in name or "/zarr/codecs/" in name or "codec_pipeline" in name:
            return True
        tb = tb.tb_next
    return False


def _zarr_sources(arrays: list[Any]) -> list[Any]:
    """The Zarr arrays behind dask arrays opened by xarray (found in their graphs)."""
    from dask._task_spec import DataNode
    from xarray.backends.zarr import ZarrArrayWrapper

    found: dict[int, Any] = {}
    for array in arrays:
        if not dask.is_dask_collection(array):
            continue
        for value in dict(array.__dask_graph__()).values():
            obj = value.value if isinstance(value, DataNode) else value
            for _ in range(8):  # xarray nests a few lazy-indexing adapters around the wrapper
                if isinstance(obj, ZarrArrayWrapper):
                    found[id(obj)] = obj._array
                    break
                obj = getattr(obj, "array", None)
                if obj is None:
                    break
    return list(found.values())


def _first_bad_chunk(zarray: Any) -> str | None:
    """Read each chunk of a Zarr array until one fails; describe it."""
    chunks = zarray.chunks
    grid = [range(-(-n // c)) for n, c in zip(zarray.shape, chunks, strict=True)]
    for coords in itertools.product(*grid):
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunks, strict=True))
        try:
            zarray[region]
        except Exception as err:
            if connection_failure(err) is not None:  # a read that failed to arrive, not a bad chunk
                return None
            shards = zarray.shards or chunks
            key = zarray.metadata.encode_chunk_key(tuple(i * c // s for i, c, s in zip(coords, chunks, shards, strict=True)))
            store = str(zarray.store_path)[: -len(zarray.path)].rstrip("/")
            return damaged_chunk(store, zarray.path, coords, key, f"{type(err).__name__}: {err}")
    return None


def describe_undecodable(arrays: list[Any], exc: BaseException) -> str | None:
    """Name the variable and chunk of a Zarr store that cannot be decoded, if ``exc`` came from one.

    Only run after a failure, and only when the error came from a codec: each
    chunk of the arrays involved is read again until the damaged one is found.

    >>> describe_undecodable([], ValueError("not from a codec")) is None
    True
    """
    if not _raised_in_codec(exc.__traceback__):
        return None
    for zarray in _zarr_sources(arrays):
        if (found := _first_bad_chunk(zarray)) is not None:
            return found
    return None


def describe_undecodable_store(path: Any, exc: BaseException) -> str | None:
    """:func:`describe_undecodable` for every array of the Zarr store at ``path`` (for code that
    computes outside :func:`compute`). ``path`` may be a :class:`memoxr.io.location.Location`
    (read by its attributes: this layer sits below io), whose options reach a URL.

    >>> describe_undecodable_store("no-such-store", ValueError("not from a codec")) is None
    True
    """
    import zarr

    if not _raised_in_codec(exc.__traceback__) or connection_failure(exc) is not None:
        return None
    try:
        options = dict(path.storage_options) if getattr(path, "is_url", False) and path.storage_options else None
        group = zarr.open_group(str(path), mode="r", storage_options=options)
    except Exception:  # not a store: the failure came from elsewhere
        return None
    for _, zarray in group.arrays():
        if (found := _first_bad_chunk(zarray)) is not None:
            return found
    return None


@contextlib.contextmanager
def damaged_store_as_input_error(path: Any) -> Iterator[None]:
    """Run the block; a codec failure in the Zarr store at ``path`` becomes one
    :class:`MemoxrInputError` naming its damaged chunk (see :func:`describe_undecodable_store`).

    Other errors pass through as they are:

    >>> with damaged_store_as_input_error("trials.zarr"):
    ...     int("7")
    7
    """
    try:
        yield
    except MemoxrInputError:
        raise
    except Exception as exc:
        damaged = describe_undecodable_store(path, exc)
        if damaged is None:
            raise
        raise MemoxrInputError(damaged) from exc
