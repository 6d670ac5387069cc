"""Read and validate the Feldman–Zhang influence npz layout, class by class.

Only array headers and the small index arrays are read to validate the file;
the influence matrices are loaded one class block at a time, inside dask tasks.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from memoxr._chunks import DEFAULT_CHUNK_MB, BlockChunks, plan_block_chunks
from memoxr.errors import MemoxrInputError
from memoxr.schema import influence_dataset, pad_indices
from memoxr.storage import StorageOptions, file_exists, open_file

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
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype


def read_npz_headers(path: str | os.PathLike[str], *, storage_options: StorageOptions = None) -> dict[str, ArrayHeader]:
    """Shape and dtype of every array in an npz archive (local or URL), without loading data."""
    source = str(path)
    if not file_exists(source, storage_options=storage_options):
        raise MemoxrInputError(f"input {source!r} does not exist or is not a file")
    headers: dict[str, ArrayHeader] = {}
    with open_file(source, storage_options=storage_options) as raw:
        if not zipfile.is_zipfile(raw):
            raise MemoxrInputError(f"input {source!r} is not an npz archive (expected a zip of .npy arrays)")
        raw.seek(0)
        with zipfile.ZipFile(raw) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                key = name[: -len(".npy")]
                with archive.open(name) as fp:
                    try:
                        version = np.lib.format.read_magic(fp)
                        read = _HEADER_READERS.get(version)
                        if read is None:
                            raise ValueError(f"unsupported .npy format version {version}")
                        shape, _, dtype = read(fp)
                    except ValueError as exc:
                        raise MemoxrInputError(f"input {source!r}: key {key!r} is not a valid .npy array: {exc}") from exc
                headers[key] = ArrayHeader(key, tuple(shape), np.dtype(dtype))
    return headers


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
    """
    source = str(path)
    headers = read_npz_headers(source, storage_options=storage_options)
    for key in keys:
        if key in headers and headers[key].dtype.kind == "O":
            raise MemoxrInputError(
                f"{what} {source!r}: key {key!r}: expected {expected}, received dtype object "
                "(pickled Python objects), which memoxr does not load"
            )
    with open_file(source, storage_options=storage_options) as fp, np.load(fp, allow_pickle=False) as npz:
        arrays: dict[str, np.ndarray | None] = {key: npz[key] for key in keys if key in headers}
    arrays.update({key: None for key in headers if key not in keys})
    return arrays, headers


def file_sha256(path: str | os.PathLike[str], block: int = 8 * 2**20, *, storage_options: StorageOptions = None) -> str:
    digest = hashlib.sha256()
    with open_file(path, storage_options=storage_options) as fp:
        while chunk := fp.read(block):
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
    """A validated FZ influence npz: its small arrays in memory, matrices on disk."""

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

    Stored (uncompressed) numeric members, what ``np.savez`` writes, are read
    straight into the block; deflated or pickled members go through ``np.load``.
    """
    block = np.empty((len(classes), n_tr, n_tt), dtype=np.float32)
    with open_file(path, storage_options=storage_options) as fp, zipfile.ZipFile(fp) as archive:
        npz = None
        for c, (k, shape) in enumerate(zip(classes, shapes, strict=True)):
            key = f"infl_matrix_class{k}"
            target = block[c, : shape[0], : shape[1]]
            block[c, shape[0] :, :] = np.nan
            block[c, : shape[0], shape[1] :] = np.nan
            if not _read_stored_member(fp, archive, key, shape, target):
                if npz is None:
                    npz = np.load(fp, allow_pickle=allow_pickle)
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


def _read_stored_member(fp, archive: zipfile.ZipFile, key: str, shape: tuple[int, int], out: np.ndarray) -> bool:
    """Read the stored ``.npy`` member ``key`` into ``out``; False if it is not a plain stored array.

    Skips zipfile's buffered reads and CRC pass and numpy's intermediate copy:
    a converted store records the source's sha256, which covers the bytes.
    """
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        return False
    if info.compress_type != zipfile.ZIP_STORED:
        return False
    fp.seek(info.header_offset)
    local = fp.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        return False
    name_length, extra_length = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    data_start = info.header_offset + 30 + name_length + extra_length
    fp.seek(data_start)
    try:
        version = np.lib.format.read_magic(fp)
        read_header = _HEADER_READERS.get(version)
        if read_header is None:
            return False
        stored_shape, fortran, dtype = read_header(fp)
    except ValueError:
        return False
    dtype = np.dtype(dtype)
    if dtype.kind != "f" or dtype.hasobject:
        return False
    if tuple(stored_shape) != shape:
        raise MemoxrInputError(f"key {key!r}: expected shape {shape}, received {tuple(stored_shape)}")
    expected = int(np.prod(shape)) * dtype.itemsize
    available = info.file_size - (fp.tell() - data_start)  # the member's bytes after its .npy header
    if available < expected:
        raise MemoxrInputError(
            f"key {key!r}: member is truncated: expected {expected} bytes of data, received {max(available, 0)}"
        )
    direct = dtype == np.float32 and dtype.isnative and not fortran and out.flags.c_contiguous
    buffer = out if direct else np.empty(shape[::-1] if fortran else shape, dtype=dtype)
    received = fp.readinto(memoryview(buffer).cast("B")) if expected else 0
    if received != expected:
        raise MemoxrInputError(
            f"key {key!r}: member is truncated: expected {expected} bytes of data, received {received}"
        )
    if not direct:
        out[...] = buffer.T if fortran else buffer
    return True


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

    with open_file(source, storage_options=storage_options) as fp, np.load(fp, allow_pickle=allow_pickle) as npz:
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
