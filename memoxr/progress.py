"""Progress on long work: dask's own diagnostics, shown on stderr."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import dask
from dask.diagnostics import ProgressBar


@contextlib.contextmanager
def progress(show: bool = True, *, minimum: float = 0.5) -> Iterator[None]:
    """Show a progress bar for dask computations run inside the block.

    Only work that lasts longer than ``minimum`` seconds draws a bar.
    """
    if not show:
        yield
        return
    with ProgressBar(minimum=minimum, out=sys.stderr, dt=0.2):
        yield


def compute(*objs: Any, show_progress: bool = False) -> tuple[Any, ...]:
    """``dask.compute`` all objects in one pass, optionally with progress."""
    with progress(show_progress):
        return dask.compute(*objs)
