"""Old module paths kept importable after the move into layer folders (memoxr 0.x scripts).

``import memoxr.scores`` gives the very module ``memoxr.influence.scores`` (one object, so
monkeypatching and ``isinstance`` checks see the same thing); nothing is imported until asked.
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
    "memoxr.convert.fz_npz": "memoxr.influence.fz_npz",
    "memoxr.high_influence": "memoxr.influence.pairs",
    "memoxr.incremental": "memoxr.estimate.incremental",
    "memoxr.legacy": "memoxr.influence.seed_npz",
    "memoxr.plan": "memoxr.compute.plan",
    "memoxr.sample_order": "memoxr.io.sample_order",
    "memoxr.scheduler": "memoxr.compute.scheduler",
    "memoxr.schema": "memoxr.io.schema",
    "memoxr.scores": "memoxr.influence.scores",
    "memoxr.stats": "memoxr.influence.stats",
    "memoxr.storage": "memoxr.io.storage",
    "memoxr.synthetic": "memoxr.datasets.synthetic",
    "memoxr.uncertainty": "memoxr.estimate.uncertainty",
}


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
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def __init__(self) -> None:
        self._own_specs: dict[str, ModuleSpec | None] = {}

    def create_module(self, spec: ModuleSpec) -> ModuleType:
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
