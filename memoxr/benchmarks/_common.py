"""Shared pieces of the benchmark scripts: synthetic FZ data, interleaved timing, whole-process runs, tables.

Timing rules every script follows: the variants being compared run side by side in
one process of the benchmark, interleaved (round r runs every variant once, starting
from variant r mod k so no variant always goes first), and are reported as medians
with their spread (min-max) and as ratios, both the ratio of the medians and the
median of the per-round ratios. Nothing is a best case and nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memoxr.compute import malloc as _malloc

MB = 1e6
GB = 1e9

# --------------------------------------------------------------------------- data

#: Trials of the FZ estimator the quantized values imitate (CIFAR-100: 2000 trials, 70% subsets).
N_TRIALS = 2000
SUBSET_RATIO = 0.7
#: Share of test samples every trial gets right, and of (train, test) pairs with a strong effect,
#: chosen so the values look like the shipped real estimates (84% exact zeros, 0.6% above 0.05).
ALWAYS_RIGHT = 0.85
STRONG = 0.005

LAYOUT_HELP = (
    "cifar (100 x 500 x 100), imagenet (1000 classes, train ragged 732..1300, 50 test), "
    "1gb-balanced (100 x 1000 x 2750), 1gb-ragged (100 classes, train ragged 700..1300, 2000 test), "
    "or XGB-balanced / XGB-ragged for any X (e.g. 0.05gb-ragged, 4gb-ragged: classes scale with X), "
    "or XGB-wide (1gb-ragged's classes and training samples, 2000 x X test samples: only the influence grows)"
)


@dataclass(frozen=True)
class Layout:
    """Class sizes of a synthetic FZ npz."""

    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]

    @property
    def ragged(self) -> bool:
        return len(set(self.train)) > 1 or len(set(self.test)) > 1

    @property
    def raw_gb(self) -> float:
        """float32 influence in the npz (sum over classes, no padding)."""
        return 4 * sum(a * b for a, b in zip(self.train, self.test, strict=True)) / GB

    @property
    def padded_gb(self) -> float:
        """float32 influence in a store padded to the largest class."""
        return 4 * len(self.train) * max(self.train) * max(self.test) / GB

    def describe(self) -> str:
        tr = f"{min(self.train)}..{max(self.train)}" if len(set(self.train)) > 1 else f"{self.train[0]}"
        tt = f"{min(self.test)}..{max(self.test)}" if len(set(self.test)) > 1 else f"{self.test[0]}"
        return (f"{self.name}: {len(self.train)} classes x {tr} train x {tt} test, "
                f"{self.raw_gb:.3f} GB float32 ({self.padded_gb:.3f} GB padded)")


def layout(name: str, seed: int = 0) -> Layout:
    """The class sizes called ``name`` (see ``LAYOUT_HELP``); ragged sizes are drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    if name == "cifar":
        return Layout(name, (500,) * 100, (100,) * 100)
    if name == "imagenet":
        return Layout(name, tuple(int(n) for n in rng.integers(732, 1301, size=1000)), (50,) * 1000)
    match = re.fullmatch(r"(\d*\.?\d+)gb-(balanced|ragged|wide)", name.lower())
    if match is None:
        raise ValueError(f"unknown size {name!r}; expected {LAYOUT_HELP}")
    if match.group(2) == "wide":
        n_test = max(1, round(2000 * float(match.group(1))))
        return Layout(name, layout("1gb-ragged", seed).train, (n_test,) * 100)
    n_class = max(1, round(100 * float(match.group(1))))
    if match.group(2) == "balanced":
        return Layout(name, (1000,) * n_class, (2750,) * n_class)
    return Layout(name, tuple(int(n) for n in rng.integers(700, 1301, size=n_class)), (2000,) * n_class)


def influence_block(rng: np.random.Generator, n_train: int, n_test: int, values: str = "quantized") -> np.ndarray:
    """One class's float32 influence matrix.

    ``quantized`` imitates the FZ estimates: per entry, the test accuracy of the
    trials holding the train sample minus that of the trials without it, both
    proportions over a finite number of trials (``N_TRIALS`` split about 70/30 per
    train sample). Most test samples are right in every trial, so most entries are
    exactly 0, the others a few steps of 1/n from it; 0.5% of the pairs get a strong
    positive effect. ``gaussian`` is the older N(0, 0.01) noise with the same 2% strong
    positives (compresses much worse than real estimates).
    """
    if values == "gaussian":
        matrix = rng.normal(0.0, 0.01, size=(n_train, n_test)).astype(np.float32)
        strong = rng.random((n_train, n_test)) < 0.02
        matrix[strong] += rng.uniform(0.05, 0.6, size=int(strong.sum())).astype(np.float32)
        return matrix
    if values != "quantized":
        raise ValueError(f"values must be 'quantized' or 'gaussian', not {values!r}")
    n_in = rng.binomial(N_TRIALS, SUBSET_RATIO, size=(n_train, 1))
    n_out = N_TRIALS - n_in
    # per test sample: always right (like ~85% of the real estimates' entries, exactly 0) or a lower accuracy
    accuracy = np.where(rng.random((1, n_test)) < ALWAYS_RIGHT, 1.0, rng.beta(4.0, 1.0, size=(1, n_test)))
    effect = np.where(rng.random((n_train, n_test)) < STRONG, rng.uniform(0.05, 0.6, size=(n_train, n_test)), 0.0)
    matrix = np.zeros((n_train, n_test), dtype=np.float32)
    noisy = (accuracy < 1.0) | (effect > 0)  # elsewhere both proportions are 1: influence exactly 0
    rows, cols = np.nonzero(noisy)
    p_in = rng.binomial(n_in[rows, 0], accuracy[0, cols]) / n_in[rows, 0]
    p_out = rng.binomial(n_out[rows, 0], np.clip(accuracy[0, cols] - effect[rows, cols], 0.0, 1.0)) / n_out[rows, 0]
    matrix[rows, cols] = p_in - p_out
    return matrix


def write_fz_npz(path: Path, sizes: Layout, *, seed: int = 0, values: str = "quantized") -> None:
    """Stream an FZ-layout npz to disk one class at a time (never all in memory)."""
    rng = np.random.default_rng(seed)
    tr_labels = rng.permutation(np.repeat(np.arange(len(sizes.train)), sizes.train))
    tt_labels = rng.permutation(np.repeat(np.arange(len(sizes.test)), sizes.test))
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:

        def put(key: str, array: np.ndarray) -> None:
            with archive.open(f"{key}.npy", "w", force_zip64=True) as fp:
                np.lib.format.write_array(fp, np.ascontiguousarray(array))

        put("tr_mem", rng.beta(0.6, 1.8, size=tr_labels.size))
        put("tr_labels", tr_labels)
        put("tt_labels", tt_labels)
        for k, (n_train, n_test) in enumerate(zip(sizes.train, sizes.test, strict=True)):
            put(f"tr_classidx_{k}", np.flatnonzero(tr_labels == k))
            put(f"tt_classidx_{k}", np.flatnonzero(tt_labels == k))
            put(f"infl_matrix_class{k}", influence_block(rng, n_train, n_test, values))


def workdir(path: Path | None) -> Path | None:
    """``--workdir``, created if missing (the data go into a temporary folder inside it)."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    return path


def converted_store(folder: Path, size: str, values: str) -> tuple[Layout, Path]:
    """An FZ npz of layout ``size`` written into ``folder`` and converted (default chunks); the npz is deleted."""
    from memoxr.convert import convert_npz

    sizes = layout(size)
    npz, store = folder / f"{size}.npz", folder / f"{size}.zarr"
    write_fz_npz(npz, sizes, values=values)
    convert_npz(npz, store, overwrite=True)
    npz.unlink()
    return sizes, store


def sizes_parser(doc: str, default_sizes: Sequence[str]) -> argparse.ArgumentParser:
    """The options of an in-process benchmark over synthetic sizes: ``--sizes --repeat --values --workdir``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(default_sizes), help=LAYOUT_HELP)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--values", choices=["quantized", "gaussian"], default="quantized")
    parser.add_argument("--workdir", type=Path, help="folder for the data (default: a temp folder)")
    return parser


def for_each_size(args: argparse.Namespace, run: Callable[[Path, str], None]) -> int:
    """``run(folder, size)`` for each of ``args.sizes``, in one temporary folder under ``--workdir``."""
    with tempfile.TemporaryDirectory(dir=workdir(args.workdir)) as tmp:
        for size in args.sizes:
            run(Path(tmp), size)
    return 0


def warm(*paths: Path) -> None:
    """Read every file under ``paths`` once, so timed runs find them in the page cache."""
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            with open(file, "rb") as fp:
                while fp.read(1 << 24):
                    pass


def disk_gb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / GB


# --------------------------------------------------------------------------- processes


def byte_compile(*checkouts: Path) -> None:
    """Write the bytecode of this memoxr (and of other ``checkouts``) as ``pip install`` does, and say so.

    An editable install in an environment with ``PYTHONDONTWRITEBYTECODE`` (this project's development
    machine has it) would otherwise compile the modules memoxr imports in every whole-process run
    (34 for ``calculate``, 0.03 s) that an installed memoxr never compiles.
    """
    import compileall

    here = Path(__file__).resolve().parent.parent  # memoxr/; a checkout's convert/ sits beside it
    compiled = all([  # a list: every folder compiled, even after a failure
        compileall.compile_dir(folder, quiet=1)
        for root in (here.parent, *checkouts)
        for folder in (root / "memoxr", root / "convert")
        if folder.is_dir()
    ])
    print("memoxr byte-compiled, as pip installs it" if compiled else "memoxr NOT fully byte-compiled (see above)")


def memoxr_cmd(*args: str) -> list[str]:
    """The CLI of the running interpreter's environment, as a command line."""
    return [sys.executable, "-m", "memoxr", *args]


@dataclass(frozen=True)
class ProcRun:
    """One whole-process run: wall time, CPU time and peak RSS (from ``os.wait4``)."""

    wall: float
    user: float
    sys: float
    maxrss_mb: float

    @property
    def cpu_share(self) -> float:
        """CPU time over wall time: 1.0 = one core busy throughout, 2.0 = two."""
        return (self.user + self.sys) / self.wall


#: GNU time, used to read a child's peak RSS (see ``run_process``); None if not installed.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
_RSS_TAG = "memoxr-bench-maxrss-kb"


#: Python that imports dask.array as the ``memoxr`` command does (scipy and jinja2 hidden while dask's
#: optional imports of them run, numpy's docstrings not copied, memoxr/compute/lean_imports.py): a
#: prefix for ``python -c`` code compared with it.
LEAN_IMPORTS = "from memoxr.compute.lean_imports import import_dask_array_lean as lean; lean(); "


def as_the_command(start: str, work: str = "pass") -> str:
    """``python -c`` code run the way the ``memoxr`` command runs its process (``cli.main.run``):
    ``start`` (imports, and what comes before the first computation) with dask.array lean and
    automatic collection paused, then ``work`` with it collecting, and what is alive frozen at exit
    (memoxr/compute/collector.py). One line each."""
    return (
        "from memoxr.compute import collector\n"
        "collector.freeze_at_exit()\n"
        "with collector.paused_until_work():\n"
        f"    {LEAN_IMPORTS}{start}\n"
        "    collector.resume()\n"
        f"    {work}\n"
    )


#: The allocator settings the ``memoxr`` command gives itself (memoxr/compute/malloc.py), as environment
#: variables: given to the processes it is compared with, so no side wins by its allocator.
SAME_ALLOCATOR = {
    **os.environ,
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(_malloc.MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(_malloc.TRIM_THRESHOLD),
}


def run_process(
    cmd: Sequence[str], *, stdout: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> ProcRun:
    """Run ``cmd`` to completion; raise if it fails.

    Wall time is taken here; CPU time from ``os.wait4`` (it includes the child's own
    waited-for children). Peak RSS: ``ru_maxrss`` of the direct child is not clean
    on Linux, because the child starts as a (v)fork of this process and exec keeps
    that image's high-water mark, so it is never below this (large) process's RSS.
    The command therefore runs under ``/usr/bin/time -f %M`` (a small process that
    forks the real one) and its figure is used; without GNU time the polluted
    ``ru_maxrss`` is returned (an upper bound). ``env``: the child's environment.
    """
    full = [GNU_TIME, "-f", f"{_RSS_TAG} %M", *cmd] if GNU_TIME else list(cmd)
    start = time.perf_counter()
    proc = subprocess.Popen(full, stdout=stdout, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")  # drained before wait4: a chatty child cannot block
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{err[-2000:]}")
    maxrss_kb = usage.ru_maxrss  # KiB on Linux
    tagged = [line for line in err.splitlines() if line.startswith(_RSS_TAG)]
    if GNU_TIME and tagged:
        maxrss_kb = int(tagged[-1].split()[-1])
    return ProcRun(wall, usage.ru_utime, usage.ru_stime, maxrss_kb / 1024)


# --------------------------------------------------------------------------- timing

#: Variant name -> its runs: a ``ProcRun`` (whole process) or a wall time in seconds.
Results = dict[str, list[ProcRun | float]]


def interleave(variants: Mapping[str, Callable[[], object]], repeat: int, *,
               before_each: Callable[[str], object] | None = None) -> Results:
    """Run every variant once per round, ``repeat`` rounds, rotating which goes first.

    A variant returns either a ``ProcRun`` (whole processes) or anything else, in
    which case its wall time (seconds) is recorded. ``before_each(name)`` runs
    untimed before each call (e.g. to remove the previous output).
    """
    names = list(variants)
    results: Results = {name: [] for name in names}
    for r in range(repeat):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            if before_each is not None:
                before_each(name)
            start = time.perf_counter()
            out = variants[name]()
            results[name].append(out if isinstance(out, ProcRun) else time.perf_counter() - start)
    return results


def seconds(runs: list[ProcRun | float]) -> list[float]:
    return [r.wall if isinstance(r, ProcRun) else float(r) for r in runs]


def print_table(results: Results, *, gb: float | None = None, title: str = "") -> None:
    """Median and min-max per variant (and GB/s if ``gb`` is given), then the runs in order."""
    if title:
        print(title)
    width = max(len(n) for n in results) + 2
    head = f"  {'variant':<{width}}{'median s':>10}{'min-max s':>16}"
    head += f"{'GB/s':>8}" if gb else ""
    print(head + "   runs (s)")
    for name, runs in results.items():
        t = seconds(runs)
        line = f"  {name:<{width}}{statistics.median(t):>10.3f}{f'{min(t):.3f}-{max(t):.3f}':>16}"
        line += f"{gb / statistics.median(t):>8.2f}" if gb else ""
        print(line + "   [" + ", ".join(f"{x:.3f}" for x in t) + "]")


def ratio(results: Results, num: str, den: str) -> tuple[float, float, float, float]:
    """Ratio of medians, median of per-round ratios, and the min and max of per-round ratios."""
    a, b = seconds(results[num]), seconds(results[den])
    per_round = [x / y for x, y in zip(a, b, strict=True)]
    return (statistics.median(a) / statistics.median(b), statistics.median(per_round),
            min(per_round), max(per_round))


def print_ratio(results: Results, num: str, den: str, label: str | None = None) -> None:
    """One ``ratio`` line: ``LABEL: 1.23x (ratio of medians); per round median 1.20x, 1.10-1.31x``."""
    of_medians, med, lo, hi = ratio(results, num, den)
    print(f"  ratio {label or f'{num} / {den}'}: {of_medians:.2f}x (ratio of medians); "
          f"per-round median {med:.2f}x, range {lo:.2f}-{hi:.2f}x")


def print_rss(results: Results) -> None:
    """Median and min-max peak RSS of the whole-process variants."""
    for name, runs in results.items():
        rss = [r.maxrss_mb for r in runs if isinstance(r, ProcRun)]
        cpu = [r.cpu_share for r in runs if isinstance(r, ProcRun)]
        if rss:
            print(f"  peak RSS {name}: median {statistics.median(rss):.0f} MB ({min(rss):.0f}-{max(rss):.0f}); "
                  f"CPU/wall median {statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})")


def timed(func: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
