"""Benchmark (in-process): memoxr's scores + stats table vs a plain read pass of the same store, and vs the seed's loop.

Run ``python -m memoxr.benchmarks.scores --gb 1.1 --layout balanced --chunk-mb 64 16 --repeat 5``
and again with ``--layout ragged`` (needs about twice ``--gb`` on disk; ``--workdir`` for the data).

An FZ npz is written class by class (``--layout balanced``: 100-class shape
1000 train x 2750 test; ``ragged``: train 700..1300 per class, 2000 test, so
about 22% of the padded store is NaN padding; the number of classes follows
``--gb``; influence ``--values``, ``quantized`` by default, imitating the FZ
estimates). It is converted once per ``--chunk-mb`` (default 64 and 16), every
file read once so all runs find it in the page cache, and then, per chunk size,
``--repeat`` interleaved rounds (each starting from a different variant) of:

1. read:       ``dask.array.from_zarr(store, component="influence").sum().compute()``: every raw
               chunk read and decompressed by zarr, no NaN handling (the floor issue #10 names).
2. read files: the same sum over the chunks as memoxr reads a local store, each chunk file read
               and decoded straight into its array (``memoxr/io/direct_chunks.py``): the
               strictest floor, since memoxr's own read is faster than zarr's.
3. memoxr:     ``memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(store)))``:
               the four scores and the per-class table, one pass.
4. seed loop:  the seed script's numpy code class by class over the npz, plus a pandas table.

Printed: median and min-max seconds of each, GB/s of float32 influence (unpadded),
and the ratios memoxr/read, memoxr/read files and memoxr/seed (ratio of medians, and median and
range of the per-round ratios). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd

import memoxr
from memoxr.benchmarks import _common as c
from memoxr.compute import malloc as _malloc
from memoxr.convert import convert_npz
from memoxr.io.storage import open_dataset


def write_large_fz_npz(path: Path, n_class: int, n_train: int, n_test: int, seed: int = 0,
                       values: str = "quantized") -> None:
    """Stream a balanced FZ-layout npz to disk one class at a time (never all in memory)."""
    sizes = c.Layout(f"{n_class}x{n_train}x{n_test}", (n_train,) * n_class, (n_test,) * n_class)
    c.write_fz_npz(path, sizes, seed=seed, values=values)


def seed_loop(npz_path: Path, alpha: float = 0.7, beta: float = 0.3) -> pd.DataFrame:
    """The seed scripts' approach: load each class's matrix, numpy expressions, pandas table."""
    rows = []
    with np.load(npz_path) as data:
        tr_mem = data["tr_mem"]
        k = 0
        while f"infl_matrix_class{k}" in data.files:
            matrix = data[f"infl_matrix_class{k}"]
            memo = tr_mem[data[f"tr_classidx_{k}"]]
            pos_infl_mean = np.maximum(matrix, 0).mean(axis=1)
            influence_std = matrix.std(axis=1)
            scores = {
                "memo_score": memo,
                "infl_weighted_memo": memo * pos_infl_mean,
                "representativeness": memo * (pos_infl_mean / influence_std),
                "weighted_combination": alpha * memo + beta * pos_infl_mean / pos_infl_mean.max(),
            }
            ranks = np.argsort(np.argsort(-pos_infl_mean))
            scores["critical_sample"] = memo * (1 - ranks / (len(ranks) - 1))
            row = {"class_label": k, "sample_count": len(memo)}
            for stem, v in scores.items():
                row.update({f"mean_{stem}": v.mean(), f"std_{stem}": v.std(), f"min_{stem}": v.min(),
                            f"max_{stem}": v.max(), f"median_{stem}": np.median(v)})
            rows.append(row)
            k += 1
    return pd.DataFrame(rows)


def read_pass(store: Path) -> float:
    """The floor: raw influence chunks read, decompressed and summed (NaN padding not skipped)."""
    return float(da.from_zarr(str(store), component="influence").sum().compute(scheduler="threads"))  # as memoxr


def read_files_pass(store: Path) -> float:
    """The strictest floor: the same sum over the chunk files as memoxr reads them (no NaN handling)."""
    return float(open_dataset(store)["influence"].data.sum().compute(scheduler="threads"))


def memoxr_pass(store: Path) -> pd.DataFrame:
    return memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(store)))


def compare(npz: Path, store: Path, raw_gb: float, chunk_mb: float, repeat: int) -> None:
    """Convert at ``chunk_mb``, then the four variants interleaved; table and ratios."""
    convert = c.timed(lambda: convert_npz(npz, store, chunk_mb=chunk_mb, overwrite=True))
    influence = memoxr.open_influence(store)["influence"].data
    print(f"\n-- --chunk-mb {chunk_mb:g}: convert {convert:.1f} s; store {c.disk_gb(store):.3f} GB on disk, "
          f"chunks {influence.chunksize}, {influence.npartitions} chunks")
    c.warm(npz, store)
    variants = {"read": lambda: read_pass(store), "read files": lambda: read_files_pass(store),
                "memoxr": lambda: memoxr_pass(store), "seed loop": lambda: seed_loop(npz)}
    results = c.interleave(variants, repeat)
    c.print_table(results, gb=raw_gb, title=f"   {repeat} interleaved rounds, in-process:")
    c.print_ratio(results, "memoxr", "read", "memoxr / read")
    c.print_ratio(results, "memoxr", "read files", "memoxr / read files")
    c.print_ratio(results, "memoxr", "seed loop", "memoxr / seed loop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.1, help="size of the padded influence in GB (float32)")
    parser.add_argument("--layout", choices=["balanced", "ragged"], default="balanced")
    parser.add_argument("--chunk-mb", type=float, nargs="+", default=[64.0, 16.0], help="default: 64 16")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--values", choices=["quantized", "gaussian"], default="quantized")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the data (default: a temp folder)")
    args = parser.parse_args(argv)
    # The allocator settings of the memoxr command, here for all four variants alike.
    print(f"glibc keeps freed chunk buffers (memoxr/compute/malloc.py): {_malloc.keep_freed_buffers()}")

    sizes = c.layout(f"{args.gb:g}gb-{args.layout}")
    with tempfile.TemporaryDirectory(dir=c.workdir(args.workdir)) as tmp:
        npz, store = Path(tmp) / "bench.npz", Path(tmp) / "bench.zarr"
        write = c.timed(lambda: c.write_fz_npz(npz, sizes, values=args.values))
        print(f"{sizes.describe()}; values {args.values}; npz {c.disk_gb(npz):.3f} GB written in {write:.1f} s; "
              f"dask threads, {dask.system.CPU_COUNT} cores")
        for chunk_mb in args.chunk_mb:
            compare(npz, store, sizes.raw_gb, chunk_mb, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
