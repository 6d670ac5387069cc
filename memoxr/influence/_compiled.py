"""memoxr's compiled kernels (``_row_moments.c``, ``_average_ranks.c``), imported in one place, so a
source checkout that was never built says how to build it, whichever kernel module is imported first."""

from __future__ import annotations

import os

try:
    from ._average_ranks import average_ranks_into
    from ._row_moments import row_moments_into
except ImportError as exc:  # a source checkout imported instead of the built package
    raise ImportError(
        f"memoxr's compiled kernels did not load from {os.path.dirname(__file__)} ({exc}): is this memoxr "
        "a source checkout that was never built? Build it in place with `pip install -e .` in the checkout, "
        "or run from another folder so that the installed memoxr is imported."
    ) from exc

__all__ = ["average_ranks_into", "row_moments_into"]
