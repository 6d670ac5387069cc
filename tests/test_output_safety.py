"""Unusable output locations, all-or-none outputs, and partials left by killed local writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memoxr.cli import main
from memoxr.convert import convert_npz
from memoxr.estimate import write_trials
from memoxr.io.storage import check_writable, remove_stale_partials

from conftest import SMALL_CHUNKS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def inputs(tmp_path, ragged_npz, ragged_store):
    """Valid inputs for every command, so that only the output can be what is wrong."""
    rng = np.random.default_rng(3)
    trials = {
        "mask": rng.random((12, 20)) < 0.6, "train_correct": rng.random((12, 20)) < 0.8,
        "test_correct": rng.random((12, 9)) < 0.6, "tr_labels": np.arange(20) % 2, "tt_labels": np.arange(9) % 2,
    }
    trials["mask"][0], trials["mask"][1] = True, False
    write_trials(trials, tmp_path / "trials.npz")
    for epoch in range(3):
        np.save(tmp_path / f"loss_e{epoch}.npy", rng.random(20).astype(np.float32))
    mask = np.zeros(20, dtype=bool)
    mask[:4] = True
    np.save(tmp_path / "mask.npy", mask)
    dyn = tmp_path / "dyn.zarr"
    result = run("ingest", tmp_path / "loss_e{epoch}.npy", dyn, "--truth", f"is_mislabeled={tmp_path / 'mask.npy'}", "-q")
    assert result.exit_code == 0, result.output
    return {"npz": ragged_npz, "store": ragged_store, "trials": tmp_path / "trials.npz", "dyn": dyn,
            "losses": tmp_path / "loss_e{epoch}.npy"}


# Each command with its output argument as {out}.
COMMANDS = {
    "convert": ["convert", "{npz}", "{out}", "-q"],
    "calculate-zarr": ["calculate", "--input", "{store}", "--output", "{out}", "-q"],
    "calculate-npz": ["calculate", "--input", "{store}", "--output", "{out}", "-q"],
    "calculate-stats-csv": ["calculate", "--input", "{store}", "--stats-csv", "{out}", "-q"],
    "update-csv": ["update-csv", "--influence-file", "{store}", "--csv-file", "{out}", "-q"],
    "estimate": ["estimate", "{trials}", "{out}", "-q"],
    "ingest": ["ingest", "{losses}", "{out}", "-q"],
    "evaluate-csv": ["evaluate", "{dyn}", "--mask", "is_mislabeled", "--proxy", "csl", "--csv", "{out}"],
    "plot": ["plot", "{store}", "{out}", "-q"],
    "demo": ["demo", "--output", "{out}", "-q"],
}


def _unusable(kind: str, tmp_path: Path, name: str) -> tuple[Path, str]:
    """An output path ``name`` that cannot be written, and the reason the message must give."""
    if kind == "parent-is-a-file":
        (tmp_path / "plain.txt").write_text("not a folder")
        return tmp_path / "plain.txt" / "sub" / name, "is a file, not a folder"
    if kind == "dangling-symlink":
        link = tmp_path / name
        if not link.is_symlink():
            link.symlink_to(tmp_path / "gone" / "target")
        return link, "is a dangling symlink"
    # Tests run as root, whom permission bits do not stop; sysfs refuses new entries even to root.
    folder = Path("/sys/kernel")
    try:
        os.mkdir(folder / "memoxr-probe")
    except OSError:
        return folder / name, "cannot write in folder '/sys/kernel'"
    os.rmdir(folder / "memoxr-probe")
    pytest.skip("no folder here refuses writes to this user")


@pytest.mark.parametrize("kind", ["parent-is-a-file", "dangling-symlink", "unwritable-folder"])
def test_unusable_output_is_one_line_exit_2_and_nothing_written(tmp_path, inputs, kind):
    for name in COMMANDS:  # create every unusable path first: the folder must not change after
        _unusable(kind, tmp_path, "out.npz" if name.endswith("npz") else "out")
    before = tree(tmp_path)
    for name, template in COMMANDS.items():
        out, reason = _unusable(kind, tmp_path, "out.npz" if name.endswith("npz") else "out")
        args = [a.format(out=out, **inputs) for a in template]
        result = run(*args)
        assert result.exit_code == 2, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (name, result.stderr)
        assert str(out) in lines[0] and reason in lines[0], (name, lines[0])
        assert "Traceback" not in result.output
        assert tree(tmp_path) == before, name  # nothing left behind, the inputs untouched
        assert not out.exists()


#: The commands whose {out} is a Zarr store (a folder).
STORE_COMMANDS = ("convert", "calculate-zarr", "estimate", "ingest")


@pytest.mark.parametrize("suffix", [".csv", ".JSON", ".npy", ".parquet"])
def test_store_named_like_a_file_is_refused_before_work(tmp_path, inputs, suffix, monkeypatch):
    """``--output scores.csv`` meant for ``--stats-csv`` would have made a folder named scores.csv."""
    import importlib

    def work(*args, **kwargs):
        raise AssertionError("the work started before the output's name was checked")

    for module, name in [("memoxr.convert", "open_fz_npz"), ("memoxr.workflows", "open_influence"),
                         ("memoxr.estimate.writers", "estimate"), ("memoxr.dynamics.ingest", "ingest_dataset")]:
        monkeypatch.setattr(importlib.import_module(module), name, work)
    before = tree(tmp_path)
    for name in STORE_COMMANDS:
        out = tmp_path / f"out{suffix}"
        result = run(*[a.format(out=out, **inputs) for a in COMMANDS[name]])
        assert result.exit_code == 2, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(out) in lines[0] and f"ends in '{suffix}'" in lines[0], (name, lines)
        assert "a Zarr store is a folder" in lines[0] and "Traceback" not in result.output
        also = {"calculate-zarr": "or .npz for the seed's layout; the per-class table goes to --stats-csv",
                "estimate": "or .npz for the FZ layout"}.get(name, "(or no suffix)")
        assert lines[0].endswith(also), (name, lines[0])  # what else the command takes
        assert tree(tmp_path) == before and not out.exists(), name


def test_store_names_without_a_file_suffix_are_accepted(tmp_path, ragged_store):
    from memoxr.io.storage import check_store_name
    from memoxr.workflows import calculate

    for name in ("scores.zarr", "scores", "scores.v2", "run.2026-11-25"):
        check_store_name(tmp_path / name)
    calculate(ragged_store, output=tmp_path / "scores")
    assert (tmp_path / "scores" / "zarr.json").is_file()


def test_check_writable_refuses_what_cannot_be_written(tmp_path):
    check_writable(tmp_path / "fine.zarr", overwrite=False)
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing
    from memoxr.errors import MemoxrInputError

    with pytest.raises(MemoxrInputError, match="parent folder .* does not exist"):
        check_writable(tmp_path / "no" / "such" / "x.zarr", overwrite=False)


def test_calculate_writes_both_outputs_or_none(tmp_path, ragged_store, monkeypatch):
    # A --stats-csv that cannot be written is found before anything is computed or written.
    (tmp_path / "plain.txt").write_text("x")
    result = run("calculate", "--input", ragged_store, "--output", tmp_path / "scores.zarr",
                 "--stats-csv", tmp_path / "plain.txt" / "stats.csv", "-q")
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr
    assert not (tmp_path / "scores.zarr").exists()

    # The CSV fails to land after the scores store was written: the store goes again.
    import memoxr.io.storage as storage

    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "stats.csv":
            raise OSError(5, "Input/output error", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    before = tree(tmp_path)
    result = run("calculate", "--input", ragged_store, "--output", tmp_path / "scores.zarr",
                 "--stats-csv", tmp_path / "stats.csv", "-q")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"Error: cannot use {str(tmp_path / 'stats.csv')!r}: Input/output error"
    assert tree(tmp_path) == before  # neither output, no partial

    result = run("calculate", "--input", ragged_store, "--output", tmp_path / "same.csv", "--stats-csv", tmp_path / "same.csv")
    assert result.exit_code == 2 and "same path" in result.stderr


def test_outputs_overlapping_an_input_or_each_other_are_refused_even_with_overwrite(tmp_path, inputs):
    """A helper found --overwrite destroying what it was told to replace around: the input replaced by
    its scores, a store replaced while the CSV went inside it. Each is refused before anything is touched."""
    store, scores = Path(inputs["store"]), tmp_path / "scores.zarr"
    assert run("calculate", "--input", store, "--output", scores, "-q").exit_code == 0
    cases = [
        (["calculate", "--input", store, "--output", store, "--overwrite"], f"--output {str(store)!r} is the same path as --input"),
        (["calculate", "--input", store, "--output", f"{store}/", "--overwrite"], "is the same path as --input"),
        (["calculate", "--input", store, "--output", scores, "--stats-csv", scores / "x.csv", "--overwrite"],
         f"--stats-csv {str(scores / 'x.csv')!r} lies inside --output {str(scores)!r}"),
        (["calculate", "--input", store, "--output", tmp_path / "new.zarr", "--stats-csv", store / "x.csv"],
         "lies inside --input"),
        (["calculate", "--input", scores / "..", "--output", tmp_path, "--overwrite"], "is the same path as --input"),
        (["estimate", inputs["trials"], inputs["trials"], "--overwrite"], "is the same path as --input"),
    ]
    before = tree(tmp_path)
    for args, message in cases:
        result = run(*args, "-q")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and "expected outputs apart from each other and from the inputs" in result.stderr
        assert tree(tmp_path) == before, args


def test_every_existing_output_is_named_at_once(tmp_path, ragged_store):
    """Both outputs exist: one refusal names both, so one rerun with new names (or --overwrite) does."""
    from memoxr.errors import OutputExistsError
    from memoxr.workflows import calculate

    scores, stats = tmp_path / "scores.zarr", tmp_path / "stats.csv"
    assert run("calculate", "--input", ragged_store, "--output", scores, "--stats-csv", stats, "-q").exit_code == 0
    before = tree(tmp_path)
    result = run("calculate", "--input", ragged_store, "--output", scores, "--stats-csv", stats, "-q")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: outputs {str(scores)!r} and {str(stats)!r} already exist; pass --overwrite to replace them"
    )
    with pytest.raises(OutputExistsError, match="outputs .* and .* already exist") as caught:
        calculate(ragged_store, output=scores, stats_csv=stats)
    assert caught.value.paths == (str(scores), str(stats))
    assert tree(tmp_path) == before
    stats.unlink()  # one left: named alone, as before
    result = run("calculate", "--input", ragged_store, "--output", scores, "--stats-csv", stats, "-q")
    assert result.stderr.strip() == f"Error: output {str(scores)!r} already exists; pass --overwrite to replace it"
    assert not stats.exists()


def test_stale_partials_of_dead_writers_are_removed_only(tmp_path, ragged_npz):
    target = tmp_path / "out.zarr"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".out.zarr.partial-{dead_pid}-0123abcd"
    live = tmp_path / f".out.zarr.partial-{os.getpid()}-0123abcd"  # a writer that still runs
    other = tmp_path / f".other.zarr.partial-{dead_pid}-0123abcd"  # another output's
    foreign = tmp_path / ".out.zarr.partial-notmine"
    for folder in (stale, live, other, foreign):
        folder.mkdir()
        (folder / "zarr.json").write_text("{}")
    convert_npz(ragged_npz, target, chunks=SMALL_CHUNKS)
    assert not stale.exists()
    assert live.exists() and other.exists() and foreign.exists()
    assert remove_stale_partials(target) == []


def test_killed_local_conversion_is_cleaned_up_by_the_rerun(tmp_path, ragged_npz):
    """SIGKILL mid-write (files seen in the partial folder); the rerun removes the partial and writes the same store."""
    (tmp_path / "ref").mkdir()
    reference = Path(convert_npz(ragged_npz, tmp_path / "ref" / "out.zarr", chunks=SMALL_CHUNKS))
    target = tmp_path / "out.zarr"
    script = tmp_path / "slow_convert.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from memoxr.convert import convert_npz
        from memoxr.influence import fz_npz
        from memoxr.io.chunks import BlockChunks
        original = fz_npz._load_class_block
        def slow(*args, **kwargs):
            time.sleep(0.3)
            return original(*args, **kwargs)
        fz_npz._load_class_block = slow
        convert_npz({ragged_npz!r}, {str(target)!r}, chunks=BlockChunks(2, 4, 3))
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "DASK_SCHEDULER": "synchronous"})
    try:
        partial = None
        deadline = time.monotonic() + 120
        while partial is None or len([p for p in (partial / "influence").rglob("*") if p.is_file()]) < 3:
            assert proc.poll() is None, "the conversion ended before it could be killed"
            assert time.monotonic() < deadline
            partial = next(tmp_path.glob(".out.zarr.partial-*"), None)
            time.sleep(0.02)
        assert partial.name.startswith(f".out.zarr.partial-{proc.pid}-")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert partial.exists() and not target.exists()  # what the kill left
    convert_npz(ragged_npz, target, chunks=SMALL_CHUNKS)
    assert list(tmp_path.glob(".out.zarr.*")) == []
    assert tree(target) == tree(reference)


def test_overwrite_replaces_an_output_only_by_one_of_its_kind(tmp_path, ragged_npz, ragged_store):
    """--overwrite never deletes a folder that is not a store, nor a folder to put a file in its place."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = run("convert", ragged_npz, folder, "--overwrite", "-q")
    assert result.exit_code == 2 and "exists and is not a Zarr store" in result.stderr, result.output
    assert tree(folder) == {"notes.txt": b"keep me"}
    folder = folder.rename(tmp_path / "precious.npz")
    result = run("calculate", "--input", ragged_store, "--output", folder, "--overwrite", "-q")
    assert result.exit_code == 2 and "is a folder; refusing to replace it with a file" in result.stderr, result.output
    assert tree(folder) == {"notes.txt": b"keep me"}
    assert [p.name for p in tmp_path.glob(".precious*")] == []


def test_calculate_overwrite_checks_every_output_kind_before_replacing_any(tmp_path, ragged_store):
    """With overwrite, a stats CSV path that is a folder is refused before the old scores store is touched."""
    from memoxr import workflows
    from memoxr.errors import MemoxrInputError

    scores = tmp_path / "scores.zarr"
    workflows.calculate(ragged_store, output=scores)
    before = tree(scores)
    folder = tmp_path / "stats.csv"
    folder.mkdir()
    with pytest.raises(MemoxrInputError, match="is a folder; refusing to replace it with a file"):
        workflows.calculate(ragged_store, output=scores, stats_csv=folder, overwrite=True)
    assert tree(scores) == before and folder.is_dir()


def test_object_storage_lost_mid_compute_is_a_connection_error_not_a_damaged_store():
    import dask
    import dask.array as da
    from botocore.exceptions import EndpointConnectionError

    from memoxr.compute.progress import compute
    from memoxr.errors import MemoxrInputError

    def fetch():
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    lost = da.from_delayed(dask.delayed(fetch)(), shape=(3,), dtype=float)
    with pytest.raises(MemoxrInputError, match=r"object storage at http://127.0.0.1:9 failed") as info:
        compute(lost)
    assert "damaged" not in str(info.value)


def test_a_writer_killed_mid_swap_leaves_the_old_output_restored(tmp_path):
    """Killed between moving the old store aside and the new one in: the rerun puts the old one back."""
    import subprocess
    import sys

    from memoxr.io.storage import remove_stale_partials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names a writer that no longer runs
    target = tmp_path / "est.zarr"
    aside = tmp_path / f".est.zarr.replaced-{dead.pid}-abcdef12"
    aside.mkdir()
    (aside / "zarr.json").write_text("{}")
    partial = tmp_path / f".est.zarr.partial-{dead.pid}-12345678"
    partial.mkdir()
    remove_stale_partials(target)
    assert (target / "zarr.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est.zarr"]
