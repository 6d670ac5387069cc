"""How sure an FZ estimate is: convergence over trials, and errors carried into the scores.

- :func:`convergence` re-estimates from the first 10%, 20%, ... of the trials
  (one pass over the records: the sums of each new slice of trials are added
  to the previous ones, as ``memoxr estimate --append`` does) and tells how far
  each estimate still is from the all-trial one; :func:`plot_convergence`
  draws that table.
- :func:`score_errors` carries the standard errors an estimate store keeps
  (``tr_mem_se``, ``influence_se``, see :mod:`memoxr.estimate.sums`) into
  ``influence_weighted_memo`` to first order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal, cast

import dask.array as da
import numpy as np
import xarray as xr

from ..compute.manners import reduce_skipna, resolve_keep_attrs
from ..compute.progress import compute, deprecated_show_progress
from ..errors import MemoxrInputError
from ..io.chunks import DEFAULT_CHUNK_MB, plan_block_chunks
from ..io.location import StorageOptions, locate
from ..io.schema import CLASS, TEST, TRAIN, kept_attrs
from .sums import TrialSums
from .variables import memorization, within_class_influence

__all__ = ["convergence", "plot_convergence", "score_errors", "write_convergence"]

DEFAULT_FRACTIONS = tuple(k / 10 for k in range(1, 11))
CONVERGENCE_COLUMNS = (
    "fraction", "n_trials", "estimate", "n_defined", "correlation", "mean_abs_diff", "mean_abs_change",
)


def convergence(
    trials: Any,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    show_progress: bool | None = None,
    storage_options: StorageOptions = None,
) -> Any:
    """How the estimates move as trials are added: a tidy pandas table, one row per fraction and estimate.

    The estimate from the first ``round(fraction * n_trials)`` trials (in the
    records' order; at least one, so fractions that round to the same count give
    the same row twice) is compared with the estimate from all of them, for
    ``memorization`` (``tr_mem``) and for the within-class ``influence``:

    - ``correlation``: Pearson correlation with the all-trial estimate;
    - ``mean_abs_diff``: mean ``|estimate - all-trial estimate|``;
    - ``mean_abs_change``: mean ``|estimate - estimate at the previous fraction|``
      (NaN on the first row);
    - ``n_defined``: values defined in both (a sample in every or no subset of
      the first trials has none), over which the means are taken.

    The records are read once: the sums of each slice of trials are added to
    those before it; the influence statistics are dask reductions, so memory is
    bounded by ``chunk_mb``-sized chunks.

    Parameters
    ----------
    trials : path, mapping or xarray.Dataset
        Trial records, as :func:`memoxr.estimate.estimate` reads them.
    fractions : sequence of float
        Increasing fractions of the trials in ``(0, 1]``.
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONVERGENCE_COLUMNS`.

    Examples
    --------
    >>> import numpy as np, memoxr
    >>> rng = np.random.default_rng(0)
    >>> mask = rng.random((40, 6)) < 0.5
    >>> records = {"mask": mask, "train_correct": mask | (rng.random((40, 6)) < 0.5),
    ...            "test_correct": rng.random((40, 4)) < 0.5, "tr_labels": np.arange(6) % 2,
    ...            "tt_labels": np.arange(4) % 2}
    >>> table = memoxr.convergence(records, fractions=(0.5, 1.0))
    >>> table[["fraction", "n_trials", "estimate", "correlation"]].round(2).to_dict("records")[-1]
    {'fraction': 1.0, 'n_trials': 40, 'estimate': 'influence', 'correlation': 1.0}
    """
    import pandas as pd

    from .graph import class_indices, records_sums, validate_chunk_mb
    from .trials import read_records

    chunk_mb = validate_chunk_mb(chunk_mb)
    records = read_records(locate(trials, storage_options), chunk_mb)
    n_total = records.mask.shape[0]
    ends = _trial_counts(fractions, n_total)
    classes, train_index, test_index = class_indices(records.tr_labels, records.tt_labels)
    plan = plan_block_chunks(len(classes), train_index.shape[1], test_index.shape[1], chunk_mb=chunk_mb)
    cumulative: list[TrialSums] = []
    start = 0
    for end in sorted({*ends, n_total}):
        part = dataclasses.replace(records, **{k: getattr(records, k)[start:end] for k in ("mask", "train_correct", "test_correct")})
        sums = records_sums(part, train_index, test_index, plan, chunk_mb=chunk_mb)
        cumulative.append(sums if not cumulative else cumulative[-1] + sums)
        start = end
    by_count = {s.n_trials: s for s in cumulative}
    mems = {n: memorization(s.train, n) for n, s in by_count.items()}
    infls = {n: within_class_influence(s, train_index, test_index) for n, s in by_count.items()}
    stats = []
    for k, n in enumerate(ends):
        previous = ends[k - 1] if k else None
        stats.append(("memorization", _compare(mems[n], mems[n_total], None if previous is None else mems[previous])))
        stats.append(("influence", _compare(infls[n], infls[n_total], None if previous is None else infls[previous])))
    with deprecated_show_progress(show_progress, "convergence"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the means of samples without an estimate
        computed = compute(*(da.stack([da.asarray(v) for v in s]) for _, s in stats))
    rows = []
    for (name, _), values, k in zip(stats, computed, [k for k in range(len(ends)) for _ in range(2)], strict=True):
        count, sx, sy, sxx, syy, sxy, diff, change, change_count = (float(v) for v in values)
        corr = np.nan
        if count:
            var_x, var_y = sxx / count - (sx / count) ** 2, syy / count - (sy / count) ** 2
            if var_x > 0 and var_y > 0:
                corr = (sxy / count - sx * sy / count**2) / np.sqrt(var_x * var_y)
        rows.append({
            "fraction": float(fractions[k]), "n_trials": int(ends[k]), "estimate": name, "n_defined": int(count),
            "correlation": float(np.clip(corr, -1, 1)) if np.isfinite(corr) else np.nan,
            "mean_abs_diff": diff / count if count else np.nan,
            "mean_abs_change": change / change_count if k and change_count else np.nan,
        })
    return pd.DataFrame(rows, columns=list(CONVERGENCE_COLUMNS))


def _trial_counts(fractions: Sequence[float], n_total: int) -> list[int]:
    values = list(fractions) if isinstance(fractions, Sequence) and not isinstance(fractions, str) else None
    if not values or any(
        isinstance(f, bool) or not isinstance(f, int | float | np.floating) or not 0 < f <= 1 for f in values
    ) or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise MemoxrInputError(
            f"fractions: expected increasing numbers in (0, 1], received {fractions!r}"
        )
    return [max(1, round(f * n_total)) for f in values]


def _compare(x: Any, full: Any, previous: Any) -> list[Any]:
    """Sums for the Pearson correlation and the mean differences, over values defined in both."""
    lib = da if isinstance(x, da.Array) else np
    x, full = lib.asarray(x, dtype=np.float64), lib.asarray(full, dtype=np.float64)
    both = lib.isfinite(x) & lib.isfinite(full)
    xs, ys = lib.where(both, x, 0.0), lib.where(both, full, 0.0)
    sums = [both.sum(), xs.sum(), ys.sum(), (xs * xs).sum(), (ys * ys).sum(), (xs * ys).sum(), abs(xs - ys).sum()]
    if previous is None:
        return [*sums, 0.0, 0.0]
    previous = lib.asarray(previous, dtype=np.float64)
    moved = lib.isfinite(x) & lib.isfinite(previous)
    return [*sums, lib.where(moved, abs(x - previous), 0.0).sum(), moved.sum()]


def plot_convergence(table: Any, *, axes: Any = None) -> Any:
    """Draw a :func:`convergence` table: correlation with the all-trial estimate and mean |change| by trials.

    Returns the :class:`matplotlib.figure.Figure` (two panels, or the figure of the given ``axes`` pair).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"estimate": ["memorization"] * 2, "n_trials": [5, 10],
    ...                       "correlation": [0.9, 1.0], "mean_abs_change": [float("nan"), 0.1]})
    >>> len(plot_convergence(table).axes)
    2
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    else:
        fig = axes[0].figure
    for name, group in table.groupby("estimate", sort=False):
        axes[0].plot(group["n_trials"], group["correlation"], marker="o", label=name)
        axes[1].plot(group["n_trials"], group["mean_abs_change"], marker="o", label=name)
    axes[0].set(xlabel="trials", ylabel="correlation with all-trial estimate")
    axes[1].set(xlabel="trials", ylabel="mean |change| from previous step", yscale="log")
    axes[0].legend()
    return fig


def score_errors(
    ds: xr.Dataset, *, errors: Literal["independent", "bound"] = "independent", skipna: bool | None = None,
    keep_attrs: bool | None = None,
) -> xr.Dataset:
    """First-order standard error of ``influence_weighted_memo = m_i * mean_j max(I_ij, 0)``, lazily.

    With ``P_i = mean_j max(I_ij, 0)`` over the ``n_c`` test samples of the
    class, ``se(m_i)`` = ``tr_mem_se`` and ``se(I_ij)`` = ``influence_se`` of an
    estimate store (the delta method; ``max(I, 0)`` has slope 1 where ``I > 0``
    and 0 elsewhere)::

        se(P_i)^2 = sum_{j: I_ij > 0} se(I_ij)^2 / n_c^2             (errors="independent")
        se(P_i)   = sum_{j: I_ij > 0} se(I_ij) / n_c                 (errors="bound")
        se(m_i P_i)^2 = P_i^2 se(m_i)^2 + m_i^2 se(P_i)^2

    The ``I_ij`` of one train sample share its trials, so their errors are
    correlated: ``"independent"`` neglects that, ``"bound"`` is the largest
    ``se(P_i)`` any correlation allows. The covariance of ``m_i`` with ``P_i``
    is neglected, and influence values within about one error of 0 make the
    linearisation rough; the bootstrap intervals (``--bootstrap``) need neither.

    A NaN influence of a real test sample makes the row's values NaN (``skipna=None``,
    the default, or ``False``), or is left out (``True``: ``n_c`` counts the finite
    entries); ``keep_attrs`` copies ``ds.attrs``. The rule: :mod:`memoxr.compute.manners`.

    Returns
    -------
    xarray.Dataset
        ``(class, train_sample)``: ``influence_weighted_memo`` and its ``_se``,
        ``pos_infl_mean`` and its ``_se``, ``memorization_se``; NaN padding.

    Examples
    --------
    >>> import numpy as np, memoxr.estimate as me
    >>> rng = np.random.default_rng(1)
    >>> mask = rng.random((30, 4)) < 0.5
    >>> ds = me.estimate({"mask": mask, "train_correct": mask, "test_correct": rng.random((30, 2)) < 0.5,
    ...                   "tr_labels": np.array([0, 0, 1, 1]), "tt_labels": np.array([0, 1])})
    >>> errors = score_errors(ds)
    >>> errors["influence_weighted_memo_se"].dims, bool((errors["influence_weighted_memo_se"] >= 0).all())
    (('class', 'train_sample'), True)
    """
    missing = [name for name in ("influence_se", "tr_mem_se") if name not in ds.variables]
    if missing:
        raise MemoxrInputError(
            f"score_errors: the store lacks {missing}; expected an estimate store written by memoxr estimate "
            "(Zarr), which keeps the standard errors"
        )
    if errors not in ("independent", "bound"):
        raise MemoxrInputError(f"errors: expected 'independent' or 'bound', received {errors!r}")
    skip, keep = reduce_skipna(skipna), resolve_keep_attrs(keep_attrs)
    real_test = ds["test_index"] >= 0
    if skip:  # a NaN entry is left out: the row's mean is over its finite entries
        real_test = real_test & ds["influence"].notnull()
    count = real_test.sum(TEST) if skip else ds["test_count"]
    n = count.where(count > 0)
    influence = ds["influence"].astype(np.float64).where(real_test, 0.0)
    positive = (influence > 0) & real_test
    pos_mean = influence.clip(min=0).sum(TEST, skipna=False) / n
    se = ds["influence_se"].astype(np.float64).where(positive, 0.0)
    if errors == "independent":
        pos_se = cast(xr.DataArray, np.sqrt((se**2).sum(TEST, skipna=False))) / n
    else:
        pos_se = se.sum(TEST, skipna=False) / n
    index = ds["train_index"]
    rows = np.maximum(index.values, 0)  # padding -1 -> any row, masked below
    row_se = ds["tr_mem_se"].data  # lazy when the store is: gathered, not read whole now
    gathered = row_se[rows.ravel()].reshape(rows.shape) if isinstance(row_se, da.Array) else np.asarray(row_se)[rows]
    mem_se = xr.DataArray(gathered, dims=(CLASS, TRAIN)).where(index >= 0)
    mem = ds["memorization"]
    out = xr.Dataset({
        "influence_weighted_memo": mem * pos_mean,
        "influence_weighted_memo_se": np.sqrt(pos_mean**2 * mem_se**2 + mem**2 * pos_se**2),
        "pos_infl_mean": pos_mean.where(index >= 0),
        "pos_infl_mean_se": pos_se.where(index >= 0),
        "memorization_se": mem_se,
    })
    out.attrs = {**kept_attrs(ds.attrs, keep), "errors": errors}
    return out.transpose(CLASS, TRAIN)


def write_convergence(
    trials: Any, output: str | os.PathLike[str], *, fractions: Sequence[float] = DEFAULT_FRACTIONS,
    figure: str | os.PathLike[str] | None = None, chunk_mb: float = DEFAULT_CHUNK_MB, overwrite: bool = False,
) -> tuple[Any, list[str]]:
    """:func:`convergence` saved as a CSV table (and, with ``figure``, a PNG of :func:`plot_convergence`).

    Both outputs are checked before the work and written complete or absent.
    Returns the table and the paths written.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> mask = rng.random((20, 4)) < 0.5
    >>> records = {"mask": mask, "train_correct": mask, "test_correct": rng.random((20, 2)) < 0.5,
    ...            "tr_labels": np.arange(4) % 2, "tt_labels": np.arange(2)}
    >>> table, written = write_convergence(records, os.path.join(tempfile.mkdtemp(), "c.csv"), fractions=(0.5, 1.0))
    >>> len(table), [os.path.basename(p) for p in written]
    (4, ['c.csv'])
    """
    from ..compute.progress import damaged_store_as_input_error
    from ..io.storage import atomic_output, check_writable

    if figure is not None and (str(figure) == str(output) or not str(figure).endswith(".png")):
        raise MemoxrInputError(f"figure (--figure) {str(figure)!r}: expected a .png file other than the table {str(output)!r}")
    for path in (output, figure):
        if path is not None:
            check_writable(path, overwrite=overwrite, kind="file")
    if figure is not None:  # before the work: a missing plot extra is one line, not a lost run
        from .._optional import require

        require("matplotlib", "plot")
    is_path = isinstance(trials, str | os.PathLike)
    with damaged_store_as_input_error(trials) if is_path else contextlib.nullcontext():  # a damaged chunk in one line
        table = convergence(trials, fractions, chunk_mb=chunk_mb)
    with atomic_output(output, overwrite=overwrite) as tmp:
        table.to_csv(tmp, index=False)
    written = [str(output)]
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        fig = plot_convergence(table)
        with atomic_output(figure, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        written.append(str(figure))
    return table, written
