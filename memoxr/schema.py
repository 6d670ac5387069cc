"""Names and versions of the stores memoxr writes, and the checks on open."""

from __future__ import annotations

import xarray as xr

from .errors import IncompleteStoreError, MemoxrInputError

INFLUENCE_SCHEMA = "memoxr.influence"
SCORES_SCHEMA = "memoxr.scores"
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
