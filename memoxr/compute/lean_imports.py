"""``dask.array`` imported without scipy, for the ``memoxr`` command's own process.

Two modules of ``dask.array`` import scipy, both optionally (an ``ImportError``
leaves the feature out): ``dask.array.chunk_types`` imports ``scipy.sparse`` to
accept sparse matrices as chunks, and ``dask.array.fft`` imports
``scipy.fftpack`` to wrap scipy's FFTs. scipy 1.17 in turn imports
``numpy.testing``, ``unittest`` and ``numpy.f2py``: 0.13–0.2 s (``python -X
importtime``) against a seed script whose whole start-up is 0.3 s. No memoxr
command uses sparse chunks or dask's FFTs. So while those two modules run,
and only then, scipy looks absent (``None`` in ``sys.modules``, Python's own
marker for a module that cannot be imported); afterwards it imports as usual.

Commands that need scipy for their own work (``evaluate``, ``compare`` and the
importers load ``scipy.stats``) import it before dask.array, and then nothing
is hidden or saved; ``calculate``, ``convert``, ``estimate`` and ``pairs`` save
the time. Applied by the command line only, like :mod:`memoxr.compute.malloc`:
importing memoxr in Jupyter leaves the host's imports alone.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: The modules of dask.array that import scipy optionally.
_TARGETS = frozenset({"dask.array.chunk_types", "dask.array.fft"})
_HIDDEN = "scipy"


class _ExecutedWithoutScipy(importlib.abc.Loader):
    """Wraps one target's own loader: runs the module with scipy marked absent, then restores it."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The real loader from here on (resources, reloads, tracebacks).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        if _HIDDEN in sys.modules:  # imported already (nothing to save), or marked absent by someone else
            self.loader.exec_module(module)
            return
        sys.modules[_HIDDEN] = None  # type: ignore[assignment]  # "import scipy" now raises ModuleNotFoundError
        try:
            self.loader.exec_module(module)
        finally:
            if _HIDDEN in sys.modules and sys.modules[_HIDDEN] is None:
                del sys.modules[_HIDDEN]


class _OnFirstImport(importlib.abc.MetaPathFinder):
    """Finds each target the usual way, once, and hands back its spec with the wrapping loader."""

    def __init__(self) -> None:
        self.pending = set(_TARGETS)

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name not in self.pending:
            return None
        self.pending.discard(name)
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec  # not found on the path (an unusual install): the usual finders decide
        spec.loader = _ExecutedWithoutScipy(spec.loader)
        if not self.pending:  # the import system stops walking sys.meta_path at a found spec
            sys.meta_path.remove(self)
        return spec


def import_dask_array_without_scipy() -> bool:
    """Arrange for the first ``import dask.array`` of this process to skip scipy; True if arranged.

    Nothing is imported now (``memoxr --help`` stays fast). A no-op when
    ``dask.array`` or scipy is already imported, or when it was arranged before.

    Examples
    --------
    In this process (the doctest runner) dask.array is already imported, so nothing changes:

    >>> import dask.array
    >>> import_dask_array_without_scipy()
    False
    """
    imported = ("dask.array", _HIDDEN, *_TARGETS)
    if any(name in sys.modules for name in imported) or any(isinstance(f, _OnFirstImport) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _OnFirstImport())
    return True
