"""Benchmark: start-up of the memoxr CLI and of ``import memoxr``, as whole processes.

Run ``python -m memoxr.benchmarks.startup --repeat 10``.

Interleaved (each round starts from a different command), ``--repeat`` rounds of:

1. ``python -c pass``                  the interpreter alone (baseline)
2. ``python -c "import numpy, pandas"`` what the seed script imports
3. ``python -c "import memoxr"``
4. ``memoxr --help``                    (``python -m memoxr --help``)
5. ``memoxr convert --help``
6. calculate's imports               what ``memoxr calculate`` of a local store imports before
                                      it reads anything (``memoxr.workflows``, ``dask.array``,
                                      ``numcodecs``; no zarr-python, see ``memoxr/io/local_zarr.py``),
                                      as the command does: dask.array without
                                      scipy, jinja2 or numpy's docstrings
                                      (:mod:`memoxr.compute.lean_imports`), the garbage
                                      collector paused and what is alive frozen at exit
                                      (:mod:`memoxr.compute.collector`)
7. calculate's imports, as a library the same imports as a library user's process makes them
8. ... scipy hidden only, 9. ... scipy and jinja2 hidden, 10. ... collected as usual: variant 6
   with the start-up's other parts left out, to measure each part

Printed: median and min-max wall time of each and its ratio to the baseline and
to the seed's imports, 6 against 7, and each part (8 against 7, 9 against 8, 10 against 9,
6 against 10); then the 10 modules with the largest cumulative import time of variant 6,
from one run of ``python -X importtime``.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from memoxr.benchmarks import _common as c

#: What ``calculate`` on a local store imports before it reads: its chunks' codecs, no zarr-python
#: (``memoxr/io/local_zarr.py``); from an npz it needs no numcodecs either.
CALCULATE_IMPORTS = "import memoxr.workflows, dask.array, numcodecs"


def _lean_without(*targets: str) -> str:
    """``LEAN_IMPORTS`` with the parts of the lean import for ``targets`` left out."""
    drop = "".join(f"L._TARGETS.pop({name!r}); " for name in targets)
    return f"import memoxr.compute.lean_imports as L; {drop}L.import_dask_array_lean(); "


#: The lean import's parts, each measured against the variant before it.
PARTS = {
    "calculate's imports, scipy hidden only": ("calculate's imports, as a library", "scipy hidden"),
    "calculate's imports, scipy and jinja2 hidden": ("calculate's imports, scipy hidden only", "jinja2 hidden"),
    "calculate's imports, collected as usual": ("calculate's imports, scipy and jinja2 hidden",
                                                "numpy's docstrings not copied"),
    "calculate's imports": ("calculate's imports, collected as usual", "collector paused, frozen at exit"),
}


def commands() -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "import numpy, pandas": [py, "-c", "import numpy, pandas"],
        "import memoxr": [py, "-c", "import memoxr"],
        "memoxr --help": c.memoxr_cmd("--help"),
        "memoxr convert --help": c.memoxr_cmd("convert", "--help"),
        "calculate's imports": [py, "-c", c.as_the_command(CALCULATE_IMPORTS)],
        "calculate's imports, as a library": [py, "-c", CALCULATE_IMPORTS],
        "calculate's imports, scipy hidden only": [
            py, "-c", _lean_without("dask.array", "dask.widgets") + CALCULATE_IMPORTS,
        ],
        "calculate's imports, scipy and jinja2 hidden": [py, "-c", _lean_without("dask.array") + CALCULATE_IMPORTS],
        "calculate's imports, collected as usual": [py, "-c", c.LEAN_IMPORTS + CALCULATE_IMPORTS],
    }


def import_times(code: str, top: int = 10) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the ``top`` slowest imports made by ``code``, one run."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                         capture_output=True, text=True, check=True).stderr
    rows = []
    for line in err.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--top", type=int, default=10, help="modules listed from -X importtime (default 10)")
    args = parser.parse_args(argv)
    c.byte_compile()

    variants = {name: (lambda cmd=cmd: c.run_process(cmd)) for name, cmd in commands().items()}
    for cmd in commands().values():  # one untimed run each: bytecode compiled, files in the page cache
        c.run_process(cmd)
    results = c.interleave(variants, args.repeat)
    c.print_table(results, title=f"{args.repeat} interleaved rounds, whole processes ({sys.executable}):")
    for name in list(variants)[2:]:
        c.print_ratio(results, name, "python -c pass", f"{name} / python -c pass")
        c.print_ratio(results, name, "import numpy, pandas", f"{name} / import numpy, pandas")
    c.print_ratio(results, "calculate's imports", "calculate's imports, as a library", "as the command / as a library")
    for name, (before, part) in PARTS.items():
        saved = statistics.median(c.seconds(results[before])) - statistics.median(c.seconds(results[name]))
        c.print_ratio(results, name, before, f"part, {part}: {name} / {before} ({saved:.3f} s less)")
    print(f"\ntop {args.top} by cumulative import time of calculate's imports, as the command makes them (one run):")
    print(f"  {'cumulative ms':>14}{'self ms':>9}  module")
    for cumulative, own, module in import_times(c.as_the_command(CALCULATE_IMPORTS), args.top):
        print(f"  {cumulative / 1000:>14.1f}{own / 1000:>9.1f}  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
