"""The metrics evaluation reports, on plain numpy vectors: detection of a mask, agreement of two scores."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ..compute.manners import rank_skipna
from ..io.npy import check_finite

DETECTION_METRICS = ("auroc", "auprc", "fpr_at_95_tpr", "precision_at_k")
CORRELATION_METRICS = ("cosine", "pearson", "spearman")


def detection_metrics(
    score: np.ndarray, mask: np.ndarray, *, k: int | None = None, skipna: bool | None = None
) -> dict[str, float]:
    """AUROC, AUPRC, FPR at 95% TPR and precision at k of ``score`` against a boolean ``mask``.

    - ``auroc``: ``sklearn.metrics.roc_auc_score``;
    - ``auprc``: average precision, ``sklearn.metrics.average_precision_score``;
    - ``fpr_at_95_tpr``: the smallest false-positive rate on the ROC curve whose
      true-positive rate is at least 0.95;
    - ``precision_at_k``: fraction of positives among the ``k`` highest scores
      (ties broken by sample order); ``k`` defaults to the number of positives.

    Samples with a NaN score are left out (``skipna=None``, the default, or
    ``True``), or make every metric NaN (``False``): the rule of :mod:`memoxr.compute.manners`.

    Examples
    --------
    >>> m = detection_metrics(np.array([0.9, 0.1, 0.8, 0.3]), np.array([True, False, False, False]))
    >>> m["auroc"], m["precision_at_k"]
    (1.0, 1.0)
    """
    skip = rank_skipna(skipna)
    mask = np.asarray(mask, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    check_finite(score)
    finite = ~np.isnan(score)
    if not finite.all():
        if not skip:
            return dict.fromkeys(DETECTION_METRICS, float("nan"))
        score, mask = score[finite], mask[finite]
    # Every threshold's point: the default drops points on straight segments of the curve, which
    # tied scores make, and one of them can be the smallest FPR at 95% TPR.
    fpr, tpr, _ = roc_curve(mask, score, drop_intermediate=False)
    kk = int(mask.sum()) if k is None else min(int(k), score.size)
    top = np.argsort(-score, kind="stable")[:kk]
    return {
        "auroc": float(roc_auc_score(mask, score)),
        "auprc": float(average_precision_score(mask, score)),
        "fpr_at_95_tpr": float(fpr[tpr >= 0.95].min()),
        "precision_at_k": float(mask[top].mean()),
    }


def correlation_metrics(x: np.ndarray, y: np.ndarray, *, skipna: bool | None = None) -> dict[str, float]:
    """Cosine similarity, Pearson and Spearman (average ranks for ties) of two vectors.

    Pairs where either value is NaN are left out (``skipna=None``, the default,
    or ``True``), or make every metric NaN (``False``): the rule of :mod:`memoxr.compute.manners`.

    Examples
    --------
    >>> {k: round(v, 6) for k, v in correlation_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])).items()}
    {'cosine': 0.997409, 'pearson': 0.993399, 'spearman': 1.0}
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    both = ~np.isnan(x) & ~np.isnan(y)
    if not rank_skipna(skipna) and not both.all():
        return dict.fromkeys(CORRELATION_METRICS, float("nan"))
    x, y = x[both], y[both]

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
