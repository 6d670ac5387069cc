"""Benchmark (in-process, one thread): the rank agreement's rankings, against scipy, a numpy sort and a read.

Run ``python -m memoxr.benchmarks.ranks --sizes imagenet cifar --repeat 7``.

Per size, an FZ npz is written and converted (``memoxr.convert.convert_npz``) and its five methods'
scores computed (``memoxr.influence_scores``), each kept where its sample is real and its score not
NaN, as ``memoxr.rank_agreement`` keeps them. Then ``--repeat`` interleaved rounds (each starting from
a different variant), each variant ranking all five methods:

1. memoxr: ``memoxr.influence.kernels.row_and_pooled_ranks(..., centred=True)``, as
           ``rank_agreement`` calls it: average ranks within every class and over all samples pooled,
           less their means, from one sort (the C kernel).
2. scipy:  ``scipy.stats.rankdata`` of the same: each class's row (``axis=-1``, left-out samples as
           NaN with ``nan_policy="omit"``) and the pooled kept scores.
3. numpy sort: ``np.sort`` of each method's kept scores, pooled: the one sort a ranking by numpy
           starts from (without the class rankings, the ranks or the ties).
4. floor:  ``x.sum()`` of each method's scores: one pass reading them, the least any ranking does.

Printed: median and min-max seconds per round (all five methods), and the ratios of memoxr to each
(ratio of medians, and median and range of the per-round ratios). Nothing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

import memoxr
from memoxr.benchmarks import _common as c
from memoxr.influence.analysis import METHODS
from memoxr.influence.kernels import row_and_pooled_ranks


def scipy_ranks(x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same rankings with scipy: per class (left-out entries NaN) and pooled."""
    return stats.rankdata(np.where(keep, x, np.nan), axis=-1, nan_policy="omit"), stats.rankdata(x[keep])


def compare(folder: Path, size: str, repeat: int, values: str) -> None:
    sizes, store = c.converted_store(folder, size, values)
    scores = memoxr.influence_scores(memoxr.open_influence(store)).compute()
    real = scores["training_indices"].values >= 0
    methods = []
    for name in METHODS:
        x = scores[name].values.astype(np.float64)
        methods.append((x, real & ~np.isnan(x)))
    kept = int(methods[0][1].sum())
    print(f"\n== {sizes.describe()}; values {values}")
    print(f"  {len(methods)} methods of {methods[0][0].shape} scores, {kept:,} kept each; one thread")
    variants = {
        "memoxr": lambda: [row_and_pooled_ranks(x, keep, centred=True) for x, keep in methods],
        "scipy": lambda: [scipy_ranks(x, keep) for x, keep in methods],
        "numpy sort": lambda: [np.sort(x[keep]) for x, keep in methods],
        "floor": lambda: [x.sum() for x, _ in methods],
    }
    results = c.interleave(variants, repeat)
    c.print_table(results, title=f"  {repeat} interleaved rounds, in-process (each round: all five methods):")
    c.print_ratio(results, "memoxr", "scipy", "memoxr / scipy")
    c.print_ratio(results, "memoxr", "numpy sort", "memoxr / numpy sort")
    c.print_ratio(results, "memoxr", "floor", "memoxr / floor")


def main(argv: list[str] | None = None) -> int:
    args = c.sizes_parser(__doc__, ["imagenet", "cifar"]).parse_args(argv)
    return c.for_each_size(args, lambda folder, size: compare(folder, size, args.repeat, args.values))


if __name__ == "__main__":
    raise SystemExit(main())
