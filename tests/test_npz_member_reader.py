"""The converter's direct reader of stored npz members equals np.load for every kind of member."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest

import memoxr
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.errors import MemoxrInputError
from memoxr.influence import fz_npz

from conftest import RAGGED_TEST, RAGGED_TRAIN, write_npz


@pytest.mark.parametrize(
    "variant",
    ["float32", "float64", "fortran", "big_endian", "deflated"],
)
def test_every_member_kind_loads_like_np_load(tmp_path, variant):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=3)
    for key in [k for k in arrays if k.startswith("infl_matrix_class")]:
        m = arrays[key]
        arrays[key] = {
            "float32": m,
            "float64": m.astype(np.float64),
            "fortran": np.asfortranarray(m),
            "big_endian": m.astype(">f4"),
            "deflated": m,
        }[variant]
    path = write_npz(tmp_path / "x.npz", arrays, compressed=variant == "deflated")
    got = memoxr.open_influence(path, chunk_mb=1)["influence"].values
    for c, k in enumerate(range(len(RAGGED_TRAIN))):
        expected = np.asarray(arrays[f"infl_matrix_class{k}"], dtype=np.float32)
        n_tr, n_tt = expected.shape
        np.testing.assert_array_equal(got[c, :n_tr, :n_tt], expected)
        assert np.isnan(got[c, n_tr:]).all() and np.isnan(got[c, :, n_tt:]).all()


def test_truncated_member_is_a_clear_error(tmp_path):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=3)
    path = write_npz(tmp_path / "x.npz", arrays)
    layout = fz_npz.inspect_fz_npz(path, checksum=False)
    shape = (len(layout.train_index[1]), len(layout.test_index[1]))
    with pytest.raises(MemoxrInputError, match=r"key 'infl_matrix_class1': expected shape \(1, 1\)"):
        fz_npz._load_class_block(path, [1], [(1, 1)], 12, 11, False)
    # A member whose body is shorter than its header says, in an otherwise valid archive.
    last = len(RAGGED_TRAIN) - 1
    matrix = arrays[f"infl_matrix_class{last}"]
    header = io.BytesIO()
    np.lib.format.write_array(header, matrix)
    cut = tmp_path / "cut.npz"
    with zipfile.ZipFile(cut, "w") as archive:
        archive.writestr(f"infl_matrix_class{last}.npy", header.getvalue()[:-8])
    with pytest.raises(MemoxrInputError, match=rf"key 'infl_matrix_class{last}': header says shape \({matrix.shape[0]}, {matrix.shape[1]}\) of float32, expected {matrix.nbytes} bytes of data, received {matrix.nbytes - 8}"):
        fz_npz._load_class_block(str(cut), [last], [matrix.shape], 12, 11, False)
    assert shape == (RAGGED_TRAIN[1], RAGGED_TEST[1])


def test_bit_flip_in_a_stored_member_is_a_clear_error(tmp_path):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=3)
    path = write_npz(tmp_path / "x.npz", arrays)
    info = zipfile.ZipFile(path).getinfo("infl_matrix_class0.npy")
    data = bytearray(open(path, "rb").read())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 200] ^= 0x40  # inside the values
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(MemoxrInputError, match=r"key 'infl_matrix_class0': member is damaged \(CRC-32 mismatch\)"):
        fz_npz._load_class_block(str(bad), [0], [(RAGGED_TRAIN[0], RAGGED_TEST[0])], 12, 11, False)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize(
    "array",
    [np.zeros((5, 3), np.float32), np.zeros(0), np.arange(3), np.zeros(()), np.asfortranarray(np.ones((2, 3))),
     np.zeros((2, 3), ">f8"), np.zeros(4, bool), np.zeros((1, 2, 3, 4), "<U2"), np.zeros(2, [("a", "<i4")]),
     np.array([None, 1], dtype=object)],
    ids=["2d", "empty", "1d", "0d", "fortran", "big_endian", "bool", "unicode", "structured", "object"],
)
def test_npy_header_reads_as_numpy_does(array, version):
    # memoxr parses the header numpy writes itself (no ast.literal_eval); the result must be numpy's.
    from memoxr.io.npy import read_npy_header

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # numpy warns that format 3.0 is needed only for unicode field names
        warnings.simplefilter("ignore")
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    raw = buffer.getvalue()
    header = read_npy_header(io.BytesIO(raw), source="buffer", key="x", stored=len(raw))
    expected = io.BytesIO(raw)
    np.lib.format.read_magic(expected)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(expected)
    assert (header.shape, header.fortran_order, header.dtype) == (tuple(shape), fortran_order, dtype)


@pytest.mark.parametrize(
    "text",
    ["{'descr': '<f4', 'shape': (2,), }", "{'descr': 'x9', 'fortran_order': False, 'shape': (2,), }",
     "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "{'descr': '<f4', 'fortran_order': False, 'shape': (02,), }",
     "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", "[1, 2]", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a'), }"],
)
def test_unusual_npy_headers_get_numpy_s_checks(text):
    from memoxr.io.npy import read_npy_header

    padded = text.encode("latin1") + b" " * (63 - len(text) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded + bytes(64)
    with pytest.raises(MemoxrInputError, match="not a valid .npy array"):
        read_npy_header(io.BytesIO(raw), source="buffer", key="x", stored=len(raw))


def test_truncated_or_oversized_npy_headers_get_numpy_s_checks():
    from memoxr.io.npy import read_npy_header

    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }"
    truncated = b"\x93NUMPY\x01\x00" + (len(text) + 20).to_bytes(2, "little") + text
    oversized = b"\x93NUMPY\x02\x00" + (len(text) + 20000).to_bytes(4, "little") + text + b" " * 19999 + b"\n"
    for raw in (truncated, oversized):
        with pytest.raises(MemoxrInputError, match="not a valid .npy array"):
            read_npy_header(io.BytesIO(raw), source="buffer", key="x", stored=len(raw))


def test_small_members_read_in_one_go_equal_np_load_and_long_headers_fall_back(tmp_path):
    # Stored members up to 1 MB are read with one seek and one read (memoxr.io.npz); headers from a
    # 1 KB prefix, unless the header is longer, when zipfile streams the member as before.
    from memoxr.io.npz import _HEADER_PREFIX, open_npz, read_npz_headers

    long_names = np.zeros(3, dtype=[(f"field_{i:03d}", "<f4") for i in range(80)])  # a ~2.6 KB header
    arrays = {"index": np.arange(7, dtype=np.int64), "labels": np.array([3, 1, 2], ">i2"), "scalar": np.array("tfds"),
              "empty": np.zeros((0, 4), np.float32), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              "long_header": long_names, "big": np.arange(300_000, dtype=np.float64)}  # 2.4 MB: streamed
    path = tmp_path / "members.npz"
    np.savez(path, **arrays)
    header_bytes = io.BytesIO()
    np.lib.format.write_array(header_bytes, long_names)
    assert header_bytes.getvalue().index(b"\n") > _HEADER_PREFIX  # the fallback is really taken
    headers = read_npz_headers(path)
    with open_npz(path) as npz, np.load(path) as expected:
        for key, array in arrays.items():
            assert (headers[key].shape, headers[key].dtype) == (array.shape, array.dtype)
            got = npz[key]
            assert got.dtype == expected[key].dtype and got.flags.writeable
            np.testing.assert_array_equal(got, expected[key])


def test_small_members_are_read_once_with_their_headers(tmp_path, monkeypatch):
    # After npz.headers, a small member's values come from the bytes its header was parsed from:
    # no second read, the same values as np.load; past the budget, members are read again as before.
    from memoxr.io import npz as npz_module

    arrays = {"index": np.arange(7, dtype=np.int64), "labels": np.array([3, 1, 2], ">i2"), "scalar": np.array("tfds"),
              "empty": np.zeros((0, 4), np.float32), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              "big": np.arange(20_000, dtype=np.float64)}  # 160 KB: beyond the read-ahead
    path = tmp_path / "members.npz"
    np.savez(path, **arrays)
    reads = []
    stored_data = npz_module.CheckedNpz._stored_data
    monkeypatch.setattr(npz_module.CheckedNpz, "_stored_data", lambda self, key, *a: reads.append(key) or stored_data(self, key, *a))
    for budget, read_again in ((npz_module._READ_AHEAD_BUDGET, {"big"}), (0, set(arrays))):
        monkeypatch.setattr(npz_module, "_READ_AHEAD_BUDGET", budget)
        with npz_module.open_npz(path) as npz, np.load(path) as expected:
            assert [npz.headers[key].shape for key in arrays] == [array.shape for array in arrays.values()]
            reads.clear()
            for key in arrays:
                got = npz[key]
                assert got.dtype == expected[key].dtype and got.flags.writeable
                assert got.flags.f_contiguous == expected[key].flags.f_contiguous
                np.testing.assert_array_equal(got, expected[key])
            assert set(reads) == read_again


def test_damaged_small_member_is_a_clear_error(tmp_path):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=3)
    path = write_npz(tmp_path / "x.npz", arrays)
    info = zipfile.ZipFile(path).getinfo("tr_classidx_1.npy")
    data = bytearray(open(path, "rb").read())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 3] ^= 0x01
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(MemoxrInputError, match=r"key 'tr_classidx_1': member is damaged \(CRC-32 mismatch\)"):
        fz_npz.inspect_fz_npz(bad, checksum=False)


def _central_entry(data: bytes, name: str) -> int:
    """Offset of ``name``'s central-directory record in the zip bytes ``data``."""
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        length = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + length] == name.encode():
            return at
        at += 4


def test_small_member_cut_short_or_misnamed_is_a_clear_error(tmp_path):
    from memoxr.io.npz import open_npz

    path = tmp_path / "x.npz"
    np.savez(path, first=np.arange(5), last=np.arange(7))
    data = bytearray(path.read_bytes())
    # The directory claims more bytes than the file holds: the one-read path must not read short.
    entry = _central_entry(bytes(data), "last.npy")
    size = int.from_bytes(data[entry + 24 : entry + 28], "little") + 100_000
    data[entry + 20 : entry + 28] = size.to_bytes(4, "little") * 2  # compressed and uncompressed sizes
    cut = tmp_path / "cut.npz"
    cut.write_bytes(bytes(data))
    with open_npz(cut) as npz, pytest.raises(MemoxrInputError, match=r"key 'last': expected \d+ bytes, received \d+ \(truncated file\)"):
        npz["last"]
    # A local header naming another member than the directory: zipfile decides, and refuses it.
    data = bytearray(path.read_bytes())
    local = data.index(b"first.npy")  # the local header's name comes first in the file
    data[local : local + 5] = b"fyrst"
    misnamed = tmp_path / "misnamed.npz"
    misnamed.write_bytes(bytes(data))
    with open_npz(misnamed) as npz, pytest.raises(MemoxrInputError, match=r"key 'first' could not be read: .*differ"):
        npz["first"]


def test_encrypted_member_and_failing_reads_are_clear_errors(tmp_path):
    from memoxr.io.npz import open_npz

    path = tmp_path / "x.npz"
    np.savez(path, first=np.arange(5), last=np.arange(7))
    data = bytearray(path.read_bytes())
    entry = _central_entry(bytes(data), "first.npy")
    local = int.from_bytes(data[entry + 42 : entry + 46], "little")
    for flags in (entry + 8, local + 6):  # the encryption bit, in the directory and the local header
        data[flags] |= 0x01
    locked = tmp_path / "locked.npz"
    locked.write_bytes(bytes(data))
    with open_npz(locked) as npz:
        with pytest.raises(MemoxrInputError, match=r"key 'first' could not be read: .*encrypted"):
            npz.header("first")
        with pytest.raises(MemoxrInputError, match=r"key 'first' could not be read: .*encrypted"):
            npz["first"]

    _refused_when_the_connection_breaks(path, "last")


class _BreakingConnection(io.BytesIO):
    """A remote file whose connection breaks (``broken``) after the directory was read."""

    broken = False

    def read(self, size=-1):
        if self.broken:
            raise OSError("connection reset")
        return super().read(size)

    def readinto(self, buffer):
        if self.broken:
            raise OSError("connection reset")
        return super().readinto(buffer)


def _refused_when_the_connection_breaks(path, key: str) -> None:
    from memoxr.io.npz import CheckedNpz

    raw = _BreakingConnection(path.read_bytes())
    npz = CheckedNpz(raw, source="s3://bucket/x.npz")
    raw.broken = True
    with pytest.raises(MemoxrInputError, match=rf"'s3://bucket/x.npz': key '{key}' could not be read: connection reset"):
        npz[key]


def _counting_directory_parses(monkeypatch) -> list[int]:
    parses: list[int] = []
    real = zipfile.ZipFile._RealGetContents

    def counting(self):
        parses.append(1)
        return real(self)

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting)
    return parses


def test_the_blocks_of_classes_reuse_the_inspected_directory(tmp_path, monkeypatch):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=5)
    path = write_npz(tmp_path / "x.npz", arrays)
    parses = _counting_directory_parses(monkeypatch)
    ds = memoxr.open_influence(path, chunk_mb=0.001)  # inspected, then one open per block of classes
    assert ds["influence"].data.npartitions > 2
    values = ds["influence"].values
    assert len(parses) == 1
    for c in range(len(RAGGED_TRAIN)):
        n_tr, n_tt = arrays[f"infl_matrix_class{c}"].shape
        np.testing.assert_array_equal(values[c, :n_tr, :n_tt], arrays[f"infl_matrix_class{c}"])


def test_a_file_rewritten_after_it_was_opened_is_refused_not_mixed_in(tmp_path):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=5)
    path = write_npz(tmp_path / "x.npz", arrays)
    ds = memoxr.open_influence(path)  # its indices and labels read now, the matrices when computed
    arrays["infl_matrix_class1"] = arrays["infl_matrix_class1"] + 1  # the same shapes, other values
    write_npz(path, arrays)
    with pytest.raises(MemoxrInputError, match="infl_matrix_class1.*CRC-32 mismatch.*changed since it was opened"):
        ds["influence"].values  # noqa: B018


def test_the_same_path_rewritten_gives_other_task_keys(tmp_path):
    # dask tells tasks apart by key: the blocks of a rewritten file must not share the old ones'
    # (computed together, or kept by a cluster, one file's values would stand in for the other's).
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=5)
    path = write_npz(tmp_path / "x.npz", arrays)
    before = memoxr.open_influence(path)["influence"].data
    arrays["infl_matrix_class1"] = arrays["infl_matrix_class1"] + 1  # the same shapes, other values
    write_npz(path, arrays)
    after = memoxr.open_influence(path)["influence"].data
    assert before.name != after.name
    assert not set(dict(before.__dask_graph__())) & set(dict(after.__dask_graph__()))


def test_a_member_changed_under_a_given_directory_is_still_refused(tmp_path):
    import os

    from memoxr.io.npz import open_npz

    path = tmp_path / "x.npz"
    np.savez(path, a=np.arange(1000, dtype=np.float32), b=np.zeros(5000, dtype=np.float32))
    with open_npz(path) as npz:
        members = npz.members
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    at = data.rindex(b"\x00" * 64)  # inside b's values: same size, the mtime put back
    data[at] = 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with open_npz(path, members=members) as npz, pytest.raises(MemoxrInputError, match="CRC-32 mismatch"):
        npz["b"]


_LARGE = {  # each above the one-read size (1 MB): read straight from the file
    "int64": lambda: np.arange(300_000),
    "float64": lambda: np.linspace(0.0, 1.0, 300_000),
    "fortran": lambda: np.asfortranarray(np.arange(600_000, dtype=np.float32).reshape(600, 1000)),
    "big_endian": lambda: np.arange(300_000, dtype=">i8"),
    "bool": lambda: np.arange(2**21) % 3 == 0,
    "datetime64": lambda: np.arange(300_000).astype("M8[s]"),
}


@pytest.mark.parametrize("kind", sorted(_LARGE))
def test_large_members_are_read_straight_as_np_load_reads_them(tmp_path, monkeypatch, kind):
    from memoxr.io.npz import open_npz

    path = tmp_path / "x.npz"
    np.savez(path, x=_LARGE[kind](), small=np.arange(3))
    with open_npz(path) as npz:  # the directory parsed once
        members = npz.members
    parses = _counting_directory_parses(monkeypatch)
    with open_npz(path, members=members) as npz:
        got = npz["x"]
    assert parses == []  # no zipfile reader built for a large member
    expected = np.load(path)["x"]
    np.testing.assert_array_equal(got, expected)
    assert (got.dtype, got.shape, got.flags.f_contiguous) == (expected.dtype, expected.shape, expected.flags.f_contiguous)


def test_a_large_member_damaged_or_cut_short_is_a_clear_error(tmp_path):
    from memoxr.io.npz import open_npz

    path = tmp_path / "x.npz"
    np.savez(path, x=np.zeros(300_000), y=np.arange(3))
    data = bytearray(path.read_bytes())
    data[500_000] ^= 1  # inside x's values
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(data))
    with open_npz(flipped) as npz, pytest.raises(MemoxrInputError, match="key 'x'.*CRC-32 mismatch"):
        npz["x"]
    data = bytearray(path.read_bytes())
    entry = _central_entry(bytes(data), "x.npy")  # the directory claims more than the file holds
    size = int.from_bytes(data[entry + 24 : entry + 28], "little") + 5_000_000
    data[entry + 20 : entry + 28] = size.to_bytes(4, "little") * 2
    cut = tmp_path / "cut.npz"
    cut.write_bytes(bytes(data))
    with open_npz(cut) as npz, pytest.raises(MemoxrInputError, match="key 'x'"):
        npz["x"]


def test_a_large_member_whose_connection_breaks_is_a_clear_error(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.arange(300_000), y=np.arange(3))
    _refused_when_the_connection_breaks(path, "x")


def test_a_header_length_beyond_its_member_reads_no_further(tmp_path):
    from memoxr.io.npz import CheckedNpz

    text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (200000,), }"
    text += b" " * (64 - (12 + len(text) + 1) % 64) + b"\n"
    npy = b"\x93NUMPY\x02\x00" + (0xFFFFFF00).to_bytes(4, "little") + text + np.zeros(200_000).tobytes()
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", npy)  # a hostile length: 4 GB of header claimed
        archive.writestr("after.npy", b"\0" * 20_000_000)

    class Counting(io.BytesIO):
        taken = 0

        def read(self, size=-1):
            data = super().read(size)
            self.taken += len(data)
            return data

    raw = Counting(path.read_bytes())
    npz = CheckedNpz(raw, source="x.npz")
    with pytest.raises(MemoxrInputError, match="'x.npz'.*'x'"):
        npz["x"]
    assert raw.taken < 4_000_000  # not the 20 MB member after it

