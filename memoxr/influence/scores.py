"""Influence-aware memorization scores as lazy xarray reductions.

One wrapper layer over :mod:`memoxr.influence.kernels`: the row statistics come from a
single fused dask reduction over ``test_sample`` (each influence chunk is read
once), then the cheap per-class steps (max, rank) run on the small
``(class, train_sample)`` results.

xarray manners, shared by every public function of the influence layer that
reduces (:func:`influence_scores`, :func:`row_statistics`,
:func:`memoxr.class_stats`, :func:`memoxr.analyze`, :func:`memoxr.top_k`,
:func:`memoxr.top_classes`, :func:`memoxr.rank_agreement`,
:func:`memoxr.score_ranges`):

- Dims are found by name, in any order; a hand-built Dataset with the right
  variables and dims is accepted; its ``schema`` attribute is checked only when
  present.
- Padding is not data: entries beyond a class's ``train_count`` /
  ``test_count`` (or with index -1) never enter a result.
- ``skipna`` and ``keep_attrs`` (default ``None``) follow the one rule of
  :mod:`memoxr.compute.manners`: by default a NaN inside a real influence row
  makes that sample's row statistics and scores NaN (as 0.x did); per-class
  statistics propagate NaN; the rankings and ranges leave NaN samples out
  (a NaN has no rank). ``True`` skips NaN everywhere, ``False`` propagates it
  everywhere (a ranking then lists NaN last). ``keep_attrs=None`` follows
  ``xarray.set_options(keep_attrs=...)``; ``True`` also copies the input's
  attrs (into ``DataFrame.attrs`` for tables), the result's own attrs winning
  on a clash.
"""

from __future__ import annotations

import numbers
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from ..compute.manners import reduce_skipna, resolve_keep_attrs
from ..compute.reduction import apply_reduction, reduce_dim
from ..compute.scheduler import rechunk
from ..errors import MemoxrInputError
from ..io.schema import (
    CLASS,
    COUNT_COORDS,
    INFLUENCE_COORDS,
    LONG_NAMES,
    SCHEMA_VERSION,
    SCORES_SCHEMA,
    TEST,
    TRAIN,
    check_influence_dataset,
    kept_attrs,
    promote_coords,
)
from . import kernels as _kernels

ZERO_STD_RULES = ("zero", "nan")
#: Most bytes of row moments in one block of the per-class kernel that merges several of the
#: influence's class chunks. Consecutive chunks are merged while they fit (few tasks when each chunk
#: holds a class or two); a larger chunk stays a block of its own, so that its scores start as soon
#: as its moments are ready, on a free thread (ImageNet size: four blocks, not one at the end).
PER_CLASS_BLOCK_BYTES = 4 * 2**20
#: Variables :func:`influence_scores` reads.
SCORE_INPUTS = ("influence", "memorization", "train_index", "train_count", "test_count")
_ROW_STAT_NAMES = {
    "count": "finite values in the row",
    "positive_mean": "mean of the positive part of the row",
    "mean": "mean of the row",
    "std": "population standard deviation of the row",
}


def row_statistics(
    influence: xr.DataArray, *, dim: str = TEST, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.Dataset:
    """Count, positive-part mean, mean and population std of each row, in one pass.

    Dims contract: ``influence`` with any dims, ``dim`` among them (found by
    name); the result has the other dims, in their order. Lazy when
    ``influence`` is dask-backed: one dask reduction reads each chunk once and
    merges partial moments across chunks of ``dim``.

    ``count`` is the number of finite values. Padding is not data: when
    ``influence`` carries the count coordinate of ``dim`` (``test_count`` for
    ``test_sample``, ``train_count`` for ``train_sample``, as
    ``ds["influence"]`` of an opened store does), only that many entries are
    real. By default (``skipna=None``, as ``False``) a row whose real entries
    hold a NaN gets NaN statistics, as :func:`influence_scores` (whose
    ``pos_infl_mean`` and ``influence_std`` these are); ``skipna=True`` uses its
    finite values. ``skipna`` and ``keep_attrs``: see :mod:`memoxr.compute.manners`.

    Examples
    --------
    >>> x = xr.DataArray([[1.0, -1.0, 3.0], [2.0, np.nan, 4.0]], dims=("train_sample", "test_sample"))
    >>> row_statistics(x)["mean"].values.tolist()
    [1.0, nan]
    >>> row_statistics(x, skipna=True)["mean"].values.tolist()
    [1.0, 3.0]
    """
    if not isinstance(influence, xr.DataArray):
        raise MemoxrInputError(f"influence must be an xarray.DataArray; received {type(influence).__name__}")
    if dim not in influence.dims:
        raise MemoxrInputError(f"dim {dim!r} missing from influence; expected one of {influence.dims}")
    skip = reduce_skipna(skipna)
    keep = resolve_keep_attrs(keep_attrs)
    fields = reduce_dim(influence, _kernels.ROW_STATISTICS, dim=dim)
    if not skip:
        whole = fields["count"] == _real_count(influence, dim)
        for name in ("positive_mean", "mean", "std"):
            fields[name] = fields[name].where(whole)
    units = influence.attrs.get("units")
    for name, long_name in _ROW_STAT_NAMES.items():
        fields[name].attrs = {"long_name": long_name, **({"units": units} if units and name != "count" else {})}
    return xr.Dataset(fields, attrs=kept_attrs(influence.attrs, keep))


def _class_blocks(class_chunks: tuple[int, ...], bytes_per_class: int) -> tuple[int, ...]:
    """Consecutive class chunks merged while a merged block stays within :data:`PER_CLASS_BLOCK_BYTES`.

    Examples
    --------
    >>> _class_blocks((2, 2, 2, 1), bytes_per_class=PER_CLASS_BLOCK_BYTES // 4)
    (4, 3)
    >>> _class_blocks((258, 258, 258, 226), bytes_per_class=41_568)
    (258, 258, 258, 226)
    """
    blocks: list[int] = []
    for size in class_chunks:
        if blocks and (blocks[-1] + size) * bytes_per_class <= PER_CLASS_BLOCK_BYTES:
            blocks[-1] += size
        else:
            blocks.append(size)
    return tuple(blocks)


def _real_count(x: xr.DataArray, dim: str) -> xr.Variable | int:
    """How many entries along ``dim`` are real: its count coordinate, else the dim's size."""
    name = COUNT_COORDS.get(dim)
    if name in x.coords and dim not in x.coords[name].dims:
        return x.coords[name].variable
    return x.sizes[dim]


def _class_scores_block(moments, memo, index, test_count, **kwargs):
    # Blocks of (class, train_sample, 1) inputs beside (class, train_sample, 4) moments.
    return _kernels.class_scores(moments, memo[..., 0], index[..., 0] >= 0, test_count[:, 0, 0], **kwargs)



def influence_scores(
    ds: xr.Dataset,
    *,
    alpha: float = 0.7,
    beta: float = 0.3,
    skipna: bool | None = None,
    zero_std: Literal["zero", "nan"] = "zero",
    keep_attrs: bool | None = None,
) -> xr.Dataset:
    """The four influence-aware memorization scores, per class, lazily.

    Dims contract: ``ds`` holds ``influence(class, train_sample, test_sample)``,
    ``memorization(class, train_sample)``, ``train_index(class, train_sample)``
    and ``train_count(class)``, ``test_count(class)``, dims in any order (an
    opened store, or a hand-built Dataset); the result has dims
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
    that sample's scores NaN (``skipna=None``, the default, or ``False``: like
    numpy), or is skipped (``skipna=True``, the row's statistics use its finite
    values). Samples with NaN ``pos_infl_mean`` are not ranked and do not count
    in ``n_c`` (a NaN has no rank).

    Parameters
    ----------
    ds : xarray.Dataset
        Influence data, lazy (dask) or in memory.
    alpha, beta : float
        Weights of the linear combination.
    skipna : bool, optional
        ``True``: skip NaN entries inside real influence rows; default ``None``
        (as ``False``): they make the sample's scores NaN. The rule:
        :mod:`memoxr.compute.manners`; ``attrs["skipna"]`` records the choice (0 or 1).
    zero_std : {"zero", "nan"}
        Representativeness where the influence std is zero.
    keep_attrs : bool, optional
        Also copy ``ds.attrs`` onto the result (default ``None``: xarray's option, off).

    Returns
    -------
    xarray.Dataset
        Data variables ``influence_weighted_memo``, ``representativeness_score``,
        ``weighted_combination``, ``critical_sample_score``, ``original_memo``,
        ``pos_infl_mean``, ``influence_std``; coordinates ``class``,
        ``training_indices`` and ``train_count`` (so ``scores.mean("train_sample")``
        never averages the indices); lazy if ``ds`` is.

    Examples
    --------
    >>> import memoxr
    >>> ds = memoxr.open_influence(memoxr.sample_path())
    >>> scores = memoxr.influence_scores(ds)
    >>> sorted(scores.sizes.items())
    [('class', 10), ('train_sample', 137)]
    >>> turned = memoxr.influence_scores(ds.transpose("test_sample", "class", "train_sample", ...).drop_attrs())
    >>> bool(turned["critical_sample_score"].equals(scores["critical_sample_score"]))
    True
    >>> "training_indices" in scores.mean("train_sample").coords
    False
    """
    if not isinstance(ds, xr.Dataset):
        raise MemoxrInputError(f"ds must be an xarray.Dataset; received {type(ds).__name__}")
    check_influence_dataset(ds, variables=SCORE_INPUTS)
    skip, keep = reduce_skipna(skipna), resolve_keep_attrs(keep_attrs)
    _validate_weight("alpha", alpha)
    _validate_weight("beta", beta)
    if zero_std not in ZERO_STD_RULES:
        raise MemoxrInputError(f"zero_std must be one of {ZERO_STD_RULES}; received {zero_std!r}")
    ds = promote_coords(ds, INFLUENCE_COORDS)

    influence = ds["influence"].transpose(CLASS, TRAIN, TEST)
    moments = apply_reduction(influence.data, _kernels.ROW_STATISTICS, axis=2)  # (class, train_sample, 4)
    train_index = ds["train_index"].variable.transpose(CLASS, TRAIN)
    memo = ds["memorization"].transpose(CLASS, TRAIN).data
    index = train_index.data
    test_count = ds["test_count"].data
    kwargs = {"alpha": float(alpha), "beta": float(beta), "skipna": skip, "zero_std": zero_std}
    if isinstance(moments, da.Array):
        # The max and the rank need a class's samples in one block: merge train_sample chunks if split.
        # Moments are 4 numbers per sample: small class chunks are merged (PER_CLASS_BLOCK_BYTES).
        per_class = moments.shape[1] * _kernels.N_FIELDS * 8
        moments = rechunk(moments, {0: _class_blocks(moments.chunks[0], per_class), 1: -1, 2: -1})
        memo, index = (rechunk(da.asarray(a), {0: moments.chunks[0], 1: -1}) for a in (memo, index))
        test_count = rechunk(da.asarray(test_count), {0: moments.chunks[0]})
        fields = da.map_blocks(
            _class_scores_block, moments, memo[:, :, None], index[:, :, None], test_count[:, None, None], **kwargs,
            dtype=np.float64, chunks=(*moments.chunks[:2], (len(_kernels.SCORE_FIELDS),)),
            # token, not name: a name is the whole key, shared by every call; a token is a prefix of a hash of the inputs.
            token="memoxr-class-scores", meta=np.empty((0, 0, 0), dtype=np.float64),
        )
    else:
        memo, index = np.asarray(memo)[:, :, None], np.asarray(index)[:, :, None]
        fields = _class_scores_block(moments, memo, index, np.asarray(test_count)[:, None, None], **kwargs)
    dims = (CLASS, TRAIN)
    own_attrs = {
        "schema": SCORES_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "alpha": float(alpha),
        "beta": float(beta),
        "skipna": int(skip),  # 0 or 1, as stores written before skipna=None existed
        "zero_std": zero_std,
        "source_name": ds.attrs.get("source_name", ""),
        "source_sha256": ds.attrs.get("source_sha256", ""),
        "sample_order": ds.attrs.get("sample_order", ""),
    }
    scores = xr.Dataset(
        {name: (dims, fields[..., k]) for k, name in enumerate(_kernels.SCORE_FIELDS)},
        coords={
            # Shallow copies: the attrs set below must not touch the input's variables.
            CLASS: ds[CLASS].variable.copy(deep=False),
            "training_indices": train_index.copy(deep=False),
            "train_count": ds["train_count"].variable.copy(deep=False),
        },
        attrs={**kept_attrs(ds.attrs, keep), **own_attrs},
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
    for name, variable in scores.variables.items():
        variable.attrs = {"long_name": LONG_NAMES[str(name)]} if str(name) in LONG_NAMES else {}
        if name in descriptions:
            variable.attrs["description"] = descriptions[str(name)]
    return scores


def _validate_weight(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise MemoxrInputError(f"{name} must be a finite number; received {value!r}")
