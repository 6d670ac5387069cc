"""The estimator's sufficient sums and their lazy dask graphs.

Everything the Feldman–Zhang estimator needs from the trials is a handful of
sums that add up over trials (see :mod:`memoxr.estimate.kernels`). An
estimate store keeps them, so new trials are added by summing the new trials
only (:func:`memoxr.estimate.incremental.append_estimate`):

=========================  ======================================  =======================================
variable                   dims                                    sum over trials
=========================  ======================================  =======================================
``n_in``, ``n_out``        ``(train_id,)`` int64                   trials with / without train sample ``i``
``train_correct_in``       ``(train_id,)`` int64                   ... in which sample ``i`` is right, ``i`` in
``train_correct_out``      ``(train_id,)`` int64                   ... in which sample ``i`` is right, ``i`` out
``test_correct_total``     ``(test_id,)`` int64                    trials right on test sample ``j``
``test_correct_in``        ``(class, train_sample, test_sample)``  trials right on ``j`` with ``i`` in (float32,
                                                                   exact below 2**24 trials); ``..._out`` is
                                                                   ``test_correct_total[j] - test_correct_in``
``test_correct_in_full``   ``(train_id, test_id)``                 the same for every pair (``full=True`` only)
=========================  ======================================  =======================================

The store variables made from them: :mod:`memoxr.estimate.variables`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.array import PerformanceWarning

from ..compute.scheduler import rechunk
from ..io.chunks import BlockChunks, plan_block_chunks
from . import kernels as _k

#: The sums an estimate store keeps (``test_correct_in_full`` only beside ``influence_full``).
SUM_NAMES = ("n_in", "n_out", "train_correct_in", "train_correct_out", "test_correct_total", "test_correct_in")


@dataclass(frozen=True)
class TrialSums:
    """The sufficient sums of some trials; adding two gives the sums of both sets of trials.

    >>> one = TrialSums(2, np.ones((3, 1)), np.ones(1), da.ones((1, 1, 1), dtype=np.float32))
    >>> both = one + one
    >>> both.n_trials, both.train[:, 0].tolist(), both.test_in.compute().ravel().tolist()
    (4, [2.0, 2.0, 2.0], [2.0])
    """

    n_trials: int
    train: Any  # (3, train_id) float64, numpy or dask: n_in, hit_in (correct with i in), hit_all (correct overall)
    test_all: Any  # (test_id,) float64, numpy or dask: correct on j over all trials
    test_in: da.Array  # (class, train_sample, test_sample) float32, padding 0
    test_in_full: da.Array | None = None  # (train_id, test_id) float32

    def __add__(self, other: TrialSums) -> TrialSums:
        full = None
        if self.test_in_full is not None and other.test_in_full is not None:
            full = self.test_in_full + rechunk(other.test_in_full, self.test_in_full.chunks)
        return TrialSums(
            self.n_trials + other.n_trials,
            self.train + other.train,
            self.test_all + other.test_all,
            self.test_in + rechunk(other.test_in, self.test_in.chunks),  # exact: whole numbers below 2**24
            full,
        )


def standard_error(correct_in: Any, n_in: Any, correct_out: Any, n_out: Any) -> np.ndarray:
    """Standard error of ``correct_in / n_in - correct_out / n_out``, two independent proportions.

    ``sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)``, NaN where
    ``n_in`` or ``n_out`` is 0. Arguments broadcast.

    >>> standard_error(3, 4, 1, 4).round(4).tolist()
    0.3062
    """
    correct_in, n_in, correct_out, n_out = (np.asarray(x, dtype=np.float64) for x in (correct_in, n_in, correct_out, n_out))
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in, p_out = correct_in / n_in, correct_out / n_out
        var = p_in * (1 - p_in) / n_in + p_out * (1 - p_out) / n_out
    return np.where((n_in > 0) & (n_out > 0), np.sqrt(np.maximum(var, 0)), np.nan)


# ---------------------------------------------------------------------------------------------
# Chunk planning


def trial_chunk(n_trials: int, width: int, itemsize: int, budget: int) -> int:
    """Trials per chunk so that a ``(trials, width)`` block stays within ``budget`` bytes.

    >>> trial_chunk(1000, width=50, itemsize=1, budget=1000)
    20
    """
    return int(min(n_trials, max(1, budget // max(1, width * itemsize))))


def even_sizes(n: int, most: int) -> tuple[int, ...]:
    """``n`` split into as few parts of at most ``most`` as possible, sizes differing by one at most.

    >>> even_sizes(10, 3), even_sizes(2000, 1118)
    ((3, 3, 2, 2), (1000, 1000))
    """
    parts = -(-n // max(1, most))
    size, extra = divmod(n, parts)
    return tuple(size + 1 if p < extra else size for p in range(parts))


#: Fewest multiply-adds in one product task (~20 ms on one core): smaller classes are grouped.
MIN_TASK_PRODUCTS = 10**9


def class_groups(n_class: int, plan: BlockChunks, trials: int) -> tuple[int, ...]:
    """Classes per product task: as few as give a sizeable product, at most ``plan.cls``, even sizes.

    >>> class_groups(10, BlockChunks(4, 100, 100), trials=1000)
    (4, 3, 3)
    """
    per_class = max(1, trials * plan.train * plan.test)
    wanted = max(1, -(-MIN_TASK_PRODUCTS // per_class))
    return even_sizes(n_class, min(plan.cls, wanted))


@contextlib.contextmanager
def quiet_blockwise() -> Iterator[None]:
    """Silence dask's note that a product has more output chunks than inputs: that is the plan.

    >>> with quiet_blockwise():
    ...     warnings.warn("many chunks", PerformanceWarning)  # not shown
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PerformanceWarning)
        yield


# ---------------------------------------------------------------------------------------------
# Products over trials, lazily


def _gather_block(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _k.gather_columns(x, index)


def _class_products_block(
    rows: np.ndarray, cols: np.ndarray, train_index: np.ndarray, test_index: np.ndarray, max_operand_bytes: int
) -> np.ndarray:
    return _k.class_products(rows, cols, train_index, test_index, max_operand_bytes=max_operand_bytes)[None]


def _products_block(mask: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return _k.masked_products(mask, correct)[None]


def _first(x: np.ndarray, axis: Any = None, keepdims: bool = True) -> np.ndarray:
    return x


def _add_parts(parts: Any, axis: Any = None, keepdims: bool = True) -> np.ndarray:
    total = _k.add_parts(parts)
    if keepdims:
        return total
    return total[0] if total.shape[0] == 1 else total.sum(axis=0)  # 0 rows: dask's meta probe


def sum_over_trials(partial: da.Array) -> da.Array:
    """Sum of per-trial-chunk products (each ``(1, ...)`` on axis 0), as a tree of additions.

    Like ``partial.sum(axis=0)`` without its copies: no concatenation of the
    parts and no copy of a lone part.

    >>> sum_over_trials(da.ones((3, 2), chunks=1, dtype=np.float32)).compute().tolist()
    [3.0, 3.0]
    """
    # Not a compute.reduction.Reduction: apply_reduction concatenates the parts (concatenate=True)
    # and reshapes them onto a trailing record axis, two copies of every (class, train, test)
    # block per merge; here the parts are the largest arrays of an estimate and are added in place.
    return da.reduction(
        partial, _first, _add_parts, combine=_add_parts, axis=0, concatenate=False, dtype=np.float32,
    )


def class_test_in(
    mask: da.Array, test_correct: da.Array, train_index: np.ndarray, test_index: np.ndarray,
    plan: BlockChunks, budget: int,
) -> da.Array:
    """``test_in(class, train_sample, test_sample)``: within-class sums of ``mask * test_correct``, lazily.

    Each chunk of trials (whole rows of both records within ``budget``) is
    gathered into bool ``(trial, class, sample)`` blocks, one per group of
    classes; those are rechunked to as many trials as fit ``budget`` (often all
    of them: a group's columns are a fraction of a row), and each group's
    blocks are multiplied, one BLAS product per class
    (:func:`memoxr.estimate.kernels.class_products`), summed over the chunks
    of trials if several. Trial chunks and groups of classes have even sizes,
    so that threads get even work. The result is float32 (exact whole
    numbers), 0 on padding, chunked by ``plan``.

    >>> m = da.from_array(np.array([[1, 0, 1], [1, 1, 0]], dtype=bool), chunks=1)
    >>> train, test = np.array([[0, 1], [2, -1]]), np.array([[0], [1]])
    >>> class_test_in(m, m[:, :2], train, test, BlockChunks(1, 2, 1), 2**20).compute()[:, :, 0].tolist()
    [[2.0, 1.0], [0.0, 0.0]]
    """
    n_trials, n_train = mask.shape
    n_test = test_correct.shape[1]
    itemsize = max(mask.dtype.itemsize, test_correct.dtype.itemsize)
    most = trial_chunk(n_trials, n_train + n_test, itemsize, budget)
    read = mask.chunks[0] if max(mask.chunks[0]) <= most else even_sizes(n_trials, most)  # as read, if fit
    groups = class_groups(train_index.shape[0], plan, n_trials)
    train_index_da = da.from_array(train_index, chunks=(groups, plan.train))
    test_index_da = da.from_array(test_index, chunks=(groups, plan.test))
    with quiet_blockwise():
        rows, cols = (
            da.blockwise(_gather_block, "tci", rechunk(x, (read, -1)), "tn", index, "ci", dtype=bool, concatenate=True)
            for x, index in ((mask, train_index_da), (test_correct, test_index_da))
        )
    # Products: a group's bool operands within the budget (their float32 copies are bounded inside).
    trials = even_sizes(n_trials, trial_chunk(n_trials, max(groups) * (plan.train + plan.test), 1, budget))
    rows, cols = rechunk(rows, (trials, groups, plan.train)), rechunk(cols, (trials, groups, plan.test))
    with quiet_blockwise():
        partial = da.blockwise(
            _class_products_block, "tcij", rows, "tci", cols, "tcj", train_index_da, "ci", test_index_da, "cj",
            max_operand_bytes=budget, adjust_chunks={"t": 1}, dtype=np.float32,
        )
    return rechunk(sum_over_trials(partial), (plan.cls, plan.train, plan.test))


def full_test_in(mask: da.Array, test_correct: da.Array, chunk_mb: float, budget: int) -> da.Array:
    """``test_in_full(train_id, test_id)``: ``mask.T @ test_correct`` over all trials, lazily, float32.

    >>> m = da.from_array(np.array([[1, 0], [1, 1]], dtype=bool), chunks=1)
    >>> full_test_in(m, m, chunk_mb=1.0, budget=2**20).compute().tolist()
    [[2.0, 1.0], [1.0, 1.0]]
    """
    n_trials, n_train = mask.shape
    plan = plan_block_chunks(1, n_train, test_correct.shape[1], chunk_mb=chunk_mb)
    tc = trial_chunk(n_trials, max(plan.train, plan.test), 4, budget)
    with quiet_blockwise():
        partial = da.blockwise(
            _products_block, "tij", rechunk(mask, (tc, plan.train)), "ti", rechunk(test_correct, (tc, plan.test)), "tj",
            adjust_chunks={"t": 1}, dtype=np.float32, concatenate=True,
        )
    return sum_over_trials(partial)

