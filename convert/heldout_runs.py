"""Trial records from the per-run files of the held-out influence release.

The released held-out training runs (google-research/heldout-influence-estimation)
are laid out as::

    <experiment>                       e.g. cifar10-inception
      +-- <subset_ratio>               e.g. 0.1, 0.7
      |     +-- <run_id>               0, 1, 2, ... (sorted numerically here)
      |     |     +-- aux_arrays.npz
      |     |     +-- checkpoints/...  (not read)

Each ``aux_arrays.npz`` holds, for one model trained on a random subset of the
train split:

=========================  ==============================================================
key                        meaning
=========================  ==============================================================
``correctness_train``      0/1: the final model is right on each kept train example
``correctness_removed``    0/1: the final model is right on each held-out train example
``correctness_test``       0/1: the final model is right on each test example
``index_train``            id (row of the full train split) of each ``correctness_train``
``index_removed``          id of each ``correctness_removed``; ``train`` + ``removed`` is
                           the whole train split
``index_test``             row of the test split of each ``correctness_test``
``subsample_idx``          ids of the train split selected for this run (= ``index_train``)
=========================  ==============================================================

:func:`read_heldout_runs` turns the runs of one subset ratio into memoxr's trial
records (see :mod:`memoxr.estimate`): run ``t`` becomes trial ``t``, with
``mask[t, index_train] = True``, ``train_correct[t, index_train] =
correctness_train``, ``train_correct[t, index_removed] = correctness_removed``
and ``test_correct[t, index_test] = correctness_test``. Labels are not in these
files (they come from TensorFlow-Datasets, so the sample order is ``"tfds"``):
they are passed in. Folders may be local or on object storage (``s3://``, via
fsspec). Each run is read by one dask task, so memory holds a few runs at a
time, never the whole set.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from memoxr.compute.progress import compute, deprecated_show_progress
from memoxr.compute.scheduler import rechunk
from memoxr.estimate.trials import TRIAL, TRIAL_VARIABLES, validate_labels
from memoxr.io.chunks import validate_mb
from memoxr.io.location import Location, StorageOptions, local_version, locate
from memoxr.io.npy import write_npy_streamed
from memoxr.io.storage import atomic_output, check_writable, write_dataset

from .heldout_files import (
    AUX_FILE,
    DEFAULT_TRIAL_CHUNK_MB,
    RUN_KEYS,
    SAMPLE_ORDER,
    LabelsArg,
    check_run,
    find_runs,
    load_run,
    read_labels,
    select_ratio,
)

__all__ = [
    "AUX_FILE",
    "RUN_KEYS",
    "SAMPLE_ORDER",
    "heldout_runs_to_trials",
    "read_heldout_runs",
]


# ---------------------------------------------------------------------------------------------
# Public API


def _version(path: str) -> tuple[str, int, int, int, int]:
    """A local run file's full path and which version of it is there (:func:`~memoxr.io.location.local_version`),
    for its dask keys: the same name in another folder, or the file written again, must not share a held result's keys."""
    return os.path.abspath(path), *local_version(path)


def read_heldout_runs(
    folder: str | os.PathLike[str],
    *,
    subset_ratio: float | str | None = None,
    tr_labels: Any,
    tt_labels: Any,
    validate: bool = True,
    trial_chunk_mb: float = DEFAULT_TRIAL_CHUNK_MB,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
) -> xr.Dataset:
    """Read the held-out runs of one subset ratio as memoxr trial records, lazily.

    Layout: ``<folder>/<subset_ratio>/<run_id>/aux_arrays.npz`` (see the module
    docstring for the keys). Runs are sorted by numeric run id; run ``t`` of that
    order is trial ``t``.

    Dims contract: ``mask``, ``train_correct`` ``(trial, train_id)`` bool;
    ``test_correct`` ``(trial, test_id)`` bool; ``tr_labels`` ``(train_id,)`` and
    ``tt_labels`` ``(test_id,)`` int64; coordinate ``run_id(trial)``. ``mask[t,
    i]`` is true when train id ``i`` is in run ``t``'s ``index_train``
    (= ``subsample_idx``); ``train_correct`` is scattered from
    ``correctness_train`` / ``correctness_removed`` by ``index_train`` /
    ``index_removed``, ``test_correct`` from ``correctness_test`` by
    ``index_test``.

    The three record arrays are dask arrays built from one ``dask.delayed`` load
    per run, stacked along ``trial`` and grouped into chunks of about
    ``trial_chunk_mb``: computing them holds a few runs in memory at a time.

    Parameters
    ----------
    folder : path or URL
        The experiment folder (local, or ``s3://...`` with ``storage_options``).
    subset_ratio : float or str, optional
        The ratio folder to read, matched by value (``0.7`` matches ``"0.70"``).
        Needed when ``folder`` holds several.
    tr_labels, tt_labels : array-like
        Class labels (whole numbers >= 0) of the full train and test splits, in
        TensorFlow-Datasets order; their lengths fix ``n_train`` and ``n_test``.
    validate : bool
        Read every run once now (in parallel, one dask task per run, on the
        active scheduler) so that a bad file raises here rather than when the
        records are computed. Each load validates its file in any case.
    trial_chunk_mb : float
        Target size in MB of one chunk of trials of the record arrays.
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.
    storage_options : mapping, optional
        fsspec options for ``s3://`` folders.

    Returns
    -------
    xarray.Dataset
        Trial records; attrs ``sample_order="tfds"``, ``source_name``
        (``<experiment>/<ratio>``), ``subset_ratio`` (the folder name) and
        ``n_runs``.

    Raises
    ------
    MemoxrInputError
        A missing folder or no runs in it; several subset ratios and none chosen,
        or an unknown one; a run folder that is not a whole number; bad labels; in
        a run's file: missing keys, object (pickled) arrays, wrong dtypes or
        dims, lengths of ``correctness_*`` and ``index_*`` that differ, indices
        out of range or repeated, ``index_train`` and ``index_removed`` that are
        not exactly the full train split, ``subsample_idx`` not the ids of
        ``index_train``, correctness values other than 0/1.

    Examples
    --------
    >>> import numpy as np, os
    >>> from memoxr.convert.heldout_files import one_run_folder
    >>> root = one_run_folder()
    >>> ds = read_heldout_runs(root, tr_labels=[0, 0], tt_labels=[0])
    >>> ds["mask"].values.tolist(), ds["train_correct"].values.tolist(), ds.attrs["sample_order"]
    ([[True, False]], [[True, False]], 'tfds')
    """
    folder_location = Location.of(folder, storage_options)
    source = folder_location.path
    trial_chunk_mb = validate_mb("trial_chunk_mb", trial_chunk_mb)
    tr = validate_labels("tr_labels", tr_labels, "<argument>", what="labels")
    tt = validate_labels("tt_labels", tt_labels, "<argument>", what="labels")
    n_train, n_test = len(tr), len(tt)
    all_runs = find_runs(folder_location)
    ratio = select_ratio(all_runs, subset_ratio, source)
    runs = all_runs[ratio]
    files = [folder_location.at(run.path) for run in runs]  # each run's file, with the folder's options

    if validate:
        checks = [dask.delayed(check_run, pure=True)(file, n_train, n_test) for file in files]
        with deprecated_show_progress(show_progress, "read_heldout_runs"):
            compute(*checks)

    width = 2 * n_train + n_test
    rows = []
    for file in files:
        token = tokenize(file.path, n_train, n_test, dict(file.storage_options) if file.is_url else _version(file.path))
        load = dask.delayed(load_run, pure=True)(file, n_train, n_test, dask_key_name=f"load-heldout-run-{token}")
        rows.append(da.from_delayed(load, shape=(width,), dtype=bool))
    per_chunk = int(min(len(runs), max(1, trial_chunk_mb * 2**20 // width)))
    stacked = rechunk(da.stack(rows, axis=0), (per_chunk, width))

    experiment = PurePosixPath(source.rstrip("/")).name or source
    ds = xr.Dataset(
        {
            "mask": (TRIAL_VARIABLES["mask"], stacked[:, :n_train]),
            "train_correct": (TRIAL_VARIABLES["train_correct"], stacked[:, n_train : 2 * n_train]),
            "test_correct": (TRIAL_VARIABLES["test_correct"], stacked[:, 2 * n_train :]),
            "tr_labels": (TRIAL_VARIABLES["tr_labels"], tr),
            "tt_labels": (TRIAL_VARIABLES["tt_labels"], tt),
        },
        coords={"run_id": (TRIAL, np.array([run.run_id for run in runs], dtype=np.int64))},
        attrs={
            "sample_order": SAMPLE_ORDER,
            "source_name": f"{experiment}/{ratio}",
            "subset_ratio": ratio,
            "n_runs": len(runs),
        },
    )
    ds["mask"].attrs["description"] = "train id i is in run t's training subset (index_train)"
    ds["train_correct"].attrs["description"] = "run t's final model is right on train id i"
    ds["test_correct"].attrs["description"] = "run t's final model is right on test sample j"
    ds["run_id"].attrs["description"] = f"run folder of each trial (<subset_ratio>/<run_id>/{AUX_FILE})"
    return ds


def _write_trials_npz(ds: xr.Dataset, output: Location, *, overwrite: bool) -> str:
    """Trial records as a compressed ``.npz``, a chunk of trials at a time (each run read once)."""
    keys = [*TRIAL_VARIABLES, "run_id"]
    with atomic_output(output, overwrite=overwrite) as tmp, \
            tempfile.TemporaryDirectory() as parts:
        with contextlib.ExitStack() as stack:
            files = {key: stack.enter_context(open(Path(parts) / f"{key}.npy", "wb")) for key in keys}
            for key, fp in files.items():
                header = {"descr": np.lib.format.dtype_to_descr(ds[key].dtype), "fortran_order": False,
                          "shape": ds[key].shape}
                np.lib.format.write_array_header_1_0(fp, header)
            for key in ("tr_labels", "tt_labels", "run_id"):
                files[key].write(np.ascontiguousarray(ds[key].values).tobytes())
            records = ("mask", "train_correct", "test_correct")
            start = 0
            for size in ds["mask"].data.chunks[0]:
                block = slice(start, start + size)
                start += size
                values = compute(*(ds[key].data[block] for key in records))
                for key, value in zip(records, values, strict=True):
                    files[key].write(np.ascontiguousarray(value).tobytes())
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for key in keys:
                archive.write(Path(parts) / f"{key}.npy", arcname=f"{key}.npy")
            order = np.array(str(ds.attrs["sample_order"]))  # a string scalar, not pickled
            write_npy_streamed(archive, "sample_order", (), order.dtype, [order])
    return str(output)


def heldout_runs_to_trials(
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    subset_ratio: float | str | None = None,
    labels: LabelsArg,
    overwrite: bool = False,
    trial_chunk_mb: float = DEFAULT_TRIAL_CHUNK_MB,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
) -> str:
    """Write the held-out runs of one subset ratio as trial records, complete or absent.

    Every run is validated (see :func:`read_heldout_runs`) before anything is
    written. ``output`` ending in ``.npz`` gets a compressed ``.npz`` (keys
    ``mask``, ``train_correct``, ``test_correct``, ``tr_labels``, ``tt_labels``,
    ``run_id``), anything else a Zarr store with those variables (trial-chunked,
    with the attrs of :func:`read_heldout_runs`); both are written a chunk of
    trials at a time and read by ``memoxr estimate``.

    Parameters
    ----------
    folder : path or URL
        The experiment folder: ``<folder>/<subset_ratio>/<run_id>/aux_arrays.npz``.
    output : path or URL
        ``.npz`` file or Zarr store to create.
    subset_ratio : float or str, optional
        The ratio folder to read; needed when there are several.
    labels : path or mapping
        ``tr_labels`` and ``tt_labels``: an ``.npz`` holding both (never
        unpickled) or a mapping.
    overwrite : bool
        Replace an existing ``output`` (kept until the new one is complete).
    storage_options : mapping, optional
        fsspec options for ``s3://`` paths, input or output.
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.

    Returns
    -------
    str
        ``output``.

    Examples
    --------
    >>> import numpy as np, os
    >>> from memoxr.convert.heldout_files import one_run_folder
    >>> root = one_run_folder()
    >>> path = heldout_runs_to_trials(root, os.path.join(root, "trials.npz"), labels={"tr_labels": [0, 0],
    ...                               "tt_labels": [0]})
    >>> np.load(path)["test_correct"].tolist()
    [[True]]
    """
    with deprecated_show_progress(show_progress, "heldout_runs_to_trials"):
        # Each path (runs folder, labels file, output) its own Location, resolved here once.
        return _write_runs(Location.of(folder, storage_options), Location.of(output, storage_options), subset_ratio,
                           locate(labels, storage_options), overwrite, trial_chunk_mb)


def _write_runs(
    folder: Location, output: Location, subset_ratio: float | str | None,
    labels: LabelsArg | Location, overwrite: bool, trial_chunk_mb: float,
) -> str:
    check_writable(output, overwrite=overwrite, kind="file" if output.path.endswith(".npz") else "folder")
    tr_labels, tt_labels = read_labels(labels)
    ds = read_heldout_runs(
        # Each run's loader validates its own file while the output is written, and the output is
        # complete or absent: a separate validation pass would read every run twice.
        folder, subset_ratio=subset_ratio, tr_labels=tr_labels, tt_labels=tt_labels, validate=False,
        trial_chunk_mb=trial_chunk_mb,
    )
    if output.path.endswith(".npz"):
        return _write_trials_npz(ds, output, overwrite=overwrite)
    encoding = {key: {"chunks": _first_chunks(ds[key])} for key in TRIAL_VARIABLES}
    return write_dataset(ds, output, overwrite=overwrite, encoding=encoding)


def _first_chunks(variable: xr.DataArray) -> tuple[int, ...]:
    """Zarr chunks from the dask chunks of ``variable`` (its whole shape when it is in memory)."""
    chunks = variable.chunks
    return tuple(c[0] for c in chunks) if chunks else tuple(variable.shape)
