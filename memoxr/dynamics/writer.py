"""Record training dynamics epoch by epoch into a dynamics store (a folder or an fsspec URL), resumably.

The store is created whole (every array, coordinate and attribute, complete or
absent, through :func:`memoxr.io.storage.write_dataset` and the completion marker
like any memoxr store) before training starts; afterwards each epoch's
values go into their own Zarr chunks, and the epoch's flag in
``epoch_complete`` is set only after all its values are written. A run that
crashes half way leaves that flag unset: :func:`open_dynamics` ignores the
epoch, and a new :class:`DynamicsWriter` on the same path reports it as not
done so it is written again.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from .._version import __version__
from ..errors import MemoxrInputError, OutputExistsError
from ..io.location import Location, StorageOptions
from ..io.schema import SCHEMA_VERSION
from ..io.storage import check_writable, open_dataset, write_dataset
from .schema import (
    COMPLETION_VAR,
    DYNAMICS_SCHEMA,
    EPOCH,
    SAMPLE,
    check_dynamics_dataset,
    label_variables,
    sample_dim,
)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


class DynamicsWriter:
    """Append per-sample values one epoch (or one batch) at a time to a Zarr store.

    Dims contract: each variable has dims ``(*runs, epoch, sample)``; a value
    written for one run and one epoch is a 1-D array over ``sample`` (or over the
    samples of a batch). No framework dependency: pass numpy arrays (call
    ``.numpy()`` / ``.cpu()`` on tensors first).

    Parameters
    ----------
    path : path or URL
        Store to create, or to resume if it exists: a folder or an fsspec URL
        such as ``s3://bucket/run.zarr``.
    samples : int or 1-D array, optional
        Number of samples, or their identities (coordinate ``sample``). Needed to create.
    epochs : int or 1-D array, optional
        Number of epochs (``0 .. n-1``) or their labels. Needed to create.
    variables : mapping, optional
        Variable name to dtype, e.g. ``{"loss": "float32", "correct": "bool"}``. Needed to create.
    runs : mapping, optional
        Leading run dims and their coordinate values, e.g. ``{"noise": [0.01, 0.1]}``.
    truth : mapping, optional
        Ground truth written at creation, e.g. ``{"is_mislabeled": mask}`` shaped
        ``(*runs, sample)`` or ``(sample,)``.
    sample_order : str
        Name of the sample order (``attrs["sample_order"]``).
    sample_chunk : int, optional
        Zarr chunk length along ``sample`` (default: all samples in one chunk).
    overwrite : bool
        Replace an existing store instead of resuming it.
    storage_options : mapping, optional
        fsspec options for a URL (e.g. an S3 endpoint and keys).

    When ``path`` exists (and not ``overwrite``) the store is reopened; any of
    ``samples``, ``epochs``, ``variables``, ``runs`` given must match it. A
    store written before ``train_id`` was chosen (dim ``sample``) is resumed as is.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.zarr"
    >>> w = DynamicsWriter(path, samples=4, epochs=3, variables={"loss": "float32"})
    >>> for epoch in w.pending_epochs():
    ...     w.write_epoch(epoch, loss=np.full(4, 1.0 / (epoch + 1)))
    >>> from memoxr.dynamics import open_dynamics
    >>> open_dynamics(path)["loss"].astype(float).sum("epoch").values.round(3).tolist()
    [1.833, 1.833, 1.833, 1.833]
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Location,
        *,
        samples: int | Sequence[int] | np.ndarray | None = None,
        epochs: int | Sequence[int] | np.ndarray | None = None,
        variables: Mapping[str, Any] | None = None,
        runs: Mapping[str, Sequence[Any]] | None = None,
        truth: Mapping[str, Any] | None = None,
        sample_order: str = "unknown",
        sample_chunk: int | None = None,
        overwrite: bool = False,
        storage_options: StorageOptions = None,
    ) -> None:
        # Resolved once: the options (object-storage timeouts included) go with the path everywhere.
        self._location = Location.of(path, storage_options)
        self.path: str | Path = self._location.path if self._location.is_url else Path(self._location.path)
        self._zarr_options = dict(self._location.storage_options) if self._location.is_url else None
        if overwrite or not self._exists():
            if samples is None or epochs is None or not variables:
                raise MemoxrInputError(
                    f"DynamicsWriter: store {str(self.path)!r} does not exist; expected samples, epochs and "
                    "variables to create it"
                )
            self._create(samples, epochs, variables, runs or {}, truth or {}, sample_order, sample_chunk, overwrite)
        self._open()
        self._check_matches(samples, epochs, variables, runs)
        self._pending: dict[tuple[int, ...], np.ndarray] = {}

    # ---------------------------------------------------------------- creation

    def _create(
        self, samples: Any, epochs: Any, variables: Mapping[str, Any], runs: Mapping[str, Sequence[Any]],
        truth: Mapping[str, Any], sample_order: str, sample_chunk: int | None, overwrite: bool,
    ) -> None:
        ids = np.arange(samples, dtype=np.int64) if isinstance(samples, int | np.integer) else np.asarray(samples)
        labels = np.arange(epochs, dtype=np.int64) if isinstance(epochs, int | np.integer) else np.asarray(epochs)
        for arg, arr in (("samples", ids), ("epochs", labels)):
            if arr.ndim != 1 or arr.size == 0 or len(np.unique(arr)) != arr.size:
                raise MemoxrInputError(f"{arg}: expected a positive count or distinct 1-D labels; received {arr!r}")
        run_shape = tuple(len(v) for v in runs.values())
        n, t = ids.size, labels.size
        chunk_n = n if sample_chunk is None else int(sample_chunk)
        data_vars: dict[str, Any] = {}
        encoding: dict[str, dict[str, Any]] = {}
        for name, dtype in variables.items():
            dt = np.dtype(dtype)
            if dt.kind not in "biuf":
                raise MemoxrInputError(f"variable {name!r}: dtype {dt}; expected bool, integer or float")
            chunks = (*(1 for _ in run_shape), 1, chunk_n)
            data_vars[name] = ([*runs, EPOCH, SAMPLE], da.zeros((*run_shape, t, n), dtype=dt, chunks=chunks))
            encoding[name] = {"chunks": chunks}
        data_vars[COMPLETION_VAR] = ([*runs, EPOCH], np.zeros((*run_shape, t), dtype=np.uint8))
        for name, values in truth.items():
            arr = np.asarray(values)
            dims = [*runs, SAMPLE] if arr.ndim == len(run_shape) + 1 else [SAMPLE]
            expected = (*run_shape, n) if len(dims) > 1 else (n,)
            if arr.shape != expected:
                raise MemoxrInputError(f"truth {name!r}: shape {arr.shape}; expected {expected} or ({n},)")
            data_vars[name] = (dims, arr)
        ds = label_variables(xr.Dataset(
            data_vars,
            coords={**{k: np.asarray(v) for k, v in runs.items()}, EPOCH: labels, SAMPLE: ids},
            attrs={
                "schema": DYNAMICS_SCHEMA, "schema_version": SCHEMA_VERSION, "sample_order": sample_order,
                "writer": "memoxr.dynamics.DynamicsWriter", "memoxr_version": __version__,
            },
        ))
        # Metadata, coordinates and the completion flags only: the recorded chunks stay unwritten
        # until each epoch arrives. Complete or absent, like every store memoxr writes.
        write_dataset(ds, self._location, overwrite=overwrite, encoding=encoding, write_data=False)

    def _exists(self) -> bool:
        """Whether a store is at ``path`` (on object storage, one whose writer died counts as absent)."""
        try:
            check_writable(self._location, overwrite=False)
        except OutputExistsError:
            return True
        return False

    def _open(self) -> None:
        ds = open_dataset(self._location)  # refuses an unfinished store
        check_dynamics_dataset(ds, source=str(self.path))
        if COMPLETION_VAR not in ds:
            raise MemoxrInputError(
                f"store {str(self.path)!r}: no {COMPLETION_VAR!r}; expected a store created by DynamicsWriter"
            )
        self._group: Any = zarr.open_group(str(self.path), mode="r+", storage_options=self._zarr_options)
        self.runs = {str(d): ds[d].values.tolist() for d in ds[COMPLETION_VAR].dims if d != EPOCH}
        self.epochs = ds[EPOCH].values.tolist()
        self.samples = ds[sample_dim(ds, argument=str(self.path))].values
        self.variables = {str(k): v.dtype for k, v in ds.data_vars.items() if EPOCH in v.dims and k != COMPLETION_VAR}

    def _check_matches(self, samples: Any, epochs: Any, variables: Any, runs: Any) -> None:
        def same(a: Any, b: Any) -> bool:
            return np.array_equal(np.asarray(a), np.asarray(b))

        checks = [
            ("samples", samples, len(self.samples) if isinstance(samples, int | np.integer) else self.samples),
            ("epochs", epochs, len(self.epochs) if isinstance(epochs, int | np.integer) else self.epochs),
            ("variables", None if variables is None else sorted(variables), sorted(self.variables)),
            ("runs", None if runs is None else {k: list(v) for k, v in runs.items()}, self.runs),
        ]
        for arg, given, stored in checks:
            if given is None:
                continue
            ok = given == stored if isinstance(given, dict) else same(given, stored)
            if not ok:
                raise MemoxrInputError(
                    f"{arg}: the store {str(self.path)!r} holds {stored!r}; received {given!r} "
                    "(pass overwrite=True to start again)"
                )

    # ---------------------------------------------------------------- indexing

    def _index(self, epoch: Any, run: Mapping[str, Any] | None) -> tuple[int, ...]:
        run = dict(run or {})
        if set(run) != set(self.runs):
            raise MemoxrInputError(f"run: keys {sorted(run)}; expected {sorted(self.runs)}")
        index = []
        for dim, values in self.runs.items():
            if run[dim] not in values:
                raise MemoxrInputError(f"run: {dim}={run[dim]!r} unknown; expected one of {values}")
            index.append(values.index(run[dim]))
        if epoch not in self.epochs:
            raise MemoxrInputError(f"epoch {epoch!r} unknown; expected one of {self.epochs[0]}..{self.epochs[-1]}")
        index.append(self.epochs.index(epoch))
        return tuple(index)

    # ---------------------------------------------------------------- state

    def completed_epochs(self, *, run: Mapping[str, Any] | None = None) -> list[Any]:
        """Epoch labels whose values are all written for ``run``.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> w = DynamicsWriter(pathlib.Path(tempfile.mkdtemp()) / "d.zarr", samples=2, epochs=3, variables={"loss": "f4"})
        >>> w.write_epoch(1, loss=[0.5, 0.25])
        >>> w.completed_epochs(), w.pending_epochs()
        ([1], [0, 2])
        """
        flags = np.asarray(self._group[COMPLETION_VAR][self._index(self.epochs[0], run)[:-1]])
        return [e for e, f in zip(self.epochs, flags, strict=True) if f]

    def pending_epochs(self, *, run: Mapping[str, Any] | None = None) -> list[Any]:
        """Epoch labels still to write for ``run`` (including one interrupted half way).

        Examples
        --------
        >>> import pathlib, tempfile
        >>> w = DynamicsWriter(pathlib.Path(tempfile.mkdtemp()) / "d.zarr", samples=2, epochs=2, variables={"loss": "f4"})
        >>> w.pending_epochs()
        [0, 1]
        """
        done = set(self.completed_epochs(run=run))
        return [e for e in self.epochs if e not in done]

    # ---------------------------------------------------------------- writing

    def _validate_values(self, values: Mapping[str, Any], length: int, *, partial: bool) -> dict[str, np.ndarray]:
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise MemoxrInputError(f"variables {unknown} unknown; expected among {sorted(self.variables)}")
        if not partial and set(values) != set(self.variables):
            raise MemoxrInputError(
                f"write_epoch: variables {sorted(values)}; expected all of {sorted(self.variables)}"
            )
        out = {}
        for name, v in values.items():
            arr = np.asarray(v)
            if arr.shape != (length,):
                raise MemoxrInputError(f"variable {name!r}: shape {arr.shape}; expected ({length},)")
            dtype = self.variables[name]
            if not np.can_cast(arr.dtype, dtype, casting="same_kind"):
                raise MemoxrInputError(f"variable {name!r}: dtype {arr.dtype}; expected values castable to {dtype}")
            out[name] = arr.astype(dtype, copy=False)
        return out

    def write_batch(
        self, epoch: Any, indices: Sequence[int] | np.ndarray, *, run: Mapping[str, Any] | None = None, **values: Any
    ) -> None:
        """Write values for the samples at positions ``indices`` (0-based along ``sample``).

        The epoch counts as complete only after :meth:`finish_epoch`, which
        checks that every sample got a value for every variable.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> w = DynamicsWriter(pathlib.Path(tempfile.mkdtemp()) / "d.zarr", samples=4, epochs=1, variables={"loss": "f4"})
        >>> w.write_batch(0, [2, 3], loss=[0.1, 0.2])
        >>> w.write_batch(0, [0, 1], loss=[0.3, 0.4])
        >>> w.finish_epoch(0)
        >>> w.completed_epochs()
        [0]
        """
        key = self._index(epoch, run)
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= len(self.samples))):
            raise MemoxrInputError(
                f"indices: expected 1-D integer positions in [0, {len(self.samples)}); received {idx!r}"
            )
        arrays = self._validate_values(values, idx.size, partial=True)
        seen = self._pending.setdefault(key, np.zeros((len(self.variables), len(self.samples)), dtype=bool))
        order = sorted(self.variables)
        for name, arr in arrays.items():
            self._group[name].set_orthogonal_selection((*key, idx), arr)
            seen[order.index(name), idx] = True

    def finish_epoch(self, epoch: Any, *, run: Mapping[str, Any] | None = None) -> None:
        """Mark the epoch complete once every value of it was written by this writer.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> w = DynamicsWriter(pathlib.Path(tempfile.mkdtemp()) / "d.zarr", samples=4, epochs=1, variables={"loss": "f4"})
        >>> w.write_batch(0, [0, 1], loss=[0.3, 0.4])
        >>> w.finish_epoch(0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        memoxr.errors.MemoxrInputError: finish_epoch: epoch 0 incomplete; 2 of 4 samples lack a value ...
        """
        key = self._index(epoch, run)
        seen = self._pending.get(key)
        if seen is None or not seen.all():
            missing = 0 if seen is None else int((~seen).any(axis=0).sum())
            n = len(self.samples) if seen is None else missing
            raise MemoxrInputError(
                f"finish_epoch: epoch {epoch!r} incomplete; {n} of {len(self.samples)} samples lack a value "
                f"for some variable; expected every sample written"
            )
        self._group[COMPLETION_VAR][key] = 1  # set last: the epoch is now visible
        del self._pending[key]

    def write_epoch(self, epoch: Any, *, run: Mapping[str, Any] | None = None, **values: Any) -> None:
        """Write every variable for all samples of one epoch, then mark it complete.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> w = DynamicsWriter(pathlib.Path(tempfile.mkdtemp()) / "d.zarr", samples=2, epochs=2,
        ...                    variables={"loss": "f4"}, runs={"seed": [0, 1]})
        >>> w.write_epoch(0, run={"seed": 1}, loss=[0.5, 0.25])
        >>> w.completed_epochs(run={"seed": 1}), w.completed_epochs(run={"seed": 0})
        ([0], [])
        """
        key = self._index(epoch, run)
        arrays = self._validate_values(values, len(self.samples), partial=False)
        for name, arr in arrays.items():
            self._group[name][key] = arr
        self._group[COMPLETION_VAR][key] = 1  # set last: the epoch is now visible
        self._pending.pop(key, None)
