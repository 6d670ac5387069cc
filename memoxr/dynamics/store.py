"""Where the dynamics store's code used to live; kept so that old imports keep working.

The schema (names, checks, :func:`open_dynamics`) is in :mod:`.schema`, arrays
on disk in :mod:`.files`, file patterns in :mod:`.patterns`, ingestion in
:mod:`.ingest`.
"""

from __future__ import annotations

from .files import load_array
from .ingest import ingest, ingest_dataset, plan_ingest
from .patterns import FIELD as _FIELD
from .patterns import parse_pattern
from .schema import (
    COMPLETION_VAR,
    DYNAMICS_SCHEMA,
    EPOCH,
    SAMPLE,
    SAMPLE_ALIASES,
    VARIABLE,
    check_dynamics_dataset,
    open_dynamics,
)

__all__ = [
    "COMPLETION_VAR",
    "DYNAMICS_SCHEMA",
    "EPOCH",
    "SAMPLE",
    "SAMPLE_ALIASES",
    "VARIABLE",
    "_FIELD",
    "check_dynamics_dataset",
    "ingest",
    "ingest_dataset",
    "load_array",
    "open_dynamics",
    "parse_pattern",
    "plan_ingest",
]
