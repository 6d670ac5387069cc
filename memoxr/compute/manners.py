"""``skipna`` and ``keep_attrs``: one meaning and one default for every public function that reduces.

Every public reducing function of memoxr (the scores, the per-class table and
the analyses of :mod:`memoxr.influence`, the proxies and metrics of
:mod:`memoxr.dynamics`, :func:`memoxr.compare_scores`, :func:`memoxr.pairs`,
:func:`memoxr.score_errors`, the ``Dataset.memoxr`` accessor) takes
``skipna: bool | None = None`` and ``keep_attrs: bool | None = None`` with
this meaning:

``skipna=None`` (the default) -- what memoxr 0.x gave, except that 0.x's ``top_k`` and
``top_classes`` listed NaN samples last (``skipna=False`` still does) and its ``row_statistics``
skipped NaN (``skipna=True`` still does):

- NaN **propagates** through arithmetic on a sample's own values (a train
  sample's influence row along ``test_sample``: :func:`memoxr.influence_scores`,
  :func:`memoxr.row_statistics`, :func:`memoxr.score_errors`; a proxy along
  ``epoch``) and through the per-class statistics of :func:`memoxr.class_stats`
  (as ``np.mean`` / ``np.std`` do) and per-run ones (the threshold of
  :func:`memoxr.dynamics.learning_time`): one NaN makes that value NaN.
- Samples whose value is NaN are **left out** of what ranks or compares samples
  (:func:`memoxr.top_k`, :func:`memoxr.top_classes`, :func:`memoxr.rank_agreement`,
  :func:`memoxr.score_ranges`, the metrics of :func:`memoxr.evaluate`,
  :func:`memoxr.compare_scores`, the pairs :func:`memoxr.pairs` keeps): a NaN
  has no rank. The metrics' ``n`` says how many samples were used.

``skipna=True`` skips NaN everywhere: reductions use the finite values (none at
all gives NaN), rankings and comparisons leave NaN samples out.

``skipna=False`` propagates NaN everywhere: a reduction over a NaN is NaN, a
correlation or metric over a NaN sample is NaN, a ranking lists NaN last.

Padding (entries beyond a class's ``train_count`` / ``test_count``, index -1)
is never data, whatever ``skipna`` says.

``keep_attrs=None`` follows ``xarray.set_options(keep_attrs=...)`` (off unless
set to True); ``True`` also copies the input's attributes onto the result
(into ``DataFrame.attrs`` for tables), the result's own attributes winning on a
clash; ``False`` keeps the result's own attributes only.

The two resolvers below turn ``skipna`` into the yes/no a kernel needs:
:func:`reduce_skipna` for a reduction of a sample's own values or a per-class
statistic, :func:`rank_skipna` for a ranking or comparison of samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..errors import MemoxrInputError

__all__ = ["check_flag", "rank_skipna", "reduce_skipna", "resolve_keep_attrs"]


def check_flag(value: Any, argument: str) -> None:
    """Raise unless ``value`` is ``True``, ``False`` or ``None`` (numpy's booleans count as booleans).

    Examples
    --------
    >>> check_flag(None, "skipna")
    >>> check_flag(np.True_, "skipna")
    >>> check_flag(1, "keep_attrs")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: keep_attrs: expected True, False or None; received 1
    """
    if value is not None and not isinstance(value, bool | np.bool_):
        raise MemoxrInputError(f"{argument}: expected True, False or None; received {value!r}")


def reduce_skipna(skipna: bool | None) -> bool:
    """Whether a reduction of a sample's own values (or a per-class statistic) skips NaN; ``None``: no.

    Examples
    --------
    >>> reduce_skipna(None), reduce_skipna(True), reduce_skipna(False)
    (False, True, False)
    >>> reduce_skipna("yes")
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: skipna: expected True, False or None; received 'yes'
    """
    check_flag(skipna, "skipna")
    return bool(skipna)


def rank_skipna(skipna: bool | None) -> bool:
    """Whether samples with a NaN value are left out of a ranking or comparison; ``None``: yes.

    Examples
    --------
    >>> rank_skipna(None), rank_skipna(True), rank_skipna(False)
    (True, True, False)
    """
    check_flag(skipna, "skipna")
    return True if skipna is None else bool(skipna)


def resolve_keep_attrs(keep_attrs: bool | None) -> bool:
    """``keep_attrs``, with ``None`` meaning xarray's global option (False unless set to True).

    Examples
    --------
    >>> resolve_keep_attrs(None), resolve_keep_attrs(True)
    (False, True)
    >>> with xr.set_options(keep_attrs=True):
    ...     resolve_keep_attrs(None), resolve_keep_attrs(False)
    (True, False)
    """
    check_flag(keep_attrs, "keep_attrs")
    if keep_attrs is None:
        return xr.get_options()["keep_attrs"] is True
    return bool(keep_attrs)
