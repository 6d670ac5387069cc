"""Every proxy by name (:data:`PROXIES`), and :func:`compute_proxies`, all of them on one Dataset at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import xarray as xr

from ..compute.manners import resolve_keep_attrs
from ..errors import MemoxrInputError
from .proxies import (
    confidence,
    csl,
    cumulative_grad_norm,
    final_loss,
    forgetting_events,
    in_confidence,
    learning_time,
    mean_curvature,
    mean_loss,
    threshold_learning_time,
    variability,
)
from .schema import EPOCH


@dataclass(frozen=True)
class Proxy:
    """A proxy: its function and the recorded variable it reads.

    Examples
    --------
    >>> PROXIES["csl"].variable, PROXIES["confidence"].func.__name__
    ('loss', 'confidence')
    """

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


def compute_proxies(
    ds: xr.Dataset, names: Sequence[str] | None = None, *, dim: str = EPOCH,
    skipna: bool | None = None, keep_attrs: bool | None = None,
) -> xr.Dataset:
    """Every requested proxy of a dynamics dataset, lazily, as one Dataset.

    Dims contract: ``ds`` holds recorded variables with an ``epoch`` dim and a
    sample dim (``train_id``, or ``sample`` in older data), in any order
    (``memoxr.dynamics.open_dynamics``); each output has its variable's dims
    without ``epoch``. ``names`` defaults to every proxy whose variable is
    recorded (see :data:`PROXIES`); an unknown name or a missing variable raises
    :class:`memoxr.MemoxrInputError`. Variables without ``epoch`` (ground truth
    such as ``is_mislabeled``) come back as coordinates, so reducing the
    proxies (``.mean("train_id")``) never averages a mask. ``skipna`` and
    ``keep_attrs`` as for every proxy (:func:`csl`); ``attrs["sample_order"]``
    is always carried (it names the samples' identities).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"loss": (("train_id", "epoch"), [[1.0, 2.0], [0.5, 0.5]]),
    ...                  "is_mislabeled": ("train_id", [True, False])}, coords={"train_id": [3, 8]})
    >>> out = compute_proxies(ds, ["csl", "final_loss"])
    >>> out["csl"].values.tolist(), list(out.data_vars), "is_mislabeled" in out.coords
    ([3.0, 1.0], ['csl', 'final_loss'], True)
    """
    if not isinstance(ds, xr.Dataset):
        raise MemoxrInputError(f"ds must be an xarray.Dataset (open_dynamics); received {type(ds).__name__}")
    chosen = _validate_proxy_names(names, ds)
    if not chosen:
        raise MemoxrInputError(
            f"no proxy can be computed: expected one of the variables "
            f"{sorted({p.variable for p in PROXIES.values()})}; the dataset holds {sorted(map(str, ds.data_vars))}"
        )
    out = {
        name: PROXIES[name].func(ds[PROXIES[name].variable], dim=dim, skipna=skipna, keep_attrs=keep_attrs)
        for name in chosen
    }
    truth = {k: v for k, v in ds.data_vars.items() if dim not in v.dims and k not in out}
    attrs = dict(ds.attrs) if resolve_keep_attrs(keep_attrs) else {}
    attrs["sample_order"] = ds.attrs.get("sample_order", "")
    return xr.Dataset(out, attrs=attrs).assign_coords(truth)
