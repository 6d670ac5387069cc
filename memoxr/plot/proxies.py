"""Figures of memorization proxies: binned against memorization, and the data map.

ROC and precision-recall curves are in :mod:`memoxr.plot.detection`; the
inputs here are plain arrays paired the same way (see :mod:`memoxr.plot`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..errors import MemoxrInputError
from ._style import (
    SCALES,
    ArrayLike,
    Scale,
    check_bins,
    check_choice,
    check_paired,
    label_of,
    legend_outside,
    new_axes,
    resolve_scale,
    scale_transforms,
    significant,
    to_numpy,
)
from .detection import pr_curves, roc_curves  # noqa: F401  (their place before the split)


def tie_aware_bins(x: np.ndarray, bins: int) -> list[np.ndarray]:
    """Indices of ``x`` (finite) in about ``bins`` bins, in ascending order of ``x``; ties never split.

    A value held by at least ``n / bins`` samples (typically the exact zeros of
    a memorization estimate) is a bin of its own. The other samples are cut at
    the quantiles ``1/m, ..., (m-1)/m`` of their values, ``m`` the bins left
    (at least 1), and at each value with a bin of its own. A value on a cut
    goes to the upper bin, so tied values share a bin; cuts that coincide
    merge bins (fewer than ``bins``), and a bin that would straddle a value
    with its own bin is split there (at most one more bin per such value).

    Examples
    --------
    Six exact zeros hold more than ``n / bins`` samples: they are a bin of their own.

    >>> [b.tolist() for b in tie_aware_bins(np.r_[np.zeros(6), [0.1, 0.2, 0.3, 0.4]], 3)]
    [[0, 1, 2, 3, 4, 5], [6, 7], [8, 9]]
    """
    values, counts = np.unique(x, return_counts=True)
    heavy = values[counts * bins >= x.size]
    groups = [np.flatnonzero(x == v) for v in heavy]
    rest = np.flatnonzero(~np.isin(x, heavy))
    if rest.size:
        quantiles = np.quantile(x[rest], np.linspace(0.0, 1.0, max(1, bins - heavy.size) + 1)[1:-1])
        cuts = np.unique(np.r_[quantiles, heavy])
        which = np.searchsorted(cuts, x[rest], side="right")
        groups += [rest[which == b] for b in np.unique(which)]
    return sorted(groups, key=lambda g: x[g].min())


#: Quantiles of the proxy drawn per bin: the median line, a 25-75 band and a 10-90 band.
BANDS = ((25.0, 75.0), (10.0, 90.0))


def binned_against_memorization(
    proxy: ArrayLike,
    memorization: ArrayLike,
    *,
    bins: int = 10,
    label: str | None = None,
    scale: Scale = "auto",
    ax: Axes | None = None,
) -> Axes:
    """A proxy against FZ memorization, in bins that respect ties: median and quantile bands per bin.

    Dims contract: ``proxy`` and ``memorization`` have one shape (one value
    per sample, paired by position; two DataArrays must share dims and
    coordinates). Samples where either is not finite (e.g. padding) are left
    out. The bins are :func:`tie_aware_bins` of the memorization: a value as
    frequent as one bin's share (the exact zeros, usually) is a bin of its
    own, the rest is cut at its quantiles. Each bin is drawn at its median
    memorization (a thin horizontal line spans the bin's range) with the
    median of the proxy, a band from its 25th to 75th and a lighter one from
    its 10th to 90th percentile: skewed proxies are not given a symmetric
    error bar that crosses zero.

    Parameters
    ----------
    proxy, memorization : array-like
        Per-sample values (numpy, list, dask or DataArray).
    bins : int
        Number of bins aimed at, 1 <= bins <= n (fewer when ties merge
        quantile cuts; see :func:`tie_aware_bins`).
    label : str, optional
        Name of the proxy for the axis; default the DataArray's ``long_name``
        or name (with ``[units]``), else ``"proxy"``.
    scale : {"auto", "linear", "log", "symlog"}
        Scale of the memorization axis; ``"auto"`` as in
        :func:`memoxr.plot.score_distributions`, with ``"log"`` applied as
        ``"symlog"`` so a bin at 0 stays on the figure.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        The medians are the line ``gid="binned_median"`` (x = median
        memorization of the bin); the bands the collections ``gid="band:25-75"``
        and ``"band:10-90"``; the bins' ranges the collection
        ``gid="bin_range"``.

    Raises
    ------
    MemoxrInputError
        ``bins`` not an integer in [1, n]; unknown ``scale``; shapes or
        coordinates that differ.

    Example
    -------
    >>> import numpy as np, memoxr.plot
    >>> memo = np.r_[np.zeros(80), np.linspace(0.1, 1, 20)]
    >>> ax = memoxr.plot.binned_against_memorization(memo + np.random.rand(100), memo, bins=5)
    """
    check_bins(bins)
    check_choice("scale", scale, SCALES)
    check_paired("memorization", memorization, "proxy", proxy)
    arrays = to_numpy({"proxy": proxy, "memorization": memorization})
    y, x = arrays["proxy"].astype(np.float64), arrays["memorization"].astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    check_bins(bins, x.size)
    groups = tie_aware_bins(x, bins)
    centers = np.array([np.median(x[g]) for g in groups])
    medians = np.array([np.median(y[g]) for g in groups])

    name = label if label is not None else label_of(proxy, "proxy")
    ax = new_axes(ax, (6.5, 5.2))
    axis_scale = resolve_scale(x, scale)
    axis_scale = "symlog" if axis_scale == "log" else axis_scale
    ax.set_xscale(axis_scale, **scale_transforms(axis_scale, x)[2])
    for (low, high), alpha in zip(BANDS, (0.35, 0.15), strict=True):
        lower = np.array([np.percentile(y[g], low) for g in groups])
        upper = np.array([np.percentile(y[g], high) for g in groups])
        ax.fill_between(centers, lower, upper, color="C0", alpha=alpha, linewidth=0, step=None,
                        label=f"{low:.0f}th-{high:.0f}th percentile", gid=f"band:{low:.0f}-{high:.0f}")
    ax.hlines(medians, [x[g].min() for g in groups], [x[g].max() for g in groups], color="C0", linewidth=1.2,
              alpha=0.8, gid="bin_range", label="range of the bin")
    ax.plot(centers, medians, "o-", color="C0", markersize=4, linewidth=1.4, label="median", gid="binned_median")
    ax.set_xlabel("memorization (FZ estimate), median of the bin" + ("; symlog" if axis_scale == "symlog" else ""))
    ax.set_ylabel(f"{name}, per bin")
    own = [g for g in groups if np.unique(x[g]).size == 1 and g.size * bins >= x.size]
    cut = [g.size for g in groups if not any(g is o for o in own)]
    parts = [f"{g.size} at {significant(x[g[0]])}" for g in own]
    if cut:
        sizes = f"{min(cut)}" if min(cut) == max(cut) else f"{min(cut)}-{max(cut)}"
        parts.append(f"{len(cut)} quantile bins of {sizes}")
    ax.set_title(f"{name} against memorization\n(bins: {', '.join(parts)}; {x.size} samples)", fontsize="medium")
    legend_outside(ax, ncols=2)
    ax.grid(alpha=0.3)
    return ax


def data_map(
    confidence: ArrayLike,
    variability: ArrayLike,
    correct: ArrayLike | None = None,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Dataset cartography: confidence (y) against variability (x), coloured by correctness.

    Dims contract: the arrays have one shape (one value per sample, paired by
    position; two DataArrays must share dims and coordinates). ``confidence``
    is the mean over epochs of the true-class probability, ``variability``
    its std over epochs, ``correct`` the fraction of epochs where the sample
    was classified correctly (a boolean array counts as 0 / 1). Samples with a
    non-finite confidence or variability are left out. Regions follow
    Swayamdipta et al. (2020): easy-to-learn (high confidence, low
    variability), hard-to-learn (low confidence, low variability), ambiguous
    (high variability).

    Parameters
    ----------
    confidence, variability : array-like
        Per-sample values (numpy, list, dask or DataArray).
    correct : array-like, optional
        Per-sample fraction correct in [0, 1]; one colour when omitted.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        The points are the collection ``gid="data_map"`` (offsets
        (variability, confidence); colours from ``correct``).

    Raises
    ------
    MemoxrInputError
        Shapes or coordinates that differ; ``correct`` outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ax = data_map(rng.random(50), 0.3 * rng.random(50), rng.random(50))
    >>> ax.get_xlabel().split(" (")[0], ax.get_ylabel().split(" (")[0]
    ('variability', 'confidence')
    """
    check_paired("confidence", confidence, "variability", variability)
    inputs = {"confidence": confidence, "variability": variability}
    if correct is not None:
        check_paired("confidence", confidence, "correct", correct)
        inputs["correct"] = correct
    arrays = to_numpy(inputs)
    y, x = arrays["confidence"].astype(np.float64), arrays["variability"].astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    fraction = None
    if correct is not None:
        fraction = arrays["correct"].astype(np.float64)
        bad = fraction[keep & ~((fraction >= 0) & (fraction <= 1))]
        if bad.size:
            raise MemoxrInputError(
                f"correct must be the fraction of epochs correct, in [0, 1] (or boolean); "
                f"received {bad.size} values outside, e.g. {bad[0]!r}"
            )
        fraction = fraction[keep]
    x, y = x[keep], y[keep]

    ax = new_axes(ax, (6.5, 5.5))
    size = 14 if x.size < 2000 else (5 if x.size < 20000 else 2)
    style: dict[str, Any] = {"s": size, "linewidths": 0, "alpha": 0.8, "rasterized": x.size > 5000, "gid": "data_map"}
    if fraction is None:
        ax.scatter(x, y, color="C0", **style)
    else:
        points = ax.scatter(x, y, c=fraction, cmap="viridis", vmin=0, vmax=1, **style)
        ax.figure.colorbar(points, ax=ax, label="correctness (fraction of epochs correct)")
    if y.size and y.min() >= 0 and y.max() <= 1:
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("variability (std over epochs of the true-class probability)")
    ax.set_ylabel("confidence (mean over epochs of the true-class probability)")
    # The regions are named in the title, not on the axes, where they would hide samples.
    ax.set_title(
        f"Data map of {x.size} samples\n(easy-to-learn: top left; hard-to-learn: bottom left; ambiguous: right)",
        fontsize="medium",
    )
    return ax


