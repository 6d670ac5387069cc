"""Figures of memorization proxies detecting a mask: ROC and precision-recall curves.

Proxy figures take plain arrays: numpy arrays, lists, or xarray DataArrays
(lazy or not) of one shape, paired element by element; two DataArrays must
also carry the same dims and coordinates, so samples in different orders are
refused rather than silently mispaired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ..errors import MemoxrInputError
from ._style import (
    ArrayLike,
    check_mask,
    check_paired,
    check_proxies,
    legend_outside,
    new_axes,
    to_numpy,
)


def _detection_inputs(
    proxies: Mapping[str, ArrayLike], mask: ArrayLike
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    check_proxies(proxies)
    check_mask(mask)
    for name, value in proxies.items():
        check_paired("mask", mask, f"proxies[{name!r}]", value)
    arrays = to_numpy({"\0mask": mask, **proxies})
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


def _draw_curves(
    proxies: Mapping[str, ArrayLike], mask: ArrayLike, ax: Axes | None,
    draw: Callable[[Axes, str, np.ndarray, np.ndarray], None],
) -> tuple[Axes, np.ndarray]:
    """Check the inputs, then ``draw`` each proxy's curve from its finite values; the axes and the mask."""
    arrays, truth = _detection_inputs(proxies, mask)
    ax = new_axes(ax, (5.8, 6.5))
    for name, score in arrays.items():
        draw(ax, name, *_finite_pair(name, score, truth))
    return ax, truth


def _finish_curves(ax: Axes, truth: np.ndarray, figure: str, mask_name: str, xlabel: str, ylabel: str) -> Axes:
    """The unit square, axis labels, a title counting the positives, the legend below and a grid."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{figure} of proxies detecting {mask_name}\n({int(truth.sum())} of {truth.size} samples positive)",
                 fontsize="medium")
    legend_outside(ax)  # never over a curve
    ax.grid(alpha=0.3)
    return ax


def roc_curves(
    proxies: Mapping[str, ArrayLike],
    mask: ArrayLike,
    *,
    mask_name: str = "mask",
    ax: Axes | None = None,
) -> Axes:
    """ROC curves of several proxies against a boolean mask, AUROC in the legend (below the axes).

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

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mask = np.arange(100) < 20  # the first 20 samples are, say, mislabeled
    >>> proxies = {"csl": 0.5 * mask + rng.random(100), "random": rng.random(100)}
    >>> ax = roc_curves(proxies, mask, mask_name="mislabeled")
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['csl (AUROC 0.836)', 'random (AUROC 0.458)', 'chance (AUROC 0.500)']
    """
    metrics = _sklearn_metrics()

    def draw(ax: Axes, name: str, score: np.ndarray, truth: np.ndarray) -> None:
        fpr, tpr, _ = metrics.roc_curve(truth, score)
        auc = metrics.roc_auc_score(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.3f})", gid=f"roc:{name}")

    ax, truth = _draw_curves(proxies, mask, ax, draw)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUROC 0.500)")
    ax.set_aspect("equal")
    return _finish_curves(ax, truth, "ROC", mask_name, "false positive rate", "true positive rate")


def pr_curves(
    proxies: Mapping[str, ArrayLike],
    mask: ArrayLike,
    *,
    mask_name: str = "mask",
    ax: Axes | None = None,
) -> Axes:
    """Precision-recall curves of several proxies against a boolean mask, AP in the legend (below the axes).

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

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mask = np.arange(100) < 20
    >>> proxies = {"csl": 0.5 * mask + rng.random(100), "random": rng.random(100)}
    >>> ax = pr_curves(proxies, mask, mask_name="mislabeled")
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['csl (AP 0.740)', 'random (AP 0.196)', 'chance (AP 0.200)']
    """
    metrics = _sklearn_metrics()

    def draw(ax: Axes, name: str, score: np.ndarray, truth: np.ndarray) -> None:
        precision, recall, _ = metrics.precision_recall_curve(truth, score)
        ap = metrics.average_precision_score(truth, score)
        ax.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AP {ap:.3f})", gid=f"pr:{name}")

    ax, truth = _draw_curves(proxies, mask, ax, draw)
    rate = truth.mean()
    ax.axhline(rate, linestyle="--", color="0.6", linewidth=1, label=f"chance (AP {rate:.3f})")
    return _finish_curves(ax, truth, "Precision-recall", mask_name, "recall", "precision")
