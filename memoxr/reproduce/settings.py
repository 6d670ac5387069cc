"""What a reproduction run trains: the full run, ``--quick``, and their checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..dynamics.demo import EPOCHS as DEMO_EPOCHS
from ..dynamics.demo import NOISE_LEVELS
from ..errors import MemoxrInputError
from .training import ARCHITECTURES

#: Paper-sized-for-digits defaults (the full run).
FULL: dict[str, Any] = {"trials": 1000, "seeds": 3, "epochs": 20, "architectures": ("logreg", "mlp32", "mlp128"),
        "mislabel_epochs": DEMO_EPOCHS}
#: ``--quick``: the same experiments with fewer models and epochs (well under a minute on 2 cores).
QUICK: dict[str, Any] = {"trials": 64, "seeds": 3, "epochs": 10, "architectures": ("logreg", "mlp32"), "mislabel_epochs": 10}


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers of a run (saved as ``settings.json`` in OUT_DIR)."""

    trials: int
    seeds: int
    epochs: int
    architectures: tuple[str, ...]
    mislabel_epochs: int
    quick: bool = False
    seed: int = 0
    noise_levels: tuple[float, ...] = NOISE_LEVELS
    duplicate_fraction: float = 0.05
    near_std: float = 0.05
    top_fraction: float = 0.1

    @property
    def seed_values(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.seeds))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Settings:
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
        return cls(**values)


def _whole(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise MemoxrInputError(f"{name}: expected a whole number {bound}, received {value!r}")
    return int(value)


def make_settings(
    *, quick: bool = False, trials: int | None = None, seeds: int | None = None, epochs: int | None = None,
    architectures: tuple[str, ...] | None = None,
) -> Settings:
    """The full run's settings (or ``--quick``'s), with any of them replaced; each one checked.

    Examples
    --------
    >>> settings = make_settings(quick=True, trials=8)
    >>> settings.trials, settings.architectures, settings.seed_values
    (8, ('logreg', 'mlp32'), (0, 1, 2))
    >>> make_settings(trials=2)
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: trials: expected a whole number in [4, 99999], received 2
    """
    base: dict[str, Any] = dict(QUICK if quick else FULL)
    if trials is not None:
        base["trials"] = _whole("trials", trials, 4, 99_999)
    if seeds is not None:
        base["seeds"] = _whole("seeds", seeds, 1, 100)
    if epochs is not None:
        base["epochs"] = _whole("epochs", epochs, 2, 10_000)
    if architectures is not None:
        archs = tuple(architectures)
        unknown = [a for a in archs if a not in ARCHITECTURES]
        if len(archs) < 1 or unknown or len(set(archs)) != len(archs):
            raise MemoxrInputError(
                f"architectures: expected distinct names among {list(ARCHITECTURES)}, received {list(archs)}"
            )
        base["architectures"] = archs
    return Settings(quick=quick, **base)
