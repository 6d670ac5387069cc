"""``Dataset.memoxr``: the common calls on an influence or scores Dataset.

Registered when any module of :mod:`memoxr.influence` is imported (:mod:`.scores`,
``memoxr.open_influence``), so ``import memoxr`` alone stays light.

>>> import memoxr
>>> ds = memoxr.open_influence(memoxr.sample_path())
>>> ds.memoxr.kind
'influence'
>>> ds.memoxr.class_stats()["sample_count"].sum()
np.int64(1347)
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from ..errors import MemoxrInputError

__all__ = ["MemoxrAccessor"]


@xr.register_dataset_accessor("memoxr")
class MemoxrAccessor:
    """memoxr's functions as methods of an influence or scores Dataset.

    ``ds.memoxr.scores()``, ``.class_stats()``, ``.top_k(k)``, ``.analyze()``
    and ``.sel_class(label)`` (``class`` is a Python keyword, so
    ``ds.sel(class=3)`` cannot be written). On an influence Dataset the
    scores are computed first (options such as ``alpha`` go to
    :func:`memoxr.influence_scores`); ``skipna`` and ``keep_attrs`` (default
    ``None``, the rule of :mod:`memoxr.compute.manners`) go to every step.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.open_influence(memoxr.sample_path()).memoxr.scores()
    >>> scores.memoxr.kind, int(scores.memoxr.sel_class(2)["train_count"])
    ('scores', 133)
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    @property
    def kind(self) -> str:
        """``"influence"``, ``"scores"``, or ``"other"``, from the variables held.

        Examples
        --------
        >>> import memoxr
        >>> xr.Dataset().memoxr.kind
        'other'
        """
        if "influence" in self._ds.variables:
            return "influence"
        if "original_memo" in self._ds.variables and "training_indices" in self._ds.variables:
            return "scores"
        return "other"

    def _require(self, method: str, *kinds: str) -> None:
        if self.kind not in kinds:
            raise MemoxrInputError(
                f"ds.memoxr.{method}() needs {' or '.join(kinds)} data (variable 'influence' for influence, "
                f"'original_memo' and 'training_indices' for scores); received a Dataset with variables "
                f"{sorted(map(str, self._ds.variables))[:12]}"
            )

    def _scores(
        self, method: str, *, skipna: bool | None, keep_attrs: bool | None, score_options: dict[str, Any]
    ) -> xr.Dataset:
        self._require(method, "influence", "scores")
        if self.kind == "scores":
            if score_options:
                raise MemoxrInputError(
                    f"ds.memoxr.{method}(): options {sorted(score_options)} apply to an influence Dataset; "
                    "received a scores Dataset (its scores are computed already)"
                )
            return self._ds
        from .scores import influence_scores

        return influence_scores(self._ds, skipna=skipna, keep_attrs=keep_attrs, **score_options)

    def scores(self, **options: Any) -> xr.Dataset:
        """:func:`memoxr.influence_scores` of this influence Dataset.

        Examples
        --------
        >>> import memoxr
        >>> ds = memoxr.open_influence(memoxr.sample_path())
        >>> ds.memoxr.scores(alpha=0.5).attrs["alpha"]
        0.5
        """
        self._require("scores", "influence")
        from .scores import influence_scores

        return influence_scores(self._ds, **options)

    def class_stats(self, *, skipna: bool | None = None, keep_attrs: bool | None = None, **score_options: Any) -> Any:
        """:func:`memoxr.class_stats` of these scores (computed first from influence data).

        Examples
        --------
        >>> import memoxr
        >>> table = memoxr.open_influence(memoxr.sample_path()).memoxr.class_stats()
        >>> table.shape
        (10, 27)
        """
        from .stats import class_stats

        scores = self._scores("class_stats", skipna=skipna, keep_attrs=keep_attrs, score_options=score_options)
        return class_stats(scores, skipna=skipna, keep_attrs=keep_attrs)

    def top_k(
        self, class_label: int, *, k: int = 10, by: str = "original_memo", skipna: bool | None = None,
        keep_attrs: bool | None = None, **score_options: Any,
    ) -> Any:
        """:func:`memoxr.top_k`: the ``k`` samples of a class with the highest ``by`` score.

        Examples
        --------
        >>> import memoxr
        >>> top = memoxr.open_influence(memoxr.sample_path()).memoxr.top_k(3, k=2, by="critical_sample_score")
        >>> top["rank"].tolist()
        [1, 2]
        """
        from .analysis import top_k

        scores = self._scores("top_k", skipna=skipna, keep_attrs=keep_attrs, score_options=score_options)
        return top_k(scores, class_label, k=k, by=by, skipna=skipna, keep_attrs=keep_attrs)

    def analyze(self, *, skipna: bool | None = None, keep_attrs: bool | None = None, **options: Any) -> Any:
        """:func:`memoxr.analyze` of these scores (computed first from influence data).

        ``class_label``, ``k`` and ``n_classes`` go to :func:`memoxr.analyze`, the
        other options to :func:`memoxr.influence_scores`.

        Examples
        --------
        >>> import memoxr
        >>> memoxr.open_influence(memoxr.sample_path()).memoxr.analyze(class_label=2, k=3).class_label
        2
        """
        from .analysis import stats_and_analysis

        analysis_options = {key: options.pop(key) for key in ("class_label", "k", "n_classes") if key in options}
        scores = self._scores("analyze", skipna=skipna, keep_attrs=keep_attrs, score_options=options)
        from ..compute.progress import compute  # dask only when it runs: registering stays cheap

        (scores,) = compute(scores)  # once, for the table and every analysis
        return stats_and_analysis(scores, skipna=skipna, keep_attrs=keep_attrs, **analysis_options)[1]

    def sel_class(self, class_label: int) -> xr.Dataset:
        """The Dataset of one class, its padding dropped (``ds.sel(class=k)`` cannot be written).

        Selects ``class == class_label`` and keeps the first ``train_count``
        train samples and ``test_count`` test samples of that class (where the
        Dataset has those counts), so the result holds real samples only.

        Examples
        --------
        >>> import memoxr
        >>> one = memoxr.open_influence(memoxr.sample_path()).memoxr.sel_class(0)
        >>> dict(one["influence"].sizes), int(one["class"])
        ({'train_sample': 133, 'test_sample': 45}, 0)
        """
        from ..io.schema import CLASS, COUNT_COORDS

        ds = self._ds
        if CLASS not in ds.dims:
            raise MemoxrInputError(f"ds.memoxr.sel_class(): dim {CLASS!r} missing; received dims {tuple(ds.dims)}")
        labels = ds[CLASS].values.tolist()
        if class_label not in labels:
            shown = labels if len(labels) <= 12 else [*labels[:5], "...", *labels[-5:]]
            raise MemoxrInputError(f"class_label must be one of the classes {shown}; received {class_label!r}")
        one = ds.isel({CLASS: labels.index(class_label)})
        trim = {
            dim: slice(0, int(one[count].values))
            for dim, count in COUNT_COORDS.items()
            if dim in one.dims and count in one.variables and one[count].ndim == 0
        }
        return one.isel(trim)
