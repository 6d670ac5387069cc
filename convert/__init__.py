"""Converters: source files in, labelled memoxr Zarr stores out (installed as ``memoxr.convert``)."""

from __future__ import annotations

import os
from typing import cast

from memoxr.compute.progress import deprecated_show_progress
from memoxr.errors import MemoxrInputError
from memoxr.influence.fz_npz import DEFAULT_SAMPLE_ORDER, FZLayout, inspect_fz_npz, open_fz_npz
from memoxr.io.checksum import BackgroundChecksum
from memoxr.io.chunks import DEFAULT_CHUNK_MB, BlockChunks, BlockChunksLike, plan_shards
from memoxr.io.encoding import COMPRESSOR, influence_encoding
from memoxr.io.location import Location, PathLike, StorageOptions, is_url
from memoxr.io.npz import file_sha256, read_npz_headers
from memoxr.io.storage import check_writable, write_dataset

__all__ = [
    "COMPRESSOR",
    "DEFAULT_SAMPLE_ORDER",
    "FZLayout",
    "convert_npz",
    "influence_encoding",
    "inspect_fz_npz",
    "open_fz_npz",
    "read_npz_headers",
]

#: Default shard size on object storage, where many small objects are slow and costly.
REMOTE_SHARD_MB = 256.0




def convert_npz(
    source: PathLike | Location,
    output: PathLike | Location,
    *,
    overwrite: bool = False,
    allow_pickle: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunksLike | None = None,
    sample_order: str | None = None,
    shard_mb: float | None = None,
    storage_options: StorageOptions = None,
    show_progress: bool | None = None,
    source_checksum: BackgroundChecksum | None = None,
) -> str:
    """Convert a Feldman–Zhang influence npz into a labelled Zarr store, once.

    The npz is validated completely before anything is written; the store is
    written class block by class block (never the whole file in memory), and it
    appears at ``output`` only once complete. An existing ``output`` is replaced
    only when ``overwrite`` is true.

    Parameters
    ----------
    source : path
        ``.npz`` in the FZ layout: ``tr_mem``, ``tr_labels``, ``tt_labels`` and,
        for each class ``k``, ``infl_matrix_class{k}``, ``tr_classidx_{k}``,
        ``tt_classidx_{k}``.
    output : path
        Zarr store to create (a folder).
    chunk_mb : float
        Target size of one ``influence`` chunk (uncompressed): whole classes are
        grouped while they fit, larger classes are split along ``train_sample``.
    chunks : BlockChunks or tuple of 3 ints, optional
        Explicit ``(class, train_sample, test_sample)`` chunk sizes, overriding ``chunk_mb``.
    sample_order : str, optional
        Name of the order the arrays' samples follow, kept in the store's attrs.
        Default: the npz's ``sample_order`` key if it has one, else ``"tfds"``
        (the order of the released FZ arrays).
    shard_mb : float, optional
        Group chunks into Zarr shards of about this size (few, large objects).
        Default: none locally, 256 MB for an object-store ``output`` (``s3://``).
    storage_options : mapping, optional
        fsspec options (credentials, ``client_kwargs={"endpoint_url": ...}``)
        for ``s3://`` paths, input or output.
    source_checksum : BackgroundChecksum, optional
        The source's sha256, already under way or complete
        (``memoxr.io.checksum.BackgroundChecksum(source)``); stopped if the conversion fails,
        and refused once cancelled. Default: started here, once the npz is validated. The
        command starts it before its imports, which take one core, so that hashing overlaps them.

    Examples
    --------
    >>> import tempfile, memoxr
    >>> store = convert_npz(memoxr.sample_path(), f"{tempfile.mkdtemp()}/digits.zarr", chunk_mb=0.1)
    >>> ds = memoxr.open_influence(store)
    >>> ds["influence"].chunks, len(ds.attrs["source_sha256"])
    (((4, 4, 2), (137,), (46,)), 64)
    """
    try:
        source, output = Location.of(source, storage_options), Location.of(output, storage_options)
        if source_checksum is not None:
            _check_checksum(source_checksum, source)
        return _convert(source, output, source_checksum, overwrite=overwrite, allow_pickle=allow_pickle,
                        chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order, shard_mb=shard_mb,
                        show_progress=show_progress)
    finally:
        if source_checksum is not None:  # stopped on any failure; a no-op once computed
            source_checksum.cancel(wait=True)


def _check_checksum(checksum: BackgroundChecksum, source: Location) -> None:
    target = os.fspath(checksum.target)
    same = target == source.path if is_url(target) or source.is_url else (
        os.path.abspath(target) == os.path.abspath(source.path)
    )
    if not same:
        raise MemoxrInputError(f"source_checksum: expected the checksum of {source.path!r}, received one of {target!r}")
    if checksum.cancelled:
        raise MemoxrInputError(
            f"source_checksum: expected a checksum of {source.path!r} under way or complete, received a cancelled one"
        )


def _convert(
    source: Location, output: Location, source_checksum: BackgroundChecksum | None, *, overwrite: bool,
    allow_pickle: bool, chunk_mb: float, chunks: BlockChunksLike | None, sample_order: str | None,
    shard_mb: float | None, show_progress: bool | None,
) -> str:
    check_writable(output, overwrite=overwrite, kind="folder")
    ds = open_fz_npz(source, allow_pickle=allow_pickle, chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order,
                     checksum=False)
    if shard_mb is None and output.is_url:
        shard_mb = REMOTE_SHARD_MB
    inner = BlockChunks(*ds["influence"].data.chunksize)
    shards = plan_shards(cast("tuple[int, int, int]", ds["influence"].shape), inner, shard_mb=shard_mb) if shard_mb is not None else None
    if shards is not None:
        ds = ds.chunk(shards.as_dict())  # one dask task writes one whole shard
    encoding = influence_encoding(ds, shards=shards)
    if shards is not None:
        encoding["influence"]["chunks"] = (inner.cls, inner.train, inner.test)
    # The source's sha256 runs on its own thread while the store is written (hashlib releases
    # the GIL), and is recorded before the completion marker; a failed write stops it.
    checksum = source_checksum
    if checksum is None:
        checksum = BackgroundChecksum(source, lambda location, stop: file_sha256(location, stop=stop))
    with deprecated_show_progress(show_progress, "convert_npz"):
        try:
            return write_dataset(
                ds, output, overwrite=overwrite, encoding=encoding, final_attrs=lambda: {"source_sha256": checksum.result()},
            )
        finally:
            checksum.cancel(wait=True)  # the source is closed when this returns
