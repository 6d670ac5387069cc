"""Memorization proxies from training dynamics, as lazy reductions over ``epoch``.

One wrapper layer over :mod:`memoxr.dynamics._kernels`. Every proxy takes a
recorded variable with an ``epoch`` dim (found by name, in any position) and
returns it with ``epoch`` reduced; every other dim (architecture, seed, noise
level, the sample identity ``train_id``...) is kept, in the input's order.

Order-free proxies (sums, means, stds) are dask reductions that combine partial
results across any number of ``epoch`` chunks. Order-dependent proxies (learning
time, threshold learning time, forgetting events) need each sample's whole
trajectory, so ``epoch`` is rechunked to one chunk for them (the sample and run
dims keep their chunks). The final-epoch proxies only select the last epoch.

Every proxy takes ``skipna`` and ``keep_attrs`` (the rule: :mod:`memoxr.compute.manners`):
by default a NaN epoch makes the sample's value NaN; ``skipna=True`` leaves
missing epochs out (a sample with no value at all stays NaN). Each result
carries ``long_name``, ``units`` (where there are some), ``formula`` and
``direction``: ``+1`` when a larger value means more memorized / more likely
mislabeled, ``-1`` when a smaller value does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from ..compute.manners import reduce_skipna
from ..compute.reduction import reduce_dim
from ..compute.scheduler import rechunk
from ..influence.kernels import ROW_STATISTICS
from . import _kernels, _skipna_kernels
from ._manners import finish, validate_dim
from .schema import EPOCH, sample_dim

#: What each proxy's result says about itself.
PROXY_ATTRS: dict[str, dict[str, Any]] = {
    "csl": {"long_name": "cumulative sample loss", "units": "nats", "formula": "sum_t loss_t", "direction": 1},
    "mean_loss": {"long_name": "mean loss over epochs", "units": "nats", "formula": "(1/T) sum_t loss_t", "direction": 1},
    "final_loss": {"long_name": "loss at the last epoch", "units": "nats", "formula": "loss_T", "direction": 1},
    "cumulative_grad_norm": {"long_name": "cumulative gradient norm", "formula": "sum_t ||g_t||", "direction": 1},
    "learning_time": {"long_name": "learning time (fraction of epochs)",
                      "formula": "1 - (1/T) #{t : mean_{s<=t} g_s < mean(g)}", "direction": 1},
    "threshold_learning_time": {"long_name": "threshold learning time", "units": "epochs",
                                "formula": "min {t : correct_s for all s >= t}; T if never", "direction": 1},
    "forgetting_events": {"long_name": "forgetting events", "units": "events",
                          "formula": "sum_t [correct_{t-1} and not correct_t]", "direction": 1},
    "confidence": {"long_name": "confidence (mean true-class probability)", "formula": "(1/T) sum_t p_t", "direction": -1},
    "variability": {"long_name": "variability (std of true-class probability)",
                    "formula": "sqrt((1/T) sum_t (p_t - mean_t p_t)^2)", "direction": 1},
    "in_confidence": {"long_name": "in-confidence (1 - final true-class probability)", "formula": "1 - p_T", "direction": 1},
    "mean_curvature": {"long_name": "mean input loss curvature", "formula": "(1/T) sum_t curv_t", "direction": 1},
}


def _finish(out: xr.DataArray, source: xr.DataArray, name: str, keep_attrs: bool | None) -> xr.DataArray:
    return finish(out, source, name, PROXY_ATTRS[name], keep_attrs)


def _coords_without(x: xr.DataArray, dim: str) -> dict:
    return {k: v for k, v in x.coords.items() if dim not in v.dims}


def _epoch_sum(x: xr.DataArray, dim: str) -> xr.DataArray:
    """Sum over ``dim`` in float64: the declared :data:`_kernels.EPOCH_SUM`, combined across epoch chunks."""
    (out,) = reduce_dim(x, _kernels.EPOCH_SUM, dim=dim).values()
    return out


def _epoch_moments(x: xr.DataArray, dim: str) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and population std over ``dim`` in one fused pass (NaN propagates)."""
    stats = reduce_dim(x.astype(np.float64), ROW_STATISTICS, dim=dim)
    whole = stats["count"] == x.sizes[dim]
    return stats["mean"].where(whole), stats["std"].where(whole)


def _sum(x: xr.DataArray, dim: str, skipna: bool) -> tuple[xr.DataArray, xr.DataArray | int]:
    """Sum over ``dim`` and the number of values summed (NaN left out with ``skipna``; none at all gives NaN)."""
    if not skipna:
        return _epoch_sum(x, dim), x.sizes[dim]
    count = _epoch_sum(x.notnull(), dim)
    return _epoch_sum(x.fillna(0), dim).where(count > 0), count


def _moments(x: xr.DataArray, dim: str, skipna: bool) -> tuple[xr.DataArray, xr.DataArray]:
    if not skipna:
        return _epoch_moments(x, dim)
    stats = reduce_dim(x.astype(np.float64), ROW_STATISTICS, dim=dim)  # NaN-skipping, one fused pass
    seen = stats["count"] > 0
    return stats["mean"].where(seen), stats["std"].where(seen)


def _along_epoch(
    kernel: Callable[..., np.ndarray], x: xr.DataArray, dim: str, *args: xr.DataArray, **kwargs: Any
) -> xr.DataArray:
    """Apply an order-dependent kernel: ``dim`` rechunked to one chunk."""
    if x.chunks is not None:
        x = x.copy(data=rechunk(x.data, {x.get_axis_num(dim): -1}))
    return xr.apply_ufunc(
        kernel, x, *args,
        input_core_dims=[[dim]] + [[] for _ in args],
        dask="parallelized",
        output_dtypes=[np.float64],
        kwargs={"axis": -1, **kwargs},
    )


def _last(x: xr.DataArray, dim: str, skipna: bool) -> xr.DataArray:
    if not skipna:
        return x.isel({dim: -1}, drop=True).astype(np.float64)
    return _along_epoch(_skipna_kernels.last_valid, x, dim, skipna=True)


def csl(loss: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None) -> xr.DataArray:
    """Cumulative Sample Loss: the sum of a sample's loss over epochs.

    ``CSL_i = sum_t loss_{i,t}`` (Ravikumar et al., "Towards Memorization
    Estimation: Fast, Formal and Free", ICML 2025). Dims: ``loss`` with ``dim``
    reduced. Lazy; combines across ``epoch`` chunks.

    Parameters
    ----------
    loss : DataArray
        Per-epoch loss with dim ``dim`` (any position).
    dim : str
        The epoch dim.
    skipna : bool, optional
        ``True``: missing epochs left out (no value at all: NaN); default (``None``)
        and ``False``: NaN propagates. The rule: :mod:`memoxr.compute.manners`.
    keep_attrs : bool, optional
        Keep ``loss``'s attributes (default ``None``: xarray's option, off).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> loss = xr.DataArray([[1.0, 2.0], [0.5, np.nan]], dims=("epoch", "train_id"))
    >>> csl(loss).values.tolist(), csl(loss, skipna=True).values.tolist()
    ([1.5, nan], [1.5, 2.0])
    """
    validate_dim(loss, dim, "loss")
    return _finish(_sum(loss, dim, reduce_skipna(skipna))[0], loss, "csl", keep_attrs)


def mean_loss(loss: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None) -> xr.DataArray:
    """Mean loss over epochs, ``(1 / T) sum_t loss_t`` (the CSL divided by ``T``).

    A common baseline (e.g. Jiang et al., 2021, average loss over training).
    With ``skipna=True``, ``T`` counts the recorded epochs only. Arguments as :func:`csl`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> loss = xr.DataArray([[1.0, 3.0], [np.nan, 1.0]], dims=("epoch", "train_id"))
    >>> mean_loss(loss, skipna=True).values.tolist()
    [1.0, 2.0]
    """
    validate_dim(loss, dim, "loss")
    total, count = _sum(loss, dim, reduce_skipna(skipna))
    return _finish(total / count, loss, "mean_loss", keep_attrs)


def final_loss(loss: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None) -> xr.DataArray:
    """Loss at the last recorded epoch, ``loss_T`` (with ``skipna``, the last epoch holding a value).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> loss = xr.DataArray([[1.0, 3.0], [2.0, np.nan]], dims=("epoch", "train_id"))
    >>> final_loss(loss).values.tolist(), final_loss(loss, skipna=True).values.tolist()
    ([2.0, nan], [2.0, 3.0])
    """
    validate_dim(loss, dim, "loss")
    return _finish(_last(loss, dim, reduce_skipna(skipna)), loss, "final_loss", keep_attrs)


def cumulative_grad_norm(
    grad_norm: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """Cumulative gradient norm, ``sum_t ||g_t||`` over epochs (when recorded). Arguments as :func:`csl`.

    Examples
    --------
    >>> import xarray as xr
    >>> cumulative_grad_norm(xr.DataArray([[1.0, 2.0], [1.0, 0.0]], dims=("epoch", "train_id"))).values.tolist()
    [2.0, 2.0]
    """
    validate_dim(grad_norm, dim, "grad_norm")
    return _finish(_sum(grad_norm, dim, reduce_skipna(skipna))[0], grad_norm, "cumulative_grad_norm", keep_attrs)


def learning_time(
    grad_norm: xr.DataArray, *, dim: str = EPOCH, sample_dim: str | None = None,
    skipna: bool | None = None, keep_attrs: bool | None = None,
) -> xr.DataArray:
    """Learning time from the recorded gradient norm.

    With ``g_t`` a sample's gradient norm at epoch ``t`` (``T`` epochs), its
    running mean ``m_t = (1 / t) sum_{s <= t} g_s`` and the threshold ``tau``,
    the global mean of ``g`` over every epoch and sample of the run (every other
    dim is kept, so each architecture / seed / noise level has its own ``tau``)::

        learning_time = 1 - (1 / T) #{t : m_t < tau}

    i.e. one minus the fraction of epochs at which the running mean is below
    ``tau``. In ``[0, 1]``; late-learned (memorized) samples are near 1.
    ``epoch`` is rechunked to one chunk (the running mean is order-dependent);
    ``tau`` is a separate lazy reduction. ``sample_dim`` defaults to
    ``train_id`` (or ``sample``). With ``skipna=True`` missing epochs are left
    out of ``tau``, of the running mean and of ``T``.

    Examples
    --------
    >>> import xarray as xr
    >>> g = xr.DataArray([[4.0, 0.0], [4.0, 0.0]], dims=("epoch", "train_id"))
    >>> learning_time(g).values.tolist()  # the first sample stays above tau = 2: learned late
    [1.0, 0.0]
    """
    validate_dim(grad_norm, dim, "grad_norm")
    samples = _sample_dim_of(grad_norm, sample_dim)
    skip = reduce_skipna(skipna)
    tau = grad_norm.astype(np.float64).mean([dim, samples], skipna=skip)
    out = _along_epoch(_skipna_kernels.learning_time, grad_norm, dim, tau, skipna=skip)
    # A NaN threshold (a NaN anywhere in the run, without skipna) makes the whole run NaN, not 1.
    return _finish(out.where(tau.notnull()), grad_norm, "learning_time", keep_attrs)


def _sample_dim_of(x: xr.DataArray, given: str | None) -> str:
    return sample_dim(x, argument="grad_norm", dim=given)


def threshold_learning_time(
    correct: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """Threshold learning time: the first epoch from which the sample stays correct.

    ``min {t : correct_s for every s >= t}`` as a 0-based position along
    ``dim`` (not the ``epoch`` coordinate value), and ``T`` (the number of
    epochs) when the sample is wrong at the last epoch. So a sample correct from
    the first epoch on gets 0, one learned for good at the third epoch gets 2.
    ``epoch`` is rechunked to one chunk (order-dependent). A float ``correct``
    may hold NaN for a missing epoch (see ``skipna``).

    Examples
    --------
    >>> import xarray as xr
    >>> c = xr.DataArray([[True, False], [True, False], [True, True]], dims=("epoch", "train_id"))
    >>> threshold_learning_time(c).values.tolist()
    [0.0, 2.0]
    """
    validate_dim(correct, dim, "correct")
    out = _along_epoch(_skipna_kernels.threshold_learning_time, correct, dim, skipna=reduce_skipna(skipna))
    return _finish(out, correct, "threshold_learning_time", keep_attrs)


def forgetting_events(
    correct: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """Forgetting events: correct -> incorrect transitions between consecutive epochs.

    ``sum_{t >= 1} [correct_{t-1} and not correct_t]`` (Toneva et al., ICLR
    2019). ``epoch`` is rechunked to one chunk (order-dependent). With
    ``skipna=True`` the epochs around a missing one are compared.

    Examples
    --------
    >>> import xarray as xr
    >>> c = xr.DataArray([[1, 1], [0, 1], [1, 1], [0, 1]], dims=("epoch", "train_id"))
    >>> forgetting_events(c).values.tolist()
    [2.0, 0.0]
    """
    validate_dim(correct, dim, "correct")
    out = _along_epoch(_skipna_kernels.forgetting_events, correct, dim, skipna=reduce_skipna(skipna))
    return _finish(out, correct, "forgetting_events", keep_attrs)


def confidence(
    true_prob: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """Confidence: mean over epochs of the true-class probability, ``(1/T) sum_t p_t``.

    Dataset cartography (Swayamdipta et al., 2020). Low confidence flags
    mislabeled / memorized samples (``direction = -1``).

    Examples
    --------
    >>> import xarray as xr
    >>> confidence(xr.DataArray([[0.2, 1.0], [0.4, 1.0]], dims=("epoch", "train_id"))).values.round(6).tolist()
    [0.3, 1.0]
    """
    validate_dim(true_prob, dim, "true_prob")
    mean, _ = _moments(true_prob, dim, reduce_skipna(skipna))
    return _finish(mean, true_prob, "confidence", keep_attrs)


def variability(
    true_prob: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """Variability: population std over epochs of the true-class probability.

    ``sqrt((1/T) sum_t (p_t - confidence)^2)`` (Swayamdipta et al., 2020).

    Examples
    --------
    >>> import xarray as xr
    >>> variability(xr.DataArray([[0.2, 1.0], [0.4, 1.0]], dims=("epoch", "train_id"))).values.round(6).tolist()
    [0.1, 0.0]
    """
    validate_dim(true_prob, dim, "true_prob")
    _, std = _moments(true_prob, dim, reduce_skipna(skipna))
    return _finish(std, true_prob, "variability", keep_attrs)


def in_confidence(
    true_prob: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """In-confidence: ``1 - p_T``, one minus the true-class probability at the last epoch.

    Examples
    --------
    >>> import xarray as xr
    >>> in_confidence(xr.DataArray([[0.5, 1.0], [0.75, 0.5]], dims=("epoch", "train_id"))).values.tolist()
    [0.25, 0.5]
    """
    validate_dim(true_prob, dim, "true_prob")
    out = 1.0 - _last(true_prob, dim, reduce_skipna(skipna))
    return _finish(out, true_prob, "in_confidence", keep_attrs)


def mean_curvature(
    curvature: xr.DataArray, *, dim: str = EPOCH, skipna: bool | None = None, keep_attrs: bool | None = None
) -> xr.DataArray:
    """Mean loss curvature over epochs, ``(1/T) sum_t curv_t`` (when recorded).

    Garg et al., 2024 (input loss curvature as a memorization proxy).

    Examples
    --------
    >>> import xarray as xr
    >>> mean_curvature(xr.DataArray([[1.0, 0.0], [3.0, 0.0]], dims=("epoch", "train_id"))).values.tolist()
    [2.0, 0.0]
    """
    validate_dim(curvature, dim, "curvature")
    total, count = _sum(curvature, dim, reduce_skipna(skipna))
    return _finish(total / count, curvature, "mean_curvature", keep_attrs)
