"""Pure numpy kernels of the Feldman–Zhang subsampling estimator. No xarray, no dask.

Trials are on axis 0 of every array (``trial`` first). The estimator is built
from sums over trials that merge by addition, so a trial axis split over several
chunks gives the same answer as the whole axis:

- ``n_in[i] = sum_t mask[t, i]`` (trials whose subset holds train sample ``i``);
- ``hit_in[i] = sum_t mask[t, i] * train_correct[t, i]`` and
  ``hit_all[i] = sum_t train_correct[t, i]``;
- ``test_in[i, j] = sum_t mask[t, i] * test_correct[t, j]`` (a matrix product,
  ``mask.T @ test_correct``) and ``test_all[j] = sum_t test_correct[t, j]``.

The finalizers then divide by the trial counts ``n_in`` and
``n_out = n_trials - n_in``:

- ``mem(i) = hit_in[i] / n_in[i] - (hit_all[i] - hit_in[i]) / n_out[i]``;
- ``infl(i, j) = test_in[i, j] / n_in[i] - (test_all[j] - test_in[i, j]) / n_out[i]``.

A train sample with ``n_in == 0`` or ``n_out == 0`` (in no trial's subset, or in
every one) has no estimate: its memorization and its influence row are NaN.
"""

from __future__ import annotations

import numpy as np

#: Products of 0/1 values are summed in float32: exact while a sum stays below 2**24 trials.
SUM_DTYPE = np.float32
MAX_EXACT_TRIALS = 2**24


def trial_sums(mask: np.ndarray, train_correct: np.ndarray) -> np.ndarray:
    """Per-sample trial sums of one chunk of trials, as a ``(3, train)`` float64 array.

    Parameters
    ----------
    mask, train_correct : array, shape ``(trial, train)``
        0/1 (or bool): sample ``i`` in trial ``t``'s subset; trial ``t``'s model
        right on sample ``i``.

    Returns
    -------
    numpy.ndarray, shape ``(3, train)``
        Rows ``n_in = sum_t mask``, ``hit_in = sum_t mask * train_correct`` and
        ``hit_all = sum_t train_correct``. Sums of chunks add up to the sums of
        the whole trial axis.

    >>> trial_sums(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [0, 1]])).tolist()
    [[2.0, 1.0], [1.0, 1.0], [1.0, 2.0]]
    """
    mask = np.asarray(mask, dtype=np.float64)
    correct = np.asarray(train_correct, dtype=np.float64)
    return np.stack([mask.sum(axis=0), (mask * correct).sum(axis=0), correct.sum(axis=0)])


def masked_products(mask: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """``sum_t mask[t, ..., i] * correct[t, ..., j]`` for one chunk of trials.

    Parameters
    ----------
    mask : array, shape ``(trial, *batch, train)``
        0/1 subset membership of the train samples.
    correct : array, shape ``(trial, *batch, test)``
        0/1 correctness on the test samples; the ``batch`` dims (for example
        ``class``) pair one block of ``mask`` with one block of ``correct``.

    Returns
    -------
    numpy.ndarray, shape ``(*batch, train, test)``, float32
        ``mask.T @ correct`` per batch entry (one BLAS product each); exact
        while the trial axis is shorter than ``2**24``.

    >>> masked_products(np.array([[1, 0], [1, 1]]), np.array([[1], [0]])).tolist()
    [[1.0], [0.0]]
    """
    m = np.moveaxis(np.asarray(mask, dtype=SUM_DTYPE), 0, -1)  # (*batch, train, trial)
    c = np.moveaxis(np.asarray(correct, dtype=SUM_DTYPE), 0, -2)  # (*batch, trial, test)
    return np.matmul(m, c)


def memorization_from_sums(sums: np.ndarray, n_trials: int) -> np.ndarray:
    """Memorization from the trial sums of :func:`trial_sums`.

    ``mem = hit_in / n_in - (hit_all - hit_in) / (n_trials - n_in)``; NaN where
    ``n_in == 0`` or ``n_in == n_trials``. ``sums`` has shape ``(3, ...)``;
    the result drops the first axis.

    >>> memorization_from_sums(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]), 2).tolist()
    [1.0, nan]
    """
    n_in, hit_in, hit_all = (np.asarray(s, dtype=np.float64) for s in sums)
    n_out = n_trials - n_in
    defined = (n_in > 0) & (n_out > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mem = hit_in / n_in - (hit_all - hit_in) / n_out
    return np.where(defined, mem, np.nan)


def influence_from_sums(
    test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int
) -> np.ndarray:
    """Influence from the summed products of :func:`masked_products`.

    ``infl[..., i, j] = test_in / n_in[..., i] - (test_all[..., j] - test_in) / n_out[..., i]``
    with ``n_out = n_trials - n_in``; rows with ``n_in == 0`` or ``n_out == 0``
    are NaN.

    Parameters
    ----------
    test_in : array, shape ``(..., train, test)``
        ``sum_t mask[t, i] * test_correct[t, j]``.
    test_all : array, shape ``(..., test)``
        ``sum_t test_correct[t, j]``.
    n_in : array, shape ``(..., train)``
        ``sum_t mask[t, i]``.
    n_trials : int
        Number of trials.

    Returns
    -------
    numpy.ndarray, shape ``(..., train, test)``, float64
    """
    test_in = np.asarray(test_in, dtype=np.float64)
    n_in = np.asarray(n_in, dtype=np.float64)[..., :, None]
    test_all = np.asarray(test_all, dtype=np.float64)[..., None, :]
    n_out = n_trials - n_in
    defined = (n_in > 0) & (n_out > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        infl = test_in / n_in - (test_all - test_in) / n_out
    return np.where(defined, infl, np.nan)


def estimate_memorization(mask: np.ndarray, train_correct: np.ndarray) -> np.ndarray:
    """Memorization ``(train,)`` of every train sample from ``(trial, train)`` records, in memory."""
    return memorization_from_sums(trial_sums(mask, train_correct), np.shape(mask)[0])


def estimate_influence(mask: np.ndarray, test_correct: np.ndarray) -> np.ndarray:
    """Influence ``(train, test)`` of every train sample on every test sample, in memory.

    ``mask`` is ``(trial, train)``, ``test_correct`` is ``(trial, test)``.
    """
    mask = np.asarray(mask)
    n_in = np.asarray(mask, dtype=np.float64).sum(axis=0)
    test_all = np.asarray(test_correct, dtype=np.float64).sum(axis=0)
    return influence_from_sums(masked_products(mask, test_correct), test_all, n_in, mask.shape[0])


def not_binary(x: np.ndarray) -> np.ndarray:
    """True where ``x`` is neither 0 nor 1 (NaN included); all False for booleans."""
    x = np.asarray(x)
    if x.dtype == bool:
        return np.zeros(x.shape, dtype=bool)
    return ~((x == 0) | (x == 1))
