"""The benchmark scripts import, their helpers work, and the in-process one runs on tiny data.

Nothing here times anything: the scripts print medians and ratios for people to read.
The whole-process scripts (calculate, convert, startup) take longer than a test should
on tiny data, so only their pieces are exercised.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from memoxr.benchmarks import _common as c

MODULES = ["_common", "calculate", "convert", "kernel", "plan", "ranks", "scores", "startup", "scaling", "versions"]


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_modules_import(name):
    module = importlib.import_module(f"memoxr.benchmarks.{name}")
    assert module.__doc__


def test_layouts():
    imagenet = c.layout("imagenet")
    assert len(imagenet.train) == 1000 and imagenet.ragged
    assert 732 <= min(imagenet.train) and max(imagenet.train) <= 1300 and set(imagenet.test) == {50}
    assert c.layout("cifar").train == (500,) * 100 and not c.layout("cifar").ragged
    assert abs(c.layout("1gb-balanced").padded_gb - 1.1) < 1e-9
    assert len(c.layout("4gb-ragged").train) == 4 * len(c.layout("1gb-ragged").train)
    with pytest.raises(ValueError, match="unknown size"):
        c.layout("huge")


def test_quantized_values_look_like_estimates():
    block = c.influence_block(np.random.default_rng(0), 200, 300)
    assert block.dtype == np.float32
    assert 0.7 < (block == 0).mean() < 0.95  # the real estimates: 84% exact zeros
    assert block.max() > 0.05


def test_interleave_rotates_the_first_variant():
    calls: list[str] = []
    variants = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    results = c.interleave(variants, 3)
    assert calls == list("abcbcacab")
    assert all(len(runs) == 3 for runs in results.values())
    c.print_ratio(results, "a", "b")


def test_run_process_reports_the_childs_own_peak_rss():
    ballast = np.ones(50_000_000 // 8)  # this process's RSS must not leak into the child's figure
    run = c.run_process([sys.executable, "-c", "pass"])
    assert run.wall > 0 and run.maxrss_mb > 0
    if c.GNU_TIME:
        assert run.maxrss_mb < 50
    del ballast
    with pytest.raises(RuntimeError, match="exited with 3"):
        c.run_process([sys.executable, "-c", "raise SystemExit(3)"])


def test_seed_script_matches_seed_loop_without_memoxr(tmp_path):
    from memoxr.benchmarks.calculate import write_seed_script
    from memoxr.benchmarks.scores import seed_loop

    npz, csv = tmp_path / "x.npz", tmp_path / "x.csv"
    c.write_fz_npz(npz, c.Layout("tiny", (30, 20, 25), (70, 90, 80)))
    script = write_seed_script(tmp_path)
    check = (f"import runpy, sys; sys.argv = ['seed', {str(npz)!r}, {str(csv)!r}]; "
             f"runpy.run_path({str(script)!r}, run_name='__main__'); assert 'memoxr' not in sys.modules")
    subprocess.run([sys.executable, "-c", check], check=True)
    pd.testing.assert_frame_equal(pd.read_csv(csv), seed_loop(npz), check_dtype=False)


def test_scores_benchmark_runs_on_tiny_data(tmp_path, capsys):
    from memoxr.benchmarks import scores

    assert scores.main(["--gb", "0.01", "--layout", "ragged", "--chunk-mb", "64", "--repeat", "1",
                        "--workdir", str(tmp_path / "new" / "folder")]) == 0  # created when missing
    out = capsys.readouterr().out
    assert "ratio memoxr / read:" in out and "ratio memoxr / seed loop:" in out


def test_kernel_benchmark_runs_on_tiny_data(tmp_path, capsys):
    from memoxr.benchmarks import kernel

    assert kernel.main(["--sizes", "cifar", "--chunks", "2", "--repeat", "1", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 chunks of (100, 500, 100) float32" in out  # CIFAR-100 size: one 20 MB chunk
    assert "ratio memoxr / numpy, seed:" in out and "ratio memoxr / floor:" in out


def test_ranks_benchmark_runs_on_tiny_data(tmp_path, capsys):
    from memoxr.benchmarks import ranks

    assert ranks.main(["--sizes", "cifar", "--repeat", "1", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "5 methods of (100, 500) scores, 50,000 kept each" in out
    assert "ratio memoxr / scipy:" in out and "ratio memoxr / floor:" in out


def test_wide_layouts_keep_the_samples_and_grow_the_influence():
    from memoxr.benchmarks._common import layout

    one, four = layout("1gb-wide"), layout("4gb-wide")
    assert one.train == four.train == layout("1gb-ragged").train
    assert four.test[0] == 4 * one.test[0] and four.padded_gb == 4 * one.padded_gb


def test_versions_benchmark_compares_two_checkouts(tmp_path, capsys, ragged_store):
    # This very checkout as "old": the two must write the same CSV.
    from pathlib import Path

    import memoxr
    from memoxr.benchmarks.versions import main

    checkout = Path(memoxr.__file__).resolve().parent.parent
    main([str(ragged_store), "--old", str(checkout), "--repeat", "1"])
    out = capsys.readouterr().out
    assert "new/old" in out and "per-class CSV identical: True" in out


def test_versions_benchmark_runs_calculate_as_a_library(tmp_path, capsys, ragged_store):
    from pathlib import Path

    import memoxr
    from memoxr.benchmarks.versions import main

    checkout = Path(memoxr.__file__).resolve().parent.parent
    main([str(ragged_store), "--old", str(checkout), "--repeat", "1", "--library"])
    out = capsys.readouterr().out.splitlines()[-1]
    assert out.startswith("calculate ragged.zarr as a library: old") and "identical: True" in out


def test_versions_benchmark_converts_with_each_version(tmp_path, capsys, ragged_npz):
    from pathlib import Path

    import memoxr
    from memoxr.benchmarks.versions import main

    checkout = Path(memoxr.__file__).resolve().parent.parent
    main([str(ragged_npz), "--old", str(checkout), "--repeat", "1", "--convert"])
    out = capsys.readouterr().out.splitlines()[-2:]
    assert out[0].startswith("convert ragged.npz: old") and "new/old" in out[0]
    assert out[1].startswith("calculate ragged.npz (each version's own store)") and "identical: True" in out[1]
