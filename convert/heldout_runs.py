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
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click
import dask
import dask.array as da
import fsspec
import numpy as np
import xarray as xr
from dask.base import tokenize

from memoxr.cli.options import handle_errors, overwrite_option, quiet_option, remote_options
from memoxr.compute.progress import compute, progress
from memoxr.errors import MemoxrInputError
from memoxr.estimate import TRIAL, TRIAL_VARIABLES, _write_npy_streamed
from memoxr.io.chunks import validate_mb
from memoxr.io.npz import load_npz_arrays, open_npz, read_npz_headers
from memoxr.io.storage import (
    StorageOptions,
    atomic_output,
    check_writable,
    describe_access_error,
    is_url,
    write_dataset,
)

__all__ = [
    "AUX_FILE",
    "RUN_KEYS",
    "SAMPLE_ORDER",
    "heldout_runs_to_trials",
    "read_heldout_runs",
    "trials_from_runs_command",
]

#: Name of the per-run file.
AUX_FILE = "aux_arrays.npz"
#: The keys each ``aux_arrays.npz`` must hold.
RUN_KEYS = (
    "correctness_train",
    "correctness_removed",
    "correctness_test",
    "index_train",
    "index_removed",
    "index_test",
    "subsample_idx",
)
_CORRECTNESS = ("correctness_train", "correctness_removed", "correctness_test")
#: Sample order of the release: TensorFlow-Datasets' order of each split.
SAMPLE_ORDER = "tfds"
LABEL_KEYS = ("tr_labels", "tt_labels")
#: Default target size of one chunk of trials, in MB (bool values).
DEFAULT_TRIAL_CHUNK_MB = 16.0
_RUN_ID = re.compile(r"^\d+$")

LabelsArg = str | os.PathLike[str] | Mapping[str, Any]


@dataclass(frozen=True)
class _Run:
    """One run's file: its subset-ratio folder, numeric run id and full path (or URL)."""

    ratio: str
    run_id: int
    path: str


# ---------------------------------------------------------------------------------------------
# Finding the runs


def _find_runs(folder: str, storage_options: StorageOptions) -> dict[str, list[_Run]]:
    """``{ratio folder name: runs sorted by run id}`` for ``<folder>/<ratio>/<run_id>/aux_arrays.npz``."""
    so = dict(storage_options or {}) if is_url(folder) else {}
    try:
        fs, root = fsspec.core.url_to_fs(folder, **so)
        if not fs.isdir(root):
            raise MemoxrInputError(
                f"runs folder {folder!r} does not exist or is not a folder; expected "
                f"<experiment>/<subset_ratio>/<run_id>/{AUX_FILE}"
            )
        found = sorted(fs.glob(f"{root.rstrip('/')}/*/*/{AUX_FILE}"))
        if not found:
            nested = fs.glob(f"{root.rstrip('/')}/*/{AUX_FILE}")
    except (PermissionError, OSError) as exc:
        raise MemoxrInputError(describe_access_error(folder, exc)) from exc
    if not found:
        hint = (
            f"; {folder!r} looks like one subset-ratio folder ({len(nested)} <run_id>/{AUX_FILE}): "
            "pass its parent folder and subset_ratio (--subset-ratio) instead"
            if nested else ""
        )
        raise MemoxrInputError(
            f"runs folder {folder!r}: expected <subset_ratio>/<run_id>/{AUX_FILE} files, received none{hint}"
        )
    runs: dict[str, list[_Run]] = {}
    for path in found:
        parts = PurePosixPath(path).parts
        ratio, run_dir = parts[-3], parts[-2]
        if not _RUN_ID.match(run_dir):
            raise MemoxrInputError(
                f"runs folder {folder!r}: run folder {ratio}/{run_dir!r}: expected a whole-number run id, "
                f"received {run_dir!r}"
            )
        location = fs.unstrip_protocol(path) if is_url(folder) else path
        runs.setdefault(ratio, []).append(_Run(ratio, int(run_dir), location))
    return {ratio: sorted(items, key=lambda r: r.run_id) for ratio, items in sorted(runs.items(), key=_ratio_key)}


def _ratio_key(item: tuple[str, Any]) -> tuple[float, str]:
    try:
        return float(item[0]), item[0]
    except ValueError:
        return float("inf"), item[0]


def _select_ratio(runs: dict[str, list[_Run]], subset_ratio: float | str | None, folder: str) -> str:
    """The ratio folder to read: the only one, or the one matching ``subset_ratio`` (by value)."""
    available = list(runs)
    listing = ", ".join(f"{r} ({len(runs[r])} runs)" for r in available)
    if subset_ratio is None:
        if len(available) > 1:
            raise MemoxrInputError(
                f"runs folder {folder!r}: several subset ratios: {listing}; choose one with "
                "subset_ratio (--subset-ratio)"
            )
        return available[0]
    for ratio in available:
        if ratio == str(subset_ratio):
            return ratio
        with contextlib.suppress(ValueError):
            if float(ratio) == float(subset_ratio):
                return ratio
    raise MemoxrInputError(
        f"runs folder {folder!r}: subset_ratio: expected one of {available}, received {subset_ratio!r} "
        f"(available: {listing})"
    )


# ---------------------------------------------------------------------------------------------
# Validation: labels, then each run's headers, then its values


def _validate_labels(key: str, labels: Any, source: str) -> np.ndarray:
    """Class labels: a non-empty 1-D array of whole numbers >= 0, as int64."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "O":
        raise MemoxrInputError(
            f"labels {source!r}: key {key!r}: expected integer class labels, received dtype object "
            "(pickled Python objects), which memoxr does not load"
        )
    if labels.ndim != 1 or labels.size == 0:
        raise MemoxrInputError(
            f"labels {source!r}: key {key!r}: expected a non-empty 1-D array, received shape {labels.shape}"
        )
    if labels.dtype.kind not in "iuf":
        raise MemoxrInputError(
            f"labels {source!r}: key {key!r}: expected integer class labels, received dtype {labels.dtype}"
        )
    bad = labels < 0
    if labels.dtype.kind == "f":
        bad = bad | ~np.isfinite(labels) | (labels != np.round(labels))
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise MemoxrInputError(
            f"labels {source!r}: key {key!r}: expected whole-number class labels >= 0, received "
            f"{labels[where]} at position {where}"
        )
    return labels.astype(np.int64)


def _read_labels(labels: LabelsArg, storage_options: StorageOptions) -> tuple[np.ndarray, np.ndarray]:
    """``tr_labels`` and ``tt_labels`` from a mapping or an ``.npz`` (never unpickled)."""
    if isinstance(labels, Mapping):
        arrays, source = dict(labels), "<memory>"
    elif isinstance(labels, str | os.PathLike):
        source = str(labels)
        so = storage_options if is_url(source) else None
        arrays, _ = load_npz_arrays(
            source, LABEL_KEYS, what="labels", expected="integer class labels", storage_options=so
        )
    else:
        raise MemoxrInputError(
            f"labels: expected a path to an .npz or a mapping with {list(LABEL_KEYS)}, "
            f"received {type(labels).__name__}"
        )
    missing = [key for key in LABEL_KEYS if arrays.get(key) is None]
    if missing:
        raise MemoxrInputError(
            f"labels {source!r}: missing key(s) {missing}; expected {list(LABEL_KEYS)}, received {sorted(arrays)}"
        )
    return tuple(_validate_labels(key, arrays[key], source) for key in LABEL_KEYS)  # type: ignore[return-value]


def _validate_run_headers(path: str, n_train: int, n_test: int, storage_options: StorageOptions) -> None:
    """Keys, dtypes and shapes of one run's file, from its array headers (nothing loaded)."""
    headers = read_npz_headers(path, storage_options=storage_options)
    missing = [key for key in RUN_KEYS if key not in headers]
    if missing:
        raise MemoxrInputError(
            f"run {path!r}: missing key(s) {missing}; expected {list(RUN_KEYS)}, received {sorted(headers)}"
        )
    for key in RUN_KEYS:
        dtype, shape = headers[key].dtype, headers[key].shape
        if dtype.kind == "O":
            raise MemoxrInputError(
                f"run {path!r}: key {key!r}: expected a numeric array, received dtype object "
                "(pickled Python objects), which memoxr does not load"
            )
        allowed, what = ("biuf", "0/1 values (bool, integer or float)") if key in _CORRECTNESS else ("iu", "integer indices")
        if dtype.kind not in allowed:
            raise MemoxrInputError(f"run {path!r}: key {key!r}: expected {what}, received dtype {dtype}")
        if len(shape) != 1:
            raise MemoxrInputError(f"run {path!r}: key {key!r}: expected a 1-D array, received shape {shape}")
    for split in ("train", "removed", "test"):
        n_correct, n_index = headers[f"correctness_{split}"].shape[0], headers[f"index_{split}"].shape[0]
        if n_correct != n_index:
            raise MemoxrInputError(
                f"run {path!r}: key 'correctness_{split}': expected length {n_index} (like 'index_{split}'), "
                f"received {n_correct}"
            )
    n_kept, n_removed = headers["index_train"].shape[0], headers["index_removed"].shape[0]
    if n_kept + n_removed != n_train:
        raise MemoxrInputError(
            f"run {path!r}: keys 'index_train' + 'index_removed': expected {n_train} train examples in all "
            f"(len(tr_labels)), received {n_kept} + {n_removed} = {n_kept + n_removed}"
        )
    if headers["index_test"].shape[0] != n_test:
        raise MemoxrInputError(
            f"run {path!r}: key 'index_test': expected {n_test} test examples (len(tt_labels)), "
            f"received {headers['index_test'].shape[0]}"
        )
    if headers["subsample_idx"].shape[0] != n_kept:
        raise MemoxrInputError(
            f"run {path!r}: key 'subsample_idx': expected {n_kept} ids (the ids of 'index_train'), "
            f"received {headers['subsample_idx'].shape[0]}"
        )


def _validate_indices(path: str, key: str, index: np.ndarray, size: int, what: str) -> np.ndarray:
    """Indices in ``[0, size)``, none repeated."""
    index = index.astype(np.int64)
    out = (index < 0) | (index >= size)
    if out.any():
        where = int(np.flatnonzero(out)[0])
        raise MemoxrInputError(
            f"run {path!r}: key {key!r}: expected {what} in [0, {size}), received {index[where]} at position {where}"
        )
    counts = np.bincount(index, minlength=size)
    if (counts > 1).any():
        dup = int(np.flatnonzero(counts > 1)[0])
        raise MemoxrInputError(
            f"run {path!r}: key {key!r}: expected distinct {what}, received {dup} {int(counts[dup])} times"
        )
    return index


def _validate_partition(path: str, kept: np.ndarray, removed: np.ndarray, n_train: int) -> None:
    """``index_train`` and ``index_removed`` share no id and together are exactly the train split."""
    covered = np.zeros(n_train, dtype=np.int64)
    np.add.at(covered, kept, 1)
    np.add.at(covered, removed, 1)
    if (covered > 1).any():
        both = int(np.flatnonzero(covered > 1)[0])
        raise MemoxrInputError(
            f"run {path!r}: keys 'index_train' and 'index_removed': expected disjoint ids whose union is the "
            f"full train split [0, {n_train}), received id {both} in both"
        )
    if (covered == 0).any():
        lost = np.flatnonzero(covered == 0)
        raise MemoxrInputError(
            f"run {path!r}: keys 'index_train' and 'index_removed': expected their union to be the full train "
            f"split [0, {n_train}), received {len(lost)} id(s) in neither (first: {lost[:5].tolist()})"
        )


def _validate_subsample(path: str, subsample: np.ndarray, kept: np.ndarray) -> None:
    """``subsample_idx`` is the same set of ids as ``index_train``."""
    extra = np.setdiff1d(subsample, kept)
    lacking = np.setdiff1d(kept, subsample)
    if len(extra) or len(lacking):
        raise MemoxrInputError(
            f"run {path!r}: key 'subsample_idx': expected the same ids as 'index_train', received "
            f"{len(extra)} id(s) not in 'index_train' (first: {extra[:5].tolist()}) and {len(lacking)} id(s) "
            f"of 'index_train' missing (first: {lacking[:5].tolist()})"
        )


def _validate_binary(path: str, key: str, values: np.ndarray) -> np.ndarray:
    """0/1 values (bool, integer or float), as bool."""
    if values.dtype.kind != "b":
        bad = (values != 0) & (values != 1)
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise MemoxrInputError(
                f"run {path!r}: key {key!r}: expected 0/1 values, received {values[where]} at position {where} "
                f"({int(bad.sum())} such values)"
            )
    return values.astype(bool)


# ---------------------------------------------------------------------------------------------
# Reading one run (inside a dask task)


def _load_run(path: str, n_train: int, n_test: int, storage_options: StorageOptions = None) -> np.ndarray:
    """One run as a bool row ``[mask | train_correct | test_correct]`` of length ``2 * n_train + n_test``.

    Validates the file completely (headers first, then values) and raises
    :class:`~memoxr.errors.MemoxrInputError` naming it.
    """
    so = storage_options if is_url(path) else None
    _validate_run_headers(path, n_train, n_test, so)
    try:
        with open_npz(path, storage_options=so) as npz:  # headers checked against stored sizes first
            arrays = {key: np.asarray(npz[key]) for key in RUN_KEYS}
    except (PermissionError, OSError) as exc:
        raise MemoxrInputError(describe_access_error(path, exc)) from exc
    kept = _validate_indices(path, "index_train", arrays["index_train"], n_train, "train ids")
    removed = _validate_indices(path, "index_removed", arrays["index_removed"], n_train, "train ids")
    test = _validate_indices(path, "index_test", arrays["index_test"], n_test, "test indices")
    subsample = _validate_indices(path, "subsample_idx", arrays["subsample_idx"], n_train, "train ids")
    _validate_partition(path, kept, removed, n_train)
    _validate_subsample(path, subsample, kept)
    correct = {key: _validate_binary(path, key, arrays[key]) for key in _CORRECTNESS}

    row = np.zeros(2 * n_train + n_test, dtype=bool)
    mask, train_correct, test_correct = row[:n_train], row[n_train : 2 * n_train], row[2 * n_train :]
    mask[kept] = True
    train_correct[kept] = correct["correctness_train"]
    train_correct[removed] = correct["correctness_removed"]
    test_correct[test] = correct["correctness_test"]
    return row


def _check_run(path: str, n_train: int, n_test: int, storage_options: StorageOptions = None) -> None:
    _load_run(path, n_train, n_test, storage_options)


# ---------------------------------------------------------------------------------------------
# Public API


def read_heldout_runs(
    folder: str | os.PathLike[str],
    *,
    subset_ratio: float | str | None = None,
    tr_labels: Any,
    tt_labels: Any,
    validate: bool = True,
    trial_chunk_mb: float = DEFAULT_TRIAL_CHUNK_MB,
    show_progress: bool = False,
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
    show_progress : bool
        Progress bar for the validation pass.
    storage_options : dict, optional
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
    """
    source = str(folder)
    trial_chunk_mb = validate_mb("trial_chunk_mb", trial_chunk_mb)
    tr = _validate_labels("tr_labels", tr_labels, "<argument>")
    tt = _validate_labels("tt_labels", tt_labels, "<argument>")
    n_train, n_test = len(tr), len(tt)
    all_runs = _find_runs(source, storage_options)
    ratio = _select_ratio(all_runs, subset_ratio, source)
    runs = all_runs[ratio]
    so = dict(storage_options) if storage_options and is_url(source) else None

    if validate:
        checks = [dask.delayed(_check_run, pure=True)(run.path, n_train, n_test, so) for run in runs]
        with progress(show_progress):
            compute(*checks)

    width = 2 * n_train + n_test
    rows = []
    for run in runs:
        token = tokenize(run.path, n_train, n_test, so)
        load = dask.delayed(_load_run, pure=True)(
            run.path, n_train, n_test, so, dask_key_name=f"load-heldout-run-{token}"
        )
        rows.append(da.from_delayed(load, shape=(width,), dtype=bool))
    per_chunk = int(min(len(runs), max(1, trial_chunk_mb * 2**20 // width)))
    stacked = da.stack(rows, axis=0).rechunk((per_chunk, width))

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


def _write_trials_npz(ds: xr.Dataset, output: str, *, overwrite: bool, storage_options: StorageOptions) -> str:
    """Trial records as a compressed ``.npz``, a chunk of trials at a time (each run read once)."""
    keys = [*TRIAL_VARIABLES, "run_id"]
    with atomic_output(output, overwrite=overwrite, storage_options=storage_options) as tmp, \
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
            _write_npy_streamed(archive, "sample_order", (), order.dtype, [order])
    return str(output)


def heldout_runs_to_trials(
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    subset_ratio: float | str | None = None,
    labels: LabelsArg,
    overwrite: bool = False,
    trial_chunk_mb: float = DEFAULT_TRIAL_CHUNK_MB,
    show_progress: bool = False,
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
    storage_options : dict, optional
        fsspec options for ``s3://`` paths, input or output.

    Returns
    -------
    str
        ``output``.
    """
    so = dict(storage_options) if storage_options else None
    check_writable(output, overwrite=overwrite, storage_options=so)
    tr_labels, tt_labels = _read_labels(labels, so)
    ds = read_heldout_runs(
        # Each run's loader validates its own file while the output is written, and the output is
        # complete or absent: a separate validation pass would read every run twice.
        folder, subset_ratio=subset_ratio, tr_labels=tr_labels, tt_labels=tt_labels, validate=False,
        trial_chunk_mb=trial_chunk_mb, show_progress=show_progress, storage_options=so,
    )
    if str(output).endswith(".npz"):
        return _write_trials_npz(ds, str(output), overwrite=overwrite, storage_options=so)
    encoding = {
        key: {"chunks": tuple(c[0] for c in ds[key].chunks) if ds[key].chunks else ds[key].shape}
        for key in TRIAL_VARIABLES
    }
    return write_dataset(ds, output, overwrite=overwrite, encoding=encoding, storage_options=so,
                         show_progress=show_progress)


# ---------------------------------------------------------------------------------------------
# CLI


@click.command("trials-from-runs")
@click.argument("folder", metavar="FOLDER", type=click.Path())
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option(
    "--labels", "labels", required=True, type=click.Path(),
    help="An .npz holding tr_labels and tt_labels (TensorFlow-Datasets order).",
)
@click.option(
    "--subset-ratio", default=None,
    help="The subset-ratio folder to read (e.g. 0.7).  [required when FOLDER holds several]",
)
@overwrite_option
@quiet_option
@handle_errors
@remote_options
def trials_from_runs_command(
    folder: str, output: str, labels: str, subset_ratio: str | None, overwrite: bool, quiet: bool,
    storage_options: dict | None,
) -> None:
    """Build trial records from the held-out influence release's per-run files.

    FOLDER is an experiment folder: FOLDER/<subset_ratio>/<run_id>/aux_arrays.npz.
    Every run is validated first; OUTPUT (.npz, or else a Zarr store) holds mask,
    train_correct, test_correct, tr_labels and tt_labels for `memoxr estimate`
    (which keeps their order, tfds), and appears only once complete.
    """
    path = heldout_runs_to_trials(
        folder, output, subset_ratio=subset_ratio, labels=labels, overwrite=overwrite,
        show_progress=not quiet, storage_options=storage_options,
    )
    click.echo(f"wrote {path}")
