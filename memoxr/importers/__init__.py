"""Importers: other tools' per-sample scores as scores stores keyed by sample identity.

Each importer writes a scores store (a dynamics store without ``epoch``; see
:func:`scores_dataset`) that ``memoxr evaluate`` and ``memoxr compare`` read
beside FZ memorization and the training-dynamics proxies:

- :func:`import_plain`: an ``.npy`` / ``.npz`` / ``.txt`` / ``.csv`` of per-sample values;
- :func:`import_cleanlab`: cleanlab's label-quality scores from ``pred_probs`` and labels
  (cleanlab optional: without it, self-confidence computed here);
- :func:`import_aum`: AUM's ``aum_values.csv`` / ``full_aum_records.csv``;
- :func:`import_cartography`: dataset cartography's ``dynamics_epoch_{e}.jsonl`` logs;
- :func:`import_self_influence`: a TRAK/TracIn-style self-influence vector.

On the command line: ``memoxr import-scores {plain,cleanlab,aum,cartography,self-influence}``.
"""

from __future__ import annotations

from ._store import SCORES_CONTENT, open_scores, scores_dataset, write_scores
from .aum import import_aum, read_aum
from .cartography import cartography_scores, import_cartography, read_cartography
from .cleanlab_scores import import_cleanlab, label_quality, label_quality_dataset
from .plain import import_plain, read_table
from .self_influence import import_self_influence, read_self_influence

__all__ = [
    "SCORES_CONTENT",
    "cartography_scores",
    "import_aum",
    "import_cartography",
    "import_cleanlab",
    "import_plain",
    "import_self_influence",
    "label_quality",
    "label_quality_dataset",
    "open_scores",
    "read_aum",
    "read_cartography",
    "read_self_influence",
    "read_table",
    "scores_dataset",
    "write_scores",
]
