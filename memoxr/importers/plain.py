"""Plain per-sample values: an ``.npy`` / ``.npz`` / ``.txt`` array or a ``.csv`` table."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..dynamics.files import load_array
from ..errors import MemoxrInputError
from ..io.location import (
    Location,
    PathLike,
    StorageOptions,
    file_exists,
    locate,
    locate_each,
    open_file,
)
from ._store import check_output, integer_ids, read_csv_table, scores_dataset, write_scores


def _is_number(text: Any) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return "_" not in str(text)  # float() takes 1_000, pandas reads it as text


#: A first-row field that pandas reads as missing (its default NA strings, compared in lower case): not a word.
_MISSING = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "<na>", "#n/a", "#na"})


def read_table(
    path: PathLike | Location, *, columns: Sequence[str] | None = None, id_column: str | None = None,
    name: str = "score", storage_options: StorageOptions = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Score columns and identities of a CSV table (with a header row, or bare columns of numbers).

    A first row of numbers (empty fields allowed) is data: a header names its
    columns with at least one word. ``columns`` default to every numeric column
    but ``id_column``. Without a header, the columns are called ``name`` (one
    column) or ``name_0``, ``name_1``...

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("table.csv").write_text("row,loss,tag\\n1,0.5,a\\n0,2.0,b\\n")
    >>> read_table("table.csv", id_column="row")  # "tag" is text: not a score
    ({'loss': array([0.5, 2. ])}, array([1, 0]))
    >>> _ = Path("bare.csv").write_text("0.5,1\\n2.0,3\\n")
    >>> scores, ids = read_table("bare.csv", name="s")
    >>> {k: v.tolist() for k, v in scores.items()}, ids
    ({'s_0': [0.5, 2.0], 's_1': [1.0, 3.0]}, None)
    >>> _ = Path("repeated.csv").write_text("0.5,0.5\\n0.1,\\n")  # a repeated or empty field: still data
    >>> {k: v.tolist() for k, v in read_table("repeated.csv", name="s")[0].items()}
    {'s_0': [0.5, 0.1], 's_1': [0.5, nan]}
    """
    location = Location.of(path, storage_options)
    path = location.path
    if not file_exists(location):
        raise MemoxrInputError(f"input: file {path!r} does not exist")
    with open_file(location, "rb") as f:  # the first row as written (pandas renames repeated header fields)
        first = read_csv_table(f, path, header=None, nrows=1, dtype=str, keep_default_na=False)
    fields = [str(v).strip() for v in first.iloc[0]] if len(first) else []
    header = not (any(fields) and all(v.lower() in _MISSING or _is_number(v) for v in fields))
    with open_file(location, "rb") as f:
        table = read_csv_table(f, path, header=0 if header else None)
    if not header:
        table.columns = [name] if table.shape[1] == 1 else [f"{name}_{c}" for c in table.columns]
    ids = None
    if id_column is not None:
        if id_column not in table.columns:
            raise MemoxrInputError(f"id column {id_column!r}: not in {path!r}; its columns are {list(table.columns)}")
        ids = integer_ids(table[id_column].to_numpy(), argument=f"id column {id_column!r} of {path!r}")
    chosen = list(columns) if columns else [
        c for c in table.columns if c != id_column and pd.api.types.is_numeric_dtype(table[c])
    ]
    missing = [c for c in chosen if c not in table.columns]
    if missing or not chosen:
        raise MemoxrInputError(
            f"columns {missing or chosen}: expected numeric score columns of {path!r}; its columns are {list(table.columns)}"
        )
    out = {}
    for c in chosen:
        if not pd.api.types.is_numeric_dtype(table[c]):
            raise MemoxrInputError(f"column {c!r} of {path!r}: {table[c].dtype}; expected numbers")
        out[str(c)] = table[c].to_numpy(dtype=np.float64)
    return out, ids


def import_plain(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    sample_order: str,
    name: str = "score",
    direction: int = 1,
    columns: Sequence[str] | None = None,
    id_column: str | None = None,
    sample_ids: Any = None,
    source: str = "plain",
    truth: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> Path:
    """Per-sample values from any tool into a scores store.

    Parameters
    ----------
    path : path
        An ``.npy`` / single-array ``.npz`` / ``.txt`` (one number per sample,
        the score ``name``), or a ``.csv``: with a header, every numeric column
        (or ``columns``) becomes a score named after it and ``id_column`` gives
        the identities; without a header, one number per line.
    sample_order : str
        Name of the order the samples follow; required, since a score compared
        in the wrong order pairs the wrong samples.
    direction : int
        ``+1`` if a larger value means more memorized / more likely mislabeled, else ``-1``.
    sample_ids : array or path, optional
        Identity of each row (default: ``id_column``, else the row's position).

    Examples
    --------
    >>> import numpy as np
    >>> from memoxr.importers import open_scores
    >>> np.save("margin.npy", np.array([0.3, -1.0, 2.5]))
    >>> store = import_plain("margin.npy", "margin.zarr", sample_order="tfds", name="margin", direction=-1,
    ...                      sample_ids=[10, 11, 12])
    >>> ds = open_scores(store)
    >>> list(ds.data_vars), ds["margin"].values.tolist(), ds["train_id"].values.tolist()
    (['margin'], [0.3, -1.0, 2.5], [10, 11, 12])
    >>> ds["margin"].attrs["direction"], ds["margin"].attrs["description"], ds.attrs["source"]
    (-1, 'margin read from margin.npy', 'plain')
    """
    target, location = Location.of(output, storage_options), Location.of(path, storage_options)
    # Every path given (inputs, sample_ids, truth files) read with the same options as the output.
    sample_ids, truth = locate(sample_ids, storage_options), locate_each(truth, storage_options)
    check_output(target, overwrite=overwrite)
    ids = None
    if location.path.endswith(".csv"):
        scores, ids = read_table(location, columns=columns, id_column=id_column, name=name)
    else:
        if columns or id_column:
            raise MemoxrInputError(f"--column / --id-column: only for a .csv table; received {str(path)!r}")
        scores = {name: load_array(location, argument="input")}
    if sample_ids is not None:
        if ids is not None:
            raise MemoxrInputError("sample_ids: given twice (an id column and sample_ids); expected one")
        ids = sample_ids
    ds = scores_dataset(
        scores, sample_order=sample_order, source=source, directions=dict.fromkeys(scores, direction),
        descriptions={k: f"{k} read from {Path(str(path)).name}" for k in scores}, sample_ids=ids, truth=truth,
    )
    return write_scores(ds, target, overwrite=overwrite)
