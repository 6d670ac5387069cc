"""Evaluate memorization proxies: detection of mislabeled / duplicate samples,
agreement with Feldman-Zhang memorization, and agreement across runs.

The proxies are computed lazily and read in one pass; the metrics run in memory
on the small ``(*run, sample)`` results. Results are tidy pandas DataFrames.
Scores are oriented by the proxy's ``direction`` (confidence is negated), so a
larger oriented score always means "more memorized / more likely mislabeled".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..compute.manners import rank_skipna, resolve_keep_attrs
from ..compute.progress import compute
from ..errors import MemoxrInputError
from ..io.npy import check_finite
from .align import align_samples
from .metrics import CORRELATION_METRICS, DETECTION_METRICS, correlation_metrics, detection_metrics
from .proxies import PROXY_ATTRS
from .registry import compute_proxies
from .schema import EPOCH, SAMPLE, SAMPLE_ALIASES, sample_dim

# --------------------------------------------------------------------------- helpers


def _run_items(da: xr.DataArray) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Split a ``(*run, train_id)`` array (dims in any order) into (run coordinates, 1-D values) pairs."""
    samples = sample_dim(da, argument=str(da.name or "scores"))
    run_dims = [d for d in da.dims if d != samples]
    da = da.transpose(*run_dims, samples)
    out = []
    for index in itertools.product(*(range(da.sizes[d]) for d in run_dims)):
        sel = dict(zip(run_dims, index, strict=True))
        labels = {str(d): _plain(da[d].values[i]) if d in da.coords else i for d, i in sel.items()}
        out.append((labels, np.asarray(da.isel(sel).values)))
    return out


def _plain(value: Any) -> Any:
    """A coordinate value as a Python scalar (strings stored as objects are already one)."""
    return value.item() if isinstance(value, np.generic) else value


def _validate_dataset(ds: Any) -> xr.Dataset:
    if not isinstance(ds, xr.Dataset):
        raise MemoxrInputError(f"dynamics must be an xarray.Dataset (open_dynamics); received {type(ds).__name__}")
    sample_dim(ds)
    return ds


def _scores(
    ds: xr.Dataset, proxies: Sequence[str] | None, *, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.Dataset:
    """The proxies, computed once (one pass), or ``ds`` itself if it already holds scores."""
    if any(EPOCH in v.dims for v in ds.data_vars.values()):
        ds = compute_proxies(ds, proxies, skipna=skipna, keep_attrs=keep_attrs)
    elif proxies is not None:
        missing = [p for p in proxies if p not in ds]
        if missing:
            raise MemoxrInputError(f"proxies {missing} not in the scores; expected among {sorted(map(str, ds.data_vars))}")
    return compute(ds)[0]  # the gateway names a damaged chunk instead of a codec traceback


def _direction(name: str, var: xr.DataArray) -> int | None:
    """A score's direction: its attribute, else (attributes dropped) the known proxy's."""
    known = PROXY_ATTRS.get(name, {}).get("direction")
    return var.attrs.get("direction", known)


def _oriented(ds: xr.Dataset, proxies: Sequence[str] | None) -> dict[str, xr.DataArray]:
    names = [str(n) for n in ds.data_vars] if proxies is None else list(proxies)
    directions = {n: _direction(n, ds[n]) for n in names}
    return {n: ds[n] * (1 if d is None else d) for n, d in directions.items() if d is not None or proxies is not None}


def _scored(ds: xr.Dataset, proxies: Sequence[str] | None) -> dict[str, xr.DataArray]:
    """:func:`_oriented`, refusing a dataset without any score."""
    oriented = _oriented(ds, proxies)
    if not oriented:
        raise MemoxrInputError(
            f"no score to evaluate among {sorted(map(str, ds.data_vars))}; expected recorded dynamics or proxies "
            "(variables with attrs['direction'], or named like a proxy)"
        )
    return oriented


def _validate_mask(mask: str | xr.DataArray, ds: xr.Dataset) -> tuple[str, xr.DataArray]:
    samples = sample_dim(ds)
    if isinstance(mask, str):
        if mask not in ds.variables:
            raise MemoxrInputError(f"mask {mask!r} not in the dataset; expected one of {sorted(map(str, ds.variables))}")
        name, m = mask, ds[mask]
    else:
        if not isinstance(mask, xr.DataArray) or not set(mask.dims) & {SAMPLE, *SAMPLE_ALIASES}:
            raise MemoxrInputError(f"mask: expected a variable name or a DataArray with dim {samples!r}")
        m = mask.rename({sample_dim(mask, argument="mask"): samples})
        if samples in m.coords and not np.array_equal(m[samples].values, ds[samples].values):
            raise MemoxrInputError(
                f"mask: its {samples!r} identities differ from the dataset's; expected the same samples in the "
                "same order (see memoxr.dynamics.align_samples)"
            )
        name = str(mask.name or "mask")
    # Ground truth is yes/no per sample (and run): a float or per-epoch variable is not a mask.
    run_dims = [str(d) for d in ds.dims if d not in (EPOCH, samples)]
    expected = f"expected bool or 0/1 integers with dims ({samples!r},) plus any of the run dims {run_dims}"
    if samples not in m.dims or any(d not in run_dims for d in m.dims if d != samples) or m.dtype.kind not in "biu":
        raise MemoxrInputError(f"mask {name!r}: {expected}; received dtype {m.dtype} with dims {tuple(map(str, m.dims))}")
    if m.dtype.kind != "b":
        values = np.unique(np.asarray(compute(m)[0].values))
        if not np.isin(values, (0, 1)).all():
            raise MemoxrInputError(
                f"mask {name!r}: {expected}; received dtype {m.dtype} with values {values[:5].tolist()}"
            )
    return name, m


def _memorization(influence: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray, str]:
    """Memorization over ``train_id`` (an influence store's ``tr_mem``, or any array over ``train_id``/``sample``)."""
    if isinstance(influence, xr.Dataset):
        if "tr_mem" not in influence:
            raise MemoxrInputError("influence: variable 'tr_mem' missing; expected an influence store")
        mem = influence["tr_mem"]
    else:
        mem = influence
    order = str(influence.attrs.get("sample_order") or "unknown")
    dims = [d for d in (SAMPLE, *SAMPLE_ALIASES) if d in mem.dims]
    if mem.ndim != 1 or len(dims) != 1:
        raise MemoxrInputError(f"memorization: dims {mem.dims}; expected ({SAMPLE!r},) or ({SAMPLE_ALIASES[0]!r},)")
    mem = mem.rename({dims[0]: SAMPLE}) if dims[0] != SAMPLE else mem
    if SAMPLE not in mem.coords:
        mem = mem.assign_coords({SAMPLE: np.arange(mem.sizes[SAMPLE])})
    mem = compute(mem)[0]  # one value per sample: read once here, not once per proxy
    mem.attrs["sample_order"] = order
    return mem, order


def _usable(*values: np.ndarray, skip: bool) -> tuple[np.ndarray, bool]:
    """Samples the metrics use, and whether a NaN makes the metrics NaN (``skipna=False``)."""
    finite = np.logical_and.reduce([~np.isnan(v) for v in values])
    if skip:
        return finite, False
    return np.ones_like(finite), not finite.all()


def _rows(metrics: dict[str, float], nan: bool, base: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [{**base, "metric": metric, "value": np.nan if nan else value, "n": n} for metric, value in metrics.items()]


def _correlation_rows(x: np.ndarray, y: np.ndarray, skip: bool, base: dict[str, Any]) -> list[dict[str, Any]]:
    ok, nan = _usable(x, y, skip=skip)
    metrics = dict.fromkeys(CORRELATION_METRICS, np.nan) if nan else correlation_metrics(x[ok], y[ok])
    return _rows(metrics, nan, base, int(ok.sum()))


def _frame(rows: list[dict[str, Any]], ds: xr.Dataset, keep_attrs: bool | None) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    if resolve_keep_attrs(keep_attrs):
        out.attrs = dict(ds.attrs)
    return out


# --------------------------------------------------------------------------- public


def evaluate(
    dynamics: xr.Dataset,
    *,
    proxies: Sequence[str] | None = None,
    mask: str | xr.DataArray | None = None,
    influence: xr.Dataset | xr.DataArray | None = None,
    mapping: Any = None,
    top_k: int = 5000,
    k: int | None = None,
    skipna: bool | None = None,
    keep_attrs: bool | None = None,
) -> pd.DataFrame:
    """Evaluate memorization proxies against ground truth, as a tidy DataFrame.

    Dims contract: ``dynamics`` is a dynamics dataset (``open_dynamics``;
    recorded variables with dims ``epoch`` and ``train_id``, or ``sample`` in
    older data, plus run dims, in any order) or the output of
    ``compute_proxies``. Each run (every combination of the run dims) is
    evaluated separately.

    Parameters
    ----------
    dynamics : xarray.Dataset
        Recorded dynamics or proxies.
    proxies : sequence of str, optional
        Proxy names (default: every proxy the recorded variables allow).
    mask : str or DataArray, optional
        Boolean ground truth over ``train_id`` (optionally with run dims), e.g.
        ``"is_mislabeled"`` or a duplicate mask: rows ``auroc``, ``auprc``,
        ``fpr_at_95_tpr`` and ``precision_at_k`` (see :func:`detection_metrics`).
        Default: ``"is_mislabeled"`` when the dataset holds it.
    influence : Dataset or DataArray, optional
        An influence store (its ``tr_mem(train_id)``) or any memorization over
        ``train_id``/``sample``: rows ``cosine``, ``pearson``, ``spearman`` on all
        samples (target ``memorization``) and on the ``top_k`` most memorized
        (target ``memorization_top{top_k}``; the paper uses 5000). Samples are
        paired by identity; differing ``sample_order`` is refused unless a
        ``mapping`` (dynamics order -> influence order) is given.
    top_k, k : int
        Size of the top-memorized subset; ``k`` of precision at k.
    skipna : bool, optional
        Default: the proxies propagate NaN along ``epoch`` and samples with a
        NaN score are left out of the metrics. ``True`` also skips NaN epochs
        in the proxies; ``False`` makes a run's metrics NaN when one of its
        samples has a NaN score (the rule: :mod:`memoxr.compute.manners`).
        A run whose samples left with a score hold positives or negatives only
        gets NaN detection metrics, its ``n`` saying how many were left; a mask
        that holds one class only at a run is an error.
    keep_attrs : bool, optional
        Copy ``dynamics.attrs`` to the DataFrame's ``attrs`` (default: xarray's option, off).

    Returns
    -------
    pandas.DataFrame
        Columns: the run dims, ``proxy``, ``target``, ``metric``, ``value``, ``n``
        (samples used).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> loss = np.array([[0.1, 0.2, 0.9, 0.3], [0.1, 0.1, 0.8, 0.4]])  # (epoch, train_id)
    >>> ds = xr.Dataset({"loss": (("epoch", "train_id"), loss),
    ...                  "is_mislabeled": ("train_id", [False, False, True, False])})
    >>> evaluate(ds, proxies=["csl"]).query("metric == 'auroc'")[["proxy", "value", "n"]]
      proxy  value  n
    0   csl    1.0  4
    """
    ds = _validate_dataset(dynamics)
    if mask is None and influence is None:
        if "is_mislabeled" not in ds:
            raise MemoxrInputError(
                "evaluate: nothing to evaluate against; expected mask= (e.g. 'is_mislabeled') or influence="
            )
        mask = "is_mislabeled"
    if not isinstance(top_k, int) or top_k < 1:
        raise MemoxrInputError(f"top_k must be a positive integer; received {top_k!r}")
    if k is not None and (not isinstance(k, int) or k < 1):
        raise MemoxrInputError(f"k must be a positive integer; received {k!r}")
    skip = rank_skipna(skipna)
    truth = _validate_mask(mask, ds) if mask is not None else None
    memo = _memorization(influence) if influence is not None else None
    scores = _scores(ds, proxies, skipna=skipna)
    samples = sample_dim(scores)
    rows: list[dict[str, Any]] = []
    for name, score in _scored(scores, proxies).items():
        if truth is not None:
            target, m = truth
            m = m.astype(bool).broadcast_like(score).transpose(*score.dims)
            for (run, values), (_, mv) in zip(_run_items(score), _run_items(m), strict=True):
                check_finite(values, f"proxy {name!r} at {run or 'the run'}")
                ok, nan = _usable(values, skip=skip)
                if mv.all() or not mv.any():
                    raise MemoxrInputError(
                        f"mask {target!r} at {run or 'the run'}: one class only; expected both positives and negatives"
                    )
                # NaN scores (left out) may leave one class, or none: no detection metric is defined then.
                undefined = nan or mv[ok].all() or not mv[ok].any()
                metrics = dict.fromkeys(DETECTION_METRICS, np.nan) if undefined else detection_metrics(values[ok], mv[ok], k=k)
                rows += _rows(metrics, undefined, {**run, "proxy": name, "target": target}, int(ok.sum()))
        if memo is not None:
            mem, order = memo
            aligned, mem_a = align_samples(
                score.assign_attrs(sample_order=scores.attrs.get("sample_order") or "unknown"), mem,
                a_dim=samples, mapping=mapping, a_name="dynamics", b_name="influence",
            )
            mvals = np.asarray(mem_a.values, dtype=np.float64)
            for run, values in _run_items(aligned):
                check_finite(values, f"proxy {name!r} at {run or 'the run'}")
                ok, nan = _usable(values, mvals, skip=skip)
                idx = np.flatnonzero(ok)
                top = idx[np.argsort(-mvals[idx], kind="stable")[:top_k]]
                for target, sel in (("memorization", idx), (f"memorization_top{top_k}", top)):
                    metrics = dict.fromkeys(CORRELATION_METRICS, np.nan) if nan else correlation_metrics(values[sel], mvals[sel])
                    rows += _rows(metrics, nan, {**run, "proxy": name, "target": target}, int(sel.size))
    return _frame(rows, ds, keep_attrs)


def cross_run(
    dynamics: xr.Dataset, *, dim: str, proxies: Sequence[str] | None = None,
    skipna: bool | None = None, keep_attrs: bool | None = None,
) -> pd.DataFrame:
    """Agreement of each proxy between the values of a run dim (e.g. architectures).

    For every pair ``(a, b)`` of ``dim``'s values and every combination of the
    other run dims: cosine, Pearson and Spearman of the proxy on run ``a``
    against run ``b`` over all samples (same store, so same identities).
    ``skipna`` and ``keep_attrs`` as in :func:`evaluate`.

    Returns
    -------
    pandas.DataFrame
        Columns: the other run dims, ``proxy``, ``{dim}_a``, ``{dim}_b``,
        ``metric``, ``value``, ``n``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> loss = np.array([[[1.0, 2.0, 3.0]], [[2.0, 4.0, 6.0]]])  # (arch, epoch, train_id)
    >>> ds = xr.Dataset({"loss": (("arch", "epoch", "train_id"), loss)}, coords={"arch": ["mlp", "cnn"]})
    >>> cross_run(ds, dim="arch", proxies=["csl"])[["arch_a", "arch_b", "metric", "value"]].round(6)
      arch_a arch_b    metric  value
    0    mlp    cnn    cosine    1.0
    1    mlp    cnn   pearson    1.0
    2    mlp    cnn  spearman    1.0
    """
    ds = _validate_dataset(dynamics)
    samples = sample_dim(ds)
    if dim not in ds.dims or dim in (EPOCH, samples):
        run_dims = [str(d) for d in ds.dims if d not in (EPOCH, samples)]
        raise MemoxrInputError(f"dim {dim!r}: expected a run dim among {run_dims}")
    skip = rank_skipna(skipna)
    scores = _scores(ds, proxies, skipna=skipna)
    rows: list[dict[str, Any]] = []
    labels = scores[dim].values.tolist() if dim in scores.coords else list(range(scores.sizes[dim]))
    for name, score in _scored(scores, proxies).items():
        for i, j in itertools.combinations(range(len(labels)), 2):
            a, b = score.isel({dim: i}, drop=True), score.isel({dim: j}, drop=True)
            for (run, x), (_, y) in zip(_run_items(a), _run_items(b), strict=True):
                rows += _correlation_rows(x, y, skip, {**run, "proxy": name, f"{dim}_a": labels[i], f"{dim}_b": labels[j]})
    return _frame(rows, ds, keep_attrs)


def compare_stores(
    a: xr.Dataset, b: xr.Dataset, *, proxies: Sequence[str] | None = None, mapping: Any = None,
    skipna: bool | None = None, keep_attrs: bool | None = None,
) -> pd.DataFrame:
    """Agreement of each proxy between two dynamics stores (e.g. two architectures' runs).

    Samples are paired by identity; stores whose ``sample_order`` differ are
    refused unless ``mapping`` (``a``'s order -> ``b``'s) is given. Run dims
    must match. Columns: run dims, ``proxy``, ``metric``, ``value``, ``n``.
    ``skipna`` and ``keep_attrs`` (``a``'s attributes) as in :func:`evaluate`.

    Examples
    --------
    >>> import xarray as xr
    >>> a = xr.Dataset({"loss": (("epoch", "train_id"), [[1.0, 2.0, 3.0]])}, coords={"train_id": [0, 1, 2]})
    >>> b = xr.Dataset({"loss": (("train_id", "epoch"), [[3.0], [1.0], [2.0]])}, coords={"train_id": [2, 0, 1]})
    >>> compare_stores(a, b, proxies=["csl"])["value"].round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    skip = rank_skipna(skipna)
    sa = _scores(_validate_dataset(a), proxies, skipna=skipna)
    sb = _scores(_validate_dataset(b), proxies, skipna=skipna)
    sa, sb = align_samples(sa, sb, mapping=mapping, a_name="first store", b_name="second store")
    rows: list[dict[str, Any]] = []
    oa, ob = _scored(sa, proxies), _scored(sb, proxies)
    for name in oa:
        if name not in ob:
            continue
        for (run, x), (_, y) in zip(_run_items(oa[name]), _run_items(ob[name]), strict=True):
            rows += _correlation_rows(x, y, skip, {**run, "proxy": name})
    return _frame(rows, a, keep_attrs)


def table(results: pd.DataFrame, *, metric: str = "auroc", columns: str | None = None) -> pd.DataFrame:
    """Pivot a tidy result into a paper-style table: rows proxies, columns a run dim.

    ``columns`` defaults to the first run column (e.g. ``noise``), as in the
    CSL paper's Table 2 (mislabel-detection AUROC by noise level).

    Examples
    --------
    >>> import pandas as pd
    >>> tidy = pd.DataFrame({"noise": [0.1, 0.2, 0.1, 0.2], "proxy": ["csl", "csl", "confidence", "confidence"],
    ...                      "target": "is_mislabeled", "metric": "auroc", "value": [0.9, 0.8, 0.7, 0.6], "n": 10})
    >>> table(tidy)
    noise       0.1  0.2
    proxy
    csl         0.9  0.8
    confidence  0.7  0.6
    """
    if "metric" not in results or metric not in set(results["metric"]):
        found = sorted(set(results["metric"])) if "metric" in results else []
        raise MemoxrInputError(f"metric {metric!r} not in the results; expected one of {found}")
    sub = results[results["metric"] == metric]
    fixed = {"proxy", "target", "metric", "value", "n"}
    run_cols = [c for c in results.columns if c not in fixed]
    if columns is None:
        columns = run_cols[0] if run_cols else "target"
    if columns not in results.columns:
        raise MemoxrInputError(f"columns {columns!r}: expected one of {run_cols + ['target']}")
    order = list(dict.fromkeys(sub["proxy"]))
    out = sub.pivot_table(index="proxy", columns=columns, values="value", aggfunc="mean")
    return out.loc[order]
