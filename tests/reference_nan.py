"""Plain-Python reference of every reducing function of the influence layer, NaN rules included.

Written apart from memoxr (no memoxr imports): loops over classes and samples,
following the documented rules. ``skipna=False``: a NaN takes part (a reduction
over it is NaN, a ranking lists it last); ``skipna=True``: a NaN is left out.
``skipna=None`` (the default): a reduction of a sample's own values (its influence
row) and a per-class statistic behave as ``False``; a ranking, range or
correlation of samples behaves as ``True`` (a NaN has no rank). Padding is never
data. Correlations come from scipy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

METHODS = ["original_memo", "influence_weighted_memo", "representativeness_score", "weighted_combination",
           "critical_sample_score"]
STEMS = ["memo_score", "infl_weighted_memo", "representativeness", "weighted_combination", "critical_sample"]
SAMPLE_FIELDS = [*METHODS, "pos_infl_mean", "influence_std"]


def _isnan(v):
    return isinstance(v, float) and math.isnan(v)


def _own(skipna):
    """skipna of a reduction of a sample's own values or a per-class statistic: None propagates."""
    return skipna is True


def _ranked(skipna):
    """skipna of a ranking or comparison of samples: None leaves NaN samples out."""
    return skipna is not False


def row_stats(row, skipna):
    """count, positive mean, mean, population std of one real row (a list of floats)."""
    skipna = _own(skipna)
    finite = [float(v) for v in row if not _isnan(float(v))]
    count = len(finite)
    if count == 0 or (not skipna and count < len(row)):
        return count, math.nan, math.nan, math.nan
    mean = sum(finite) / count
    return (count, sum(max(v, 0.0) for v in finite) / count, mean,
            math.sqrt(sum((v - mean) ** 2 for v in finite) / count))


def classes_of(arrays):
    return sorted(int(key[len("infl_matrix_class"):]) for key in arrays if key.startswith("infl_matrix_class"))


def row_statistics(arrays, skipna):
    """{class: [(count, positive_mean, mean, std) per real train sample]}."""
    out = {}
    for k in classes_of(arrays):
        matrix = np.asarray(arrays[f"infl_matrix_class{k}"], dtype=np.float32).astype(float)
        out[k] = [row_stats(list(matrix[i]), skipna) for i in range(matrix.shape[0])]
    return out


def scores(arrays, skipna, alpha=0.7, beta=0.3):
    """{class: {field: list per real train sample}} with the NaN rules of influence_scores."""
    result = {}
    for k, rows in row_statistics(arrays, skipna).items():
        idx = [int(i) for i in arrays[f"tr_classidx_{k}"]]
        memo = [float(arrays["tr_mem"][i]) for i in idx]
        pos = [r[1] for r in rows]
        std = [r[3] for r in rows]
        ranked = [i for i in range(len(idx)) if not _isnan(pos[i])]
        peak = max((pos[i] for i in ranked), default=0.0)
        order = sorted(ranked, key=lambda i: (-pos[i], i))
        n = len(order)
        out = {name: [] for name in SAMPLE_FIELDS}
        for i, m in enumerate(memo):
            p, s = pos[i], std[i]
            if _isnan(p):
                for name in ("influence_weighted_memo", "representativeness_score", "weighted_combination",
                             "critical_sample_score"):
                    out[name].append(math.nan)
            else:
                out["influence_weighted_memo"].append(m * p)
                out["representativeness_score"].append(m * p / s if s > 0 else 0.0)
                out["weighted_combination"].append(alpha * m + beta * (p / peak if peak > 0 else 0.0))
                rank = order.index(i)
                out["critical_sample_score"].append(m * (1 - (rank / (n - 1) if n > 1 else 0.0)))
            out["original_memo"].append(m)
            out["pos_infl_mean"].append(p)
            out["influence_std"].append(s)
        out["training_indices"] = idx
        result[k] = out
    return result


def _summary(values, skipna):
    if _own(skipna):
        values = [v for v in values if not _isnan(v)]
    if not values or any(_isnan(v) for v in values):
        return [math.nan] * 5
    v = np.array(values)
    return [float(np.mean(v)), float(np.std(v)), float(np.min(v)), float(np.max(v)), float(np.median(v))]


def class_stats(per_class, skipna):
    """The table's rows: class_label, sample_count and mean/std/min/max/median per method."""
    rows = []
    for k, s in per_class.items():
        row = {"class_label": k, "sample_count": len(s["original_memo"])}
        for name, stem in zip(METHODS, STEMS, strict=True):
            for stat, value in zip(("mean", "std", "min", "max", "median"), _summary(s[name], skipna), strict=True):
                row[f"{stat}_{stem}"] = value
        rows.append(row)
    return rows


def _ordered(values, skipna):
    """Positions sorted by descending value, ties by position; NaN last (or dropped with skipna)."""
    skipna = _ranked(skipna)
    finite = sorted((i for i, v in enumerate(values) if not _isnan(v)), key=lambda i: (-values[i], i))
    rest = [] if skipna else [i for i, v in enumerate(values) if _isnan(v)]
    return finite + rest


def top_k(per_class, k_label, k, by, skipna):
    """[(train_sample, sample_index, {method: value})] of the top ``k``."""
    s = per_class[k_label]
    return [(i, s["training_indices"][i], {m: s[m][i] for m in SAMPLE_FIELDS})
            for i in _ordered(s[by], skipna)[:k]]


def top_classes(rows, n, skipna):
    """{method: [class labels of the top n by mean]}."""
    out = {}
    for name, stem in zip(METHODS, STEMS, strict=True):
        means = [row[f"mean_{stem}"] for row in rows]
        out[name] = [rows[i]["class_label"] for i in _ordered(means, skipna)[:n]]
    return out


def _spearman(a, b, skipna):
    if not _ranked(skipna) and any(_isnan(v) for v in a + b):
        return math.nan
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not _isnan(x) and not _isnan(y)]
    if len(pairs) < 2:
        return math.nan
    x, y = np.array(pairs).T
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(sps.spearmanr(x, y).statistic)


def rank_agreement(per_class, skipna):
    """{(class label or "all", method_a, method_b): spearman}."""
    out = {}
    for i, a in enumerate(METHODS):
        for b in METHODS[i + 1:]:
            for k, s in per_class.items():
                out[(k, a, b)] = _spearman(s[a], s[b], skipna)
            pooled = [sum((s[m] for s in per_class.values()), []) for m in (a, b)]
            out[("all", a, b)] = _spearman(*pooled, skipna)
    return out


def score_ranges(per_class, skipna):
    """{method: (min, max)} over every real sample."""
    out = {}
    for m in METHODS:
        values = [v for s in per_class.values() for v in s[m]]
        if _ranked(skipna):
            values = [v for v in values if not _isnan(v)]
        if not values or any(_isnan(v) for v in values):
            out[m] = (math.nan, math.nan)
        else:
            out[m] = (min(values), max(values))
    return out


def pairs(arrays, min_infl, min_mem, top_k, skipna):
    """[(class_label, train_index, test_index, test_label, memorization, influence)] in the documented order.

    A NaN influence or memorization never passes a threshold, except with ``skipna=False``, where it
    takes part and is listed last among its test sample's pairs.
    """
    keep_nan = not _ranked(skipna)
    found = []
    for k in classes_of(arrays):
        matrix = np.asarray(arrays[f"infl_matrix_class{k}"], dtype=np.float32)
        rows, columns = arrays[f"tr_classidx_{k}"], arrays[f"tt_classidx_{k}"]
        for i, train in enumerate(rows):
            memo = float(arrays["tr_mem"][train])
            if not (memo >= min_mem or (keep_nan and math.isnan(memo))):
                continue
            for j, test in enumerate(columns):
                value = float(matrix[i, j])
                if value >= min_infl or (keep_nan and math.isnan(value)):
                    found.append((int(arrays["tr_labels"][train]), int(train), int(test),
                                  int(arrays["tt_labels"][test]), memo, value))

    def by_test(row):  # highest influence first, NaN last, then lower train index
        return (row[2], math.isnan(row[5]), -row[5] if not math.isnan(row[5]) else 0.0, row[1])

    found.sort(key=by_test)
    if top_k is not None:
        seen = {}
        kept = []
        for row in found:
            seen[row[2]] = seen.get(row[2], 0) + 1
            if seen[row[2]] <= top_k:
                kept.append(row)
        found = kept
    return sorted(found, key=lambda row: (row[0], *by_test(row)))


def score_errors(arrays, influence_se, tr_mem_se, skipna, errors="independent"):
    """{class: {field: list per real train sample}} of the first-order errors of influence_weighted_memo.

    ``influence_se[k]`` is class k's (train, test) error matrix; ``tr_mem_se`` is per train row.
    """
    skip = _own(skipna)
    out = {}
    for k in classes_of(arrays):
        matrix = np.asarray(arrays[f"infl_matrix_class{k}"], dtype=np.float32).astype(float)
        se = np.asarray(influence_se[k], dtype=np.float32).astype(float)
        fields = {"influence_weighted_memo": [], "influence_weighted_memo_se": [], "pos_infl_mean": [],
                  "pos_infl_mean_se": [], "memorization_se": []}
        for i, train in enumerate(arrays[f"tr_classidx_{k}"]):
            row = [float(v) for v in matrix[i]]
            used = [j for j, v in enumerate(row) if not (skip and math.isnan(v))]
            n = len(used)
            # The error sums the positive entries only: a NaN is not positive, so it never enters
            # pos_infl_mean_se (as in 0.x); it makes pos_infl_mean NaN unless skipped.
            terms = [se[i, j] for j in used if row[j] > 0]
            pos_se = (math.sqrt(sum(t * t for t in terms)) if errors == "independent" else sum(terms)) / n if n else math.nan
            if n == 0 or any(math.isnan(row[j]) for j in used):
                pos = math.nan
            else:
                pos = sum(max(row[j], 0.0) for j in used) / n
            memo, memo_se = float(arrays["tr_mem"][train]), float(tr_mem_se[train])
            fields["influence_weighted_memo"].append(memo * pos)
            fields["influence_weighted_memo_se"].append(math.sqrt(pos**2 * memo_se**2 + memo**2 * pos_se**2))
            fields["pos_infl_mean"].append(pos)
            fields["pos_infl_mean_se"].append(pos_se)
            fields["memorization_se"].append(memo_se)
        out[k] = fields
    return out
