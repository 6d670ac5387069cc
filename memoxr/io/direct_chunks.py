"""Chunks of a local Zarr v3 store read straight from their files into the arrays dask hands out.

zarr-python reads a chunk through its event-loop thread, decodes it into a buffer of its own and
copies that into the array it returns. For a local store whose array is a regular grid of
Blosc-compressed chunks (what memoxr writes), one file read and one Blosc decode into the chunk's
own array do the same work in less time and memory traffic (README, Performance: a dask sum of a
1 GB store's influence in 0.6-0.7x the time of ``dask.array.from_zarr``'s).

Only variables whose values xarray passes through unchanged are read so: floating-point arrays with
NaN as their fill value, no CF scaling or ``missing_value``, no dtype change, and dask chunks equal
to the Zarr chunks. Anything else (object storage, a wrapped store, sharding, other codecs, a byte
order that is not this machine's, chunks the caller chose that differ from the store's) keeps
xarray's Zarr path. A chunk that cannot be read or decoded raises
:class:`~memoxr.errors.MemoxrInputError` naming the store, the variable, the chunk and its object.
"""

from __future__ import annotations

import itertools
import os
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MemoxrInputError, damaged_chunk

if TYPE_CHECKING:
    import dask.array
    import xarray as xr
    import zarr

#: Blosc's frame header: version, format version, flags, typesize, then uncompressed size,
#: block size and compressed size as little-endian uint32.
_BLOSC_HEADER = struct.Struct("<4BIII")


def read_directly(ds: xr.Dataset, group: zarr.Group, root: str | Path) -> xr.Dataset:
    """``ds`` as opened by ``xr.open_zarr`` from the local store at ``root``, with every eligible
    data variable's chunks read directly (see the module's docstring); the others unchanged.

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
        plan = _plan(var.variable, group, str(name))
        if plan is not None:
            data = _dask_array(Path(root), str(name), *plan)
            replaced[name] = xr.Variable(var.dims, data, var.attrs, var.encoding)
    return ds.assign(replaced) if replaced else ds


def _plan(var: xr.Variable, group: zarr.Group, name: str) -> tuple[Any, tuple[tuple[int, ...], ...]] | None:
    """The Zarr metadata and dask chunks of a variable that can be read directly, else None."""
    from zarr.codecs import BloscCodec, BytesCodec
    from zarr.core.chunk_grids import RegularChunkGrid
    from zarr.core.metadata import ArrayV3Metadata

    if var.chunks is None or name not in group:
        return None
    meta = group[name].metadata
    if not isinstance(meta, ArrayV3Metadata) or not isinstance(meta.chunk_grid, RegularChunkGrid):
        return None
    codecs = meta.codecs
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], BloscCodec):
        return None
    endian = codecs[0].endian
    if endian is not None and endian.value != sys.byteorder:
        return None
    dtype = _native_dtype(meta)
    fill = var.encoding.get("_FillValue", np.nan)
    if (dtype.kind != "f" or var.dtype != dtype or not _is_nan(meta.fill_value) or not _is_nan(fill)
            or any(key in var.encoding for key in _DECODED_BY_XARRAY)):
        return None
    chunk_shape = tuple(meta.chunk_grid.chunk_shape)
    if 0 in meta.shape:
        return None
    regular = tuple(
        tuple(min(c, n - start) for start in range(0, n, c)) for n, c in zip(meta.shape, chunk_shape, strict=True)
    )
    if tuple(var.chunks) != regular or tuple(var.shape) != tuple(meta.shape):
        return None
    return meta, regular


#: CF attributes whose values xarray would change on read (scaling, masking beyond _FillValue).
_DECODED_BY_XARRAY = ("scale_factor", "add_offset", "missing_value")


def _native_dtype(meta: Any) -> np.dtype:
    # zarr 3.1 wraps the dtype (to_native_dtype); zarr 3.0 holds the numpy dtype itself.
    dtype = meta.dtype
    return np.dtype(dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else dtype)


def _is_nan(value: Any) -> bool:
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def _dask_array(root: Path, name: str, meta: Any, chunks: tuple[tuple[int, ...], ...]) -> dask.array.Array:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    folder = root.absolute() / name  # the tasks may run after a chdir, or in a worker elsewhere
    chunk_shape = tuple(meta.chunk_grid.chunk_shape)
    dtype = _native_dtype(meta)
    try:
        stamp = os.stat(folder / "zarr.json").st_mtime_ns
    except OSError:
        stamp = None
    token = tokenize(str(folder), chunk_shape, chunks, dtype.str, stamp)
    out = f"read-{name}-{token}"
    source = str(root)
    graph: dict[Any, Any] = {}
    for coords in itertools.product(*(range(len(c)) for c in chunks)):
        shape = tuple(dim[i] for dim, i in zip(chunks, coords, strict=True))
        key = meta.encode_chunk_key(coords)
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
    try:
        with open(path, "rb") as file:
            frame = file.read()
    except FileNotFoundError:
        return np.full(shape, np.nan, dtype=dtype)
    except OSError as exc:  # a chunk that is a folder, or unreadable: name it
        raise MemoxrInputError(damaged_chunk(*where, f"{type(exc).__name__}: {exc}", verb="read")) from exc
    out = np.empty(chunk_shape, dtype=dtype)
    problem = _frame_problem(frame, out.nbytes)
    if problem is None:
        try:
            _blosc().decode(frame, out=out)
        except Exception as exc:  # numcodecs raises RuntimeError or ValueError, by version
            problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        raise MemoxrInputError(damaged_chunk(*where, problem))
    part = out[tuple(slice(0, n) for n in shape)]
    return part if part.flags.c_contiguous else part.copy()


def _frame_problem(frame: bytes, nbytes: int) -> str | None:
    """Why ``frame`` cannot be a whole Blosc frame of ``nbytes`` decoded bytes, or None."""
    if len(frame) < _BLOSC_HEADER.size:
        return f"{len(frame)} bytes, shorter than a Blosc header"
    _, _, _, _, decoded, _, compressed = _BLOSC_HEADER.unpack_from(frame)
    if compressed != len(frame):
        return f"the Blosc header announces {compressed} bytes, the file holds {len(frame)}"
    if decoded != nbytes:
        return f"the Blosc header announces {decoded} decoded bytes, a chunk holds {nbytes}"
    return None


_CODEC: list[Any] = []


def _blosc() -> Any:
    # One codec object: its decode reads every setting from the frame's header.
    if not _CODEC:
        from numcodecs import Blosc

        _CODEC.append(Blosc())
    return _CODEC[0]

