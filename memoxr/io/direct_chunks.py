"""Chunks of a local Zarr v3 store read straight from their files into the arrays dask hands out.

zarr-python reads a chunk through its event-loop thread, decodes it into a buffer of its own and
copies that into the array it returns. For a local store whose array is a regular grid of
Blosc-compressed chunks (what memoxr writes), one file read and one Blosc decode into the chunk's
own array do the same work in less time and memory traffic (README, Performance: a dask sum of a
1 GB store's influence in 0.6-0.7x the time of ``dask.array.from_zarr``'s).

Only variables whose values xarray passes through unchanged are read so: floating-point arrays with
NaN as their fill value, no CF scaling or ``missing_value``, no dtype change, and dask chunks equal
to the Zarr chunks. Anything else (object storage, a wrapped store, sharding, other codecs, a byte
order that is not this machine's, chunks the caller chose that differ from the store's) is read
chunk by chunk as xarray reads it (through zarr-python, or :mod:`.local_zarr`'s backend). A chunk that cannot be read or decoded raises
:class:`~memoxr.errors.MemoxrInputError` naming the store, the variable, the chunk and its object.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .local_zarr import ArrayMetadata, decode_chunk
from .location import local_version

if TYPE_CHECKING:
    import dask.array
    import xarray as xr

#: Prefix of the dask names of directly read variables: ``read-<variable>-<token>``.
NAME_PREFIX = "read-"


def reads_directly(array: Any) -> bool:
    """Whether a dask ``array`` is a variable as :func:`read_directly` reads it, untouched since:
    each task holds its chunk's stored bytes and decodes them straight into the chunk's own array,
    with no second decoded copy (what a cost plan counts per task).

    Examples
    --------
    >>> import tempfile, memoxr
    >>> from memoxr.convert import convert_npz
    >>> store = convert_npz(memoxr.sample_path(), f"{tempfile.mkdtemp()}/digits.zarr")
    >>> reads_directly(memoxr.open_influence(store)["influence"].data)
    True
    >>> reads_directly(memoxr.open_influence(memoxr.sample_path())["influence"].data)  # an npz
    False
    """
    layers = getattr(getattr(array, "dask", None), "layers", {})
    return len(layers) == 1 and str(getattr(array, "name", "")).startswith(NAME_PREFIX)


def read_directly(
    ds: xr.Dataset, arrays: Mapping[str, ArrayMetadata], root: str | Path, *, version: Any = None
) -> xr.Dataset:
    """``ds`` as opened from the local store at ``root`` (its arrays' metadata in ``arrays``, from
    :func:`~memoxr.io.local_zarr.read_local_metadata`), with every eligible data variable's chunks
    read directly (see the module's docstring); the others unchanged. ``version`` joins the arrays'
    dask token (a store filled in place: :func:`memoxr.io.storage.open_dataset`).

    Examples
    --------
    :func:`memoxr.io.storage.open_dataset` calls it for a local folder:

    >>> import tempfile, memoxr
    >>> from memoxr.convert import convert_npz
    >>> store = convert_npz(memoxr.sample_path(), f"{tempfile.mkdtemp()}/digits.zarr")
    >>> ds = memoxr.open_influence(store)
    >>> [layer.split("-")[:2] for layer in ds["influence"].data.dask.layers]
    [['read', 'influence']]
    """
    import xarray as xr

    replaced = {}
    for name, var in ds.data_vars.items():
        array = arrays.get(str(name))
        chunks = _plan(var.variable, array) if array is not None else None
        if array is not None and chunks is not None:
            data = _dask_array(Path(root), array, chunks, version)
            replaced[name] = xr.Variable(var.dims, data, var.attrs, var.encoding)
    return ds.assign(replaced) if replaced else ds


def _plan(var: xr.Variable, array: ArrayMetadata) -> tuple[tuple[int, ...], ...] | None:
    """The dask chunks of a variable that can be read directly, else None."""
    if var.chunks is None or array.compressor != "blosc":
        return None
    fill = var.encoding.get("_FillValue", np.nan)
    if (array.dtype.kind != "f" or var.dtype != array.dtype or not _is_nan(array.fill_value) or not _is_nan(fill)
            or any(key in var.encoding for key in _DECODED_BY_XARRAY)):
        return None
    if 0 in array.shape:
        return None
    regular = tuple(
        tuple(min(c, n - start) for start in range(0, n, c))
        for n, c in zip(array.shape, array.chunk_shape, strict=True)
    )
    if tuple(var.chunks) != regular or tuple(var.shape) != array.shape:
        return None
    return regular


#: CF attributes whose values xarray would change on read (scaling, masking beyond _FillValue).
_DECODED_BY_XARRAY = ("scale_factor", "add_offset", "missing_value")


def _is_nan(value: Any) -> bool:
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def _dask_array(root: Path, array: ArrayMetadata, chunks: tuple[tuple[int, ...], ...], version: Any = None) -> dask.array.Array:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    name = array.name
    folder = root.absolute() / name  # the tasks may run after a chdir, or in a worker elsewhere
    chunk_shape = array.chunk_shape
    dtype = array.dtype
    try:
        stamp: tuple[int, ...] | None = local_version(folder / "zarr.json")
    except OSError:
        stamp = None
    token = tokenize(str(folder), chunk_shape, chunks, dtype.str, stamp, version)
    out = f"{NAME_PREFIX}{name}-{token}"
    source = str(root)
    graph: dict[Any, Any] = {}
    for coords in itertools.product(*(range(len(c)) for c in chunks)):
        shape = tuple(dim[i] for dim, i in zip(chunks, coords, strict=True))
        key = array.chunk_key(coords)
        graph[(out, *coords)] = (
            read_chunk, str(folder.joinpath(*key.split("/"))), shape, chunk_shape, dtype.str,
            (source, name, coords, key),
        )
    return da.Array(HighLevelGraph.from_collections(out, graph, dependencies=()), out, chunks, dtype=dtype)


def read_chunk(path: str, shape: tuple[int, ...], chunk_shape: tuple[int, ...], dtype: str,
               where: tuple[str, str, tuple[int, ...], str]) -> np.ndarray:
    """One chunk, ``shape`` (cut from ``chunk_shape`` at the array's edges), decoded from the
    Blosc frame in the file at ``path``; NaN where the file does not exist (a chunk Zarr never
    wrote holds the fill value). ``where`` names it in errors: store, variable, coords, key.

    Examples
    --------
    >>> import tempfile
    >>> from numcodecs import Blosc
    >>> path = f"{tempfile.mkdtemp()}/0"
    >>> _ = open(path, "wb").write(Blosc().encode(np.arange(6, dtype="<f4")))
    >>> read_chunk(path, (2, 2), (2, 3), "<f4", ("s.zarr", "x", (0, 0), "c/0/0")).tolist()
    [[0.0, 1.0], [3.0, 4.0]]
    """
    out = decode_chunk(path, chunk_shape, np.dtype(dtype), np.nan, "blosc", where)
    part = out[tuple(slice(0, n) for n in shape)]
    return part if part.flags.c_contiguous else part.copy()
