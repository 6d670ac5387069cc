"""cleanlab's label-quality scores from out-of-sample ``pred_probs`` and the given labels.

cleanlab (https://github.com/cleanlab/cleanlab, ``cleanlab.rank.get_label_quality_scores``)
scores each sample's given label from out-of-sample predicted probabilities
(e.g. ``sklearn.model_selection.cross_val_predict(..., method="predict_proba")``):
``self_confidence`` is the probability of the given label, ``normalized_margin``
``(p[label] - max_{k != label} p[k] + 1) / 2`` and ``confidence_weighted_entropy``
``self_confidence / normalized entropy``. A low score means a likely label
error, so every score is stored with direction ``-1``.

cleanlab is optional: without it only ``self_confidence`` is stored, computed
here as ``pred_probs[i, labels[i]]`` (cleanlab's own definition).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..dynamics.files import load_array
from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions, locate, locate_each
from ._store import check_output, scores_dataset, write_scores

METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def _validate(pred_probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise MemoxrInputError(f"pred_probs: shape {probs.shape}; expected (samples, classes) with >= 2 classes")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise MemoxrInputError("pred_probs: values outside [0, 1]; expected predicted probabilities")
    sums = probs.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = int(np.argmax(np.abs(sums - 1)))
        raise MemoxrInputError(f"pred_probs: row {worst} sums to {sums[worst]:.4f}; expected each row to sum to 1")
    raw = np.asarray(labels)
    if raw.shape != (probs.shape[0],):
        raise MemoxrInputError(f"labels: shape {raw.shape}; expected ({probs.shape[0]},), one per row of pred_probs")
    if raw.dtype.kind == "f" and np.all(raw == np.round(raw)):
        raw = raw.astype(np.int64)
    expected = f"labels: expected integers 0..{probs.shape[1] - 1} (columns of pred_probs)"
    if raw.dtype.kind not in "iu":  # strings, bools, fractions: no range to report
        raise MemoxrInputError(f"{expected}; received dtype {raw.dtype}")
    if raw.size and (raw.min() < 0 or raw.max() >= probs.shape[1]):
        raise MemoxrInputError(f"{expected}; received {raw.dtype} in [{raw.min()}, {raw.max()}]")
    return probs, raw.astype(np.int64)


def label_quality(
    pred_probs: Any, labels: Any, *, methods: Sequence[str] | None = None, use_cleanlab: bool | None = None
) -> dict[str, np.ndarray]:
    """Label-quality scores per sample (low = likely mislabeled), keyed by method.

    ``methods`` default to all of :data:`METHODS` with cleanlab, ``self_confidence``
    without. ``use_cleanlab=None`` uses cleanlab when it is installed; ``True``
    requires it; ``False`` computes ``self_confidence`` without it.

    Example
    -------
    >>> label_quality([[0.9, 0.1], [0.3, 0.7]], [0, 0], use_cleanlab=False)["self_confidence"].tolist()
    [0.9, 0.3]
    """
    return _label_quality(pred_probs, labels, methods=methods, use_cleanlab=use_cleanlab)[0]


def _label_quality(
    pred_probs: Any, labels: Any, *, methods: Sequence[str] | None, use_cleanlab: bool | None
) -> tuple[dict[str, np.ndarray], str]:
    """The scores and what computed them (``"cleanlab X.Y"`` or ``"memoxr"``)."""
    probs, y = _validate(pred_probs, labels)
    rank: Any = None
    if use_cleanlab is not False:
        try:
            import cleanlab.rank

            rank = cleanlab.rank
        except ImportError as exc:
            if use_cleanlab:
                raise MemoxrInputError("cleanlab is not installed; pip install cleanlab (or use_cleanlab=False)") from exc
    chosen = list(methods) if methods else (list(METHODS) if rank is not None else ["self_confidence"])
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise MemoxrInputError(f"methods {unknown}: expected among {list(METHODS)}")
    if rank is None:
        if chosen != ["self_confidence"]:
            raise MemoxrInputError(f"methods {chosen}: without cleanlab only 'self_confidence'; pip install cleanlab")
        return {"self_confidence": probs[np.arange(y.size), y]}, "memoxr"
    from importlib.metadata import version

    scores = {m: np.asarray(rank.get_label_quality_scores(y, probs, method=m), dtype=np.float64) for m in chosen}
    return scores, f"cleanlab {version('cleanlab')}"


def _load(value: Any, argument: str) -> np.ndarray:
    return load_array(value, argument=argument) if isinstance(value, str | os.PathLike) else np.asarray(value)


def label_quality_dataset(
    pred_probs: Any, labels: Any, *, sample_order: str, sample_ids: Any = None,
    truth: Mapping[str, Any] | None = None, methods: Sequence[str] | None = None, use_cleanlab: bool | None = None,
) -> xr.Dataset:
    """The scores Dataset of :func:`label_quality` (in memory; :func:`import_cleanlab` writes it).

    Examples
    --------
    >>> ds = label_quality_dataset([[0.9, 0.1], [0.3, 0.7]], [0, 0], sample_order="tfds", use_cleanlab=False)
    >>> list(ds.data_vars), ds["cleanlab_self_confidence"].values.round(2).tolist()
    (['cleanlab_self_confidence'], [0.9, 0.3])
    """
    scores, used = _label_quality(_load(pred_probs, "pred_probs"), _load(labels, "labels"), methods=methods,
                                  use_cleanlab=use_cleanlab)
    return scores_dataset(
        {f"cleanlab_{k}": v for k, v in scores.items()}, sample_order=sample_order, source="cleanlab",
        directions={f"cleanlab_{k}": -1 for k in scores},
        descriptions={f"cleanlab_{k}": f"cleanlab label quality, method {k!r} (computed by {used})" for k in scores},
        sample_ids=sample_ids, truth=truth, attrs={"computed_by": used},
    )


def import_cleanlab(
    pred_probs: Any,
    labels: Any,
    output: str | os.PathLike[str],
    *,
    sample_order: str,
    sample_ids: Any = None,
    truth: Mapping[str, Any] | None = None,
    methods: Sequence[str] | None = None,
    use_cleanlab: bool | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> Path:
    """cleanlab's label-quality scores into a scores store (variables ``cleanlab_<method>``).

    Parameters
    ----------
    pred_probs : array or path
        Out-of-sample predicted probabilities, shape ``(samples, classes)``.
    labels : array or path
        The given (possibly noisy) label of each sample.
    sample_order : str
        Name of the order the rows follow.

    Examples
    --------
    >>> import tempfile
    >>> from memoxr.importers import open_scores
    >>> path = import_cleanlab([[0.9, 0.1], [0.3, 0.7]], [0, 0], f"{tempfile.mkdtemp()}/cleanlab.zarr",
    ...                        sample_order="tfds", use_cleanlab=False)
    >>> open_scores(path)["cleanlab_self_confidence"].values.round(2).tolist()
    [0.9, 0.3]
    """
    target = Location.of(output, storage_options)
    # Every path given (inputs, sample_ids, truth files) read with the same options as the output.
    pred_probs, labels, sample_ids = (locate(v, storage_options) for v in (pred_probs, labels, sample_ids))
    truth = locate_each(truth, storage_options)
    check_output(target, overwrite=overwrite)
    ds = label_quality_dataset(pred_probs, labels, sample_order=sample_order, sample_ids=sample_ids, truth=truth,
                               methods=methods, use_cleanlab=use_cleanlab)
    return write_scores(ds, target, overwrite=overwrite)
