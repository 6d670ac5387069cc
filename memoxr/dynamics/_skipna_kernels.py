"""NaN-aware numpy kernels for the order-dependent proxies. No xarray, no dask.

The kernels of :mod:`memoxr.dynamics._kernels` assume a whole trajectory.
These handle missing epochs (NaN) either way: ``skipna=True`` leaves them out
(a sample with no value at all gets NaN), ``skipna=False`` makes the sample's
result NaN. Every kernel reduces ``axis`` and returns float64.
"""

from __future__ import annotations

import numpy as np

from . import _kernels


def _valid(x: np.ndarray) -> np.ndarray:
    return ~np.isnan(x) if x.dtype.kind == "f" else np.ones(x.shape, dtype=bool)


def _with_nan(result: np.ndarray, x: np.ndarray, skipna: bool) -> np.ndarray:
    """``result`` (epoch axis last reduced) made NaN where the sample has no value (skipna) or any NaN."""
    valid = _valid(x)
    missing = ~valid.any(axis=-1) if skipna else ~valid.all(axis=-1)
    return np.where(missing, np.nan, result)


def last_valid(x: np.ndarray, axis: int = -1, skipna: bool = False) -> np.ndarray:
    """The value at the last epoch, or with ``skipna`` at the last epoch holding a value.

    >>> last_valid(np.array([[1.0, np.nan], [2.0, 3.0]]), skipna=True).tolist()
    [1.0, 3.0]
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    if not skipna:
        return x[..., -1]
    valid = _valid(x)
    position = x.shape[-1] - 1 - np.argmax(valid[..., ::-1], axis=-1)
    out = np.take_along_axis(x, position[..., None], axis=-1)[..., 0]
    return np.where(valid.any(axis=-1), out, np.nan)


def learning_time(g: np.ndarray, tau: np.ndarray | float, axis: int = -1, skipna: bool = False) -> np.ndarray:
    """Learning time (see :func:`memoxr.dynamics._kernels.learning_time`), missing epochs left out with ``skipna``.

    With ``skipna`` the running mean runs over the recorded epochs only, and the
    fraction is over them: ``1 - #{recorded t : m_t < tau} / #recorded``.

    >>> learning_time(np.array([[3.0, np.nan, 1.0]]), 2.0, skipna=True).tolist()
    [1.0]
    """
    g = np.moveaxis(np.asarray(g, dtype=np.float64), axis, -1)
    if not skipna:
        return _kernels.learning_time(g, tau, axis=-1)
    valid = _valid(g)
    count = np.cumsum(valid, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        running = np.cumsum(np.where(valid, g, 0.0), axis=-1) / count
        below = (running < np.asarray(tau, dtype=np.float64)[..., None]) & valid
        out = 1.0 - below.sum(axis=-1) / count[..., -1]
    return _with_nan(out, g, skipna)


def threshold_learning_time(correct: np.ndarray, axis: int = -1, skipna: bool = False) -> np.ndarray:
    """First epoch position from which every recorded epoch is correct (``T`` if wrong at the last).

    NaN is a missing epoch: left out with ``skipna``, else the result is NaN.

    >>> threshold_learning_time(np.array([[0.0, 1.0, np.nan, 1.0]]), skipna=True).tolist()
    [1.0]
    """
    c = np.moveaxis(np.asarray(correct), axis, -1)
    if c.dtype.kind != "f":
        return _kernels.threshold_learning_time(c, axis=-1)
    valid = _valid(c)
    wrong = valid & (c == 0)
    n = c.shape[-1]
    last_wrong = n - 1 - np.argmax(wrong[..., ::-1], axis=-1)
    out = np.where(wrong.any(axis=-1), last_wrong + 1, 0).astype(np.float64)
    return _with_nan(out, c, skipna)


def forgetting_events(correct: np.ndarray, axis: int = -1, skipna: bool = False) -> np.ndarray:
    """Correct -> incorrect transitions between consecutive recorded epochs.

    NaN is a missing epoch: with ``skipna`` the epochs around it are compared
    with each other, else the result is NaN.

    >>> forgetting_events(np.array([[1.0, np.nan, 0.0, 1.0, 0.0]]), skipna=True).tolist()
    [2.0]
    """
    c = np.moveaxis(np.asarray(correct), axis, -1)
    if c.dtype.kind != "f":
        return _kernels.forgetting_events(c, axis=-1)
    valid = _valid(c)
    # Carry the last recorded value forward over missing epochs, then count transitions.
    position = np.where(valid, np.arange(c.shape[-1]), 0)
    np.maximum.accumulate(position, axis=-1, out=position)
    filled = np.take_along_axis(np.where(valid, c, 0.0), position, axis=-1) != 0
    seen = np.cumsum(valid, axis=-1) > 0
    forgot = filled[..., :-1] & ~filled[..., 1:] & seen[..., :-1] & valid[..., 1:]
    return _with_nan(forgot.sum(axis=-1).astype(np.float64), c, skipna)
