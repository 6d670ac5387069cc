"""Ingestion: per-epoch files -> a dynamics store, every file checked before anything is written.

:func:`plan_ingest` lists the files of each pattern and reads their headers
(grid complete, one file per combination, same length, one dtype per
variable); :func:`ingest_dataset` builds the lazy Dataset; :func:`ingest`
writes it, complete or absent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import fsspec
import numpy as np
import xarray as xr

from .._version import __version__
from ..compute.progress import deprecated_show_progress
from ..compute.scheduler import rechunk
from ..errors import MemoxrInputError
from ..io.chunks import DEFAULT_CHUNK_MB, validate_mb
from ..io.location import Location, StorageOptions, locate, locate_each
from ..io.npy import refuse_pickled
from ..io.schema import SCHEMA_VERSION
from ..io.storage import check_writable, write_dataset
from .files import _array_header, _load, load_array
from .patterns import FIELD, _list, _Pattern, parse_pattern
from .schema import DYNAMICS_SCHEMA, EPOCH, SAMPLE, VARIABLE, label_variables


def _validate_var_patterns(
    variables: str | Location | Mapping[str, str | Location], name: str
) -> list[tuple[str | None, _Pattern]]:
    if isinstance(variables, str | Location):
        p = parse_pattern(variables, argument="pattern")
        return [(None if VARIABLE in p.fields else name, p)]
    if not variables:
        raise MemoxrInputError("variables: expected at least one NAME=PATTERN; received none")
    out: list[tuple[str | None, _Pattern]] = []
    for var, text in variables.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
            raise MemoxrInputError(f"variable name {var!r}: expected a Python identifier such as 'loss'")
        p = parse_pattern(text, argument=f"pattern of variable {var!r}")
        if VARIABLE in p.fields:
            raise MemoxrInputError(
                f"pattern of variable {var!r}: has a {{variable}} field; expected the name to come from "
                f"either NAME=PATTERN or {{variable}}, not both"
            )
        out.append((var, p))
    return out


@dataclass
class _Plan:
    """Everything ingestion needs, validated, before any array is read."""

    run_dims: list[str]
    run_values: dict[str, list[Any]]
    epochs: list[int]
    n_samples: int
    files: dict[str, dict[tuple[Any, ...], str]]  # variable -> (*run, epoch) -> path
    dtypes: dict[str, np.dtype]
    fs: dict[str, fsspec.AbstractFileSystem]
    npz_key: str | None = None  # the array read from each .npz (None: its only array)


def _check_epoch_range(epochs: list[int], expected: Sequence[int] | None) -> None:
    """Epochs must be the ``expected`` ones, or else evenly spaced with no gap."""
    if expected is None:
        diffs = np.diff(epochs)
        step = int(np.gcd.reduce(diffs)) if diffs.size else 1
        expected = range(epochs[0], epochs[-1] + 1, step)
        rule = f"evenly spaced epochs {epochs[0]}..{epochs[-1]} (step {step})"
    else:
        rule = f"epochs {list(expected)}"
    missing = sorted(set(expected) - set(epochs))
    extra = sorted(set(epochs) - set(expected))
    if missing or extra:
        raise MemoxrInputError(
            f"missing epochs: expected {rule}; no file for epochs {missing[:10]}"
            + (f", unexpected epochs {extra[:10]}" if extra else "")
        )


def plan_ingest(
    variables: str | Location | Mapping[str, str | Location], *, name: str = "loss",
    expected_epochs: Sequence[int] | None = None, storage_options: StorageOptions = None, npz_key: str | None = None,
) -> _Plan:
    """List and check every file (names, grid completeness, shapes, dtypes), reading headers only.

    Examples
    --------
    >>> from memoxr.datasets.examples import epoch_loss_files
    >>> pattern = epoch_loss_files()  # loss_run{run}_epoch_{epoch}.npy: 2 runs, 3 epochs, 5 samples
    >>> plan = plan_ingest(pattern)
    >>> plan.run_dims, plan.epochs, plan.n_samples
    (['run'], [0, 1, 2], 5)
    """
    files: dict[str, dict[tuple[Any, ...], str]] = {}
    run_fields: dict[str, list[str]] = {}
    fss: dict[str, fsspec.AbstractFileSystem] = {}
    values_all: dict[str, set[Any]] = {}
    for var, pattern in _validate_var_patterns(locate_each(variables, storage_options), name):
        if EPOCH not in pattern.fields:
            raise MemoxrInputError(f"pattern {pattern.text!r}: no {{epoch}} field; expected one, e.g. '..._epoch_{{epoch}}.npy'")
        listing = _list(pattern, argument="pattern" if var is None else f"pattern of variable {var!r}")
        epochs = listing.values[EPOCH]
        if not all(isinstance(e, int) for e in epochs):
            raise MemoxrInputError(f"pattern {pattern.text!r}: field 'epoch' must be an integer; received e.g. {epochs[0]!r}")
        fields = [f for f in pattern.fields if f not in (EPOCH, VARIABLE)]
        for i, path in enumerate(listing.paths):
            v = listing.values[VARIABLE][i] if var is None else var
            v = str(v)
            key = (*(listing.values[f][i] for f in fields), epochs[i])
            seen = files.setdefault(v, {})
            if key in seen:
                raise MemoxrInputError(
                    f"duplicate matches for variable {v!r} at {dict(zip([*fields, EPOCH], key, strict=True))}: "
                    f"{seen[key]!r} and {path!r}; expected one file per combination"
                )
            seen[key] = path
            run_fields[v] = fields
            fss[v] = pattern.fs
        for f in (*fields, EPOCH):
            values_all.setdefault(f, set()).update(listing.values[f])
    names = list(files)
    first = names[0]
    for v in names[1:]:
        if run_fields[v] != run_fields[first]:
            raise MemoxrInputError(
                f"variable {v!r}: pattern fields {run_fields[v]}; expected the same run fields as "
                f"{first!r}: {run_fields[first]}"
            )
    run_dims = run_fields[first]
    run_values = {f: sorted(values_all[f]) for f in run_dims}
    epochs = sorted(values_all[EPOCH])
    _check_epoch_range(epochs, expected_epochs)
    grid = list(product(*(run_values[f] for f in run_dims), epochs))
    for v in names:
        missing = [key for key in grid if key not in files[v]]
        if missing:
            shown = "; ".join(
                ", ".join(f"{f}={x}" for f, x in zip([*run_dims, EPOCH], key, strict=True)) for key in missing[:5]
            )
            raise MemoxrInputError(
                f"variable {v!r}: missing epochs: {len(missing)} of {len(grid)} files absent; expected one "
                f"file per combination of {run_dims + [EPOCH]} (epochs {epochs[0]}..{epochs[-1]}); "
                f"missing: {shown}{' ...' if len(missing) > 5 else ''}"
            )
    dtypes: dict[str, np.dtype] = {}
    n_samples: int | None = None
    n_from = ""
    for v in names:
        for key in grid:
            path = files[v][key]
            shape, dtype = _array_header(fss[v], path, npz_key)
            refuse_pickled(dtype, f"file {path!r}", "numeric or bool values")
            if len(shape) != 1:
                raise MemoxrInputError(f"file {path!r}: shape {shape}; expected a 1-D array (one value per sample)")
            if n_samples is None:
                n_samples, n_from = shape[0], path
            elif shape[0] != n_samples:
                raise MemoxrInputError(
                    f"ragged lengths: file {path!r} has {shape[0]} samples; expected {n_samples} like {n_from!r}"
                )
            if v not in dtypes:
                dtypes[v] = dtype
            elif dtype != dtypes[v]:
                raise MemoxrInputError(
                    f"mismatched dtypes for variable {v!r}: file {path!r} has {dtype}; expected {dtypes[v]} "
                    f"like the other files of {v!r}"
                )
    assert n_samples is not None
    return _Plan(run_dims, run_values, epochs, n_samples, files, dtypes, fss, npz_key)


def _variable_array(plan: _Plan, var: str, epochs_per_chunk: int) -> da.Array:
    keys = list(product(*(plan.run_values[f] for f in plan.run_dims), plan.epochs))
    fs, dtype, n = plan.fs[var], plan.dtypes[var], plan.n_samples
    blocks = [
        da.from_delayed(dask.delayed(_load)(fs, plan.files[var][key], plan.npz_key), shape=(n,), dtype=dtype)
        for key in keys
    ]
    shape = (*(len(plan.run_values[f]) for f in plan.run_dims), len(plan.epochs), n)
    stacked = da.stack(blocks).reshape(shape)
    return rechunk(stacked, {len(shape) - 2: epochs_per_chunk, len(shape) - 1: -1})


def _truth_array(
    name: str, source: Any, plan: _Plan, *, squeeze: list[str]
) -> tuple[list[str], np.ndarray]:
    """A ground-truth variable: an array/file over ``train_id``, or a pattern over some run fields.

    A path or pattern comes as a :class:`Location` (resolved by the public caller)."""
    if isinstance(source, str | Location) and FIELD.search(str(source)):
        pattern = parse_pattern(source, argument=f"truth {name!r}")
        source = pattern.text
        extra = [f for f in pattern.fields if f not in plan.run_dims]
        if extra:
            raise MemoxrInputError(
                f"truth {name!r} pattern {source!r}: fields {extra}; expected only run fields {plan.run_dims}"
            )
        listing = _list(pattern, argument=f"truth {name!r} pattern")
        dims = [f for f in plan.run_dims if f in pattern.fields]
        index = {tuple(listing.values[f][i] for f in dims): p for i, p in enumerate(listing.paths)}
        grid = list(product(*(plan.run_values[f] for f in dims)))
        missing = [k for k in grid if k not in index]
        if missing:
            raise MemoxrInputError(f"truth {name!r}: no file for {dims} = {missing[:5]}; expected one per run")
        for key in grid:  # headers first: a wrong shape or pickled objects is an error, not a traceback
            shape, dtype = _array_header(pattern.fs, index[key], key_option=None)  # --npz-key is PATTERN's
            refuse_pickled(dtype, f"truth {name!r}: file {index[key]!r}")
            if shape != (plan.n_samples,):
                raise MemoxrInputError(
                    f"truth {name!r}: file {index[key]!r} holds {dtype} "
                    f"of shape {shape}; expected a numeric array of shape ({plan.n_samples},), one per sample"
                )
        arrays = [_load(pattern.fs, index[k], key_option=None) for k in grid]
        values = np.stack(arrays).reshape(*(len(plan.run_values[f]) for f in dims), -1)
        if values.shape[-1] != plan.n_samples:
            raise MemoxrInputError(f"truth {name!r}: {values.shape[-1]} samples; expected {plan.n_samples}")
        keep = [i for i, d in enumerate(dims) if d not in squeeze]
        values = values.reshape([values.shape[i] for i in keep] + [plan.n_samples]) if len(keep) < len(dims) else values
        return [dims[i] for i in keep], values
    values = load_array(source, argument=f"truth {name!r}")
    if values.shape != (plan.n_samples,):
        raise MemoxrInputError(f"truth {name!r}: shape {values.shape}; expected ({plan.n_samples},), one per sample")
    return [], values


def _validate_sample_ids(sample_ids: Any, n: int) -> np.ndarray:
    if sample_ids is None:
        return np.arange(n, dtype=np.int64)
    ids = load_array(sample_ids, argument="sample_ids")
    if ids.shape != (n,):
        raise MemoxrInputError(f"sample_ids: shape {ids.shape}; expected ({n},), one identity per sample")
    if ids.dtype.kind == "f":
        if not np.all(ids == np.round(ids)):
            raise MemoxrInputError("sample_ids: non-integer values; expected integer identities")
        ids = ids.astype(np.int64)
    if len(np.unique(ids)) != n:
        raise MemoxrInputError("sample_ids: repeated identities; expected every sample's identity once")
    return ids


def ingest_dataset(
    variables: str | Location | Mapping[str, str | Location],
    *,
    name: str = "loss",
    sample_order: str = "unknown",
    sample_ids: Any = None,
    truth: Mapping[str, Any] | None = None,
    epochs: Sequence[int] | None = None,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    storage_options: StorageOptions = None,
    npz_key: str | None = None,
) -> xr.Dataset:
    """The lazy dataset :func:`ingest` writes (per-epoch files read when computed); arguments as there.

    Examples
    --------
    >>> from memoxr.datasets.examples import epoch_loss_files
    >>> pattern = epoch_loss_files()  # loss_run{run}_epoch_{epoch}.npy: 2 runs, 3 epochs, 5 samples
    >>> ds = ingest_dataset(pattern)
    >>> ds["loss"].dims, ds["loss"].sum("epoch").values[:, 0].round(2).tolist()
    (('run', 'epoch', 'train_id'), [3.3, 6.3])
    """
    chunk_mb = validate_mb("chunk_mb", chunk_mb)
    # Every path, pattern and file argument resolved once, each its own Location.
    plan = plan_ingest(locate_each(variables, storage_options), name=name, expected_epochs=epochs, npz_key=npz_key)
    ids = _validate_sample_ids(locate(sample_ids, storage_options), plan.n_samples)
    squeeze = [f for f in plan.run_dims if len(plan.run_values[f]) == 1]
    data_vars: dict[str, Any] = {}
    for var in plan.files:
        per_epoch = plan.n_samples * plan.dtypes[var].itemsize
        arr = _variable_array(plan, var, max(1, int(chunk_mb * 2**20 // per_epoch)))
        data_vars[var] = ([*plan.run_dims, EPOCH, SAMPLE], arr)
    for tname, source in (truth or {}).items():
        if tname in data_vars:
            raise MemoxrInputError(f"truth {tname!r}: also a recorded variable; expected a new name")
        dims, values = _truth_array(tname, locate(source, storage_options), plan, squeeze=squeeze)
        data_vars[tname] = ([*dims, SAMPLE], values)
    # Strings as objects: Zarr v3 stores them as variable-length UTF-8 (in its spec).
    coords = {f: np.asarray(plan.run_values[f], dtype=object if isinstance(plan.run_values[f][0], str) else None) for f in plan.run_dims}
    coords.update({EPOCH: np.asarray(plan.epochs, dtype=np.int64), SAMPLE: ids})
    ds = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={
            "schema": DYNAMICS_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "sample_order": sample_order,
            "source_pattern": str(variables) if isinstance(variables, str | Location) else {
                k: str(v) for k, v in variables.items()
            },
            "memoxr_version": __version__,
        },
    )
    if squeeze:
        ds = ds.squeeze(squeeze)
        ds = ds.assign_coords({f: np.asarray(ds[f].item(), dtype=object) for f in squeeze if ds[f].dtype.kind == "U"})
    return label_variables(ds)


def ingest(
    variables: str | Location | Mapping[str, str | Location],
    output: str | os.PathLike[str],
    *,
    name: str = "loss",
    sample_order: str = "unknown",
    sample_ids: Any = None,
    truth: Mapping[str, Any] | None = None,
    epochs: Sequence[int] | None = None,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
    show_progress: bool | None = None,
    npz_key: str | None = None,
) -> Path:
    """Ingest per-epoch ``.npy`` / single-array ``.npz`` files into a dynamics store.

    Parameters
    ----------
    variables : str or mapping
        A file pattern such as ``"losses/loss_{dataset}_run{run}_epoch_{epoch}_noise_{noise}.npy"``
        (the variable is called ``name``, or comes from a ``{variable}`` field), or
        ``{"loss": PATTERN, "correct": PATTERN}``. ``{epoch}`` is required; every
        other field becomes a run dim with the field's values as coordinate (ints,
        else floats, else strings); a field with a single value becomes a scalar
        coordinate. Each file holds one 1-D array, one value per sample.
    output : path
        The Zarr store to write, complete or absent.
    name : str
        Variable name for a pattern without ``{variable}``.
    sample_order : str
        Name of the order the samples follow (``"tfds"``, ``"torchvision"``...).
    sample_ids : array or path, optional
        Identity of each sample (default: its position).
    truth : mapping, optional
        Ground truth such as ``{"is_mislabeled": "masks/mislabeled_noise_{noise}.npy"}``:
        a file or array over ``train_id``, or a pattern whose fields are run fields.
    epochs : sequence of int, optional
        The epochs expected (e.g. ``range(200)``); by default the epochs found
        must be evenly spaced with no gap.
    chunk_mb : float
        Target Zarr chunk size in MB (whole epochs are grouped while they fit).
    storage_options : mapping, optional
        fsspec options for the input files and the output (e.g. an S3 endpoint).
    npz_key : str, optional
        The array to read from each ``.npz`` file; by default each must hold exactly one.

    Every file is listed and its header checked (grid complete, one file per
    combination, same length, one dtype per variable) before anything is written.

    Examples
    --------
    >>> from memoxr.datasets.examples import epoch_loss_files
    >>> pattern = epoch_loss_files()  # loss_run{run}_epoch_{epoch}.npy: 2 runs, 3 epochs, 5 samples
    >>> from memoxr.dynamics import open_dynamics
    >>> store = ingest(pattern, "dyn.zarr", sample_order="tfds")
    >>> dict(open_dynamics(store).sizes)
    {'run': 2, 'epoch': 3, 'train_id': 5}
    """
    target = Location.of(output, storage_options)
    check_writable(target, overwrite=overwrite, kind="folder")
    ds = ingest_dataset(  # each pattern and file its own Location
        locate_each(variables, storage_options), name=name, sample_order=sample_order,
        sample_ids=locate(sample_ids, storage_options), truth=locate_each(truth, storage_options), epochs=epochs,
        chunk_mb=chunk_mb, npz_key=npz_key,
    )
    with deprecated_show_progress(show_progress, "ingest"):
        return Path(write_dataset(ds, target, overwrite=overwrite))
