"""The held-out release's per-run files: finding the runs, checking each file, reading one run.

Layout and keys: see :mod:`memoxr.convert.heldout_runs`. Every check raises
:class:`~memoxr.errors.MemoxrInputError` naming the file, the key, what was
expected and what was received.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np

from memoxr.errors import MemoxrInputError
from memoxr.estimate.kernels import not_binary
from memoxr.estimate.trials import validate_labels
from memoxr.io.location import Location, PathLike, describe_access_error
from memoxr.io.npy import as_indices, refuse_pickled
from memoxr.io.npz import load_npz_arrays, open_npz, read_npz_headers

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
class Run:
    """One run's file: its subset-ratio folder, numeric run id and full path (or URL).

    >>> Run("0.7", 3, "exp/0.7/3/aux_arrays.npz").run_id
    3
    """

    ratio: str
    run_id: int
    path: str


def one_run_folder(folder: str | os.PathLike[str] | None = None) -> str:
    """An experiment folder in the release's layout holding one run (ratio ``0.5``, 2 train, 1 test
    samples): train id 0 kept and right, id 1 held out and wrong, the test sample right. For
    examples and tests; ``folder`` defaults to a new temporary folder.

    >>> sorted(os.listdir(os.path.join(one_run_folder(), "0.5", "0")))
    ['aux_arrays.npz']
    """
    import tempfile

    root = str(folder) if folder is not None else tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "0.5", "0"), exist_ok=True)
    one = np.array([1])
    np.savez(os.path.join(root, "0.5", "0", AUX_FILE), correctness_train=one, correctness_removed=0 * one,
             correctness_test=one, index_train=0 * one, index_removed=one, index_test=0 * one, subsample_idx=0 * one)
    return root


# ---------------------------------------------------------------------------------------------
# Finding the runs


def find_runs(folder: PathLike | Location) -> dict[str, list[Run]]:
    """``{ratio folder name: runs sorted by run id}`` for ``<folder>/<ratio>/<run_id>/aux_arrays.npz``.

    >>> import os
    >>> root = one_run_folder()
    >>> [(r.ratio, r.run_id) for r in find_runs(root)["0.5"]]
    [('0.5', 0)]
    """
    folder_location = Location.of(folder)
    folder = folder_location.path
    nested: list[str] = []
    try:
        fs, root = fsspec.core.url_to_fs(folder, **(folder_location.storage_options if folder_location.is_url else {}))
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
    runs: dict[str, list[Run]] = {}
    for path in found:
        parts = PurePosixPath(path).parts
        ratio, run_dir = parts[-3], parts[-2]
        if not _RUN_ID.match(run_dir):
            raise MemoxrInputError(
                f"runs folder {folder!r}: run folder {ratio}/{run_dir!r}: expected a whole-number run id, "
                f"received {run_dir!r}"
            )
        location = fs.unstrip_protocol(path) if folder_location.is_url else path
        runs.setdefault(ratio, []).append(Run(ratio, int(run_dir), location))
    return {ratio: sorted(items, key=lambda r: r.run_id) for ratio, items in sorted(runs.items(), key=_ratio_key)}


def _ratio_key(item: tuple[str, Any]) -> tuple[float, str]:
    try:
        return float(item[0]), item[0]
    except ValueError:
        return float("inf"), item[0]


def select_ratio(runs: dict[str, list[Run]], subset_ratio: float | str | None, folder: str) -> str:
    """The ratio folder to read: the only one, or the one matching ``subset_ratio`` (by value).

    >>> select_ratio({"0.10": [], "0.70": []}, 0.7, "exp")
    '0.70'
    """
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


def read_labels(labels: LabelsArg | Location) -> tuple[np.ndarray, np.ndarray]:
    """``tr_labels`` and ``tt_labels`` from a mapping or an ``.npz`` (never unpickled).

    >>> [a.tolist() for a in read_labels({"tr_labels": [0, 1], "tt_labels": [1]})]
    [[0, 1], [1]]
    """
    if isinstance(labels, Mapping):
        arrays, source = dict(labels), "<memory>"
    elif isinstance(labels, str | os.PathLike):
        location = Location.of(labels)
        source = location.path
        arrays, _ = load_npz_arrays(location, LABEL_KEYS, what="labels", expected="integer class labels")
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
    return tuple(validate_labels(key, arrays[key], source, what="labels") for key in LABEL_KEYS)  # type: ignore[return-value]


def _validate_run_headers(location: Location, n_train: int, n_test: int) -> None:
    """Keys, dtypes and shapes of one run's file, from its array headers (nothing loaded)."""
    path = location.path
    headers = read_npz_headers(location)
    missing = [key for key in RUN_KEYS if key not in headers]
    if missing:
        raise MemoxrInputError(
            f"run {path!r}: missing key(s) {missing}; expected {list(RUN_KEYS)}, received {sorted(headers)}"
        )
    for key in RUN_KEYS:
        dtype, shape = headers[key].dtype, headers[key].shape
        refuse_pickled(dtype, f"run {path!r}: key {key!r}")
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
    """Indices in ``[0, size)`` (:func:`memoxr.io.npy.as_indices`), none repeated."""
    try:
        index = as_indices(key, index, size=size, what=what)
    except MemoxrInputError as exc:
        raise MemoxrInputError(f"run {path!r}: {exc}") from None
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
    bad = not_binary(values)  # the estimator's own 0/1 test
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise MemoxrInputError(
            f"run {path!r}: key {key!r}: expected 0/1 values, received {values[where]} at position {where} "
            f"({int(bad.sum())} such values)"
        )
    return values.astype(bool)


# ---------------------------------------------------------------------------------------------
# Reading one run (inside a dask task)


def load_run(path: PathLike | Location, n_train: int, n_test: int) -> np.ndarray:
    """One run as a bool row ``[mask | train_correct | test_correct]`` of length ``2 * n_train + n_test``.

    Validates the file completely (headers first, then values) and raises
    :class:`~memoxr.errors.MemoxrInputError` naming it.

    >>> import os
    >>> root = one_run_folder()
    >>> load_run(os.path.join(root, "0.5", "0", "aux_arrays.npz"), 2, 1).tolist()  # mask | train | test
    [True, False, True, False, True]
    """
    location = Location.of(path)  # a URL arrives as a Location with its options
    path = location.path
    _validate_run_headers(location, n_train, n_test)
    try:
        with open_npz(location) as npz:  # headers checked against stored sizes first
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


def check_run(path: PathLike | Location, n_train: int, n_test: int) -> None:
    """:func:`load_run` for its checks only (a validation task: nothing kept).

    >>> check_run("missing.npz", 2, 1)
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: input 'missing.npz' does not exist or is not a file
    """
    load_run(path, n_train, n_test)
