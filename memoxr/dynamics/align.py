"""Sample identity: align arrays by the identity of their samples, never by position.

Every memoxr array over samples carries each sample's identity as a coordinate
(``train_id``; ``sample`` in older dynamics data, still accepted) and the name
of the order those identities follow (``attrs["sample_order"]``, e.g. ``"tfds"``
or ``"torchvision"``). Comparing arrays whose orders differ pairs the wrong
samples, so it is refused unless a permutation ``mapping`` says how identities
in one order translate to the other.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from ..errors import MemoxrInputError
from .files import load_array
from .schema import SAMPLE, SAMPLE_ALIASES, sample_dim

UNKNOWN_ORDER = "unknown"


def load_mapping(mapping: Any, *, argument: str = "mapping") -> np.ndarray:
    """A permutation as a 1-D integer array (given in memory or as an .npy/.npz/.txt/.csv file).

    ``mapping[i]`` is the identity, in the other order, of the sample whose
    identity in this order is ``i``.

    Examples
    --------
    >>> load_mapping([2.0, 0.0, 1.0]).tolist()
    [2, 0, 1]
    """
    if isinstance(mapping, xr.DataArray):
        mapping = mapping.values
    arr = load_array(mapping, argument=argument) if isinstance(mapping, str | os.PathLike) else np.asarray(mapping)
    if arr.ndim != 1 or arr.size == 0:
        raise MemoxrInputError(f"{argument}: shape {arr.shape}; expected a 1-D permutation")
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise MemoxrInputError(f"{argument}: dtype {arr.dtype}; expected integer identities")
    if arr.min() < 0 or len(np.unique(arr)) != arr.size:
        raise MemoxrInputError(f"{argument}: expected a permutation (distinct non-negative integers); it is not")
    return arr.astype(np.int64)


def _order(obj: xr.DataArray | xr.Dataset, given: str | None) -> str:
    if given is not None:
        return given
    return str(obj.attrs.get("sample_order") or UNKNOWN_ORDER)


def check_orders(a_order: str, b_order: str, *, mapping: Any, a_name: str = "a", b_name: str = "b") -> None:
    """Raise unless the two orders are the same or a mapping is given.

    Examples
    --------
    >>> check_orders("tfds", "tfds", mapping=None)
    >>> check_orders("tfds", "torchvision", mapping=None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: sample orders differ: a follows 'tfds', b follows 'torchvision'; ...
    """
    if a_order != b_order and mapping is None:
        raise MemoxrInputError(
            f"sample orders differ: {a_name} follows {a_order!r}, {b_name} follows {b_order!r}; comparing "
            "them by position would pair the wrong samples. Expected the same sample_order, or a "
            f"permutation mapping from {a_order!r} identities to {b_order!r} identities (mapping=..., --mapping)"
        )


def align_samples(
    a: xr.DataArray | xr.Dataset,
    b: xr.DataArray | xr.Dataset,
    *,
    a_dim: str | None = None,
    b_dim: str | None = None,
    a_order: str | None = None,
    b_order: str | None = None,
    mapping: Any = None,
    a_name: str = "a",
    b_name: str = "b",
) -> tuple[Any, Any]:
    """Pair ``a``'s samples with ``b``'s by identity; both come back along ``a``'s sample dim.

    Parameters
    ----------
    a, b : DataArray or Dataset
        Each with a sample dim (``a_dim``, ``b_dim``; default ``train_id``, or
        ``sample`` in older data) whose coordinate is the sample identity.
        Orders default to ``attrs["sample_order"]`` (``"unknown"`` when absent).
    mapping : array or path, optional
        Permutation from ``a``'s order to ``b``'s: ``mapping[i]`` is ``b``'s
        identity of ``a``'s sample ``i``. Required when the orders differ.

    Returns
    -------
    (a, b)
        ``a`` relabelled into ``b``'s order when a mapping was given, and ``b``
        selected at ``a``'s identities, both with ``a``'s sample dim (``train_id``
        when ``a_dim`` named another dim) in ``a``'s order.

    Every sample of ``a`` must be found in ``b`` (``b`` may hold more).

    Examples
    --------
    >>> import xarray as xr
    >>> a = xr.DataArray([1.0, 2.0], dims="train_id", coords={"train_id": [5, 3]}, attrs={"sample_order": "tfds"})
    >>> b = xr.DataArray([30.0, 40.0, 50.0], dims="sample", coords={"sample": [3, 4, 5]}, attrs={"sample_order": "tfds"})
    >>> a2, b2 = align_samples(a, b)
    >>> b2.dims, b2.values.tolist()
    (('train_id',), [50.0, 30.0])
    """
    dims = []
    for obj, dim, name in ((a, a_dim, a_name), (b, b_dim, b_name)):
        found = sample_dim(obj, argument=name, dim=dim)
        if found not in obj.coords:
            raise MemoxrInputError(f"{name}: sample dim {found!r} with identity coordinate missing; dims {tuple(obj.dims)}")
        dims.append(found)
    a_dim, b_dim = dims
    out_dim = a_dim if a_dim in (SAMPLE, *SAMPLE_ALIASES) else SAMPLE
    ao, bo = _order(a, a_order), _order(b, b_order)
    check_orders(ao, bo, mapping=mapping, a_name=a_name, b_name=b_name)
    ids = np.asarray(a[a_dim].values)
    if mapping is not None:
        perm = load_mapping(mapping)
        if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= perm.size:
            raise MemoxrInputError(
                f"mapping: length {perm.size}; expected to cover {a_name}'s identities 0..{ids.max()}"
            )
        ids = perm[ids]
    a = a.assign_coords({a_dim: ids})
    if a_dim != out_dim:
        a = a.rename({a_dim: out_dim})
    if b_dim != out_dim:
        b = b.rename({b_dim: out_dim})
    b_ids = np.asarray(b[out_dim].values)
    missing = np.setdiff1d(ids, b_ids)
    if missing.size:
        raise MemoxrInputError(
            f"{b_name}: {missing.size} of {ids.size} sample identities of {a_name} not found (e.g. "
            f"{missing[:5].tolist()}); expected every sample of {a_name} in {b_name}"
        )
    if len(np.unique(b_ids)) != b_ids.size:
        raise MemoxrInputError(f"{b_name}: repeated sample identities; expected each once")
    a = a.copy()
    a.attrs["sample_order"] = bo
    return a, b.sel({out_dim: ids})
