"""Benchmark: the FZ estimator on Dask vs a plain numpy matmul of the same sizes.

Run ``python -m memoxr.benchmarks.estimate --scale 0.25`` (``--scale 1`` is the
full target: 2,000 trials x 50,000 train x 10,000 test samples, 10 classes).
The trial records are generated lazily with dask's random generator, chunk by
chunk, so nothing of that size is ever held in memory. Printed, side by side:

0. generation alone: the lazy ``mask`` and ``test_correct`` summed, to tell
   the cost of making the synthetic records from the estimator's own;
1. validation pass: :func:`memoxr.estimate.estimate` reads the records once
   (0/1 checks, per-sample sums): its time and the records' element rate;
2. influence: every within-class influence chunk computed (dask matrix products
   over chunks of trials, then the finalizer) and reduced to a sum, so nothing
   is kept; also, with ``--write``, the same written as a Zarr store;
3. numpy baseline: the same within-class products ``M[:, tr_k].T @ C[:, tt_k]``
   with plain numpy on in-memory float32 arrays. When those inputs exceed
   ``--numpy-max-mb`` the baseline runs on the first few classes only and its
   time is scaled by ``n_classes / classes_run`` (printed as such).

Peak memory is traced (``tracemalloc``, which sees numpy's buffers) per phase,
and the process's peak RSS is printed at the end. The ratio reported is
``memoxr time / numpy time``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from memoxr.estimate import DegenerateSampleWarning, estimate
from memoxr.storage import write_dataset

FULL = {"trials": 2000, "train": 50_000, "test": 10_000}


def synthetic_trials(n_trials: int, n_train: int, n_test: int, n_class: int, *, chunk_mb: float, seed: int = 0) -> dict[str, Any]:
    """Lazy trial records: ``mask`` ~ Bernoulli(0.7), correctness ~ Bernoulli(0.9 / 0.8)."""
    rng = np.random.default_rng(seed)
    rows = max(1, min(n_trials, int(chunk_mb * 2**20) // (8 * max(n_train, n_test))))
    gen = da.random.default_rng(seed)
    return {
        "mask": gen.random((n_trials, n_train), chunks=(rows, -1), dtype=np.float32) < 0.7,
        "train_correct": gen.random((n_trials, n_train), chunks=(rows, -1), dtype=np.float32) < 0.9,
        "test_correct": gen.random((n_trials, n_test), chunks=(rows, -1), dtype=np.float32) < 0.8,
        "tr_labels": rng.permutation(np.arange(n_train) % n_class),
        "tt_labels": rng.permutation(np.arange(n_test) % n_class),
    }


def measure(label: str, func: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``func`` once; print and return its result, seconds and traced peak (MB)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {label:<46} {seconds:8.2f} s   peak traced {peak / 2**20:8.1f} MB", flush=True)
    return result, seconds, peak / 2**20


def numpy_baseline(n_trials: int, n_train: int, n_test: int, n_class: int, max_mb: float, seed: int = 0) -> tuple[float, int]:
    """Seconds for the within-class products of ``classes_run`` classes, and ``classes_run``."""
    per_class = 4 * n_trials * (n_train + n_test) / n_class + 4 * (n_train / n_class) * (n_test / n_class)
    classes_run = int(max(1, min(n_class, max_mb * 2**20 // max(per_class, 1))))
    rng = np.random.default_rng(seed)
    n_tr, n_tt = n_train // n_class, n_test // n_class
    mask = (rng.random((n_trials, classes_run * n_tr), dtype=np.float32) < 0.7).astype(np.float32)
    correct = (rng.random((n_trials, classes_run * n_tt), dtype=np.float32) < 0.8).astype(np.float32)
    start = time.perf_counter()
    for k in range(classes_run):
        _ = mask[:, k * n_tr : (k + 1) * n_tr].T @ correct[:, k * n_tt : (k + 1) * n_tt]
    return time.perf_counter() - start, classes_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memoxr.benchmarks.estimate", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply trials, train and test by this (default 1: full size)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--chunk-mb", type=float, default=64.0)
    parser.add_argument("--numpy-max-mb", type=float, default=512.0, help="memory for the numpy baseline's inputs")
    parser.add_argument("--write", action="store_true", help="also write the influence store to a temporary Zarr")
    parser.add_argument("--scheduler", default="threads", help="dask scheduler (default: threads)")
    args = parser.parse_args(argv)

    n_trials, n_train, n_test = (max(2, int(round(FULL[k] * args.scale))) for k in ("trials", "train", "test"))
    n_class = args.classes
    pairs = n_trials * (n_train // n_class) * (n_test // n_class) * n_class  # multiply-adds, within classes
    print(f"memoxr estimate benchmark: {n_trials} trials x {n_train} train x {n_test} test, {n_class} classes "
          f"(scale {args.scale}), chunk_mb {args.chunk_mb}, scheduler {args.scheduler}")
    print(f"  within-class work: {pairs / 1e9:.2f} G multiply-adds; records {n_trials * (2 * n_train + n_test) / 1e9:.3f} G elements (lazy)")

    records = synthetic_trials(n_trials, n_train, n_test, n_class, chunk_mb=args.chunk_mb)
    with dask.config.set(scheduler=args.scheduler), warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateSampleWarning)
        ds, t_pass1, m_pass1 = measure("1. estimate(): validation + per-sample sums", lambda: estimate(records, chunk_mb=args.chunk_mb))
        influence = ds["influence"].data
        print(f"     influence {influence.shape} in {influence.npartitions} chunks of {influence.chunksize}, "
              f"{influence.nbytes / 2**20:.0f} MB float32")
        _, t_gen, _ = measure(
            "0. lazy records generated only (sums)",
            lambda: dask.compute(records["mask"].sum(axis=0), records["test_correct"].sum(axis=0)),
        )
        _, t_infl, m_infl = measure("2. influence computed (nansum of every chunk)", lambda: float(da.nansum(influence).compute()))
        t_write = None
        if args.write:
            with tempfile.TemporaryDirectory() as tmp:
                from memoxr.estimate import _encoding

                _, t_write, _ = measure("2b. influence store written to Zarr", lambda: write_dataset(ds, Path(tmp) / "b.zarr", encoding=_encoding(ds)))
    (t_np, classes_run), t_np_wall, m_np = measure(
        "3. numpy: within-class float32 matmuls", lambda: numpy_baseline(n_trials, n_train, n_test, n_class, args.numpy_max_mb)
    )
    t_np_scaled = t_np * n_class / classes_run
    scaled = "" if classes_run == n_class else f" ({classes_run} of {n_class} classes run, time x {n_class / classes_run:.1f})"
    print("results")
    print(f"  validation pass: {n_trials * (2 * n_train + n_test) / t_pass1 / 1e6:.1f} M record elements/s")
    print(f"  influence:       {pairs / t_infl / 1e9:.2f} G multiply-adds/s ({2 * pairs / t_infl / 1e9:.1f} GFLOP/s), "
          f"generation of the lazy records included")
    print(f"  numpy matmul:    {t_np_scaled:.2f} s{scaled}, {pairs / t_np_scaled / 1e9:.2f} G multiply-adds/s")
    print(f"  ratio influence / numpy matmul:            {t_infl / t_np_scaled:.2f}")
    print(f"  ratio (influence - generating mask and test_correct) / numpy: "
          f"{max(t_infl - t_gen, 0.0) / t_np_scaled:.2f}  (generation alone: {t_gen:.2f} s)")
    print(f"  ratio (validation + influence) / numpy:    {(t_pass1 + t_infl) / t_np_scaled:.2f}")
    if t_write is not None:
        print(f"  ratio (validation + write store) / numpy:  {(t_pass1 + t_write) / t_np_scaled:.2f}")
    print(f"  peak traced memory: pass 1 {m_pass1:.0f} MB, influence {m_infl:.0f} MB, numpy {m_np:.0f} MB; "
          f"records would be {n_trials * (2 * n_train + n_test) / 2**20:.0f} MB as bool")
    print(f"  process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
