"""Small input files that the docstring examples share, written in one place.

:func:`epoch_loss_files` writes per-epoch loss files as a training loop saves
them (read by :mod:`memoxr.dynamics.ingest`); :func:`cartography_logs` writes
the per-epoch logs of the dataset-cartography code (read by
:mod:`memoxr.importers.cartography`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

#: The pattern of :func:`epoch_loss_files`' names, relative to its folder.
EPOCH_LOSS_PATTERN = "loss_run{run}_epoch_{epoch}.npy"


def epoch_loss_files(folder: str | os.PathLike[str] | None = None) -> str:
    """Write 2 runs x 3 epochs of ``loss_run{run}_epoch_{epoch}.npy`` into ``folder``; return their pattern.

    Each file holds 5 samples, all ``run + epoch / 10``. Without ``folder``, a new temporary one.

    Examples
    --------
    >>> pattern = epoch_loss_files()
    >>> sorted(p.name for p in Path(pattern).parent.iterdir())[:2], np.load(pattern.format(run=2, epoch=1)).tolist()
    (['loss_run1_epoch_0.npy', 'loss_run1_epoch_1.npy'], [2.1, 2.1, 2.1, 2.1, 2.1])
    """
    folder = tempfile.mkdtemp() if folder is None else folder
    for run in (1, 2):
        for epoch in range(3):
            np.save(Path(folder) / EPOCH_LOSS_PATTERN.format(run=run, epoch=epoch), np.full(5, run + epoch / 10))
    return str(Path(folder) / EPOCH_LOSS_PATTERN)


#: Logits of :func:`cartography_logs`: epoch -> guid -> logits (gold labels 0, 1, 0 by guid).
CARTOGRAPHY_LOGITS = [{2: [0, 2], 0: [2, 0], 1: [0, 1]}, {1: [1, 0], 2: [0, 1], 0: [3, 0]}]


def cartography_logs(folder: str | os.PathLike[str] | None = None) -> Path:
    """Write ``training_dynamics/dynamics_epoch_{e}.jsonl`` (2 epochs, 3 samples) below ``folder``; return that folder.

    One JSON record per sample and epoch, in the layout of the cartography code:
    ``guid``, ``logits_epoch_{e}`` (:data:`CARTOGRAPHY_LOGITS`) and ``gold``.
    Without ``folder``, a new temporary one.

    Examples
    --------
    >>> logs = cartography_logs()
    >>> logs.name, (logs / "dynamics_epoch_1.jsonl").read_text().splitlines()[0]
    ('training_dynamics', '{"guid": 1, "logits_epoch_1": [1, 0], "gold": 1}')
    """
    logs = Path(tempfile.mkdtemp() if folder is None else folder, "training_dynamics")
    logs.mkdir(parents=True, exist_ok=True)
    for epoch, by_guid in enumerate(CARTOGRAPHY_LOGITS):
        records = [{"guid": g, f"logits_epoch_{epoch}": z, "gold": [0, 1, 0][g]} for g, z in by_guid.items()]
        (logs / f"dynamics_epoch_{epoch}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return logs


def tiny_trials() -> dict[str, np.ndarray]:
    """Trial records of 4 trials, 2 train samples and 1 test sample of one class (the estimator's smallest input).

    ``mask[t, i]``: train sample ``i`` in trial ``t``'s subset; each trial gets
    right exactly the samples it trained on, and the test sample when train
    sample 0 was in (so its influence on the test sample is 1).

    Examples
    --------
    >>> records = tiny_trials()
    >>> records["mask"].tolist(), records["test_correct"][:, 0].tolist()
    ([[1, 0], [0, 1], [1, 1], [0, 0]], [1, 0, 1, 0])
    """
    mask = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    return {"mask": mask, "train_correct": mask, "test_correct": mask[:, :1],
            "tr_labels": np.array([0, 0]), "tt_labels": np.array([0])}
