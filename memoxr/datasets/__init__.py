"""Real samples that memoxr can rebuild from scratch (scikit-learn models on small datasets).

:mod:`memoxr.datasets.digits` trains many small models on random subsets of
scikit-learn's digits and estimates their memorization and influence; its
output ships as ``memoxr/data/digits_infl_matrix.npz``.
"""

from __future__ import annotations
