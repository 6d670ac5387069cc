"""Figures of the scores and of memorization proxies, with matplotlib.

matplotlib is an optional extra: ``pip install "memoxr[plot]"``. Every function
takes an optional ``ax=`` (a new figure is made through pyplot otherwise),
returns the :class:`matplotlib.axes.Axes` it drew on, and computes from lazy
inputs only the variables it draws, in one dask pass.

Scores figures take the ``(class, train_sample)`` Dataset of
:func:`memoxr.influence_scores`; padding (``training_indices == -1``) and NaN
values are never drawn. Scores are zero-inflated and skewed: the figures count
exact zeros rather than hide them, and pick log or symlog axes from the data
unless told (``scale=``). Proxy figures take plain arrays: numpy arrays, lists,
or xarray DataArrays (lazy or not) of one shape, paired element by element; two
DataArrays must also carry the same dims and coordinates, so samples in
different orders are refused rather than silently mispaired.

Drawn artists carry a ``gid`` (``"median:<class>"``, ``"roc:<name>"``...) so a
test or a script can find the plotted data again.
"""

from __future__ import annotations

from .._optional import require

try:
    import matplotlib  # noqa: F401
except ImportError:  # one line naming the extra (exit status 2 on the command line)
    require("matplotlib", "plot")

from ._style import SCALES, resolve_scale
from .detection import pr_curves, roc_curves
from .distributions import SORTS, score_distributions
from .files import DEFAULT_KINDS, FIGURE_FILES, FORMATS, KINDS, write_score_figures
from .proxies import binned_against_memorization, data_map, tie_aware_bins
from .scores import memorization_vs_influence, method_agreement, top_k_table

__all__ = [
    "DEFAULT_KINDS",
    "FIGURE_FILES",
    "FORMATS",
    "KINDS",
    "SCALES",
    "SORTS",
    "binned_against_memorization",
    "data_map",
    "memorization_vs_influence",
    "method_agreement",
    "pr_curves",
    "resolve_scale",
    "roc_curves",
    "score_distributions",
    "tie_aware_bins",
    "top_k_table",
    "write_score_figures",
]
