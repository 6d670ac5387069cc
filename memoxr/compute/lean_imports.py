"""``dask.array`` imported without scipy, for the ``memoxr`` command's own process.

``import dask.array`` imports ``scipy.sparse`` (to accept sparse matrices as
chunks) and ``scipy.fftpack`` (to wrap scipy's FFTs), and scipy 1.17 in turn
imports ``numpy.testing``, ``unittest`` and ``numpy.f2py``: 0.13–0.2 s of every
command that reads data, measured with ``python -X importtime``, against a
seed script whose whole start-up is 0.3 s. No memoxr command uses sparse
chunks or dask's FFTs, and dask imports both optionally (an ``ImportError``
leaves them out). So while ``dask.array`` itself is imported, ``scipy`` looks
absent; afterwards it imports as usual (``evaluate`` needs ``scipy.stats``, and
scikit-learn needs scipy).

Applied by the command line only, like :mod:`memoxr.compute.malloc`: a library
imported in Jupyter leaves its host's imports alone.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_TARGET = "dask.array"
_HIDDEN = "scipy"


class _Absent(importlib.abc.MetaPathFinder):
    """Makes ``scipy`` and its submodules raise ``ModuleNotFoundError`` while installed."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if name == _HIDDEN or name.startswith(_HIDDEN + "."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while dask.array is imported)", name=name)
        return None


class _ExecutedWithoutScipy(importlib.abc.Loader):
    """Wraps ``dask.array``'s own loader: runs the module with scipy hidden, then steps aside."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The real loader from here on (resources, reloads, tracebacks).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        if _HIDDEN in sys.modules:  # already paid for: nothing to save
            self.loader.exec_module(module)
            return
        absent = _Absent()
        sys.meta_path.insert(0, absent)
        try:
            self.loader.exec_module(module)
        finally:
            sys.meta_path.remove(absent)


class _OnFirstImport(importlib.abc.MetaPathFinder):
    """Finds ``dask.array`` the usual way once, and hands back its spec with the wrapping loader."""

    def __init__(self) -> None:
        self.done = False

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != _TARGET or self.done:
            return None
        # Once, whatever happens next. It stays listed (removing it while the import system
        # walks sys.meta_path would make it skip the next finder).
        self.done = True
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _ExecutedWithoutScipy(spec.loader)
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
    if _TARGET in sys.modules or _HIDDEN in sys.modules or any(isinstance(f, _OnFirstImport) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _OnFirstImport())
    return True
