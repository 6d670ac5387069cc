"""Old module paths kept importable after the move into layer folders (memoxr 0.x scripts).

``import memoxr.scores`` gives the very module ``memoxr.influence.scores`` (one object, so
monkeypatching and ``isinstance`` checks see the same thing); nothing is imported until asked.
An old module whose names went to several new ones (:data:`GATHERED`) is a module that finds
each name where it lives now.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

#: Old dotted path -> where the module lives now.
MOVED = {
    "memoxr.analysis": "memoxr.influence.analysis",
    "memoxr.compare": "memoxr.importers.compare",
    "memoxr.high_influence": "memoxr.influence.pairs",
    "memoxr.incremental": "memoxr.estimate.incremental",
    "memoxr.legacy": "memoxr.influence.seed_npz",
    "memoxr.sample_order": "memoxr.io.sample_order",
    "memoxr.scheduler": "memoxr.compute.scheduler",
    "memoxr.schema": "memoxr.io.schema",
    "memoxr.scores": "memoxr.influence.scores",
    "memoxr.stats": "memoxr.influence.stats",
    "memoxr.synthetic": "memoxr.datasets.synthetic",
    "memoxr.uncertainty": "memoxr.estimate.uncertainty",
}

#: Old dotted path -> the modules its names went to, searched in order.
GATHERED = {
    "memoxr.convert.fz_npz": ("memoxr.influence.fz_npz", "memoxr.io.npz", "memoxr.io.npy"),
    "memoxr.plan": ("memoxr.compute.plan", "memoxr.influence.plan", "memoxr.estimate.plan", "memoxr.dynamics.plan"),
    "memoxr.storage": ("memoxr.io.storage", "memoxr.io.location", "memoxr.errors"),
}


class GatheredModule(ModuleType):
    """An old module whose names now live in several modules: each looked up where it lives.

    Examples
    --------
    >>> plan = GatheredModule("old.plan", ("memoxr.compute.plan", "memoxr.influence.plan"))
    >>> plan.plan_calculate.__module__, plan.count_tasks.__module__
    ('memoxr.influence.plan', 'memoxr.compute.plan')
    """

    def __init__(self, name: str, sources: tuple[str, ...]) -> None:
        super().__init__(name, f"Old path of names now in {', '.join(sources)}.")
        self.__sources = sources

    def __getattr__(self, attr: str) -> object:
        if not attr.startswith("__"):
            for source in self.__sources:
                module = importlib.import_module(source)
                if hasattr(module, attr):
                    return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        names = {n for s in self.__sources for n in dir(importlib.import_module(s)) if not n.startswith("_")}
        return sorted(names | set(super().__dir__()))


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old path to the module at its new place.

    Examples
    --------
    >>> finder = MovedModuleFinder()
    >>> finder.find_spec("memoxr.scores").name, finder.find_spec("memoxr.not_moved") is None
    ('memoxr.scores', True)
    >>> import memoxr.influence.scores
    >>> import memoxr.scores
    >>> memoxr.scores is memoxr.influence.scores, memoxr.scores.__spec__.name
    (True, 'memoxr.influence.scores')
    """

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname not in MOVED and fullname not in GATHERED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def __init__(self) -> None:
        self._own_specs: dict[str, ModuleSpec | None] = {}

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        if spec.name in GATHERED:
            return GatheredModule(spec.name, GATHERED[spec.name])
        module = importlib.import_module(MOVED[spec.name])
        self._own_specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias spec on the module; give it back its own.
        module.__spec__ = self._own_specs.pop(module.__name__, module.__spec__)


def install() -> None:
    """Put one :class:`MovedModuleFinder` on ``sys.meta_path`` (``import memoxr`` does; twice adds none).

    Examples
    --------
    >>> import sys
    >>> install()
    >>> install()
    >>> sum(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path)
    1
    >>> import importlib
    >>> importlib.import_module("memoxr.stats").__name__
    'memoxr.influence.stats'
    """
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
