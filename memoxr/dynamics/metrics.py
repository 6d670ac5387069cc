"""The metrics evaluation reports, on plain numpy vectors: detection of a mask, agreement of two scores."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

DETECTION_METRICS = ("auroc", "auprc", "fpr_at_95_tpr", "precision_at_k")
CORRELATION_METRICS = ("cosine", "pearson", "spearman")


def detection_metrics(score: np.ndarray, mask: np.ndarray, *, k: int | None = None) -> dict[str, float]:
    """AUROC, AUPRC, FPR at 95% TPR and precision at k of ``score`` against a boolean ``mask``.

    - ``auroc``: ``sklearn.metrics.roc_auc_score``;
    - ``auprc``: average precision, ``sklearn.metrics.average_precision_score``;
    - ``fpr_at_95_tpr``: the smallest false-positive rate on the ROC curve whose
      true-positive rate is at least 0.95;
    - ``precision_at_k``: fraction of positives among the ``k`` highest scores
      (ties broken by sample order); ``k`` defaults to the number of positives.

    Examples
    --------
    >>> m = detection_metrics(np.array([0.9, 0.1, 0.8, 0.3]), np.array([True, False, False, False]))
    >>> m["auroc"], m["precision_at_k"]
    (1.0, 1.0)
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
    """Cosine similarity, Pearson and Spearman (average ranks for ties) of two vectors.

    Examples
    --------
    >>> {k: round(v, 6) for k, v in correlation_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])).items()}
    {'cosine': 0.997409, 'pearson': 0.993399, 'spearman': 1.0}
    """
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
