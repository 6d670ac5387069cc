"""Benchmark: start-up of the memoxr CLI and of ``import memoxr``, as whole processes.

Run ``python -m memoxr.benchmarks.startup --repeat 10``.

Interleaved (each round starts from a different command), ``--repeat`` rounds of:

1. ``python -c pass``                  the interpreter alone (baseline)
2. ``python -c "import numpy, pandas"`` what the seed script imports
3. ``python -c "import memoxr"``
4. ``memoxr --help``                    (``python -m memoxr --help``)
5. ``memoxr convert --help``

Printed: median and min-max wall time of each and its ratio to the baseline and
to the seed's imports; then the 10 modules with the largest cumulative import
time in ``python -X importtime -c "import memoxr.workflows"`` (what ``memoxr
calculate`` imports before it reads anything), from one run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from memoxr.benchmarks import _common as c


def commands() -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "import numpy, pandas": [py, "-c", "import numpy, pandas"],
        "import memoxr": [py, "-c", "import memoxr"],
        "memoxr --help": c.memoxr_cmd("--help"),
        "memoxr convert --help": c.memoxr_cmd("convert", "--help"),
    }


def import_times(module: str, top: int = 10) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the ``top`` slowest imports of ``module``, one run."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
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

    variants = {name: (lambda cmd=cmd: c.run_process(cmd)) for name, cmd in commands().items()}
    for cmd in commands().values():  # one untimed run each: bytecode compiled, files in the page cache
        c.run_process(cmd)
    results = c.interleave(variants, args.repeat)
    c.print_table(results, title=f"{args.repeat} interleaved rounds, whole processes ({sys.executable}):")
    for name in list(variants)[2:]:
        c.print_ratio(results, name, "python -c pass", f"{name} / python -c pass")
        c.print_ratio(results, name, "import numpy, pandas", f"{name} / import numpy, pandas")
    print(f"\ntop {args.top} by cumulative import time, python -X importtime -c 'import memoxr.workflows' (one run):")
    print(f"  {'cumulative ms':>14}{'self ms':>9}  module")
    for cumulative, own, module in import_times("memoxr.workflows", args.top):
        print(f"  {cumulative / 1000:>14.1f}{own / 1000:>9.1f}  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
