"""Sample orders fixed by content: the permutation between two orderings of one data set.

TensorFlow-Datasets and torchvision ship CIFAR in different orders, and the FZ
arrays follow the first while PyTorch training logs follow the second.
:func:`align_order` finds where each sample of ``A`` sits in ``B`` from the
samples themselves: each sample's bytes are hashed (BLAKE2b, 128 bits) and equal
hashes are paired. The result is the ``mapping`` that ``--mapping`` and
:func:`memoxr.dynamics.align.align_samples` take: ``mapping[i]`` is the position
in ``B`` of ``A``'s sample ``i`` (pass ``A`` in the order of the first store
compared, ``B`` in the order of the second).

Exact duplicates (samples with identical bytes) are paired by label first, then
by order: the k-th copy in ``A`` with a given label goes to the k-th copy in
``B`` with that label; copies whose labels differ between ``A`` and ``B`` are then
paired by order. Every duplicate is reported. Two inputs that do not hold the
same samples (as a multiset) are refused, with how many samples match.

Input files
-----------
- ``.npy``: the samples, one per row of the first axis (any trailing shape), no labels;
- ``.npz``: key ``x`` the samples, optional key ``y`` one label per sample (numbers
  or strings); other keys are ignored. No pickles. For example
  ``np.savez("torchvision.npz", x=ds.data, y=np.array(ds.targets))``.

Both inputs must have the same per-sample shape and dtype: the bytes are
compared, so ``uint8`` images in ``HWC`` and ``float32`` ones in ``CHW`` never
match (convert one first).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

from ..errors import MemoxrInputError
from .storage import atomic_output

DIGEST_BYTES = 16
#: Bytes of samples hashed per dask task.
HASH_BLOCK_BYTES = 32 * 2**20
MAPPING_SUFFIXES = (".npy", ".txt", ".csv")


@dataclass
class OrderAlignment:
    """The permutation from ``A``'s order to ``B``'s, and how duplicates were paired.

    ``mapping[i]`` is the position in ``B`` of ``A``'s sample ``i``. Among the
    ``duplicate_samples`` (samples whose exact bytes occur more than once, in
    ``duplicate_groups`` groups), ``by_label`` were told apart by their label and
    ``by_order`` were paired by order (same bytes and same label, or labels that
    differ between ``A`` and ``B``). ``label_mismatches`` counts pairs whose labels
    differ between ``A`` and ``B``; ``duplicate_examples`` lists the first groups
    as positions in ``A``.

    >>> result = align_order(np.array([[1], [2], [3]]), np.array([[3], [1], [2]]))
    >>> result.mapping.tolist(), result.duplicate_samples
    ([1, 2, 0], 0)
    """

    mapping: np.ndarray
    duplicate_groups: int = 0
    duplicate_samples: int = 0
    by_label: int = 0
    by_order: int = 0
    label_mismatches: int = 0
    labelled: bool = False
    duplicate_examples: list[list[int]] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return int(self.mapping.size)

    def summary(self) -> str:
        lines = [f"{self.n_samples} samples matched by content (BLAKE2b-128 of each sample's bytes)."]
        if self.duplicate_samples:
            lines.append(
                f"{self.duplicate_samples} exact duplicates in {self.duplicate_groups} groups "
                f"(first, as positions in A: {self.duplicate_examples}): {self.by_label} told apart by label, "
                f"{self.by_order} paired by order."
            )
        else:
            lines.append("No exact duplicates.")
        if self.labelled:
            lines.append(f"{self.label_mismatches} matched samples carry different labels in A and B.")
        return "\n".join(lines)


def read_samples(path: str | os.PathLike[str], *, argument: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples and labels of an ``.npy`` (samples only) or ``.npz`` (keys ``x``, optional ``y``) file.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> np.savez(path, x=np.eye(2, dtype=np.uint8), y=np.array([3, 4]))
    >>> x, y = read_samples(path, argument="A")
    >>> x.shape, y.tolist()
    ((2, 2), [3, 4])
    """
    source = str(path)
    if not os.path.isfile(source):
        raise MemoxrInputError(f"{argument}: file {source!r} does not exist")
    if source.endswith(".npy"):
        try:
            return np.load(source, mmap_mode="r", allow_pickle=False), None
        except ValueError as exc:
            raise MemoxrInputError(f"{argument}: file {source!r}: expected a numeric .npy array ({exc})") from exc
    if source.endswith(".npz"):
        from .npz import load_npz_arrays

        arrays, headers = load_npz_arrays(source, ["x", "y"], what=argument, expected="a numeric array")
        if "x" not in headers:
            raise MemoxrInputError(
                f"{argument}: file {source!r}: key 'x' (the samples) missing; expected keys 'x' and "
                f"optionally 'y' (labels), received {sorted(headers)[:10]}"
            )
        samples = arrays["x"]
        assert samples is not None  # present: checked just above
        return samples, arrays.get("y")
    raise MemoxrInputError(f"{argument}: file {source!r}; expected .npy (samples) or .npz (keys x, y)")


def _hash_rows(block: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(block).reshape(block.shape[0], -1)
    digests = b"".join(hashlib.blake2b(row, digest_size=DIGEST_BYTES).digest() for row in rows)  # type: ignore[arg-type]
    return np.frombuffer(digests, dtype=f"V{DIGEST_BYTES}")


def content_digests(samples: np.ndarray) -> da.Array:
    """BLAKE2b-128 digest of each sample's bytes (dtype ``V16``), lazily, in blocks of rows.

    >>> from memoxr.compute.progress import compute
    >>> (digests,) = compute(content_digests(np.array([[1, 2], [3, 4], [1, 2]], dtype=np.uint8)))
    >>> digests.dtype.itemsize, bool(digests[0] == digests[2]), bool(digests[0] == digests[1])
    (16, True, False)
    """
    row_bytes = max(1, int(np.prod(samples.shape[1:], dtype=np.int64)) * samples.dtype.itemsize)
    rows = max(1, HASH_BLOCK_BYTES // row_bytes)
    x = da.from_array(samples, chunks=(rows, *samples.shape[1:]))
    return x.map_blocks(
        _hash_rows, drop_axis=list(range(1, samples.ndim)), dtype=f"V{DIGEST_BYTES}", token="memoxr-hash-samples"
    )


def _check_pair(a: np.ndarray, b: np.ndarray, la: Any, lb: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    for name, x in (("A", a), ("B", b)):
        if x.ndim < 1 or x.shape[0] == 0:
            raise MemoxrInputError(f"{name}: shape {x.shape}; expected at least one sample along the first axis")
        if x.dtype.hasobject:
            raise MemoxrInputError(f"{name}: dtype object; expected numeric samples")
    if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
        raise MemoxrInputError(
            f"samples of A are {a.shape[1:]} {a.dtype}, samples of B {b.shape[1:]} {b.dtype}; expected the same "
            "shape and dtype (the bytes are compared): convert one to the other's layout first"
        )
    if (la is None) != (lb is None):
        given = "A" if la is not None else "B"
        raise MemoxrInputError(f"labels given for {given} only; expected labels for both A and B, or for neither")
    if la is None:
        return None, None
    labels = []
    for name, x, y in (("A", a, la), ("B", b, lb)):
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or y.dtype.hasobject:
            raise MemoxrInputError(
                f"labels of {name}: shape {y.shape}, dtype {y.dtype}; expected one number or string per "
                f"sample, shape ({x.shape[0]},)"
            )
        labels.append(y)
    return labels[0], labels[1]


def align_order(
    a: np.ndarray | str | os.PathLike[str],
    b: np.ndarray | str | os.PathLike[str],
    *,
    labels_a: Any = None,
    labels_b: Any = None,
    show_progress: bool | None = None,
) -> OrderAlignment:
    """The permutation from ``A``'s sample order to ``B``'s, derived from the samples' content.

    Parameters
    ----------
    a, b : array or path
        Samples along the first axis (any trailing shape, the same in both), or
        ``.npy`` / ``.npz`` files (see the module docstring; an ``.npz`` may carry
        labels as key ``y``).
    labels_a, labels_b : array, optional
        One label per sample, used to pair exact duplicates (overrides ``y``).
    show_progress : bool, optional
        Deprecated: use ``with memoxr.progress():``.

    Returns
    -------
    OrderAlignment
        ``mapping[i]`` = position in ``B`` of ``A``'s sample ``i``, and the
        duplicate report.

    Raises
    ------
    MemoxrInputError
        If ``A`` and ``B`` do not hold the same samples; the message says how
        many match.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.uint8)
    >>> align_order(a, a[[2, 0, 1]]).mapping.tolist()
    [1, 2, 0]
    """
    if isinstance(a, str | os.PathLike):
        a, ya = read_samples(a, argument="A")
        labels_a = ya if labels_a is None else labels_a
    if isinstance(b, str | os.PathLike):
        b, yb = read_samples(b, argument="B")
        labels_b = yb if labels_b is None else labels_b
    a, b = np.asanyarray(a), np.asanyarray(b)
    la, lb = _check_pair(a, b, labels_a, labels_b)
    from ..compute.progress import compute, deprecated_show_progress

    with deprecated_show_progress(show_progress, "align_order"):
        digests_a, digests_b = compute(content_digests(a), content_digests(b))
    content = np.unique(np.concatenate([digests_a, digests_b]), return_inverse=True)[1].reshape(-1)
    ca, cb = content[: a.shape[0]], content[a.shape[0] :]
    _check_same_samples(ca, cb)
    if la is None:
        codes_a = codes_b = np.zeros(ca.size, dtype=np.int64)
    else:
        codes = np.unique(np.concatenate([la, lb]), return_inverse=True)[1].reshape(-1)
        codes_a, codes_b = codes[: ca.size], codes[ca.size :]
    return _pair(ca, cb, codes_a, codes_b, labelled=la is not None)


def _check_same_samples(ca: np.ndarray, cb: np.ndarray) -> None:
    n = int(max(ca.max(), cb.max())) + 1
    count_a, count_b = np.bincount(ca, minlength=n), np.bincount(cb, minlength=n)
    if ca.size == cb.size and np.array_equal(count_a, count_b):
        return
    matched = int(np.minimum(count_a, count_b).sum())
    only_a = np.flatnonzero(_excess(ca, count_b))[:5].tolist()
    only_b = np.flatnonzero(_excess(cb, count_a))[:5].tolist()
    raise MemoxrInputError(
        f"A and B hold different samples: {matched} of A's {ca.size} samples match one of B's {cb.size} "
        f"(by content); {ca.size - matched} of A have no match (first positions {only_a}) and {cb.size - matched} "
        f"of B (first positions {only_b}); expected the same samples in two orders"
    )


def _excess(ids: np.ndarray, other_counts: np.ndarray) -> np.ndarray:
    """Which entries of ``ids`` have no partner: copies beyond the other side's count, in order."""
    return _rank_within(ids, np.arange(ids.size)) >= other_counts[ids]


def _rank_within(group: np.ndarray, position: np.ndarray) -> np.ndarray:
    """0-based rank of each entry among the entries of its group, by ``position``."""
    order = np.lexsort((position, group))
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    ranks = np.empty(group.size, dtype=np.int64)
    ranks[order] = np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))
    return ranks


def _join(keys_a: list[np.ndarray], keys_b: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``a`` and ``b`` of the rows whose key tuples are equal (keys unique per side)."""
    dtype = np.dtype([(f"k{n}", np.int64) for n in range(len(keys_a))])
    rows_a, rows_b = np.empty(keys_a[0].size, dtype), np.empty(keys_b[0].size, dtype)
    for n, (ka, kb) in enumerate(zip(keys_a, keys_b, strict=True)):
        rows_a[f"k{n}"], rows_b[f"k{n}"] = ka, kb
    _, where_a, where_b = np.intersect1d(rows_a, rows_b, assume_unique=True, return_indices=True)
    return where_a, where_b


def _pair(ca: np.ndarray, cb: np.ndarray, la: np.ndarray, lb: np.ndarray, *, labelled: bool) -> OrderAlignment:
    n = ca.size
    mapping = np.full(n, -1, dtype=np.int64)
    # 1. Same content and same label: the k-th copy in A goes to the k-th in B.
    group_a = np.unique(np.stack([ca, la], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    rank_a = _rank_within(group_a, np.arange(n))
    rank_b = _rank_within(np.unique(np.stack([cb, lb], axis=1), axis=0, return_inverse=True)[1].reshape(-1), np.arange(n))
    where_a, where_b = _join([ca, la, rank_a], [cb, lb, rank_b])
    mapping[where_a] = where_b
    # 2. Copies whose labels differ between A and B: by order within their content.
    left_a, left_b = np.flatnonzero(mapping < 0), np.setdiff1d(np.arange(n), where_b)
    if left_a.size:
        wa, wb = _join([ca[left_a], _rank_within(ca[left_a], left_a)], [cb[left_b], _rank_within(cb[left_b], left_b)])
        mapping[left_a[wa]] = left_b[wb]
    if (mapping < 0).any() or np.unique(mapping).size != n:  # cannot happen once the counts agree
        raise AssertionError("content pairing is not a permutation")

    content_size = np.bincount(ca)[ca]
    label_group_size = np.bincount(group_a)[group_a]
    duplicate = content_size > 1
    same_label = la == lb[mapping]
    first = np.unique(ca[duplicate], return_index=True)[1]
    examples = [np.flatnonzero(ca == ca[duplicate][i]).tolist() for i in np.sort(first)[:3]]
    return OrderAlignment(
        mapping=mapping,
        duplicate_groups=int(np.unique(ca[duplicate]).size),
        duplicate_samples=int(duplicate.sum()),
        by_label=int((duplicate & same_label & (label_group_size == 1)).sum()) if labelled else 0,
        by_order=int((duplicate & ~(same_label & (label_group_size == 1))).sum()) if labelled else int(duplicate.sum()),
        label_mismatches=int((~same_label).sum()),
        labelled=labelled,
        duplicate_examples=examples,
    )


def write_mapping(mapping: np.ndarray, output: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Save a mapping where ``--mapping`` reads it: ``.npy``, or one integer per line (``.txt``/``.csv``).

    >>> import tempfile
    >>> path = write_mapping(np.array([2, 0, 1]), os.path.join(tempfile.mkdtemp(), "m.txt"))
    >>> open(path).read().split()
    ['2', '0', '1']
    """
    check_mapping_output(output)
    with atomic_output(output, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fp:  # a file object: numpy adds no suffix to the partial's name
            if str(output).endswith(".npy"):
                np.save(fp, np.asarray(mapping, dtype=np.int64))
            else:
                np.savetxt(fp, mapping, fmt="%d")
    return str(output)


def check_mapping_output(output: Any) -> None:
    """A mapping output name (``.npy``, ``.txt`` or ``.csv``), or an error naming it.

    >>> check_mapping_output("m.npy")
    """
    if not str(output).endswith(MAPPING_SUFFIXES):
        raise MemoxrInputError(f"output {str(output)!r}: expected a file name ending in {', '.join(MAPPING_SUFFIXES)}")
