"""High-influence train/test pairs, found chunk by chunk, as in the FZ release's ``*_high_infl_pairs_*.npz``.

A pair ``(i, j)`` of train sample ``i`` and test sample ``j`` is kept when

- ``influence(i, j) >= min_infl`` and
- ``memorization(i) >= min_mem``

(padding never passes; a NaN never passes either unless ``skipna=False``, see
:func:`pairs`). The influence is the within-class
``influence(class, train_sample, test_sample)`` of an influence store or FZ npz,
or, with ``full=True``, the ``influence_full(train_id, test_id)`` of every train
sample on every test sample that ``memoxr estimate --full`` stores.

Each influence chunk is searched by one dask task that returns only its pairs
(one ``da.blockwise`` over the chunks); a chunk none of whose train rows reaches
``min_mem`` is never read. Memory is bounded by the chunk size and the number of
pairs found, not by the matrix. With ``top_k_per_test=K`` every chunk keeps at
most ``K`` pairs per test sample, and the merge keeps the ``K`` of highest
influence over all chunks (ties: lower train index first).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..compute.manners import rank_skipna, resolve_keep_attrs
from ..errors import MemoxrInputError
from ..io.location import Location, PathLike, StorageOptions, locate
from ..io.schema import CLASS, TEST, TEST_ID, TRAIN, TRAIN_ID, check_influence_dataset, kept_attrs
from ..io.storage import atomic_output

#: Columns of the table :func:`pairs` returns, in order.
PAIR_COLUMNS = ("class_label", "train_index", "test_index", "test_label", "memorization", "influence")
#: Keys of an ``.npz`` output: the FZ release's four, then the labels.
NPZ_KEYS = {"tr_idx": "train_index", "tt_idx": "test_index", "infl": "influence", "mem": "memorization",
            "tr_labels": "class_label", "tt_labels": "test_label"}
_FOUND = np.dtype([("train", np.int64), ("test", np.int64), ("influence", np.float64)])


def block_pairs(
    influence: np.ndarray,
    row_ok: np.ndarray,
    train_index: np.ndarray,
    test_index: np.ndarray,
    *,
    min_infl: float,
    top_k: int | None = None,
    keep_nan: bool = False,
) -> np.ndarray:
    """The pairs of one ``(class, train, test)`` block: a structured array ``(train, test, influence)``.

    ``row_ok(class, train)`` says which train rows may pair (memorization high
    enough, not padding); ``train_index`` / ``test_index`` give the rows' and
    columns' global indices (-1 padding). With ``top_k``, at most ``top_k`` pairs
    per test index, of highest influence (ties: lower train index). With
    ``keep_nan`` a NaN influence of a row that may pair is kept too, listed last.

    Examples
    --------
    >>> infl = np.array([[[0.2, 0.0], [0.5, 0.3]]])
    >>> found = block_pairs(infl, np.array([[True, True]]), np.array([[7, 9]]), np.array([[0, 1]]),
    ...                     min_infl=0.15)
    >>> [tuple(map(float, p)) for p in found]
    [(9.0, 0.0, 0.5), (7.0, 0.0, 0.2), (9.0, 1.0, 0.3)]
    """
    high = influence >= _threshold_in(influence.dtype, min_infl)
    if keep_nan:
        high |= np.isnan(influence)
    hit = high & row_ok[:, :, None] & (test_index >= 0)[:, None, :]
    c, i, j = np.nonzero(hit)
    found = np.empty(c.size, dtype=_FOUND)
    found["train"], found["test"] = train_index[c, i], test_index[c, j]
    found["influence"] = influence[c, i, j]
    found = found[_pair_order(found["test"], found["influence"], found["train"])]
    return found if top_k is None else found[_first_per_group(found["test"], top_k)]


def _threshold_in(dtype: np.dtype, value: float) -> Any:
    """``value`` in ``dtype`` such that ``x >= result`` in ``dtype`` iff ``float64(x) >= value`` (no float64 copy)."""
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return value
    cast = np.asarray(value, dtype=dtype)
    return np.nextafter(cast, np.inf, dtype=dtype) if float(cast) < value else cast


def _pair_order(test: np.ndarray, influence: np.ndarray, train: np.ndarray) -> np.ndarray:
    return np.lexsort((train, -influence, test))


def _first_per_group(sorted_keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the first ``k`` entries of each run of equal keys in a sorted array."""
    if sorted_keys.size == 0:
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    rank = np.arange(sorted_keys.size) - np.repeat(starts, np.diff(np.r_[starts, sorted_keys.size]))
    return rank < k


def _block_task(influence, row_ok, train_index, test_index, *, min_infl, top_k, keep_nan=False):
    out = np.empty((1, 1, 1), dtype=object)
    out[0, 0, 0] = block_pairs(
        np.asarray(influence), row_ok, train_index, test_index, min_infl=min_infl, top_k=top_k, keep_nan=keep_nan
    )
    return out


def _validate_threshold(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
        raise MemoxrInputError(f"{name} must be a finite number; received {value!r}")
    return float(value)


def _validate_top_k(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise MemoxrInputError(f"top_k_per_test must be a whole number >= 1 or None; received {value!r}")
    return int(value)


def _layout(ds: xr.Dataset, *, full: bool, source: str) -> tuple[da.Array, np.ndarray, np.ndarray]:
    """The influence as ``(class, train, test)`` dask blocks and the global indices of rows and columns."""
    if full:
        if "influence_full" not in ds.variables:
            raise MemoxrInputError(
                f"{source}: variable 'influence_full' missing; expected an influence store written by "
                "`memoxr estimate --full` (an FZ npz and `memoxr convert` hold within-class blocks only): "
                "drop --full to search the within-class influence"
            )
        full_infl = ds["influence_full"]
        if full_infl.dims != (TRAIN_ID, TEST_ID):
            raise MemoxrInputError(
                f"{source}: variable 'influence_full' has dims {full_infl.dims}; expected {(TRAIN_ID, TEST_ID)}"
            )
        data = da.asarray(full_infl.data)[None]
        n_train, n_test = full_infl.shape
        return data, np.arange(n_train)[None], np.arange(n_test)[None]
    influence = ds["influence"].transpose(CLASS, TRAIN, TEST)
    train_index = np.asarray(ds["train_index"].transpose(CLASS, TRAIN).values, dtype=np.int64)
    test_index = np.asarray(ds["test_index"].transpose(CLASS, TEST).values, dtype=np.int64)
    return da.asarray(influence.data), train_index, test_index


def _open(
    source: xr.Dataset | PathLike | Location, *, allow_pickle: bool, chunk_mb: float | None
) -> tuple[xr.Dataset, str]:
    if isinstance(source, xr.Dataset):
        return check_influence_dataset(source), "dataset"
    from .sources import open_influence

    location = Location.of(source)  # resolved by the public caller; a Location comes back as it is
    return open_influence(location, allow_pickle=allow_pickle, chunk_mb=chunk_mb), repr(location.path)


@dataclass
class Search:
    """The validated arguments and the lazy search of :func:`pairs`: one delayed block per chunk to read.

    >>> import memoxr
    >>> search = plan_search(memoxr.sample_path(), min_infl=0.15, min_mem=0.25)
    >>> search.min_infl, len(search.wanted) > 0
    (0.15, True)
    """

    ds: xr.Dataset
    influence: da.Array
    wanted: list[Any]
    tr_mem: np.ndarray
    tr_labels: np.ndarray
    tt_labels: np.ndarray
    min_infl: float
    min_mem: float
    top_k: int | None
    keep_nan: bool = False


def plan_search(
    source: PathLike | Location | xr.Dataset,
    *,
    min_infl: float = 0.15,
    min_mem: float = 0.25,
    top_k_per_test: int | None = None,
    full: bool = False,
    allow_pickle: bool = False,
    chunk_mb: float | None = None,
    storage_options: StorageOptions = None,
    skipna: bool | None = None,
) -> Search:
    """What :func:`pairs` will compute (arguments as there), from metadata and the small index arrays.

    >>> import memoxr
    >>> search = plan_search(memoxr.sample_path(), top_k_per_test=2)
    >>> search.top_k, search.tr_mem.shape == search.tr_labels.shape
    (2, True)
    """
    min_infl = _validate_threshold("min_infl", min_infl)
    min_mem = _validate_threshold("min_mem", min_mem)
    top_k = _validate_top_k(top_k_per_test)
    keep_nan = not rank_skipna(skipna)
    ds, where = _open(locate(source, storage_options), allow_pickle=allow_pickle, chunk_mb=chunk_mb)
    tr_mem = np.asarray(ds["tr_mem"].values, dtype=np.float64)
    tr_labels, tt_labels = np.asarray(ds["tr_labels"].values), np.asarray(ds["tt_labels"].values)
    influence, train_index, test_index = _layout(ds, full=full, source=where)

    eligible = np.zeros(tr_mem.size + 1, dtype=bool)  # last entry: padding (-1)
    eligible[:-1] = (tr_mem >= min_mem) | (keep_nan & np.isnan(tr_mem))
    row_ok = eligible[train_index]
    c_chunks, i_chunks, j_chunks = influence.chunks
    rows = da.from_array(row_ok, chunks=(c_chunks, i_chunks))
    found = da.blockwise(
        _block_task, "cij",
        influence, "cij", rows, "ci",
        da.from_array(train_index, chunks=(c_chunks, i_chunks)), "ci",
        da.from_array(test_index, chunks=(c_chunks, j_chunks)), "cj",
        min_infl=min_infl, top_k=top_k, keep_nan=keep_nan,
        adjust_chunks={"c": 1, "i": 1, "j": 1}, dtype=object, meta=np.empty((0, 0, 0), dtype=object),
        token="memoxr-pairs",
    )
    # Only the chunks with a row that may pair and a real test column: dask reads no other.
    blocks = found.to_delayed()  # one graph, optimized once, for any subset of its blocks
    wanted = [
        blocks[b]
        for b in np.ndindex(found.numblocks)
        if _block_of(row_ok, (c_chunks, i_chunks), b[:2]).any()
        and (_block_of(test_index, (c_chunks, j_chunks), (b[0], b[2])) >= 0).any()
    ]
    return Search(ds, influence, wanted, tr_mem, tr_labels, tt_labels, min_infl, min_mem, top_k, keep_nan)


def pairs(
    source: PathLike | Location | xr.Dataset,
    *,
    min_infl: float = 0.15,
    min_mem: float = 0.25,
    top_k_per_test: int | None = None,
    full: bool = False,
    allow_pickle: bool = False,
    chunk_mb: float | None = None,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
    skipna: bool | None = None,
    keep_attrs: bool | None = None,
) -> pd.DataFrame:
    """Train/test pairs of high influence whose train sample is highly memorized.

    Dims contract: ``source`` is an influence store (``memoxr.open_influence``:
    a Zarr store, an FZ ``.npz`` or an opened Dataset) with
    ``influence(class, train_sample, test_sample)`` or, for ``full=True``,
    ``influence_full(train_id, test_id)``. The result is a table, one row per pair.

    A pair ``(i, j)`` is kept when ``influence(i, j) >= min_infl`` and
    ``tr_mem(i) >= min_mem``; NaN never passes. The FZ release's
    ``cifar100_high_infl_pairs_infl0.15_mem0.25.npz`` holds such pairs with
    ``min_infl=0.15``, ``min_mem=0.25``. With ``top_k_per_test=K`` only the ``K``
    pairs of highest influence of each test sample are kept (ties: lower train
    index first).

    ``skipna`` (the rule of :mod:`memoxr.compute.manners`): by default
    (``None``) and with ``True`` a NaN influence or memorization never passes (a
    NaN has no rank); with ``False`` it takes part: a pair whose influence or
    memorization is NaN (the other passing or NaN too) is kept, a NaN influence
    listed last among its test sample's pairs. ``keep_attrs=True`` also copies the store's
    attributes into ``attrs`` (default ``None``: xarray's option, off).

    Parameters
    ----------
    source : path or xarray.Dataset
        Influence store or FZ npz, or an opened influence Dataset.
    min_infl, min_mem : float
        Lowest influence and lowest memorization of a kept pair (inclusive).
    top_k_per_test : int, optional
        Keep at most this many pairs per test sample.
    full : bool
        Search ``influence_full`` (every train sample on every test sample)
        instead of the within-class blocks.
    allow_pickle, chunk_mb : optional
        For an ``.npz`` input: allow pickled arrays; target chunk size in MB.
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.

    Returns
    -------
    pandas.DataFrame
        Columns ``class_label`` (the train sample's label), ``train_index`` and
        ``test_index`` (rows of the train and test splits, in the store's sample
        order, ``attrs["sample_order"]``), ``test_label``, ``memorization``
        (``tr_mem``) and ``influence``; sorted by class, test index, influence
        (highest first) and train index.

    Examples
    --------
    >>> import memoxr
    >>> table = memoxr.pairs(memoxr.sample_path(), min_infl=0.15, min_mem=0.25)
    >>> list(table.columns)
    ['class_label', 'train_index', 'test_index', 'test_label', 'memorization', 'influence']
    >>> bool((table["influence"] >= 0.15).all() and (table["memorization"] >= 0.25).all())
    True
    """
    keep = resolve_keep_attrs(keep_attrs)
    search = plan_search(
        locate(source, storage_options), min_infl=min_infl, min_mem=min_mem, top_k_per_test=top_k_per_test,
        full=full, allow_pickle=allow_pickle, chunk_mb=chunk_mb, skipna=skipna,
    )
    ds, wanted, tr_mem, tr_labels, tt_labels = search.ds, search.wanted, search.tr_mem, search.tr_labels, search.tt_labels
    min_infl, min_mem, top_k = search.min_infl, search.min_mem, search.top_k
    from ..compute.progress import compute, deprecated_show_progress

    with deprecated_show_progress(show_progress, "pairs"):
        parts = [part[0, 0, 0] for part in compute(*wanted)]
    table = _table(np.concatenate([np.empty(0, dtype=_FOUND), *parts]), top_k, tr_mem, tr_labels, tt_labels)
    table.attrs.update(
        kept_attrs(ds.attrs, keep),
        sample_order=str(ds.attrs.get("sample_order", "")), min_infl=min_infl, min_mem=min_mem,
        top_k_per_test=top_k, full=bool(full),
    )
    return table


def _block_of(array: np.ndarray, chunks: tuple[tuple[int, ...], ...], index: tuple[int, ...]) -> np.ndarray:
    bounds = [np.cumsum((0, *c)) for c in chunks]
    return array[tuple(slice(b[k], b[k + 1]) for b, k in zip(bounds, index, strict=True))]


def _table(
    found: np.ndarray, top_k: int | None, tr_mem: np.ndarray, tr_labels: np.ndarray, tt_labels: np.ndarray
) -> pd.DataFrame:
    found = found[_pair_order(found["test"], found["influence"], found["train"])]
    if top_k is not None:
        found = found[_first_per_group(found["test"], top_k)]
    train, test = found["train"], found["test"]
    table = pd.DataFrame(
        {
            "class_label": tr_labels[train].astype(np.int64),
            "train_index": train,
            "test_index": test,
            "test_label": tt_labels[test].astype(np.int64),
            "memorization": tr_mem[train],
            "influence": found["influence"],
        }
    )
    order = np.lexsort((table["train_index"], -table["influence"], table["test_index"], table["class_label"]))
    return table.iloc[order].reset_index(drop=True)


def write_pairs(
    table: pd.DataFrame, output: PathLike | Location, *, overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> str:
    """Save a pairs table: ``.csv`` (the columns of :data:`PAIR_COLUMNS`) or ``.npz`` (the FZ
    release's keys ``tr_idx``, ``tt_idx``, ``infl``, ``mem``, plus ``tr_labels``, ``tt_labels``).

    >>> import memoxr, os, tempfile
    >>> table = memoxr.pairs(memoxr.sample_path())
    >>> path = write_pairs(table, os.path.join(tempfile.mkdtemp(), "pairs.npz"))
    >>> len(np.load(path)["tr_idx"]) == len(table)
    True
    """
    check_pairs_output(output)
    location = Location.of(output, storage_options)
    with atomic_output(location, overwrite=overwrite) as tmp:
        if location.path.endswith(".npz"):
            with open(tmp, "wb") as fp:  # a file object: savez adds no suffix to the partial's name
                arrays: dict[str, Any] = {key: table[column].to_numpy() for key, column in NPZ_KEYS.items()}
                np.savez(fp, **arrays)
        else:
            table.to_csv(tmp, index=False)
    return location.path


def check_pairs_output(output: Any) -> None:
    """A pairs output name: ``.csv`` or ``.npz``, or an error naming it.

    >>> check_pairs_output("pairs.csv")
    """
    if not str(output).endswith((".csv", ".npz")):
        raise MemoxrInputError(f"output {str(output)!r}: expected a .csv or .npz file name")
