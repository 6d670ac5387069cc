"""Benchmark: ``memoxr calculate`` of another memoxr checkout against this one, as whole processes.

Run ``python -m memoxr.benchmarks.versions --old CHECKOUT STORE [STORE ...] --repeat 7`` with
``CHECKOUT`` a source tree of the other version (``git worktree add /tmp/old REV``) and each
``STORE`` an influence store (``python -m memoxr.benchmarks.calculate --workdir DIR`` leaves
``cifar.zarr`` and ``imagenet.zarr`` there). Rounds are interleaved, each starting from the other
version; the other version runs from its checkout (``PYTHONPATH``) with this environment's
libraries. Printed per store: median and min-max wall time of each, the ratio of medians and the
range of per-round ratios, and whether every run of both wrote the same per-class CSV, byte for byte
(a refactor must not change a number). Nothing is asserted.

With ``--library``, each run is ``calculate`` as a library user's process makes it instead:
``python -c`` importing memoxr and calling :func:`memoxr.workflows.calculate` (none of the command's
own start-up arrangements: lean imports, allocator, garbage collector, scheduler), which writes the
same CSV.

With ``--convert``, each ``.npz`` among the inputs is converted by each version into a store of its
own (``memoxr convert``, timed, interleaved the same way), and each version's ``calculate`` then
reads its own store: what a change of the store's encoding does to both commands.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from memoxr.benchmarks import _common as c


def _run(python_args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *python_args], check=True, env=env, cwd=tempfile.gettempdir(),
                   stdout=subprocess.DEVNULL)


#: ``calculate`` as a library user's process makes it: ``python -c LIBRARY_CALCULATE STORE CSV``.
LIBRARY_CALCULATE = ("import sys, memoxr.workflows\n"
                     "memoxr.workflows.calculate(sys.argv[1], stats_csv=sys.argv[2], overwrite=True)")


def _calculate(store: Path, csv: Path, *, library: bool) -> list[str]:
    """Python's arguments for ``calculate`` of ``store`` writing the table to ``csv``: the command, or the library."""
    if library:
        return ["-c", LIBRARY_CALCULATE, str(store), str(csv)]
    return ["-m", "memoxr", "calculate", "--input", str(store), "-q", "--stats-csv", str(csv), "--overwrite"]


def _collect(csvs: dict[str, Path], written: set[bytes], name: str) -> None:
    """The hash of ``name``'s last CSV, untimed, before its next run writes it again."""
    if csvs[name].exists():
        written.add(hashlib.sha256(csvs[name].read_bytes()).digest())
        csvs[name].unlink()


def _report(label: str, results: c.Results, note: str = "") -> None:
    times = {name: c.seconds(runs) for name, runs in results.items()}
    old, new = (statistics.median(times[name]) for name in ("old", "new"))
    ratios = sorted(n / o for o, n in zip(times["old"], times["new"], strict=True))
    print(f"{label}: old {old:.2f} s ({min(times['old']):.2f}-{max(times['old']):.2f}), "
          f"new {new:.2f} s ({min(times['new']):.2f}-{max(times['new']):.2f}); new/old {new / old:.2f}x "
          f"(per round {ratios[0]:.2f}-{ratios[-1]:.2f}x){note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path, help="influence stores to run calculate on")
    parser.add_argument("--old", type=Path, required=True, help="source checkout of the other version")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--convert", action="store_true",
                        help="convert each .npz with each version (timed), then calculate from each version's store")
    parser.add_argument("--library", action="store_true",
                        help="run calculate as a library user's process does (memoxr.workflows.calculate in python -c)")
    args = parser.parse_args(argv)
    c.byte_compile(args.old)
    variants = {"old": dict(os.environ, PYTHONPATH=str(args.old)), "new": dict(os.environ)}
    variants["new"].pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.stores:
            stores = dict.fromkeys(variants, source)
            if args.convert and source.suffix == ".npz":
                stores = {name: Path(tmp) / f"{name}.zarr" for name in variants}
                convert = {name: functools.partial(_run, ["-m", "memoxr", "convert", str(source), str(stores[name]), "-q",
                                                          "--overwrite"], env) for name, env in variants.items()}
                _report(f"convert {source.name}", c.interleave(convert, args.repeat))
            csvs = {name: Path(tmp) / f"{name}.csv" for name in variants}
            written: set[bytes] = set()  # every run's per-class CSV, both versions
            calculate = {name: functools.partial(_run, _calculate(stores[name], csvs[name], library=args.library), env)
                         for name, env in variants.items()}
            collect = functools.partial(_collect, csvs, written)
            results = c.interleave(calculate, args.repeat, before_each=collect)
            for name in variants:
                collect(name)
            label = (f"calculate {source.name}" + (" as a library" if args.library else "")
                     + (" (each version's own store)" if stores["old"] != source else ""))
            _report(label, results, f"; every run's per-class CSV identical: {len(written) == 1}")


if __name__ == "__main__":
    main()
