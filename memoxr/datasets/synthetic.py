"""Synthetic data in the Feldman–Zhang npz layout, for tests and benchmarks.

Samples are shuffled across classes (as in a real split), classes may be ragged,
and influence rows mix a small negative/positive spread with a few strong
positive entries, like the released estimates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def make_fz_arrays(
    train_per_class: Sequence[int],
    test_per_class: Sequence[int],
    *,
    seed: int = 0,
    dtype: np.dtype | type = np.float32,
) -> dict[str, np.ndarray]:
    """Arrays of an FZ influence npz with the given class sizes.

    Examples
    --------
    >>> arrays = make_fz_arrays([3, 2], [2, 1])
    >>> sorted(arrays)  # doctest: +NORMALIZE_WHITESPACE
    ['infl_matrix_class0', 'infl_matrix_class1', 'tr_classidx_0', 'tr_classidx_1', 'tr_labels', 'tr_mem',
     'tt_classidx_0', 'tt_classidx_1', 'tt_labels']
    >>> arrays["infl_matrix_class0"].shape, arrays["tr_labels"].tolist().count(1)
    ((3, 2), 2)
    """
    if len(train_per_class) != len(test_per_class):
        raise ValueError("train_per_class and test_per_class must have the same length")
    rng = np.random.default_rng(seed)
    n_train = int(sum(train_per_class))
    tr_labels = rng.permutation(np.repeat(np.arange(len(train_per_class)), train_per_class))
    tt_labels = rng.permutation(np.repeat(np.arange(len(test_per_class)), test_per_class))
    arrays: dict[str, np.ndarray] = {
        "tr_mem": np.clip(rng.beta(0.6, 1.8, size=n_train), 0, 1),
        "tr_labels": tr_labels.astype(np.int64),
        "tt_labels": tt_labels.astype(np.int64),
    }
    for k, (n_tr, n_tt) in enumerate(zip(train_per_class, test_per_class, strict=True)):
        arrays[f"tr_classidx_{k}"] = np.flatnonzero(tr_labels == k)
        arrays[f"tt_classidx_{k}"] = np.flatnonzero(tt_labels == k)
        spread = rng.normal(0.0, 0.01, size=(n_tr, n_tt))
        strong = rng.random((n_tr, n_tt)) < 0.02
        matrix = spread + strong * rng.uniform(0.05, 0.6, size=(n_tr, n_tt))
        arrays[f"infl_matrix_class{k}"] = matrix.astype(dtype)
    return arrays


def make_fz_npz(
    path: str | os.PathLike[str],
    train_per_class: Sequence[int],
    test_per_class: Sequence[int],
    *,
    seed: int = 0,
    compressed: bool = False,
) -> str:
    """Write a synthetic FZ influence npz and return its path.

    Examples
    --------
    >>> import tempfile, memoxr
    >>> path = make_fz_npz(f"{tempfile.mkdtemp()}/fz.npz", [30, 20], [10, 5])
    >>> memoxr.open_influence(path).sizes  # doctest: +ELLIPSIS
    Frozen({'class': 2, 'train_sample': 30, 'test_sample': 10...})
    """
    # Any: numpy types **kwargs of savez as if they could fill its allow_pickle flag.
    arrays: dict[str, Any] = make_fz_arrays(train_per_class, test_per_class, seed=seed)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return str(path)
