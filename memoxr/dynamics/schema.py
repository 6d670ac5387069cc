"""The dynamics store's schema: dim names, variable labels, checks, and opening a store.

A dynamics store is a Zarr store with dims ``(*run, epoch, train_id)``:
recorded variables (``loss``, ``correct``, ``true_prob``, ``grad_norm``,
``curvature``...) over ``(*run, epoch, train_id)``, optional ground truth
(``is_mislabeled``, ``duplicate_group``...) over ``(*some run dims,
train_id)``, the coordinate ``train_id`` holding each training sample's
identity (its row in the order named by ``attrs["sample_order"]``), and a
coordinate per run dim.

``train_id`` is the one name of the sample identity across memoxr (influence
stores' ``tr_mem(train_id)``, trial stores, dynamics). Stores written before
it was chosen, and Datasets built by hand, may call it ``sample``: every
dynamics function finds the dim under either name (:func:`sample_dim`) and
keeps the name it was given; :func:`open_dynamics` renames ``sample`` to
``train_id``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions
from ..io.schema import EPOCH, SCHEMA_VERSION, TRAIN_ID, TRAIN_ID_ALIASES, store_kind
from ..io.storage import open_dataset

DYNAMICS_SCHEMA = "memoxr.dynamics"
#: The sample identity dim (and coordinate): the same name as in influence and trial stores.
SAMPLE = TRAIN_ID
#: Older names of :data:`SAMPLE`, accepted when reading.
SAMPLE_ALIASES = TRAIN_ID_ALIASES
#: The ``{variable}`` field of an ingest pattern.
VARIABLE = "variable"
#: Per-epoch completion flags of a store written by :class:`~memoxr.dynamics.DynamicsWriter`.
COMPLETION_VAR = "epoch_complete"

#: ``long_name`` and ``units`` of the recorded variables and coordinates memoxr knows, so
#: that xarray's own ``.plot()`` labels its axes.
VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "loss": {"long_name": "training loss", "units": "nats"},
    "correct": {"long_name": "prediction correct"},
    "true_prob": {"long_name": "probability of the labelled class"},
    "grad_norm": {"long_name": "gradient norm of the loss"},
    "curvature": {"long_name": "input loss curvature"},
    "is_mislabeled": {"long_name": "label flipped"},
    EPOCH: {"long_name": "epoch"},
    SAMPLE: {"long_name": "training sample identity"},
}


def sample_dim(obj: xr.DataArray | xr.Dataset, *, argument: str = "dynamics", dim: str | None = None) -> str:
    """The name of ``obj``'s sample identity dim: ``dim`` if given, else ``train_id`` or its alias ``sample``.

    Examples
    --------
    >>> import xarray as xr
    >>> sample_dim(xr.DataArray([1.0, 2.0], dims="sample"))
    'sample'
    >>> sample_dim(xr.DataArray([1.0, 2.0], dims="train_id"))
    'train_id'
    """
    candidates = (dim,) if dim is not None else (SAMPLE, *SAMPLE_ALIASES)
    found = [d for d in candidates if d in obj.dims]
    if len(found) > 1:
        raise MemoxrInputError(
            f"{argument}: dims {found} both name the sample identity; expected one of them, received dims "
            f"{tuple(map(str, obj.dims))}"
        )
    if not found:
        raise MemoxrInputError(
            f"{argument}: sample dim {' or '.join(map(repr, candidates))} missing; received dims "
            f"{tuple(map(str, obj.dims))}"
        )
    return found[0]


def with_sample_name(obj: Any, name: str = SAMPLE) -> Any:
    """``obj`` with its sample identity dim called ``name`` (an old ``sample`` dim renamed).

    Examples
    --------
    >>> import xarray as xr
    >>> with_sample_name(xr.DataArray([1.0], dims="sample", coords={"sample": [7]})).dims
    ('train_id',)
    """
    found = sample_dim(obj)
    return obj if found == name else obj.rename({found: name})


def label_variables(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``long_name``/``units`` set on the variables memoxr knows (existing attrs win).

    Examples
    --------
    >>> import xarray as xr
    >>> label_variables(xr.Dataset({"loss": ("epoch", [0.5])}))["loss"].attrs["units"]
    'nats'
    """
    out = ds.copy()
    for name, attrs in VARIABLE_ATTRS.items():
        if name in out.variables:
            out[name].attrs = {**attrs, **out[name].attrs}
    return out


def check_dynamics_dataset(ds: xr.Dataset, *, source: str = "dataset") -> xr.Dataset:
    """Raise unless ``ds`` is a dynamics dataset; dims are found by name, in any order.

    The ``schema`` attribute is checked when present (a store of another kind
    is refused), not required, so a Dataset built by hand is accepted. The
    sample identity dim (``train_id``, or ``sample`` in older data) must carry
    a coordinate; every variable must have it.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"loss": (("sample", "epoch"), np.ones((2, 3)))}, coords={"sample": [4, 9]})
    >>> check_dynamics_dataset(ds) is ds
    True
    """
    if not isinstance(ds, xr.Dataset):
        raise MemoxrInputError(f"{source}: expected an xarray.Dataset; received {type(ds).__name__}")
    if "schema" in ds.attrs:
        found = ds.attrs["schema"]
        if found != DYNAMICS_SCHEMA:
            raise MemoxrInputError(
                f"{source}: attribute 'schema' is {found!r}{store_kind(found)}; "
                f"expected {DYNAMICS_SCHEMA!r}{store_kind(DYNAMICS_SCHEMA)}"
            )
        version = ds.attrs.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise MemoxrInputError(f"{source}: schema_version is {version!r}; this memoxr reads version {SCHEMA_VERSION}")
    dim = sample_dim(ds, argument=source)
    if dim not in ds.coords:
        raise MemoxrInputError(f"{source}: coordinate {dim!r} (sample identity) missing")
    for name, var in ds.data_vars.items():
        if name != COMPLETION_VAR and dim not in var.dims:
            raise MemoxrInputError(
                f"{source}: variable {name!r} has dims {var.dims}; expected the sample dim {dim!r} among them"
            )
    return ds


def open_dynamics(
    path: str | os.PathLike[str] | Location, *, chunks: Any = None, storage_options: StorageOptions = None
) -> xr.Dataset:
    """Open a dynamics store lazily, its sample dim called ``train_id``.

    For a store written by :class:`~memoxr.dynamics.DynamicsWriter`, only the
    epochs marked complete for every run are kept (an epoch interrupted half
    way is never seen), and the completion flags are dropped. An older store's
    ``sample`` dim is renamed ``train_id``; variables memoxr knows get
    ``long_name``/``units``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from memoxr.dynamics.demo import write_sample
    >>> ds = open_dynamics(write_sample(pathlib.Path(tempfile.mkdtemp()) / "digits.zarr"))
    >>> dict(ds["loss"].sizes), ds["loss"].attrs["long_name"]
    ({'noise': 4, 'epoch': 40, 'train_id': 1797}, 'training loss')
    """
    location = Location.of(path, storage_options)
    ds = check_dynamics_dataset(open_dataset(location, chunks=chunks), source=location.path)
    ds = with_sample_name(ds)
    if COMPLETION_VAR in ds:
        from ..compute.progress import compute

        (flags,) = compute(ds[COMPLETION_VAR])
        done = (flags > 0).all([d for d in flags.dims if d != EPOCH]).values
        ds = ds.drop_vars(COMPLETION_VAR).isel({EPOCH: np.flatnonzero(done)})
    return label_variables(ds)
