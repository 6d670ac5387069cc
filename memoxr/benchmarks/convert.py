"""Benchmark: ``memoxr convert`` vs ``cp`` of the same npz, and candidate Blosc codecs on the real estimates.

Run ``python -m memoxr.benchmarks.convert --size 1gb-balanced --repeat 5`` (``--workdir`` for the
data: about three times the size on disk), and ``python -m memoxr.benchmarks.convert --codecs``.

Default mode: an FZ npz of ``--size`` is written class by class (influence
``--values``: ``quantized`` by default, like the FZ estimates) and read once so it
is in the page cache. Then, interleaved, ``--repeat`` rounds (each starting from
a different variant) of two whole processes, the previous output removed
untimed before each:

1. ``cp NPZ COPY``
2. ``memoxr convert NPZ STORE -q`` (default chunk size and compressor)

Printed: median and min-max wall time, MB/s of npz, the ratio convert/cp (ratio of
medians, median and range of per-round ratios), and CPU time (user + sys, from
``os.wait4``) over wall time: 1.0 means one core busy throughout, 2.0 two.

``--codecs``: on the shipped real estimates (``memoxr.sample_path()``, the
influence array as float32, NaN padding included, NOT tiled: tiling a small
buffer inflates LZ4-HC's ratio), for each candidate Blosc codec and shuffle
(``numcodecs.blosc.use_threads = False``, so one core): compression ratio, and
encode and decode MB/s of uncompressed data in CPU time (``time.process_time``,
the buffer encoded/decoded repeatedly for at least ``--min-seconds``), medians
of 3. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from memoxr.benchmarks import _common as c

#: (cname, clevel, shuffle) candidates.
CODECS = [
    ("lz4", 5, "noshuffle"), ("lz4", 1, "noshuffle"), ("lz4", 9, "noshuffle"), ("lz4", 5, "shuffle"),
    ("lz4hc", 1, "shuffle"), ("lz4hc", 5, "shuffle"), ("zstd", 1, "noshuffle"), ("zstd", 1, "shuffle"),
    ("blosclz", 5, "noshuffle"), ("blosclz", 5, "shuffle"),
]
SHUFFLES = {"noshuffle": 0, "shuffle": 1}  # numcodecs.Blosc's constants


def convert_vs_cp(folder: Path, size: str, values: str, repeat: int) -> None:
    sizes = c.layout(size)
    npz, copy, store = folder / "bench.npz", folder / "copy.npz", folder / "bench.zarr"
    print(f"{sizes.describe()}; values {values}")
    c.write_fz_npz(npz, sizes, values=values)
    mb = npz.stat().st_size / c.MB
    c.warm(npz)
    variants = {
        "cp": lambda: c.run_process(["cp", str(npz), str(copy)]),
        "memoxr convert": lambda: c.run_process(c.memoxr_cmd("convert", str(npz), str(store), "-q")),
    }

    def clean(name: str) -> None:  # each variant's own previous output, so both remain at the end
        if name == "cp":
            copy.unlink(missing_ok=True)
        else:
            shutil.rmtree(store, ignore_errors=True)

    results = c.interleave(variants, repeat, before_each=clean)
    print(f"npz {mb:.0f} MB; store {c.disk_gb(store) * 1000:.0f} MB on disk")
    c.print_table(results, gb=mb / 1000, title=f"{repeat} interleaved rounds, whole processes (GB/s of npz):")
    c.print_ratio(results, "memoxr convert", "cp", "memoxr convert / cp")
    c.print_rss(results)


def throughput(func: Callable[[object], object], arg: object, data_mb: float, min_seconds: float) -> float:
    """MB/s of CPU time: ``func(arg)`` called until ``min_seconds`` of process time have passed."""
    calls, start = 0, time.process_time()
    while True:
        func(arg)
        calls += 1
        spent = time.process_time() - start
        if spent >= min_seconds:
            return calls * data_mb / spent


def codecs(min_seconds: float) -> None:
    import numcodecs
    from numcodecs import blosc

    import memoxr

    blosc.use_threads = False
    data = np.ascontiguousarray(memoxr.open_influence(memoxr.sample_path()).influence.values, dtype=np.float32)
    data_mb = data.nbytes / c.MB
    print(f"real estimates: {memoxr.sample_path()}, influence {data.shape} float32 = {data_mb:.1f} MB "
          f"(not tiled); numcodecs {numcodecs.__version__}, one thread, CPU time, medians of 3")
    print(f"  {'codec':<24}{'ratio':>8}{'encode MB/s':>14}{'decode MB/s':>14}")
    for cname, level, shuffle in CODECS:
        codec = numcodecs.Blosc(cname=cname, clevel=level, shuffle=SHUFFLES[shuffle])
        encoded = codec.encode(data)
        assert np.array_equal(np.frombuffer(codec.decode(encoded), np.float32).reshape(data.shape), data,
                              equal_nan=True)
        enc = statistics.median(throughput(codec.encode, data, data_mb, min_seconds) for _ in range(3))
        dec = statistics.median(throughput(codec.decode, encoded, data_mb, min_seconds) for _ in range(3))
        print(f"  {f'{cname} {level} {shuffle}':<24}{data.nbytes / len(encoded):>8.2f}{enc:>14.0f}{dec:>14.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1gb-balanced", help=c.LAYOUT_HELP)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--values", choices=["quantized", "gaussian"], default="quantized")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the data (default: a temp folder)")
    parser.add_argument("--codecs", action="store_true", help="compare Blosc codecs on the real estimates instead")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="--codecs: CPU time per measurement")
    args = parser.parse_args(argv)
    c.byte_compile()

    if args.codecs:
        codecs(args.min_seconds)
        return 0
    with tempfile.TemporaryDirectory(dir=c.workdir(args.workdir)) as tmp:
        convert_vs_cp(Path(tmp), args.size, args.values, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
