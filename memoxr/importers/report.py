"""What ``memoxr compare`` does, as one function: check the CSV can be written, compare, write the
table (the command only parses, calls :func:`compare_report` and prints)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..io.location import StorageOptions, locate, locate_each
from ..io.storage import atomic_output, check_writable
from .compare import Source, compare_scores

__all__ = ["compare_report"]


def compare_report(
    sources: Sequence[Source] | Mapping[str, Source],
    *,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
    **options: Any,
) -> pd.DataFrame:
    """:func:`~memoxr.importers.compare.compare_scores` of ``sources``, optionally written to a CSV.

    ``output`` (a CSV) is checked before any work and written complete or
    absent; an existing one needs ``overwrite``. Every other keyword
    (``mask``, ``memorization``, ``mapping``, ``proxies``, ``select``...) goes
    to :func:`~memoxr.importers.compare.compare_scores`. ``storage_options`` reach every path
    and URL given as text, the output's too (the command passes Locations it resolved once).

    Examples
    --------
    >>> from memoxr.importers import scores_dataset
    >>> ds = scores_dataset({"s": [0.9, 0.1, 0.8, 0.3]}, sample_order="tfds", source="x", directions={"s": 1},
    ...                     truth={"is_mislabeled": [1, 0, 0, 1]})
    >>> table = compare_report([ds], mask="is_mislabeled", output="compare.csv")
    >>> pd.read_csv("compare.csv")[["score", "auroc"]].values.tolist() == table[["score", "auroc"]].values.tolist()
    True
    >>> compare_report([ds], mask="is_mislabeled", output="compare.csv")
    Traceback (most recent call last):
    memoxr.errors.OutputExistsError: output 'compare.csv' already exists; pass overwrite=True to replace it
    """
    output = locate(output, storage_options)
    if output is not None:  # before any work: an unwritable output fails fast
        check_writable(output, overwrite=overwrite)
    if isinstance(sources, Mapping):
        sources = {name: locate(source, storage_options) for name, source in sources.items()}
    elif isinstance(sources, str | os.PathLike):  # one source
        sources = [locate(sources, storage_options)]
    else:
        sources = [locate(source, storage_options) for source in sources]
    if options.get("memorization") is not None:  # an influence store or FZ npz
        options["memorization"] = locate(options["memorization"], storage_options)
    if options.get("mapping") is not None:  # a permutation file, or one per sample order
        options["mapping"] = locate_each(options["mapping"], storage_options)
    table = compare_scores(sources, **options)
    if output is not None:
        with atomic_output(output, overwrite=overwrite) as tmp:
            table.to_csv(tmp, index=False)
    return table
