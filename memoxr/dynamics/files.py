"""Arrays on disk: one ``.npy`` / single-array ``.npz`` / ``.txt`` file, local or behind a URL.

Headers are checked against the bytes stored before values are read, and
pickled (object) arrays are never loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import fsspec
import numpy as np

from ..errors import MemoxrInputError
from ..io.location import Location, StorageOptions, file_exists
from ..io.npy import ArrayHeader, read_npy_body, read_npy_header, refuse_pickled
from ..io.npz import CheckedNpz


def _npz_member(npz: CheckedNpz, source: str, key: str | None, key_option: str | None = "--npz-key") -> str:
    """The one array of an npz, or the one named ``key``: the same member is checked and read.

    ``key_option`` is the caller's option that names an array, suggested when there are several (None: no such option).
    """
    names = npz.keys
    if key is not None:
        if key not in names:
            raise MemoxrInputError(f"file {source!r}: no array {key!r} (--npz-key); received arrays {names}")
        return key
    if len(names) != 1:
        hint = f"; name the one to read with {key_option}" if key_option else ""
        raise MemoxrInputError(
            f"file {source!r}: expected an .npz with exactly one array; received {len(names)} ({names}){hint}"
        )
    return names[0]


def _read_array(
    fs: fsspec.AbstractFileSystem, path: str, *, key: str | None = None, load: bool = True,
    key_option: str | None = "--npz-key",
) -> tuple[ArrayHeader, np.ndarray | None]:
    """Header (checked against the bytes stored) and, if ``load``, values of the one array in ``path``.

    ``.npy`` or ``.npz``; the header and the values come from the same member.
    Pickled arrays are never loaded.
    """
    with fs.open(path, "rb") as f:
        if path.endswith(".npz"):
            with CheckedNpz(f, source=path) as npz:
                member = _npz_member(npz, path, key, key_option)
                header = npz.header(member)
                if not load or header.dtype.hasobject:
                    return header, None
                return header, npz[member]
        header = read_npy_header(f, source=path, key=None, stored=fs.size(path))
        if not load or header.dtype.hasobject:
            return header, None
        return header, read_npy_body(f, header, source=path)


def _array_header(
    fs: fsspec.AbstractFileSystem, path: str, key: str | None = None, key_option: str | None = "--npz-key"
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the one array in ``path`` (``.npy`` or ``.npz``), without reading it."""
    header, _ = _read_array(fs, path, key=key, load=False, key_option=key_option)
    return header.shape, header.dtype


def _load(fs: fsspec.AbstractFileSystem, path: str, key: str | None = None, key_option: str | None = "--npz-key") -> np.ndarray:
    header, values = _read_array(fs, path, key=key, key_option=key_option)
    refuse_pickled(header.dtype, f"file {path!r}", "numeric or bool values")
    assert values is not None  # only a pickled array is not loaded
    return values


def load_array(
    source: str | os.PathLike[str] | Location | np.ndarray | Sequence[Any],
    *,
    argument: str,
    storage_options: StorageOptions = None,
) -> np.ndarray:
    """An array given in memory, or read from an ``.npy`` / single-array ``.npz`` / ``.txt`` file (local or URL).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ids.txt"
    >>> _ = path.write_text("4 2 9")
    >>> load_array(str(path), argument="sample_ids").tolist()
    [4.0, 2.0, 9.0]
    """
    if isinstance(source, str | os.PathLike):
        location = Location.of(source, storage_options)
        path = location.path
        if not file_exists(location):
            raise MemoxrInputError(f"{argument}: file {path!r} does not exist")
        fs, local = (location.fs, location.fs_path) if location.is_url else fsspec.core.url_to_fs(path)
        if path.endswith((".npy", ".npz")):  # no option names an npz member here
            _, dtype = _array_header(fs, local, key_option=None)
            refuse_pickled(dtype, f"{argument}: file {path!r}")
            return _load(fs, local, key_option=None)
        if path.endswith((".txt", ".csv")):
            try:
                with fs.open(local, "r") as f:
                    return np.loadtxt(f, delimiter="," if path.endswith(".csv") else None, ndmin=1)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MemoxrInputError(
                    f"{argument}: file {path!r}: expected numbers, one per sample; received text that is not numeric ({exc})"
                ) from exc
        raise MemoxrInputError(f"{argument}: file {path!r}; expected .npy, .npz, .txt or .csv")
    return np.asarray(source)
