"""Names and versions of the stores memoxr writes, and the checks on open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import IncompleteStoreError, MemoxrInputError

INFLUENCE_SCHEMA = "memoxr.influence"
#: Written into every scores store since memoxr 0.1: a store format, not a module path.
SCORES_SCHEMA = "memoxr.scores"
SCHEMA_VERSION = 1
#: Attribute set last on every store memoxr writes; a store without it is unfinished.
COMPLETE_ATTR = "memoxr_complete"

# Dim names, defined once for every layer.
CLASS, TRAIN, TEST = "class", "train_sample", "test_sample"
#: A training / test sample's identity (its index in the data set), in every kind of store.
TRAIN_ID, TEST_ID = "train_id", "test_id"
#: Older names of :data:`TRAIN_ID`, accepted when reading (older dynamics stores and user data).
TRAIN_ID_ALIASES = ("sample",)
#: The training epoch: the reduced dim of every training-dynamics proxy.
EPOCH = "epoch"

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


#: Index and count variables: coordinates in memory, so that reducing the data variables
#: never averages them (on disk they stay data variables, as always).
INFLUENCE_COORDS = ("train_index", "test_index", "train_count", "test_count")
SCORES_COORDS = ("training_indices", "train_count")
#: The count coordinate that says how many entries along a dim are real (the rest is padding).
COUNT_COORDS = {TRAIN: "train_count", TEST: "test_count"}

#: ``long_name`` of each variable memoxr writes, for xarray's plot labels.
LONG_NAMES = {
    CLASS: "class label",
    "influence": "influence of the train sample on the test sample",
    "memorization": "memorization estimate",
    "train_index": "row in the train split",
    "test_index": "row in the test split",
    "train_count": "train samples of the class",
    "test_count": "test samples of the class",
    "tr_mem": "memorization estimate",
    "tr_labels": "class label of the train sample",
    "tt_labels": "class label of the test sample",
    "influence_weighted_memo": "influence-weighted memorization",
    "representativeness_score": "representativeness score",
    "weighted_combination": "weighted combination of memorization and influence",
    "critical_sample_score": "critical sample score",
    "original_memo": "memorization estimate",
    "training_indices": "row in the train split",
    "pos_infl_mean": "mean positive influence",
    "influence_std": "influence standard deviation",
}


def check_influence_dataset(
    ds: xr.Dataset, *, source: str = "dataset", variables: Sequence[str] | None = None
) -> xr.Dataset:
    """Raise unless ``ds`` holds the influence schema's variables with their dims, in any order.

    The ``schema`` attribute is checked only when present, so a hand-built
    Dataset or ``ds.drop_attrs()`` is accepted. ``variables`` limits the check
    to the ones a caller needs (default: all of :data:`INFLUENCE_VARIABLES`).
    Index and count variables may be data variables or coordinates.

    Examples
    --------
    >>> import memoxr
    >>> ds = memoxr.open_influence(memoxr.sample_path())
    >>> check_influence_dataset(ds.transpose("test_sample", "class", "train_sample", ...).drop_attrs()) is not None
    True
    >>> check_influence_dataset(ds.assign_attrs(schema="memoxr.scores"))
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: dataset: attribute 'schema' is 'memoxr.scores' (a scores store, as memoxr calculate --output writes); expected 'memoxr.influence' (an influence store, as memoxr convert writes)
    """
    if "schema" in ds.attrs or "schema_version" in ds.attrs:
        check_schema_attrs(ds, INFLUENCE_SCHEMA, source)
    names = INFLUENCE_VARIABLES if variables is None else {n: INFLUENCE_VARIABLES[n] for n in variables}
    _check_dims(ds, names, source, "memoxr.open_influence")
    return ds


def check_scores_dataset(ds: xr.Dataset, *, source: str = "scores") -> xr.Dataset:
    """Raise unless ``ds`` holds the scores memoxr computes, dims ``(class, train_sample)`` in any order.

    The ``schema`` attribute is checked only when present.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> check_scores_dataset(scores.drop_attrs()) is not None
    True
    >>> check_scores_dataset(scores.drop_vars("original_memo"))
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: scores: missing score variables ['original_memo']; expected the output of memoxr.influence_scores with ['influence_weighted_memo', 'representativeness_score', 'weighted_combination', 'critical_sample_score', 'original_memo', 'training_indices']
    """
    if "schema" in ds.attrs or "schema_version" in ds.attrs:
        check_schema_attrs(ds, SCORES_SCHEMA, source)
    needed = (*SCORE_NAMES, "original_memo", "training_indices")
    missing = [name for name in needed if name not in ds.variables]
    if missing:
        raise MemoxrInputError(
            f"{source}: missing score variables {missing}; expected the output of "
            f"memoxr.influence_scores with {list(needed)}"
        )
    _check_dims(ds, dict.fromkeys(needed, (CLASS, TRAIN)), source, "memoxr.influence_scores")
    return ds


def _check_dims(ds: xr.Dataset, expected: Mapping[str, tuple[str, ...]], source: str, maker: str) -> None:
    for name, dims in expected.items():
        if name not in ds.variables:
            raise MemoxrInputError(f"{source}: variable {name!r} missing; expected dims {dims} (as {maker} gives)")
        if set(ds[name].dims) != set(dims) or len(ds[name].dims) != len(dims):
            raise MemoxrInputError(
                f"{source}: variable {name!r} has dims {ds[name].dims}; expected {dims} in any order"
            )


def promote_coords(ds: xr.Dataset, names: Sequence[str]) -> xr.Dataset:
    """``ds`` with the named index/count variables as coordinates (either form accepted).

    Examples
    --------
    >>> ds = xr.Dataset({"x": ("i", [1.0, 3.0]), "train_count": ((), 2)})
    >>> list(promote_coords(ds, SCORES_COORDS).data_vars)
    ['x']
    """
    return ds.set_coords([name for name in names if name in ds.data_vars])


def label_variables(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a ``long_name`` on every variable memoxr knows that has none (for plot labels).

    Examples
    --------
    >>> label_variables(xr.Dataset({"memorization": ("i", [0.5])}))["memorization"].attrs
    {'long_name': 'memorization estimate'}
    """
    ds = ds.copy()  # shallow: the data are shared, the attrs are not
    for name, variable in ds.variables.items():
        if name in LONG_NAMES and "long_name" not in variable.attrs:
            variable.attrs["long_name"] = LONG_NAMES[str(name)]
    return ds


#: What each memoxr store is and which command writes it, for messages about a store of the wrong kind.
_STORE_KINDS = {
    INFLUENCE_SCHEMA: "an influence store, as memoxr convert writes",
    SCORES_SCHEMA: "a scores store, as memoxr calculate --output writes",
    "memoxr.dynamics": "a dynamics store, as memoxr ingest writes",
}


def store_kind(schema: Any) -> str:
    """' (what a store of ``schema`` is and which command writes it)', or '' for another schema."""
    kind = _STORE_KINDS.get(schema) if isinstance(schema, str) else None
    return f" ({kind})" if kind else ""


def check_schema_attrs(ds: xr.Dataset, schema: str, source: str) -> None:
    """Raise unless ``ds`` says it follows ``schema`` in the version this memoxr reads.

    Examples
    --------
    >>> check_schema_attrs(xr.Dataset(attrs={"schema": "memoxr.scores", "schema_version": 1}), "memoxr.scores", "s")
    >>> check_schema_attrs(xr.Dataset(attrs={"schema": "other"}), "memoxr.scores", "s")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: s: attribute 'schema' is 'other'; expected 'memoxr.scores' (a scores store, as memoxr calculate --output writes)
    """
    found = ds.attrs.get("schema")
    if found != schema:
        raise MemoxrInputError(
            f"{source}: attribute 'schema' is {found!r}{store_kind(found)}; expected {schema!r}{store_kind(schema)}"
        )
    version = ds.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MemoxrInputError(
            f"{source}: schema_version is {version!r}; this memoxr reads version {SCHEMA_VERSION}"
        )


def kept_attrs(attrs: dict, keep_attrs: bool) -> dict:
    """The input's attrs to copy onto a result: all but the store's completion marker, or none.

    Examples
    --------
    >>> kept_attrs({"source_name": "a.npz", COMPLETE_ATTR: True}, True), kept_attrs({"a": 1}, False)
    ({'source_name': 'a.npz'}, {})
    """
    return {k: v for k, v in attrs.items() if k != COMPLETE_ATTR} if keep_attrs else {}


def check_complete(attrs: dict, *, source: str) -> None:
    """Raise ``IncompleteStoreError`` unless the completion marker is set.

    Examples
    --------
    >>> check_complete({COMPLETE_ATTR: True}, source="s.zarr")
    >>> check_complete({}, source="s.zarr")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    memoxr.errors.IncompleteStoreError: s.zarr: store is incomplete ...
    """
    if attrs.get(COMPLETE_ATTR) is not True:
        raise IncompleteStoreError(
            f"{source}: store is incomplete (attribute {COMPLETE_ATTR!r} is not true): "
            "it was interrupted while being written or was not written by memoxr; "
            "write it again (a rerun replaces a store memoxr left unfinished; any other needs --overwrite)"
        )


def pad_indices(lists: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Per-class index arrays as one ``(class, width)`` int64 array, padded with -1.

    Examples
    --------
    >>> pad_indices([np.array([4, 7]), np.array([5])], 3).tolist()
    [[4, 7, -1], [5, -1, -1]]
    """
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
    Index, count and label variables are data variables here, as stored on disk;
    :func:`memoxr.open_influence` makes them coordinates.

    Examples
    --------
    >>> ds = influence_dataset(
    ...     np.zeros((1, 2, 1), dtype=np.float32), pad_indices([np.array([0, 1])], 2),
    ...     pad_indices([np.array([0])], 1), classes=[0], tr_mem=np.array([0.1, 0.9]),
    ...     tr_labels=np.array([0, 0]), tt_labels=np.array([0]), attrs={},
    ... )
    >>> ds["memorization"].values.tolist(), ds["train_count"].values.tolist()
    ([[0.1, 0.9]], [2])
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
    return label_variables(ds)
