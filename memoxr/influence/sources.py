"""Opening influence data: the shipped sample and :func:`open_influence` (store or FZ npz)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import xarray as xr

from ..io.location import Location, PathLike, StorageOptions, locate
from ..io.schema import INFLUENCE_COORDS, check_influence_dataset, label_variables, promote_coords
from ..io.storage import open_dataset

SAMPLE_NAME = "digits_infl_matrix.npz"


def sample_path() -> str:
    """Path of the FZ-layout sample that ships with memoxr (used by ``memoxr demo``).

    Examples
    --------
    >>> sample_path().endswith("digits_infl_matrix.npz")
    True
    """
    return str(resources.files("memoxr.data").joinpath(SAMPLE_NAME))


def open_influence(
    path: PathLike | Location,
    *,
    chunks: Any = None,
    allow_pickle: bool = False,
    chunk_mb: float | None = None,
    storage_options: StorageOptions = None,
) -> xr.Dataset:
    """Open an influence store lazily: a memoxr Zarr store, or an FZ ``.npz`` viewed in place.

    Dims contract: ``influence(class, train_sample, test_sample)``,
    ``memorization(class, train_sample)`` and the index and count variables of
    the influence schema (see the README). Nothing is read but metadata (and, for
    an ``.npz``, its small index arrays, validated).

    The index and count variables (``train_index``, ``test_index``,
    ``train_count``, ``test_count``) are coordinates, so ``ds.mean("train_sample")`` reduces only the data; stores
    keep them as data variables on disk (older stores open the same way).
    Variables carry a ``long_name`` for xarray's plot labels.

    Parameters
    ----------
    path : path
        Zarr store written by ``memoxr convert``, or an ``.npz`` in the FZ layout.
    chunks : optional
        Dask chunks for a Zarr store (default: the store's own chunks).
    allow_pickle : bool
        For an ``.npz`` only: allow arrays of Python objects (unpickling).
    chunk_mb : float, optional
        For an ``.npz`` only: target chunk size in MB.
    storage_options : mapping, optional
        fsspec options for ``s3://`` URLs (credentials, ``client_kwargs={"endpoint_url": ...}``);
        see :func:`memoxr.io.location.resolve_storage_options` for MinIO credentials files.

    Examples
    --------
    >>> import memoxr
    >>> ds = memoxr.open_influence(memoxr.sample_path())
    >>> dict(ds["influence"].sizes)
    {'class': 10, 'train_sample': 137, 'test_sample': 46}
    >>> "train_count" in ds.coords, "train_index" in ds.mean("train_sample").coords
    (True, False)
    """
    location = locate(path, storage_options)  # a zarr Store passes as it is
    if str(location).endswith(".npz"):
        from ..io.chunks import DEFAULT_CHUNK_MB
        from .fz_npz import open_fz_npz

        ds = open_fz_npz(location, allow_pickle=allow_pickle, chunk_mb=DEFAULT_CHUNK_MB if chunk_mb is None else chunk_mb)
    else:
        ds = check_influence_dataset(open_dataset(location, chunks=chunks), source=str(location))
    return label_variables(promote_coords(ds, INFLUENCE_COORDS))
