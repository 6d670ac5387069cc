"""The keywords every public reducing function of :mod:`memoxr.dynamics` shares, resolved once.

- ``skipna`` (``None``, ``True`` or ``False``): ``True`` leaves missing values
  (NaN) out of every reduction; ``False`` lets them propagate; ``None`` (the
  default) propagates NaN along ``epoch`` (a missing epoch must not silently
  lower a sum) and leaves samples with a NaN score out of the metrics of
  :func:`~memoxr.dynamics.evaluate` (``n`` says how many were used).
- ``keep_attrs`` (``None``, ``True`` or ``False``): ``True`` keeps the input's
  attributes (the result's own, such as ``direction``, win); ``None`` follows
  ``xarray.set_options(keep_attrs=...)``, which drops them by default.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from ..errors import MemoxrInputError


def epoch_skipna(skipna: bool | None) -> bool:
    """Whether NaN epochs are skipped (``None`` means no: NaN propagates along ``epoch``).

    Examples
    --------
    >>> epoch_skipna(None), epoch_skipna(True), epoch_skipna(False)
    (False, True, False)
    >>> epoch_skipna("yes")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: skipna: expected True, False or None; received 'yes'
    """
    _check_flag(skipna, "skipna")
    return bool(skipna)


def sample_skipna(skipna: bool | None) -> bool:
    """Whether samples with a NaN score are left out of metrics (``None`` means yes).

    Examples
    --------
    >>> sample_skipna(None), sample_skipna(True), sample_skipna(False)
    (True, True, False)
    """
    _check_flag(skipna, "skipna")
    return True if skipna is None else skipna


def resolve_keep_attrs(keep_attrs: bool | None) -> bool:
    """``keep_attrs``, with ``None`` meaning xarray's global option (False unless set to True).

    Examples
    --------
    >>> import xarray as xr
    >>> resolve_keep_attrs(None), resolve_keep_attrs(True)
    (False, True)
    >>> with xr.set_options(keep_attrs=True):
    ...     resolve_keep_attrs(None), resolve_keep_attrs(False)
    (True, False)
    """
    _check_flag(keep_attrs, "keep_attrs")
    if keep_attrs is None:
        return xr.get_options()["keep_attrs"] is True
    return keep_attrs


def _check_flag(value: Any, argument: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise MemoxrInputError(f"{argument}: expected True, False or None; received {value!r}")


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
