"""Benchmark: ``memoxr calculate`` as a whole process vs the seed's per-class numpy loop as a whole process.

Run ``python -m memoxr.benchmarks.calculate --sizes cifar imagenet 1gb-balanced 1gb-ragged --repeat 5``
(``--workdir`` for the data, which needs about twice the largest size on disk).
Add ``--rss-gb 1 4`` for the peak-RSS flatness check (``1gb-wide`` and ``4gb-wide`` stores: the same
samples, four times the influence).

For each size an FZ npz is written class by class (influence ``--values``:
``quantized`` by default, imitating the FZ estimates' finite-trial proportions)
and converted once with ``memoxr convert`` (default chunk size). Every file is
read once so all runs find it in the page cache. Then, interleaved, ``--repeat``
rounds of four whole processes (each round starts from a different variant):

1. seed loop:     a standalone script (numpy and pandas only, the code of
                  ``memoxr.benchmarks.scores.seed_loop``) that loads the npz class
                  by class, computes the scores and writes the per-class CSV.
2. memoxr store:  ``memoxr calculate --input STORE -q --stats-csv OUT`` (stdout to /dev/null).
3. memoxr npz:    ``memoxr calculate --input NPZ -q --stats-csv OUT``.
4. read store:    ``python -c`` with ``dask.array.from_zarr(STORE, component="influence")``
                  ``.sum().compute(scheduler="threads")``: the raw chunks read and
                  decompressed, no NaN handling (the floor).

The seed loop and the read run with the allocator settings ``memoxr`` gives its own
process (``_common.SAME_ALLOCATOR``, see ``memoxr/compute/malloc.py``), and the read imports
dask.array and handles the garbage collector as ``memoxr`` does (``_common.as_the_command``), so no
side wins by them. The read names
its scheduler, as ``memoxr`` does: without one, dask imports ``distributed`` (0.13 s) to look for a client.

Printed per size: median and min-max wall time of each, the ratios memoxr/seed
and memoxr/read (ratio of medians, and median and range of the per-round
ratios), and each process's peak RSS (GNU time's ``%M``, see ``_common.run_process``) and CPU
time over wall time. With ``--rss-gb A B ...``: ``memoxr calculate`` on ``XGB-wide``
stores of A, B, ... GB, peak RSS of each and its ratio to the first.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import cast

from memoxr.benchmarks import _common as c
from memoxr.benchmarks.scores import seed_loop

READ_CODE = c.as_the_command(
    "import sys, dask.array as da, zarr; total = da.from_zarr(sys.argv[1], component='influence').sum()",
    "print(total.compute(scheduler='threads'))",
)


def write_seed_script(folder: Path) -> Path:
    """The seed loop as a script importing only numpy and pandas: ``python seed.py NPZ CSV``."""
    script = folder / "seed_loop.py"
    script.write_text(
        "from __future__ import annotations\n\nimport sys\n\nimport numpy as np\nimport pandas as pd\n\n\n"
        + inspect.getsource(seed_loop)
        + "\n\nseed_loop(sys.argv[1]).to_csv(sys.argv[2], index=False)\n"
    )
    return script


def prepare(folder: Path, size: str, values: str, *, keep_npz: bool = True) -> tuple[c.Layout, Path, Path]:
    """Write the npz of ``size`` and convert it; print how long both took."""
    sizes = c.layout(size)
    npz, store = folder / f"{size}.npz", folder / f"{size}.zarr"
    print(f"\n== {sizes.describe()}; values {values}")
    write = c.timed(lambda: c.write_fz_npz(npz, sizes, values=values))
    convert = c.run_process(c.memoxr_cmd("convert", str(npz), str(store), "-q"))
    print(f"  npz {c.disk_gb(npz):.3f} GB written in {write:.1f} s; memoxr convert {convert.wall:.1f} s "
          f"-> store {c.disk_gb(store):.3f} GB on disk")
    if not keep_npz:
        npz.unlink()
    return sizes, npz, store


def compare(folder: Path, size: str, values: str, repeat: int) -> None:
    """The four whole processes on one size, interleaved; table, ratios and peak RSS."""
    sizes, npz, store = prepare(folder, size, values)
    seed = write_seed_script(folder)
    out = folder / "stats.csv"
    variants = {
        "seed loop": lambda: c.run_process([sys.executable, str(seed), str(npz), str(out)], env=c.SAME_ALLOCATOR),
        "memoxr store": lambda: c.run_process(c.memoxr_cmd("calculate", "--input", str(store), "-q",
                                                           "--stats-csv", str(out), "--overwrite")),
        "memoxr npz": lambda: c.run_process(c.memoxr_cmd("calculate", "--input", str(npz), "-q",
                                                         "--stats-csv", str(out), "--overwrite")),
        "read store": lambda: c.run_process([sys.executable, "-c", READ_CODE, str(store)], env=c.SAME_ALLOCATOR),
    }
    c.warm(npz, store)
    results = c.interleave(variants, repeat, before_each=lambda _: out.unlink(missing_ok=True))
    c.print_table(results, gb=sizes.raw_gb, title=f"  {repeat} interleaved rounds, whole processes:")
    c.print_ratio(results, "memoxr store", "seed loop", "memoxr store / seed loop")
    c.print_ratio(results, "memoxr npz", "seed loop", "memoxr npz / seed loop")
    c.print_ratio(results, "memoxr store", "read store", "memoxr store / read store")
    c.print_rss(results)
    for path in (npz, out):
        path.unlink(missing_ok=True)


#: A child process: peak of numpy and Python allocations of ``calculate`` on one store, in MB.
TRACED_PEAK = (
    "import sys, tracemalloc, dask\n"
    "from memoxr import workflows\n"
    "dask.config.set(scheduler='synchronous')\n"
    "tracemalloc.start()\n"
    "workflows.calculate(sys.argv[1])\n"
    "print(round(tracemalloc.get_traced_memory()[1] / 2**20))\n"
)


def rss_flatness(folder: Path, gbs: list[float], values: str, repeat: int) -> None:
    """Peak RSS of ``memoxr calculate`` on stores of each size in ``gbs`` (``XGB-wide``: the same classes
    and training samples, only the influence grows, so any growth is memory that follows the data)."""
    folder = folder / "rss"  # its own folder: a size may also be in --sizes
    folder.mkdir(exist_ok=True)
    stores = {}
    for gb in gbs:
        _, _, store = prepare(folder, f"{gb:g}gb-wide", values, keep_npz=False)
        stores[f"calculate {gb:g} GB"] = store
    out = folder / "rss.csv"
    variants = {name: (lambda s=store: c.run_process(c.memoxr_cmd("calculate", "--input", str(s), "-q",
                                                                  "--stats-csv", str(out), "--overwrite")))
                for name, store in stores.items()}
    results = c.interleave(variants, repeat)
    print(f"\n== peak RSS of memoxr calculate, {repeat} interleaved rounds")
    c.print_table(results)
    c.print_rss(results)
    names = list(results)
    first = statistics.median(cast(c.ProcRun, r).maxrss_mb for r in results[names[0]])
    for name in names[1:]:
        rss = statistics.median(cast(c.ProcRun, r).maxrss_mb for r in results[name])
        print(f"  ratio peak RSS {name} / {names[0]}: {rss / first:.2f}x (medians)")
    # What of that is memoxr's own (numpy and Python allocations), one chunk at a time.
    for name, store in stores.items():
        traced = subprocess.run([sys.executable, "-c", TRACED_PEAK, str(store)], check=True,
                                capture_output=True, text=True).stdout.strip()
        print(f"  traced peak (tracemalloc, synchronous scheduler) {name}: {traced} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["cifar", "imagenet", "1gb-balanced", "1gb-ragged"],
                        help=c.LAYOUT_HELP)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--rss-gb", nargs="*", type=float, default=[],
                        help="also compare peak RSS of calculate on XGB-wide stores of these sizes, e.g. 1 4")
    parser.add_argument("--values", choices=["quantized", "gaussian"], default="quantized")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the data (default: a temp folder)")
    args = parser.parse_args(argv)
    c.byte_compile()

    print(f"python {sys.version.split()[0]}; memoxr as {' '.join(c.memoxr_cmd())}")
    with tempfile.TemporaryDirectory(dir=c.workdir(args.workdir)) as tmp:
        for size in args.sizes:
            compare(Path(tmp), size, args.values, args.repeat)
        if args.rss_gb:
            rss_flatness(Path(tmp), args.rss_gb, args.values, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
