"""Pure numpy kernels for training-dynamics proxies. No xarray, no dask.

Every kernel reduces the epoch axis given by ``axis`` of arrays recorded as
``(..., epoch, ...)``; the epoch axis is assumed to be in training order.
Results are float64 whatever the input dtype.
"""

from __future__ import annotations

import numpy as np

from ..compute.reduction import Reduction


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def epoch_sum(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``sum_t x_t`` along ``axis`` in float64; NaN propagates.

    The Cumulative Sample Loss when ``x`` is the loss. Associative, so it is
    also the chunk and aggregate step of the dask reduction.

    Examples
    --------
    >>> epoch_sum(np.array([[1.0, 2.0], [0.5, np.nan]]), axis=0).tolist()
    [1.5, nan]
    """
    return np.sum(_f64(x), axis=axis, keepdims=keepdims)


def _partial_sum(x: np.ndarray, axis: int) -> np.ndarray:
    return epoch_sum(x, axis=axis)[..., None]


def _merge_sums(parts: np.ndarray) -> np.ndarray:
    return np.sum(parts, axis=-2)


#: :func:`epoch_sum` as one declared reduction (see :mod:`memoxr.compute.reduction`): partial
#: sums per chunk of epochs, summed across chunks.
EPOCH_SUM = Reduction(name="epoch-sum", chunk=_partial_sum, combine=_merge_sums, finalize=np.asarray)


def epoch_mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``(1 / T) sum_t x_t`` along ``axis`` (``T`` epochs); NaN propagates.

    Examples
    --------
    >>> epoch_mean(np.array([[1.0, 2.0], [3.0, 6.0]]), axis=0).tolist()
    [2.0, 4.0]
    """
    return np.mean(_f64(x), axis=axis)


def epoch_std(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Population std ``sqrt((1 / T) sum_t (x_t - mean)^2)`` along ``axis``.

    Examples
    --------
    >>> epoch_std(np.array([[1.0, 2.0], [3.0, 6.0]]), axis=0).tolist()
    [1.0, 2.0]
    """
    return np.std(_f64(x), axis=axis)


def last(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The value at the last epoch along ``axis``, as float64.

    Examples
    --------
    >>> last(np.array([[1, 2], [3, 4]]), axis=0).tolist()
    [3.0, 4.0]
    """
    return np.take(_f64(x), -1, axis=axis)


def learning_time(g: np.ndarray, tau: np.ndarray | float, axis: int = -1) -> np.ndarray:
    """``1 - (1 / T) #{t : mean_{s <= t} g_s < tau}`` along ``axis``.

    ``g`` is a per-epoch gradient norm; its running (cumulative) mean over
    epochs is compared with the threshold ``tau`` (broadcast against the result,
    i.e. shaped like ``g`` without ``axis``). A sample whose running mean stays
    above ``tau`` for long is learned late (value near 1).

    Examples
    --------
    >>> learning_time(np.array([[4.0, 0.0, 0.0, 0.0]]), 1.5).tolist()  # running means 4, 2, 1.33, 1
    [0.5]
    """
    g = np.moveaxis(_f64(g), axis, -1)
    steps = np.arange(1, g.shape[-1] + 1, dtype=np.float64)
    running = np.cumsum(g, axis=-1) / steps
    below = running < np.asarray(tau, dtype=np.float64)[..., None]
    out = 1.0 - below.mean(axis=-1)
    return np.where(np.isnan(running).any(axis=-1), np.nan, out)


def threshold_learning_time(correct: np.ndarray, axis: int = -1) -> np.ndarray:
    """First epoch position from which the sample stays correct, along ``axis``.

    ``min {t : correct_s for every s >= t}`` counted from 0, and ``T`` (the
    number of epochs) for a sample that is wrong at the last epoch. ``correct``
    is boolean (any nonzero value counts as correct).

    Examples
    --------
    >>> threshold_learning_time(np.array([[1, 1, 1], [0, 0, 1], [1, 0, 1], [1, 1, 0]]), axis=1).tolist()
    [0.0, 2.0, 2.0, 3.0]
    """
    c = np.moveaxis(np.asarray(correct) != 0, axis, -1)
    n = c.shape[-1]
    # Length of the trailing run of correct epochs: reverse, find the first wrong.
    wrong_from_end = ~c[..., ::-1]
    trailing = np.where(wrong_from_end.any(axis=-1), np.argmax(wrong_from_end, axis=-1), n)
    return (n - trailing).astype(np.float64)


def forgetting_events(correct: np.ndarray, axis: int = -1) -> np.ndarray:
    """Number of correct -> incorrect transitions between consecutive epochs.

    ``sum_{t >= 1} [correct_{t-1} and not correct_t]`` along ``axis``
    (Toneva et al., 2019).

    Examples
    --------
    >>> forgetting_events(np.array([[1, 0, 1, 0], [0, 1, 1, 1]])).tolist()
    [2.0, 0.0]
    """
    c = np.moveaxis(np.asarray(correct) != 0, axis, -1)
    return (c[..., :-1] & ~c[..., 1:]).sum(axis=-1).astype(np.float64)
