"""Memorization proxies from training dynamics, as lazy reductions over ``epoch``.

One wrapper layer over :mod:`memoxr.dynamics._kernels`. Every proxy takes a
recorded variable with dims ``(..., epoch, ..., sample)`` and returns it with
``epoch`` reduced; every other dim (architecture, seed, noise level...) is kept.

Order-free proxies (sums, means, stds) are dask reductions that combine partial
results across any number of ``epoch`` chunks. Order-dependent proxies (learning
time, threshold learning time, forgetting events) need each sample's whole
trajectory, so ``epoch`` is rechunked to one chunk for them (the ``sample`` and
run dims keep their chunks). The final-epoch proxies only select the last epoch.

Each result carries ``attrs["direction"]``: ``+1`` when a larger value means more
memorized / more likely mislabeled, ``-1`` when a smaller value does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..compute.reduction import reduce_dim
from ..errors import MemoxrInputError
from ..influence.kernels import ROW_STATISTICS
from . import _kernels
from .store import EPOCH, SAMPLE


def _validate_dim(x: xr.DataArray, dim: str, argument: str) -> None:
    if not isinstance(x, xr.DataArray):
        raise MemoxrInputError(f"{argument} must be an xarray.DataArray; received {type(x).__name__}")
    if dim not in x.dims:
        raise MemoxrInputError(f"{argument}: dim {dim!r} missing; expected it among dims, received {x.dims}")
    if x.sizes[dim] == 0:
        raise MemoxrInputError(f"{argument}: dim {dim!r} is empty; expected at least one epoch")


def _finish(out: xr.DataArray, name: str, formula: str, direction: int) -> xr.DataArray:
    out = out.rename(name)
    out.attrs = {"proxy": name, "formula": formula, "direction": direction}
    return out


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


def _along_epoch(kernel: Callable[..., np.ndarray], x: xr.DataArray, dim: str, *args: xr.DataArray) -> xr.DataArray:
    """Apply an order-dependent kernel: ``dim`` rechunked to one chunk."""
    if x.chunks is not None:
        x = x.chunk({dim: -1})
    return xr.apply_ufunc(
        kernel, x, *args,
        input_core_dims=[[dim]] + [[] for _ in args],
        dask="parallelized",
        output_dtypes=[np.float64],
        kwargs={"axis": -1},
    )


def csl(loss: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Cumulative Sample Loss: the sum of a sample's loss over epochs.

    ``CSL_i = sum_t loss_{i,t}`` (Ravikumar et al., "Towards Memorization
    Estimation: Fast, Formal and Free", ICML 2025). Dims: ``loss`` with ``dim``
    reduced. NaN propagates. Lazy; combines across ``epoch`` chunks.

    Examples
    --------
    >>> import xarray as xr
    >>> csl(xr.DataArray([[1.0, 2.0], [0.5, 0.5]], dims=("epoch", "sample"))).values.tolist()
    [1.5, 2.5]
    """
    _validate_dim(loss, dim, "loss")
    return _finish(_epoch_sum(loss, dim), "csl", "sum_t loss_t", +1)


def mean_loss(loss: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Mean loss over epochs, ``(1 / T) sum_t loss_t`` (the CSL divided by ``T``).

    A common baseline (e.g. Jiang et al., 2021, average loss over training).
    """
    _validate_dim(loss, dim, "loss")
    return _finish(_epoch_sum(loss, dim) / loss.sizes[dim], "mean_loss", "(1/T) sum_t loss_t", +1)


def final_loss(loss: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Loss at the last recorded epoch, ``loss_T``."""
    _validate_dim(loss, dim, "loss")
    out = loss.isel({dim: -1}, drop=True).astype(np.float64)
    return _finish(out, "final_loss", "loss_T", +1)


def cumulative_grad_norm(grad_norm: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Cumulative gradient norm, ``sum_t ||g_t||`` over epochs (when recorded)."""
    _validate_dim(grad_norm, dim, "grad_norm")
    return _finish(_epoch_sum(grad_norm, dim), "cumulative_grad_norm", "sum_t ||g_t||", +1)


def learning_time(
    grad_norm: xr.DataArray, *, dim: str = EPOCH, sample_dim: str = SAMPLE
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
    ``tau`` is a separate lazy reduction.
    """
    _validate_dim(grad_norm, dim, "grad_norm")
    if sample_dim not in grad_norm.dims:
        raise MemoxrInputError(
            f"grad_norm: dim {sample_dim!r} missing; expected it among dims, received {grad_norm.dims}"
        )
    tau = grad_norm.astype(np.float64).mean([dim, sample_dim], skipna=False)
    out = _along_epoch(_kernels.learning_time, grad_norm, dim, tau)
    return _finish(out, "learning_time", "1 - (1/T) #{t : mean_{s<=t} g_s < mean(g)}", +1)


def threshold_learning_time(correct: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Threshold learning time: the first epoch from which the sample stays correct.

    ``min {t : correct_s for every s >= t}`` as a 0-based position along
    ``dim`` (not the ``epoch`` coordinate value), and ``T`` (the number of
    epochs) when the sample is wrong at the last epoch. So a sample correct from
    the first epoch on gets 0, one learned for good at the third epoch gets 2.
    ``epoch`` is rechunked to one chunk (order-dependent).
    """
    _validate_dim(correct, dim, "correct")
    out = _along_epoch(_kernels.threshold_learning_time, correct, dim)
    return _finish(out, "threshold_learning_time", "min {t : correct_s for all s >= t}; T if never", +1)


def forgetting_events(correct: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Forgetting events: correct -> incorrect transitions between consecutive epochs.

    ``sum_{t >= 1} [correct_{t-1} and not correct_t]`` (Toneva et al., ICLR
    2019). ``epoch`` is rechunked to one chunk (order-dependent).
    """
    _validate_dim(correct, dim, "correct")
    out = _along_epoch(_kernels.forgetting_events, correct, dim)
    return _finish(out, "forgetting_events", "sum_t [correct_{t-1} and not correct_t]", +1)


def confidence(true_prob: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Confidence: mean over epochs of the true-class probability, ``(1/T) sum_t p_t``.

    Dataset cartography (Swayamdipta et al., 2020). Low confidence flags
    mislabeled / memorized samples (``direction = -1``).
    """
    _validate_dim(true_prob, dim, "true_prob")
    mean, _ = _epoch_moments(true_prob, dim)
    return _finish(mean, "confidence", "(1/T) sum_t p_t", -1)


def variability(true_prob: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Variability: population std over epochs of the true-class probability.

    ``sqrt((1/T) sum_t (p_t - confidence)^2)`` (Swayamdipta et al., 2020).
    """
    _validate_dim(true_prob, dim, "true_prob")
    _, std = _epoch_moments(true_prob, dim)
    return _finish(std, "variability", "sqrt((1/T) sum_t (p_t - mean_t p_t)^2)", +1)


def in_confidence(true_prob: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """In-confidence: ``1 - p_T``, one minus the true-class probability at the last epoch."""
    _validate_dim(true_prob, dim, "true_prob")
    out = 1.0 - true_prob.isel({dim: -1}, drop=True).astype(np.float64)
    return _finish(out, "in_confidence", "1 - p_T", +1)


def mean_curvature(curvature: xr.DataArray, *, dim: str = EPOCH) -> xr.DataArray:
    """Mean loss curvature over epochs, ``(1/T) sum_t curv_t`` (when recorded).

    Garg et al., 2024 (input loss curvature as a memorization proxy).
    """
    _validate_dim(curvature, dim, "curvature")
    out = _epoch_sum(curvature, dim) / curvature.sizes[dim]
    return _finish(out, "mean_curvature", "(1/T) sum_t curv_t", +1)


@dataclass(frozen=True)
class Proxy:
    """A proxy: its function and the recorded variable it reads."""

    name: str
    variable: str
    func: Callable[..., xr.DataArray]


#: Every proxy memoxr computes, in the order tables list them.
PROXIES: dict[str, Proxy] = {
    p.name: p
    for p in (
        Proxy("csl", "loss", csl),
        Proxy("mean_loss", "loss", mean_loss),
        Proxy("final_loss", "loss", final_loss),
        Proxy("cumulative_grad_norm", "grad_norm", cumulative_grad_norm),
        Proxy("learning_time", "grad_norm", learning_time),
        Proxy("threshold_learning_time", "correct", threshold_learning_time),
        Proxy("forgetting_events", "correct", forgetting_events),
        Proxy("confidence", "true_prob", confidence),
        Proxy("variability", "true_prob", variability),
        Proxy("in_confidence", "true_prob", in_confidence),
        Proxy("mean_curvature", "curvature", mean_curvature),
    )
}


def _validate_proxy_names(names: Sequence[str] | None, ds: xr.Dataset) -> list[str]:
    if names is None:
        return [name for name, p in PROXIES.items() if p.variable in ds.data_vars]
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise MemoxrInputError(f"proxies: unknown {unknown}; expected names among {list(PROXIES)}")
    for n in names:
        if PROXIES[n].variable not in ds.data_vars:
            raise MemoxrInputError(
                f"proxy {n!r} needs variable {PROXIES[n].variable!r}; the dataset holds {sorted(map(str, ds.data_vars))}"
            )
    return list(names)


def compute_proxies(ds: xr.Dataset, names: Sequence[str] | None = None, *, dim: str = EPOCH) -> xr.Dataset:
    """Every requested proxy of a dynamics dataset, lazily, as one Dataset.

    Dims contract: ``ds`` holds recorded variables with dims ``(..., epoch,
    sample)`` (``memoxr.dynamics.open_dynamics``); each output has those dims
    without ``epoch``. ``names`` defaults to every proxy whose variable is
    recorded (see :data:`PROXIES`); an unknown name or a missing variable raises
    :class:`memoxr.MemoxrInputError`. Variables without ``epoch`` (ground truth
    such as ``is_mislabeled``) are carried over unchanged.
    """
    chosen = _validate_proxy_names(names, ds)
    if not chosen:
        raise MemoxrInputError(
            f"no proxy can be computed: expected one of the variables "
            f"{sorted({p.variable for p in PROXIES.values()})}; the dataset holds {sorted(map(str, ds.data_vars))}"
        )
    out = {name: PROXIES[name].func(ds[PROXIES[name].variable], dim=dim) for name in chosen}
    extras = {k: v for k, v in ds.data_vars.items() if dim not in v.dims and k not in out}
    return xr.Dataset({**out, **extras}, attrs={"sample_order": ds.attrs.get("sample_order", "")})
