"""What ``memoxr evaluate`` does, as one function: open the stores, evaluate in the chosen mode,
write the tidy table (the command only parses, calls :func:`evaluate_store` and prints)."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions, locate
from ..io.storage import atomic_output, check_writable
from .evaluate import compare_stores, cross_run, evaluate
from .schema import open_dynamics

__all__ = ["evaluate_store"]


def evaluate_store(
    store: str | os.PathLike[str],
    *,
    proxies: list[str] | None = None,
    mask: str | None = None,
    influence: str | os.PathLike[str] | None = None,
    mapping: Any = None,
    top_k: int = 5000,
    k: int | None = None,
    across: str | None = None,
    compare: str | os.PathLike[str] | None = None,
    skipna: bool | None = None,
    keep_attrs: bool | None = None,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> pd.DataFrame:
    """Evaluate a dynamics store's proxies in one of three modes, optionally writing the table.

    ``across`` compares proxies across a run dim (:func:`~memoxr.dynamics.cross_run`), ``compare``
    across two stores (:func:`~memoxr.dynamics.compare_stores`); otherwise ``mask`` and/or
    ``influence`` (an influence store or FZ npz) evaluate the store (:func:`~memoxr.dynamics.evaluate`).
    ``output`` (a CSV) is checked before any work and written complete or absent. ``skipna``
    and ``keep_attrs`` go to the mode's function (the rule: :mod:`memoxr.compute.manners`).

    Examples
    --------
    >>> from memoxr.dynamics.demo import sample_dataset
    >>> from memoxr.io.storage import write_dataset
    >>> path = write_dataset(sample_dataset(), "dyn.zarr")
    >>> table = evaluate_store(path, proxies=["csl"], mask="is_mislabeled", output="auroc.csv")
    >>> auroc = table[table["metric"] == "auroc"]
    >>> auroc["noise"].round(2).tolist(), bool((auroc["value"] > 0.9).all()), os.path.exists("auroc.csv")
    ([0.01, 0.02, 0.05, 0.1], True, True)
    >>> evaluate_store(path, across="noise", compare=path)
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: options ['--across', '--compare'] cannot be combined: --across compares proxies across a run dim, --compare across two stores, and --mask/--influence evaluate one store against a mask or FZ memorization
    """
    # Each path its own Location (the command passes Locations it resolved once).
    store = Location.of(store, storage_options)
    influence, compare, output, mapping = (locate(p, storage_options) for p in (influence, compare, output, mapping))
    if output is not None:  # before any work: an unwritable output fails fast
        check_writable(output, overwrite=overwrite)
    modes = {"--across": across, "--compare": compare}
    chosen = [flag for flag, value in modes.items() if value is not None]
    others = {"--influence": influence, "--mask": mask}
    if len(chosen) > 1 or (chosen and any(v is not None for v in others.values())):
        given = chosen + [flag for flag, value in others.items() if value is not None]
        raise MemoxrInputError(
            f"options {given} cannot be combined: --across compares proxies across a run dim, --compare across "
            "two stores, and --mask/--influence evaluate one store against a mask or FZ memorization"
        )
    ds = open_dynamics(store)
    if across is not None:
        result = cross_run(ds, dim=across, proxies=proxies, skipna=skipna, keep_attrs=keep_attrs)
    elif compare is not None:
        result = compare_stores(ds, open_dynamics(compare), proxies=proxies, mapping=mapping,
                                skipna=skipna, keep_attrs=keep_attrs)
    else:
        infl = None
        if influence is not None:
            from ..influence.sources import open_influence

            infl = open_influence(influence)
        result = evaluate(ds, proxies=proxies, mask=mask, influence=infl, mapping=mapping, top_k=top_k, k=k,
                          skipna=skipna, keep_attrs=keep_attrs)
    if output is not None:
        with atomic_output(output, overwrite=overwrite) as tmp:
            result.to_csv(tmp, index=False)
    return result
