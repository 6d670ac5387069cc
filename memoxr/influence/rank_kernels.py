"""Kernels over whole groups of samples: ranks (sorted in C), rank correlations, group summaries.

Ranks within each group (class) and over all groups pooled, from one sort;
Spearman's rho as the Pearson correlation of average ranks; and the per-class
table's mean, std, min, max and exact median, from one sort per group. No
xarray, no dask; ``memoxr.influence.kernels`` holds the row kernels they follow.
"""

from __future__ import annotations

import numpy as np

from ._compiled import average_ranks_into


def average_rank(x: np.ndarray, keep: np.ndarray, axis: int = -1) -> np.ndarray:
    """1-based ranks along ``axis`` among the entries where ``keep`` is true; NaN elsewhere.

    Ties get the average of the ranks they span (``scipy.stats.rankdata``'s
    ``"average"`` method), so the Pearson correlation of two such rankings is
    Spearman's rho; -0.0 ties with 0.0, and a kept NaN ranks after every number,
    tied with nothing (earlier positions first). Entries left out by ``keep``
    never touch the kept entries' ranks. Sorted in C (``_average_ranks.c``: a
    radix sort of the values' order-preserving 64-bit words).

    Examples
    --------
    >>> average_rank(np.array([3.0, 1.0, 3.0, 9.0]), np.array([True, True, True, False])).tolist()
    [2.5, 1.0, 2.5, nan]
    """
    return _ranks_along(x, keep, axis, ordinal=False)


def ordinal_rank(x: np.ndarray, keep: np.ndarray, axis: int = -1) -> np.ndarray:
    """1-based ranks along ``axis`` among the entries where ``keep`` is true, ties in position order
    (a stable sort's order: ``scipy.stats.rankdata``'s ``"ordinal"``); NaN elsewhere.

    -0.0 ties with 0.0; a kept NaN ranks after every number. Sorted in C, as :func:`average_rank`.

    Examples
    --------
    >>> ordinal_rank(np.array([3.0, 1.0, 3.0, 9.0]), np.array([True, True, True, False])).tolist()
    [2.0, 1.0, 3.0, nan]
    """
    return _ranks_along(x, keep, axis, ordinal=True)


def _ranks_along(x: np.ndarray, keep: np.ndarray, axis: int, *, ordinal: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    keep = np.broadcast_to(np.asarray(keep, dtype=bool), x.shape)
    moved = _ranks(np.moveaxis(x, axis, -1), np.moveaxis(keep, axis, -1), pooled=False, ordinal=ordinal, centred=False)
    return np.moveaxis(moved[0], -1, axis)


def row_and_pooled_ranks(
    x: np.ndarray, keep: np.ndarray, *, centred: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`average_rank` of each row of ``x`` (along its last axis), and of all its kept entries pooled,
    from one sort; left-out entries are NaN in both.

    ``centred=True`` gives each ranking less its mean over the kept entries, and 0
    where left out: the deviations :func:`centered` would give, computed exactly
    (the mean of ``k`` average ranks is ``(k + 1) / 2``).

    Examples
    --------
    >>> x, keep = np.array([[3.0, 1.0], [2.0, 9.0]]), np.array([[True, True], [True, False]])
    >>> within, pooled = row_and_pooled_ranks(x, keep)
    >>> within.tolist(), pooled.tolist()
    ([[2.0, 1.0], [1.0, nan]], [[3.0, 1.0], [2.0, nan]])
    >>> [r.tolist() for r in row_and_pooled_ranks(x, keep, centred=True)]
    [[[0.5, -0.5], [0.0, 0.0]], [[1.0, -1.0], [0.0, 0.0]]]
    """
    x = np.asarray(x, dtype=np.float64)
    keep = np.broadcast_to(np.asarray(keep, dtype=bool), x.shape)
    within, pooled = _ranks(x, keep, pooled=True, ordinal=False, centred=centred)
    assert pooled is not None
    return within, pooled


def _ranks(
    x: np.ndarray, keep: np.ndarray, *, pooled: bool, ordinal: bool, centred: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.ascontiguousarray(x)
    within = np.empty(x.shape)
    both = np.empty(x.shape) if pooled else None
    if x.size:
        average_ranks_into(x, np.ascontiguousarray(keep), x.shape[-1], within, both, ordinal, centred)
    return within, both


def sum_of_squares(x: np.ndarray) -> np.ndarray:
    """Sum of ``x * x`` along the last axis.

    Examples
    --------
    >>> sum_of_squares(np.array([[1.0, -2.0], [0.5, 0.0]])).tolist()
    [5.0, 0.25]
    """
    return np.einsum("...i,...i->...", x, x)


def centered(x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` minus its mean over the kept entries of the last axis (0 elsewhere), and the sum of squares.

    Shared by every correlation a variable takes part in (see :func:`centered_correlation`).

    Examples
    --------
    >>> deviation, squares = centered(np.array([1.0, 3.0, 9.0]), np.array([True, True, False]))
    >>> deviation.tolist(), float(squares)
    ([-1.0, 1.0, 0.0], 2.0)
    """
    x = np.asarray(x, dtype=np.float64)
    keep = np.broadcast_to(np.asarray(keep, dtype=bool), x.shape)
    count = keep.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(keep, x, 0.0).sum(axis=-1) / count
        deviation = np.where(keep, x - mean[..., None], 0.0)
    return deviation, sum_of_squares(deviation)


def centered_correlation(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], keep: np.ndarray
) -> np.ndarray:
    """Pearson correlation along the last axis from two :func:`centered` results over the same ``keep``.

    NaN where fewer than two entries are kept or either side is constant there.

    Examples
    --------
    >>> keep = np.ones(3, dtype=bool)
    >>> float(centered_correlation(centered(np.array([1.0, 2.0, 3.0]), keep), centered(np.array([3.0, 2.0, 1.0]), keep), keep))
    -1.0
    """
    (da, va), (db, vb) = a, b
    count = np.broadcast_to(np.asarray(keep, dtype=bool), da.shape).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(np.einsum("...i,...i->...", da, db) / np.sqrt(va * vb), -1.0, 1.0)
    return np.where((count >= 2) & (va > 0) & (vb > 0), r, np.nan)


#: Fields of :func:`group_summary`, stacked along the last axis.
SUMMARY_FIELDS = ("mean", "std", "min", "max", "median")


def group_summary(x: np.ndarray, valid: np.ndarray, *, skipna: bool = False, axis: int = -1) -> np.ndarray:
    """Mean, population std, min, max and median of each group along ``axis``.

    A group is one slice along ``axis`` (for memoxr: one class's samples along
    ``train_sample``); only entries where ``valid`` is true belong to it
    (padding is not valid). With ``skipna=False`` a NaN among a group's valid
    entries makes all its statistics NaN, like numpy; ``skipna=True`` ignores
    it. An empty group gives NaN. One sort per group serves min, max and the
    exact median (the mean of the two middle values for an even count).

    Examples
    --------
    >>> group_summary(np.array([[3.0, 1.0, 2.0, np.nan]]), np.array([[True, True, True, False]]))[0].tolist()
    [2.0, 0.816496580927726, 1.0, 3.0, 2.0]
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    valid = np.moveaxis(np.broadcast_to(np.asarray(valid, dtype=bool), x.shape), axis, -1)
    used = valid & ~np.isnan(x)
    n = used.sum(axis=-1)
    out = np.full((*x.shape[:-1], len(SUMMARY_FIELDS)), np.nan)
    if x.shape[-1] == 0:
        return out
    ordered = np.sort(np.where(used, x, np.nan), axis=-1)  # NaN (unused) sort last
    last = np.maximum(n - 1, 0)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(used, x, 0.0).sum(axis=-1) / n
        deviation = np.where(used, x - mean[..., None], 0.0)
        out[..., 0] = mean
        out[..., 1] = np.sqrt(sum_of_squares(deviation) / n)
        out[..., 2] = ordered[..., 0]
        out[..., 3] = np.take_along_axis(ordered, last, axis=-1)[..., 0]
        lower = np.take_along_axis(ordered, last // 2, axis=-1)[..., 0]
        upper = np.take_along_axis(ordered, (last + 1) // 2, axis=-1)[..., 0]
        out[..., 4] = (lower + upper) / 2.0
    dropped = (n == 0) if skipna else (n == 0) | (n < valid.sum(axis=-1))
    out[dropped] = np.nan
    return out
