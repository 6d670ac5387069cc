"""Options and error handling shared by every ``memoxr`` command (kept apart so command modules can import them)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from .errors import MemoxrInputError, OutputExistsError


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn memoxr's input errors, unreachable object storage and unusable files into one
    ``Error: ...`` line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OutputExistsError as exc:
            # On the command line the flag, not the Python keyword.
            message = f"output {exc.path!r} already exists; pass --overwrite to replace it"
        except MemoxrInputError as exc:
            message = str(exc)
        except Exception as exc:
            message = _storage_failure(exc, None)
            if message is None:
                raise
        click.echo(f"Error: {' '.join(message.split())}", err=True)
        sys.exit(2)

    return wrapper


def _endpoint(options: dict | None) -> str | None:
    options = options or {}
    return (options.get("client_kwargs") or {}).get("endpoint_url") or options.get("endpoint_url")


def _storage_failure(exc: BaseException, options: dict | None) -> str | None:
    """One line for a failure to reach object storage or to use a file, else None (never quotes the options)."""
    from .storage import connection_failure

    message = connection_failure(exc, _endpoint(options))
    if message is None and isinstance(exc, OSError) and exc.filename is not None:
        message = f"cannot use {str(exc.filename)!r}: {exc.strerror or exc}"
    return message


overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace OUTPUT if it exists (it is kept until the new one is complete)."
)
allow_pickle_option = click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow arrays of Python objects in an .npz (this unpickles: only for files you trust).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


def remote_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--storage-options``, ``--credentials`` and ``--scheduler``, resolved for the command.

    The command receives ``storage_options`` (a dict or None) and runs inside the
    chosen dask scheduler.
    """

    @click.option(
        "--storage-options",
        metavar="JSON",
        default=None,
        help="fsspec options for s3:// paths as JSON, e.g. '{\"client_kwargs\": {\"endpoint_url\": "
        "\"http://127.0.0.1:9000\"}}'. Timeouts: connect 5 s, read 8 s, one attempt per s3fs try, unless "
        "config_kwargs sets them.  [default: AWS_* environment variables, ~/.aws]",
    )
    @click.option(
        "--credentials",
        type=click.Path(dir_okay=False),
        default=None,
        help="MinIO credentials.json (endpoint, accessKey, secretKey, api, path) for s3:// paths.",
    )
    @click.option(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="threads, processes, synchronous, or a dask scheduler address (tcp://host:8786).  "
        "[default: $MEMOXR_SCHEDULER, else threads]",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, storage_options: str | None, credentials: str | None, scheduler: str | None, **kwargs: Any) -> Any:
        from .scheduler import use_scheduler
        from .storage import resolve_storage_options

        options = resolve_storage_options(storage_options, credentials)
        try:
            with use_scheduler(scheduler):
                return func(*args, storage_options=options, **kwargs)
        except (MemoxrInputError, OutputExistsError):
            raise
        except Exception as exc:
            message = _storage_failure(exc, options)  # here the endpoint is known
            if message is None:
                raise
            raise MemoxrInputError(message) from None

    return wrapper
