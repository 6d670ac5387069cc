"""Where stores live, and writes that are complete or absent.

Every write goes to a hidden sibling first and is moved into place only when
it finished; a failure or an interrupt removes the partial copy. The completion
marker (:data:`memoxr.schema.COMPLETE_ATTR`) is set last, so a store that lost
its writer half way is refused on open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from .errors import MemoxrInputError, OutputExistsError
from .progress import progress
from .schema import COMPLETE_ATTR, check_complete


def _siblings(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; refuse a missing parent folder."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(str(target))
    if not target.parent.exists():
        raise MemoxrInputError(
            f"output {str(target)!r}: parent folder {str(target.parent)!r} does not exist"
        )
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path; move it onto ``path`` only if the block succeeds.

    The existing output, if any, is kept until the new one is complete.
    """
    target = check_writable(path, overwrite=overwrite)
    partial = _siblings(target, "partial")
    try:
        yield partial
        if target.exists():
            old = _siblings(target, "replaced")
            os.replace(target, old)
            os.replace(partial, target)
            _remove(old)
        else:
            os.replace(partial, target)
    except BaseException:
        _remove(partial)
        raise


@contextlib.contextmanager
def _zarr_v3_quiet() -> Iterator[None]:
    """Silence zarr's note that consolidated metadata is not yet in the v3 spec."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


def write_dataset(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    show_progress: bool = False,
) -> Path:
    """Write ``ds`` as a Zarr v3 store, complete or absent, with consolidated metadata.

    Dask-backed variables are computed chunk by chunk while writing.
    """
    with atomic_output(path, overwrite=overwrite) as tmp:
        with _zarr_v3_quiet():
            delayed = ds.to_zarr(
                tmp, mode="w-", zarr_format=3, consolidated=False, encoding=dict(encoding or {}),
                compute=False,
            )
            with progress(show_progress):
                delayed.compute()
            group = zarr.open_group(tmp, mode="r+")
            group.attrs[COMPLETE_ATTR] = True
            zarr.consolidate_metadata(tmp)
    return Path(path)


def open_dataset(path: str | os.PathLike[str] | zarr.abc.store.Store, *, chunks: Any = None) -> xr.Dataset:
    """Open a memoxr Zarr store lazily (one dask chunk per Zarr chunk by default).

    ``path`` is a folder, or any zarr ``Store`` (for instance a wrapper).
    """
    store = path if isinstance(path, zarr.abc.store.Store) else str(path)
    source = str(path)
    if isinstance(store, str) and not Path(store).exists():
        raise MemoxrInputError(f"store {source!r} does not exist")
    try:
        attrs = dict(zarr.open_group(store, mode="r").attrs)
    except Exception as exc:  # zarr raises several kinds for a folder that is not a store
        raise MemoxrInputError(f"{source!r} is not a readable Zarr store: {exc}") from exc
    check_complete(attrs, source=source)
    with _zarr_v3_quiet():
        ds = xr.open_zarr(store, consolidated=True, chunks={} if chunks is None else chunks)
    ds.attrs.pop(COMPLETE_ATTR, None)
    return ds
