"""From the estimator's sums (:mod:`memoxr.estimate.sums`) to the estimate store's variables, lazily.

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
few trials); the bootstrap intervals of :mod:`memoxr.estimate.bootstrap` do not rely on it.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..compute.scheduler import rechunk
from ..io.schema import CLASS, TEST, TEST_ID, TRAIN, TRAIN_ID
from . import kernels as _k
from .sums import TrialSums, standard_error


def _finalize_block(test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int) -> np.ndarray:
    return _k.influence_from_sums_f32(test_in, test_all, n_in, n_trials)


def _se_block(test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int) -> np.ndarray:
    return _k.influence_se_from_sums_f32(test_in, test_all, n_in, n_trials)


def _take_padded(index: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
    return np.where(index >= 0, values[np.maximum(index, 0)], fill)


def padded(values: Any, index: np.ndarray, chunks: Any, fill: float) -> da.Array:
    """``values[index]`` where ``index >= 0``, else ``fill``, lazily, in ``chunks`` (float64).

    >>> padded(np.array([5.0, 6.0]), np.array([[1, -1]]), -1, np.nan).compute().tolist()
    [[6.0, nan]]
    """
    whole = rechunk(da.asarray(values).astype(np.float64), -1)
    return da.blockwise(
        _take_padded, "ci", da.from_array(index, chunks=chunks), "ci", whole, "z", fill=fill,
        dtype=np.float64, concatenate=True,
    )


def _from_sums(block: Any, test_in: da.Array, test_all: Any, n_in: Any, n_trials: int) -> da.Array:
    """``block(test_in, test_all, n_in, n_trials)`` chunk by chunk, over 2-D or ``(class, ...)`` 3-D sums."""
    if test_in.ndim == 2:
        return da.blockwise(
            block, "ij", test_in, "ij", rechunk(da.asarray(test_all), (test_in.chunks[1],)), "j",
            rechunk(da.asarray(n_in), (test_in.chunks[0],)), "i", n_trials=n_trials, dtype=np.float32,
        )
    return da.blockwise(
        block, "cij", test_in, "cij", rechunk(da.asarray(test_all), test_in.chunks[::2]), "cj",
        rechunk(da.asarray(n_in), test_in.chunks[:2]), "ci", n_trials=n_trials, dtype=np.float32,
    )


def within_class_influence(sums: TrialSums, train_index: np.ndarray, test_index: np.ndarray) -> da.Array:
    """``influence(class, train_sample, test_sample)`` from the sums, lazily (NaN padding).

    >>> sums = TrialSums(2, np.array([[1.0], [1.0], [1.0]]), np.array([1.0]), da.ones((1, 1, 1), dtype=np.float32))
    >>> within_class_influence(sums, np.array([[0]]), np.array([[0]])).compute().tolist()
    [[[1.0]]]
    """
    n_in_pad = padded(da.asarray(sums.train)[0], train_index, sums.test_in.chunks[:2], 0.0)
    test_all_pad = padded(sums.test_all, test_index, sums.test_in.chunks[::2], np.nan)
    return _from_sums(_finalize_block, sums.test_in, test_all_pad, n_in_pad, sums.n_trials)


def _tr_mem_se_block(train: np.ndarray, n_trials: int) -> np.ndarray:
    n_in, hit_in, hit_all = train
    return standard_error(hit_in, n_in, hit_all - hit_in, n_trials - n_in)


def memorization(train: Any, n_trials: int) -> da.Array:
    """``tr_mem(train_id)`` from the ``(3, train_id)`` sums, lazily (:func:`~memoxr.estimate.kernels.memorization_from_sums`).

    >>> memorization(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]), 2).compute().tolist()
    [1.0, nan]
    """
    whole = rechunk(da.asarray(train), -1)
    return whole.map_blocks(_k.memorization_from_sums, n_trials=n_trials, drop_axis=0, dtype=np.float64)


def store_variables(sums: TrialSums, train_index: np.ndarray, test_index: np.ndarray) -> dict[str, tuple]:
    """The estimate and its sums as store variables ``name -> (dims, data)``, all lazy.

    ``influence`` and ``influence_se`` (and ``influence_full``) from the sums,
    ``tr_mem`` and ``tr_mem_se``, and the sums themselves (:data:`~memoxr.estimate.sums.SUM_NAMES`).

    >>> sums = TrialSums(2, np.array([[1.0], [1.0], [1.0]]), np.array([1.0]), da.ones((1, 1, 1), dtype=np.float32))
    >>> variables = store_variables(sums, np.array([[0]]), np.array([[0]]))
    >>> variables["tr_mem"][1].compute().tolist(), variables["n_out"][1].compute().tolist()
    ([1.0], [1])
    """
    n_trials = sums.n_trials
    train = rechunk(da.asarray(sums.train), -1)
    test_all = rechunk(da.asarray(sums.test_all), -1)
    n_in, hit_in, hit_all = train[0], train[1], train[2]
    # Padding: n_in = 0 for padded train rows (a NaN row), NaN test totals for padded test columns.
    n_in_pad = padded(n_in, train_index, sums.test_in.chunks[:2], 0.0)
    test_all_pad = padded(test_all, test_index, sums.test_in.chunks[::2], np.nan)
    within = (CLASS, TRAIN, TEST)
    variables = {
        "influence": (within, _from_sums(_finalize_block, sums.test_in, test_all_pad, n_in_pad, n_trials)),
        "influence_se": (within, _from_sums(_se_block, sums.test_in, test_all_pad, n_in_pad, n_trials)),
        "tr_mem": ((TRAIN_ID,), memorization(train, n_trials)),
        "tr_mem_se": ((TRAIN_ID,), train.map_blocks(_tr_mem_se_block, n_trials=n_trials, drop_axis=0, dtype=np.float64)),
        "n_in": ((TRAIN_ID,), n_in.astype(np.int64)),
        "n_out": ((TRAIN_ID,), (n_trials - n_in).astype(np.int64)),
        "train_correct_in": ((TRAIN_ID,), hit_in.astype(np.int64)),
        "train_correct_out": ((TRAIN_ID,), (hit_all - hit_in).astype(np.int64)),
        "test_correct_total": ((TEST_ID,), test_all.astype(np.int64)),
        "test_correct_in": (within, sums.test_in),
    }
    if sums.test_in_full is not None:
        full = _from_sums(_finalize_block, sums.test_in_full, test_all, n_in, n_trials)
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
    """The :class:`TrialSums` an estimate store keeps (the small sums read now, in one pass; the big ones lazy).

    >>> import memoxr.estimate as me
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> ds = me.estimate(records)
    >>> sums = sums_from_store(ds)
    >>> sums.n_trials, sums.train.tolist()
    (4, [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]])
    """
    from ..compute.progress import compute

    small = compute(*(ds[name] for name in ("n_in", "train_correct_in", "train_correct_out", "test_correct_total")))
    n_in, hit_in, hit_out, test_all = (np.asarray(v.values, dtype=np.float64) for v in small)
    hit_all = hit_in + hit_out
    full = ds["test_correct_in_full"].data if "test_correct_in_full" in ds.variables else None
    return TrialSums(
        int(ds.attrs["n_trials"]),
        np.stack([n_in, hit_in, hit_all]),
        test_all,
        da.asarray(ds["test_correct_in"].transpose(CLASS, TRAIN, TEST).data),
        None if full is None else da.asarray(full),
    )


def estimate_dataset(
    sums: TrialSums, classes: np.ndarray, train_index: np.ndarray, test_index: np.ndarray,
    tr_labels: np.ndarray, tt_labels: np.ndarray, attrs: dict[str, Any],
) -> Any:
    """The influence store of an estimate: the schema's variables, the standard errors and the sums, lazily.

    >>> sums = TrialSums(2, np.array([[1.0], [1.0], [1.0]]), np.array([1.0]), da.ones((1, 1, 1), dtype=np.float32))
    >>> ds = estimate_dataset(sums, np.array([0]), np.array([[0]]), np.array([[0]]), np.array([0]), np.array([0]), {})
    >>> ds.attrs["n_trials"], ds["influence"].values.tolist()
    (2, [[[1.0]]])
    """
    from ..io.schema import influence_dataset

    variables = store_variables(sums, train_index, test_index)
    tr_mem = variables.pop("tr_mem")[1]
    placeholder = np.full(tr_mem.shape, np.nan)  # the schema's builder reads tr_mem; the lazy one replaces it
    ds = influence_dataset(
        variables.pop("influence")[1], train_index, test_index, classes=classes, tr_mem=placeholder,
        tr_labels=tr_labels, tt_labels=tt_labels, attrs={**attrs, "n_trials": int(sums.n_trials)},
    )
    ds["tr_mem"] = ds["tr_mem"].copy(data=tr_mem)
    ds["memorization"] = ds["memorization"].copy(data=padded(tr_mem, train_index, -1, np.nan))
    for name, variable in variables.items():
        ds[name] = variable
        if name in DESCRIPTIONS:
            ds[name].attrs["description"] = DESCRIPTIONS[name]
    ds["influence"].attrs["formula"] = "mean(test_correct | i in S) - mean(test_correct | i not in S)"
    ds["tr_mem"].attrs["formula"] = "mean(train_correct | i in S) - mean(train_correct | i not in S)"
    if "influence_full" in ds:
        ds["influence_full"].attrs["description"] = "influence of every train sample on every test sample"
    return ds
