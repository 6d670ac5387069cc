"""Reductions declared once, as data, and the one helper that runs them.

A kernel module declares each chunked reduction as a :class:`Reduction`
(the way flox declares its aggregations): a ``chunk`` step that turns a block
into a small partial record, a ``combine`` step that merges partial records,
and a ``finalize`` step that turns the merged record into the result.
:func:`apply_reduction` runs a declaration on a numpy array directly, or builds
one ``dask.array.reduction`` from it (each input chunk is read once);
:func:`reduce_dim` does the same for a DataArray, by dim name.

The declaration needs numpy only, so pure kernel modules can export theirs;
dask and xarray are imported by the helpers, when they run.

Records travel on a trailing axis: ``chunk(x, axis)`` returns ``x`` without
``axis`` plus a trailing axis of ``partial_size`` fields; ``combine(parts)``
merges ``(..., m, partial_size)`` into ``(..., partial_size)``;
``finalize(record)`` returns ``(..., len(fields))``, or ``(..., 1)`` when
``fields`` is empty (a plain reduction whose result drops the axis).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Reduction:
    """A chunked reduction along one axis, declared as chunk / combine / finalize.

    Examples
    --------
    >>> total = Reduction(
    ...     name="total",
    ...     chunk=lambda x, axis: np.sum(x, axis=axis)[..., None],
    ...     combine=lambda parts: parts.sum(axis=-2),
    ...     finalize=lambda record: record,
    ... )
    >>> apply_reduction(np.arange(6.0).reshape(2, 3), total, axis=1).tolist()
    [3.0, 12.0]
    """

    #: Short name; the dask layer is named ``memoxr-<name>``.
    name: str
    #: ``(block, axis) -> (..., partial_size)``: the partial record of one block.
    chunk: Callable[[np.ndarray, int], np.ndarray]
    #: ``(..., m, partial_size) -> (..., partial_size)``: merge m partial records.
    combine: Callable[[np.ndarray], np.ndarray]
    #: ``(..., partial_size) -> (..., len(fields) or 1)``: the result from the merged record.
    finalize: Callable[[np.ndarray], np.ndarray]
    #: Fields of the result along a trailing axis; empty: the reduced axis is dropped.
    fields: tuple[str, ...] = ()
    #: Length of a partial record.
    partial_size: int = 1
    dtype: Any = np.float64

    @property
    def output_size(self) -> int:
        """Length of the finalized record (1 for a plain reduction).

        Examples
        --------
        >>> from memoxr.influence import kernels
        >>> kernels.ROW_STATISTICS.output_size
        4
        """
        return max(1, len(self.fields))


def apply_reduction(data: Any, reduction: Reduction, *, axis: int) -> Any:
    """Run ``reduction`` along ``axis`` of a numpy or dask array.

    The result has ``axis`` dropped and, when ``reduction.fields`` is not
    empty, a trailing axis of those fields. A dask input gives one lazy
    ``dask.array.reduction`` (each chunk read once, partial records merged in a
    tree); a numpy input is reduced in one chunk step and finalized.

    Examples
    --------
    >>> from memoxr.influence import kernels as _kernels
    >>> apply_reduction(np.array([[1.0, -1.0, 3.0]]), _kernels.ROW_STATISTICS, axis=1).round(4).tolist()
    [[3.0, 1.3333, 1.0, 1.633]]
    """
    axis = axis % np.ndim(data)
    if _is_dask(data):
        result = _dask_reduction(data, reduction, axis)
    else:
        result = reduction.finalize(reduction.chunk(np.asarray(data), axis))
    return result if reduction.fields else result[..., 0]


def _is_dask(data: Any) -> bool:
    # Checked by module name so that numpy-only callers never import dask.
    return type(data).__module__.split(".")[0] == "dask"


def _dask_reduction(data: Any, reduction: Reduction, axis: int) -> Any:
    import dask.array as da

    # dask keeps the reduced axis (keepdims) with the records laid end to end along it.
    def chunk(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        (ax,) = axis
        return np.moveaxis(reduction.chunk(x, ax), -1, ax)

    def merged(x: np.ndarray, ax: int) -> np.ndarray:
        parts = np.moveaxis(x, ax, -1)
        return reduction.combine(parts.reshape(*parts.shape[:-1], -1, reduction.partial_size))

    def combine(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        (ax,) = axis
        return np.moveaxis(merged(x, ax), -1, ax)

    def aggregate(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        (ax,) = axis
        return np.moveaxis(reduction.finalize(merged(x, ax)), -1, ax)

    out = da.reduction(
        data, chunk=chunk, combine=combine, aggregate=aggregate, axis=axis, keepdims=True,
        output_size=reduction.output_size, dtype=reduction.dtype, concatenate=True,
        name=f"memoxr-{reduction.name}", meta=np.empty((0,) * data.ndim, dtype=reduction.dtype),
    )
    return da.moveaxis(out, axis, -1)


def reduce_dim(x: Any, reduction: Reduction, *, dim: str) -> dict[str, Any]:
    """Run ``reduction`` over the dim named ``dim`` of a DataArray: one DataArray per field.

    The other dims keep their order and their coordinates (those along ``dim``
    are dropped); a plain reduction gives one entry, under ``reduction.name``.

    Examples
    --------
    >>> import xarray as xr
    >>> from memoxr.dynamics import _kernels
    >>> x = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("epoch", "sample"))
    >>> reduce_dim(x, _kernels.EPOCH_SUM, dim="epoch")["epoch-sum"].values.tolist()
    [4.0, 6.0]
    """
    import xarray as xr

    data = apply_reduction(x.data, reduction, axis=x.get_axis_num(dim))
    dims = [d for d in x.dims if d != dim]
    coords = {k: v for k, v in x.coords.items() if dim not in v.dims}
    if not reduction.fields:
        return {reduction.name: xr.DataArray(data, dims=dims, coords=coords)}
    return {f: xr.DataArray(data[..., k], dims=dims, coords=coords) for k, f in enumerate(reduction.fields)}
