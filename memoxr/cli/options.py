"""Options and error handling shared by every ``memoxr`` command (kept apart so command modules can import them)."""

from __future__ import annotations

import copy
import functools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import MemoxrInputError, MissingExtraError, OutputExistsError, existing_outputs

# Library messages name Python keywords ("pass overwrite=True (--overwrite)"); the command line
# shows the flag alone. Keywords of the library that are also flags of some command:
_KEYWORD_FLAGS = ("overwrite", "allow_pickle", "full")
_KEYWORD_PATTERN = re.compile(r"\b(" + "|".join(_KEYWORD_FLAGS) + r")=True(?: \(--[a-z-]+\))?")


def cli_wording(message: str) -> str:
    """``message`` with Python keywords (``overwrite=True``) written as their flags (``--overwrite``).

    Example
    -------
    >>> cli_wording("pass allow_pickle=True (--allow-pickle) if you trust this file")
    'pass --allow-pickle if you trust this file'
    """
    return _KEYWORD_PATTERN.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn memoxr's input errors, unreachable object storage and unusable files into one
    ``Error: ...`` line on stderr and exit status 2 (no traceback).

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @handle_errors
    ... def replace():
    ...     raise MemoxrInputError("output exists; pass overwrite=True to replace it")
    >>> result = CliRunner().invoke(replace)
    >>> result.exit_code, result.stderr.strip()
    (2, 'Error: output exists; pass --overwrite to replace it')
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        message: str | None
        try:
            return func(*args, **kwargs)
        except OutputExistsError as exc:
            message = f"{existing_outputs(*exc.paths)}; pass --overwrite to replace {'them' if len(exc.paths) > 1 else 'it'}"
        except (MemoxrInputError, MissingExtraError) as exc:
            message = str(exc)
        except Exception as exc:
            message = _storage_failure(exc, None)
            if message is None:
                raise
        click.echo(f"Error: {cli_wording(' '.join(message.split()))}", err=True)
        sys.exit(2)

    return wrapper


def _endpoint(options: dict | None) -> str | None:
    options = options or {}
    return (options.get("client_kwargs") or {}).get("endpoint_url") or options.get("endpoint_url")


def _storage_failure(exc: BaseException, options: dict | None) -> str | None:
    """One line for a failure to reach object storage or to use a file, else None (never quotes the options)."""
    from ..errors import connection_failure

    message = connection_failure(exc, _endpoint(options))
    if message is None and isinstance(exc, OSError) and exc.filename is not None:
        message = f"cannot use {str(exc.filename)!r}: {exc.strerror or exc}"
    return message


def overwrite_flag(
    help: str = "Replace OUTPUT if it exists (it is kept until the new one is complete).",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--overwrite``, declared once; a command whose output is not OUTPUT says which it replaces."""
    return click.option("--overwrite", is_flag=True, help=help)


overwrite_option = overwrite_flag()
allow_pickle_option = click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow arrays of Python objects in an .npz (this unpickles: only for files you trust).",
)


def refuse_existing_local_outputs(
    outputs: Sequence[str | None], *, overwrite: bool, inputs: Sequence[str] = (), stores: Sequence[str | None] = ()
) -> None:
    """Refuse existing local outputs at once, before the command's imports (about 0.4 s).

    Only where the library would refuse the same, with its message: when every output
    given is a local path that exists (the library then names them all, before any
    other check of theirs), and none of ``stores`` (the outputs that are Zarr stores)
    is named like a file of another format (the library refuses that first). Otherwise
    the library decides: an input or an output that is a URL, two equal outputs,
    outputs that overlap an input or each other (one in or holding the other), an
    output that does not exist yet (its parent, a dangling link, a folder that refuses
    writes: the library checks each before reporting the others).
    """
    from ..io.location import file_format_suffix, is_url, refuse_overlapping

    given = [path for path in outputs if path is not None]
    if overwrite or not given or len(set(given)) < len(given) or any(is_url(path) for path in (*inputs, *given)):
        return
    try:
        refuse_overlapping({f"input {i}": p for i, p in enumerate(inputs)}, {f"output {i}": p for i, p in enumerate(given)})
    except MemoxrInputError:
        return  # an output that is, holds or lies in an input or the other output: the library refuses that
    if not all(Path(path).exists() for path in given):
        return
    if any(file_format_suffix(path) for path in stores if path is not None):
        return
    raise OutputExistsError(*(str(Path(path)) for path in given))


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--quiet``/``-q``: without it the command runs inside :func:`memoxr.compute.progress.progress`, so every
    computation draws a bar; the command still receives ``quiet``."""

    @click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
    @functools.wraps(func)
    def wrapper(*args: Any, quiet: bool, **kwargs: Any) -> Any:
        from ..compute import (
            progress as progress_module,  # looked up per call: tests may replace it
        )

        with progress_module.progress(not quiet):
            return func(*args, quiet=quiet, **kwargs)

    return wrapper


#: ``--dry-run`` of the commands that read large data (calculate, estimate, ingest, pairs).
dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the cost plan (chunks, bytes to read, dask tasks, predicted peak memory per worker) "
    "from metadata, then stop: no data read, nothing written.",
)

#: ``--skipna/--no-skipna`` of the commands that reduce (calculate, evaluate, update-csv, compare): the
#: ``skipna`` keyword of the library, ``None`` when neither is given (the rule of memoxr.compute.manners).
skipna_option = click.option(
    "--skipna/--no-skipna",
    default=None,
    help="--skipna: leave NaN values out everywhere (of influence rows, proxies' epochs, statistics, rankings, "
    "metrics); --no-skipna: let them make results NaN everywhere.  [default: NaN propagates through a sample's "
    "own values and per-class statistics; samples with a NaN score are left out of rankings and metrics]",
)


def remote_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--storage-options``, ``--credentials`` and ``--scheduler``, resolved for the command.

    The command receives ``storage_options`` (a dict or None) and runs inside the
    chosen dask scheduler.

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @remote_options
    ... def show(storage_options):
    ...     click.echo(", ".join(sorted(storage_options)))
    >>> CliRunner().invoke(show, ["--storage-options", '{"anon": true}']).output.strip()
    'anon, config_kwargs'
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
        from ..compute.scheduler import use_scheduler
        from ..io.location import resolve_storage_options

        options = resolve_storage_options(storage_options, credentials)
        try:
            with use_scheduler(scheduler):
                return func(*args, storage_options=options, **kwargs)
        except (MemoxrInputError, OutputExistsError, MissingExtraError):
            raise
        except Exception as exc:
            message = _storage_failure(exc, options)  # here the endpoint is known
            if message is None:
                raise
            raise MemoxrInputError(message) from None

    return wrapper


def name_value_pairs(values: Sequence[str], option: str, *, form: str = "NAME=VALUE", example: str) -> dict[str, str]:
    """The repeated ``option``'s ``NAME=VALUE`` texts as a dict: the one parser of every command.

    The name ends at the first ``=`` (a value, often a path, may hold more). An
    item without a name or a value, or a name given twice, is refused, naming
    ``option``, the ``form`` expected (with an ``example``) and what was received.

    Examples
    --------
    >>> name_value_pairs(["loss=a.npy", "acc=runs/noise=0.1.npy"], "--var", example="loss=a.npy")
    {'loss': 'a.npy', 'acc': 'runs/noise=0.1.npy'}
    >>> name_value_pairs(["noise"], "--sel", form="DIM=VALUE", example="noise=0.1")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: --sel 'noise': expected DIM=VALUE, e.g. noise=0.1
    >>> name_value_pairs(["a=1", "a=2"], "--sel", example="noise=0.1")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: --sel: 'a' given twice; expected each name once
    """
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise MemoxrInputError(f"{option} {item!r}: expected {form}, e.g. {example}")
        if name in out:
            raise MemoxrInputError(f"{option}: {name!r} given twice; expected each name once")
        out[name] = value
    return out


class AliasedOption(click.Option):
    """An option that also answers to old names (``aliases``), left out of ``--help``.

    Example
    -------
    >>> option = click.option("--precision-at", cls=AliasedOption, aliases=["--k"], type=int)
    """

    def __init__(self, param_decls: Sequence[str], *, aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__([*param_decls, *aliases], **kwargs)
        self.aliases = tuple(aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown, self.opts = self.opts, [name for name in self.opts if name not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


class HiddenArguments(click.Argument):
    """Paths given as arguments, the older form of ``--input``/``--output``; not in the usage line."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def positional_paths(flags: Sequence[tuple[str, str, bool]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Also accept the values of path options as positional arguments, in order (hidden aliases).

    ``flags`` lists ``(flag, parameter name, required)``, e.g. ``("--input", "input_path", True)``.
    ``memoxr convert a.npz b.zarr`` then means ``memoxr convert --input a.npz --output b.zarr``.
    Put it under ``@click.command`` and above the command's options.

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @positional_paths([("--input", "input_path", True), ("--output", "output_path", False)])
    ... @click.option("--input", "input_path")
    ... @click.option("--output", "output_path")
    ... def copy(input_path, output_path):
    ...     click.echo(f"{input_path} -> {output_path}")
    >>> CliRunner().invoke(copy, ["a.npz", "b.zarr"]).output.strip()
    'a.npz -> b.zarr'
    >>> CliRunner().invoke(copy, ["--output", "b.zarr", "a.npz"]).output.strip()
    'a.npz -> b.zarr'
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, positional_paths: tuple[str, ...] = (), **kwargs: Any) -> Any:
            return func(*args, **_resolve_positionals(positional_paths, flags, kwargs))

        return click.argument("positional_paths", nargs=-1, cls=HiddenArguments, type=click.Path())(wrapper)

    return decorate


def _resolve_positionals(values: tuple[str, ...], flags: Sequence[tuple[str, str, bool]], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Give the positional ``values``, in order, to the path options not given as options."""
    free = [(flag, name) for flag, name, _ in flags if kwargs.get(name) is None]
    if len(values) > len(free):
        expected = " ".join(flag for flag, _, _ in flags)
        raise click.UsageError(f"got the arguments {list(values)} beyond the paths expected ({expected})")
    for (_, name), value in zip(free, values, strict=False):
        kwargs[name] = value
    for flag, name, required in flags:
        if required and kwargs.get(name) is None:
            raise click.UsageError(f"Missing option '{flag}'.")
    return kwargs


def with_path_options(command: click.Command, flags: Sequence[tuple[str, str]]) -> click.Command:
    """A copy of ``command`` whose positional path arguments become options (``--input``, ``--output``).

    ``flags`` pairs a flag with its help, in the order of the arguments; the
    arguments still work, as hidden aliases. For commands defined outside
    :mod:`memoxr.cli`, so every command names its paths the same way.

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @click.argument("source")
    ... def show(source):
    ...     click.echo(source)
    >>> command = with_path_options(show, [("--input", "The file to read.")])
    >>> CliRunner().invoke(command, ["--input", "a.npz"]).output.strip(), CliRunner().invoke(command, ["a.npz"]).output.strip()
    ('a.npz', 'a.npz')
    """
    arguments = [p for p in command.params if isinstance(p, click.Argument) and p.nargs == 1]
    if not arguments:
        return command
    pairs = list(zip(arguments, flags, strict=False))
    converted = {
        argument.name: click.Option(
            [flag, argument.name], type=argument.type, metavar=argument.metavar or argument.human_readable_name,
            help=help_text + ("  [required]" if argument.required else ""),
        )
        for argument, (flag, help_text) in pairs
    }
    params = [converted.get(p.name, p) if isinstance(p, click.Argument) else p for p in command.params]
    resolve = [(flag, str(argument.name), bool(argument.required)) for argument, (flag, _) in pairs]
    callback = command.callback
    assert callback is not None

    @functools.wraps(callback)
    def run(*args: Any, positional_paths: tuple[str, ...] = (), **kwargs: Any) -> Any:
        return callback(*args, **_resolve_positionals(positional_paths, resolve, kwargs))

    new = copy.copy(command)
    new.params = [*params, HiddenArguments(["positional_paths"], nargs=-1, type=click.Path())]
    new.callback = run
    return new
