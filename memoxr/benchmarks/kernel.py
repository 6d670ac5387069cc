"""Benchmark (in-process, one thread): the row kernel on a store's chunks, against numpy.

Run ``python -m memoxr.benchmarks.kernel --sizes 1gb-balanced 1gb-ragged imagenet cifar --repeat 7``.

Per size, an FZ npz is written and converted (``memoxr.convert.convert_npz``, default 64 MB chunks),
and its first ``--chunks`` influence chunks (default 3) are read into memory. Then ``--repeat``
interleaved rounds (each starting from a different variant), each variant running over every chunk:

1. memoxr:      ``memoxr.influence.kernels.row_moments``: count, positive sum, mean and M2 of every
                row (train sample) over the test samples, NaN skipped (the C loop).
2. numpy, seed: what the seed scripts compute per row with numpy, ``np.maximum(x, 0).mean(axis=-1)``
                and ``x.std(axis=-1)``, on the same chunks (no NaN handling: padding rows give NaN).
3. floor:       ``x.sum(axis=-1)``: one numpy pass reading every value once (its pairwise float32 sum),
                the least any per-row reduction does.

Printed: median and min-max seconds per round (all chunks), GB/s of the chunks' float32, and the
ratios memoxr / numpy seed and memoxr / floor (ratio of medians, and median and range of the
per-round ratios). Nothing is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import memoxr
from memoxr.benchmarks import _common as c
from memoxr.influence.kernels import row_moments


def seed_numpy(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed scripts' per-row numpy expressions: positive-part mean and std."""
    return np.maximum(x, 0).mean(axis=-1), x.std(axis=-1)


def compare(folder: Path, size: str, n_chunks: int, repeat: int, values: str) -> None:
    sizes, store = c.converted_store(folder, size, values)
    data = memoxr.open_influence(store)["influence"].data
    chunks = [np.asarray(data.blocks[i].compute(scheduler="sync")) for i in range(min(n_chunks, data.numblocks[0]))]
    gb = sum(x.nbytes for x in chunks) / 1e9
    print(f"\n== {sizes.describe()}; values {values}")
    print(f"  {len(chunks)} chunks of {chunks[0].shape} float32 ({gb:.3f} GB), one thread")
    variants = {
        "memoxr": lambda: [row_moments(x) for x in chunks],
        "numpy, seed": lambda: [seed_numpy(x) for x in chunks],
        "floor": lambda: [x.sum(axis=-1) for x in chunks],
    }
    with np.errstate(invalid="ignore"):
        results = c.interleave(variants, repeat)
    c.print_table(results, gb=gb, title=f"  {repeat} interleaved rounds, in-process (each round: every chunk):")
    c.print_ratio(results, "memoxr", "numpy, seed", "memoxr / numpy, seed")
    c.print_ratio(results, "memoxr", "floor", "memoxr / floor")


def main(argv: list[str] | None = None) -> int:
    parser = c.sizes_parser(__doc__, ["1gb-balanced", "1gb-ragged", "imagenet", "cifar"])
    parser.add_argument("--chunks", type=int, default=3, help="influence chunks per size (default 3)")
    args = parser.parse_args(argv)
    return c.for_each_size(args, lambda folder, size: compare(folder, size, args.chunks, args.repeat, args.values))


if __name__ == "__main__":
    raise SystemExit(main())
