"""Training dynamics: ingest per-epoch records, compute memorization proxies lazily, evaluate them.

- :func:`ingest` / ``memoxr ingest``: per-epoch ``.npy``/``.npz`` files -> a dynamics store;
- :class:`DynamicsWriter`: record one epoch (or batch) at a time from a training loop, resumably;
- :func:`open_dynamics`: the store, lazily, complete epochs only;
- proxies (:func:`csl` and the baselines, :func:`compute_proxies`): lazy reductions over ``epoch``;
- :func:`evaluate`, :func:`cross_run`, :func:`compare_stores`, :func:`table`: tidy DataFrames;
- :func:`align_samples`: pair samples by identity, refusing differing sample orders without a mapping.

xarray manners: dims are found by name, in any order; the sample identity is
``train_id`` (as in influence and trial stores; ``sample``, its older name, is
read too and kept where a user gave it); every reducing function takes
``skipna`` (default: NaN propagates along ``epoch``, samples with a NaN score
are left out of metrics) and ``keep_attrs``, as every reducing function of memoxr
(see :mod:`memoxr.compute.manners`); results carry ``long_name`` and
``units`` for xarray's own plots; ground truth comes back as coordinates.
"""

from __future__ import annotations

from .align import align_samples, check_orders, load_mapping
from .evaluate import (
    compare_stores,
    correlation_metrics,
    cross_run,
    detection_metrics,
    evaluate,
    table,
)
from .ingest import ingest
from .proxies import (
    confidence,
    csl,
    cumulative_grad_norm,
    final_loss,
    forgetting_events,
    in_confidence,
    learning_time,
    mean_curvature,
    mean_loss,
    threshold_learning_time,
    variability,
)
from .registry import PROXIES, compute_proxies
from .schema import (
    DYNAMICS_SCHEMA,
    SAMPLE,
    SAMPLE_ALIASES,
    check_dynamics_dataset,
    open_dynamics,
    sample_dim,
)
from .writer import DynamicsWriter

__all__ = [
    "DYNAMICS_SCHEMA",
    "PROXIES",
    "SAMPLE",
    "SAMPLE_ALIASES",
    "DynamicsWriter",
    "align_samples",
    "check_dynamics_dataset",
    "check_orders",
    "compare_stores",
    "compute_proxies",
    "confidence",
    "correlation_metrics",
    "cross_run",
    "csl",
    "cumulative_grad_norm",
    "detection_metrics",
    "evaluate",
    "final_loss",
    "forgetting_events",
    "in_confidence",
    "ingest",
    "learning_time",
    "load_mapping",
    "mean_curvature",
    "mean_loss",
    "open_dynamics",
    "sample_dim",
    "table",
    "threshold_learning_time",
    "variability",
]
