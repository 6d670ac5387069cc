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
:mod:`memoxr.schema`): the influence of each train sample on the test samples
of its own class, ``influence(class, train_sample, test_sample)`` float32,
NaN-padded for ragged classes; ``memorization``, ``train_index``,
``test_index``, ``train_count``, ``test_count``, ``tr_mem``, ``tr_labels``,
``tt_labels``. Classes are the distinct labels, ascending; a class's samples
follow the split's order. With ``full=True`` the whole ``influence_full(train_id,
test_id)`` is added. Save it as a Zarr store (:func:`estimate_to_zarr`) or as an
FZ-layout ``.npz`` (:func:`write_fz_npz`); :func:`write_estimate` picks by suffix.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr
from dask.array import PerformanceWarning

from . import _estimator_kernels as _k
from ._blas import blas_threads_for_dask
from ._chunks import DEFAULT_CHUNK_MB, BlockChunks, plan_block_chunks, validate_mb
from ._cli_options import handle_errors, remote_options
from .convert import influence_encoding
from .convert.fz_npz import file_sha256, load_npz_arrays
from .errors import MemoxrInputError
from .progress import progress
from .schema import (
    CLASS,
    TEST_ID,
    TRAIN_ID,
    check_influence_dataset,
    influence_dataset,
    pad_indices,
)
from .storage import (
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
    train = da.blockwise(
        _trial_sums_block, "tkn", mask, "tn", train_correct, "tn",
        new_axes={"k": 3}, adjust_chunks={"t": 1}, dtype=np.float64,
    ).sum(axis=0)
    test_all = test_correct.sum(axis=0, dtype=np.float64)  # no float64 copy of a chunk
    bad = {
        key: da.map_blocks(_count_not_binary, x, chunks=((1,) * x.numblocks[0], (1,) * x.numblocks[1]), dtype=np.int64).sum()
        for key, x in (("mask", mask), ("train_correct", train_correct), ("test_correct", test_correct))
    }
    train, test_all, bad = dask.compute(train, test_all, bad)
    return _Sums(train, test_all, {k: int(v) for k, v in bad.items()})


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


def _sum_over_trials(partial: da.Array) -> da.Array:
    """Sum of per-trial-chunk products (each ``(1, ...)`` on axis 0), as a tree of additions.

    Like ``partial.sum(axis=0)`` without its copies: no concatenation of the
    parts and no copy of a lone part.
    """
    return da.reduction(
        partial, _first, _add_parts, combine=_add_parts, axis=0, concatenate=False, dtype=np.float32,
    )


def _finalize_block(test_in: np.ndarray, test_all: np.ndarray, n_in: np.ndarray, n_trials: int) -> np.ndarray:
    return _k.influence_from_sums_f32(test_in, test_all, n_in, n_trials)


@contextlib.contextmanager
def _quiet_blockwise() -> Iterator[None]:
    """Silence dask's note that a product has more output chunks than inputs: that is the plan."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PerformanceWarning)
        yield


def _trial_chunk(n_trials: int, width: int, itemsize: int, budget: int) -> int:
    """Trials per chunk so that a ``(trials, width)`` block stays within ``budget`` bytes."""
    return int(min(n_trials, max(1, budget // max(1, width * itemsize))))


def _even_sizes(n: int, most: int) -> tuple[int, ...]:
    """``n`` split into as few parts of at most ``most`` as possible, sizes differing by one at most.

    >>> _even_sizes(10, 3), _even_sizes(2000, 1118)
    ((3, 3, 2, 2), (1000, 1000))
    """
    parts = -(-n // max(1, most))
    size, extra = divmod(n, parts)
    return tuple(size + 1 if p < extra else size for p in range(parts))


#: Fewest multiply-adds in one product task (~20 ms on one core): smaller classes are grouped.
MIN_TASK_PRODUCTS = 10**9


def _class_groups(n_class: int, plan: BlockChunks, trials: int) -> tuple[int, ...]:
    """Classes per product task: as few as give a sizeable product, at most ``plan.cls``, even sizes."""
    per_class = max(1, trials * plan.train * plan.test)
    wanted = max(1, -(-MIN_TASK_PRODUCTS // per_class))
    return _even_sizes(n_class, min(plan.cls, wanted))


def _class_influence(
    mask: da.Array, test_correct: da.Array, train_index: np.ndarray, test_index: np.ndarray,
    n_in: np.ndarray, test_all: np.ndarray, n_trials: int, plan: BlockChunks, budget: int,
) -> da.Array:
    """``influence(class, train_sample, test_sample)``: within-class blocks, lazily.

    Each chunk of trials (whole rows of both records within ``budget``) is
    gathered into bool ``(trial, class, sample)`` blocks, one per group of
    classes; those are rechunked to as many trials as fit ``budget`` (often all
    of them: a group's columns are a fraction of a row), and each group's
    blocks are multiplied, one BLAS product per class
    (:func:`memoxr._estimator_kernels.class_products`), summed over the chunks
    of trials if several, and finalized in row blocks. Trial chunks and groups
    of classes have even sizes, so that threads get even work. The result is
    chunked by ``plan``.
    """
    n_train, n_test = mask.shape[1], test_correct.shape[1]
    itemsize = max(mask.dtype.itemsize, test_correct.dtype.itemsize)
    most = _trial_chunk(n_trials, n_train + n_test, itemsize, budget)
    read = mask.chunks[0] if max(mask.chunks[0]) <= most else _even_sizes(n_trials, most)  # as read, if fit
    groups = _class_groups(train_index.shape[0], plan, n_trials)
    train_chunks, test_chunks = (groups, plan.train), (groups, plan.test)
    train_index_da = da.from_array(train_index, chunks=train_chunks)
    test_index_da = da.from_array(test_index, chunks=test_chunks)
    with _quiet_blockwise():
        rows, cols = (
            da.blockwise(_gather_block, "tci", x.rechunk((read, -1)), "tn", index, "ci", dtype=bool, concatenate=True)
            for x, index in ((mask, train_index_da), (test_correct, test_index_da))
        )
    # Products: a group's bool operands within the budget (their float32 copies are bounded inside).
    trials = _even_sizes(n_trials, _trial_chunk(n_trials, max(groups) * (plan.train + plan.test), 1, budget))
    rows, cols = rows.rechunk((trials, groups, plan.train)), cols.rechunk((trials, groups, plan.test))
    with _quiet_blockwise():
        partial = da.blockwise(
            _class_products_block, "tcij", rows, "tci", cols, "tcj", train_index_da, "ci", test_index_da, "cj",
            max_operand_bytes=budget, adjust_chunks={"t": 1}, dtype=np.float32,
        )
    test_in = _sum_over_trials(partial)
    # Padding: n_in = 0 for padded train rows, NaN test totals for padded test columns.
    n_in_pad = np.where(train_index >= 0, n_in[np.maximum(train_index, 0)], 0.0)
    test_all_pad = np.where(test_index >= 0, test_all[np.maximum(test_index, 0)], np.nan)
    return da.blockwise(
        _finalize_block, "cij", test_in, "cij",
        da.from_array(test_all_pad, chunks=test_chunks), "cj",
        da.from_array(n_in_pad, chunks=train_chunks), "ci",
        n_trials=n_trials, dtype=np.float32,
    ).rechunk((plan.cls, plan.train, plan.test))


def _full_influence(
    mask: da.Array, test_correct: da.Array, n_in: np.ndarray, test_all: np.ndarray,
    n_trials: int, chunk_mb: float, budget: int,
) -> da.Array:
    """``influence_full(train_id, test_id)``: every train sample on every test sample, lazily."""
    n_train, n_test = mask.shape[1], test_correct.shape[1]
    plan = plan_block_chunks(1, n_train, n_test, chunk_mb=chunk_mb)
    tc = _trial_chunk(n_trials, max(plan.train, plan.test), 4, budget)
    mask = mask.rechunk((tc, plan.train))
    test_correct = test_correct.rechunk((tc, plan.test))
    with _quiet_blockwise():
        partial = da.blockwise(
            _products_block, "tij", mask, "ti", test_correct, "tj",
            adjust_chunks={"t": 1}, dtype=np.float32, concatenate=True,
        )
    test_in = _sum_over_trials(partial)
    return da.blockwise(
        _finalize_block, "ij", test_in, "ij",
        da.from_array(test_all, chunks=(plan.test,)), "j",
        da.from_array(n_in, chunks=(plan.train,)), "i",
        n_trials=n_trials, dtype=np.float32,
    )


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
    BLAS thread per dask thread (:func:`memoxr._blas.blas_threads_for_dask`,
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

    Returns
    -------
    xarray.Dataset
        Influence store; attrs ``schema``, ``schema_version``, ``source_name``,
        ``source_sha256``, ``memoxr_version``, ``sample_order``,
        ``ignored_keys``, ``estimator`` and ``n_trials``.

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
    arrays, source_name, sha256, recorded_order = _trial_arrays(trials, storage_options)
    sample_order = sample_order or recorded_order or DEFAULT_SAMPLE_ORDER
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

    with progress(show_progress):
        sums = _pass_sums(mask, train_correct, test_correct)
    for key in _BINARY_KEYS:
        _validate_binary(key, {"mask": mask, "train_correct": train_correct, "test_correct": test_correct}[key],
                         sums.bad[key], source)

    n_in = sums.train[0]
    tr_mem = _k.memorization_from_sums(sums.train, n_trials)
    _warn_degenerate(n_in, n_trials)

    classes = np.unique(np.concatenate([tr_labels, tt_labels]))
    train_lists = [np.flatnonzero(tr_labels == k) for k in classes]
    test_lists = [np.flatnonzero(tt_labels == k) for k in classes]
    max_train = max(len(i) for i in train_lists)
    max_test = max(1, max(len(i) for i in test_lists))
    train_index = pad_indices(train_lists, max_train)
    test_index = pad_indices(test_lists, max_test)
    plan = chunks or plan_block_chunks(len(classes), max_train, max_test, chunk_mb=chunk_mb)

    influence = _class_influence(
        mask, test_correct, train_index, test_index, n_in, sums.test_all, n_trials, plan, budget
    )
    ds = influence_dataset(
        influence,
        train_index,
        test_index,
        classes=classes,
        tr_mem=tr_mem,
        tr_labels=tr_labels,
        tt_labels=tt_labels,
        attrs={
            "source_name": source_name,
            "source_sha256": sha256,
            "sample_order": sample_order,
            "ignored_keys": sorted(k for k in arrays if k not in TRIAL_VARIABLES),
            "estimator": ESTIMATOR_NAME,
            "n_trials": int(n_trials),
        },
    )
    ds["influence"].attrs["formula"] = "mean(test_correct | i in S) - mean(test_correct | i not in S)"
    ds["tr_mem"].attrs["formula"] = "mean(train_correct | i in S) - mean(train_correct | i not in S)"
    if full:
        ds["influence_full"] = (
            (TRAIN_ID, TEST_ID),
            _full_influence(mask, test_correct, n_in, sums.test_all, n_trials, chunk_mb, budget),
        )
        ds["influence_full"].attrs["description"] = "influence of every train sample on every test sample"
    return ds


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
    if "influence_full" in encoding:
        encoding["influence_full"]["fill_value"] = float("nan")
    return encoding


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
) -> str:
    """Estimate (see :func:`estimate`) and write the influence store as Zarr, complete or absent."""
    so = storage_options
    check_writable(output, overwrite=overwrite, storage_options=so)
    ds = estimate(trials, full=full, chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order,
                  show_progress=show_progress, storage_options=so)
    with blas_threads_for_dask([ds["influence"].data]):
        return write_dataset(
            ds, output, overwrite=overwrite, encoding=_encoding(ds), show_progress=show_progress, storage_options=so
        )


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
) -> str:
    """Estimate and save: an FZ ``.npz`` when ``output`` ends in ``.npz``, else a Zarr store.

    ``full`` needs a Zarr output (the FZ layout has no place for it).
    """
    if str(output).endswith(".npz"):
        if full:
            raise MemoxrInputError(
                f"full: the FZ .npz layout holds within-class blocks only; received full=True with "
                f"output {str(output)!r}: write a Zarr store to keep influence_full"
            )
        so = storage_options
        check_writable(output, overwrite=overwrite, storage_options=so)
        ds = estimate(trials, chunk_mb=chunk_mb, sample_order=sample_order, show_progress=show_progress, storage_options=so)
        return write_fz_npz(ds, output, overwrite=overwrite, show_progress=show_progress, storage_options=so)
    return estimate_to_zarr(trials, output, overwrite=overwrite, full=full, chunk_mb=chunk_mb,
                            sample_order=sample_order, show_progress=show_progress, storage_options=storage_options)


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
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
@remote_options
def estimate_command(
    trials: str, output: str, overwrite: bool, full: bool, chunk_mb: float, sample_order: str | None, quiet: bool,
    storage_options: dict | None,
) -> None:
    """Estimate memorization and influence (Feldman–Zhang) from trial records.

    TRIALS (.npz or Zarr store) holds mask and train_correct (trial, train),
    test_correct (trial, test), tr_labels and tt_labels. OUTPUT ending in .npz
    is written in the FZ npz layout, anything else as a Zarr influence store;
    it appears only once complete.
    """
    from ._chunks import validate_option_mb

    chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    try:
        path = write_estimate(trials, output, overwrite=overwrite, full=full, chunk_mb=chunk_mb,
                              sample_order=sample_order, show_progress=not quiet, storage_options=storage_options)
    except MemoxrInputError:
        raise
    except Exception as exc:  # a damaged trials store: name its chunk, not a codec traceback
        from .progress import describe_undecodable_store

        damaged = describe_undecodable_store(trials, exc, storage_options if is_url(trials) else None)
        if damaged is None:
            raise
        raise MemoxrInputError(damaged) from exc
    click.echo(f"wrote {path}")
