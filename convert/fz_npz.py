"""Read and validate the Feldman–Zhang influence npz layout, class by class.

Only array headers and the small index arrays are read to validate the file;
the influence matrices are loaded one class block at a time, inside dask tasks.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import threading
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from memoxr.errors import MemoxrInputError
from memoxr.io.chunks import DEFAULT_CHUNK_MB, BlockChunks, plan_block_chunks
from memoxr.io.schema import influence_dataset, pad_indices
from memoxr.io.storage import StorageOptions, file_exists, open_file

if TYPE_CHECKING:
    # numpy declares ndarray.__buffer__ for Python >= 3.12 only: memoryview(array) is cast on 3.11.
    from typing_extensions import Buffer

GLOBAL_KEYS = ("tr_mem", "tr_labels", "tt_labels")
#: Optional key: a string scalar naming the order the arrays' samples follow.
ORDER_KEY = "sample_order"
_CLASS_KEY = re.compile(r"^(infl_matrix_class|tr_classidx_|tt_classidx_)(\d+)$")
_PER_CLASS = ("infl_matrix_class{k}", "tr_classidx_{k}", "tt_classidx_{k}")
#: Default sample order of the released FZ arrays (TensorFlow-Datasets' order).
DEFAULT_SAMPLE_ORDER = "tfds"


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
    (3, 0): np.lib.format.read_array_header_2_0,  # 3.0 differs only in the header's text encoding
}


@dataclass(frozen=True)
class ArrayHeader:
    """Name, shape and dtype of one array of an npz, read from its header (see :func:`read_npz_headers`)."""

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


def read_npy_header(fp: Any, *, source: str, key: str | None, stored: int | None) -> ArrayHeader:
    """Header of one ``.npy`` stream at ``fp``, checked against the ``stored`` bytes it really holds.

    A header claiming more data than the member (or file) holds is refused here,
    before anything is allocated: a huge claimed shape or a truncated body.

    Examples
    --------
    >>> import io
    >>> buffer = io.BytesIO()
    >>> np.save(buffer, np.zeros((3, 4), dtype=np.float32))
    >>> size, _ = buffer.tell(), buffer.seek(0)
    >>> read_npy_header(buffer, source="a.npy", key=None, stored=size)
    ArrayHeader(key='', shape=(3, 4), dtype=dtype('float32'), fortran_order=False)
    >>> _ = buffer.seek(0)
    >>> read_npy_header(buffer, source="a.npy", key=None, stored=size - 8)
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: input 'a.npy': header says shape (3, 4) of float32, expected 48 bytes of
    data, received 40 (truncated or corrupt file)
    """
    where = f"input {source!r}" + (f": key {key!r}" if key is not None else "")
    counted = _Counted(fp)
    try:
        version = np.lib.format.read_magic(counted)
        read = _HEADER_READERS.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, fortran_order, dtype = read(counted)
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


def _npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {info.filename[: -len(".npy")]: info for info in archive.infolist() if info.filename.endswith(".npy")}


def read_npz_headers(path: str | os.PathLike[str], *, storage_options: StorageOptions = None) -> dict[str, ArrayHeader]:
    """Shape and dtype of every array in an npz archive (local or URL), without loading data.

    Each header is checked against its member's stored size (see :func:`read_npy_header`).

    Examples
    --------
    >>> import memoxr
    >>> headers = read_npz_headers(memoxr.sample_path())
    >>> headers["infl_matrix_class0"]
    ArrayHeader(key='infl_matrix_class0', shape=(133, 45), dtype=dtype('float32'), fortran_order=False)
    """
    source = str(path)
    if not file_exists(source, storage_options=storage_options):
        raise MemoxrInputError(f"input {source!r} does not exist or is not a file")
    with open_file(source, storage_options=storage_options) as raw:
        return read_npz_headers_from(raw, source=source)


def read_npz_headers_from(raw: Any, *, source: str) -> dict[str, ArrayHeader]:
    """:func:`read_npz_headers` on an open binary file.

    Examples
    --------
    >>> import memoxr
    >>> with open(memoxr.sample_path(), "rb") as raw:
    ...     headers = read_npz_headers_from(raw, source="digits")
    >>> len(headers), headers["tr_mem"].shape
    (34, (1347,))
    """
    headers: dict[str, ArrayHeader] = {}
    if not zipfile.is_zipfile(raw):
        raise MemoxrInputError(f"input {source!r} is not an npz archive (expected a zip of .npy arrays)")
    raw.seek(0)
    try:
        with zipfile.ZipFile(raw) as archive:
            for key, info in _npz_members(archive).items():
                with archive.open(info) as fp:
                    headers[key] = read_npy_header(fp, source=source, key=key, stored=info.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise MemoxrInputError(f"input {source!r} is not a readable npz archive: {exc}") from exc
    return headers


def read_npy_body(fp: Any, header: ArrayHeader, *, source: str) -> np.ndarray:
    """The data after a checked, non-object header: exactly ``header.nbytes`` bytes, or an error.

    Examples
    --------
    >>> import io
    >>> buffer = io.BytesIO()
    >>> np.save(buffer, np.arange(6, dtype=np.int32).reshape(2, 3))
    >>> size, _ = buffer.tell(), buffer.seek(0)
    >>> header = read_npy_header(buffer, source="a.npy", key="x", stored=size)
    >>> read_npy_body(buffer, header, source="a.npy")
    array([[0, 1, 2],
           [3, 4, 5]], dtype=int32)
    """
    buffer = np.empty(header.nbytes, dtype=np.uint8)
    view, got = memoryview(cast("Buffer", buffer)), 0
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


class CheckedNpz:
    """An npz opened for reading; each array's header is checked right before it is read.

    ``npz[key]`` checks the member's header against its stored size, then reads
    the values from that very member, and turns a damaged member into an error
    naming the file and the key. Only the members asked for are touched.

    Examples
    --------
    >>> import memoxr
    >>> with open(memoxr.sample_path(), "rb") as raw, CheckedNpz(raw, source="digits") as npz:
    ...     npz.keys[:3], npz["tr_labels"][:5]
    (['tr_mem', 'tr_labels', 'tt_labels'], array([7, 3, 6, 6, 7]))
    """

    def __init__(self, raw: Any, *, source: str, allow_pickle: bool = False) -> None:
        self.source, self.allow_pickle, self._raw = source, allow_pickle, raw
        if not zipfile.is_zipfile(raw):
            raise MemoxrInputError(f"input {source!r} is not an npz archive (expected a zip of .npy arrays)")
        raw.seek(0)
        try:
            self._zip = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise MemoxrInputError(f"input {source!r} is not a readable npz archive: {exc}") from exc
        self._members = _npz_members(self._zip)
        self._headers: dict[str, ArrayHeader] = {}

    @property
    def headers(self) -> dict[str, ArrayHeader]:
        """Every array's checked header."""
        return {key: self.header(key) for key in self._members}

    def header(self, key: str) -> ArrayHeader:
        if key not in self._headers:
            info = self._member(key)
            try:
                with self._zip.open(info) as fp:
                    self._headers[key] = read_npy_header(fp, source=self.source, key=key, stored=info.file_size)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc
        return self._headers[key]

    def _member(self, key: str) -> zipfile.ZipInfo:
        if key not in self._members:
            raise MemoxrInputError(
                f"input {self.source!r}: key {key!r} missing; received keys {sorted(self._members)[:10]}"
            )
        return self._members[key]

    def __contains__(self, key: str) -> bool:
        return key in self._members

    @property
    def keys(self) -> list[str]:
        """The archive's array names, in archive order."""
        return list(self._members)

    def __getitem__(self, key: str) -> np.ndarray:
        info = self._member(key)
        try:
            with self._zip.open(info) as fp:
                header = read_npy_header(fp, source=self.source, key=key, stored=info.file_size)
                self._headers[key] = header
                if not header.dtype.hasobject:
                    return read_npy_body(fp, header, source=self.source)
                if not self.allow_pickle:
                    raise MemoxrInputError(
                        f"input {self.source!r}: key {key!r}: expected a numeric array, received dtype object "
                        "(pickled Python objects), which memoxr does not load"
                    )
            with self._zip.open(info) as fp:  # unpickled only when asked for (--allow-pickle)
                return np.lib.format.read_array(fp, allow_pickle=True)
        except MemoxrInputError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc

    def read_stored_into(self, key: str, shape: tuple[int, ...], out: np.ndarray) -> bool:
        """Read the stored float member ``key`` straight into ``out``; False if it is anything else.

        Skips zipfile's buffered reads and the intermediate copy of a large
        matrix. The header is checked like every other (:func:`read_npy_header`,
        against the member's recorded size), and the member's CRC-32 is checked
        over the bytes read, as zipfile would.
        """
        info = self._member(key)
        fp = self._raw
        if info.compress_type != zipfile.ZIP_STORED:
            return False
        fp.seek(info.header_offset)
        local = fp.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return False
        name_length, extra_length = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        data_start = info.header_offset + 30 + name_length + extra_length
        fp.seek(data_start)
        header = read_npy_header(fp, source=self.source, key=key, stored=info.file_size)
        if header.dtype.kind != "f":
            return False  # pickled or integer members: the general reader
        if header.shape != shape:
            raise MemoxrInputError(f"input {self.source!r}: key {key!r}: expected shape {shape}, received {header.shape}")
        header_length, expected = fp.tell() - data_start, header.nbytes
        dtype, fortran = header.dtype, header.fortran_order
        direct = dtype == np.float32 and dtype.isnative and not fortran and out.flags.c_contiguous
        buffer = out if direct else np.empty(shape[::-1] if fortran else shape, dtype=dtype)
        received = fp.readinto(memoryview(cast("Buffer", buffer)).cast("B")) if expected else 0
        if received != expected:  # the file is shorter than its zip directory says
            raise MemoxrInputError(
                f"input {self.source!r}: key {key!r}: expected {expected} bytes of data, received {received} "
                "(truncated file)"
            )
        crc = zlib.crc32(memoryview(cast("Buffer", buffer)).cast("B") if expected else b"", zlib.crc32(self._header_bytes(data_start, header_length)))
        trailing = info.file_size - header_length - expected
        if trailing > 0:
            crc = zlib.crc32(fp.read(trailing), crc)
        if crc != info.CRC:
            raise MemoxrInputError(
                f"input {self.source!r}: key {key!r}: member is damaged (CRC-32 mismatch); expected {info.CRC:#010x}, "
                f"received {crc:#010x}"
            )
        if not direct:
            out[...] = buffer.T if fortran else buffer
        return True

    def _header_bytes(self, start: int, length: int) -> bytes:
        position = self._raw.tell()
        self._raw.seek(start)
        head = self._raw.read(length)
        self._raw.seek(position)
        return head

    def __enter__(self) -> CheckedNpz:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._zip.close()


@contextlib.contextmanager
def open_npz(
    path: str | os.PathLike[str], *, allow_pickle: bool = False, storage_options: StorageOptions = None
) -> Iterator[CheckedNpz]:
    """Open an npz (local or URL) whose members are header-checked before any is read.

    Examples
    --------
    >>> import memoxr
    >>> with open_npz(memoxr.sample_path()) as npz:
    ...     "tr_mem" in npz, npz["tr_mem"].shape
    (True, (1347,))
    """
    source = str(path)
    with open_file(source, storage_options=storage_options) as raw, CheckedNpz(raw, source=source, allow_pickle=allow_pickle) as npz:
        yield npz


def load_npz_arrays(
    path: str | os.PathLike[str],
    keys: Sequence[str],
    *,
    what: str,
    expected: str,
    storage_options: StorageOptions = None,
) -> tuple[dict[str, np.ndarray | None], dict[str, ArrayHeader]]:
    """Load ``keys`` of an npz, refusing pickled arrays by their header; other keys map to None.

    Errors read ``{what} '{path}': key '{key}': expected {expected}, received dtype object ...``.

    Examples
    --------
    >>> import memoxr
    >>> arrays, headers = load_npz_arrays(memoxr.sample_path(), ["tr_labels"], what="influence",
    ...                                   expected="a numeric array")
    >>> arrays["tr_labels"].shape, arrays["tr_mem"], headers["tr_mem"].shape
    ((1347,), None, (1347,))
    """
    source = str(path)
    if not file_exists(source, storage_options=storage_options):
        raise MemoxrInputError(f"input {source!r} does not exist or is not a file")
    with open_npz(source, storage_options=storage_options) as npz:
        headers = npz.headers
        for key in keys:
            if key in headers and headers[key].dtype.kind == "O":
                raise MemoxrInputError(
                    f"{what} {source!r}: key {key!r}: expected {expected}, received dtype object "
                    "(pickled Python objects), which memoxr does not load"
                )
        arrays: dict[str, np.ndarray | None] = {key: npz[key] for key in keys if key in headers}
    arrays.update({key: None for key in headers if key not in keys})
    return arrays, headers


def file_sha256(
    path: str | os.PathLike[str],
    block: int = 8 * 2**20,
    *,
    storage_options: StorageOptions = None,
    stop: threading.Event | None = None,
) -> str:
    """Hex sha256 of a file (local or URL); ``""`` if ``stop`` is set before the end (the caller gave up).

    Examples
    --------
    >>> import memoxr
    >>> digest = file_sha256(memoxr.sample_path())
    >>> digest == hashlib.sha256(Path(memoxr.sample_path()).read_bytes()).hexdigest()
    True
    >>> stop = threading.Event()
    >>> stop.set()
    >>> file_sha256(memoxr.sample_path(), stop=stop)
    ''
    """
    digest = hashlib.sha256()
    with open_file(path, storage_options=storage_options) as fp:
        while chunk := fp.read(block):
            if stop is not None and stop.is_set():
                return ""
            digest.update(chunk)
    return digest.hexdigest()


def _check_dtype(header: ArrayHeader, *, allow_pickle: bool) -> None:
    kind = header.dtype.kind
    if kind == "O":
        if not allow_pickle:
            raise MemoxrInputError(
                f"key {header.key!r}: expected a numeric array, received dtype object (pickled "
                "Python objects); memoxr never unpickles unless asked: pass allow_pickle=True "
                "(--allow-pickle) if you trust this file"
            )
        return
    if kind not in "iuf":
        raise MemoxrInputError(
            f"key {header.key!r}: expected an integer or float array, received dtype {header.dtype}"
        )


def _as_numeric(key: str, array: np.ndarray) -> np.ndarray:
    """Numeric view of an array that may have come unpickled as dtype object."""
    if array.dtype.kind != "O":
        return array
    try:
        return np.asarray(array.tolist(), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MemoxrInputError(
            f"key {key!r}: expected numbers, received objects that are not numeric ({exc})"
        ) from exc


def _as_indices(key: str, array: np.ndarray, *, size: int, what: str) -> np.ndarray:
    """Validate an index or label array: finite, whole numbers, in ``[0, size)``."""
    array = _as_numeric(key, array)
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


@dataclass
class FZLayout:
    """A validated FZ influence npz: its small arrays in memory, matrices on disk.

    Examples
    --------
    >>> import memoxr
    >>> layout = inspect_fz_npz(memoxr.sample_path())
    >>> layout.max_train, layout.max_test, layout.plan(chunk_mb=0.1)
    (137, 46, BlockChunks(cls=4, train=137, test=46))
    >>> layout.to_dataset(chunk_mb=0.1)["influence"].chunks
    ((4, 4, 2), (137,), (46,))
    """

    path: str
    allow_pickle: bool
    classes: list[int]
    train_index: list[np.ndarray]
    test_index: list[np.ndarray]
    tr_mem: np.ndarray
    tr_labels: np.ndarray
    tt_labels: np.ndarray
    ignored_keys: list[str] = field(default_factory=list)
    sha256: str = ""
    sample_order: str | None = None
    storage_options: dict | None = field(default=None, repr=False)

    @property
    def max_train(self) -> int:
        return max((len(i) for i in self.train_index), default=0)

    @property
    def max_test(self) -> int:
        return max((len(i) for i in self.test_index), default=0)

    def plan(self, *, chunk_mb: float = DEFAULT_CHUNK_MB) -> BlockChunks:
        return plan_block_chunks(len(self.classes), self.max_train, self.max_test, chunk_mb=chunk_mb)

    def to_dataset(
        self,
        *,
        chunk_mb: float = DEFAULT_CHUNK_MB,
        chunks: BlockChunks | None = None,
        sample_order: str | None = None,
    ) -> xr.Dataset:
        """The influence store's Dataset, with ``influence`` loaded lazily per class block.

        ``sample_order`` defaults to the file's ``sample_order`` key, else ``"tfds"``
        (the order of the released FZ arrays).
        """
        sample_order = sample_order or self.sample_order or DEFAULT_SAMPLE_ORDER
        plan = chunks or self.plan(chunk_mb=chunk_mb)
        n_class, n_tr, n_tt = len(self.classes), self.max_train, self.max_test
        blocks = []
        for start in range(0, n_class, plan.cls):
            group = self.classes[start : start + plan.cls]
            shapes = [(len(self.train_index[i]), len(self.test_index[i])) for i in range(start, start + len(group))]
            token = tokenize(self.path, self.sha256, group, n_tr, n_tt)
            load = dask.delayed(_load_class_block, pure=True)(
                self.path, group, shapes, n_tr, n_tt, self.allow_pickle, self.storage_options,
                dask_key_name=f"load-fz-block-{token}",
            )
            blocks.append(da.from_delayed(load, shape=(len(group), n_tr, n_tt), dtype=np.float32))
        influence = da.concatenate(blocks, axis=0).rechunk((plan.cls, plan.train, plan.test))

        return influence_dataset(
            influence,
            pad_indices(self.train_index, n_tr),
            pad_indices(self.test_index, n_tt),
            classes=self.classes,
            tr_mem=self.tr_mem,
            tr_labels=self.tr_labels,
            tt_labels=self.tt_labels,
            attrs={
                "source_name": Path(self.path).name,
                "source_sha256": self.sha256,
                "sample_order": sample_order,
                "ignored_keys": list(self.ignored_keys),
            },
        )


def _load_class_block(
    path: str,
    classes: Sequence[int],
    shapes: Sequence[tuple[int, int]],
    n_tr: int,
    n_tt: int,
    allow_pickle: bool,
    storage_options: StorageOptions = None,
) -> np.ndarray:
    """Load the influence matrices of ``classes`` into one NaN-padded float32 block.

    Stored (uncompressed) float members, what ``np.savez`` writes, are read
    straight into the block; other members go through the checked reader.
    """
    block = np.empty((len(classes), n_tr, n_tt), dtype=np.float32)
    with open_npz(path, allow_pickle=allow_pickle, storage_options=storage_options) as npz:
        for c, (k, shape) in enumerate(zip(classes, shapes, strict=True)):
            key = f"infl_matrix_class{k}"
            target = block[c, : shape[0], : shape[1]]
            block[c, shape[0] :, :] = np.nan
            block[c, : shape[0], shape[1] :] = np.nan
            if not npz.read_stored_into(key, shape, target):
                matrix = _as_numeric(key, npz[key])
                if matrix.shape != shape:
                    raise MemoxrInputError(f"key {key!r}: expected shape {shape}, received {matrix.shape}")
                target[...] = matrix
            infinite = np.isinf(target)
            if infinite.any():
                i, j = (int(v[0]) for v in np.nonzero(infinite))
                raise MemoxrInputError(
                    f"key {key!r}: expected finite influence values (or NaN for missing), "
                    f"received {target[i, j]} at row {i}, column {j}"
                )
    return block


def inspect_fz_npz(
    path: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    checksum: bool = True,
    storage_options: StorageOptions = None,
) -> FZLayout:
    """Validate an FZ influence npz and load its small arrays.

    Checks, before anything is written: required keys, dtypes (object arrays are
    refused unless ``allow_pickle``), shapes of each class matrix against its
    index arrays, indices finite, whole, in range and claimed by one class only,
    and labels that agree with class membership.

    Examples
    --------
    >>> import memoxr
    >>> layout = inspect_fz_npz(memoxr.sample_path())
    >>> len(layout.classes), len(layout.tr_mem), len(layout.sha256)
    (10, 1347, 64)
    """
    source = str(path)
    headers = read_npz_headers(source, storage_options=storage_options)
    missing = [k for k in GLOBAL_KEYS if k not in headers]
    if missing:
        raise MemoxrInputError(
            f"input {source!r}: missing key(s) {missing}; expected {list(GLOBAL_KEYS)} and "
            "per-class 'infl_matrix_class{k}', 'tr_classidx_{k}', 'tt_classidx_{k}'"
        )
    classes = sorted({int(m.group(2)) for key in headers if (m := _CLASS_KEY.match(key))})
    if not classes:
        raise MemoxrInputError(
            f"input {source!r}: no per-class keys; expected 'infl_matrix_class{{k}}', "
            f"'tr_classidx_{{k}}', 'tt_classidx_{{k}}', received keys {sorted(headers)[:10]}"
        )
    for k in classes:
        for pattern in _PER_CLASS:
            if pattern.format(k=k) not in headers:
                present = [p.format(k=k) for p in _PER_CLASS if p.format(k=k) in headers]
                raise MemoxrInputError(
                    f"input {source!r}: missing key {pattern.format(k=k)!r} for class {k} "
                    f"(found {present})"
                )
    known = set(GLOBAL_KEYS) | {p.format(k=k) for k in classes for p in _PER_CLASS}
    if ORDER_KEY in headers:
        known.add(ORDER_KEY)
        if headers[ORDER_KEY].dtype.kind != "U" or headers[ORDER_KEY].shape != ():
            raise MemoxrInputError(
                f"key {ORDER_KEY!r}: expected a string scalar naming the sample order, received dtype "
                f"{headers[ORDER_KEY].dtype} and shape {headers[ORDER_KEY].shape}"
            )
    for header in headers.values():
        if header.key in known and header.key != ORDER_KEY:
            _check_dtype(header, allow_pickle=allow_pickle)

    def expect_1d(key: str) -> int:
        shape = headers[key].shape
        if len(shape) != 1:
            raise MemoxrInputError(f"key {key!r}: expected a 1-D array, received shape {shape}")
        return shape[0]

    n_train, n_test = expect_1d("tr_mem"), expect_1d("tt_labels")
    if expect_1d("tr_labels") != n_train:
        raise MemoxrInputError(
            f"key 'tr_labels': expected shape ({n_train},) like 'tr_mem', received {headers['tr_labels'].shape}"
        )
    for k in classes:
        shape = (expect_1d(f"tr_classidx_{k}"), expect_1d(f"tt_classidx_{k}"))
        key = f"infl_matrix_class{k}"
        if headers[key].shape != shape:
            raise MemoxrInputError(
                f"key {key!r}: expected shape {shape} (len(tr_classidx_{k}), len(tt_classidx_{k})), "
                f"received {headers[key].shape}"
            )

    with open_npz(source, allow_pickle=allow_pickle, storage_options=storage_options) as npz:
        tr_mem = _as_numeric("tr_mem", npz["tr_mem"]).astype(np.float64)
        tr_labels = _as_indices("tr_labels", npz["tr_labels"], size=np.iinfo(np.int64).max, what="class labels")
        tt_labels = _as_indices("tt_labels", npz["tt_labels"], size=np.iinfo(np.int64).max, what="class labels")
        train_index = [_as_indices(f"tr_classidx_{k}", npz[f"tr_classidx_{k}"], size=n_train, what="train indices") for k in classes]
        test_index = [_as_indices(f"tt_classidx_{k}", npz[f"tt_classidx_{k}"], size=n_test, what="test indices") for k in classes]
        sample_order = str(npz[ORDER_KEY][()]) if ORDER_KEY in headers else None

    for split, indices, labels, size in (
        ("tr", train_index, tr_labels, n_train),
        ("tt", test_index, tt_labels, n_test),
    ):
        _check_membership(split, classes, indices, labels, size)

    return FZLayout(
        path=source,
        allow_pickle=allow_pickle,
        classes=classes,
        train_index=train_index,
        test_index=test_index,
        tr_mem=tr_mem,
        tr_labels=tr_labels,
        tt_labels=tt_labels,
        ignored_keys=sorted(set(headers) - known),
        sha256=file_sha256(source, storage_options=storage_options) if checksum else "",
        storage_options=dict(storage_options) if storage_options else None,
        sample_order=sample_order,
    )


def _check_membership(
    split: str, classes: Sequence[int], indices: Sequence[np.ndarray], labels: np.ndarray, size: int
) -> None:
    """Each index claimed by one class only, and labelled with that class."""
    owner = np.full(size, -1, dtype=np.int64)
    for c, (k, idx) in enumerate(zip(classes, indices, strict=True)):
        key = f"{split}_classidx_{k}"
        values, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            dup = int(values[counts > 1][0])
            raise MemoxrInputError(f"key {key!r}: expected distinct indices, received {dup} more than once")
        taken = owner[idx] >= 0
        if taken.any():
            i = int(idx[taken][0])
            raise MemoxrInputError(
                f"key {key!r}: index {i} is also claimed by class {classes[owner[i]]}; "
                "expected each sample in exactly one class"
            )
        owner[idx] = c
        wrong = labels[idx] != k
        if wrong.any():
            i = int(idx[wrong][0])
            label_key = "tr_labels" if split == "tr" else "tt_labels"
            raise MemoxrInputError(
                f"key {label_key!r}: sample {i} is in {key!r}, so its label should be {k}, "
                f"received {int(labels[i])}"
            )
