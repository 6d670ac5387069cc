"""The converter's direct reader of stored npz members equals np.load for every kind of member."""

from __future__ import annotations

import io
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
