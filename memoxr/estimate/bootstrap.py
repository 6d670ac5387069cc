"""Percentile bootstrap intervals of the Feldman–Zhang estimates, by resampling trials.

Replicate ``b`` draws ``n_trials`` trials with replacement: trial ``t`` is
taken ``w[b, t]`` times, ``w[b] ~ Multinomial(n_trials, 1 / n_trials)`` from
``numpy.random.default_rng(seed)``. The estimator of the replicate is the
estimator on the weighted trials (every sum over trials weighted by
``w[b, t]``; the weights sum to ``n_trials``)::

    n_in_b[i]      = sum_t w[b, t] mask[t, i]
    mem_b(i)       = sum_t w mask train_correct / n_in_b - sum_t w (1 - mask) train_correct / (n_trials - n_in_b)
    infl_b(i, j)   = sum_t w mask[t, i] test_correct[t, j] / n_in_b - (...) / (n_trials - n_in_b)

The interval at coverage ``confidence`` is the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` quantiles (numpy's ``linear`` rule) of the
replicates, replicates where ``n_in_b`` or ``n_out_b`` is 0 left out (NaN if
all are). Weighted sums are whole numbers below ``n_trials``: exact in float32.

Lazily, in bounded memory: the weights ``(replicates, n_trials)`` are held
once; each task handles a block of samples small enough that its
``replicates x block`` values fit the chunk budget.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..compute.scheduler import rechunk
from ..io.schema import CLASS, TEST, TRAIN, TRAIN_ID
from . import kernels as _k
from .sums import even_sizes, quiet_blockwise

__all__ = ["add_intervals", "bootstrap_weights", "nan_quantiles"]

#: Bytes per (replicate, sample) value a task holds at once: float32 sums, float64 estimates, their sort.
_BYTES_PER_VALUE = 32


def bootstrap_weights(n_trials: int, replicates: int, seed: int) -> np.ndarray:
    """``(replicates, n_trials)`` float32 counts of each trial in each resample (each row sums to ``n_trials``).

    >>> w = bootstrap_weights(5, 3, seed=0); w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_trials, np.full(n_trials, 1 / n_trials), size=replicates).astype(np.float32)


def nan_quantiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles along axis 0 ignoring NaN, numpy's ``linear`` rule (``np.nanquantile``), vectorised.

    Returns ``(len(qs), *x.shape[1:])`` float64; NaN where a column is all NaN.

    >>> nan_quantiles(np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]]), (0.5,)).tolist()
    [[2.0, 3.0]]
    """
    x = np.sort(np.asarray(x, dtype=np.float64), axis=0)  # NaN sort last
    count = (~np.isnan(x)).sum(axis=0)
    out = np.full((len(qs), *x.shape[1:]), np.nan)
    last = np.maximum(count - 1, 0)
    for k, q in enumerate(qs):
        position = q * last
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, last)
        frac = position - low
        below = np.take_along_axis(x, low[None], axis=0)[0]
        above = np.take_along_axis(x, high[None], axis=0)[0]
        out[k] = np.where(count > 0, below + (above - below) * frac, np.nan)
    return out


def _replicate_estimates(weights: np.ndarray, inside: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """``(replicates, i, j)`` estimates from ``inside (trial, i)`` and ``correct (trial, j)``, float64."""
    n_trials = inside.shape[0]
    inside, correct = inside.astype(np.float32), correct.astype(np.float32)
    n_in = (weights @ inside).astype(np.float64)[:, :, None]  # (b, i, 1)
    total = (weights @ correct).astype(np.float64)[:, None, :]  # (b, 1, j)
    hits = np.matmul(weights[:, None, :] * inside.T[None], correct).astype(np.float64)  # (b, i, j)
    n_out = n_trials - n_in
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = hits / n_in - (total - hits) / n_out
    return np.where((n_in > 0) & (n_out > 0), estimate, np.nan)


def _memorization_block(mask: np.ndarray, correct: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``(2, i)`` interval of each train sample's memorization, from all trials of a block of samples."""
    mask, correct = _k.as_bool(mask), _k.as_bool(correct)
    n_trials = mask.shape[0]
    w = weights
    n_in = (w @ mask.astype(np.float32)).astype(np.float64)
    hit_in = (w @ (mask & correct).astype(np.float32)).astype(np.float64)
    hit_all = (w @ correct.astype(np.float32)).astype(np.float64)
    return nan_quantiles(_k.memorization_from_sums(np.stack([n_in, hit_in, hit_all]), n_trials), qs)


def _influence_block(
    rows: np.ndarray, cols: np.ndarray, train_index: np.ndarray, test_index: np.ndarray,
    weights: np.ndarray, qs: tuple[float, ...], batch: int,
) -> np.ndarray:
    """``(2, class, i, j)`` intervals of a block of within-class pairs, from all trials."""
    n_class = rows.shape[1]
    out = np.full((len(qs), n_class, rows.shape[2], cols.shape[2]), np.nan, dtype=np.float32)
    for c in range(n_class):
        n_i, n_j = int((train_index[c] >= 0).sum()), int((test_index[c] >= 0).sum())
        if n_i == 0 or n_j == 0:
            continue
        inside, correct = rows[:, c, :n_i], cols[:, c, :n_j]
        replicates = np.concatenate([
            _replicate_estimates(weights[b : b + batch], inside, correct) for b in range(0, len(weights), batch)
        ])
        out[:, c, :n_i, :n_j] = nan_quantiles(replicates, qs)
    return out


def interval_blocks(replicates: int, budget: int, n_train: int, max_train: int, max_test: int) -> tuple[int, int, int]:
    """Samples per task: train samples for memorization, ``(train, test)`` pairs of a class for influence.

    Chosen so that ``replicates x samples x`` :data:`_BYTES_PER_VALUE` stays
    within ``budget`` (one sample at least).

    >>> interval_blocks(100, 2**20, 5000, 600, 90)
    (327, 18, 18)
    """
    per_sample = max(1, budget // (replicates * _BYTES_PER_VALUE))
    tj = min(max_test, max(1, int(np.sqrt(per_sample))))
    return min(n_train, per_sample), min(max_train, max(1, per_sample // tj)), tj


def _gather_block(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _k.gather_columns(x, index)


def add_intervals(
    ds: Any, mask: da.Array, train_correct: da.Array, test_correct: da.Array, *,
    replicates: int, confidence: float, seed: int, chunk_mb: float,
) -> Any:
    """``ds`` with ``tr_mem_ci_low/high(train_id)`` and ``influence_ci_low/high(class, train_sample, test_sample)``.

    ``ds`` is the estimate of these trial records (:func:`memoxr.estimate.estimate`);
    the intervals are lazy (dask), computed when the store is written.

    Examples
    --------
    >>> import memoxr.estimate as me
    >>> rng = np.random.default_rng(0)
    >>> mask = rng.random((40, 3)) < 0.5
    >>> records = {"mask": mask, "train_correct": mask, "test_correct": rng.random((40, 2)) < 0.5,
    ...            "tr_labels": np.zeros(3, int), "tt_labels": np.zeros(2, int)}
    >>> from memoxr.estimate.trials import read_records
    >>> r = read_records(records, 1.0)
    >>> ds = add_intervals(me.estimate(records), r.mask, r.train_correct, r.test_correct,
    ...                    replicates=50, confidence=0.9, seed=0, chunk_mb=1.0)
    >>> low, high = ds["tr_mem_ci_low"].values, ds["tr_mem_ci_high"].values
    >>> bool((low <= ds["tr_mem"].values).all() and (ds["tr_mem"].values <= high).all())
    True
    """
    n_trials, n_train = mask.shape
    budget = int(chunk_mb * 2**20)
    qs = ((1 - confidence) / 2, (1 + confidence) / 2)
    weights = bootstrap_weights(n_trials, replicates, seed)
    weights_da = da.from_array(weights, chunks=-1)  # one key, shared by every task
    train_index, test_index = ds["train_index"].values, ds["test_index"].values
    train_block, ti, tj = interval_blocks(replicates, budget, n_train, train_index.shape[1], test_index.shape[1])

    # Memorization: all trials of a block of train samples per task.
    train_blocks = even_sizes(n_train, train_block)
    with quiet_blockwise():
        mem = da.blockwise(
            _memorization_block, "qi", rechunk(mask, (-1, train_blocks)), "ti", rechunk(train_correct, (-1, train_blocks)),
            "ti", weights_da, "bt", qs=qs, new_axes={"q": len(qs)}, dtype=np.float64, concatenate=True,
        )

    # Influence: one class, a block of train rows and test columns per task, all trials.
    train_index_da = da.from_array(train_index, chunks=(1, ti))
    test_index_da = da.from_array(test_index, chunks=(1, tj))
    # Replicates per product: their (replicate, trial, i) weighted operand within the budget.
    batch = int(min(replicates, max(1, budget // max(1, 4 * n_trials * ti))))
    with quiet_blockwise():
        rows, cols = (
            rechunk(da.blockwise(_gather_block, "tci", x, "tn", index, "ci", dtype=bool, concatenate=True), {0: -1})
            for x, index in ((mask, train_index_da), (test_correct, test_index_da))
        )
        infl = rechunk(da.blockwise(
            _influence_block, "qcij", rows, "tci", cols, "tcj", train_index_da, "ci", test_index_da, "cj",
            weights_da, "bt", qs=qs, batch=batch, new_axes={"q": len(qs)}, dtype=np.float32, concatenate=True,
        ), (len(qs), *ds["influence"].data.chunks))

    ds = ds.copy()
    for k, side in enumerate(("low", "high")):
        ds[f"tr_mem_ci_{side}"] = ((TRAIN_ID,), mem[k])
        ds[f"influence_ci_{side}"] = ((CLASS, TRAIN, TEST), infl[k])
        for name in (f"tr_mem_ci_{side}", f"influence_ci_{side}"):
            ds[name].attrs["description"] = (
                f"{side} end of the {confidence:g} percentile bootstrap interval ({replicates} resamples of "
                f"the trials, seed {seed}); NaN where undefined"
            )
    ds.attrs.update(bootstrap_replicates=int(replicates), bootstrap_confidence=float(confidence),
                    bootstrap_seed=int(seed))
    return ds
