"""Per-class distributions of one score, honest about exact zeros and skew."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import numpy as np
import xarray as xr
from matplotlib import cbook, mlab
from matplotlib.axes import Axes

from ..errors import MemoxrInputError
from ..io.schema import CLASS, check_scores_dataset
from ._style import (
    SCALES,
    Scale,
    check_choice,
    check_score_name,
    class_position,
    class_ticks,
    distribution_size,
    new_axes,
    resolve_scale,
    scale_transforms,
    scores_subset,
)

#: Orders of the classes along x; ``None`` is the class order too.
SORTS = ("mean", "median", "nonzero", "class")
SortBy = Literal["mean", "median", "nonzero", "class"]


def _class_values(scores: xr.Dataset, name: str, classes: Sequence[Any] | None) -> tuple[list[np.ndarray], list[Any]]:
    """Finite values of each class's real samples (padding excluded), and the class labels."""
    labels = scores[CLASS].values.tolist()
    if classes is None:
        positions = list(range(len(labels)))
    else:
        positions = [class_position(scores, c, "classes") for c in classes]
        if not positions:
            raise MemoxrInputError("classes must name at least one class; received an empty sequence")
    data = scores_subset(scores.isel({CLASS: positions}), [name])
    real = data["training_indices"].values >= 0
    values = [row[keep][np.isfinite(row[keep])] for row, keep in zip(data[name].values, real, strict=True)]
    return values, [labels[p] for p in positions]


def class_order(values: Sequence[np.ndarray], sort_by: str | None) -> np.ndarray:
    """Positions of the classes in ascending order of ``sort_by``; ties by mean, then class order.

    ``"nonzero"`` is the share of values that are not exactly 0. Classes
    without values come last; ``"class"`` and None keep the class order.

    Examples
    --------
    >>> class_order([np.array([3.0, 1.0]), np.array([0.5]), np.array([])], "mean")  # the empty class last
    array([1, 0, 2])
    """
    n = len(values)
    if sort_by in (None, "class"):
        return np.arange(n)
    empty = np.array([v.size == 0 for v in values])
    mean = np.array([v.mean() if v.size else np.inf for v in values])
    if sort_by == "mean":
        primary = mean
    elif sort_by == "median":
        primary = np.array([np.median(v) if v.size else np.inf for v in values])
    else:
        primary = np.array([np.count_nonzero(v) / v.size if v.size else np.inf for v in values])
    return np.lexsort((np.arange(n), mean, primary, empty))


def _gaussian_kde(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    return mlab.GaussianKDE(values).evaluate(coords)


def _inverse_stats(stats: dict[str, Any], backward: Any, keys: Sequence[str]) -> dict[str, Any]:
    out = dict(stats)
    for key in keys:
        if key in out:
            out[key] = backward(out[key])
    return out


def score_distributions(
    scores: xr.Dataset,
    name: str = "original_memo",
    *,
    kind: Literal["box", "violin"] = "box",
    sort_by: SortBy | None = "mean",
    scale: Scale = "auto",
    classes: Sequence[Any] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Per-class distributions of one score, with the share of exact zeros of each class on top.

    Dims contract: ``scores`` has dims ``(class, train_sample)`` as returned by
    :func:`memoxr.influence_scores`; a class's values are its real samples
    (``training_indices >= 0``) with a finite ``name``. Only ``name`` and
    ``training_indices`` are computed.

    Scores are often zero-inflated (most samples exactly 0) and skewed. The
    top axis gives, per class, the percentage of values that are exactly 0.
    On a ``"log"`` axis the boxes (or violins) show the positive values only
    (the zeros are the percentage on top); on ``"symlog"`` every value is
    drawn, linear within ``±linthresh`` around 0 and logarithmic beyond.
    Quartiles, Tukey whiskers (the most extreme values within 1.5 IQR of the
    box; points beyond are drawn) and violin densities are computed on the
    axis's scale (on log10 of the values for ``"log"``), so a box means the
    same on any axis. A class whose drawn values have fewer than two distinct
    values, or whose quartiles coincide, is drawn as its values (short
    horizontal ticks) rather than as a box of zero height.

    Parameters
    ----------
    scores : xarray.Dataset
        Scores, lazy or in memory.
    name : str
        Any ``(class, train_sample)`` variable: ``original_memo``, one of the
        four scores, ``pos_infl_mean`` or ``influence_std``.
    kind : {"box", "violin"}
        Box plots or violin plots.
    sort_by : {"mean", "median", "nonzero", "class"} or None
        Classes in ascending order of the per-class mean, median (ties, as
        when most medians are 0, broken by the mean) or share of non-zero
        values (ties by the mean); in class order for ``"class"`` or None.
        Classes with no finite value come last. With ``"mean"`` the mean of
        all values (zeros included) is drawn as a diamond.
    scale : {"auto", "linear", "log", "symlog"}
        The value axis. ``"auto"``: linear unless the values are zero-heavy
        (at least 25 % exactly 0) or skewed (90th percentile of the non-zero
        magnitudes at least 100 times the 10th); then log, or symlog when
        some values are negative. ``"log"`` needs values >= 0.
    classes : sequence, optional
        Class labels to draw (default: all).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        Box plots: median lines carry ``gid="median:<class>"``, boxes
        ``"box:<class>"``, mean markers ``"mean:<class>"``, whiskers
        ``"whisker_low:<class>"`` and ``"whisker_high:<class>"``. Violins:
        bodies ``gid="violin:<class>"``; the collections ``"medians"`` (or
        ``"means"``), ``"mins"`` and ``"maxes"`` hold one segment per violin,
        in x order. Classes drawn as values: ``gid="points:<class>"``. The
        top axis (``ax.child_axes[0]``, ``gid="zero_share"``) labels each
        class with its percentage of exact zeros; it is left out when no value is 0.

    Raises
    ------
    MemoxrInputError
        Unknown ``name``, ``kind``, ``sort_by``, ``scale`` or class in
        ``classes``; ``scale="log"`` with negative values.

    Example
    -------
    >>> import memoxr, memoxr.plot
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> ax = memoxr.plot.score_distributions(scores, "critical_sample_score", sort_by="nonzero")
    """
    check_scores_dataset(scores)
    check_score_name(scores, name)
    check_choice("kind", kind, ("box", "violin"))
    check_choice("sort_by", sort_by, (*SORTS, None))
    check_choice("scale", scale, SCALES)
    values, shown = _class_values(scores, name, classes)
    order = class_order(values, sort_by)
    values, shown = [values[i] for i in order], [shown[i] for i in order]
    pooled = np.concatenate(values) if values else np.empty(0)
    scale = resolve_scale(pooled, scale)
    if scale == "log" and (pooled < 0).any():
        raise MemoxrInputError(
            f"scale='log' needs values >= 0; {name} has {int((pooled < 0).sum())} negative values "
            "(use scale='symlog')"
        )
    forward, backward, scale_kwargs = scale_transforms(scale, pooled)
    drawn = [v[v > 0] if scale == "log" else v for v in values]

    n = len(values)
    ax = new_axes(ax, distribution_size(n))
    x = np.arange(1, n + 1, dtype=float)
    ax.set_yscale(scale, **scale_kwargs)
    as_points = []
    if kind == "box":
        as_points = _draw_boxes(ax, x, drawn, shown, forward, backward, values if sort_by == "mean" else None)
    else:
        as_points = _draw_violins(ax, x, drawn, shown, forward, backward, sort_by == "mean")
    for i in as_points:
        if drawn[i].size:
            ax.plot(np.full(drawn[i].size, x[i]), drawn[i], "_", color="C0", markersize=8, gid=f"points:{shown[i]}")

    class_ticks(ax, ax, x, shown)
    if n:
        ax.set_xlim(x[0] - 0.75, x[-1] + 0.75)
    zeros = [np.count_nonzero(v == 0) / v.size if v.size else np.nan for v in values]
    if np.nansum(zeros) > 0:  # a row of "0" would only be noise
        top = ax.secondary_xaxis("top")
        top.set_gid("zero_share")
        class_ticks(top, ax, x, ["" if np.isnan(z) else f"{100 * z:.0f}" for z in zeros])
        top.set_xlabel("% of the class exactly 0" + (" (not on the log axis)" if scale == "log" else ""),
                       fontsize="small")
    order_text = {
        "mean": f"sorted by mean {name}; diamond: mean of all values", "median": f"sorted by median {name}",
        "nonzero": "sorted by share of non-zero values", "class": "in class order", None: "in class order",
    }[sort_by]
    ax.set_xlabel(f"class ({order_text})")
    scale_text = {"linear": "", "log": ", log scale: values > 0",
                  "symlog": f", symlog scale: linear within ±{scale_kwargs.get('linthresh', 0):g}"}[scale]
    ax.set_ylabel(f"{name}{scale_text}")
    total = int(pooled.size)
    share = f"{100 * np.count_nonzero(pooled == 0) / total:.0f}% exactly 0" if total else "no values"
    what = "Box plots" if kind == "box" else "Violin plots"
    ax.set_title(f"{what} of {name} per class\n({n} classes, {total} samples, {share}; padding excluded)")
    ax.grid(axis="y", alpha=0.3)
    return ax


def _draw_boxes(ax: Axes, x: np.ndarray, drawn: list[np.ndarray], shown: list[Any], forward: Any, backward: Any,
                means_of: list[np.ndarray] | None) -> list[int]:
    """Tukey boxes computed on the axis scale; returns the classes to draw as points instead."""
    stats, where, as_points = [], [], []
    for i, v in enumerate(drawn):
        if np.unique(v).size < 2:
            as_points.append(i)
            continue
        (stat,) = cbook.boxplot_stats(forward(v), whis=1.5)
        if stat["q3"] <= stat["q1"]:
            as_points.append(i)
            continue
        stats.append(_inverse_stats(stat, backward, ("mean", "med", "q1", "q3", "whislo", "whishi", "fliers",
                                                     "cilo", "cihi")))
        where.append(i)
    if stats:
        artists = ax.bxp(
            stats, positions=x[where], widths=0.6, manage_ticks=False, patch_artist=True,
            boxprops={"facecolor": "#dbe6f3", "edgecolor": "0.25", "linewidth": 0.8},
            flierprops={"markersize": 2, "alpha": 0.5, "markeredgecolor": "0.4"},
            medianprops={"color": "C1", "linewidth": 1.5},
        )
        for k, i in enumerate(where):
            artists["medians"][k].set_gid(f"median:{shown[i]}")
            artists["boxes"][k].set_gid(f"box:{shown[i]}")
            artists["whiskers"][2 * k].set_gid(f"whisker_low:{shown[i]}")
            artists["whiskers"][2 * k + 1].set_gid(f"whisker_high:{shown[i]}")
    for i in as_points:
        if drawn[i].size:
            ax.plot([x[i] - 0.3, x[i] + 0.3], [np.median(drawn[i])] * 2, color="C1", linewidth=1.5,
                    gid=f"median:{shown[i]}")
    if means_of is not None:
        for i, v in enumerate(means_of):
            if v.size and (ax.get_yscale() != "log" or v.mean() > 0):
                ax.plot([x[i]], [v.mean()], "D", markersize=3.5, color="C2", gid=f"mean:{shown[i]}")
    return as_points


def _draw_violins(ax: Axes, x: np.ndarray, drawn: list[np.ndarray], shown: list[Any], forward: Any, backward: Any,
                  show_means: bool) -> list[int]:
    """Violins whose densities are estimated on the axis scale; returns the classes drawn as points."""
    body = [i for i, v in enumerate(drawn) if np.unique(v).size >= 2]
    if body:
        stats = cbook.violin_stats([forward(drawn[i]) for i in body], _gaussian_kde, points=200)
        stats = [_inverse_stats(s, backward, ("coords", "mean", "median", "min", "max")) for s in stats]
        centre = "means" if show_means else "medians"
        artists = ax.violin(stats, positions=x[body], widths=0.8, showextrema=True,
                            showmedians=centre == "medians", showmeans=centre == "means")
        artists[f"c{centre}"].set(gid=centre, color="C1", linewidth=2)
        for part, gid in (("cmins", "mins"), ("cmaxes", "maxes"), ("cbars", "bars")):
            artists[part].set(gid=gid, color="0.35", linewidth=0.8)
        for k, i in enumerate(body):
            # matplotlib types the bodies as one Collection; they are a list of PolyCollections.
            cast(list, artists["bodies"])[k].set(gid=f"violin:{shown[i]}", facecolor="#9bb8dc", edgecolor="0.3", alpha=0.8)
    return [i for i in range(len(drawn)) if i not in body]
