"""The scores store every importer writes: per-sample scores keyed by sample identity.

A scores store is a dynamics store without an ``epoch`` dim (the same layout as
the output of :func:`memoxr.dynamics.compute_proxies`): variables with dims
``(sample,)``, the coordinate ``sample`` holding each sample's identity in the
order named by ``attrs["sample_order"]``. Each score carries
``attrs["direction"]`` (``+1`` when a larger value means more memorized / more
likely mislabeled, ``-1`` when a smaller one does), ``attrs["source"]`` and
``attrs["description"]``; ground truth (e.g. ``is_mislabeled``) carries no
direction. So ``memoxr evaluate`` and ``memoxr compare`` read it as they read
proxies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..dynamics.files import load_array
from ..dynamics.schema import DYNAMICS_SCHEMA, SAMPLE, label_variables, open_dynamics
from ..errors import MemoxrInputError
from ..io.location import Location, PathLike, StorageOptions
from ..io.npy import check_finite
from ..io.schema import SCHEMA_VERSION
from ..io.storage import check_writable, write_dataset

#: ``attrs["content"]`` of a scores store (a dynamics store without epochs).
SCORES_CONTENT = "sample_scores"


def integer_ids(values: Any, *, argument: str) -> np.ndarray:
    """Sample identities as distinct int64: integers, or text holding integers (e.g. ``"42"``)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MemoxrInputError(f"{argument}: shape {arr.shape}; expected one identity per sample")
    if arr.dtype.kind in "OUS":
        try:
            arr = np.array([int(str(v).strip()) for v in arr], dtype=np.int64)
        except ValueError as exc:
            raise MemoxrInputError(
                f"{argument}: identities such as {arr[0]!r}; expected integers (a sample's row in its "
                "order); translate text ids to rows first"
            ) from exc
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise MemoxrInputError(f"{argument}: non-integer identities; expected integers")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise MemoxrInputError(f"{argument}: dtype {arr.dtype}; expected integer identities")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise MemoxrInputError(f"{argument}: negative identity {int(arr.min())}; expected rows >= 0")
    unique, counts = np.unique(arr, return_counts=True)
    if unique.size != arr.size:
        raise MemoxrInputError(
            f"{argument}: identity {int(unique[counts > 1][0])} appears {int(counts.max())} times; "
            "expected each sample once"
        )
    return arr


def truth_arrays(truth: Mapping[str, Any] | None, size: int) -> dict[str, np.ndarray]:
    """Ground truth (arrays or paths) as booleans of shape ``(size,)``, checked."""
    out = {}
    for name, value in (truth or {}).items():
        mask = load_array(value, argument=f"truth {name!r}") if isinstance(value, str | os.PathLike) else np.asarray(value)
        if mask.shape != (size,) or mask.dtype.kind not in "biuf" or not np.isin(np.unique(mask), (0, 1)).all():
            raise MemoxrInputError(
                f"truth {name!r}: {mask.dtype} of shape {mask.shape}; expected ({size},) booleans or 0/1, one per sample"
            )
        out[name] = mask.astype(bool)
    return out


def scores_dataset(
    scores: Mapping[str, Any],
    *,
    sample_order: str,
    source: str,
    directions: Mapping[str, int],
    descriptions: Mapping[str, str] | None = None,
    sample_ids: Any = None,
    truth: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A scores store's Dataset: 1-D scores (and ground truth) over ``train_id``.

    Parameters
    ----------
    scores : mapping
        Name -> one value per sample (all the same length).
    sample_order : str
        Name of the order the identities follow (``"tfds"``, ``"torchvision"``...).
    source : str
        The tool the scores come from (``"cleanlab"``, ``"aum"``...).
    directions : mapping
        Name -> ``+1`` (larger = more memorized / mislabeled) or ``-1``.
    sample_ids : array or path, optional
        Identity of each sample (default: its position).
    truth : mapping, optional
        Name -> boolean ground truth per sample (a path or an array), e.g. ``is_mislabeled``.

    Example
    -------
    >>> ds = scores_dataset({"aum": [0.5, -1.0]}, sample_order="tfds", source="aum", directions={"aum": -1})
    >>> ds["aum"].attrs["direction"], ds["train_id"].values.tolist()
    (-1, [0, 1])
    """
    if not scores:
        raise MemoxrInputError("scores: expected at least one score; received none")
    values = {}
    for name, value in scores.items():
        arr = load_array(value, argument=f"score {name!r}") if isinstance(value, str | os.PathLike) else np.asarray(value)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise MemoxrInputError(f"score {name!r}: {arr.dtype} of shape {arr.shape}; expected one number per sample")
        values[name] = arr.astype(np.float64)
        check_finite(values[name], f"score {name!r}")
    n = {arr.size for arr in values.values()}
    if len(n) != 1:
        raise MemoxrInputError(f"scores: lengths {sorted(n)}; expected one value per sample in every score")
    (size,) = n
    ids = np.arange(size, dtype=np.int64) if sample_ids is None else integer_ids(
        load_array(sample_ids, argument="sample_ids") if isinstance(sample_ids, str | os.PathLike) else sample_ids,
        argument="sample_ids",
    )
    if ids.size != size:
        raise MemoxrInputError(f"sample_ids: {ids.size} identities; expected {size}, one per sample")
    data_vars: dict[str, Any] = {}
    for name, arr in values.items():
        direction = directions.get(name)
        if direction not in (1, -1):
            raise MemoxrInputError(f"direction of score {name!r}: {direction!r}; expected +1 or -1")
        description = (descriptions or {}).get(name, f"{name} from {source}")
        data_vars[name] = xr.Variable((SAMPLE,), arr, attrs={
            "direction": int(direction), "source": source, "description": description, "long_name": description,
        })
    for name, mask in truth_arrays(truth, size).items():
        if name in data_vars:
            raise MemoxrInputError(f"truth {name!r}: also a score; expected a new name")
        data_vars[name] = ((SAMPLE,), mask)
    return label_variables(xr.Dataset(
        data_vars,
        coords={SAMPLE: ids},
        attrs={
            "schema": DYNAMICS_SCHEMA, "schema_version": SCHEMA_VERSION, "content": SCORES_CONTENT,
            "sample_order": sample_order, "source": source, "memoxr_version": __version__, **(attrs or {}),
        },
    ))


def write_scores(
    ds: xr.Dataset, output: PathLike | Location, *, overwrite: bool = False,
    storage_options: StorageOptions = None, show_progress: bool | None = None,
) -> Path:
    """Write a :func:`scores_dataset` as a Zarr store, complete or absent.

    Examples
    --------
    >>> import tempfile
    >>> ds = scores_dataset({"aum": [0.5, -1.0]}, sample_order="tfds", source="aum", directions={"aum": -1})
    >>> write_scores(ds, f"{tempfile.mkdtemp()}/aum.zarr").name
    'aum.zarr'
    """
    from ..compute.progress import deprecated_show_progress

    with deprecated_show_progress(show_progress, "write_scores"):
        return Path(write_dataset(ds, Location.of(output, storage_options), overwrite=overwrite))


def open_scores(path: PathLike | Location, *, storage_options: StorageOptions = None) -> xr.Dataset:
    """Open a scores store (or any dynamics store) lazily; see :func:`memoxr.dynamics.open_dynamics`.

    Examples
    --------
    >>> import tempfile
    >>> ds = scores_dataset({"aum": [0.5, -1.0]}, sample_order="tfds", source="aum", directions={"aum": -1})
    >>> path = write_scores(ds, f"{tempfile.mkdtemp()}/aum.zarr")
    >>> open_scores(path)["aum"].values.tolist()
    [0.5, -1.0]
    """
    return open_dynamics(Location.of(path, storage_options))


def check_output(output: Location, *, overwrite: bool) -> None:
    """Fail before reading any input when ``output`` (a store) exists (and no ``overwrite``) or cannot be one."""
    check_writable(output, overwrite=overwrite, kind="folder")


def read_csv_table(f: Any, path: str, **kwargs: Any) -> Any:
    """``pandas.read_csv`` with unreadable text (empty, not UTF-8, malformed) as one clear error."""
    import pandas as pd

    try:
        return pd.read_csv(f, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MemoxrInputError(f"input {path!r}: not a readable CSV table ({type(exc).__name__}: {exc})") from exc
