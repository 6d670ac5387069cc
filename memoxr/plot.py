"""Figures of the scores and of memorization proxies, with matplotlib.

matplotlib is an optional extra: ``pip install "memoxr[plot]"``. Every function
takes an optional ``ax=`` (a new figure is made through pyplot otherwise),
returns the :class:`matplotlib.axes.Axes` it drew on, and computes from lazy
inputs only the variables it draws, in one dask pass.

Scores figures take the ``(class, train_sample)`` Dataset of
:func:`memoxr.influence_scores`; padding (``training_indices == -1``) and NaN
values are never drawn. Proxy figures take plain arrays: numpy arrays, lists,
or xarray DataArrays (lazy or not) of one shape, paired element by element; two
DataArrays must also carry the same dims and coordinates, so samples in
different orders are refused rather than silently mispaired.

Drawn artists carry a ``gid`` (``"median:<class>"``, ``"roc:<name>"``...) so a
test or a script can find the plotted data again.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

try:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox
except ImportError as exc:  # pragma: no cover - exercised by a test that hides matplotlib
    raise ImportError(
        'memoxr.plot needs matplotlib, an optional extra: pip install "memoxr[plot]"'
    ) from exc

from .analysis import METHODS, rank_agreement, top_k
from .errors import MemoxrInputError
from .progress import compute
from .schema import CLASS, TRAIN, check_scores_dataset

__all__ = [
    "binned_against_memorization",
    "data_map",
    "memorization_vs_influence",
    "method_agreement",
    "pr_curves",
    "roc_curves",
    "score_distributions",
    "top_k_table",
    "write_score_figures",
]

#: Files :func:`write_score_figures` (``memoxr plot``) writes, in order.
FIGURE_FILES = (
    "score_distributions.png",
    "memorization_vs_influence.png",
    "method_agreement.png",
    "top_k_table.png",
)
_MEMO_LABEL = "memorization (FZ estimate, original_memo)"
_INFL_LABEL = "mean positive influence (pos_infl_mean)"
_MIN_TICK_FONT = 5.5  # points; class labels are thinned rather than drawn smaller

ArrayLike = Any  # numpy array, list, dask array or xarray.DataArray


# --------------------------------------------------------------------------- validation


def _check_choice(argument: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise MemoxrInputError(f"{argument} must be one of {list(choices)}; received {value!r}")


def _score_variables(scores: xr.Dataset) -> list[str]:
    return [
        str(name)
        for name, var in scores.data_vars.items()
        if set(var.dims) == {CLASS, TRAIN} and name != "training_indices"
    ]


def _check_score_name(scores: xr.Dataset, name: str, argument: str = "name") -> None:
    valid = _score_variables(scores)
    if name not in valid:
        raise MemoxrInputError(
            f"{argument} must be a (class, train_sample) score variable, one of {valid}; received {name!r}"
        )


def _class_position(scores: xr.Dataset, label: Any, argument: str) -> int:
    labels = scores[CLASS].values.tolist()
    if label not in labels:
        shown = labels if len(labels) <= 12 else [*labels[:5], "...", *labels[-5:]]
        raise MemoxrInputError(f"{argument} must be one of the store's classes {shown}; received {label!r}")
    return labels.index(label)


def _check_bins(bins: Any, n: int | None = None) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise MemoxrInputError(f"bins must be an integer >= 1; received {bins!r}")
    if n is not None and bins > n:
        raise MemoxrInputError(
            f"bins must be at most the number of samples with finite values ({n}); received {bins}"
        )


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MemoxrInputError(f"k must be a positive integer; received {k!r}")


def _check_mask(mask: ArrayLike, argument: str = "mask") -> None:
    dtype = getattr(mask, "dtype", None)
    if dtype is None:
        dtype = np.asarray(mask).dtype
    if dtype != np.bool_:
        raise MemoxrInputError(
            f"{argument} must be a boolean array (True = positive sample); received dtype {dtype}; "
            "convert with mask.astype(bool) if 1 marks a positive"
        )


def _check_paired(ref_name: str, ref: ArrayLike, name: str, value: ArrayLike) -> None:
    """Same shape; two DataArrays must also share dims and coordinates."""
    ref_shape, shape = np.shape(ref), np.shape(value)
    if shape != ref_shape:
        raise MemoxrInputError(
            f"{name} must have the shape of {ref_name} {ref_shape} (one value per sample); received {shape}"
        )
    if isinstance(ref, xr.DataArray) and isinstance(value, xr.DataArray):
        if value.dims != ref.dims:
            raise MemoxrInputError(f"{name} must have the dims of {ref_name} {ref.dims}; received {value.dims}")
        try:
            xr.align(ref, value, join="exact")
        except ValueError as exc:
            raise MemoxrInputError(
                f"{name} and {ref_name} must label the same samples in the same order "
                f"(identical coordinates); received different coordinates: {exc}"
            ) from exc


def _check_proxies(proxies: Any) -> None:
    if not isinstance(proxies, Mapping) or not proxies:
        raise MemoxrInputError(
            f"proxies must be a non-empty dict from name to array; received {type(proxies).__name__}"
            + (" (empty)" if isinstance(proxies, Mapping) else "")
        )


# --------------------------------------------------------------------------- helpers


def _numpy(values: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Flattened numpy copies; dask-backed inputs are computed together, in one pass."""
    computed = compute(*values.values())
    out = {}
    for name, value in zip(values, computed, strict=True):
        data = value.values if isinstance(value, xr.DataArray) else np.asarray(value)
        out[name] = np.ravel(data)
    return out


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def _scores_subset(scores: xr.Dataset, names: Sequence[str]) -> xr.Dataset:
    """The named variables and ``training_indices``, in memory (one dask pass)."""
    wanted = list(dict.fromkeys([*names, "training_indices"]))
    (subset,) = compute(scores[wanted])
    return subset


def _label_of(value: ArrayLike, default: str) -> str:
    """``long_name [units]`` of a DataArray, else its name, else ``default``."""
    if isinstance(value, xr.DataArray):
        name = value.attrs.get("long_name") or value.name
        if name is not None:
            units = value.attrs.get("units")
            return f"{name} [{units}]" if units else str(name)
    return default


def _class_ticks(ax: Axes, positions: np.ndarray, labels: Sequence[Any]) -> None:
    """Class labels on x, every one while they fit at a readable size, else thinned.

    Each class keeps a small tick; labels are rotated when there are many.
    """
    n = len(positions)
    if not n:
        return
    spacing = 72.0 * ax.get_window_extent().width / ax.figure.dpi / n  # points between two classes
    fontsize = min(10.0, 0.9 * spacing)
    step = 1 if fontsize >= _MIN_TICK_FONT else math.ceil(_MIN_TICK_FONT / (0.9 * spacing))
    fontsize = max(fontsize, _MIN_TICK_FONT)
    ax.set_xticks(positions[::step], [str(v) for v in labels[::step]], rotation=90 if n > 12 else 0,
                  fontsize=fontsize)
    if step > 1:
        ax.set_xticks(positions, minor=True)
    ax.set_xlim(positions[0] - 0.75, positions[-1] + 0.75)


# --------------------------------------------------------------------------- scores figures


def score_distributions(
    scores: xr.Dataset,
    name: str = "original_memo",
    *,
    kind: Literal["box", "violin"] = "box",
    sort_by: Literal["median", "mean"] | None = "median",
    classes: Sequence[Any] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Per-class distributions of one score, classes sorted by a statistic.

    Dims contract: ``scores`` has dims ``(class, train_sample)`` as returned by
    :func:`memoxr.influence_scores`; one box (or violin) per class is drawn from
    the class's real samples (``training_indices >= 0``) with a finite
    ``name``. Only ``name`` and ``training_indices`` are computed.

    Boxes span the quartiles with the median marked (and the mean as a
    diamond when ``sort_by="mean"``); whiskers reach the most extreme values
    within 1.5 IQR of the box (Tukey), points beyond are drawn. Violins are
    kernel density estimates with the extremes and the median (the mean when
    ``sort_by="mean"``) marked; a class with fewer than two distinct values is
    drawn as points.

    Parameters
    ----------
    scores : xarray.Dataset
        Scores, lazy or in memory.
    name : str
        Any ``(class, train_sample)`` variable: ``original_memo``, one of the
        four scores, ``pos_infl_mean`` or ``influence_std``.
    kind : {"box", "violin"}
        Box plots or violin plots.
    sort_by : {"median", "mean"} or None
        Classes in ascending order of this per-class statistic (ties keep class
        order; classes with no finite value last), or in class order for None.
    classes : sequence, optional
        Class labels to draw (default: all).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        Box plots: median lines carry ``gid="median:<class>"``, mean markers
        ``gid="mean:<class>"``, whiskers ``gid="whisker_low:<class>"`` and
        ``"whisker_high:<class>"``. Violins: the collections ``gid="medians"``
        (or ``"means"``), ``"mins"`` and ``"maxes"`` hold one segment per
        drawn class, in x order.

    Raises
    ------
    MemoxrInputError
        Unknown ``name``, ``kind``, ``sort_by`` or class in ``classes``.
    """
    check_scores_dataset(scores)
    _check_score_name(scores, name)
    _check_choice("kind", kind, ("box", "violin"))
    _check_choice("sort_by", sort_by, ("median", "mean", None))
    labels = scores[CLASS].values.tolist()
    if classes is None:
        positions = list(range(len(labels)))
    else:
        positions = [_class_position(scores, c, "classes") for c in classes]
        if not positions:
            raise MemoxrInputError("classes must name at least one class; received an empty sequence")
    data = _scores_subset(scores.isel({CLASS: positions}), [name])
    real = data["training_indices"].values >= 0
    values = [row[keep][np.isfinite(row[keep])] for row, keep in zip(data[name].values, real, strict=True)]
    shown = [labels[p] for p in positions]

    if sort_by is not None:
        func = np.median if sort_by == "median" else np.mean
        stat = np.array([func(v) if v.size else np.inf for v in values])
        order = np.argsort(stat, kind="stable")
        values, shown = [values[i] for i in order], [shown[i] for i in order]

    n = len(values)
    ax = _axes(ax, (min(16.0, max(6.0, 0.16 * n + 2.5)), 4.5))
    x = np.arange(1, n + 1, dtype=float)
    if kind == "box":
        drawn = ax.boxplot(
            values, positions=x, widths=0.6, whis=1.5, manage_ticks=False, showmeans=sort_by == "mean",
            flierprops={"markersize": 2, "alpha": 0.5, "markeredgecolor": "0.4"},
            medianprops={"color": "C1", "linewidth": 1.5},
            meanprops={"marker": "D", "markersize": 3.5, "markerfacecolor": "C2", "markeredgecolor": "C2"},
        )
        for i, label in enumerate(shown):
            drawn["medians"][i].set_gid(f"median:{label}")
            if sort_by == "mean":
                drawn["means"][i].set_gid(f"mean:{label}")
            drawn["whiskers"][2 * i].set_gid(f"whisker_low:{label}")
            drawn["whiskers"][2 * i + 1].set_gid(f"whisker_high:{label}")
    else:
        body = [i for i, v in enumerate(values) if np.unique(v).size >= 2]
        if body:
            # The marked centre is the statistic the classes are sorted by.
            centre = "means" if sort_by == "mean" else "medians"
            drawn = ax.violinplot(
                [values[i] for i in body], positions=x[body], widths=0.8, showextrema=True,
                showmedians=centre == "medians", showmeans=centre == "means",
            )
            drawn[f"c{centre}"].set(gid=centre, color="C1", linewidth=2)
            for part, gid in (("cmins", "mins"), ("cmaxes", "maxes"), ("cbars", "bars")):
                drawn[part].set(gid=gid, color="0.35", linewidth=0.8)
        for i, v in enumerate(values):
            if i not in body and v.size:
                ax.plot(np.full(v.size, x[i]), v, "_", color="C0", markersize=8, gid=f"points:{shown[i]}")

    _class_ticks(ax, x, shown)
    order_text = f"sorted by {sort_by} {name}" if sort_by else "in class order"
    if sort_by == "mean":
        order_text += ", diamond" if kind == "box" else ", marked"
    ax.set_xlabel(f"class ({order_text})")
    ax.set_ylabel(name)
    n_samples = sum(v.size for v in values)
    what = "Box plots" if kind == "box" else "Violin plots"
    ax.set_title(f"{what} of {name} per class\n({n} classes, {n_samples} samples; padding excluded)")
    ax.grid(axis="y", alpha=0.3)
    return ax


def memorization_vs_influence(
    scores: xr.Dataset,
    *,
    highlight_class: Any = None,
    kind: Literal["hexbin", "scatter"] = "hexbin",
    ax: Axes | None = None,
) -> Axes:
    """Memorization (x) against mean positive influence (y), one class highlighted.

    Dims contract: ``scores`` has dims ``(class, train_sample)``; every real
    sample with finite ``original_memo`` and ``pos_infl_mean`` is one point.
    Only those two variables and ``training_indices`` are computed.

    Parameters
    ----------
    scores : xarray.Dataset
        Scores, lazy or in memory.
    highlight_class : optional
        Class label drawn on top in colour (default: none).
    kind : {"hexbin", "scatter"}
        ``"hexbin"``: counts of all samples per hexagon (log colour scale);
        ``"scatter"``: other classes as grey points (``gid="others"``).
        The highlighted class is always points (``gid="class:<label>"``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    MemoxrInputError
        Unknown ``kind`` or ``highlight_class``.
    """
    check_scores_dataset(scores)
    _check_choice("kind", kind, ("hexbin", "scatter"))
    for needed in ("original_memo", "pos_infl_mean"):
        _check_score_name(scores, needed, argument="scores variable")
    position = None if highlight_class is None else _class_position(scores, highlight_class, "highlight_class")
    data = _scores_subset(scores, ["original_memo", "pos_infl_mean"])
    memo, infl = data["original_memo"].values, data["pos_infl_mean"].values
    keep = (data["training_indices"].values >= 0) & np.isfinite(memo) & np.isfinite(infl)
    chosen = np.zeros_like(keep)
    if position is not None:
        chosen[position] = True

    ax = _axes(ax, (7.0, 5.5))
    others = keep & ~chosen
    if kind == "hexbin":
        # Greys from a visible light grey: a hexagon holding one sample must not be white.
        greys = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.2, 1.0, 256)))
        hexes = ax.hexbin(memo[keep], infl[keep], gridsize=40, cmap=greys, norm=LogNorm(), mincnt=1,
                          linewidths=0.2, gid="hexbin")
        ax.figure.colorbar(hexes, ax=ax, label="samples per hexagon (all classes)")
    else:
        ax.scatter(memo[others], infl[others], s=6, color="0.6", alpha=0.5, linewidths=0,
                   label=f"other classes ({int(others.sum())} samples)", gid="others",
                   rasterized=bool(others.sum() > 5000))
    if position is not None:
        sel = keep & chosen
        ax.scatter(memo[sel], infl[sel], s=18, color="C3", edgecolors="white", linewidths=0.4,
                   label=f"class {highlight_class} ({int(sel.sum())} samples)", gid=f"class:{highlight_class}")
    if kind == "scatter" or position is not None:
        ax.legend(loc="best", fontsize="small", framealpha=0.8)
    ax.set_xlabel(_MEMO_LABEL)
    ax.set_ylabel(_INFL_LABEL)
    ax.set_title(f"Memorization against mean positive influence ({int(keep.sum())} samples)")
    return ax


def method_agreement(scores: xr.Dataset, *, ax: Axes | None = None) -> Axes:
    """Heatmap of the Spearman correlation between memorization and the four scores.

    Dims contract: ``scores`` has dims ``(class, train_sample)``. The values are
    :func:`memoxr.rank_agreement`'s pooled (``class_label == "all"``)
    correlations over every real sample with both scores finite; the diagonal
    is 1. Only the five methods and ``training_indices`` are computed.

    Returns
    -------
    matplotlib.axes.Axes
        The image (``gid="spearman"``) holds the 5 x 5 matrix in
        :data:`memoxr.analysis.METHODS` order; each cell is annotated.
    """
    check_scores_dataset(scores)
    data = _scores_subset(scores, METHODS)
    pooled = rank_agreement(data)
    pooled = pooled[pooled["class_label"] == "all"]
    matrix = np.eye(len(METHODS))
    index = {m: i for i, m in enumerate(METHODS)}
    for a, b, rho in zip(pooled["method_a"], pooled["method_b"], pooled["spearman"], strict=True):
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = rho
    n = int((data["training_indices"].values >= 0).sum())

    ax = _axes(ax, (7.0, 6.0))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, gid="spearman")
    ax.figure.colorbar(image, ax=ax, label="Spearman rank correlation", shrink=0.8)
    for i in range(len(METHODS)):
        for j in range(len(METHODS)):
            value = matrix[i, j]
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            color = "white" if np.isfinite(value) and abs(value) > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize="small")
    ticks = np.arange(len(METHODS))
    ax.set_xticks(ticks, METHODS, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, METHODS)
    ax.set_xlabel("method")
    ax.set_ylabel("method")
    ax.set_title(f"Rank agreement between methods\n(Spearman, {n} samples of all classes pooled)")
    return ax


def _table_size(rows: int) -> tuple[float, float]:
    """Figure size of a top-k table: 0.28 inch per row, two rows' worth of header, the title."""
    return 12.0, 0.28 * (rows + 2) + 0.5


def _wrap_header(name: str, width: int = 13) -> str:
    lines: list[str] = []
    for part in name.replace("_", "_\n").split("\n"):
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def _column_text(values: np.ndarray) -> list[str]:
    """Integers as is; floats with one number of decimals per column (4 significant digits at its largest)."""
    if np.issubdtype(values.dtype, np.integer):
        return [str(int(v)) for v in values]
    finite = np.abs(values[np.isfinite(values)])
    top = finite.max() if finite.size else 0.0
    decimals = 4 if top == 0 else int(min(8, max(0, 3 - math.floor(math.log10(top)))))
    return ["NaN" if np.isnan(v) else f"{v:.{decimals}f}" for v in values]


def top_k_table(
    scores: xr.Dataset,
    class_label: Any,
    *,
    k: int = 10,
    by: str = "original_memo",
    ax: Axes | None = None,
) -> Axes:
    """The ``k`` samples of a class with the highest ``by`` score, as a table figure.

    Dims contract: ``scores`` has dims ``(class, train_sample)``. The rows are
    :func:`memoxr.top_k` (``rank``, ``sample_index`` = row in the train split,
    ``train_sample`` = position in the class, then each method's score, 4
    significant digits); the ``by`` column is highlighted. Only the class
    ``class_label`` is computed.

    Returns
    -------
    matplotlib.axes.Axes
        Axes with its frame off holding one :class:`matplotlib.table.Table`.

    Raises
    ------
    MemoxrInputError
        Unknown ``class_label`` or ``by``, or ``k`` not a positive integer.
    """
    check_scores_dataset(scores)
    position = _class_position(scores, class_label, "class_label")
    names = [*METHODS, *(v for v in ("pos_infl_mean", "influence_std") if v in scores.data_vars)]
    _check_choice("by", by, METHODS)
    _check_k(k)
    one_class = _scores_subset(scores.isel({CLASS: [position]}), names)
    frame = top_k(one_class, class_label, k=k, by=by)
    n_real = int((one_class["training_indices"].values >= 0).sum())

    ax = _axes(ax, _table_size(len(frame)))
    ax.axis("off")
    columns = list(frame.columns)
    text = [_column_text(frame[c].to_numpy()) for c in columns]
    cells = [list(row) for row in zip(*text, strict=True)]
    table = ax.table(
        cellText=cells if cells else None,
        colLabels=[_wrap_header(c) for c in columns],
        bbox=Bbox.from_bounds(0.0, 0.0, 1.0, 1.0),
        cellLoc="right",
        colLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(columns))))
    highlight = columns.index(by)
    for (row, col), cell in table.get_celld().items():
        cell.PAD = 0.1
        if row == 0:
            cell.set_height(cell.get_height() * 2.0)
            cell.set_facecolor("0.9")
            cell.get_text().set_fontweight("bold" if col == highlight else "normal")
        elif col == highlight:
            cell.set_facecolor("#fff2cc")
    ax.set_title(
        f"Top {len(frame)} of {n_real} samples of class {class_label} by {by} (highest first)",
        loc="left",
    )
    return ax


# --------------------------------------------------------------------------- proxy figures


def _detection_inputs(
    proxies: Mapping[str, ArrayLike], mask: ArrayLike
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    _check_proxies(proxies)
    _check_mask(mask)
    for name, value in proxies.items():
        _check_paired("mask", mask, f"proxies[{name!r}]", value)
    arrays = _numpy({"\0mask": mask, **proxies})
    truth = arrays.pop("\0mask")
    if truth.all() or not truth.any():
        raise MemoxrInputError(
            f"mask must hold both True and False samples; received {int(truth.sum())} True of {truth.size}"
        )
    return arrays, truth


def _finite_pair(name: str, score: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(score.astype(np.float64))
    score, truth = score[keep].astype(np.float64), truth[keep]
    if truth.all() or not truth.any():
        raise MemoxrInputError(
            f"proxies[{name!r}]: its finite values must cover both True and False samples of the mask; "
            f"received {int(truth.sum())} True of {truth.size} finite"
        )
    return score, truth


def _sklearn_metrics() -> Any:
    try:
        from sklearn import metrics
    except ImportError as exc:  # pragma: no cover
        raise ImportError('ROC and precision-recall curves need scikit-learn: pip install scikit-learn') from exc
    return metrics


def roc_curves(
    proxies: Mapping[str, ArrayLike],
    mask: ArrayLike,
    *,
    mask_name: str = "mask",
    ax: Axes | None = None,
) -> Axes:
    """ROC curves of several proxies against a boolean mask, AUROC in the legend.

    Dims contract: each proxy has ``mask``'s shape (one value per sample,
    paired by position; two DataArrays must share dims and coordinates). A
    higher proxy means "more likely in the mask": negate a proxy whose low
    values flag samples (e.g. confidence). Non-finite proxy values are left out
    of that proxy's curve. Curves are :func:`sklearn.metrics.roc_curve`,
    AUROC :func:`sklearn.metrics.roc_auc_score`.

    Parameters
    ----------
    proxies : dict of str to array-like
        Proxy name to per-sample values (numpy, list, dask or DataArray).
    mask : array-like of bool
        True for the positive samples (e.g. mislabeled); both classes present.
    mask_name : str
        What the mask marks, for the title.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        One line per proxy, ``gid="roc:<name>"``, x = FPR, y = TPR.

    Raises
    ------
    MemoxrInputError
        Empty ``proxies``; non-boolean ``mask`` or one without both classes; a
        proxy whose shape or coordinates differ from the mask's.
    """
    arrays, truth = _detection_inputs(proxies, mask)
    metrics = _sklearn_metrics()
    ax = _axes(ax, (5.8, 5.5))
    for name, score in arrays.items():
        score, t = _finite_pair(name, score, truth)
        fpr, tpr, _ = metrics.roc_curve(t, score)
        auc = metrics.roc_auc_score(t, score)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.3f})", gid=f"roc:{name}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUROC 0.500)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC of proxies detecting {mask_name}\n({int(truth.sum())} of {truth.size} samples positive)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def pr_curves(
    proxies: Mapping[str, ArrayLike],
    mask: ArrayLike,
    *,
    mask_name: str = "mask",
    ax: Axes | None = None,
) -> Axes:
    """Precision-recall curves of several proxies against a boolean mask, AP in the legend.

    Same inputs and rules as :func:`roc_curves`. Curves are
    :func:`sklearn.metrics.precision_recall_curve` drawn as steps, average
    precision :func:`sklearn.metrics.average_precision_score`; the dashed line
    is the positive rate (a random proxy's precision).

    Returns
    -------
    matplotlib.axes.Axes
        One line per proxy, ``gid="pr:<name>"``, x = recall, y = precision.

    Raises
    ------
    MemoxrInputError
        As :func:`roc_curves`.
    """
    arrays, truth = _detection_inputs(proxies, mask)
    metrics = _sklearn_metrics()
    ax = _axes(ax, (5.8, 5.5))
    for name, score in arrays.items():
        score, t = _finite_pair(name, score, truth)
        precision, recall, _ = metrics.precision_recall_curve(t, score)
        ap = metrics.average_precision_score(t, score)
        ax.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AP {ap:.3f})", gid=f"pr:{name}")
    rate = truth.mean()
    ax.axhline(rate, linestyle="--", color="0.6", linewidth=1, label=f"chance (AP {rate:.3f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(
        f"Precision-recall of proxies detecting {mask_name}\n({int(truth.sum())} of {truth.size} samples positive)"
    )
    ax.legend(loc="lower left", fontsize="small")  # good curves run along the top right
    ax.grid(alpha=0.3)
    return ax


def binned_against_memorization(
    proxy: ArrayLike,
    memorization: ArrayLike,
    *,
    bins: int = 10,
    label: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A proxy against FZ memorization, in bins of equal count: mean ± std per bin.

    Dims contract: ``proxy`` and ``memorization`` have one shape (one value
    per sample, paired by position; two DataArrays must share dims and
    coordinates). Samples where either is not finite (e.g. padding) are left
    out. The ``n`` remaining samples are sorted by memorization (stable: ties
    keep their order) and cut into ``bins`` consecutive groups whose sizes
    differ by at most one (``numpy.array_split``), so bins stay equal-count
    even when many memorization values tie (at 0, say). Each bin is drawn at
    its mean memorization (x) with the mean of the proxy (y) and its
    population std (``ddof=0``) as the error bar.

    Parameters
    ----------
    proxy, memorization : array-like
        Per-sample values (numpy, list, dask or DataArray).
    bins : int
        Number of bins, 1 <= bins <= n.
    label : str, optional
        Name of the proxy for the axis; default the DataArray's ``long_name``
        or name (with ``[units]``), else ``"proxy"``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        The bin means are the line ``gid="binned_mean"``; the error bars the
        collection ``gid="binned_std"``.

    Raises
    ------
    MemoxrInputError
        ``bins`` not an integer in [1, n]; shapes or coordinates that differ.
    """
    _check_bins(bins)
    _check_paired("memorization", memorization, "proxy", proxy)
    arrays = _numpy({"proxy": proxy, "memorization": memorization})
    y, x = arrays["proxy"].astype(np.float64), arrays["memorization"].astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    _check_bins(bins, x.size)
    groups = np.array_split(np.argsort(x, kind="stable"), bins)
    centers = np.array([x[g].mean() for g in groups])
    means = np.array([y[g].mean() for g in groups])
    stds = np.array([y[g].std() for g in groups])

    name = label if label is not None else _label_of(proxy, "proxy")
    ax = _axes(ax, (6.5, 4.8))
    bars = ax.errorbar(centers, means, yerr=stds, fmt="o-", capsize=3, markersize=4, linewidth=1.2)
    bars.lines[0].set_gid("binned_mean")
    bars.lines[2][0].set_gid("binned_std")
    ax.set_xlabel("memorization (FZ estimate), mean of the bin")
    ax.set_ylabel(f"{name}, mean ± std in the bin")
    sizes = {len(g) for g in groups}
    size_text = f"{min(sizes)}" if len(sizes) == 1 else f"{min(sizes)}-{max(sizes)}"
    ax.set_title(f"{name} against memorization\n({bins} equal-count bins of {size_text} samples; {x.size} samples)")
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
    """
    _check_paired("confidence", confidence, "variability", variability)
    inputs = {"confidence": confidence, "variability": variability}
    if correct is not None:
        _check_paired("confidence", confidence, "correct", correct)
        inputs["correct"] = correct
    arrays = _numpy(inputs)
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

    ax = _axes(ax, (6.5, 5.5))
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


# --------------------------------------------------------------------------- files


def write_score_figures(
    source: str | os.PathLike[str] | xr.Dataset,
    output_dir: str | os.PathLike[str],
    *,
    class_label: Any = None,
    score: str = "original_memo",
    k: int = 10,
    overwrite: bool = False,
    allow_pickle: bool = False,
    show_progress: bool = False,
    dpi: int = 150,
    storage_options: dict[str, Any] | None = None,
) -> list[Path]:
    """Write the four scores figures as PNG files into a new folder (``memoxr plot``).

    ``source`` is an influence store or FZ ``.npz`` (opened with
    :func:`memoxr.open_influence`, scored with :func:`memoxr.influence_scores`)
    or a scores Dataset. The scores are computed once, then
    :data:`FIGURE_FILES` are drawn: :func:`score_distributions` of ``score``,
    :func:`memorization_vs_influence` highlighting ``class_label``,
    :func:`method_agreement` and :func:`top_k_table` of ``class_label``
    ranked by ``score`` (by ``original_memo`` when ``score`` is not one of
    the five methods). ``class_label`` defaults to the first class.

    The folder is complete or absent: it is written beside ``output_dir`` and
    moved into place at the end; an existing one is replaced only with
    ``overwrite``.

    Returns
    -------
    list of pathlib.Path
        The files written, in :data:`FIGURE_FILES` order.
    """
    from .storage import is_url

    if is_url(output_dir):
        raise MemoxrInputError(
            f"output_dir: figures are written to a local folder; received the URL {str(output_dir)!r} "
            "(write locally, then upload the folder)"
        )
    from . import influence_scores, open_influence
    from .storage import atomic_output

    if isinstance(source, xr.Dataset):
        scores = source
    else:
        scores = influence_scores(open_influence(source, allow_pickle=allow_pickle, storage_options=storage_options))
    check_scores_dataset(scores)
    _check_score_name(scores, score, argument="score")
    if class_label is None:
        class_label = scores[CLASS].values.tolist()[0]
    _class_position(scores, class_label, "class")
    by = score if score in METHODS else "original_memo"
    _check_k(k)

    target = Path(output_dir)
    with atomic_output(target, overwrite=overwrite) as tmp:
        (scores,) = compute(scores, show_progress=show_progress)
        tmp.mkdir()
        n = scores.sizes[CLASS]
        drawers = [
            ((min(16.0, max(6.0, 0.16 * n + 2.5)), 4.5), lambda ax: score_distributions(scores, score, ax=ax)),
            ((7.0, 5.5), lambda ax: memorization_vs_influence(scores, highlight_class=class_label, ax=ax)),
            ((7.0, 6.0), lambda ax: method_agreement(scores, ax=ax)),
            (_table_size(k), lambda ax: top_k_table(scores, class_label, k=k, by=by, ax=ax)),
        ]
        for name, (size, draw) in zip(FIGURE_FILES, drawers, strict=True):
            # A bare Figure: no pyplot state, no GUI backend, nothing left open.
            figure = Figure(figsize=size, layout="constrained")
            draw(figure.add_subplot())
            figure.savefig(tmp / name, dpi=dpi)
    return [target / name for name in FIGURE_FILES]

