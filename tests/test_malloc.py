"""The command line's allocator settings (memoxr/_malloc.py): applied once, never over the user's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from memoxr.compute import malloc as _malloc

PROBE = "from memoxr.compute import malloc as _malloc; print(_malloc.keep_freed_buffers())"


def _probe(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings are Linux-only")
def test_applied_on_glibc_unless_the_user_set_malloc_variables():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    libc = subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout.lower()
    expected = "True" if ("glibc" in libc or "gnu libc" in libc) else "False"
    assert _probe(clean) == expected
    assert _probe({**clean, "MALLOC_ARENA_MAX": "4"}) == "False"


def test_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(_malloc.sys, "platform", "darwin")
    assert _malloc.keep_freed_buffers() is False


def test_cli_results_identical_with_and_without(tmp_path, ragged_store):
    """The settings change where buffers come from, never a number: same CSV both ways."""

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    outs = []
    for name, env in (("kept", clean), ("default", {**clean, "MALLOC_ARENA_MAX": "8"})):
        out = tmp_path / f"{name}.csv"
        subprocess.run([sys.executable, "-m", "memoxr", "calculate", "--input", str(ragged_store), "-q",
                        "--stats-csv", str(out)], env=env, check=True, capture_output=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
