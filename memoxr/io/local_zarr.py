"""A local Zarr v3 store of the kind memoxr writes, opened without importing zarr-python.

Importing zarr-python takes 0.08-0.1 s, a sixth of ``memoxr calculate`` at CIFAR-100 size (README,
Performance), though a local store memoxr wrote is a root ``zarr.json`` with consolidated metadata
and chunk files under regular names. :func:`read_local_metadata` parses that JSON; when every array
in it is plain (a numeric dtype in this machine's byte order, a regular chunk grid, the default
chunk keys, the ``bytes`` codec then at most one of Blosc or Zstandard, dimension names), the store
opens through :class:`LocalZarrBackend`, an xarray backend (xarray's documented
``BackendEntrypoint`` and ``AbstractDataStore``), so xarray itself decodes the variables (CF
conventions), builds the indexes and chunks them as it does for zarr-python's reads. Each variable's
encoding holds its codecs as Zarr's JSON dicts, which zarr-python accepts when the dataset is
written again. Anything else (a nested group, another codec, strings, sharding) is left to
zarr-python by the caller (:func:`memoxr.io.storage.open_dataset`).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.backends.common import AbstractDataStore
from xarray.backends.store import StoreBackendEntrypoint
from xarray.core import indexing

from ..errors import MemoxrInputError, damaged_chunk

#: Zarr v3 data types read here, with their numpy type (byte order from the ``bytes`` codec).
DATA_TYPES = {
    "bool": "b1", "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8",
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8",
    "float16": "f2", "float32": "f4", "float64": "f8",
}

#: Compressors decoded here (numcodecs' codecs, which zarr-python itself uses for them).
COMPRESSORS = ("blosc", "zstd")

_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class ArrayMetadata:
    """One array of a store, from its Zarr v3 JSON metadata."""

    name: str
    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any  #: a numpy scalar of ``dtype``
    compressor: str | None  #: "blosc", "zstd" or None
    separator: str
    dimension_names: tuple[str, ...]
    attributes: dict[str, Any]
    codecs: tuple[dict[str, Any], ...]  #: as stored: the ``bytes`` codec, then the compressor if any

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        """The chunk's key under the array's folder (Zarr's default encoding: ``c/0/1``)."""
        return self.separator.join(("c", *map(str, coords)))


@dataclass(frozen=True)
class LocalStoreMetadata:
    """A local store's root attributes and arrays; ``unfamiliar`` names arrays not read here."""

    attrs: dict[str, Any]
    arrays: dict[str, ArrayMetadata]
    unfamiliar: tuple[str, ...]


def read_local_metadata(root: str | Path) -> LocalStoreMetadata | None:
    """The consolidated metadata of the local store at ``root``, or None when there is none to read
    (no root ``zarr.json``, not JSON, not a Zarr v3 group, no consolidated metadata). Nested groups
    and the arrays in them are ``unfamiliar``.

    Examples
    --------
    >>> import tempfile, memoxr
    >>> from memoxr.convert import convert_npz
    >>> store = convert_npz(memoxr.sample_path(), f"{tempfile.mkdtemp()}/digits.zarr")
    >>> meta = read_local_metadata(store)
    >>> meta.attrs["schema"], meta.unfamiliar, meta.arrays["influence"].dimension_names
    ('memoxr.influence', (), ('class', 'train_sample', 'test_sample'))
    """
    try:
        root_json = json.loads(Path(root, "zarr.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(root_json, dict) or root_json.get("zarr_format") != 3 or root_json.get("node_type") != "group":
        return None
    consolidated = root_json.get("consolidated_metadata")
    if not isinstance(consolidated, dict) or not isinstance(consolidated.get("metadata"), dict):
        return None
    attrs = root_json.get("attributes") or {}
    arrays: dict[str, ArrayMetadata] = {}
    unfamiliar: list[str] = []
    for name, meta in consolidated["metadata"].items():
        nested = "/" in name or not isinstance(meta, dict) or meta.get("node_type") != "array"
        parsed = None if nested else parse_array_metadata(str(name), meta)
        if parsed is None:
            unfamiliar.append(str(name))
        else:
            arrays[str(name)] = parsed
    if not isinstance(attrs, dict):
        return None
    return LocalStoreMetadata(dict(attrs), arrays, tuple(unfamiliar))


def parse_array_metadata(name: str, meta: Mapping[str, Any]) -> ArrayMetadata | None:
    """``meta`` (an array's Zarr v3 JSON metadata) if this module reads such an array, else None.

    Examples
    --------
    >>> meta = {"zarr_format": 3, "node_type": "array", "shape": [5, 3], "data_type": "float32",
    ...         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 3]}},
    ...         "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    ...         "fill_value": "NaN", "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    ...         "dimension_names": ["a", "b"], "attributes": {}}
    >>> array = parse_array_metadata("x", meta)
    >>> array.chunk_shape, array.chunk_key((2, 0)), array.dtype.str
    ((2, 3), 'c/2/0', '<f4')
    >>> parse_array_metadata("x", {**meta, "data_type": "string"}) is None
    True
    """
    try:
        if meta.get("zarr_format") != 3 or meta.get("storage_transformers") or any(
                key not in _ARRAY_KEYS and not (isinstance(value, dict) and value.get("must_understand") is False)
                for key, value in meta.items()):
            return None
        type_code = DATA_TYPES.get(meta["data_type"]) if isinstance(meta["data_type"], str) else None
        grid, keys, codecs = meta["chunk_grid"], meta["chunk_key_encoding"], meta["codecs"]
        if type_code is None or grid.get("name") != "regular" or keys.get("name") != "default":
            return None
        shape, chunk_shape = _integers(meta["shape"]), _integers(grid["configuration"]["chunk_shape"])
        separator = keys.get("configuration", {}).get("separator", "/")
        dims = meta.get("dimension_names")
        if dims is None and not shape:  # a scalar, as xarray writes it
            dims = []
        if (shape is None or chunk_shape is None or len(chunk_shape) != len(shape) or min(chunk_shape, default=1) < 1
                or min(shape, default=0) < 0 or separator not in ("/", ".") or not isinstance(dims, list)
                or len(dims) != len(shape) or not all(isinstance(d, str) for d in dims)):
            return None
        if not 1 <= len(codecs) <= 2 or codecs[0].get("name") != "bytes":
            return None
        endian = (codecs[0].get("configuration") or {}).get("endian")
        dtype = np.dtype(type_code)
        if endian not in (None, sys.byteorder) or (endian is None and dtype.itemsize > 1):
            return None
        compressor = codecs[1].get("name") if len(codecs) == 2 else None
        if compressor is not None and compressor not in COMPRESSORS:
            return None
        fill_value = _fill_value(meta["fill_value"], dtype)
        attributes = meta.get("attributes") or {}
        if fill_value is None or not isinstance(attributes, dict):
            return None
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError):  # OverflowError: a fill out of range
        return None
    return ArrayMetadata(
        name, shape, chunk_shape, dtype, fill_value, compressor, separator, tuple(dims), dict(attributes),
        tuple(dict(codec) for codec in codecs),
    )


#: The keys of an array's Zarr v3 metadata; any other must say ``"must_understand": false``.
_ARRAY_KEYS = frozenset({
    "zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs",
    "attributes", "dimension_names", "storage_transformers",
})


def _integers(values: Any) -> tuple[int, ...] | None:
    """A JSON list of integers (not booleans, not floats) as a tuple, else None."""
    if not isinstance(values, list) or not all(type(n) is int for n in values):
        return None
    return tuple(values)


def _fill_value(value: Any, dtype: np.dtype) -> Any:
    """Zarr v3's JSON fill value as a numpy scalar of ``dtype``, or None if not understood."""
    if dtype.kind == "b":
        return dtype.type(value) if isinstance(value, bool) else None
    if dtype.kind in "iu":
        return dtype.type(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value in _SPECIAL_FLOATS:
        return dtype.type(_SPECIAL_FLOATS[value])
    if isinstance(value, str) and re.fullmatch("0x[0-9a-fA-F]+", value):  # the value's bits, as hex
        bits = int(value, 16).to_bytes(dtype.itemsize, "big")
        return np.frombuffer(bits, dtype=dtype.newbyteorder(">"))[0].astype(dtype)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dtype.type(value)
    return None


def decode_chunk(path: str, chunk_shape: tuple[int, ...], dtype: np.dtype, fill_value: Any, compressor: str | None,
                 where: tuple[str, str, tuple[int, ...], str]) -> np.ndarray:
    """The whole chunk in the file at ``path`` (``chunk_shape``), decoded by ``compressor`` ("blosc",
    "zstd" or None) into a new array; ``fill_value`` where the file does not exist, as Zarr reads it.
    A chunk that cannot be read (a folder, say, which zarr-python would read as fill values) or
    decoded raises :class:`~memoxr.errors.MemoxrInputError` naming it. ``where`` names it: store,
    variable, coords, key.
    """
    try:
        with open(path, "rb") as file:
            frame = file.read()
    except FileNotFoundError:
        return np.full(chunk_shape, fill_value, dtype=dtype)
    except OSError as exc:  # a chunk that is a folder, or unreadable: name it
        raise MemoxrInputError(damaged_chunk(*where, f"{type(exc).__name__}: {exc}", verb="read")) from exc
    out = np.empty(chunk_shape, dtype=dtype)
    # Blosc straight into the chunk's array, once its header is checked; the others through bytes.
    problem = frame_problem(frame, out.nbytes) if compressor == "blosc" else None
    if problem is None:
        try:
            if compressor == "blosc":
                codec("blosc").decode(frame, out=out)
            else:
                raw = memoryview(frame if compressor is None else codec(compressor).decode(frame)).cast("B")
                if raw.nbytes != out.nbytes:
                    problem = f"{raw.nbytes} decoded bytes, a chunk holds {out.nbytes}"
                else:
                    out.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
        except Exception as exc:  # numcodecs raises RuntimeError or ValueError, by version
            problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        raise MemoxrInputError(damaged_chunk(*where, problem))
    return out


#: Blosc's frame header: version, format version, flags, typesize, then uncompressed size,
#: block size and compressed size as little-endian uint32.
_BLOSC_HEADER = struct.Struct("<4BIII")


def frame_problem(frame: bytes, nbytes: int) -> str | None:
    """Why ``frame`` cannot be a whole Blosc frame of ``nbytes`` decoded bytes, or None."""
    if len(frame) < _BLOSC_HEADER.size:
        return f"{len(frame)} bytes, shorter than a Blosc header"
    _, _, _, _, decoded, _, compressed = _BLOSC_HEADER.unpack_from(frame)
    if compressed != len(frame):
        return f"the Blosc header announces {compressed} bytes, the file holds {len(frame)}"
    if decoded != nbytes:
        return f"the Blosc header announces {decoded} decoded bytes, a chunk holds {nbytes}"
    return None


_CODECS: dict[str, Any] = {}


def codec(name: str) -> Any:
    """numcodecs' codec for ``name`` ("blosc" or "zstd"), one object each: its decode reads every
    setting from the frame itself."""
    if name not in _CODECS:
        if name == "blosc":
            from numcodecs import Blosc

            _CODECS[name] = Blosc()
        else:
            from numcodecs import Zstd

            _CODECS[name] = Zstd()
    return _CODECS[name]


class _ChunkedArray(BackendArray):
    """An array's values read chunk by chunk from its files, for xarray's lazy indexing."""

    def __init__(self, root: Path, array: ArrayMetadata) -> None:
        self.root, self.array = root, array
        self.shape = array.shape
        self.dtype = array.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple[int | slice, ...]) -> np.ndarray:
        # The box of whole indices the key spans, read from the chunks it overlaps; then the key's steps.
        box: list[tuple[int, int]] = []
        within: list[slice | np.ndarray | int] = []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                picked = range(*k.indices(n))
                if not picked:
                    box.append((0, 0))
                    within.append(slice(0, 0))
                    continue
                lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
                box.append((lo, hi))
                within.append(slice(None) if picked.step == 1 else np.asarray(picked) - lo)
            else:
                i = int(k) + (n if int(k) < 0 else 0)
                box.append((i, i + 1))
                within.append(0)
        out = self._read_box(box)
        # Steps and integers one axis at a time, last axis first, so earlier axes keep their numbers.
        for axis in reversed(range(len(within))):
            index = within[axis]
            if isinstance(index, slice):
                if index != slice(None):
                    out = out[(slice(None),) * axis + (index,)]
            else:
                out = np.take(out, index, axis=axis)
        return out

    def _read_box(self, box: list[tuple[int, int]]) -> np.ndarray:
        array = self.array
        out_shape = tuple(hi - lo for lo, hi in box)
        ranges = [range(lo // c, -(-hi // c)) if hi > lo else range(0)
                  for (lo, hi), c in zip(box, array.chunk_shape, strict=True)]
        folder = self.root / array.name
        out: np.ndarray | None = None
        for coords in itertools.product(*ranges):
            key = array.chunk_key(coords)
            chunk = decode_chunk(str(folder.joinpath(*key.split("/"))), array.chunk_shape, array.dtype,
                                 array.fill_value, array.compressor, (str(self.root), array.name, coords, key))
            starts = [i * c for i, c in zip(coords, array.chunk_shape, strict=True)]
            source = tuple(slice(max(lo - s, 0), min(hi - s, c))
                           for (lo, hi), s, c in zip(box, starts, array.chunk_shape, strict=True))
            if all(len(r) == 1 for r in ranges):  # one chunk: its part, without a copy
                return chunk[source] if source else chunk  # (a 0-d chunk stays an array)
            if out is None:
                out = np.empty(out_shape, dtype=array.dtype)
            target = tuple(slice(s + part.start - lo, s + part.stop - lo)
                           for (lo, _), s, part in zip(box, starts, source, strict=True))
            out[target] = chunk[source]
        return out if out is not None else np.empty(out_shape, dtype=array.dtype)


class _LocalStore(AbstractDataStore):
    """The variables and attributes of a local store, as xarray's backends hand them over."""

    def __init__(self, root: Path, meta: LocalStoreMetadata) -> None:
        self.root, self.meta = root, meta

    def get_variables(self) -> dict[str, xr.Variable]:
        from xarray.backends.zarr import FillValueCoder

        variables = {}
        for name, array in self.meta.arrays.items():
            attributes = dict(array.attributes)
            if "_FillValue" in attributes:  # as xarray's Zarr backend decodes it
                attributes["_FillValue"] = FillValueCoder.decode(attributes["_FillValue"], array.dtype)
            encoding = {
                "chunks": array.chunk_shape,
                "preferred_chunks": dict(zip(array.dimension_names, array.chunk_shape, strict=True)),
                "compressors": copy.deepcopy(array.codecs[1:]),  # the caller's to change
                "filters": (),
                "shards": None,
                "serializer": copy.deepcopy(array.codecs[0]),
                "fill_value": array.fill_value,
            }
            data = indexing.LazilyIndexedArray(_ChunkedArray(self.root, array))
            variables[name] = xr.Variable(array.dimension_names, data, attributes, encoding)
        return variables

    def get_attrs(self) -> dict[str, Any]:
        return {k: v for k, v in self.meta.attrs.items() if not k.lower().startswith("_nc")}


class LocalZarrBackend(BackendEntrypoint):
    """xarray's backend for a local store :func:`read_local_metadata` read in full.

    Examples
    --------
    >>> import tempfile, memoxr
    >>> from memoxr.convert import convert_npz
    >>> store = convert_npz(memoxr.sample_path(), f"{tempfile.mkdtemp()}/digits.zarr")
    >>> ds = xr.open_dataset(store, engine=LocalZarrBackend, chunks={}, metadata=read_local_metadata(store))
    >>> ds["influence"].dims, ds["influence"].encoding["compressors"][0]["name"]
    (('class', 'train_sample', 'test_sample'), 'blosc')
    """

    description = "A local Zarr v3 store memoxr reads without zarr-python"
    open_dataset_parameters = (
        "filename_or_obj", "drop_variables", "mask_and_scale", "decode_times", "concat_characters", "decode_coords",
        "use_cftime", "decode_timedelta", "metadata",
    )

    def open_dataset(
        self, filename_or_obj: Any, *, drop_variables: Any = None, metadata: LocalStoreMetadata | None = None,
        version: Any = None, **decoders: Any,
    ) -> xr.Dataset:
        # version: not read here; xarray folds every keyword into the dask token of the arrays it chunks,
        # so a store whose chunks are written in place gets new keys as they change (io/storage.py).
        root = Path(filename_or_obj).absolute()  # the tasks may run after a chdir, or in a worker elsewhere
        meta = metadata if metadata is not None else read_local_metadata(root)
        if meta is None or meta.unfamiliar:
            raise ValueError(f"{str(root)!r}: not a local Zarr v3 store with consolidated metadata memoxr reads itself")
        store = _LocalStore(root, meta)
        return StoreBackendEntrypoint().open_dataset(store, drop_variables=drop_variables, **decoders)
