"""Helpers every proxy shares: the dim check and the result's name and attributes.

``skipna`` and ``keep_attrs`` follow the one rule of :mod:`memoxr.compute.manners`
(its resolvers are re-exported here under their earlier names: :func:`epoch_skipna`
is :func:`~memoxr.compute.manners.reduce_skipna`, :func:`sample_skipna` is
:func:`~memoxr.compute.manners.rank_skipna`).
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from ..compute.manners import rank_skipna as sample_skipna
from ..compute.manners import reduce_skipna as epoch_skipna
from ..compute.manners import resolve_keep_attrs
from ..errors import MemoxrInputError

__all__ = ["epoch_skipna", "finish", "resolve_keep_attrs", "sample_skipna", "validate_dim"]


def validate_dim(x: Any, dim: str, argument: str) -> None:
    """Raise unless ``x`` is a DataArray with a non-empty ``dim`` (found by name, in any position).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> loss = xr.DataArray(np.zeros((3, 2)), dims=("sample", "epoch"))
    >>> validate_dim(loss, "epoch", "loss")  # any position: passes
    >>> validate_dim(loss, "step", "loss")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: loss: dim 'step' missing; expected it among dims, received ('sample', 'epoch')
    >>> validate_dim(loss[:, :0], "epoch", "loss")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: loss: dim 'epoch' is empty; expected at least one epoch
    """
    if not isinstance(x, xr.DataArray):
        raise MemoxrInputError(f"{argument} must be an xarray.DataArray; received {type(x).__name__}")
    if dim not in x.dims:
        raise MemoxrInputError(f"{argument}: dim {dim!r} missing; expected it among dims, received {x.dims}")
    if x.sizes[dim] == 0:
        raise MemoxrInputError(f"{argument}: dim {dim!r} is empty; expected at least one epoch")


def finish(
    out: xr.DataArray, source: xr.DataArray, name: str, attrs: dict[str, Any], keep_attrs: bool | None
) -> xr.DataArray:
    """Name the proxy and set its attributes (the input's too with ``keep_attrs``).

    Examples
    --------
    >>> import xarray as xr
    >>> loss = xr.DataArray([[0.5, 0.1]], dims=("epoch", "sample"), attrs={"units": "nats"})
    >>> csl = finish(loss.sum("epoch"), loss, "csl", {"direction": 1}, keep_attrs=None)
    >>> csl.name, csl.attrs
    ('csl', {'proxy': 'csl', 'direction': 1})
    >>> finish(loss.sum("epoch"), loss, "csl", {"direction": 1}, keep_attrs=True).attrs
    {'units': 'nats', 'proxy': 'csl', 'direction': 1}
    """
    out = out.rename(name)
    out.attrs = {**(source.attrs if resolve_keep_attrs(keep_attrs) else {}), "proxy": name, **attrs}
    return out
