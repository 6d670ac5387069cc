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
import copy
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import fsspec
import xarray as xr
import zarr
import zarr.abc.store  # loaded by zarr anyway; named for the Store annotation

from .._optional import require
from ..compute.progress import compute
from ..errors import IncompleteStoreError, MemoxrInputError, OutputExistsError
from .schema import COMPLETE_ATTR, check_complete

PathLike = str | os.PathLike[str]
StorageOptions = Mapping[str, Any] | None


def is_url(path: object) -> bool:
    """True for ``protocol://`` paths other than ``file://``.

    Examples
    --------
    >>> is_url("s3://bucket/influence.zarr"), is_url("runs/influence.zarr"), is_url("file:///tmp/a.zarr")
    (True, False, False)
    """
    text = str(path)
    return "://" in text and not text.startswith("file://")


#: botocore ``Config`` defaults memoxr gives ``s3://`` access (``config_kwargs``
#: of the storage options win). A silent endpoint fails after about
#: 5 s3fs tries x 1 attempt x 8 s (about 45 s); a refused connection at once.
S3_TIMEOUTS: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 8, "retries": {"total_max_attempts": 1}}


def with_timeouts(storage_options: StorageOptions) -> dict[str, Any]:
    """``storage_options`` with :data:`S3_TIMEOUTS` filled into ``config_kwargs`` where not given.

    Examples
    --------
    >>> options = with_timeouts({"anon": True, "config_kwargs": {"read_timeout": 60}})
    >>> options["anon"], options["config_kwargs"]["read_timeout"], options["config_kwargs"]["connect_timeout"]
    (True, 60, 5)
    """
    options = dict(storage_options or {})
    config = dict(options.get("config_kwargs") or {})
    for key, value in S3_TIMEOUTS.items():
        config.setdefault(key, copy.deepcopy(value))  # botocore edits the retries dict it is given
    options["config_kwargs"] = config
    return options


def _remote_options(path: PathLike, storage_options: StorageOptions) -> dict[str, Any]:
    if str(path).split("://", 1)[0] in ("s3", "s3a"):
        require("s3fs", "s3")  # fsspec's own ImportError names no extra
        return with_timeouts(storage_options)
    return dict(storage_options or {})


def _fs(path: PathLike, storage_options: StorageOptions) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(str(path), **_remote_options(path, storage_options))


def connection_failure(exc: BaseException, endpoint: str | None = None) -> str | None:
    """A one-line reason when ``exc`` (or what caused it) is a failure to talk to object storage, else None.

    dask and zarr re-raise what botocore or aiohttp raised, so the causes are
    searched. Names the endpoint, never the credentials.

    Examples
    --------
    >>> from fsspec.exceptions import FSTimeoutError
    >>> connection_failure(FSTimeoutError("timed out"), "http://127.0.0.1:9000")
    'object storage at http://127.0.0.1:9000 failed: timed out; check that it is running and reachable, then rerun'
    >>> connection_failure(ValueError("not a connection problem")) is None
    True
    """
    from fsspec.exceptions import FSTimeoutError

    kinds: tuple[type[BaseException], ...] = (FSTimeoutError,)
    with contextlib.suppress(ImportError):  # aiohttp and botocore come with the [s3] extra
        from aiohttp import ClientError
        from botocore.exceptions import BotoCoreError

        kinds = (BotoCoreError, ClientError, FSTimeoutError)
    seen: BaseException | None = exc
    while seen is not None:
        # Not any TimeoutError: a dask scheduler's is not object storage's.
        if isinstance(seen, kinds):
            where = endpoint or getattr(seen, "kwargs", {}).get("endpoint_url") or "the default AWS endpoint"
            return (
                f"object storage at {where} failed: {seen or type(seen).__name__}; "
                "check that it is running and reachable, then rerun"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _endpoint_of(fs: fsspec.AbstractFileSystem) -> str | None:
    return (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url") or getattr(fs, "endpoint_url", None)


def describe_access_error(path: PathLike, exc: BaseException, endpoint: str | None = None) -> str:
    """A one-line reason for a failed access, without credentials.

    Examples
    --------
    >>> describe_access_error("s3://bucket/a.zarr", PermissionError("Access Denied"))
    "cannot access 's3://bucket/a.zarr': Access Denied; check the credentials (--credentials,
    --storage-options, AWS_* variables, ~/.aws)"
    """
    failure = connection_failure(exc, endpoint)
    if failure is not None:
        return f"cannot access {str(path)!r}: {failure}"
    reason = getattr(exc, "args", [None])[0] or type(exc).__name__
    hint = ""
    if isinstance(exc, PermissionError):
        hint = "; check the credentials (--credentials, --storage-options, AWS_* variables, ~/.aws)"
    return f"cannot access {str(path)!r}: {reason}{hint}"


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

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / ".out.zarr.partial-99999999-0a1b2c3d").mkdir()  # no process has pid 99999999
    >>> [p.name for p in remove_stale_partials(folder / "out.zarr")], list(folder.iterdir())
    (['.out.zarr.partial-99999999-0a1b2c3d'], [])
    """
    target = Path(path)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(partial|replaced)-(\d+)-[0-9a-z_]{{8}}")
    removed = []
    with contextlib.suppress(OSError):
        for entry in sorted(target.parent.iterdir()):
            match = pattern.fullmatch(entry.name)
            if match and not _pid_alive(int(match.group(2))):
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


def _remote_state(path: PathLike, storage_options: StorageOptions) -> str:
    """``"absent"``, ``"incomplete"`` (a memoxr store whose writer died) or ``"present"``."""
    fs, fs_path = _fs(path, storage_options)
    _check_bucket(fs, fs_path, path)
    try:
        if not fs.exists(fs_path):
            return "absent"
        if fs.isfile(f"{fs_path}/zarr.json"):
            return "incomplete" if _unfinished_memoxr(fs.cat_file(f"{fs_path}/zarr.json")) else "present"
    except (PermissionError, OSError) as exc:
        raise MemoxrInputError(describe_access_error(path, exc, _endpoint_of(fs))) from exc
    return "present"


def _unfinished_memoxr(root_json: bytes) -> bool:
    """True only for a root ``zarr.json`` memoxr wrote (schema ``memoxr.*``) without the completion marker."""
    try:
        attrs = json.loads(root_json).get("attributes") or {}
    except (ValueError, AttributeError):
        return False  # not ours to judge: treated as an existing output
    return str(attrs.get("schema", "")).startswith("memoxr.") and attrs.get(COMPLETE_ATTR) is not True


def _check_bucket(fs: fsspec.AbstractFileSystem, fs_path: str, path: PathLike) -> None:
    """Raise a clear error for a missing bucket or refused credentials (``exists`` hides both)."""
    bucket = fs_path.split("/", 1)[0]
    head_bucket = getattr(fs, "call_s3", None)
    try:
        if head_bucket is not None:
            head_bucket("head_bucket", Bucket=bucket)
        elif not fs.exists(bucket):
            raise FileNotFoundError(bucket)
    except FileNotFoundError:
        raise MemoxrInputError(f"{str(path)!r}: bucket {bucket!r} does not exist") from None
    except Exception as exc:
        if isinstance(exc, OSError) or connection_failure(exc) is not None:
            raise MemoxrInputError(describe_access_error(path, exc, _endpoint_of(fs))) from exc
        raise


def check_writable(
    path: PathLike, *, overwrite: bool, storage_options: StorageOptions = None, kind: str | None = None
) -> None:
    """Refuse an existing output unless ``overwrite``, and an output that could not be written.

    Locally: a dangling symlink, a parent that is missing or a file, a folder
    in which this process cannot create anything (tried, not guessed from
    permission bits: root ignores them but not a read-only mount). On object
    storage: a missing bucket or refused credentials. An unfinished memoxr store
    on object storage (schema ``memoxr.*``, no completion marker) does not count
    as an output: a rerun replaces it. A Zarr store memoxr did not write does.
    ``kind`` (``"file"`` or ``"folder"``) refuses replacing an output of the other kind.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_writable(folder / "new.zarr", overwrite=False)  # returns None: it may be written
    >>> check_writable(folder / "missing" / "new.zarr", overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: output '.../missing/new.zarr': parent folder '.../missing' does not exist
    """
    if is_url(path):
        if _remote_state(path, storage_options) == "present" and not overwrite:
            raise OutputExistsError(str(path))
        return
    target = Path(path)
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
def atomic_output(path: PathLike, *, overwrite: bool = False, storage_options: StorageOptions = None) -> Iterator[Path]:
    """Yield a temporary local path; it becomes ``path`` only if the block succeeds.

    Locally the existing output is kept until the new one is complete. For a URL
    the finished file is uploaded in one PUT (files only; stores use :func:`store_output`).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("a,b")
    ...     target.exists()  # not in place until the block ends
    False
    >>> target.read_text()
    'a,b'
    """
    check_writable(path, overwrite=overwrite, storage_options=storage_options)
    if is_url(path):
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(str(path)).name
            yield local
            fs, fs_path = _fs(path, storage_options)
            fs.put_file(str(local), fs_path)
        return
    target = Path(path)
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


def remove_output(path: PathLike, *, storage_options: StorageOptions = None) -> None:
    """Remove an output this run wrote (a file or a store), local or remote; for all-or-none commands.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "table.csv"
    >>> _ = target.write_text("a,b")
    >>> remove_output(target)
    >>> target.exists()
    False
    """
    if not is_url(path):
        _remove(Path(path))
        return
    fs, fs_path = _fs(path, storage_options)
    if fs.isfile(fs_path):
        fs.rm_file(fs_path)
    elif fs.exists(fs_path):
        _remove_remote_store(fs, fs_path)


@contextlib.contextmanager
def store_output(path: PathLike, *, overwrite: bool = False, storage_options: StorageOptions = None) -> Iterator[str]:
    """Yield where to write a Zarr store that must end up at ``path``.

    Locally: a hidden sibling folder, moved into place at the end. On object
    storage: ``path`` itself, emptied first; on failure it is removed again (and
    if the process dies, the missing completion marker makes it unreadable).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with store_output(folder / "x.zarr") as where:
    ...     _ = xr.Dataset({"x": ("i", [1, 2])}).to_zarr(where, zarr_format=3, consolidated=False)
    ...     Path(where).name.startswith(".x.zarr.partial-")
    True
    >>> [p.name for p in folder.iterdir()]
    ['x.zarr']
    """
    if not is_url(path):
        target = Path(path)
        if overwrite and target.exists() and not (target / "zarr.json").is_file():
            if not target.is_dir() or any(target.iterdir()):
                raise MemoxrInputError(
                    f"output {str(target)!r} exists and is not a Zarr store; memoxr only replaces stores "
                    "it could have written: choose another path"
                )
        with atomic_output(path, overwrite=overwrite) as tmp:
            yield str(tmp)
        return
    check_writable(path, overwrite=overwrite, storage_options=storage_options)
    fs, fs_path = _fs(path, storage_options)
    if fs.exists(fs_path):
        if "/" not in fs_path.strip("/") or not fs.isfile(f"{fs_path}/zarr.json"):
            raise MemoxrInputError(
                f"output {str(path)!r} exists and is not a Zarr store (or is a whole bucket); "
                "memoxr only replaces stores it could have written: choose another prefix"
            )
        # No rename on object storage: the old store goes first (a failed rewrite leaves nothing).
        _remove_remote_store(fs, fs_path)
    try:
        yield str(path)
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
    path: PathLike,
    *,
    overwrite: bool = False,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    storage_options: StorageOptions = None,
    show_progress: bool = False,
    final_attrs: Callable[[], Mapping[str, Any]] | None = None,
) -> str:
    """Write ``ds`` as a Zarr v3 store, complete or absent, with consolidated metadata.

    Dask-backed variables are computed chunk by chunk while writing (on the
    active scheduler: threads by default, a ``distributed`` client if one is set).
    ``final_attrs`` is called once the data are written; its attributes are
    stored before the completion marker (e.g. a checksum computed meanwhile).

    Examples
    --------
    >>> import tempfile
    >>> path = write_dataset(xr.Dataset({"x": ("i", [1.0, 2.0])}), f"{tempfile.mkdtemp()}/x.zarr")
    >>> open_dataset(path)["x"].values.tolist()
    [1.0, 2.0]
    """
    so = _remote_options(path, storage_options) if is_url(path) else None
    schema = str(ds.attrs.get("schema", ""))
    with store_output(path, overwrite=overwrite, storage_options=so) as target:
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
            compute(delayed, show_progress=show_progress)
            group = zarr.open_group(target, mode="r+", storage_options=so if is_url(target) else None)
            if final_attrs is not None:
                group.attrs.update(dict(final_attrs()))
            zarr.consolidate_metadata(group.store)
            # The marker last, in the same root zarr.json PUT that keeps the consolidated metadata.
            group = zarr.open_group(target, mode="r+", storage_options=so if is_url(target) else None)
            group.attrs[COMPLETE_ATTR] = True
    return str(path)


def open_dataset(path: PathLike | zarr.abc.store.Store, *, chunks: Any = None, storage_options: StorageOptions = None) -> xr.Dataset:
    """Open a memoxr Zarr store lazily (one dask chunk per Zarr chunk by default).

    ``path`` is a folder, an ``s3://`` URL (``storage_options`` for fsspec), or
    any zarr ``Store`` (for instance a wrapper).

    Examples
    --------
    >>> import tempfile
    >>> path = write_dataset(xr.Dataset({"x": ("i", [1.0, 2.0])}), f"{tempfile.mkdtemp()}/x.zarr")
    >>> ds = open_dataset(path)
    >>> ds["x"].chunks, float(ds["x"].sum())
    (((2,),), 3.0)
    >>> open_dataset(f"{tempfile.mkdtemp()}/none.zarr")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: store '.../none.zarr' does not exist
    """
    source = str(path)
    store = path if isinstance(path, zarr.abc.store.Store) else source
    so = _remote_options(store, storage_options) if isinstance(store, str) and is_url(store) else None
    if isinstance(store, str) and not _exists(store, so):
        raise MemoxrInputError(f"store {source!r} does not exist")
    try:
        attrs = dict(zarr.open_group(store, mode="r", storage_options=so).attrs)
    except PermissionError as exc:
        raise MemoxrInputError(describe_access_error(source, exc)) from exc
    except Exception as exc:  # zarr raises several kinds for a location that is not a store
        raise MemoxrInputError(f"{source!r} is not a readable Zarr store: {exc}") from exc
    check_complete(attrs, source=source)
    try:
        with _zarr_v3_quiet():
            ds = xr.open_zarr(store, consolidated=True, chunks={} if chunks is None else chunks, storage_options=so)
    except Exception as exc:  # e.g. the writer died between the marker and the consolidated metadata
        raise IncompleteStoreError(
            f"{source!r}: store is damaged or incomplete ({type(exc).__name__}: {exc}); write it again with --overwrite"
        ) from exc
    ds.attrs.pop(COMPLETE_ATTR, None)
    return ds


def _exists(path: str, storage_options: StorageOptions) -> bool:
    return _probe(path, storage_options, local=Path.exists, remote="exists")


def open_file(path: PathLike, mode: str = "rb", *, storage_options: StorageOptions = None) -> Any:
    """An fsspec file for a local path or URL (use as a context manager).

    Examples
    --------
    >>> import tempfile
    >>> path = f"{tempfile.mkdtemp()}/notes.txt"
    >>> with open_file(path, "w") as fp:
    ...     _ = fp.write("hello")
    >>> with open_file(path, "r") as fp:
    ...     fp.read()
    'hello'
    """
    return fsspec.open(str(path), mode, **(_remote_options(path, storage_options) if is_url(path) else {}))


def file_exists(path: PathLike, *, storage_options: StorageOptions = None) -> bool:
    """True when ``path`` (local or URL) is a file; a folder or a missing path is not.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.npz").write_bytes(b"")
    >>> file_exists(folder / "a.npz"), file_exists(folder), file_exists(folder / "b.npz")
    (True, False, False)
    """
    return _probe(path, storage_options, local=Path.is_file, remote="isfile")


def _probe(path: PathLike, storage_options: StorageOptions, *, local: Any, remote: str) -> bool:
    """``local(Path)`` for a local path; the fsspec method ``remote`` for a URL, errors made clear."""
    if not is_url(path):
        return bool(local(Path(path)))
    fs, fs_path = _fs(path, storage_options)
    _check_bucket(fs, fs_path, path)
    try:
        return bool(getattr(fs, remote)(fs_path))
    except (PermissionError, OSError) as exc:
        raise MemoxrInputError(describe_access_error(path, exc, _endpoint_of(fs))) from exc


#: Keys of the seed's MinIO ``credentials.json``; ``url`` and ``api`` may also be present.
CREDENTIALS_KEYS = ("endpoint", "accessKey", "secretKey")


def resolve_storage_options(
    storage_options: str | Mapping[str, Any] | None = None, credentials: PathLike | None = None
) -> dict[str, Any]:
    """fsspec options from JSON text or a dict, and/or a MinIO ``credentials.json``.

    The credentials file has the seed's form: ``endpoint`` (``host:port``, or a
    URL with its scheme; plain ``host:port`` means ``http://``), ``accessKey``,
    ``secretKey``, ``api`` (``s3v4``) and ``path`` (``auto``/``on``/``off``: path-style
    addressing, which MinIO needs). Explicit ``storage_options`` win over the file.
    With neither, fsspec/s3fs read the usual places (``AWS_*`` environment
    variables, ``~/.aws``). :data:`S3_TIMEOUTS` fill ``config_kwargs`` keys not
    given. Error messages never quote secrets.

    Examples
    --------
    >>> options = resolve_storage_options('{"anon": true}')
    >>> options["anon"], sorted(options["config_kwargs"])
    (True, ['connect_timeout', 'read_timeout', 'retries'])
    >>> import tempfile
    >>> credentials = Path(tempfile.mkdtemp()) / "credentials.json"
    >>> _ = credentials.write_text('{"endpoint": "127.0.0.1:9000", "accessKey": "minio", "secretKey": "minio123"}')
    >>> resolve_storage_options(credentials=credentials)["client_kwargs"]
    {'endpoint_url': 'http://127.0.0.1:9000'}
    """
    options: dict[str, Any] = {}
    if credentials is not None:
        options.update(_minio_options(credentials))
    if isinstance(storage_options, str):
        try:
            parsed = json.loads(storage_options)
        except json.JSONDecodeError as exc:
            raise MemoxrInputError(
                f"--storage-options: expected a JSON object, received text that is not JSON ({exc.msg} at "
                f"character {exc.pos})"
            ) from None
        if not isinstance(parsed, dict):
            raise MemoxrInputError(f"--storage-options: expected a JSON object, received a JSON {type(parsed).__name__}")
        storage_options = parsed
    if storage_options:
        for key, value in dict(storage_options).items():
            if isinstance(value, dict) and isinstance(options.get(key), dict):
                options[key] = {**options[key], **value}
            else:
                options[key] = value
    # Every command gets the object-storage timeouts, whichever module opens the files.
    return with_timeouts(options)


def _minio_options(credentials: PathLike) -> dict[str, Any]:
    path = Path(credentials)
    if not path.is_file():
        raise MemoxrInputError(f"--credentials: file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MemoxrInputError(f"--credentials: {str(path)!r} is not a JSON file") from None
    if not isinstance(data, dict):
        raise MemoxrInputError(f"--credentials: {str(path)!r} should hold a JSON object")
    missing = [key for key in CREDENTIALS_KEYS if not data.get(key)]
    if missing:
        raise MemoxrInputError(
            f"--credentials: {str(path)!r} lacks {missing}; expected keys {list(CREDENTIALS_KEYS)} "
            "(and optionally 'api', 'path')"
        )
    endpoint = str(data["endpoint"])
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    addressing = {"auto": "path", "on": "path", "true": "path", "off": "virtual", "false": "virtual"}
    config: dict[str, Any] = {"s3": {"addressing_style": addressing.get(str(data.get("path", "auto")).lower(), "path")}}
    if data.get("api") == "s3v4":
        config["signature_version"] = "s3v4"
    return {
        "key": data["accessKey"],
        "secret": data["secretKey"],
        "client_kwargs": {"endpoint_url": endpoint},
        "config_kwargs": config,
    }
