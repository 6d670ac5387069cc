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
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ..compute.progress import compute
from ..errors import MemoxrInputError
from ..io.schema import TRAIN_ID
from .align import align_samples
from .proxies import compute_proxies
from .store import EPOCH, SAMPLE

DETECTION_METRICS = ("auroc", "auprc", "fpr_at_95_tpr", "precision_at_k")
CORRELATION_METRICS = ("cosine", "pearson", "spearman")


# --------------------------------------------------------------------------- numpy metrics


def detection_metrics(score: np.ndarray, mask: np.ndarray, *, k: int | None = None) -> dict[str, float]:
    """AUROC, AUPRC, FPR at 95% TPR and precision at k of ``score`` against a boolean ``mask``.

    - ``auroc``: ``sklearn.metrics.roc_auc_score``;
    - ``auprc``: average precision, ``sklearn.metrics.average_precision_score``;
    - ``fpr_at_95_tpr``: the smallest false-positive rate on the ROC curve whose
      true-positive rate is at least 0.95;
    - ``precision_at_k``: fraction of positives among the ``k`` highest scores
      (ties broken by sample order); ``k`` defaults to the number of positives.
    """
    mask = np.asarray(mask, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    fpr, tpr, _ = roc_curve(mask, score)
    kk = int(mask.sum()) if k is None else min(int(k), score.size)
    top = np.argsort(-score, kind="stable")[:kk]
    return {
        "auroc": float(roc_auc_score(mask, score)),
        "auprc": float(average_precision_score(mask, score)),
        "fpr_at_95_tpr": float(fpr[tpr >= 0.95].min()),
        "precision_at_k": float(mask[top].mean()),
    }


def correlation_metrics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Cosine similarity, Pearson and Spearman (average ranks for ties) of two vectors."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def pearson(u: np.ndarray, v: np.ndarray) -> float:
        u, v = u - u.mean(), v - v.mean()
        den = np.sqrt((u @ u) * (v @ v))
        return float(u @ v / den) if den > 0 else float("nan")

    den = np.sqrt((x @ x) * (y @ y))
    return {
        "cosine": float(x @ y / den) if den > 0 else float("nan"),
        "pearson": pearson(x, y),
        "spearman": pearson(rankdata(x), rankdata(y)),
    }


# --------------------------------------------------------------------------- helpers


def _run_items(da: xr.DataArray) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Split a ``(*run, sample)`` array into (run coordinates, 1-D values) pairs."""
    run_dims = [d for d in da.dims if d != SAMPLE]
    da = da.transpose(*run_dims, SAMPLE)
    out = []
    for index in itertools.product(*(range(da.sizes[d]) for d in run_dims)):
        sel = dict(zip(run_dims, index, strict=True))
        labels = {str(d): da[d].values[i].item() if d in da.coords else i for d, i in sel.items()}
        out.append((labels, np.asarray(da.isel(sel).values)))
    return out


def _validate_dataset(ds: Any) -> xr.Dataset:
    if not isinstance(ds, xr.Dataset):
        raise MemoxrInputError(f"dynamics must be an xarray.Dataset (open_dynamics); received {type(ds).__name__}")
    if SAMPLE not in ds.dims:
        raise MemoxrInputError(f"dynamics: dim {SAMPLE!r} missing; received dims {tuple(ds.dims)}")
    return ds


def _scores(ds: xr.Dataset, proxies: Sequence[str] | None) -> xr.Dataset:
    """The proxies, computed once (one pass), or ``ds`` itself if it already holds scores."""
    if any(EPOCH in v.dims for v in ds.data_vars.values()):
        ds = compute_proxies(ds, proxies)
    elif proxies is not None:
        missing = [p for p in proxies if p not in ds]
        if missing:
            raise MemoxrInputError(f"proxies {missing} not in the scores; expected among {sorted(map(str, ds.data_vars))}")
    return compute(ds)[0]  # the gateway names a damaged chunk instead of a codec traceback


def _oriented(ds: xr.Dataset, proxies: Sequence[str] | None) -> dict[str, xr.DataArray]:
    names = [str(n) for n, v in ds.data_vars.items() if "direction" in v.attrs] if proxies is None else list(proxies)
    return {n: ds[n] * ds[n].attrs.get("direction", 1) for n in names}


def _validate_mask(mask: str | xr.DataArray, ds: xr.Dataset) -> tuple[str, xr.DataArray]:
    if isinstance(mask, str):
        if mask not in ds:
            raise MemoxrInputError(f"mask {mask!r} not in the dataset; expected one of {sorted(map(str, ds.data_vars))}")
        name, m = mask, ds[mask]
    else:
        if not isinstance(mask, xr.DataArray) or SAMPLE not in mask.dims:
            raise MemoxrInputError(f"mask: expected a variable name or a DataArray with dim {SAMPLE!r}")
        if SAMPLE in mask.coords and not np.array_equal(mask[SAMPLE].values, ds[SAMPLE].values):
            raise MemoxrInputError(
                f"mask: its {SAMPLE!r} identities differ from the dataset's; expected the same samples in the "
                "same order (see memoxr.dynamics.align_samples)"
            )
        name, m = str(mask.name or "mask"), mask
    # Ground truth is yes/no per sample (and run): a float or per-epoch variable is not a mask.
    run_dims = [str(d) for d in ds.dims if d not in (EPOCH, SAMPLE)]
    expected = f"expected bool or 0/1 integers with dims ({SAMPLE!r},) plus any of the run dims {run_dims}"
    if SAMPLE not in m.dims or any(d not in run_dims for d in m.dims if d != SAMPLE) or m.dtype.kind not in "biu":
        raise MemoxrInputError(f"mask {name!r}: {expected}; received dtype {m.dtype} with dims {tuple(map(str, m.dims))}")
    if m.dtype.kind != "b":
        values = np.unique(np.asarray(compute(m)[0].values))
        if not np.isin(values, (0, 1)).all():
            raise MemoxrInputError(
                f"mask {name!r}: {expected}; received dtype {m.dtype} with values {values[:5].tolist()}"
            )
    return name, m


def _memorization(influence: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray, str]:
    if isinstance(influence, xr.Dataset):
        if "tr_mem" not in influence:
            raise MemoxrInputError("influence: variable 'tr_mem' missing; expected an influence store")
        mem = influence["tr_mem"]
        order = str(influence.attrs.get("sample_order") or "unknown")
    else:
        mem = influence
        order = str(influence.attrs.get("sample_order") or "unknown")
    dim = TRAIN_ID if TRAIN_ID in mem.dims else SAMPLE
    if mem.ndim != 1 or dim not in mem.dims:
        raise MemoxrInputError(f"memorization: dims {mem.dims}; expected ({TRAIN_ID!r},) or ({SAMPLE!r},)")
    mem = mem.rename({dim: SAMPLE}) if dim != SAMPLE else mem
    if SAMPLE not in mem.coords:
        mem = mem.assign_coords({SAMPLE: np.arange(mem.sizes[SAMPLE])})
    mem = compute(mem)[0]  # one value per sample: read once here, not once per proxy
    mem.attrs["sample_order"] = order
    return mem, order


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
) -> pd.DataFrame:
    """Evaluate memorization proxies against ground truth, as a tidy DataFrame.

    Dims contract: ``dynamics`` is a dynamics dataset (``open_dynamics``;
    recorded variables ``(*run, epoch, sample)``) or the output of
    ``compute_proxies`` (``(*run, sample)``). Each run (every combination of the
    leading dims) is evaluated separately.

    Parameters
    ----------
    dynamics : xarray.Dataset
        Recorded dynamics or proxies.
    proxies : sequence of str, optional
        Proxy names (default: every proxy the recorded variables allow).
    mask : str or DataArray, optional
        Boolean ground truth over ``sample`` (optionally with run dims), e.g.
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

    Returns
    -------
    pandas.DataFrame
        Columns: the run dims, ``proxy``, ``target``, ``metric``, ``value``, ``n``
        (samples used; samples with a NaN score are left out).
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
    truth = _validate_mask(mask, ds) if mask is not None else None
    memo = _memorization(influence) if influence is not None else None
    scores = _scores(ds, proxies)
    rows: list[dict[str, Any]] = []
    for name, score in _oriented(scores, proxies).items():
        if truth is not None:
            target, m = truth
            m = m.astype(bool).broadcast_like(score).transpose(*score.dims)
            for (run, values), (_, mv) in zip(_run_items(score), _run_items(m), strict=True):
                ok = ~np.isnan(values)
                if mv[ok].all() or not mv[ok].any():
                    raise MemoxrInputError(
                        f"mask {target!r} at {run or 'the run'}: one class only; expected both positives and negatives"
                    )
                for metric, value in detection_metrics(values[ok], mv[ok], k=k).items():
                    rows.append({**run, "proxy": name, "target": target, "metric": metric, "value": value, "n": int(ok.sum())})
        if memo is not None:
            mem, order = memo
            aligned, mem_a = align_samples(
                score.assign_attrs(sample_order=scores.attrs.get("sample_order") or "unknown"), mem,
                mapping=mapping, a_name="dynamics", b_name="influence",
            )
            mvals = np.asarray(mem_a.values, dtype=np.float64)
            for run, values in _run_items(aligned):
                ok = ~np.isnan(values) & ~np.isnan(mvals)
                idx = np.flatnonzero(ok)
                top = idx[np.argsort(-mvals[idx], kind="stable")[:top_k]]
                for target, sel in (("memorization", idx), (f"memorization_top{top_k}", top)):
                    for metric, value in correlation_metrics(values[sel], mvals[sel]).items():
                        rows.append({**run, "proxy": name, "target": target, "metric": metric, "value": value, "n": int(sel.size)})
    return pd.DataFrame(rows)


def cross_run(
    dynamics: xr.Dataset, *, dim: str, proxies: Sequence[str] | None = None
) -> pd.DataFrame:
    """Agreement of each proxy between the values of a run dim (e.g. architectures).

    For every pair ``(a, b)`` of ``dim``'s values and every combination of the
    other run dims: cosine, Pearson and Spearman of the proxy on run ``a``
    against run ``b`` over all samples (same store, so same identities).

    Returns
    -------
    pandas.DataFrame
        Columns: the other run dims, ``proxy``, ``{dim}_a``, ``{dim}_b``,
        ``metric``, ``value``, ``n``.
    """
    ds = _validate_dataset(dynamics)
    if dim not in ds.dims or dim in (EPOCH, SAMPLE):
        run_dims = [str(d) for d in ds.dims if d not in (EPOCH, SAMPLE)]
        raise MemoxrInputError(f"dim {dim!r}: expected a run dim among {run_dims}")
    scores = _scores(ds, proxies)
    rows: list[dict[str, Any]] = []
    labels = scores[dim].values.tolist() if dim in scores.coords else list(range(scores.sizes[dim]))
    for name, score in _oriented(scores, proxies).items():
        for i, j in itertools.combinations(range(len(labels)), 2):
            a, b = score.isel({dim: i}, drop=True), score.isel({dim: j}, drop=True)
            for (run, x), (_, y) in zip(_run_items(a), _run_items(b), strict=True):
                ok = ~np.isnan(x) & ~np.isnan(y)
                for metric, value in correlation_metrics(x[ok], y[ok]).items():
                    rows.append({**run, "proxy": name, f"{dim}_a": labels[i], f"{dim}_b": labels[j],
                                 "metric": metric, "value": value, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def compare_stores(
    a: xr.Dataset, b: xr.Dataset, *, proxies: Sequence[str] | None = None, mapping: Any = None
) -> pd.DataFrame:
    """Agreement of each proxy between two dynamics stores (e.g. two architectures' runs).

    Samples are paired by identity; stores whose ``sample_order`` differ are
    refused unless ``mapping`` (``a``'s order -> ``b``'s) is given. Run dims
    must match. Columns: run dims, ``proxy``, ``metric``, ``value``, ``n``.
    """
    sa, sb = _scores(_validate_dataset(a), proxies), _scores(_validate_dataset(b), proxies)
    sa, sb = align_samples(sa, sb, mapping=mapping, a_name="first store", b_name="second store")
    rows: list[dict[str, Any]] = []
    oa, ob = _oriented(sa, proxies), _oriented(sb, proxies)
    for name in oa:
        if name not in ob:
            continue
        for (run, x), (_, y) in zip(_run_items(oa[name]), _run_items(ob[name]), strict=True):
            ok = ~np.isnan(x) & ~np.isnan(y)
            for metric, value in correlation_metrics(x[ok], y[ok]).items():
                rows.append({**run, "proxy": name, "metric": metric, "value": value, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def table(results: pd.DataFrame, *, metric: str = "auroc", columns: str | None = None) -> pd.DataFrame:
    """Pivot a tidy result into a paper-style table: rows proxies, columns a run dim.

    ``columns`` defaults to the first run column (e.g. ``noise``), as in the
    CSL paper's Table 2 (mislabel-detection AUROC by noise level).
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
