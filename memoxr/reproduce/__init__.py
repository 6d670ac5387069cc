"""The CSL paper's four claims, reproduced end to end on scikit-learn's digits: ``memoxr reproduce``.

Ravikumar et al., "Towards Memorization Estimation: Fast, Formal and Free"
(ICML 2025) claim that Cumulative Sample Loss (CSL) tracks Feldman–Zhang (FZ)
memorization, detects mislabeled samples and duplicates, holds across
architectures, and costs one training run where FZ costs thousands.
:func:`reproduce` trains everything from scratch with fixed seeds through
memoxr's public API (:mod:`memoxr.estimate`, :class:`memoxr.DynamicsWriter`,
:func:`memoxr.compute_proxies`, :func:`memoxr.evaluate`) and writes, in
OUT_DIR, one Zarr store per stage, the tables as CSV, PNG figures and a
``report.md`` with each measured number beside the paper's. :func:`load`
reads a finished OUT_DIR back.

Modules: :mod:`~memoxr.reproduce.training` (data, models),
:mod:`~memoxr.reproduce.stages` (the stage stores),
:mod:`~memoxr.reproduce.tables`, :mod:`~memoxr.reproduce.report`,
:mod:`~memoxr.reproduce.pipeline`, :mod:`~memoxr.cli.reproduce`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .pipeline import Reproduction, load, reproduce
from .settings import FULL, QUICK, Settings

__all__ = ["FULL", "QUICK", "Reproduction", "Settings", "load", "reproduce"]


class _CallableModule(types.ModuleType):
    # Importing a submodule (memoxr.cli.reproduce, say) binds the package to the name
    # ``memoxr.reproduce``, which would shadow the function of that name; calling the
    # package calls the function, so ``memoxr.reproduce(...)`` works either way.
    def __call__(self, *args: Any, **kwargs: Any) -> Reproduction:
        return reproduce(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
