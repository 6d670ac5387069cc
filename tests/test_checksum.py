"""The source's sha256: read block by block, computed in the background, stopped when a conversion fails."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import memoxr
from memoxr.cli.main import main
from memoxr.convert import convert_npz
from memoxr.errors import MemoxrInputError, OutputExistsError
from memoxr.io import checksum
from memoxr.io.checksum import BackgroundChecksum, local_sha256
from memoxr.io.npz import file_sha256

from conftest import SMALL_CHUNKS, write_npz


@given(data=st.binary(max_size=100), block=st.integers(1, 40))
def test_local_sha256_is_hashlib_at_every_block_boundary(tmp_path_factory, data, block):
    path = tmp_path_factory.mktemp("sha") / "f.bin"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checksum, "BLOCK", block)  # files of zero, one and many blocks, some partial
        assert local_sha256(path) == hashlib.sha256(data).hexdigest()
        assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_local_sha256_stops_when_asked(tmp_path, monkeypatch):
    (tmp_path / "f.bin").write_bytes(b"x" * 100)
    monkeypatch.setattr(checksum, "BLOCK", 10)
    stop = threading.Event()
    stop.set()
    assert local_sha256(tmp_path / "f.bin", stop=stop) == ""


def test_background_checksum_gives_the_digest_or_its_error(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"hello")
    assert BackgroundChecksum(tmp_path / "f.bin").result() == hashlib.sha256(b"hello").hexdigest()
    with pytest.raises(FileNotFoundError):
        BackgroundChecksum(tmp_path / "missing.bin").result()


def waits_to_be_cancelled(target, stop):
    return "" if stop.wait(timeout=5) else "never cancelled"


def test_cancel_stops_a_background_checksum():
    running = BackgroundChecksum("any", waits_to_be_cancelled)
    running.cancel(wait=True)
    assert running.cancelled
    with pytest.raises(CancelledError, match="'any' gave no digest"):  # never an empty digest
        running.result()


def test_cancel_after_the_digest_keeps_it(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"hello")
    done = BackgroundChecksum(tmp_path / "f.bin")
    digest = done.result()
    done.cancel()
    assert not done.cancelled and done.result() == digest == hashlib.sha256(b"hello").hexdigest()


def test_file_urls_are_hashed_block_by_block(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"x" * 100)
    assert file_sha256(f"file://{tmp_path / 'f.bin'}", block=7) == hashlib.sha256(b"x" * 100).hexdigest()


def test_a_failed_conversion_cancels_the_given_checksum(tmp_path, ragged_arrays):
    broken = dict(ragged_arrays)
    del broken["tr_mem"]
    path = write_npz(tmp_path / "bad.npz", broken)
    running = BackgroundChecksum(path, waits_to_be_cancelled)
    with pytest.raises(MemoxrInputError, match="tr_mem"):
        convert_npz(path, tmp_path / "bad.zarr", source_checksum=running)
    assert running.cancelled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_a_bad_argument_cancels_the_given_checksum(tmp_path, ragged_npz):
    running = BackgroundChecksum(ragged_npz, waits_to_be_cancelled)
    with pytest.raises(TypeError):
        convert_npz(ragged_npz, 12345, source_checksum=running)
    assert running.cancelled


def test_a_cancelled_checksum_is_refused_not_recorded_empty(tmp_path, ragged_npz, balanced_npz):
    running = BackgroundChecksum(ragged_npz, waits_to_be_cancelled)
    convert_npz(balanced_npz, tmp_path / "taken.zarr")
    with pytest.raises(OutputExistsError):
        convert_npz(ragged_npz, tmp_path / "taken.zarr", source_checksum=running)
    with pytest.raises(MemoxrInputError, match="source_checksum: .* received a cancelled one"):
        convert_npz(ragged_npz, tmp_path / "retry.zarr", source_checksum=running)  # the same object again
    assert not (tmp_path / "retry.zarr").exists()


def test_a_failed_checksum_leaves_no_store(tmp_path, ragged_npz):
    def unreadable(target, stop):
        raise OSError("the source went away")

    with pytest.raises(OSError, match="the source went away"):
        convert_npz(ragged_npz, tmp_path / "out.zarr", source_checksum=BackgroundChecksum(ragged_npz, unreadable))
    assert not (tmp_path / "out.zarr").exists()


def test_a_checksum_of_another_file_is_refused(tmp_path, ragged_npz, balanced_npz):
    running = BackgroundChecksum(balanced_npz, waits_to_be_cancelled)
    with pytest.raises(MemoxrInputError, match=r"source_checksum: expected the checksum of .*ragged\.npz.*balanced\.npz"):
        convert_npz(ragged_npz, tmp_path / "out.zarr", source_checksum=running)
    assert running.cancelled and not (tmp_path / "out.zarr").exists()


def test_the_same_file_by_another_path_is_accepted(tmp_path, ragged_npz, monkeypatch):
    monkeypatch.chdir(Path(ragged_npz).parent)
    relative = f"./{Path(ragged_npz).name}"
    store = convert_npz(ragged_npz, tmp_path / "out.zarr", source_checksum=BackgroundChecksum(relative))
    assert memoxr.open_influence(store).attrs["source_sha256"] == hashlib.sha256(Path(ragged_npz).read_bytes()).hexdigest()


def test_the_given_checksum_is_the_one_recorded(tmp_path, ragged_npz):
    given = BackgroundChecksum(ragged_npz, lambda target, stop: "f" * 64)  # not the file's: proves it is used
    store = convert_npz(ragged_npz, tmp_path / "out.zarr", chunks=SMALL_CHUNKS, source_checksum=given)
    assert memoxr.open_influence(store).attrs["source_sha256"] == "f" * 64


def test_the_command_records_the_sha256_it_started_early(tmp_path, ragged_npz, monkeypatch):
    import memoxr.convert
    given = []

    def recording(*args, **kwargs):
        given.append(kwargs["source_checksum"])
        return convert_npz(*args, **kwargs)

    monkeypatch.setattr(memoxr.convert, "convert_npz", recording)
    result = CliRunner().invoke(main, ["convert", ragged_npz, str(tmp_path / "out.zarr"), "-q"])
    assert result.exit_code == 0, result.output
    assert isinstance(given[0], BackgroundChecksum) and given[0].target == ragged_npz  # started by the command
    recorded = memoxr.open_influence(tmp_path / "out.zarr").attrs["source_sha256"]
    assert recorded == hashlib.sha256(Path(ragged_npz).read_bytes()).hexdigest()


def test_the_command_starts_hashing_before_its_heavy_imports(tmp_path, ragged_npz):
    code = """
import sys
from memoxr.io import checksum
seen = []
start = checksum.BackgroundChecksum.__init__
def noting(self, *args, **kwargs):
    seen.append(sorted(name for name in ("numpy", "pandas", "xarray", "zarr") if name in sys.modules))
    start(self, *args, **kwargs)
checksum.BackgroundChecksum.__init__ = noting
from memoxr.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
print(seen)
"""
    out = subprocess.run([sys.executable, "-c", code, "convert", ragged_npz, str(tmp_path / "out.zarr"), "-q"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[[]]"  # one checksum, started with none of them imported
