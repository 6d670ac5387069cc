"""Where stores live (local folders or ``s3://`` URLs via fsspec), and writes that are complete or absent.

Local outputs are written to a hidden sibling ``.NAME.partial-<pid>-<rand>``
and moved into place only when finished; a failure or an interrupt removes the
partial copy, and a partial left by a killed writer (its pid no longer alive)
is removed by the next write of the same output. Object stores have no rename,
so a store is written in place, its first object a root ``zarr.json`` whose
``schema`` says memoxr wrote it, and the completion marker
(:data:`memoxr.io.schema.COMPLETE_ATTR`) is set last, in one rewrite of the root
that keeps the consolidated metadata: a store whose writer died is refused on
open, and a rerun replaces it without ``overwrite`` (only a store whose
``schema`` says memoxr wrote it). Replacing a store first rewrites its root
``zarr.json`` without the marker, then deletes the rest. Single files (CSV,
npz) go to object storage in one PUT, which is atomic.

Object storage (``s3://``) gets default timeouts (:data:`S3_TIMEOUTS`: connect
5 s, read 8 s, one botocore attempt; s3fs itself tries a request up to 5
times), so an endpoint that accepts connections and never answers is reported
after about 45 s instead of about 7 minutes, and one that refuses connections
at once. Any of them can be overridden through the
storage options' ``config_kwargs``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from ..compute.progress import compute, deprecated_show_progress
from ..errors import IncompleteStoreError, MemoxrInputError, OutputExistsError
from .direct_chunks import read_directly
from .local_zarr import LocalStoreMetadata, LocalZarrBackend, read_local_metadata
from .location import (
    Location,
    PathLike,
    StorageOptions,
    _check_bucket,
    _exists,
    check_store_name,
    describe_access_error,
    is_url,
)
from .schema import COMPLETE_ATTR, check_complete

if TYPE_CHECKING:
    import fsspec
    import zarr.abc.store


def _siblings(path: Path, tag: str) -> Path:
    # The writer's pid lets a later run tell a dead writer's leftovers from a live one's.
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(path: PathLike) -> list[Path]:
    """Remove ``.NAME.partial-<pid>-*`` / ``.NAME.replaced-<pid>-*`` siblings of ``path`` whose writer is dead.

    Only memoxr's own leftovers of this very output, and only when the process
    that made them no longer runs. Returns what was removed.
    """
    target = Path(path)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(partial|replaced)-(\d+)-[0-9a-z_]{{8}}")
    removed = []
    with contextlib.suppress(OSError):
        # Names matched before sorting: an output folder may hold thousands of other entries.
        matches = sorted((m for m in map(pattern.fullmatch, os.listdir(target.parent)) if m), key=lambda m: m.string)
        for match in matches:
            entry = target.parent / match.string
            if not _pid_alive(int(match.group(2))):
                if match.group(1) == "replaced" and not target.exists() and not target.is_symlink():
                    # The writer died between moving the old output aside and the new one in:
                    # the old output is the only complete one, so it goes back, not away.
                    os.replace(entry, target)
                    continue
                _remove(entry)
                removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _remote_state(location: Location) -> str:
    """``"absent"``, ``"incomplete"`` (a memoxr store whose writer died) or ``"present"``."""
    fs, fs_path, path = location.fs, location.fs_path, location.path
    _check_bucket(fs, fs_path, path)
    try:
        if not fs.exists(fs_path):
            return "absent"
        if fs.isfile(f"{fs_path}/zarr.json"):
            return "incomplete" if _unfinished_memoxr(fs.cat_file(f"{fs_path}/zarr.json")) else "present"
    except (PermissionError, OSError) as exc:
        raise MemoxrInputError(describe_access_error(path, exc, location.endpoint)) from exc
    return "present"


def _unfinished_memoxr(root_json: bytes) -> bool:
    """True only for a root ``zarr.json`` memoxr wrote (schema ``memoxr.*``) without the completion marker."""
    try:
        attrs = json.loads(root_json).get("attributes") or {}
    except (ValueError, AttributeError):
        return False  # not ours to judge: treated as an existing output
    return str(attrs.get("schema", "")).startswith("memoxr.") and attrs.get(COMPLETE_ATTR) is not True


def check_writable(
    path: PathLike | Location, *, overwrite: bool, storage_options: StorageOptions = None, kind: str | None = None
) -> None:
    """Refuse an existing output unless ``overwrite``, and an output that could not be written.

    Locally: a dangling symlink, a parent that is missing or a file, a folder
    in which this process cannot create anything (tried, not guessed from
    permission bits: root ignores them but not a read-only mount). On object
    storage: a missing bucket or refused credentials. An unfinished memoxr store
    on object storage (schema ``memoxr.*``, no completion marker) does not count
    as an output: a rerun replaces it. A Zarr store memoxr did not write does.
    ``kind`` (``"file"`` or ``"folder"``) refuses replacing an output of the other kind; a
    ``"folder"`` (a Zarr store) named like a file of another format is refused (:func:`check_store_name`).
    """
    location = Location.of(path, storage_options)
    if kind == "folder":
        check_store_name(location)
    if location.is_url:
        if _remote_state(location) == "present" and not overwrite:
            raise OutputExistsError(location.path)
        return
    target = Path(location.path)
    if target.is_symlink() and not target.exists():
        raise MemoxrInputError(
            f"output {str(target)!r} is a dangling symlink (to {os.readlink(target)!r}); "
            "expected a path that does not exist yet, or remove the link"
        )
    if target.exists() and not overwrite:
        raise OutputExistsError(str(target))
    if kind is not None:  # before any work, so a command with several outputs never replaces one and then fails
        _refuse_other_kind(target, folder=kind == "folder")
    parent = target.parent
    if not parent.is_dir():
        ancestor = parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            raise MemoxrInputError(f"output {str(target)!r}: {str(ancestor)!r} is a file, not a folder")
        raise MemoxrInputError(f"output {str(target)!r}: parent folder {str(parent)!r} does not exist")
    try:  # the only honest test of writability: create something (named like a partial, so never left over)
        os.rmdir(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise MemoxrInputError(
            f"output {str(target)!r}: cannot write in folder {str(parent)!r}: {exc.strerror or exc}"
        ) from None


def _refuse_other_kind(target: Path, *, folder: bool) -> None:
    """--overwrite replaces an output by one of its kind, never a folder by a file or the reverse."""
    if target.exists() and target.is_dir() != folder:
        kinds = ("a folder", "a file") if target.is_dir() else ("a file", "a folder")
        raise MemoxrInputError(
            f"output {str(target)!r} is {kinds[0]}; refusing to replace it with {kinds[1]}: choose another path"
        )


@contextlib.contextmanager
def atomic_output(path: PathLike | Location, *, overwrite: bool = False, storage_options: StorageOptions = None) -> Iterator[Path]:
    """Yield a temporary local path; it becomes ``path`` only if the block succeeds.

    Locally the existing output is kept until the new one is complete. For a URL
    the finished file is uploaded in one PUT (files only; stores use :func:`store_output`).
    """
    location = Location.of(path, storage_options)
    check_writable(location, overwrite=overwrite)
    if location.is_url:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(location.path).name
            yield local
            location.fs.put_file(str(local), location.fs_path)
        return
    target = Path(location.path)
    remove_stale_partials(target)
    partial = _siblings(target, "partial")
    try:
        yield partial
        _refuse_other_kind(target, folder=partial.is_dir())
        if target.exists() and not target.is_dir() and not partial.is_dir():
            os.replace(partial, target)  # a file: one atomic rename over the old one
        elif target.exists():  # a folder cannot be renamed over a folder: old aside, new in, old away
            old = _siblings(target, "replaced")
            os.replace(target, old)
            os.replace(partial, target)
            _remove(old)
        else:
            os.replace(partial, target)
    except BaseException:
        _remove(partial)
        raise


def remove_output(path: PathLike | Location, *, storage_options: StorageOptions = None) -> None:
    """Remove an output this run wrote (a file or a store), local or remote; for all-or-none commands."""
    location = Location.of(path, storage_options)
    if not location.is_url:
        _remove(Path(location.path))
        return
    fs, fs_path = location.fs, location.fs_path
    if fs.isfile(fs_path):
        fs.rm_file(fs_path)
    elif fs.exists(fs_path):
        _remove_remote_store(fs, fs_path)


@contextlib.contextmanager
def store_output(path: PathLike | Location, *, overwrite: bool = False, storage_options: StorageOptions = None) -> Iterator[str]:
    """Yield where to write a Zarr store that must end up at ``path``.

    Locally: a hidden sibling folder, moved into place at the end. On object
    storage: ``path`` itself, emptied first; on failure it is removed again (and
    if the process dies, the missing completion marker makes it unreadable).
    """
    location = Location.of(path, storage_options)
    check_store_name(location)
    if not location.is_url:
        target = Path(location.path)
        if overwrite and target.exists() and not (target / "zarr.json").is_file():
            if not target.is_dir() or any(target.iterdir()):
                raise MemoxrInputError(
                    f"output {str(target)!r} exists and is not a Zarr store; memoxr only replaces stores "
                    "it could have written: choose another path"
                )
        with atomic_output(location, overwrite=overwrite) as tmp:
            yield str(tmp)
        return
    check_writable(location, overwrite=overwrite)
    fs, fs_path = location.fs, location.fs_path
    if fs.exists(fs_path):
        if "/" not in fs_path.strip("/") or not fs.isfile(f"{fs_path}/zarr.json"):
            raise MemoxrInputError(
                f"output {location.path!r} exists and is not a Zarr store (or is a whole bucket); "
                "memoxr only replaces stores it could have written: choose another prefix"
            )
        # No rename on object storage: the old store goes first (a failed rewrite leaves nothing).
        _remove_remote_store(fs, fs_path)
    try:
        yield location.path
    except BaseException:
        with contextlib.suppress(Exception):
            _remove_remote_store(fs, fs_path)
        raise


#: Objects deleted per request while removing a remote store (S3 allows 1000).
_DELETE_BATCH = 1000

#: Root metadata of a store being removed: memoxr's, unfinished, so it never opens as
#: complete and a rerun may replace it without ``overwrite``.
_UNFINISHED_ROOT = {"zarr_format": 3, "node_type": "group", "attributes": {"schema": "memoxr.removing"}}


def _delete_keys(fs: fsspec.AbstractFileSystem, keys: list[str]) -> None:
    fs.rm(keys)  # one bulk request on S3


def _remove_remote_store(fs: fsspec.AbstractFileSystem, fs_path: str) -> None:
    """Delete a remote store so that no interruption leaves it looking complete.

    The root ``zarr.json`` (completion marker and consolidated metadata) is
    rewritten as unfinished first, in one PUT; then the other objects go; the
    root goes last, so whatever remains at any moment is refused on open.
    """
    root = f"{fs_path}/zarr.json"
    if fs.isfile(root):
        fs.pipe_file(root, json.dumps(_UNFINISHED_ROOT).encode())
    fs.invalidate_cache(fs_path)
    keys = [key for key in fs.find(fs_path) if key.strip("/") != root.strip("/")]
    for start in range(0, len(keys), _DELETE_BATCH):
        _delete_keys(fs, keys[start : start + _DELETE_BATCH])
    if fs.isfile(root):
        fs.rm_file(root)
    fs.invalidate_cache(fs_path)


@contextlib.contextmanager
def _zarr_v3_quiet() -> Iterator[None]:
    """Silence zarr's note that consolidated metadata is not yet in the v3 spec."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


def write_dataset(
    ds: xr.Dataset,
    path: PathLike | Location,
    *,
    overwrite: bool = False,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    storage_options: StorageOptions = None,
    final_attrs: Callable[[], Mapping[str, Any]] | None = None,
    write_data: bool = True,
    show_progress: bool | None = None,
) -> str:
    """Write ``ds`` as a Zarr v3 store, complete or absent, with consolidated metadata.

    Dask-backed variables are computed chunk by chunk while writing (on the
    active scheduler: threads by default, a ``distributed`` client if one is set).
    ``final_attrs`` is called once the data are written; its attributes are
    stored before the completion marker (e.g. a checksum computed meanwhile).
    ``write_data=False`` writes the metadata and the in-memory variables only, leaving
    dask-backed variables' chunks unwritten (to be filled later, as a recorder does).

    Examples
    --------
    >>> import tempfile
    >>> path = write_dataset(xr.Dataset({"x": ("i", [1.0, 2.0])}), f"{tempfile.mkdtemp()}/x.zarr")
    >>> open_dataset(path)["x"].values.tolist()
    [1.0, 2.0]
    """
    import zarr  # here, not at import: reading an npz into a CSV needs no zarr (0.1 s of start-up)

    location = Location.of(path, storage_options)
    so = dict(location.storage_options) if location.is_url else None
    schema = str(ds.attrs.get("schema", ""))
    with deprecated_show_progress(show_progress, "write_dataset"), store_output(location, overwrite=overwrite) as target:
        with _zarr_v3_quiet():
            mode: Literal["w-", "a"] = "w-"
            if is_url(target) and schema.startswith("memoxr."):
                # The first object says it is memoxr's (xarray would first write a root without
                # attributes): a writer killed at any point leaves a store a rerun may replace.
                zarr.open_group(target, mode="w-", zarr_format=3, attributes={"schema": schema}, storage_options=so)
                mode = "a"
            delayed = ds.to_zarr(
                target, mode=mode, zarr_format=3, consolidated=False, encoding=dict(encoding or {}),
                compute=False, storage_options=so if is_url(target) else None,
                # Write every chunk: zarr's test for all-fill-value chunks (NaN-aware) cost 12% of a conversion.
                write_empty_chunks=True,
            )
            if write_data:
                compute(delayed)
            group = zarr.open_group(target, mode="r+", storage_options=so if is_url(target) else None)
            if final_attrs is not None:
                group.attrs.update(dict(final_attrs()))
            zarr.consolidate_metadata(group.store)
            # The marker last, in the same root zarr.json PUT that keeps the consolidated metadata.
            group = zarr.open_group(target, mode="r+", storage_options=so if is_url(target) else None)
            group.attrs[COMPLETE_ATTR] = True
    return location.path


def open_dataset(path: PathLike | Location | zarr.abc.store.Store, *, chunks: Any = None, storage_options: StorageOptions = None) -> xr.Dataset:
    """Open a memoxr Zarr store lazily (one dask chunk per Zarr chunk by default).

    ``path`` is a folder, an ``s3://`` URL (``storage_options`` for fsspec), or
    any zarr ``Store`` (for instance a wrapper). A folder whose arrays are all plain (what memoxr
    writes) opens without importing zarr-python (:mod:`.local_zarr`).
    """
    if not isinstance(path, str | os.PathLike | Location):
        return _open_with_zarr(path, chunks=chunks)  # a zarr Store
    location = Location.of(path, storage_options)
    if not _exists(location):
        raise MemoxrInputError(f"store {location.path!r} does not exist")
    meta = None if location.is_url else read_local_metadata(location.path)
    if meta is not None and not meta.unfamiliar:
        return _open_local(location.path, meta, chunks)
    return _open_with_zarr(location, chunks=chunks, local_meta=meta)


def _open_local(root: str, meta: LocalStoreMetadata, chunks: Any) -> xr.Dataset:
    check_complete(meta.attrs, source=root)
    version = _written_in_place(root, meta)
    try:
        ds = xr.open_dataset(root, engine=LocalZarrBackend, chunks={} if chunks is None else chunks, metadata=meta,
                             version=version)
    except MemoxrInputError:
        raise
    except Exception as exc:  # e.g. arrays that disagree on a dimension's length
        raise _damaged(root, exc) from exc
    ds.attrs.pop(COMPLETE_ATTR, None)
    return read_directly(ds, meta.arrays, root, version=version)


def _written_in_place(root: str, meta: LocalStoreMetadata) -> tuple[int, int] | None:
    """For a store a writer fills in place after creating it (``attrs["writer"]``: a DynamicsWriter
    recording epochs), how many files it holds and their latest change, for its arrays' dask keys:
    reopened after more epochs landed, it must not share keys with a result of the earlier read still
    held. None for the stores memoxr writes once (a new folder each time, which xarray's token tells apart).
    A chunk being written (zarr's ``*.partial`` file, renamed when complete) is not counted.
    """
    if "writer" not in meta.attrs:
        return None
    count, latest = 0, 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".partial"):
                continue
            try:
                stat = os.stat(os.path.join(folder, name))
            except FileNotFoundError:  # replaced by a writer meanwhile
                continue
            count += 1
            latest = max(latest, stat.st_mtime_ns, stat.st_ctime_ns)
    return count, latest


def _damaged(source: str, exc: Exception) -> IncompleteStoreError:
    return IncompleteStoreError(
        f"{source!r}: store is damaged or incomplete ({type(exc).__name__}: {exc}); write it again with --overwrite"
    )


def _open_with_zarr(path: Location | zarr.abc.store.Store, *, chunks: Any,
                    local_meta: LocalStoreMetadata | None = None) -> xr.Dataset:
    """``path`` opened by xarray's Zarr backend; a local folder's float chunks then read directly
    (``local_meta``: its metadata, if already read)."""
    import zarr.abc.store

    store: str | zarr.abc.store.Store
    so: dict[str, Any] | None = None
    if isinstance(path, zarr.abc.store.Store):
        store = path
        source = str(path)
    else:
        location = Location.of(path)  # a Location, or what Location.of refuses by name
        store = source = location.path
        so = dict(location.storage_options) if location.is_url else None
    try:
        group = zarr.open_group(store, mode="r", storage_options=so)
        attrs = dict(group.attrs)
    except PermissionError as exc:
        raise MemoxrInputError(describe_access_error(source, exc)) from exc
    except Exception as exc:  # zarr raises several kinds for a location that is not a store
        raise MemoxrInputError(f"{source!r} is not a readable Zarr store: {exc}") from exc
    check_complete(attrs, source=source)
    try:
        with _zarr_v3_quiet():
            ds = xr.open_zarr(store, consolidated=True, chunks={} if chunks is None else chunks, storage_options=so)
    except Exception as exc:  # e.g. the writer died between the marker and the consolidated metadata
        raise _damaged(source, exc) from exc
    ds.attrs.pop(COMPLETE_ATTR, None)
    if isinstance(store, str) and not is_url(store):  # a local folder: its chunk files read straight
        meta = local_meta if local_meta is not None else read_local_metadata(store)
        if meta is not None:
            ds = read_directly(ds, meta.arrays, store)
    return ds


