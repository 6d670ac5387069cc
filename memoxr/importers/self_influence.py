"""TRAK / TracIn-style self-influence: each training sample's influence on itself.

TracIn (Pruthi et al., NeurIPS 2020) scores a sample by the sum over
checkpoints of ``lr * ||grad loss(z)||^2``; TRAK (Park et al., ICML 2023,
https://github.com/MadryLab/trak) writes a ``(train, target)`` score matrix
whose diagonal, when the targets are the training samples in the same order,
is each sample's self-influence. Either a 1-D vector (one value per sample) or
a square ``.npy`` matrix (its diagonal, read through a memory map) is imported.
A large self-influence marks a sample the model must memorize (direction ``+1``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..dynamics.files import load_array
from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions, locate, locate_each
from ._store import check_output, scores_dataset, write_scores


def read_self_influence(path: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """A self-influence vector, or the diagonal of a square train x train score matrix.

    Examples
    --------
    >>> import numpy as np
    >>> np.save("trak_scores.npy", np.arange(9, dtype=np.float32).reshape(3, 3))
    >>> read_self_influence("trak_scores.npy")  # the diagonal: each sample's score on itself
    array([0., 4., 8.])
    >>> read_self_influence([3, 1])
    array([3., 1.])
    >>> read_self_influence(np.zeros((2, 3)))
    Traceback (most recent call last):
    memoxr.errors.MemoxrInputError: self-influence: shape (2, 3); expected a vector (one value per sample) or ...
    """
    if isinstance(path, str | os.PathLike) and str(path).endswith(".npy") and os.path.isfile(path):
        try:
            values = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)  # a str: memmap wants one
        except ValueError as exc:
            raise MemoxrInputError(f"self-influence {str(path)!r}: {exc}; expected a numeric .npy") from exc
    else:
        values = load_array(path, argument="self-influence") if isinstance(path, str | os.PathLike) else np.asarray(path)
    if values.dtype.kind not in "iuf":
        raise MemoxrInputError(f"self-influence: dtype {values.dtype}; expected numbers")
    if values.ndim == 2 and values.shape[0] == values.shape[1]:
        return np.array(np.diagonal(values), dtype=np.float64)
    if values.ndim != 1:
        raise MemoxrInputError(
            f"self-influence: shape {values.shape}; expected a vector (one value per sample) or a square "
            "train x train score matrix"
        )
    return np.asarray(values, dtype=np.float64)


def import_self_influence(
    path: str | os.PathLike[str] | np.ndarray,
    output: str | os.PathLike[str],
    *,
    sample_order: str,
    name: str = "self_influence",
    sample_ids: Any = None,
    truth: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> Path:
    """A self-influence vector (or a square score matrix's diagonal) into a scores store.

    Examples
    --------
    >>> import numpy as np
    >>> from memoxr.importers import open_scores
    >>> np.save("tracin.npy", np.array([0.2, 5.0, 1.0]))
    >>> store = import_self_influence("tracin.npy", "tracin.zarr", sample_order="torchvision")
    >>> ds = open_scores(store)
    >>> ds["self_influence"].values.tolist(), ds["self_influence"].attrs["direction"]
    ([0.2, 5.0, 1.0], 1)
    >>> ds["train_id"].values.tolist(), ds.attrs["sample_order"], ds.attrs["source"]
    ([0, 1, 2], 'torchvision', 'self_influence')
    """
    target = Location.of(output, storage_options)
    # Every path given (inputs, sample_ids, truth files) read with the same options as the output.
    path, sample_ids, truth = locate(path, storage_options), locate(sample_ids, storage_options), locate_each(truth, storage_options)
    check_output(target, overwrite=overwrite)
    values = read_self_influence(path)
    ds = scores_dataset(
        {name: values}, sample_order=sample_order, source="self_influence", directions={name: 1},
        descriptions={name: "self-influence (TracIn sum of lr * squared gradient norm, or TRAK score diagonal)"},
        sample_ids=sample_ids, truth=truth,
    )
    return write_scores(ds, target, overwrite=overwrite)
