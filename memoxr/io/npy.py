"""One ``.npy`` array without unpickling: its header checked against the bytes really there, its
body read straight into the array, its values checked as numbers or indices, and a member written
from blocks.

The one place that reads npy headers and refuses pickled (object) arrays unless asked to.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import MemoxrInputError

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
    (3, 0): np.lib.format.read_array_header_2_0,  # 3.0 differs only in the header's text encoding
}


@dataclass(frozen=True)
class ArrayHeader:
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class _Counted:
    """Counts the bytes read through it (a zip member need not support ``tell``)."""

    def __init__(self, fp: Any) -> None:
        self.fp, self.count = fp, 0

    def read(self, size: int = -1) -> bytes:
        data = self.fp.read(size)
        self.count += len(data)
        return data


#: The header numpy itself writes, parsed without ``ast.literal_eval`` (numpy's parser: 25 us
#: a header, 0.1 s over the 5,000 members of an ImageNet-size FZ npz); anything else goes to numpy.
_DIM = r"(?:0|[1-9][0-9]*)"
_PLAIN_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z][0-9]*)', 'fortran_order': (True|False), "
    rf"'shape': \((|{_DIM},|(?:{_DIM}, )+{_DIM})\), \}} *\n?",
    re.ASCII,
)
#: numpy refuses longer headers unless asked (``max_header_size``); they go to its reader.
_MAX_PLAIN_HEADER = 10_000


def _read_header_fields(fp: Any, version: tuple[int, int], read: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the header after the magic, as numpy's ``read`` would return them."""
    size_format = "<H" if version == (1, 0) else "<I"
    size_bytes = fp.read(struct.calcsize(size_format))
    text = b""
    if len(size_bytes) == struct.calcsize(size_format):
        length = struct.unpack(size_format, size_bytes)[0]
        text = fp.read(length)
        match = None
        if len(text) == length <= _MAX_PLAIN_HEADER:
            match = _PLAIN_HEADER.fullmatch(text.decode("utf8" if version == (3, 0) else "latin1", errors="replace"))
        if match is not None:
            descr, fortran, dims = match.groups()
            try:
                dtype = np.dtype(descr)  # what descr_to_dtype does with a str (its stubs take lists only)
            except TypeError:
                dtype = None  # not a dtype: numpy's reader below says so in its own words
            if dtype is not None:
                return tuple(int(d) for d in dims.replace(",", " ").split()), fortran == "True", dtype
    return read(io.BytesIO(size_bytes + text))  # numpy's reader: its own checks and messages


def read_npy_header(fp: Any, *, source: str, key: str | None, stored: int | None) -> ArrayHeader:
    """Header of one ``.npy`` stream at ``fp``, checked against the ``stored`` bytes it really holds.

    A header claiming more data than the member (or file) holds is refused here,
    before anything is allocated: a huge claimed shape or a truncated body.
    """
    where = f"input {source!r}" + (f": key {key!r}" if key is not None else "")
    counted = _Counted(fp)
    try:
        version = np.lib.format.read_magic(counted)
        read = _HEADER_READERS.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, fortran_order, dtype = _read_header_fields(counted, version, read)
        offset = counted.count
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise MemoxrInputError(f"{where}: not a valid .npy array: {exc}") from exc
    header = ArrayHeader(key or "", tuple(shape), np.dtype(dtype), bool(fortran_order))
    if stored is not None and not header.dtype.hasobject:  # pickled bodies have no fixed size
        need = header.nbytes
        have = stored - offset
        if need > have:
            raise MemoxrInputError(
                f"{where}: header says shape {header.shape} of {header.dtype}, "
                f"expected {need} bytes of data, received {max(have, 0)} (truncated or corrupt file)"
            )
    return header


def read_npy_body(fp: Any, header: ArrayHeader, *, source: str) -> np.ndarray:
    """The data after a checked, non-object header: exactly ``header.nbytes`` bytes, or an error."""
    buffer = np.empty(header.nbytes, dtype=np.uint8)
    view, got = memoryview(cast(Any, buffer)), 0  # numpy types ndarray as a Buffer on Python >= 3.12 only
    try:
        while got < header.nbytes:
            if hasattr(fp, "readinto"):  # straight into the array: no second copy of a large matrix
                n = fp.readinto(view[got:])
            else:
                data = fp.read(header.nbytes - got)
                n = len(data)
                view[got : got + n] = data
            if not n:
                break
            got += n
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise MemoxrInputError(f"input {source!r}: key {header.key!r} could not be read: {exc}") from exc
    if got != header.nbytes:
        raise MemoxrInputError(
            f"input {source!r}: key {header.key!r}: expected {header.nbytes} bytes of data, received "
            f"{got} (truncated file)"
        )
    array = buffer.view(header.dtype)
    return array.reshape(header.shape, order="F" if header.fortran_order else "C")


def refuse_pickled(dtype: Any, where: str, expected: str = "a numeric array", *, can_allow: bool = False) -> None:
    """The one refusal of a pickled (object) array, by its dtype (from a header: nothing is unpickled).

    ``where`` names the file and key, ``expected`` what was wanted; ``can_allow``
    adds how to allow it, for callers that can unpickle when asked.

    >>> refuse_pickled(np.dtype("float32"), "input 'a.npz': key 'x'")  # numbers pass
    >>> refuse_pickled(np.dtype(object), "input 'a.npz': key 'x'", "integer class labels")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: input 'a.npz': key 'x': expected integer class labels, received dtype object (pickled Python objects), which memoxr does not load
    """
    if np.dtype(dtype).hasobject:
        allow = " unless asked: pass allow_pickle=True (--allow-pickle) if you trust this file" if can_allow else ""
        raise MemoxrInputError(
            f"{where}: expected {expected}, received dtype object (pickled Python objects), which memoxr does not load{allow}"
        )


def check_dtype(header: ArrayHeader, *, allow_pickle: bool) -> None:
    """Refuse a pickled (object) array unless ``allow_pickle``, and any array that is not numeric.

    >>> check_dtype(ArrayHeader("tr_mem", (3,), np.dtype(object)), allow_pickle=False)
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: key 'tr_mem': expected a numeric array, received dtype object (pickled Python objects), which memoxr does not load unless asked: pass allow_pickle=True (--allow-pickle) if you trust this file
    """
    kind = header.dtype.kind
    if kind == "O":
        if not allow_pickle:
            refuse_pickled(header.dtype, f"key {header.key!r}", can_allow=True)
        return
    if kind not in "iuf":
        raise MemoxrInputError(
            f"key {header.key!r}: expected an integer or float array, received dtype {header.dtype}"
        )


def as_numeric(key: str, array: np.ndarray) -> np.ndarray:
    """Numeric view of an array that may have come unpickled as dtype object."""
    if array.dtype.kind != "O":
        return array
    try:
        return np.asarray(array.tolist(), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MemoxrInputError(
            f"key {key!r}: expected numbers, received objects that are not numeric ({exc})"
        ) from exc


def check_finite(values: np.ndarray, what: str = "score") -> None:
    """Refuse an infinite value, by name: it has no place on a ROC curve or in a correlation (NaN is missing).

    >>> check_finite(np.array([0.5, np.nan])), check_finite(np.array(2.0))
    (None, None)
    >>> check_finite(np.array([0.5, np.inf, -np.inf]), "proxy 'csl'")
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: proxy 'csl': 2 infinite values, the first inf at position 1; expected finite numbers (NaN for a missing one)
    """
    values = np.ravel(values)  # a position in the flattened values, whatever their shape
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        count = f"{infinite.size} infinite value" + ("s" if infinite.size > 1 else "")
        raise MemoxrInputError(
            f"{what}: {count}, the first {values[infinite[0]]} at position {int(infinite[0])}; "
            "expected finite numbers (NaN for a missing one)"
        )


def as_indices(key: str, array: np.ndarray, *, size: int, what: str) -> np.ndarray:
    """Validate an index or label array: finite, whole numbers, in ``[0, size)``.

    >>> as_indices("tr_classidx_0", np.array([0.0, 2.0]), size=3, what="train indices").tolist()
    [0, 2]
    >>> as_indices("tr_classidx_0", np.array([0.5]), size=3, what="train indices")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: key 'tr_classidx_0': expected whole-number train indices, received 0.5 at position 0
    """
    array = as_numeric(key, array)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise MemoxrInputError(
                f"key {key!r}: expected finite {what}, received {array[where]} at position {where}"
            )
        fractional = array != np.round(array)
        if fractional.any():
            where = int(np.flatnonzero(fractional)[0])
            raise MemoxrInputError(
                f"key {key!r}: expected whole-number {what}, received {array[where]} at position {where}"
            )
    array = array.astype(np.int64)
    out_of_range = (array < 0) | (array >= size)
    if out_of_range.any():
        where = int(np.flatnonzero(out_of_range)[0])
        raise MemoxrInputError(
            f"key {key!r}: expected {what} in [0, {size}), received {array[where]} at position {where}"
        )
    return array


def write_npy_streamed(archive: zipfile.ZipFile, key: str, shape: tuple[int, ...], dtype: Any, parts: Any) -> None:
    """Write the member ``{key}.npy`` from C-order blocks, never holding the whole array.

    ``parts`` yields arrays whose bytes, laid end to end, fill ``shape``. A fixed
    timestamp makes the same arrays give the same archive bytes.

    Examples
    --------
    Written block by block, read back with its header checked against the member's size:

    >>> import io
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as archive:
    ...     write_npy_streamed(archive, "x", (2, 3), "float32", [np.zeros((1, 3)), np.ones((1, 3))])
    >>> with zipfile.ZipFile(buffer) as archive, archive.open("x.npy") as fp:
    ...     header = read_npy_header(fp, source="buffer", key="x", stored=archive.getinfo("x.npy").file_size)
    ...     body = read_npy_body(fp, header, source="buffer")
    >>> header.shape, str(header.dtype), body.tolist()
    ((2, 3), 'float32', [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    """
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = archive.compression
    with archive.open(info, "w", force_zip64=True) as fp:
        np.lib.format.write_array_header_1_0(fp, header)
        for part in parts:
            fp.write(np.ascontiguousarray(part, dtype=dtype).tobytes())
