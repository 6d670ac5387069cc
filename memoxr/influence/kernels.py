"""Array kernels: numpy functions, and the row and ranking kernels in C. No xarray, no dask: every function
takes ``axis``.

The row statistics that every influence-aware score needs are computed in one
fused pass as mergeable partial moments (Chan et al.'s parallel update), so a
row split over several chunks gives the same answer as the whole row.
"""

from __future__ import annotations

import numpy as np

from ..compute.reduction import Reduction
from ._compiled import row_moments_into

# Sort-based kernels over whole groups live in rank_kernels; kept importable from here.
from .rank_kernels import (  # noqa: F401
    SUMMARY_FIELDS,
    average_rank,
    centered,
    centered_correlation,
    group_summary,
    ordinal_rank,
    row_and_pooled_ranks,
    sum_of_squares,
)

#: Fields of a partial-moment record, stacked along the last axis.
PARTIAL_FIELDS = ("count", "positive_sum", "mean", "m2")
#: Fields of a finished row-statistics record, stacked along the last axis.
ROW_STAT_FIELDS = ("count", "positive_mean", "mean", "std")
N_FIELDS = 4


def row_moments(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Partial moments of ``x`` along ``axis``, NaN ignored.

    Returns an array shaped like ``x`` with ``axis`` replaced by a trailing
    axis of length 4: ``count`` (values that are not NaN), ``positive_sum``
    (sum of ``max(x, 0)``), ``mean`` and ``m2`` (sum of squared deviations).

    This is the hot loop of every score, so it runs in C (``_row_moments.c``):
    two reads of each row while it is in cache, one for its sum and one for the
    sums around its mean, added in float64 whatever the input's precision, with
    the centering error corrected. A row whose first value, sum or sums around
    its mean are not finite takes a NaN-skipping loop: an all-NaN row (ragged
    padding) gets a count of 0, an infinity counts (its row's ``m2`` is NaN), and
    float64 deviations whose squares overflow (beyond about 1e154) give an
    ``m2`` of inf. Other dtypes are converted to float64 first. Partials are float64.

    Examples
    --------
    >>> row_moments(np.array([[1.0, -1.0, 3.0]])).tolist()
    [[3.0, 4.0, 1.0, 8.0]]
    """
    x = np.moveaxis(np.asarray(x), axis, -1)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    n = x.shape[-1]
    out = np.zeros((*x.shape[:-1], N_FIELDS), dtype=np.float64)
    if n == 0 or out.size == 0:
        return out
    row_moments_into(np.ascontiguousarray(x), n, out)
    return out


def merge_moments(parts: np.ndarray, axis: int = -2) -> np.ndarray:
    """Merge partial-moment records along ``axis`` (records on the last axis).

    ``parts`` has shape ``(..., m, 4)`` when ``axis=-2``; the result drops that
    axis. Empty partials (count 0) are neutral.

    Examples
    --------
    >>> halves = np.stack([row_moments(np.array([1.0, -1.0])), row_moments(np.array([3.0]))])
    >>> merge_moments(halves).tolist()
    [3.0, 4.0, 1.0, 8.0]
    """
    parts = np.moveaxis(np.asarray(parts, dtype=np.float64), axis, -2)
    count_i, possum_i, mean_i, m2_i = (parts[..., k] for k in range(N_FIELDS))
    count = count_i.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, (count_i * mean_i).sum(axis=-1) / count, 0.0)
    spread = count_i * (mean_i - mean[..., None]) ** 2
    m2 = m2_i.sum(axis=-1) + spread.sum(axis=-1)
    return np.stack([count, possum_i.sum(axis=-1), mean, m2], axis=-1)


def finalize_moments(parts: np.ndarray) -> np.ndarray:
    """Turn partial moments ``(..., 4)`` into row statistics ``(..., 4)``.

    Fields: ``count``, ``positive_mean = positive_sum / count``, ``mean`` and
    the population ``std = sqrt(m2 / count)``; NaN where ``count == 0``.

    Examples
    --------
    >>> finalize_moments(np.array([[4.0, 2.0, 1.0, 16.0], [0.0, 0.0, 0.0, 0.0]])).tolist()
    [[4.0, 0.5, 1.0, 2.0], [0.0, nan, nan, nan]]
    """
    count, positive_sum, mean, m2 = (parts[..., k] for k in range(N_FIELDS))
    empty = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        positive_mean = np.where(empty, np.nan, positive_sum / count)
        std = np.where(empty, np.nan, np.sqrt(np.maximum(m2, 0.0) / count))
    mean = np.where(empty, np.nan, mean)
    return np.stack([count, positive_mean, mean, std], axis=-1)


def row_statistics(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Count, positive-part mean, mean and population std along ``axis``.

    Equivalent to ``finalize_moments(row_moments(x, axis))``; NaN ignored.

    Examples
    --------
    >>> row_statistics(np.array([[1.0, -1.0, 3.0, np.nan]]))[0].round(4).tolist()
    [3.0, 1.3333, 1.0, 1.633]
    """
    return finalize_moments(row_moments(x, axis=axis))


#: The fused row statistics as one declared reduction (see :mod:`memoxr.compute.reduction`):
#: partial moments per chunk, merged across chunks, finished into :data:`ROW_STAT_FIELDS`.
ROW_STATISTICS = Reduction(
    name="row-statistics", chunk=row_moments, combine=merge_moments, finalize=finalize_moments,
    fields=ROW_STAT_FIELDS, partial_size=N_FIELDS,
)


def normalize_by_max(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x / nanmax(x)`` along ``axis``; 0 where that maximum is not positive.

    NaN entries stay NaN. A group whose maximum is 0 (or negative) has nothing
    to normalize by, so its finite entries become 0.

    Examples
    --------
    >>> normalize_by_max(np.array([[1.0, 4.0, np.nan], [-1.0, 0.0, -2.0]])).tolist()
    [[0.25, 1.0, nan], [0.0, 0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    finite = ~np.isnan(x)
    peak = np.max(np.where(finite, x, -np.inf), axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(peak > 0, x / peak, 0.0)
    return np.where(finite, out, np.nan)


def descending_rank(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """0-based rank of each entry in descending order along ``axis``.

    Ties keep sample order (a stable sort). NaN entries are not ranked (NaN).

    Examples
    --------
    >>> descending_rank(np.array([0.2, 0.9, 0.2, np.nan])).tolist()
    [1.0, 0.0, 2.0, nan]
    """
    x = np.asarray(x, dtype=np.float64)
    ranks = ordinal_rank(-x, ~np.isnan(x), axis=axis)  # in C; NaN stays NaN
    ranks -= 1.0
    return ranks


def normalized_descending_rank(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``descending_rank / (n - 1)`` with ``n`` the finite entries along ``axis``.

    In ``[0, 1]``; a group with a single finite entry gives rank 0.

    Examples
    --------
    >>> normalized_descending_rank(np.array([0.2, 0.9, 0.5])).tolist()
    [1.0, 0.0, 0.5]
    """
    ranks = descending_rank(x, axis=axis)
    n = np.sum(~np.isnan(np.asarray(x, dtype=np.float64)), axis=axis, keepdims=True)
    return ranks / np.maximum(n - 1, 1)


#: Fields of :func:`class_scores`, stacked along the last axis.
SCORE_FIELDS = (
    "influence_weighted_memo",
    "representativeness_score",
    "weighted_combination",
    "critical_sample_score",
    "original_memo",
    "pos_infl_mean",
    "influence_std",
)


def class_scores(
    stats: np.ndarray,
    memorization: np.ndarray,
    real: np.ndarray,
    test_count: np.ndarray,
    *,
    alpha: float,
    beta: float,
    skipna: bool,
    zero_std: str,
) -> np.ndarray:
    """The four scores and their inputs for classes laid out along the last axis.

    ``stats`` are :func:`finalize_moments` records ``(..., n, 4)`` of each
    sample's influence row; ``memorization`` and ``real`` (false on padding) are
    ``(..., n)``, ``test_count`` ``(...)`` the class's test samples. Every sample
    of a class must be present along the last axis (the max and the rank are
    taken over it). Returns ``(..., n, 7)`` in :data:`SCORE_FIELDS` order; see
    :func:`memoxr.influence_scores` for the formulas and the NaN rules.

    Examples
    --------
    >>> stats = row_statistics(np.array([[0.2, 0.4], [0.1, -0.1]]))
    >>> out = class_scores(stats, np.array([0.5, 1.0]), np.array([True, True]), np.array(2),
    ...                    alpha=0.7, beta=0.3, skipna=False, zero_std="zero")
    >>> out[:, SCORE_FIELDS.index("critical_sample_score")].tolist()
    [0.5, 0.0]
    """
    count, pos_mean, std = stats[..., 0], stats[..., 1], stats[..., 3]
    drop = ~real
    if not skipna:
        # A real row with fewer finite values than its class has test samples held a NaN.
        drop = drop | (count != np.asarray(test_count)[..., None])
    pos_mean = np.where(drop, np.nan, pos_mean)
    std = np.where(drop, np.nan, std)
    memo = np.array(memorization, copy=True)
    memo[~real] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = pos_mean / np.where(std > 0, std, np.nan)
        if zero_std == "zero":
            ratio = np.where(std == 0, 0.0, ratio)
        fields = (
            memo * pos_mean,
            memo * ratio,
            alpha * memo + beta * normalize_by_max(pos_mean, axis=-1),
            memo * (1 - normalized_descending_rank(pos_mean, axis=-1)),
            memo,
            pos_mean,
            std,
        )
    return np.stack(np.broadcast_arrays(*fields), axis=-1).astype(np.float64, copy=False)
