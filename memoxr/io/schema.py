"""Names and versions of the stores memoxr writes, and the checks on open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import IncompleteStoreError, MemoxrInputError

INFLUENCE_SCHEMA = "memoxr.influence"
SCORES_SCHEMA = "memoxr.influence.scores"
SCHEMA_VERSION = 1
#: Attribute set last on every store memoxr writes; a store without it is unfinished.
COMPLETE_ATTR = "memoxr_complete"

CLASS, TRAIN, TEST = "class", "train_sample", "test_sample"
TRAIN_ID, TEST_ID = "train_id", "test_id"

INFLUENCE_VARIABLES = {
    "influence": (CLASS, TRAIN, TEST),
    "memorization": (CLASS, TRAIN),
    "train_index": (CLASS, TRAIN),
    "test_index": (CLASS, TEST),
    "train_count": (CLASS,),
    "test_count": (CLASS,),
    "tr_mem": (TRAIN_ID,),
    "tr_labels": (TRAIN_ID,),
    "tt_labels": (TEST_ID,),
}

#: The seed's four scores, in the seed's order, with the stats-table column stem of each.
SCORE_NAMES = (
    "influence_weighted_memo",
    "representativeness_score",
    "weighted_combination",
    "critical_sample_score",
)
STAT_STEMS = {
    "original_memo": "memo_score",
    "influence_weighted_memo": "infl_weighted_memo",
    "representativeness_score": "representativeness",
    "weighted_combination": "weighted_combination",
    "critical_sample_score": "critical_sample",
}
STATISTICS = ("mean", "std", "min", "max", "median")


def check_influence_dataset(ds: xr.Dataset, *, source: str = "dataset") -> xr.Dataset:
    """Raise unless ``ds`` carries the influence schema (variables and dims)."""
    check_schema_attrs(ds, INFLUENCE_SCHEMA, source)
    for name, dims in INFLUENCE_VARIABLES.items():
        if name not in ds.variables:
            raise MemoxrInputError(f"{source}: variable {name!r} missing; expected dims {dims}")
        if ds[name].dims != dims:
            raise MemoxrInputError(
                f"{source}: variable {name!r} has dims {ds[name].dims}; expected {dims}"
            )
    return ds


def check_scores_dataset(ds: xr.Dataset, *, source: str = "scores") -> xr.Dataset:
    """Raise unless ``ds`` holds the scores memoxr computes."""
    needed = (*SCORE_NAMES, "original_memo", "training_indices")
    missing = [name for name in needed if name not in ds.variables]
    if missing:
        raise MemoxrInputError(
            f"{source}: missing score variables {missing}; expected the output of "
            f"memoxr.influence_scores with {list(needed)}"
        )
    for name in needed:
        if ds[name].dims != (CLASS, TRAIN):
            raise MemoxrInputError(
                f"{source}: variable {name!r} has dims {ds[name].dims}; expected {(CLASS, TRAIN)}"
            )
    return ds


def check_schema_attrs(ds: xr.Dataset, schema: str, source: str) -> None:
    """Raise unless ``ds`` says it follows ``schema`` in the version this memoxr reads."""
    found = ds.attrs.get("schema")
    if found != schema:
        raise MemoxrInputError(f"{source}: attribute 'schema' is {found!r}; expected {schema!r}")
    version = ds.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MemoxrInputError(
            f"{source}: schema_version is {version!r}; this memoxr reads version {SCHEMA_VERSION}"
        )


def check_complete(attrs: dict, *, source: str) -> None:
    """Raise ``IncompleteStoreError`` unless the completion marker is set."""
    if attrs.get(COMPLETE_ATTR) is not True:
        raise IncompleteStoreError(
            f"{source}: store is incomplete (attribute {COMPLETE_ATTR!r} is not true): "
            "it was interrupted while being written or was not written by memoxr; "
            "write it again with --overwrite"
        )


def pad_indices(lists: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Per-class index arrays as one ``(class, width)`` int64 array, padded with -1."""
    out = np.full((len(lists), width), -1, dtype=np.int64)
    for c, idx in enumerate(lists):
        out[c, : len(idx)] = idx
    return out


def influence_dataset(
    influence: Any,
    train_index: np.ndarray,
    test_index: np.ndarray,
    *,
    classes: Sequence[int] | np.ndarray,
    tr_mem: np.ndarray,
    tr_labels: np.ndarray,
    tt_labels: np.ndarray,
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """The influence store's Dataset around an ``influence(class, train_sample, test_sample)`` array.

    ``train_index`` / ``test_index`` are ``(class, *_sample)`` rows of the splits
    padded with -1 (:func:`pad_indices`); counts and the per-class memorization are
    derived from them. ``attrs`` add to the schema's own (schema, version, memoxr version).
    """
    real = train_index >= 0
    memorization = np.where(real, np.asarray(tr_mem, dtype=np.float64)[np.maximum(train_index, 0)], np.nan)
    ds = xr.Dataset(
        {
            "influence": ((CLASS, TRAIN, TEST), influence),
            "memorization": ((CLASS, TRAIN), memorization),
            "train_index": ((CLASS, TRAIN), train_index),
            "test_index": ((CLASS, TEST), test_index),
            "train_count": ((CLASS,), real.sum(axis=1).astype(np.int64)),
            "test_count": ((CLASS,), (test_index >= 0).sum(axis=1).astype(np.int64)),
            "tr_mem": ((TRAIN_ID,), tr_mem),
            "tr_labels": ((TRAIN_ID,), tr_labels),
            "tt_labels": ((TEST_ID,), tt_labels),
        },
        coords={
            CLASS: np.asarray(classes, dtype=np.int64),
            TRAIN_ID: np.arange(len(tr_mem), dtype=np.int64),
            TEST_ID: np.arange(len(tt_labels), dtype=np.int64),
        },
        attrs={"schema": INFLUENCE_SCHEMA, "schema_version": SCHEMA_VERSION, "memoxr_version": __version__, **attrs},
    )
    ds["influence"].attrs.update(
        description="influence of train sample i of a class on test sample j of that class",
        padding="NaN beyond train_count / test_count",
    )
    ds["memorization"].attrs["description"] = "tr_mem of each class's training samples; NaN padding"
    ds["train_index"].attrs["description"] = "row of the sample in the train split; -1 padding"
    ds["test_index"].attrs["description"] = "row of the sample in the test split; -1 padding"
    return ds
