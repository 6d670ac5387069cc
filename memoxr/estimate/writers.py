"""Writing an estimate (a Zarr influence store, or the FZ-layout ``.npz``) and trial records; complete or absent."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..compute.blas import blas_threads_for_dask
from ..compute.progress import compute, deprecated_show_progress
from ..errors import MemoxrInputError
from ..io.chunks import DEFAULT_CHUNK_MB, BlockChunksLike
from ..io.location import (
    Location,
    PathLike,
    StorageOptions,
    check_store_name,
    locate,
    refuse_overlapping,
)
from ..io.npy import write_npy_streamed
from ..io.schema import CLASS, INFLUENCE_COORDS, check_influence_dataset
from ..io.storage import atomic_output, check_writable, write_dataset
from .graph import DEFAULT_SAMPLE_ORDER, TrialInput, estimate, estimate_with_sums
from .trials import (
    BINARY_KEYS,
    TRIAL_VARIABLES,
    trial_arrays,
    validate_dtypes,
    validate_keys,
    validate_shapes,
)

__all__ = ["estimate_to_zarr", "write_estimate", "write_estimate_store", "write_fz_npz", "write_trials"]


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    from ..io.encoding import influence_encoding

    encoding = influence_encoding(ds)
    for name in ("influence_full", "influence_se", "influence_ci_low", "influence_ci_high"):
        if name in encoding:
            encoding[name]["fill_value"] = float("nan")
    return encoding


def write_estimate_store(
    ds: xr.Dataset, output: PathLike | Location, *, overwrite: bool = False, show_progress: bool | None = None,
    storage_options: StorageOptions = None,
) -> str:
    """Write an estimate (:func:`~memoxr.estimate.estimate`) as a Zarr store, complete or absent (the old one kept till then).

    ``show_progress`` is deprecated: use ``with memoxr.progress():``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, memoxr.estimate as me
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> ds = me.estimate(records)
    >>> path = write_estimate_store(ds, os.path.join(tempfile.mkdtemp(), "e.zarr"))
    >>> os.path.basename(path)
    'e.zarr'
    """
    ds = ds.reset_coords([name for name in INFLUENCE_COORDS if name in ds.coords])  # the store's format
    with deprecated_show_progress(show_progress, "write_estimate_store"), blas_threads_for_dask([ds["influence"].data]):
        return write_dataset(ds, Location.of(output, storage_options), overwrite=overwrite, encoding=_encoding(ds))


def estimate_to_zarr(
    trials: TrialInput,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    full: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunksLike | None = None,
    sample_order: str | None = None,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> str:
    """Estimate (see :func:`~memoxr.estimate.estimate`) and write the influence store as Zarr, complete or absent.

    ``show_progress`` is deprecated: use ``with memoxr.progress():``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, memoxr
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> path = estimate_to_zarr(records, os.path.join(tempfile.mkdtemp(), "e.zarr"))
    >>> memoxr.open_influence(path)["tr_mem"].values.tolist()
    [1.0, 1.0]
    """
    target = Location.of(output, storage_options)
    with deprecated_show_progress(show_progress, "estimate_to_zarr"):
        check_writable(target, overwrite=overwrite, kind="folder")
        ds = estimate(locate(trials, storage_options), full=full, chunk_mb=chunk_mb, chunks=chunks,
                      sample_order=sample_order, bootstrap=bootstrap, confidence=confidence, seed=seed)
        return write_estimate_store(ds, target, overwrite=overwrite)


def write_fz_npz(
    ds: xr.Dataset,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
) -> Path:
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
        Influence store (from :func:`~memoxr.estimate.estimate` or ``memoxr.open_influence``).
    output : path
        ``.npz`` file to create.
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.

    Examples
    --------
    >>> import numpy as np, tempfile, os, memoxr.estimate as me
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> ds = me.estimate(records)
    >>> path = write_fz_npz(ds, os.path.join(tempfile.mkdtemp(), "e.npz"))
    >>> np.load(path)["infl_matrix_class0"].tolist()
    [[1.0], [0.0]]
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
        deprecated_show_progress(show_progress, "write_fz_npz"),
        atomic_output(Location.of(output, storage_options), overwrite=overwrite) as tmp,
        blas_threads_for_dask([influence]),
    ):
        small = dict(zip(("tr_mem", "tr_labels", "tt_labels"), compute(ds["tr_mem"], ds["tr_labels"], ds["tt_labels"]), strict=True))
        with open(tmp, "wb") as fp, zipfile.ZipFile(fp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for key, values in small.items():
                write_npy_streamed(archive, key, values.shape, values.dtype, [values.values])
            start = 0
            for size in class_chunks:
                group = range(start, start + size)
                start += size
                if size > 1 or len(train_chunks) == 1:
                    (block,) = compute(influence[group.start : group.stop])
                    row_blocks: dict[int, Iterable[np.ndarray]] = {c: [np.asarray(block)[c - group.start]] for c in group}
                else:
                    row_blocks = {group.start: _row_chunks(influence, group.start, train_chunks)}
                for c in group:
                    n_tr, n_tt, k = int(train_count[c]), int(test_count[c]), classes[c]
                    tr, tt = train_index[c, :n_tr].astype(np.int64), test_index[c, :n_tt].astype(np.int64)
                    write_npy_streamed(archive, f"tr_classidx_{k}", tr.shape, tr.dtype, [tr])
                    write_npy_streamed(archive, f"tt_classidx_{k}", tt.shape, tt.dtype, [tt])
                    write_npy_streamed(
                        archive, f"infl_matrix_class{k}", (n_tr, n_tt), np.dtype(np.float32),
                        _clip_rows(row_blocks[c], n_tr, n_tt),
                    )
            order = np.array(str(ds.attrs.get("sample_order", DEFAULT_SAMPLE_ORDER)))  # a string, not pickled
            write_npy_streamed(archive, "sample_order", (), order.dtype, [order])
    return Path(output)


def _row_chunks(influence: da.Array, c: int, train_chunks: tuple[int, ...]) -> Iterator[np.ndarray]:
    start = 0
    for size in train_chunks:
        (rows,) = compute(influence[c, start : start + size])
        yield np.asarray(rows)
        start += size


def _clip_rows(blocks: Iterable[np.ndarray], n_tr: int, n_tt: int) -> Iterator[np.ndarray]:
    """Rows ``[0, n_tr)`` and columns ``[0, n_tt)`` of a class's padded row blocks."""
    done = 0
    for block in blocks:
        take = min(len(block), n_tr - done)
        if take <= 0:
            break
        yield block[:take, :n_tt]
        done += take


def write_estimate(
    trials: TrialInput,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    full: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    sample_order: str | None = None,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> str | Path:
    """Estimate and save: an FZ ``.npz`` when ``output`` ends in ``.npz``, else a Zarr store.

    ``full`` and ``bootstrap`` need a Zarr output (the FZ layout has no place
    for them), and so do the standard errors and the sums that appending needs.
    ``show_progress`` is deprecated: use ``with memoxr.progress():``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> path = write_estimate(records, os.path.join(tempfile.mkdtemp(), "e.npz"))
    >>> np.load(path)["tr_mem"].tolist()
    [1.0, 1.0]
    """
    with deprecated_show_progress(show_progress, "write_estimate"):
        if isinstance(trials, (str, os.PathLike, Location)):  # replacing the records being read destroys them
            refuse_overlapping({"--input": trials}, {"--output": output})
        if not str(output).endswith(".npz"):
            check_store_name(output, also=", or .npz for the FZ layout")
            return estimate_to_zarr(locate(trials, storage_options), Location.of(output, storage_options),
                                    overwrite=overwrite, full=full, chunk_mb=chunk_mb, sample_order=sample_order,
                                    bootstrap=bootstrap, confidence=confidence, seed=seed)
        for name, value in (("full", full), ("bootstrap", bootstrap)):
            if value:
                raise MemoxrInputError(
                    f"{name}: the FZ .npz layout holds within-class blocks only; received {name}={value!r} with "
                    f"output {str(output)!r}: write a Zarr store to keep it"
                )
        target = Location.of(output, storage_options)
        check_writable(target, overwrite=overwrite)
        # The FZ layout is written a block of classes at a time: the per-sample sums once, first.
        ds = estimate_with_sums(locate(trials, storage_options), chunk_mb=chunk_mb, sample_order=sample_order)
        return write_fz_npz(ds, target, overwrite=overwrite)



def write_trials(
    trials: Mapping[str, Any] | xr.Dataset,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Save trial records: a compressed ``.npz`` (suffix ``.npz``) or a Zarr store, complete or absent.

    ``mask`` and the correctness arrays are stored as bool, labels as int64.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> records = {"mask": np.eye(2), "train_correct": np.eye(2), "test_correct": np.ones((2, 1)),
    ...            "tr_labels": np.array([0, 0]), "tt_labels": np.array([0])}
    >>> write_trials(records, os.path.join(tempfile.mkdtemp(), "t.zarr")).name
    't.zarr'
    """
    arrays, source, _, _ = trial_arrays(trials)
    validate_keys(arrays, source)
    validate_dtypes(arrays, source)
    validate_shapes(arrays, source)
    data = {
        key: np.asarray(arrays[key]).astype(bool if key in BINARY_KEYS else np.int64) for key in TRIAL_VARIABLES
    }
    if str(output).endswith(".npz"):
        with atomic_output(output, overwrite=overwrite) as tmp, open(tmp, "wb") as fp:
            np.savez_compressed(fp, **data)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
        return Path(output)
    ds = xr.Dataset({key: (TRIAL_VARIABLES[key], value) for key, value in data.items()})
    return Path(write_dataset(ds, output, overwrite=overwrite))
