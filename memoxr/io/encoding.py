"""How influence stores are encoded in Zarr: chunks from the dask chunks, shards, the compressor."""

from __future__ import annotations

import xarray as xr
from zarr.codecs import BloscCodec

from .chunks import BlockChunks

#: LZ4, unshuffled, for the influence matrices (``influence``, and an estimate's ``influence_*``).
#: About 80% of real FZ estimates are exact zeros, which stay runs of zero words unshuffled: on
#: the shipped real estimates a 3.8x ratio (2.4x byte-shuffled), encoding 2.2x and decoding 1.8x
#: as fast (README "Performance").
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")

#: Byte-shuffled LZ4 for everything else (labels, indices, counts, memorization, an estimate's
#: sums): the zero high bytes of their integers, and the zero low bytes of whole-number floats,
#: form runs only when shuffled.
SHUFFLED_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def influence_encoding(ds: xr.Dataset, *, shards: BlockChunks | None = None) -> dict[str, dict]:
    """Zarr chunks and compressors for an influence Dataset, taken from its dask chunks.

    With ``shards``, ``influence`` is written in shards of that shape (whole
    numbers of its dask chunks, which must align with them).

    Examples
    --------
    >>> import memoxr
    >>> ds = memoxr.open_influence(memoxr.sample_path(), chunk_mb=0.1)
    >>> encoding = influence_encoding(ds, shards=BlockChunks(8, 137, 46))
    >>> encoding["influence"]["chunks"], encoding["influence"]["shards"], encoding["memorization"]["chunks"]
    ((4, 137, 46), (8, 137, 46), (10, 137))
    """
    encoding: dict[str, dict] = {}
    for name, var in ds.data_vars.items():
        if var.chunks is not None:
            chunks = tuple(c[0] for c in var.chunks)
        else:
            chunks = tuple(max(1, n) for n in var.shape)
        compressor = COMPRESSOR if str(name).startswith("influence") else SHUFFLED_COMPRESSOR
        encoding[str(name)] = {"chunks": chunks, "compressors": (compressor,)}
    encoding["influence"]["fill_value"] = float("nan")
    if shards is not None:
        encoding["influence"]["shards"] = (shards.cls, shards.train, shards.test)
    return encoding



