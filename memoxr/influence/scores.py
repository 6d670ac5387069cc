"""Influence-aware memorization scores as lazy xarray reductions.

One wrapper layer over :mod:`memoxr.influence.kernels`: the row statistics come from a
single fused dask reduction over ``test_sample`` (each influence chunk is read
once), then the cheap per-class steps (max, rank) run on the small
``(class, train_sample)`` results.
"""

from __future__ import annotations

import numbers
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import MemoxrInputError
from ..io.schema import (
    CLASS,
    SCHEMA_VERSION,
    SCORES_SCHEMA,
    TEST,
    TRAIN,
    check_influence_dataset,
)
from . import kernels as _kernels

ZERO_STD_RULES = ("zero", "nan")
#: Size of the blocks of row moments that the per-class kernel works on.
PER_CLASS_BLOCK_BYTES = 64 * 2**20


def _fused_chunk(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    (ax,) = axis
    return np.moveaxis(_kernels.row_moments(x, axis=ax), -1, ax)


def _fused_combine(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    (ax,) = axis
    parts = np.moveaxis(x, ax, -1)  # (..., m * 4), records laid end to end
    parts = parts.reshape(*parts.shape[:-1], -1, _kernels.N_FIELDS)
    return np.moveaxis(_kernels.merge_moments(parts, axis=-2), -1, ax)


def _fused_aggregate(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    (ax,) = axis
    merged = np.moveaxis(_fused_combine(x, axis, keepdims), ax, -1)
    return np.moveaxis(_kernels.finalize_moments(merged), -1, ax)


def row_statistics(influence: xr.DataArray, *, dim: str = TEST) -> xr.Dataset:
    """Count, positive-part mean, mean and population std of each row, in one pass.

    NaN entries are ignored. Lazy when ``influence`` is dask-backed: one dask
    reduction reads each chunk once and merges partial moments across chunks of
    ``dim``.
    """
    axis = influence.get_axis_num(dim)
    data = influence.data
    stats = _row_statistics_array(data, axis=axis)  # (..., 4), the reduced dim dropped
    dims = [d for d in influence.dims if d != dim]
    coords = {k: v for k, v in influence.coords.items() if dim not in v.dims}
    fields = {field: (dims, stats[..., k]) for k, field in enumerate(_kernels.ROW_STAT_FIELDS)}
    return xr.Dataset(fields, coords=coords)


def _row_statistics_array(data, axis: int):
    """Finished row statistics ``(..., 4)`` of ``data`` along ``axis`` (numpy, or one dask reduction)."""
    if not isinstance(data, da.Array):
        return _kernels.row_statistics(data, axis=axis)
    stats = da.reduction(
        data,
        chunk=_fused_chunk,
        combine=_fused_combine,
        aggregate=_fused_aggregate,
        axis=axis,
        keepdims=True,
        output_size=_kernels.N_FIELDS,
        dtype=np.float64,
        concatenate=True,
        name="memoxr-row-statistics",
        meta=np.empty((0,) * data.ndim, dtype=np.float64),
    )
    return da.moveaxis(stats, axis, -1)


def _class_scores_block(moments, memo, index, test_count, **kwargs):
    # Blocks of (class, train_sample, 1) inputs beside (class, train_sample, 4) moments.
    return _kernels.class_scores(moments, memo[..., 0], index[..., 0] >= 0, test_count[:, 0, 0], **kwargs)



def influence_scores(
    ds: xr.Dataset,
    *,
    alpha: float = 0.7,
    beta: float = 0.3,
    skipna: bool = False,
    zero_std: Literal["zero", "nan"] = "zero",
) -> xr.Dataset:
    """The four influence-aware memorization scores, per class, lazily.

    Dims contract: ``ds`` is an influence store (``memoxr.open_influence``) with
    ``influence(class, train_sample, test_sample)``; the result has dims
    ``(class, train_sample)`` and the same padding (NaN scores, index -1).

    For training sample ``i`` of class ``c`` with memorization ``m_i`` and
    influence row ``I_ij`` over the class's test samples ``j``:

    - ``pos_infl_mean = mean_j max(I_ij, 0)``; ``influence_std = std_j I_ij``
      (population std, ``ddof=0``);
    - ``influence_weighted_memo = m_i * pos_infl_mean``;
    - ``representativeness_score = m_i * pos_infl_mean / influence_std``; where
      ``influence_std == 0`` the ratio is 0 (``zero_std="zero"``) or NaN
      (``zero_std="nan"``);
    - ``weighted_combination = alpha * m_i + beta * pos_infl_mean / max_c(pos_infl_mean)``,
      the maximum taken within the class (0 where that maximum is 0);
    - ``critical_sample_score = m_i * (1 - rank_i / (n_c - 1))`` with ``rank_i``
      the 0-based descending rank of ``pos_infl_mean`` within the class, ties
      broken by sample order, and ``rank = 0`` in a one-sample class.

    Padding never enters a statistic. A NaN inside a real influence row makes
    that sample's scores NaN (``skipna=False``, like numpy), or is skipped
    (``skipna=True``, the row's statistics use its finite values). Samples with
    NaN ``pos_infl_mean`` are not ranked and do not count in ``n_c``.

    Parameters
    ----------
    ds : xarray.Dataset
        Influence store, lazy (dask) or in memory.
    alpha, beta : float
        Weights of the linear combination.
    skipna : bool
        Skip NaN entries inside real influence rows.
    zero_std : {"zero", "nan"}
        Representativeness where the influence std is zero.

    Returns
    -------
    xarray.Dataset
        ``influence_weighted_memo``, ``representativeness_score``,
        ``weighted_combination``, ``critical_sample_score``, ``original_memo``,
        ``training_indices``, ``pos_infl_mean``, ``influence_std`` and
        ``train_count``; lazy if ``ds`` is.

    Examples
    --------
    >>> import memoxr
    >>> ds = memoxr.open_influence(memoxr.sample_path())
    >>> scores = memoxr.influence_scores(ds)
    >>> sorted(scores.sizes.items())
    [('class', 10), ('train_sample', 137)]
    """
    check_influence_dataset(ds)
    _validate_weight("alpha", alpha)
    _validate_weight("beta", beta)
    if zero_std not in ZERO_STD_RULES:
        raise MemoxrInputError(f"zero_std must be one of {ZERO_STD_RULES}; received {zero_std!r}")

    influence = ds["influence"].transpose(CLASS, TRAIN, TEST)
    moments = _row_statistics_array(influence.data, axis=2)  # (class, train_sample, 4)
    memo = ds["memorization"].transpose(CLASS, TRAIN).data
    index = ds["train_index"].transpose(CLASS, TRAIN).data
    test_count = ds["test_count"].data
    kwargs = {"alpha": float(alpha), "beta": float(beta), "skipna": bool(skipna), "zero_std": zero_std}
    if isinstance(moments, da.Array):
        # The max and the rank need a class's samples in one block: merge train_sample chunks if split.
        # Moments are 4 numbers per sample, so the per-class step runs on few, large class blocks
        # (up to PER_CLASS_BLOCK_BYTES): about 20 small tasks per influence chunk saved.
        per_block = max(1, PER_CLASS_BLOCK_BYTES // max(1, moments.shape[1] * _kernels.N_FIELDS * 8))
        moments = moments.rechunk({0: min(moments.shape[0], per_block), 1: -1, 2: -1})
        memo, index = (da.asarray(a).rechunk({0: moments.chunks[0], 1: -1}) for a in (memo, index))
        test_count = da.asarray(test_count).rechunk({0: moments.chunks[0]})
        fields = da.map_blocks(
            _class_scores_block, moments, memo[:, :, None], index[:, :, None], test_count[:, None, None], **kwargs,
            dtype=np.float64, chunks=(*moments.chunks[:2], (len(_kernels.SCORE_FIELDS),)),
            name="memoxr-class-scores", meta=np.empty((0, 0, 0), dtype=np.float64),
        )
    else:
        memo, index = np.asarray(memo)[:, :, None], np.asarray(index)[:, :, None]
        fields = _class_scores_block(moments, memo, index, np.asarray(test_count)[:, None, None], **kwargs)
    dims = (CLASS, TRAIN)
    variables = {name: (dims, fields[..., k]) for k, name in enumerate(_kernels.SCORE_FIELDS)}
    scores = xr.Dataset(
        {
            **{name: variables[name] for name in _kernels.SCORE_FIELDS[:5]},
            "training_indices": ds["train_index"],
            **{name: variables[name] for name in _kernels.SCORE_FIELDS[5:]},
            "train_count": ds["train_count"],
        },
        coords={CLASS: ds[CLASS]},
        attrs={
            "schema": SCORES_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "alpha": float(alpha),
            "beta": float(beta),
            "skipna": int(skipna),
            "zero_std": zero_std,
            "source_name": ds.attrs.get("source_name", ""),
            "source_sha256": ds.attrs.get("source_sha256", ""),
            "sample_order": ds.attrs.get("sample_order", ""),
        },
    )
    descriptions = {
        "influence_weighted_memo": "memorization * mean positive influence",
        "representativeness_score": "memorization * mean positive influence / influence std",
        "weighted_combination": "alpha * memorization + beta * class-normalized mean positive influence",
        "critical_sample_score": "memorization * (1 - normalized within-class influence rank)",
        "original_memo": "Feldman-Zhang memorization estimate",
        "training_indices": "row of the sample in the train split; -1 padding",
        "pos_infl_mean": "mean over the class's test samples of max(influence, 0)",
        "influence_std": "population std of the influence row",
    }
    for name, text in descriptions.items():
        scores[name].attrs["description"] = text
    return scores.transpose(CLASS, TRAIN, ...)


def _validate_weight(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise MemoxrInputError(f"{name} must be a finite number; received {value!r}")
