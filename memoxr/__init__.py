"""memoxr: memorization and influence analytics on labelled Zarr stores, lazily.

Convert Feldman–Zhang influence estimates to a Zarr store once
(:func:`memoxr.convert.convert_npz`), open it lazily (:func:`open_influence`),
and compute the influence-aware scores (:func:`influence_scores`), the
per-class table (:func:`class_stats`) and the analyses (:mod:`memoxr.influence.analysis`)
as xarray reductions that dask runs chunk by chunk.

Public names are imported on first use (PEP 562), so ``import memoxr`` and
``memoxr --help`` do not pay for xarray, dask, scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from ._compat import install as _install_moved_module_paths
from ._version import __version__
from .errors import IncompleteStoreError, MemoxrInputError, OutputExistsError

_install_moved_module_paths()

# ``Dataset.memoxr`` is registered by memoxr's influence layer. When xarray is loaded already (a
# notebook that imported it first) that costs nothing, so do it now: the accessor then works
# before any memoxr call. Otherwise the first memoxr function that touches xarray registers it.
if "xarray" in sys.modules:
    from .influence import accessor as _accessor  # noqa: F401

# Installed, the top-level convert/ folder is the subpackage memoxr.convert; from a
# source checkout that was not installed, find it beside this package instead.
_here = os.path.dirname(__file__)
if not os.path.isdir(os.path.join(_here, "convert")) and os.path.isfile(
    os.path.join(_here, os.pardir, "convert", "__init__.py")
):
    __path__.append(os.path.join(_here, os.pardir))

#: Public name -> module that defines it (relative to this package).
_LAZY = {
    "analyze": ".influence.analysis",
    "append_estimate": ".estimate.incremental",
    "rank_agreement": ".influence.analysis",
    "score_ranges": ".influence.analysis",
    "top_classes": ".influence.analysis",
    "top_k": ".influence.analysis",
    "stats_and_analysis": ".influence.analysis",
    "DynamicsWriter": ".dynamics",
    "compare_scores": ".importers.compare",
    "compute_proxies": ".dynamics",
    "convergence": ".estimate.uncertainty",
    "csl": ".dynamics",
    "evaluate": ".dynamics",
    "open_dynamics": ".dynamics",
    "influence_scores": ".influence.scores",
    "row_statistics": ".influence.scores",
    "STAT_COLUMNS": ".influence.stats",
    "class_stats": ".influence.stats",
    "merge_stats_csv": ".influence.stats",
    "open_influence": ".influence.sources",
    "load_scores": ".workflows",
    "plot_convergence": ".estimate.uncertainty",
    "score_errors": ".estimate.uncertainty",
    "pairs": ".influence.pairs",
    "align_order": ".io.sample_order",
    "progress": ".compute.progress",
    "reproduce": ".reproduce",
    "sample_path": ".influence.sources",
    "plan_block_chunks": ".io.chunks",
    "DEFAULT_CHUNK_MB": ".io.chunks",
}

__all__ = [
    "IncompleteStoreError",
    "MemoxrInputError",
    "OutputExistsError",
    "__version__",
    "DynamicsWriter",
    "STAT_COLUMNS",
    "analyze",
    "append_estimate",
    "class_stats",
    "compare_scores",
    "compute_proxies",
    "convergence",
    "csl",
    "evaluate",
    "influence_scores",
    "merge_stats_csv",
    "open_dynamics",
    "open_influence",
    "load_scores",
    "plan_block_chunks",
    "DEFAULT_CHUNK_MB",
    "plot_convergence",
    "pairs",
    "progress",
    "align_order",
    "rank_agreement",
    "reproduce",
    "row_statistics",
    "sample_path",
    "score_errors",
    "score_ranges",
    "stats_and_analysis",
    "top_classes",
    "top_k",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .compute.progress import progress
    from .dynamics import DynamicsWriter, compute_proxies, csl, open_dynamics

    # The function: for mypy, "from .dynamics import evaluate" also names the submodule.
    from .dynamics.evaluate import evaluate
    from .estimate.incremental import append_estimate
    from .estimate.uncertainty import convergence, plot_convergence, score_errors
    from .importers.compare import compare_scores
    from .influence.analysis import (
        analyze,
        rank_agreement,
        score_ranges,
        stats_and_analysis,
        top_classes,
        top_k,
    )
    from .influence.pairs import pairs
    from .influence.scores import influence_scores, row_statistics
    from .influence.sources import open_influence, sample_path
    from .influence.stats import STAT_COLUMNS, class_stats, merge_stats_csv
    from .io.chunks import DEFAULT_CHUNK_MB, plan_block_chunks
    from .io.sample_order import align_order
    from .reproduce import reproduce
    from .workflows import load_scores


#: Submodules reachable as attributes without importing them first (``memoxr.scheduler.use_scheduler``).
_SUBMODULES = {"scheduler": ".compute.scheduler"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name], __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memoxr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
