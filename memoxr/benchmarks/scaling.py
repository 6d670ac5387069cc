"""Benchmark: memoxr's scores + stats table on a local Dask cluster, as the data and the workers grow.

Run ``python -m memoxr.benchmarks.scaling --sizes-gb 1 2 4 8 --workers 1 2``.
For each size, one influence store is built once (an FZ npz written class by
class, converted to Zarr, the npz then deleted): the class shape is fixed
(``--train`` x ``--test`` float32, 10 MB by default) and the number of classes
grows with the size. On that store the same work,
``class_stats(influence_scores(open_influence(store)))``, runs on a
``distributed.LocalCluster`` of W single-threaded worker processes for each W
in ``--workers`` (a fresh cluster per run, so every run starts from the same
state).

Measured per run: wall time of the work (the client is connected before the
clock starts), and each worker process's resident memory (RSS), polled from
this process with ``psutil`` every ``--poll`` seconds while the work runs.
The baseline is a worker's RSS just before the run, after memoxr, xarray
and zarr have been imported on it, so "peak - base" is what the work
itself added. Also printed: the workers' CPU time over the wall time (CPU %,
100 per fully busy worker) and the machine's load average, to tell a lack of
speedup caused by other processes on the machine from one in the work. Expected: that stays flat as the data grows (bounded by the
chunk size, ``--chunk-mb``), while time grows with the data and shrinks with
workers as far as the machine's cores allow. Beside each measured "peak - base",
the peak that ``memoxr.compute.plan`` predicts for one single-threaded worker (what
``--dry-run`` prints, from metadata only) and the ratio measured / predicted.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

import memoxr
from memoxr._optional import require
from memoxr.benchmarks.scores import write_large_fz_npz
from memoxr.compute.scheduler import use_scheduler
from memoxr.convert import convert_npz
from memoxr.influence.plan import plan_calculate

MB = 1e6
GB = 1e9
#: Free disk kept on top of what a size needs, in bytes.
DISK_MARGIN = 1 * GB


@dataclass
class Run:
    size_gb: float
    workers: int
    seconds: float
    raw_gb: float
    base_mb: list[float]
    peak_mb: list[float]
    cpu_s: float  # CPU seconds (user + system) of all workers during the run
    load: float  # 1-minute load average of the machine at the end of the run
    predicted_mb: float  # memoxr.compute.plan's predicted peak per single-threaded worker (what --dry-run prints)


def _warm_worker() -> int:
    """Import what the work needs, so the baseline RSS includes the libraries."""
    import os

    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import memoxr.influence.scores  # noqa: F401

    return os.getpid()


class RssPoller:
    """Peak RSS of a set of processes, polled from a background thread."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval = interval
        self.peak = {name: 0 for name in pids}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.procs.values():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def sample(self) -> dict[str, int]:
        rss = {}
        for name, proc in self.procs.items():
            try:
                rss[name] = proc.memory_info().rss
            except psutil.NoSuchProcess:  # a worker restarted (e.g. killed past its memory limit)
                rss[name] = 0
            self.peak[name] = max(self.peak[name], rss[name])
        self.samples += 1
        return rss

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check_disk(folder: Path, need: float, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < need + DISK_MARGIN:
        raise SystemExit(
            f"scaling: not enough free disk in {folder} for {what}: need about {need / GB:.1f} GB "
            f"(+{DISK_MARGIN / GB:.0f} GB margin), {free / GB:.1f} GB free. "
            "Use smaller --sizes-gb, or --workdir on a larger disk."
        )


def build_store(folder: Path, size_gb: float, n_train: int, n_test: int, chunk_mb: float) -> tuple[Path, int]:
    """Write the FZ npz class by class, convert it to Zarr, delete the npz. Returns (store, classes)."""
    n_class = max(1, round(size_gb * GB / (4 * n_train * n_test)))
    raw = 4 * n_class * n_train * n_test
    # npz (raw float32 + small index arrays) and the store (at most raw, compressed) at once.
    check_disk(folder, 2.05 * raw, f"the {size_gb:g} GB store")
    npz, store = folder / f"fz_{size_gb:g}gb.npz", folder / f"influence_{size_gb:g}gb.zarr"
    t0 = time.perf_counter()
    write_large_fz_npz(npz, n_class, n_train, n_test)
    t1 = time.perf_counter()
    convert_npz(npz, store, chunk_mb=chunk_mb, overwrite=True)
    t2 = time.perf_counter()
    npz_gb = npz.stat().st_size / GB
    npz.unlink()
    print(f"  built {store.name}: {n_class} classes x {n_train} x {n_test} float32 = {raw / GB:.2f} GB "
          f"(npz {npz_gb:.2f} GB written in {t1 - t0:.0f} s, converted in {t2 - t1:.0f} s, "
          f"store {store_bytes(store) / GB:.2f} GB on disk)", flush=True)
    return store, n_class


def warm_page_cache(store: Path) -> float:
    """Read every file of the store once, so no run pays for the first read from disk."""
    t0 = time.perf_counter()
    for p in store.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fp:
                while fp.read(1 << 24):
                    pass
    return time.perf_counter() - t0


def run_once(store: Path, size_gb: float, n_workers: int, memory_limit: str, poll: float) -> Run:
    LocalCluster = require("distributed", "distributed").LocalCluster

    with LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
        dashboard_address=None,
    ) as cluster, use_scheduler(cluster.scheduler_address) as client:
        assert client is not None  # an address always gives a client
        client.wait_for_workers(n_workers)
        pids = client.run(_warm_worker)  # {worker address: pid}
        predicted = plan_calculate(store, threads=1).peak_per_worker / MB  # metadata only
        time.sleep(0.5)  # let the imports settle before the baseline
        with RssPoller(pids, poll) as poller:
            base = poller.sample()
            cpu0 = poller.cpu_seconds()
            t0 = time.perf_counter()
            ds = memoxr.open_influence(store)
            memoxr.class_stats(memoxr.influence_scores(ds))
            seconds = time.perf_counter() - t0
            cpu_s = poller.cpu_seconds() - cpu0
        names = sorted(pids)
        return Run(
            size_gb, n_workers, seconds, ds["influence"].nbytes / GB,
            [base[n] / MB for n in names], [poller.peak[n] / MB for n in names], cpu_s, os.getloadavg()[0],
            predicted,
        )


def fmt_list(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def print_table(runs: list[Run]) -> None:
    one = {r.size_gb: r.seconds for r in runs if r.workers == 1}
    header = (f"{'size GB':>8}{'workers':>8}{'seconds':>9}{'GB/s':>7}{'speedup':>9}"
              f"  {'peak RSS/worker MB':>20}  {'peak-base MB':>14}  {'predicted MB':>13}{'ratio':>7}"
              f"  {'base MB':>10}{'CPU %':>7}{'load':>6}")
    print(header)
    print("-" * len(header))
    for r in runs:
        speedup = f"{one[r.size_gb] / r.seconds:.2f}x" if r.size_gb in one else "-"
        delta = [p - b for p, b in zip(r.peak_mb, r.base_mb, strict=True)]
        print(f"{r.raw_gb:>8.2f}{r.workers:>8d}{r.seconds:>9.1f}{r.raw_gb / r.seconds:>7.2f}{speedup:>9}"
              f"  {fmt_list(r.peak_mb):>20}  {fmt_list(delta):>14}  {r.predicted_mb:>13.0f}"
              f"{max(delta) / r.predicted_mb:>6.2f}x  {fmt_list(r.base_mb):>10}"
              f"{100 * r.cpu_s / r.seconds:>7.0f}{r.load:>6.1f}")


def interpret(runs: list[Run], cores: int) -> str:
    sizes = sorted({r.size_gb for r in runs})
    small, large = sizes[0], sizes[-1]
    by = {(r.size_gb, r.workers): r for r in runs}
    parts = []
    if len(sizes) > 1:
        raw = {r.size_gb: r.raw_gb for r in runs}
        data = raw[large] / raw[small]
        growth = []
        for w in sorted({r.workers for r in runs}):
            if (small, w) in by and (large, w) in by:
                a, b = by[(small, w)], by[(large, w)]
                peak = max(b.peak_mb) / max(a.peak_mb)
                delta = max(p - q for p, q in zip(b.peak_mb, b.base_mb, strict=True)) / max(
                    1.0, max(p - q for p, q in zip(a.peak_mb, a.base_mb, strict=True)))
                time_ratio = b.seconds / a.seconds
                growth.append(f"{w} worker(s): peak worker RSS grew {peak:.2f}x (peak-base {delta:.2f}x), "
                              f"time {time_ratio:.1f}x")
        parts.append(f"data grew {data:.0f}x ({small:g} -> {large:g} GB); " + "; ".join(growth))
    workers = sorted({w for s, w in by if s == large})
    if len(workers) > 1 and (large, 1) in by:
        w = workers[-1]
        parts.append(f"at {large:g} GB, {w} workers ran {by[(large, 1)].seconds / by[(large, w)].seconds:.2f}x "
                     f"faster than 1 ({cores} cores)")
    return "; ".join(parts) + "." if parts else "one size and one worker count: nothing to compare."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[1, 2, 4, 8],
                        help="influence sizes in GB (float32, uncompressed)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="numbers of worker processes")
    parser.add_argument("--chunk-mb", type=float, default=64.0, help="target influence chunk size of the stores")
    parser.add_argument("--train", type=int, default=1000, help="train samples per class")
    parser.add_argument("--test", type=int, default=2500, help="test samples per class")
    parser.add_argument("--memory-limit", default="4GB", help="memory limit of each worker (distributed syntax)")
    parser.add_argument("--poll", type=float, default=0.05, help="RSS polling interval in seconds")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the data (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the stores (and print where they are)")
    args = parser.parse_args(argv)
    if any(s <= 0 for s in args.sizes_gb) or any(w < 1 for w in args.workers):
        parser.error("--sizes-gb must be positive and --workers at least 1")
    sizes = sorted(set(args.sizes_gb))
    workers = sorted(set(args.workers))

    parent = args.workdir if args.workdir is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    # Peak disk: with --keep every store plus the largest npz; otherwise one store and its npz at a time.
    need = (sum(sizes) + max(sizes)) * GB if args.keep else 2 * max(sizes) * GB
    check_disk(parent, need * 1.02, f"sizes {sizes} GB" + (" with --keep" if args.keep else ""))
    folder = Path(tempfile.mkdtemp(prefix="memoxr-scaling-", dir=parent))
    cores = psutil.cpu_count(logical=True) or 1
    print(f"scaling: sizes {sizes} GB, workers {workers} (1 thread each, memory limit {args.memory_limit}), "
          f"chunks ~{args.chunk_mb:g} MB, class {args.train} x {args.test} float32 "
          f"({4 * args.train * args.test / MB:.0f} MB); {cores} cores; data in {folder}", flush=True)

    runs: list[Run] = []
    try:
        for size in sizes:
            store, _ = build_store(folder, size, args.train, args.test, args.chunk_mb)
            print(f"  page cache warmed in {warm_page_cache(store):.1f} s", flush=True)
            for w in workers:
                run = run_once(store, size, w, args.memory_limit, args.poll)
                runs.append(run)
                print(f"  {size:g} GB, {w} worker(s): {run.seconds:.1f} s, peak RSS {fmt_list(run.peak_mb)} MB",
                      flush=True)
            if not args.keep:
                shutil.rmtree(store)
    finally:
        if args.keep:
            print(f"stores kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    print_table(runs)
    print("(per-worker columns are worker1/worker2/...; speedup is vs 1 worker at the same size; CPU % is the "
          "workers' CPU time over wall time, 100 per busy core; load is the machine's 1-min load average)")
    print(interpret(runs, cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
