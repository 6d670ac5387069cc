"""Top-k samples, top classes, rank agreement and ranges of the scores.

These work on the small ``(class, train_sample)`` scores (dims in any order);
lazy scores are computed once on entry. Every function takes ``skipna`` and
``keep_attrs`` with the meaning and defaults of :mod:`memoxr.compute.manners`:
these rank or compare samples, so by default (``skipna=None``) and with
``skipna=True`` a NaN score is left out (a NaN has no rank; memoxr 0.x did the
same in the ranges and the rank agreement, while its ``top_k`` and ``top_classes``
listed NaN last); with ``skipna=False`` it takes part (a range or a correlation
over it is NaN; a ranking lists it last).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..compute.manners import rank_skipna, resolve_keep_attrs
from ..compute.plan import default_threads
from ..compute.progress import compute
from ..errors import MemoxrInputError
from ..io.schema import (
    CLASS,
    SCORE_NAMES,
    SCORES_COORDS,
    STAT_STEMS,
    TRAIN,
    check_scores_dataset,
    kept_attrs,
    promote_coords,
)
from . import kernels as _kernels

#: Methods compared in the analyses: the original memorization and the four scores.
METHODS = ("original_memo", *SCORE_NAMES)
_SAMPLE_COLUMNS = (*METHODS, "pos_infl_mean", "influence_std")


def _in_memory(scores: xr.Dataset) -> xr.Dataset:
    check_scores_dataset(scores)
    scores = promote_coords(scores, SCORES_COORDS).transpose(CLASS, TRAIN, ...)
    return compute(scores)[0] if any(v.chunks for v in scores.variables.values()) else scores


def _with_attrs(frame: pd.DataFrame, attrs: dict, keep_attrs: bool | None) -> pd.DataFrame:
    frame.attrs = kept_attrs(attrs, resolve_keep_attrs(keep_attrs))
    return frame


def _check_method(name: str, argument: str = "by") -> None:
    if name not in METHODS:
        raise MemoxrInputError(f"{argument} must be one of {list(METHODS)}; received {name!r}")


def _class_position(scores: xr.Dataset, class_label: int) -> int:
    labels = scores[CLASS].values.tolist()
    if class_label not in labels:
        shown = labels if len(labels) <= 12 else [*labels[:5], "...", *labels[-5:]]
        raise MemoxrInputError(f"class_label must be one of the store's classes {shown}; received {class_label!r}")
    return labels.index(class_label)


def top_k(
    scores: xr.Dataset, class_label: int, *, k: int = 10, by: str = "original_memo", skipna: bool | None = None,
    keep_attrs: bool | None = None,
) -> pd.DataFrame:
    """The ``k`` samples of a class with the highest ``by`` score.

    Ties keep sample order. Samples whose ``by`` score is NaN are left out
    (``skipna=None``, the default, or ``True``: a NaN has no rank) or come last
    (``skipna=False``). The rule: :mod:`memoxr.compute.manners`.

    Returns
    -------
    pandas.DataFrame
        ``rank`` (1-based), ``sample_index`` (row in the train split),
        ``train_sample`` (position within the class) and every method's score.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> top_k(scores, 3, k=3, by="influence_weighted_memo")["rank"].tolist()
    [1, 2, 3]
    """
    _check_method(by)
    skip = rank_skipna(skipna)
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
    if skip:
        frame = frame[frame[by].notna()]
    frame = frame.sort_values(by, ascending=False, kind="stable", na_position="last").head(k)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return _with_attrs(frame.reset_index(drop=True), scores.attrs, keep_attrs)


def top_classes(
    table: pd.DataFrame, *, n: int = 5, skipna: bool | None = None, keep_attrs: bool | None = None
) -> pd.DataFrame:
    """The ``n`` classes with the highest mean of each method, from :func:`class_stats`.

    Classes whose mean is NaN are left out (``skipna=None``, the default, or
    ``True``) or come last (``skipna=False``); ``keep_attrs`` copies
    ``table.attrs``. The rule: :mod:`memoxr.compute.manners`.

    Returns a tidy DataFrame: ``method``, ``rank``, ``class_label``, ``mean``.

    Examples
    --------
    >>> import memoxr
    >>> table = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path())))
    >>> top_classes(table, n=2).shape
    (10, 4)
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise MemoxrInputError(f"n must be a positive integer; received {n!r}")
    skip = rank_skipna(skipna)
    rows = []
    for method, stem in STAT_STEMS.items():
        column = f"mean_{stem}"
        if column not in table.columns:
            raise MemoxrInputError(f"table: column {column!r} missing; expected the output of class_stats")
        ranked = table[table[column].notna()] if skip else table
        best = ranked.sort_values(column, ascending=False, kind="stable", na_position="last").head(n)
        for rank, (label, mean) in enumerate(zip(best["class_label"], best[column], strict=True), start=1):
            rows.append({"method": method, "rank": rank, "class_label": label, "mean": mean})
    return _with_attrs(pd.DataFrame(rows, columns=["method", "rank", "class_label", "mean"]), table.attrs, keep_attrs)


class _Mask:
    """The samples a correlation keeps, laid out by class and among the real samples (pooled)."""

    def __init__(self, keep: np.ndarray, real: np.ndarray) -> None:
        self.keep = keep
        self.real_keep = keep[real]


def rank_agreement(scores: xr.Dataset, *, skipna: bool | None = None, keep_attrs: bool | None = None) -> pd.DataFrame:
    """Spearman rank correlation between every pair of methods, per class and overall.

    Computed on real samples; NaN where fewer than two remain or a method is
    constant. A class (or the pooled ``"all"``) is correlated on the samples
    where both methods' scores are finite (``skipna=None``, the default, or
    ``True``), or gives NaN when either holds a NaN (``skipna=False``). The
    rule: :mod:`memoxr.compute.manners`. ``class_label`` is ``"all"`` for the
    pooled correlation over every sample. Ties get average ranks, as in
    ``scipy.stats.spearmanr``; every class is ranked at once (vectorised), not
    one scipy call per class and pair.

    Returns a tidy DataFrame: ``class_label``, ``method_a``, ``method_b``, ``spearman``.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> table = rank_agreement(scores)
    >>> len(table), table.columns.tolist()
    (110, ['class_label', 'method_a', 'method_b', 'spearman'])
    """
    skip = rank_skipna(skipna)
    scores = _in_memory(scores)
    real = scores["training_indices"].values >= 0
    values = {m: np.asarray(scores[m].values, dtype=np.float64) for m in METHODS}  # read only: no copy
    pairs = list(itertools.combinations(METHODS, 2))
    # Methods usually share one mask (NaN only in padding): each distinct mask is held once, with
    # its real samples' part, and each method ranked once per mask it is compared on.
    masks: list[_Mask] = []

    def mask_of(keep: np.ndarray) -> _Mask:
        known = next((mask for mask in masks if np.array_equal(mask.keep, keep)), None)
        if known is None:
            known = _Mask(keep, real)
            masks.append(known)
        return known

    finite = {m: mask_of(real & ~np.isnan(v)) for m, v in values.items()}
    keeps = {(a, b): finite[a] if finite[a] is finite[b] else mask_of(finite[a].keep & finite[b].keep) for a, b in pairs}
    jobs = list(dict.fromkeys((method, keeps[pair]) for pair in pairs for method in pair))

    def rank(job: tuple[str, _Mask]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        # Within each class (one row per class) and pooled over every real sample, from one sort:
        # each ranking centred once, for all the correlations it takes part in.
        method, mask = job
        within, pooled = _kernels.row_and_pooled_ranks(values[method], mask.keep, centred=True)
        pooled = pooled[real]
        return {"class": (within, _kernels.sum_of_squares(within)), "all": (pooled, _kernels.sum_of_squares(pooled))}

    with ThreadPoolExecutor(max_workers=max(1, min(default_threads(), len(jobs)))) as pool:  # sorts release the GIL
        ranks = dict(zip(jobs, pool.map(rank, jobs), strict=True))

    def spearman(layout: str, pair: tuple[str, str]) -> np.ndarray:
        # Pearson of average ranks: one product per pair.
        mask = keeps[pair]
        a, b = (ranks[(m, mask)][layout] for m in pair)
        return _kernels.centered_correlation(a, b, mask.keep if layout == "class" else mask.real_keep)

    def agreement(pair: tuple[str, str]) -> np.ndarray:
        rho = np.append(spearman("class", pair), spearman("all", pair))
        if not skip:  # a NaN among a class's real scores makes its correlation NaN
            holed = (real & ~keeps[pair].keep).any(axis=-1)
            rho[np.append(holed, holed.any())] = np.nan
        return rho

    labels = pd.Series([*scores[CLASS].values.tolist(), "all"], dtype=object)
    frames = [
        pd.DataFrame({"class_label": labels, "method_a": a, "method_b": b, "spearman": agreement((a, b))})
        for a, b in pairs
    ]
    return _with_attrs(pd.concat(frames, ignore_index=True), scores.attrs, keep_attrs)


def score_ranges(scores: xr.Dataset, *, skipna: bool | None = None, keep_attrs: bool | None = None) -> pd.DataFrame:
    """Global minimum and maximum of each method over all real samples.

    A NaN score is ignored (``skipna=None``, the default, or ``True``) or makes
    its method's range NaN (``skipna=False``). The rule: :mod:`memoxr.compute.manners`.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> score_ranges(scores).set_index("method").loc["original_memo"].round(3).tolist()
    [0.0, 1.0]
    """
    skip = rank_skipna(skipna)
    scores = _in_memory(scores)
    real = scores["training_indices"].values >= 0
    rows = []
    for method in METHODS:
        v = scores[method].values
        nan = np.isnan(v)
        kept = real & ~nan
        if not kept.any() or (not skip and (real & nan).any()):
            rows.append((method, np.nan, np.nan))
        else:  # reduced in place, not copied out first
            rows.append((method, np.min(v, where=kept, initial=np.inf), np.max(v, where=kept, initial=-np.inf)))
    return _with_attrs(pd.DataFrame(rows, columns=["method", "min", "max"]), scores.attrs, keep_attrs)


#: What the top-sample tables' index columns are, printed above them.
_COLUMNS_LEGEND = "sample_index: the sample's row in the train split (tr_labels, tr_mem); train_sample: its row within its class."


@dataclass
class Analysis:
    """What ``memoxr calculate`` prints: ranges, top-k of one class, top classes, agreement.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path())).compute()
    >>> report = analyze(scores, memoxr.class_stats(scores), class_label=0, k=1)
    >>> str(report).splitlines()[0]
    'Score ranges (all samples):'
    """

    ranges: pd.DataFrame
    class_label: int
    top_samples: dict[str, pd.DataFrame]
    top_classes: pd.DataFrame
    agreement: pd.DataFrame

    def agreement_summary(self) -> pd.DataFrame:
        """Overall Spearman and its per-class median, one row per pair of methods.

        Examples
        --------
        >>> import memoxr
        >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path())).compute()
        >>> analyze(scores, memoxr.class_stats(scores)).agreement_summary().shape
        (10, 4)
        """
        per_class = self.agreement[self.agreement["class_label"] != "all"]
        overall = self.agreement[self.agreement["class_label"] == "all"].set_index(["method_a", "method_b"])
        median = per_class.groupby(["method_a", "method_b"], sort=False)["spearman"].median()
        return pd.DataFrame({"overall": overall["spearman"], "median_per_class": median}).reset_index()

    def __str__(self) -> str:
        def table(frame: pd.DataFrame) -> str:
            return frame.to_string(float_format=lambda v: f"{v:.6g}", index=False)

        parts = ["Score ranges (all samples):", table(self.ranges), ""]
        if self.top_samples:
            parts += [_COLUMNS_LEGEND, ""]
        for method, frame in self.top_samples.items():
            parts += [f"Top samples of class {self.class_label} by {method}:", table(frame), ""]
        wide = self.top_classes.pivot(index="rank", columns="method", values="class_label")
        parts += ["Top classes by mean score (class labels):", wide[list(METHODS)].to_string(), ""]
        parts += ["Rank agreement (Spearman):", table(self.agreement_summary())]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<memoxr.Analysis class={self.class_label} methods={len(self.top_samples)}>\n{self}"

    def _repr_html_(self) -> str:
        """Jupyter: the same sections as ``str()``, as HTML tables."""
        parts = ["<h4>Score ranges (all samples)</h4>", self.ranges.to_html(index=False)]
        if self.top_samples:
            parts += [f"<p>{_COLUMNS_LEGEND}</p>"]
        for method, frame in self.top_samples.items():
            parts += [f"<h4>Top samples of class {self.class_label} by {method}</h4>", frame.to_html(index=False)]
        wide = self.top_classes.pivot(index="rank", columns="method", values="class_label")[list(METHODS)]
        parts += ["<h4>Top classes by mean score (class labels)</h4>", wide.to_html()]
        parts += ["<h4>Rank agreement (Spearman)</h4>", self.agreement_summary().to_html(index=False)]
        return "\n".join(parts)


def analyze(
    scores: xr.Dataset, table: pd.DataFrame, *, class_label: int | None = None, k: int = 10, n_classes: int = 5,
    skipna: bool | None = None, keep_attrs: bool | None = None,
) -> Analysis:
    """All analyses at once: ranges, top-k of ``class_label`` by each method, top classes, agreement.

    ``table`` is the per-class table (:func:`memoxr.class_stats`) the top classes
    are read from; :func:`stats_and_analysis` computes both at once.
    ``class_label`` defaults to the first class; ``skipna`` and ``keep_attrs``
    go to every analysis (the rule: :mod:`memoxr.compute.manners`).

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path())).compute()
    >>> report = analyze(scores, memoxr.class_stats(scores), class_label=4, k=2)
    >>> report.class_label, len(report.top_samples["critical_sample_score"])
    (4, 2)
    """
    return _analyze(
        scores, lambda _: table, class_label=class_label, k=k, n_classes=n_classes, skipna=skipna, keep_attrs=keep_attrs
    )[1]


def stats_and_analysis(
    scores: xr.Dataset, *, class_label: int | None = None, k: int = 10, n_classes: int = 5,
    skipna: bool | None = None, keep_attrs: bool | None = None,
) -> tuple[pd.DataFrame, Analysis]:
    """The per-class table (:func:`memoxr.class_stats`) and :func:`analyze` of ``scores``, at once.

    The same table and analysis as those two functions give, one after the
    other; here the rank agreement's sorts run while the table is computed, so
    each fills the cores the other leaves idle. Arguments as :func:`analyze`'s.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> table, report = stats_and_analysis(scores, class_label=4, k=2)
    >>> table.equals(memoxr.class_stats(scores)), report.class_label
    (True, 4)
    """
    from .stats import class_stats

    return _analyze(
        scores, lambda held: class_stats(held, skipna=skipna, keep_attrs=keep_attrs), class_label=class_label, k=k,
        n_classes=n_classes, skipna=skipna, keep_attrs=keep_attrs,
    )


def _analyze(
    scores: xr.Dataset, make_table: Callable[[xr.Dataset], pd.DataFrame], *, class_label: int | None, k: int,
    n_classes: int, skipna: bool | None, keep_attrs: bool | None,
) -> tuple[pd.DataFrame, Analysis]:
    scores = _in_memory(scores)
    if class_label is None:
        class_label = int(scores[CLASS].values[0])
    options = {"skipna": skipna, "keep_attrs": keep_attrs}
    # The agreement's sorts release the GIL: the table and the small analyses run meanwhile, on this thread.
    with ThreadPoolExecutor(max_workers=1) as background:
        agreement = background.submit(rank_agreement, scores, **options)
        try:
            table = make_table(scores)
            return table, Analysis(
                ranges=score_ranges(scores, **options),
                class_label=class_label,
                top_samples={m: top_k(scores, class_label, k=k, by=m, **options) for m in METHODS},
                top_classes=top_classes(table, n=n_classes, **options),
                agreement=agreement.result(),
            )
        except BaseException as error:
            if not agreement.cancel():  # running or done: its own error would be lost otherwise
                other = agreement.exception()
                if other is not None and other is not error:
                    error.add_note(f"The rank agreement, computed meanwhile, failed too: {other!r}")
            raise
