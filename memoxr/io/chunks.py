"""Chunk planning: pure arithmetic on shapes and byte budgets, no I/O."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import cast

from ..errors import MemoxrInputError

DEFAULT_CHUNK_MB = 64.0


def validate_mb(name: str, value: object) -> float:
    """A size in megabytes: a finite positive real number (not a bool).

    Examples
    --------
    >>> validate_mb("chunk_mb", 16)
    16.0
    >>> validate_mb("chunk_mb", -1)
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: chunk_mb must be a positive number of megabytes; received -1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and cast(float, value) > 0):
        raise MemoxrInputError(f"{name} must be a positive number of megabytes; received {value!r}")
    return float(value)


#: Smallest size a command-line size option accepts: below it a small input
#: already becomes thousands of chunk files (the library still takes any size).
MIN_OPTION_MB = 1.0


def memory_mb() -> float:
    """This machine's physical memory in MB.

    Examples
    --------
    >>> memory_mb() > 0
    True
    """
    try:
        import psutil

        return psutil.virtual_memory().total / 2**20
    except ImportError:  # psutil comes with distributed; sysconf is the fallback
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def validate_option_mb(option: str, value: object) -> float:
    """A size option of a command (``--chunk-mb``...), in [1 MB, a quarter of the memory].

    A quarter because a chunk (or shard) is held several times over while it is
    computed, compressed and written, once per thread.

    Examples
    --------
    >>> validate_option_mb("--chunk-mb", 64)
    64.0
    >>> validate_option_mb("--chunk-mb", 0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: --chunk-mb: expected between 1 and ... MB (at most a quarter of this
    machine's memory); received 0.5
    """
    value = validate_mb(option, value)
    ceiling = math.floor(memory_mb() / 4)
    if not MIN_OPTION_MB <= value <= ceiling:
        raise MemoxrInputError(
            f"{option}: expected between {MIN_OPTION_MB:g} and {ceiling} MB (at most a quarter of this "
            f"machine's memory); received {value:g}"
        )
    return value


@dataclass(frozen=True)
class BlockChunks:
    """Chunk sizes for a ``(class, train_sample, test_sample)`` block.

    Examples
    --------
    >>> chunks = BlockChunks(cls=2, train=500, test=100)
    >>> chunks.as_dict(), chunks.nbytes()
    ({'class': 2, 'train_sample': 500, 'test_sample': 100}, 400000)
    """

    cls: int
    train: int
    test: int

    def as_dict(self) -> dict[str, int]:
        return {"class": self.cls, "train_sample": self.train, "test_sample": self.test}

    def nbytes(self, itemsize: int = 4) -> int:
        return self.cls * self.train * self.test * itemsize


#: What a ``chunks=`` argument of an influence block takes: :class:`BlockChunks` or its three sizes.
BlockChunksLike = BlockChunks | tuple[int, int, int]


def as_block_chunks(chunks: object, argument: str = "chunks") -> BlockChunks:
    """:class:`BlockChunks` from itself or from ``(class, train_sample, test_sample)`` positive whole numbers.

    Examples
    --------
    >>> as_block_chunks((2, 500, 100))
    BlockChunks(cls=2, train=500, test=100)
    >>> as_block_chunks((2, 0, 100))
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: chunks: expected BlockChunks or three positive whole numbers (class, train_sample, test_sample); received (2, 0, 100)
    """
    if isinstance(chunks, BlockChunks):
        return chunks
    sizes = tuple(chunks) if isinstance(chunks, tuple | list) else ()
    if len(sizes) == 3 and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) > 0 for v in sizes):
        return BlockChunks(*(int(v) for v in sizes))
    raise MemoxrInputError(
        f"{argument}: expected BlockChunks or three positive whole numbers (class, train_sample, test_sample); "
        f"received {chunks!r}"
    )


def plan_block_chunks(
    n_class: int, n_train: int, n_test: int, *, chunk_mb: float = DEFAULT_CHUNK_MB, itemsize: int = 4
) -> BlockChunks:
    """Largest chunk within ``chunk_mb`` that keeps whole classes, then whole rows.

    Whole class blocks are grouped while they fit; a class larger than the budget
    is split along ``train_sample`` (whole rows), and only a single row larger
    than the budget is split along ``test_sample``.

    >>> plan_block_chunks(100, 500, 100, chunk_mb=1)
    BlockChunks(cls=5, train=500, test=100)
    """
    budget = int(validate_mb("chunk_mb", chunk_mb) * 2**20)
    n_train, n_test = max(n_train, 1), max(n_test, 1)
    row = n_test * itemsize
    block = n_train * row
    if block <= budget:
        return BlockChunks(max(1, min(n_class, budget // block)), n_train, n_test)
    if row <= budget:
        return BlockChunks(1, max(1, budget // row), n_test)
    return BlockChunks(1, 1, max(1, budget // itemsize))


def plan_shards(
    shape: tuple[int, int, int], chunks: BlockChunks, *, shard_mb: float, itemsize: int = 4
) -> BlockChunks | None:
    """Group whole chunks into shards of about ``shard_mb``, along the outermost split dim.

    Returns ``None`` when a shard would hold a single chunk (nothing to gain).
    Object stores then hold few, large objects even when chunks are small.

    >>> plan_shards((100, 500, 100), BlockChunks(5, 500, 100), shard_mb=4)
    BlockChunks(cls=20, train=500, test=100)
    """
    per_shard = int(validate_mb("shard_mb", shard_mb) * 2**20) // max(chunks.nbytes(itemsize), 1)
    n_class, n_train, n_test = shape

    def grow(chunk: int, extent: int) -> int:
        # A shard is a whole number of chunks (Zarr requires it), no more than the extent needs.
        return chunk * max(1, min(per_shard, -(-extent // chunk)))

    if chunks.test < n_test:
        sizes = (chunks.cls, chunks.train, grow(chunks.test, n_test))
    elif chunks.train < n_train:
        sizes = (chunks.cls, grow(chunks.train, n_train), chunks.test)
    else:
        sizes = (grow(chunks.cls, n_class), chunks.train, chunks.test)
    shard = BlockChunks(*sizes)
    return None if shard == chunks or per_shard < 2 else shard
