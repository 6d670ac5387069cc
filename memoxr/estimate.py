"""The Feldman–Zhang subsampling estimator on Dask: trial records in, an influence store out.

Trial records
-------------
Many models are trained, each on a random subset ``S_t`` of the train split
(Feldman & Zhang used 70%), and each is evaluated on every train and test
sample. The records of ``n_trials`` such runs are five arrays:

==================  ======================  =============================================
key                 dims (shape)            meaning
==================  ======================  =============================================
``mask``            ``(trial, train_id)``   bool or 0/1: train sample ``i`` is in ``S_t``
``train_correct``   ``(trial, train_id)``   0/1: model ``t`` right on train sample ``i``
``test_correct``    ``(trial, test_id)``    0/1: model ``t`` right on test sample ``j``
``tr_labels``       ``(train_id,)``         class label (whole number >= 0) of each train sample
``tt_labels``       ``(test_id,)``          class label of each test sample
==================  ======================  =============================================

They are read from an ``.npz`` archive (:func:`numpy.savez`, no pickle; loaded
whole, as npz members cannot be sliced), from a Zarr store (a group holding
arrays of these names, for example one written by :func:`write_trials` or by
``xarray.Dataset.to_zarr``; read lazily, chunk by chunk), or from a mapping or
:class:`xarray.Dataset` of numpy or dask arrays. Other keys are ignored (and
listed in the ``ignored_keys`` attribute). :func:`open_trials` opens a file as a
lazy Dataset.

Estimator
---------
With ``n_in(i) = sum_t mask[t, i]`` and ``n_out(i) = n_trials - n_in(i)``:

- ``mem(i) = mean_t(train_correct[t, i] | mask[t, i]) - mean_t(train_correct[t, i] | not mask[t, i])``;
- ``infl(i, j) = mean_t(test_correct[t, j] | mask[t, i]) - mean_t(test_correct[t, j] | not mask[t, i])``.

Both are computed from sums over trials (``mask.T @ test_correct`` and friends,
see :mod:`memoxr._estimator_kernels`), chunk by chunk, so memory is bounded by
the chunk sizes, not by the number of trials.

A train sample that is in every trial's subset or in none has no estimate: its
memorization (``tr_mem``) and its whole influence row are NaN, and a
:class:`DegenerateSampleWarning` names how many and which samples. Scores of
such a sample are NaN too (``memoxr.influence_scores`` with ``skipna=False``).

Output
------
The influence store of ``memoxr convert``, with exactly its schema (see
:mod:`memoxr.io.schema`): the influence of each train sample on the test samples
of its own class, ``influence(class, train_sample, test_sample)`` float32,
NaN-padded for ragged classes; ``memorization``, ``train_index``,
``test_index``, ``train_count``, ``test_count``, ``tr_mem``, ``tr_labels``,
``tt_labels``. Classes are the distinct labels, ascending; a class's samples
follow the split's order. With ``full=True`` the whole ``influence_full(train_id,
test_id)`` is added. Save it as a Zarr store (:func:`estimate_to_zarr`) or as an
FZ-layout ``.npz`` (:func:`write_fz_npz`); :func:`write_estimate` picks by suffix.

A Zarr estimate store also keeps, per train sample, ``n_in`` and ``n_out``,
the standard errors ``tr_mem_se`` and ``influence_se`` (of a difference of two
independent proportions: ``sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) /
n_out)``) and the sums the estimate is made of (:mod:`memoxr._estimate_sums`),
so that new trials can be added to it (:func:`memoxr.incremental.append_estimate`,
``memoxr estimate TRIALS OUT --append``); ``bootstrap=N`` adds percentile
intervals (:mod:`memoxr._bootstrap`).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

from . import _estimator_kernels as _k
from ._estimate_sums import MIN_TASK_PRODUCTS as MIN_TASK_PRODUCTS
from ._estimate_sums import TrialSums, class_test_in, estimate_dataset, full_test_in
from ._estimate_sums import class_groups as _class_groups  # noqa: F401  (the names tests and benchmarks use)
from ._estimate_sums import even_sizes as _even_sizes
from ._estimate_sums import trial_chunk as _trial_chunk
from .cli.options import dry_run_option, handle_errors, remote_options
from .compute.blas import blas_threads_for_dask
from .compute.progress import progress
from .errors import MemoxrInputError
from .io.chunks import DEFAULT_CHUNK_MB, BlockChunks, plan_block_chunks, validate_mb
from .io.encoding import influence_encoding
from .io.npz import file_sha256, load_npz_arrays
from .io.schema import CLASS, TEST_ID, TRAIN_ID, check_influence_dataset, pad_indices
from .io.storage import (
    StorageOptions,
    atomic_output,
    check_writable,
    file_exists,
    is_url,
    write_dataset,
)

__all__ = [
    "TRIAL",
    "TRIAL_VARIABLES",
    "DegenerateSampleWarning",
    "estimate",
    "estimate_command",
    "estimate_to_zarr",
    "open_trials",
    "write_estimate",
    "write_fz_npz",
    "write_trials",
]

TRIAL = "trial"
#: The trial records: key -> dims.
TRIAL_VARIABLES = {
    "mask": (TRIAL, TRAIN_ID),
    "train_correct": (TRIAL, TRAIN_ID),
    "test_correct": (TRIAL, TEST_ID),
    "tr_labels": (TRAIN_ID,),
    "tt_labels": (TEST_ID,),
}
_BINARY_KEYS = ("mask", "train_correct", "test_correct")
#: Default name of the sample order: the order of the trial records themselves.
DEFAULT_SAMPLE_ORDER = "trials"
ESTIMATOR_NAME = "feldman-zhang subsampling"


class DegenerateSampleWarning(UserWarning):
    """Some train samples are in every trial's subset or in none: their estimates are NaN."""


# ---------------------------------------------------------------------------------------------
# Reading trial records


def open_trials(path: str | os.PathLike[str], *, chunks: Any = None, storage_options: StorageOptions = None) -> xr.Dataset:
    """Open trial records (``.npz`` or Zarr store) as a Dataset of dask arrays.

    Dims contract: ``mask``, ``train_correct`` ``(trial, train_id)``;
    ``test_correct`` ``(trial, test_id)``; ``tr_labels`` ``(train_id,)``;
    ``tt_labels`` ``(test_id,)``. Only keys and shapes are checked here;
    :func:`estimate` validates the rest.

    Parameters
    ----------
    path : path
        ``.npz`` archive (loaded whole, never unpickled) or Zarr store (lazy).
    chunks : optional
        Dask chunks for the arrays; default: the Zarr chunks, or one chunk for npz.
    """
    arrays, _, _ = _read_arrays(path, storage_options)
    _validate_keys(arrays, str(path))
    _validate_shapes(arrays, str(path))
    variables = {}
    for key, dims in TRIAL_VARIABLES.items():
        data = arrays[key] if isinstance(arrays[key], da.Array) else da.asarray(arrays[key])
        if chunks is not None:
            data = data.rechunk(chunks)
        variables[key] = (dims, data)
    return xr.Dataset(variables, attrs={"source_name": Path(str(path)).name})


def _read_arrays(
    path: str | os.PathLike[str], storage_options: StorageOptions = None
) -> tuple[dict[str, Any], str, str | None]:
    """Arrays of an npz (numpy, after header checks) or a Zarr group (dask), a sha256, the recorded order."""
    source = str(path)
    so = storage_options if is_url(source) else None
    if is_url(source):
        is_npz = file_exists(source, storage_options=so)
    else:
        if not Path(source).exists():
            raise MemoxrInputError(f"trials {source!r} do not exist; expected an .npz file or a Zarr store")
        is_npz = Path(source).is_file()
    if is_npz:
        keys = [*TRIAL_VARIABLES, "sample_order"]
        loaded, _ = load_npz_arrays(
            source, keys, what="trials", expected="a numeric or bool array", storage_options=so
        )
        order = loaded.pop("sample_order", None)
        order = str(order[()]) if order is not None and order.dtype.kind == "U" else None
        return loaded, file_sha256(source, storage_options=so), order
    try:
        group = zarr.open_group(source, mode="r", storage_options=so)
        names = list(group.array_keys())
    except Exception as exc:  # zarr raises several kinds for a folder that is not a store
        raise MemoxrInputError(f"trials {source!r}: not a readable Zarr store ({exc})") from exc
    arrays = {name: da.from_zarr(group[name]) if name in TRIAL_VARIABLES else None for name in names}
    return arrays, "", group.attrs.get("sample_order")


def _trial_arrays(
    trials: Any, storage_options: StorageOptions = None
) -> tuple[dict[str, Any], str, str, str | None]:
    """Arrays, source name, sha256 and recorded sample order of any accepted ``trials`` argument."""
    if isinstance(trials, str | os.PathLike):
        arrays, sha, order = _read_arrays(trials, storage_options)
        return arrays, Path(str(trials)).name, sha, order
    if isinstance(trials, xr.Dataset):
        arrays = {str(k): v.data for k, v in trials.data_vars.items()}
        return arrays, str(trials.attrs.get("source_name", "<dataset>")), "", trials.attrs.get("sample_order")
    if isinstance(trials, Mapping):
        return dict(trials), "<memory>", "", None
    raise MemoxrInputError(
        "trials: expected a path (.npz or Zarr store), a mapping of arrays or an xarray.Dataset, "
        f"received {type(trials).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# Validation (keys, dtypes and shapes first: nothing is read; then labels; then values)


def _validate_keys(arrays: Mapping[str, Any], source: str) -> None:
    missing = [key for key in TRIAL_VARIABLES if arrays.get(key) is None]
    if missing:
        raise MemoxrInputError(
            f"trials {source!r}: missing key(s) {missing}; expected {list(TRIAL_VARIABLES)}, "
            f"received {sorted(k for k in arrays if arrays[k] is not None) or sorted(arrays)}"
        )


def _validate_dtypes(arrays: Mapping[str, Any], source: str) -> None:
    for key in TRIAL_VARIABLES:
        dtype = np.dtype(arrays[key].dtype)
        allowed = "biuf" if key in _BINARY_KEYS else "iuf"
        if dtype.kind not in allowed:
            expected = "bool, integer or float 0/1 values" if key in _BINARY_KEYS else "integer class labels"
            raise MemoxrInputError(f"trials {source!r}: key {key!r}: expected {expected}, received dtype {dtype}")


def _validate_shapes(arrays: Mapping[str, Any], source: str) -> None:
    for key, dims in TRIAL_VARIABLES.items():
        shape = tuple(np.shape(arrays[key]))
        if len(shape) != len(dims):
            raise MemoxrInputError(
                f"trials {source!r}: key {key!r}: expected a {len(dims)}-D array {dims}, received shape {shape}"
            )
    n_trials, n_train = np.shape(arrays["mask"])
    n_test = np.shape(arrays["test_correct"])[1]
    if n_trials < 1 or n_train < 1 or n_test < 1:
        raise MemoxrInputError(
            f"trials {source!r}: expected at least one trial, train and test sample, received "
            f"mask {np.shape(arrays['mask'])} and test_correct {np.shape(arrays['test_correct'])}"
        )
    expected = {
        "train_correct": (n_trials, n_train),
        "test_correct": (n_trials, n_test),
        "tr_labels": (n_train,),
        "tt_labels": (n_test,),
    }
    for key, shape in expected.items():
        if tuple(np.shape(arrays[key])) != shape:
            raise MemoxrInputError(
                f"trials {source!r}: key {key!r}: expected shape {shape} (from 'mask' {(n_trials, n_train)} "
                f"and 'test_correct' {np.shape(arrays['test_correct'])}), received {tuple(np.shape(arrays[key]))}"
            )
    if n_trials >= _k.MAX_EXACT_TRIALS:
        raise MemoxrInputError(
            f"trials {source!r}: expected fewer than {_k.MAX_EXACT_TRIALS} trials, received {n_trials}"
        )


def _validate_labels(key: str, labels: np.ndarray, source: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise MemoxrInputError(
                f"trials {source!r}: key {key!r}: expected whole-number class labels, "
                f"received {labels[where]} at position {where}"
            )
    labels = labels.astype(np.int64)
    if (labels < 0).any():
        where = int(np.flatnonzero(labels < 0)[0])
        raise MemoxrInputError(
            f"trials {source!r}: key {key!r}: expected class labels >= 0, received {labels[where]} at position {where}"
        )
    return labels


def _validate_binary(key: str, x: da.Array, n_bad: int, source: str) -> None:
    if n_bad == 0:
        return
    flat = int(da.argmax(da.map_blocks(_k.not_binary, x, dtype=bool).ravel()).compute())
    t, i = np.unravel_index(flat, x.shape)
    value = x[t, i].compute()
    raise MemoxrInputError(
        f"trials {source!r}: key {key!r}: expected 0/1 values, received {value} at trial {t}, "
        f"sample {i} ({n_bad} such values)"
    )


def _validate_chunk_mb(chunk_mb: float) -> float:
    return validate_mb("chunk_mb", chunk_mb)


# ---------------------------------------------------------------------------------------------
# The dask layer


@dataclass(frozen=True)
class _Sums:
    """Results of the validation pass: small per-sample sums, in memory."""

    train: np.ndarray  # (3, train): n_in, hit_in, hit_all
    test_all: np.ndarray  # (test,)
    bad: dict[str, int]


def _trial_sums_block(mask: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return _k.trial_sums(mask, correct)[None]


def _count_not_binary(x: np.ndarray) -> np.ndarray:
    return np.array([[_k.count_not_binary(x)]], dtype=np.int64)


def _pass_sums(mask: da.Array, train_correct: da.Array, test_correct: da.Array) -> _Sums:
    """One pass over the records: per-sample sums and the count of non-0/1 values."""
    train, test_all, bad = dask.compute(*pass_sums_graph(mask, train_correct, test_correct))
    return _Sums(train, test_all, {k: int(v) for k, v in bad.items()})


def pass_sums_graph(mask: da.Array, train_correct: da.Array, test_correct: da.Array) -> tuple[Any, Any, Any]:
    """The validation pass, lazily: per-sample sums of the records and counts of non-0/1 values."""
    train = da.blockwise(
        _trial_sums_block, "tkn", mask, "tn", train_correct, "tn",
        new_axes={"k": 3}, adjust_chunks={"t": 1}, dtype=np.float64,
    ).sum(axis=0)
    test_all = test_correct.sum(axis=0, dtype=np.float64)  # no float64 copy of a chunk
    bad = {
        key: da.map_blocks(_count_not_binary, x, chunks=((1,) * x.numblocks[0], (1,) * x.numblocks[1]), dtype=np.int64).sum()
        for key, x in (("mask", mask), ("train_correct", train_correct), ("test_correct", test_correct))
    }
    return train, test_all, bad


def _records_itemsize(arrays: Mapping[str, Any]) -> int:
    return max(np.dtype(arrays[key].dtype).itemsize for key in _BINARY_KEYS)


def _as_dask(x: Any, trial_chunk: int | tuple[int, ...]) -> da.Array:
    x = x if isinstance(x, da.Array) else da.from_array(np.asarray(x), chunks=(trial_chunk, -1))
    return x.rechunk({0: trial_chunk})


def estimate(
    trials: str | os.PathLike[str] | Mapping[str, Any] | xr.Dataset,
    *,
    full: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunks | None = None,
    sample_order: str | None = None,
    show_progress: bool = False,
    storage_options: StorageOptions = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Estimate memorization and influence from trial records, as an influence store.

    Dims contract: the trial records (see the module docstring) are
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

    The records are read once here, to validate their values and sum them per
    sample (small results, in memory); ``influence`` stays lazy: a dask matrix
    product over chunks of trials, computed when written or loaded. Memory is
    bounded by ``chunk_mb``-sized chunks. memoxr's writers compute it with one
    BLAS thread per dask thread (:func:`memoxr.compute.blas.blas_threads_for_dask`,
    entered once around the computation); computing it yourself with dask's
    threaded scheduler, wrap the call in the same context manager to keep BLAS
    from starting a thread per core inside every task.

    A train sample in every trial's subset or in none gets NaN memorization and
    a NaN influence row, with a :class:`DegenerateSampleWarning`.

    Parameters
    ----------
    trials : path, mapping or xarray.Dataset
        Trial records: ``.npz``, Zarr store, or arrays ``mask``, ``train_correct``,
        ``test_correct``, ``tr_labels``, ``tt_labels`` (numpy or dask).
    full : bool
        Also compute ``influence_full(train_id, test_id)``, across classes.
    chunk_mb : float
        Target size in MB of one chunk of the influence and of the trial blocks.
    chunks : BlockChunks, optional
        Explicit ``(class, train_sample, test_sample)`` chunks of ``influence``.
    sample_order : str, optional
        Name of the order the records' samples follow, kept in the attrs.
        Default: the order the records carry (Dataset or Zarr attribute, npz
        ``sample_order`` key, as ``trials-from-runs`` writes), else ``"trials"``.
    show_progress : bool
        Progress bar for the validation pass.
    bootstrap : int
        Replicates of the trial bootstrap (0: none): adds percentile
        intervals ``tr_mem_ci_low/high`` and ``influence_ci_low/high``
        (see :mod:`memoxr._bootstrap`).
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
        :mod:`memoxr._estimate_sums`: the standard error of a difference of two
        independent proportions, ``sqrt(p_in (1 - p_in) / n_in + p_out (1 -
        p_out) / n_out)``), which :func:`memoxr.incremental.append_estimate`
        adds new trials to.

    Raises
    ------
    MemoxrInputError
        Missing keys; wrong dims or shapes; a dtype other than bool, integer or
        float; values other than 0/1; labels that are not whole numbers >= 0;
        a non-positive ``chunk_mb``.

    Examples
    --------
    >>> import numpy as np, memoxr.estimate as me
    >>> mask = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> records = {"mask": mask, "train_correct": mask, "test_correct": mask[:, :1],
    ...            "tr_labels": np.array([0, 0]), "tt_labels": np.array([0])}
    >>> ds = me.estimate(records)
    >>> ds["tr_mem"].values.tolist(), ds["influence"].values[0].round(2).tolist()
    ([1.0, 1.0], [[1.0], [0.0]])
    """
    chunk_mb = _validate_chunk_mb(chunk_mb)
    _validate_bootstrap(bootstrap, confidence)
    records = read_records(trials, chunk_mb, storage_options)
    classes, train_index, test_index = class_indices(records.tr_labels, records.tt_labels)
    plan = chunks or plan_block_chunks(len(classes), train_index.shape[1], test_index.shape[1], chunk_mb=chunk_mb)
    sums = records_sums(records, train_index, test_index, plan, chunk_mb=chunk_mb, full=full,
                        show_progress=show_progress)
    _warn_degenerate(sums.train[0], sums.n_trials)
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
        from ._bootstrap import add_intervals

        ds = add_intervals(ds, records.mask, records.train_correct, records.test_correct, replicates=bootstrap,
                           confidence=confidence, seed=seed, chunk_mb=chunk_mb)
    return ds


@dataclass(frozen=True)
class Records:
    """Trial records whose keys, dtypes, shapes and labels are checked; 0/1 values are checked on summing."""

    mask: da.Array
    train_correct: da.Array
    test_correct: da.Array
    tr_labels: np.ndarray
    tt_labels: np.ndarray
    source_name: str
    sha256: str
    recorded_order: str | None
    ignored_keys: list[str]


def read_records(trials: Any, chunk_mb: float, storage_options: StorageOptions = None) -> Records:
    """Open and check trial records (nothing big is read): dask arrays in even chunks of whole rows."""
    arrays, source_name, sha256, recorded_order = _trial_arrays(trials, storage_options)
    source = source_name
    _validate_keys(arrays, source)
    _validate_dtypes(arrays, source)
    _validate_shapes(arrays, source)
    tr_labels = _validate_labels("tr_labels", np.asarray(arrays["tr_labels"]), source)
    tt_labels = _validate_labels("tt_labels", np.asarray(arrays["tt_labels"]), source)
    n_trials, n_train = np.shape(arrays["mask"])
    n_test = np.shape(arrays["test_correct"])[1]
    budget = int(chunk_mb * 2**20)
    # Whole rows of the records within the budget, in even chunks: the influence reads the same chunks.
    tc = _even_sizes(n_trials, _trial_chunk(n_trials, n_train + n_test, _records_itemsize(arrays), budget))
    mask, train_correct, test_correct = (_as_dask(arrays[key], tc) for key in _BINARY_KEYS)
    ignored = sorted(k for k in arrays if k not in TRIAL_VARIABLES)
    return Records(mask, train_correct, test_correct, tr_labels, tt_labels, source_name, sha256, recorded_order, ignored)


def class_indices(tr_labels: np.ndarray, tt_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes (distinct labels, ascending) and their padded train and test index rows."""
    classes = np.unique(np.concatenate([tr_labels, tt_labels]))
    train_lists = [np.flatnonzero(tr_labels == k) for k in classes]
    test_lists = [np.flatnonzero(tt_labels == k) for k in classes]
    max_train = max(len(i) for i in train_lists)
    max_test = max(1, max(len(i) for i in test_lists))
    return classes, pad_indices(train_lists, max_train), pad_indices(test_lists, max_test)


def records_sums(
    records: Records, train_index: np.ndarray, test_index: np.ndarray, plan: BlockChunks, *,
    chunk_mb: float, full: bool = False, show_progress: bool = False,
) -> TrialSums:
    """Read the records once to check their 0/1 values and sum them per sample; the products stay lazy."""
    mask, train_correct, test_correct = records.mask, records.train_correct, records.test_correct
    with progress(show_progress):
        sums = _pass_sums(mask, train_correct, test_correct)
    for key, x in (("mask", mask), ("train_correct", train_correct), ("test_correct", test_correct)):
        _validate_binary(key, x, sums.bad[key], records.source_name)
    budget = int(chunk_mb * 2**20)
    test_in = class_test_in(mask, test_correct, train_index, test_index, plan, budget)
    test_in_full = full_test_in(mask, test_correct, chunk_mb, budget) if full else None
    return TrialSums(mask.shape[0], sums.train, sums.test_all, test_in, test_in_full)


def _validate_bootstrap(bootstrap: int, confidence: float) -> None:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 0:
        raise MemoxrInputError(f"bootstrap: expected a whole number of replicates >= 0, received {bootstrap!r}")
    if not isinstance(confidence, float | int) or not 0 < confidence < 1:
        raise MemoxrInputError(f"confidence: expected a number between 0 and 1 (exclusive), received {confidence!r}")


def _warn_degenerate(n_in: np.ndarray, n_trials: int) -> None:
    always, never = np.flatnonzero(n_in == n_trials), np.flatnonzero(n_in == 0)
    if len(always) or len(never):
        warnings.warn(
            f"{len(always)} train sample(s) are in every trial's subset (first: {always[:5].tolist()}) and "
            f"{len(never)} in none (first: {never[:5].tolist()}): their memorization and influence rows "
            "are NaN (no trial to compare with); use more trials or a subset fraction further from 0 and 1",
            DegenerateSampleWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------
# Writers


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    encoding = influence_encoding(ds)
    for name in ("influence_full", "influence_se", "influence_ci_low", "influence_ci_high"):
        if name in encoding:
            encoding[name]["fill_value"] = float("nan")
    return encoding


def write_estimate_store(
    ds: xr.Dataset, output: str | os.PathLike[str], *, overwrite: bool = False, show_progress: bool = False,
    storage_options: StorageOptions = None,
) -> str:
    """Write an estimate (:func:`estimate`) as a Zarr store, complete or absent (the old one kept till then)."""
    with blas_threads_for_dask([ds["influence"].data]):
        return write_dataset(ds, output, overwrite=overwrite, encoding=_encoding(ds), show_progress=show_progress,
                             storage_options=storage_options)


def estimate_to_zarr(
    trials: str | os.PathLike[str] | Mapping[str, Any] | xr.Dataset,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    full: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunks | None = None,
    sample_order: str | None = None,
    show_progress: bool = False,
    storage_options: StorageOptions = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> str:
    """Estimate (see :func:`estimate`) and write the influence store as Zarr, complete or absent."""
    so = storage_options
    check_writable(output, overwrite=overwrite, storage_options=so)
    ds = estimate(trials, full=full, chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order,
                  show_progress=show_progress, storage_options=so, bootstrap=bootstrap, confidence=confidence,
                  seed=seed)
    return write_estimate_store(ds, output, overwrite=overwrite, show_progress=show_progress, storage_options=so)


def _write_npy_streamed(archive: zipfile.ZipFile, key: str, shape: tuple[int, ...], dtype: np.dtype, parts) -> None:
    """Write one ``.npy`` member from C-order row blocks, never the whole array at once."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    # A fixed timestamp: the same arrays give the same bytes.
    info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = archive.compression
    with archive.open(info, "w", force_zip64=True) as fp:
        np.lib.format.write_array_header_1_0(fp, header)
        for part in parts:
            fp.write(np.ascontiguousarray(part, dtype=dtype).tobytes())


def write_fz_npz(
    ds: xr.Dataset,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    show_progress: bool = False,
    storage_options: StorageOptions = None,
) -> str:
    """Save an influence store as an FZ-layout ``.npz`` (compressed), complete or absent.

    Keys: ``tr_mem``, ``tr_labels``, ``tt_labels`` and per class ``k``:
    ``tr_classidx_{k}``, ``tt_classidx_{k}`` (int64) and ``infl_matrix_class{k}``
    float32 of shape ``(train_count[k], test_count[k])`` — the layout
    ``memoxr convert`` reads. The influence is computed one chunk of classes at a
    time (rows streamed for a class split along ``train_sample``), so memory
    holds one class block, not the whole store.

    Parameters
    ----------
    ds : xarray.Dataset
        Influence store (from :func:`estimate` or ``memoxr.open_influence``).
    output : path
        ``.npz`` file to create.
    """
    check_influence_dataset(ds)
    if not str(output).endswith(".npz"):
        raise MemoxrInputError(f"output {str(output)!r}: expected a file name ending in '.npz'")
    classes = ds[CLASS].values.tolist()
    train_index, test_index = ds["train_index"].values, ds["test_index"].values
    train_count, test_count = ds["train_count"].values, ds["test_count"].values
    influence = ds["influence"].data
    if not isinstance(influence, da.Array):
        influence = da.from_array(influence, chunks=(1, -1, -1))
    class_chunks, train_chunks = influence.chunks[0], influence.chunks[1]
    with (
        atomic_output(output, overwrite=overwrite, storage_options=storage_options) as tmp,
        progress(show_progress),
        blas_threads_for_dask([influence]),
    ):
        with open(tmp, "wb") as fp, zipfile.ZipFile(fp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for key in ("tr_mem", "tr_labels", "tt_labels"):
                values = ds[key].values
                _write_npy_streamed(archive, key, values.shape, values.dtype, [values])
            start = 0
            for size in class_chunks:
                group = range(start, start + size)
                start += size
                if size > 1 or len(train_chunks) == 1:
                    block = np.asarray(influence[group.start : group.stop].compute())
                    row_blocks = {c: [block[c - group.start]] for c in group}
                else:
                    row_blocks = {group.start: _row_chunks(influence, group.start, train_chunks)}
                for c in group:
                    n_tr, n_tt, k = int(train_count[c]), int(test_count[c]), classes[c]
                    tr, tt = train_index[c, :n_tr].astype(np.int64), test_index[c, :n_tt].astype(np.int64)
                    _write_npy_streamed(archive, f"tr_classidx_{k}", tr.shape, tr.dtype, [tr])
                    _write_npy_streamed(archive, f"tt_classidx_{k}", tt.shape, tt.dtype, [tt])
                    _write_npy_streamed(
                        archive, f"infl_matrix_class{k}", (n_tr, n_tt), np.dtype(np.float32),
                        _clip_rows(row_blocks[c], n_tr, n_tt),
                    )
            order = np.array(str(ds.attrs.get("sample_order", DEFAULT_SAMPLE_ORDER)))  # a string, not pickled
            _write_npy_streamed(archive, "sample_order", (), order.dtype, [order])
    return Path(output)


def _row_chunks(influence: da.Array, c: int, train_chunks: tuple[int, ...]):
    start = 0
    for size in train_chunks:
        yield np.asarray(influence[c, start : start + size].compute())
        start += size


def _clip_rows(blocks, n_tr: int, n_tt: int):
    """Rows ``[0, n_tr)`` and columns ``[0, n_tt)`` of a class's padded row blocks."""
    done = 0
    for block in blocks:
        take = min(len(block), n_tr - done)
        if take <= 0:
            break
        yield block[:take, :n_tt]
        done += take


def write_estimate(
    trials: str | os.PathLike[str] | Mapping[str, Any] | xr.Dataset,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    full: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    sample_order: str | None = None,
    show_progress: bool = False,
    storage_options: StorageOptions = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> str:
    """Estimate and save: an FZ ``.npz`` when ``output`` ends in ``.npz``, else a Zarr store.

    ``full`` and ``bootstrap`` need a Zarr output (the FZ layout has no place
    for them), and so do the standard errors and the sums that appending needs.
    """
    if str(output).endswith(".npz"):
        for name, value in (("full", full), ("bootstrap", bootstrap)):
            if value:
                raise MemoxrInputError(
                    f"{name}: the FZ .npz layout holds within-class blocks only; received {name}={value!r} with "
                    f"output {str(output)!r}: write a Zarr store to keep it"
                )
        so = storage_options
        check_writable(output, overwrite=overwrite, storage_options=so)
        ds = estimate(trials, chunk_mb=chunk_mb, sample_order=sample_order, show_progress=show_progress, storage_options=so)
        return write_fz_npz(ds, output, overwrite=overwrite, show_progress=show_progress, storage_options=so)
    return estimate_to_zarr(trials, output, overwrite=overwrite, full=full, chunk_mb=chunk_mb,
                            sample_order=sample_order, show_progress=show_progress, storage_options=storage_options,
                            bootstrap=bootstrap, confidence=confidence, seed=seed)


def write_trials(
    trials: Mapping[str, Any] | xr.Dataset,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Save trial records: a compressed ``.npz`` (suffix ``.npz``) or a Zarr store, complete or absent.

    ``mask`` and the correctness arrays are stored as bool, labels as int64.
    """
    arrays, source, _, _ = _trial_arrays(trials)
    _validate_keys(arrays, source)
    _validate_dtypes(arrays, source)
    _validate_shapes(arrays, source)
    data = {
        key: np.asarray(arrays[key]).astype(bool if key in _BINARY_KEYS else np.int64) for key in TRIAL_VARIABLES
    }
    if str(output).endswith(".npz"):
        with atomic_output(output, overwrite=overwrite) as tmp, open(tmp, "wb") as fp:
            np.savez_compressed(fp, **data)
        return Path(output)
    ds = xr.Dataset({key: (TRIAL_VARIABLES[key], value) for key, value in data.items()})
    return write_dataset(ds, output, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------
# CLI


@click.command("estimate")
@click.argument("trials", metavar="TRIALS", type=click.Path())
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option(
    "--overwrite", is_flag=True, help="Replace OUTPUT if it exists (it is kept until the new one is complete)."
)
@click.option("--full", is_flag=True, help="Also store influence_full(train_id, test_id), across classes (Zarr output only).")
@click.option(
    "--chunk-mb", type=float, default=DEFAULT_CHUNK_MB, show_default=True,
    help="Target size in MB of one influence chunk and of one block of trials.",
)
@click.option(
    "--sample-order", default=None,
    help="Name of the order the records' samples follow, recorded in the output.  "
    "[default: the order the records carry, else 'trials']",
)
@click.option(
    "--append", is_flag=True,
    help="Add the TRIALS to the estimate store OUTPUT (its sums), without re-reading the old trials; "
    "OUTPUT is replaced only once the new estimate is complete.",
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
    help="Add percentile confidence intervals from N bootstrap resamples of the trials (Zarr output).",
)
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Coverage of the bootstrap intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resampling.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@dry_run_option
@handle_errors
@remote_options
def estimate_command(
    trials: str, output: str, overwrite: bool, full: bool, chunk_mb: float, sample_order: str | None, append: bool,
    bootstrap: int, confidence: float, seed: int, quiet: bool, dry_run: bool, storage_options: dict | None,
) -> None:
    """Estimate memorization and influence (Feldman–Zhang) from trial records.

    TRIALS (.npz or Zarr store) holds mask and train_correct (trial, train),
    test_correct (trial, test), tr_labels and tt_labels. OUTPUT ending in .npz
    is written in the FZ npz layout, anything else as a Zarr influence store
    with standard errors and the sums that --append adds to; it appears only
    once complete.
    """
    from .io.chunks import validate_option_mb

    chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    if dry_run:
        from .compute.plan import plan_estimate
        from .io.storage import check_writable

        if not append:  # the run would refuse an existing OUTPUT: so does its plan
            check_writable(output, overwrite=overwrite, storage_options=storage_options)
        plan = plan_estimate(trials, chunk_mb=chunk_mb, full=full, storage_options=storage_options)
        click.echo(str(plan))
        if bootstrap:
            click.echo(f"  note: --bootstrap {bootstrap} adds a pass over the records per block of resamples, "
                       "not counted above")
        if append:
            click.echo(f"  note: --append adds these trials' sums to {output!r}; its old trials are not read")
        return
    from .compute.progress import damaged_store_as_input_error

    # A damaged trials store: its chunk named in one line, not a codec traceback.
    with damaged_store_as_input_error(trials, storage_options if is_url(trials) else None):
        if append:
            from .incremental import append_estimate

            if overwrite or full or bootstrap or sample_order:
                raise MemoxrInputError(
                    "--append: adds to the store OUTPUT as it is; received it with --overwrite, --full, "
                    "--bootstrap or --sample-order, which only a new estimate takes"
                )
            path = append_estimate(trials, output, chunk_mb=chunk_mb, show_progress=not quiet,
                                   storage_options=storage_options)
        else:
            path = write_estimate(trials, output, overwrite=overwrite, full=full, chunk_mb=chunk_mb,
                                  sample_order=sample_order, show_progress=not quiet, storage_options=storage_options,
                                  bootstrap=bootstrap, confidence=confidence, seed=seed)
    click.echo(f"{'appended to' if append else 'wrote'} {path}")
