"""Incremental trials: add new trial records to an estimate store without re-reading the old ones.

An estimate store (``memoxr estimate`` to Zarr) keeps the estimator's
sufficient sums (:mod:`memoxr.estimate.sums`): per train sample the trials
with and without it and the correct counts among them, per test sample the
correct count, per within-class pair the correct count among the trials with
the train sample. All are sums over trials, so the estimate of old + new
trials is made from the old sums plus the sums of the new trials: an append
reads the new trials once (to check and sum them), and the old store's sums
chunk by chunk. The new store is written beside the old one and swapped in
only when complete (:func:`memoxr.io.storage.write_dataset`), so an interrupted
append leaves the previous estimate as it was.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..compute.progress import damaged_store_as_input_error, deprecated_show_progress
from ..errors import MemoxrInputError
from ..io.chunks import DEFAULT_CHUNK_MB, BlockChunks
from ..io.location import Location, StorageOptions, is_url, locate
from . import kernels as _k
from .graph import TrialInput, records_sums, validate_chunk_mb, with_degenerate_warning
from .sums import SUM_NAMES
from .trials import read_records
from .variables import estimate_dataset, sums_from_store
from .writers import write_estimate, write_estimate_store

__all__ = ["append_estimate", "write_or_append_estimate"]

#: Store variables an append cannot update (they need every old trial): dropped, with a warning.
_NEEDS_ALL_TRIALS = ("tr_mem_ci_low", "tr_mem_ci_high", "influence_ci_low", "influence_ci_high")


def append_estimate(
    trials: Any,
    store: str | os.PathLike[str],
    *,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
) -> str:
    """Add trial records to an estimate store: the estimate of the old and new trials together.

    Dims contract: ``trials`` are records of the same train and test samples
    (``mask``, ``train_correct`` ``(trial, train_id)``, ``test_correct``
    ``(trial, test_id)``, equal ``tr_labels`` and ``tt_labels``); ``store`` is a
    local Zarr store written by :func:`memoxr.estimate.estimate_to_zarr` (it
    holds the sums). The result is bit for bit the store one estimate of all the
    trials would give (sums are whole numbers, exact below ``2**24`` trials).

    Bootstrap intervals in the store are dropped (with a warning): they need the
    old trials themselves; estimate all trials with ``bootstrap`` to get them.

    Parameters
    ----------
    trials : path, mapping or xarray.Dataset
        The new trial records (as :func:`memoxr.estimate.estimate` reads them).
    store : path
        The estimate store, replaced once the new estimate is complete.
    chunk_mb : float
        Target size in MB of one block of the new trials.
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.

    Returns
    -------
    str
        ``store``.

    Examples
    --------
    >>> import numpy as np, memoxr.estimate as me, tempfile, os, warnings
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> store = os.path.join(tempfile.mkdtemp(), "est.zarr")
    >>> _ = me.estimate_to_zarr(records, store)
    >>> with warnings.catch_warnings():  # the trials are in every or no subset of the 4 new ones
    ...     warnings.simplefilter("ignore", me.DegenerateSampleWarning)
    ...     _ = append_estimate(records, store)
    >>> import memoxr; memoxr.open_influence(store).attrs["n_trials"]
    8
    """
    with deprecated_show_progress(show_progress, "append_estimate"):
        return _append(locate(trials, storage_options), store, validate_chunk_mb(chunk_mb))


def _append(trials: Any, store: str | os.PathLike[str], chunk_mb: float) -> str:
    old = _open_appendable(store)
    records = read_records(trials, chunk_mb)  # a path arrives as a Location
    _check_same_samples(old, records, store)
    counted = [h.strip() for h in str(old.attrs.get("source_sha256", "")).split("+")]
    if records.sha256 and records.sha256 in counted:  # the same file twice would count its trials twice
        raise MemoxrInputError(
            f"trials {records.source_name!r}: already in store {str(store)!r} (same sha256); expected new trials"
        )
    n_total = int(old.attrs["n_trials"]) + records.mask.shape[0]
    if n_total >= _k.MAX_EXACT_TRIALS:
        raise MemoxrInputError(
            f"trials {records.source_name!r}: expected fewer than {_k.MAX_EXACT_TRIALS} trials in all, "
            f"received {records.mask.shape[0]} beside the store's {old.attrs['n_trials']}"
        )
    train_index, test_index = old["train_index"].values, old["test_index"].values
    plan = BlockChunks(*(int(c[0]) for c in old["influence"].chunks))
    new = records_sums(records, train_index, test_index, plan, chunk_mb=chunk_mb, full="influence_full" in old.variables)
    total = with_degenerate_warning(sums_from_store(old) + new)
    dropped = [name for name in _NEEDS_ALL_TRIALS if name in old.variables]
    if dropped:
        warnings.warn(
            f"store {str(store)!r}: bootstrap intervals {dropped} need the old trials themselves and are "
            "dropped; estimate all the trials with --bootstrap to get them back",
            UserWarning,
            stacklevel=2,
        )
    attrs = {
        "source_name": f"{old.attrs.get('source_name', '')} + {records.source_name}",
        "source_sha256": f"{old.attrs.get('source_sha256', '')} + {records.sha256}",
        "sample_order": old.attrs.get("sample_order", ""),
        "ignored_keys": sorted({*np.atleast_1d(old.attrs.get("ignored_keys", [])).tolist(), *records.ignored_keys}),
        "estimator": old.attrs.get("estimator", ""),
        "trial_batches": [*np.atleast_1d(old.attrs.get("trial_batches", [old.attrs["n_trials"]])).tolist(),
                          int(new.n_trials)],
    }
    ds = estimate_dataset(total, old["class"].values, train_index, test_index,
                          old["tr_labels"].values, old["tt_labels"].values, attrs)
    return write_estimate_store(ds, store, overwrite=True)


def _open_appendable(store: str | os.PathLike[str]) -> Any:
    """The estimate store, opened lazily, with its sums; else a clear error."""
    from ..influence.sources import open_influence

    source = str(store)
    if is_url(source):
        raise MemoxrInputError(
            f"store {source!r}: appending needs a local store (object storage cannot swap the new store in "
            "atomically); copy it locally, append, and upload the result"
        )
    if source.endswith(".npz") or Path(source).is_file():
        raise MemoxrInputError(
            f"store {source!r}: an FZ .npz holds no trial sums; appending needs a Zarr store written by "
            "memoxr estimate: estimate all the trials into one (without --append)"
        )
    if not Path(source).exists():
        raise MemoxrInputError(
            f"store {source!r} does not exist; expected an estimate store to append to: "
            "write it first with memoxr estimate (without --append)"
        )
    ds = open_influence(source)
    missing = [name for name in SUM_NAMES if name not in ds.variables]
    if "n_trials" not in ds.attrs:
        missing.append("attribute n_trials")
    if "influence_full" in ds.variables and "test_correct_in_full" not in ds.variables:
        missing.append("test_correct_in_full")
    if missing:
        raise MemoxrInputError(
            f"store {source!r} holds no trial sums (missing {missing}): it was converted from an FZ .npz or "
            "written by an older memoxr estimate, so new trials cannot be added to it; estimate all the "
            "trials again (without --append) to get a store that takes new trials"
        )
    return ds


def _check_same_samples(old: Any, records: Any, store: str | os.PathLike[str]) -> None:
    """The new records describe the store's train and test samples: same sizes, labels and order."""
    for key, labels in (("tr_labels", records.tr_labels), ("tt_labels", records.tt_labels)):
        expected = old[key].values
        if labels.shape != expected.shape or not np.array_equal(labels, expected):
            if labels.shape != expected.shape:
                got = f"{labels.shape[0]} samples, the store {expected.shape[0]}"
            else:
                where = int(np.flatnonzero(labels != expected)[0])
                got = f"label {labels[where]} at position {where}, the store {expected[where]}"
            raise MemoxrInputError(
                f"trials {records.source_name!r}: key {key!r}: expected the labels of store {str(store)!r}, "
                f"received {got}: new trials must be of the same samples in the same order"
            )
    order = old.attrs.get("sample_order")
    if records.recorded_order is not None and order and records.recorded_order != order:
        raise MemoxrInputError(
            f"trials {records.source_name!r}: sample order {records.recorded_order!r}, expected the store's "
            f"{order!r}: new trials must follow the store's sample order"
        )


def write_or_append_estimate(
    trials: TrialInput, output: str | os.PathLike[str], *, append: bool = False, overwrite: bool = False,
    full: bool = False, chunk_mb: float = DEFAULT_CHUNK_MB, sample_order: str | None = None,
    storage_options: StorageOptions = None, bootstrap: int = 0, confidence: float = 0.95, seed: int = 0,
) -> str | Path:
    """What ``memoxr estimate`` does: :func:`append_estimate` with ``append``, else :func:`write_estimate`.

    A damaged chunk of a trials store becomes one :class:`MemoxrInputError` naming it.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from memoxr.datasets.examples import tiny_trials
    >>> records = tiny_trials()  # 4 trials, 2 train samples, 1 test sample
    >>> os.path.basename(write_or_append_estimate(records, os.path.join(tempfile.mkdtemp(), "e.npz")))
    'e.npz'
    """
    if append and (overwrite or full or bootstrap or sample_order):
        raise MemoxrInputError(
            "append: adds to the store output as it is; received it with overwrite, full, bootstrap or "
            "sample_order, which only a new estimate takes"
        )
    trials = locate(trials, storage_options)
    with damaged_store_as_input_error(trials) if isinstance(trials, Location) else contextlib.nullcontext():
        if append:
            return append_estimate(trials, output, chunk_mb=chunk_mb)  # the store is local: no options
        return write_estimate(trials, Location.of(output, storage_options), overwrite=overwrite, full=full,
                              chunk_mb=chunk_mb, sample_order=sample_order, bootstrap=bootstrap,
                              confidence=confidence, seed=seed)
