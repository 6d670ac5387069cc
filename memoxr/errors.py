"""Exceptions memoxr raises for input it cannot use.

The CLI turns each into a one-line message and exit status 2.
"""

from __future__ import annotations

import contextlib


class MemoxrInputError(ValueError):
    """Bad input: a missing key, a wrong shape, dtype or value, an unknown name.

    Messages name the key or argument, what was expected and what was received.
    """


class OutputExistsError(FileExistsError):
    """The output exists and ``overwrite`` was not given (``paths``: every existing output of the call).

    Examples
    --------
    >>> print(OutputExistsError("scores.zarr", "stats.csv"))
    outputs 'scores.zarr' and 'stats.csv' already exist; pass overwrite=True to replace them
    >>> import pickle
    >>> pickle.loads(pickle.dumps(OutputExistsError("a.zarr", "b.csv"))).paths
    ('a.zarr', 'b.csv')
    """

    def __init__(self, path: str, *more: str) -> None:
        super().__init__(f"{existing_outputs(path, *more)}; pass overwrite=True to replace {'them' if more else 'it'}")
        self.path = path
        self.paths = (path, *more)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:  # rebuilt from its paths (across processes), not its message
        return (type(self), self.paths)


def existing_outputs(*paths: str) -> str:
    """``output 'a' already exists``, or ``outputs 'a' and 'b' already exist``."""
    if len(paths) == 1:
        return f"output {paths[0]!r} already exists"
    names = ", ".join(repr(p) for p in paths[:-1]) + f" and {paths[-1]!r}"
    return f"outputs {names} already exist"


class IncompleteStoreError(MemoxrInputError):
    """A store that was never finished (an interrupted write) or is not memoxr's."""


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""


def damaged_chunk(store: str, variable: str, coords: tuple[int, ...], key: str, reason: str, *,
                  verb: str = "decoded") -> str:
    """The one-line message for a chunk of a Zarr store that could not be ``verb`` (read, decoded).

    Examples
    --------
    >>> damaged_chunk("s.zarr", "influence", (0, 1, 0), "c/0/1/0", "RuntimeError: -1")
    "store 's.zarr': variable 'influence', chunk (0, 1, 0) (object 'c/0/1/0') could not be decoded (RuntimeError: -1); the store is damaged: write it again"
    """
    damaged = "; the store is damaged: write it again" if verb == "decoded" else ""
    return f"store {store!r}: variable {variable!r}, chunk {coords} (object {key!r}) could not be {verb} ({reason}){damaged}"


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
