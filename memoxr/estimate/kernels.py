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

from collections.abc import Callable
from typing import Any

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
    mask, correct = as_bool(mask), as_bool(train_correct)
    counts = [_column_counts(mask), _column_counts(mask & correct), _column_counts(correct)]
    return np.stack(counts).astype(np.float64)


def as_bool(x: np.ndarray) -> np.ndarray:
    """``x != 0`` as bool (``x`` itself when it is bool already).

    >>> as_bool(np.array([0, 1, 2])).tolist()
    [False, True, True]
    """
    x = np.asarray(x)
    return x if x.dtype == bool else x != 0


def _column_counts(x: np.ndarray) -> np.ndarray:
    """Trues per column of a 2-D bool array (bytes summed into int32: exact below 2**31 rows)."""
    return np.add.reduce(np.ascontiguousarray(x).view(np.uint8), axis=0, dtype=np.int32)


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

    Examples
    --------
    >>> influence_from_sums(np.array([[2.0]]), np.array([3.0]), np.array([2.0]), 4).tolist()
    [[0.5]]
    """
    test_in = np.asarray(test_in, dtype=np.float64)
    n_in = np.asarray(n_in, dtype=np.float64)[..., :, None]
    test_all = np.asarray(test_all, dtype=np.float64)[..., None, :]
    n_out = n_trials - n_in
    defined = (n_in > 0) & (n_out > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        infl = test_in / n_in - (test_all - test_in) / n_out
    return np.where(defined, infl, np.nan)


def gather_columns(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Columns ``index`` of a ``(trial, sample)`` chunk, as a bool ``(trial, *index.shape)`` array.

    ``index`` holds column numbers, -1 for padding (read as column 0: the
    finalizer makes padded entries NaN). ``np.take`` on the input, then ``!= 0``
    on the taken columns only (nothing for bool input): no temporary over the
    whole chunk.

    >>> gather_columns(np.array([[0, 1, 2], [1, 0, 0]]), np.array([[2, 1], [0, -1]])).astype(int).tolist()
    [[[1, 1], [0, 0]], [[0, 0], [1, 1]]]
    """
    x, index = np.asarray(x), np.asarray(index)
    taken = np.take(x, np.maximum(index, 0).ravel(), axis=1)
    if taken.dtype != bool:
        taken = taken != 0
    return taken.reshape(x.shape[0], *index.shape)


def class_products(
    rows: np.ndarray,
    cols: np.ndarray,
    train_index: np.ndarray,
    test_index: np.ndarray,
    *,
    max_operand_bytes: int | None = None,
) -> np.ndarray:
    """Within-class ``sum_t rows[t, c, i] * cols[t, c, j]`` for one chunk of trials, one BLAS product per class.

    Parameters
    ----------
    rows, cols : array, shapes ``(trial, class, i)`` and ``(trial, class, j)``
        0/1 columns of each class (:func:`gather_columns`): subset membership
        of its train samples, correctness on its test samples.
    train_index, test_index : int arrays, shapes ``(class, i)`` and ``(class, j)``
        The columns' sample numbers, -1 for padding (at the end of a class):
        padded rows and columns are not multiplied.
    max_operand_bytes : int, optional
        Bound on one class's float32 operands; more trials than fit are
        multiplied in several steps and summed.

    Returns
    -------
    numpy.ndarray, shape ``(class, i, j)``, float32
        Exact sums (while trials < ``2**24``); 0 where ``i`` or ``j`` is padding.

    >>> rows, cols = np.array([[[1, 0]], [[1, 1]]]), np.array([[[1]], [[1]]])
    >>> class_products(rows, cols, np.array([[4, 7]]), np.array([[3]])).tolist()
    [[[2.0], [1.0]]]
    """
    rows, cols = np.asarray(rows), np.asarray(cols)
    n_trials, n_class = rows.shape[0], rows.shape[1]
    out = np.zeros((n_class, rows.shape[2], cols.shape[2]), dtype=SUM_DTYPE)
    for c in range(n_class):
        n_i, n_j = int((np.asarray(train_index[c]) >= 0).sum()), int((np.asarray(test_index[c]) >= 0).sum())
        if n_i == 0 or n_j == 0:
            continue
        step = n_trials
        if max_operand_bytes is not None:
            step = int(min(n_trials, max(1, max_operand_bytes // (4 * (n_i + n_j)))))
        target = out[c, :n_i, :n_j]
        for start in range(0, n_trials, step):
            a = rows[start : start + step, c, :n_i].astype(SUM_DTYPE)
            b = cols[start : start + step, c, :n_j].astype(SUM_DTYPE)
            if start > 0:
                target += a.T @ b
            elif target.flags.c_contiguous:
                np.matmul(a.T, b, out=target)  # straight into the result, no temporary
            else:
                target[...] = a.T @ b
    return out


def add_parts(parts: Any) -> np.ndarray:
    """Sum of a (possibly nested) list of arrays, with one new array at most; one array is returned as is.

    >>> add_parts([np.array([1, 2]), [np.array([10, 20]), np.array([100, 200])]]).tolist()
    [111, 222]
    """
    flat = []
    stack = [parts]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if len(flat) == 1:
        return flat[0]
    total = np.add(flat[0], flat[1])
    for part in flat[2:]:
        total += part
    return total


def influence_from_sums_f32(
    test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int, *, block_elements: int = 2**16
) -> np.ndarray:
    """:func:`influence_from_sums` rounded to float32, computed in row blocks.

    The same float64 operations on every element (so the same float32 result),
    but on blocks of about ``block_elements`` elements at a time: the float64
    temporaries stay in cache instead of spanning the whole array.

    Parameters are those of :func:`influence_from_sums`; ``test_in`` has shape
    ``(..., train, test)``.

    Returns
    -------
    numpy.ndarray, same shape as ``test_in``, float32

    Examples
    --------
    >>> influence_from_sums_f32(np.array([[2.0]]), np.array([3.0]), np.array([2.0]), 4)
    array([[0.5]], dtype=float32)
    """
    return _by_row_blocks(_influence_block, test_in, test_all, n_in, n_trials, block_elements)


def _influence_block(block: np.ndarray, all_row: np.ndarray, n_in_r: np.ndarray, n_out_r: np.ndarray) -> np.ndarray:
    rest = all_row - block
    rest /= n_out_r
    block /= n_in_r
    block -= rest
    block[~((n_in_r[:, 0] > 0) & (n_out_r[:, 0] > 0))] = np.nan
    return block


def _by_row_blocks(
    per_block: Callable[..., np.ndarray], test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int, block_elements: int
) -> np.ndarray:
    """``per_block(hits_in, hits_all_row, n_in, n_out)`` over float64 row blocks of ``test_in``; float32 out.

    The blocks hold about ``block_elements`` elements, so their float64 temporaries stay in cache.
    """
    test_in = np.asarray(test_in)
    shape = test_in.shape
    n_i, n_j = shape[-2], shape[-1]
    batch = int(np.prod(shape[:-2], dtype=np.int64))
    t3 = test_in.reshape(batch, n_i, n_j)
    n_in3 = np.broadcast_to(np.asarray(n_in, dtype=np.float64), (*shape[:-2], n_i)).reshape(batch, n_i)
    all3 = np.broadcast_to(np.asarray(test_all, dtype=np.float64), (*shape[:-2], n_j)).reshape(batch, n_j)
    out = np.empty((batch, n_i, n_j), dtype=np.float32)
    rows = max(1, block_elements // max(n_j, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        for b in range(batch):
            for r in range(0, n_i, rows):
                n_in_r = n_in3[b, r : r + rows, None]
                block = t3[b, r : r + rows].astype(np.float64)
                out[b, r : r + rows] = per_block(block, all3[b][None, :], n_in_r, n_trials - n_in_r)
    return out.reshape(shape)


def influence_se_from_sums_f32(
    test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int, *, block_elements: int = 2**16
) -> np.ndarray:
    """Standard error of the influence from its sums, float32, in row blocks (as :func:`influence_from_sums_f32`).

    ``sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)`` with
    ``p_in = test_in / n_in`` and ``p_out = (test_all - test_in) / n_out``: the
    standard error of a difference of two independent proportions. NaN where
    ``n_in`` or ``n_out`` is 0, and where ``test_all`` is NaN (padding).

    >>> round(float(influence_se_from_sums_f32(np.array([[3.0]]), np.array([4.0]), np.array([4.0]), 8)[0, 0]), 4)
    0.3062
    """
    return _by_row_blocks(_se_block, test_in, test_all, n_in, n_trials, block_elements)


def _se_block(p_in: np.ndarray, all_row: np.ndarray, n_in_r: np.ndarray, n_out_r: np.ndarray) -> np.ndarray:
    p_out = all_row - p_in
    p_out /= n_out_r
    p_in /= n_in_r
    var = p_in * (1 - p_in)
    var /= n_in_r
    p_out *= 1 - p_out
    p_out /= n_out_r
    var += p_out
    np.maximum(var, 0, out=var)  # rounding can leave -0 or a tiny negative
    np.sqrt(var, out=var)
    var[~((n_in_r[:, 0] > 0) & (n_out_r[:, 0] > 0))] = np.nan
    return var


def estimate_memorization(mask: np.ndarray, train_correct: np.ndarray) -> np.ndarray:
    """Memorization ``(train,)`` of every train sample from ``(trial, train)`` records, in memory.

    >>> estimate_memorization(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [0, 0]])).tolist()
    [1.0, 0.0]
    """
    return memorization_from_sums(trial_sums(mask, train_correct), np.shape(mask)[0])


def estimate_influence(mask: np.ndarray, test_correct: np.ndarray) -> np.ndarray:
    """Influence ``(train, test)`` of every train sample on every test sample, in memory.

    ``mask`` is ``(trial, train)``, ``test_correct`` is ``(trial, test)``.

    >>> estimate_influence(np.array([[1], [0]]), np.array([[1], [0]])).tolist()
    [[1.0]]
    """
    mask = np.asarray(mask)
    n_in = np.asarray(mask, dtype=np.float64).sum(axis=0)
    test_all = np.asarray(test_correct, dtype=np.float64).sum(axis=0)
    return influence_from_sums(masked_products(mask, test_correct), test_all, n_in, mask.shape[0])


def not_binary(x: np.ndarray) -> np.ndarray:
    """True where ``x`` is neither 0 nor 1 (NaN included); all False for booleans.

    >>> not_binary(np.array([0.0, 1.0, 0.5, np.nan])).tolist()
    [False, False, True, True]
    """
    x = np.asarray(x)
    if x.dtype == bool:
        return np.zeros(x.shape, dtype=bool)
    return ~((x == 0) | (x == 1))


def count_not_binary(x: np.ndarray) -> int:
    """How many values of ``x`` are neither 0 nor 1 (NaN included); 0 for booleans, with no temporary.

    >>> count_not_binary(np.array([0, 1, 2, 3])), count_not_binary(np.array([True, False]))
    (2, 0)
    """
    x = np.asarray(x)
    if x.dtype == bool:
        return 0
    return int(np.count_nonzero((x != 0) & (x != 1)))
