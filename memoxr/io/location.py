"""Where data lives: a local path or an fsspec URL (``s3://``) and the options that reach it.

:class:`Location` is resolved once, from a path or URL and storage options, where a public
function or command receives them; everything below takes the Location, so options are
normalised in one place (:meth:`Location.of`): object storage gets :data:`S3_TIMEOUTS`, a
missing ``s3fs`` names the ``[s3]`` extra, and errors never quote credentials. :func:`locate`
resolves an argument that may also be data (a Dataset, arrays, None); :meth:`Location.at` is a
file found under a folder, with the folder's options. tests/test_location_boundary.py keeps
``storage_options`` out of every function that is not public.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._optional import require
from ..errors import MemoxrInputError, connection_failure

if TYPE_CHECKING:
    import fsspec  # imported where a filesystem is made: a local store is read without it

PathLike = str | os.PathLike[str]
#: The one type of ``storage_options`` (fsspec options) wherever a public function takes them.
StorageOptions = Mapping[str, Any] | None
T = TypeVar("T")


def is_url(path: object) -> bool:
    """True for ``protocol://`` paths other than ``file://``.

    Examples
    --------
    >>> is_url("s3://bucket/influence.zarr"), is_url("runs/influence.zarr"), is_url("file:///tmp/a.zarr")
    (True, False, False)
    """
    text = path.path if isinstance(path, Location) else str(path)
    return "://" in text and not text.startswith("file://")


def local_version(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """Which version of the local file at ``path`` is there: its inode, size, mtime and ctime (OSError if none).

    For dask keys: a file written again, even to the same size or with its mtime put back, gets another.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as file:
    ...     local_version(file.name) == local_version(file.name)
    True
    """
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


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


def _remote_options(path: PathLike, options: StorageOptions) -> dict[str, Any]:
    if str(path).split("://", 1)[0] in ("s3", "s3a"):
        require("s3fs", "s3")  # fsspec's own ImportError names no extra
        return with_timeouts(options)
    return dict(options or {})


def _endpoint_of(fs: fsspec.AbstractFileSystem) -> str | None:
    return (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url") or getattr(fs, "endpoint_url", None)


@dataclass(frozen=True)
class Location:
    """A local path or URL with the fsspec options that reach it, normalised once.

    Build one with :meth:`of` where a path and ``storage_options`` come in; pass it down
    instead of the pair. Functions of :mod:`memoxr.io` accept a Location wherever they
    accept a path.

    Examples
    --------
    >>> Location.of("data/influence.zarr").is_url
    False
    >>> remote = Location.of("s3://bucket/influence.zarr", {"anon": True})
    >>> remote.is_url, remote.storage_options["config_kwargs"]["connect_timeout"]
    (True, 5)
    >>> Location.of(remote) is remote
    True
    """

    path: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)  # may hold secrets

    @classmethod
    def of(cls, path: PathLike | Location, storage_options: StorageOptions = None) -> Location:
        """``path`` resolved with ``storage_options`` (a Location is returned as it is)."""
        if isinstance(path, Location):
            # The same options again are fine (compared as resolved: URLs get default timeouts).
            if storage_options and cls.of(path.path, storage_options).storage_options != dict(path.storage_options):
                raise MemoxrInputError(
                    f"storage_options: {path.path!r} is a Location that carries its own options; "
                    "expected storage_options=None with it"
                )
            return path
        text = os.fspath(path)
        if not isinstance(text, str):
            raise MemoxrInputError(f"path: expected a str or os.PathLike path, received {type(path).__name__}")
        return cls(text, _remote_options(text, storage_options) if is_url(text) else dict(storage_options or {}))

    def at(self, path: str) -> Location:
        """Another path reached with the same options (a file found under this folder).

        >>> Location.of("s3://bucket/runs", {"anon": True}).at("s3://bucket/runs/0/a.npz").storage_options["anon"]
        True
        """
        return Location(path, self.storage_options)

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:
        return self.path

    @property
    def is_url(self) -> bool:
        return is_url(self.path)

    @cached_property
    def _filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        import fsspec.core

        return fsspec.core.url_to_fs(self.path, **self.storage_options)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem (created on first use)."""
        return self._filesystem[0]

    @property
    def fs_path(self) -> str:
        """The path as the filesystem spells it (no protocol)."""
        return self._filesystem[1]

    @property
    def endpoint(self) -> str | None:
        """The object-storage endpoint, for messages (never the credentials)."""
        return _endpoint_of(self.fs) if self.is_url else None


def locate(value: T, storage_options: StorageOptions = None) -> T | Location:
    """``value`` resolved to a :class:`Location` when it is a path or URL; anything else as it is.

    For public functions whose argument may also be data (a Dataset, a mapping of arrays) or None.

    Examples
    --------
    >>> locate("s3://bucket/trials.npz", {"anon": True}).is_url, locate(None), locate({"mask": 1})
    (True, None, {'mask': 1})
    """
    return Location.of(value, storage_options) if isinstance(value, str | os.PathLike) else value


def locate_each(values: Any, storage_options: StorageOptions = None) -> Any:
    """:func:`locate` of one value, or of each value of a mapping (``NAME -> path or pattern``).

    Examples
    --------
    >>> patterns = locate_each({"loss": "s3://b/loss_{epoch}.npy", "ids": [1, 2]}, {"anon": True})
    >>> patterns["loss"].storage_options["anon"], patterns["ids"], locate_each(None)
    (True, [1, 2], None)
    """
    if isinstance(values, Mapping):
        return {key: locate(value, storage_options) for key, value in values.items()}
    return locate(values, storage_options)


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


def open_file(path: PathLike | Location, mode: str = "rb", *, storage_options: StorageOptions = None) -> Any:
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
    import fsspec

    location = Location.of(path, storage_options)  # the public boundary: options resolved here
    return fsspec.open(location.path, mode, **(location.storage_options if location.is_url else {}))


def open_bytes(location: Location) -> Any:
    """A file to read bytes from (use as a context manager): a plain local path through Python's own
    file, with no fsspec to import (12 ms) or to go through on each read; a URL through fsspec."""
    if "://" not in location.path:
        return open(location.path, "rb")
    return open_file(location)


def file_exists(path: PathLike | Location, *, storage_options: StorageOptions = None) -> bool:
    """True when ``path`` (local or URL) is a file; a folder or a missing path is not.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.npz").write_bytes(b"")
    >>> file_exists(folder / "a.npz"), file_exists(folder), file_exists(folder / "b.npz")
    (True, False, False)
    """
    return _probe(Location.of(path, storage_options), local=Path.is_file, remote="isfile")


def _exists(location: Location) -> bool:
    return _probe(location, local=Path.exists, remote="exists")


def _probe(location: Location, *, local: Any, remote: str) -> bool:
    """``local(Path)`` for a local path; the fsspec method ``remote`` for a URL, errors made clear."""
    path = location.path
    if not location.is_url:
        return bool(local(Path(location.path)))
    fs, fs_path = location.fs, location.fs_path
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


def stored_bytes(path: PathLike | Location, variable: str) -> int | None:
    """Bytes of ``variable``'s chunk (or shard) objects in a Zarr store, from a listing; None if unknown."""
    try:
        location = Location.of(path)
        fs, root = location.fs, location.fs_path
        found = fs.find(f"{root.rstrip('/')}/{variable}", detail=True)
    except (OSError, ValueError):
        return None
    sizes = [info.get("size") or 0 for name, info in found.items() if not name.endswith(("zarr.json", ".zarray"))]
    return int(sum(sizes)) if sizes else None


def file_size(path: PathLike | Location) -> int | None:
    """Size in bytes of one file (local or URL); None if it cannot be listed."""
    try:
        location = Location.of(path)
        return int(location.fs.size(location.fs_path))
    except (OSError, ValueError):
        return None


#: Names that announce a file of another format: a Zarr store written there would be a folder named so
#: (``--output scores.csv`` meant for ``--stats-csv``, say). Checked only where a store is written.
_FILE_FORMAT_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".json", ".parquet", ".npy", ".npz", ".zip", ".h5", ".hdf5", ".nc", ".pkl",
    ".pickle", ".png", ".pdf", ".svg",
)


def file_format_suffix(path: PathLike | Location) -> str | None:
    """The suffix (as written) of ``path`` when it names a file of another format than a Zarr store, else None.

    Examples
    --------
    >>> file_format_suffix("scores.zarr"), file_format_suffix("s3://bucket/run-7"), file_format_suffix("out.CSV/")
    (None, None, '.CSV')
    """
    name = str(path).rstrip("/\\")
    known = next((s for s in _FILE_FORMAT_SUFFIXES if name.lower().endswith(s)), None)
    return None if known is None else name[-len(known):]


def check_store_name(path: PathLike | Location, *, also: str = "") -> None:
    """Refuse a Zarr store output whose name ends in another file format's suffix (``also``: what
    else the caller accepts, added to the message).

    Examples
    --------
    >>> check_store_name("scores.zarr"); check_store_name("s3://bucket/run-7")
    >>> check_store_name("scores.csv")
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: output 'scores.csv': ends in '.csv', a file format, but a Zarr store is a folder; expected a name ending in .zarr (or no suffix)
    """
    suffix = file_format_suffix(path)
    if suffix is not None:
        name = str(path)
        raise MemoxrInputError(
            f"output {name!r}: ends in {suffix!r}, a file format, but a Zarr store is a folder; "
            f"expected a name ending in .zarr (or no suffix){also}"
        )


def overlap(a: PathLike | Location, b: PathLike | Location) -> str | None:
    """How two locations overlap: ``"same"``, ``"inside"`` (``a`` lies in ``b``), ``"contains"``, or None.

    Local paths are compared resolved (symlinks followed, ``..`` and trailing slashes gone); URLs
    by their text, as object storage names keys. A URL and a local path never overlap.

    Examples
    --------
    >>> overlap("s.zarr", "./s.zarr/"), overlap("s.zarr/x.csv", "s.zarr"), overlap("s.zarr", "t.zarr")
    ('same', 'inside', None)
    >>> overlap("s3://b/run", "s3://b/run/stats.csv"), overlap("s3://b/run", "s3://b/run2")
    ('contains', None)
    """
    a_text, b_text = str(a), str(b)  # a Location prints as its path
    if is_url(a_text) != is_url(b_text):
        return None
    if is_url(a_text):
        left, right = a_text.rstrip("/"), b_text.rstrip("/")
        inside, contains = left.startswith(right + "/"), right.startswith(left + "/")
        same = left == right
    else:
        pa, pb = Path(a_text).resolve(), Path(b_text).resolve()
        same, inside, contains = pa == pb, pb in pa.parents, pa in pb.parents
    return "same" if same else "inside" if inside else "contains" if contains else None


def refuse_overlapping(inputs: Mapping[str, PathLike | Location | None], outputs: Mapping[str, PathLike | Location | None]) -> None:
    """Refuse an output that is, holds or lies inside an input or another output (names: the arguments).

    Replacing it would destroy what is read, or what was just written.

    Examples
    --------
    >>> refuse_overlapping({"--input": "in.zarr"}, {"--output": "s.zarr", "--stats-csv": "s.csv"})
    >>> refuse_overlapping({"--input": "in.zarr"}, {"--output": "s.zarr", "--stats-csv": "s.zarr/x.csv"})
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: --stats-csv 's.zarr/x.csv' lies inside --output 's.zarr'; expected outputs apart from each other and from the inputs
    """
    given_out = [(name, path) for name, path in outputs.items() if path is not None]
    given_in = [(name, path) for name, path in inputs.items() if path is not None]
    pairs = [(o, i) for o in given_out for i in given_in]
    pairs += [(given_out[j], given_out[k]) for j in range(len(given_out)) for k in range(j)]
    for (out_name, out_path), (other_name, other_path) in pairs:
        how = overlap(out_path, other_path)
        if how is not None:
            relation = {"same": "is the same path as", "inside": "lies inside", "contains": "holds"}[how]
            out_text, other_text = str(out_path), str(other_path)
            raise MemoxrInputError(
                f"{out_name} {out_text!r} {relation} {other_name} {other_text!r}; "
                "expected outputs apart from each other and from the inputs"
            )

