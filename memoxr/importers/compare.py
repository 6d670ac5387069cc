"""Every per-sample score of every source in one table, paired by sample identity.

A *source* is a dynamics store (its proxies are computed: CSL and the
baselines), a scores store (``memoxr import-scores``: cleanlab, AUM,
cartography, self-influence, plain values) or an influence store / FZ ``.npz``
(its memorization ``tr_mem`` as the score ``memorization``). For every score
(oriented by its ``direction``, so larger always means more memorized / more
likely mislabeled) and every run (e.g. noise level) :func:`compare_scores`
reports

- ``auroc``, ``auprc``, ``fpr_at_95_tpr`` against a boolean mask (e.g.
  ``is_mislabeled``, taken from the first source holding it), by
  :func:`memoxr.dynamics.detection_metrics`;
- ``cosine``, ``pearson``, ``spearman`` against FZ memorization, by
  :func:`memoxr.dynamics.correlation_metrics`;

each on the samples both sides hold (``n_mask``, ``n_memorization``), NaN
scores left out. Samples are paired by identity in one *reference order*: the
mask's source's ``sample_order`` (else the first source's). An object in another
order is refused unless a mapping translates its identities into the reference
order (``mapping[i]`` = reference identity of its sample ``i``, as
``memoxr.dynamics.load_mapping`` reads it). That is the inverse of
``evaluate --mapping`` (from the dynamics store's order to the other's):
``memoxr align-order --from OTHER --to REFERENCE`` writes the file compare reads.

``skipna`` follows the rule of :mod:`memoxr.compute.manners`: by default (and with
``True``) NaN scores are left out as above; ``False`` makes the metrics of a run
holding a NaN score NaN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..compute.manners import rank_skipna, resolve_keep_attrs
from ..compute.progress import compute
from ..dynamics.align import UNKNOWN_ORDER, check_orders, load_mapping
from ..dynamics.evaluate import (
    CORRELATION_METRICS,
    _memorization,
    _oriented,
    _run_items,
    _scores,
    correlation_metrics,
    detection_metrics,
)
from ..dynamics.schema import EPOCH, SAMPLE, SAMPLE_ALIASES, with_sample_name
from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions, locate_each
from ..io.npy import check_finite
from ..io.schema import INFLUENCE_SCHEMA, TRAIN_ID, kept_attrs

DETECTION_COLUMNS = ("auroc", "auprc", "fpr_at_95_tpr")

Source = xr.Dataset | str | os.PathLike


def open_source(path: str | os.PathLike[str], *, storage_options: StorageOptions = None) -> xr.Dataset:
    """A dynamics, scores or influence store (or an FZ ``.npz``), lazily, by its ``schema``.

    >>> import memoxr
    >>> "influence" in open_source(memoxr.sample_path())
    True
    """
    from ..dynamics.schema import open_dynamics
    from ..influence.sources import open_influence
    from ..io.storage import open_dataset

    location = Location.of(path, storage_options)
    if location.path.endswith(".npz"):
        return open_influence(location)
    schema = open_dataset(location).attrs.get("schema")
    if schema == INFLUENCE_SCHEMA:
        return open_influence(location)
    return open_dynamics(location)


def _name(ds: xr.Dataset, given: str | None, index: int, path: Any) -> str:
    if given:
        return given
    if path is not None:
        return os.path.basename(str(path).rstrip("/")).removesuffix(".zarr").removesuffix(".npz")
    return str(ds.attrs.get("source") or f"source{index}")


def _source_scores(
    ds: xr.Dataset, proxies: Sequence[str] | None, skipna: bool | None = None
) -> tuple[dict[str, xr.DataArray], xr.Dataset]:
    """Oriented scores of one source and the dataset they came from (computed)."""
    if "tr_mem" in ds and TRAIN_ID in ds.dims:
        mem, order = _memorization(ds)
        mem = mem.rename("memorization").assign_attrs(direction=1)
        return {"memorization": mem}, xr.Dataset({"memorization": mem}, attrs={"sample_order": order})
    if SAMPLE not in ds.dims:
        raise MemoxrInputError(f"source: dim {SAMPLE!r} missing; expected a dynamics, scores or influence store")
    has_epoch = any(EPOCH in v.dims for v in ds.data_vars.values())
    computed = _scores(ds, proxies if has_epoch else None, skipna=skipna)
    computed.attrs.setdefault("sample_order", ds.attrs.get("sample_order"))
    oriented = _oriented(computed, None)
    if not oriented:
        raise MemoxrInputError(
            f"source: no score (a variable with attrs['direction']) among {sorted(map(str, ds.data_vars))}"
        )
    return oriented, computed


class _Orders:
    """Translate identities into the reference order, refusing unmapped orders."""

    def __init__(self, reference: str, mappings: Any):
        self.reference = reference
        self.single = None
        self.by_order: dict[str, np.ndarray] = {}
        if isinstance(mappings, Mapping):
            self.by_order = {str(k): load_mapping(v, argument=f"mapping of order {k!r}") for k, v in mappings.items()}
        elif mappings is not None:
            self.single = load_mapping(mappings)
        self.single_used_by: str | None = None

    def ids(self, obj: xr.DataArray | xr.Dataset, order: str, name: str) -> np.ndarray:
        ids = np.asarray(obj[SAMPLE].values)
        if order == self.reference:
            return ids
        perm = self.by_order.get(order)
        if perm is None and self.single is not None:
            if self.single_used_by not in (None, order):
                raise MemoxrInputError(
                    f"mapping: one mapping given but two orders differ from the reference {self.reference!r} "
                    f"({self.single_used_by!r} and {order!r}); expected one mapping per order (ORDER=FILE)"
                )
            self.single_used_by, perm = order, self.single
        if perm is None:
            check_orders(order, self.reference, mapping=None, a_name=name, b_name="the reference")
        assert perm is not None
        if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= perm.size:
            raise MemoxrInputError(
                f"mapping of order {order!r}: length {perm.size}; expected to cover {name}'s identities 0..{ids.max()}"
            )
        return perm[ids]


def _order(obj: xr.DataArray | xr.Dataset) -> str:
    return str(obj.attrs.get("sample_order") or UNKNOWN_ORDER)


def _pair(a: xr.DataArray, a_ids: np.ndarray, b: xr.DataArray, b_ids: np.ndarray, what: str) -> tuple[xr.DataArray, xr.DataArray]:
    """``a`` and ``b`` on the identities both hold, in ``a``'s order, run dims aligned exactly."""
    common, ia, ib = np.intersect1d(a_ids, b_ids, assume_unique=True, return_indices=True)
    if common.size == 0:
        raise MemoxrInputError(
            f"{what}: no sample identity in common (e.g. {a_ids[:3].tolist()} vs {b_ids[:3].tolist()}); "
            "expected the same samples: check the sample orders and --mapping"
        )
    keep = np.sort(ia)
    ib = ib[np.argsort(ia)]
    a = a.isel({SAMPLE: keep}).assign_coords({SAMPLE: a_ids[keep]})
    b = b.isel({SAMPLE: ib}).assign_coords({SAMPLE: a_ids[keep]})
    try:
        a, b = xr.align(a, b, join="exact")
    except ValueError as exc:
        raise MemoxrInputError(f"{what}: run coordinates differ ({exc}); expected the same values of every shared run dim") from exc
    a, b = xr.broadcast(a, b)
    return a, b.transpose(*a.dims)


def _select(ds: xr.Dataset, select: Mapping[str, Any] | None) -> xr.Dataset:
    """``ds`` at the chosen run values of the dims it has."""
    chosen = {d: v for d, v in (select or {}).items() if d in ds.dims}
    for dim, value in chosen.items():
        if dim in (EPOCH, SAMPLE):
            raise MemoxrInputError(f"select {dim!r}: expected a run dim, not {dim!r}")
        found = ds[dim].values.tolist() if dim in ds.coords else list(range(ds.sizes[dim]))
        if value not in found:
            raise MemoxrInputError(f"select {dim}={value!r}: not a value of {dim!r}; expected one of {found}")
    return ds.sel(chosen) if chosen else ds


def _broadcast_runs(score: xr.DataArray, truth: xr.DataArray, what: str) -> xr.DataArray:
    """``score`` along the run dims of ``truth`` too (same values for each run it lacks)."""
    runs = truth.isel({SAMPLE: 0}, drop=True)
    try:
        score, runs = xr.align(score, runs, join="exact")
    except ValueError as exc:
        raise MemoxrInputError(f"{what}: run coordinates differ ({exc}); expected the same values of every shared run dim") from exc
    return xr.broadcast(score, runs)[0]


def compare_scores(
    sources: Sequence[Source] | Mapping[str, Source],
    *,
    mask: str | None = None,
    memorization: xr.Dataset | xr.DataArray | str | os.PathLike[str] | None = None,
    mapping: Any = None,
    proxies: Sequence[str] | None = None,
    select: Mapping[str, Any] | None = None,
    storage_options: StorageOptions = None,
    skipna: bool | None = None,
    keep_attrs: bool | None = None,
) -> pd.DataFrame:
    """One row per score, source and run: detection of ``mask`` and agreement with FZ memorization.

    Parameters
    ----------
    sources : sequence or mapping
        Datasets or paths (dynamics, scores or influence stores, FZ ``.npz``);
        a mapping names them (default: the store's file name, else ``attrs["source"]``).
    mask : str, optional
        A boolean variable of a source, e.g. ``"is_mislabeled"``, with dims
        ``(*run, sample)``; the first source holding it provides it.
    memorization : Dataset, DataArray or path, optional
        An influence store or FZ ``.npz`` (its ``tr_mem``), or memorization over ``sample``/``train_id``.
    mapping : array, path or mapping, optional
        ``{order: permutation}`` translating each other order's identities into
        the reference order, or one permutation when a single order differs.
    proxies : sequence of str, optional
        Proxies computed from dynamics sources (default: every one recorded).
    select : mapping, optional
        Run values to keep, e.g. ``{"noise": 0.1}``: applied to every source
        that has the dim; at least one must have it.
    skipna : bool, optional
        Default ``None``: proxies propagate NaN along ``epoch`` and samples with
        a NaN score (or memorization) are left out of the metrics; ``True`` also
        skips NaN epochs; ``False`` makes a run's metrics NaN when one of its
        samples has a NaN (the rule: :mod:`memoxr.compute.manners`).
    keep_attrs : bool, optional
        Copy the first source's attributes to the table's ``attrs`` (default
        ``None``: xarray's option, off).

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``score``, the run dims, ``auroc``, ``auprc``,
        ``fpr_at_95_tpr``, ``n_mask`` (with a mask) and ``cosine``, ``pearson``,
        ``spearman``, ``n_memorization`` (with memorization).

    Example
    -------
    >>> from memoxr.importers import scores_dataset
    >>> ds = scores_dataset({"s": [0.9, 0.1, 0.8, 0.3]}, sample_order="tfds", source="x", directions={"s": 1},
    ...                     truth={"is_mislabeled": [1, 0, 0, 1]})
    >>> compare_scores([ds], mask="is_mislabeled")[["source", "score", "auroc", "n_mask"]]
      source score  auroc  n_mask
    0      x     s   0.75       4
    """
    skip, keep = rank_skipna(skipna), resolve_keep_attrs(keep_attrs)
    if mask is None and memorization is None:
        raise MemoxrInputError("compare: nothing to compare against; expected mask= (e.g. 'is_mislabeled') and/or memorization=")
    if isinstance(sources, str | os.PathLike | xr.Dataset):  # one source, not a sequence of characters
        sources = [sources]
    items = list(sources.items()) if isinstance(sources, Mapping) else [(None, s) for s in sources]
    if not items:
        raise MemoxrInputError("compare: expected at least one source (STORE...)")
    opened: list[tuple[str, xr.Dataset]] = []
    for i, (given, src) in enumerate(items):
        path = src if isinstance(src, str | os.PathLike) else None
        ds = open_source(Location.of(src, storage_options)) if path is not None else src
        if not isinstance(ds, xr.Dataset):
            raise MemoxrInputError(f"source {i}: expected an xarray.Dataset or a path; received {type(src).__name__}")
        if any(alias in ds.dims for alias in SAMPLE_ALIASES):  # a Dataset built with the older name
            ds = with_sample_name(ds)
        opened.append((_name(ds, given, i, path), ds))
    for dim in select or {}:
        if not any(dim in ds.dims for _, ds in opened):
            raise MemoxrInputError(f"select {dim!r}: no source has this dim; expected a run dim such as 'noise'")
    opened = [(n, _select(ds, select)) for n, ds in opened]
    names = [n for n, _ in opened]
    opened = [(f"{n}#{i}" if names.count(n) > 1 else n, ds) for i, (n, ds) in enumerate(opened)]

    truth = None
    if mask is not None:
        # A mask is a data variable of a store, or a coordinate of compute_proxies' result.
        holders = [(n, ds) for n, ds in opened
                   if mask in ds.variables and mask not in ds.dims and "direction" not in ds[mask].attrs]
        if not holders:
            raise MemoxrInputError(f"mask {mask!r}: in no source; expected a boolean variable of one of {[n for n, _ in opened]}")
        holder, ds = holders[0]
        truth = compute(ds[mask])[0]
        if SAMPLE not in truth.dims or truth.dtype.kind not in "biu" or not np.isin(np.unique(truth.values), (0, 1)).all():
            raise MemoxrInputError(f"mask {mask!r} of {holder}: {truth.dtype} with dims {truth.dims}; expected booleans over {SAMPLE!r}")
        truth = truth.astype(bool).assign_attrs(sample_order=_order(ds))
    reference = _order(truth) if truth is not None else _order(opened[0][1])
    orders = _Orders(reference, locate_each(mapping, storage_options))  # permutation files read like the sources
    mem = mem_ids = None
    if memorization is not None:
        if isinstance(memorization, str | os.PathLike):
            memorization = open_source(Location.of(memorization, storage_options))
        mem, mem_order = _memorization(memorization)
        mem_ids = orders.ids(mem, mem_order, "memorization")
    truth_ids = orders.ids(truth, reference, "mask") if truth is not None else None

    rows: list[dict[str, Any]] = []
    for source, ds in opened:
        scores, computed = _source_scores(ds, proxies, skipna)
        order = _order(computed)
        for score_name, score in scores.items():
            ids = orders.ids(score, order, f"source {source!r}")
            if truth is not None:  # every run of the mask gets every metric, even for a score without run dims
                score = _broadcast_runs(score, truth, f"{source}/{score_name} vs mask {mask!r}")
            results: dict[tuple, dict[str, Any]] = {}
            if truth is not None and truth_ids is not None:
                s, m = _pair(score, ids, truth, truth_ids, f"{source}/{score_name} vs mask {mask!r}")
                for (run, x), (_, y) in zip(_run_items(s), _run_items(m.astype(bool)), strict=True):
                    check_finite(x, f"score {source}/{score_name} at {run or 'the run'}")
                    ok = ~np.isnan(x)
                    holed = not skip and not ok.all()  # skipna=False: a NaN score makes the run's metrics NaN
                    ok = ok | holed
                    y = y[ok].astype(bool)
                    values = (detection_metrics(x[ok], y) if 0 < y.sum() < y.size and not holed
                              else dict.fromkeys(DETECTION_COLUMNS, np.nan))
                    row = results.setdefault(tuple(sorted(run.items())), {"source": source, "score": score_name, **run})
                    row.update({k: values[k] for k in DETECTION_COLUMNS}, n_mask=int(ok.sum()))
            if mem is not None and mem_ids is not None:
                s, mm = _pair(score, ids, mem, mem_ids, f"{source}/{score_name} vs memorization")
                for (run, x), (_, y) in zip(_run_items(s), _run_items(mm), strict=True):
                    check_finite(x, f"score {source}/{score_name} at {run or 'the run'}")
                    ok = ~np.isnan(x) & ~np.isnan(y)
                    holed = not skip and not ok.all()
                    ok = ok | holed
                    values = dict.fromkeys(CORRELATION_METRICS, np.nan) if holed else correlation_metrics(x[ok], y[ok])
                    row = results.setdefault(tuple(sorted(run.items())), {"source": source, "score": score_name, **run})
                    row.update(values, n_memorization=int(ok.sum()))
            rows.extend(results.values())
    table = pd.DataFrame(rows)
    metrics = ([*DETECTION_COLUMNS, "n_mask"] if truth is not None else []) + (
        [*CORRELATION_METRICS, "n_memorization"] if mem is not None else []
    )
    run_cols = [c for c in table.columns if c not in ("source", "score", *metrics)]
    for c in ("n_mask", "n_memorization"):
        if c in table:
            table[c] = table[c].astype("Int64")
    table = table[["source", "score", *run_cols, *metrics]]
    table.attrs = kept_attrs(opened[0][1].attrs, keep)
    return table
