"""Converters: source files in, labelled memoxr Zarr stores out (installed as ``memoxr.convert``)."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr
from zarr.codecs import BloscCodec

from memoxr._chunks import DEFAULT_CHUNK_MB, BlockChunks
from memoxr.storage import check_writable, write_dataset

from .fz_npz import DEFAULT_SAMPLE_ORDER, FZLayout, inspect_fz_npz, read_npz_headers

__all__ = [
    "DEFAULT_SAMPLE_ORDER",
    "FZLayout",
    "convert_npz",
    "influence_encoding",
    "inspect_fz_npz",
    "open_fz_npz",
    "read_npz_headers",
]

#: Byte-shuffled zstd: influence values are noisy floats, so shuffling does most of the work.
COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def influence_encoding(ds: xr.Dataset) -> dict[str, dict]:
    """Zarr chunks and compressors for an influence Dataset, taken from its dask chunks."""
    encoding: dict[str, dict] = {}
    for name, var in ds.data_vars.items():
        if var.chunks is not None:
            chunks = tuple(c[0] for c in var.chunks)
        else:
            chunks = tuple(max(1, n) for n in var.shape)
        encoding[str(name)] = {"chunks": chunks, "compressors": (COMPRESSOR,)}
    encoding["influence"]["fill_value"] = float("nan")
    return encoding


def open_fz_npz(
    path: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunks | None = None,
    sample_order: str = DEFAULT_SAMPLE_ORDER,
) -> xr.Dataset:
    """Validate an FZ npz and view it lazily with the influence store's schema."""
    layout = inspect_fz_npz(path, allow_pickle=allow_pickle)
    return layout.to_dataset(chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order)


def convert_npz(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    allow_pickle: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    chunks: BlockChunks | None = None,
    sample_order: str = DEFAULT_SAMPLE_ORDER,
    show_progress: bool = False,
) -> Path:
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
    chunks : BlockChunks, optional
        Explicit chunk sizes, overriding ``chunk_mb``.
    sample_order : str
        Name of the order the arrays' samples follow, kept in the store's attrs.
    """
    check_writable(output, overwrite=overwrite)
    ds = open_fz_npz(source, allow_pickle=allow_pickle, chunk_mb=chunk_mb, chunks=chunks, sample_order=sample_order)
    return write_dataset(ds, output, overwrite=overwrite, encoding=influence_encoding(ds), show_progress=show_progress)
