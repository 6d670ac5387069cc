"""``dask.array`` imported lean, for the ``memoxr`` command's own process.

Three things ``import dask.array`` does cost the command time and give it nothing:

* **scipy.** Two modules of ``dask.array`` import scipy, both optionally (an
  ``ImportError`` leaves the feature out): ``dask.array.chunk_types`` imports
  ``scipy.sparse`` to accept sparse matrices as chunks, and ``dask.array.fft``
  imports ``scipy.fftpack`` to wrap scipy's FFTs. scipy 1.17 in turn imports
  ``numpy.testing``, ``unittest`` and ``numpy.f2py``: 0.13–0.2 s (``python -X
  importtime``). No memoxr command uses sparse chunks or dask's FFTs. So while
  those two modules run, and only then, scipy looks absent (``None`` in
  ``sys.modules``, Python's own marker for a module that cannot be imported);
  afterwards it imports as usual.
* **jinja2.** ``dask.widgets`` imports jinja2, optionally, for the HTML
  ``_repr_html_`` of dask objects in Jupyter (0.01–0.05 s); a command prints none.
  It looks absent the same way while ``dask.widgets`` runs.
* **Docstrings.** dask.array copies numpy's docstring into each of its ~300
  functions and ufuncs as it defines them (``dask.utils.derived_from``), and
  scans each for the arguments dask does not support, with a few regular
  expressions per line: about 0.1 s of every start-up, for ``help()`` texts a
  command never shows. While ``dask.array`` itself is imported, and only then,
  each function keeps its own docstring instead. A function numpy lacks is still
  replaced by one that raises ``NotImplementedError``, as dask does.

Commands that need scipy for their own work (``evaluate``, ``compare`` and the
importers load ``scipy.stats``) import it before dask.array, and then scipy is
not hidden. Each window is process-wide, and meant for a command's single-threaded
start-up: a module first imported inside it by anyone sees the same absences.
Applied by the command line only, like :mod:`memoxr.compute.malloc`: importing
memoxr in Jupyter leaves the host's imports, and dask's docstrings, alone.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from types import ModuleType
from typing import Any


@contextmanager
def _absent(hidden: str) -> Iterator[None]:
    """``import hidden`` raises ModuleNotFoundError inside, as if it were not installed; restored after."""
    if hidden in sys.modules:  # imported already (nothing to save), or marked absent by someone else
        yield
        return
    sys.modules[hidden] = None  # type: ignore[assignment]  # Python's marker of a module that cannot import
    try:
        yield
    finally:
        if hidden in sys.modules and sys.modules[hidden] is None:
            del sys.modules[hidden]


def _own_docstring(cls: Any, method: Any, *_: Any, extra: str = "", **__: Any) -> str:
    """Stands in for ``dask.utils._derived_from``: the method's own docstring, numpy's not copied."""
    getattr(cls, method.__name__)  # an AttributeError keeps dask's path for a function numpy lacks
    return extra


@contextmanager
def _docstrings_not_copied() -> Iterator[None]:
    utils: Any = importlib.import_module("dask.utils")  # imported with the dask package already
    copier = getattr(utils, "_derived_from", None)
    if copier is None:  # another dask: leave it alone
        yield
        return
    utils._derived_from = _own_docstring
    try:
        yield
    finally:
        if utils._derived_from is _own_docstring:
            utils._derived_from = copier


#: What runs around each module's first import: ``dask.array`` is the package whose modules copy
#: numpy's docstrings (it imports them all); the others import scipy or jinja2.
_TARGETS: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "dask.array": _docstrings_not_copied,
    "dask.array.chunk_types": partial(_absent, "scipy"),
    "dask.array.fft": partial(_absent, "scipy"),
    "dask.widgets": partial(_absent, "jinja2"),
}


class _ExecutedLean(importlib.abc.Loader):
    """Wraps one target's own loader: runs the module inside its context, which restores everything after."""

    def __init__(self, loader: importlib.abc.Loader, context: Callable[[], AbstractContextManager[None]]) -> None:
        self.loader = loader
        self.context = context

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The real loader from here on (resources, reloads, tracebacks).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with self.context():
            self.loader.exec_module(module)


class _OnFirstImport(importlib.abc.MetaPathFinder):
    """Finds each target the usual way, once, and hands back its spec with the wrapping loader."""

    def __init__(self, pending: set[str]) -> None:
        self.pending = pending

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name not in self.pending:
            return None
        self.pending.discard(name)
        if not self.pending:  # the last target: nothing more to wrap. Rebound, not edited in place:
            # the import system is walking the old list, and must reach the next finder if we find nothing.
            sys.meta_path = [finder for finder in sys.meta_path if finder is not self]
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec  # not found on the path (an unusual install): the usual finders decide
        spec.loader = _ExecutedLean(spec.loader, _TARGETS[name])
        return spec


def import_dask_array_lean() -> bool:
    """Arrange for the first import of dask and dask.array to skip scipy, jinja2 and docstrings; True if arranged.

    Nothing is imported now (``memoxr --help`` stays fast). A no-op when
    dask.array is already imported, or when it was arranged before.

    Examples
    --------
    In this process (the doctest runner) dask.array is already imported, so nothing changes:

    >>> import dask.array
    >>> import_dask_array_lean()
    False
    """
    pending = {name for name in _TARGETS if name not in sys.modules}
    if "dask.array" in sys.modules or not pending or any(isinstance(f, _OnFirstImport) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _OnFirstImport(pending))
    return True


def forget_lean_import() -> bool:
    """Remove the arrangement of :func:`import_dask_array_lean` if dask.array was never imported; True if removed.

    For a command that ended early (an error before any work, a refused
    output): a host running it in-process then imports dask.array as usual.

    Examples
    --------
    >>> forget_lean_import()  # nothing arranged in this process
    False
    """
    kept = [finder for finder in sys.meta_path if not isinstance(finder, _OnFirstImport)]
    if len(kept) == len(sys.meta_path):
        return False
    sys.meta_path = kept
    return True
