"""The estimator's dask graph: from checked trial records to a lazy influence store.

:func:`estimate` reads only what the store's shape depends on (see
:mod:`memoxr.estimate.trials`): metadata, the labels and, for an npz, its
sha256. Everything else, the per-sample sums included, is a dask graph that
reads each chunk of the records when the store is computed or written.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..compute.progress import deprecated_show_progress
from ..compute.scheduler import rechunk
from ..errors import MemoxrInputError
from ..io.chunks import (
    DEFAULT_CHUNK_MB,
    BlockChunks,
    BlockChunksLike,
    as_block_chunks,
    plan_block_chunks,
    validate_mb,
)
from ..io.location import StorageOptions, locate
from ..io.schema import INFLUENCE_COORDS, pad_indices, promote_coords
from . import kernels as _k
from .sums import TrialSums, class_test_in, full_test_in
from .trials import Records, read_records
from .variables import estimate_dataset

__all__ = ["DEFAULT_SAMPLE_ORDER", "DegenerateSampleWarning", "class_indices", "estimate", "records_sums"]

#: What :func:`estimate` accepts as trial records.
TrialInput = str | os.PathLike[str] | Mapping[str, Any] | xr.Dataset
#: Default name of the sample order: the order of the trial records themselves.
DEFAULT_SAMPLE_ORDER = "trials"
ESTIMATOR_NAME = "feldman-zhang subsampling"


class DegenerateSampleWarning(UserWarning):
    """Some train samples are in every trial's subset or in none: their estimates are NaN.

    >>> issubclass(DegenerateSampleWarning, UserWarning)
    True
    """


def estimate(
    trials: TrialInput,
    *,
    full: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunksLike | None = None,
    sample_order: str | None = None,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Estimate memorization and influence from trial records, as a lazy influence store.

    Dims contract: the trial records (see :mod:`memoxr.estimate.trials`) are
    ``(trial, train_id)`` and ``(trial, test_id)``; the result is the influence
    store of ``memoxr convert``: ``influence(class, train_sample, test_sample)``
    float32 (within-class blocks, NaN-padded), ``memorization(class,
    train_sample)``, ``train_index``, ``test_index``, ``train_count``,
    ``test_count``, ``tr_mem(train_id)``, ``tr_labels(train_id)``,
    ``tt_labels(test_id)``, and with ``full=True`` also
    ``influence_full(train_id, test_id)`` float32.

    With ``n_in(i) = sum_t mask[t, i]`` and ``n_out(i) = n_trials - n_in(i)``::

        mem(i)     = sum_t mask*train_correct[t, i] / n_in(i) - sum_t (1-mask)*train_correct[t, i] / n_out(i)
        infl(i, j) = (mask.T @ test_correct)[i, j] / n_in(i) - ((1-mask).T @ test_correct)[i, j] / n_out(i)

    Lazy: the call reads the records' metadata (keys, dtypes, shapes), the
    labels ``tr_labels`` and ``tt_labels`` (they lay out the classes), the
    recorded sample order, and for an ``.npz`` its sha256 (one streamed read
    of the file). Every other variable, ``tr_mem`` and the sums included, is
    a dask graph: the records are read chunk by chunk when the result is
    computed or written, and memory is bounded by ``chunk_mb``-sized chunks.
    Values other than 0/1 raise :class:`~memoxr.errors.MemoxrInputError`
    then, naming the key, trial and sample. memoxr's writers compute with one
    BLAS thread per dask thread (:func:`memoxr.compute.blas.blas_threads_for_dask`);
    computing it yourself with dask's threaded scheduler, wrap the call in
    the same context manager.

    A train sample in every trial's subset or in none gets NaN memorization and
    a NaN influence row, with a :class:`DegenerateSampleWarning` issued when
    the sums are computed (on a ``distributed`` cluster: in the worker's log).

    Parameters
    ----------
    trials : path, mapping or xarray.Dataset
        Trial records: ``.npz``, Zarr store, or arrays ``mask``, ``train_correct``,
        ``test_correct``, ``tr_labels``, ``tt_labels`` (numpy or dask).
    full : bool
        Also compute ``influence_full(train_id, test_id)``, across classes.
    chunk_mb : float
        Target size in MB of one chunk of the influence and of the trial blocks.
    chunks : BlockChunks or tuple of 3 ints, optional
        Explicit ``(class, train_sample, test_sample)`` chunks of ``influence``.
    sample_order : str, optional
        Name of the order the records' samples follow, kept in the attrs.
        Default: the order the records carry (Dataset or Zarr attribute, npz
        ``sample_order`` key, as ``trials-from-runs`` writes), else ``"trials"``.
    show_progress : bool, optional
        Deprecated and without effect (nothing is computed here): wrap the
        computation in ``with memoxr.progress():`` instead.
    bootstrap : int
        Replicates of the trial bootstrap (0: none): adds percentile
        intervals ``tr_mem_ci_low/high`` and ``influence_ci_low/high``
        (see :mod:`memoxr.estimate.bootstrap`).
    confidence : float
        Coverage of the bootstrap intervals.
    seed : int
        Seed of the bootstrap resampling (the same seed, the same intervals).

    Returns
    -------
    xarray.Dataset
        Influence store; attrs ``schema``, ``schema_version``, ``source_name``,
        ``source_sha256``, ``memoxr_version``, ``sample_order``,
        ``ignored_keys``, ``estimator`` and ``n_trials``. Beside the schema's
        variables: the standard errors ``tr_mem_se(train_id)`` and
        ``influence_se(class, train_sample, test_sample)`` and the sufficient
        sums ``n_in``, ``n_out``, ``train_correct_in``, ``train_correct_out``,
        ``test_correct_total``, ``test_correct_in`` (see
        :mod:`memoxr.estimate.sums`), which
        :func:`memoxr.estimate.incremental.append_estimate` adds new trials to.

    Raises
    ------
    MemoxrInputError
        Here: missing keys; wrong dims or shapes; a dtype other than bool,
        integer or float; labels that are not whole numbers >= 0; a
        non-positive ``chunk_mb``. When computed: values other than 0/1.

    Examples
    --------
    >>> import numpy as np, memoxr.estimate as me
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> ds = me.estimate(records)
    >>> ds["tr_mem"].values.tolist(), ds["influence"].values[0].round(2).tolist()
    ([1.0, 1.0], [[1.0], [0.0]])
    """
    with deprecated_show_progress(show_progress, "estimate"):
        return estimate_with_sums(locate(trials, storage_options), full=full, chunk_mb=chunk_mb, chunks=chunks,
                                  sample_order=sample_order, bootstrap=bootstrap, confidence=confidence,
                                  seed=seed, sums_in_memory=False)


def estimate_with_sums(
    trials: TrialInput, *, full: bool = False, chunk_mb: float = DEFAULT_CHUNK_MB, chunks: BlockChunksLike | None = None,
    sample_order: str | None = None, bootstrap: int = 0,
    confidence: float = 0.95, seed: int = 0, sums_in_memory: bool = True,
) -> xr.Dataset:
    """:func:`estimate`, with the per-sample sums computed now when ``sums_in_memory`` (one pass over
    ``mask``, ``train_correct`` and ``test_correct``): for writers that compute the influence a block at
    a time, so that no block reads the records again for them.

    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> ds = estimate_with_sums(records)
    >>> ds["n_in"].values.tolist(), ds["influence"].chunks is not None
    ([2, 2], True)
    """
    chunk_mb = validate_chunk_mb(chunk_mb)
    validate_bootstrap(bootstrap, confidence)
    records = read_records(trials, chunk_mb)  # a path was resolved to a Location by the public caller
    classes, train_index, test_index = class_indices(records.tr_labels, records.tt_labels)
    plan = (as_block_chunks(chunks) if chunks is not None
            else plan_block_chunks(len(classes), train_index.shape[1], test_index.shape[1], chunk_mb=chunk_mb))
    sums = with_degenerate_warning(records_sums(records, train_index, test_index, plan, chunk_mb=chunk_mb, full=full))
    if sums_in_memory:
        from ..compute.progress import compute

        train, test_all = compute(sums.train, sums.test_all)
        sums = dataclasses.replace(sums, train=train, test_all=test_all)
    ds = estimate_dataset(
        sums, classes, train_index, test_index, records.tr_labels, records.tt_labels,
        attrs={
            "source_name": records.source_name,
            "source_sha256": records.sha256,
            "sample_order": sample_order or records.recorded_order or DEFAULT_SAMPLE_ORDER,
            "ignored_keys": records.ignored_keys,
            "estimator": ESTIMATOR_NAME,
        },
    )
    if bootstrap:
        from .bootstrap import add_intervals

        ds = add_intervals(ds, records.mask, records.train_correct, records.test_correct, replicates=bootstrap,
                           confidence=confidence, seed=seed, chunk_mb=chunk_mb)
    # Indices and counts are coordinates, as in an opened influence store (data variables on disk).
    return promote_coords(ds, INFLUENCE_COORDS)


def class_indices(tr_labels: np.ndarray, tt_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes (distinct labels, ascending) and their padded train and test index rows.

    >>> classes, train, test = class_indices(np.array([1, 0, 1]), np.array([0]))
    >>> classes.tolist(), train.tolist(), test.tolist()
    ([0, 1], [[1, -1], [0, 2]], [[0], [-1]])
    """
    classes = np.unique(np.concatenate([tr_labels, tt_labels]))
    train_lists = [np.flatnonzero(tr_labels == k) for k in classes]
    test_lists = [np.flatnonzero(tt_labels == k) for k in classes]
    max_train = max(len(i) for i in train_lists)
    max_test = max(1, max(len(i) for i in test_lists))
    return classes, pad_indices(train_lists, max_train), pad_indices(test_lists, max_test)


# ---------------------------------------------------------------------------------------------
# Sums over trials, lazily


def _trial_sums_block(mask: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return _k.trial_sums(mask, correct)[None]


def _count_not_binary(x: np.ndarray) -> np.ndarray:
    return np.array([[_k.count_not_binary(x)]], dtype=np.int64)


def per_sample_sums(mask: da.Array, train_correct: da.Array, test_correct: da.Array) -> tuple[da.Array, da.Array]:
    """Lazy ``(3, train_id)`` sums ``n_in, hit_in, hit_all`` and ``(test_id,)`` test totals (float64).

    >>> m = da.from_array(np.array([[1, 0], [1, 1]]), chunks=1)
    >>> train, test_all = per_sample_sums(m, m, m[:, :1])
    >>> train.compute().tolist(), test_all.compute().tolist()
    ([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]], [2.0])
    """
    train = da.blockwise(
        _trial_sums_block, "tkn", mask, "tn", train_correct, "tn",
        new_axes={"k": 3}, adjust_chunks={"t": 1}, dtype=np.float64,
    ).sum(axis=0)
    test_all = test_correct.sum(axis=0, dtype=np.float64)  # no float64 copy of a chunk
    return train, test_all


def pass_sums_graph(mask: da.Array, train_correct: da.Array, test_correct: da.Array) -> tuple[Any, Any, Any]:
    """The per-sample sums and the counts of non-0/1 values, lazily (what a cost plan counts).

    >>> m = da.from_array(np.array([[1, 2], [0, 1]]), chunks=1)
    >>> int(pass_sums_graph(m, m, m)[2]["mask"].compute())
    1
    """
    train, test_all = per_sample_sums(mask, train_correct, test_correct)
    bad = {
        key: da.map_blocks(_count_not_binary, x, chunks=((1,) * x.numblocks[0], (1,) * x.numblocks[1]), dtype=np.int64).sum()
        for key, x in (("mask", mask), ("train_correct", train_correct), ("test_correct", test_correct))
    }
    return train, test_all, bad


def records_sums(
    records: Records, train_index: np.ndarray, test_index: np.ndarray, plan: BlockChunks, *,
    chunk_mb: float, full: bool = False,
) -> TrialSums:
    """The records' sufficient sums, all lazy.

    >>> from memoxr.estimate.trials import read_records
    >>> mask = np.array([[1, 0], [0, 1], [1, 1]])
    >>> r = read_records({"mask": mask, "train_correct": mask, "test_correct": mask[:, :1],
    ...                   "tr_labels": np.array([0, 0]), "tt_labels": np.array([0])}, chunk_mb=1.0)
    >>> _, train, test = class_indices(r.tr_labels, r.tt_labels)
    >>> sums = records_sums(r, train, test, BlockChunks(1, 2, 1), chunk_mb=1.0)
    >>> sums.n_trials, sums.test_in.compute().tolist()
    (3, [[[2.0], [1.0]]])
    """
    mask, train_correct, test_correct = records.mask, records.train_correct, records.test_correct
    train, test_all = per_sample_sums(mask, train_correct, test_correct)
    budget = int(chunk_mb * 2**20)
    test_in = class_test_in(mask, test_correct, train_index, test_index, plan, budget)
    test_in_full = full_test_in(mask, test_correct, chunk_mb, budget) if full else None
    return TrialSums(mask.shape[0], train, test_all, test_in, test_in_full)


def warn_degenerate(n_in: np.ndarray, n_trials: int) -> None:
    """Warn (:class:`DegenerateSampleWarning`) when a sample is in every trial's subset or in none.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_degenerate(np.array([0.0, 1.0, 2.0]), 2)
    >>> str(caught[0].message).split(":")[0]
    "1 train sample(s) are in every trial's subset (first"
    """
    always, never = np.flatnonzero(n_in == n_trials), np.flatnonzero(n_in == 0)
    if len(always) or len(never):
        warnings.warn(
            f"{len(always)} train sample(s) are in every trial's subset (first: {always[:5].tolist()}) and "
            f"{len(never)} in none (first: {never[:5].tolist()}): their memorization and influence rows "
            "are NaN (no trial to compare with); use more trials or a subset fraction further from 0 and 1",
            DegenerateSampleWarning,
            stacklevel=3,
        )


def _warn_degenerate_block(train: np.ndarray, n_trials: int) -> np.ndarray:
    warn_degenerate(train[0], n_trials)
    return train


def with_degenerate_warning(sums: TrialSums) -> TrialSums:
    """``sums`` whose per-sample sums run :func:`warn_degenerate` when they are computed.

    >>> import warnings
    >>> sums = with_degenerate_warning(TrialSums(2, np.array([[2.0], [1.0], [1.0]]), np.zeros(1), da.zeros((1, 1, 1))))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = sums.train.compute()
    >>> [w.category.__name__ for w in caught]
    ['DegenerateSampleWarning']
    """
    whole = rechunk(da.asarray(sums.train), -1)
    train = whole.map_blocks(_warn_degenerate_block, n_trials=sums.n_trials, dtype=whole.dtype)
    return dataclasses.replace(sums, train=train)


# ---------------------------------------------------------------------------------------------
# Argument checks


def validate_chunk_mb(chunk_mb: float) -> float:
    """``chunk_mb`` as a positive float, or an error naming it.

    >>> validate_chunk_mb(8)
    8.0
    """
    return validate_mb("chunk_mb", chunk_mb)


def validate_bootstrap(bootstrap: int, confidence: float) -> None:
    """A whole number of replicates >= 0 and a confidence in (0, 1), or an error naming them.

    >>> validate_bootstrap(-1, 0.95)
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: bootstrap: expected a whole number of replicates >= 0, received -1
    """
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 0:
        raise MemoxrInputError(f"bootstrap: expected a whole number of replicates >= 0, received {bootstrap!r}")
    if not isinstance(confidence, float | int) or not 0 < confidence < 1:
        raise MemoxrInputError(f"confidence: expected a number between 0 and 1 (exclusive), received {confidence!r}")
