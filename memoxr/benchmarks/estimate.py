"""Benchmark: the FZ estimator's within-class influence on Dask vs a bare numpy float32 matmul.

Run ``python -m memoxr.benchmarks.estimate --scale 0.25`` (``--scale 1`` is the
full target: 2,000 trials x 50,000 train x 10,000 test samples, 10 classes).

Every variant runs in one process with the allocator settings the ``memoxr``
command gives itself (``memoxr estimate`` runs so; ``--library-allocator`` leaves
glibc's defaults, as in a library user's process). The trial records are made
once with dask's random generator and held in memory as bool numpy arrays
(what an ``.npz`` gives), so record generation is not in the timings; ``--lazy``
keeps them lazy instead (generated chunk by chunk inside every timed run, as a
Zarr store would be read). Printed:

1. validation pass: :func:`memoxr.estimate.estimate` reads the records once
   (0/1 checks, per-sample sums), timed once;
2. influence: every chunk of ``influence`` computed (products over chunks of
   trials, their sum, the finalizer), each reduced to one value, so nothing is
   kept, run under :func:`memoxr.compute.blas.blas_threads_for_dask` as memoxr's
   writers run it (one BLAS thread per dask thread; ``--no-blas-limit`` leaves
   BLAS alone);
3. numpy floor: the same within-class products ``M[:, tr_k].T @ C[:, tt_k]``
   as one numpy matmul per class on float32 arrays made beforehand, classes
   contiguous (no gather), BLAS with its default threads (one call using every
   core, as a plain script runs it);
4. the second floor: the same matmuls shared by one Python thread per core,
   each with one BLAS thread (how the estimator itself uses the cores).

When the floors' inputs exceed ``--numpy-max-mb`` they run on the first
classes only and their time is scaled by ``n_classes / classes_run``. 2, 3
and 4 are run once each untimed (warm-up), then ``--runs`` times, interleaved
(each first in turn); the ratios influence / floor of each run are printed as
median (min-max), against each floor and against the faster floor of the run. Then one more
influence run under ``tracemalloc`` (which sees numpy's buffers) gives its
peak traced memory; the process's peak RSS is printed at the end. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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

from memoxr.compute import malloc as _malloc
from memoxr.compute.blas import blas_threads_for_dask
from memoxr.estimate import DegenerateSampleWarning, estimate
from memoxr.io.storage import write_dataset

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
    """Run ``func`` once under tracemalloc; print and return its result, seconds and traced peak (MB)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {label:<52} {seconds:8.2f} s   peak traced {peak / 2**20:8.1f} MB", flush=True)
    return result, seconds, peak / 2**20


def _one_value(block: np.ndarray) -> np.ndarray:
    return np.array(block[(slice(0, 1),) * block.ndim])


def compute_every_chunk(x: da.Array, limit_blas: bool = True) -> None:
    """Compute every chunk of ``x``, keeping one value of each (nothing else is held)."""
    # da.map_blocks(f, x) is what x.map_blocks(f) calls; dask's @wraps hides the method's signature from mypy.
    touched = da.map_blocks(_one_value, x, chunks=tuple((1,) * len(c) for c in x.chunks), dtype=x.dtype)
    context = blas_threads_for_dask([x]) if limit_blas else contextlib.nullcontext()
    with context:
        touched.compute()


def numpy_inputs(
    n_trials: int, n_train: int, n_test: int, n_class: int, max_mb: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Float32 ``mask`` and ``correct`` of ``classes_run`` classes (contiguous columns), and ``classes_run``."""
    per_class = 4 * n_trials * (n_train + n_test) / n_class + 4 * (n_train / n_class) * (n_test / n_class)
    classes_run = int(max(1, min(n_class, max_mb * 2**20 // max(per_class, 1))))
    rng = np.random.default_rng(seed)
    n_tr, n_tt = n_train // n_class, n_test // n_class
    mask = (rng.random((n_trials, classes_run * n_tr), dtype=np.float32) < 0.7).astype(np.float32)
    correct = (rng.random((n_trials, classes_run * n_tt), dtype=np.float32) < 0.8).astype(np.float32)
    return mask, correct, classes_run, n_tr, n_tt


def numpy_floor(mask: np.ndarray, correct: np.ndarray, classes_run: int, n_tr: int, n_tt: int) -> None:
    """The within-class products, one numpy (BLAS, default threads) matmul per class; results dropped."""
    for k in range(classes_run):
        _ = mask[:, k * n_tr : (k + 1) * n_tr].T @ correct[:, k * n_tt : (k + 1) * n_tt]


def numpy_floor_threads(mask: np.ndarray, correct: np.ndarray, classes_run: int, n_tr: int, n_tt: int) -> None:
    """The same products, classes shared by one Python thread per core, one BLAS thread each."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    def one(k: int) -> None:
        _ = mask[:, k * n_tr : (k + 1) * n_tr].T @ correct[:, k * n_tt : (k + 1) * n_tt]

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(one, range(classes_run)))


def _timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _spread(values: list[float], digits: int = 2) -> str:
    return f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memoxr.benchmarks.estimate", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply trials, train and test by this (default 1: full size)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--chunk-mb", type=float, default=64.0)
    parser.add_argument("--runs", type=int, default=5, help="interleaved pairs of influence and numpy runs (default 5)")
    parser.add_argument("--numpy-max-mb", type=float, default=512.0, help="memory for the numpy floor's inputs")
    parser.add_argument("--lazy", action="store_true", help="generate the records lazily inside every run")
    parser.add_argument("--no-blas-limit", action="store_true", help="leave BLAS threads alone during influence runs")
    parser.add_argument("--write", action="store_true", help="also write the influence store to a temporary Zarr, once")
    parser.add_argument("--scheduler", default="threads", help="dask scheduler (default: threads)")
    parser.add_argument("--library-allocator", action="store_true",
                        help="leave glibc's defaults, as a library user's process has them (default: the memoxr "
                        "command's settings, memoxr/compute/malloc.py, for every variant alike)")
    args = parser.parse_args(argv)
    kept = False if args.library_allocator else _malloc.keep_freed_buffers()
    print(f"glibc keeps freed chunk buffers, as the memoxr command does (memoxr/compute/malloc.py): {kept}")

    n_trials, n_train, n_test = (max(2, int(round(FULL[k] * args.scale))) for k in ("trials", "train", "test"))
    n_class = args.classes
    pairs = n_trials * (n_train // n_class) * (n_test // n_class) * n_class  # multiply-adds, within classes
    print(f"memoxr estimate benchmark: {n_trials} trials x {n_train} train x {n_test} test, {n_class} classes "
          f"(scale {args.scale}), chunk_mb {args.chunk_mb}, scheduler {args.scheduler}, "
          f"records {'lazy' if args.lazy else 'in memory'}, BLAS limit {'off' if args.no_blas_limit else 'on'}")
    print(f"  within-class work: {pairs / 1e9:.2f} G multiply-adds; records {n_trials * (2 * n_train + n_test) / 1e9:.3f} G elements")

    records = synthetic_trials(n_trials, n_train, n_test, n_class, chunk_mb=args.chunk_mb)
    if not args.lazy:
        records.update(zip(("mask", "train_correct", "test_correct"),
                           dask.compute(records["mask"], records["train_correct"], records["test_correct"]), strict=True))
    np_mask, np_correct, classes_run, n_tr, n_tt = numpy_inputs(n_trials, n_train, n_test, n_class, args.numpy_max_mb)
    scale = n_class / classes_run
    limit = not args.no_blas_limit
    with dask.config.set(scheduler=args.scheduler), warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateSampleWarning)
        ds, t_pass1, m_pass1 = measure("1. estimate(): validation + per-sample sums", lambda: estimate(records, chunk_mb=args.chunk_mb))
        influence = ds["influence"].data
        print(f"     influence {influence.shape} in {influence.npartitions} chunks of {influence.chunksize}, "
              f"{influence.nbytes / 2**20:.0f} MB float32")
        steps = {
            "influence": (lambda: compute_every_chunk(influence, limit), 1.0),
            "numpy": (lambda: numpy_floor(np_mask, np_correct, classes_run, n_tr, n_tt), scale),
            "numpy_threads": (lambda: numpy_floor_threads(np_mask, np_correct, classes_run, n_tr, n_tt), scale),
        }
        for func, _ in steps.values():  # warm-up, untimed: thread pools started, pages touched
            func()
        times: dict[str, list[float]] = {kind: [] for kind in steps}
        for run in range(args.runs):
            order = list(steps)[run % 3 :] + list(steps)[: run % 3]  # each first in turn
            for kind in order:
                func, factor = steps[kind]
                times[kind].append(_timed(func) * factor)
            print(f"  run {run + 1}: influence {times['influence'][-1]:6.2f} s, numpy {times['numpy'][-1]:6.2f} s, "
                  f"numpy 2 threads {times['numpy_threads'][-1]:6.2f} s", flush=True)
        t_infl, t_np, t_np2 = times["influence"], times["numpy"], times["numpy_threads"]
        _, _, m_infl = measure("2. influence, one more run, traced", lambda: compute_every_chunk(influence, limit))
        t_gen = None
        if args.lazy:
            _, t_gen, _ = measure(
                "0. lazy records generated only (sums)",
                lambda: dask.compute(records["mask"].sum(axis=0), records["test_correct"].sum(axis=0)),
            )
        t_write = None
        if args.write:
            with tempfile.TemporaryDirectory() as tmp:
                from memoxr.estimate.writers import _encoding

                def write() -> None:
                    with blas_threads_for_dask([influence]) if limit else contextlib.nullcontext():
                        write_dataset(ds, Path(tmp) / "b.zarr", encoding=_encoding(ds))

                _, t_write, _ = measure("2b. influence store written to Zarr", write)
    ratios = [a / b for a, b in zip(t_infl, t_np, strict=True)]
    ratios2 = [a / b for a, b in zip(t_infl, t_np2, strict=True)]
    ratios_best = [a / min(b, c) for a, b, c in zip(t_infl, t_np, t_np2, strict=True)]
    scaled = "" if classes_run == n_class else f" ({classes_run} of {n_class} classes run, time x {scale:.2f})"
    print(f"results: medians (min-max) of {args.runs} interleaved runs")
    print(f"  validation pass: {t_pass1:.2f} s, {n_trials * (2 * n_train + n_test) / t_pass1 / 1e6:.1f} M record elements/s")
    print(f"  influence:       {_spread(t_infl)} s, {pairs / np.median(t_infl) / 1e9:.2f} G multiply-adds/s")
    print(f"  numpy matmul:    {_spread(t_np)} s{scaled}, {pairs / np.median(t_np) / 1e9:.2f} G multiply-adds/s")
    print(f"  numpy, 2 threads x 1 BLAS thread: {_spread(t_np2)} s, {pairs / np.median(t_np2) / 1e9:.2f} G multiply-adds/s")
    print(f"  ratio influence / numpy matmul:                  {_spread(ratios)}")
    print(f"  ratio influence / numpy, 2 threads x 1 BLAS:     {_spread(ratios2)}")
    print(f"  ratio influence / the faster numpy of its run:   {_spread(ratios_best)}")
    if t_gen is not None:
        print(f"  (lazy records: generating mask and test_correct alone takes {t_gen:.2f} s, inside every influence run)")
    print(f"  ratio (validation + influence) / numpy: {(t_pass1 + np.median(t_infl)) / np.median(t_np):.2f}")
    if t_write is not None:
        print(f"  ratio (validation + write store) / numpy: {(t_pass1 + t_write) / np.median(t_np):.2f}")
    print(f"  peak traced memory: pass 1 {m_pass1:.0f} MB, influence {m_infl:.0f} MB (chunk_mb {args.chunk_mb:g}); "
          f"records {n_trials * (2 * n_train + n_test) / 2**20:.0f} MB as bool")
    print(f"  process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
