"""Area Under the Margin (AUM) from the CSV files of asappresearch/aum.

``aum.AUMCalculator.finalize`` (https://github.com/asappresearch/aum, ``aum/aum.py``)
writes ``aum_values.csv`` with the columns ``sample_id,aum`` (rows sorted by
``aum``, descending) and, when ``compressed=False``, ``full_aum_records.csv``
with one row per sample and update: ``sample_id, num_measurements,
target_logit, target_val, other_logit, other_val, margin, aum`` (``aum`` is the
running mean of ``margin``). From the full records the row with the most
measurements of each sample is kept. A low AUM flags a likely mislabeled sample
(Pleiss et al., NeurIPS 2020), so ``aum`` is stored with direction ``-1``.
``sample_id`` must be integer (a sample's row in its order).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MemoxrInputError
from ..io.location import Location, PathLike, StorageOptions, file_exists, locate_each, open_file
from ._store import check_output, integer_ids, read_csv_table, scores_dataset, write_scores

AUM_COLUMNS = ("sample_id", "aum")


def read_aum(path: PathLike | Location, *, storage_options: StorageOptions = None) -> tuple[np.ndarray, np.ndarray]:
    """Identities and AUM of every sample in an ``aum_values.csv`` or ``full_aum_records.csv``, by identity.

    Examples
    --------
    From the full records, each sample's row with the most measurements:

    >>> import tempfile
    >>> from pathlib import Path
    >>> records = Path(tempfile.mkdtemp(), "full_aum_records.csv")
    >>> _ = records.write_text(
    ...     "sample_id,num_measurements,target_logit,target_val,other_logit,other_val,margin,aum\\n"
    ...     "1,1,0,2.0,1,1.0,1.0,1.0\\n1,2,0,0.0,1,2.0,-2.0,-0.5\\n0,1,1,3.0,0,1.0,2.0,2.0\\n"
    ... )
    >>> ids, aum = read_aum(records)
    >>> ids.tolist(), aum.tolist()
    ([0, 1], [2.0, -0.5])
    """
    location = Location.of(path, storage_options)
    path = location.path
    if not file_exists(location):
        raise MemoxrInputError(f"AUM file {path!r} does not exist")
    with open_file(location, "rb") as f:
        table = read_csv_table(f, path)
    missing = [c for c in AUM_COLUMNS if c not in table.columns]
    if missing:
        raise MemoxrInputError(
            f"AUM file {path!r}: columns {missing} missing; expected aum_values.csv (sample_id,aum) or "
            f"full_aum_records.csv of asappresearch/aum; received columns {list(table.columns)}"
        )
    if "num_measurements" in table.columns:  # full records: each sample's last update
        table = table.sort_values(["sample_id", "num_measurements"]).groupby("sample_id", sort=False).tail(1)
    if not pd.api.types.is_numeric_dtype(table["aum"]) or table["aum"].isna().any():
        raise MemoxrInputError(f"AUM file {path!r}: column 'aum' holds non-numbers; expected one AUM per sample")
    ids = integer_ids(table["sample_id"].to_numpy(), argument=f"column 'sample_id' of {path!r}")
    order = np.argsort(ids, kind="stable")
    return ids[order], table["aum"].to_numpy(dtype=np.float64)[order]


def import_aum(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    sample_order: str,
    truth: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    storage_options: StorageOptions = None,
) -> Path:
    """AUM's CSV output into a scores store (variable ``aum``, samples sorted by identity).

    ``truth`` arrays (e.g. ``is_mislabeled``) follow the sorted identities.

    Examples
    --------
    >>> from pathlib import Path
    >>> from memoxr.importers import open_scores
    >>> _ = Path("aum_values.csv").write_text("sample_id,aum\\n2,1.5\\n0,0.25\\n1,-3.0\\n")
    >>> store = import_aum("aum_values.csv", "aum.zarr", sample_order="tfds", truth={"is_mislabeled": [0, 1, 0]})
    >>> ds = open_scores(store)
    >>> ds["train_id"].values.tolist(), ds["aum"].values.tolist(), ds["aum"].attrs["direction"]
    ([0, 1, 2], [0.25, -3.0, 1.5], -1)
    >>> ds["is_mislabeled"].values.tolist(), ds.attrs["source"], ds.attrs["sample_order"]
    ([False, True, False], 'aum', 'tfds')
    """
    target, truth = Location.of(output, storage_options), locate_each(truth, storage_options)  # truth files too
    check_output(target, overwrite=overwrite)
    ids, aum = read_aum(Location.of(path, storage_options))
    ds = scores_dataset(
        {"aum": aum}, sample_order=sample_order, source="aum", directions={"aum": -1},
        descriptions={"aum": "area under the margin (mean of logit[label] - max other logit over updates)"},
        sample_ids=ids, truth=truth,
    )
    return write_scores(ds, target, overwrite=overwrite)
