"""Plain-Python reference of the seed's scores and table, written apart from memoxr.

Loops over classes and rows; no vectorized tricks, no memoxr imports.
"""

from __future__ import annotations

import math

import numpy as np


def row_stats(row):
    n = len(row)
    positive = sum(max(float(v), 0.0) for v in row) / n
    mean = sum(float(v) for v in row) / n
    std = math.sqrt(sum((float(v) - mean) ** 2 for v in row) / n)
    return positive, std


def class_scores(matrix, memo, alpha=0.7, beta=0.3):
    """Scores of one class: ``matrix`` (n_train, n_test) float, ``memo`` (n_train,)."""
    n = matrix.shape[0]
    pos, std = [], []
    for i in range(n):
        p, s = row_stats(matrix[i])
        pos.append(p)
        std.append(s)
    peak = max(pos) if n else 0.0
    order = sorted(range(n), key=lambda i: (-pos[i], i))
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    out = {k: [] for k in ("influence_weighted_memo", "representativeness_score", "weighted_combination",
                           "critical_sample_score", "pos_infl_mean", "influence_std", "original_memo")}
    for i in range(n):
        m = float(memo[i])
        out["influence_weighted_memo"].append(m * pos[i])
        out["representativeness_score"].append(m * pos[i] / std[i] if std[i] > 0 else 0.0)
        out["weighted_combination"].append(alpha * m + beta * (pos[i] / peak if peak > 0 else 0.0))
        out["critical_sample_score"].append(m * (1 - (rank[i] / (n - 1) if n > 1 else 0.0)))
        out["pos_infl_mean"].append(pos[i])
        out["influence_std"].append(std[i])
        out["original_memo"].append(m)
    return {k: np.array(v, dtype=float) for k, v in out.items()}


def all_scores(arrays, alpha=0.7, beta=0.3):
    """{class k: {name: array}} from FZ-layout ``arrays`` (matrices taken as float32, like the store)."""
    classes = sorted(int(key[len("infl_matrix_class"):]) for key in arrays if key.startswith("infl_matrix_class"))
    result = {}
    for k in classes:
        matrix = np.asarray(arrays[f"infl_matrix_class{k}"], dtype=np.float32).astype(float)
        idx = np.asarray(arrays[f"tr_classidx_{k}"])
        memo = np.asarray(arrays["tr_mem"], dtype=float)[idx]
        result[k] = class_scores(matrix, memo, alpha, beta)
        result[k]["training_indices"] = idx
    return result


STEMS = {
    "original_memo": "memo_score",
    "influence_weighted_memo": "infl_weighted_memo",
    "representativeness_score": "representativeness",
    "weighted_combination": "weighted_combination",
    "critical_sample_score": "critical_sample",
}


def stats_rows(per_class):
    """The seed's CSV rows, one dict per class, with numpy's population std and median."""
    rows = []
    for k, scores in per_class.items():
        row = {"class_label": k, "sample_count": len(scores["original_memo"])}
        for name, stem in STEMS.items():
            v = scores[name]
            empty = len(v) == 0
            row[f"mean_{stem}"] = np.nan if empty else float(np.mean(v))
            row[f"std_{stem}"] = np.nan if empty else float(np.std(v))
            row[f"min_{stem}"] = np.nan if empty else float(np.min(v))
            row[f"max_{stem}"] = np.nan if empty else float(np.max(v))
            row[f"median_{stem}"] = np.nan if empty else float(np.median(v))
        rows.append(row)
    return rows
