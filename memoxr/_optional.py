"""Optional dependencies: import one, or fail with one line naming the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

#: What each extra of ``pip install 'memoxr[...]'`` is for (kept in step with pyproject.toml).
EXTRAS = {"s3": "s3:// paths", "distributed": "dask clusters", "plot": "figures"}


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``pip install 'memoxr[extra]'``.

    The message gives the clone's form too (``pip install '.[extra]'``), for an install from source.

    Example
    -------
    >>> require("numpy", "plot").__name__
    'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Name the missing package itself: a broken dependency of `module` is reported too.
        missing = exc.name or module
        raise MissingExtraError(
            f"{EXTRAS.get(extra, extra)} need {module}, which is not installed (missing {missing!r}): "
            f"pip install 'memoxr[{extra}]' (from a clone of memoxr: pip install '.[{extra}]')",
            name=missing,
        ) from exc
