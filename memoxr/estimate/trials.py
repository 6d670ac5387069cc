"""Trial records: their schema, reading them lazily, checking them, and writing them.

The five arrays of :data:`TRIAL_VARIABLES` (``mask``, ``train_correct``,
``test_correct``, ``tr_labels``, ``tt_labels``; their meaning: :mod:`memoxr.estimate`).
Records come from an ``.npz`` archive (never unpickled), a Zarr store, or a
mapping or :class:`xarray.Dataset` of numpy or dask arrays. Reading them
(:func:`read_records`) reads only what the estimate's shape depends on: the
keys, dtypes and shapes (npz headers, Zarr metadata), the two label arrays and
the recorded sample order, and for an npz its sha256. The three ``(trial,
...)`` records stay lazy; their 0/1 values are checked chunk by chunk when
they are computed (:func:`checked_binary`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from dask.base import tokenize

from ..compute.scheduler import rechunk
from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions, file_exists, local_version, locate
from ..io.npy import refuse_pickled
from ..io.schema import TEST_ID, TRAIN_ID
from . import kernels as _k

__all__ = ["BINARY_KEYS", "TRIAL", "TRIAL_VARIABLES", "Records", "open_trials", "read_records"]

TRIAL = "trial"
#: The trial records: key -> dims.
TRIAL_VARIABLES = {
    "mask": (TRIAL, TRAIN_ID),
    "train_correct": (TRIAL, TRAIN_ID),
    "test_correct": (TRIAL, TEST_ID),
    "tr_labels": (TRAIN_ID,),
    "tt_labels": (TEST_ID,),
}
#: The records holding 0/1 values, ``(trial, ...)``.
BINARY_KEYS = ("mask", "train_correct", "test_correct")


@dataclass(frozen=True)
class Records:
    """Trial records whose keys, dtypes, shapes and labels are checked; 0/1 values are checked when computed.

    >>> list(Records.__dataclass_fields__)[:3]  # lazy (trial, ...) records first; read_records makes one
    ['mask', 'train_correct', 'test_correct']
    """

    mask: da.Array
    train_correct: da.Array
    test_correct: da.Array
    tr_labels: np.ndarray
    tt_labels: np.ndarray
    source_name: str
    sha256: str
    recorded_order: str | None
    ignored_keys: list[str]


# ---------------------------------------------------------------------------------------------
# Reading


def _read_arrays(location: Location) -> tuple[dict[str, Any], str, str | None]:
    """Lazy arrays of an npz or a Zarr group, the npz's sha256 (else ``""``), the recorded order."""
    source = location.path
    if location.is_url:
        is_npz = file_exists(location)
    else:
        if not Path(source).exists():
            raise MemoxrInputError(f"trials {source!r} do not exist; expected an .npz file or a Zarr store")
        is_npz = Path(source).is_file()
    if is_npz:
        return _lazy_npz(location)
    try:
        group = zarr.open_group(source, mode="r", storage_options=(dict(location.storage_options) or None) if location.is_url else None)
        names = list(group.array_keys())
    except Exception as exc:  # zarr raises several kinds for a folder that is not a store
        raise MemoxrInputError(f"trials {source!r}: not a readable Zarr store ({exc})") from exc
    arrays = {
        name: da.from_zarr(group[name], name=f"trials-{name}-{_token(location, name)}")
        if name in TRIAL_VARIABLES else None
        for name in names
    }
    order = group.attrs.get("sample_order")
    return arrays, "", order if isinstance(order, str) else None


def _token(location: Location, name: str) -> str:
    """A token of a store's array for its dask keys: where it is, and which version of it is there.

    dask would name the array by path and metadata alone: a store rewritten in place (``--overwrite``)
    would share keys with a result of the old one still held (persisted, or on a cluster). The
    version is the array's metadata file's (``zarr.json``, or Zarr v2's ``.zarray``; else the root's):
    locally its inode, size, mtime and ctime; on object storage its ETag, size and last-modified time (to
    the second; the rest of what the server says varies between a listing and a request). None if none
    can be read: the path alone.
    """
    if location.is_url:
        return tokenize(location.path, location.endpoint, _remote_version(location, name))
    return tokenize(os.path.abspath(location.path), _local_version(Path(location.path), name))


_METADATA_FILES = ("{name}/zarr.json", "{name}/.zarray", "zarr.json", ".zmetadata")


def _local_version(root: Path, name: str) -> tuple[int, int, int, int] | None:
    for pattern in _METADATA_FILES:
        try:
            return local_version(root / pattern.format(name=name))
        except OSError:
            continue
    return None


def _remote_version(location: Location, name: str) -> tuple[str, str, float | str] | None:
    for pattern in _METADATA_FILES:
        try:
            info = location.fs.info(f"{location.fs_path.rstrip('/')}/{pattern.format(name=name)}")
        except (OSError, ValueError):
            continue
        # The same metadata written again has the same ETag (a hash of its bytes); the time tells it apart.
        modified = info.get("LastModified", info.get("mtime", info.get("created", "")))
        stamp = modified.timestamp() if hasattr(modified, "timestamp") else str(modified)
        return str(info.get("ETag", "")), str(info.get("size")), stamp
    return None


def _load_member(location: Location, key: str) -> np.ndarray:
    from ..io.npz import open_npz

    with open_npz(location) as npz:
        return npz[key]


def _lazy_npz(location: Location) -> tuple[dict[str, Any], str, str | None]:
    """An npz's records as dask arrays (each member read whole, once per computation); its labels,
    sample order and sha256 now. Headers are checked first, and pickled members refused."""
    import dask

    from ..io.npz import file_sha256, open_npz, read_npz_headers

    source = location.path
    headers = read_npz_headers(location)
    for key in [*TRIAL_VARIABLES, "sample_order"]:
        if key in headers:
            refuse_pickled(headers[key].dtype, f"trials {source!r}: key {key!r}", "a numeric or bool array")
    sha = file_sha256(location)
    arrays: dict[str, Any] = {key: None for key in headers if key not in (*TRIAL_VARIABLES, "sample_order")}
    with open_npz(location) as npz:
        for key in ("tr_labels", "tt_labels"):
            if key in headers:
                arrays[key] = npz[key]
        order = npz["sample_order"] if "sample_order" in headers else None
    for key in BINARY_KEYS:
        if key in headers:
            name = f"trials-{key}-{tokenize(source, sha, key)}"
            load = dask.delayed(_load_member, pure=True)(location, key, dask_key_name=name)
            arrays[key] = da.from_delayed(load, headers[key].shape, dtype=headers[key].dtype)
    recorded = str(order[()]) if order is not None and order.dtype.kind == "U" else None
    return arrays, sha, recorded


def trial_arrays(trials: Any) -> tuple[dict[str, Any], str, str, str | None]:
    """Arrays, source name, sha256 and recorded sample order of any accepted ``trials`` argument.

    >>> arrays, name, sha, order = trial_arrays({"mask": np.eye(2)})
    >>> list(arrays), name, sha, order
    (['mask'], '<memory>', '', None)
    """
    if isinstance(trials, str | os.PathLike):
        arrays, sha, order = _read_arrays(Location.of(trials))
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


def open_trials(path: str | os.PathLike[str] | Location, *, chunks: Any = None, storage_options: StorageOptions = None) -> xr.Dataset:
    """Open trial records (``.npz`` or Zarr store) as a Dataset of dask arrays; no values are read.

    Dims contract: ``mask``, ``train_correct`` ``(trial, train_id)``;
    ``test_correct`` ``(trial, test_id)``; ``tr_labels`` ``(train_id,)``;
    ``tt_labels`` ``(test_id,)``. Only keys and shapes are checked here;
    :func:`memoxr.estimate.estimate` checks the rest.

    Parameters
    ----------
    path : path
        ``.npz`` archive (each member read whole when computed, never
        unpickled) or Zarr store (chunk by chunk).
    chunks : optional
        Dask chunks for the arrays; default: the Zarr chunks, or one chunk for npz.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> records = {"mask": np.eye(2, dtype=bool), "train_correct": np.eye(2, dtype=bool),
    ...            "test_correct": np.ones((2, 1), bool), "tr_labels": np.array([0, 0]), "tt_labels": np.array([0])}
    >>> from memoxr.estimate import write_trials
    >>> path = write_trials(records, os.path.join(tempfile.mkdtemp(), "t.npz"))
    >>> ds = open_trials(path)
    >>> dict(ds.sizes), ds["mask"].values.sum().item()
    ({'trial': 2, 'train_id': 2, 'test_id': 1}, 2)
    """
    arrays, _, _ = _read_arrays(Location.of(path, storage_options))
    validate_keys(arrays, str(path))
    validate_shapes(arrays, str(path))
    variables = {}
    for key, dims in TRIAL_VARIABLES.items():
        data = arrays[key] if isinstance(arrays[key], da.Array) else da.asarray(arrays[key])
        if chunks is not None:
            data = rechunk(data, chunks)
        variables[key] = (dims, data)
    return xr.Dataset(variables, attrs={"source_name": Path(str(path)).name})


def read_records(trials: Any, chunk_mb: float, storage_options: StorageOptions = None) -> Records:
    """Open and check trial records, reading only metadata and labels: dask arrays in even chunks of whole rows.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.array([[1, 0], [0, 1], [1, 1]])
    >>> r = read_records({"mask": mask, "train_correct": mask, "test_correct": mask[:, :1],
    ...                   "tr_labels": np.array([0, 1]), "tt_labels": np.array([1])}, chunk_mb=1.0)
    >>> r.mask.shape, r.tr_labels.tolist(), r.source_name
    ((3, 2), [0, 1], '<memory>')
    """
    from .sums import even_sizes, trial_chunk

    arrays, source_name, sha256, recorded_order = trial_arrays(locate(trials, storage_options))
    source = source_name
    validate_keys(arrays, source)
    validate_dtypes(arrays, source)
    validate_shapes(arrays, source)
    tr_labels = validate_labels("tr_labels", _small_values(arrays["tr_labels"]), source)
    tt_labels = validate_labels("tt_labels", _small_values(arrays["tt_labels"]), source)
    n_trials, n_train = np.shape(arrays["mask"])
    n_test = np.shape(arrays["test_correct"])[1]
    budget = int(chunk_mb * 2**20)
    # Whole rows of the records within the budget, in even chunks: the influence reads the same chunks.
    itemsize = max(np.dtype(arrays[key].dtype).itemsize for key in BINARY_KEYS)
    tc = even_sizes(n_trials, trial_chunk(n_trials, n_train + n_test, itemsize, budget))
    mask, train_correct, test_correct = (
        checked_binary(key, _as_dask(arrays[key], tc), source) for key in BINARY_KEYS
    )
    ignored = sorted(k for k in arrays if k not in TRIAL_VARIABLES)
    return Records(mask, train_correct, test_correct, tr_labels, tt_labels, source_name, sha256, recorded_order, ignored)


def _small_values(x: Any) -> np.ndarray:
    """A label array in memory (computed through the gateway when lazy: labels are small)."""
    from ..compute.progress import compute

    return np.asarray(compute(x)[0] if isinstance(x, da.Array) else x)


def _as_dask(x: Any, trial_chunk: int | tuple[int, ...]) -> da.Array:
    x = x if isinstance(x, da.Array) else da.from_array(np.asarray(x), chunks=(trial_chunk, -1))
    return rechunk(x, {0: trial_chunk})


# ---------------------------------------------------------------------------------------------
# Checks (keys, dtypes and shapes from metadata; labels in memory; 0/1 values when computed)


def validate_keys(arrays: Mapping[str, Any], source: str) -> None:
    """Every key of :data:`TRIAL_VARIABLES` is there.

    >>> validate_keys({"mask": 1}, "t.npz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: trials 't.npz': missing key(s) ['train_correct', 'test_correct', ...
    """
    missing = [key for key in TRIAL_VARIABLES if arrays.get(key) is None]
    if missing:
        raise MemoxrInputError(
            f"trials {source!r}: missing key(s) {missing}; expected {list(TRIAL_VARIABLES)}, "
            f"received {sorted(k for k in arrays if arrays[k] is not None) or sorted(arrays)}"
        )


def validate_dtypes(arrays: Mapping[str, Any], source: str) -> None:
    """Records bool, integer or float; labels integer or float.

    >>> validate_dtypes({k: np.zeros(1, "U1" if k == "tt_labels" else int) for k in TRIAL_VARIABLES}, "x")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: trials 'x': key 'tt_labels': expected integer class labels, received dtype <U1
    """
    for key in TRIAL_VARIABLES:
        dtype = np.dtype(arrays[key].dtype)
        allowed = "biuf" if key in BINARY_KEYS else "iuf"
        if dtype.kind not in allowed:
            expected = "bool, integer or float 0/1 values" if key in BINARY_KEYS else "integer class labels"
            raise MemoxrInputError(f"trials {source!r}: key {key!r}: expected {expected}, received dtype {dtype}")


def validate_shapes(arrays: Mapping[str, Any], source: str) -> None:
    """Dims and sizes agree across the five arrays; at least one trial, train and test sample.

    >>> arrays = {"mask": np.zeros((3, 2)), "train_correct": np.zeros((3, 2)), "test_correct": np.zeros((3, 1)),
    ...           "tr_labels": np.zeros(2), "tt_labels": np.zeros(1)}
    >>> validate_shapes(arrays, "x") is None
    True
    """
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


def validate_labels(key: str, labels: Any, source: str, *, what: str = "trials") -> np.ndarray:
    """Class labels: a non-empty 1-D array of whole numbers >= 0, as int64 (the one label check).

    Errors name ``{what} '{source}': key '{key}'``: trial records (``trials``)
    or the labels of held-out runs (``labels``, :mod:`memoxr.convert.heldout_files`).

    >>> validate_labels("tr_labels", np.array([0.0, 2.0]), "x").tolist()
    [0, 2]
    >>> validate_labels("tt_labels", [1, -1], "labels.npz", what="labels")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: labels 'labels.npz': key 'tt_labels': expected whole-number class labels >= 0, received -1 at position 1
    """
    labels = np.asarray(labels)
    where = f"{what} {source!r}: key {key!r}"
    refuse_pickled(labels.dtype, where, "integer class labels")
    if labels.ndim != 1 or labels.size == 0:
        raise MemoxrInputError(f"{where}: expected a non-empty 1-D array, received shape {labels.shape}")
    if labels.dtype.kind not in "iuf":
        raise MemoxrInputError(f"{where}: expected integer class labels, received dtype {labels.dtype}")
    bad = labels < 0
    if labels.dtype.kind == "f":
        bad = bad | ~np.isfinite(labels) | (labels != np.round(labels))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise MemoxrInputError(f"{where}: expected whole-number class labels >= 0, received {labels[at]} at position {at}")
    return labels.astype(np.int64)


def _check_binary_block(block: np.ndarray, key: str, source: str, block_info: Any = None) -> np.ndarray:
    bad = _k.count_not_binary(block)
    if bad:
        t, i = np.unravel_index(int(np.argmax(_k.not_binary(block))), block.shape)
        (t0, t1), (i0, _) = block_info[0]["array-location"]
        raise MemoxrInputError(
            f"trials {source!r}: key {key!r}: expected 0/1 values, received {block[t, i]} at trial {t0 + t}, "
            f"sample {i0 + i} ({bad} such values in trials {t0}..{t1 - 1})"
        )
    return block


def checked_binary(key: str, x: da.Array, source: str) -> da.Array:
    """``x``, whose chunks raise :class:`MemoxrInputError` when computed if they hold a value other than 0/1.

    Bool records need no check and are returned as they are.

    >>> import dask.array as da
    >>> x = checked_binary("mask", da.from_array(np.array([[0, 1], [2, 1]]), chunks=1), "here")
    >>> x[0].compute().tolist()
    [0, 1]
    >>> x.compute()
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: trials 'here': key 'mask': expected 0/1 values, received 2 at trial 1, sample 0 (1 such values in trials 1..1)
    """
    if x.dtype == bool:
        return x
    return da.map_blocks(_check_binary_block, x, key=key, source=source, dtype=x.dtype, meta=np.empty((0, 0), x.dtype))
