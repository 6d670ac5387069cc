"""The Feldman–Zhang influence npz layout: validated class by class, viewed lazily in place.

Only array headers and the small index arrays are read to validate the file;
the influence matrices are loaded one class block at a time, inside dask tasks.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from ..compute.scheduler import rechunk
from ..errors import MemoxrInputError
from ..io.chunks import (
    DEFAULT_CHUNK_MB,
    BlockChunks,
    BlockChunksLike,
    as_block_chunks,
    plan_block_chunks,
)
from ..io.location import Location, PathLike, StorageOptions
from ..io.npy import ArrayHeader, as_indices, as_numeric, check_dtype
from ..io.npz import check_input_file, file_sha256, open_npz
from ..io.schema import influence_dataset, pad_indices

GLOBAL_KEYS = ("tr_mem", "tr_labels", "tt_labels")
#: Optional key: a string scalar naming the order the arrays' samples follow.
ORDER_KEY = "sample_order"
_CLASS_KEY = re.compile(r"^(infl_matrix_class|tr_classidx_|tt_classidx_)(\d+)$")
_PER_CLASS = ("infl_matrix_class{k}", "tr_classidx_{k}", "tt_classidx_{k}")
#: Default sample order of the released FZ arrays (TensorFlow-Datasets' order).
DEFAULT_SAMPLE_ORDER = "tfds"



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
    location: Location | None = field(default=None, repr=False)  # the file with its options
    #: The archive's directory as inspected: the blocks of classes read without parsing it again.
    members: dict[str, zipfile.ZipInfo] | None = field(default=None, repr=False, compare=False)

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
        chunks: BlockChunksLike | None = None,
        sample_order: str | None = None,
    ) -> xr.Dataset:
        """The influence store's Dataset, with ``influence`` loaded lazily per class block.

        ``sample_order`` defaults to the file's ``sample_order`` key, else ``"tfds"``
        (the order of the released FZ arrays).
        """
        sample_order = sample_order or self.sample_order or DEFAULT_SAMPLE_ORDER
        plan = as_block_chunks(chunks) if chunks is not None else self.plan(chunk_mb=chunk_mb)
        n_class, n_tr, n_tt = len(self.classes), self.max_train, self.max_test
        blocks = []
        for start in range(0, n_class, plan.cls):
            group = self.classes[start : start + plan.cls]
            shapes = [(len(self.train_index[i]), len(self.test_index[i])) for i in range(start, start + len(group))]
            members = None if self.members is None else {
                f"infl_matrix_class{k}": self.members[f"infl_matrix_class{k}"] for k in group}
            # The members' CRC-32s tell the contents apart when no sha256 was taken (a file rewritten in place).
            crcs = None if members is None else np.array([info.CRC for info in members.values()], dtype=np.uint32)
            token = tokenize(self.path, self.sha256, group, n_tr, n_tt, crcs)
            load = dask.delayed(_load_class_block, pure=True)(
                # As arrays: dask walks lists and tuples element by element for collections (14 ms at 1,000 classes).
                self.location or self.path, np.asarray(group), np.asarray(shapes), n_tr, n_tt, self.allow_pickle,
                members, dask_key_name=f"load-fz-block-{token}",
            )
            blocks.append(da.from_delayed(load, shape=(len(group), n_tr, n_tt), dtype=np.float32))
        influence = rechunk(da.concatenate(blocks, axis=0), (plan.cls, plan.train, plan.test))

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
    path: PathLike | Location,
    classes: Sequence[int] | np.ndarray,
    shapes: Sequence[tuple[int, int]] | np.ndarray,
    n_tr: int,
    n_tt: int,
    allow_pickle: bool,
    members: Mapping[str, zipfile.ZipInfo] | None = None,
) -> np.ndarray:
    """Load the influence matrices of ``classes`` into one NaN-padded float32 block (``shapes``: each
    class's train and test counts; ``members``: their directory entries, as inspected).

    Stored (uncompressed) float members, what ``np.savez`` writes, are read
    straight into the block; other members go through the checked reader.
    """
    block = np.empty((len(classes), n_tr, n_tt), dtype=np.float32)
    with open_npz(path, allow_pickle=allow_pickle, members=members) as npz:
        for c, (k, (n_train, n_test)) in enumerate(zip(classes, shapes, strict=True)):
            shape = (int(n_train), int(n_test))
            key = f"infl_matrix_class{int(k)}"
            target = block[c, : shape[0], : shape[1]]
            block[c, shape[0] :, :] = np.nan
            block[c, : shape[0], shape[1] :] = np.nan
            with np.errstate(over="ignore"):  # a float64 value beyond float32's range: refused below, by name
                if not npz.read_stored_into(key, shape, target):
                    matrix = as_numeric(key, npz[key])
                    if matrix.shape != shape:
                        raise MemoxrInputError(f"key {key!r}: expected shape {shape}, received {matrix.shape}")
                    target[...] = matrix
            infinite = np.isinf(target)
            if infinite.any():
                i, j = (int(v[0]) for v in np.nonzero(infinite))
                _refuse_infinite(key, float(np.asarray(npz[key])[i, j]), i, j)
    return block


def _refuse_infinite(key: str, value: float, i: int, j: int) -> None:
    """An infinite influence value, or a finite one beyond float32's range (``value``: as stored)."""
    if np.isfinite(value):
        raise MemoxrInputError(
            f"key {key!r}: expected influence values within float32's range (magnitude at most "
            f"{float(np.finfo(np.float32).max):.4g}: memoxr keeps influence as float32), received {value:.6g} "
            f"at row {i}, column {j}"
        )
    raise MemoxrInputError(
        f"key {key!r}: expected finite influence values (or NaN for missing), received {value} at row {i}, column {j}"
    )


def inspect_fz_npz(
    path: PathLike | Location,
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
    location = Location.of(path, storage_options)
    source = location.path
    check_input_file(location)
    with open_npz(location, allow_pickle=allow_pickle) as npz:  # one open: headers, then the small arrays
        headers, members = npz.headers, npz.members
        classes, known, n_train, n_test = _check_headers(headers, source, allow_pickle=allow_pickle)
        tr_mem = as_numeric("tr_mem", npz["tr_mem"]).astype(np.float64)
        infinite = np.flatnonzero(np.isinf(tr_mem))
        if infinite.size:  # as for influence: NaN marks a missing estimate, an infinity is an error
            raise MemoxrInputError(
                f"key 'tr_mem': expected finite memorization values (or NaN for missing), "
                f"received {tr_mem[infinite[0]]} at position {int(infinite[0])}"
            )
        tr_labels = as_indices("tr_labels", npz["tr_labels"], size=np.iinfo(np.int64).max, what="class labels")
        tt_labels = as_indices("tt_labels", npz["tt_labels"], size=np.iinfo(np.int64).max, what="class labels")
        train_index = [as_indices(f"tr_classidx_{k}", npz[f"tr_classidx_{k}"], size=n_train, what="train indices") for k in classes]
        test_index = [as_indices(f"tt_classidx_{k}", npz[f"tt_classidx_{k}"], size=n_test, what="test indices") for k in classes]
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
        sha256=file_sha256(location) if checksum else "",
        location=location,
        sample_order=sample_order,
        members=members,
    )


def _check_headers(
    headers: dict[str, ArrayHeader], source: str, *, allow_pickle: bool
) -> tuple[list[int], set[str], int, int]:
    """Keys, dtypes and shapes of an FZ npz from its headers: its classes, known keys, train and test sizes."""
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
            check_dtype(header, allow_pickle=allow_pickle)

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
    return classes, known, n_train, n_test


def _check_membership(
    split: str, classes: Sequence[int], indices: Sequence[np.ndarray], labels: np.ndarray, size: int
) -> None:
    """Each index claimed by one class only, and labelled with that class."""
    lengths = [len(idx) for idx in indices]
    claimed = np.concatenate(indices) if indices else np.empty(0, dtype=np.int64)
    if (np.bincount(claimed, minlength=size) <= 1).all() and (labels[claimed] == np.repeat(classes, lengths)).all():
        return  # the usual case, checked at once (1,000 classes: 10x faster); the loop names the first problem
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

def open_fz_npz(
    path: PathLike | Location,
    *,
    allow_pickle: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunksLike | None = None,
    sample_order: str | None = None,
    storage_options: StorageOptions = None,
    checksum: bool = False,
) -> xr.Dataset:
    """Validate an FZ npz (local or URL) and view it lazily with the influence store's schema.

    Only headers and index arrays are read; ``checksum=True`` also hashes the
    whole file into ``source_sha256`` (what :func:`convert_npz` records).

    Examples
    --------
    >>> import memoxr
    >>> ds = open_fz_npz(memoxr.sample_path())
    >>> dict(ds["influence"].sizes), ds.attrs["schema"]
    ({'class': 10, 'train_sample': 137, 'test_sample': 46}, 'memoxr.influence')
    """
    layout = inspect_fz_npz(Location.of(path, storage_options), allow_pickle=allow_pickle, checksum=checksum)
    return layout.to_dataset(chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order)

