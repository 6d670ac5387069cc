"""npz archives without unpickling: every member's header checked before any is read, members
streamed from local files or fsspec URLs, and the source's sha256 (one array: :mod:`.npy`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np

# CRC-32 as zlib computes it, 8x faster than the zlib 1.2.13 Python links here.
from zlib_ng import zlib_ng

from ..errors import MemoxrInputError
from .checksum import BLOCK, local_sha256
from .location import Location, PathLike, StorageOptions, file_exists, open_bytes, open_file
from .npy import ArrayHeader, read_npy_body, read_npy_header, refuse_pickled

#: A zip local header's fixed part, and room read for its name and extra field in the same read.
_LOCAL_HEADER, _NAME_ROOM = 30, 256
_ENCRYPTED, _UTF8_NAME = 0x1 | 0x40, 0x800  # encrypted or strongly encrypted; UTF-8 names
#: What zipfile raises on a member it cannot read: damaged, truncated, encrypted ("password
#: required", a RuntimeError) or compressed with a method it lacks (NotImplementedError).
_UNREADABLE = (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError)
#: Members read whole in one read (index arrays and labels); bigger ones are streamed.
_SMALL_MEMBER = 1 << 20
#: Bytes read to parse a member's header (numpy writes 128 bytes; longer ones are read through zipfile).
_HEADER_PREFIX = 1024
#: Members up to this size are read whole when their header is, and kept (up to the budget) for
#: ``npz[key]``: one read and one header parse per index array, not two.
_READ_AHEAD_MEMBER, _READ_AHEAD_BUDGET = 64 * 2**10, 64 * 2**20


def _named_data_offset(head: bytes, info: zipfile.ZipInfo) -> int | None:
    """Where a member's data starts from the start of ``head`` (its local header onward); None if
    ``head`` is no local header or names another member than the directory (zipfile decides then)."""
    start = _data_offset(head)
    if start is None:
        return None
    name_length = int.from_bytes(head[26:28], "little")
    encoding = "utf-8" if info.flag_bits & _UTF8_NAME else "cp437"
    if head[_LOCAL_HEADER : _LOCAL_HEADER + name_length] != info.orig_filename.encode(encoding, "replace"):
        return None
    return start


def _holds_whole_header(prefix: bytes, member_size: int) -> bool:
    """Whether ``prefix`` holds a whole npy header (magic, version, length and text), or is the whole member."""
    if len(prefix) >= member_size:
        return True
    if len(prefix) < 10 or prefix[:6] != b"\x93NUMPY":
        return False
    if prefix[6] == 1:
        return 10 + int.from_bytes(prefix[8:10], "little") <= len(prefix)
    return len(prefix) >= 12 and 12 + int.from_bytes(prefix[8:12], "little") <= len(prefix)


def _data_offset(local: bytes) -> int | None:
    """Where a member's data starts, from the start of its local header ``local``; None if it is none."""
    if len(local) < _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
        return None
    return _LOCAL_HEADER + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")


def _npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {info.filename[: -len(".npy")]: info for info in archive.infolist() if info.filename.endswith(".npy")}


def read_npz_headers(path: PathLike | Location, *, storage_options: StorageOptions = None) -> dict[str, ArrayHeader]:
    """Shape and dtype of every array in an npz archive (local or URL), without loading data.

    Each header is checked against its member's stored size (see :func:`read_npy_header`).

    Examples
    --------
    >>> import memoxr
    >>> header = read_npz_headers(memoxr.sample_path())["infl_matrix_class0"]
    >>> header.shape, str(header.dtype)
    ((133, 45), 'float32')
    """
    location = Location.of(path, storage_options)
    check_input_file(location)
    with open_bytes(location) as raw:
        return read_npz_headers_from(raw, source=location.path)


def check_input_file(location: Location, what: str = "input") -> None:
    """A clear error naming ``location`` (and ``what`` it is for) when it is not an existing file, before it is opened."""
    if not file_exists(location):
        raise MemoxrInputError(f"{what} {location.path!r} does not exist or is not a file")


def read_npz_headers_from(raw: Any, *, source: str) -> dict[str, ArrayHeader]:
    """:func:`read_npz_headers` on an open binary file."""
    with CheckedNpz(raw, source=source) as npz:
        return npz.headers


class CheckedNpz:
    """An npz opened for reading; each array's header is checked right before it is read.

    ``npz[key]`` checks the member's header against its stored size, then reads
    the values from that very member, and turns a damaged member into an error
    naming the file and the key. Only the members asked for are touched.
    """

    def __init__(self, raw: Any, *, source: str, allow_pickle: bool = False,
                 members: Mapping[str, zipfile.ZipInfo] | None = None) -> None:
        self.source, self.allow_pickle, self._raw = source, allow_pickle, raw
        self._zipfile: zipfile.ZipFile | None = None
        self._reused = members is not None
        if members is None:
            if not zipfile.is_zipfile(raw):
                raise MemoxrInputError(f"input {source!r} is not an npz archive (expected a zip of .npy arrays)")
            raw.seek(0)
            members = _npz_members(self._zip)
        self._members = dict(members)
        self._headers: dict[str, ArrayHeader] = {}
        self._read_ahead: dict[str, tuple[bytes, int]] = {}  # key: the member's bytes, where its data starts
        self._read_ahead_bytes = 0

    @property
    def members(self) -> dict[str, zipfile.ZipInfo]:
        """The archive's directory entries by key: ``members=`` of another open of this very file
        (``open_fz_npz``'s blocks of classes) spares parsing it again (about 10 ms at 3,003 members).
        Each member read still checks its local header and its CRC-32 against these entries."""
        return dict(self._members)

    @property
    def _zip(self) -> zipfile.ZipFile:
        """zipfile's reader of the archive, made on first use (with ``members`` given, only for
        compressed or unusual members)."""
        if self._zipfile is None:
            try:
                self._zipfile = zipfile.ZipFile(self._raw)
            except (zipfile.BadZipFile, EOFError) as exc:
                raise MemoxrInputError(f"input {self.source!r} is not a readable npz archive: {exc}") from exc
        return self._zipfile

    @property
    def headers(self) -> dict[str, ArrayHeader]:
        """Every array's checked header."""
        return {key: self.header(key) for key in self._members}

    def header(self, key: str) -> ArrayHeader:
        if key not in self._headers:
            info = self._member(key)
            whole = (info.file_size <= _READ_AHEAD_MEMBER
                     and self._read_ahead_bytes + info.file_size <= _READ_AHEAD_BUDGET)
            prefix = self._stored_data(key, info, info.file_size if whole else min(info.file_size, _HEADER_PREFIX))
            if prefix is not None and _holds_whole_header(prefix, info.file_size):
                member = io.BytesIO(prefix)
                self._headers[key] = read_npy_header(member, source=self.source, key=key, stored=info.file_size)
                if whole and len(prefix) == info.file_size:
                    self._read_ahead[key] = (prefix, member.tell())
                    self._read_ahead_bytes += len(prefix)
                return self._headers[key]
            try:
                with self._zip.open(info) as fp:
                    self._headers[key] = read_npy_header(fp, source=self.source, key=key, stored=info.file_size)
            except _UNREADABLE as exc:
                raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc
        return self._headers[key]

    def _stored_data(self, key: str, info: zipfile.ZipInfo, size: int) -> bytes | None:
        """The first ``size`` bytes of a stored member's data, with one seek and (usually) one read.

        zipfile's member reader seeks and reads several times per call (at ImageNet size,
        3,003 headers took 104 ms through it and 57 ms this way). None when zipfile
        should decide: a compressed or encrypted member, or a local header whose name
        differs from the directory's. Shorter than ``size`` only where the file ends early.
        """
        found = self._stored_read(key, info, size)
        return None if found is None else found[1]

    def _stored_read(self, key: str, info: zipfile.ZipInfo, size: int) -> tuple[int, bytes] | None:
        """:meth:`_stored_data`, with where the member's data starts in the file."""
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & _ENCRYPTED:
            return None
        try:
            self._raw.seek(info.header_offset)
            head = self._raw.read(_LOCAL_HEADER + _NAME_ROOM + size)
            start = _named_data_offset(head, info)
            if start is None:
                return None
            while len(head) < start + size:  # a raw (unbuffered) file may return less than asked
                more = self._raw.read(start + size - len(head))
                if not more:
                    break
                head += more
        except OSError as exc:  # e.g. a connection reset while reading from object storage
            raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc
        return info.header_offset + start, head[start : start + size]

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
        kept = self._read_ahead.pop(key, None)
        if kept is not None:  # read whole with its header, which was parsed from these very bytes
            whole, start = kept
            self._read_ahead_bytes -= len(whole)
            self._check_crc(key, info, zlib_ng.crc32(whole))
            header = self._headers[key]
            if not header.dtype.hasobject:
                member = io.BytesIO(whole)
                member.seek(start)
                return read_npy_body(member, header, source=self.source)
        data = self._stored_data(key, info, info.file_size) if info.file_size <= _SMALL_MEMBER else None
        if data is not None:  # one read; checked as zipfile would (length, CRC-32), then the header
            if len(data) != info.file_size:
                raise MemoxrInputError(
                    f"input {self.source!r}: key {key!r}: expected {info.file_size} bytes, received "
                    f"{len(data)} (truncated file)"
                )
            self._check_crc(key, info, zlib_ng.crc32(data))
            member = io.BytesIO(data)
            header = read_npy_header(member, source=self.source, key=key, stored=info.file_size)
            self._headers[key] = header
            if not header.dtype.hasobject:
                return read_npy_body(member, header, source=self.source)
        elif (values := self._read_stored(key, info)) is not None:
            return values
        try:
            with self._zip.open(info) as fp:
                header = read_npy_header(fp, source=self.source, key=key, stored=info.file_size)
                self._headers[key] = header
                if not header.dtype.hasobject:
                    return read_npy_body(fp, header, source=self.source)
                if not self.allow_pickle:
                    refuse_pickled(header.dtype, f"input {self.source!r}: key {key!r}")
            with self._zip.open(info) as fp:  # unpickled only when asked for (--allow-pickle)
                return np.lib.format.read_array(fp, allow_pickle=True)
        except MemoxrInputError:
            raise
        except (ValueError, *_UNREADABLE) as exc:
            raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc

    def _read_stored(self, key: str, info: zipfile.ZipInfo) -> np.ndarray | None:
        """A large stored member's values read straight from the file, its header and CRC-32 checked
        as zipfile would; None where zipfile should read it (compressed, encrypted, misnamed, a header
        longer than the prefix read, pickled values).

        Without it, reading one large member (``tr_mem``, the labels) would build zipfile's reader of
        the whole archive: its directory parsed again (about 10 ms at 3,003 members).
        """
        try:
            found = self._stored_header(key, info)
            if found is None or found[0].dtype.hasobject:
                return None
            header, head = found
            self._headers[key] = header
            values = read_npy_body(self._raw, header, source=self.source)
            self._check_stored_crc(key, info, head, values)
        except OSError as exc:  # e.g. a connection reset while reading from object storage
            raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc
        return values

    def read_stored_into(self, key: str, shape: tuple[int, ...], out: np.ndarray) -> bool:
        """Read the stored float member ``key`` straight into ``out``; False if it is anything else.

        Skips zipfile's buffered reads and the intermediate copy of a large
        matrix. The header is checked like every other (:func:`read_npy_header`,
        against the member's recorded size), and the member's CRC-32 is checked
        over the bytes read, as zipfile would.
        """
        info = self._member(key)
        try:
            found = self._stored_header(key, info)
            if found is None or found[0].dtype.kind != "f":
                return False  # zipfile decides; pickled or integer members: the general reader
            header, head = found
            if header.shape != shape:
                raise MemoxrInputError(
                    f"input {self.source!r}: key {key!r}: expected shape {shape}, received {header.shape}")
            expected, dtype, fortran = header.nbytes, header.dtype, header.fortran_order
            direct = dtype == np.float32 and dtype.isnative and not fortran and out.flags.c_contiguous
            buffer = out if direct else np.empty(shape[::-1] if fortran else shape, dtype=dtype)
            received = self._raw.readinto(memoryview(cast(Any, buffer)).cast("B")) if expected else 0
            if received != expected:  # the file is shorter than its zip directory says
                raise MemoxrInputError(
                    f"input {self.source!r}: key {key!r}: expected {expected} bytes of data, received {received} "
                    "(truncated file)"
                )
            self._check_stored_crc(key, info, head, buffer)
        except OSError as exc:
            raise MemoxrInputError(f"input {self.source!r}: key {key!r} could not be read: {exc}") from exc
        if not direct:
            out[...] = buffer.T if fortran else buffer
        return True

    def _stored_header(self, key: str, info: zipfile.ZipInfo) -> tuple[ArrayHeader, bytes] | None:
        """A stored member's checked npy header and its bytes, the file positioned at its data; None
        for zipfile to read it (compressed, encrypted, misnamed, or a header that does not end within
        the prefix read: a header's length is never trusted to read more)."""
        found = self._stored_read(key, info, min(info.file_size, _HEADER_PREFIX))
        if found is None or not _holds_whole_header(found[1], info.file_size):
            return None
        start, prefix = found
        member = io.BytesIO(prefix)
        header = read_npy_header(member, source=self.source, key=key, stored=info.file_size)
        head = prefix[: member.tell()]
        self._raw.seek(start + len(head))
        return header, head

    def _check_stored_crc(self, key: str, info: zipfile.ZipInfo, head: bytes, values: np.ndarray) -> None:
        """The CRC-32 of a stored member read as npy header ``head``, then ``values`` (contiguous, as
        stored; the file positioned after them), then any bytes after them, is its directory's."""
        crc = zlib_ng.crc32(head)
        crc = zlib_ng.crc32(values.ravel(order="K").view(np.uint8), crc)  # bytes: also datetime64
        trailing = info.file_size - len(head) - values.nbytes
        while trailing > 0:
            part = self._raw.read(min(trailing, BLOCK))
            if not part:
                break
            crc = zlib_ng.crc32(part, crc)
            trailing -= len(part)
        self._check_crc(key, info, crc)

    def _check_crc(self, key: str, info: zipfile.ZipInfo, crc: int) -> None:
        """The CRC-32 computed over a member's bytes is the one its directory entry records, or an error."""
        if crc != info.CRC:
            changed = "; or the file changed since it was opened: open it again" if self._reused else ""
            raise MemoxrInputError(
                f"input {self.source!r}: key {key!r}: member is damaged (CRC-32 mismatch); expected {info.CRC:#010x}, "
                f"received {crc:#010x}{changed}"
            )

    def __enter__(self) -> CheckedNpz:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._zipfile is not None:
            self._zipfile.close()


@contextlib.contextmanager
def open_npz(
    path: PathLike | Location, *, allow_pickle: bool = False, storage_options: StorageOptions = None,
    members: Mapping[str, zipfile.ZipInfo] | None = None,
) -> Iterator[CheckedNpz]:
    """Open an npz (local or URL) whose members are header-checked before any is read; ``members``:
    its directory as an earlier open of the same file read it (:attr:`CheckedNpz.members`)."""
    location = Location.of(path, storage_options)
    source = location.path
    with open_bytes(location) as raw, CheckedNpz(raw, source=source, allow_pickle=allow_pickle, members=members) as npz:
        yield npz


def load_npz_arrays(
    path: PathLike | Location,
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
    >>> np.savez("small.npz", a=np.arange(3), b=np.ones(2), names=np.array(["x"], dtype=object))
    >>> arrays, headers = load_npz_arrays("small.npz", ["a"], what="input", expected="numbers")
    >>> arrays["a"].tolist(), arrays["b"], headers["b"].shape
    ([0, 1, 2], None, (2,))
    >>> load_npz_arrays("small.npz", ["names"], what="input", expected="numbers")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: input 'small.npz': key 'names': expected numbers, received dtype object (pickled Python objects), which memoxr does not load
    """
    location = Location.of(path, storage_options)
    source = location.path
    check_input_file(location, what)
    with open_npz(location) as npz:
        headers = npz.headers
        for key in keys:
            if key in headers:
                refuse_pickled(headers[key].dtype, f"{what} {source!r}: key {key!r}", expected)
        arrays: dict[str, np.ndarray | None] = {key: npz[key] for key in keys if key in headers}
    arrays.update({key: None for key in headers if key not in keys})
    return arrays, headers


def file_sha256(
    path: PathLike | Location,
    block: int = BLOCK,
    *,
    storage_options: StorageOptions = None,
    stop: threading.Event | None = None,
) -> str:
    """Hex sha256 of a file (local or URL), read ``block`` bytes at a time; ``""`` if ``stop`` is
    set before the end (the caller gave up).

    >>> _ = open("hello.txt", "w").write("hello")
    >>> file_sha256("hello.txt")[:16]
    '2cf24dba5fb0a30e'
    """
    location = Location.of(path, storage_options)
    if "://" not in location.path:  # a plain local path (file:// URLs go through fsspec, as they open)
        return local_sha256(location.path, block=block, stop=stop)
    digest = hashlib.sha256()
    with open_file(location) as fp:
        while chunk := fp.read(block):
            if stop is not None and stop.is_set():
                return ""
            digest.update(chunk)
    return digest.hexdigest()


