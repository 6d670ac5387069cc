"""Top-k samples, top classes, rank agreement and ranges of the scores.

These work on the small ``(class, train_sample)`` scores; lazy scores are
computed once on entry.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MemoxrInputError
from ..io.schema import CLASS, SCORE_NAMES, STAT_STEMS, check_scores_dataset
from . import kernels as _kernels

#: Methods compared in the analyses: the original memorization and the four scores.
METHODS = ("original_memo", *SCORE_NAMES)
_SAMPLE_COLUMNS = (*METHODS, "pos_infl_mean", "influence_std")


def _in_memory(scores: xr.Dataset) -> xr.Dataset:
    check_scores_dataset(scores)
    return scores.compute() if any(v.chunks for v in scores.data_vars.values()) else scores


def _check_method(name: str, argument: str = "by") -> None:
    if name not in METHODS:
        raise MemoxrInputError(f"{argument} must be one of {list(METHODS)}; received {name!r}")


def _class_position(scores: xr.Dataset, class_label: int) -> int:
    labels = scores[CLASS].values.tolist()
    if class_label not in labels:
        shown = labels if len(labels) <= 12 else [*labels[:5], "...", *labels[-5:]]
        raise MemoxrInputError(f"class_label must be one of the store's classes {shown}; received {class_label!r}")
    return labels.index(class_label)


def top_k(scores: xr.Dataset, class_label: int, *, k: int = 10, by: str = "original_memo") -> pd.DataFrame:
    """The ``k`` samples of a class with the highest ``by`` score.

    Ties keep sample order; samples whose ``by`` score is NaN come last.

    Returns
    -------
    pandas.DataFrame
        ``rank`` (1-based), ``sample_index`` (row in the train split),
        ``train_sample`` (position within the class) and every method's score.
    """
    _check_method(by)
    if not isinstance(k, int | np.integer) or k < 1:
        raise MemoxrInputError(f"k must be a positive integer; received {k!r}")
    scores = _in_memory(scores)
    row = scores.isel({CLASS: _class_position(scores, class_label)})
    real = row["training_indices"].values >= 0
    frame = pd.DataFrame(
        {
            "sample_index": row["training_indices"].values[real],
            "train_sample": np.flatnonzero(real),
            **{name: row[name].values[real] for name in _SAMPLE_COLUMNS},
        }
    )
    frame = frame.sort_values(by, ascending=False, kind="stable", na_position="last").head(k)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def top_classes(table: pd.DataFrame, *, n: int = 5) -> pd.DataFrame:
    """The ``n`` classes with the highest mean of each method, from :func:`class_stats`.

    Returns a tidy DataFrame: ``method``, ``rank``, ``class_label``, ``mean``.
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise MemoxrInputError(f"n must be a positive integer; received {n!r}")
    rows = []
    for method, stem in STAT_STEMS.items():
        column = f"mean_{stem}"
        if column not in table.columns:
            raise MemoxrInputError(f"table: column {column!r} missing; expected the output of class_stats")
        best = table.sort_values(column, ascending=False, kind="stable", na_position="last").head(n)
        for rank, (label, mean) in enumerate(zip(best["class_label"], best[column], strict=True), start=1):
            rows.append({"method": method, "rank": rank, "class_label": label, "mean": mean})
    return pd.DataFrame(rows, columns=["method", "rank", "class_label", "mean"])


def rank_agreement(scores: xr.Dataset) -> pd.DataFrame:
    """Spearman rank correlation between every pair of methods, per class and overall.

    Computed on real samples with both scores finite; NaN where fewer than two
    remain or a method is constant. ``class_label`` is ``"all"`` for the pooled
    correlation over every sample. Ties get average ranks, as in
    ``scipy.stats.spearmanr``; every class is ranked at once (vectorised), not
    one scipy call per class and pair.

    Returns a tidy DataFrame: ``class_label``, ``method_a``, ``method_b``, ``spearman``.
    """
    scores = _in_memory(scores)
    real = scores["training_indices"].values >= 0
    values = {m: scores[m].values.astype(np.float64) for m in METHODS}
    finite = {m: real & ~np.isnan(v) for m, v in values.items()}
    pairs = list(itertools.combinations(METHODS, 2))
    # Per class (2-D, one row per class) and pooled over every real sample (1-D).
    layouts = {
        "class": (values, {pair: finite[pair[0]] & finite[pair[1]] for pair in pairs}),
        "all": ({m: v[real] for m, v in values.items()}, {p: (finite[p[0]] & finite[p[1]])[real] for p in pairs}),
    }
    # Pairs usually share one mask (NaN only in padding), so each method is ranked once per layout.
    mask_key = {(layout, pair): np.packbits(keep).tobytes() for layout, (_, keeps) in layouts.items() for pair, keep in keeps.items()}
    jobs: dict[tuple[str, str, bytes], tuple[np.ndarray, np.ndarray]] = {}
    for layout, (data, keeps) in layouts.items():
        for pair, keep in keeps.items():
            for method in pair:
                jobs.setdefault((layout, method, mask_key[layout, pair]), (data[method], keep))

    def centered_ranks(job: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        data, keep = job
        return _kernels.centered(_kernels.average_rank(data, keep), keep)

    # The cores this process may use (affinity, cgroups' cpusets), where the platform says so.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=cores) as pool:  # numpy sorts release the GIL
        ranks = dict(zip(jobs, pool.map(centered_ranks, jobs.values()), strict=True))

    def spearman(layout: str, pair: tuple[str, str]) -> np.ndarray:
        # Pearson of average ranks: each ranking centred once, one product per pair.
        a, b = (ranks[(layout, m, mask_key[layout, pair])] for m in pair)
        return _kernels.centered_correlation(a, b, layouts[layout][1][pair])

    labels = pd.Series([*scores[CLASS].values.tolist(), "all"], dtype=object)
    frames = [
        pd.DataFrame(
            {
                "class_label": labels,
                "method_a": a,
                "method_b": b,
                "spearman": np.append(spearman("class", (a, b)), spearman("all", (a, b))),
            }
        )
        for a, b in pairs
    ]
    return pd.concat(frames, ignore_index=True)


def score_ranges(scores: xr.Dataset) -> pd.DataFrame:
    """Global minimum and maximum of each method over all real samples (NaN ignored)."""
    scores = _in_memory(scores)
    real = scores["training_indices"].values >= 0
    rows = []
    for method in METHODS:
        v = scores[method].values[real]
        v = v[~np.isnan(v)]
        rows.append((method, v.min() if v.size else np.nan, v.max() if v.size else np.nan))
    return pd.DataFrame(rows, columns=["method", "min", "max"])


@dataclass
class Analysis:
    """What ``memoxr calculate`` prints: ranges, top-k of one class, top classes, agreement."""

    ranges: pd.DataFrame
    class_label: int
    top_samples: dict[str, pd.DataFrame]
    top_classes: pd.DataFrame
    agreement: pd.DataFrame

    def agreement_summary(self) -> pd.DataFrame:
        """Overall Spearman and its per-class median, one row per pair of methods."""
        per_class = self.agreement[self.agreement["class_label"] != "all"]
        overall = self.agreement[self.agreement["class_label"] == "all"].set_index(["method_a", "method_b"])
        median = per_class.groupby(["method_a", "method_b"], sort=False)["spearman"].median()
        return pd.DataFrame({"overall": overall["spearman"], "median_per_class": median}).reset_index()

    def __str__(self) -> str:
        fmt = {"float_format": lambda v: f"{v:.6g}", "index": False}
        parts = ["Score ranges (all samples):", self.ranges.to_string(**fmt), ""]
        for method, frame in self.top_samples.items():
            parts += [f"Top samples of class {self.class_label} by {method}:", frame.to_string(**fmt), ""]
        wide = self.top_classes.pivot(index="rank", columns="method", values="class_label")
        parts += ["Top classes by mean score (class labels):", wide[list(METHODS)].to_string(), ""]
        parts += ["Rank agreement (Spearman):", self.agreement_summary().to_string(**fmt)]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<memoxr.Analysis class={self.class_label} methods={len(self.top_samples)}>\n{self}"

    def _repr_html_(self) -> str:
        """Jupyter: the same sections as ``str()``, as HTML tables."""
        parts = ["<h4>Score ranges (all samples)</h4>", self.ranges.to_html(index=False)]
        for method, frame in self.top_samples.items():
            parts += [f"<h4>Top samples of class {self.class_label} by {method}</h4>", frame.to_html(index=False)]
        wide = self.top_classes.pivot(index="rank", columns="method", values="class_label")[list(METHODS)]
        parts += ["<h4>Top classes by mean score (class labels)</h4>", wide.to_html()]
        parts += ["<h4>Rank agreement (Spearman)</h4>", self.agreement_summary().to_html(index=False)]
        return "\n".join(parts)


def analyze(
    scores: xr.Dataset, table: pd.DataFrame, *, class_label: int | None = None, k: int = 10, n_classes: int = 5
) -> Analysis:
    """All analyses at once: ranges, top-k of ``class_label`` by each method, top classes, agreement.

    ``class_label`` defaults to the first class.
    """
    scores = _in_memory(scores)
    if class_label is None:
        class_label = int(scores[CLASS].values[0])
    return Analysis(
        ranges=score_ranges(scores),
        class_label=class_label,
        top_samples={m: top_k(scores, class_label, k=k, by=m) for m in METHODS},
        top_classes=top_classes(table, n=n_classes),
        agreement=rank_agreement(scores),
    )
