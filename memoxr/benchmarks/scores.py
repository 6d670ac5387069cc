"""Benchmark: memoxr's scores + stats table vs a bare read of the same store, and vs the seed's loop.

Run ``python -m memoxr.benchmarks.scores --gb 1.1`` (needs about twice that on disk).
Everything is measured side by side in one run, repeated, and reported as
medians and ratios; nothing here is asserted.

1. bare read:   ``ds.influence.sum().compute()``: read and decompress every chunk, one cheap op.
2. memoxr:      ``class_stats(influence_scores(ds))``: the four scores and the table, one pass.
3. seed loop:   the seed script's numpy code class by class over the npz, plus a pandas table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import dask
import numpy as np
import pandas as pd

import memoxr
from memoxr.convert import convert_npz


def write_large_fz_npz(path: Path, n_class: int, n_train: int, n_test: int, seed: int = 0) -> None:
    """Stream an FZ-layout npz to disk one class at a time (never all in memory)."""
    rng = np.random.default_rng(seed)
    tr_labels = rng.permutation(np.repeat(np.arange(n_class), n_train))
    tt_labels = rng.permutation(np.repeat(np.arange(n_class), n_test))
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:

        def put(key: str, array: np.ndarray) -> None:
            with archive.open(f"{key}.npy", "w", force_zip64=True) as fp:
                np.lib.format.write_array(fp, np.ascontiguousarray(array))

        put("tr_mem", rng.beta(0.6, 1.8, size=tr_labels.size))
        put("tr_labels", tr_labels)
        put("tt_labels", tt_labels)
        for k in range(n_class):
            put(f"tr_classidx_{k}", np.flatnonzero(tr_labels == k))
            put(f"tt_classidx_{k}", np.flatnonzero(tt_labels == k))
            matrix = rng.normal(0.0, 0.01, size=(n_train, n_test)).astype(np.float32)
            strong = rng.random((n_train, n_test)) < 0.02
            matrix[strong] += rng.uniform(0.05, 0.6, size=int(strong.sum())).astype(np.float32)
            put(f"infl_matrix_class{k}", matrix)


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


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.1, help="size of the influence data in GB (float32)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--train", type=int, default=1000, help="train samples per class")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-mb", type=float, default=64.0)
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the data (default: a temp folder)")
    args = parser.parse_args(argv)

    n_test = max(1, int(args.gb * 1e9 / (4 * args.classes * args.train)))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        npz, store = folder / "bench.npz", folder / "bench.zarr"
        t0 = time.perf_counter()
        write_large_fz_npz(npz, args.classes, args.train, n_test)
        t_npz = time.perf_counter() - t0
        t_convert = timed(lambda: convert_npz(npz, store, chunk_mb=args.chunk_mb))
        ds = memoxr.open_influence(store)
        raw_gb = ds["influence"].nbytes / 1e9
        disk_gb = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e9
        print(f"influence: {args.classes} classes x {args.train} train x {n_test} test = {raw_gb:.2f} GB float32 "
              f"({disk_gb:.2f} GB compressed in Zarr, chunks {ds['influence'].data.chunksize}, "
              f"{ds['influence'].data.npartitions} chunks); npz {npz.stat().st_size / 1e9:.2f} GB")
        print(f"write npz {t_npz:.1f} s, memoxr convert {t_convert:.1f} s; scheduler: threads, "
              f"{dask.system.CPU_COUNT} cores")

        def bare() -> object:
            return memoxr.open_influence(store)["influence"].sum().compute()

        def ours() -> object:
            return memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(store)))

        def seed() -> object:
            return seed_loop(npz)

        bare()  # warm the page cache so no variant pays for the first read
        times: dict[str, list[float]] = {"bare read + sum": [], "memoxr scores + stats": [], "seed numpy loop": []}
        for _ in range(args.repeat):
            for name, func in zip(times, (bare, ours, seed), strict=True):
                times[name].append(timed(func))
        median = {name: statistics.median(v) for name, v in times.items()}
        best = {name: min(v) for name, v in times.items()}
        print(f"{'variant':<24}{'median s':>10}{'GB/s':>8}{'x bare':>8}{'best s':>9}{'x bare':>8}   runs")
        for name in times:
            runs = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"{name:<24}{median[name]:>10.2f}{raw_gb / median[name]:>8.2f}"
                  f"{median[name] / median['bare read + sum']:>8.2f}{best[name]:>9.2f}"
                  f"{best[name] / best['bare read + sum']:>8.2f}   [{runs}]")
        ours, loop = "memoxr scores + stats", "seed numpy loop"
        print(f"memoxr takes {median[ours] / median[loop]:.2f}x the seed loop's time (median; "
              f"{best[ours] / best[loop]:.2f}x best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
