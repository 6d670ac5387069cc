"""Progress on long work, and the one place memoxr triggers dask computations."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import dask
import xarray as xr
from dask.diagnostics import ProgressBar

from .scheduler import current_client


def distributed_progress(futures: Any) -> None:
    from distributed import progress as show

    show(futures, notebook=False)


@contextlib.contextmanager
def progress(show: bool = True, *, minimum: float = 0.5) -> Iterator[None]:
    """Show a progress bar for dask computations run inside the block.

    Only work that lasts longer than ``minimum`` seconds draws a bar.
    """
    if not show:
        yield
        return
    with ProgressBar(minimum=minimum, out=sys.stderr, dt=0.2):
        yield


def _dask_variables(obj: xr.Dataset | xr.DataArray) -> list[xr.Variable]:
    if isinstance(obj, xr.Dataset):
        variables = list(obj.variables.values())
    else:
        variables = [obj.variable, *obj.coords.variables.values()]
    return [var for var in variables if dask.is_dask_collection(var.data)]


def compute(*objs: Any, show_progress: bool = False) -> tuple[Any, ...]:
    """Compute xarray objects (and other dask collections) together, in one dask pass.

    Shared inputs, such as the influence chunks behind several scores, are read
    once. xarray objects are handed to dask as their variables' arrays, the way
    ``Dataset.compute`` does: dask 2026.8 mis-optimizes a whole Dataset passed
    as one collection when it holds both an array and an expression on it
    ("Missing dependency").
    """
    arrays: list[Any] = []
    for obj in objs:
        if isinstance(obj, xr.Dataset | xr.DataArray):
            arrays.extend(var.data for var in _dask_variables(obj))
        elif dask.is_dask_collection(obj):
            arrays.append(obj)
    client = current_client()
    if client is not None:
        # On a cluster: distributed's own progress, on stderr like dask's bar.
        futures = client.compute(arrays)
        if show_progress:
            with contextlib.redirect_stdout(sys.stderr):
                distributed_progress(futures)
        values = iter(client.gather(futures))
    else:
        with progress(show_progress):
            values = iter(dask.compute(*arrays))
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
