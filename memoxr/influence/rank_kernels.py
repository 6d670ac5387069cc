"""Pure numpy kernels over whole groups of samples: average ranks, rank correlations, group summaries.

Each sorts (or reuses a sort of) a group's values: Spearman's rho as the Pearson
correlation of average ranks, and the per-class table's mean, std, min, max and
exact median. No xarray, no dask; ``memoxr.influence.kernels`` holds the row
kernels they follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows at least this long are sorted as packed 64-bit keys (:class:`SortedRows`) rather than
#: with ``np.argsort``: on the million scores of the ImageNet-size benchmark the sort takes 0.67x
#: the time and the whole ranking 0.8x; on rows of a few thousand, which fit in cache, it gains nothing.
PACKED_SORT_MIN = 1 << 16
_SIGN = np.uint64(1 << 63)
_NAN_WORD = np.uint64(0x7FF8 << 48) | _SIGN  # the order-preserving word of a positive quiet NaN


def _order_words(values: np.ndarray, keep: np.ndarray, bits: int) -> np.ndarray:
    """Each entry's order-preserving ``uint64`` word, its flat position in the low ``bits`` bits.

    Words compare as the values do (numbers, then NaN of either sign, then the
    entries left out by ``keep``, which ``values`` holds as NaN), except where the
    position bits cut off the last bits of values that differ only there: see
    :func:`_exact_order`.
    """
    low = np.uint64((1 << bits) - 1)
    word = (values + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0, which compares equal to it
    word = np.where(word & _SIGN, ~word, word | _SIGN)  # negative values reversed, below the positive ones
    word[np.isnan(values)] = _NAN_WORD  # a NaN of either sign after every number, as np.argsort puts it
    word[~keep] = ~np.uint64(0)  # after every kept value (+inf and NaN included), in position order
    word &= ~low
    word |= np.arange(values.size, dtype=np.uint64).reshape(values.shape)
    return word


def _exact_order(word: np.ndarray, values: np.ndarray, bits: int, row_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions in the order of ``word`` (1-D, sorted within each run of ``row_length``
    entries), and ``values`` (flat) in that order, with the groups of equal high bits
    whose values the cut bits left out of order sorted again exactly."""
    n = word.size
    low = np.uint64((1 << bits) - 1)
    order = (word & low).astype(np.intp)
    ordered = values[order]
    descending = ordered[1:] < ordered[:-1]
    descending[row_length - 1 :: row_length] = False  # a row's end and the next row's start
    wrong = np.flatnonzero(descending)  # only within a group of equal high bits
    if wrong.size:
        if row_length == n:  # one sorted array: each such group found by binary search (a few of a million)
            group_start = np.unique(np.searchsorted(word, word[wrong] & ~low, side="left"))
            group_end = np.searchsorted(word, word[group_start] | low, side="right")
        else:
            high = word >> np.uint64(bits)
            starts = np.concatenate(([True], high[1:] != high[:-1]))
            starts[::row_length] = True
            bounds = np.flatnonzero(starts)
            first = np.unique(np.searchsorted(bounds, wrong, side="right") - 1)
            group_start, group_end = bounds[first], np.append(bounds[1:], n)[first]
        sizes = group_end - group_start
        at = np.repeat(group_start - (np.cumsum(sizes) - sizes), sizes) + np.arange(sizes.sum())
        members = order[at]
        order[at] = members[np.lexsort((values[members], np.repeat(np.arange(sizes.size), sizes)))]
        ordered = values[order]
    return order, ordered


def _sorted_average_ranks(ordered: np.ndarray, row_length: int) -> np.ndarray:
    """1-based average ranks within each run of ``row_length`` entries of sorted, flat ``ordered``."""
    start = np.ones(ordered.size, dtype=bool)  # a new run of ties begins here (always at a row's start)
    start[1:] = ordered[1:] != ordered[:-1]
    start[::row_length] = True
    first = np.flatnonzero(start)  # flat position of each run's first entry
    last = np.append(first[1:], start.size) - 1
    run = np.cumsum(start) - 1  # run of every sorted entry
    ranks = ((first + last) / 2.0)[run].reshape(-1, row_length)
    ranks -= np.arange(0, start.size, row_length, dtype=np.float64)[:, None] - 1.0  # flat position -> rank in row
    return ranks.reshape(-1)


def average_rank(x: np.ndarray, keep: np.ndarray, axis: int = -1, *, packed_min: int = PACKED_SORT_MIN) -> np.ndarray:
    """1-based ranks along ``axis`` among the entries where ``keep`` is true; NaN elsewhere.

    Ties get the average of the ranks they span (``scipy.stats.rankdata``'s
    ``"average"`` method), so the Pearson correlation of two such rankings is
    Spearman's rho. Entries left out by ``keep`` sort after every kept entry and
    never touch the kept entries' ranks. A 1-D ``x`` of at least ``packed_min``
    entries is sorted as packed words (:class:`SortedRows`), with the same result.

    Examples
    --------
    >>> average_rank(np.array([3.0, 1.0, 3.0, 9.0]), np.array([True, True, True, False])).tolist()
    [2.5, 1.0, 2.5, nan]
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    keep = np.moveaxis(np.broadcast_to(np.asarray(keep, dtype=bool), x.shape), axis, -1)
    n = x.shape[-1]
    ranks = np.empty(x.shape, dtype=np.float64)
    if n == 0:
        return np.moveaxis(ranks, -1, axis)
    if x.ndim == 1 and n >= packed_min:
        return SortedRows.of(x, keep).within_rows()
    # Left-out entries sort after every kept one: as +inf (numpy's sorts are ~3x faster without
    # NaN), or as NaN when a kept entry is +inf itself (NaN sorts after inf and never ties).
    fill = np.nan if np.isposinf(x[keep]).any() else np.inf
    values = np.where(keep, x, fill)
    order = np.argsort(values, axis=-1)
    ordered = np.take_along_axis(values, order, axis=-1)
    sorted_ranks = _sorted_average_ranks(ordered.reshape(-1), n)
    np.put_along_axis(ranks, order, sorted_ranks.reshape(x.shape), axis=-1)
    return np.moveaxis(np.where(keep, ranks, np.nan), -1, axis)


@dataclass(frozen=True, eq=False)
class SortedRows:
    """Each row (along the last axis) of an array sorted once, as packed 64-bit words (:func:`_order_words`).

    Both rankings of :func:`row_and_pooled_ranks` are read from this one sort,
    each by its own method, so two threads can share the work. It holds the
    words and the values (16 bytes per entry) until both are read.
    """

    word: np.ndarray  #: flat, sorted within each row
    values: np.ndarray  #: flat; NaN where left out
    keep: np.ndarray
    bits: int

    @classmethod
    def of(cls, x: np.ndarray, keep: np.ndarray) -> SortedRows:
        x = np.asarray(x, dtype=np.float64)
        keep = np.broadcast_to(np.asarray(keep, dtype=bool), x.shape)
        values = np.where(keep, x, np.nan)
        bits = max(1, (x.size - 1).bit_length())
        word = _order_words(values, keep, bits)
        word.sort(axis=-1)
        return cls(word.reshape(-1), values.reshape(-1), keep, bits)

    def within_rows(self) -> np.ndarray:
        """:func:`average_rank` along each row; NaN where left out."""
        ranks = np.full(self.keep.shape, np.nan)
        if self.word.size:
            n = self.keep.shape[-1]
            order, ordered = _exact_order(self.word, self.values, self.bits, n)
            ranks.reshape(-1)[order] = _sorted_average_ranks(ordered, n)
            ranks[~self.keep] = np.nan
        return ranks

    def pooled(self) -> np.ndarray:
        """:func:`average_rank` over all kept entries: the rows' sorted runs of kept words, merged by
        numpy's stable sort (timsort finds the runs), cost less than sorting them afresh."""
        ranks = np.full(self.keep.shape, np.nan)
        merged = np.sort(self.word[self.word < ~np.uint64((1 << self.bits) - 1)], kind="stable")
        if merged.size:
            order, ordered = _exact_order(merged, self.values, self.bits, merged.size)
            ranks.reshape(-1)[order] = _sorted_average_ranks(ordered, merged.size)
        return ranks


def row_and_pooled_ranks(x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`average_rank` of each row of ``x`` (along its last axis), and of all its entries pooled, from one sort.

    Both equal :func:`average_rank`'s packed path, over a row and over
    ``x[keep]``; left-out entries are NaN in both. See :class:`SortedRows`.

    Examples
    --------
    >>> within, pooled = row_and_pooled_ranks(np.array([[3.0, 1.0], [2.0, 9.0]]), np.array([[True, True], [True, False]]))
    >>> within.tolist(), pooled.tolist()
    ([[2.0, 1.0], [1.0, nan]], [[3.0, 1.0], [2.0, nan]])
    """
    rows = SortedRows.of(x, keep)
    return rows.within_rows(), rows.pooled()


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
    return deviation, np.einsum("...i,...i->...", deviation, deviation)


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
        out[..., 1] = np.sqrt(np.einsum("...i,...i->...", deviation, deviation) / n)
        out[..., 2] = ordered[..., 0]
        out[..., 3] = np.take_along_axis(ordered, last, axis=-1)[..., 0]
        lower = np.take_along_axis(ordered, last // 2, axis=-1)[..., 0]
        upper = np.take_along_axis(ordered, (last + 1) // 2, axis=-1)[..., 0]
        out[..., 4] = (lower + upper) / 2.0
    dropped = (n == 0) if skipna else (n == 0) | (n < valid.sum(axis=-1))
    out[dropped] = np.nan
    return out
