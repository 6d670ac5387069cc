"""Figures of a scores Dataset: memorization against influence, method agreement, the top-k table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.transforms import Bbox

from ..influence.analysis import METHODS, rank_agreement, top_k
from ..io.schema import CLASS, check_scores_dataset
from ._style import (
    SCALES,
    Scale,
    check_choice,
    check_k,
    check_score_name,
    class_position,
    legend_outside,
    new_axes,
    resolve_scale,
    scale_transforms,
    scores_subset,
    significant,
)

_MEMO_LABEL = "memorization (FZ estimate, original_memo)"
_INFL_LABEL = "mean positive influence (pos_infl_mean)"


def _zero_text(values: np.ndarray) -> str:
    return f"{100 * np.count_nonzero(values == 0) / values.size:.0f}% exactly 0" if values.size else "none"


def memorization_vs_influence(
    scores: xr.Dataset,
    *,
    highlight_class: Any = None,
    kind: Literal["hexbin", "scatter"] = "hexbin",
    scale: Scale = "auto",
    ax: Axes | None = None,
) -> Axes:
    """Memorization (x) against mean positive influence (y), one class highlighted.

    Dims contract: ``scores`` has dims ``(class, train_sample)``; every real
    sample with finite ``original_memo`` and ``pos_infl_mean`` is one point.
    Only those two variables and ``training_indices`` are computed.

    Each axis gets its own scale (``"auto"`` as in
    :func:`score_distributions`, except that a zero-heavy axis becomes
    ``"symlog"``, so the exact zeros stay on the figure as a line of points).

    Parameters
    ----------
    scores : xarray.Dataset
        Scores, lazy or in memory.
    highlight_class : optional
        Class label drawn on top in colour (default: none).
    kind : {"hexbin", "scatter"}
        ``"hexbin"``: counts of all samples per cell (log colour scale):
        hexagons when both axes are linear, else a 40 x 40 grid of cells of
        equal size on the axes' scales; ``"scatter"``: other classes as grey
        points (``gid="others"``). The highlighted class is always points
        (``gid="class:<label>"``).
    scale : {"auto", "linear", "log", "symlog"}
        Scale of both axes; ``"log"`` is applied as ``"symlog"`` (zeros stay drawn).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        The counts are the collection ``gid="hexbin"``.

    Raises
    ------
    MemoxrInputError
        Unknown ``kind``, ``scale`` or ``highlight_class``.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> ax = memorization_vs_influence(scores, highlight_class=3)
    >>> ax.get_ylabel()
    'mean positive influence (pos_infl_mean)'
    """
    check_scores_dataset(scores)
    check_choice("kind", kind, ("hexbin", "scatter"))
    check_choice("scale", scale, SCALES)
    for needed in ("original_memo", "pos_infl_mean"):
        check_score_name(scores, needed, argument="scores variable")
    position = None if highlight_class is None else class_position(scores, highlight_class, "highlight_class")
    data = scores_subset(scores, ["original_memo", "pos_infl_mean"])
    memo, infl = data["original_memo"].values, data["pos_infl_mean"].values
    keep = (data["training_indices"].values >= 0) & np.isfinite(memo) & np.isfinite(infl)
    chosen = np.zeros_like(keep)
    if position is not None:
        chosen[position] = True
    scales = [resolve_scale(v[keep], scale) for v in (memo, infl)]
    scales = ["symlog" if s == "log" else s for s in scales]  # a log axis would hide the zeros
    transforms = [scale_transforms(s, v[keep]) for s, v in zip(scales, (memo, infl), strict=True)]

    ax = new_axes(ax, (7.0, 5.5))
    ax.set_xscale(scales[0], **transforms[0][2])
    ax.set_yscale(scales[1], **transforms[1][2])
    others = keep & ~chosen
    if kind == "hexbin":
        # Greys from a visible light grey: a cell holding one sample must not be white.
        greys = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.2, 1.0, 256)))
        if scales == ["linear", "linear"]:
            cells = ax.hexbin(memo[keep], infl[keep], gridsize=40, cmap=greys, norm=LogNorm(), mincnt=1,
                              linewidths=0.2, gid="hexbin")
        else:
            cells = _grid_counts(ax, memo[keep], infl[keep], transforms, greys)
        ax.figure.colorbar(cells, ax=ax, label="samples per cell (all classes)")
    else:
        ax.scatter(memo[others], infl[others], s=6, color="0.6", alpha=0.5, linewidths=0,
                   label=f"other classes ({int(others.sum())} samples)", gid="others",
                   rasterized=bool(others.sum() > 5000))
    if position is not None:
        sel = keep & chosen
        ax.scatter(memo[sel], infl[sel], s=18, color="C3", edgecolors="white", linewidths=0.4,
                   label=f"class {highlight_class} ({int(sel.sum())} samples)", gid=f"class:{highlight_class}")
    if kind == "scatter":
        legend_outside(ax)
    if scales != ["linear", "linear"]:
        _pad_limits(ax, memo[keep], infl[keep], transforms)
    for axis_scale, set_label, label, values in (
        (scales[0], ax.set_xlabel, _MEMO_LABEL, memo[keep]), (scales[1], ax.set_ylabel, _INFL_LABEL, infl[keep]),
    ):
        suffix = "" if axis_scale == "linear" else f"; symlog, {_zero_text(values)}"
        set_label(label + suffix)
    title = f"Memorization against mean positive influence ({int(keep.sum())} samples)"
    if position is not None and kind == "hexbin":  # named here: a legend would cover cells or the colorbar
        title += f"\nred: class {highlight_class} ({int((keep & chosen).sum())} samples)"
    ax.set_title(title, fontsize="medium")
    return ax


def _pad_limits(ax: Axes, x: np.ndarray, y: np.ndarray, transforms: list[Any]) -> None:
    """3 % margins measured on the axes' scales, so points at 0 or at the extremes are not cut by the frame."""
    setters: tuple[Callable[..., Any], ...] = (ax.set_xlim, ax.set_ylim)
    for values, (forward, backward, _), set_limits in zip((x, y), transforms, setters, strict=True):
        if not values.size:
            continue
        low, high = forward(np.array([values.min(), values.max()]))
        pad = 0.03 * (high - low) if high > low else 0.5
        set_limits(*backward(np.array([low - pad, high + pad])))


def _grid_counts(ax: Axes, x: np.ndarray, y: np.ndarray, transforms: list[Any], cmap: Any) -> Any:
    """Counts in cells of equal size on the axes' (non-linear) scales, as a mesh with empty cells blank."""
    edges = []
    for values, (forward, _, _) in zip((x, y), transforms, strict=True):
        t = forward(values)
        low, high = (t.min(), t.max()) if t.size else (0.0, 1.0)
        width = (high - low) / 39 if high > low else 1.0
        edges.append(low - width / 2 + width * np.arange(41))  # the extremes (0, say) at cell centres
    counts, _, _ = np.histogram2d(transforms[0][0](x), transforms[1][0](y), bins=edges)
    mesh = np.ma.masked_equal(counts.T, 0)
    return ax.pcolormesh(transforms[0][1](edges[0]), transforms[1][1](edges[1]), mesh, cmap=cmap, norm=LogNorm(),
                         gid="hexbin")


def method_agreement(scores: xr.Dataset, *, ax: Axes | None = None) -> Axes:
    """Heatmap of the Spearman correlation between memorization and the four scores.

    Dims contract: ``scores`` has dims ``(class, train_sample)``. The values are
    :func:`memoxr.rank_agreement`'s pooled (``class_label == "all"``)
    correlations over every real sample with both scores finite; the diagonal
    is 1. Only the five methods and ``training_indices`` are computed.

    The colours are a sequential map stretched over the observed range of the
    off-diagonal values (with the diagonal's 1), so 0.83 and 1.00 differ; each
    cell wide enough (28 points) is written with 3 decimals, in black or white
    after the cell's lightness.

    Returns
    -------
    matplotlib.axes.Axes
        The image (``gid="spearman"``) holds the 5 x 5 matrix in
        :data:`memoxr.influence.analysis.METHODS` order; annotations are ``ax.texts``, row by row.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> ax = method_agreement(scores)
    >>> ax.images[0].get_array().shape, ax.get_xticklabels()[0].get_text()
    ((5, 5), 'original_memo')
    """
    check_scores_dataset(scores)
    data = scores_subset(scores, METHODS)
    pooled = rank_agreement(data)
    pooled = pooled[pooled["class_label"] == "all"]
    matrix = np.eye(len(METHODS))
    index = {m: i for i, m in enumerate(METHODS)}
    for a, b, rho in zip(pooled["method_a"], pooled["method_b"], pooled["spearman"], strict=True):
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = rho
    n = int((data["training_indices"].values >= 0).sum())
    finite = matrix[np.isfinite(matrix)]
    low = float(finite.min()) if finite.size else 0.0
    high = 1.0
    if high - low < 0.05:  # nearly all equal: a range of 0.05 keeps the colours apart without exaggerating
        low = high - 0.05

    ax = new_axes(ax, (7.0, 6.0))
    cmap = plt.get_cmap("viridis")
    image = ax.imshow(matrix, cmap=cmap, vmin=low, vmax=high, gid="spearman")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, pad=0.03, label="Spearman rank correlation (observed range)")
    # Values are written when a cell is wide enough for "0.993" at 8 points.
    cell_points = 72.0 * ax.get_window_extent().width / ax.figure.dpi / len(METHODS)
    for i in range(len(METHODS) if cell_points >= 28 else 0):
        for j in range(len(METHODS)):
            value = matrix[i, j]
            if np.isnan(value):
                ax.text(j, i, "n/a", ha="center", va="center", color="black", fontsize="small")
                continue
            r, g, b, _ = cmap(image.norm(value))
            lightness = 0.299 * r + 0.587 * g + 0.114 * b
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="black" if lightness > 0.5 else "white",
                    fontsize=8)
    ticks = np.arange(len(METHODS))
    ax.set_xticks(ticks, METHODS, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, METHODS)
    ax.set_xlabel("method")
    ax.set_ylabel("method")
    # Left-aligned title: a centred two-line title over a narrow image runs into the colorbar.
    ax.set_title(f"Rank agreement between methods\n(Spearman, {n} samples of all classes pooled)", loc="left",
                 fontsize="medium")
    return ax


def table_size(rows: int) -> tuple[float, float]:
    """Figure size of a top-k table: 0.28 inch per row, two rows' worth of header, the title.

    Examples
    --------
    >>> width, height = table_size(10)
    >>> width, round(height, 2)
    (12.0, 3.86)
    """
    return 12.0, 0.28 * (rows + 2) + 0.5


def _wrap_header(name: str, width: int = 13) -> str:
    lines: list[str] = []
    for part in name.replace("_", "_\n").split("\n"):
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def column_text(values: np.ndarray, digits: int = 4) -> list[str]:
    """Integers as is; floats with ``digits`` significant digits (``3.19e-06``, ``0.0123``, never ``0.00000``).

    Examples
    --------
    >>> column_text(np.array([0.0123456, 3.19e-6])), column_text(np.array([3, 40]))
    (['0.01235', '3.19e-06'], ['3', '40'])
    """
    return [significant(v, digits) for v in values.tolist()] if values.dtype.kind == "f" else [
        str(int(v)) for v in values
    ]


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
    significant digits, in scientific notation below 1e-4); the ``by`` column
    is highlighted. Only the class ``class_label`` is computed.

    Returns
    -------
    matplotlib.axes.Axes
        Axes with its frame off holding one :class:`matplotlib.table.Table`.

    Raises
    ------
    MemoxrInputError
        Unknown ``class_label`` or ``by``, or ``k`` not a positive integer.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> ax = top_k_table(scores, 3, k=5)
    >>> table = ax.tables[0]
    >>> table[0, 0].get_text().get_text(), len({row for row, _ in table.get_celld()})  # header and 5 rows
    ('rank', 6)
    """
    check_scores_dataset(scores)
    position = class_position(scores, class_label, "class_label")
    names = [*METHODS, *(v for v in ("pos_infl_mean", "influence_std") if v in scores.data_vars)]
    check_choice("by", by, METHODS)
    check_k(k)
    one_class = scores_subset(scores.isel({CLASS: [position]}), names)
    frame = top_k(one_class, class_label, k=k, by=by)
    n_real = int((one_class["training_indices"].values >= 0).sum())

    ax = new_axes(ax, table_size(len(frame)))
    ax.axis("off")
    columns = list(frame.columns)
    text = [column_text(frame[c].to_numpy()) for c in columns]
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
