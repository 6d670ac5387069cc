"""Dataset cartography's per-epoch training-dynamics logs (allenai/cartography).

``cartography.selection.selection_utils.log_training_dynamics``
(https://github.com/allenai/cartography) writes, after every epoch ``e``, the file
``training_dynamics/dynamics_epoch_{e}.jsonl``: one JSON record per training
sample, ``{"guid": ..., "logits_epoch_{e}": [...], "gold": ...}``
(``DataFrame.to_json(lines=True, orient="records")``). Its reader
(``read_training_dynamics``) opens the same names with a ``.json`` suffix; both
are accepted. ``guid`` must be an integer (a sample's row in its order); the
records of an epoch may come in any order.

:func:`cartography_scores` computes the data-map coordinates the way
``cartography.selection.train_dy_filtering.compute_train_dy_metrics`` does
(Swayamdipta et al., EMNLP 2020), from the softmax of the logits:
``confidence`` (mean gold probability, direction -1), ``variability`` (its
population std, +1), ``correctness`` (epochs predicted right, -1),
``forgetfulness`` (forgetting events; 1000 for a sample never predicted right,
as cartography does, +1) and ``threshold_closeness`` (``c * (1 - c)``, +1).
With ``dynamics=True`` the per-epoch ``loss``, ``correct`` and ``true_prob``
are written instead, as a dynamics store from which memoxr computes CSL and
the other proxies.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import xarray as xr

from .._version import __version__
from ..dynamics.schema import DYNAMICS_SCHEMA, EPOCH, SAMPLE, label_variables
from ..errors import MemoxrInputError
from ..io.location import Location, PathLike, StorageOptions, locate_each
from ..io.schema import SCHEMA_VERSION
from ._store import check_output, integer_ids, scores_dataset, truth_arrays, write_scores

_FILE = re.compile(r"dynamics_epoch_(\d+)\.jsonl?$")
NEVER_LEARNT = 1000  # cartography's forgetfulness of a sample never predicted right
DIRECTIONS = {"confidence": -1, "variability": 1, "correctness": -1, "forgetfulness": 1, "threshold_closeness": 1}


@dataclass
class CartographyLogs:
    """Per-epoch records of every sample, sorted by identity.

    Examples
    --------
    >>> import numpy as np
    >>> true_prob = np.array([[0.8, 0.6, 0.2], [1.0, 0.4, 0.4]])  # (epoch, train_id)
    >>> logs = CartographyLogs(np.arange(3), np.zeros(3, dtype=np.int64), true_prob, -np.log(true_prob), true_prob > 0.5)
    >>> logs.correct.sum(axis=0).tolist()  # epochs each sample was predicted right
    [2, 1, 0]
    """

    ids: np.ndarray  # (train_id,) int64
    gold: np.ndarray  # (train_id,) int64
    true_prob: np.ndarray  # (epoch, train_id) softmax probability of the gold label
    loss: np.ndarray  # (epoch, train_id) cross-entropy of the gold label
    correct: np.ndarray  # (epoch, train_id) argmax of the logits == gold


def _epoch_files(location: Location) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    path = location.path
    fs, root = location.fs, location.fs_path
    if not fs.isdir(root):
        raise MemoxrInputError(f"cartography logs: folder {path!r} does not exist")
    if fs.isdir(f"{root}/training_dynamics"):
        root = f"{root}/training_dynamics"
    found: dict[int, str] = {}
    for name in fs.ls(root, detail=False):
        m = _FILE.search(str(name))
        if m:
            epoch = int(m.group(1))
            if epoch in found:
                raise MemoxrInputError(f"cartography logs: epoch {epoch} twice ({found[epoch]!r}, {name!r}); expected one file")
            found[epoch] = str(name)
    if not found:
        raise MemoxrInputError(f"cartography logs: no dynamics_epoch_{{e}}.jsonl in {path!r}")
    epochs = sorted(found)
    if epochs != list(range(len(epochs))):
        missing = sorted(set(range(epochs[-1] + 1)) - set(epochs))
        raise MemoxrInputError(f"cartography logs: epochs {missing[:10]} missing; expected dynamics_epoch_0..{epochs[-1]}")
    return fs, [found[e] for e in epochs]


def _read_epoch(fs: fsspec.AbstractFileSystem, path: str, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = f"logits_epoch_{epoch}"
    guids, golds, logits = [], [], []
    with fs.open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MemoxrInputError(f"cartography log {path!r} line {line_no}: not UTF-8 text ({exc})") from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                guids.append(record["guid"])
                golds.append(record["gold"])
                logits.append(record[key])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise MemoxrInputError(
                    f"cartography log {path!r} line {line_no}: expected a JSON record with 'guid', 'gold' and "
                    f"{key!r}; {type(exc).__name__}: {exc}"
                ) from exc
    try:
        values = np.asarray(logits, dtype=np.float64)
    except ValueError as exc:
        raise MemoxrInputError(f"cartography log {path!r}: logits of different lengths; expected one per class") from exc
    if values.ndim != 2:
        raise MemoxrInputError(f"cartography log {path!r}: {key!r} of shape {values.shape[1:]}; expected a list of logits")
    ids = integer_ids(guids, argument=f"'guid' of {path!r}")
    gold = np.asarray(golds)
    if gold.dtype.kind not in "iu" or gold.min() < 0 or gold.max() >= values.shape[1]:
        raise MemoxrInputError(f"cartography log {path!r}: 'gold' must be class indices 0..{values.shape[1] - 1}")
    order = np.argsort(ids)
    return ids[order], gold[order].astype(np.int64), values[order]


def read_cartography(path: PathLike | Location, *, storage_options: StorageOptions = None) -> CartographyLogs:
    """Read every ``dynamics_epoch_{e}.jsonl`` of a folder (or of its ``training_dynamics/``), one epoch at a time.

    Examples
    --------
    >>> from memoxr.datasets.examples import cartography_logs
    >>> folder = cartography_logs()  # training_dynamics/dynamics_epoch_{0,1}.jsonl, 3 samples
    >>> logs = read_cartography(folder.parent)
    >>> logs.ids.tolist(), logs.gold.tolist(), logs.correct.tolist()
    ([0, 1, 2], [0, 1, 0], [[True, True, False], [True, False, False]])
    >>> logs.true_prob.round(3).tolist()  # softmax probability of the gold label
    [[0.881, 0.731, 0.119], [0.953, 0.269, 0.269]]
    """
    fs, files = _epoch_files(Location.of(path, storage_options))
    ids: np.ndarray | None = None
    gold: np.ndarray | None = None
    probs, losses, corrects = [], [], []
    for epoch, file in enumerate(files):
        e_ids, e_gold, logits = _read_epoch(fs, file, epoch)
        if ids is None or gold is None:
            ids, gold = e_ids, e_gold
        elif not np.array_equal(e_ids, ids):
            raise MemoxrInputError(
                f"cartography log {file!r}: {e_ids.size} guids differ from epoch 0's {ids.size}; expected the same samples every epoch"
            )
        elif not np.array_equal(e_gold, gold):
            raise MemoxrInputError(f"cartography log {file!r}: 'gold' labels differ from epoch 0's; expected fixed labels")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        log_p = shifted[np.arange(gold.size), gold] - log_norm
        probs.append(np.exp(log_p))
        losses.append(-log_p)
        corrects.append(np.argmax(logits, axis=1) == gold)
    assert ids is not None and gold is not None
    return CartographyLogs(ids, gold, np.stack(probs), np.stack(losses), np.stack(corrects))


def _forgetfulness(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per sample (a right prediction followed by a wrong one); 1000 if never right."""
    events = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.float64)
    return np.where(correct.any(axis=0), events, float(NEVER_LEARNT))


def cartography_scores(logs: CartographyLogs) -> dict[str, np.ndarray]:
    """Confidence, variability, correctness, forgetfulness and threshold closeness per sample.

    Examples
    --------
    >>> import numpy as np
    >>> true_prob = np.array([[0.8, 0.6, 0.2], [1.0, 0.4, 0.4]])  # (epoch, train_id)
    >>> logs = CartographyLogs(np.arange(3), np.zeros(3, dtype=np.int64), true_prob, -np.log(true_prob), true_prob > 0.5)
    >>> for metric, values in cartography_scores(logs).items():
    ...     print(metric, values.round(3).tolist())
    confidence [0.9, 0.5, 0.3]
    variability [0.1, 0.1, 0.1]
    correctness [2.0, 1.0, 0.0]
    forgetfulness [0.0, 1.0, 1000.0]
    threshold_closeness [0.09, 0.25, 0.21]
    """
    confidence = logs.true_prob.mean(axis=0)
    return {
        "confidence": confidence,
        "variability": logs.true_prob.std(axis=0),
        "correctness": logs.correct.sum(axis=0).astype(np.float64),
        "forgetfulness": _forgetfulness(logs.correct),
        "threshold_closeness": confidence * (1 - confidence),
    }


def import_cartography(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    sample_order: str,
    dynamics: bool = False,
    truth: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> Path:
    """Cartography logs into a scores store (``cartography_<metric>``) or, with ``dynamics``, a dynamics store.

    ``truth`` arrays (e.g. ``is_mislabeled``) follow the identities sorted (the ``guid`` values).

    Examples
    --------
    >>> from memoxr.datasets.examples import cartography_logs
    >>> folder = cartography_logs()  # training_dynamics/dynamics_epoch_{0,1}.jsonl, 3 samples
    >>> from memoxr.importers import open_scores
    >>> ds = open_scores(import_cartography(folder, "carto.zarr", sample_order="glue"))
    >>> ds["cartography_forgetfulness"].values.tolist(), ds["cartography_confidence"].attrs["direction"]
    ([0.0, 1.0, 1000.0], -1)
    >>> dyn = open_scores(import_cartography(folder, "carto_dynamics.zarr", sample_order="glue", dynamics=True))
    >>> dict(dyn["loss"].sizes), dyn["correct"].values.sum(axis=1).tolist()
    ({'epoch': 2, 'train_id': 3}, [2, 1])
    """
    target, truth = Location.of(output, storage_options), locate_each(truth, storage_options)  # truth files too
    check_output(target, overwrite=overwrite)
    logs = read_cartography(Location.of(path, storage_options))
    if not dynamics:
        scores = {f"cartography_{k}": v for k, v in cartography_scores(logs).items()}
        ds = scores_dataset(
            scores, sample_order=sample_order, source="cartography",
            directions={f"cartography_{k}": d for k, d in DIRECTIONS.items()},
            descriptions={f"cartography_{k}": f"dataset cartography's {k} over {logs.loss.shape[0]} epochs" for k in DIRECTIONS},
            sample_ids=logs.ids, truth=truth,
        )
    else:
        per_epoch = (EPOCH, SAMPLE)
        ds = label_variables(xr.Dataset(
            {"loss": (per_epoch, logs.loss.astype(np.float32)), "correct": (per_epoch, logs.correct),
             "true_prob": (per_epoch, logs.true_prob.astype(np.float32)),
             **{k: ((SAMPLE,), v) for k, v in truth_arrays(truth, logs.ids.size).items()}},
            coords={EPOCH: np.arange(logs.loss.shape[0], dtype=np.int64), SAMPLE: logs.ids},
            attrs={"schema": DYNAMICS_SCHEMA, "schema_version": SCHEMA_VERSION, "sample_order": sample_order,
                   "source": "cartography", "memoxr_version": __version__},
        ))
    return write_scores(ds, target, overwrite=overwrite)
