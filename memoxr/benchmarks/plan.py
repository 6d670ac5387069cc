"""Benchmark: the peak memory ``--dry-run`` predicts for ``memoxr estimate`` against the measured peak.

Run ``python -m memoxr.benchmarks.plan [--trials 2000 --train 20000 --test 5000] [--chunk-mb 4 16 64]``.
Random trial records (10 classes) are written once as an ``.npz`` and as a Zarr store; for each
store and ``--chunk-mb``, a fresh process computes ``memoxr.estimate.plan.plan_estimate`` (threads=1)
and then writes the estimate with dask's synchronous scheduler under ``tracemalloc``; printed:
the predicted peak, the traced peak (numpy and Python allocations) and their ratio. Nothing is
asserted. For ``calculate``, the scaling benchmark prints the prediction beside each worker's
measured peak.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from memoxr.benchmarks import _common as c

CHILD = (
    "import sys, tracemalloc, dask\n"
    "import memoxr.estimate.plan as p\n"
    "from memoxr.estimate import write_estimate\n"
    "dask.config.set(scheduler='synchronous')\n"
    "path, mb, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]\n"
    "plan = p.plan_estimate(path, chunk_mb=mb, threads=1)\n"
    "tracemalloc.start()\n"
    "write_estimate(path, out, overwrite=True, chunk_mb=mb)\n"
    "print(plan.peak_per_worker, tracemalloc.get_traced_memory()[1])\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--test", type=int, default=5_000)
    parser.add_argument("--chunk-mb", type=float, nargs="+", default=[4.0, 16.0, 64.0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    from memoxr.estimate import write_trials

    rng = np.random.default_rng(0)
    records = {
        "mask": rng.random((args.trials, args.train)) < 0.7,
        "train_correct": rng.random((args.trials, args.train)) < 0.9,
        "test_correct": rng.random((args.trials, args.test)) < 0.8,
        "tr_labels": rng.integers(0, 10, args.train),
        "tt_labels": rng.integers(0, 10, args.test),
    }
    with tempfile.TemporaryDirectory(dir=c.workdir(args.workdir)) as tmp:
        stores = [Path(write_trials(records, Path(tmp) / f"trials.{kind}")) for kind in ("npz", "zarr")]
        print(f"estimate, {args.trials} trials x {args.train} train x {args.test} test, one thread")
        print(f"{'trials':>8}{'chunk MB':>10}{'predicted MB':>14}{'traced MB':>11}{'traced/predicted':>18}")
        for store in stores:
            for mb in args.chunk_mb:
                out = subprocess.run([sys.executable, "-c", CHILD, str(store), str(mb), str(Path(tmp) / "e.zarr")],
                                     check=True, capture_output=True, text=True).stdout.split()
                predicted, traced = (int(v) / 1e6 for v in out[-2:])
                print(f"{store.suffix:>8}{mb:>10g}{predicted:>14.0f}{traced:>11.0f}{traced / predicted:>17.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
