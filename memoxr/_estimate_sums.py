"""The estimator's sufficient sums, their lazy dask graphs, and the store variables made from them.

Everything the Feldman–Zhang estimator needs from the trials is a handful of
sums that add up over trials (see :mod:`memoxr._estimator_kernels`). An
estimate store keeps them, so new trials are added by summing the new trials
only (:func:`memoxr.incremental.append_estimate`):

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

Standard errors
---------------
``mem`` and ``infl`` are each a difference of two proportions measured on
disjoint sets of independent trials (those with the sample and those
without), so their standard error is that of a difference of two independent
proportions (the Wald form)::

    p_in = correct_in / n_in,  p_out = correct_out / n_out
    se   = sqrt(p_in * (1 - p_in) / n_in + p_out * (1 - p_out) / n_out)

stored as ``tr_mem_se(train_id)`` and ``influence_se(class, train_sample,
test_sample)``; NaN where the estimate is (``n_in == 0`` or ``n_out == 0``).
It is 0 when both proportions are 0 or 1 (a known limit of the Wald form with
few trials); the bootstrap intervals of :mod:`memoxr._bootstrap` do not rely on it.
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

from . import _estimator_kernels as _k
from .io.chunks import BlockChunks, plan_block_chunks
from .io.schema import CLASS, TEST, TEST_ID, TRAIN, TRAIN_ID

#: The sums an estimate store keeps (``test_correct_in_full`` only beside ``influence_full``).
SUM_NAMES = ("n_in", "n_out", "train_correct_in", "train_correct_out", "test_correct_total", "test_correct_in")


@dataclass(frozen=True)
class TrialSums:
    """The sufficient sums of some trials; adding two gives the sums of both sets of trials."""

    n_trials: int
    train: np.ndarray  # (3, train_id) float64: n_in, hit_in (correct with i in), hit_all (correct overall)
    test_all: np.ndarray  # (test_id,) float64: correct on j over all trials
    test_in: da.Array  # (class, train_sample, test_sample) float32, padding 0
    test_in_full: da.Array | None = None  # (train_id, test_id) float32

    def __add__(self, other: TrialSums) -> TrialSums:
        full = None
        if self.test_in_full is not None and other.test_in_full is not None:
            full = self.test_in_full + other.test_in_full.rechunk(self.test_in_full.chunks)
        return TrialSums(
            self.n_trials + other.n_trials,
            self.train + other.train,
            self.test_all + other.test_all,
            self.test_in + other.test_in.rechunk(self.test_in.chunks),  # exact: whole numbers below 2**24
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
    """Trials per chunk so that a ``(trials, width)`` block stays within ``budget`` bytes."""
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
    """Classes per product task: as few as give a sizeable product, at most ``plan.cls``, even sizes."""
    per_class = max(1, trials * plan.train * plan.test)
    wanted = max(1, -(-MIN_TASK_PRODUCTS // per_class))
    return even_sizes(n_class, min(plan.cls, wanted))


@contextlib.contextmanager
def quiet_blockwise() -> Iterator[None]:
    """Silence dask's note that a product has more output chunks than inputs: that is the plan."""
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
    """
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
    (:func:`memoxr._estimator_kernels.class_products`), summed over the chunks
    of trials if several. Trial chunks and groups of classes have even sizes,
    so that threads get even work. The result is float32 (exact whole
    numbers), 0 on padding, chunked by ``plan``.
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
            da.blockwise(_gather_block, "tci", x.rechunk((read, -1)), "tn", index, "ci", dtype=bool, concatenate=True)
            for x, index in ((mask, train_index_da), (test_correct, test_index_da))
        )
    # Products: a group's bool operands within the budget (their float32 copies are bounded inside).
    trials = even_sizes(n_trials, trial_chunk(n_trials, max(groups) * (plan.train + plan.test), 1, budget))
    rows, cols = rows.rechunk((trials, groups, plan.train)), cols.rechunk((trials, groups, plan.test))
    with quiet_blockwise():
        partial = da.blockwise(
            _class_products_block, "tcij", rows, "tci", cols, "tcj", train_index_da, "ci", test_index_da, "cj",
            max_operand_bytes=budget, adjust_chunks={"t": 1}, dtype=np.float32,
        )
    return sum_over_trials(partial).rechunk((plan.cls, plan.train, plan.test))


def full_test_in(mask: da.Array, test_correct: da.Array, chunk_mb: float, budget: int) -> da.Array:
    """``test_in_full(train_id, test_id)``: ``mask.T @ test_correct`` over all trials, lazily, float32."""
    n_trials, n_train = mask.shape
    plan = plan_block_chunks(1, n_train, test_correct.shape[1], chunk_mb=chunk_mb)
    tc = trial_chunk(n_trials, max(plan.train, plan.test), 4, budget)
    with quiet_blockwise():
        partial = da.blockwise(
            _products_block, "tij", mask.rechunk((tc, plan.train)), "ti", test_correct.rechunk((tc, plan.test)), "tj",
            adjust_chunks={"t": 1}, dtype=np.float32, concatenate=True,
        )
    return sum_over_trials(partial)


# ---------------------------------------------------------------------------------------------
# From sums to store variables


def _finalize_block(test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int) -> np.ndarray:
    return _k.influence_from_sums_f32(test_in, test_all, n_in, n_trials)


def _se_block(test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int) -> np.ndarray:
    return _k.influence_se_from_sums_f32(test_in, test_all, n_in, n_trials)


def _from_sums(block: Any, test_in: da.Array, test_all: np.ndarray, n_in: np.ndarray, n_trials: int) -> da.Array:
    """``block(test_in, test_all, n_in, n_trials)`` chunk by chunk, over 2-D or ``(class, ...)`` 3-D sums."""
    if test_in.ndim == 2:
        return da.blockwise(
            block, "ij", test_in, "ij", da.from_array(test_all, chunks=(test_in.chunks[1],)), "j",
            da.from_array(n_in, chunks=(test_in.chunks[0],)), "i", n_trials=n_trials, dtype=np.float32,
        )
    return da.blockwise(
        block, "cij", test_in, "cij", da.from_array(test_all, chunks=test_in.chunks[::2]), "cj",
        da.from_array(n_in, chunks=test_in.chunks[:2]), "ci", n_trials=n_trials, dtype=np.float32,
    )


def store_variables(sums: TrialSums, train_index: np.ndarray, test_index: np.ndarray) -> dict[str, tuple]:
    """The estimate and its sums as store variables ``name -> (dims, data)``; influence ones lazy.

    ``influence`` and ``influence_se`` (and ``influence_full``) from the sums,
    ``tr_mem`` and ``tr_mem_se``, and the sums themselves (:data:`SUM_NAMES`).
    """
    n_trials = sums.n_trials
    n_in, hit_in, hit_all = sums.train
    n_out = n_trials - n_in
    # Padding: n_in = 0 for padded train rows (a NaN row), NaN test totals for padded test columns.
    n_in_pad = np.where(train_index >= 0, n_in[np.maximum(train_index, 0)], 0.0)
    test_all_pad = np.where(test_index >= 0, sums.test_all[np.maximum(test_index, 0)], np.nan)
    within = (CLASS, TRAIN, TEST)
    variables = {
        "influence": (within, _from_sums(_finalize_block, sums.test_in, test_all_pad, n_in_pad, n_trials)),
        "influence_se": (within, _from_sums(_se_block, sums.test_in, test_all_pad, n_in_pad, n_trials)),
        "tr_mem": ((TRAIN_ID,), _k.memorization_from_sums(sums.train, n_trials)),
        "tr_mem_se": ((TRAIN_ID,), standard_error(hit_in, n_in, hit_all - hit_in, n_out)),
        "n_in": ((TRAIN_ID,), n_in.astype(np.int64)),
        "n_out": ((TRAIN_ID,), n_out.astype(np.int64)),
        "train_correct_in": ((TRAIN_ID,), hit_in.astype(np.int64)),
        "train_correct_out": ((TRAIN_ID,), (hit_all - hit_in).astype(np.int64)),
        "test_correct_total": ((TEST_ID,), sums.test_all.astype(np.int64)),
        "test_correct_in": (within, sums.test_in),
    }
    if sums.test_in_full is not None:
        full = _from_sums(_finalize_block, sums.test_in_full, sums.test_all, n_in, n_trials)
        variables["influence_full"] = ((TRAIN_ID, TEST_ID), full)
        variables["test_correct_in_full"] = ((TRAIN_ID, TEST_ID), sums.test_in_full)
    return variables


DESCRIPTIONS = {
    "influence_se": "standard error of influence: sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)",
    "tr_mem_se": "standard error of tr_mem: sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)",
    "n_in": "trials whose subset holds the train sample",
    "n_out": "trials whose subset lacks the train sample",
    "train_correct_in": "trials right on the train sample, among those holding it",
    "train_correct_out": "trials right on the train sample, among those lacking it",
    "test_correct_total": "trials right on the test sample",
    "test_correct_in": "trials right on the test sample among those holding the train sample; 0 padding",
    "test_correct_in_full": "trials right on the test sample among those holding the train sample",
}


def sums_from_store(ds: Any) -> TrialSums:
    """The :class:`TrialSums` an estimate store keeps (its variables as read, lazily for the big ones)."""
    n_in = ds["n_in"].values.astype(np.float64)
    hit_in = ds["train_correct_in"].values.astype(np.float64)
    hit_all = hit_in + ds["train_correct_out"].values.astype(np.float64)
    full = ds["test_correct_in_full"].data if "test_correct_in_full" in ds.variables else None
    return TrialSums(
        int(ds.attrs["n_trials"]),
        np.stack([n_in, hit_in, hit_all]),
        ds["test_correct_total"].values.astype(np.float64),
        da.asarray(ds["test_correct_in"].transpose(CLASS, TRAIN, TEST).data),
        None if full is None else da.asarray(full),
    )


def estimate_dataset(
    sums: TrialSums, classes: np.ndarray, train_index: np.ndarray, test_index: np.ndarray,
    tr_labels: np.ndarray, tt_labels: np.ndarray, attrs: dict[str, Any],
) -> Any:
    """The influence store of an estimate: the schema's variables, the standard errors and the sums."""
    from .io.schema import influence_dataset

    variables = store_variables(sums, train_index, test_index)
    ds = influence_dataset(
        variables.pop("influence")[1], train_index, test_index, classes=classes, tr_mem=variables.pop("tr_mem")[1],
        tr_labels=tr_labels, tt_labels=tt_labels, attrs={**attrs, "n_trials": int(sums.n_trials)},
    )
    for name, variable in variables.items():
        ds[name] = variable
        if name in DESCRIPTIONS:
            ds[name].attrs["description"] = DESCRIPTIONS[name]
    ds["influence"].attrs["formula"] = "mean(test_correct | i in S) - mean(test_correct | i not in S)"
    ds["tr_mem"].attrs["formula"] = "mean(train_correct | i in S) - mean(train_correct | i not in S)"
    if "influence_full" in ds:
        ds["influence_full"].attrs["description"] = "influence of every train sample on every test sample"
    return ds
