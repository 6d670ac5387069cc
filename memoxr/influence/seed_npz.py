"""The seed scripts' npz layout for scores: one pickled dict per method, class id -> array.

Kept so that scripts written against ``calculate_influence_aware_memo.py`` keep working.
Reading it back unpickles, so it needs ``allow_pickle=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..compute.progress import compute
from ..errors import MemoxrInputError
from ..io.location import Location, PathLike, StorageOptions
from ..io.schema import (
    CLASS,
    SCHEMA_VERSION,
    SCORES_COORDS,
    SCORES_SCHEMA,
    TRAIN,
    check_scores_dataset,
    label_variables,
    promote_coords,
)
from ..io.storage import atomic_output

#: Seed key -> scores variable.
SEED_KEYS = {
    "influence_weighted_memo": "influence_weighted_memo",
    "representativeness_score": "representativeness_score",
    "weighted_combination": "weighted_combination",
    "critical_sample_score": "critical_sample_score",
    "training_indices": "training_indices",
    "original_memo": "original_memo",
}
_OPTIONAL = ("pos_infl_mean", "influence_std")


def write_seed_npz(
    scores: xr.Dataset, path: PathLike | Location, *, overwrite: bool = False, storage_options: StorageOptions = None
) -> str:
    """Save scores in the seed's npz layout (each key a dict from class id to its samples' array).

    Examples
    --------
    >>> import tempfile, memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> path = write_seed_npz(scores, f"{tempfile.mkdtemp()}/seed.npz")
    >>> seed = np.load(path, allow_pickle=True)
    >>> len(seed["training_indices"].item()[3]) == int(scores["train_count"].sel({"class": 3}))
    True
    """
    location = Location.of(path, storage_options)
    check_scores_dataset(scores)
    scores = compute(scores)[0].transpose(CLASS, TRAIN, ...)
    real = scores["training_indices"].values >= 0
    labels = scores[CLASS].values.tolist()
    payload = {}
    for key, name in SEED_KEYS.items():
        values = scores[name].values
        payload[key] = {int(k): values[c][real[c]] for c, k in enumerate(labels)}
    with atomic_output(location, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fp:  # a file object keeps numpy from appending ".npz"
            arrays: dict[str, Any] = {key: np.array(value, dtype=object) for key, value in payload.items()}
            np.savez(fp, **arrays)
    return location.path


def read_seed_npz(
    path: PathLike | Location, *, allow_pickle: bool = False, storage_options: StorageOptions = None
) -> xr.Dataset:
    """Read a seed-layout scores npz into a padded ``(class, train_sample)`` scores Dataset.

    ``training_indices`` and ``train_count`` are coordinates, as in
    :func:`memoxr.influence_scores`.

    Examples
    --------
    >>> import tempfile, memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> back = read_seed_npz(write_seed_npz(scores, f"{tempfile.mkdtemp()}/seed.npz"), allow_pickle=True)
    >>> bool(back["critical_sample_score"].equals(scores["critical_sample_score"].compute()))
    True
    """
    location = Location.of(path, storage_options)
    source = location.path
    if not allow_pickle:
        raise MemoxrInputError(
            f"influence file {source!r} is a seed-layout npz of pickled dicts; reading it unpickles: "
            "pass allow_pickle=True (--allow-pickle) if you trust this file"
        )
    from ..io.npz import open_npz  # headers checked against stored sizes before any load

    with open_npz(location, allow_pickle=True) as npz:
        missing = [key for key in SEED_KEYS if key not in npz]
        if missing:
            raise MemoxrInputError(f"influence file {source!r}: missing key(s) {missing}; expected {list(SEED_KEYS)}")
        per_key = {}
        for key in SEED_KEYS:
            value = npz[key]
            item = value.item() if value.dtype.kind == "O" and value.shape == () else None
            if not isinstance(item, dict):
                raise MemoxrInputError(
                    f"influence file {source!r}: key {key!r} should hold a dict from class id to array; "
                    f"received {type(item).__name__ if item is not None else value.dtype}"
                )
            per_key[key] = {int(k): np.asarray(v) for k, v in item.items()}
    labels = sorted(per_key["training_indices"])
    for key, data in per_key.items():
        if sorted(data) != labels:
            raise MemoxrInputError(
                f"influence file {source!r}: key {key!r} has classes {sorted(data)[:10]}; "
                f"expected those of 'training_indices' {labels[:10]}"
            )
    width = max((len(v) for v in per_key["training_indices"].values()), default=0)
    variables: dict[str, Any] = {}
    for key, name in SEED_KEYS.items():
        integer = name == "training_indices"
        out = np.full((len(labels), width), -1 if integer else np.nan, dtype=np.int64 if integer else np.float64)
        for c, k in enumerate(labels):
            values = per_key[key][k]
            if len(values) != len(per_key["training_indices"][k]):
                raise MemoxrInputError(
                    f"influence file {source!r}: key {key!r} class {k} has {len(values)} values; "
                    f"expected {len(per_key['training_indices'][k])} like 'training_indices'"
                )
            out[c, : len(values)] = values
        variables[name] = ((CLASS, TRAIN), out)
    for name in _OPTIONAL:  # not in the seed layout
        variables[name] = ((CLASS, TRAIN), np.full((len(labels), width), np.nan))
    counts = np.array([len(per_key["training_indices"][k]) for k in labels], dtype=np.int64)
    variables["train_count"] = ((CLASS,), counts)
    ds = xr.Dataset(
        variables,
        coords={CLASS: np.asarray(labels, dtype=np.int64)},
        attrs={"schema": SCORES_SCHEMA, "schema_version": SCHEMA_VERSION, "source_name": Path(source).name},
    )
    return label_variables(promote_coords(ds, SCORES_COORDS))
